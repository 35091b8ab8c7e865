// The approval tiers in the real app (mandate-app, WebKitGTK, over
// WebDriver), with a real provider, broker, resource server and agents
// using the `mandate` CLI: each tier approved with the keyboard alone; a
// one-call grant refused on its second call; a lease counting down and
// Stop revoking it (the resource server then refuses); a rule approving a
// request that fits it without a prompt, and prompting, with the
// difference, for one that goes past it; the Rules screen ending the rule;
// "deny always" keeping the agent's next request out of the inbox; and
// number matching refusing wrong codes.
//
// Screens are saved under target/e2e-shots/ as tiers-*.png.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ROOT, WAIT, bin, cli as cliAt, closeAll, codeIn, openSession, rowIn, start, startBroker, startProvider,
  typeInto, until, withTimeout,
  tabTo as tabToIn, screenshot,
} from './harness.mjs';

const SHOTS = join(ROOT, 'target', 'e2e-shots');
const ctx = {};
let app;

const shot = (name) => screenshot(app, join(SHOTS, `tiers-${name}.png`));
const cli = (args) => cliAt(ctx.broker, args);
const pendingCount = async () => app.$('[data-testid="pending-count"]').getText();

/** `mandate agent request ... --wait` by the agent with key `key`. */
function ask(key, name, scope, lifetime, purpose) {
  return start(bin('mandate'), [
    'agent', 'request', '--key', join(ctx.dir, key), '--principal', ctx.principal,
    '--scope', scope, '--name', name, '--purpose', purpose, '--lifetime', String(lifetime),
    '--max-depth', '0', '--wait', '--timeout', '120', '--out', join(ctx.dir, `${key}.json`),
  ], { MANDATE_BROKER: ctx.broker });
}

/** A call to the file server as the agent with key `key`, under its mandate. */
function call(key, path = '/files/reports/q3/revenue.txt') {
  return cli(['agent', 'call', '--key', join(ctx.dir, key), '--mandate', join(ctx.dir, `${key}.json`), 'GET', `${ctx.files}${path}`]);
}

/** Presses Tab until the element with `testid` has the focus. */
const tabTo = (testid, limit = 80) => tabToIn(app, testid, limit);

/** Opens the one pending request with the keyboard, from the top. */
async function openByKeyboard(text) {
  await app.$('[data-testid="nav-inbox"]').click();
  await rowIn(app, text);
  await app.execute(() => document.activeElement instanceof HTMLElement && document.activeElement.blur());
  await tabTo('inbox-row');
  await app.keys(['Enter']);
  const detail = await app.$('[data-testid="detail"]');
  await until(`the detail of "${text}"`, async () => (await detail.getText()).includes(text));
}

/** Chooses the tier `steps` arrow presses below "just this once", and
 * approves, by keyboard. */
async function approveByKeyboard(steps, tier) {
  const order = ['once', 'lease', 'standard', 'rule'];
  await tabTo('tier-once');
  for (let i = 1; i <= steps; i += 1) {
    await app.keys(['ArrowDown']);
    await until(`the tier ${order[i]}`, () => app.$(`[data-testid="tier-${order[i]}"]`).isSelected(), 5_000)
      .catch(async (e) => {
        const on = await app.execute(() => [...document.querySelectorAll('input[name="tier"]')].find((r) => r.checked)?.value);
        const focus = await app.execute(() => document.activeElement?.getAttribute('data-testid'));
        throw new Error(`${e.message} (checked: ${on}, focus: ${focus})`);
      });
  }
  assert.equal(order[steps], tier);
  await tabTo('approve');
  await app.keys(['Enter']);
  await app.$('[data-testid="decision"]').waitForDisplayed({ timeout: WAIT });
}

/** An agent's request that ended (its exit code and output). */
const ended = (asking, what) => withTimeout(asking.ended, 60_000, what);

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  ctx.dir = mkdtempSync(join(tmpdir(), 'mandate-tiers-'));
  await startProvider(ctx);
  await startBroker(ctx, [], { RUST_LOG: 'warn' });
  ctx.principal = `${ctx.issuer}#alice`;
  const files = start(bin('mandate-resource-example'), ['--listen', '127.0.0.1:0', '--broker', ctx.broker], { RUST_LOG: 'warn' });
  ctx.files = await until('the file server', () => files.output.match(/listening on (http:\/\/\S+)/)?.[1]);
  const opened = await openSession({
    MANDATE_ISSUER: ctx.issuer,
    MANDATE_BROKER: ctx.broker,
    MANDATE_DATA_DIR: join(ctx.dir, 'app'),
    MANDATE_KEYRING_SERVICE: `mandate-tiers-${process.pid}`,
    MANDATE_BROWSER: `${process.execPath} ${join(ROOT, 'tests/idp/browse.mjs')} --user alice`,
    MANDATE_EXPIRY_REMINDERS: 'off',
    RUST_LOG: 'warn',
  });
  app = opened.session;
  ctx.driver = opened.driver;
  for (const key of ['once.key', 'lease.key', 'rule.key', 'risky.key', 'writer.key', 'buyer.key']) {
    const { code, output } = await cli(['agent', 'init', '--key', join(ctx.dir, key)]);
    assert.equal(code, 0, output);
  }
  await app.$('[data-testid="sign-in"]').waitForDisplayed({ timeout: WAIT });
  await app.$('[data-testid="sign-in"]').click();
  await app.$('[data-testid="pending-count"]').waitForDisplayed({ timeout: WAIT });
});

after(() => closeAll(app, ctx.dir));

test('just this once, a lease, a rule and deny always, each by keyboard', { timeout: 300_000 }, async () => {
  // Just this once: the default. One call, then the grant is spent.
  const once = ask('once.key', 'Once Bot', 'files:read:https://files.example/reports/', 3600, 'Read the Q3 revenue once');
  await openByKeyboard('Read the Q3 revenue once');
  assert.ok(await app.$('[data-testid="tier-once"]').isSelected(), 'the safest tier is the default');
  await shot('01-tiers');
  await approveByKeyboard(0, 'once');
  assert.match(await app.$('[data-testid="decision-tier"]').getText(), /Just this once/);
  assert.equal((await ended(once, 'the once agent')).code, 0, once.output);
  const first = await call('once.key');
  assert.equal(first.code, 0, first.output);
  const second = await call('once.key');
  assert.notEqual(second.code, 0);
  assert.match(second.output, /limit\.exceeded/);

  // For this task: a lease, with a countdown; Stop revokes it.
  const lease = ask('lease.key', 'Lease Bot', 'files:read:https://files.example/reports/', 3600, 'Read the reports for an hour');
  await openByKeyboard('Read the reports for an hour');
  await approveByKeyboard(1, 'lease');
  assert.equal((await ended(lease, 'the lease agent')).code, 0, lease.output);
  assert.equal((await call('lease.key')).code, 0);
  await app.$('[data-testid="nav-delegations"]').click();
  await app.$('[data-testid="lease"]').waitForDisplayed({ timeout: WAIT });
  // The one-call grant runs too (10 minutes); the lease is Lease Bot's.
  const leases = await app.$$('[data-testid="lease"]');
  const texts = await leases.map((l) => l.getText());
  const mine = leases[texts.findIndex((t) => t.includes('Lease Bot'))];
  assert.ok(mine, texts.join('\n'));
  const countdown = await mine.$('[data-testid="lease-countdown"]');
  const before = await countdown.getText();
  assert.match(before, /^(2\d|30):\d\d$/, 'about 30 minutes left');
  await until('the countdown ticking', async () => (await countdown.getText()) !== before, 5_000);
  await shot('02-lease-countdown');
  await mine.$('[data-testid="lease-stop"]').click();
  await until('the revocation confirmed', async () =>
    /confirmed by the broker/.test(await app.$('[data-testid="revocation-status"]').getText()));
  await until('the file server refusing the lease', async () => {
    const r = await call('lease.key');
    return r.code !== 0 && /chain\.revoked/.test(r.output);
  });
  // Activity shows when the lease ended, and that it was stopped.
  await app.$('[data-testid="nav-activity"]').click();
  await app.$('[data-testid="lease-ended"]').waitForDisplayed({ timeout: WAIT });
  const endings = await app.$$('[data-testid="lease-ended"]').map((e) => e.getText());
  assert.ok(
    endings.some((t) => /Lease Bot[\s\S]*lease of 30 minutes[\s\S]*stopped (just now|\d+ s ago|1 min ago), (2\d|30) minutes early/.test(t)),
    endings.join('\n'),
  );
  await shot('02-lease-ended');

  // Always, within these bounds: a rule. A narrower request is approved
  // without a prompt; a wider one prompts, with what goes past the rule.
  const ruled = ask('rule.key', 'Rule Bot', 'files:read,list:https://files.example/reports/', 3600, 'Keep the reports tidy');
  await openByKeyboard('Keep the reports tidy');
  await approveByKeyboard(3, 'rule');
  assert.match(await app.$('[data-testid="decision-tier"]').getText(), /With a rule/);
  assert.equal((await ended(ruled, 'the rule agent')).code, 0, ruled.output);
  const count = await pendingCount();
  const fits = ask('rule.key', 'Rule Bot', 'files:read:https://files.example/reports/q3/', 600, 'Read Q3 again');
  assert.equal((await ended(fits, 'the fitting request')).code, 0, fits.output);
  await app.$('[data-testid="approved-by-rule"]').waitForDisplayed({ timeout: WAIT });
  assert.equal(await pendingCount(), count, 'no prompt');
  await shot('03-approved-by-rule');
  const wider = ask('rule.key', 'Rule Bot', 'files:read,delete:https://files.example/reports/', 7200, 'Clear out old drafts');
  await app.$('[data-testid="nav-inbox"]').click();
  await (await rowIn(app, 'Clear out old drafts')).click();
  const fit = await app.$('[data-testid="rule-fit"]');
  await fit.waitForDisplayed({ timeout: WAIT });
  const differences = await fit.getText();
  assert.match(differences, /an action the rule does not allow/);
  assert.match(differences, /asks for 2 hours, the rule allows 1 hour/);
  await shot('04-past-the-rule');
  await app.$('[data-testid="deny"]').click();
  await app.$('[data-testid="confirm-deny"]').click();
  await app.$('[data-testid="decision"]').waitForDisplayed({ timeout: WAIT });
  await ended(wider, 'the wider request');

  // The Rules screen: what the rule approved; ending it.
  await app.$('[data-testid="nav-rules"]').click();
  const rule = await app.$('[data-testid="rule"]');
  await rule.waitForDisplayed({ timeout: WAIT });
  assert.match(await rule.getText(), /Rule Bot[\s\S]*approved 1 request/);
  await rule.$('[data-testid="rule-matched-summary"]').click();
  assert.match(await rule.$('[data-testid="rule-matched"]').getText(), /“Read Q3 again” (just now|\d+ s ago|\d+ min ago)/);
  await shot('05-rules');
  await app.$('[data-testid="end-rule"]').click();
  await app.$('[data-testid="no-rules"]').waitForDisplayed({ timeout: WAIT });
  await app.$('[data-testid="ended-rules-summary"]').click()
    .catch(async (e) => { throw new Error(`${e.message}\npage: ${await app.$('main').getText()}`); });
  assert.match(await app.$('[data-testid="ended-rules"]').getText(), /Rule Bot[\s\S]*ended/);
  // Ended, it approves nothing: the same narrow request prompts.
  const again = ask('rule.key', 'Rule Bot', 'files:read:https://files.example/reports/q4/', 600, 'Read Q4 now');

  // Deny always, by keyboard: the agent's next request never shows.
  await openByKeyboard('Read Q4 now');
  await tabTo('deny');
  await app.keys(['Enter']);
  await tabTo('deny-always');
  await app.keys([' ']);
  await tabTo('confirm-deny');
  await app.keys(['Enter']);
  await app.$('[data-testid="decision"]').waitForDisplayed({ timeout: WAIT });
  assert.match(await app.$('[data-testid="decision-tier"]').getText(), /Denied always/);
  await ended(again, 'the denied request');
  const pendingBefore = await pendingCount();
  const blocked = ask('rule.key', 'Rule Bot', 'files:list:https://files.example/reports/', 600, 'Just list them');
  const refused = await ended(blocked, 'the blocked request');
  assert.notEqual(refused.code, 0);
  assert.match(blocked.output, /request\.blocked/);
  assert.equal(await pendingCount(), pendingBefore, 'it never reached the inbox');
  await app.$('[data-testid="nav-rules"]').click();
  const block = await app.$('[data-testid="block"]');
  await block.waitForDisplayed({ timeout: WAIT });
  assert.match(await block.getText(), /Rule Bot[\s\S]*Refused 1 request/);
  await shot('06-denied-always');
  await app.$('[data-testid="lift-block"]').click();
  await app.$('[data-testid="no-blocks"]').waitForDisplayed({ timeout: WAIT });
});

test('number matching: a high-risk request needs the code the agent shows, and three wrong codes deny it', { timeout: 240_000 }, async () => {
  const risky = ask('risky.key', 'Shredder', 'files:read,delete:https://files.example/reports/q3/', 600, 'Shred the Q3 drafts');
  await app.$('[data-testid="nav-inbox"]').click();
  await (await rowIn(app, 'Shred the Q3 drafts')).click();
  await app.$('[data-testid="code-match"]').waitForDisplayed({ timeout: WAIT });
  assert.ok(!(await app.$('[data-testid="binding-code"]').isExisting()), 'the code is typed, not shown');
  assert.ok(!(await app.$('[data-testid="approve"]').isEnabled()), 'no approving before the code');
  const input = await app.$('[data-testid="code-input"]');
  for (const left of ['2 tries left', '1 try left']) {
    await input.setValue('0000-0000');
    await app.$('[data-testid="code-check"]').click();
    await until(`"${left}"`, async () => (await app.$('[data-testid="code-wrong"]').getText()).includes(left))
      .catch(async (e) => { throw new Error(`${e.message}\npage: ${await app.$('main').getText()}`); });
  }
  await shot('07-wrong-code');
  await input.setValue('0000-0000');
  await app.$('[data-testid="code-check"]').click();
  await app.$('[data-testid="flagged"]').waitForDisplayed({ timeout: WAIT });
  const denied = await ended(risky, 'the flagged request');
  assert.notEqual(denied.code, 0);
  assert.match(risky.output, /request\.denied/);

  // The right code, typed as people type it, lets the user approve.
  const retry = ask('risky.key', 'Shredder', 'files:read,delete:https://files.example/reports/q2/', 600, 'Shred the Q2 drafts');
  const code = await until('the agent\'s code', () => codeIn(retry.output));
  await (await rowIn(app, 'Shred the Q2 drafts')).click();
  await app.$('[data-testid="code-input"]').setValue(code.toLowerCase().replace('-', ' '));
  await app.$('[data-testid="code-check"]').click();
  await until('the code accepted', async () => !(await app.$('[data-testid="code-match"]').isExisting()));
  assert.ok(await app.$('[data-testid="approve"]').isEnabled());
  await app.$('[data-testid="approve"]').click();
  await app.$('[data-testid="decision"]').waitForDisplayed({ timeout: WAIT });
  assert.equal((await ended(retry, 'the matched request')).code, 0, retry.output);
});

test('a call to confirm shows its exact body; confirmed, the server takes it once', { timeout: 240_000 }, async () => {
  // The user approves writing, and asks to confirm each call.
  const writer = ask('writer.key', 'Writer', 'files:write:https://files.example/reports/', 3600, 'Keep the Q3 summary current');
  await app.$('[data-testid="nav-inbox"]').click();
  await (await rowIn(app, 'Keep the Q3 summary current')).click();
  await app.$('[data-testid="confirm-each-0"]').click();
  await app.$('[data-testid="tier-standard"]').click();
  await app.$('[data-testid="approve"]').click();
  await app.$('[data-testid="decision"]').waitForDisplayed({ timeout: WAIT });
  assert.equal((await ended(writer, 'the writer\'s request')).code, 0, writer.output);

  // The agent asks to confirm one PUT; the app shows the call itself.
  const url = `${ctx.files}/files/reports/q3/summary.json?version=2`;
  const body = '{"title":"Q3 summary","revenue":"4.2M","note":"draft"}';
  const put = start(bin('mandate'), [
    'agent', 'call', '--key', join(ctx.dir, 'writer.key'), '--mandate', join(ctx.dir, 'writer.key.json'),
    '--body', body, '--confirm', 'Update the Q3 summary with the revenue', 'PUT', url,
  ], { MANDATE_BROKER: ctx.broker });
  const call = await app.$('[data-testid="call"]');
  await call.waitForDisplayed({ timeout: WAIT })
    .catch((e) => { throw new Error(`${e.message}\nagent: ${put.output}`); });
  assert.equal(await call.$('[data-testid="call-method"]').getText(), 'PUT');
  assert.equal(await call.$('[data-testid="call-uri"]').getText(), url);
  const shown = await call.$('[data-testid="call-body"]').getText();
  assert.equal(shown, JSON.stringify(JSON.parse(body), null, 2), 'the body, pretty-printed from its bytes');
  assert.equal(await call.$('[data-testid="call-summary"]').getText(), 'Update the Q3 summary with the revenue');
  await shot('08-confirm-call');
  await call.$('[data-testid="confirm-call"]').click();
  const done = await ended(put, 'the confirmed call');
  assert.equal(done.code, 0, put.output);
  assert.match(put.output, /"written":true/);
  await until('the call gone from the list', async () => !(await app.$('[data-testid="call"]').isExisting()));

  // Without a confirmation, the same call is refused.
  const bare = await cli(['agent', 'call', '--key', join(ctx.dir, 'writer.key'), '--mandate', join(ctx.dir, 'writer.key.json'),
    '--body', body, 'PUT', url]);
  assert.notEqual(bare.code, 0);
  assert.match(bare.output, /confirm\.required/);
});

test('confirming only the calls above an amount the user types, by keyboard', { timeout: 180_000 }, async () => {
  // A scope with a money limit offers "or only the calls above"; one
  // without does not.
  const scope = JSON.stringify({
    type: 'payments', actions: ['create'], locations: ['https://bank.example/payments'],
    limits: { max_amount: { amount: '5000.00', currency: 'EUR' } },
  });
  const buyer = ask('buyer.key', 'Buyer', scope, 3600, 'Pay the supplier invoices');
  await openByKeyboard('Pay the supplier invoices');
  // Paying is high risk: the code the agent shows comes first.
  const code = await until('the buyer\'s code', () => codeIn(buyer.output));
  await tabTo('code-input');
  await typeInto(app, 'code-input', code);
  await tabTo('code-check');
  await app.keys(['Enter']);
  await until('the code accepted', async () => !(await app.$('[data-testid="code-match"]').isExisting()));
  assert.equal(await app.$('[data-testid="confirm-above-amount-0"]').isEnabled(), false, 'off until chosen');
  await tabTo('confirm-above-0');
  await app.keys([' ']);
  await tabTo('confirm-above-amount-0');
  await typeInto(app, 'confirm-above-amount-0', '1000.50');
  assert.match(await app.$('[data-testid="detail"]').getText(), /Or only the calls above[\s\S]*EUR/);
  await shot('09-confirm-above');
  await approveByKeyboard(2, 'standard');
  assert.equal((await ended(buyer, 'the buyer\'s request')).code, 0, buyer.output);
  // The grant the agent holds asks for a confirmation above 1000.50 EUR.
  const { chain } = JSON.parse(readFileSync(join(ctx.dir, 'buyer.key.json'), 'utf8'));
  const grant = JSON.parse(Buffer.from(chain[chain.length - 1].split('.')[1], 'base64url'));
  assert.deepEqual(grant.authorization_details[0].limits, {
    max_amount: { amount: '5000.00', currency: 'EUR' },
    confirm: { above: { amount: '1000.50', currency: 'EUR' } },
  });
});
