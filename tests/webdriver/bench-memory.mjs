// The desktop app's memory against the floor (docs/benchmarks.md, "The
// app's memory against the floor"), in one run:
//
// - the floor: tests/floor-app, the least Tauri app (one window, one
//   static page; the app's Tauri version, features and window size), idle;
// - Mandate idle with 500 pending requests, signed in against the real
//   provider and a real broker process;
//
// each started cold over WebDriver, in turns (BENCH_ROUNDS, default 3),
// idle 10 s, then PSS summed over the process and the WebKit processes
// under it. And Mandate's own growth from an empty inbox to 500 pending
// in one process: its anonymous memory (the heaps: Rust's, and
// JavaScript's in the web process), summed the same way.
//
//   make bench-memory
//
// Both are the release builds. The broker runs as its own process, so
// Mandate's figures exclude it.
//
// Mandate sets some of WebKitGTK's variables for itself where the user has
// not (src-tauri/src/lib.rs, `webkit_environment`), and a least Tauri app
// as it comes does not. So each round also measures the floor started with
// the same variables, as Mandate would set them on this machine, and the
// ratio to that floor is reported beside the ratio to the floor as it
// comes.

import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ROOT, TARGET, WAIT, cli, killAll, memoryOf, openApp, pendingCountIs, pidOf, fileRequests, startBenchStack, until, useBinaries,
  webkitVariables, withTimeout,
} from './harness.mjs';

const APP = join(TARGET, 'release', 'mandate-app');
const FLOOR = join(TARGET, 'release', 'mandate-floor-app');
const PENDING = 500;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const IDLE_MS = 10_000;

// The broker and the CLI that file the requests: the release builds.
useBinaries('release');
const ctx = { dir: mkdtempSync(join(tmpdir(), 'mandate-bench-memory-')) };

// The floor with the variables Mandate sets for itself here, in a script that starts the floor with
// them (`exec` keeps the process, so `pidOf(FLOOR)` finds it).
const appVariables = Object.fromEntries(Object.entries(webkitVariables()).filter(([, v]) => v !== undefined));
const FLOOR_AS_MANDATE = join(ctx.dir, 'floor-as-mandate');
writeFileSync(FLOOR_AS_MANDATE, `#!/bin/sh\nexec env ${Object.entries(appVariables).map(([k, v]) => `${k}=${v}`).join(' ')} '${FLOOR}' "$@"\n`);
chmodSync(FLOOR_AS_MANDATE, 0o755);
let browser;

const driverPort = await startBenchStack(ctx, 'mandate-bench-memory');

const open = (application) => openApp(driverPort, application);
const countIs = (n, timeout) => pendingCountIs(browser, n, timeout);

async function close(application) {
  await withTimeout(browser.deleteSession(), 15_000, 'closing the app');
  browser = undefined;
  await until(`${application} to exit`, () => { try { pidOf(application); return false; } catch { return true; } });
}

const idle = () => new Promise((r) => setTimeout(r, IDLE_MS));
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const round2 = (x) => Math.round(x * 100) / 100;

try {
  // One process from an empty inbox to 500 pending: the growth.
  browser = await open(APP);
  await browser.$('[data-testid="sign-in"]').waitForDisplayed({ timeout: WAIT });
  await browser.$('[data-testid="sign-in"]').click();
  await countIs(0);
  const init = await cli(ctx.broker, ['agent', 'init', '--key', join(ctx.dir, 'agent.key')]);
  if (init.code !== 0) throw new Error(init.output);
  await idle();
  const empty = memoryOf(pidOf(APP));
  await fileRequests(ctx, 'agent.key', 0, PENDING);
  await countIs(PENDING, 120_000);
  await idle();
  const full = memoryOf(pidOf(APP));
  await close(APP);

  // Cold starts in turns: the floor as it comes, the floor with Mandate's
  // variables, then Mandate with 500 pending.
  const rounds = [];
  const measureFloor = async (application) => {
    browser = await open(application);
    await browser.$('[data-testid="floor"]').waitForDisplayed({ timeout: WAIT });
    await idle();
    const memory = memoryOf(pidOf(FLOOR));
    await close(FLOOR);
    return memory;
  };
  for (let r = 0; r < ROUNDS; r += 1) {
    const floor = await measureFloor(FLOOR);
    const floorAsMandate = await measureFloor(FLOOR_AS_MANDATE);

    browser = await open(APP);
    await countIs(PENDING, 120_000);
    await idle();
    const mandate = memoryOf(pidOf(APP));
    await close(APP);
    rounds.push({
      floor,
      floor_as_mandate: floorAsMandate,
      mandate,
      ratio: round2(mandate.total_pss / floor.total_pss),
      ratio_to_floor_as_mandate: round2(mandate.total_pss / floorAsMandate.total_pss),
    });
  }

  const result = {
    machine: readFileSync('/proc/cpuinfo', 'utf8').match(/^model name\s*:\s*(.*)$/m)?.[1],
    cores: readFileSync('/proc/cpuinfo', 'utf8').match(/^processor/gm).length,
    pss_mib: {
      floor: rounds.map((x) => x.floor.total_pss),
      floor_with_mandates_variables: rounds.map((x) => x.floor_as_mandate.total_pss),
      mandates_variables: appVariables,
      [`mandate_${PENDING}_pending`]: rounds.map((x) => x.mandate.total_pss),
      ratios: rounds.map((x) => x.ratio),
      median_ratio: median(rounds.map((x) => x.ratio)),
      ratios_to_floor_with_mandates_variables: rounds.map((x) => x.ratio_to_floor_as_mandate),
      median_ratio_to_floor_with_mandates_variables: median(rounds.map((x) => x.ratio_to_floor_as_mandate)),
      goal: 1.15,
    },
    growth_empty_to_500_mib: {
      anonymous: round2(full.total_anonymous - empty.total_anonymous),
      pss: round2(full.total_pss - empty.total_pss),
      by_process: full.processes.map((p) => ({
        name: p.name,
        anonymous: round2(p.anonymous - (empty.processes.find((e) => e.name === p.name)?.anonymous ?? 0)),
      })),
      goal: 20,
    },
    empty,
    full,
    rounds,
  };
  mkdirSync(join(ROOT, 'target'), { recursive: true });
  writeFileSync(join(ROOT, 'target', 'bench-memory.json'), `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(`${JSON.stringify({ pss_mib: result.pss_mib, growth_empty_to_500_mib: result.growth_empty_to_500_mib }, null, 2)}\n`);
} finally {
  try { await withTimeout(browser?.deleteSession() ?? Promise.resolve(), 10_000, 'closing'); } catch { /* killed below */ }
  killAll();
  rmSync(ctx.dir, { recursive: true, force: true });
}
process.exit(0);
