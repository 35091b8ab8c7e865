// The AppImage (make package builds it; scripts/appimage.py), run as a
// user who downloaded it would: a copy of the file, started under Xvfb
// over WebDriver, with a cache of its own, on a host without WebKitGTK,
// JavaScriptCore or GTK 3 (tests/webdriver/without-host-webkit.sh hides
// this machine's, and this test refuses to run without it).
// - the window comes up, and a sign-in against the test provider works,
//   with a broker built alongside;
// - the app, and WebKit's web process, run from the copy the runtime
//   unpacked into the cache, with the AppImage's own WebKit, not the
//   host's;
// - the browser the app starts for the sign-in gets the environment the
//   app was started in, not the one AppRun made for GTK and GIO inside
//   the AppImage, in the directory the app was started from;
// - the app knows the AppImage's file (for its entry to start at login),
//   and Tauri is not told of an AppImage it would take for a FUSE mount;
// - Settings offers an applications-menu entry for the AppImage's file,
//   and takes it away.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ROOT, TARGET, WAIT, closeAll, environIn, environOf, pidOf, processTree, signInFromSettings, startBroker, startProvider, until, useBinaries,
  withTimeout,
} from './harness.mjs';

useBinaries('release');
const OUT = join(TARGET, 'packages');
const ctx = {};
let app;

/** The files process `pid` maps, by name. */
const mapsOf = (pid) => [...new Set(readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n')
  .map((l) => l.split(/\s+/)[5]).filter((f) => f?.startsWith('/')))];

after(async () => {
  await closeAll(app, ctx.dir);
});

test('the AppImage starts from a downloaded copy, runs its own WebKit, signs in, and gives the browser the user\'s environment', { timeout: 600_000 }, async () => {
  const multiarch = execFileSync('gcc', ['-print-multiarch'], { encoding: 'utf8' }).trim();
  const hostWebkit = `/usr/lib/${multiarch}/libwebkit2gtk-4.1.so.0`;
  assert.ok(process.env.MANDATE_HOST_WEBKIT === 'hidden' && statSync(hostWebkit).isCharacterDevice()
    && readdirSync(`/usr/lib/${multiarch}/webkit2gtk-4.1`).length === 0,
  'the host\'s WebKitGTK is hidden: run this under tests/webdriver/without-host-webkit.sh');
  const images = readdirSync(OUT).filter((f) => f.endsWith('.AppImage'));
  assert.equal(images.length, 1, `one AppImage in ${OUT}: ${images}`);
  ctx.dir = mkdtempSync(join(tmpdir(), 'mandate-appimage-'));
  const downloads = join(ctx.dir, 'Downloads');
  mkdirSync(downloads);
  const file = join(downloads, images[0]);
  copyFileSync(join(OUT, images[0]), file);
  execFileSync('chmod', ['755', file]);
  const magic = readFileSync(file).subarray(8, 11);
  assert.deepEqual([...magic], [0x41, 0x49, 0x02], 'AI\\x02 at bytes 8 to 10');

  await startProvider(ctx);
  await startBroker(ctx);
  const cache = join(ctx.dir, 'cache');
  // The browser: a script that writes down its environment and where it
  // was started, then signs alice in as tests/idp/browse.mjs does.
  const browser = join(ctx.dir, 'browser.sh');
  writeFileSync(browser, `#!/bin/sh\nenv -0 > '${ctx.dir}/browser.env'\npwd > '${ctx.dir}/browser.cwd'\n`
    + `exec '${process.execPath}' '${join(ROOT, 'tests/idp/browse.mjs')}' --user alice "$@"\n`, { mode: 0o755 });
  const userDataDirs = '/usr/local/share:/usr/share:/opt/user-data';
  const opened = await signInFromSettings(ctx, file, join(ctx.dir, 'data'), {
    MANDATE_KEYRING_SERVICE: `mandate-appimage-${process.pid}`,
    MANDATE_BROWSER: browser,
    XDG_CACHE_HOME: cache,
    XDG_DATA_HOME: join(ctx.dir, 'share'),
    XDG_DATA_DIRS: userDataDirs,
  });
  app = opened.session;

  // Run from the unpacked copy, one per version, in the user's cache.
  const copies = readdirSync(join(cache, 'mandate/appimage'));
  assert.equal(copies.length, 1, `one unpacked copy: ${copies}`);
  const appdir = join(cache, 'mandate/appimage', copies[0]);
  const pid = pidOf(join(appdir, 'usr/bin/mandate-app'));
  const tree = processTree(pid);
  const web = tree.find((p) => p.name.startsWith('WebKitWebProces'));
  assert.ok(web, `a web process under the app: ${JSON.stringify(tree)}`);
  assert.equal(readlinkSync(`/proc/${web.pid}/exe`), join(appdir, 'usr/lib', multiarch, 'webkit2gtk-4.1/WebKitWebProcess'),
    'WebKit started the AppImage\'s own web process');
  for (const p of [pid, web.pid]) {
    const maps = mapsOf(p);
    for (const lib of ['libwebkit2gtk-4.1.so.0', 'libjavascriptcoregtk-4.1.so.0', 'libgtk-3.so.0', 'libsoup-3.0.so.0']) {
      const mapped = maps.filter((f) => f.split('/').pop().startsWith(lib));
      assert.deepEqual(mapped, [join(appdir, 'usr/lib', lib)], `process ${p} maps the AppImage's ${lib}`);
    }
  }
  const env = environOf(pid);
  assert.equal(env.get('MANDATE_APPIMAGE'), file, 'the app knows its AppImage');
  assert.ok(!env.has('APPIMAGE') && !env.has('APPDIR'), 'Tauri is not handed APPIMAGE or APPDIR');
  assert.ok(env.get('GIO_EXTRA_MODULES')?.startsWith(appdir), 'AppRun pointed GIO at the AppImage\'s modules');
  assert.doesNotMatch(opened.driver.output, /not detected as an AppImage/);

  // The browser got the user's environment back.
  const seen = environIn(join(ctx.dir, 'browser.env'));
  assert.equal(seen.get('XDG_DATA_DIRS'), userDataDirs, 'XDG_DATA_DIRS as the user had it');
  for (const name of ['GIO_EXTRA_MODULES', 'GDK_PIXBUF_MODULE_FILE', 'GSETTINGS_SCHEMA_DIR']) {
    assert.equal(seen.get(name), process.env[name], `${name} as the user had it`);
  }
  assert.deepEqual([...seen.keys()].filter((k) => k.startsWith('MANDATE_APPIMAGE')), [], 'none of AppRun\'s own');
  assert.equal(readFileSync(join(ctx.dir, 'browser.cwd'), 'utf8').trim(), process.cwd(), 'started where the app was started');

  // The applications menu: Settings offers the AppImage an entry of its
  // own, naming its file, with its icon; and takes it away.
  const share = join(ctx.dir, 'share');
  const menuEntry = join(share, 'applications/mandate-appimage.desktop');
  const menuIcon = join(share, 'icons/hicolor/128x128/apps/mandate-appimage.png');
  const saveMenu = async (on) => {
    await app.$('[data-testid="nav-settings"]').click();
    const box = await app.$('[data-testid="settings-menu"]');
    await box.waitForDisplayed({ timeout: WAIT });
    if ((await box.isSelected()) !== on) await box.click();
    await app.$('[data-testid="settings-save"]').click();
    await until(`the menu entry ${on ? 'made' : 'removed'}`, () => existsSync(menuEntry) === on);
  };
  await saveMenu(true);
  const lines = readFileSync(menuEntry, 'utf8').split('\n');
  assert.ok(lines.includes(`Exec="${file}"`) && lines.includes('Icon=mandate-appimage'), lines.join('\n'));
  execFileSync('desktop-file-validate', [menuEntry]);
  assert.deepEqual(readFileSync(menuIcon).subarray(1, 4).toString(), 'PNG', 'its icon');
  assert.equal(JSON.parse(readFileSync(join(ctx.dir, 'data/settings.json'), 'utf8')).menu_entry, true);
  await saveMenu(false);
  assert.ok(!existsSync(menuIcon), 'the icon goes with it');

  await withTimeout(app.deleteSession(), 10_000, 'closing the app');
  app = null;
});
