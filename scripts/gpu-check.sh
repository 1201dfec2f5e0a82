#!/usr/bin/env bash
# One short run on a GPU machine (no Rust toolchain needed): the CUDA test executables, then the
# benchmarks of BENCHMARKS.md on the GPU. Binaries come from `scripts/build-cuda.sh --dist` built
# elsewhere and carried here as dist/cuda/. Results go to $OUT (or ./gpu-check-out).
#
# Usage: scripts/gpu-check.sh [dist/cuda]
set -uo pipefail
cd "$(dirname "$0")/.."
dist=${1:-dist/cuda}
out=${OUT:-gpu-check-out}
mkdir -p "$out"
exec > >(tee "$out/gpu-check.log") 2>&1
nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv || true
# CUDA libraries (cuBLAS, cuRAND, NVRTC) may live in the machine's Python environment.
for lib in $(python3 -c 'import nvidia, os; print(" ".join(p for p in nvidia.__path__))' 2>/dev/null); do
  for d in "$lib"/*/lib "$lib"/cu*/lib; do [ -d "$d" ] && LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}"; done
done
export LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}
status=0
echo "== CUDA tests (every device: CPU fused, CPU plain, CUDA)"
for t in "$dist"/tests/*; do
  echo "-- $(basename "$t")"
  "$t" --test-threads=1 || status=1
done
cli="$dist/asmr-cli"
echo "== 512 x 512 full-grid steps: ASMR low-mac-4 vs SIREN (4 x 256)"
"$cli" bench --device cuda --shape 512,512 --preset low-mac-4 --models asmr,siren --json \
  | tee "$out/bench-512.jsonl" || status=1
echo "== 2^18 minibatch of 8192 x 8192 RGB: megapixel preset"
"$cli" bench --device cuda --shape 8192,8192 --channels 3 --preset megapixel --batch 262144 \
  --models asmr,siren --json | tee "$out/bench-8k.jsonl" || status=1
echo "== the same on this machine's CPU, for the ratio"
"$cli" bench --device cpu --shape 512,512 --preset low-mac-4 --models asmr --repeats 3 --json \
  | tee "$out/bench-512-cpu.jsonl" || status=1
nvidia-smi --query-gpu=memory.used,memory.total --format=csv || true
exit $status
