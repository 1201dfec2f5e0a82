#!/usr/bin/env bash
# Build asmr-cli with candle's CUDA backend on a machine without a CUDA toolkit: the PyPI wheels of
# CUDA 13.4 carry nvcc, the headers and the runtime (candle's kernels and cudarc's build script
# need them). On a machine with the toolkit installed, `cargo build --release -p asmr-cli
# --features cuda` with CUDA_HOME set is all it takes.
#
# Usage: scripts/build-cuda.sh [--dist]   (env: CUDA_VENV, CUDA_COMPUTE_CAP=90)
#   --dist also builds asmr-core's test executables and copies them with the CLI, stripped, into
#   dist/cuda/ for scripts/gpu-check.sh on a GPU machine (carry `dist/cuda` there).
# Output: target/cuda/release/asmr-cli (its own target folder, so the CPU build is not rebuilt).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${CUDA_VENV:-$PWD/.cuda-venv}
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if [ ! -x "$venv"/lib/python3*/site-packages/nvidia/cu13/bin/nvcc ]; then
  # cudarc 0.19 accepts CUDA up to 13.4; cccl provides <nv/target> for cuda_fp16.h.
  "$venv/bin/pip" install -q "nvidia-cuda-nvcc==13.4.*" "nvidia-cuda-runtime==13.4.*" \
    "nvidia-cuda-crt==13.4.*" "nvidia-nvvm==13.4.*" "nvidia-cuda-cccl==13.3.*"
fi
if [ ! -e "$venv"/lib/python3*/site-packages/nvidia/cu13/lib/libcublas.so.13 ]; then
  # What the binary links: cuBLAS (and cuBLASLt), cuRAND, NVRTC.
  "$venv/bin/pip" install -q --no-deps "nvidia-cublas==13.*" "nvidia-curand==10.*" \
    "nvidia-cuda-nvrtc==13.4.*"
fi
cu=$(echo "$venv"/lib/python3*/site-packages/nvidia/cu13)
export PATH="$cu/bin:$PATH" CUDA_HOME="$cu" CUDA_PATH="$cu"
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
# The wheels carry versioned libraries only (libcublas.so.13): the linker wants the plain names.
# libcuda comes with the driver, absent here: a stub with the driver API's symbols and the
# driver's soname (libcuda.so.1) stands in, so the binary loads the real one on a GPU machine.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target/cuda}
link="$venv/link"
mkdir -p "$link"
for l in "$cu"/lib/lib*.so.*; do
  base=$(basename "$l"); ln -sf "$l" "$link/${base%%.so.*}.so"
done
if [ ! -e "$link/libcuda.so" ]; then
  cargo build --release -p asmr-cli --features cuda 2>/dev/null || true  # builds cudarc's rlib
  nm -u "$CARGO_TARGET_DIR"/release/deps/libcudarc-*.rlib 2>/dev/null \
    | awk '$1 == "U" && $2 ~ /^cu[A-Z]/ {print "void " $2 "(void) {}"}' | sort -u > "$link/cuda_stub.c"
  cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$link/libcuda.so" "$link/cuda_stub.c"
fi
export LIBRARY_PATH="$link:$cu/lib:${LIBRARY_PATH:-}"
nvcc --version | tail -1
cargo build --release -p asmr-cli --features cuda
echo "built $CARGO_TARGET_DIR/release/asmr-cli with CUDA (toolkit: $cu)"
if [ "${1:-}" = --dist ]; then
  rm -rf dist/cuda && mkdir -p dist/cuda/tests
  cp "$CARGO_TARGET_DIR/release/asmr-cli" dist/cuda/
  cargo test --release -p asmr-core --features cuda --no-run --message-format=json 2>/dev/null \
    | python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        print(m["executable"])' | while read -r exe; do cp "$exe" dist/cuda/tests/; done
  strip dist/cuda/asmr-cli dist/cuda/tests/* 2>/dev/null || true
  du -sh dist/cuda
fi
