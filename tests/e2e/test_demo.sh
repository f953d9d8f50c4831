#!/usr/bin/env bash
# install/demo.sh: one command shows a real login, sessions and usage, and
# leaves no namespace, process, interface or file behind, also when it is
# interrupted halfway.
. "$(dirname "$0")/lib.sh"

# What the demo could leave behind: namespaces, OpenVPN and tollgate
# processes, interfaces, routes, firewall rules and temporary files.
traces() {
    ip netns list
    # Live processes only: an exited daemon stays a zombie until init reaps it.
    ps -eo stat=,pid=,args= | awk '$1 !~ /^Z/ && /openvpn|tg-auth/ && !/awk/'
    ip -o link | cut -d: -f2
    ip route; sysctl net.ipv4.ip_forward
    command -v iptables >/dev/null && iptables -w -S && iptables -w -t nat -S
    ls -A /tmp /dev/shm
}
before=$(traces 2>&1)

t_demo_runs() {
    bash "$ROOT/install/demo.sh" > "$W/demo.log" 2>&1 || { tail -n 20 "$W/demo.log"; return 1; }
    grep -q "Initialization Sequence Completed" "$W/demo.log" &&
        grep -q "5 packets transmitted, 5 received" "$W/demo.log" &&
        grep -Eq '^  USER +PLAN +PERIOD +USED' "$W/demo.log" &&
        grep -Eq '^  demo +basic +month +[1-9][0-9.]* (KiB|KB)' "$W/demo.log" &&
        grep -Eq '^  1 +demo +nl-1 .* disconnect$' "$W/demo.log" &&
        grep -q "AUTH_FAILED" "$W/demo.log" || { sed 's/^/    | /' "$W/demo.log"; return 1; }
}
check "demo.sh logs in, shows traffic in tollgate sessions and usage, refuses a wrong password" t_demo_runs
check "demo.sh leaves no namespace, process, interface, route, rule or file" bash -c '[ "$1" = "$2" ] ||
    { diff <(echo "$1") <(echo "$2") | sed "s/^/    | /"; exit 1; }' _ "$before" "$(traces 2>&1)"

t_interrupted() {
    bash "$ROOT/install/demo.sh" > "$W/demo2.log" 2>&1 &
    local pid=$!
    wait_for "$W/demo2.log" "traffic through the tunnel" 60 || { kill "$pid"; wait "$pid"; return 1; }
    kill -TERM "$pid"
    wait "$pid"
    local after
    after=$(traces 2>&1)
    [ "$before" = "$after" ] || { diff <(echo "$before") <(echo "$after") | sed 's/^/    | /'; return 1; }
}
check "demo.sh stopped halfway (SIGTERM) still cleans up everything" t_interrupted

summary
