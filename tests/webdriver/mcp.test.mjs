// The MCP gateway with an MCP client and server that nobody here wrote:
// the official SDK's (@modelcontextprotocol/sdk) Client, with its own
// OAuth support, calls tests/mcp/server.mjs (the SDK's server) through
// mandate-gateway. The client discovers the gateway's resource metadata
// from its 401, registers with the broker (RFC 7591), and sends the user
// to authorize; the user signs in at the test provider and approves the
// request in the real app (WebKitGTK, over WebDriver). The client lists
// the tools (only the granted ones), calls one, and gets
// `insufficient_scope` for run_command; the SDK authorizes again with the
// challenge's scope, the user approves the step-up in the app (which
// names the tool and the server), and the call goes through.
//
// The SDK's client speaks OAuth with bearer tokens; the gateway takes
// DPoP-bound tokens only. The ```js mcp-dpop-fetch``` block of
// docs/mcp.md, read out of that page, is what a client without DPoP adds:
// it signs an ES256 DPoP proof for the token endpoint and each MCP call,
// sends the token as `DPoP`, and shows the SDK the gateway's `DPoP`
// challenges in the `Bearer` form it reads.
//
//   scripts/with-keyring.sh xvfb-run -a node --test tests/webdriver/mcp.test.mjs
//
// Screens are saved under target/e2e-shots/ as mcp-*.png.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { ROOT, WAIT, approveFor, bin, closeAll, freePort, matchCode, openSession, rowIn, start, startBroker, startProvider, until, screenshot } from './harness.mjs';
import { backToClient, signInAndWait } from './codeflow.mjs';

const SHOTS = join(ROOT, 'target', 'e2e-shots');
const CLIENT_NAME = 'Coding agent (MCP SDK)';
const REDIRECT = 'http://127.0.0.1:9/callback';

const ctx = {};
let app;
const shot = (name) => screenshot(app, join(SHOTS, `mcp-${name}.png`));
const appLog = () => ctx.driver.output.split('\n').filter((l) => !l.includes('mandate_app::ipc')).slice(-40).join('\n');

// The DPoP adapter, out of docs/mcp.md, written next to this file (so
// that it finds jose) each run; git ignores it.
const doc = readFileSync(join(ROOT, 'docs/mcp.md'), 'utf8');
const block = doc.match(/```js mcp-dpop-fetch\n([\s\S]*?)\n```/)?.[1];
assert.ok(block, 'docs/mcp.md has a ```js mcp-dpop-fetch``` block');
const ADAPTER = join(ROOT, 'tests/webdriver/.mcp-dpop-fetch.mjs');
writeFileSync(ADAPTER, block);
const { dpopFetch } = await import(ADAPTER);

/** The SDK's OAuth client provider, kept in memory. It hands the SDK no
 * refresh token: SDK 1.32 answers `insufficient_scope` by refreshing
 * first, and a refresh never widens a grant (docs/mcp.md, Step-up). */
function provider() {
  const kept = { redirects: [], states: [] };
  return {
    kept,
    get redirectUrl() { return REDIRECT; },
    get clientMetadata() {
      return {
        client_name: CLIENT_NAME,
        redirect_uris: [REDIRECT],
        token_endpoint_auth_method: 'none',
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        scope: 'mcp:read_file mcp:list_files',
      };
    },
    state: () => { const s = randomUUID(); kept.states.push(s); return s; },
    clientInformation: () => kept.client,
    saveClientInformation: (c) => { kept.client = c; },
    tokens: () => kept.tokens && { ...kept.tokens, refresh_token: undefined },
    saveTokens: (t) => { kept.tokens = t; },
    redirectToAuthorization: (url) => { kept.redirects.push(url); },
    saveCodeVerifier: (v) => { kept.verifier = v; },
    codeVerifier: () => kept.verifier,
  };
}

/** Walks the person's side of an authorization the SDK asked for, and
 * approves it in the app after comparing the binding code; returns the
 * code the client gets back, and the app's scope labels. */
async function approveInApp(url, check) {
  const wait = await signInAndWait(ctx.broker, url);
  await app.$('[data-testid="nav-inbox"]').click();
  await (await rowIn(app, CLIENT_NAME)).click();
  await app.$('[data-testid="oauth-client"]').waitForDisplayed({ timeout: WAIT });
  await matchCode(app, wait.code);
  assert.equal(await app.$('[data-testid="oauth-resource"]').getText(), ctx.gateway);
  const scopes = await app.$$('[data-testid="scope"]').map((s) => s.getText());
  await check(scopes);
  await approveFor(app);
  await app.$('[data-testid="decision"]').waitForDisplayed({ timeout: WAIT });
  const back = await backToClient(wait.request, wait.waitUrl, REDIRECT);
  // The client checks iss (RFC 9207) and its state before using the code.
  assert.equal(back.searchParams.get('iss'), ctx.broker);
  assert.equal(back.searchParams.get('state'), url.searchParams.get('state'));
  return back.searchParams.get('code');
}

/** The upstream's record of the JSON-RPC messages it received. */
const upstreamCalls = async () => (await fetch(ctx.upstream.replace(/\/mcp$/, '/calls'))).json();

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  ctx.dir = mkdtempSync(join(tmpdir(), 'mandate-mcp-'));
  const project = join(ctx.dir, 'project');
  mkdirSync(project);
  writeFileSync(join(project, 'README.md'), '# The project\n');
  const upstream = start(process.execPath, [join(ROOT, 'tests/mcp/server.mjs'), '--port', '0', '--root', project]);
  ctx.upstream = await until('the MCP server', () => upstream.output.match(/listening on (\S+)/)?.[1]);
  const port = await freePort();
  ctx.gateway = `http://127.0.0.1:${port}/mcp`;
  await startProvider(ctx);
  // The gateway witnesses each call with a key of its own, which the
  // broker trusts for the gateway's resource (docs/mcp.md).
  const witnessKey = join(ctx.dir, 'gateway-witness.key');
  ctx.witness = execFileSync(bin('mandate-gateway'), ['--witness-key', witnessKey, '--print-witness'], { timeout: 30_000 }).toString().trim();
  await startBroker(ctx, [
    // The coding agent asks for run_command again right after a denial:
    // no cooldown here (the broker's tests cover it).
    '--denial-cooldown', '0',
    '--oauth-sign-in', `${ctx.issuer}=mandate-broker`,
    '--oauth-resource', ctx.gateway,
    '--witness', `${ctx.gateway}=${ctx.witness}`,
  ], { RUST_LOG: 'warn' });
  const gateway = start(bin('mandate-gateway'), [
    '--listen', `127.0.0.1:${port}`, '--upstream', ctx.upstream, '--broker', ctx.broker,
    '--witness-key', witnessKey,
  ], { RUST_LOG: 'warn' });
  await until('the gateway', () => gateway.output.includes(`listening on ${ctx.gateway}`));
  ctx.tokenEndpoint = (await (await fetch(`${ctx.broker}/.well-known/oauth-authorization-server`)).json()).token_endpoint;
  const opened = await openSession({
    MANDATE_ISSUER: ctx.issuer,
    MANDATE_BROKER: ctx.broker,
    MANDATE_DATA_DIR: join(ctx.dir, 'app'),
    MANDATE_KEYRING_SERVICE: `mandate-mcp-${process.pid}`,
    MANDATE_BROWSER: `${process.execPath} ${join(ROOT, 'tests/idp/browse.mjs')} --user alice`,
    RUST_LOG: 'warn',
  });
  app = opened.session;
  ctx.driver = opened.driver;
});

after(async () => {
  await closeAll(app, ctx.dir);
});

test('the MCP SDK\'s client authorizes through the app, calls a granted tool, and steps up for another', { timeout: 300_000 }, async () => {
  await app.$('[data-testid="sign-in"]').waitForDisplayed({ timeout: WAIT });
  await app.$('[data-testid="sign-in"]').click();
  await app.$('[data-testid="pending-count"]').waitForDisplayed({ timeout: WAIT });

  const auth = provider();
  const fetchWithDpop = await dpopFetch(ctx.tokenEndpoint, ctx.gateway);
  const transport = () => new StreamableHTTPClientTransport(new URL(ctx.gateway), { authProvider: auth, fetch: fetchWithDpop });
  const client = new Client({ name: 'mandate-mcp-test', version: '1.0.0' });

  // First contact: 401, discovery, registration, and a redirect to the
  // broker's authorization endpoint.
  await assert.rejects(client.connect(transport()), UnauthorizedError);
  assert.equal(auth.kept.redirects.length, 1);
  const first = auth.kept.redirects[0];
  assert.equal(first.origin + first.pathname, `${ctx.broker}/oauth/authorize`);
  assert.equal(first.searchParams.get('resource'), ctx.gateway);
  assert.ok(auth.kept.client.client_id.startsWith('mandate-client.'), auth.kept.client.client_id);

  const code = await approveInApp(first, async (scopes) => {
    assert.equal(scopes.length, 1, scopes.join('\n'));
    assert.match(scopes[0], /MCP tools/);
    assert.match(scopes[0], /read_file/);
    assert.match(scopes[0], /list_files/);
    assert.doesNotMatch(scopes[0], /run_command/);
    // No client has listed the tools through the gateway yet: nothing
    // is said of them, and their risk is unknown.
    assert.doesNotMatch(scopes[0], /The server says/);
    await shot('01-request');
  }).catch((e) => { throw new Error(`${e.message}\napp: ${appLog()}`); });
  const connecting = transport();
  await connecting.finishAuth(code);
  assert.equal(auth.kept.tokens.token_type.toLowerCase(), 'dpop');
  await client.connect(connecting);

  // Only the granted tools are listed, and the granted one runs.
  const listed = (await client.listTools()).tools.map((t) => t.name).sort();
  assert.deepEqual(listed, ['list_files', 'read_file']);
  const read = await client.callTool({ name: 'read_file', arguments: { path: 'README.md' } });
  assert.equal(read.content[0].text, '# The project\n');

  // Another tool: insufficient_scope. The SDK authorizes again, for the
  // scope the challenge names.
  await assert.rejects(client.callTool({ name: 'run_command', arguments: { command: 'make test' } }), UnauthorizedError);
  assert.equal(auth.kept.redirects.length, 2);
  const stepUp = auth.kept.redirects[1];
  assert.deepEqual(stepUp.searchParams.get('scope').split(' ').sort(), ['mcp:list_files', 'mcp:read_file', 'mcp:run_command']);
  assert.ok(!(await upstreamCalls()).some((c) => c.name === 'run_command'), 'the refused call reached the upstream');
  // The user sees which tool, on which server.
  const stepCode = await approveInApp(stepUp, async (scopes) => {
    assert.match(scopes.join('\n'), /run_command/);
    // What the server said of its tools in the listing, relayed and signed
    // by the gateway, is shown as the server's claim, and sets the risk.
    const says = (tool) => app.$(`[data-testid^="says-"][data-testid$="-${tool}"]`).getText();
    const run = await says('run_command');
    assert.match(run, /The server says \(“Run a command”\)/);
    assert.match(run, /may delete or overwrite/);
    assert.match(run, /Mandate cannot check it/);
    assert.match(await says('read_file'), /only reads/);
    assert.match(scopes.join('\n'), /cannot be undone/);
    await shot('02-step-up');
  }).catch((e) => { throw new Error(`${e.message}\napp: ${appLog()}`); });
  await client.close();
  const again = transport();
  await again.finishAuth(stepCode);
  const client2 = new Client({ name: 'mandate-mcp-test', version: '1.0.0' });
  await client2.connect(again);
  const ran = await client2.callTool({ name: 'run_command', arguments: { command: 'make test' } });
  assert.equal(ran.content[0].text, 'ran: make test');
  assert.deepEqual((await client2.listTools()).tools.map((t) => t.name).sort(), ['list_files', 'read_file', 'run_command']);
  // The client's credentials never reached the upstream.
  for (const call of await upstreamCalls()) {
    assert.equal(call.authorization, null, JSON.stringify(call));
    assert.equal(call.dpop, null, JSON.stringify(call));
  }
  await client2.close();

  // The gateway's own receipts of those calls are in the app's Activity,
  // checked there and marked as witnessed: the refused call too.
  await app.$('[data-testid="nav-activity"]').click();
  const witnessed = async () => {
    const rows = await app.$$('[data-testid="activity-row"]');
    const texts = [];
    for (const r of rows) {
      if (await r.$('[data-testid="witnessed"]').isExisting()) texts.push(await r.getText());
    }
    return texts;
  };
  const calls = await until('the witnessed calls in Activity', async () => {
    const texts = await witnessed();
    return texts.some((t) => /Called the tool run_command/.test(t) && /succeeded/.test(t)) ? texts : false;
  }, 60_000).catch((e) => { throw new Error(`${e.message}
app: ${appLog()}`); });
  assert.ok(calls.some((t) => /Called the tool read_file/.test(t) && /succeeded/.test(t)), calls.join('\n'));
  assert.ok(calls.some((t) => /Called the tool run_command/.test(t) && /refused/.test(t)), calls.join('\n'));
  assert.ok(calls.every((t) => t.includes('✓') && !t.includes('✗')), calls.join('\n'));
  const row = await until('the run_command row', async () => {
    for (const r of await app.$$('[data-testid="activity-row"]')) {
      const text = await r.getText();
      if (/Called the tool run_command/.test(text) && /succeeded/.test(text)) return r;
    }
    return false;
  });
  await row.click();
  const witness = await app.$('[data-testid="witness"]');
  await witness.waitForDisplayed({ timeout: WAIT });
  assert.match(await witness.getText(), new RegExp(ctx.witness.slice(0, 12)));
  const steps = await app.$$('[data-testid="step"]').map((s) => s.getAttribute('data-step'));
  assert.deepEqual(steps, ['intent', 'interpretation', 'action']);
  await shot('03-witnessed');
});

/** The coding agent's progress lines so far. */
const steps = (agent) => agent.stdoutText.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));

/** Waits for the coding agent's `step` (the `nth` of its kind). */
const step = (agent, name, nth = 1) => until(`the coding agent's ${name}`, () =>
  steps(agent).filter((s) => s.step === name)[nth - 1], 60_000)
  .catch((e) => { throw new Error(`${e.message}\nagent: ${agent.output.slice(-3000)}`); });

/** Decides the pending request of the coding agent whose detail holds
 * `purpose`, which the agent's `asked` step showed the code of: approves
 * it, or denies it with `reason`. */
async function decide(asked, purpose, reason) {
  await app.$('[data-testid="nav-inbox"]').click();
  await (await rowIn(app, 'Coding Assistant')).click();
  const detail = await app.$('[data-testid="detail"]');
  await until(`the request to ${purpose}`, async () => (await detail.getText()).includes(purpose));
  if (reason === undefined) {
    await matchCode(app, asked.code);
    await approveFor(app);
  } else {
    await app.$('[data-testid="deny"]').click();
    await app.$('[data-testid="deny-reason"]').setValue(reason);
    await app.$('[data-testid="confirm-deny"]').click();
  }
  await app.$('[data-testid="decision"]').waitForDisplayed({ timeout: WAIT });
}

test('the demo\'s coding agent, on the SDK with a Mandate, steps up for run_command: denied, it stops; approved, it runs', { timeout: 300_000 }, async () => {
  const agentDir = join(ctx.dir, 'coder');
  mkdirSync(agentDir);
  const coder = () => start(process.execPath, [join(ROOT, 'tests/mcp/coding-agent.mjs'),
    '--broker', ctx.broker, '--gateway', ctx.gateway, '--principal', ctx.principal,
    '--dir', agentDir, '--mandate', bin('mandate')]);

  const commands = async () => (await upstreamCalls()).filter((c) => c.name === 'run_command').length;
  const before = await commands();

  // Denied: it reads under its grant, is refused run_command, asks, and
  // stops without running it.
  const first = coder();
  await decide(await step(first, 'asked'), 'Read the project');
  assert.deepEqual((await step(first, 'tools')).tools, ['list_files', 'read_file']);
  assert.equal((await step(first, 'called', 2)).result, '# The project');
  const refused = await step(first, 'refused');
  assert.equal(refused.tool, 'run_command');
  await decide(await step(first, 'asked', 2), 'Run `make test`', 'Not now');
  await step(first, 'will-not');
  await step(first, 'done');
  assert.equal(await commands(), before, 'no command reached the upstream');

  // Approved: the same, and the command runs.
  const second = coder();
  await decide(await step(second, 'asked'), 'Read the project');
  await decide(await step(second, 'asked', 2), 'Run `make test`');
  const ran = await until('run_command', () => steps(second).find((s) => s.step === 'called' && s.tool === 'run_command'), 60_000);
  assert.equal(ran.result, 'ran: make test');
  await step(second, 'done');
  assert.equal(await commands(), before + 1);
  await shot('03-coding-agent');
});

