// The OAuth code flow end to end, with every part real: an OAuth client
// written with oauth4webapi (discovery, PKCE, DPoP with an ES256 key,
// RFC 9207 `iss`) asks the broker for a token for a resource server; the
// user signs in at the test OIDC provider through the broker's pages, and
// approves the request in the real app (mandate-app, WebKitGTK, over
// WebDriver), narrowed to reading only, after checking that the binding
// code on the broker's page is the one in the app. The client redeems
// the code, calls the resource server, refreshes (a refresh token used
// twice ends its line), and the app's Activity shows the tokens it was
// given. Then the user revokes the
// grant in the app: introspection says inactive and the resource server
// refuses the token.
// A second client, registered with RFC 7591, is denied in the app and gets
// `access_denied`.
//
// The resource server's check is the ```js oauth-check``` block of
// docs/oauth.md, read out of that page, as an outsider would copy it.
//
//   scripts/with-keyring.sh xvfb-run -a node --test tests/webdriver/oauth.test.mjs
//
// Screens are saved under target/e2e-shots/ as oauth-*.png.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as oauth from 'oauth4webapi';
import * as jose from 'jose';
import { ROOT, WAIT, approveFor, closeAll, openSession, rowIn, startBroker, startProvider, until, screenshot } from './harness.mjs';
import { backToClient, signInAndWait } from './codeflow.mjs';

const SHOTS = join(ROOT, 'target', 'e2e-shots');
const CLIENT_NAME = 'Acme Files Client';
const REGISTERED_NAME = 'Quick Notes Helper';
const insecure = { [oauth.allowInsecureRequests]: true };

// The resource server's check, out of docs/oauth.md, written next to this
// file (so that it finds jose) each run; git ignores it.
const doc = readFileSync(join(ROOT, 'docs/oauth.md'), 'utf8');
const block = doc.match(/```js oauth-check\n([\s\S]*?)\n```/)?.[1];
assert.ok(block, 'docs/oauth.md has a ```js oauth-check``` block');
const CHECK = join(ROOT, 'tests/webdriver/.oauth-check.mjs');
writeFileSync(CHECK, `${block}\nexport { checkCall, Refused };\n`);
const { checkCall, Refused } = await import(CHECK);

const ctx = {};
let app;

const shot = (name) => screenshot(app, join(SHOTS, `oauth-${name}.png`));
const appLog = () => ctx.driver.output.split('\n').filter((l) => !l.includes('mandate_app::ipc')).slice(-40).join('\n');

/** The client's web server: its metadata document at /client.json, and
 * the resource server at /files/, which answers each call with the
 * token's subject, or 401 and why. */
async function startClientSite() {
  const seenJti = new Set();
  const calls = [];
  const server = createServer(async (req, res) => {
    const path = new URL(req.url, ctx.site).pathname;
    if (path === '/client.json') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({
        client_id: `${ctx.site}/client.json`,
        client_name: CLIENT_NAME,
        redirect_uris: [`${ctx.site}/cb`],
        token_endpoint_auth_method: 'none',
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
      }));
      return;
    }
    if (path.startsWith('/files/')) {
      try {
        ctx.metadata ??= await (await fetch(`${ctx.broker}/.well-known/oauth-authorization-server`)).json();
        ctx.jwks ??= jose.createRemoteJWKSet(new URL(ctx.metadata.jwks_uri));
        const claims = await checkCall(req.method, `${ctx.site}${path}`, req.headersDistinct, ctx.resource, ctx.metadata, ctx.jwks, seenJti);
        calls.push({ ok: true, claims });
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ sub: claims.sub, client_id: claims.client_id, details: claims.authorization_details }));
      } catch (e) {
        if (!(e instanceof Refused)) throw e;
        calls.push({ ok: false, why: e.message });
        res.writeHead(401, { 'www-authenticate': 'DPoP error="invalid_token"', 'content-type': 'text/plain' });
        res.end(e.message);
      }
      return;
    }
    res.writeHead(404);
    res.end();
  });
  await new Promise((res) => server.listen(0, '127.0.0.1', res));
  ctx.site = `http://127.0.0.1:${server.address().port}`;
  ctx.resource = `${ctx.site}/files/`;
  return { server, calls };
}

/** The authorization request's URL, and what the client keeps for the
 * token request. */
async function authorization(client, redirectUri, dpopKeys, scope = 'files:read') {
  const verifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const url = new URL(ctx.as.authorization_endpoint);
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: client.client_id,
    redirect_uri: redirectUri,
    code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    resource: ctx.resource,
    scope,
    dpop_jkt: await jose.calculateJwkThumbprint(await jose.exportJWK(dpopKeys.publicKey)),
  }).toString();
  return { url, verifier, state };
}

/** The inbox row of `name`, opened; checks the binding code against the
 * broker's page. */
async function openRequest(name, code) {
  await (await rowIn(app, name)).click();
  await app.$('[data-testid="oauth-client"]').waitForDisplayed({ timeout: WAIT });
  assert.equal(await app.$('[data-testid="binding-code"]').getText(), code);
  assert.match(await app.$('[data-testid="binding-hint"]').getText(), /the broker's page in your browser shows the same code/);
}

const introspect = async (token) => (await fetch(ctx.as.introspection_endpoint, {
  method: 'POST',
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
  body: new URLSearchParams({ token }),
})).json();

/** The resource server's answer to a call with `token`, proved by the
 * DPoP handle `dpop` (or by none). */
async function callFiles(token, dpop) {
  const url = new URL(`${ctx.resource}q3.csv`);
  if (!dpop) return fetch(url, { headers: { authorization: `DPoP ${token}` } });
  try {
    return await oauth.protectedResourceRequest(token, 'GET', url, new Headers(), null, { DPoP: dpop, ...insecure });
  } catch (e) {
    if (e instanceof oauth.WWWAuthenticateChallengeError) return e.response;
    throw e;
  }
}

/** A token endpoint refusal's RFC 6749 code. */
async function refusal(promise) {
  try {
    await promise;
  } catch (e) {
    if (e instanceof oauth.ResponseBodyError || e instanceof oauth.AuthorizationResponseError) return e.error;
    throw e;
  }
  assert.fail('not refused');
}

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  ctx.dir = mkdtempSync(join(tmpdir(), 'mandate-oauth-'));
  ctx.site_ = await startClientSite();
  await startProvider(ctx);
  await startBroker(ctx, [
    '--oauth-sign-in', `${ctx.issuer}=mandate-broker`,
    '--oauth-loopback-clients',
    '--oauth-resource', ctx.resource,
  ], { RUST_LOG: 'warn' });
  const opened = await openSession({
    MANDATE_ISSUER: ctx.issuer,
    MANDATE_BROKER: ctx.broker,
    MANDATE_DATA_DIR: join(ctx.dir, 'app'),
    MANDATE_KEYRING_SERVICE: `mandate-oauth-${process.pid}`,
    MANDATE_BROWSER: `${process.execPath} ${join(ROOT, 'tests/idp/browse.mjs')} --user alice`,
    RUST_LOG: 'warn',
  });
  app = opened.session;
  ctx.driver = opened.driver;
  // The client discovers the broker (RFC 8414).
  const issuer = new URL(ctx.broker);
  ctx.as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure }));
});

after(async () => {
  await closeAll(app, ctx.dir);
  ctx.site_?.server.close();
});

test('an OAuth client gets a DPoP-bound token through the app\'s consent, uses it, and loses it when the user revokes', { timeout: 300_000 }, async (t) => {
  assert.equal(ctx.as.issuer, ctx.broker);
  assert.deepEqual(ctx.as.code_challenge_methods_supported, ['S256']);
  assert.equal(ctx.as.authorization_response_iss_parameter_supported, true);
  assert.equal(ctx.as.client_id_metadata_document_supported, true);
  assert.ok(ctx.as.dpop_signing_alg_values_supported.includes('ES256'));

  await app.$('[data-testid="sign-in"]').waitForDisplayed({ timeout: WAIT });
  await app.$('[data-testid="sign-in"]').click();
  await app.$('[data-testid="pending-count"]').waitForDisplayed({ timeout: WAIT });

  // The client: its id is its metadata document's URL.
  const client = { client_id: `${ctx.site}/client.json` };
  const redirectUri = `${ctx.site}/cb`;
  const keys = await oauth.generateKeyPair('ES256');
  const dpop = oauth.DPoP(client, keys);
  const { url, verifier, state } = await authorization(client, redirectUri, keys, 'files:read files:write');

  // The user's browser: sign-in at the provider, then the waiting page.
  const wait = await signInAndWait(ctx.broker, url);
  assert.match(wait.page, new RegExp(CLIENT_NAME));
  t.diagnostic(`binding code ${wait.code}`);

  // In the app: the client as the broker identified it, the resource,
  // and the same binding code. Approve.
  await openRequest(CLIENT_NAME, wait.code)
    .catch((e) => { throw new Error(`${e.message}\napp: ${appLog()}`); });
  assert.equal(await app.$('[data-testid="oauth-client-id"]').getText(), client.client_id);
  assert.equal(await app.$('[data-testid="oauth-verified"]').getText(), 'identified by its address');
  assert.equal(await app.$('[data-testid="oauth-resource"]').getText(), ctx.resource);
  assert.equal(await app.$('[data-testid="oauth-redirect"]').getText(), redirectUri);
  await shot('01-request');
  // The user lets it read, not write.
  await app.$('[data-testid="action-0-write"]').click();
  assert.equal(await app.$('[data-testid="approve"]').getText(), 'Approve narrowed');
  await approveFor(app);
  await app.$('[data-testid="decision"]').waitForDisplayed({ timeout: WAIT });

  // Back at the client, with a code and the broker as `iss`.
  const back = await backToClient(wait.request, wait.waitUrl, redirectUri);
  assert.equal(back.searchParams.get('iss'), ctx.broker);
  const params = oauth.validateAuthResponse(ctx.as, client, back, state);
  const issued = await oauth.processAuthorizationCodeResponse(ctx.as, client,
    await oauth.authorizationCodeGrantRequest(ctx.as, client, oauth.None(), params, redirectUri, verifier, {
      DPoP: dpop, additionalParameters: { resource: ctx.resource }, ...insecure,
    }));
  assert.equal(issued.token_type, 'dpop');
  assert.ok(issued.refresh_token, 'a refresh token');
  const claims = jose.decodeJwt(issued.access_token);
  assert.equal(claims.aud, ctx.resource);
  assert.equal(claims.sub, ctx.principal);
  assert.equal(claims.cnf.jkt, await jose.calculateJwkThumbprint(await jose.exportJWK(keys.publicKey)));
  assert.ok(claims.exp - claims.iat <= 300, JSON.stringify(claims));
  // What the user approved, narrowed: read, not write.
  assert.equal(issued.scope, 'files:read');
  assert.equal(claims.scope, 'files:read');
  assert.deepEqual(claims.authorization_details, [{ type: 'files', actions: ['read'], locations: [ctx.resource] }]);
  // The code is spent.
  assert.equal(await refusal(oauth.authorizationCodeGrantRequest(ctx.as, client, oauth.None(), params, redirectUri, verifier, {
    DPoP: dpop, additionalParameters: { resource: ctx.resource }, ...insecure,
  }).then((r) => oauth.processAuthorizationCodeResponse(ctx.as, client, r))), 'invalid_grant');

  // The resource server takes it with the client's proof, and only so.
  const ok = await callFiles(issued.access_token, dpop);
  assert.equal(ok.status, 200, await ok.clone().text());
  assert.equal((await ok.json()).sub, ctx.principal);
  const bare = await callFiles(issued.access_token);
  assert.equal(bare.status, 401);
  assert.match(await bare.text(), /exactly one DPoP proof/);
  const other = oauth.DPoP(client, await oauth.generateKeyPair('ES256'));
  const stolen = await callFiles(issued.access_token, other);
  assert.equal(stolen.status, 401);
  assert.match(await stolen.text(), /another key/);

  // Refresh: a new pair. The old refresh token, used again, is refused,
  // and since someone holds a copy of it, its whole line ends: the new
  // refresh token too (RFC 9700 section 4.14.2). The access token stands.
  const refresh = (token) => oauth.refreshTokenGrantRequest(ctx.as, client, oauth.None(), token, {
    DPoP: dpop, additionalParameters: { resource: ctx.resource }, ...insecure,
  }).then((r) => oauth.processRefreshTokenResponse(ctx.as, client, r));
  const renewed = await refresh(issued.refresh_token);
  assert.notEqual(renewed.refresh_token, issued.refresh_token);
  assert.equal(await refusal(refresh(issued.refresh_token)), 'invalid_grant');
  assert.equal(await refusal(refresh(renewed.refresh_token)), 'invalid_grant');
  assert.equal((await callFiles(renewed.access_token, dpop)).status, 200);
  assert.equal((await introspect(renewed.access_token)).active, true);

  // The app's Activity shows what the client was given.
  await app.$('[data-testid="nav-activity"]').click();
  // Two tokens: the code's and the refresh's, each a receipt signed by
  // the client's key, that the app verified.
  await until('the tokens in the activity', async () => {
    const rows = await app.$$('[data-testid="activity-row"]').map((r) => r.getText());
    return rows.length === 2 && rows.every((r) => r.includes(`Was given an access token for ${ctx.resource}`)
      && /Acme Files Client[\s\S]*oauth\.token[\s\S]*succeeded/.test(r));
  }).catch((e) => { throw new Error(`${e.message}\napp: ${appLog()}`); });
  await shot('02-activity');

  // The user revokes the grant: the token goes inactive at once, and the
  // resource server refuses the call. (That a revoked grant ends every
  // refresh line on it is shown in crates/mandate-broker/tests/broker/
  // oauth_code.rs: this one's line has ended already.)
  await app.$('[data-testid="nav-delegations"]').click();
  await until('the client\'s grant', async () => (await app.$$('[data-testid="revoke"]')).length === 1);
  await (await app.$('[data-testid="revoke"]')).click();
  await app.$('[data-testid="revoke-confirm"]').waitForDisplayed({ timeout: WAIT });
  await app.$('[data-testid="revoke-confirm"]').click();
  await until('the broker confirmed the revocation', async () =>
    /confirmed by the broker/.test(await app.$('[data-testid="revocation-status"]').getText()));
  await shot('03-revoked');
  assert.equal((await introspect(renewed.access_token)).active, false);
  const after = await callFiles(renewed.access_token, dpop);
  assert.equal(after.status, 401);
  assert.match(await after.text(), /no longer active/);
});

test('a registered client the user denies gets access_denied', { timeout: 180_000 }, async () => {
  const redirectUri = `${ctx.site}/notes-cb`;
  const registered = await fetch(ctx.as.registration_endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ client_name: REGISTERED_NAME, redirect_uris: [redirectUri] }),
  });
  assert.equal(registered.status, 201);
  const client = { client_id: (await registered.json()).client_id };
  const keys = await oauth.generateKeyPair('ES256');
  const { url, state } = await authorization(client, redirectUri, keys);
  const wait = await signInAndWait(ctx.broker, url);

  await app.$('[data-testid="nav-inbox"]').click();
  await openRequest(REGISTERED_NAME, wait.code)
    .catch((e) => { throw new Error(`${e.message}\napp: ${appLog()}`); });
  assert.equal(await app.$('[data-testid="oauth-verified"]').getText(), 'registered with the broker: its name is its own claim');
  // Its id is its metadata sealed by the broker: shown shortened, whole on hover.
  assert.equal(await app.$('[data-testid="oauth-client-id"]').getAttribute('title'), client.client_id);
  assert.equal(await app.$('[data-testid="oauth-redirect"]').getText(), redirectUri);
  await shot('04-registered');
  await app.$('[data-testid="deny"]').click();
  await app.$('[data-testid="deny-reason"]').setValue('Not this one');
  await app.$('[data-testid="confirm-deny"]').click();
  await app.$('[data-testid="decision"]').waitForDisplayed({ timeout: WAIT });

  const back = await backToClient(wait.request, wait.waitUrl, redirectUri);
  assert.equal(back.searchParams.get('iss'), ctx.broker);
  assert.equal(back.searchParams.get('code'), null);
  assert.equal(await refusal(Promise.resolve().then(() => oauth.validateAuthResponse(ctx.as, client, back, state))), 'access_denied');
});
