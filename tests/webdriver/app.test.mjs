// The real desktop app (mandate-app, WebKitGTK) driven over WebDriver
// (tauri-driver -> WebKitWebDriver), against the real test provider, with
// its broker in-process and agents using the `mandate` CLI. Run it under
// a display and a keyring session:
//
//   scripts/with-keyring.sh xvfb-run -a node --test tests/webdriver/
//
// Each screen is saved as a PNG under target/e2e-shots/.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, WAIT, approveFor, codeIn, freePort, closeAll, start, until, withTimeout, cli as cliAt, ask as askFor, openSession, rowIn, tabTo as tabToIn, typeInto, screenshot } from './harness.mjs';

const SHOTS = join(ROOT, 'target', 'e2e-shots');
const cli = (args) => cliAt(ctx.broker, args);
const ask = (...args) => askFor(ctx, ...args);

const ctx = {};
let browser;

async function shot(name) {
  await screenshot(browser, join(SHOTS, `${name}.png`));
}

const rowWith = (text, timeout) => rowIn(browser, text, timeout);

/** Waits until the pending count reads `n`. */
async function pending(n) {
  await until(`${n} pending`, async () => (await browser.$('[data-testid="pending-count"]').getText()) === String(n));
}

/** Presses Tab until the element with `testid` has the focus. */
const tabTo = (testid, limit = 80) => tabToIn(browser, testid, limit);

/** The app in a new WebDriver session; the first driver's output is the app's log. */
async function openApp(env) {
  const { session, driver } = await openSession(env);
  ctx.driver ??= driver;
  return session;
}

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  ctx.dir = mkdtempSync(join(tmpdir(), 'mandate-webdriver-'));
  const idp = start(process.execPath, [join(ROOT, 'tests/idp/server.mjs'), '--port', '0']);
  ctx.issuer = await until('the provider', () => idp.output.match(/^issuer (\S+)$/m)?.[1]);
  ctx.principal = `${ctx.issuer}#alice`;
  const brokerPort = await freePort();
  ctx.broker = `http://127.0.0.1:${brokerPort}`;
  ctx.keyring = `mandate-webdriver-${process.pid}`;
  ctx.driverEnv = {
    MANDATE_ISSUER: ctx.issuer,
    MANDATE_DATA_DIR: join(ctx.dir, 'app'),
    MANDATE_BROKER_LISTEN: `127.0.0.1:${brokerPort}`,
    MANDATE_KEYRING_SERVICE: ctx.keyring,
    // Everything, including each payload sent to the page (target
    // mandate_app::ipc): the secrets test searches it.
    RUST_LOG: 'trace',
    MANDATE_BROWSER: `${process.execPath} ${join(ROOT, 'tests/idp/browse.mjs')} --user alice`,
  };
  // Desktop notifications go over the session bus to
  // org.freedesktop.Notifications; the bus's monitor sees each call.
  ctx.notifications = start('dbus-monitor', ['--session', "type='method_call',interface='org.freedesktop.Notifications',member='Notify'"]);
  browser = await openApp(ctx.driverEnv);
  for (const key of ['a.key', 'b.key', 'h.key']) {
    const { code, output } = await cli(['agent', 'init', '--key', join(ctx.dir, key)]);
    assert.equal(code, 0, output);
  }
});

after(() => closeAll(browser, ctx.dir));

test('sign in, see a sub-agent request live, approve it narrowed by keyboard, deny another', { timeout: 240_000 }, async () => {
  // 1. Sign in through the real provider (the test browser hook).
  const signIn = await browser.$('[data-testid="sign-in"]');
  await signIn.waitForDisplayed({ timeout: WAIT });
  assert.equal(await browser.$('[data-testid="provider"]').getText(), ctx.issuer);
  await shot('01-sign-in');
  await signIn.click();
  const count = await browser.$('[data-testid="pending-count"]');
  await count.waitForDisplayed({ timeout: WAIT });
  assert.equal(await count.getText(), '0');
  await shot('02-inbox-empty');

  // Agent A asks and is approved as asked: it can now delegate.
  const a = ask('a.key', 'Report Bot', 'files:read,write:https://files.example/reports/',
    ['--max-depth', '1', '--wait', '--timeout', '120', '--out', join(ctx.dir, 'a.json')]);
  const rowA = await rowWith('Tidy the Q3 reports')
    .catch((e) => { throw new Error(`${e.message}\nagent A: ${a.output}\napp: ${ctx.driver.output.slice(-3000)}`); });
  // A desktop notification told the user.
  await until('a desktop notification', () => ctx.notifications.output.includes('An agent asks for your authority.'));
  await rowA.click();
  await browser.$('[data-testid="approve"]').waitForDisplayed({ timeout: WAIT });
  await approveFor(browser);
  assert.equal((await withTimeout(a.ended, WAIT, 'agent A')).code, 0, a.output);
  await pending(0);

  // 2-3. Sub-agent B asks the user, endorsed by A: user, agent, sub-agent.
  // The request appears without a refresh (the inbox stream).
  const b = ask('b.key', 'Shredder', 'files:read,delete:https://files.example/reports/q3/',
    ['--parent', join(ctx.dir, 'a.json'), '--endorse-key', join(ctx.dir, 'a.key'), '--max-depth', '0',
      '--wait', '--timeout', '120', '--out', join(ctx.dir, 'b.json')], 'Shred the Q3 drafts');
  await rowWith('Shred the Q3 drafts');
  await pending(1);
  await shot('03-inbox-sub-agent-request');

  // 4. Approve narrowed, by keyboard alone: open it, untick "delete".
  await browser.execute(() => document.activeElement instanceof HTMLElement && document.activeElement.blur());
  await tabTo('inbox-row');
  await browser.keys(['Enter']);
  await browser.$('[data-testid="chain"]').waitForDisplayed({ timeout: WAIT });
  const hops = await browser.$$('[data-testid="chain"] > li');
  assert.equal(hops.length, 3, 'user, agent, sub-agent');
  assert.match(await hops[1].getText(), /Report Bot/);
  assert.match(await hops[2].getText(), /Shredder[\s\S]*\+ files: delete/);
  await shot('04-detail-chain');
  await tabTo('action-0-delete');
  await browser.keys([' ']);
  assert.equal(await browser.$('[data-testid="approve"]').getText(), 'Approve narrowed');
  // ... and shorten the lifetime from the hour asked to 15 minutes.
  await tabTo('lifetime');
  await browser.keys(['ArrowUp']);
  await until('15 minutes chosen', async () => (await browser.$('[data-testid="lifetime"]').getValue()) === '900');
  // Deleting is high risk: the user types the code the agent shows.
  await tabTo('code-input');
  await typeInto(browser, 'code-input', codeIn(b.output));
  await browser.keys(['Enter']);
  await until('the code accepted', async () => !(await browser.$('[data-testid="code-match"]').isExisting()));
  // For the 15 minutes chosen, not just this once: the tiers by arrow keys.
  await tabTo('tier-once');
  for (const tier of ['lease', 'standard']) {
    await browser.keys(['ArrowDown']);
    await until(`the tier ${tier}`, () => browser.$(`[data-testid="tier-${tier}"]`).isSelected());
  }
  await tabTo('approve');
  await browser.keys(['Enter']);
  await browser.$('[data-testid="decision"]').waitForDisplayed({ timeout: WAIT });
  await shot('05-approved-narrowed');

  // 5. The sub-agent gets exactly the narrowed grant.
  assert.equal((await withTimeout(b.ended, WAIT, 'sub-agent B')).code, 0, b.output);
  const mandate = JSON.parse(readFileSync(join(ctx.dir, 'b.json'), 'utf8'));
  const leaf = JSON.parse(Buffer.from(mandate.chain.at(-1).split('.')[1], 'base64url'));
  assert.deepEqual(leaf.authorization_details, [
    { type: 'files', actions: ['read'], locations: ['https://files.example/reports/q3/'] },
  ]);
  assert.equal(leaf.exp - leaf.iat, 900, `the lifetime chosen: ${JSON.stringify(leaf)}`);
  const verified = await cli(['verify', '--mandate', join(ctx.dir, 'b.json')]);
  assert.equal(verified.code, 0, verified.output);

  // 6. A second request is denied, with a reason the agent sees.
  await pending(0);
  const c = ask('a.key', 'Report Bot', 'files:read:https://files.example/reports/',
    ['--wait', '--timeout', '120', '--out', join(ctx.dir, 'c.json')], 'Read the reports again');
  await (await rowWith('Read the reports again')).click();
  await browser.$('[data-testid="deny"]').waitForDisplayed({ timeout: WAIT });
  await browser.$('[data-testid="deny"]').click();
  await browser.$('[data-testid="deny-reason"]').setValue('Not this week');
  await browser.$('[data-testid="confirm-deny"]').click();
  await browser.$('[data-testid="decision"]').waitForDisplayed({ timeout: WAIT });
  await shot('06-denied');
  const denied = await withTimeout(c.ended, WAIT, 'agent A, denied');
  assert.notEqual(denied.code, 0);
  assert.match(c.output, /request\.denied/);
  assert.match(c.output, /Not this week/);

  // The history verifies.
  await browser.$('button=History').click();
  await browser.$('[data-testid="history-verified"]').waitForDisplayed({ timeout: WAIT });
  await shot('07-history');
  await browser.$('button*=Inbox').click();
});

test('a hostile request renders as inert text, and its fingerprint stays visible', { timeout: 120_000 }, async () => {
  const name = 'R\u0435p\u043ert Bot <img src=x onerror="document.title=\'pwned\'"><script>document.title=\'pwned\'</script>\u202Egpj.exe';
  const h = ask('h.key', name, 'files:read:https://files.example/reports/', [],
    '<b>bold</b> <a href="https://evil.example">click</a>');
  await (await rowWith('<b>bold</b>')).click();
  const shown = await browser.$('[data-testid="agent-name"]');
  await shown.waitForDisplayed({ timeout: WAIT });
  const text = await browser.execute(() => document.querySelector('[data-testid="agent-name"]').textContent);
  assert.equal(text, name, 'the name is text, exactly as sent');
  const injected = await browser.execute(() => ({
    img: document.querySelectorAll('[data-testid="detail"] img, [data-testid="inbox"] img').length,
    script: document.querySelectorAll('body script').length,
    links: document.querySelectorAll('[data-testid="detail"] a, [data-testid="inbox"] a').length,
    bold: document.querySelectorAll('[data-testid="detail"] b, [data-testid="inbox"] b').length,
    title: document.title,
  }));
  assert.deepEqual(injected, { img: 0, script: 0, links: 0, bold: 0, title: 'Mandate' });
  assert.equal(
    await browser.execute(() => document.querySelector('[data-testid="interpretation"]').textContent),
    '<b>bold</b> <a href="https://evil.example">click</a>',
  );
  const fingerprint = await browser.$('[data-testid="agent-fingerprint"]');
  assert.ok(await fingerprint.isDisplayed());
  assert.match(await fingerprint.getText(), /^[A-Za-z0-9_-]{4}(-[A-Za-z0-9_-]{4}){3}$/);
  const warnings = await browser.$$('[data-testid="agent-warning"]').map((w) => w.getText());
  assert.ok(warnings.some((w) => /reverse/.test(w)), warnings.join(' | '));
  assert.ok(warnings.some((w) => /alphabets/.test(w)), warnings.join(' | '));
  await shot('08-hostile-request');
  assert.equal((await withTimeout(h.ended, WAIT, 'the hostile agent')).code, 0, h.output);
});

/** A secret from the keyring session the app uses, as raw bytes. */
function fromKeyring(account) {
  return execFileSync('secret-tool', ['lookup', 'service', ctx.keyring, 'username', account], { timeout: 10_000 });
}

/** Every file under `dir`, concatenated. */
function filesUnder(dir) {
  return Buffer.concat(readdirSync(dir, { recursive: true })
    .map((name) => join(dir, name))
    .filter((path) => statSync(path).isFile())
    .map((path) => readFileSync(path)));
}

test('no secret reaches the database, the logs or any payload sent to the page', { timeout: 60_000 }, async () => {
  // The journey above ran in this app: sign-in, key enrolled, requests
  // seen, approvals, a denial, the history. Its secrets, from the keyring:
  const seed = fromKeyring(`user-key:${ctx.principal}`);
  assert.equal(seed.length, 32, 'the user key is a 32-byte seed');
  const session = JSON.parse(fromKeyring(`session:${ctx.principal}`).toString('utf8'));
  assert.ok(session.refresh_token, 'the provider issued a refresh token');
  const needles = {
    'the private key': seed,
    'the private key, base64url': Buffer.from(seed.toString('base64url')),
    'the private key, base64': Buffer.from(seed.toString('base64')),
    'the private key, hex': Buffer.from(seed.toString('hex')),
    'the refresh token': Buffer.from(session.refresh_token),
    'the ID token': Buffer.from(session.id_token),
  };

  // The haystacks: the app's data directory (its SQLite history), and its
  // log at TRACE, which holds every reply and event sent to the page.
  const data = filesUnder(join(ctx.dir, 'app'));
  assert.ok(data.includes(Buffer.from(ctx.principal)), 'the history was read');
  const log = Buffer.from(ctx.driver.output);
  const payloads = ctx.driver.output.split('\n').filter((line) => line.includes('mandate_app::ipc'));
  for (const what of ['app_state', 'sign_in', 'inbox', 'detail', 'approve', 'deny', 'history', 'mandate://update']) {
    assert.ok(payloads.some((line) => line.includes(`what="${what}"`)), `the log holds the ${what} payloads`);
  }
  assert.ok(payloads.some((line) => line.includes('Shred the Q3 drafts')), 'the payloads are there in full');
  // A token the page was given (the grant signed for B) is found byte for
  // byte, as a secret would be.
  const grant = JSON.parse(readFileSync(join(ctx.dir, 'b.json'), 'utf8')).chain.at(-1);
  assert.ok(payloads.some((line) => line.includes(grant)), 'the search finds a token sent to the page');

  for (const [what, needle] of Object.entries(needles)) {
    assert.ok(!data.includes(needle), `${what} is in the app's data directory`);
    assert.ok(!log.includes(needle), `${what} is in the log or a payload sent to the page`);
  }
});

test('a long inbox is virtual, and the keyboard reaches every row', { timeout: 180_000 }, async () => {
  // More rows than fit in view, within the in-process broker's default
  // limits (docs/broker.md, "A fair inbox"): at most 5 pending requests
  // per agent key, 20 in the new lane (agents Alice never approved) and
  // 30 prompts a lane in a burst. a and b were approved above, so theirs
  // wait in the known lane; four new agents file the rest.
  const before = Number(await browser.$('[data-testid="pending-count"]').getText());
  const total = 24;
  const keys = ['a.key', 'b.key', 'n0.key', 'n1.key', 'n2.key', 'n3.key'];
  for (const key of keys.filter((k) => k.startsWith('n'))) {
    const { code, output } = await cli(['agent', 'init', '--key', join(ctx.dir, key)]);
    assert.equal(code, 0, output);
  }
  for (let i = before; i < total; i += 5) {
    const batch = [];
    for (let j = i; j < Math.min(i + 5, total); j += 1) {
      // Listing, not reading: a's request to read was denied above, and
      // the broker holds that ask back for a while (request.cooldown).
      batch.push(ask(keys[j % keys.length], 'Report Bot', 'files:list:https://files.example/reports/', [], `Batch job ${j}`));
    }
    for (const b of batch) assert.equal((await withTimeout(b.ended, WAIT, 'filing')).code, 0, b.output);
  }
  await pending(total);
  const inPage = (await browser.$$('[data-testid="inbox-row"]')).length;
  const view = await browser.execute(() => [document.querySelector('[data-testid="inbox"]').clientHeight, window.innerHeight]);
  assert.ok(inPage < total / 2, `${inPage} of ${total} rows are in the page (${view})`);

  // From the first row, End reaches the oldest request, Home the newest.
  await browser.execute(() => document.activeElement instanceof HTMLElement && document.activeElement.blur());
  await tabTo('inbox-row');
  await browser.keys(['End']);
  await until('the last row focused', async () => (await browser.execute(() => document.activeElement?.getAttribute('data-index'))) === String(total - 1));
  assert.ok(await focusedInView(), 'the last row was scrolled into view');
  await browser.keys(['ArrowUp']);
  assert.equal(await browser.execute(() => document.activeElement?.getAttribute('data-index')), String(total - 2));
  await shot('09-inbox-long-end');
  await browser.keys(['Home']);
  await until('the first row focused', async () => (await browser.execute(() => document.activeElement?.getAttribute('data-index'))) === '0');
  assert.ok(await focusedInView(), 'the first row was scrolled into view');
  await browser.keys(['Enter']);
  await browser.$('[data-testid="detail"]').waitForDisplayed({ timeout: WAIT });
});

/** Whether the focused element lies inside the inbox's scrolled view. */
function focusedInView() {
  return browser.execute(() => {
    const row = document.activeElement.getBoundingClientRect();
    const list = document.querySelector('.rows').getBoundingClientRect();
    return row.top >= list.top - 1 && row.bottom <= list.bottom + 1;
  });
}

/** Answers the native save dialog titled `title` with `path`: WebDriver
 * cannot reach a GTK dialog, so xdotool types into it, as a person would. */
async function answerSaveDialog(title, path) {
  const run = (args) => execFileSync('xdotool', args, { timeout: 10_000 }).toString().trim();
  const win = await until(`the dialog "${title}"`, () => {
    try { return run(['search', '--onlyvisible', '--name', title]).split('\n')[0]; } catch { return false; }
  });
  run(['windowfocus', '--sync', win]);
  // The name field has the focus, with the suggested name selected.
  run(['key', '--clearmodifiers', 'ctrl+a']);
  run(['type', '--delay', '5', path]);
  run(['key', 'Return']);
}

/** The agent id of a key file. */
async function agentId(key) {
  const { code, output } = await cli(['agent', 'id', '--key', join(ctx.dir, key)]);
  assert.equal(code, 0, output);
  return JSON.parse(output).agent_id;
}

/** `key` reports an action under `mandate`; returns the receipt's id. */
async function report(key, mandate, action, summary, rationale, cause) {
  const args = ['agent', 'report', '--key', join(ctx.dir, key), '--mandate', join(ctx.dir, mandate),
    '--action', action, '--target', 'https://files.example/reports/q3/revenue.txt',
    '--summary', summary, '--rationale', rationale];
  if (cause) args.push('--cause', cause);
  const { code, output } = await cli(args);
  assert.equal(code, 0, output);
  return JSON.parse(output.trim().split('\n').at(-1)).receipt;
}

test('delegations, a cascading revoke, the activity, an attribution chain, export, and a history that proves itself', { timeout: 240_000 }, async () => {
  // A (Report Bot) hands part of its work to C, a sub-agent of its own
  // (a sub-delegation signed by A), and says why; C reads a file; B
  // (Shredder, whose grant the user signed directly) reads another.
  const init = await cli(['agent', 'init', '--key', join(ctx.dir, 'c.key')]);
  assert.equal(init.code, 0, init.output);
  const c = await agentId('c.key');
  const delegated = await cli(['agent', 'delegate', '--key', join(ctx.dir, 'a.key'), '--mandate', join(ctx.dir, 'a.json'),
    '--to', c, '--scope', 'files:read:https://files.example/reports/q3/', '--purpose', 'Read the Q3 figures',
    '--max-depth', '0', '--out', join(ctx.dir, 'c.json')]);
  assert.equal(delegated.code, 0, delegated.output);
  const decided = await report('a.key', 'a.json', 'delegate', 'Asked a helper to read the Q3 figures', 'The helper holds the parser');
  await report('c.key', 'c.json', 'files.read', 'Read the Q3 revenue file', 'The summary needs the figures', decided);
  await report('b.key', 'b.json', 'files.read', 'Read the Q3 drafts', 'To list what to shred');

  // 1. The delegations, by agent: A's grant and C's beneath it (usage
  // rolls up: C's read counts for A), and B's; A's "write" never used.
  await browser.$('[data-testid="nav-delegations"]').click();
  // The screen re-reads as the agents' receipts arrive.
  await until('three grants, and every action counted', async () =>
    (await browser.$$('[data-testid="grant"]')).length === 3
    && /2 actions/.test(await browser.$('[data-testid="agent-group"]').getText()))
    .catch(async (e) => {
      const page = await browser.$('main').getText();
      throw new Error(`${e.message}\npage: ${page}\napp: ${ctx.driver.output.split('\n').filter((l) => !l.includes('mandate_app::ipc')).slice(-40).join('\n')}`);
    });
  const groups = await browser.$$('[data-testid="agent-group"]').map((g) => g.getText());
  assert.match(groups[0], /Report Bot[\s\S]*Tidy the Q3 reports[\s\S]*Granted by you[\s\S]*2 actions, last/);
  // (B's name is the last it gave itself: the long-inbox test asked with B's key as "Report Bot".)
  assert.match(groups[1], /Shred the Q3 drafts[\s\S]*Granted by you[\s\S]*1 action, last/);
  assert.match(groups[2], /Read the Q3 figures[\s\S]*Delegated by Report Bot[\s\S]*1 action, last/);
  const unused = await browser.$$('[data-testid="unused"]').map((u) => u.getText());
  assert.deepEqual(unused, ['write · never used']);
  await shot('12-delegations');

  // 2. Revoke A's grant: the preview names C's, which falls with it; B's,
  // which the user signed on its own, stands. Then the signed
  // revocation, confirmed by the broker.
  await (await browser.$$('[data-testid="revoke"]'))[0].click();
  await browser.$('[data-testid="revoke-preview"]').waitForDisplayed({ timeout: WAIT });
  const falls = await browser.$('[data-testid="falls"]').getText();
  assert.match(falls, /Read the Q3 figures/);
  assert.doesNotMatch(falls, /Shred the Q3 drafts/);
  await shot('13-revoke-preview');
  await browser.$('[data-testid="revoke-confirm"]').click();
  await until('the broker confirmed the revocation', async () =>
    /confirmed by the broker/.test(await browser.$('[data-testid="revocation-status"]').getText()));
  await until('only B\'s grant in force', async () => (await browser.$$('[data-testid="grant"]')).length === 1);
  assert.match(await browser.$('[data-testid="agent-group"]').getText(), /Shred the Q3 drafts/);
  const refused = await cli(['verify', '--mandate', join(ctx.dir, 'c.json')]);
  assert.notEqual(refused.code, 0, 'C\'s mandate fell with A\'s grant');
  assert.match(refused.output, /chain\.revoked/);
  const stands = await cli(['verify', '--mandate', join(ctx.dir, 'b.json')]);
  assert.equal(stands.code, 0, stands.output);
  await shot('14-revoked');

  // 3. The activity, filtered by agent: B's one action.
  await browser.$('[data-testid="nav-activity"]').click();
  await until('three actions', async () => (await browser.$$('[data-testid="activity-row"]')).length === 3);
  await browser.$('[data-testid="filter-agent"]').selectByAttribute('value', c);
  await until('only C\'s action', async () => {
    const rows = await browser.$$('[data-testid="activity-row"]').map((r) => r.getText());
    return rows.length === 1 && /Read the Q3 revenue file/.test(rows[0]);
  });
  await shot('15-activity-by-agent');

  // 4. Its attribution chain: your intent, A's interpretation and
  // decision, C's interpretation, then C's action, each verified.
  await (await browser.$('[data-testid="activity-row"]')).click();
  await until('the chain', async () => (await browser.$$('[data-testid="step"]')).length === 5)
    .catch(async (e) => { throw new Error(`${e.message}\npage: ${await browser.$('main').getText()}`); });
  const steps = await browser.$$('[data-testid="step"]').map(async (s) => [await s.getAttribute('data-step'), await s.getText()]);
  assert.deepEqual(steps.map(([k]) => k), ['intent', 'interpretation', 'decision', 'interpretation', 'action']);
  assert.match(steps[0][1], /You[\s\S]*Clean up my reports folder/);
  assert.match(steps[1][1], /Report Bot[\s\S]*Tidy the Q3 reports/);
  assert.match(steps[2][1], /Report Bot[\s\S]*Asked a helper to read the Q3 figures[\s\S]*The helper holds the parser/);
  assert.match(steps[3][1], /Read the Q3 figures[\s\S]*delegated by Report Bot/);
  assert.match(steps[4][1], /Read the Q3 revenue file[\s\S]*The summary needs the figures/);
  for (const [, text] of steps) assert.match(text, /✓ signature verified/);
  await shot('16-attribution');
  // Report it: marked, and in the signed history.
  await browser.$('[data-testid="report-note"]').setValue('I never asked for the revenue');
  await browser.$('[data-testid="report"]').click();
  await browser.$('[data-testid="reported"]').waitForDisplayed({ timeout: WAIT });

  // 5. Export what the filter shows, through the save dialog; the file
  // verifies elsewhere.
  const file = join(ctx.dir, 'exported.jsonl');
  await browser.$('[data-testid="export"]').click();
  await answerSaveDialog('Export the activity', file);
  await until('the export', async () => /Exported 1 record to/.test(await browser.$('[data-testid="exported"]').getText()));
  const lines = readFileSync(file, 'utf8').trim().split('\n');
  assert.equal(lines.length, 1);
  assert.equal(JSON.parse(lines[0]).summary, 'Read the Q3 revenue file');
  const verified = await cli(['verify', '--receipts', file]);
  assert.equal(verified.code, 0, verified.output);
  await shot('17-exported');

  // 6. The history verifies, with the revocation and the report; a row
  // edited behind the app's back is found.
  await browser.$('[data-testid="nav-history"]').click();
  await browser.$('[data-testid="verify-history"]').click();
  await until('verified', async () => /and 3 receipts are intact/.test(await browser.$('[data-testid="history-verified"]').getText()));
  const events = await browser.$('[data-testid="events"]').getText();
  assert.match(events, /You revoked and signed/);
  assert.match(events, /The broker confirmed your revocation/);
  assert.match(events, /You reported an action[\s\S]*I never asked for the revenue/);
  await shot('18-history-verified');
  execFileSync('sqlite3', [join(ctx.dir, 'app', 'history.sqlite'), "UPDATE receipts SET summary = 'Nothing happened' WHERE summary = 'Read the Q3 revenue file'"], { timeout: 10_000 });
  await browser.$('[data-testid="verify-history"]').click();
  await browser.$('[data-testid="history-tampered"]').waitForDisplayed({ timeout: WAIT });
  assert.match(await browser.$('[data-testid="history-tampered"]').getText(), /receipt row \d+: its content does not match its hash/);
  await shot('19-history-tampered');
  execFileSync('sqlite3', [join(ctx.dir, 'app', 'history.sqlite'), "UPDATE receipts SET summary = 'Read the Q3 revenue file' WHERE summary = 'Nothing happened'"], { timeout: 10_000 });
  await browser.$('[data-testid="verify-history"]').click();
  await browser.$('[data-testid="history-verified"]').waitForDisplayed({ timeout: WAIT });
  await browser.$('button*=Inbox').click();
});

test('the dark theme follows the desktop\'s', { timeout: 120_000 }, async () => {
  // The same app and data, restarted under a dark GTK theme.
  await withTimeout(browser.deleteSession(), 15_000, 'closing the app');
  browser = await openApp({ ...ctx.driverEnv, GTK_THEME: 'Adwaita:dark' });
  await browser.$('[data-testid="pending-count"]').waitForDisplayed({ timeout: WAIT });
  assert.equal(await browser.execute(() => matchMedia('(prefers-color-scheme: dark)').matches), true);
  const background = await browser.execute(() => getComputedStyle(document.body).backgroundColor);
  const [r, g, b] = background.match(/\d+/g).map(Number);
  assert.ok(r + g + b < 3 * 64, `a dark background, not ${background}`);
  await shot('10-dark-inbox');
  await (await browser.$('[data-testid="inbox-row"]')).click();
  await browser.$('[data-testid="chain"]').waitForDisplayed({ timeout: WAIT });
  await shot('11-dark-detail');
});
