#!/usr/bin/env bash
# Runs a command with a real OS keyring and no desktop: a private D-Bus
# session bus, gnome-keyring's Secret Service unlocked on a scratch login
# keyring, and a fresh keyutils session keyring. Everything it starts ends
# with it.
#
#   scripts/with-keyring.sh CMD [ARGS...]
set -euo pipefail

if [ $# -eq 0 ]; then
    echo "usage: scripts/with-keyring.sh CMD [ARGS...]" >&2
    exit 2
fi

if [ -z "${MANDATE_KEYRING_BUS:-}" ]; then
    # Outer half: a private session bus, which dbus-run-session tears down
    # (with the daemons on it) when the inner half exits.
    export MANDATE_KEYRING_BUS=1
    exec dbus-run-session -- "$0" "$@"
fi

scratch=$(mktemp -d "${TMPDIR:-/tmp}/mandate-keyring.XXXXXX")
chmod 700 "$scratch"
mkdir -m 700 "$scratch/data" "$scratch/run"
# gnome-keyring keeps its keyrings under XDG_DATA_HOME and its control
# socket under XDG_RUNTIME_DIR; both point into the scratch directory, so
# no real keyring is touched.
export XDG_DATA_HOME="$scratch/data" XDG_RUNTIME_DIR="$scratch/run"
daemon_pid=
cleanup() {
    [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null || true
    rm -rf "$scratch"
}
trap cleanup EXIT
# A non-empty password: an empty one does not create the login collection.
env_lines=$(printf '%s' mandate-test | timeout 20 gnome-keyring-daemon --unlock --components=secrets)
eval "$env_lines"
export GNOME_KEYRING_CONTROL
daemon_pid=$(pgrep -n -f "gnome-keyring-daemon --unlock --components=secrets" || true)
export MANDATE_KEYRING=secret-service
# Run the command in a new session keyring (keyutils), so its keys end
# with it. Not exec: the trap must run.
keyctl session mandate-test "$@"
