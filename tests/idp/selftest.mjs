#!/usr/bin/env node
// Self-test for the test IdP: starts server.mjs (by PID), signs in headlessly with
// signin.mjs and checks the tokens. Plain script: prints "ok - ..." per check and
// exits non-zero on the first failure. The servers it starts are killed by PID in
// every path (success, failure, timeout, SIGINT/SIGTERM).
//
//   node selftest.mjs        (or: npm test)

import { spawn, execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';

const HERE = dirname(fileURLToPath(import.meta.url));
const OVERALL_TIMEOUT_MS = 90_000;
const children = new Set();

function killAll() {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) {
      try { process.kill(child.pid, 'SIGKILL'); } catch { /* already gone */ }
    }
  }
}
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => { process.stderr.write(`selftest: ${sig}\n`); killAll(); process.exit(130); });
}
setTimeout(() => {
  process.stderr.write(`selftest: FAILED: overall timeout ${OVERALL_TIMEOUT_MS / 1000}s\n`);
  killAll();
  process.exit(1);
}, OVERALL_TIMEOUT_MS).unref();

let passed = 0;
function ok(cond, what, detail = '') {
  if (!cond) throw new Error(`${what}${detail ? `: ${detail}` : ''}`);
  passed += 1;
  process.stdout.write(`ok ${passed} - ${what}\n`);
}

async function startServer(extraArgs = []) {
  const child = spawn(process.execPath, [join(HERE, 'server.mjs'), '--port', '0', ...extraArgs], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const issuer = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`server did not print its issuer in 10s; stderr:\n${stderr}`)), 10_000);
    child.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/^issuer (http:\/\/127\.0\.0\.1:\d+)\n/);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`server exited early (${code}); stderr:\n${stderr}`)); });
  });
  return { child, issuer, stderr: () => stderr };
}

function stopServer(server, timeoutMs = 5000) {
  const { child } = server;
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) { resolve({ code: child.exitCode, signal: child.signalCode }); return; }
    const timer = setTimeout(() => { try { process.kill(child.pid, 'SIGKILL'); } catch { /* gone */ } }, timeoutMs);
    child.once('exit', (code, signal) => { clearTimeout(timer); children.delete(child); resolve({ code, signal }); });
    process.kill(child.pid, 'SIGTERM');
  });
}

function signin(issuer, user, extra = []) {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(HERE, 'signin.mjs'), '--issuer', issuer, '--user', user, ...extra],
      { timeout: 30_000, killSignal: 'SIGKILL' },
      (err, stdout, stderr) => resolve({ code: err ? (err.code ?? err.signal) : 0, stdout, stderr }));
  });
}

function decode(jwt) {
  return JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url'));
}

function kidOf(jwt) {
  return JSON.parse(Buffer.from(jwt.split('.')[0], 'base64url')).kid;
}

async function publishedKids(issuer) {
  const res = await fetch(`${issuer}/jwks`, { signal: AbortSignal.timeout(10_000) });
  return (await res.json()).keys.map((k) => k.kid);
}

async function signinOk(issuer, user, extra = []) {
  const r = await signin(issuer, user, extra);
  ok(r.code === 0, `signin ${user} ${extra.join(' ')}`.trim(), `exit ${r.code}: ${r.stderr}`);
  const lines = r.stdout.trim().split('\n');
  ok(lines.length === 1, 'signin prints exactly one stdout line', JSON.stringify(r.stdout));
  return JSON.parse(lines[0]);
}

async function post(url, form) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(form).toString(),
    signal: AbortSignal.timeout(10_000),
  });
  return { status: res.status, json: await res.json() };
}

async function main() {
  const server = await startServer();
  const { issuer } = server;
  ok(/^http:\/\/127\.0\.0\.1:\d+$/.test(issuer), `server printed issuer ${issuer}`);

  const meta = await (await fetch(`${issuer}/.well-known/openid-configuration`, { signal: AbortSignal.timeout(10_000) })).json();
  ok(meta.issuer === issuer, 'discovery issuer matches');
  ok(meta.id_token_signing_alg_values_supported?.includes('RS256'), 'discovery advertises RS256 ID tokens', JSON.stringify(meta.id_token_signing_alg_values_supported));
  ok(meta.code_challenge_methods_supported?.includes('S256'), 'discovery advertises PKCE S256');
  ok(meta.grant_types_supported?.includes('refresh_token'), 'discovery advertises refresh_token grant');

  // alice on mandate-desktop
  const alice = await signinOk(issuer, 'alice');
  const a = decode(alice.id_token);
  ok(a.iss === issuer, 'alice id_token iss', a.iss);
  ok(a.aud === 'mandate-desktop', 'alice id_token aud = mandate-desktop', JSON.stringify(a.aud));
  ok(a.sub === 'alice', 'alice id_token sub = alice', a.sub);
  ok(a.email === 'alice@example.test' && a.email_verified === true, 'alice id_token email + email_verified', JSON.stringify(a));
  ok(a.name === 'Alice Example', 'alice id_token name', a.name);
  ok(a.exp - a.iat === 3600, 'id_token lifetime 3600 s by default', String(a.exp - a.iat));
  ok(typeof alice.refresh_token === 'string' && alice.refresh_token.length > 0, 'alice got a refresh_token');
  ok(typeof alice.access_token === 'string' && alice.expires_in > 0, 'alice got an access_token with expires_in');

  // bob
  const bob = await signinOk(issuer, 'bob');
  const b = decode(bob.id_token);
  ok(b.sub === 'bob' && b.email === 'bob@example.test' && b.name === 'Bob Example', 'bob id_token claims', JSON.stringify(b));
  ok(b.aud === 'mandate-desktop' && b.iss === issuer, 'bob id_token iss/aud');
  ok(typeof bob.refresh_token === 'string', 'bob got a refresh_token');

  // second audience
  const other = await signinOk(issuer, 'alice', ['--client', 'mandate-test']);
  const o = decode(other.id_token);
  ok(o.aud === 'mandate-test' && o.sub === 'alice', '--client mandate-test gives aud mandate-test', JSON.stringify(o.aud));

  // userinfo with the access token
  const ui = await fetch(meta.userinfo_endpoint, { headers: { authorization: `Bearer ${alice.access_token}` }, signal: AbortSignal.timeout(10_000) });
  const uiJson = await ui.json();
  ok(ui.status === 200 && uiJson.sub === 'alice' && uiJson.email === 'alice@example.test', 'userinfo returns alice', JSON.stringify(uiJson));

  // refresh-token grant
  const r1 = await post(meta.token_endpoint, { grant_type: 'refresh_token', refresh_token: alice.refresh_token, client_id: 'mandate-desktop' });
  ok(r1.status === 200, 'refresh_token grant succeeds', JSON.stringify(r1.json));
  const ra = decode(r1.json.id_token);
  ok(ra.sub === 'alice' && ra.aud === 'mandate-desktop' && ra.iss === issuer && ra.email === 'alice@example.test', 'refreshed id_token claims', JSON.stringify(ra));
  // Not "a different string": a refresh in the same second as the sign-in can yield a
  // byte-identical ID token (same claims, same iat). What matters is that it is current.
  ok(ra.iat >= a.iat && ra.exp - ra.iat === 3600,
    'refreshed id_token is current (iat not before the sign-in, full lifetime)', JSON.stringify({ a, ra }));
  ok(r1.json.refresh_token && r1.json.refresh_token !== alice.refresh_token, 'refresh token is rotated (public client)');
  const r2 = await post(meta.token_endpoint, { grant_type: 'refresh_token', refresh_token: r1.json.refresh_token, client_id: 'mandate-desktop' });
  ok(r2.status === 200, 'rotated refresh token works', JSON.stringify(r2.json));
  const replay = await post(meta.token_endpoint, { grant_type: 'refresh_token', refresh_token: alice.refresh_token, client_id: 'mandate-desktop' });
  ok(replay.status === 400 && replay.json.error === 'invalid_grant', 'replayed (rotated-out) refresh token is rejected', JSON.stringify(replay.json));
  const wrongClient = await post(meta.token_endpoint, { grant_type: 'refresh_token', refresh_token: bob.refresh_token, client_id: 'mandate-test' });
  ok(wrongClient.status === 400 && wrongClient.json.error === 'invalid_grant', 'refresh token bound to its client', JSON.stringify(wrongClient.json));

  // no offline_access -> no refresh token
  const noOffline = await signinOk(issuer, 'bob', ['--scope', 'openid email profile']);
  ok(noOffline.refresh_token === undefined, 'no refresh_token without offline_access');
  ok(decode(noOffline.id_token).email === 'bob@example.test', 'email still in id_token without offline_access');

  // offline_access without prompt=consent is dropped by default (OIDC Core §11)
  const noPrompt = await signinOk(issuer, 'alice', ['--no-consent-prompt']);
  ok(noPrompt.refresh_token === undefined && !noPrompt.scope.split(' ').includes('offline_access'),
    'offline_access without prompt=consent is dropped (strict default)', noPrompt.scope);

  // unknown user is rejected
  const mallory = await signin(issuer, 'mallory');
  ok(mallory.code !== 0 && /unknown user/.test(mallory.stderr), 'unknown user mallory is rejected', mallory.stderr);

  // clean shutdown
  const stopped = await stopServer(server);
  ok(stopped.code === 0, 'server exits 0 on SIGTERM', JSON.stringify(stopped));

  // --id-token-ttl
  const short = await startServer(['--id-token-ttl', '5', '--offline-access-without-consent-prompt']);
  try {
    const t = await signinOk(short.issuer, 'carol', ['--scope', 'openid email']);
    const c = decode(t.id_token);
    ok(c.exp - c.iat === 5, '--id-token-ttl 5 gives a 5 s id_token', String(c.exp - c.iat));
    ok(c.sub === 'carol' && c.email === 'carol@example.test' && c.name === undefined, 'scope without profile omits name', JSON.stringify(c));
    const lenient = await signinOk(short.issuer, 'carol', ['--no-consent-prompt']);
    ok(typeof lenient.refresh_token === 'string', '--offline-access-without-consent-prompt issues a refresh token without prompt=consent', lenient.scope);
  } finally {
    const s2 = await stopServer(short);
    ok(s2.code === 0, 'second server exits 0 on SIGTERM', JSON.stringify(s2));
  }

  // --keys-file: the keys survive a restart; --rotate-key puts a new one first.
  const dir = mkdtempSync(join(tmpdir(), 'idp-selftest-'));
  try {
    const file = join(dir, 'keys.json');
    const first = await startServer(['--keys-file', file]);
    const port = new URL(first.issuer).port;
    const fileKids = () => JSON.parse(readFileSync(file, 'utf8')).keys.map((k) => k.kid);
    const [kid1] = fileKids();
    ok(fileKids().length === 1 && (statSync(file).mode & 0o777) === 0o600, '--keys-file creates a 0600 file with one key');
    ok(JSON.stringify(await publishedKids(first.issuer)) === JSON.stringify([kid1]), '/jwks publishes the file\'s key');
    const before = await signinOk(first.issuer, 'alice', ['--scope', 'openid']);
    ok(kidOf(before.id_token) === kid1, 'ID tokens are signed with the file\'s key', kidOf(before.id_token));
    await stopServer(first);

    const again = await startServer(['--keys-file', file, '--port', port]);
    ok(again.issuer === first.issuer, 'a restart on the same port is the same issuer', again.issuer);
    ok(JSON.stringify(await publishedKids(again.issuer)) === JSON.stringify([kid1]), 'a restart with the same file keeps the key');
    const after = await signinOk(again.issuer, 'alice', ['--scope', 'openid']);
    ok(kidOf(after.id_token) === kid1, 'and signs with it', kidOf(after.id_token));
    await stopServer(again);

    const rotated = await startServer(['--keys-file', file, '--port', port, '--rotate-key']);
    const [kid2, old] = fileKids();
    ok(kid2 !== kid1 && old === kid1 && fileKids().length === 2, '--rotate-key puts a new key first in the file and keeps the old one', JSON.stringify(fileKids()));
    ok(JSON.stringify(await publishedKids(rotated.issuer)) === JSON.stringify([kid2, kid1]), 'both keys are published after a rotation');
    const newer = await signinOk(rotated.issuer, 'bob', ['--scope', 'openid']);
    ok(kidOf(newer.id_token) === kid2, 'the new key signs after a rotation', kidOf(newer.id_token));
    const s3 = await stopServer(rotated);
    ok(s3.code === 0, 'rotated server exits 0 on SIGTERM', JSON.stringify(s3));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

try {
  await main();
  process.stdout.write(`# all ${passed} checks passed\n`);
  killAll();
  process.exit(0);
} catch (err) {
  process.stderr.write(`selftest: FAILED after ${passed} passing checks: ${err.stack || err}\n`);
  killAll();
  process.exit(1);
}
