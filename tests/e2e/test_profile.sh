#!/usr/bin/env bash
# gen-ovpn profiles against a real OpenVPN server.
. "$(dirname "$0")/lib.sh"

setup
PW='correct horse battery'
echo "$PW" | tg user add alice --password-stdin --server nl-1 >/dev/null
echo "$PW" | tg user add dave --password-stdin --server nl-1 --disabled >/dev/null
echo "$PW" | tg user add frank --password-stdin >/dev/null
start_server
gen() { "$W/bin/gen-ovpn" --config "$W/tollgate.toml" "$@"; }

t_profile_connects() {
    gen alice nl-1 --out "$W/alice.ovpn" 2>/dev/null || return 1
    [ "$(stat -c %a "$W/alice.ovpn")" = 600 ] || { log "--out mode is $(stat -c %a "$W/alice.ovpn")"; return 1; }
    printf 'alice\n%s\n' "$PW" > "$W/creds-alice"
    # The profile exactly as gen-ovpn wrote it; only the password file comes
    # from the command line, as a user's GUI would supply it.
    : > "$W/cli-p1.log"
    ip netns exec "$NS_CLI" openvpn --cd "$W" --config "$W/alice.ovpn" --auth-user-pass "$W/creds-alice" \
        --writepid "$W/cli-p1.pid" --daemon --log "$W/cli-p1.log"
    wait_for "$W/cli-p1.log" "Initialization Sequence Completed|AUTH_FAILED" 30 &&
        grep -q "Initialization Sequence Completed" "$W/cli-p1.log"
}
check "a gen-ovpn profile connects the real client as is" t_profile_connects

refuses() { # ARGS... REGEX
    local re=${*: -1} out rc
    out=$(gen "${@:1:$#-1}" 2>&1 >/dev/null); rc=$?
    [ "$rc" -ne 0 ] && [ "$(wc -l <<<"$out")" = 1 ] && grep -Eq "$re" <<<"$out" || { log "rc=$rc: $out"; return 1; }
}
t_out_link() {
    echo precious > "$W/victim"
    ln -s "$W/victim" "$W/link.ovpn"
    ! gen alice nl-1 --out "$W/link.ovpn" 2>"$W/link.err" || { log "wrote through a link"; return 1; }
    grep -q "symbolic link" "$W/link.err" && [ "$(cat "$W/victim")" = precious ]
}
check "gen-ovpn --out refuses a symbolic link and leaves its target alone" t_out_link
check "gen-ovpn refuses an unknown user" refuses mallory nl-1 "no such user: mallory"
check "gen-ovpn refuses an unknown server" refuses alice xx-9 "no such server: xx-9"
check "gen-ovpn refuses a disabled user" refuses dave nl-1 "user dave may not connect: account disabled"
check "gen-ovpn refuses a user without access" refuses frank nl-1 "user frank may not connect: no grant for server nl-1"
check "no private key of the CA or server is in a profile" bash -c "
    p=\$('$W/bin/gen-ovpn' --config '$W/tollgate.toml' alice nl-1)
    ! grep -q 'PRIVATE KEY' <<<\"\$p\" &&
    ! grep -qF \"\$(sed -n 2p '$W/pki/ca.key')\" <<<\"\$p\" &&
    ! grep -qF \"\$(sed -n 2p '$W/pki/server.key')\" <<<\"\$p\" &&
    grep -qF \"\$(sed -n 2p '$W/pki/ca.crt')\" <<<\"\$p\""
check "tollgate server add refuses a CA file holding a private key" bash -c "
    cat '$W/pki/ca.crt' '$W/pki/ca.key' > '$W/bad-ca.pem'
    ! '$W/bin/tollgate' --config '$W/tollgate.toml' server add bad --host h --ca '$W/bad-ca.pem' --tls-crypt '$W/pki/tc.key' 2>/dev/null"

summary
