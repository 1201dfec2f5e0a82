#!/usr/bin/env bash
# One short run on a GPU machine (no Rust toolchain needed): the CUDA test executables, a fit of
# the built-in image on the GPU, then the benchmarks of BENCHMARKS.md on the GPU and, for the
# ratio, on that machine's CPU. Binaries come from `scripts/build-cuda.sh --dist` run elsewhere and
# carried here as dist/asmr-cuda.tar.xz. Results go to $OUT (or ./gpu-check-out); the last lines
# printed are the summary.
#
# Usage: scripts/gpu-check.sh [dist/asmr-cuda.tar.xz] [quick]
#   quick: tests and the 512 x 512 bench only.
#   GPU_CHECK_BUDGET (seconds, default 540): each step's limit is cut to what is left of it, and
#   steps that find under 10 s left are skipped, so the summary is printed (and $OUT written)
#   inside a device call's time limit however slow a step turns out.
set -uo pipefail
cd "$(dirname "$0")/.."
bundle=${1:-dist/asmr-cuda.tar.xz}
mode=${2:-full}
out=${OUT:-gpu-check-out}
mkdir -p "$out"
exec > >(tee "$out/gpu-check.log") 2>&1
start=$(date +%s)
stamp() { echo "[$(($(date +%s) - start)) s] $*"; }

dist=/tmp/asmr-cuda
rm -rf "$dist" && mkdir -p "$dist"
if ! tar -C "$dist" -xJf "$bundle" 2>/dev/null; then
  python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$bundle" "$dist" \
    || { echo "cannot unpack $bundle"; exit 2; }
fi
stamp "unpacked $(ls "$dist"/tests | wc -l) test executables and the CLI"
nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv || true
# cuBLAS, cuRAND and NVRTC (sonames .so.13, .so.10) come with the machine's Python CUDA wheels.
for lib in $(python3 -c 'import nvidia; print(" ".join(nvidia.__path__))' 2>/dev/null); do
  for d in "$lib"/*/lib "$lib"/cu*/lib; do
    [ -d "$d" ] && LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}"
  done
done
for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/local/cuda/lib64 \
  /usr/local/cuda/targets/x86_64-linux/lib; do
  [ -d "$d" ] && LD_LIBRARY_PATH="${LD_LIBRARY_PATH:-}:$d"
done
export LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}
cli="$dist/asmr-cli"
# Anything still missing: look for it where toolkits and Python environments live.
for so in $(ldd "$cli" | awk '/not found/ {print $1}'); do
  hit=$(find /opt /usr /root -name "$so" 2>/dev/null | head -1)
  [ -n "$hit" ] && LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$(dirname "$hit")"
done
if ldd "$cli" | grep "not found"; then
  echo "missing shared libraries (LD_LIBRARY_PATH=$LD_LIBRARY_PATH)"
  exit 2
fi
ldd "$cli" | grep -E "cublas|curand|nvrtc|libcuda" || true

status=0
summary=()
budget=${GPU_CHECK_BUDGET:-540}
run() {  # run NAME LIMIT_S COMMAND...: logged, timed, bounded by the step's and the whole budget
  local name=$1 limit=$2
  shift 2
  local left=$((budget - ($(date +%s) - start)))
  if [ $left -lt 10 ]; then
    stamp "== $name: skipped, the budget of $budget s is spent"
    status=1
    summary+=("$(printf '%-34s skipped (budget)' "$name")")
    return 1
  fi
  [ $left -lt "$limit" ] && limit=$left
  stamp "== $name"
  local t0=$(date +%s)
  timeout "$limit" "$@"
  local rc=$?
  [ $rc -eq 0 ] || status=1
  summary+=("$(printf '%-34s rc %3d  %4d s' "$name" $rc $(($(date +%s) - t0)))")
  return $rc
}

# Every test binary; the device loops fail instead of skipping when the GPU is missing.
export ASMR_REQUIRE_CUDA=1
for t in "$dist"/tests/*; do
  run "test $(basename "$t" | sed 's/-[0-9a-f]*$//')" 240 "$t" --test-threads=4
done
unset ASMR_REQUIRE_CUDA

run "fit built-in image, cuda" 120 "$cli" fit image --device cuda --iterations 500 \
  --out /tmp/asmr-fit && cp /tmp/asmr-fit/metrics.json "$out/fit-metrics.json"
# Start-up: 100 steps in a fresh process whose driver cache of JIT-compiled PTX starts empty
# (what a fresh machine pays for candle's PTX kernels; ours are machine code), then again with
# that cache filled.
jit_cache=$(mktemp -d)
for cache in cold warm; do
  run "start-up, $cache PTX cache" 60 env CUDA_CACHE_PATH="$jit_cache" bash -c \
    'TIMEFORMAT="wall %R s"; time "$0" fit image --device cuda --iterations 100 --out /tmp/asmr-startup --overwrite >/dev/null' "$cli"
done
# The table's fit row: cameraman (packed into the bundle by build-cuda.sh --dist), 2,000 steps.
if [ -f "$dist/data/image-cameraman-512.png" ]; then
  for tf in false true; do
    run "fit cameraman 2000 tf32=$tf" 120 "$cli" fit image "$dist/data/image-cameraman-512.png" \
      --device cuda --preset low-mac-4 --iterations 2000 --set train.tf32=$tf \
      --out /tmp/asmr-cam-$tf --overwrite && cp /tmp/asmr-cam-$tf/metrics.json "$out/cameraman-tf32-$tf.json"
  done
  # The same fit reading its losses every step instead of every 10 (`train.loss_every`).
  run "fit cameraman 2000 loss_every=1" 120 "$cli" fit image "$dist/data/image-cameraman-512.png" \
    --device cuda --preset low-mac-4 --iterations 2000 --set train.loss_every=1 \
    --out /tmp/asmr-cam-every --overwrite && cp /tmp/asmr-cam-every/metrics.json "$out/cameraman-loss-every-1.json"
fi

run "bench 512x512 cuda" 150 "$cli" bench --device cuda --shape 512,512 --preset low-mac-4 \
  --models asmr,siren --repeats 20
run "bench 512x512 cpu" 150 "$cli" bench --device cpu --shape 512,512 --preset low-mac-4 \
  --models asmr,siren --repeats 3
if [ "$mode" != quick ]; then
  run "bench 8192^2 2^18 batch cuda" 200 "$cli" bench --device cuda --shape 8192,8192 \
    --channels 3 --preset megapixel --batch 262144 --models asmr,siren --repeats 10
  run "bench 512x512 baselines cuda" 200 "$cli" bench --device cuda --shape 512,512 \
    --preset low-mac-4 --models ngp,grid,ffn,wire,kilonerf --repeats 10
  run "bench 512x512 cuda tf32" 100 "$cli" bench --device cuda --shape 512,512 --preset low-mac-4 \
    --models asmr,siren --repeats 20 --set train.tf32=true
  if command -v ncu >/dev/null; then
    run "ncu 512x512 asmr" 120 ncu --metrics gpu__time_duration.sum --print-summary per-kernel \
      -c 300 "$cli" bench --device cuda --shape 512,512 --preset low-mac-4 --models asmr --repeats 1
  fi
fi
nvidia-smi --query-gpu=memory.used,memory.total --format=csv || true
stamp "done"
printf '%s\n' "${summary[@]}"
exit $status
