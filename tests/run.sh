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
ensure_packages tests/run.sh slapd=slapd freeradius=freeradius radclient=freeradius-utils openvpn=openvpn \
    ip=iproute2 openssl=openssl ping=iputils-ping python3=python3 iptables=iptables debootstrap=debootstrap dpkg-scanpackages=dpkg-dev \
    systemd-nspawn=systemd-container cc=gcc,libc6-dev node=nodejs npm=npm curl=curl \
    man=man-db zsh=zsh fish=fish
if [ -n "$fresh_slapd" ]; then
    service slapd stop >/dev/null 2>&1 || pkill -x slapd || true
fi
if [ -n "$fresh_radius" ]; then
    service freeradius stop >/dev/null 2>&1 || pkill -x freeradius || true
fi
if [ ! -c /dev/net/tun ]; then mkdir -p /dev/net && mknod /dev/net/tun c 10 200; fi

echo "== build (release)"
cargo build --release --locked || exit 1

echo "== unit and integration tests"
cargo test --locked || exit 1

echo "== shipped post-auth examples"
bash examples/post-auth/test.sh || exit 1

# A short run of every fuzz target (the full campaign: docs/fuzzing.md).
echo "== fuzz smoke (10 s per target)"
bash fuzz/run.sh smoke 10 || exit 1

passed=0; failed=0; rc=0
# The whole suite twice: deferred auth (the default where OpenVPN offers
# auth_control_file) and inline (defer = "never"). The install, demo and
# systemd tests use the installed default and run in the first pass only.
once="tests/e2e/test_install.sh tests/e2e/test_demo.sh tests/e2e/test_systemd.sh"
for defer in auto never; do
    echo "== end-to-end tests (real OpenVPN), defer = $defer"
    for t in tests/e2e/test_"${1:-}"*.sh; do
        [ "$defer" = never ] && [[ " $once " == *" $t "* ]] && continue
        echo "-- $t (defer = $defer)"
        out=$(mktemp)
        TOLLGATE_E2E_DEFER=$defer bash "$t" 2>&1 | tee "$out"
        [ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
        line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -n 1)
        rm -f "$out"
        if [ -z "$line" ]; then failed=$((failed + 1)); rc=1; echo "$t did not finish"; continue; fi
        passed=$((passed + ${line%% passed*}))
        f=${line#*, }; failed=$((failed + ${f%% failed*}))
    done
done
echo
echo "e2e: $passed passed, $failed failed"
exit $rc
