// The provider's side of a sign-in, as a person's browser walks it: follow
// redirects and complete oidc-provider's devInteractions (the login form,
// then the consent form) with fetch and a small cookie jar, until the
// provider sends the browser back to the app. Shared by signin.mjs (a whole
// headless sign-in) and browse.mjs (the desktop app's test browser).

export class SignInError extends Error {}
export const fail = (msg) => { throw new SignInError(msg); };

// --- a minimal cookie jar (name/path aware, honours deletion) -----------------
export class CookieJar {
  #cookies = new Map(); // key `${path}\0${name}` -> { name, value, path }

  store(response, requestUrl) {
    for (const header of response.headers.getSetCookie()) {
      const [pair, ...attrs] = header.split(';');
      const eq = pair.indexOf('=');
      if (eq < 1) continue;
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      let path = new URL(requestUrl).pathname.replace(/\/[^/]*$/, '') || '/';
      let expired = false;
      for (const attr of attrs) {
        const [k, ...v] = attr.split('=');
        const key = k.trim().toLowerCase();
        const val = v.join('=').trim();
        if (key === 'path') path = val || '/';
        if (key === 'max-age' && Number(val) <= 0) expired = true;
        if (key === 'expires' && Date.parse(val) <= Date.now()) expired = true;
      }
      const id = `${path}\0${name}`;
      if (expired || value === '') this.#cookies.delete(id);
      else this.#cookies.set(id, { name, value, path });
    }
  }

  header(url) {
    const { pathname } = new URL(url);
    const matches = [...this.#cookies.values()].filter(({ path }) => (
      pathname === path || pathname.startsWith(path.endsWith('/') ? path : `${path}/`)
    ));
    // Longer paths first (RFC 6265 §5.4).
    matches.sort((a, b) => b.path.length - a.path.length);
    return matches.map(({ name, value }) => `${name}=${value}`).join('; ');
  }
}

/** A browser's fetch: a cookie jar, no automatic redirects, `signal` to abort. */
export function browser(signal) {
  const jar = new CookieJar();
  return async function request(url, { method = 'GET', form } = {}) {
    const headers = { accept: 'text/html,application/json' };
    const cookie = jar.header(url);
    if (cookie) headers.cookie = cookie;
    let body;
    if (form) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(form).toString();
    }
    let res;
    try {
      res = await fetch(url, { method, headers, body, redirect: 'manual', signal });
    } catch (err) {
      fail(`${method} ${url} failed: ${err.cause?.message || err.message}`);
    }
    jar.store(res, url);
    const text = await res.text();
    return { res, text, url };
  };
}

export const isRedirect = (status) => [301, 302, 303, 307, 308].includes(status);

export function describe({ res, text, url }) {
  return `${res.status} from ${url}: ${text.replace(/\s+/g, ' ').slice(0, 400)}`;
}

export function formAction(html, baseUrl) {
  const m = html.match(/<form[^>]*\saction="([^"]+)"[^>]*method="post"/i)
    || html.match(/<form[^>]*method="post"[^>]*\saction="([^"]+)"/i);
  if (!m) return undefined;
  const action = m[1].replace(/&amp;/g, '&').replace(/&#x2F;/gi, '/').replace(/&#47;/g, '/');
  return new URL(action, baseUrl).href;
}

export function hiddenPrompt(html) {
  return html.match(/<input[^>]*name="prompt"[^>]*value="([^"]+)"/i)?.[1];
}

/**
 * Walks from the authorization URL through the provider's pages, signing in
 * as `user`, until a redirect satisfies `isCallback(url)`. Returns that URL.
 */
export async function walkToCallback(request, authorizeUrl, { user, password }, isCallback) {
  let step = await request(authorizeUrl);
  let callbackUrl;
  const seenPrompts = [];
  for (let hops = 0; hops < 20 && !callbackUrl; hops += 1) {
    const { res, text, url } = step;
    if (isRedirect(res.status)) {
      const location = res.headers.get('location');
      if (!location) fail(`redirect without Location: ${describe(step)}`);
      const next = new URL(location, url);
      if (isCallback(next)) {
        callbackUrl = next;
        break;
      }
      step = await request(next.href);
      continue;
    }
    if (res.status !== 200) fail(`unexpected response: ${describe(step)}`);
    const prompt = hiddenPrompt(text);
    const action = formAction(text, url);
    if (!prompt || !action) fail(`no interaction form found: ${describe(step)}`);
    if (prompt === 'login') {
      if (seenPrompts.includes('login')) fail(`login prompt shown twice (sign-in for ${user} not accepted)`);
      step = await request(action, { method: 'POST', form: { prompt: 'login', login: user, password: password } });
      if (step.res.status === 403) fail(`login rejected: ${describe(step)}`);
    } else if (prompt === 'consent') {
      if (seenPrompts.filter((p) => p === 'consent').length > 2) fail('consent prompt loops');
      step = await request(action, { method: 'POST', form: { prompt: 'consent' } });
    } else {
      fail(`unknown interaction prompt ${JSON.stringify(prompt)}`);
    }
    seenPrompts.push(prompt);
  }
  if (!callbackUrl) fail('never redirected back to the app');
  return callbackUrl;
}
