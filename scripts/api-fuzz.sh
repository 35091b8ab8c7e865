#!/usr/bin/env bash
# Runs schemathesis against the real broker binary on 127.0.0.1, signed in
# as a real user of the test OIDC provider, and stops both processes by
# their PIDs however the run ends.
#
#   scripts/api-fuzz.sh [MAX_EXAMPLES]
#
# positive_data_acceptance is excluded: a schema can describe a token's
# shape but not its signature, so schema-valid bodies are rightly refused.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
VENV=${VENV:-$HOME/.cache/mandate/venv}
if [ ! -x "$VENV/bin/st" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet schemathesis==4.32.5
fi
cargo build --quiet -p mandate-broker --bin mandate-broker
data=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$data"
}
trap cleanup EXIT

# wait_for FILE PREFIX: the rest of the first line of FILE after PREFIX.
wait_for() {
    for _ in $(seq 300); do
        if [ -s "$1" ]; then sed -n "s|^$2||p" "$1" | head -1; return; fi
        sleep 0.1
    done
}

node tests/idp/server.mjs --port 0 >"$data/idp.out" 2>"$data/idp.err" &
pids+=($!)
issuer=$(wait_for "$data/idp.out" "issuer ")
[ -n "$issuer" ] || { echo "api-fuzz: the OIDC provider did not start" >&2; cat "$data/idp.err" >&2; exit 1; }

"$CARGO_TARGET_DIR/debug/mandate-broker" --listen 127.0.0.1:0 --data-dir "$data" \
    --issuer "$issuer=mandate-desktop" >"$data/out" 2>"$data/err" &
pids+=($!)
base=$(wait_for "$data/out" "mandate-broker listening on ")
[ -n "$base" ] || { echo "api-fuzz: the broker did not start" >&2; cat "$data/err" >&2; exit 1; }

token=$(timeout 60 node tests/idp/signin.mjs --issuer "$issuer" --user alice \
    --scope "openid email profile" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id_token"])')

timeout 900 "$VENV/bin/st" run "$base/openapi.json" --checks all \
    --exclude-checks positive_data_acceptance -n "${1:-20}" --request-timeout 10 -w 2 \
    -H "Authorization: Bearer $token" --seed "${API_FUZZ_SEED:-20261123}"
