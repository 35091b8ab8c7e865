# Sourced by the scripts: the build cache for this checkout.
#
# The cache lives outside the clone so that a fresh clone (CI) reuses it,
# but it is keyed by the checkout's path: cargo would otherwise take a
# test binary built in one checkout as fresh in another, and that binary
# reads its fixtures from the first checkout's path.
checkout_id=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P | sha256sum | cut -c1-12)
: "${CARGO_TARGET_DIR:=$HOME/.cache/mandate/target-$checkout_id}"
export CARGO_TARGET_DIR
