#!/usr/bin/env bash
# install.sh --setup-server on a Debian 12 that runs systemd, as the README's
# quick start does on a real server: a minimal Debian 12 (debootstrap) booted
# with systemd-nspawn inside the server's network namespace. The units it
# enables must run the server (hooks as nobody under Debian's sandboxed
# openvpn-server@ unit), the NAT and the sweep, and come back after a reboot.
# The container and everything in it live in this run's temporary directory.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/container.sh"

container_tools
# The container has no Rust toolchain: install.sh takes Debian's (cargo-web,
# rustc-web) from a local archive made from the Debian mirror before boot,
# and builds offline from this machine's crate cache, in a target directory
# of its own.
REGISTRY=${CARGO_HOME:-$HOME/.cargo}/registry
[ -d "$REGISTRY" ] || { fail "a cargo registry cache in $REGISTRY (set CARGO_HOME)"; summary; exit 1; }
CONTAINER_NSPAWN_ARGS=(--bind="$ROOT" --bind="$REGISTRY:/root/.cargo/registry")
CONTAINER_ENV=(CARGO_NET_OFFLINE=true CARGO_TARGET_DIR=/root/target)
PW='systemd checks this one'

netns_up
internet_up

t_debootstrap() {
    container_debootstrap systemd,systemd-sysv,dbus,openvpn,iproute2,iptables,openssl,procps,gcc,libc6-dev \
        cargo-web rustc-web || return 1
    if chroot "$ROOTFS" sh -c 'command -v cargo || command -v rustc'; then log "a Rust toolchain is already there"; return 1; fi
}
check "a minimal Debian 12 with systemd and no Rust toolchain (debootstrap)" t_debootstrap
[ "$FAILED" = 0 ] || { summary; exit 1; }
check "it boots with systemd-nspawn in the server namespace" boot
[ "$FAILED" = 0 ] || { summary; exit 1; }

PROM_DIR=/var/lib/prometheus/node-exporter
setup_server() {
    inside bash "$ROOT/install/install.sh" --setup-server --host "$SRV_IP" --server nl-1 --metrics-textfile "$PROM_DIR"
}
t_install() {
    setup_server > "$W/install1.log" 2>&1 || { tail -n 15 "$W/install1.log"; return 1; }
    grep -q "Rust toolchain from the distribution: cargo-web" "$W/install1.log" &&
        inside dpkg-query -W -f '${Status}' cargo-web rustc-web | grep -qx "install ok installed\(install ok installed\)\?" ||
        { log "install.sh did not install Debian's cargo-web and rustc-web"; sed 's/^/    | /' "$W/install1.log"; return 1; }
    local u
    for u in openvpn-server@tollgate.service tollgate-nat@tollgate.service tollgate-sweep.timer; do
        inside systemctl is-enabled --quiet "$u" && inside systemctl is-active --quiet "$u" ||
            { log "$u: $(inside systemctl is-enabled "$u") $(inside systemctl is-active "$u")"; return 1; }
    done
    inside systemctl show -p LimitNPROC --value openvpn-server@tollgate.service | grep -qx 512 ||
        { log "the LimitNPROC drop-in is not in effect"; return 1; }
}
check "install.sh --setup-server installs Debian's Rust toolchain, then enables and starts openvpn-server@tollgate, tollgate-nat@tollgate, the sweep timer" t_install
t_again() {
    setup_server > "$W/install2.log" 2>&1 && grep -q "nothing changed" "$W/install2.log" ||
        { sed 's/^/    | /' "$W/install2.log"; return 1; }
}
check "a second run changes nothing" t_again

# The single sign-on pages by socket activation, with TLS from files that
# stay root's: nothing runs until a browser connects, then tollgate web
# runs as the OpenVPN user and reaches the database.
t_web() {
    local out pid
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=127.0.0.1 \
        -addext subjectAltName=IP:127.0.0.1 -keyout "$ROOTFS/root/web.key" -out "$ROOTFS/root/web.crt" 2>/dev/null || return 1
    chmod 600 "$ROOTFS/root/web.key"
    cat >> "$ROOTFS/etc/tollgate/tollgate.toml" <<CONF
[oidc]
issuer = "https://idp.invalid"
client_id = "openvpn"
client_secret_file = "/etc/tollgate/oidc.secret"
redirect_url = "https://127.0.0.1:8443/oidc/callback"
CONF
    inside bash "$ROOT/install/install.sh" --web-listen 127.0.0.1:8443 --web-tls-cert /root/web.crt \
        --web-tls-key /root/web.key > "$W/install-web.log" 2>&1 || { tail -n 15 "$W/install-web.log"; return 1; }
    inside systemctl is-active --quiet tollgate-web.socket || { log "socket not active"; return 1; }
    ! inside systemctl is-active --quiet tollgate-web.service || { log "the service runs before any request"; return 1; }
    out=$(ip netns exec "$NS_SRV" curl -sS --cacert "$ROOTFS/root/web.crt" https://127.0.0.1:8443/health) &&
        [ "$out" = ok ] || { log "health: $out"; inside journalctl -u tollgate-web.service --no-pager | tail -n 5; return 1; }
    out=$(ip netns exec "$NS_SRV" curl -sS -o /dev/null -w '%{http_code}' --cacert "$ROOTFS/root/web.crt" \
        "https://127.0.0.1:8443/oidc/login?l=aaaaaaaaaaaaaaaaaaaaaaaaaa")
    [ "$out" = 410 ] || { log "an unknown link answered $out"; inside journalctl -u tollgate-web.service --no-pager | tail -n 5; return 1; }
    pid=$(inside systemctl show -p MainPID --value tollgate-web.service)
    [ "$(inside ps -o user= -p "$pid")" = nobody ] || { log "tollgate web (pid $pid) is not nobody's"; return 1; }
}
check "install.sh --web-listen: tollgate web by socket activation, TLS from root's files, run as nobody on the first request" t_web

echo "$PW" | inside tollgate user add alice --password-stdin --server nl-1 >/dev/null
inside gen-ovpn alice nl-1 > "$W/alice.ovpn" 2>/dev/null
printf 'alice\n%s\n' "$PW" > "$W/creds-alice"
chmod 600 "$W/creds-alice"

# login NAME: the profile connects and reaches the "internet" through the NAT.
login() {
    : > "$W/cli-$1.log"
    ip netns exec "$NS_CLI" openvpn --cd "$W" --config "$W/alice.ovpn" --auth-user-pass "$W/creds-alice" \
        --writepid "$W/cli-$1.pid" --daemon --log "$W/cli-$1.log"
    wait_for "$W/cli-$1.log" "Initialization Sequence Completed|AUTH_FAILED" 30 &&
        grep -q "Initialization Sequence Completed" "$W/cli-$1.log" || { tail -n 5 "$W/cli-$1.log"; return 1; }
    ip netns exec "$NS_CLI" ping -c 3 -i 0.3 -W 2 "$OUT_IP" >/dev/null || { log "no ping through the NAT"; return 1; }
}

t_login() {
    login s1 || return 1
    inside journalctl -u openvpn-server@tollgate --no-pager | grep -q "tollgate auth-verify: ACCEPT user=alice" ||
        { log "no ACCEPT line in the unit's journal"; return 1; }
    inside systemctl start tollgate-sweep.service || return 1
    inside journalctl -u tollgate-sweep.service --no-pager | grep -q "1 live client" ||
        { inside journalctl -u tollgate-sweep.service --no-pager | tail -n 3; return 1; }
    inside tollgate user disable alice >/dev/null && inside systemctl start tollgate-sweep.service || return 1
    wait_for "$W/cli-s1.log" "SIGTERM|Exiting" 15 || { log "the sweep did not cut the disabled user"; return 1; }
    inside tollgate user enable alice >/dev/null
}
check "a client logs in through the unit's hooks and the NAT; the sweep service cuts a disabled user" t_login

t_doctor_metrics() {
    inside tollgate doctor > "$W/doctor.txt" 2>&1 && grep -q '^0 problems, ' "$W/doctor.txt" ||
        { sed 's/^/    | /' "$W/doctor.txt"; return 1; }
    # The sweep unit's drop-in wrote the metrics after the sweeps above.
    promtool check metrics < "$ROOTFS$PROM_DIR/tollgate.prom" > "$W/promtool.log" 2>&1 &&
        grep -qx 'tollgate_sweep_last_success{server="nl-1"} 1' "$ROOTFS$PROM_DIR/tollgate.prom" &&
        [ "$(stat -c %a "$ROOTFS$PROM_DIR/tollgate.prom")" = 644 ] ||
        { sed 's/^/    | /' "$W/promtool.log"; ls -la "$ROOTFS$PROM_DIR"; return 1; }
}
check "tollgate doctor finds nothing wrong; --metrics-textfile: the sweep unit writes metrics promtool accepts" t_doctor_metrics

t_reboot() {
    poweroff
    # What a real reboot also resets.
    ip netns exec "$NS_SRV" iptables -w -F
    ip netns exec "$NS_SRV" iptables -w -t nat -F
    ip netns exec "$NS_SRV" sysctl -q -w net.ipv4.ip_forward=0
    boot || return 1
    for u in openvpn-server@tollgate.service tollgate-nat@tollgate.service; do
        inside systemctl is-active --quiet "$u" || { log "$u is $(inside systemctl is-active "$u")"; return 1; }
    done
    login s2
}
check "after a reboot the server and the NAT are back and the client logs in again" t_reboot

t_uninstall() {
    inside bash "$ROOT/install/install.sh" --uninstall --purge > "$W/purge.log" 2>&1 || { cat "$W/purge.log"; return 1; }
    ! inside systemctl is-active --quiet openvpn-server@tollgate.service || { log "server still active"; return 1; }
    ! inside systemctl is-enabled --quiet openvpn-server@tollgate.service 2>/dev/null || { log "server still enabled"; return 1; }
    ! ip netns exec "$NS_SRV" iptables -w -S | grep -q tollgate &&
        ! ip netns exec "$NS_SRV" iptables -w -t nat -S | grep -q tollgate || { log "rules left"; return 1; }
    local f
    for f in /etc/tollgate /var/lib/tollgate /etc/openvpn/server/tollgate.conf /etc/systemd/system/tollgate-sweep.timer \
        /etc/systemd/system/tollgate-web.socket /etc/systemd/system/tollgate-web.service \
        "/etc/systemd/system/tollgate-nat@.service" "/etc/systemd/system/openvpn-server@tollgate.service.d"; do
        [ ! -e "$ROOTFS$f" ] || { log "$f left"; return 1; }
    done
}
check "--uninstall --purge stops and disables the units and removes their rules and files" t_uninstall

summary
