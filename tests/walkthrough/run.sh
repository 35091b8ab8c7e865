#!/usr/bin/env bash
# Replays the exchanges of "## From any language" (docs/agents.md) against a
# live provider, broker, resource server and user (walkthrough.py). Its
# Python packages live in a venv outside the clone, which is made, or
# brought to requirements.txt, only when it is not already so. Uses the
# binaries in $CARGO_TARGET_DIR/debug, built before (it does not build).
#
#   tests/walkthrough/run.sh                   # docs/agents.md
#   WALKTHROUGH_DOC=/tmp/x.md tests/walkthrough/run.sh
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(cd ../.. && pwd -P)
# The build cache, keyed by the clone's path, as the Makefile does.
TARGET=${CARGO_TARGET_DIR:-$HOME/.cache/mandate/target-$(cd "$ROOT" && pwd -P | sha256sum | cut -c1-12)}
export WALKTHROUGH_BIN=$TARGET/debug
for b in mandate-broker mandate-resource-example mandate-engine; do
    if [ ! -x "$WALKTHROUGH_BIN/$b" ]; then
        echo "walkthrough: no $WALKTHROUGH_BIN/$b; build first: cargo build --workspace --bins" >&2
        exit 1
    fi
done
if [ ! -d "$ROOT/tests/idp/node_modules/oidc-provider" ]; then
    (cd "$ROOT/tests/idp" && timeout 300 npm ci --no-audit --no-fund --loglevel=error)
fi

VENV=${WALKTHROUGH_VENV:-$HOME/.cache/mandate/venv-walkthrough}
if [ ! -x "$VENV/bin/python" ]; then
    if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
        if [ "$(id -u)" -ne 0 ]; then
            echo "walkthrough: please run: sudo apt-get install -y python3-venv" >&2
            exit 1
        fi
        timeout 300 apt-get update -qq
        DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -qq --no-install-recommends python3-venv
    fi
    timeout 120 python3 -m venv "$VENV"
fi
# The venv remembers the requirements it was last brought to.
if ! cmp -s requirements.txt "$VENV/walkthrough-requirements.txt"; then
    timeout 300 "$VENV/bin/pip" install --quiet --disable-pip-version-check -r requirements.txt
    cp requirements.txt "$VENV/walkthrough-requirements.txt"
fi
# One private keyring session for the whole run: every mandate-engine call
# for the user must share it. timeout sends SIGTERM; walkthrough.py then
# stops what it started.
exec timeout -k 10 300 "$ROOT/scripts/with-keyring.sh" "$VENV/bin/python" -u walkthrough.py
