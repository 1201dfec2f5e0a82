// The host emulator: every kernel source in one translation unit, and a launcher with
// cuLaunchKernel's calling convention (parameter pointers) that runs the grid thread by thread.
#define ASMR_EMU
#include "level.cu"
#include "pointwise.cu"
#include "scatter.cu"

extern "C" int asmr_emu_launch(const char *name, unsigned grid, unsigned block, void **params) {
  auto it = asmr_emu::registry().find(name);
  if (it == asmr_emu::registry().end()) return 1;
  gridDim = dim3{grid, 1, 1};
  blockDim = dim3{block, 1, 1};
  for (unsigned b = 0; b < grid; ++b) {
    for (unsigned t = 0; t < block; ++t) {
      blockIdx = dim3{b, 0, 0};
      threadIdx = dim3{t, 0, 0};
      it->second(params);
    }
  }
  return 0;
}
