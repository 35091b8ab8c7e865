# Sourced by the scripts that run a local stack (api-fuzz.sh, load.sh):
# a scratch directory, processes stopped by their PIDs however the script
# ends, the test OIDC provider and a real sign-in.
#
# After sourcing: $data is the scratch directory, and `track PID` adds a
# process to stop. A script with more to undo defines `stack_extra_cleanup`.

data=$(mktemp -d)
pids=()
track() { pids+=("$1"); }
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    if declare -F stack_extra_cleanup >/dev/null; then stack_extra_cleanup; fi
    rm -rf "$data"
}
trap cleanup EXIT

# wait_for FILE PREFIX: the rest of the first line of FILE after PREFIX,
# waiting up to 30 s for the line to appear.
wait_for() {
    for _ in $(seq 300); do
        if [ -s "$1" ]; then sed -n "s|^$2||p" "$1" | head -1; return; fi
        sleep 0.1
    done
}

# start_idp: starts the test OIDC provider and sets $issuer.
start_idp() {
    node tests/idp/server.mjs --port 0 >"$data/idp.out" 2>"$data/idp.err" &
    track $!
    issuer=$(wait_for "$data/idp.out" "issuer ")
    [ -n "$issuer" ] || { echo "the OIDC provider did not start" >&2; cat "$data/idp.err" >&2; exit 1; }
}

# start_broker BINARY ARGS...: starts a broker on an ephemeral port with its
# data in $data, trusting $issuer, and sets $broker_url.
start_broker() {
    local binary=$1
    shift
    RUST_LOG=${RUST_LOG:-warn} ${BROKER_WRAP:-} "$binary" --listen 127.0.0.1:0 --data-dir "$data" \
        --issuer "$issuer=mandate-desktop" "$@" >"$data/out" 2>"$data/err" &
    track $!
    broker_url=$(wait_for "$data/out" "mandate-broker listening on ")
    [ -n "$broker_url" ] || { echo "the broker did not start" >&2; cat "$data/err" >&2; exit 1; }
}

# id_token USER: signs USER in at $issuer, as a person would, and prints the ID token.
# A second argument is the ID token's nonce (to enroll a key: the thumbprint
# of the sign-in's session key).
id_token() {
    timeout 60 node tests/idp/signin.mjs --issuer "$issuer" --user "$1" ${2:+"--nonce=$2"} \
        --scope "openid email profile" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id_token"])'
}
