#!/usr/bin/env bash
# Installs schemathesis, for scripts/api-fuzz.sh, into $VENV (outside the
# clone) unless it is there. `make setup` starts it in the background, so
# that the download runs beside the build; api-fuzz.sh runs it again,
# which waits for that one to end (a lock) and then has nothing to do, or
# installs it itself if that one failed.
set -euo pipefail
VENV=${VENV:-$HOME/.cache/mandate/venv}
mkdir -p "$(dirname "$VENV")"
exec 9>"$VENV.lock"
flock 9
if [ ! -x "$VENV/bin/st" ]; then
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check schemathesis==4.32.5
fi
