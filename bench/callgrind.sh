#!/usr/bin/env bash
# What each hook executes while OpenVPN waits, counted in instructions by
# callgrind: unlike wall time, the count is the same from run to run on a
# noisy machine, so it shows a fixed cost added or removed.
#   bash bench/callgrind.sh BIN_DIR CONFIG
# CONFIG names a database with server nl-1 and users user0 … (as
# `tollgate-bench populate` makes them, password "bench password"). Only the
# hook process is counted, up to its exit; the worker it forks is not (what
# it does, OpenVPN does not wait for). bench/run.sh runs this as section 8.
set -euo pipefail
B=$1 CONFIG=$(realpath "$2")
command -v valgrind >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null
VG=$(command -v valgrind)
D=$(mktemp -d /tmp/tg-callgrind.XXXXXX)
trap 'rm -rf "$D"' EXIT
printf 'user9\nbench password\n' > "$D/creds"

# count LABEL ENV... -- COMMAND...: instructions of COMMAND under ENV alone.
count() {
    local label=$1 env=() n
    shift
    while [ "$1" != -- ]; do env+=("$1"); shift; done
    shift
    env -i "${env[@]}" "$VG" --tool=callgrind --callgrind-out-file="$D/cg.%p" "$@" >/dev/null 2>&1 &
    local pid=$!
    wait "$pid" || true
    # The hook's own file (env and valgrind exec in place: the same pid).
    n=$(grep -m1 '^summary:' "$D/cg.$pid" | cut -d' ' -f2)
    printf '%-52s %10s instructions\n' "$label" "$n"
    sleep 0.5 # let a forked worker finish before the next hook
    rm -f "$D"/cg.*
}

auth=(untrusted_ip=192.0.2.2 auth_failed_reason_file="$D/reason")
conn=(username=user9 trusted_ip=192.0.2.2 trusted_port=30009 time_unix=1800000009)
: > "$D/ctl1"
: > "$D/ctl2"
: > "$D/ccr"
count "/bin/true (dynamically linked)" A=1 -- /bin/true
count "a hook's --version (start and exit of the binary)" A=1 -- "$B/client-disconnect" --version
count "auth-verify, deferred, auth-gen-token" "${auth[@]}" untrusted_port=40001 session_state=Initial \
    auth_control_file="$D/ctl1" -- "$B/auth-verify" --config "$CONFIG" "$D/creds"
count "auth-verify, deferred, no auth-gen-token (look-up)" "${auth[@]}" untrusted_port=40002 \
    auth_control_file="$D/ctl2" -- "$B/auth-verify" --config "$CONFIG" "$D/creds"
count "client-connect, deferred" "${conn[@]}" ifconfig_pool_remote_ip=10.8.0.2 \
    client_connect_deferred_file="$D/ccr" -- "$B/client-connect" --config "$CONFIG" "$D/cc"
count "client-disconnect, deferred (spool, fork)" "${conn[@]}" bytes_received=5 bytes_sent=6 time_duration=60 \
    -- "$B/client-disconnect" --config "$CONFIG"
