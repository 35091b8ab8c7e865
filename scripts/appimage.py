#!/usr/bin/env python3
"""Mandate's AppImage, made from the app's Debian package (docs/release.md,
"The AppImage"). scripts/package.sh runs it:

    scripts/appimage.py DEB RUNTIME OUT

DEB      the app's .deb (Tauri's bundler made it): the AppDir's usr/
RUNTIME  mandate-appimage-runtime (crates/mandate-appimage), the program
         at the head of the file
OUT      the AppImage to write

This does what the Tauri CLI does with linuxdeploy and its GTK plugin,
which it downloads from GitHub at build time (this machine has no route
there): into an AppDir, the app, WebKit's helper processes, GTK's loaders
and modules, and every shared library they need but those every desktop
has (packaging/appimage/excludelist), each library's search path set to
its neighbours (RUNPATH, `$ORIGIN`). Then a SquashFS image of it
(mksquashfs) after the runtime, with the AppImage magic written in.

WebKit starts its helper processes from a directory compiled into
libwebkit2gtk, /usr/lib/<multiarch>/webkit2gtk-4.1. That path, and only
that one, is rewritten in the copy to ././/lib/<multiarch>/webkit2gtk-4.1
(the same length), which AppRun makes resolve inside the AppDir by
starting the app in $APPDIR/usr, as Tauri's AppImages do.
"""

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MULTIARCH = subprocess.run(
    ["gcc", "-print-multiarch"], capture_output=True, text=True, check=True
).stdout.strip() or "x86_64-linux-gnu"
SYSLIB = Path("/usr/lib") / MULTIARCH
WEBKIT = "webkit2gtk-4.1"
# What the AppDir holds besides usr/bin, by the system path it came from.
HELPERS = ["WebKitNetworkProcess", "WebKitWebProcess", "WebKitGPUProcess"]
PIXBUF = SYSLIB / "gdk-pixbuf-2.0/2.10.0"
GIO_MODULES = ["libgiognutls.so"]  # TLS for GIO, as linuxdeploy-plugin-gtk bundles
# Loaded with dlopen, so not among anybody's DT_NEEDED: the tray icon's
# library, which Tauri looks for by name.
DLOPENED = ["libayatana-appindicator3.so.1"]


def run(*args, **kw):
    return subprocess.run([str(a) for a in args], check=True, **kw)


def excluded():
    names = set()
    for line in (ROOT / "packaging/appimage/excludelist").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.add(line)
    return names


def is_elf(path):
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def needed(path):
    """The DT_NEEDED names of an ELF file."""
    out = run("readelf", "-d", "-W", path, capture_output=True, text=True).stdout
    names = []
    for line in out.splitlines():
        if "(NEEDED)" in line and "[" in line:
            names.append(line.rsplit("[", 1)[1].rstrip("]"))
    return names


def resolved(path):
    """Where the system's loader finds each library `path` needs (ldd)."""
    out = run("ldd", path, capture_output=True, text=True).stdout
    found = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1] == "=>":
            if parts[2] == "not":
                sys.exit(f"appimage: {path} needs {parts[0]}, which is not on this system")
            found[parts[0]] = parts[2]
    return found


def bundle_libraries(appdir, libdir, exclude):
    """Copies into `libdir` every library the AppDir's ELF files need,
    transitively, but those on the exclude list (whose own needs are the
    host's too). Returns the ELF files of the AppDir."""
    elves = [p for p in sorted(appdir.rglob("*")) if p.is_file() and not p.is_symlink() and is_elf(p)]
    queue = list(elves)
    bundled = {p.name for p in libdir.iterdir()}

    def bundle(source, name):
        target = libdir / name
        shutil.copy2(Path(source).resolve(), target)
        target.chmod(0o755)
        bundled.add(name)
        queue.append(target)
        elves.append(target)

    for name in DLOPENED:
        if (SYSLIB / name).exists():
            bundle(SYSLIB / name, name)
    while queue:
        elf = queue.pop()
        where = None
        for name in needed(elf):
            if name in exclude or name in bundled:
                continue
            if where is None:
                where = resolved(elf)
            source = where.get(name)
            if source is None:
                sys.exit(f"appimage: cannot find {name}, which {elf} needs")
            bundle(source, name)
    return elves


def set_runpaths(elves, libdir):
    """Each ELF file looks for its libraries in `libdir`, relative to
    itself. Not the host's, first, so that the copies are the ones used."""
    for elf in elves:
        relative = os.path.relpath(libdir, elf.parent)
        runpath = "$ORIGIN" if relative == "." else f"$ORIGIN/{relative}"
        mode = elf.stat().st_mode
        elf.chmod(mode | stat.S_IWUSR)
        run("patchelf", "--set-rpath", runpath, elf)
        elf.chmod(mode)


def rewrite_webkit_paths(libdir):
    old = f"/usr/lib/{MULTIARCH}/{WEBKIT}".encode()
    new = f"././/lib/{MULTIARCH}/{WEBKIT}".encode()
    assert len(old) == len(new)
    rewritten = 0
    for lib in libdir.glob("libwebkit2gtk-4.1.so*"):
        data = lib.read_bytes()
        if old in data:
            lib.write_bytes(data.replace(old, new))
            rewritten += 1
    if rewritten == 0:
        sys.exit(f"appimage: no libwebkit2gtk names {old.decode()}; cannot relocate its helpers")


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    deb, runtime, out = (Path(a).resolve() for a in sys.argv[1:])
    stage = Path(os.environ.get("APPIMAGE_STAGE", out.parent / "appimage-stage"))
    appdir = stage / "Mandate.AppDir"
    shutil.rmtree(stage, ignore_errors=True)
    appdir.mkdir(parents=True)
    run("dpkg-deb", "-x", deb, appdir)
    shutil.rmtree(appdir / "usr/share/doc", ignore_errors=True)
    usr = appdir / "usr"
    libdir = usr / "lib"

    # WebKit's helper processes and its injected bundle, where the
    # rewritten path points.
    webkit = usr / "lib" / MULTIARCH / WEBKIT
    (webkit / "injected-bundle").mkdir(parents=True)
    for helper in HELPERS:
        if (SYSLIB / WEBKIT / helper).exists():
            shutil.copy2(SYSLIB / WEBKIT / helper, webkit / helper)
    shutil.copy2(SYSLIB / WEBKIT / "injected-bundle/libwebkit2gtkinjectedbundle.so", webkit / "injected-bundle")

    # gdk-pixbuf's image loaders, with a cache that names them without a
    # directory: gmodule's dlopen then finds them through its own RUNPATH,
    # in usr/lib, where each has a link (as linuxdeploy-plugin-gtk does).
    loaders = usr / "lib" / MULTIARCH / "gdk-pixbuf-2.0/2.10.0/loaders"
    shutil.copytree(PIXBUF / "loaders", loaders)
    query = SYSLIB / "gdk-pixbuf-2.0/gdk-pixbuf-query-loaders"
    cache = run(query, *sorted(loaders.glob("*.so")), capture_output=True, text=True).stdout
    (loaders.parent / "loaders.cache").write_text(cache.replace(f"{loaders}/", ""))
    libdir.mkdir(exist_ok=True)
    for loader in loaders.glob("*.so"):
        (libdir / loader.name).symlink_to(os.path.relpath(loader, libdir))

    # GIO's TLS module.
    gio = usr / "lib" / MULTIARCH / "gio/modules"
    gio.mkdir(parents=True)
    for module in GIO_MODULES:
        shutil.copy2(SYSLIB / "gio/modules" / module, gio / module)

    # GTK's settings schemas, compiled, in case the host lacks them.
    schemas = usr / "share/glib-2.0/schemas"
    schemas.mkdir(parents=True)
    for xml in Path("/usr/share/glib-2.0/schemas").glob("org.gtk.*.gschema.xml"):
        shutil.copy2(xml, schemas)
    run("glib-compile-schemas", schemas)

    elves = bundle_libraries(appdir, libdir, excluded())
    set_runpaths(elves, libdir)
    rewrite_webkit_paths(libdir)

    # The AppDir's own files: AppRun, the desktop entry and the icon at
    # its root (what AppImage tools read), .DirIcon.
    apprun = (ROOT / "packaging/appimage/AppRun").read_text().replace("@MULTIARCH@", MULTIARCH)
    (appdir / "AppRun").write_text(apprun)
    (appdir / "AppRun").chmod(0o755)
    desktop = next((usr / "share/applications").glob("*.desktop"))
    (appdir / desktop.name).symlink_to(desktop.relative_to(appdir))
    icon = usr / "share/icons/hicolor/256x256@2/apps/mandate-app.png"
    if not icon.exists():
        icon = max((usr / "share/icons/hicolor").glob("*/apps/mandate-app.png"), key=lambda p: p.stat().st_size)
    (appdir / "mandate-app.png").symlink_to(icon.relative_to(appdir))
    (appdir / ".DirIcon").symlink_to("mandate-app.png")

    # mksquashfs takes every file's time, and the image's, from
    # SOURCE_DATE_EPOCH when it is set (package.sh sets the commit's).
    image = stage / "image.squashfs"
    run(
        "mksquashfs", appdir, image, "-root-owned", "-noappend", "-comp", "gzip",
        "-quiet", "-no-progress",
        stdout=subprocess.DEVNULL,
    )
    head = bytearray(Path(runtime).read_bytes())
    head[8:11] = b"AI\x02"
    tmp = out.with_name(out.name + ".part")
    with open(tmp, "wb") as f:
        f.write(head)
        with open(image, "rb") as src:
            shutil.copyfileobj(src, f, 1 << 20)
    tmp.chmod(0o755)
    tmp.replace(out)
    size = sum(p.stat().st_size for p in appdir.rglob("*") if p.is_file() and not p.is_symlink())
    print(f"appimage: {out.name}, {out.stat().st_size / 2**20:.1f} MiB "
          f"({size / 2**20:.1f} MiB unpacked, {len(list(libdir.glob('*.so*')))} libraries bundled)")


if __name__ == "__main__":
    main()
