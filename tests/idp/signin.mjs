#!/usr/bin/env node
// Headless Authorization Code + PKCE (S256) sign-in against the test IdP (server.mjs).
//
//   node signin.mjs --issuer URL --user alice [--client mandate-desktop]
//                   [--scope "openid email profile offline_access"] [--redirect-port N]
//                   [--timeout SECONDS] [--no-consent-prompt] [--nonce NONCE]
//
// Drives the provider's devInteractions (login form, then consent form) with Node's
// fetch (redirect: 'manual') and a small cookie jar. Verifies state, the ID token's
// RS256 signature (against jwks_uri), iss, aud, nonce and sub. Prints the token
// response as one JSON line on stdout; exits non-zero with a message on stderr on
// any failure.

import { createHash, createPublicKey, createVerify, randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';

import { SignInError, browser, describe, fail, walkToCallback } from './flow.mjs';

let args;
try {
  ({ values: args } = parseArgs({
    options: {
      issuer: { type: 'string' },
      user: { type: 'string' },
      password: { type: 'string', default: 'any-password' },
      client: { type: 'string', default: 'mandate-desktop' },
      scope: { type: 'string', default: 'openid email profile offline_access' },
      'redirect-port': { type: 'string' },
      timeout: { type: 'string', default: '20' },
      'no-consent-prompt': { type: 'boolean' },
      nonce: { type: 'string' },
    },
    strict: true,
  }));
} catch (err) {
  process.stderr.write(`signin: ${err.message}\n`);
  process.exit(2);
}
if (!args.issuer || !args.user) {
  process.stderr.write('usage: node signin.mjs --issuer URL --user NAME [--client ID] [--scope "..."] [--redirect-port N] [--timeout S] [--no-consent-prompt]\n');
  process.exit(2);
}

const b64url = (buf) => Buffer.from(buf).toString('base64url');

let request;

function decodeJwt(jwt) {
  const parts = String(jwt).split('.');
  if (parts.length !== 3) fail('id_token is not a compact JWS');
  try {
    return {
      header: JSON.parse(Buffer.from(parts[0], 'base64url')),
      payload: JSON.parse(Buffer.from(parts[1], 'base64url')),
      signingInput: `${parts[0]}.${parts[1]}`,
      signature: Buffer.from(parts[2], 'base64url'),
    };
  } catch {
    return fail('id_token header/payload is not valid base64url JSON');
  }
}

async function main() {
  const issuer = args.issuer.replace(/\/$/, '');

  // 1. Discovery.
  const disc = await request(`${issuer}/.well-known/openid-configuration`);
  if (disc.res.status !== 200) fail(`discovery: ${describe(disc)}`);
  const meta = JSON.parse(disc.text);
  if (meta.issuer !== issuer) fail(`discovery issuer ${meta.issuer} != ${issuer}`);

  // 2. Authorization request.
  const redirectPort = args['redirect-port'] ?? String(49152 + Math.floor(Math.random() * 16000));
  const redirectUri = `http://127.0.0.1:${redirectPort}/callback`;
  const state = b64url(randomBytes(16));
  // --nonce: the caller's (an enrollment commits the sign-in to its session key).
  const nonce = args.nonce ?? b64url(randomBytes(16));
  const verifier = b64url(randomBytes(32));
  const challenge = b64url(createHash('sha256').update(verifier).digest());
  const authz = new URL(meta.authorization_endpoint);
  const params = {
    response_type: 'code',
    client_id: args.client,
    redirect_uri: redirectUri,
    scope: args.scope,
    state,
    nonce,
    code_challenge: challenge,
    code_challenge_method: 'S256',
  };
  // oidc-provider drops offline_access when a prompt parameter is present without
  // "consent"; ask for consent explicitly as OIDC Core §11 recommends.
  // (--no-consent-prompt omits it, to exercise that behaviour.)
  if (args.scope.split(' ').includes('offline_access') && !args['no-consent-prompt']) params.prompt = 'consent';
  for (const [k, v] of Object.entries(params)) authz.searchParams.set(k, v);

  // 3. Walk the provider's pages until it sends us back to redirect_uri.
  const callbackUrl = await walkToCallback(request, authz.href, { user: args.user, password: args.password },
    (next) => next.origin === `http://127.0.0.1:${redirectPort}` && next.pathname === '/callback');

  const q = callbackUrl.searchParams;
  if (q.get('error')) fail(`authorization error: ${q.get('error')}: ${q.get('error_description') ?? ''}`);
  if (q.get('state') !== state) fail(`state mismatch: got ${q.get('state')}`);
  if (q.has('iss') && q.get('iss') !== issuer) fail(`iss parameter mismatch: ${q.get('iss')}`);
  const code = q.get('code');
  if (!code) fail(`no code in callback ${callbackUrl.href}`);

  // 4. Token exchange.
  let tokenRes;
  try {
    tokenRes = await fetch(meta.token_endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: new URLSearchParams({
        grant_type: 'authorization_code',
        code,
        redirect_uri: redirectUri,
        client_id: args.client,
        code_verifier: verifier,
      }).toString(),
      signal: controller.signal,
    });
  } catch (err) {
    fail(`token request failed: ${err.cause?.message || err.message}`);
  }
  const tokenText = await tokenRes.text();
  if (tokenRes.status !== 200) fail(`token endpoint: ${tokenRes.status}: ${tokenText}`);
  const tokens = JSON.parse(tokenText);
  if (!tokens.id_token) fail(`no id_token in token response: ${tokenText}`);

  // 5. ID token checks: signature (JWKS), iss, aud, nonce, sub.
  const { header, payload, signingInput, signature } = decodeJwt(tokens.id_token);
  if (header.alg !== 'RS256') fail(`id_token alg ${header.alg}, expected RS256`);
  const jwks = await request(meta.jwks_uri);
  if (jwks.res.status !== 200) fail(`jwks: ${describe(jwks)}`);
  const jwk = JSON.parse(jwks.text).keys.find((k) => k.kid === header.kid);
  if (!jwk) fail(`no JWKS key with kid ${header.kid}`);
  const ok = createVerify('RSA-SHA256').update(signingInput)
    .verify(createPublicKey({ key: jwk, format: 'jwk' }), signature);
  if (!ok) fail('id_token signature does not verify');
  if (payload.iss !== issuer) fail(`id_token iss ${payload.iss} != ${issuer}`);
  const aud = [].concat(payload.aud);
  if (!aud.includes(args.client)) fail(`id_token aud ${JSON.stringify(payload.aud)} lacks ${args.client}`);
  if (payload.nonce !== nonce) fail(`id_token nonce mismatch: ${payload.nonce}`);
  if (payload.sub !== args.user) fail(`id_token sub ${payload.sub} != ${args.user}`);

  process.stdout.write(`${JSON.stringify(tokens)}\n`);
}

const seconds = Number(args.timeout);
const controller = new AbortController();
request = browser(controller.signal);
const timer = setTimeout(() => {
  controller.abort();
  process.stderr.write(`signin: timed out after ${seconds}s\n`);
  process.exit(1);
}, (Number.isFinite(seconds) && seconds > 0 ? seconds : 20) * 1000);

try {
  await main();
  clearTimeout(timer);
} catch (err) {
  clearTimeout(timer);
  process.stderr.write(`signin: ${err instanceof SignInError ? err.message : err.stack || err}\n`);
  process.exitCode = 1;
}
