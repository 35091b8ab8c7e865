#!/usr/bin/env bash
# Measures a release-built broker with mandate-load, on one machine:
# the test OIDC provider, the broker and the load tool side by side.
#
#   scripts/load.sh [sqlite|postgres] [mandate-load options...]
#
# The broker's rate limits and pending cap are raised so that the load is
# not refused by design; everything else is the default. Each process is
# stopped by its PID however the run ends.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
backend=${1:-sqlite}
shift || true
cargo build --quiet --release -p mandate-broker -p mandate-load
data=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    [ -n "${started_pg:-}" ] && scripts/pg.sh stop >/dev/null 2>&1 || true
    rm -rf "$data"
}
trap cleanup EXIT

wait_for() {
    for _ in $(seq 300); do
        if [ -s "$1" ]; then sed -n "s|^$2||p" "$1" | head -1; return; fi
        sleep 0.1
    done
}

case "$backend" in
sqlite) database="sqlite://$data/broker.db" ;;
postgres)
    # Stop the server afterwards only if this run started it.
    pg_isready -q -h 127.0.0.1 -p "${PG_PORT:-54329}" || started_pg=1
    base=$(scripts/pg.sh start)
    admin=${base%/*}
    psql "$base" -qc "DROP DATABASE IF EXISTS mandate_load WITH (FORCE)" -c "CREATE DATABASE mandate_load" >/dev/null
    database="$admin/mandate_load"
    ;;
*) echo "load.sh: sqlite or postgres" >&2; exit 2 ;;
esac

node tests/idp/server.mjs --port 0 >"$data/idp.out" 2>"$data/idp.err" &
pids+=($!)
issuer=$(wait_for "$data/idp.out" "issuer ")
[ -n "$issuer" ] || { cat "$data/idp.err" >&2; exit 1; }

big=1000000000:1000000000
RUST_LOG=warn ${BROKER_WRAP:-} "$CARGO_TARGET_DIR/release/mandate-broker" --listen 127.0.0.1:0 --data-dir "$data" \
    --database "$database" --issuer "$issuer=mandate-desktop" \
    --max-pending-per-user 1000000000 \
    --rate agent_requests=$big --rate user_prompts=$big --rate agent_calls=$big --rate user_calls=$big \
    >"$data/out" 2>"$data/err" &
pids+=($!)
base_url=$(wait_for "$data/out" "mandate-broker listening on ")
[ -n "$base_url" ] || { cat "$data/err" >&2; exit 1; }

MANDATE_LOAD_BEARER=$(timeout 60 node tests/idp/signin.mjs --issuer "$issuer" --user alice \
    --scope "openid email profile" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id_token"])')
export MANDATE_LOAD_BEARER
echo "load: $backend, $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
timeout 900 "$CARGO_TARGET_DIR/release/mandate-load" --broker "$base_url" \
    --principal "$issuer#alice" "$@"
