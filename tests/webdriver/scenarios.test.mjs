// The demo scenarios (docs/demo.md) through the real app: the demo agents
// (mandate-demo) ask alice; she approves each in the app (narrowing one);
// the agents follow through against the demo resource servers
// (mandate-demo-resources); the app shows their receipts and attribution;
// she narrows the auditor's grant to what it used, and revokes the rest;
// the resource servers refuse the agents from then on.
//
// Screens are saved under target/e2e-shots/ as scenario-*.png.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, WAIT, approveFor, bin, cli as cliAt, freePort, closeAll, matchCode, openSession, rowIn, start, until, withTimeout, screenshot } from './harness.mjs';

const SHOTS = join(ROOT, 'target', 'e2e-shots');
const ctx = {};
let browser;

const shot = (name) => screenshot(browser, join(SHOTS, `scenario-${name}.png`));
const cli = (args) => cliAt(ctx.broker, args);

/** The demo's progress lines so far, parsed. */
function progress() {
  return ctx.demo.stdoutText.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
}

/** Waits for the demo's `step` of `scenario`, and returns it. */
async function demoStep(scenario, step, timeout = WAIT) {
  return until(`${scenario}: ${step}`, () => progress().find((p) => p.scenario === scenario && p.step === step), timeout)
    .catch((e) => { throw new Error(`${e.message}\ndemo: ${ctx.demo.output.slice(-3000)}\nresources: ${ctx.resources.output.slice(-2000)}`); });
}

/** Calls the demo resource servers as `agent`, under its mandate
 * `mandate` (by default, the one the demo kept for it). */
function call(agent, method, path, mandate = agent) {
  return cli(['agent', 'call', '--key', join(ctx.dir, 'demo', `${agent}.key`),
    '--mandate', join(ctx.dir, 'demo', `${mandate}.mandate.json`), method, `${ctx.resourcesUrl}${path}`]);
}

/** Opens the inbox row holding `text` and approves it for the lifetime
 * chosen, after `narrow`; the code matched is the one the demo's `nth`
 * request of `scenario` showed (typed, for a high-risk request). */
async function approve(text, name, scenario, nth, narrow = async () => {}) {
  const row = await rowIn(browser, text);
  await row.click();
  const detail = await browser.$('[data-testid="detail"]');
  await detail.waitForDisplayed({ timeout: WAIT });
  await until('the request\'s detail', async () => (await detail.getText()).includes(text));
  const shown = await detail.getText();
  const asked = progress().filter((p) => p.scenario === scenario && p.step === 'asked');
  await matchCode(browser, asked[nth].binding_code);
  await narrow();
  await shot(`${name}-request`);
  await approveFor(browser, 'standard');
  return shown;
}

/** Revokes the grant whose group holds `text`, and waits for the broker. */
async function revoke(text) {
  await browser.$('[data-testid="nav-delegations"]').click();
  let index;
  await until(`the grant "${text}"`, async () => {
    const groups = await browser.$$('[data-testid="agent-group"]').map((g) => g.getText());
    index = groups.findIndex((g) => g.includes(text));
    return index >= 0;
  });
  const group = (await browser.$$('[data-testid="agent-group"]'))[index];
  await group.$('[data-testid="revoke"]').click();
  await browser.$('[data-testid="revoke-preview"]').waitForDisplayed({ timeout: WAIT });
  const falls = await browser.$('[data-testid="revoke-preview"]').getText();
  await browser.$('[data-testid="revoke-confirm"]').click();
  await until('the broker confirmed the revocation', async () =>
    /confirmed by the broker/.test(await browser.$('[data-testid="revocation-status"]').getText()));
  return falls;
}

/** Waits until the resource servers refuse `agent`'s call as revoked. */
async function refusedAsRevoked(agent, method, path, mandate = agent) {
  let last;
  await until(`${agent} refused as revoked`, async () => {
    last = await call(agent, method, path, mandate);
    return last.code !== 0 && /chain\.revoked/.test(last.output);
  }, WAIT).catch((e) => { throw new Error(`${e.message}\nlast call: ${last?.output}`); });
}

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  ctx.dir = mkdtempSync(join(tmpdir(), 'mandate-scenarios-'));
  const idp = start(process.execPath, [join(ROOT, 'tests/idp/server.mjs'), '--port', '0']);
  ctx.issuer = await until('the provider', () => idp.output.match(/^issuer (\S+)$/m)?.[1]);
  const brokerPort = await freePort();
  ctx.broker = `http://127.0.0.1:${brokerPort}`;
  const opened = await openSession({
    MANDATE_ISSUER: ctx.issuer,
    MANDATE_DATA_DIR: join(ctx.dir, 'app'),
    MANDATE_BROKER_LISTEN: `127.0.0.1:${brokerPort}`,
    MANDATE_KEYRING_SERVICE: `mandate-scenarios-${process.pid}`,
    MANDATE_BROWSER: `${process.execPath} ${join(ROOT, 'tests/idp/browse.mjs')} --user alice`,
  });
  browser = opened.session;
  ctx.app = opened.driver;
  // The resource servers trust the app's broker: its keys and revocations.
  await until('the broker', async () => {
    try { return (await fetch(`${ctx.broker}/.well-known/mandate`)).ok; } catch { return false; }
  });
  ctx.resources = start(bin('mandate-demo-resources'), ['--listen', '127.0.0.1:0', '--broker', ctx.broker]);
  ctx.resourcesUrl = await until('the resource servers', () => ctx.resources.output.match(/listening on (\S+)/)?.[1]);
});

after(() => closeAll(browser, ctx.dir));

test('the three demo scenarios: approve, follow through, receipts, attribution, revoke', { timeout: 300_000 }, async () => {
  // The agents start before alice signs in: they ask again until the
  // broker knows her, as under `make run`.
  ctx.demo = start(bin('mandate-demo'), ['--broker', ctx.broker, '--resources', ctx.resourcesUrl,
    '--principal', `${ctx.issuer}#alice`, '--dir', join(ctx.dir, 'demo'), '--timeout', '240']);
  const signIn = await browser.$('[data-testid="sign-in"]');
  await signIn.waitForDisplayed({ timeout: WAIT });
  await signIn.click();
  await until('three requests in the inbox', async () =>
    (await browser.$('[data-testid="pending-count"]').getText()) === '3', 60_000)
    .catch((e) => { throw new Error(`${e.message}\ndemo: ${ctx.demo.output.slice(-3000)}`); });
  await shot('01-inbox');

  // 1. Kubernetes: read-only, one namespace, one hour; approved as asked.
  const k8s = await approve('why checkout keeps restarting', 'k8s', 'k8s', 0);
  assert.match(k8s, /Cluster Doctor/);
  assert.match(k8s, /See pods and their state/);
  assert.match(k8s, /Read container logs/);
  assert.match(k8s, /Why does checkout keep restarting\? Have a look\./);
  await demoStep('k8s', 'done');
  assert.deepEqual(progress().filter((p) => p.scenario === 'k8s' && p.step === 'receipt').length, 4);

  // 2. GDPR: more than alice's own account reaches; she grants it for 8
  // hours instead of the day asked.
  const gdpr = await approve('erased (GDPR article 17)', 'gdpr', 'gdpr', 0, async () => {
    await browser.$('[data-testid="lifetime"]').selectByAttribute('value', '28800');
  });
  assert.match(gdpr, /Privacy Auditor/);
  assert.match(gdpr, /Read marketing data, including contacts' personal data/);
  assert.match(gdpr, /Read audit logs/);
  assert.match(gdpr, /Export marketing data/);
  await demoStep('gdpr', 'done');
  const finding = progress().find((p) => p.scenario === 'gdpr' && /Found contacts kept/.test(p.summary ?? ''));
  assert.match(finding.summary, /amer/);

  // 3. Supply chain: orders are irreversible and capped; the planner
  // hands work to two sub-agents, and the second order passes the
  // vendor manager's limit: the procurement service refuses it.
  const supply = await approve('Compare hardware prices', 'supply-chain', 'supply-chain', 0);
  assert.match(supply, /Supply Planner/);
  assert.match(supply, /Place purchase orders[\s\S]*cannot be undone/);
  assert.match(supply, /at most 50000 USD/);
  assert.match(supply, /you confirm calls above 10000 USD, one by one/);
  // The 12,000 USD order of SSDs waits for alice to confirm it: the exact
  // order, from the bytes the vendor manager will send.
  await browser.$('[data-testid="nav-inbox"]').click();
  const order = await browser.$('[data-testid="call"]');
  await order.waitForDisplayed({ timeout: 60_000 })
    .catch((e) => { throw new Error(`${e.message}\ndemo: ${ctx.demo.output.slice(-3000)}`); });
  const body = JSON.parse(await order.$('[data-testid="call-body"]').getText());
  assert.deepEqual([body.vendor, body.quantity, body.amount.amount], ['Northwind', 100, '12000.00']);
  assert.equal(await order.$('[data-testid="call-method"]').getText(), 'POST');
  await shot('supply-chain-confirm-order');
  await order.$('[data-testid="confirm-call"]').click();
  // The vendor manager needs email, which the planner does not hold: it
  // asks alice itself, and she sees who stands behind it.
  const escalated = await approve('Email Northwind', 'supply-chain-sub-agent', 'supply-chain', 1, async () => {
    const chain = await browser.$('[data-testid="chain"]').getText();
    assert.match(chain, /alice@example\.test[\s\S]*Supply Planner[\s\S]*Vendor Manager/);
  });
  assert.match(escalated, /Send email as you[\s\S]*cannot be undone/);
  // The instruction it shows is the planner's, not alice's.
  assert.match(escalated, /What Supply Planner asked of it[\s\S]*Restock SSDs and RAM/);
  await demoStep('supply-chain', 'done');
  const refusal = progress().find((p) => p.scenario === 'supply-chain' && p.step === 'refused');
  assert.equal(refusal.code, 'limit.exceeded');
  assert.equal(refusal.status, 403);
  await until('the inbox is empty', async () => (await browser.$('[data-testid="pending-count"]').getText()) === '0');

  // The receipts, in the app: 4 + 5 + 7, the refused order among them.
  await browser.$('[data-testid="nav-activity"]').click();
  await until('sixteen actions', async () => (await browser.$$('[data-testid="activity-row"]')).length === 16, 60_000)
    .catch(async (e) => { throw new Error(`${e.message}\npage: ${await browser.$('main').getText()}`); });
  const rows = await browser.$$('[data-testid="activity-row"]').map((r) => r.getText());
  const refused = rows.findIndex((r) => /Refused by the resource server \(limit\.exceeded\)/.test(r));
  assert.ok(refused >= 0, rows.join('\n'));
  // A sub-agent that never asked alice itself has no name she saw: the
  // row shows its key's fingerprint, and the attribution its delegator.
  assert.match(rows[refused], /purchase_order\.place[\s\S]*refused/);
  // The market analyst never asked alice: it is named by its delegator.
  assert.match(rows.find((r) => /Compared 4 offers/.test(r)), /^Sub-agent of Supply Planner/);
  await shot('02-activity');

  // Its attribution: alice's instruction, the planner's reading of it and
  // its plan, the vendor manager's task, and the refused order.
  await (await browser.$$('[data-testid="activity-row"]'))[refused].click();
  await until('the chain', async () => (await browser.$$('[data-testid="step"]')).length >= 4);
  const steps = await browser.$$('[data-testid="step"]').map((s) => s.getText());
  assert.match(steps[0], /Optimize the hardware supply/);
  assert.match(steps.join('\n'), /Supply Planner[\s\S]*Vendor Manager/);
  assert.match(steps.at(-1), /limit\.exceeded[\s\S]*20,000 USD limit/);
  for (const step of steps) assert.match(step, /✓ signature verified/);
  await shot('03-attribution');

  // The delegations: four grants by alice (one to the vendor manager,
  // for email), two delegated by the planner.
  await browser.$('[data-testid="nav-delegations"]').click();
  await until('six grants', async () => (await browser.$$('[data-testid="grant"]')).length === 6);
  const groups = (await browser.$$('[data-testid="agent-group"]').map((g) => g.getText())).join('\n');
  // The vendor manager has a name now (it asked alice itself), and both
  // its grants: the planner's and alice's.
  const manager = (await browser.$$('[data-testid="agent-group"]').map((g) => g.getText())).find((g) => g.startsWith('Vendor Manager'));
  assert.match(manager, /Order 100 SSDs[^“]*Delegated by Supply Planner/);
  assert.match(manager, /Email Northwind[^“]*Granted by you/);
  assert.match(groups, /Sub-agent of Supply Planner[\s\S]*Find the best current prices[\s\S]*Delegated by Supply Planner/);
  // Usage rolls up: the sub-agents' reads and orders count for the
  // planner. The one action never used is the auditor's export.
  assert.deepEqual(await browser.$$('[data-testid="unused"]').map((u) => u.getText()), ['export · never used']);
  await shot('04-delegations');

  // Revoke: each scenario's agents are refused from then on; the
  // planner's revocation takes its sub-agents with it.
  const ok = await call('k8s', 'GET', '/k8s/namespaces/shop/pods');
  assert.equal(ok.code, 0, ok.output);
  const falls = await revoke('Compare hardware prices');
  assert.match(falls, /Find the best current prices/);
  assert.match(falls, /Order 100 SSDs and 50 RAM modules/);
  await refusedAsRevoked('vendor-manager', 'GET', '/procurement/vendors');
  await refusedAsRevoked('market-analyst', 'GET', '/market/hardware/prices');
  // The email grant alice signed for the vendor manager herself stands
  // until she revokes it too.
  const email = await call('vendor-manager', 'POST', '/mail/orders@northwind.example', 'vendor-manager-email');
  assert.doesNotMatch(email.output, /chain\.revoked/);
  await revoke('Email Northwind');
  await refusedAsRevoked('vendor-manager', 'POST', '/mail/orders@northwind.example', 'vendor-manager-email');
  await revoke('why checkout keeps restarting');
  await refusedAsRevoked('k8s', 'GET', '/k8s/namespaces/shop/pods');
  // The auditor never exported: alice narrows its grant to what it used.
  // The old grant is revoked, and a new one, without export, answers the
  // auditor's request; it collects it with `mandate agent renew`.
  await browser.$('[data-testid="nav-delegations"]').click();
  await until('the auditor\'s unused export', async () =>
    (await browser.$$('[data-testid="unused"]').map((u) => u.getText())).includes('export · never used'));
  await browser.$('[data-testid="narrow"]').click();
  const narrowing = await browser.$('[data-testid="narrow-preview"]');
  await narrowing.waitForDisplayed({ timeout: WAIT })
    .catch(async (e) => { throw new Error(`${e.message}\npage: ${await browser.$('main').getText()}`); });
  assert.match(await browser.$('[data-testid="keeps"]').getText(), /Marketing data: Read marketing data[\s\S]*Audit logs: Read audit logs/);
  assert.equal(await browser.$('[data-testid="drops"]').getText(), 'Export marketing data');
  await shot('06-narrow-preview');
  await browser.$('[data-testid="narrow-confirm"]').click();
  await until('the broker accepted the narrower grant', async () =>
    /Narrowed: the old grant is revoked/.test(await browser.$('[data-testid="narrow-status"]').getText()));
  await refusedAsRevoked('gdpr', 'GET', '/data/marketing/emea/contacts');
  const renewed = await cli(['agent', 'renew', '--key', join(ctx.dir, 'demo', 'gdpr.key'),
    '--request', join(ctx.dir, 'demo', 'gdpr.request.jwt'), '--out', join(ctx.dir, 'demo', 'gdpr-narrowed.mandate.json')]);
  assert.equal(renewed.code, 0, renewed.output);
  const read = await call('gdpr', 'GET', '/data/marketing/emea/contacts', 'gdpr-narrowed');
  assert.equal(read.code, 0, read.output);
  const renewedMandate = JSON.parse(readFileSync(join(ctx.dir, 'demo', 'gdpr-narrowed.mandate.json'), 'utf8'));
  assert.equal(renewedMandate.chain.length, 1);
  const claims = JSON.parse(Buffer.from(renewedMandate.chain[0].split('.')[1], 'base64url').toString());
  assert.deepEqual(claims.authorization_details.map((d) => [d.type, d.actions]), [['marketing_data', ['read']], ['audit_logs', ['read']]]);
  // The new grant, in force, holds no export; the old one has ended.
  await until('the narrowed grant listed', async () => {
    const groups = await browser.$$('[data-testid="agent-group"]').map((g) => g.getText());
    return groups.length === 1 && /Privacy Auditor/.test(groups[0]) && !/export/.test(groups[0].replace(/“[^”]*”/g, ''));
  });
  await shot('07-narrowed');
  await revoke('erased (GDPR article 17)');
  await refusedAsRevoked('gdpr', 'GET', '/data/marketing/emea/contacts', 'gdpr-narrowed');
  await until('no grant in force', async () => (await browser.$$('[data-testid="grant"]')).length === 0);
  await shot('05-revoked');

  // The history holds every decision, the narrowing and the revocations,
  // and proves itself, the 16 receipts included.
  await browser.$('[data-testid="nav-history"]').click();
  await browser.$('[data-testid="verify-history"]').click();
  await until('verified', async () => {
    try { return /and 16 receipts are intact/.test(await browser.$('[data-testid="history-verified"]').getText()); } catch { return false; }
  });
  const events = await browser.$('[data-testid="events"]').getText();
  assert.match(events, /You narrowed a grant to what was used, and signed the new one/);
  assert.match(events, /The broker accepted the narrower grant/);
  await shot('08-history');
  assert.equal((await withTimeout(ctx.demo.ended, WAIT, 'the demo')).code, 0, ctx.demo.output);
});
