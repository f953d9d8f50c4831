#!/usr/bin/env bash
# Renegotiation is a policy checkpoint, but a tunnel must never count
# against its own user's connection limit there: with max-connections 1 the
# tunnel survives renegotiations (by session token, and by password without
# auth-gen-token) while a second simultaneous login is still refused.
. "$(dirname "$0")/lib.sh"

setup
PW='correct horse battery'
tg plan add single --max-connections 1 >/dev/null
for u in alice bob; do echo "$PW" | tg user add $u --password-stdin --plan single --server nl-1 >/dev/null; done

# accepts USER / denies USER: how many auths of USER auth-verify accepted / refused.
accepts() { grep -c "tollgate auth-verify: ACCEPT user=$1 " "$W/srv.log"; }
denies() { grep -c "tollgate auth-verify: DENY user=$1 " "$W/srv.log"; }

# survives NAME USER N: the tunnel lives through N more accepted auths
# (renegotiations), is never refused on the way, and still carries packets.
survives() {
    local name=$1 user=$2 want refused i
    want=$(($(accepts "$user") + $3))
    refused=$(denies "$user")
    for ((i = 0; i < 900; i++)); do
        [ "$(accepts "$user")" -ge "$want" ] && break
        [ "$(denies "$user")" -gt "$refused" ] && break
        sleep 0.1
    done
    if [ "$(denies "$user")" -gt "$refused" ]; then
        log "refused at renegotiation: $(grep "DENY user=$user " "$W/srv.log" | tail -n 1)"; return 1
    fi
    [ "$(accepts "$user")" -ge "$want" ] || { log "only $(accepts "$user") accepts, wanted $want"; return 1; }
    ! grep -q "AUTH_FAILED\|SIGUSR1" "$W/cli-$name.log" || { log "the client was cut and restarted"; return 1; }
    # Still carrying packets (renegotiations are decided inline, so the new
    # key is usable at once); a key switch may swallow a packet or two.
    ip netns exec "$NS_CLI" ping -q -c 10 -i 0.2 -W 2 10.99.0.1 >/dev/null || { log "tunnel down"; return 1; }
}

# Session tokens (the recommended setup). reneg-sec 20 with keepalive: at
# shorter intervals OpenVPN 2.6 may not deliver the renewed token before the
# next renegotiation, which then presents an Expired token (refused).
start_server "auth-gen-token 0 external-auth
reneg-sec 20
hand-window 5
keepalive 2 10"
t_token() {
    up a1 alice "$PW" || return 1
    login_refused a2 alice "$PW" "too many connections" || { log "a second login was let in"; return 1; }
    survives a1 alice 2 || return 1
    grep -q "session token not accepted" "$W/srv.log" && { log "a token was refused"; return 1; }
    [ "$(tg events --user alice --json | json 'sum(1 for e in d if e["reason"] == "ok (session token)")')" -ge 2 ]
}
check "max-connections 1: the tunnel survives two token renegotiations, a second login is refused" t_token

# Without auth-gen-token every renegotiation sends the password again.
stop_server
start_server "reneg-sec 10
keepalive 2 10"
t_password() {
    up b1 bob "$PW" || return 1
    survives b1 bob 2 || return 1
    login_refused b2 bob "$PW" "too many connections" || { log "a second login was let in"; return 1; }
}
check "max-connections 1: the tunnel survives two password renegotiations, a second login is refused" t_password

summary
