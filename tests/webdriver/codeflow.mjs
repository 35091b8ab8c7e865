// The person's side of the OAuth code flow, as the WebDriver tests walk
// it: their browser from the client's authorization URL, through the
// sign-in at the test provider, to the broker's waiting page; then, once
// the user decided in the app, back to the client's redirect URI.

import assert from 'node:assert/strict';
import { browser as browse, walkToCallback } from '../idp/flow.mjs';
import { until } from './harness.mjs';

/** A person's browser from the authorization URL to the broker's waiting
 * page: the broker sends it to sign in at the provider, which sends it
 * back; returns the browser and the waiting page's URL and code. */
export async function signInAndWait(broker, url) {
  const request = browse(AbortSignal.timeout(60_000));
  const back = await walkToCallback(request, url.href, { user: 'alice', password: 'any' },
    (u) => u.href.startsWith(`${broker}/oauth/callback`));
  const callback = await request(back.href);
  assert.equal(callback.res.status, 303, callback.text);
  const waitUrl = new URL(callback.res.headers.get('location'), back).href;
  assert.ok(waitUrl.startsWith(`${broker}/oauth/wait/`), waitUrl);
  const page = await request(waitUrl);
  assert.equal(page.res.status, 200, page.text);
  const code = page.text.match(/data-testid="binding-code">([^<]+)</)?.[1];
  assert.ok(code, page.text);
  return { request, waitUrl, code, page: page.text };
}

/** Polls the waiting page until it sends the browser back to the client;
 * returns that URL. */
export async function backToClient(request, waitUrl, redirectUri) {
  return until('the redirect back to the client', async () => {
    const step = await request(waitUrl);
    if (step.res.status === 200) return undefined;
    assert.equal(step.res.status, 303, step.text);
    const location = new URL(step.res.headers.get('location'));
    assert.ok(location.href.startsWith(redirectUri), location.href);
    return location;
  });
}

