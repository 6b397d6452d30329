#!/usr/bin/env bash
# Runs OAR's fuzz targets, each for a set time, with cargo-fuzz (libFuzzer) on the stable
# toolchain the repository pins, without a sanitizer (`-s none`: the sanitizers need nightly).
# What a run finds is a panic, a failed assertion, a hang (-timeout) or a memory blow-up.
#
#   fuzz/run.sh [--merge] [SECONDS] [TARGET...]
#
# SECONDS defaults to 60 per target; TARGETs default to all of them. The light targets
# (signature_headers, plan) build in about a minute; the others (plan_host, manifest,
# approval, revocations, bundle, table) need oar-host built with coverage instrumentation:
# Polars, wasmtime and OpenDP, most of an hour on two cores, once.
#
# Seeds are read from fuzz/corpus/<target>/ (plan_host reads plan's); inputs that reach new
# code are written to a scratch folder, $FUZZ_SCRATCH/<target> (default
# $CARGO_TARGET_DIR/fuzz-scratch), never into the checked-in corpus unless --merge is given,
# which then adds to the corpus only the new inputs that add coverage. A crashing input is
# saved as fuzz/artifacts/<target>/crash-*; the script exits 1 if any target crashed.
#
# Builds go to $CARGO_TARGET_DIR (default /tmp/fuzz-target), apart from the workspace's.
set -euo pipefail

LIGHT=(signature_headers plan)
HOST=(plan_host manifest approval revocations bundle table)

merge=0
seconds=60
targets=()
for arg in "$@"; do
    case "$arg" in
        --merge) merge=1 ;;
        -h | --help)
            sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *[!0-9]*) targets+=("$arg") ;;
        *) seconds="$arg" ;;
    esac
done
[ ${#targets[@]} -gt 0 ] || targets=("${LIGHT[@]}" "${HOST[@]}")

cd "$(dirname "$0")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/tmp/fuzz-target}"
scratch="${FUZZ_SCRATCH:-$CARGO_TARGET_DIR/fuzz-scratch}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi
toolchain="$(rustc --version)"
case "$toolchain" in
    *nightly* | *beta* | *dev*) echo "warning: $toolchain is not a stable toolchain" >&2 ;;
esac
echo "== $(cargo fuzz --version), $toolchain, ${seconds}s per target: ${targets[*]}"

is_host() {
    local t
    for t in "${HOST[@]}"; do [ "$t" = "$1" ] && return 0; done
    return 1
}

summary=()
crashed=0
for target in "${targets[@]}"; do
    features=()
    if is_host "$target"; then
        features=(--features host)
    elif [[ ! " ${LIGHT[*]} " == *" $target "* ]]; then
        echo "unknown target '$target' (known: ${LIGHT[*]} ${HOST[*]})" >&2
        exit 2
    fi
    seeds="corpus/$target"
    [ "$target" = plan_host ] && seeds="corpus/plan"
    found="$scratch/$target"
    artifacts="artifacts/$target"
    log="$scratch/$target.log"
    mkdir -p "$found" "$artifacts"
    marker="$(mktemp)"

    echo "== $target: building"
    cargo fuzz build -s none "${features[@]}" "$target"
    echo "== $target: running ${seconds}s (seeds $seeds, new inputs $found, log $log)"
    status=0
    cargo fuzz run -s none "${features[@]}" "$target" "$found" "$seeds" -- \
        -max_total_time="$seconds" -timeout=10 -print_final_stats=1 >"$log" 2>&1 || status=$?

    final_stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -1; }
    last="$(grep -E ' cov: ' "$log" | tail -1 || true)"
    cov="$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")"
    ft="$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")"
    crash="$(find "$artifacts" -type f -newer "$marker" | head -1)"
    rm -f "$marker"
    line="$target: execs $(final_stat number_of_executed_units) ($(final_stat average_exec_per_sec)/s), cov ${cov:-?}, ft ${ft:-?}, new inputs $(final_stat new_units_added), peak rss $(final_stat peak_rss_mb) MB"
    if [ "$status" -ne 0 ] || [[ "$crash" == */crash-* || "$crash" == */timeout-* || "$crash" == */oom-* ]]; then
        crashed=1
        line="$line, CRASH (exit $status): ${crash:-see $log}"
        { grep -m 1 -A 1 'panicked at' "$log" || grep -m 1 'ERROR: libFuzzer' "$log"; } |
            sed 's/^/    /' || true
    elif [ -n "$crash" ]; then
        line="$line, no crash (artifact $crash)"
    else
        line="$line, no crash"
    fi
    echo "$line"
    summary+=("$line")

    if [ "$merge" = 1 ]; then
        echo "== $target: merging new inputs that add coverage into $seeds"
        cargo fuzz run -s none "${features[@]}" "$target" "$seeds" "$found" -- -merge=1 \
            >"$scratch/$target.merge.log" 2>&1
        tail -1 "$scratch/$target.merge.log"
    fi
done

echo "== summary (${seconds}s per target)"
printf '%s\n' "${summary[@]}"
exit "$crashed"
