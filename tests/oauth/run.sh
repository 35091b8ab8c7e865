#!/usr/bin/env bash
# A resource server written with PyJWT and the standard library only takes
# the broker's OAuth access tokens (rs_test.py; docs/oauth.md). Its Python
# packages live in a venv outside the clone, made or brought to
# requirements.txt only when it is not already so. Uses the binaries in
# $CARGO_TARGET_DIR/debug, built before.
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(cd ../.. && pwd -P)
TARGET=${CARGO_TARGET_DIR:-$HOME/.cache/mandate/target-$(cd "$ROOT" && pwd -P | sha256sum | cut -c1-12)}
export OAUTH_TEST_BIN=$TARGET/debug
for b in mandate-broker mandate-engine mandate; do
    if [ ! -x "$OAUTH_TEST_BIN/$b" ]; then
        echo "oauth-rs: no $OAUTH_TEST_BIN/$b; build first: cargo build --workspace --bins" >&2
        exit 1
    fi
done
if [ ! -d "$ROOT/tests/idp/node_modules/oidc-provider" ]; then
    (cd "$ROOT/tests/idp" && timeout 300 npm ci --no-audit --no-fund --loglevel=error)
fi
VENV=${OAUTH_TEST_VENV:-$HOME/.cache/mandate/venv-oauth}
if [ ! -x "$VENV/bin/python" ]; then
    timeout 120 python3 -m venv "$VENV"
fi
if ! cmp -s requirements.txt "$VENV/oauth-requirements.txt"; then
    timeout 300 "$VENV/bin/pip" install --quiet --disable-pip-version-check -r requirements.txt
    cp requirements.txt "$VENV/oauth-requirements.txt"
fi
# One private keyring session for the user's mandate-engine calls.
exec timeout -k 10 300 "$ROOT/scripts/with-keyring.sh" "$VENV/bin/python" -u rs_test.py
