#!/usr/bin/env bash
# `make run`: the desktop app and its local stack, in one command.
#
#   - installs what is missing (scripts/setup.sh) and builds the app;
#   - starts a local OIDC provider (oidc-provider on Node) on 127.0.0.1;
#   - starts the app, with its broker in-process on 127.0.0.1:7700;
#   - once the app is up, a demo agent files a request for the demo user.
#
# Ctrl-C (or closing the app) stops everything it started. Without a
# desktop session (no D-Bus session bus, as under a bare xvfb-run) the app
# gets a throwaway keyring for this run (scripts/with-keyring.sh).
#
# Environment: IDP_PORT (default 9000), MANDATE_BROKER_LISTEN (default
# 127.0.0.1:7700), MANDATE_DATA_DIR (default: a directory under
# ~/.local/share/mandate-demo, kept between runs; with a throwaway
# keyring, a temporary one).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

if [ -z "${MANDATE_RUN_INNER:-}" ]; then
    scripts/setup.sh
    source scripts/env.sh
    make --no-print-directory ui
    cargo build --bins --locked
    if [ -z "${DBUS_SESSION_BUS_ADDRESS:-}" ]; then
        echo "run: no desktop session bus; using a throwaway keyring and data directory for this run"
        MANDATE_RUN_INNER=1 MANDATE_RUN_THROWAWAY=1 exec scripts/with-keyring.sh "$0" "$@"
    fi
    MANDATE_RUN_INNER=1 exec "$0" "$@"
fi

source scripts/env.sh
bin=$CARGO_TARGET_DIR/debug
idp_port=${IDP_PORT:-9000}
listen=${MANDATE_BROKER_LISTEN:-127.0.0.1:7700}
issuer=http://127.0.0.1:$idp_port
logs=$(mktemp -d "${TMPDIR:-/tmp}/mandate-run.XXXXXX")
# A throwaway keyring forgets the user key, so the history it signed goes
# with it.
if [ -n "${MANDATE_RUN_THROWAWAY:-}" ]; then
    data=${MANDATE_DATA_DIR:-$logs/data}
else
    data=${MANDATE_DATA_DIR:-$HOME/.local/share/mandate-demo}
fi
mkdir -p "$data"

# Each child leads its own process group, so that stopping it stops what it
# started too.
pids=()
stop() {
    trap - INT TERM EXIT
    for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
    sleep 1
    for pid in "${pids[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
    echo "run: stopped; logs in $logs"
}
trap stop EXIT
trap 'exit 130' INT TERM

# Waits up to $2 seconds for $1 (a URL) to answer.
wait_for() {
    for _ in $(seq $(($2 * 10))); do
        curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "run: $1 did not answer in $2 s; see $logs" >&2
    exit 1
}

setsid node tests/idp/server.mjs --port "$idp_port" >"$logs/idp.log" 2>&1 &
pids+=($!)
wait_for "$issuer/.well-known/openid-configuration" 30

MANDATE_ISSUER=$issuer MANDATE_BROKER_LISTEN=$listen MANDATE_DATA_DIR=$data \
    MANDATE_KEYRING_SERVICE=${MANDATE_KEYRING_SERVICE:-dev.mandate.demo} setsid "$bin/mandate-app" >"$logs/app.log" 2>&1 &
app=$!
pids+=("$app")
wait_for "http://$listen/.well-known/mandate" 60

cat <<EOF

  Mandate is running.
    OIDC provider  $issuer
    broker         http://$listen (in the app)
    sign in as     alice (any password; also bob, carol)
    app data       $data
    logs           $logs

  Press Ctrl-C to stop everything.

EOF

# A demo agent asks alice for read access to her reports. The broker takes
# requests only for users who have signed in (and enrolled a key), so it
# asks again every 3 s until alice has; then it waits for her decision.
key=$data/demo-agent.key
[ -f "$key" ] || MANDATE_BROKER=http://$listen "$bin/mandate" agent init --key "$key" >/dev/null 2>&1
demo_agent() {
    while :; do
        MANDATE_BROKER=http://$listen "$bin/mandate" agent request --key "$key" \
            --principal "$issuer#alice" --name "Report Bot" \
            --scope 'files:read:https://files.example/reports/' \
            --intent 'Clean up my reports folder' --purpose 'Tidy the Q3 reports' \
            --lifetime 3600 --wait --timeout 3600 --out "$data/demo-grant.json" \
            >"$logs/agent.log" 2>&1 && return 0
        grep -q request.unknown_principal "$logs/agent.log" || return 1
        sleep 3
    done
}
export -f demo_agent
export bin key listen issuer data logs
setsid bash -c demo_agent &
pids+=($!)
echo "run: a demo agent will ask alice for access once she signs in (log: $logs/agent.log)"

# Until the app is closed (or Ctrl-C).
while kill -0 "$app" 2>/dev/null; do sleep 1; done
echo "run: the app was closed"
