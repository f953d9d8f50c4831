#!/usr/bin/env bash
# Login storm on a real OpenVPN server: one connected client pings the
# server through its tunnel every 10 ms while 20 other clients log in at
# once. Prints the pinger's worst round trip before and during the storm,
# for MODE = deferred | inline | python (the reference Python hook).
#   bash bench/storm.sh MODE
# MODE bare runs /bin/true as all three hooks: OpenVPN's own cost of 20
# handshakes, the floor any hook adds to. MODE pam is what an admin who
# wants no scripts at all runs: OpenVPN's own openvpn-plugin-auth-pam
# (in-process, Debian's openvpn package) with pam_unix and local users
# made for the run (removed on exit), and no connect or disconnect hook.
#   N=50 bash bench/storm.sh MODE     a larger wave
#   INLINE_CONNECT=1 bash bench/storm.sh deferred   client-connect not deferred
. "$(dirname "$0")/../tests/e2e/lib.sh"
MODE=${1:?usage: storm.sh deferred|inline|python|bare|pam}
N=${N:-20}
case $MODE in
    deferred) TOLLGATE_E2E_DEFER=auto ;;
    inline | python | bare | pam) TOLLGATE_E2E_DEFER=never ;;
    *) echo "unknown mode $MODE"; exit 2 ;;
esac
setup
PW='bench password'
for i in $(seq 0 "$N"); do echo "$PW" | tg user add "u$i" --password-stdin --server nl-1 >/dev/null; done
extra="max-clients $((N + 44))"
if [ "$MODE" = pam ]; then
    # Unix users tgb<pid>u0.. with the same password, a PAM service of
    # their own; both gone on exit (after lib.sh's cleanup).
    PAM_PREFIX="tgb$$u"
    PAM_SERVICE="tollgate-bench-$$"
    pam_cleanup() {
        for i in $(seq 0 "$N"); do userdel "$PAM_PREFIX$i" 2>/dev/null; done
        rm -f "/etc/pam.d/$PAM_SERVICE"
    }
    trap 'cleanup; pam_cleanup' EXIT
    printf 'auth required pam_unix.so\naccount required pam_unix.so\n' > "/etc/pam.d/$PAM_SERVICE"
    for i in $(seq 0 "$N"); do
        useradd -M -s /usr/sbin/nologin "$PAM_PREFIX$i" && echo "$PAM_PREFIX$i:$PW" | chpasswd ||
            { echo "cannot make Unix user $PAM_PREFIX$i"; exit 1; }
    done
    PLUGIN=$(ls /usr/lib/*/openvpn/plugins/openvpn-plugin-auth-pam.so | head -n 1)
    # No tollgate hook at all: the server config written below without them.
    rm -f "$W/bin/auth-verify" "$W/bin/client-connect" "$W/bin/client-disconnect"
    extra="$extra
plugin $PLUGIN $PAM_SERVICE"
fi
if [ "$MODE" = python ]; then
    cp "$ROOT/bench/ref_hook.py" "$W/bin/ref_hook.py"; chmod 755 "$W/bin/ref_hook.py"
    extra="$extra
setenv TOLLGATE_BENCH_DB $W/db/tollgate.db
auth-user-pass-verify \"/usr/bin/python3 $W/bin/ref_hook.py\" via-file"
fi
if [ "$MODE" = bare ]; then
    extra="$extra
auth-user-pass-verify /bin/true via-file
client-connect /bin/true
client-disconnect /bin/true"
fi
# INLINE_CONNECT=1: client-connect decides while OpenVPN waits even where
# it could defer (a wrapper hides client_connect_deferred_file), to compare.
if [ -n "${INLINE_CONNECT:-}" ]; then
    mv "$W/bin/client-connect" "$W/bin/client-connect-real"
    printf '#!/bin/sh\nunset client_connect_deferred_file\nexec %s "$@"\n' "$W/bin/client-connect-real" > "$W/bin/client-connect"
    chmod 755 "$W/bin/client-connect"
fi
start_server "$extra"

USERS=${PAM_PREFIX:-u}
up p "${USERS}0" "$PW" || { echo "pinger did not connect"; exit 1; }
rtts() { sed -n 's/.*time=\([0-9.]*\) ms.*/\1/p' "$1" | sort -n; }
ip netns exec "$NS_CLI" ping -i 0.01 -c 300 -W 2 10.99.0.1 > "$W/base.txt" 2>&1
ip netns exec "$NS_CLI" ping -i 0.01 -c $((N > 20 ? N * 40 : 800)) -W 2 10.99.0.1 > "$W/storm.txt" 2>&1 &
PING=$!
sleep 0.5
for i in $(seq 1 "$N"); do
    client_conf "$USERS$i" "$PW" "ifconfig-noexec
route-noexec" > "$W/client-s$i.conf"
done
t0=$(date +%s%N)
for i in $(seq 1 "$N"); do connect "s$i" "$W/client-s$i.conf" & done
# Until the last of the wave is connected (or refused), polled every 20 ms.
last_ms=timeout
for ((k = 0; k < 3000; k++)); do
    done_n=$(grep -lE "Initialization Sequence Completed|AUTH_FAILED" "$W"/cli-s*.log 2>/dev/null | wc -l)
    if [ "$done_n" -ge "$N" ]; then last_ms=$((($(date +%s%N) - t0) / 1000000)); break; fi
    sleep 0.02
done
wait $PING
ok=$(grep -l "Initialization Sequence Completed" "$W"/cli-s*.log | wc -l)
base_p50=$(rtts "$W/base.txt" | awk '{a[NR]=$1} END{print a[int(NR/2)+1]}')
base_max=$(rtts "$W/base.txt" | tail -n 1)
storm_max=$(rtts "$W/storm.txt" | tail -n 1)
sent=$(sed -n 's/^\([0-9]*\) packets transmitted, \([0-9]*\) received.*/\1 \2/p' "$W/storm.txt")
lost=$(( ${sent% *} - ${sent#* } ))
extra_ms=$(awk -v a="$storm_max" -v b="$base_p50" 'BEGIN{printf "%.1f", a-b}')
echo "storm[$MODE]: $ok/$N logins ok; pinger rtt baseline p50 ${base_p50} ms max ${base_max} ms; during storm max ${storm_max} ms, ${lost} of ${sent% *} lost; worst extra latency ${extra_ms} ms; last connected after ${last_ms} ms"
