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
VENV=$VENV scripts/api-fuzz-venv.sh
# The workspace's build, as `make unit` builds it (a no-op after it): a
# build of the broker alone resolves other features, and compiles again.
cargo build --quiet --workspace --bins --locked
source scripts/stack.sh
start_idp
# The OAuth endpoints too, with the code flow on (signing in at the test
# provider as its `mandate-broker` client) and one resource.
start_broker "$CARGO_TARGET_DIR/debug/mandate-broker" \
    --oauth-sign-in "$issuer=mandate-broker" --oauth-resource https://files.example/
token=$(id_token alice)

timeout 900 "$VENV/bin/st" run "$broker_url/openapi.json" --checks all \
    --exclude-checks positive_data_acceptance -n "${1:-20}" --request-timeout 10 -w 2 \
    -H "Authorization: Bearer $token" --seed "${API_FUZZ_SEED:-20261123}"
