#!/usr/bin/env bash
# Login storm on a real OpenVPN server: one connected client pings the
# server through its tunnel every 10 ms while 20 other clients log in at
# once. Prints the pinger's worst round trip before and during the storm,
# for MODE = deferred | inline | python (the reference Python hook).
#   bash bench/storm.sh MODE
# MODE bare runs /bin/true as all three hooks: OpenVPN's own cost of 20
# handshakes, the floor any hook adds to.
. "$(dirname "$0")/../tests/e2e/lib.sh"
MODE=${1:?usage: storm.sh deferred|inline|python|bare}
N=20
case $MODE in
    deferred) TOLLGATE_E2E_DEFER=auto ;;
    inline | python | bare) TOLLGATE_E2E_DEFER=never ;;
    *) echo "unknown mode $MODE"; exit 2 ;;
esac
setup
PW='bench password'
for i in $(seq 0 $N); do echo "$PW" | tg user add "u$i" --password-stdin --server nl-1 >/dev/null; done
extra="max-clients 64"
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
start_server "$extra"

up p u0 "$PW" || { echo "pinger did not connect"; exit 1; }
rtts() { sed -n 's/.*time=\([0-9.]*\) ms.*/\1/p' "$1" | sort -n; }
ip netns exec "$NS_CLI" ping -i 0.01 -c 300 -W 2 10.99.0.1 > "$W/base.txt" 2>&1
ip netns exec "$NS_CLI" ping -i 0.01 -c 800 -W 2 10.99.0.1 > "$W/storm.txt" 2>&1 &
PING=$!
sleep 0.5
for i in $(seq 1 $N); do
    client_conf "u$i" "$PW" "ifconfig-noexec
route-noexec" > "$W/client-s$i.conf"
done
for i in $(seq 1 $N); do connect "s$i" "$W/client-s$i.conf" & done
wait_all=0
for i in $(seq 1 $N); do
    wait_for "$W/cli-s$i.log" "Initialization Sequence Completed|AUTH_FAILED" 60 || wait_all=1
done
wait $PING
ok=$(grep -l "Initialization Sequence Completed" "$W"/cli-s*.log | wc -l)
base_p50=$(rtts "$W/base.txt" | awk '{a[NR]=$1} END{print a[int(NR/2)+1]}')
base_max=$(rtts "$W/base.txt" | tail -n 1)
storm_max=$(rtts "$W/storm.txt" | tail -n 1)
sent=$(sed -n 's/^\([0-9]*\) packets transmitted, \([0-9]*\) received.*/\1 \2/p' "$W/storm.txt")
lost=$(( ${sent% *} - ${sent#* } ))
extra_ms=$(awk -v a="$storm_max" -v b="$base_p50" 'BEGIN{printf "%.1f", a-b}')
echo "storm[$MODE]: $ok/$N logins ok; pinger rtt baseline p50 ${base_p50} ms max ${base_max} ms; during storm max ${storm_max} ms, ${lost} of ${sent% *} lost; worst extra latency ${extra_ms} ms"
