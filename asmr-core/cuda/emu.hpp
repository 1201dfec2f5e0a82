// The host side of device.cuh: CUDA's built-ins for a launch run one thread at a time.
#pragma once
#include <cmath>
#include <cstddef>
#include <functional>
#include <map>
#include <string>
#include <utility>

struct dim3 {
  unsigned x, y, z;
};
inline thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;

#define DEVICE inline
#define __restrict__ __restrict

// Threads run one after another, so a plain add is atomic.
inline float atomicAdd(float *a, float v) {
  float old = *a;
  *a = old + v;
  return old;
}

namespace asmr_emu {
using Entry = std::function<void(void **)>;

inline std::map<std::string, Entry> &registry() {
  static std::map<std::string, Entry> r;
  return r;
}

// Calls `f` with its arguments read from cuLaunchKernel-style parameter pointers.
template <class... A, std::size_t... I>
void call_with(void (*f)(A...), void **p, std::index_sequence<I...>) {
  f(*static_cast<A *>(p[I])...);
}

struct Registrar {
  template <class... A> Registrar(const char *name, void (*f)(A...)) {
    registry()[name] = [f](void **p) { call_with(f, p, std::index_sequence_for<A...>{}); };
  }
};
} // namespace asmr_emu

#define KERNEL(name, params)                                                                       \
  static void name params;                                                                         \
  static asmr_emu::Registrar name##_registrar(#name, &name);                                       \
  static void name params
