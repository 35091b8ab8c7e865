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
source scripts/stack.sh
# Stop Postgres afterwards only if this run started it.
stack_extra_cleanup() {
    if [ -n "${started_pg:-}" ]; then scripts/pg.sh stop >/dev/null 2>&1 || true; fi
}

case "$backend" in
sqlite) database="sqlite://$data/broker.db" ;;
postgres)
    pg_isready -q -h 127.0.0.1 -p "${PG_PORT:-54329}" || started_pg=1
    base=$(scripts/pg.sh start)
    admin=${base%/*}
    psql "$base" -qc "DROP DATABASE IF EXISTS mandate_load WITH (FORCE)" -c "CREATE DATABASE mandate_load" >/dev/null
    database="$admin/mandate_load"
    ;;
*) echo "load.sh: sqlite or postgres" >&2; exit 2 ;;
esac

start_idp
big=1000000000:1000000000
start_broker "${MANDATE_LOAD_BROKER:-$CARGO_TARGET_DIR/release/mandate-broker}" --database "$database" \
    --max-pending-new 1000000000 --max-pending-known 1000000000 --max-pending-per-agent 1000000000 \
    --rate agent_requests=$big --rate user_prompts=$big --rate agent_calls=$big --rate user_calls=$big \
    --rate receipts=$big --rate revocations=$big
# The sign-in is made for the load's enrollment: its nonce is the
# thumbprint of a session key the load tool proves it holds.
session_key="$data/session.key"
nonce=$("$CARGO_TARGET_DIR/release/mandate-load" session-nonce "$session_key")
MANDATE_LOAD_BEARER=$(id_token alice "$nonce")
export MANDATE_LOAD_BEARER
echo "load: $backend, $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
timeout 900 "$CARGO_TARGET_DIR/release/mandate-load" --broker "$broker_url" \
    --principal "$issuer#alice" --session-key "$session_key" "$@"
