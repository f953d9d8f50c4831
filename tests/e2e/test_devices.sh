#!/usr/bin/env bash
# Device binding and client checks against a real OpenVPN server and client.
. "$(dirname "$0")/lib.sh"

setup
PW='correct horse battery'
for u in alice bob carol; do echo "$PW" | tg user add $u --password-stdin --server nl-1 >/dev/null; done
tg user set alice --device-binding auto --max-devices 1 >/dev/null
tg user set bob --device-binding manual >/dev/null
# With a default route the client reports the MAC of the interface holding it.
ip -n "$NS_CLI" route add default via "$SRV_IP"
start_server
mac() { ip -n "$NS_CLI" -o link show "$VETH_C" | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p'; }
set_mac() {
    ip -n "$NS_CLI" link set "$VETH_C" down
    ip -n "$NS_CLI" link set "$VETH_C" address "$1"
    ip -n "$NS_CLI" link set "$VETH_C" up
    ip -n "$NS_CLI" route replace default via "$SRV_IP"
}
# profile_login NAME USER: connect with the user's gen-ovpn profile.
profile_run() {
    local name=$1 user=$2
    "$W/bin/gen-ovpn" --config "$W/tollgate.toml" "$user" nl-1 > "$W/$user.ovpn" 2>/dev/null || return 1
    printf '%s\n%s\n' "$user" "$PW" > "$W/creds-$user"
    : > "$W/cli-$name.log"
    ip netns exec "$NS_CLI" openvpn --cd "$W" --config "$W/$user.ovpn" --auth-user-pass "$W/creds-$user" \
        --writepid "$W/cli-$name.pid" --daemon --log "$W/cli-$name.log"
}
devices_json() { tg device list "$1" --json; }

check "gen-ovpn adds push-peer-info for a user with device binding" bash -c "'$W/bin/gen-ovpn' --config '$W/tollgate.toml' alice nl-1 | grep -qx push-peer-info"
check "gen-ovpn leaves it out without binding" bash -c "! '$W/bin/gen-ovpn' --config '$W/tollgate.toml' carol nl-1 | grep -q push-peer-info"

FIRST_MAC=$(mac)
t_register() {
    profile_run a1 alice && connected a1 || return 1
    local got; got=$(devices_json alice | json '",".join(d["hwaddr"] for d in d if d["approved"])')
    log "client MAC $FIRST_MAC, registered: $got"
    [ "$got" = "$FIRST_MAC" ]
}
check "the first connection registers the client's real MAC" t_register

t_other_mac() {
    set_mac 02:00:00:00:00:99
    profile_run a2 alice && refused a2 "device limit reached"
}
check "a client with another MAC is refused" t_other_mac

t_reset() {
    tg device reset alice >/dev/null
    profile_run a3 alice && connected a3 || return 1
    [ "$(devices_json alice | json '",".join(d["hwaddr"] for d in d)')" = 02:00:00:00:00:99 ]
}
check "tollgate device reset frees the slot" t_reset

t_manual() {
    profile_run b1 bob && refused b1 "not approved" || return 1
    [ "$(devices_json bob | json '",".join(str(d["approved"]) for d in d)')" = False ] || { log "no pending device recorded"; return 1; }
    tg device add bob "$(mac | tr a-f A-F | tr : -)" >/dev/null
    profile_run b2 bob && connected b2
}
check "manual mode refuses until tollgate device add" t_manual

t_platform() {
    cat >> "$W/tollgate.toml" <<'TOML'
[client_checks]
platforms = ["win", "mac"]
TOML
    profile_run c1 carol && refused c1 "platform \(linux\) is not allowed; use win, mac"
}
check "a platform rule refuses a client whose IV_PLAT is not allowed, saying what to use" t_platform

# A profile carries what its server's checks need: the UV_ variable
# [client_checks] require asks for, and a device id of its own when
# [devices] source is a UV_ variable; the real client sends them.
t_profile_meets_checks() {
    sed -i '/^\[client_checks\]/,$d' "$W/tollgate.toml"
    cat >> "$W/tollgate.toml" <<'TOML'
[client_checks]
require = { UV_POLICY = "3" }
[devices]
source = "UV_DEVICE_ID"
TOML
    tg user set carol --device-binding auto >/dev/null
    "$W/bin/gen-ovpn" --config "$W/tollgate.toml" carol nl-1 > "$W/carol.ovpn" 2> "$W/gen-carol.err" || return 1
    grep -qx "setenv UV_POLICY 3" "$W/carol.ovpn" && grep -qx push-peer-info "$W/carol.ovpn" ||
        { log "profile: $(grep -E 'setenv|peer' "$W/carol.ovpn" | tr '\n' ' ')"; return 1; }
    local id; id=$(sed -n 's/^setenv UV_DEVICE_ID \([0-9a-f]\{32\}\)$/\1/p' "$W/carol.ovpn")
    [ -n "$id" ] && grep -q "device id (UV_DEVICE_ID) is $id" "$W/gen-carol.err" || { log "device id: '$id'"; return 1; }
    printf '%s\n%s\n' carol "$PW" > "$W/creds-carol"
    : > "$W/cli-c2.log"
    ip netns exec "$NS_CLI" openvpn --cd "$W" --config "$W/carol.ovpn" --auth-user-pass "$W/creds-carol" \
        --writepid "$W/cli-c2.pid" --daemon --log "$W/cli-c2.log"
    connected c2 || return 1
    [ "$(devices_json carol | json '",".join(d["hwaddr"] for d in d if d["approved"])')" = "$id" ]
}
check "a gen-ovpn profile carries the UV_ variables its server's checks require, and its own device id" t_profile_meets_checks

summary
