#!/usr/bin/env bash
# Installs what the build and the tests need, and only what is missing.
# Safe to run again. Run as root to let it install system packages.
# `setup.sh run` stops at what `make run` needs (no test tools).
set -euo pipefail
cd "$(dirname "$0")/.."

need() { ! command -v "$1" >/dev/null 2>&1; }

apt_install() {
    local missing=()
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -eq 0 ]; then
        echo "setup: installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    else
        echo "setup: please run: sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
}

# The toolchain: cargo and rustup come with the machine.
if need cargo; then
    echo "setup: cargo is missing; install Rust with rustup first" >&2
    exit 1
fi
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy

# C toolchain for libFuzzer and -sys crates; Node for the interop test.
apt_install build-essential pkg-config curl
# The history tamper tests edit the app's database with the sqlite3 CLI.
apt_install sqlite3
# The desktop app (Tauri on WebKitGTK), and what its tests run under: the OS
# keyring (Secret Service from gnome-keyring on a private D-Bus session, and
# keyutils), a virtual screen, WebKit's WebDriver, screenshots, and xdotool
# (to answer the native save dialog, which WebDriver cannot reach).
apt_install libwebkit2gtk-4.1-dev libayatana-appindicator3-dev librsvg2-dev libxdo-dev \
    libssl-dev file xvfb xauth webkit2gtk-driver imagemagick xdotool \
    dbus dbus-x11 gnome-keyring libsecret-tools libdbus-1-dev keyutils
if need node || need npm; then
    apt_install nodejs npm
fi

# The test OIDC provider (oidc-provider on Node), exactly as locked.
if [ ! -d tests/idp/node_modules/oidc-provider ]; then
    (cd tests/idp && npm ci --no-audit --no-fund --loglevel=error)
fi

# The desktop app's interface (Svelte, Vite), exactly as locked.
if [ ! -d ui/node_modules/svelte ]; then
    (cd ui && npm ci --no-audit --no-fund --loglevel=error)
fi

# The MCP server on the official SDK that the gateway stands in front of,
# in the demo and the tests.
if [ ! -d tests/mcp/node_modules/@modelcontextprotocol/sdk ]; then
    (cd tests/mcp && npm ci --no-audit --no-fund --loglevel=error)
fi

# `make run` needs no more than this.
[ "${1:-}" = run ] && exit 0

# The interop test's npm packages, exactly as locked.
if [ ! -d tests/interop/node_modules/jose ]; then
    (cd tests/interop && npm ci --no-audit --no-fund --loglevel=error)
fi

# The WebDriver tests: webdriverio, oauth4webapi and jose (the OAuth
# client and resource server), the MCP SDK (its client), axe-core (the
# accessibility checks), and tauri-driver (WebKitWebDriver comes
# from the webkit2gtk-driver package above).
if [ ! -d tests/webdriver/node_modules/webdriverio ] || [ ! -d tests/webdriver/node_modules/oauth4webapi ] \
    || [ ! -d tests/webdriver/node_modules/jose ] \
    || [ ! -d tests/webdriver/node_modules/@modelcontextprotocol/sdk ] \
    || [ ! -d tests/webdriver/node_modules/axe-core ]; then
    (cd tests/webdriver && npm ci --no-audit --no-fund --loglevel=error)
fi
if need tauri-driver; then
    # Debug builds, here and for cargo-fuzz below: their speed does not
    # matter here, and both compile in 66 s, against some 107 s as
    # release builds in a clean-clone CI run.
    cargo install tauri-driver --version 2.1.0 --locked --quiet --debug
fi

# A real browser for the test that no web page can drive the broker
# (tests/e2e/tests/e2e/browser.rs): Debian's chromium, run headless.
if need chromium; then apt_install chromium; fi

# jq, which docs/app.md's mandate-engine examples use, and the test that
# runs them (tests/e2e/tests/e2e/headless.rs).
if need jq; then apt_install jq; fi

# Python's venv, for schemathesis, which downloads in the background while
# the build runs (scripts/api-fuzz-venv.sh; api-fuzz.sh waits for it).
if need python3; then apt_install python3; fi
python3 -c 'import ensurepip, venv' 2>/dev/null || apt_install python3-venv
if [ ! -x "$HOME/.cache/mandate/venv/bin/st" ]; then
    mkdir -p "$HOME/.cache/mandate"
    nohup scripts/api-fuzz-venv.sh > "$HOME/.cache/mandate/venv-install.log" 2>&1 &
fi

# cargo-fuzz, for `make fuzz` and the fuzz smoke in `make test`.
if need cargo-fuzz; then
    cargo install cargo-fuzz --locked --quiet --debug
fi
