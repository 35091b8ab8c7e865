#!/usr/bin/env bash
# `make run`: the desktop app and its local stack, in one command.
#
#   - installs what is missing (scripts/setup.sh) and builds the app;
#   - starts a local OIDC provider (oidc-provider on Node) on 127.0.0.1;
#   - starts the app, with its broker in-process on 127.0.0.1:7700;
#   - starts the demo's resource servers, an MCP server (on the official
#     SDK) behind mandate-gateway, and the demo's agents (docs/demo.md),
#     which ask the demo user once she has signed in, and follow through.
#
# Ctrl-C (or closing the app) stops everything it started. Without a
# desktop session (no D-Bus session bus, as under a bare xvfb-run) the app
# gets a throwaway keyring for this run (scripts/with-keyring.sh).
#
# Environment: IDP_PORT (default 9000), MANDATE_BROKER_LISTEN (default
# 127.0.0.1:7700), MANDATE_DEMO_RESOURCES_LISTEN (default 127.0.0.1:7800),
# MANDATE_GATEWAY_LISTEN (default 127.0.0.1:7900), MCP_UPSTREAM_PORT
# (default 7810),
# MANDATE_DATA_DIR (default: a directory under
# ~/.local/share/mandate-demo, kept between runs; with a throwaway
# keyring, a temporary one).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

if [ -z "${MANDATE_RUN_INNER:-}" ]; then
    scripts/setup.sh run
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
resources_listen=${MANDATE_DEMO_RESOURCES_LISTEN:-127.0.0.1:7800}
gateway_listen=${MANDATE_GATEWAY_LISTEN:-127.0.0.1:7900}
mcp_port=${MCP_UPSTREAM_PORT:-7810}
gateway=http://$gateway_listen/mcp
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

# Waits up to $2 seconds for something to listen on $1 (host:port).
wait_for_port() {
    for _ in $(seq $(($2 * 10))); do
        (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "run: nothing listens on $1 after $2 s; see $logs" >&2
    exit 1
}

setsid node tests/idp/server.mjs --port "$idp_port" >"$logs/idp.log" 2>&1 &
pids+=($!)
wait_for "$issuer/.well-known/openid-configuration" 30

# The app's broker issues access tokens for the MCP gateway, and trusts
# the gateway's key as the witness of the calls made through it: the key
# is made (once) and its thumbprint read before the broker starts
# (docs/mcp.md, "Witness receipts").
witness_key=$data/gateway-witness.key
witness=$("$bin/mandate-gateway" --witness-key "$witness_key" --print-witness)
MANDATE_ISSUER=$issuer MANDATE_BROKER_LISTEN=$listen MANDATE_DATA_DIR=$data \
    MANDATE_BROKER_OAUTH_RESOURCES=$gateway MANDATE_BROKER_WITNESS="$gateway=$witness" \
    MANDATE_KEYRING_SERVICE=${MANDATE_KEYRING_SERVICE:-dev.mandate.demo} setsid "$bin/mandate-app" >"$logs/app.log" 2>&1 &
app=$!
pids+=("$app")
wait_for "http://$listen/.well-known/mandate" 60

cat <<EOF

  Mandate is running.
    OIDC provider  $issuer
    broker         http://$listen (in the app)
    demo services  http://$resources_listen
    MCP gateway    $gateway
    sign in as     alice (any password; also bob, carol)
    app data       $data
    logs           $logs

  Four demo agents will ask alice for authority once she signs in.
  Press Ctrl-C to stop everything.

EOF

# The demo's resource servers trust the app's broker; the demo agents
# (docs/demo.md) ask alice, once she has signed in (they ask again every
# 4 s until the broker knows her), and follow through once she decides.
setsid "$bin/mandate-demo-resources" --listen "$resources_listen" --broker "http://$listen" \
    >"$logs/resources.log" 2>&1 &
pids+=($!)
wait_for_port "$resources_listen" 30
# The log exists before anything writes or follows it: the background
# child opens it only when it runs, which may be after `tail` starts.
: >"$logs/demo.log"
setsid "$bin/mandate-demo" --broker "http://$listen" --resources "http://$resources_listen" \
    --principal "$issuer#alice" --dir "$data/demo" --format text >>"$logs/demo.log" 2>&1 &
pids+=($!)
# The coding agent's tools: an MCP server on the official SDK, serving a
# small project, behind the gateway; the agent, on the SDK's client,
# reads under its grant and asks for a step-up to run a command.
project=$data/demo/project
if [ ! -e "$project/README.md" ]; then
    mkdir -p "$project/src"
    printf '# Checkout service\n\nThe cart total is wrong for discounted items; `make test` shows it.\n' >"$project/README.md"
    printf 'test:\n\tnode --test src/\n' >"$project/Makefile"
    printf 'export const total = (items) => items.reduce((s, i) => s + i.price, 0);\n' >"$project/src/cart.js"
fi
setsid node tests/mcp/server.mjs --port "$mcp_port" --root "$project" >"$logs/mcp-server.log" 2>&1 &
pids+=($!)
wait_for_port "127.0.0.1:$mcp_port" 30
setsid "$bin/mandate-gateway" --listen "$gateway_listen" --upstream "http://127.0.0.1:$mcp_port/mcp" \
    --broker "http://$listen" --resource "$gateway" --name "Checkout project tools" \
    --witness-key "$witness_key" >"$logs/gateway.log" 2>&1 &
pids+=($!)
wait_for_port "$gateway_listen" 30
setsid node tests/mcp/coding-agent.mjs --broker "http://$listen" --gateway "$gateway" \
    --principal "$issuer#alice" --dir "$data/demo" --mandate "$bin/mandate" --format text >>"$logs/demo.log" 2>&1 &
pids+=($!)
# Their progress, here too.
setsid tail -n +1 -F "$logs/demo.log" &
pids+=($!)

# Until the app is closed (or Ctrl-C).
while kill -0 "$app" 2>/dev/null; do sleep 1; done
echo "run: the app was closed"
