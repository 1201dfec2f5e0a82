#!/usr/bin/env bash
# Cameraman 512 x 512: every model for 300 steps, and for 60 s of wall time.
# Usage: scripts/bench-baselines.sh [steps|time|all] [IMAGE] [OUT]; prints TSV rows.
# Needs a release build (cargo build --release -p asmr-cli). ASMR runs the paper's ASMR-4
# (low-mac-4); the others the default image preset (4 x 256 where a width applies) with their own
# optimiser settings.
set -euo pipefail
cd "$(dirname "$0")/.."
phase=${1:-all}
image=${2:-../shared/data/image-cameraman-512.png}
out=${3:-runs/bench-baselines}
bin=${ASMR_BIN:-target/release/asmr-cli}
mkdir -p "$out"
models="asmr siren ffn wire kilonerf ngp grid"
preset() { [ "$1" = asmr ] && echo low-mac-4 || echo image; }
field() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"; }
if [ "$phase" = steps ] || [ "$phase" = all ]; then
  for m in $models; do
    d="$out/$m-300"
    /usr/bin/time -f "%M" -o "$d.rss" "$bin" fit image "$image" --model "$m" --preset "$(preset "$m")" \
      --iterations 300 --out "$d" -q > /dev/null
    printf "steps\t%s\t%s\t%s\t%s\t%s\t%s\n" "$m" "$(field "$d/metrics.json" params)" \
      "$(field "$d/metrics.json" macs_per_sample)" "$(field "$d/metrics.json" psnr)" \
      "$(field "$d/metrics.json" steps_per_second)" "$(cat "$d.rss")"
  done
fi
if [ "$phase" = time ] || [ "$phase" = all ]; then
  for m in $models; do
    d="$out/$m-60s"
    /usr/bin/time -f "%M" -o "$d.rss" "$bin" fit image "$image" --model "$m" --preset "$(preset "$m")" \
      --iterations 1000000 --time-limit 60 --set train.checkpoint_every=0 --out "$d" -q > /dev/null
    printf "time\t%s\t%s\t%s\t%s\t%s\t%s\n" "$m" "$(field "$d/metrics.json" steps)" \
      "$(field "$d/metrics.json" psnr)" "$(field "$d/metrics.json" steps_per_second)" \
      "$(field "$d/metrics.json" wall_seconds)" "$(cat "$d.rss")"
  done
fi
