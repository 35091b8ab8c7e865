#!/usr/bin/env bash
# Keeps the build caches in ~/.cache/mandate from filling the disk.
#
# Every checkout path gets its own cache (scripts/env.sh), so each new clone
# leaves one behind; on a shared disk they once filled it, and the linker
# died with a bus error mid-build. Run by `make setup`:
#   - marks this checkout's caches as used now (every `make` does too);
#   - removes other checkouts' caches unused for RETAIN_HOURS (default 48);
#   - when the disk has less than LOW_GIB free (default 25), also removes
#     other checkouts' caches unused for an hour, then this checkout's
#     incremental-compilation state (rebuilt on demand);
#   - fails with a clear message when less than MIN_GIB (default 6) is free,
#     rather than letting a build die halfway.
set -euo pipefail
source "$(dirname "$0")/env.sh"

retain_hours=${RETAIN_HOURS:-48}
low_gib=${LOW_GIB:-25}
min_gib=${MIN_GIB:-6}

root=$(dirname "$CARGO_TARGET_DIR")
ours=("$CARGO_TARGET_DIR" "${FUZZ_TARGET_DIR:-$root/fuzz-target-$checkout_id}")
mkdir -p "${ours[@]}"
for dir in "${ours[@]}"; do touch "$dir/.last-used"; done

free_gib() { df -P -k "$root" | awk 'NR == 2 { print int($4 / 1048576) }'; }

# Other checkouts' caches not used in the last $1 minutes. Used means its
# mark (which `make` sets on every run in that checkout) or anything a build
# wrote (deps/, .fingerprint/, the binaries) is newer than that: a checkout
# built with plain cargo, and never through make, still counts as in use.
stale() {
    local minutes=$1 dir
    for dir in "$root"/target-* "$root"/fuzz-target-*; do
        [ -d "$dir" ] || continue
        case " ${ours[*]} " in *" $dir "*) continue ;; esac
        [ -n "$(find "$dir" -maxdepth 3 -mmin -"$minutes" -print -quit 2>/dev/null)" ] && continue
        echo "$dir"
    done
    return 0
}

remove() {
    local dir
    while read -r dir; do
        [ -n "$dir" ] || continue
        echo "cache-prune: removing $dir ($(du -sh "$dir" 2>/dev/null | cut -f1))"
        rm -rf -- "$dir"
    done
}

stale $((retain_hours * 60)) | remove
if [ "$(free_gib)" -lt "$low_gib" ]; then
    echo "cache-prune: $(free_gib) GiB free, below $low_gib GiB"
    stale 60 | remove
fi
if [ "$(free_gib)" -lt "$low_gib" ] && [ -d "$CARGO_TARGET_DIR/debug/incremental" ]; then
    echo "cache-prune: removing this checkout's incremental state"
    rm -rf -- "$CARGO_TARGET_DIR/debug/incremental"
fi
if [ "$(free_gib)" -lt "$min_gib" ]; then
    echo "cache-prune: only $(free_gib) GiB free on $(df -P "$root" | awk 'NR == 2 { print $6 }'); a build needs about $min_gib GiB" >&2
    exit 1
fi
