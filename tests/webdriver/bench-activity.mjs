// Measures the real app's Activity screen over 1,000,000 receipts: the
// release app in WebKitGTK, driven over WebDriver, signed in against the
// real provider, with its broker in-process.
//
// The receipts are written straight into the app's history with the
// sqlite3 CLI (the full-text index's trigger included), for the signed-in
// user, after a first run of the app has made the user's profile. They are
// not signed: this measures the screen and its queries, not ingestion
// (`make bench-history` measures that, signatures checked). It reports:
//
// - the first page: from the click on Activity to the first rows painted;
// - scrolling: the page scrolls the list by 40 px a frame for 8 s, across
//   page loads; every frame's interval is recorded in the page;
// - a jump: End (the last row loaded), then ten Page Downs past it;
// - searches for a word, a word's start, and two words, to the rows painted.
//
// Each is measured first over 500 receipts (the floor: the same screen,
// WebKit and software rendering under Xvfb) and then over 1,000,000, in
// the same run; the ratios are what the goal is judged by.
//
//   make bench-activity   (MANDATE_BENCH_RECEIPTS=N to change the count)

import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, TARGET, WAIT, freePort, killAll, start, until, withTimeout } from './harness.mjs';
import { remote } from 'webdriverio';

const APP = process.env.BENCH_PROFILE === 'debug' ? join(TARGET, 'debug', 'mandate-app') : join(TARGET, 'release', 'mandate-app');
const RECEIPTS = Number(process.env.MANDATE_BENCH_RECEIPTS ?? 1_000_000);
// The floor: the same screen over a history of one page's worth.
const FLOOR = 500;
const dir = mkdtempSync(join(tmpdir(), 'mandate-bench-activity-'));
const db = join(dir, 'app', 'history.sqlite');

const idp = start(process.execPath, [join(ROOT, 'tests/idp/server.mjs'), '--port', '0']);
const issuer = await until('the provider', () => idp.output.match(/^issuer (\S+)$/m)?.[1]);
const brokerPort = await freePort();
const driverPort = await freePort();
start('tauri-driver', ['--port', String(driverPort), '--native-port', String(await freePort())], {
  MANDATE_ISSUER: issuer,
  MANDATE_BROKER_LISTEN: `127.0.0.1:${brokerPort}`,
  MANDATE_DATA_DIR: join(dir, 'app'),
  MANDATE_KEYRING_SERVICE: `mandate-bench-activity-${process.pid}`,
  MANDATE_BROWSER: `${process.execPath} ${join(ROOT, 'tests/idp/browse.mjs')} --user alice`,
  MANDATE_EXPIRY_REMINDERS: 'off',
  RUST_LOG: 'warn',
});
await until('tauri-driver', async () => {
  try { return (await fetch(`http://127.0.0.1:${driverPort}/status`)).ok; } catch { return false; }
});
const open = () => remote({
  hostname: '127.0.0.1', port: driverPort, logLevel: 'error', connectionRetryTimeout: WAIT,
  capabilities: { 'tauri:options': { application: APP } },
});
const sql = (query) => execFileSync('sqlite3', [db, query], { timeout: 1_800_000, maxBuffer: 1 << 20 }).toString().trim();
const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]; };
const ms = (x) => `${Math.round(x * 10) / 10} ms`;

let browser;

/** Opens the app (signed in from the keyring) and measures the Activity
 * screen over `n` receipts. */
async function measure(n) {
  browser = await open();
  await browser.$('[data-testid="pending-count"]').waitForDisplayed({ timeout: WAIT });
  const firstPage = await browser.execute(() => new Promise((resolve) => {
    const t = performance.now();
    document.querySelector('[data-testid="nav-activity"]').click();
    const check = () => (document.querySelectorAll('[data-testid="activity-row"]').length > 0
      ? requestAnimationFrame(() => resolve(performance.now() - t))
      : setTimeout(check, 1));
    check();
  }));
  console.log(`${n} receipts: first page ${ms(firstPage)} (click to rows painted)`);

  // Scrolling: 40 px a frame for 8 s; each frame's interval.
  const scroll = await browser.execute(() => new Promise((resolve) => {
    const list = document.querySelector('.rows');
    const frames = [];
    let last = performance.now();
    const end = last + 8000;
    const step = (now) => {
      frames.push(now - last);
      last = now;
      list.scrollTop += 40;
      if (now < end) requestAnimationFrame(step);
      else resolve({ frames, top: list.scrollTop });
    };
    requestAnimationFrame(step);
  }));
  const f = scroll.frames.slice(1);
  const result = { firstPage, p50: pct(f, 50), p95: pct(f, 95), janky: f.filter((x) => x > 50).length };
  console.log(`${n} receipts: scrolling 8 s, ${f.length} frames, interval p50 ${ms(result.p50)}, p95 ${ms(result.p95)}, p99 ${ms(pct(f, 99))}, max ${ms(Math.max(...f))}; over 50 ms: ${result.janky}; ${Math.round(scroll.top / 64)} rows scrolled`);

  // End, then ten Page Downs past the rows loaded.
  const jump = await browser.execute(() => new Promise((resolve) => {
    document.querySelector('[data-testid="activity-row"]').focus();
    const t = performance.now();
    const press = (key) => document.activeElement.dispatchEvent(new KeyboardEvent('keydown', { key, bubbles: true }));
    press('End');
    let k = 0;
    const next = () => {
      if (k === 10) { requestAnimationFrame(() => resolve(performance.now() - t)); return; }
      k += 1;
      press('PageDown');
      setTimeout(next, 0);
    };
    setTimeout(next, 0);
  }));
  console.log(`${n} receipts: End and ten Page Downs ${ms(jump)}`);

  // Searches typed into the box, from the debounce's end (200 ms after
  // the last keystroke) to the matching rows painted. Each starts from the
  // unfiltered list, whose first row matches none of them.
  for (const [words, match] of [['invoices', /invoices/], ['invoi*', /invoi/], ['hiring figures', /hiring/]]) {
    const took = await browser.execute((q, pattern) => new Promise((resolve) => {
      const re = new RegExp(pattern);
      const box = document.querySelector('[data-testid="filter-text"]');
      const rows = () => [...document.querySelectorAll('[data-testid="activity-row"]')].map((r) => r.textContent);
      const type = (value, then) => { box.value = value; box.dispatchEvent(new Event('input', { bubbles: true })); then(performance.now()); };
      const waitFor = (ok, t, done) => {
        const check = () => {
          const now = rows();
          if (now.length > 0 && ok(now)) requestAnimationFrame(() => done(performance.now() - t - 200));
          else if (performance.now() - t > 20000) done(NaN);
          else setTimeout(check, 1);
        };
        check();
      };
      type('', (t) => waitFor((r) => !re.test(r[0]), t, () => type(q, (t2) => waitFor((r) => r.every((x) => re.test(x)), t2, resolve))));
    }), words, match.source);
    console.log(`${n} receipts: search "${words}" ${ms(took)} (from the debounce's end to the rows painted)`);
  }
  await withTimeout(browser.deleteSession(), 15_000, 'closing the app');
  browser = undefined;
  return result;
}

try {
  // 1. Sign in once: the profile and the user key.
  browser = await open();
  await (await browser.$('[data-testid="sign-in"]')).waitForDisplayed({ timeout: WAIT });
  await browser.$('[data-testid="sign-in"]').click();
  await browser.$('[data-testid="pending-count"]').waitForDisplayed({ timeout: WAIT });
  const principal = `${issuer}#alice`;
  await withTimeout(browser.deleteSession(), 15_000, 'closing the app');

  // 2. The receipts: 20 agents, 8 action types, words from a small
  // vocabulary, one in 50 failed; `seq` is arrival order; each id held
  // under its key, as the engine holds it (migration 0005). First the
  // floor, a history of FLOOR receipts, measured; then the rest up to
  // RECEIPTS, measured the same way.
  const fill = (from, to) => sql(`PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF;
    WITH RECURSIVE n(x) AS (SELECT ${from} UNION ALL SELECT x + 1 FROM n WHERE x < ${to})
    INSERT INTO receipts (seq, id, principal, grant_id, agent, kind, target, summary, rationale,
                          outcome, cause, at, received_at, status, error, token, prev, hash)
    SELECT x, 'bench-' || x, '${principal}', 'grant-' || (x % 20),
           'urn:ietf:params:oauth:jwk-thumbprint:sha-256:' || substr('AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' || (x % 20), -43),
           'files.' || (CASE x % 8 WHEN 0 THEN 'read' WHEN 1 THEN 'write' WHEN 2 THEN 'list' WHEN 3 THEN 'share'
                         WHEN 4 THEN 'read' WHEN 5 THEN 'read' WHEN 6 THEN 'list' ELSE 'delete' END),
           'https://files.example/reports/' || (x % 1000) || '.txt',
           'Read the ' || (CASE x % 5 WHEN 0 THEN 'quarterly revenue' WHEN 1 THEN 'supplier invoices'
                            WHEN 2 THEN 'hiring plan' WHEN 3 THEN 'audit findings' ELSE 'board minutes' END) || ' file ' || x,
           'The summary needs ' || (CASE x % 3 WHEN 0 THEN 'the figures' WHEN 1 THEN 'the totals' ELSE 'the dates' END),
           CASE WHEN x % 50 = 0 THEN 'refused' ELSE 'succeeded' END, NULL,
           1790000000 + x, 1790000000 + x,
           CASE WHEN x % 50 = 0 THEN 'failed' ELSE 'verified' END,
           CASE WHEN x % 50 = 0 THEN 'chain.revoked' END,
           'not-a-token', '', ''
    FROM n;
    INSERT INTO receipt_ids (key, seq)
    SELECT substr(id, 1, 10), seq FROM receipts WHERE seq BETWEEN ${from} AND ${to};`);
  const results = {};
  fill(1, FLOOR);
  results.floor = await measure(FLOOR);
  const t0 = Date.now();
  fill(FLOOR + 1, RECEIPTS);
  console.log(`receipts: ${sql(`SELECT count(*) FROM receipts WHERE principal = '${principal}'`)}, the rest written in ${Math.round((Date.now() - t0) / 1000)} s`);
  results.full = await measure(RECEIPTS);
  const { floor, full } = results;
  console.log(`\nratios, ${RECEIPTS} receipts to ${FLOOR}: first page ${(full.firstPage / floor.firstPage).toFixed(2)}x, `
    + `scrolling frame p50 ${(full.p50 / floor.p50).toFixed(2)}x, p95 ${(full.p95 / floor.p95).toFixed(2)}x, `
    + `frames over 50 ms ${full.janky} against ${floor.janky}`);
} finally {
  try { await withTimeout(browser?.deleteSession() ?? Promise.resolve(), 15_000, 'closing'); } catch { /* killed below */ }
  killAll();
  rmSync(dir, { recursive: true, force: true });
}
