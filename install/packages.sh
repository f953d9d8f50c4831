# Sourced by install.sh, tests/run.sh and install/demo.sh.
TOLLGATE_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
APT_UPDATED=${APT_UPDATED:-}

# ensure_packages WHO COMMAND=PACKAGE[,PACKAGE]...: install, with one
# apt-get update, the Debian packages of every COMMAND not on the PATH, then
# a Rust toolchain (ensure_cargo); exit with a one-line reason on failure.
ensure_packages() {
    local who=$1 pair pkgs need=()
    shift
    for pair in "$@"; do
        if ! command -v "${pair%%=*}" >/dev/null; then
            IFS=, read -r -a pkgs <<<"${pair#*=}"
            need+=("${pkgs[@]}")
        fi
    done
    if [ ${#need[@]} -gt 0 ]; then
        echo "== installing ${need[*]}"
        apt_update && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null ||
            { echo "$who: apt-get install ${need[*]} failed" >&2; exit 1; }
    fi
    ensure_cargo "$who"
}

apt_update() {
    [ -n "$APT_UPDATED" ] && return 0
    apt-get update -qq && APT_UPDATED=1
}

# version_at_least HAVE NEED: HAVE (1.96.0, or a Debian version such as
# 1.96.0+dfsg1-1~deb12u2) is NEED (1.89) or newer.
version_at_least() {
    local have=${1#*:}
    have=${have%%[+~-]*}
    [ -n "$have" ] && [ "$(printf '%s\n%s\n' "$2" "$have" | sort -V | head -n 1)" = "$2" ]
}

# ensure_cargo WHO: a cargo at least as new as the workspace's rust-version
# on the PATH. When there is none, the distribution's own: Debian 12 keeps a
# current toolchain for its browsers (cargo-web and rustc-web, from
# bookworm-security), elsewhere cargo and rustc if the archive's are new
# enough. Otherwise one line saying what to install.
ensure_cargo() {
    local who=$1 need have pkg cand seen=
    need=$(sed -n 's/^rust-version *= *"\(.*\)"/\1/p' "$TOLLGATE_SRC/Cargo.toml")
    have=$(cargo --version 2>/dev/null | awk '{print $2}' || true)
    version_at_least "$have" "$need" && return 0
    if command -v apt-get >/dev/null; then
        apt_update || { echo "$who: apt-get update failed" >&2; exit 1; }
        for pkg in cargo-web cargo; do
            cand=$(apt-cache policy "$pkg" 2>/dev/null | sed -n 's/^ *Candidate: //p')
            [ -z "$cand" ] || [ "$cand" = "(none)" ] || seen+=", the archive has $pkg ${cand%%[+~-]*}"
            version_at_least "$cand" "$need" || continue
            echo "== installing the Rust toolchain from the distribution: $pkg ${cand%%[+~-]*} and ${pkg/cargo/rustc}"
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" "${pkg/cargo/rustc}" gcc libc6-dev >/dev/null ||
                { echo "$who: apt-get install $pkg ${pkg/cargo/rustc} failed" >&2; exit 1; }
            hash -r
            have=$(cargo --version 2>/dev/null | awk '{print $2}' || true)
            version_at_least "$have" "$need" && return 0
            break
        done
    fi
    echo "$who: no Rust toolchain $need or newer${have:+ (cargo $have on the PATH)}${seen}: install one, e.g. with rustup" >&2
    exit 1
}
