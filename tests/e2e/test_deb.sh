#!/usr/bin/env bash
# The Debian package (install/build-deb.sh) on a minimal Debian 12
# (debootstrap, no Rust toolchain) booted with systemd-nspawn inside the
# server's network namespace. The package
# must install, set up the database and the sweep timer, serve a real login
# through Debian's openvpn-server@ unit with the documented server.conf
# snippet, bring its man pages and completions, keep the data on remove and
# leave nothing behind on purge. Everything lives in this run's directory.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/container.sh"

container_tools
PW='the package checks this one'
# What the test itself puts in the container (kept out of the purge check).
T=/root/tg-test
PKI=/etc/openvpn/server/deb
CONF=/etc/openvpn/server/deb.conf

netns_up

t_build() {
    bash "$ROOT/install/build-deb.sh" --no-build --bin-dir "$BIN" --out "$W" > "$W/build.log" 2>&1 ||
        { tail -n 5 "$W/build.log"; return 1; }
    local debs=("$W"/tollgate_*_amd64.deb) version f
    [ ${#debs[@]} = 1 ] && [ -f "${debs[0]}" ] || { log "no single tollgate_*_amd64.deb in $W"; return 1; }
    DEB=${debs[0]}
    version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' "$ROOT/Cargo.toml")
    [ "${DEB##*/}" = "tollgate_${version}_amd64.deb" ] || { log "named ${DEB##*/}, version $version"; return 1; }
    [ "$(dpkg-deb -f "$DEB" Architecture)" = amd64 ] && [ -z "$(dpkg-deb -f "$DEB" Depends)" ] &&
        [ "$(dpkg-deb -f "$DEB" Recommends)" = openvpn ] || { dpkg-deb -I "$DEB" | sed 's/^/    | /'; return 1; }
    dpkg-deb -c "$DEB" > "$W/contents"
    if awk '$2 != "root/root"' "$W/contents" | grep -q .; then log "not root's:"; awk '$2 != "root/root"' "$W/contents"; return 1; fi
    for f in usr/bin/tollgate usr/bin/gen-ovpn usr/libexec/tollgate/auth-verify usr/libexec/tollgate/client-connect \
        usr/libexec/tollgate/client-disconnect usr/libexec/tollgate/tollgate-directory usr/share/man/man1/tollgate.1.gz \
        usr/share/man/man1/tollgate-user-add.1.gz usr/share/man/man1/gen-ovpn.1.gz \
        usr/share/bash-completion/completions/tollgate usr/share/zsh/vendor-completions/_gen-ovpn \
        usr/share/fish/vendor_completions.d/tollgate.fish lib/systemd/system/tollgate-sweep.service \
        lib/systemd/system/tollgate-sweep.timer etc/cron.d/tollgate-sweep etc/tollgate/tollgate.toml \
        usr/share/doc/tollgate/copyright usr/share/doc/tollgate/README.Debian usr/share/doc/tollgate/server.conf.snippet; do
        grep -q " \./$f\$" "$W/contents" || { log "no /$f in the package"; return 1; }
    done
}
check "install/build-deb.sh --no-build makes tollgate_VERSION_amd64.deb: static binaries (no Depends), Recommends openvpn, all root's" t_build
[ "$FAILED" = 0 ] || { summary; exit 1; }

t_debootstrap() {
    container_debootstrap systemd,systemd-sysv,dbus,openvpn,iproute2,openssl,man-db || return 1
    if chroot "$ROOTFS" sh -c 'command -v cargo || command -v rustc || command -v tollgate'; then
        log "a Rust toolchain or tollgate is already there"; return 1
    fi
}
check "a minimal Debian $CONTAINER_DEBIAN with systemd, OpenVPN and man-db, no Rust toolchain (debootstrap)" t_debootstrap
[ "$FAILED" = 0 ] || { summary; exit 1; }
check "it boots with systemd-nspawn in the server namespace" boot
[ "$FAILED" = 0 ] || { summary; exit 1; }

# files: every file in the container with its type, mode and owner, but
# what the system changes by itself (logs, caches, apt's and dpkg's state,
# systemd's) and what this test makes.
files() {
    inside find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /tmp -o -path /var/tmp \
        -o -path /var/log -o -path /var/cache -o -path /var/lib/apt -o -path /var/lib/dpkg -o -path /var/lib/systemd \
        -o -path "$T" -o -path "$PKI" -o -path "$CONF" \) -prune -o -printf '%y %M %u:%g %p\n' | LC_ALL=C sort
}
files > "$W/files-before"
mkdir -p "$ROOTFS$T"
cp "$DEB" "$ROOTFS$T/"

# owner PATH USER:GROUP MODE: the file has that owner and mode.
owner() {
    local got; got=$(inside stat -c '%U:%G %a' "$1")
    [ "$got" = "$2 $3" ] || { log "$1 is $got, not $2 $3"; return 1; }
}

t_install() {
    inside env DEBIAN_FRONTEND=noninteractive apt-get install -y "$T/${DEB##*/}" > "$W/apt-install.log" 2>&1 ||
        { tail -n 15 "$W/apt-install.log"; return 1; }
    inside dpkg-query -W -f '${Status}' tollgate | grep -qx "install ok installed" || return 1
    owner /etc/tollgate root:nogroup 750 && owner /etc/tollgate/tollgate.toml root:nogroup 640 &&
        owner /var/lib/tollgate nobody:nogroup 770 && owner /var/lib/tollgate/tollgate.db nobody:nogroup 660 || return 1
    inside systemctl is-enabled --quiet tollgate-sweep.timer && inside systemctl is-active --quiet tollgate-sweep.timer ||
        { log "tollgate-sweep.timer: $(inside systemctl is-enabled tollgate-sweep.timer) $(inside systemctl is-active tollgate-sweep.timer)"; return 1; }
}
check "apt-get install ./tollgate_*.deb: config root:nogroup 0640, /var/lib/tollgate and the database nobody:nogroup, sweep timer enabled and started" t_install
[ "$FAILED" = 0 ] || { summary; exit 1; }

t_init() {
    local out
    out=$(inside tollgate init) && grep -q "up to date" <<<"$out" || { log "init: $out"; return 1; }
    out=$(inside tollgate init) && grep -q "up to date" <<<"$out" || { log "init again: $out"; return 1; }
    owner /var/lib/tollgate/tollgate.db nobody:nogroup 660
}
check "tollgate init finds the database postinst made up to date, twice" t_init

# A server as its admin would set it up with the package: a small PKI, the
# documented snippet plus the basics, Debian's openvpn-server@ unit, then
# README.Debian's steps (server name and management in the config, server
# add, user add, gen-ovpn).
t_server() {
    inside bash -euc '
        install -d -m 700 "$1"; cd "$1"
        ec() { openssl req "$@" -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 2>/dev/null; }
        ec -x509 -keyout ca.key -out ca.crt -subj "/CN=tollgate deb test CA"
        ec -keyout server.key -out server.csr -subj /CN=deb
        printf "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyAgreement\nextendedKeyUsage=serverAuth\n" > server.ext
        openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -set_serial 0x01 -days 2 \
            -extfile server.ext -out server.crt 2>/dev/null
        openvpn --genkey tls-crypt tc.key
        { printf "%s\n" "port 1194" "proto udp" "dev tun" "topology subnet" "server 10.97.0.0 255.255.255.0" \
            "ca $1/ca.crt" "cert $1/server.crt" "key $1/server.key" "dh none" "tls-crypt $1/tc.key" \
            "keepalive 10 60" "persist-key" "persist-tun" "verb 3"
          cat /usr/share/doc/tollgate/server.conf.snippet; } > "$2"
        sed -i -e "s|^# server = .*|server = \"deb\"|" \
            -e "s|^# management = .*|management = \"unix:/run/openvpn/tollgate.sock\"|" /etc/tollgate/tollgate.toml
        ' _ "$PKI" "$CONF" > "$W/server-setup.log" 2>&1 || { tail -n 5 "$W/server-setup.log"; return 1; }
    inside systemctl start openvpn-server@deb || { inside journalctl -u openvpn-server@deb --no-pager | tail -n 10; return 1; }
    inside tollgate server add deb --host "$SRV_IP" --ca "$PKI/ca.crt" --tls-crypt "$PKI/tc.key" >/dev/null &&
        echo "$PW" | inside tollgate user add alice --password-stdin --server deb >/dev/null &&
        inside gen-ovpn alice deb > "$W/alice.ovpn" || return 1
    grep -q "^remote $SRV_IP 1194" "$W/alice.ovpn" || { log "profile without remote $SRV_IP 1194"; return 1; }
}
check "a server from the package's snippet runs under openvpn-server@deb; server add, user add, gen-ovpn" t_server

# journal_has UNIT REGEX: the unit's journal has a matching line within 10 s
# (journald writes what a unit printed a moment after it exits).
journal_has() {
    local i
    for ((i = 0; i < 50; i++)); do
        inside journalctl -u "$1" --no-pager | grep -Eq -- "$2" && return 0
        sleep 0.2
    done
    return 1
}

t_login() {
    printf 'alice\n%s\n' "$PW" > "$W/creds-alice"
    chmod 600 "$W/creds-alice"
    : > "$W/cli-s1.log"
    ip netns exec "$NS_CLI" openvpn --cd "$W" --config "$W/alice.ovpn" --auth-user-pass "$W/creds-alice" \
        --writepid "$W/cli-s1.pid" --daemon --log "$W/cli-s1.log"
    wait_for "$W/cli-s1.log" "Initialization Sequence Completed|AUTH_FAILED" 30 &&
        grep -q "Initialization Sequence Completed" "$W/cli-s1.log" ||
        { tail -n 5 "$W/cli-s1.log"; inside journalctl -u openvpn-server@deb --no-pager | tail -n 10; return 1; }
    journal_has openvpn-server@deb "tollgate auth-verify: ACCEPT user=alice" ||
        { log "no ACCEPT line in the unit's journal"; return 1; }
    local i
    for ((i = 0; i < 50; i++)); do
        inside tollgate sessions --open | grep -q alice && break
        sleep 0.1
    done
    inside tollgate sessions --open | grep -q alice || { log "no open session for alice"; inside tollgate sessions; return 1; }
    # The packaged sweep unit reaches the server through the snippet's
    # socket. (Again if the timer's own run, started before the login, was
    # the one this start waited for.)
    for ((i = 0; i < 3; i++)); do
        inside systemctl start tollgate-sweep.service ||
            { inside journalctl -u tollgate-sweep.service --no-pager | tail -n 5; return 1; }
        journal_has tollgate-sweep.service "1 live client" && return 0
    done
    inside journalctl -u tollgate-sweep.service --no-pager | tail -n 5
    return 1
}
check "a client logs in through the packaged hooks; tollgate sessions --open shows it; the packaged sweep unit sees it" t_login

t_doctor() {
    inside systemctl show -p LimitNPROC --value openvpn-server@deb | grep -qx 512 ||
        { log "the package's LimitNPROC drop-in is not in effect"; return 1; }
    # It finds the server config by its auth-verify line and finds nothing
    # wrong. (A minimal Debian has no time synchronisation: that warning
    # is true here, and the only one allowed.)
    inside tollgate doctor > "$W/doctor.txt" 2>&1 && grep -q "^ok     openvpn-config: /etc/openvpn/server/deb.conf reads" "$W/doctor.txt" &&
        grep -q '^0 problems, ' "$W/doctor.txt" && ! grep -v '^WARN   clock-sync:' "$W/doctor.txt" | grep -q '^WARN' ||
        { sed 's/^/    | /' "$W/doctor.txt"; return 1; }
}
check "the package raises openvpn-server@'s process limit; tollgate doctor is clean on the documented setup" t_doctor

t_docs() {
    inside sh -c 'MANPAGER=cat man tollgate 2>&1' | grep -q SUBCOMMANDS || { log "man tollgate"; return 1; }
    inside sh -c 'MANPAGER=cat man tollgate-user-add 2>&1' | grep -q -- --password-stdin || { log "man tollgate-user-add"; return 1; }
    inside sh -c 'MANPAGER=cat man gen-ovpn 2>&1' | grep -q "inline" || { log "man gen-ovpn"; return 1; }
    inside bash -c '. /usr/share/bash-completion/completions/tollgate && complete -p tollgate &&
        . /usr/share/bash-completion/completions/gen-ovpn && complete -p gen-ovpn' >/dev/null ||
        { log "bash completions"; return 1; }
    inside test -s /usr/share/zsh/vendor-completions/_tollgate -a -s /usr/share/fish/vendor_completions.d/gen-ovpn.fish
}
check "man tollgate, man tollgate-user-add and man gen-ovpn render; bash completions load" t_docs

t_reinstall() {
    inside dpkg -i "$T/${DEB##*/}" > "$W/reinstall.log" 2>&1 || { tail -n 10 "$W/reinstall.log"; return 1; }
    owner /etc/tollgate/tollgate.toml root:nogroup 640 && owner /var/lib/tollgate nobody:nogroup 770 &&
        owner /var/lib/tollgate/tollgate.db nobody:nogroup 660 || return 1
    inside grep -q '^server = "deb"' /etc/tollgate/tollgate.toml || { log "the edited config was replaced"; return 1; }
    inside tollgate user show alice >/dev/null || { log "alice is gone"; return 1; }
    inside systemctl is-enabled --quiet tollgate-sweep.timer && inside systemctl is-active --quiet tollgate-sweep.timer ||
        { log "timer not enabled and active after reinstall"; return 1; }
}
check "installing it again (dpkg -i) keeps the edited config, the users, the owners and the timer" t_reinstall

t_remove() {
    inside systemctl stop openvpn-server@deb
    inside dpkg --remove tollgate > "$W/remove.log" 2>&1 || { tail -n 10 "$W/remove.log"; return 1; }
    inside dpkg-query -W -f '${Status}' tollgate | grep -qx "deinstall ok config-files" || return 1
    local f
    for f in /usr/bin/tollgate /usr/libexec/tollgate /lib/systemd/system/tollgate-sweep.timer \
        /etc/systemd/system/timers.target.wants/tollgate-sweep.timer; do
        ! inside test -e "$f" -o -L "$f" || { log "$f left after remove"; return 1; }
    done
    ! inside systemctl is-active --quiet tollgate-sweep.timer || { log "the timer still runs"; return 1; }
    owner /var/lib/tollgate/tollgate.db nobody:nogroup 660 && owner /etc/tollgate/tollgate.toml root:nogroup 640
}
check "dpkg --remove stops and disables the timer, removes the programs, keeps the database and the config" t_remove

t_purge() {
    inside dpkg --purge tollgate > "$W/purge.log" 2>&1 || { tail -n 10 "$W/purge.log"; return 1; }
    inside dpkg-query -W -f '${Status}' tollgate 2>/dev/null | grep -q installed && { log "still known to dpkg"; return 1; }
    files > "$W/files-after"
    diff "$W/files-before" "$W/files-after" > "$W/files.diff" || { sed 's/^/    | /' "$W/files.diff"; return 1; }
    # Nor anything named after it in the state the comparison leaves out
    # (systemd's, dpkg's), but caches: man-db keeps the pages `man` showed
    # in /var/cache/man until its daily run drops them.
    local left
    left=$(inside find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /var/cache -o -path "$T" \) -prune \
        -o -name '*tollgate*' -print)
    [ -z "$left" ] || { log "left: $left"; return 1; }
    [ -z "$(inside dpkg-statoverride --list '*tollgate*')" ] || { log "stat overrides left"; return 1; }
}
check "dpkg --purge leaves nothing: the container's files are what they were before the install" t_purge

summary
