// What the WebDriver tests and the app benchmark share: processes started
// in their own process groups (and killed with them), free ports, polling,
// the `mandate` CLI, the provider and a broker of their own, a WebDriver
// session on the real app, and when a new inbox row was painted.

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { remote } from 'webdriverio';

const HERE = dirname(fileURLToPath(import.meta.url));
export const ROOT = resolve(HERE, '../..');
export const TARGET = process.env.CARGO_TARGET_DIR ?? join(ROOT, 'target');
let binaries = 'debug';
/**
 * Where the workspace's binaries that the harness runs (the broker, the
 * CLI) come from: the debug build for the tests, the release build for the
 * benchmarks, which measure what is deployed (`useBinaries('release')`).
 */
export function useBinaries(profile) { binaries = profile; }
export const bin = (name) => join(TARGET, binaries, name);
export const WAIT = 30_000;

const children = new Set();
// Each child leads its own process group, so that what it starts in turn
// (tauri-driver starts WebKitWebDriver, which starts the app) ends with it.
export function start(cmd, args, env = {}) {
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  children.add(child);
  // `output` is both streams as they were read; `stdout` is the standard
  // output alone, for what a child prints there to be parsed (the two pipes
  // are read apart, so a line on one can land inside a line of the other).
  child.output = '';
  child.stdoutText = '';
  child.stdout.on('data', (d) => { child.output += d; child.stdoutText += d; });
  child.stderr.on('data', (d) => { child.output += d; });
  // 'exit' can come before the last of the output is read from the pipes
  // (a flood's closing tally was missed that way); 'close' says it all
  // came. A grandchild that inherited the pipes could hold 'close' back, so
  // after 'exit' it is waited for 2 s at most.
  child.ended = new Promise((res) => {
    child.on('exit', (code, signal) => {
      children.delete(child);
      const timer = setTimeout(() => res({ code, signal }), 2_000);
      child.on('close', () => { clearTimeout(timer); res({ code, signal }); });
    });
  });
  return child;
}
export function killAll() {
  for (const child of children) {
    try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ }
  }
}
process.on('exit', killAll);

export async function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => res(port)); });
    s.on('error', rej);
  });
}

/** Polls `f` until it returns something truthy. A throw counts as "not
 * yet" (the page may re-render between finding an element and reading
 * it); the last one is in the error if time runs out. */
export async function until(what, f, timeout = WAIT) {
  const end = Date.now() + timeout;
  let failure;
  for (;;) {
    try {
      const v = await f();
      if (v) return v;
    } catch (e) {
      failure = e;
    }
    if (Date.now() > end) {
      throw new Error(`timed out waiting for ${what}${failure ? ` (last: ${failure.message})` : ''}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Runs the `mandate` CLI against `broker` to its end. */
export async function cli(broker, args) {
  const child = start(bin('mandate'), args, { MANDATE_BROKER: broker });
  const { code } = await withTimeout(child.ended, WAIT, `mandate ${args.join(' ')}`);
  return { code, output: child.output };
}

export function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, rej) => { timer = setTimeout(() => rej(new Error(`timed out: ${what}`)), ms); }),
  ]);
}

/** The test provider (tests/idp/server.mjs) on a free port; sets
 * `ctx.issuer` and `ctx.principal` (alice's). */
export async function startProvider(ctx) {
  const idp = start(process.execPath, [join(ROOT, 'tests/idp/server.mjs'), '--port', '0']);
  ctx.issuer = await until('the provider', () => idp.output.match(/^issuer (\S+)$/m)?.[1]);
  ctx.principal = `${ctx.issuer}#alice`;
  return idp;
}

/** A `mandate-broker` process of its own on SQLite under `ctx.dir`,
 * trusting `ctx.issuer` for the app; sets `ctx.broker`. `args` are more
 * options (raised limits, say). Its output is its log, uncoloured. */
export async function startBroker(ctx, args = [], env = {}) {
  const broker = start(bin('mandate-broker'), [
    '--listen', '127.0.0.1:0', '--data-dir', join(ctx.dir, 'broker'),
    '--issuer', `${ctx.issuer}=mandate-desktop`, ...args,
  ], { RUST_LOG: 'warn', NO_COLOR: '1', ...env });
  ctx.broker = await until('the broker', () => broker.output.match(/listening on (http:\/\/\S+)/)?.[1]);
  return broker;
}

/** `mandate agent request` in the background, for `ctx.principal` at `ctx.broker`. */
export function ask(ctx, key, name, scope, extra = [], purpose = 'Tidy the Q3 reports') {
  return start(bin('mandate'), [
    'agent', 'request', '--key', join(ctx.dir, key), '--principal', ctx.principal,
    '--scope', scope, '--name', name, '--purpose', purpose,
    '--intent', 'Clean up my reports folder', '--lifetime', '3600', ...extra,
  ], { MANDATE_BROKER: ctx.broker });
}


/** Starts tauri-driver with `env` (which the app inherits) and the app
 * (`application`, the build's own by default) in a new WebDriver session. Returns the session and the driver, whose
 * output is the app's log. */
export async function openSession(env, application = bin('mandate-app')) {
  const driverPort = await freePort();
  const nativePort = await freePort();
  const driver = start('tauri-driver', ['--port', String(driverPort), '--native-port', String(nativePort)], env);
  // tauri-driver logs "connection refused" while WebKitWebDriver starts.
  await until('tauri-driver', async () => {
    try { return (await fetch(`http://127.0.0.1:${driverPort}/status`)).ok; } catch { return false; }
  });
  const session = await remote({
    hostname: '127.0.0.1',
    port: driverPort,
    logLevel: 'warn',
    connectionRetryTimeout: WAIT,
    capabilities: { 'tauri:options': { application } },
  });
  return { session, driver };
}

/**
 * The app `application` as a user starts it: with a `settings.json` in
 * `data` naming `ctx.issuer` and `ctx.broker`, and nothing in the
 * environment to override it; then signed in as alice, through
 * tests/idp/browse.mjs unless `env` names another `MANDATE_BROWSER`.
 * `env` is more environment. Returns what `openSession` returns, once the
 * inbox shows.
 */
export async function signInFromSettings(ctx, application, data, env = {}) {
  mkdirSync(data, { recursive: true });
  writeFileSync(join(data, 'settings.json'), JSON.stringify({ issuer: ctx.issuer, broker_url: ctx.broker }));
  const opened = await openSession({
    MANDATE_DATA_DIR: data,
    MANDATE_ISSUER: '',
    MANDATE_BROKER: '',
    MANDATE_KEYRING_SERVICE: `mandate-settings-${process.pid}`,
    MANDATE_BROWSER: `${process.execPath} ${join(ROOT, 'tests/idp/browse.mjs')} --user alice`,
    MANDATE_EXPIRY_REMINDERS: 'off',
    RUST_LOG: 'warn',
    ...env,
  }, application);
  const app = opened.session;
  const signIn = await app.$('[data-testid="sign-in"]');
  await signIn.waitForDisplayed({ timeout: WAIT });
  if (await app.$('[data-testid="provider"]').getText() !== ctx.issuer) {
    throw new Error(`the provider shown is not the one from the settings, ${ctx.issuer}`);
  }
  await signIn.click();
  await app.$('[data-testid="pending-count"]').waitForDisplayed({ timeout: WAIT })
    .catch(async (e) => { throw new Error(`${e.message}\npage: ${await app.$('main').getText()}\napp: ${opened.driver.output.slice(-2000)}`); });
  return opened;
}

/** An environment written as `NAME=value` entries each ended by NUL (as
 * /proc/PID/environ and `env -0` write it) in the file `path`, as a map. */
export const environIn = (path) => new Map(readFileSync(path, 'utf8').split('\0').filter(Boolean)
  .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));

/** The environment of process `pid`, as a map. */
export const environOf = (pid) => environIn(`/proc/${pid}/environ`);

/**
 * Saves a screenshot of the page at `path`. WebKitWebDriver takes it at
 * the page's next paint, and without compositing (the app's choice on a
 * machine without a GPU: src-tauri/src/lib.rs) a page at rest does not
 * paint again, so the page is made to repaint until the screenshot is
 * taken, with a change no one can see.
 */
export async function screenshot(browser, path) {
  await browser.execute(() => {
    let flip = false;
    window.__mandateRepaint = setInterval(() => {
      flip = !flip;
      document.body.style.opacity = flip ? '0.999' : '';
    }, 30);
  });
  try {
    await withTimeout(browser.saveScreenshot(path), WAIT, `a screenshot to ${path}`);
  } finally {
    await browser.execute(() => {
      clearInterval(window.__mandateRepaint);
      document.body.style.opacity = '';
    });
  }
}

/** Waits for the inbox row whose text holds `text`, and returns it. */
export async function rowIn(browser, text, timeout = WAIT) {
  let found;
  await until(`a row with ${JSON.stringify(text)}`, async () => {
    for (const row of await browser.$$('[data-testid="inbox-row"]')) {
      if ((await row.getText()).includes(text)) { found = row; return true; }
    }
    return false;
  }, timeout);
  return found;
}

/**
 * Watches the page for an inbox row holding `text`. Once one is in the
 * page, the first animation frame after it notes the wall-clock time
 * (`Date.now()`, the clock of the broker's log and of this process);
 * `paintedAt` waits for that time. Call it before the row can arrive.
 */
export async function watchForRow(browser, text) {
  await browser.execute((t) => {
    window.__painted = undefined;
    const seen = () => [...document.querySelectorAll('[data-testid="inbox-row"]')].some((r) => r.textContent.includes(t));
    const observer = new MutationObserver(() => {
      if (seen()) {
        observer.disconnect();
        requestAnimationFrame(() => { window.__painted = Date.now(); });
      }
    });
    observer.observe(document.body, { childList: true, subtree: true, characterData: true });
  }, text);
}

/** When the row `watchForRow` watches for was painted (epoch ms). */
export async function paintedAt(browser, timeout = WAIT) {
  return until('the painted row', async () => browser.execute(() => window.__painted), timeout);
}

/** Ends `session` (if the app still answers), kills every child, and
 * removes `dir`. */
export async function closeAll(session, dir) {
  try {
    await withTimeout(session?.deleteSession() ?? Promise.resolve(), 10_000, 'closing the session');
  } catch { /* the app may be gone; the kill below ends it */ }
  killAll();
  if (dir) rmSync(dir, { recursive: true, force: true });
}

/** The binding code `mandate agent request` printed to its user. */
export function codeIn(output) {
  return output.match(/the code ([0-9A-Z]{4}-[0-9A-Z]{4})/)?.[1];
}

/** Matches the binding code in the open request: compares it when the
 * app shows it; types it when the app asks for it instead (a high-risk
 * request, number matching), and waits until the app accepts it. */
export async function matchCode(browser, code) {
  const shown = await browser.$('[data-testid="binding-code"]');
  if (await shown.isExisting()) {
    const text = await shown.getText();
    if (text !== code) throw new Error(`the app shows the code ${text}, the agent ${code}`);
    return 'compared';
  }
  await browser.$('[data-testid="code-input"]').setValue(code);
  await browser.$('[data-testid="code-check"]').click();
  await until('the app to accept the code', async () => !(await browser.$('[data-testid="code-match"]').isExisting()));
  return 'typed';
}

/** Approves the open request for `tier` (`once`, `lease`, `standard`,
 * `rule`); the existing journeys approve for the lifetime chosen. */
export async function approveFor(browser, tier = 'standard') {
  await browser.$(`[data-testid="tier-${tier}"]`).click();
  await browser.$('[data-testid="approve"]').click();
}

/** Types `text` into the field with `testid`, which has the focus, and
 * checks that the field holds all of it. Keys sent one by one to the
 * window lose a repeated character under WebKitGTK's driver (a code like
 * 7KK2-..., an amount like 1000.50); sent to the field, they do not. */
export async function typeInto(browser, testid, text) {
  const field = await browser.$(`[data-testid="${testid}"]`);
  await field.addValue(text);
  const value = await field.getValue();
  if (value !== text) throw new Error(`the field ${testid} holds ${JSON.stringify(value)}, not ${JSON.stringify(text)}`);
}

/** Presses Tab in `browser` until the element with `testid` has the focus. */
export async function tabTo(browser, testid, limit = 80) {
  for (let i = 0; i < limit; i += 1) {
    const focused = await browser.execute(() => document.activeElement?.getAttribute('data-testid'));
    if (focused === testid) return;
    await browser.keys(['Tab']);
  }
  throw new Error(`Tab never reached ${testid}`);
}

const readProc = (p, file) => { try { return readFileSync(`/proc/${p}/${file}`, 'utf8'); } catch { return ''; } };

/** The process running `executable` (its full path, as started). */
export function pidOf(executable) {
  for (const p of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    if (readProc(p, 'cmdline').split('\0')[0] === executable) return Number(p);
  }
  throw new Error(`no process runs ${executable}`);
}

/** Process `pid` and every process under it, parents first, each as
 * `{ pid, name }` (the name as /proc gives it, cut to 15 characters). */
export function processTree(pid) {
  const children = new Map();
  for (const p of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    const ppid = readProc(p, 'status').match(/^PPid:\s+(\d+)/m)?.[1];
    if (ppid) children.set(ppid, [...(children.get(ppid) ?? []), p]);
  }
  const tree = [];
  const stack = [String(pid)];
  while (stack.length) {
    const p = stack.pop();
    tree.push({ pid: p, name: readProc(p, 'comm').trim() });
    stack.push(...(children.get(p) ?? []));
  }
  return tree;
}

/**
 * The WebKitGTK variables the app gives itself and its web process on this
 * machine (src-tauri/src/lib.rs, `webkit_environment`), by the same rules:
 * a value this environment sets is kept; otherwise the painting threads
 * are 0, and compositing is turned off (`1`) only where there is no GPU
 * render node. A variable the app leaves unset is `undefined`.
 */
export function webkitVariables() {
  const renderNode = existsSync('/dev/dri') && readdirSync('/dev/dri').some((n) => n.startsWith('renderD'));
  return {
    WEBKIT_SKIA_GPU_PAINTING_THREADS: process.env.WEBKIT_SKIA_GPU_PAINTING_THREADS ?? '0',
    WEBKIT_DISABLE_COMPOSITING_MODE: process.env.WEBKIT_DISABLE_COMPOSITING_MODE ?? (renderNode ? undefined : '1'),
  };
}

/**
 * Memory of a process and of the processes under it (WebKit's web and
 * network processes), in MiB, from /proc: RSS; PSS (shared pages divided
 * among the processes sharing them, so that the sum counts WebKit's
 * libraries once), and its anonymous and file-backed parts; and
 * `anonymous`, the private memory no file backs (heaps, JavaScript's
 * among them).
 */
export function memoryOf(pid) {
  const kib = (text, field) => Number(text.match(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm'))?.[1] ?? 0);
  const mib = (k) => Math.round(k / 102.4) / 10;
  const processes = processTree(pid).map(({ pid: p, name }) => {
    const rollup = readProc(p, 'smaps_rollup');
    return {
      name,
      rss: mib(kib(readProc(p, 'status'), 'VmRSS')),
      pss: mib(kib(rollup, 'Pss')),
      pss_anon: mib(kib(rollup, 'Pss_Anon')),
      pss_file: mib(kib(rollup, 'Pss_File')),
      anonymous: mib(kib(rollup, 'Anonymous')),
    };
  });
  const sum = (f) => Math.round(processes.reduce((a, x) => a + x[f], 0) * 10) / 10;
  return {
    app_rss: processes[0].rss,
    total_rss: sum('rss'),
    total_pss: sum('pss'),
    total_anonymous: sum('anonymous'),
    processes,
  };
}

/**
 * What the app benchmarks start from: the provider, and a broker with its
 * guards raised (a user may have 500 pending requests), then tauri-driver
 * with the app's environment (its data under `ctx.dir`). Returns the
 * driver's port.
 */
export async function startBenchStack(ctx, name) {
  await startProvider(ctx);
  await startBroker(ctx, [
    '--max-pending-new', '2000', '--max-pending-per-agent', '2000',
    '--rate', 'agent_requests=5000:5000', '--rate', 'user_prompts=5000:5000',
    '--rate', 'user_calls=5000:5000', '--rate', 'agent_calls=5000:5000',
  ]);
  const port = await freePort();
  start('tauri-driver', ['--port', String(port), '--native-port', String(await freePort())], {
    MANDATE_ISSUER: ctx.issuer,
    MANDATE_BROKER: ctx.broker,
    MANDATE_DATA_DIR: join(ctx.dir, 'app'),
    MANDATE_KEYRING_SERVICE: `${name}-${process.pid}`,
    MANDATE_BROWSER: `${process.execPath} ${join(ROOT, 'tests/idp/browse.mjs')} --user alice`,
    RUST_LOG: 'warn',
  });
  await until('tauri-driver', async () => {
    try { return (await fetch(`http://127.0.0.1:${port}/status`)).ok; } catch { return false; }
  });
  return port;
}

/** A new WebDriver session on the tauri-driver at `port`: a new process
 * of the app `application`. */
export async function openApp(port, application) {
  return remote({
    hostname: '127.0.0.1', port, logLevel: 'error', connectionRetryTimeout: WAIT,
    capabilities: { 'tauri:options': { application } },
  });
}

/** Waits until the app's pending count reads `n`. */
export async function pendingCountIs(browser, n, timeout = WAIT) {
  await until(`${n} pending`, async () => {
    try { return (await browser.$('[data-testid="pending-count"]').getText()) === String(n); } catch { return false; }
  }, timeout);
}

/** Files requests `from` to `to` (exclusive) for the agent key `key`, ten
 * at a time, each to its end ("filler N"). */
export async function fileRequests(ctx, key, from, to) {
  for (let i = from; i < to; i += 10) {
    const batch = [];
    for (let j = i; j < Math.min(i + 10, to); j += 1) {
      batch.push(ask(ctx, key, 'Bench Bot', 'files:read:https://files.example/reports/', [], `filler ${j}`));
    }
    for (const b of batch) {
      const { code } = await withTimeout(b.ended, WAIT, 'filing');
      if (code !== 0) throw new Error(b.output);
    }
  }
}
