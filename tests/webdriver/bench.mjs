// Measures the real desktop app (mandate-app in WebKitGTK, driven over
// WebDriver) against the real provider and a real broker process:
//
// - cold start to the inbox rendered, signed in (the sign-in resumed from
//   the keyring), with an empty inbox and with 500 pending requests;
// - idle resident memory with 500 pending requests, of the app's process
//   and of the app with its WebKit processes;
// - a new request's way from the broker to a painted row, bounded from
//   above: from starting the agent's CLI (its start-up, signing and HTTP
//   exchange included) to the first animation frame after the row is in
//   the page, with an empty inbox and with 500 pending;
// - a revocation, from the click on "Revoke" in the preview to the page
//   showing it confirmed by the broker (signed, recorded, delivered over
//   loopback, acknowledged), measured in the page.
//
//   make bench-app      (or: scripts/with-keyring.sh xvfb-run -a node tests/webdriver/bench.mjs)
//
// The broker runs as its own process with its guards raised (a user may
// have 500 pending requests), so the app's memory excludes the broker's.

import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ROOT, TARGET, WAIT, ask, cli, killAll, memoryOf, openApp, paintedAt, pendingCountIs, pidOf, fileRequests, startBenchStack, until,
  useBinaries, watchForRow, withTimeout,
} from './harness.mjs';

// The app as built for users (`make package`'s release build), or the
// debug build with BENCH_PROFILE=debug. The broker and the CLI are the
// release builds either way: the way from the broker to the page is
// measured as deployed.
const APP = join(TARGET, process.env.BENCH_PROFILE === 'debug' ? 'debug' : 'release', 'mandate-app');
useBinaries('release');
const PENDING = 500;
// BENCH_STARTS: how many cold starts of each kind (default 5).
const STARTS = Number(process.env.BENCH_STARTS ?? 5);
const LATENCY_SAMPLES = 15;

const ctx = { dir: mkdtempSync(join(tmpdir(), 'mandate-bench-')) };
let browser;
let driverPort;

const open = () => openApp(driverPort, APP);
const countIs = (n, timeout) => pendingCountIs(browser, n, timeout);

/** Cold starts: a new app process each time, until the count reads `n`. */
async function coldStarts(n) {
  const wall = [];
  const page = [];
  for (let i = 0; i < STARTS; i += 1) {
    await withTimeout(browser.deleteSession(), 15_000, 'closing the app');
    const t0 = Date.now();
    browser = await open();
    await countIs(n);
    wall.push(Date.now() - t0);
    // From the page's navigation start to now: the page's own share.
    page.push(await browser.execute(() => Math.round(performance.now())));
  }
  return { wall, page };
}

/** Broker-to-painted-row latencies, one request at a time. */
async function latencies(label) {
  const samples = [];
  for (let i = 0; i < LATENCY_SAMPLES; i += 1) {
    const purpose = `latency ${label} ${i}`;
    await watchForRow(browser, purpose);
    const spawned = Date.now();
    const agent = ask(ctx, 'agent.key', 'Bench Bot', 'files:read:https://files.example/reports/', [], purpose);
    const painted = await paintedAt(browser);
    // From starting the agent's CLI (so including its start-up, signing
    // and the HTTP exchange): an upper bound on the broker-to-row time.
    samples.push(Math.round(painted - spawned));
    await withTimeout(agent.ended, WAIT, 'the agent');
  }
  return samples;
}

/** Approves `n` requests, then revokes each grant from the delegations
 * screen; returns each revocation's milliseconds from the click to the
 * page showing the broker's acknowledgement (the next frame painted). */
async function revocations(n) {
  for (let i = 0; i < n; i += 1) {
    await (await browser.$('[data-testid="inbox-row"]')).click();
    await browser.$('[data-testid="approve"]').waitForDisplayed({ timeout: WAIT });
    await browser.$('[data-testid="approve"]').click();
    await browser.$('[data-testid="decision"]').waitForDisplayed({ timeout: WAIT });
  }
  await browser.$('[data-testid="nav-delegations"]').click();
  const times = [];
  for (let i = 0; i < n; i += 1) {
    await until('a grant to revoke', async () => (await browser.$$('[data-testid="revoke"]')).length > 0);
    await (await browser.$('[data-testid="revoke"]')).click();
    await browser.$('[data-testid="revoke-confirm"]').waitForDisplayed({ timeout: WAIT });
    const ms = await browser.executeAsync((done) => {
      const t0 = performance.now();
      const settled = () => !document.querySelector('[data-testid="revoke-preview"]')
        && /confirmed by the broker/.test(document.querySelector('[data-testid="revocation-status"]')?.textContent ?? '');
      const observer = new MutationObserver(() => {
        if (settled()) {
          observer.disconnect();
          requestAnimationFrame(() => done(performance.now() - t0));
        }
      });
      observer.observe(document.body, { childList: true, subtree: true, characterData: true });
      document.querySelector('[data-testid="revoke-confirm"]').click();
    });
    times.push(ms);
  }
  await browser.$('button*=Inbox').click();
  return times;
}

const stats = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const q = (f) => s[Math.min(s.length - 1, Math.floor(f * s.length))];
  return { n: s.length, min: s[0], p50: q(0.5), p90: q(0.9), max: s.at(-1) };
};

try {
  driverPort = await startBenchStack(ctx, 'mandate-bench');
  browser = await open();
  await browser.$('[data-testid="sign-in"]').waitForDisplayed({ timeout: WAIT });
  await browser.$('[data-testid="sign-in"]').click();
  await countIs(0);
  const init = await cli(ctx.broker, ['agent', 'init', '--key', join(ctx.dir, 'agent.key')]);
  if (init.code !== 0) throw new Error(init.output);

  const startEmpty = await coldStarts(0);
  await new Promise((r) => setTimeout(r, 10_000));
  const memoryEmpty = memoryOf(pidOf(APP));
  const latencyEmpty = await latencies('empty');
  // Those requests wait too; fill the inbox up to PENDING.
  const filled = LATENCY_SAMPLES;
  await fileRequests(ctx, 'agent.key', filled, PENDING);
  await countIs(PENDING, 120_000);
  const startFull = await coldStarts(PENDING);
  // Idle: nothing happens for 10 s, then the memory is read.
  await new Promise((r) => setTimeout(r, 10_000));
  const memoryFull = memoryOf(pidOf(APP));
  const latencyFull = await latencies('full');
  const revoked = await revocations(LATENCY_SAMPLES);

  const result = {
    machine: readFileSync('/proc/cpuinfo', 'utf8').match(/^model name\s*:\s*(.*)$/m)?.[1],
    cores: readFileSync('/proc/cpuinfo', 'utf8').match(/^processor/gm).length,
    cold_start_ms: { empty: { wall: stats(startEmpty.wall), page: stats(startEmpty.page) }, [PENDING]: { wall: stats(startFull.wall), page: stats(startFull.page) } },
    idle_memory_mib: { empty: memoryEmpty, [PENDING]: memoryFull },
    app: APP.includes('/release/') ? 'release' : 'debug',
    broker_to_painted_row_ms: { empty: stats(latencyEmpty), [PENDING]: stats(latencyFull) },
    revocation_click_to_acknowledged_ms: stats(revoked),
  };
  mkdirSync(join(ROOT, 'target'), { recursive: true });
  writeFileSync(join(ROOT, 'target', 'bench-app.json'), `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
} finally {
  try { await withTimeout(browser?.deleteSession() ?? Promise.resolve(), 10_000, 'closing'); } catch { /* killed below */ }
  killAll();
  rmSync(ctx.dir, { recursive: true, force: true });
}
process.exit(0);
