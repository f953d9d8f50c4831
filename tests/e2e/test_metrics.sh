#!/usr/bin/env bash
# tollgate metrics against a real OpenVPN server: after real logins, traffic
# and a sweep, the exposition passes Prometheus' own promtool and its
# figures are those of tollgate sessions, usage and events.
. "$(dirname "$0")/lib.sh"

command -v promtool >/dev/null || { fail "promtool is installed (tests/run.sh installs Debian's prometheus)"; summary; exit 1; }
setup 'management = "127.0.0.1:7505"'
start_server "auth-gen-token 0 external-auth"
tg plan add small --quota 100KiB --max-connections 2 >/dev/null
tg plan add big --quota 10GiB >/dev/null
printf 'pw-metric-1\n' | tg user add mia --password-stdin --plan small --all-servers >/dev/null
printf 'pw-metric-2\n' | tg user add max --password-stdin --plan big --all-servers >/dev/null
printf 'pw-metric-3\n' | tg user add moe --password-stdin --all-servers >/dev/null
tg user disable moe >/dev/null

# open_sessions N: wait until OpenVPN's client-disconnect hooks have left N open.
open_sessions() {
    local i
    for ((i = 0; i < 150; i++)); do
        [ "$(tg sessions --open --json | json 'len(d)')" = "$1" ] && return 0
        sleep 0.1
    done
    log "open sessions: $(tg sessions --open --json | json 'len(d)'), not $1"; return 1
}

# metrics_match: promtool accepts the text, and each figure is what the
# listings say.
metrics_match() {
    tg metrics > "$W/metrics.prom" || return 1
    promtool check metrics < "$W/metrics.prom" > "$W/promtool.log" 2>&1 ||
        { log "promtool check metrics:"; sed 's/^/    | /' "$W/promtool.log"; return 1; }
    tg sessions --open --json > "$W/sessions.json" && tg usage --json > "$W/usage.json" &&
        tg events --json --limit 1000 > "$W/events.json" || return 1
    python3 - "$W" <<'PY'
import json, re, sys, collections
w = sys.argv[1]
m = {}
for line in open(w + "/metrics.prom"):
    if line.startswith("#") or not line.strip():
        continue
    name, labels, value = re.match(r'^([a-z_]+)(?:\{(.*)\})? (\S+)$', line.strip()).groups()
    lab = tuple(sorted(re.findall(r'(\w+)="([^"]*)"', labels or "")))
    m[(name, lab)] = float(value)
def get(name, **labels):
    return m.get((name, tuple(sorted(labels.items()))))
bad = []
def expect(what, got, want):
    if got != want:
        bad.append("%s: metrics say %s, the listings %s" % (what, got, want))
sessions = json.load(open(w + "/sessions.json"))
per_server = collections.Counter(s["server"] for s in sessions)
expect("open sessions on nl-1", get("tollgate_sessions_open", server="nl-1"), float(per_server["nl-1"]))
usage = json.load(open(w + "/usage.json"))
for plan in ("small", "big", ""):
    rows = [u for u in usage if (u["plan"] or "") == plan]
    if plan == "" and not rows:
        continue
    expect("bytes in, plan %r" % plan, get("tollgate_usage_bytes", plan=plan, direction="in"), float(sum(u["total_bytes_in"] for u in rows)))
    expect("bytes out, plan %r" % plan, get("tollgate_usage_bytes", plan=plan, direction="out"), float(sum(u["total_bytes_out"] for u in rows)))
q = [u for u in usage if u["quota_bytes"]]
expect("users at 80%", get("tollgate_users_quota_used", at_least="0.8"), float(sum(u["period_bytes"] * 5 >= u["quota_bytes"] * 4 for u in q)))
expect("users at 100%", get("tollgate_users_quota_used", at_least="1"), float(sum(u["period_bytes"] >= u["quota_bytes"] for u in q)))
events = json.load(open(w + "/events.json"))
for result in ("accept", "deny"):
    n = sum(v for (name, lab), v in m.items() if name == "tollgate_auth_events" and dict(lab)["result"] == result)
    expect(result + " events", n, float(sum(e["result"] == result for e in events)))
expect("enabled users", get("tollgate_users", state="enabled"), 2.0)
expect("disabled users", get("tollgate_users", state="disabled"), 1.0)
for b in bad:
    print("    " + b)
sys.exit(1 if bad else 0)
PY
}

t_empty() {
    metrics_match && grep -qx 'tollgate_sessions_open{server="nl-1"} 0' "$W/metrics.prom"
}
check "before any login: promtool accepts it, and it matches the listings" t_empty

t_traffic() {
    client_conf mia pw-metric-1 > "$W/mia.conf" && connect mia "$W/mia.conf" &&
        client_conf max pw-metric-2 > "$W/max.conf" && connect max "$W/max.conf" || return 1
    wait_for "$W/cli-mia.log" "Initialization Sequence Completed" 30 &&
        wait_for "$W/cli-max.log" "Initialization Sequence Completed" 30 || { log "no tunnels"; return 1; }
    # Some 200 KiB through mia's tunnel (both tunnels route the VPN subnet,
    # so through her device): past her 100 KiB, so the sweep cuts her.
    local dev
    dev=$(sed -n 's/.*TUN\/TAP device \(tun[0-9]*\) opened.*/\1/p' "$W/cli-mia.log" | tail -n 1)
    [ -n "$dev" ] || { log "no tun device in mia's log"; return 1; }
    ip netns exec "$NS_CLI" ping -q -I "$dev" -c 80 -i 0.01 -s 1200 10.99.0.1 >/dev/null || { log "no traffic"; return 1; }
    login_refused bad mia wrong-password . >/dev/null || { log "the wrong password was not refused"; return 1; }
    sweep > "$W/sweep.log" || { cat "$W/sweep.log"; return 1; }
    grep -q "killed mia" "$W/sweep.log" || { log "the sweep did not cut mia:"; sed 's/^/    | /' "$W/sweep.log"; return 1; }
    # Her tunnel closes (client-disconnect) before the figures are read.
    open_sessions 1 && metrics_match || return 1
    grep -qx 'tollgate_sessions_open{server="nl-1"} 1' "$W/metrics.prom" &&
        grep -qx 'tollgate_users_quota_used{at_least="0.8"} 1' "$W/metrics.prom" &&
        grep -qx 'tollgate_users_quota_used{at_least="1"} 1' "$W/metrics.prom" &&
        grep -qx 'tollgate_auth_events{result="deny",reason="bad_password"} 1' "$W/metrics.prom" &&
        grep -qx 'tollgate_sweep_last_success{server="nl-1"} 1' "$W/metrics.prom" &&
        grep -Eq '^tollgate_usage_bytes\{plan="small",direction="in"\} [1-9][0-9]{4,}$' "$W/metrics.prom" ||
        { sed 's/^/    | /' "$W/metrics.prom"; return 1; }
}
check "two tunnels, traffic over a quota, a wrong password and a sweep that cuts: the figures follow" t_traffic

t_after() {
    ! tg sweep --management 127.0.0.1:1 >/dev/null 2>&1 || { log "a sweep with no management socket succeeded"; return 1; }
    open_sessions 0 && metrics_match && grep -qx 'tollgate_sessions_open{server="nl-1"} 0' "$W/metrics.prom" &&
        grep -qx 'tollgate_sweep_last_success{server="nl-1"} 0' "$W/metrics.prom" ||
        { sed 's/^/    | /' "$W/metrics.prom"; return 1; }
}
check "after the clients leave and a sweep fails: sessions 0, last sweep failed" t_after

t_write() {
    mkdir -p "$W/textfile"
    tg metrics --write "$W/textfile/tollgate.prom" &&
        [ "$(stat -c %a "$W/textfile/tollgate.prom")" = 644 ] &&
        [ "$(ls -A "$W/textfile")" = tollgate.prom ] &&
        promtool check metrics < "$W/textfile/tollgate.prom" >/dev/null 2>&1 &&
        cmp -s <(grep -v '^tollgate_sweep' "$W/textfile/tollgate.prom") <(tg metrics | grep -v '^tollgate_sweep')
}
check "metrics --write replaces a textfile-collector file (0644, nothing left beside it)" t_write

summary
