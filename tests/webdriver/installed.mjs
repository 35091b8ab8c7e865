// The installed packages, not the build tree (make package runs this after
// building them; it needs root, as installing does):
// - `apt-get install ./…` installs the three .debs;
// - the broker runs as its unit says (ExecStart, as its own user, in its
//   state directory) and answers;
// - the app starts from its .desktop entry's Exec line, under Xvfb, over
//   WebDriver: the window comes up, with the provider and broker from the
//   user's settings, and a sign-in against the test provider works; the
//   app gave WebKit's processes the variables it sets for itself
//   (src-tauri/src/lib.rs, `webkit_environment`);
// - removing the packages leaves nothing of theirs behind but the
//   broker's conffile and state (purge takes those too), and the user's
//   own data.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  TARGET, closeAll, environOf, pidOf, processTree, signInFromSettings, start, startProvider, until, webkitVariables, withTimeout,
} from './harness.mjs';

const OUT = join(TARGET, 'packages');
const PACKAGES = ['mandate', 'mandate-broker', 'mandate-cli'];
const ctx = {};
let app;

const run = (cmd, args, timeout = 300_000) =>
  execFileSync(cmd, args, { encoding: 'utf8', timeout, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
const installed = (pkg) => {
  try { return /install ok installed/.test(run('dpkg-query', ['-W', '-f=${Status}', pkg])); } catch { return false; }
};
/** The files (not directories) a package installed. */
const filesOf = (pkg) => run('dpkg-query', ['-L', pkg]).split('\n')
  .filter((f) => f && existsSync(f) && !readdirSafe(f));
const readdirSafe = (f) => { try { readdirSync(f); return true; } catch { return false; } };

after(async () => {
  await closeAll(app, ctx.dir);
  // Never leave the machine with the packages on it.
  try { run('dpkg', ['--purge', ...PACKAGES]); } catch { /* nothing was installed */ }
});

test('the packages install, the app starts from its menu entry and signs in, the broker answers, and removing them leaves nothing', { timeout: 600_000 }, async () => {
  assert.equal(process.getuid(), 0, 'installing packages needs root');
  const debs = readdirSync(OUT).filter((f) => f.endsWith('.deb')).map((f) => join(OUT, f));
  assert.equal(debs.length, 3, `the three packages in ${OUT}: ${debs}`);
  run('dpkg', ['--purge', ...PACKAGES]);
  ctx.dir = mkdtempSync(join(tmpdir(), 'mandate-installed-'));

  run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...debs]);
  for (const pkg of PACKAGES) assert.ok(installed(pkg), `${pkg} is installed`);
  const files = PACKAGES.flatMap(filesOf);
  assert.ok(files.includes('/usr/bin/mandate-app') && files.includes('/usr/bin/mandate-broker') && files.includes('/usr/bin/mandate'));
  assert.match(run('getent', ['passwd', 'mandate-broker']), /^mandate-broker:/, 'the broker has its own user');
  assert.match(run('/usr/bin/mandate', ['--version']), /mandate/);
  // The control file's text as written (a shell once ran the backquotes).
  assert.match(run('dpkg-query', ['-W', '-f=${Description}', 'mandate-cli']), /The `mandate` command:/);

  // The broker, as its unit runs it: its ExecStart, as its user, in its
  // state directory (what systemd's StateDirectory makes).
  const idp = await startProvider(ctx);
  const unit = readFileSync('/usr/lib/systemd/system/mandate-broker.service', 'utf8');
  const execStart = unit.match(/^ExecStart=(.*)$/m)[1].split(' ');
  assert.equal(unit.match(/^User=(.*)$/m)[1], 'mandate-broker');
  mkdirSync('/var/lib/mandate-broker', { recursive: true, mode: 0o700 });
  run('chown', ['mandate-broker:mandate-broker', '/var/lib/mandate-broker']);
  const broker = start('runuser', ['-u', 'mandate-broker', '--', ...execStart,
    '--listen', '127.0.0.1:0', '--issuer', `${ctx.issuer}=mandate-desktop`], { RUST_LOG: 'warn', NO_COLOR: '1' });
  ctx.broker = await until('the installed broker', () => broker.output.match(/listening on (http:\/\/\S+)/)?.[1]);
  const metadata = await fetch(`${ctx.broker}/.well-known/mandate`);
  assert.equal(metadata.status, 200, 'the broker answers');
  assert.ok((await metadata.json()).issuer, 'with its metadata');
  assert.ok(readdirSync('/var/lib/mandate-broker').length > 0, 'it keeps its key and database in its state directory');

  // The app, from its menu entry, with the user's settings naming the
  // provider and the broker.
  const entry = readFileSync('/usr/share/applications/Mandate.desktop', 'utf8');
  const exec = entry.match(/^Exec=(\S+)/m)[1];
  const binary = exec.startsWith('/') ? exec : run('sh', ['-c', `command -v ${exec}`]).trim();
  assert.equal(binary, '/usr/bin/mandate-app');
  const data = join(ctx.dir, 'data');
  const opened = await signInFromSettings(ctx, binary, data, { MANDATE_KEYRING_SERVICE: `mandate-installed-${process.pid}` });
  app = opened.session;
  // WebKit's variables, as the app sets them for itself where they are not
  // set (or as this test's environment sets them): in its own process,
  // which started itself again with them, and in the web process that
  // paints the page. Without a GPU to render with, it paints without
  // compositing.
  const wanted = webkitVariables();
  const tree = processTree(pidOf(binary));
  const web = tree.find((p) => p.name.startsWith('WebKitWebProces'));
  assert.ok(web, `a web process under the app: ${JSON.stringify(tree)}`);
  for (const pid of [tree[0].pid, web.pid]) {
    const env = environOf(pid);
    for (const [name, value] of Object.entries(wanted)) assert.equal(env.get(name), value, `${name} of process ${pid}`);
  }
  await withTimeout(app.deleteSession(), 10_000, 'closing the app');
  app = null;
  broker.kill();
  idp.kill();

  // Removed: nothing of theirs is left but the broker's conffile and state.
  run('apt-get', ['remove', '-y', '-qq', ...PACKAGES]);
  const kept = ['/etc/default/mandate-broker'];
  const left = files.filter((f) => existsSync(f) && !kept.includes(f));
  assert.deepEqual(left, [], 'files left after remove');
  assert.ok(existsSync('/var/lib/mandate-broker'), 'the broker\'s state stays until purge');
  assert.ok(!existsSync('/etc/systemd/system/multi-user.target.wants/mandate-broker.service'), 'the service is disabled');
  run('dpkg', ['--purge', ...PACKAGES]);
  for (const f of [...kept, '/var/lib/mandate-broker']) assert.ok(!existsSync(f), `${f} is gone after purge`);
  for (const pkg of PACKAGES) assert.ok(!installed(pkg), `${pkg} is gone`);
  assert.ok(existsSync(join(data, 'settings.json')), 'the user\'s own data stays');
});
