// Interop test: every *valid* Mandate test vector is re-checked with an
// independent JOSE implementation (the `jose` npm package) plus node:crypto
// hashing: chains with their proofs, confirmations and witness receipts, and
// policy cases (a policy and the request it is matched against). Nothing here
// shares code with the Rust verifier.
//
// Run: cd tests/interop && npm install && node --test

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EmbeddedJWK, calculateJwkThumbprint, compactVerify, errors, importJWK } from 'jose';

const VECTORS_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'vectors');
const GRANT_TYP = 'mandate-grant+jwt';
const POP_TYP = 'mandate-pop+jwt';
const REQUEST_TYP = 'mandate-request+jwt';
const POLICY_TYP = 'mandate-policy+jwt';
const CONFIRMATION_TYP = 'mandate-confirmation+jwt';
const WITNESS_TYP = 'mandate-witness+jwt';
const REPORT_TYP = 'mandate-witness-report+jwt';
const MAX_CONFIRMATION_LIFETIME = 600;
const ACT_PREFIX = 'urn:ietf:params:oauth:jwk-thumbprint:sha-256:';
const MIN_VALID_VECTORS = 15;

// The protocol accepts the JOSE name "EdDSA" (RFC 8037) and the fully
// specified name "Ed25519" (RFC 9864). jose >= 6 knows both, so every
// signature, including the "Ed25519" one in valid-alg-ed25519.json, is checked
// by jose's compactVerify; no node:crypto fallback is needed. Any other alg
// (none, HS256, ES256, ...) is rejected by jose because it is not listed here.
const ALG_FOR_HEADER = { EdDSA: 'EdDSA', Ed25519: 'Ed25519' };

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** base64url (no padding) of SHA-256 of the given string's bytes. */
function sha256b64u(str) {
  return createHash('sha256').update(str, 'ascii').digest('base64url');
}

/** A token's id: base64url(SHA-256(compact token ASCII bytes)). */
const tokenId = (token) => sha256b64u(token);

/** The chain hash (`ath`): SHA-256 of the concatenated raw 32-byte token ids, root first. */
function chainHash(chain) {
  const ids = Buffer.concat(chain.map((t) => createHash('sha256').update(t, 'ascii').digest()));
  return createHash('sha256').update(ids).digest('base64url');
}

/** The decoded JSON of one part (0: header, 1: payload) of a compact token, unverified. */
const unverifiedPart = (token, i) => JSON.parse(utf8.decode(Buffer.from(token.split('.')[i], 'base64url')));

/**
 * The same request (docs/protocol.md 6.8), without the well-formedness rules:
 * no `#`, origins equal ignoring ASCII case, paths and the text after the
 * first `?` (or its absence) equal byte for byte.
 */
function sameRequest(a, b) {
  const parts = (u) => {
    const q = u.indexOf('?');
    const target = q < 0 ? u : u.slice(0, q);
    const slash = target.indexOf('/', target.indexOf('://') + 3);
    const end = slash < 0 ? target.length : slash;
    return [target.slice(0, end).toLowerCase(), target.slice(end), q < 0 ? null : u.slice(q + 1)];
  };
  return !a.includes('#') && !b.includes('#') && JSON.stringify(parts(a)) === JSON.stringify(parts(b));
}

/** Orders strings by code point (as by UTF-8 bytes), not by UTF-16 units. */
const byCodePoint = (a, b) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));

/**
 * A detail in the canonical form of docs/protocol.md section 10.2 step 9:
 * actions deduplicated and sorted by code point, locations as written, and
 * identifier and limits only when set (null counts as absent).
 */
function canonicalDetail(d) {
  const out = {
    type: d.type,
    actions: [...new Set(d.actions)].sort(byCodePoint),
    locations: d.locations,
  };
  if (d.identifier != null) out.identifier = d.identifier;
  const limits = {};
  if (d.limits?.max_calls != null) limits.max_calls = d.limits.max_calls;
  if (d.limits?.max_amount != null) limits.max_amount = d.limits.max_amount;
  // `confirm` is a limit even when empty ({}: every call); a null `above` is absent.
  if (d.limits?.confirm != null) {
    limits.confirm = d.limits.confirm.above != null ? { above: d.limits.confirm.above } : {};
  }
  if (Object.keys(limits).length > 0) out.limits = limits;
  return out;
}

/**
 * Verifies `token` with jose under `jwk`, letting the header's alg choose
 * between the two accepted Ed25519 identifiers. Returns header and payload.
 * With `jwk` left out, jose takes the key from the token's own `jwk` header
 * (`EmbeddedJWK`), as for a request.
 */
async function joseVerify(token, jwk) {
  const header = unverifiedPart(token, 0);
  const alg = ALG_FOR_HEADER[header.alg];
  assert.ok(alg, `unexpected alg ${JSON.stringify(header.alg)}`);
  const key = jwk === undefined ? EmbeddedJWK : await importJWK(jwk, alg);
  const { protectedHeader, payload } = await compactVerify(token, key, { algorithms: [alg] });
  return { header: protectedHeader, payload: JSON.parse(utf8.decode(payload)) };
}

/**
 * Verifies a token a user signs about their own principal (a policy or a
 * confirmation): under the key its `kid` names, which must be in `keys`,
 * bound to its `sub` in `user_bindings`, and not removed.
 */
async function verifyByUser(v, token, typ, what) {
  const kid = unverifiedPart(token, 0).kid;
  const sub = unverifiedPart(token, 1).sub;
  assert.ok(
    v.user_bindings.some((b) => b.jkt === kid && b.sub === sub),
    `${what} kid ${kid} is bound to ${sub}`,
  );
  assert.ok(!(v.revoked_keys ?? []).includes(kid), `${what} signer is not a removed key`);
  const jwk = v.keys[kid];
  assert.ok(jwk, `${what} signer key ${kid} is in keys`);
  const { header, payload } = await joseVerify(token, jwk);
  assert.equal(header.typ, typ, `${what} typ`);
  assert.equal(payload.sub, sub);
  return payload;
}

/**
 * A policy case (docs/protocol.md 10.2 step 8): the policy verifies under a
 * user key bound to its `sub`, the request under the key in its own `jwk`
 * header, and the request fits the rule's principal, agent and bounds.
 * Whether its details are within the rule's (5.6) is left to the Rust suite.
 */
async function checkPolicy(v) {
  assert.deepEqual(v.chain, [], 'a policy case has an empty chain');
  for (const member of ['pop', 'call', 'confirmation', 'verified']) {
    assert.equal(v[member], undefined, `a policy case has no ${member}`);
  }
  const rule = await verifyByUser(v, v.policy.token, POLICY_TYP, 'policy');

  const requestHeader = unverifiedPart(v.policy.request, 0);
  assert.equal(typeof requestHeader.jwk, 'object', 'the request carries its key in jwk');
  const signer = await calculateJwkThumbprint(requestHeader.jwk, 'sha256');
  assert.equal(requestHeader.kid, signer, "request kid is its jwk's thumbprint");
  const { header, payload: request } = await joseVerify(v.policy.request);
  assert.equal(header.typ, REQUEST_TYP, 'request typ');

  assert.equal(rule.effect, 'approve', 'the rule approves');
  assert.equal(rule.agent?.jkt, signer, "the rule is about the request's signer");
  assert.equal(request.principal_hint, rule.sub, "the request is for the rule's principal");
  assert.equal(request.oauth_client, undefined, 'the request is an agent\'s own');
  assert.ok(request.lifetime <= rule.max_lifetime, `lifetime ${request.lifetime} <= ${rule.max_lifetime}`);
  assert.ok(request.max_depth <= rule.max_depth, `max_depth ${request.max_depth} <= ${rule.max_depth}`);
}

/**
 * A confirmation (docs/protocol.md 6.8) for a call under a verified chain:
 * signed by a user key bound to the chain's principal, for the leaf's key,
 * this chain, this method, URI and body.
 */
async function checkConfirmation(v, root, leaf) {
  const c = v.confirmation;
  const payload = await verifyByUser(v, c.token, CONFIRMATION_TYP, 'confirmation');
  assert.equal(payload.sub, root.sub, "confirmation sub is the chain's principal");
  assert.equal(payload.cnf?.jkt, leaf.cnf.jkt, "confirmation cnf.jkt is the leaf's key");
  assert.equal(payload.ath, chainHash(v.chain), 'confirmation ath is the chain hash');
  assert.equal(payload.htm, c.htm, 'confirmation htm');
  assert.ok(sameRequest(payload.htu, c.htu), `confirmation htu ${payload.htu} is the same request as ${c.htu}`);
  const body = Buffer.from(c.body, 'base64url');
  assert.equal(payload.bdh, createHash('sha256').update(body).digest('base64url'), 'bdh is the body hash');
  assert.ok(
    Number.isInteger(payload.iat) && Number.isInteger(payload.exp)
      && payload.exp - payload.iat <= MAX_CONFIRMATION_LIFETIME,
    'confirmation lives 600 s at most',
  );
}

/** SHA-256 of the concatenated buffers. */
const sha256 = (...parts) => createHash('sha256').update(Buffer.concat(parts)).digest();

/**
 * RFC 9162 section 2.1.3.2: whether `path` proves `leaf` (a leaf hash) to be
 * leaf `index` of the tree of `size` leaves whose head is `root`.
 */
function included(leaf, index, size, path, root) {
  if (index >= size) return false;
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of path) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = sha256(Buffer.from([1]), p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = sha256(Buffer.from([1]), r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && r.equals(root);
}

/**
 * A witness receipt (docs/protocol.md 4.10) of a call under the chain's leaf,
 * in either form: signed on its own, verified with jose; or
 * REPORT~INDEX~PATH~PAYLOAD, whose report jose verifies and whose path
 * node:crypto folds to the report's root. Returns the receipt's claims.
 */
async function checkWitness(v, leafToken) {
  const { token, key } = v.witness;
  const jwk = v.keys[key];
  assert.ok(jwk, `witness key ${key} is in keys`);
  let claims;
  if (!token.includes('~')) {
    const { header, payload } = await joseVerify(token, jwk);
    assert.equal(header.typ, WITNESS_TYP, 'witness typ');
    assert.equal(header.kid, key, 'witness kid');
    claims = payload;
  } else {
    const [report, index, path, payload, ...rest] = token.split('~');
    assert.deepEqual(rest, [], 'four parts');
    assert.match(index, /^(0|[1-9][0-9]?)$/, 'INDEX grammar');
    const { header, payload: head } = await joseVerify(report, jwk);
    assert.equal(header.typ, REPORT_TYP, 'report typ');
    assert.equal(header.kid, key, 'report kid');
    assert.ok(Number.isInteger(head.size) && head.size >= 1 && head.size <= 100, 'size 1 to 100');
    const hashes = path === '' ? [] : path.split('.').map((h) => {
      const b = Buffer.from(h, 'base64url');
      assert.ok(b.length === 32 && b.toString('base64url') === h, `path hash ${h}`);
      return b;
    });
    const leaf = sha256(Buffer.from([0]), Buffer.from(payload, 'ascii'));
    assert.ok(
      included(leaf, Number(index), head.size, hashes, Buffer.from(head.root, 'base64url')),
      'the path proves the payload to be leaf INDEX under the signed root',
    );
    claims = JSON.parse(utf8.decode(Buffer.from(payload, 'base64url')));
  }
  assert.equal(claims.grant, tokenId(leafToken), "the witness receipt names the chain's leaf");
  return claims;
}

function loadVectors() {
  return readdirSync(VECTORS_DIR)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((file) => ({ file, v: JSON.parse(readFileSync(join(VECTORS_DIR, file), 'utf8')) }));
}

const valid = loadVectors().filter(({ v }) => v.expect === 'valid');

async function checkVector(v) {
  // 1. Every key is filed under its own RFC 7638 thumbprint.
  for (const [jkt, jwk] of Object.entries(v.keys)) {
    assert.equal(jwk.kty, 'OKP');
    assert.equal(jwk.crv, 'Ed25519');
    assert.equal(await calculateJwkThumbprint(jwk, 'sha256'), jkt, `key filed under ${jkt}`);
  }

  if (v.policy) {
    await checkPolicy(v);
    return;
  }

  // 2. Walk the chain, choosing each verification key ourselves.
  assert.ok(Array.isArray(v.chain) && v.chain.length > 0, 'non-empty chain');
  const revoked = new Set(v.revoked ?? []);
  const payloads = [];
  for (const [i, token] of v.chain.entries()) {
    const unverifiedHeader = unverifiedPart(token, 0);
    const unverifiedPayload = unverifiedPart(token, 1);

    let signerJkt;
    if (i === 0) {
      // Root: signed by a user key bound to the grant's sub.
      signerJkt = unverifiedHeader.kid;
      const bound = v.user_bindings.some(
        (b) => b.jkt === signerJkt && b.sub === unverifiedPayload.sub,
      );
      assert.ok(bound, `root kid ${signerJkt} is bound to ${unverifiedPayload.sub}`);
    } else {
      // Link i: signed by the key the previous grant was issued to.
      signerJkt = payloads[i - 1].cnf.jkt;
    }
    const jwk = v.keys[signerJkt];
    assert.ok(jwk, `link ${i}: signer key ${signerJkt} is in keys`);

    const { header, payload } = await joseVerify(token, jwk);
    assert.equal(header.typ, GRANT_TYP, `link ${i}: typ`);
    assert.equal(header.kid, signerJkt, `link ${i}: header kid names the signer`);

    if (i === 0) {
      assert.equal(payload.prf, undefined, 'root has no prf');
    } else {
      const parent = payloads[i - 1];
      assert.equal(payload.prf, tokenId(v.chain[i - 1]), `link ${i}: prf is the parent's id`);
      assert.equal(payload.sub, payloads[0].sub, `link ${i}: sub unchanged`);
      assert.ok(
        Number.isInteger(payload.max_depth) && payload.max_depth < parent.max_depth,
        `link ${i}: max_depth ${payload.max_depth} < ${parent.max_depth}`,
      );
    }
    assert.equal(typeof payload.cnf?.jkt, 'string', `link ${i}: cnf.jkt`);
    assert.equal(payload.act?.sub, ACT_PREFIX + payload.cnf.jkt, `link ${i}: act.sub matches cnf.jkt`);
    assert.ok(Number.isInteger(payload.exp), `link ${i}: integer exp`);
    assert.ok(!revoked.has(tokenId(token)), `link ${i}: not revoked`);
    payloads.push(payload);
  }

  // 3. The expected verification result follows from the chain.
  const root = payloads[0];
  const leaf = payloads[payloads.length - 1];
  assert.equal(v.verified.principal, root.sub, 'principal');
  assert.equal(v.verified.leaf_agent, leaf.act.sub, 'leaf_agent');
  assert.equal(v.verified.expires_at, Math.min(...payloads.map((p) => p.exp)), 'expires_at');
  assert.equal(v.verified.depth_left, leaf.max_depth, 'depth_left');
  assert.deepEqual(
    v.verified.scopes,
    leaf.authorization_details.map(canonicalDetail),
    "scopes are the leaf grant's details, in canonical form",
  );

  // 4. Proof of possession by the leaf's key, bound to this exact chain.
  if (v.pop) {
    const leafJkt = leaf.cnf.jkt;
    const jwk = v.keys[leafJkt];
    assert.ok(jwk, `leaf key ${leafJkt} is in keys`);
    const { header, payload } = await joseVerify(v.pop.token, jwk);
    assert.equal(header.typ, POP_TYP, 'pop typ');
    assert.equal(header.kid, leafJkt, 'pop kid is the leaf key');
    assert.equal(payload.ath, chainHash(v.chain), 'pop ath is the chain hash');
    assert.equal(payload.htm, v.pop.htm, 'pop htm');
  }

  // 5. The user's confirmation of the call, when the vector has one.
  if (v.confirmation) await checkConfirmation(v, root, leaf);

  // 6. A witness receipt of a call under the leaf, when the vector has one.
  if (v.witness) {
    const claims = await checkWitness(v, v.chain[v.chain.length - 1]);
    assert.ok(
      leaf.authorization_details.some((d) => d.locations.some((l) => claims.action.target.startsWith(l))),
      "a location of the leaf's details covers the witnessed target",
    );
  }
}

test('test vectors verify with jose', async (t) => {
  let checked = 0;
  for (const { file, v } of valid) {
    await t.test(file, async () => {
      await checkVector(v);
      checked += 1;
    });
  }
  assert.ok(
    checked >= MIN_VALID_VECTORS,
    `checked ${checked} valid vectors, expected at least ${MIN_VALID_VECTORS}`,
  );
});

/** The token with the middle character of its signature changed. */
function flipSignature(token) {
  const [h, p, s] = token.split('.');
  const mid = Math.floor(s.length / 2);
  const flipped = s[mid] === 'A' ? 'B' : 'A';
  return [h, p, s.slice(0, mid) + flipped + s.slice(mid + 1)].join('.');
}

// One token of each kind the valid vectors hold, and where its key comes from:
// the `kid` it names in `keys`, or (for a request) its own `jwk` header.
const FLIPPED = [
  ['a root grant', 'valid-depth-2.json', (v) => v.chain[0], 'kid'],
  ['a confirmation', 'valid-confirmation.json', (v) => v.confirmation.token, 'kid'],
  ['a policy', 'valid-policy-fits.json', (v) => v.policy.token, 'kid'],
  ['a request', 'valid-policy-fits.json', (v) => v.policy.request, 'jwk'],
];

for (const [what, file, tokenOf, keyFrom] of FLIPPED) {
  test(`jose rejects ${what} with one signature character flipped`, async () => {
    const { v } = loadVectors().find((f) => f.file === file);
    const token = tokenOf(v);
    const tampered = flipSignature(token);
    assert.notEqual(tampered, token);
    const header = unverifiedPart(token, 0);
    const key = keyFrom === 'jwk' ? EmbeddedJWK : await importJWK(v.keys[header.kid], 'EdDSA');
    // Sanity: the untouched token verifies under the same key.
    await compactVerify(token, key, { algorithms: ['EdDSA'] });
    await assert.rejects(
      compactVerify(tampered, key, { algorithms: ['EdDSA'] }),
      errors.JWSSignatureVerificationFailed,
    );
  });
}

test('every form of valid witness receipt is checked', () => {
  const forms = valid.filter(({ v }) => v.witness).map(({ v }) => (v.witness.token.includes('~') ? 'report' : 'signed'));
  assert.ok(forms.includes('signed'), 'a valid witness receipt signed on its own');
  assert.ok(forms.includes('report'), 'a valid witness receipt of a report');
});

test("a witness receipt's report rejects a flipped signature, a moved index and a cut path", async () => {
  const { v } = loadVectors().find((f) => f.file === 'valid-witness-report.json');
  const leafToken = v.chain[v.chain.length - 1];
  await checkWitness(v, leafToken);
  const [report, index, path, payload] = v.witness.token.split('~');
  const notIncluded = { message: /the path proves the payload/ };
  const broken = [
    [[flipSignature(report), index, path, payload], errors.JWSSignatureVerificationFailed],
    [[report, String(Number(index) + 1), path, payload], notIncluded],
    [[report, index, path.split('.').slice(0, -1).join('.'), payload], notIncluded],
  ];
  for (const [parts, error] of broken) {
    const copy = { ...v, witness: { ...v.witness, token: parts.join('~') } };
    await assert.rejects(checkWitness(copy, leafToken), error);
  }
});
