// Accessibility in the real app (mandate-app, WebKitGTK, over WebDriver),
// with a real provider, broker and agents:
// - axe-core (WCAG 2.1 A and AA, and best practices) runs inside the page
//   on every screen, in the light and the dark theme, and finds no serious
//   or critical violation;
// - every control of a screen takes the focus from the keyboard, and Tab
//   moves down each part of the screen, never back up;
// - status changes (a request arriving, an approval sent) are said in the
//   page's one live region;
// - the header stays in view, and the inbox beside the detail, while the
//   detail scrolls.
// And the Settings screen: a bad URL refused with a clear error and
// nothing saved; good settings kept on disk and used (the lease offered
// first, starting at login as an XDG autostart entry that comes and goes).
//
// Screens are saved under target/e2e-shots/ as a11y-*.png.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  ROOT, WAIT, cli as cliAt, closeAll, ask as askAt, codeIn, matchCode, openSession, rowIn, startBroker, startProvider,
  until, withTimeout, screenshot,
} from './harness.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const AXE = readFileSync(join(HERE, 'node_modules/axe-core/axe.min.js'), 'utf8');
const SHOTS = join(ROOT, 'target', 'e2e-shots');
const ctx = {};
let app;

const cli = (args) => cliAt(ctx.broker, args);
const ask = (key, name, scope, purpose) => askAt(ctx, key, name, scope, ['--wait', '--timeout', '120'], purpose);
const ended = (asking, what) => withTimeout(asking.ended, 60_000, what);
/** Everything the live region said since `listen`, one line each (its
 * text is not shown, so it is read from the page). */
const said = () => app.execute(() => (window.__said ?? []).join('\n'));
const listen = () => app.execute(() => {
  window.__said = [];
  const region = document.querySelector('[data-testid="announcer"]');
  new MutationObserver(() => region.textContent && window.__said.push(region.textContent))
    .observe(region, { childList: true, characterData: true, subtree: true });
});
/** Fails with the page's text, for a step that shows something. */
const orPage = async (e) => { throw new Error(`${e.message}\npage: ${await app.$('main').getText()}`); };

/** The theme the page shows: what main.ts sets from the system's. */
const setTheme = (theme) => app.execute((t) => { document.documentElement.dataset.theme = t; }, theme);

/**
 * Runs axe-core in the page (injected with the script itself, as the
 * page's CSP allows no other script) and returns its serious and critical
 * violations, each with the elements it names.
 */
async function violations() {
  const found = await app.executeAsync(`${AXE}
    const done = arguments[arguments.length - 1];
    axe.run(document, {
      runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] },
      resultTypes: ['violations'],
    }).then(
      (r) => done(JSON.stringify(r.violations
        .filter((v) => v.impact === 'serious' || v.impact === 'critical')
        .map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(' ')).slice(0, 5) })))),
      (e) => done(JSON.stringify([{ id: 'axe-error', help: String(e) }])),
    );`);
  return JSON.parse(found);
}

/** Fails if the page, its header or its main part is wider than the
 * window: a page that scrolls sideways hides its edge, and a click aimed
 * at a control can land beside it. */
async function fitsTheWindow(where) {
  const wide = await app.execute(() => {
    const main = document.querySelector('main');
    return {
      page: document.documentElement.scrollWidth - window.innerWidth,
      header: document.querySelector('.shell > header')?.scrollWidth - window.innerWidth,
      main: main ? main.scrollWidth - main.clientWidth : 0,
    };
  });
  assert.ok(wide.page <= 0 && wide.header <= 0 && wide.main <= 0, `${where}: wider than the window by ${JSON.stringify(wide)} px`);
}

/** Checks `screen` in both themes, and that nothing is wider than the
 * window. */
async function audit(screen) {
  await fitsTheWindow(screen);
  for (const theme of ['light', 'dark']) {
    await setTheme(theme);
    const found = await violations();
    await screenshot(app, join(SHOTS, `a11y-${screen}-${theme}.png`));
    assert.deepEqual(found, [], `${screen}, ${theme} theme:\n${JSON.stringify(found, null, 2)}`);
  }
  await setTheme('light');
}

/**
 * Presses Tab from the top of the page until the focus comes round, and
 * returns where it went: each stop's test id (or tag), the part of the
 * screen it is in, and where it is. Also returns the enabled, visible
 * controls the focus never reached.
 */
async function tabRound(limit = 200) {
  await app.execute(() => {
    document.activeElement instanceof HTMLElement && document.activeElement.blur();
    for (const e of document.querySelectorAll('[data-a11y-seen]')) e.removeAttribute('data-a11y-seen');
    window.__stops = [];
    window.__first = null;
    window.__onFocus = (e) => {
      const el = e.target;
      window.__first ??= el;
      el.setAttribute('data-a11y-seen', '');
      const r = el.getBoundingClientRect();
      const part = el.closest('header, section, .call, main');
      window.__stops.push({
        id: el.getAttribute('data-testid') ?? el.tagName.toLowerCase(),
        part: part ? `${part.tagName.toLowerCase()}.${[...part.classList].join('.')}` : 'page',
        top: r.top + (part?.closest('main')?.scrollTop ?? 0),
        visible: r.width > 0 && r.height > 0,
      });
    };
    document.addEventListener('focusin', window.__onFocus);
  });
  for (let i = 0; i < limit; i += 1) {
    await app.keys(['Tab']);
    if (await app.execute(() => window.__stops.length > 1 && document.activeElement === window.__first)) break;
  }
  return app.execute(() => {
    document.removeEventListener('focusin', window.__onFocus);
    // The round ends where it began: that stop is not a step.
    const stops = window.__stops.length > 1 && window.__stops.at(-1).id === window.__stops[0].id
      ? window.__stops.slice(0, -1) : window.__stops;
    const controls = [...document.querySelectorAll('button, input, select, textarea, a[href], summary, [tabindex]')]
      .filter((e) => !e.disabled && e.getAttribute('tabindex') !== '-1' && e.getClientRects().length > 0
        && !e.closest('[inert], [aria-hidden="true"]'));
    // A group of radio buttons is one stop: the arrows move within it.
    const groupSeen = (e) => e.type === 'radio'
      && [...document.querySelectorAll(`input[type="radio"][name="${e.name}"]`)].some((r) => r.hasAttribute('data-a11y-seen'));
    const missed = controls.filter((e) => !e.hasAttribute('data-a11y-seen') && !groupSeen(e))
      .map((e) => e.getAttribute('data-testid') ?? `${e.tagName.toLowerCase()} "${(e.textContent || e.getAttribute('aria-label') || '').trim().slice(0, 40)}"`);
    return { stops, missed };
  });
}

/** Asserts that the focus reached every control and went down each part. */
async function keyboardOnly(screen) {
  const { stops, missed } = await tabRound();
  assert.ok(stops.length >= 2, `${screen}: Tab moved the focus ${stops.length} times`);
  assert.deepEqual(missed, [], `${screen}: controls Tab never reaches`);
  for (let k = 1; k < stops.length; k += 1) {
    const [a, b] = [stops[k - 1], stops[k]];
    assert.ok(b.visible, `${screen}: the focus went to ${b.id}, which is not on screen`);
    if (a.part === b.part) {
      assert.ok(b.top >= a.top - 4, `${screen}: Tab went back up, from ${a.id} to ${b.id} in ${a.part}`);
    }
  }
}

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  ctx.dir = mkdtempSync(join(tmpdir(), 'mandate-a11y-'));
  await startProvider(ctx);
  await startBroker(ctx, [], { RUST_LOG: 'warn' });
  ctx.principal = `${ctx.issuer}#alice`;
  const opened = await openSession({
    MANDATE_ISSUER: ctx.issuer,
    MANDATE_BROKER: ctx.broker,
    MANDATE_DATA_DIR: join(ctx.dir, 'app'),
    MANDATE_KEYRING_SERVICE: `mandate-a11y-${process.pid}`,
    MANDATE_BROWSER: `${process.execPath} ${join(ROOT, 'tests/idp/browse.mjs')} --user alice`,
    MANDATE_EXPIRY_REMINDERS: 'off',
    XDG_CONFIG_HOME: join(ctx.dir, 'config'),
    RUST_LOG: 'warn',
  });
  app = opened.session;
  for (const key of ['reader.key', 'writer.key']) {
    const { code, output } = await cli(['agent', 'init', '--key', join(ctx.dir, key)]);
    assert.equal(code, 0, output);
  }
});

after(() => closeAll(app, ctx.dir));

test('every screen, in both themes, by keyboard, with status changes said and the header in view', { timeout: 420_000 }, async () => {
  await app.$('[data-testid="sign-in"]').waitForDisplayed({ timeout: WAIT });
  // The checks can fail: a button with no name; a button Tab never
  // reaches; one that takes the focus out of the screen's order.
  await app.execute(() => {
    const section = document.querySelector('section.signin');
    const nameless = document.createElement('button');
    nameless.id = 'a11y-nameless';
    section.append(nameless);
    const unreachable = document.createElement('button');
    unreachable.id = 'a11y-unreachable';
    unreachable.textContent = 'Unreachable';
    unreachable.style.visibility = 'hidden';
    section.append(unreachable);
  });
  const caught = await violations();
  assert.ok(caught.some((v) => v.id === 'button-name' && v.nodes.includes('#a11y-nameless')), JSON.stringify(caught));
  await assert.rejects(keyboardOnly('a bad sign-in'), /controls Tab never reaches[\s\S]*Unreachable/);
  await app.execute(() => {
    document.getElementById('a11y-unreachable').remove();
    const first = document.getElementById('a11y-nameless');
    first.textContent = 'First';
    first.tabIndex = 1;
  });
  await assert.rejects(keyboardOnly('a bad sign-in'), /Tab went back up, from button to sign-in/);
  await app.execute(() => document.getElementById('a11y-nameless').remove());
  await audit('sign-in');
  await keyboardOnly('sign-in');
  await app.$('[data-testid="sign-in"]').click();
  await app.$('[data-testid="pending-count"]').waitForDisplayed({ timeout: WAIT });

  // A request arrives: the live region says so.
  const announcer = await app.$('[data-testid="announcer"]');
  assert.equal(await announcer.getAttribute('role'), 'status');
  await listen();
  const reader = ask('reader.key', 'Report Reader', 'files:read,write:https://files.example/reports/', 'Summarize the Q3 reports');
  await rowIn(app, 'Summarize the Q3 reports');
  await until('the arrival said', async () => /A new request: 1 waiting/.test(await said()));
  assert.equal(await announcer.getAttribute('aria-live'), 'polite');

  // The inbox with the request open.
  await (await rowIn(app, 'Summarize the Q3 reports')).click();
  await app.$('[data-testid="approve"]').waitForDisplayed({ timeout: WAIT });
  await audit('inbox');
  await keyboardOnly('inbox');

  // The detail scrolls under the header; the inbox stays beside it.
  const scrolled = await app.execute(() => {
    const main = document.querySelector('main');
    main.scrollTop = main.scrollHeight;
    const bar = document.querySelector('header.bar').getBoundingClientRect();
    const row = document.querySelector('[data-testid="inbox-row"]').getBoundingClientRect();
    return { scrollTop: main.scrollTop, bar: bar.top, barBottom: bar.bottom, row: row.top, height: window.innerHeight };
  });
  assert.ok(scrolled.scrollTop > 0, `the detail is taller than the window (${JSON.stringify(scrolled)})`);
  assert.equal(scrolled.bar, 0, 'the header stays at the top');
  assert.ok(scrolled.row >= scrolled.barBottom && scrolled.row < scrolled.height, `the inbox stays in view (${JSON.stringify(scrolled)})`);
  await screenshot(app, join(SHOTS, 'a11y-detail-scrolled.png'));

  // Approving is said too.
  const code = await until('the reader\'s code', () => codeIn(reader.output));
  await matchCode(app, code);
  await app.$('[data-testid="tier-lease"]').click();
  await app.$('[data-testid="approve"]').click();
  await app.$('[data-testid="decision"]').waitForDisplayed({ timeout: WAIT });
  await until('the approval said', async () => /Approved: the grant for Report Reader/.test(await said()));
  assert.equal((await ended(reader, 'the reader')).code, 0, reader.output);

  // A second request, for the Rules and History screens to show a denial.
  const writer = ask('writer.key', 'Writer', 'files:write:https://files.example/drafts/', 'Write the drafts');
  await (await rowIn(app, 'Write the drafts')).click();
  await app.$('[data-testid="deny"]').click();
  await app.$('[data-testid="confirm-deny"]').click();
  await app.$('[data-testid="decision"]').waitForDisplayed({ timeout: WAIT });
  await until('the denial said', async () => /Denied/.test(await said()));
  await ended(writer, 'the writer');

  // At the window's least width (tauri.conf.json: 720 px) nothing is
  // wider than the window either.
  const size = await app.getWindowSize();
  await app.setWindowSize(720, size.height);
  await until('the narrow window', async () => (await app.execute(() => window.innerWidth)) <= 720, 10_000);
  await fitsTheWindow('at 720 px');
  await screenshot(app, join(SHOTS, 'a11y-narrow.png'));
  await app.setWindowSize(size.width, size.height);

  for (const screen of ['delegations', 'rules', 'activity', 'history', 'devices', 'settings']) {
    await app.$(`[data-testid="nav-${screen}"]`).click();
    await until(`the ${screen} screen`, async () => !(await app.$('main [role="status"]').isExisting())
      || !/Loading|Checking/.test(await app.$('main [role="status"]').getText()));
    await audit(screen);
    await keyboardOnly(screen);
  }
});

test('settings are checked, kept, and used', { timeout: 180_000 }, async () => {
  const file = join(ctx.dir, 'app', 'settings.json');
  const autostart = join(ctx.dir, 'config', 'autostart', 'mandate.desktop');
  await app.$('[data-testid="nav-settings"]').click();
  await listen();
  const broker = await app.$('[data-testid="settings-broker"]');
  await broker.waitForDisplayed({ timeout: WAIT });

  // Plain http to another machine: refused, said why, nothing written.
  await broker.setValue('http://mandate.example.com');
  await app.$('[data-testid="settings-save"]').click();
  const error = await app.$('[data-testid="settings-error"]');
  await error.waitForDisplayed({ timeout: WAIT });
  assert.match(await error.getText(), /the broker: the broker must be reached over https[\s\S]*input\.invalid/);
  assert.ok(!existsSync(file), 'nothing saved');

  // Good settings, by keyboard: saved, kept on disk, read back.
  await broker.click();
  await app.keys(['Control', 'a']);
  await app.keys(['Backspace']);
  await app.$('[data-testid="settings-lease"]').selectByAttribute('value', '60');
  await app.$('[data-testid="settings-login"]').click();
  await app.$('[data-testid="settings-notifications"]').click();
  await app.$('[data-testid="settings-save"]').click();
  await app.$('[data-testid="settings-saved"]').waitForDisplayed({ timeout: WAIT }).catch(orPage);
  assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')), {
    broker_url: null, issuer: null, start_at_login: true, menu_entry: false, notifications: false, lease_minutes: 60, rule_days: 30,
  });
  assert.ok(!(await app.$('[data-testid="settings-menu"]').isExisting()), 'only the AppImage offers a menu entry');
  assert.match(readFileSync(autostart, 'utf8'), /^Exec="[^"]*mandate-app"$/m);
  await until('the save said', async () => /Settings saved/.test(await said()));
  assert.ok(!(await app.$('[data-testid="settings-restart-needed"]').isExisting()), 'nothing that needs a restart changed');

  // Used: a lease is offered for an hour first.
  const asking = ask('reader.key', 'Report Reader', 'files:read:https://files.example/reports/', 'Read the Q4 reports');
  await app.$('[data-testid="nav-inbox"]').click();
  await (await rowIn(app, 'Read the Q4 reports')).click();
  await until('the lease offered for an hour', async () =>
    (await app.$('[data-testid="lease-minutes"]').getValue()) === '60');

  // Starting at login, off again: the entry goes. A new provider waits
  // for the next start, and says so.
  await app.$('[data-testid="nav-settings"]').click();
  await app.$('[data-testid="settings-login"]').waitForDisplayed({ timeout: WAIT });
  await app.$('[data-testid="settings-login"]').click();
  await app.$('[data-testid="settings-issuer"]').setValue('https://login.example.com');
  await app.$('[data-testid="settings-save"]').click();
  await app.$('[data-testid="settings-restart-needed"]').waitForDisplayed({ timeout: WAIT }).catch(orPage);
  assert.ok(!existsSync(autostart), 'the autostart entry is gone');
  assert.equal(JSON.parse(readFileSync(file, 'utf8')).issuer, 'https://login.example.com');
  asking.kill?.();
});
