#!/usr/bin/env bash
# tollgate's benchmarks, side by side in one run. As root on Debian 12:
#   bash bench/run.sh          (about 10 minutes)
#   bash bench/run.sh 4 3      only sections 4 and 3
# Results go to stdout; docs/benchmarks.md records a run and the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v openvpn >/dev/null && /usr/bin/python3 -c 'import argon2' 2>/dev/null || {
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openvpn python3 python3-argon2 iputils-ping iproute2 >/dev/null
}
cargo build --release --locked --quiet
B=$PWD/target/x86_64-unknown-linux-gnu/release
W=$(mktemp -d /tmp/tg-bench.XXXXXX)
trap 'rm -rf "$W"' EXIT

echo "== machine"
echo "$(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1)"
echo "$(uname -sr), $(openvpn --version | head -n 1 | cut -d' ' -f1-2), $(/usr/bin/python3 --version), $(rustc --version)"

want() { [[ " $SECTIONS " == *" $1 "* ]]; }
SECTIONS="${*:-1 4 5 3}"

if want 1; then
echo "== 1+2: what OpenVPN waits for, 100k users and 1M past sessions, default argon2id (19 MiB, t=2)"
"$B/tollgate-bench" populate "$W/big.db" 100000 1000000
printf 'database = "%s"\nserver = "nl-1"\n' "$W/big.db" > "$W/big.toml"
"$B/tollgate-bench" hooks "$B" "$W/big.toml" 500
"$B/tollgate-bench" python "$B" "$W/big.toml" 100 "$PWD/bench/ref_hook.py"
fi

if want 4; then
echo "== 4: auth-verify inline as the sessions table grows (argon2 at minimum cost, so the database part shows)"
"$B/tollgate-bench" populate "$W/scale.db" 100000 0 cheap
printf 'database = "%s"\nserver = "nl-1"\n[argon2]\nmemory_kib = 8\niterations = 1\n' "$W/scale.db" > "$W/scale.toml"
prev=0
for n in 0 1000000 3000000 10000000; do
    "$B/tollgate-bench" add-sessions "$W/scale.db" $((n - prev)); prev=$n
    printf '%9d sessions: ' "$n"; "$B/tollgate-bench" auth "$W/scale.toml" "$B" 300
done

fi

if want 5; then
echo "== 5: binary sizes"
for b in auth-verify client-connect client-disconnect tollgate gen-ovpn; do
    printf '%-18s %9d bytes  %s\n' "$b" "$(stat -c %s "$B/$b")" "$(ldd "$B/$b" 2>&1 | tr -d '\t' | head -n 1)"
done

fi

if want 3; then
echo "== 3: login storm of 20 on a real server"
for mode in bare deferred inline python; do bash bench/storm.sh $mode | grep '^storm'; done
fi
