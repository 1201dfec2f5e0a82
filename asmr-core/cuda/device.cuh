// What every kernel source includes. The same sources compile with nvcc for the GPU and, with
// ASMR_EMU defined, as plain C++ for the host emulator (src/kernels/cuda/emu.rs), which runs each
// launch thread by thread so the kernels' arithmetic is checked without a GPU. Kernels therefore
// keep to what the emulator can run: grid-stride loops, one thread independent of the others, no
// shared memory, barriers or warp shuffles; cross-thread sums go through atomicAdd.
#pragma once

typedef unsigned int u32;
typedef unsigned long long u64;

#ifdef ASMR_EMU
#include "emu.hpp"
#else
#define KERNEL(name, params) extern "C" __global__ void name params
#define DEVICE __device__ __forceinline__
#endif

// Largest number of outputs the fused output-layer kernels keep in registers.
#define MAX_OUTPUTS 8

DEVICE u64 first_thread() { return (u64)blockIdx.x * blockDim.x + threadIdx.x; }
DEVICE u64 thread_stride() { return (u64)gridDim.x * blockDim.x; }

// Every thread index of the launch, spread over `n` items.
#define FOR_EACH(i, n) for (u64 i = first_thread(); i < (u64)(n); i += thread_stride())
