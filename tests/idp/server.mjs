#!/usr/bin/env node
// A real OpenID Provider (panva/oidc-provider v9) for Mandate tests and local runs.
//
//   node server.mjs [--port N] [--id-token-ttl SECONDS] [--offline-access-without-consent-prompt]
//                   [--keys-file PATH [--rotate-key]]
//
// Environment fallbacks: IDP_PORT, IDP_ID_TOKEN_TTL, IDP_OFFLINE_ACCESS_WITHOUT_CONSENT_PROMPT=1,
// IDP_KEYS_FILE.
// Binds to 127.0.0.1 only. Once listening it prints exactly one line to stdout,
//   issuer http://127.0.0.1:PORT
// and logs everything else to stderr. Exits cleanly on SIGTERM / SIGINT.
// Everything (keys, sessions, grants, tokens) lives in memory and is lost on exit, except the
// signing keys when --keys-file names a JWKS file: it is created on first use and loaded on
// every start, so a restart on the same port is the same provider with the same keys.
// --rotate-key puts a fresh key first in that file (it signs from then on) and keeps the
// others published.

import { createServer } from 'node:http';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync, renameSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parse as parseQuery } from 'node:querystring';

// oidc-provider writes its development warnings with console.*; keep stdout for the
// single "issuer ..." line only.
// The interaction-submit body is read by the request handler below (to reject unknown
// users) and handed over as req.body; oidc-provider warns once about that, on purpose.
console.log = console.error;
console.info = console.error;
console.warn = (...a) => {
  if (!String(a[0]).includes('already parsed request body detected')) console.error(...a);
};

function die(msg) {
  process.stderr.write(`idp: ${msg}\n`);
  process.exit(2);
}

function intOption(value, name, { min = 0, max = Number.MAX_SAFE_INTEGER } = {}) {
  if (!/^\d+$/.test(String(value))) die(`${name} must be a non-negative integer, got ${JSON.stringify(value)}`);
  const n = Number(value);
  if (n < min || n > max) die(`${name} must be between ${min} and ${max}, got ${n}`);
  return n;
}

let args;
try {
  ({ values: args } = parseArgs({
    options: {
      port: { type: 'string' },
      'id-token-ttl': { type: 'string' },
      'offline-access-without-consent-prompt': { type: 'boolean' },
      'keys-file': { type: 'string' },
      'rotate-key': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  }));
} catch (err) {
  die(err.message);
}
if (args.help) {
  process.stderr.write('usage: node server.mjs [--port N (0 = ephemeral, default)] [--id-token-ttl SECONDS (default 3600)]\n'
    + '                      [--offline-access-without-consent-prompt] [--keys-file PATH [--rotate-key]]\n');
  process.exit(0);
}

const PORT = intOption(args.port ?? process.env.IDP_PORT ?? '0', '--port', { max: 65535 });
const ID_TOKEN_TTL = intOption(args['id-token-ttl'] ?? process.env.IDP_ID_TOKEN_TTL ?? '3600', '--id-token-ttl', { min: 1 });
// oidc-provider follows OIDC Core §11 strictly: offline_access is silently dropped from
// an authorization request (so no refresh token) unless its prompt includes "consent".
// With this option, a GET /auth request asking for offline_access without any prompt
// is treated as if it carried prompt=consent (what Keycloak/Auth0-style IdPs tolerate).
const OFFLINE_WITHOUT_PROMPT = Boolean(args['offline-access-without-consent-prompt'])
  || process.env.IDP_OFFLINE_ACCESS_WITHOUT_CONSENT_PROMPT === '1';
const KEYS_FILE = args['keys-file'] ?? process.env.IDP_KEYS_FILE;
const ROTATE_KEY = Boolean(args['rotate-key']);
if (KEYS_FILE === '') die('--keys-file must name a file');
if (ROTATE_KEY && !KEYS_FILE) die('--rotate-key needs --keys-file');

// The RS256 signing keys: the first signs, all are published at /jwks. Without
// --keys-file, one key generated at startup, in memory only.
function newSigningJwk() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    ...privateKey.export({ format: 'jwk' }),
    kid: `idp-${randomBytes(6).toString('hex')}`,
    alg: 'RS256',
    use: 'sig',
  };
}

// The keys in `path`, a JWKS of private RSA keys; `null` when there is no such file.
function readKeysFile(path) {
  let text;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if (err.code === 'ENOENT') return null;
    die(`--keys-file ${path}: ${err.message}`);
  }
  let keys;
  try {
    ({ keys } = JSON.parse(text));
  } catch (err) {
    die(`--keys-file ${path}: not JSON: ${err.message}`);
  }
  if (!Array.isArray(keys) || keys.length === 0) die(`--keys-file ${path}: no "keys" array, or it is empty`);
  const kids = new Set();
  for (const k of keys) {
    if (k?.kty !== 'RSA' || typeof k.d !== 'string' || typeof k.kid !== 'string' || k.kid === '') {
      die(`--keys-file ${path}: every key must be a private RSA JWK with a kid`);
    }
    if (kids.has(k.kid)) die(`--keys-file ${path}: kid ${JSON.stringify(k.kid)} appears twice`);
    kids.add(k.kid);
  }
  return keys.map((k) => ({ ...k, alg: 'RS256', use: 'sig' }));
}

// Writes the keys to `path` (mode 0600) through a temporary file, so that a reader never
// sees half a file.
function writeKeysFile(path, keys) {
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, `${JSON.stringify({ keys }, null, 2)}\n`, { mode: 0o600 });
    renameSync(tmp, path);
  } catch (err) {
    die(`--keys-file ${path}: ${err.message}`);
  }
}

let signingKeys;
if (KEYS_FILE) {
  signingKeys = readKeysFile(KEYS_FILE);
  if (signingKeys === null || ROTATE_KEY) {
    signingKeys = [newSigningJwk(), ...(signingKeys ?? [])];
    writeKeysFile(KEYS_FILE, signingKeys);
  }
} else {
  signingKeys = [newSigningJwk()];
}

// Imported after argument parsing and the keys file so that usage errors are not mixed
// with its warnings.
const { default: Provider } = await import('oidc-provider');

// ---------------------------------------------------------------------------
// Accounts: a static in-memory store. The devInteractions login form accepts any
// password; the login name becomes the account id (= `sub`). Unknown login names
// are rejected before they reach the provider (see the request handler below).
const USERS = {
  alice: { email: 'alice@example.test', name: 'Alice Example' },
  bob: { email: 'bob@example.test', name: 'Bob Example' },
  carol: { email: 'carol@example.test', name: 'Carol Example' },
};

async function findAccount(_ctx, id) {
  const user = Object.hasOwn(USERS, id) ? USERS[id] : undefined;
  if (!user) return undefined;
  return {
    accountId: id,
    // oidc-provider filters these by the granted scopes/claims.
    async claims() {
      return {
        sub: id,
        email: user.email,
        email_verified: true,
        name: user.name,
      };
    },
  };
}

// ---------------------------------------------------------------------------
// Clients: native public clients (no secret, PKCE S256 required). A loopback
// redirect URI registered without a port matches any port (RFC 8252 §7.3).
function nativeClient(clientId, redirectUri = 'http://127.0.0.1/callback') {
  return {
    client_id: clientId,
    application_type: 'native',
    token_endpoint_auth_method: 'none',
    redirect_uris: [redirectUri],
    response_types: ['code'],
    grant_types: ['authorization_code', 'refresh_token'],
    id_token_signed_response_alg: 'RS256',
  };
}

// ---------------------------------------------------------------------------
// Bind first (port 0 = ephemeral) so that the issuer can carry the real port.
const server = createServer();
server.on('error', (err) => die(`listen failed: ${err.message}`));
await new Promise((resolve) => server.listen(PORT, '127.0.0.1', resolve));
const { port } = server.address();
const ISSUER = `http://127.0.0.1:${port}`;

const provider = new Provider(ISSUER, {
  // mandate-broker: the broker's own sign-in, for the OAuth code flow
  // (docs/oauth.md), back to its /oauth/callback.
  clients: [
    nativeClient('mandate-desktop'),
    nativeClient('mandate-test'),
    nativeClient('mandate-broker', 'http://127.0.0.1/oauth/callback'),
  ],
  findAccount,
  jwks: { keys: signingKeys },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
  },
  // Put the scope-derived claims (email, name) into the ID token even though an
  // access token is issued as well.
  conformIdTokenClaims: false,
  scopes: ['openid', 'offline_access', 'email', 'profile'],
  enabledJWA: {
    idTokenSigningAlgValues: ['RS256'],
  },
  pkce: {
    required: () => true, // only S256 is supported by default
  },
  features: {
    devInteractions: { enabled: true },
    revocation: { enabled: true },
  },
  // Issue a refresh token whenever the client may use the refresh_token grant and
  // offline_access survived in the granted scope (same as the default, explicit here).
  async issueRefreshToken(_ctx, client, code) {
    return client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access');
  },
  cookies: {
    keys: [randomBytes(32).toString('base64url')],
  },
  ttl: {
    AccessToken: 3600,
    AuthorizationCode: 60,
    IdToken: ID_TOKEN_TTL,
    Interaction: 600,
    Session: 24 * 3600,
    Grant: 24 * 3600,
    RefreshToken: 24 * 3600,
  },
  async renderError(ctx, out) {
    ctx.type = 'json';
    ctx.body = out;
  },
});

provider.on('server_error', (_ctx, err) => process.stderr.write(`idp: server_error: ${err.stack || err}\n`));
provider.on('grant.error', (_ctx, err) => process.stderr.write(`idp: grant.error: ${err.message} ${err.error_description ?? ''}\n`));
provider.on('authorization.error', (_ctx, err) => process.stderr.write(`idp: authorization.error: ${err.message} ${err.error_description ?? ''}\n`));

if (OFFLINE_WITHOUT_PROMPT) {
  provider.use(async (ctx, next) => {
    if (ctx.method === 'GET' && ctx.path === '/auth' && ctx.query.prompt === undefined
      && typeof ctx.query.scope === 'string' && ctx.query.scope.split(' ').includes('offline_access')) {
      ctx.query = { ...ctx.query, prompt: 'consent' };
    }
    await next();
  });
}

const callback = provider.callback();

// devInteractions accept any login name. Reject names that are not in USERS here,
// otherwise the provider would create a session for an account that does not exist.
const INTERACTION_SUBMIT = /^\/interaction\/[^/?]+$/;
async function handler(req, res) {
  const path = (req.url || '').split('?')[0];
  if (req.method === 'POST' && INTERACTION_SUBMIT.test(path)) {
    const chunks = [];
    let size = 0;
    for await (const chunk of req) {
      size += chunk.length;
      if (size > 56 * 1024) {
        res.writeHead(413).end();
        return;
      }
      chunks.push(chunk);
    }
    const raw = Buffer.concat(chunks);
    const form = parseQuery(raw.toString('utf8'));
    if (form.prompt === 'login' && !(typeof form.login === 'string' && Object.hasOwn(USERS, form.login))) {
      process.stderr.write(`idp: rejected sign-in for unknown user ${JSON.stringify(form.login)}\n`);
      res.writeHead(403, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(`unknown user ${JSON.stringify(form.login)}; known users: ${Object.keys(USERS).join(', ')}\n`);
      return;
    }
    // The stream is consumed; oidc-provider falls back to req.body.
    req.body = raw;
  }
  callback(req, res);
}
server.on('request', (req, res) => {
  handler(req, res).catch((err) => {
    process.stderr.write(`idp: request failed: ${err.stack || err}\n`);
    if (!res.headersSent) res.writeHead(500);
    res.end();
  });
});

process.stdout.write(`issuer ${ISSUER}\n`);
process.stderr.write(`idp: listening, clients mandate-desktop, mandate-test & mandate-broker, users ${Object.keys(USERS).join(', ')}, id token ttl ${ID_TOKEN_TTL}s, signing key ${signingKeys[0].kid}${signingKeys.length > 1 ? ` (also publishing ${signingKeys.slice(1).map((k) => k.kid).join(', ')})` : ''}${KEYS_FILE ? ` from ${KEYS_FILE}` : ''}${OFFLINE_WITHOUT_PROMPT ? ', offline_access without prompt=consent allowed' : ''}\n`);

let stopping = false;
function shutdown(signal) {
  if (stopping) return;
  stopping = true;
  process.stderr.write(`idp: ${signal}, shutting down\n`);
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
