// Interop test: every *valid* Mandate test vector is re-checked with an
// independent JOSE implementation (the `jose` npm package) plus node:crypto
// hashing. Nothing here shares code with the Rust verifier.
//
// Run: cd tests/interop && npm install && node --test

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { calculateJwkThumbprint, compactVerify, errors, importJWK } from 'jose';

const VECTORS_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'vectors');
const GRANT_TYP = 'mandate-grant+jwt';
const POP_TYP = 'mandate-pop+jwt';
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

/** Orders strings by code point (as by UTF-8 bytes), not by UTF-16 units. */
const byCodePoint = (a, b) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));

/**
 * A detail in the canonical form of docs/protocol.md section 10.2 step 7:
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
  if (Object.keys(limits).length > 0) out.limits = limits;
  return out;
}

/**
 * Verifies `token` with jose under `jwk`, letting the header's alg choose
 * between the two accepted Ed25519 identifiers. Returns header and payload.
 */
async function joseVerify(token, jwk) {
  const header = JSON.parse(utf8.decode(Buffer.from(token.split('.')[0], 'base64url')));
  const alg = ALG_FOR_HEADER[header.alg];
  assert.ok(alg, `unexpected alg ${JSON.stringify(header.alg)}`);
  const key = await importJWK(jwk, alg);
  const { protectedHeader, payload } = await compactVerify(token, key, { algorithms: [alg] });
  return { header: protectedHeader, payload: JSON.parse(utf8.decode(payload)) };
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

  // 2. Walk the chain, choosing each verification key ourselves.
  assert.ok(Array.isArray(v.chain) && v.chain.length > 0, 'non-empty chain');
  const revoked = new Set(v.revoked ?? []);
  const payloads = [];
  for (const [i, token] of v.chain.entries()) {
    const unverifiedHeader = JSON.parse(
      utf8.decode(Buffer.from(token.split('.')[0], 'base64url')),
    );
    const unverifiedPayload = JSON.parse(
      utf8.decode(Buffer.from(token.split('.')[1], 'base64url')),
    );

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
    // ath = SHA-256 of the concatenated raw 32-byte token ids, root first.
    const ids = Buffer.concat(v.chain.map((t) => createHash('sha256').update(t, 'ascii').digest()));
    assert.equal(payload.ath, createHash('sha256').update(ids).digest('base64url'), 'pop ath is the chain hash');
    assert.equal(payload.htm, v.pop.htm, 'pop htm');
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

test('jose rejects a root signature with one character flipped', async () => {
  const { v } = loadVectors().find(({ file }) => file === 'valid-depth-2.json');
  const [h, p, s] = v.chain[0].split('.');
  const mid = Math.floor(s.length / 2);
  const flipped = s[mid] === 'A' ? 'B' : 'A';
  const tampered = [h, p, s.slice(0, mid) + flipped + s.slice(mid + 1)].join('.');
  assert.notEqual(tampered, v.chain[0]);

  const rootKid = JSON.parse(utf8.decode(Buffer.from(h, 'base64url'))).kid;
  const key = await importJWK(v.keys[rootKid], 'EdDSA');
  // Sanity: the untouched token verifies under the same key.
  await compactVerify(v.chain[0], key, { algorithms: ['EdDSA'] });
  await assert.rejects(
    compactVerify(tampered, key, { algorithms: ['EdDSA'] }),
    errors.JWSSignatureVerificationFailed,
  );
});
