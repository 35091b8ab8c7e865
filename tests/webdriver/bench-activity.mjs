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
// - a search for a word, and for a word's start, to the rows painted.
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
try {
  // 1. Sign in once: the profile and the user key.
  browser = await open();
  await (await browser.$('[data-testid="sign-in"]')).waitForDisplayed({ timeout: WAIT });
  await browser.$('[data-testid="sign-in"]').click();
  await browser.$('[data-testid="pending-count"]').waitForDisplayed({ timeout: WAIT });
  const principal = `${issuer}#alice`;
  await withTimeout(browser.deleteSession(), 15_000, 'closing the app');

  // 2. The receipts: 20 agents, 8 action types, words from a small
  // vocabulary, one in 50 failed; `seq` is arrival order.
  const t0 = Date.now();
  sql(`PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF;
    WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < ${RECEIPTS})
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
    FROM n;`);
  const filled = sql(`SELECT count(*) FROM receipts WHERE principal = '${principal}'`);
  console.log(`receipts: ${filled}, written in ${Math.round((Date.now() - t0) / 1000)} s`);

  // 3. The app again, signed in from the keyring; the first page.
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
  console.log(`first page at ${filled} receipts: ${ms(firstPage)} (click to rows painted)`);

  // 4. Scrolling: 40 px a frame for 8 s; each frame's interval.
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
      else resolve({ frames, rows: document.querySelectorAll('[data-testid="activity-row"]').length, top: list.scrollTop });
    };
    requestAnimationFrame(step);
  }));
  const f = scroll.frames.slice(1);
  console.log(`scrolling 8 s: ${f.length} frames, interval p50 ${ms(pct(f, 50))}, p95 ${ms(pct(f, 95))}, p99 ${ms(pct(f, 99))}, max ${ms(Math.max(...f))}; over 50 ms: ${f.filter((x) => x > 50).length}; scrolled ${Math.round(scroll.top / 64)} rows`);

  // 5. End, then ten Page Downs past the rows loaded.
  const jump = await browser.execute(() => new Promise((resolve) => {
    const row = document.querySelector('[data-testid="activity-row"]');
    row.focus();
    const t = performance.now();
    const press = (key) => document.activeElement.dispatchEvent(new KeyboardEvent('keydown', { key, bubbles: true }));
    press('End');
    let n = 0;
    const next = () => {
      if (n === 10) { requestAnimationFrame(() => resolve(performance.now() - t)); return; }
      n += 1;
      press('PageDown');
      setTimeout(next, 0);
    };
    setTimeout(next, 0);
  }));
  console.log(`End and ten Page Downs: ${ms(jump)}`);

  // 6. Searches, typed into the box, to the rows painted.
  for (const words of ['invoices', 'invoi*', 'hiring figures']) {
    await browser.$('button*=Inbox').click();
    await browser.$('[data-testid="nav-activity"]').click();
    await browser.$('[data-testid="activity-row"]').waitForDisplayed({ timeout: WAIT });
    const took = await browser.execute((q) => new Promise((resolve) => {
      const box = document.querySelector('[data-testid="filter-text"]');
      const before = document.querySelector('[data-testid="activity-row"]')?.textContent;
      const t = performance.now();
      box.value = q;
      box.dispatchEvent(new Event('input', { bubbles: true }));
      const check = () => {
        const now = document.querySelector('[data-testid="activity-row"]')?.textContent;
        if (now && now !== before) requestAnimationFrame(() => resolve(performance.now() - t));
        else if (performance.now() - t > 20000) resolve(NaN);
        else setTimeout(check, 1);
      };
      check();
    }), words);
    console.log(`search "${words}": ${ms(took)} from typing to rows painted (200 ms of it is the typing debounce)`);
  }
} finally {
  try { await withTimeout(browser?.deleteSession() ?? Promise.resolve(), 15_000, 'closing'); } catch { /* killed below */ }
  killAll();
  rmSync(dir, { recursive: true, force: true });
}
