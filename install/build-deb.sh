#!/usr/bin/env bash
# Builds the Debian package tollgate_VERSION_amd64.deb from this source tree
# with dpkg-deb alone (no debhelper). The binaries are static, so the same
# package installs on Debian 12/13 and Ubuntu 22.04/24.04.
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: bash install/build-deb.sh [OPTIONS]

Runs `cargo build --release --locked`, then writes tollgate_VERSION_amd64.deb
(VERSION from Cargo.toml) into the current directory:
  /usr/bin/{tollgate,gen-ovpn}
  /usr/libexec/tollgate/{auth-verify,client-connect,client-disconnect,tollgate-directory}
  /usr/share/man/man1/{tollgate,tollgate-*,gen-ovpn}.1.gz
  bash, zsh and fish completions of tollgate and gen-ovpn
  /lib/systemd/system/tollgate-sweep.{service,timer}, /etc/cron.d/tollgate-sweep
  /etc/tollgate/tollgate.toml (conffile)
  /usr/share/doc/tollgate/{README.Debian,copyright,changelog.gz,server.conf.snippet}

Options:
  --out DIR      write the package into DIR (default: the current directory)
  --no-build     do not run cargo: package the binaries already built
  --bin-dir DIR  take the binaries from DIR (default: $TOLLGATE_BIN_DIR, else
                 ${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-gnu/release)
  -h, --help     this help

DEBFULLNAME and DEBEMAIL set the Maintainer field; SOURCE_DATE_EPOCH (default:
the last commit's time) the file times and the changelog's date.
USAGE
}

die() { echo "build-deb.sh: $*" >&2; exit 1; }
SRC=$(cd "$(dirname "$0")/.." && pwd)
OUT=.
BUILD=1
BIN_DIR=${TOLLGATE_BIN_DIR:-}
while [ $# -gt 0 ]; do
    case $1 in
        --out) [ $# -ge 2 ] || die "--out needs a directory"; OUT=$2; shift 2 ;;
        --bin-dir) [ $# -ge 2 ] || die "--bin-dir needs a directory"; BIN_DIR=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done
[ -n "$BIN_DIR" ] || BIN_DIR=${CARGO_TARGET_DIR:-$SRC/target}/x86_64-unknown-linux-gnu/release
command -v dpkg-deb >/dev/null || die "dpkg-deb is missing (apt-get install dpkg)"
[ -d "$OUT" ] || die "--out: no directory $OUT"
OUT=$(cd "$OUT" && pwd)

# The version of the workspace: the first `version = "…"` of [workspace.package].
VERSION=$(awk '/^\[/ { sect = $0 } sect == "[workspace.package]" && /^version *=/ {
    gsub(/^version *= *"|".*$/, ""); print; exit }' "$SRC/Cargo.toml")
LICENSE=$(awk '/^\[/ { sect = $0 } sect == "[workspace.package]" && /^license *=/ {
    gsub(/^license *= *"|".*$/, ""); print; exit }' "$SRC/Cargo.toml")
[[ $VERSION =~ ^[0-9][A-Za-z0-9.+~]*$ ]] || die "no usable version in $SRC/Cargo.toml (got \"$VERSION\")"
[ "$LICENSE" = MIT ] || die "Cargo.toml's license is now \"$LICENSE\": update the copyright file this script writes"

if [ "$BUILD" = 1 ]; then
    # shellcheck source=packages.sh
    . "$SRC/install/packages.sh"
    ensure_cargo build-deb.sh
    (cd "$SRC" && cargo build --release --locked)
fi
TOOLS="tollgate gen-ovpn"
HOOKS="auth-verify client-connect client-disconnect tollgate-directory"
for b in $TOOLS $HOOKS; do
    [ -x "$BIN_DIR/$b" ] || die "no $BIN_DIR/$b (build with cargo build --release --locked, or drop --no-build)"
done

EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$SRC" log -1 --format=%ct 2>/dev/null || date +%s)}
MAINTAINER="${DEBFULLNAME:-tollgate maintainers} <${DEBEMAIL:-maintainers@tollgate.example}>"
PKG=tollgate
DEB=$OUT/${PKG}_${VERSION}_amd64.deb

umask 022
STAGE=$(mktemp -d "${TMPDIR:-/tmp}/tollgate-deb.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
R=$STAGE/root
DOC=$R/usr/share/doc/$PKG
install -d -m 755 "$R" "$R/DEBIAN" "$R/usr/bin" "$R/usr/libexec/tollgate" "$R/usr/share/man/man1" \
    "$R/usr/share/bash-completion/completions" "$R/usr/share/zsh/vendor-completions" \
    "$R/usr/share/fish/vendor_completions.d" "$R/lib/systemd/system" "$R/etc/cron.d" "$R/etc/tollgate" "$DOC"

# Binaries first: everything generated below comes from these copies, so the
# man pages and completions match the programs in the package.
for b in $TOOLS; do install -m 755 "$BIN_DIR/$b" "$R/usr/bin/$b"; done
for b in $HOOKS; do install -m 755 "$BIN_DIR/$b" "$R/usr/libexec/tollgate/$b"; done
TG=$R/usr/bin/tollgate

"$TG" man "$STAGE/man" >/dev/null
n=0
for f in "$STAGE"/man/*.1; do
    gzip -9n -c "$f" > "$R/usr/share/man/man1/${f##*/}.gz"
    n=$((n + 1))
done
[ -f "$R/usr/share/man/man1/tollgate.1.gz" ] && [ -f "$R/usr/share/man/man1/gen-ovpn.1.gz" ] ||
    die "tollgate man wrote no tollgate.1 or gen-ovpn.1"
for t in $TOOLS; do
    "$TG" completions bash --for "$t" > "$R/usr/share/bash-completion/completions/$t"
    "$TG" completions zsh --for "$t" > "$R/usr/share/zsh/vendor-completions/_$t"
    "$TG" completions fish --for "$t" > "$R/usr/share/fish/vendor_completions.d/$t.fish"
done

# The sweep: install/'s units and cron file with the package's paths. The
# cron line steps aside where systemd runs, since the timer does it there.
to_pkg_paths() {
    sed -e 's#/usr/local/bin/#/usr/bin/#g' -e 's#/usr/local/libexec/tollgate#/usr/libexec/tollgate#g' \
        -e 's#^Documentation=file:///usr/local/share/doc/tollgate/admin-guide.md#Documentation=man:tollgate-sweep(1)#' "$@"
}
for u in tollgate-sweep.service tollgate-sweep.timer; do
    to_pkg_paths "$SRC/install/$u" > "$R/lib/systemd/system/$u"
done
{
    echo "# /etc/cron.d/tollgate-sweep: charge live traffic, cut clients over quota or"
    echo "# past their limits, close sessions OpenVPN lost. Where systemd runs this"
    echo "# does nothing: tollgate-sweep.timer sweeps there."
    grep -v '^#' "$SRC/install/tollgate-sweep.cron" |
        to_pkg_paths -e 's#^\(\* \* \* \* \* root\) #\1 [ -d /run/systemd/system ] || #'
} > "$R/etc/cron.d/tollgate-sweep"
grep -q '^\* \* \* \* \* root \[ -d /run/systemd/system \] || /usr/bin/tollgate ' "$R/etc/cron.d/tollgate-sweep" ||
    die "install/tollgate-sweep.cron changed shape: could not add the systemd guard"
if grep -rq /usr/local "$R/lib/systemd/system" "$R/etc/cron.d"; then die "a /usr/local path is left in the sweep's units"; fi
# Debian's openvpn-server@ unit allows the hooks' user 10 processes; deferred
# auth runs each login in two short-lived ones (install.sh ships the same).
mkdir -p "$R/lib/systemd/system/openvpn-server@.service.d"
sed 's/^# Written by tollgate.s install.sh --setup-server./# Shipped by the tollgate package./' "$SRC/install/openvpn-server-dropin.conf" \
    > "$R/lib/systemd/system/openvpn-server@.service.d/tollgate.conf"

# The default config: install.sh's, without what only install time knows
# (this host's server name).
cat > "$R/etc/tollgate/tollgate.toml" <<'CONF'
# tollgate configuration (man tollgate; the admin guide lists every key)
database = "/var/lib/tollgate/tollgate.db"
# This host's name in `tollgate server list`; the hooks need it (or --server
# NAME on each hook line in server.conf):
# server = "vpn1"
# log_level = "info"
# busy_timeout = "5s"      # how long hooks wait for a busy database
# retention = "90d"        # how long auth events are kept
# For tollgate sweep, as in /usr/share/doc/tollgate/server.conf.snippet:
# management = "unix:/run/openvpn/tollgate.sock"
# status_file = "/run/openvpn-server/status-NAME.log" # sweep's fallback (cannot kill)

# [argon2]                 # OWASP minimum by default (19 MiB, 2 passes)
# memory_kib = 19456
# iterations = 2
# parallelism = 1

# [lockout]
# max_failures = 10        # failures within the window that lock an account (0 = never)
# per_source = 30          # failures from one address within the window that block it (0 = never)
# window = "15m"
# duration = "15m"
CONF
chmod 644 "$R/etc/tollgate/tollgate.toml"

# Documentation.
sed -e 's#/usr/local/libexec/tollgate#/usr/libexec/tollgate#g' \
    -e 's#(install.sh makes it nobody:nogroup)#(the package makes it nobody:nogroup)#' \
    "$SRC/install/server.conf.snippet" > "$DOC/server.conf.snippet"
if grep -q /usr/local "$DOC/server.conf.snippet"; then die "a /usr/local path is left in server.conf.snippet"; fi
cat > "$DOC/README.Debian" <<'EOF'
tollgate for Debian
-------------------

The package put the hooks OpenVPN runs in /usr/libexec/tollgate, created the
database /var/lib/tollgate/tollgate.db (owned by nobody:nogroup, the user
and group the hooks run as) and enabled tollgate-sweep.timer. Next:

1. Name this server: set server = "vpn1" in /etc/tollgate/tollgate.toml,
   and describe it for client profiles (until then the sweep fails):
     tollgate server add vpn1 --host vpn.example.com \
         --ca /etc/openvpn/server/ca.crt --tls-crypt /etc/openvpn/server/tc.key
2. Add the lines of /usr/share/doc/tollgate/server.conf.snippet to the
   OpenVPN server's config, set the management line's socket as
   management = "unix:..." in tollgate.toml (for the sweep), and restart
   OpenVPN.
3. Add a user and make the user's profile:
     tollgate user add alice --server vpn1
     gen-ovpn alice vpn1 --out alice.ovpn

4. `tollgate doctor` checks the config, the database and that server
   config, and names what would break logins, each with its fix.

`man tollgate` lists every command (man tollgate-user-add, ...). The
package raises Debian's openvpn-server@ process limit for the hooks' user
from 10 to 512 (/lib/systemd/system/openvpn-server@.service.d/tollgate.conf).
`apt remove tollgate` keeps the config and the database; `apt purge
tollgate` deletes them.
EOF
cat > "$DOC/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: tollgate
Comment: The programs are statically linked: they also contain the Rust
 crates listed in the source's Cargo.lock (each under its own license,
 mostly MIT or Apache-2.0), SQLite (public domain) and the GNU C Library
 (LGPL-2.1+, see /usr/share/common-licenses/LGPL-2.1).

Files: *
Copyright: tollgate contributors
License: MIT

License: MIT
 Permission is hereby granted, free of charge, to any person obtaining a
 copy of this software and associated documentation files (the "Software"),
 to deal in the Software without restriction, including without limitation
 the rights to use, copy, modify, merge, publish, distribute, sublicense,
 and/or sell copies of the Software, and to permit persons to whom the
 Software is furnished to do so, subject to the following conditions:
 .
 The above copyright notice and this permission notice shall be included
 in all copies or substantial portions of the Software.
 .
 THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS
 OR IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF
 MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT.
 IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY
 CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT,
 TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE
 SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
EOF
{
    printf '%s (%s) unstable; urgency=medium\n\n' "$PKG" "$VERSION"
    printf '  * Built from the source tree by install/build-deb.sh.\n\n'
    printf ' -- %s  %s\n' "$MAINTAINER" "$(LC_ALL=C date -u -R -d "@$EPOCH")"
} | gzip -9n > "$DOC/changelog.gz"

# lintian takes static-pie executables for shared libraries without their
# dependencies.
install -d -m 755 "$R/usr/share/lintian/overrides"
cat > "$R/usr/share/lintian/overrides/$PKG" <<EOF
# static-pie executables (ET_DYN without NEEDED), not libraries
$PKG: shared-library-lacks-prerequisites [*]
EOF

# Maintainer scripts.
cat > "$R/DEBIAN/postinst" <<'EOF'
#!/bin/sh
# tollgate postinst: config and database owned as the hooks need, the
# database created or migrated, the sweep timer enabled and started.
set -e

ETC=/etc/tollgate
CONF=$ETC/tollgate.toml
VAR=/var/lib/tollgate
TIMER=tollgate-sweep.timer

# owned PATH USER GROUP MODE: a dpkg-statoverride unless the admin set one,
# so that upgrades keep the owner and mode as well.
owned() {
    if ! dpkg-statoverride --list "$1" >/dev/null; then
        dpkg-statoverride --update --add "$2" "$3" "$4" "$1"
    fi
}

enable_timer() {
    deb-systemd-helper unmask "$TIMER" >/dev/null || true
    # A new install (no recorded state) enables; an admin's disable stays.
    if deb-systemd-helper --quiet was-enabled "$TIMER"; then
        deb-systemd-helper enable "$TIMER" >/dev/null || true
    else
        deb-systemd-helper update-state "$TIMER" >/dev/null || true
    fi
    if [ -d /run/systemd/system ]; then
        systemctl --system daemon-reload >/dev/null || true
        deb-systemd-invoke start "$TIMER" >/dev/null || true
    fi
}

case "$1" in
    configure)
        # The hooks run as nobody:nogroup (server.conf's user and group): they
        # read the config and own the database directory.
        owned "$ETC" root nogroup 0750
        owned "$CONF" root nogroup 0640
        if [ ! -d "$VAR" ]; then
            install -d -o nobody -g nogroup -m 0770 "$VAR"
        fi
        # Run as root, tollgate gives the files it creates to the directory's
        # owner; an existing database is migrated to this version's schema.
        out=$(tollgate --config "$CONF" init) || {
            echo "tollgate: tollgate --config $CONF init failed" >&2
            exit 1
        }
        case $out in
            *"up to date"*) ;;
            *) echo "tollgate: $out" ;;
        esac
        enable_timer
        ;;
    abort-upgrade|abort-deconfigure|abort-remove)
        enable_timer
        ;;
    *)
        ;;
esac

exit 0
EOF
cat > "$R/DEBIAN/prerm" <<'EOF'
#!/bin/sh
# tollgate prerm: on removal the sweep timer is stopped and disabled.
set -e

case "$1" in
    remove)
        if [ -d /run/systemd/system ]; then
            deb-systemd-invoke stop tollgate-sweep.timer tollgate-sweep.service >/dev/null || true
        fi
        deb-systemd-helper disable tollgate-sweep.timer >/dev/null || true
        ;;
    *)
        ;;
esac

exit 0
EOF
cat > "$R/DEBIAN/postrm" <<'EOF'
#!/bin/sh
# tollgate postrm: remove keeps /etc/tollgate and /var/lib/tollgate; purge
# deletes them and everything else postinst made.
set -e

case "$1" in
    remove)
        if [ -d /run/systemd/system ]; then
            systemctl --system daemon-reload >/dev/null || true
        fi
        ;;
    purge)
        if command -v deb-systemd-helper >/dev/null 2>&1; then
            deb-systemd-helper purge tollgate-sweep.timer >/dev/null || true
            deb-systemd-helper unmask tollgate-sweep.timer >/dev/null || true
        fi
        for p in /etc/tollgate/tollgate.toml /etc/tollgate; do
            if dpkg-statoverride --list "$p" >/dev/null; then
                dpkg-statoverride --remove "$p" >/dev/null || true
            fi
        done
        rm -rf /var/lib/tollgate /etc/tollgate
        ;;
    *)
        ;;
esac

exit 0
EOF
chmod 755 "$R/DEBIAN/postinst" "$R/DEBIAN/prerm" "$R/DEBIAN/postrm"
printf '/etc/cron.d/tollgate-sweep\n/etc/tollgate/tollgate.toml\n' > "$R/DEBIAN/conffiles"

# md5sums of everything but the conffiles (dpkg keeps theirs itself).
(
    cd "$R"
    find . -path ./DEBIAN -prune -o -type f -printf '%P\n' | LC_ALL=C sort |
        grep -vxF -f <(sed 's#^/##' DEBIAN/conffiles) | xargs -d '\n' md5sum
) > "$STAGE/md5sums"
mv "$STAGE/md5sums" "$R/DEBIAN/md5sums"

SIZE=$(du -sk --exclude=DEBIAN "$R" | cut -f1)
cat > "$R/DEBIAN/control" <<EOF
Package: $PKG
Version: $VERSION
Architecture: amd64
Maintainer: $MAINTAINER
Installed-Size: $SIZE
Recommends: openvpn
Section: net
Priority: optional
Description: user authentication, quotas and accounting for OpenVPN
 tollgate gives an OpenVPN Community Edition server user accounts with
 argon2id passwords, plans with data quotas, connection and session limits,
 per-server grants, lockout of password guessers and per-session accounting,
 without Access Server or a web panel. Logins can also be checked against
 LDAP, RADIUS or an OpenID provider, with an optional TOTP second factor.
 .
 It contains the hooks OpenVPN runs (auth-verify, client-connect and
 client-disconnect), the tollgate admin command, gen-ovpn for complete
 inline client profiles, and a systemd timer (or cron job) for tollgate
 sweep, which charges live traffic and cuts clients past their limits.
 Everything lives in one local SQLite database; no daemon runs.
EOF
chmod 644 "$R/DEBIAN/control" "$R/DEBIAN/conffiles" "$R/DEBIAN/md5sums"

find "$R" -exec touch -h -d "@$EPOCH" {} +
SOURCE_DATE_EPOCH=$EPOCH dpkg-deb --root-owner-group -Zxz --build "$R" "$DEB" >/dev/null
echo "$DEB"
