#!/usr/bin/env bash
# Starts or stops a throwaway PostgreSQL server on 127.0.0.1 for the tests.
#
#   scripts/pg.sh start     prints DATABASE_URL for the running server
#   scripts/pg.sh restart   restarts the running server; its fast shutdown
#                           cuts every open connection (the chaos test)
#   scripts/pg.sh stop
#
# The cluster lives in $PG_DIR (default /tmp/mandate-pg, which the postgres
# user can reach when the tests run as root); its port is
# $PG_PORT (default 54329). Debian's postgresql is installed if missing.
set -euo pipefail
PG_DIR=${PG_DIR:-${TMPDIR:-/tmp}/mandate-pg}
PG_PORT=${PG_PORT:-54329}
BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)

# The server's options: loopback only, the port, its socket in $PG_DIR.
OPTS="-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DIR -c max_connections=200 -c fsync=off"

as_pg() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "${1:-}" in
start)
    if [ -z "$BIN" ]; then
        if [ "$(id -u)" -ne 0 ]; then
            echo "pg.sh: please run: sudo apt-get install -y postgresql" >&2
            exit 1
        fi
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
        BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    fi
    mkdir -p "$PG_DIR"
    [ "$(id -u)" -eq 0 ] && chown postgres "$PG_DIR"
    if [ ! -f "$PG_DIR/data/PG_VERSION" ]; then
        as_pg "$BIN/initdb" -D "$PG_DIR/data" -U mandate --auth=trust -E UTF8 >/dev/null
    fi
    if ! as_pg "$BIN/pg_ctl" -D "$PG_DIR/data" status >/dev/null 2>&1; then
        as_pg "$BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w -t 60 \
            -o "$OPTS" start >/dev/null
    fi
    echo "postgres://mandate@127.0.0.1:$PG_PORT/postgres"
    ;;
restart)
    if [ -z "$BIN" ] || [ ! -f "$PG_DIR/data/PG_VERSION" ]; then
        echo "pg.sh: no cluster in $PG_DIR to restart" >&2
        exit 1
    fi
    as_pg "$BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -m fast -w -t 60 \
        -o "$OPTS" restart >/dev/null
    ;;
stop)
    if [ -n "$BIN" ] && [ -f "$PG_DIR/data/PG_VERSION" ]; then
        as_pg "$BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w -t 60 stop >/dev/null 2>&1 || true
    fi
    ;;
*)
    echo "usage: $0 start|restart|stop" >&2
    exit 2
    ;;
esac
