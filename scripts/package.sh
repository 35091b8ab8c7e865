#!/usr/bin/env bash
# make package: Mandate's Debian packages, into $CARGO_TARGET_DIR/packages/
# (docs/release.md):
#   mandate_VERSION_amd64.deb         the desktop app (the Tauri CLI's bundler)
#   mandate-broker_VERSION_amd64.deb  the broker, as a hardened systemd service
#   mandate-cli_VERSION_amd64.deb     the `mandate` command
#   Mandate_VERSION_x86_64.AppImage   the desktop app for any distribution
#                                     (scripts/appimage.py)
# Then checks them: lintian (no errors), appstreamcli validate (the app's
# metainfo), desktop-file-validate, systemd-analyze verify (the unit), and
# unsquashfs (the AppImage's image, read by SquashFS's own tools).
# The version is the workspace's (Cargo.toml), the one place it is set.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=$TARGET/packages
STAGE=$TARGET/package-stage
VERSION=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
ARCH=$(dpkg --print-architecture)
DATE=$(git log -1 --format=%cs 2>/dev/null || date -u +%F)
MAINTAINER="Mandate developers <dev@mandate.dev>"
[ -n "$VERSION" ] || { echo "package: no version in Cargo.toml" >&2; exit 1; }

# The release binaries of all three, stripped, in one cargo build, so that
# what they share is compiled once: another invocation, with another set
# of packages (features unify per build) or another profile setting,
# compiles the dependencies again (8 minutes on two cores). The Tauri CLI
# then bundles the app built here (`tauri bundle`) rather than building
# it. The app embeds ui/dist: `make package` builds it first.
build_release() {
    CARGO_PROFILE_RELEASE_STRIP=true cargo build --release --locked \
        -p mandate-broker -p mandate-cli -p mandate-app -p mandate-appimage --bins
}
# `package.sh --build`: the build alone (scripts/release-early.sh, and
# `make bench-app`, which measures the three as they are packaged).
if [ "${1:-}" = --build ]; then
    build_release
    exit
fi

need() { ! command -v "$1" >/dev/null 2>&1; }
apt_install() {
    if [ "$(id -u)" = 0 ]; then apt-get install -y -qq "$@" >/dev/null; else sudo apt-get install -y -qq "$@" >/dev/null; fi
}
if need lintian || need appstreamcli || need desktop-file-validate || need mksquashfs || need patchelf; then
    apt_install lintian appstream desktop-file-utils squashfs-tools patchelf
fi
if [ ! -x packaging/node_modules/.bin/tauri ]; then
    (cd packaging && npm ci --no-audit --no-fund --loglevel=error)
fi

rm -rf "$STAGE" "$OUT"
mkdir -p "$STAGE" "$OUT"

# What every package carries in /usr/share/doc/PACKAGE: the copyright
# (machine-readable) and a changelog.
doc_files() { # PACKAGE DIR
    local dir=$2/usr/share/doc/$1
    install -d -m 755 "$dir"
    sed "s/@PACKAGE@/$1/" packaging/copyright > "$dir/copyright"
    printf '%s (%s) unstable; urgency=medium\n\n  * Release %s: see https://mandate.dev/ for what changed.\n\n -- %s  %s\n' \
        "$1" "$VERSION" "$VERSION" "$MAINTAINER" "$(date -u -R -d "$DATE")" \
        | gzip -9n > "$dir/changelog.gz"
    chmod 644 "$dir/copyright" "$dir/changelog.gz"
}

# The installed size, in KiB, and the md5sums of a staged tree.
finish() { # DIR
    (cd "$1" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) > "$1/DEBIAN/md5sums"
    chmod 644 "$1/DEBIAN/md5sums"
    du -sk --exclude=DEBIAN "$1" | cut -f1
}

# The shared libraries a binary needs, as dpkg says which packages hold them.
depends() { # BINARY
    mkdir -p "$STAGE/shlibs/debian" && touch "$STAGE/shlibs/debian/control"
    (cd "$STAGE/shlibs" && dpkg-shlibdeps -O "$1" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
}

# --- the release binaries, stripped -------------------------------------------
build_release
for bin in mandate-broker mandate; do
    install -D -m 755 "$TARGET/release/$bin" "$STAGE/bin/$bin"
    strip --strip-unneeded --remove-section=.comment --remove-section=.note "$STAGE/bin/$bin"
done

B=$STAGE/mandate-broker
install -D -m 755 "$STAGE/bin/mandate-broker" "$B/usr/bin/mandate-broker"
install -D -m 644 packaging/broker/mandate-broker.service "$B/usr/lib/systemd/system/mandate-broker.service"
install -D -m 644 packaging/broker/mandate-broker.sysusers "$B/usr/lib/sysusers.d/mandate-broker.conf"
install -D -m 644 packaging/broker/default "$B/etc/default/mandate-broker"
doc_files mandate-broker "$B"
install -m 644 docs/broker.md "$B/usr/share/doc/mandate-broker/README.md"
install -d -m 755 "$B/DEBIAN"
install -m 755 packaging/broker/postinst packaging/broker/prerm packaging/broker/postrm "$B/DEBIAN/"
echo /etc/default/mandate-broker > "$B/DEBIAN/conffiles"
size=$(finish "$B")
cat > "$B/DEBIAN/control" <<EOF
Package: mandate-broker
Version: $VERSION
Architecture: $ARCH
Maintainer: $MAINTAINER
Installed-Size: $size
Depends: $(depends "$B/usr/bin/mandate-broker"), adduser
Section: net
Priority: optional
Homepage: https://mandate.dev/
Description: Mandate broker: AI agents ask for authority, users decide
 The broker of Mandate. Agents file signed requests for delegated
 authority; their users approve, narrow or deny them in the Mandate
 desktop app, signing each decision with their own key. The broker
 relays requests and decisions, serves revocations to resource servers,
 and keeps agents' receipts.
 .
 This package runs it as a hardened systemd service under its own user,
 with its key and database in /var/lib/mandate-broker. Settings go in
 /etc/default/mandate-broker.
EOF
dpkg-deb --root-owner-group -Zxz --build "$B" "$OUT/mandate-broker_${VERSION}_${ARCH}.deb" >/dev/null

C=$STAGE/mandate-cli
install -D -m 755 "$STAGE/bin/mandate" "$C/usr/bin/mandate"
doc_files mandate-cli "$C"
install -m 644 docs/agents.md "$C/usr/share/doc/mandate-cli/README.md"
install -d -m 755 "$C/DEBIAN"
size=$(finish "$C")
cat > "$C/DEBIAN/control" <<EOF
Package: mandate-cli
Version: $VERSION
Architecture: $ARCH
Maintainer: $MAINTAINER
Installed-Size: $size
Depends: $(depends "$C/usr/bin/mandate")
Section: utils
Priority: optional
Homepage: https://mandate.dev/
Description: Mandate command line: what AI agents do under delegated authority
 The \`mandate\` command: an agent's identity and its requests for
 authority, sub-delegation, signed calls and receipts; checking mandates,
 exported receipts, and a desktop app's history.
EOF
dpkg-deb --root-owner-group -Zxz --build "$C" "$OUT/mandate-cli_${VERSION}_${ARCH}.deb" >/dev/null

# --- the desktop app: the Tauri CLI's bundler --------------------------------
# The bundler names the app's GTK and WebKit libraries, not the C library:
# the one the CLI needs, built by the same toolchain on the same system.
LIBC=$(depends "$C/usr/bin/mandate" | tr ',' '\n' | sed -n 's/^ *\(libc6 ([^)]*)\).*/\1/p' | head -1)
[ -n "$LIBC" ] || LIBC=libc6
A=$STAGE/app
mkdir -p "$A"
DESKTOP_ID=Mandate.desktop
sed -e "s/@VERSION@/$VERSION/" -e "s/@DATE@/$DATE/" -e "s/@DESKTOP_ID@/$DESKTOP_ID/" \
    packaging/dev.mandate.desktop.metainfo.xml.in > "$A/dev.mandate.desktop.metainfo.xml"
# The bundler copies these into the package, where the others have them.
doc_files mandate "$A"
cat > "$A/tauri.package.json" <<EOF
{
  "version": "$VERSION",
  "bundle": {
    "targets": ["deb"],
    "publisher": "Mandate developers",
    "homepage": "https://mandate.dev/",
    "category": "Utility",
    "shortDescription": "Decide what AI agents may do for you",
    "longDescription": "Approve, narrow or deny what AI agents ask to do for you.",
    "linux": {
      "deb": {
        "section": "utils",
        "priority": "optional",
        "files": {
          "/usr/share/metainfo/dev.mandate.desktop.metainfo.xml": "$A/dev.mandate.desktop.metainfo.xml",
          "/usr/share/doc/mandate/copyright": "$A/usr/share/doc/mandate/copyright",
          "/usr/share/doc/mandate/changelog.gz": "$A/usr/share/doc/mandate/changelog.gz"
        },
        "depends": ["$LIBC"]
      }
    }
  }
}
EOF
(cd src-tauri && "$ROOT/packaging/node_modules/.bin/tauri" bundle \
    --ci --bundles deb --config "$A/tauri.package.json")
cp "$TARGET/release/bundle/deb/Mandate_${VERSION}_${ARCH}.deb" "$OUT/mandate_${VERSION}_${ARCH}.deb"

# --- the AppImage: the app's package, with what it needs, for any distribution --
APPIMAGE=$OUT/Mandate_${VERSION}_$(uname -m).AppImage
SOURCE_DATE_EPOCH=$(date -u -d "$DATE" +%s) APPIMAGE_STAGE=$STAGE/appimage \
    scripts/appimage.py "$OUT/mandate_${VERSION}_${ARCH}.deb" "$TARGET/release/mandate-appimage-runtime" "$APPIMAGE"

# --- the checks ----------------------------------------------------------------
echo "package: built $(cd "$OUT" && ls *.deb *.AppImage | tr '\n' ' ')"
status=0
for deb in "$OUT"/*.deb; do
    # Errors fail the build; warnings are shown. Tags a package cannot
    # avoid are overridden in the package, each with its reason.
    if ! lintian --fail-on error --suppress-tags-from-file packaging/lintian-suppressed "$deb"; then
        echo "package: lintian finds errors in $(basename "$deb")" >&2
        status=1
    fi
done
X=$STAGE/check-app
dpkg-deb -x "$OUT/mandate_${VERSION}_${ARCH}.deb" "$X"
appstreamcli validate --no-net --explain "$X/usr/share/metainfo/dev.mandate.desktop.metainfo.xml" || status=1
desktop-file-validate "$X/usr/share/applications/$DESKTOP_ID" || status=1
X=$STAGE/check-broker
dpkg-deb -x "$OUT/mandate-broker_${VERSION}_${ARCH}.deb" "$X"
# Verified as installed, but with the binary where it was unpacked.
sed "s#/usr/bin/mandate-broker#$X/usr/bin/mandate-broker#" "$X/usr/lib/systemd/system/mandate-broker.service" \
    > "$STAGE/mandate-broker.service"
systemd-analyze verify "$STAGE/mandate-broker.service" || status=1
# The AppImage: its image, where its runtime says it starts, is a SquashFS
# file system that SquashFS's own tools read whole, with an AppDir in it.
offset=$("$APPIMAGE" --appimage-offset)
listing=$(unsquashfs -o "$offset" -l "$APPIMAGE") || status=1
for f in AppRun Mandate.desktop mandate-app.png .DirIcon usr/bin/mandate-app \
    "usr/lib/$(gcc -print-multiarch)/webkit2gtk-4.1/WebKitWebProcess" usr/lib/libwebkit2gtk-4.1.so.0; do
    grep -qx "squashfs-root/$f" <<<"$listing" || { echo "package: the AppImage holds no $f" >&2; status=1; }
done
if [ "$status" = 0 ]; then echo "package: lintian, appstreamcli, desktop-file-validate, systemd-analyze and unsquashfs pass"; fi
exit "$status"
