#!/usr/bin/env node
// The desktop app's test browser: given the authorization URL the app
// would open in the system browser, signs in at the test provider as a
// person would (login form, consent form) and follows the provider's
// redirect back to the app's loopback listener. The app then finishes the
// sign-in itself: state, nonce, code exchange, ID token checks.
//
//   MANDATE_BROWSER="node tests/idp/browse.mjs --user alice" mandate-app
//
// The URL comes last, as the app appends it. Exits non-zero with a message
// on stderr on any failure.

import { parseArgs } from 'node:util';
import { SignInError, browser, walkToCallback } from './flow.mjs';

let args;
let positionals;
try {
  ({ values: args, positionals } = parseArgs({
    options: {
      user: { type: 'string', default: 'alice' },
      password: { type: 'string', default: 'any-password' },
      timeout: { type: 'string', default: '30' },
    },
    allowPositionals: true,
    strict: true,
  }));
} catch (err) {
  process.stderr.write(`browse: ${err.message}\n`);
  process.exit(2);
}
if (positionals.length !== 1) {
  process.stderr.write('usage: node browse.mjs [--user NAME] AUTHORIZATION_URL\n');
  process.exit(2);
}

const controller = new AbortController();
const timer = setTimeout(() => {
  controller.abort();
  process.stderr.write(`browse: timed out after ${args.timeout}s\n`);
  process.exit(1);
}, Number(args.timeout) * 1000);

try {
  const request = browser(controller.signal);
  const authorize = new URL(positionals[0]);
  const redirect = new URL(authorize.searchParams.get('redirect_uri') ?? '');
  if (redirect.hostname !== '127.0.0.1') throw new SignInError(`redirect_uri ${redirect} is not loopback`);
  const callback = await walkToCallback(request, authorize.href, { user: args.user, password: args.password },
    (next) => next.origin === redirect.origin && next.pathname === redirect.pathname);
  // Back to the app, as the browser would go.
  const done = await fetch(callback, { signal: controller.signal });
  await done.text();
  clearTimeout(timer);
} catch (err) {
  clearTimeout(timer);
  process.stderr.write(`browse: ${err instanceof SignInError ? err.message : err.stack || err}\n`);
  process.exitCode = 1;
}
