#!/usr/bin/env bash
# A throwaway PostgreSQL server for tests and benchmarks, from Debian's
# packages: its data, socket and log all live in DIR, it listens on a Unix
# socket only (DIR/.s.PGSQL.5432), trusts its superuser postgres and signs
# every other role in with SCRAM, and trades durability for speed (fsync off).
#
#   tests/pg-server.sh start DIR [WATCH_PID]   start; with WATCH_PID, a
#                                              watchdog stops the server and
#                                              removes DIR once that process
#                                              is gone (cargo tests use it)
#   tests/pg-server.sh stop DIR                stop now and remove DIR
#   tests/pg-server.sh halt DIR                stop, keeping DIR (an outage)
#   tests/pg-server.sh resume DIR              start again after halt
#
# The URL for the superuser is postgresql://postgres@/postgres?host=DIR.
# With PG_TLS=CERTDIR PG_PORT=N in the environment it also listens on
# 127.0.0.1:N for TLS connections with SCRAM (CERTDIR/server.{crt,key}).
# Run as root, the server runs as Debian's postgres user (PostgreSQL
# refuses root); DIR is made reachable for the unprivileged hooks.
set -euo pipefail

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$bin/postgres" ] || { echo "pg-server.sh: PostgreSQL is not installed (apt-get install postgresql)" >&2; exit 1; }

as_owner() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

cmd=${1:?start, stop, halt or resume}
dir=${2:?DIR}

# PG_TLS=DIR (DIR/server.crt, DIR/server.key) with PG_PORT=N: also listen on
# 127.0.0.1:N, TLS only, SCRAM only.
run_server() {
    local tcp="-c listen_addresses=''"
    [ -n "${PG_TLS:-}" ] && tcp="-c listen_addresses=127.0.0.1 -c port=${PG_PORT:?PG_PORT} -c ssl=on -c ssl_cert_file=$dir/tls.crt -c ssl_key_file=$dir/tls.key"
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
        -o "$tcp -c unix_socket_directories='$dir' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
        start >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
}
case $cmd in
start)
    mkdir -p "$dir"
    chmod 755 "$dir"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
    as_owner "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync >"$dir/initdb.log" 2>&1 ||
        { cat "$dir/initdb.log" >&2; exit 1; }
    # The superuser may come in over the socket without a password (tests
    # set up with it); every other role signs in with SCRAM.
    printf 'local all postgres trust\nlocal all all scram-sha-256\nhostssl all all 127.0.0.1/32 scram-sha-256\n' > "$dir/data/pg_hba.conf"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$dir/data/pg_hba.conf"
    if [ -n "${PG_TLS:-}" ]; then
        install -m 600 "$PG_TLS/server.crt" "$dir/tls.crt"
        install -m 600 "$PG_TLS/server.key" "$dir/tls.key"
        [ "$(id -u)" -eq 0 ] && chown postgres: "$dir/tls.crt" "$dir/tls.key"
    fi
    run_server
    if [ -n "${3:-}" ]; then
        watched=$3
        setsid bash -c "while kill -0 $watched 2>/dev/null; do sleep 0.5; done
            $(declare -f as_owner); as_owner '$bin/pg_ctl' -D '$dir/data' -m immediate stop >/dev/null 2>&1; rm -rf '$dir'" \
            </dev/null >/dev/null 2>&1 &
    fi
    ;;
halt)
    as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    ;;
resume)
    run_server
    ;;
stop)
    [ -d "$dir/data" ] && as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$dir"
    ;;
*) echo "pg-server.sh: start, stop, halt or resume" >&2; exit 1 ;;
esac
