#!/usr/bin/env bash
# Runs the second implementation of the verification rules (verify.py) over
# tests/vectors. Its Python packages live in a venv outside the clone, which
# is made, or brought to requirements.txt, only when it is not already so.
set -euo pipefail
cd "$(dirname "$0")"
VENV=${SECOND_IMPL_VENV:-$HOME/.cache/mandate/venv-second-impl}
if [ ! -x "$VENV/bin/python" ]; then
    if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
        if [ "$(id -u)" -ne 0 ]; then
            echo "second-impl: please run: sudo apt-get install -y python3-venv" >&2
            exit 1
        fi
        timeout 300 apt-get update -qq
        DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -qq --no-install-recommends python3-venv
    fi
    timeout 120 python3 -m venv "$VENV"
fi
# The venv remembers the requirements it was last brought to.
if ! cmp -s requirements.txt "$VENV/second-impl-requirements.txt"; then
    timeout 300 "$VENV/bin/pip" install --quiet --disable-pip-version-check -r requirements.txt
    cp requirements.txt "$VENV/second-impl-requirements.txt"
fi
exec timeout 120 "$VENV/bin/python" run_vectors.py
