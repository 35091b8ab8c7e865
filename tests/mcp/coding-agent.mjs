// The demo's coding agent (docs/demo.md, scenario 4): an agent on the
// official MCP SDK (@modelcontextprotocol/sdk) that reaches its tools
// through mandate-gateway under a Mandate.
//
//   node coding-agent.mjs --broker URL --gateway URL --principal ISSUER#SUBJECT \
//       --dir DIR [--mandate BIN] [--format text]
//
// It asks the user for `read_file` and `list_files` with the `mandate` CLI
// (which files the request and waits for the decision), then connects
// with the SDK's Client. Each HTTP request carries the mandate and a fresh
// proof of possession signed here, with node:crypto, as docs/agents.md
// ("From any language", step 5) describes them. It lists the project and
// reads its README under that grant. Then it tries `run_command`: the
// gateway answers 403 `insufficient_scope` with the scope the call needs,
// the agent asks the user for it (a step-up, in the app), and runs the
// command once approved, or says that it will not when the user denies.
// Progress goes to stdout, one JSON object per line, or sentences with
// `--format text`.

import { createHash, createPrivateKey, createPublicKey, randomBytes, sign } from 'node:crypto';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const run = promisify(execFile);
const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const broker = arg('broker');
const gateway = arg('gateway');
const principal = arg('principal');
const dir = arg('dir');
const mandateBin = arg('mandate', 'mandate');
const text = arg('format', 'json') === 'text';
const NAME = 'Coding Assistant';
const keyFile = join(dir, 'coding-assistant.key');
const mandateFile = join(dir, 'coding-assistant.mandate.json');

function say(step, fields = {}) {
  if (!text) {
    console.log(JSON.stringify({ scenario: 'coding', step, ...fields }));
    return;
  }
  const sentence = {
    asked: () => `asked for authority; binding code ${fields.code}`,
    approved: () => `approved: ${fields.scopes}`,
    denied: () => `denied${fields.reason ? `: ${fields.reason}` : ''}`,
    tools: () => `the gateway lists ${fields.tools.join(', ')}`,
    called: () => `called ${fields.tool}: ${fields.result}`,
    refused: () => `the gateway refused ${fields.tool} (${fields.code}); it needs ${fields.scope}`,
    'step-up': () => `asked the user for ${fields.tool}`,
    'will-not': () => `will not run ${fields.command}: the user said no`,
    done: () => 'done',
  }[step]?.() ?? step;
  console.log(`[coding] ${sentence}`);
}

const b64 = (bytes) => Buffer.from(bytes).toString('base64url');
const sha256 = (data) => createHash('sha256').update(data).digest();

/** The agent's Ed25519 key from its key file (the seed, base64url), made
 * by the CLI if there is none. */
async function loadKey() {
  if (!existsSync(keyFile)) await run(mandateBin, ['agent', 'init', '--key', keyFile]);
  const seed = Buffer.from(readFileSync(keyFile, 'utf8').trim(), 'base64url');
  // PKCS #8 for an Ed25519 seed (RFC 8410): a fixed prefix, then the seed.
  const der = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]);
  const privateKey = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  const x = createPublicKey(privateKey).export({ format: 'jwk' }).x;
  // RFC 7638: exactly these members, in this order.
  const jkt = b64(sha256(`{"crv":"Ed25519","kty":"OKP","x":"${x}"}`));
  return { privateKey, jkt };
}

/** A compact token signed with Ed25519 (docs/agents.md, Encodings). */
function token(key, header, claims) {
  const input = `${b64(JSON.stringify(header))}.${b64(JSON.stringify(claims))}`;
  return `${input}.${b64(sign(null, Buffer.from(input), key.privateKey))}`;
}

/** The chain hash: SHA-256 over the concatenated SHA-256 of each token. */
const chainHash = (chain) => b64(sha256(Buffer.concat(chain.map((t) => sha256(t)))));

/** A fetch that presents `holder.mandate` with a fresh proof of
 * possession on each request to the gateway, and keeps the body of a
 * refusal, which the SDK does not hand back. */
function mandateFetch(key, holder) {
  return async (input, init = {}) => {
    const url = String(input instanceof Request ? input.url : input);
    const method = (init.method ?? 'GET').toUpperCase();
    const headers = new Headers(init.headers);
    const { chain, binding, keys } = holder.mandate;
    headers.set('mandate-chain', chain.join(','));
    headers.set('mandate-binding', binding);
    headers.set('mandate-keys', keys.map((k) => k.x).join(','));
    headers.set('mandate-pop', token(key, { alg: 'EdDSA', typ: 'mandate-pop+jwt', kid: key.jkt }, {
      htm: method,
      htu: url.split(/[?#]/)[0],
      iat: Math.floor(Date.now() / 1000),
      jti: b64(randomBytes(16)),
      ath: chainHash(chain),
    }));
    const res = await fetch(input, { ...init, headers });
    if (res.status === 403) holder.refusal = await res.clone().json().catch(() => undefined);
    return res;
  };
}

/** Asks the user for `scopes` with the CLI, and waits for the decision:
 * the new mandate, or `undefined` when the user denies. */
async function ask(scopes, purpose, intent) {
  const args = ['agent', 'request', '--key', keyFile, '--principal', principal, '--name', NAME,
    '--purpose', purpose, '--intent', intent, '--lifetime', '3600', '--max-depth', '0',
    '--wait', '--timeout', '3600', '--out', mandateFile];
  for (const s of scopes) args.push('--scope', JSON.stringify(s));
  const child = execFile(mandateBin, args, { env: { ...process.env, MANDATE_BROKER: broker } });
  let err = '';
  child.stderr.on('data', (d) => {
    err += d;
    const code = err.match(/shows the code (\S+)/)?.[1];
    if (code && !child.announced) {
      child.announced = true;
      say('asked', { code });
    }
  });
  // 'close', not 'exit': the reason for a denial may still be in the pipe.
  const status = await new Promise((res) => child.on('close', res));
  if (status !== 0) {
    if (/denied/.test(err)) {
      say('denied', { reason: err.match(/denied the request: (.*)/)?.[1]?.trim() });
      return undefined;
    }
    throw new Error(`mandate agent request failed: ${err.trim()}`);
  }
  const mandate = JSON.parse(readFileSync(mandateFile, 'utf8'));
  say('approved', { scopes: scopes.map((s) => s.actions.join(', ')).join('; ') });
  return mandate;
}

const key = await loadKey();
const reading = [{ type: 'mcp', actions: ['read_file', 'list_files'], locations: [gateway] }];
const holder = {};
holder.mandate = await ask(reading, 'Read the project to find why the build fails', 'Fix the build');
if (!holder.mandate) process.exit(0);

const client = new Client({ name: 'mandate-coding-assistant', version: '1.0.0' });
await client.connect(new StreamableHTTPClientTransport(new URL(gateway), { fetch: mandateFetch(key, holder) }));
say('tools', { tools: (await client.listTools()).tools.map((t) => t.name).sort() });
const listing = await client.callTool({ name: 'list_files', arguments: { path: '.' } });
say('called', { tool: 'list_files', result: listing.content[0].text.split('\n').join(', ') });
const readme = await client.callTool({ name: 'read_file', arguments: { path: 'README.md' } });
say('called', { tool: 'read_file', result: readme.content[0].text.split('\n')[0] });

// Running the tests is outside the grant: the gateway says what it needs.
const command = 'make test';
try {
  await client.callTool({ name: 'run_command', arguments: { command } });
  throw new Error('the gateway ran a command outside the grant');
} catch (e) {
  const data = holder.refusal?.error?.data;
  if (data?.code !== 'gateway.insufficient_scope') throw e;
  say('refused', { tool: data.tool, code: data.code, scope: data.scope });
  say('step-up', { tool: data.tool });
  const wider = await ask([...reading, ...data.authorization_details],
    `Run \`${command}\` in the project to check the fix`, 'Fix the build');
  if (!wider) {
    say('will-not', { command });
  } else {
    holder.mandate = wider;
    const ran = await client.callTool({ name: 'run_command', arguments: { command } });
    say('called', { tool: 'run_command', result: ran.content[0].text });
  }
}
await client.close();
say('done');
