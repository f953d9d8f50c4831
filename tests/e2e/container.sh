# A minimal Debian 12 booted with systemd, for the tests that install into a
# real system (test_systemd.sh, test_deb.sh). Sourced after lib.sh:
# debootstrap into $W/rootfs, boot it with systemd-nspawn inside the server
# namespace $NS_SRV, run commands in it (inside), power it off on exit
# before lib.sh's cleanup. Everything lives in this run's $W.
#
# A test may set, before boot:
#   CONTAINER_NSPAWN_ARGS  more systemd-nspawn options (e.g. --bind=...)
#   CONTAINER_ENV          more NAME=VALUE for the environment of `inside`

ROOTFS=$W/rootfs
NSPAWN_PID=
INIT=
CONTAINER_NSPAWN_ARGS=()
CONTAINER_ENV=()

# container_tools: debootstrap, systemd-nspawn and nsenter are there, else
# the test fails at once.
container_tools() {
    local c
    for c in debootstrap systemd-nspawn nsenter dpkg-scanpackages; do
        command -v "$c" >/dev/null || { fail "$c is installed (tests/run.sh installs it)"; summary; exit 1; }
    done
}

# The Debian release: bookworm (12) unless CONTAINER_SUITE names another.
CONTAINER_SUITE=${CONTAINER_SUITE:-bookworm}
case $CONTAINER_SUITE in bookworm) CONTAINER_DEBIAN=12 ;; trixie) CONTAINER_DEBIAN=13 ;; *) CONTAINER_DEBIAN=$CONTAINER_SUITE ;; esac

# container_debootstrap INCLUDE [PACKAGE...]: a minimal Debian 12 (minbase
# plus the comma-separated INCLUDE) in $ROOTFS. Each PACKAGE is fetched now,
# with what it needs, from the sources a Debian 12 install has (the booted
# container has no way out) into a local archive, /srv/debs, that is then
# its only apt source.
container_debootstrap() {
    local include=$1
    shift
    debootstrap --variant=minbase --include="$include" \
        "$CONTAINER_SUITE" "$ROOTFS" http://deb.debian.org/debian > "$W/debootstrap.log" 2>&1 ||
        { tail -n 5 "$W/debootstrap.log"; return 1; }
    echo "tg$RUN_ID" > "$ROOTFS/etc/hostname"
    mkdir -p "$ROOTFS/srv/debs"
    if [ $# -gt 0 ]; then
        printf 'deb http://deb.debian.org/debian %s main\ndeb http://deb.debian.org/debian-security %s-security main\n' \
            "$CONTAINER_SUITE" "$CONTAINER_SUITE" \
            > "$ROOTFS/etc/apt/sources.list"
        { chroot "$ROOTFS" apt-get update -qq &&
            chroot "$ROOTFS" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --download-only "$@"
        } > "$W/apt.log" 2>&1 || { tail -n 5 "$W/apt.log"; return 1; }
        mv "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS/srv/debs/"
    fi
    (cd "$ROOTFS/srv/debs" && dpkg-scanpackages -m . > Packages 2>/dev/null) || return 1
    echo 'deb [trusted=yes] file:/srv/debs ./' > "$ROOTFS/etc/apt/sources.list"
    rm -rf "$ROOTFS"/var/lib/apt/lists/*
}

boot() {
    : > "$W/nspawn.log"
    # --private-network makes /proc/sys/net writable (net.ipv4.ip_forward);
    # the namespace path puts the container in the server namespace.
    systemd-nspawn -b -D "$ROOTFS" --machine "tg$RUN_ID" --register=no --keep-unit \
        --capability=CAP_NET_ADMIN,CAP_NET_RAW --private-network --network-namespace-path="/run/netns/$NS_SRV" \
        --bind=/dev/net/tun "${CONTAINER_NSPAWN_ARGS[@]}" \
        < /dev/null > "$W/nspawn.log" 2>&1 &
    NSPAWN_PID=$!
    local i st
    for ((i = 0; i < 600; i++)); do
        INIT=$(pgrep -P "$NSPAWN_PID" -x systemd | head -n 1)
        if [ -n "$INIT" ]; then
            st=$(inside systemctl is-system-running 2>/dev/null)
            case $st in running|degraded) return 0 ;; esac
        fi
        kill -0 "$NSPAWN_PID" 2>/dev/null || break
        sleep 0.1
    done
    tail -n 20 "$W/nspawn.log"; return 1
}

# inside CMD...: run a command in the container (its namespaces, a clean env).
inside() {
    nsenter -t "$INIT" -m -u -i -n -p -C -- env -i HOME=/root "${CONTAINER_ENV[@]}" \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"
}

poweroff() {
    [ -n "$NSPAWN_PID" ] || return 0
    inside systemctl poweroff >/dev/null 2>&1
    local i
    for ((i = 0; i < 300; i++)); do kill -0 "$NSPAWN_PID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$NSPAWN_PID" 2>/dev/null && kill -9 "$NSPAWN_PID" "$INIT" 2>/dev/null
    wait "$NSPAWN_PID" 2>/dev/null
    NSPAWN_PID=
}

container_cleanup() {
    poweroff
    cleanup
}
trap container_cleanup EXIT
