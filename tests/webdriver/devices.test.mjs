// Keys and devices in the real app (mandate-app, WebKitGTK, over
// WebDriver), against the real test provider, with its broker in-process:
// alice signs in, and the Devices screen shows one key, this computer's.
// Then she signs in on a second device (mandate-engine, the app's engine
// headless, with its own history and keyring, through the same provider
// pages): its key is enrolled, the app raises a desktop notification
// naming that device (seen on the session bus by dbus-monitor), and the
// Devices screen lists both, without a refresh, the new one not marked as
// this computer. Run it under a display and a keyring session:
//
//   scripts/with-keyring.sh xvfb-run -a node --test tests/webdriver/devices.test.mjs
//
// Screens are saved under target/e2e-shots/ as devices-*.png.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, WAIT, bin, closeAll, freePort, openSession, start, until, withTimeout, tabTo as tabToIn, screenshot } from './harness.mjs';

const SHOTS = join(ROOT, 'target', 'e2e-shots');
// The engine adds the system to the name it is given.
const THIS_DEVICE = "Alice's desk (linux)";
const SECOND_DEVICE = "Alice's travel laptop (linux)";
const ENROLLED = 'A new key was enrolled for you on';

const ctx = {};
let browser;

const shot = (name) => screenshot(browser, join(SHOTS, `devices-${name}.png`));

/** The Notify calls dbus-monitor saw so far, each as its text. */
const notifications = () => ctx.notifications.output.split(/^method call /m).slice(1);

/** The Devices screen's rows: name, fingerprint, the "This computer"
 * mark, and the row's whole text. */
async function deviceRows() {
  return browser.execute(() => [...document.querySelectorAll('[data-testid="device"]')].map((row) => ({
    name: row.querySelector('[data-testid="device-name"]')?.textContent,
    fingerprint: row.querySelector('[data-testid="device-fingerprint"]')?.textContent,
    thisDevice: row.getAttribute('data-this-device') === 'true',
    marked: row.querySelector('[data-testid="this-device"]') !== null,
    lastUsed: row.querySelector('[data-testid="device-last-used"]')?.textContent,
    text: row.textContent,
  })));
}

/** Presses Tab until the element with `testid` has the focus. */
const tabTo = (testid, limit = 40) => tabToIn(browser, testid, limit);

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  ctx.dir = mkdtempSync(join(tmpdir(), 'mandate-devices-'));
  const idp = start(process.execPath, [join(ROOT, 'tests/idp/server.mjs'), '--port', '0']);
  ctx.issuer = await until('the provider', () => idp.output.match(/^issuer (\S+)$/m)?.[1]);
  const brokerPort = await freePort();
  ctx.broker = `http://127.0.0.1:${brokerPort}`;
  ctx.browse = `${process.execPath} ${join(ROOT, 'tests/idp/browse.mjs')} --user alice`;
  // Desktop notifications go over the session bus to
  // org.freedesktop.Notifications; the bus's monitor sees each call.
  ctx.notifications = start('dbus-monitor', ['--session', "type='method_call',interface='org.freedesktop.Notifications',member='Notify'"]);
  const opened = await openSession({
    MANDATE_ISSUER: ctx.issuer,
    MANDATE_DATA_DIR: join(ctx.dir, 'app'),
    MANDATE_BROKER_LISTEN: `127.0.0.1:${brokerPort}`,
    MANDATE_KEYRING_SERVICE: `mandate-devices-${process.pid}`,
    MANDATE_DEVICE_NAME: "Alice's desk",
    MANDATE_BROWSER: ctx.browse,
  });
  browser = opened.session;
  ctx.app = opened.driver;
});

after(() => closeAll(browser, ctx.dir));

test('a key enrolled on a second device is notified and listed beside this computer\'s', { timeout: 180_000 }, async (t) => {
  // Sign in through the real provider.
  const signIn = await browser.$('[data-testid="sign-in"]');
  await signIn.waitForDisplayed({ timeout: WAIT });
  await signIn.click();
  await browser.$('[data-testid="pending-count"]').waitForDisplayed({ timeout: WAIT });
  const ownFingerprint = await browser.$('.who .fp').getText();
  assert.match(ownFingerprint, /^[A-Za-z0-9_-]{4}(-[A-Za-z0-9_-]{4}){3}$/);

  // Devices, by keyboard: one key, this computer's, never used yet.
  await browser.execute(() => document.activeElement instanceof HTMLElement && document.activeElement.blur());
  await tabTo('nav-devices');
  await browser.keys(['Enter']);
  await until('one device listed', async () => (await deviceRows()).length === 1)
    .catch((e) => { throw new Error(`${e.message}\napp: ${ctx.app.output.slice(-3000)}`); });
  const [only] = await deviceRows();
  assert.equal(only.name, THIS_DEVICE);
  assert.equal(only.fingerprint, ownFingerprint);
  assert.ok(only.thisDevice && only.marked, `marked as this computer: ${only.text}`);
  assert.match(only.text, /This computer/);
  assert.equal(only.lastUsed, 'never');
  await shot('01-this-computer');
  // Its own enrollment raised no notification.
  assert.equal(notifications().filter((n) => n.includes(ENROLLED)).length, 0, notifications().join('\n'));

  // Alice signs in on a second device: the app's engine, headless, with a
  // history and keyring of its own, through the provider's pages, which
  // enrolls that device's key with the app's broker.
  const second = start(bin('mandate-engine'), [
    '--issuer', ctx.issuer, '--broker', ctx.broker,
    '--data-dir', join(ctx.dir, 'second'), '--keyring-service', `mandate-devices-second-${process.pid}`, 'signin',
  ], { MANDATE_BROWSER: ctx.browse, MANDATE_DEVICE_NAME: "Alice's travel laptop" });
  const { code } = await withTimeout(second.ended, 60_000, 'the second device\'s sign-in');
  assert.equal(code, 0, second.output);
  const secondAccount = JSON.parse(second.output.split('\n').find((l) => l.startsWith('{')));
  assert.equal(secondAccount.principal, `${ctx.issuer}#alice`);
  assert.notEqual(secondAccount.key_fingerprint, ownFingerprint);

  // A desktop notification names the second device.
  const told = await until('the notification of the new key', () =>
    notifications().find((n) => n.includes(ENROLLED) && n.includes(SECOND_DEVICE)))
    .catch((e) => { throw new Error(`${e.message}\nnotifications: ${notifications().join('\n')}\napp: ${ctx.app.output.slice(-3000)}`); });
  t.diagnostic(`notified: ${told.match(/string "A new key[^\n]*/)?.[0]}`);
  assert.match(told, /Not you\? Open Devices in Mandate and remove it\./);
  assert.match(told, / at \d{2}:\d{2}\./);

  // The Devices screen lists both, without a refresh; only the first is
  // this computer.
  await until('two devices listed', async () => (await deviceRows()).length === 2);
  const rows = await deviceRows();
  const mine = rows.filter((r) => r.thisDevice);
  assert.equal(mine.length, 1, JSON.stringify(rows));
  assert.equal(mine[0].name, THIS_DEVICE);
  assert.equal(mine[0].fingerprint, ownFingerprint);
  const other = rows.find((r) => !r.thisDevice);
  assert.equal(other.name, SECOND_DEVICE);
  assert.equal(other.fingerprint, secondAccount.key_fingerprint);
  assert.ok(!other.marked, `the second device is not marked as this computer: ${other.text}`);
  assert.doesNotMatch(other.text, /This computer/);
  assert.equal(other.lastUsed, 'never');
  await shot('02-second-device');
  // One notification for the one new key: none for this computer's own.
  assert.equal(notifications().filter((n) => n.includes(ENROLLED)).length, 1, notifications().join('\n'));

  // Not you? Remove it: this computer's key has no Remove button; the
  // other's asks first, then goes, signed with this computer's key.
  assert.equal((await browser.$$('[data-testid="device-remove"]')).length, 1);
  await browser.$('[data-testid="device-remove"]').click();
  const confirm = await browser.$('[data-testid="device-remove-confirm"]');
  await confirm.waitForDisplayed({ timeout: WAIT });
  await shot('03-remove-confirm');
  await confirm.click();
  await until('one device listed after the removal', async () => (await deviceRows()).length === 1)
    .catch((e) => { throw new Error(`${e.message}\napp: ${ctx.app.output.slice(-3000)}`); });
  const [left] = await deviceRows();
  assert.ok(left.thisDevice, `the one left is this computer's: ${left.text}`);
  assert.equal(left.fingerprint, ownFingerprint);
  await shot('04-removed');
  // The second device cannot sign in with its key again: the broker will
  // not bind a removed key.
  const again = start(bin('mandate-engine'), [
    '--issuer', ctx.issuer, '--broker', ctx.broker,
    '--data-dir', join(ctx.dir, 'second'), '--keyring-service', `mandate-devices-second-${process.pid}`, 'signin',
  ], { MANDATE_BROWSER: ctx.browse, MANDATE_DEVICE_NAME: "Alice's travel laptop" });
  const ended = await withTimeout(again.ended, 60_000, 'the removed device\'s sign-in');
  assert.notEqual(ended.code, 0, again.output);
  assert.match(again.output, /key\.revoked/);
});
