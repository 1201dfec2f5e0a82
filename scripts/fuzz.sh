#!/usr/bin/env bash
# Run every cargo-fuzz target for SECONDS each (default 60), corpora seeded from fuzz/seeds/.
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
#
#   scripts/fuzz.sh              # 60 s per target
#   scripts/fuzz.sh 900 obj      # 15 minutes of the OBJ target only
#
# Inputs are held to a small input limit (ASMR_INPUT_LIMIT_GB) and libFuzzer's RSS and malloc
# limits, so an allocation the limits should have refused is a finding. A crash lands in
# fuzz/artifacts/TARGET/; keep it as a regression case in the ordinary test suite once fixed.
# Executions per target go to fuzz/runs.log.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
SECONDS_EACH=${1:-60}
shift || true
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
    TARGETS=(image audio obj config checkpoint npy)
fi
export ASMR_INPUT_LIMIT_GB=${ASMR_INPUT_LIMIT_GB:-0.25}
export ASMR_THREADS=${ASMR_THREADS:-1}
cargo +nightly fuzz build -O >/dev/null
for t in "${TARGETS[@]}"; do
    mkdir -p "corpus/$t"
    echo "== $t: ${SECONDS_EACH} s"
    log=$(mktemp)
    set +e
    cargo +nightly fuzz run -O "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$SECONDS_EACH" -timeout=20 -rss_limit_mb=2048 -malloc_limit_mb=1024 \
        -max_len=65536 -print_final_stats=1 2>"$log"
    rc=$?
    set -e
    execs=$(grep -m1 'stat::number_of_executed_units' "$log" | awk '{print $2}')
    echo "$(date -u +%F) $t ${SECONDS_EACH}s execs=${execs:-?} exit=$rc" | tee -a runs.log
    if [ $rc -ne 0 ]; then
        grep -E 'ERROR|panicked|SUMMARY|artifact' "$log" | head -20
    fi
    rm -f "$log"
done
