#!/usr/bin/env bash
# Build asmr-cli with candle's CUDA backend on a machine without a CUDA toolkit: the PyPI wheels of
# CUDA carry nvcc, the headers and the runtime (candle's kernels and cudarc's build script need
# them). On a machine with the toolkit installed, `cargo build --release -p asmr-cli
# --features cuda` with CUDA_HOME set is all it takes.
#
# The toolkit must not be newer than the driver of the GPU machine: candle's kernels are embedded
# as PTX, which a driver JIT-compiles only up to its own PTX ISA (CUDA 13.4's nvcc writes
# `.version 9.4`, which a CUDA 13.0 driver such as 580.x refuses), and cudarc binds the driver API
# of the toolkit's version. CUDA_WHEELS picks the series (default 13.0, the lent machines' driver).
#
# Usage: scripts/build-cuda.sh [--dist | --clippy]
#   (env: CUDA_VENV, CUDA_WHEELS=13.0, CUDA_COMPUTE_CAP=90)
#   --clippy lints the CUDA-only code (asmr-core and asmr-cli with --features cuda, which compiles
#   the kernels in asmr-core/cuda/ with nvcc) and builds asmr-core's library with it instead; it
#   needs only the compiler wheels (CI runs it).
#   --dist also builds asmr-core's test executables and packs them with the CLI, stripped, into
#   dist/asmr-cuda.tar.xz for scripts/gpu-check.sh on a GPU machine (carry `dist` there).
# Output: target/cuda/release/asmr-cli (its own target folder, so the CPU build is not rebuilt).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${CUDA_VENV:-$PWD/.cuda-venv}
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
want=${CUDA_WHEELS:-13.0}
cu=$(echo "$venv"/lib/python3*/site-packages/nvidia/cu13)
if ! "$cu/bin/nvcc" --version 2>/dev/null | grep -q "release $want,"; then
  # cudarc 0.19 accepts CUDA 11.4 to 13.4; cccl provides <nv/target> for cuda_fp16.h.
  "$venv/bin/pip" install -q --upgrade "nvidia-cuda-nvcc==$want.*" "nvidia-cuda-runtime==$want.*" \
    "nvidia-cuda-crt==$want.*" "nvidia-nvvm==$want.*" "nvidia-cuda-cccl==$want.*"
  rm -rf "$venv/link"  # the stub and links follow the toolkit
  cu=$(echo "$venv"/lib/python3*/site-packages/nvidia/cu13)
fi
if [ "${1:-}" != --clippy ] && ! ls "$cu"/lib/libcublas.so.* >/dev/null 2>&1; then
  # What the binary links: cuBLAS (and cuBLASLt), cuRAND, NVRTC (sonames .so.13, .so.10).
  "$venv/bin/pip" install -q --upgrade --no-deps "nvidia-cublas==$want.*" "nvidia-curand==10.*" \
    "nvidia-cuda-nvrtc==$want.*"
  rm -rf "$venv/link"
fi
export PATH="$cu/bin:$PATH" CUDA_HOME="$cu" CUDA_PATH="$cu"
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
# The wheels carry versioned libraries only (libcublas.so.13): the linker wants the plain names.
# libcuda comes with the driver, absent here: a stub with the driver API's symbols and the
# driver's soname (libcuda.so.1) stands in, so the binary loads the real one on a GPU machine.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target/cuda}
# Build scripts of cudarc (driver API version) and candle-kernels (PTX) do not watch nvcc: a
# different toolkit than the last build's means rebuilding them.
stamp="$CARGO_TARGET_DIR/cuda-toolkit"
if [ "$(cat "$stamp" 2>/dev/null)" != "$(nvcc --version | tail -1)" ]; then
  cargo clean --release -p cudarc -p candle-kernels 2>/dev/null || true
  mkdir -p "$CARGO_TARGET_DIR" && nvcc --version | tail -1 > "$stamp"
fi
nvcc --version | tail -1
if [ "${1:-}" = --clippy ]; then
  cargo clippy --release -p asmr-core -p asmr-cli --features asmr-cli/cuda --all-targets \
    -- -D warnings
  # Lints stop before code generation, where generic code is instantiated (an unbounded chain of
  # instantiations fails only there): the library with the CUDA code is built too. It links
  # nothing, so the driver library is not needed.
  exec cargo build --release -p asmr-core --features cuda --lib
fi
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
cargo build --release -p asmr-cli --features cuda
echo "built $CARGO_TARGET_DIR/release/asmr-cli with CUDA (toolkit: $cu)"
if [ "${1:-}" = --dist ]; then
  stage="$CARGO_TARGET_DIR/dist-stage"
  rm -rf "$stage" && mkdir -p "$stage/tests" dist
  cp "$CARGO_TARGET_DIR/release/asmr-cli" "$stage/"
  cargo test --release -p asmr-core --features cuda --no-run --message-format=json 2>/dev/null \
    | python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        print(m["executable"])' | while read -r exe; do cp "$exe" "$stage/tests/"; done
  strip "$stage/asmr-cli" "$stage"/tests/*
  # The image of the GPU check's fit row, where this checkout has the shared data.
  if [ -f ../shared/data/image-cameraman-512.png ]; then
    mkdir -p "$stage/data" && cp ../shared/data/image-cameraman-512.png "$stage/data/"
  fi
  # Every executable embeds the same PTX of candle's kernels: one xz stream with a dictionary
  # larger than an executable stores it about once (the carry limit of the GPU tool is 64 MiB).
  tar -C "$stage" -cf - . | xz -T1 -9e --lzma2=dict=192MiB > dist/asmr-cuda.tar.xz.tmp
  mv dist/asmr-cuda.tar.xz.tmp dist/asmr-cuda.tar.xz
  du -sh "$stage" dist/asmr-cuda.tar.xz
fi
