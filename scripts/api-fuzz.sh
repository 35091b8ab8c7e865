#!/usr/bin/env bash
# Runs schemathesis against the real broker binary on 127.0.0.1 and stops
# the broker by its PID however the run ends.
#
#   scripts/api-fuzz.sh [MAX_EXAMPLES]
#
# positive_data_acceptance is excluded: a schema can describe a token's
# shape but not its signature, so schema-valid bodies are rightly refused.
# Not yet part of `make test`: see the closing note of the session that
# added it (one false positive on an optional query parameter).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${CARGO_TARGET_DIR:=$HOME/.cache/mandate/target}"
export CARGO_TARGET_DIR
VENV=${VENV:-$HOME/.cache/mandate/venv}
if [ ! -x "$VENV/bin/st" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet schemathesis==4.32.5
fi
cargo build --quiet -p mandate-broker --bin mandate-broker
data=$(mktemp -d)
"$CARGO_TARGET_DIR/debug/mandate-broker" --listen 127.0.0.1:0 --data-dir "$data" >"$data/out" 2>"$data/err" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$data"' EXIT
for _ in $(seq 100); do
    [ -s "$data/out" ] && break
    sleep 0.1
done
addr=$(sed -n 's|^mandate-broker listening on http://||p' "$data/out")
[ -n "$addr" ] || { echo "api-fuzz: the broker did not start" >&2; cat "$data/err" >&2; exit 1; }
timeout 900 "$VENV/bin/st" run "http://$addr/openapi.json" --checks all \
    --exclude-checks positive_data_acceptance -n "${1:-20}" --request-timeout 10 -w 2
