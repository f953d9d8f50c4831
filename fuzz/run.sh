#!/usr/bin/env bash
# Fuzz every parser of outside input with cargo fuzz (libFuzzer, AddressSanitizer).
#   bash fuzz/run.sh smoke [SECONDS]   each target briefly (CI: 10 s each)
#   bash fuzz/run.sh campaign [RUNS]   each target for RUNS executions (default 10M),
#                                      printing the figures docs/fuzzing.md records
#   bash fuzz/run.sh TARGET [ARGS...]  one target, libFuzzer arguments passed on
# The seed corpus is fuzz/corpus/TARGET; what a run finds new goes to a
# scratch copy, so the committed corpus stays small and reviewed.
set -euo pipefail
cd "$(dirname "$0")"
TARGETS="auth_input status config hook_args peer_info spool_record post_auth_reply radius_response web_request id_token_claims server_conf pg_config"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz/run.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked >&2
fi
# cargo fuzz needs a nightly compiler for its sanitizer flags; the stable
# one accepts them with RUSTC_BOOTSTRAP where no nightly is installed.
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    FUZZ=(cargo +nightly fuzz)
else
    export RUSTC_BOOTSTRAP=1
    FUZZ=(cargo fuzz)
fi

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

# run TARGET LIBFUZZER_ARGS...: prints "TARGET: N runs, no crash" or fails.
run() {
    local t=$1 log; shift
    mkdir -p "$scratch/$t"
    cp corpus/"$t"/* "$scratch/$t/"
    log="$scratch/$t.log"
    local rc=0 runs
    "${FUZZ[@]}" run --release "$t" "$scratch/$t" -- -max_len=8192 -print_final_stats=1 "$@" >"$log" 2>&1 || rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    if grep -q "libFuzzer: run interrupted" "$log"; then
        echo "$t: interrupted after ${runs:-?} runs, no crash"
        return 1
    fi
    if [ "$rc" -ne 0 ]; then
        tail -n 40 "$log" >&2
        echo "$t: CRASH (artifact under fuzz/artifacts/$t)"
        return 1
    fi
    echo "$t: ${runs:-?} runs, no crash"
}

"${FUZZ[@]}" build --release >"$scratch/build.log" 2>&1 || { tail -n 40 "$scratch/build.log" >&2; exit 1; }
case "${1:-smoke}" in
    smoke)
        rc=0
        for t in $TARGETS; do run "$t" -max_total_time="${2:-10}" || rc=1; done
        exit $rc ;;
    campaign)
        for t in $TARGETS; do run "$t" -runs="${2:-10000000}"; done ;;
    *)
        t=$1; shift; run "$t" "$@" ;;
esac
