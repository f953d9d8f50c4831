# Sourced by tests/run.sh and install/demo.sh.
# ensure_packages WHO COMMAND=PACKAGE[,PACKAGE]...: install, with one
# apt-get update, the Debian packages of every COMMAND not on the PATH;
# exit with a one-line reason when that fails, or when cargo is missing.
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
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null ||
            { echo "$who: apt-get install ${need[*]} failed" >&2; exit 1; }
    fi
    command -v cargo >/dev/null ||
        { echo "$who: cargo not found: install a Rust toolchain (1.80+, e.g. with rustup)" >&2; exit 1; }
}
