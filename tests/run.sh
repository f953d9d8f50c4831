#!/usr/bin/env bash
# The whole test suite, as root on Debian 12: installs what the tests need,
# builds the release binaries, runs the unit and integration tests, then the
# end-to-end tests against a real OpenVPN server and client.
#   bash tests/run.sh            everything
#   bash tests/run.sh auth       only tests/e2e/test_auth*.sh (after unit tests)
set -uo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "tests/run.sh: run as root (network namespaces, OpenVPN's tun device)" >&2
    exit 1
fi

# Packages the tests use, installed when missing (one apt-get update at most).
. install/packages.sh
# Debian's slapd and freeradius packages start a server of their own when
# installed; the LDAP and RADIUS tests run their own, so one installed here
# is stopped.
fresh_slapd=$(command -v slapd >/dev/null || echo yes)
fresh_radius=$(command -v freeradius >/dev/null || echo yes)
fresh_pg=$(command -v pg_ctlcluster >/dev/null || echo yes)
ensure_packages tests/run.sh slapd=slapd freeradius=freeradius radclient=freeradius-utils openvpn=openvpn \
    ip=iproute2 openssl=openssl ping=iputils-ping python3=python3 iptables=iptables debootstrap=debootstrap dpkg-scanpackages=dpkg-dev \
    systemd-nspawn=systemd-container cc=gcc,libc6-dev node=nodejs npm=npm curl=curl chromium=chromium \
    man=man-db zsh=zsh fish=fish pg_ctlcluster=postgresql psql=postgresql-client
if [ -n "$fresh_slapd" ]; then
    service slapd stop >/dev/null 2>&1 || pkill -x slapd || true
fi
# Debian's postgresql starts a cluster of its own; the tests start theirs
# (tests/pg-server.sh).
if [ -n "$fresh_pg" ]; then
    service postgresql stop >/dev/null 2>&1 || true
fi
if [ -n "$fresh_radius" ]; then
    service freeradius stop >/dev/null 2>&1 || pkill -x freeradius || true
fi
# promtool (test_metrics) comes with Debian's prometheus, whose server the
# package starts; the tests need only the tool.
if ! command -v promtool >/dev/null; then
    echo "== installing prometheus (for promtool)"
    apt_update && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null ||
        { echo "tests/run.sh: apt-get install prometheus failed" >&2; exit 1; }
    service prometheus stop >/dev/null 2>&1 || pkill -x prometheus || true
fi
if [ ! -c /dev/net/tun ]; then mkdir -p /dev/net && mknod /dev/net/tun c 10 200; fi

echo "== build (release)"
cargo build --release --locked || exit 1

echo "== unit and integration tests"
cargo test --locked || exit 1

# The core's tests again on the PostgreSQL store (a throwaway server).
echo "== core tests on PostgreSQL"
TOLLGATE_TEST_STORE=postgres cargo test --locked -p tollgate-core || exit 1

echo "== shipped post-auth examples"
bash examples/post-auth/test.sh || exit 1

# A short run of every fuzz target (the full campaign: docs/fuzzing.md).
echo "== fuzz smoke (10 s per target)"
bash fuzz/run.sh smoke 10 || exit 1

passed=0; failed=0; rc=0
# tally FILE LABEL SECONDS: print one test file's output and add up its count.
tally() {
    local out=$1 label=$2 secs=$3 line f
    echo "-- $label (${secs}s)"
    cat "$out"
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -n 1)
    if [ -z "$line" ]; then failed=$((failed + 1)); rc=1; echo "$label did not finish"; return; fi
    passed=$((passed + ${line%% passed*}))
    f=${line#*, }; failed=$((failed + ${f%% failed*}))
    [ "${f%% failed*}" -eq 0 ] || rc=1
}
# run_one FILE DEFER OUT: one test file, its output and exit status kept.
# The inline pass (defer = never) runs on the PostgreSQL store, the
# deferred one on SQLite: every file runs on both stores.
run_one() {
    local start=$SECONDS store=${4:-sqlite}
    [ "$2" = never ] && store=postgres
    TOLLGATE_E2E_DEFER=$2 TOLLGATE_E2E_STORE=$store bash "$1" > "$3" 2>&1
    echo $? > "$3.rc"
    echo $((SECONDS - start)) > "$3.secs"
}
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

# The whole suite twice: deferred auth (the default where OpenVPN offers
# auth_control_file) on SQLite, and inline (defer = "never") on PostgreSQL
# (each file starts a server of its own, see tests/e2e/lib.sh). The install and demo
# tests change the host (or check that nothing else does) and run alone,
# as does the systemd test, which builds the workspace inside its container
# and would starve the timing of others; those and the package test use the
# installed default and run in the first pass only (the install test runs
# a second time with install.sh --create-database on PostgreSQL). Every other file makes
# its own namespaces, names and directory, so E2E_JOBS of them (default 3:
# most of their time is spent waiting on handshakes) run at once, each
# file's output printed whole when it ends.
alone="test_install.sh test_demo.sh test_systemd.sh"
once="test_deb.sh test_deb13.sh"
jobs=()
for t in tests/e2e/test_"${1:-}"*.sh; do
    [[ " $alone " == *" ${t##*/} "* ]] && continue
    # The long single-pass ones first, so that they never start last.
    if [[ " $once " == *" ${t##*/} "* ]]; then jobs=("$t auto" "${jobs[@]}"); else jobs+=("$t auto" "$t never"); fi
done

echo "== end-to-end tests (real OpenVPN), alone"
for t in tests/e2e/test_"${1:-}"*.sh; do
    [[ " $alone " == *" ${t##*/} "* ]] || continue
    stores=sqlite
    # install.sh --create-database, on Debian's own PostgreSQL, too.
    [ "${t##*/}" = test_install.sh ] && stores="sqlite postgres"
    for store in $stores; do
        out=$logs/alone-$store-${t##*/}
        run_one "$t" auto "$out" "$store"
        tally "$out" "$t (defer = auto, $store)" "$(cat "$out.secs")"
        [ "$(cat "$out.rc")" -eq 0 ] || rc=1
    done
done

echo "== end-to-end tests (real OpenVPN), ${E2E_JOBS:-3} at a time, defer = auto (SQLite) and never (PostgreSQL)"
declare -A running=()
next=0
while [ "$next" -lt "${#jobs[@]}" ] || [ "${#running[@]}" -gt 0 ]; do
    while [ "$next" -lt "${#jobs[@]}" ] && [ "${#running[@]}" -lt "${E2E_JOBS:-3}" ]; do
        read -r t defer <<< "${jobs[$next]}"
        out=$logs/$next
        run_one "$t" "$defer" "$out" &
        running[$!]="$next"
        next=$((next + 1))
    done
    wait -n -p done_pid
    i=${running[$done_pid]}; unset "running[$done_pid]"
    read -r t defer <<< "${jobs[$i]}"
    store=SQLite; [ "$defer" = never ] && store=PostgreSQL
    tally "$logs/$i" "$t (defer = $defer, $store)" "$(cat "$logs/$i.secs")"
    [ "$(cat "$logs/$i.rc")" -eq 0 ] || rc=1
done
echo
echo "e2e: $passed passed, $failed failed"
exit $rc
