# Packages from the npm registry for the tests (oidc-provider, playwright-core),
# installed once per machine into a cache directory. Sourced.
#
#   npm_cached DIR PACKAGE VERSION
#                      make DIR/node_modules/PACKAGE be PACKAGE@VERSION:
#                      nothing to do when a complete install is stamped,
#                      else npm install under a lock (parallel test files
#                      wait for one another); fails with npm's last lines

npm_cached() {
    local dir=$1 pkg=$2 version=$3 rc
    local stamp=$dir/.installed-$version
    if ! command -v node >/dev/null; then
        echo "npm_cached: node is missing (apt-get install nodejs)" >&2
        return 1
    fi
    [ -f "$stamp" ] && [ -f "$dir/node_modules/$pkg/package.json" ] && return 0
    if ! command -v npm >/dev/null; then
        echo "npm_cached: npm is missing (apt-get install npm); it installs $pkg@$version" >&2
        return 1
    fi
    mkdir -p "$dir" || return 1
    # One install at a time; the stamp is written only after a complete one.
    (
        flock 9
        [ -f "$stamp" ] && exit 0
        rm -f "$dir"/.installed-*
        npm install --no-audit --no-fund --prefix "$dir" "$pkg@$version" > "$dir/npm.log" 2>&1 || exit 1
        [ "$(node -p 'require(process.argv[1]).version' "$dir/node_modules/$pkg/package.json" 2>/dev/null)" \
            = "$version" ] || exit 1
        touch "$stamp"
    ) 9> "$dir/.lock"
    rc=$?
    if [ "$rc" != 0 ]; then
        echo "npm_cached: npm install $pkg@$version into $dir failed; last lines of $dir/npm.log:" >&2
        tail -n 20 "$dir/npm.log" 2>/dev/null | sed 's/^/    | /' >&2
        return 1
    fi
}
