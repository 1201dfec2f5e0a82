// One ASMR level: nearest-upsample the coarse pre-activation z, add the tiled modulation m, apply
// sin(w0 .), and the last level fused with the output layer (src/kernels/{level,output}.rs hold the
// CPU side). Fine point p sits under coarse cell parent[p] and takes modulation row digit[p]; rows
// are h wide.
//
// The backward sums over each coarse cell's children (gradient of z) and over each modulation
// row's points (gradient of m). Both are segment sums over a permutation of the fine points: `item`
// holds (segment, start, end) triples, each a run of `perm` no longer than a chunk, so long
// segments are split over many threads and every thread adds its partial sum with one atomic.
#include "device.cuh"

DEVICE float level_pre(const float *z, const float *m, const u32 *parent, const u32 *digit, u32 p,
                       u32 h, u32 j) {
  return z[(u64)parent[p] * h + j] + m[(u64)digit[p] * h + j];
}

// out[p, j] = sin(w0 (z[parent p, j] + m[digit p, j])); n = points * h.
KERNEL(level_fwd, (u64 n, u32 h, float w0, const float *__restrict__ z,
                   const float *__restrict__ m, const u32 *__restrict__ parent,
                   const u32 *__restrict__ digit, float *__restrict__ out)) {
  FOR_EACH(i, n) {
    u32 p = (u32)(i / h), j = (u32)(i % h);
    out[i] = sinf(w0 * level_pre(z, m, parent, digit, p, h, j));
  }
}

// out[seg, j] += sum over k in [start, end) of the gradient of the pre-activation at (perm[k], j):
// gp(p, j) w0 cos(w0 (z[parent p, j] + m[digit p, j])), where gp is g[p, j] when c == 0 (a plain
// level) or sum_o g[p, o] wb[o, j] for the fused output layer of c outputs (wb rows of h + 1).
KERNEL(level_bwd_segments, (u32 items, u32 h, u32 c, float w0, const float *__restrict__ z,
                            const float *__restrict__ m, const float *__restrict__ wb,
                            const float *__restrict__ g, const u32 *__restrict__ parent,
                            const u32 *__restrict__ digit, const u32 *__restrict__ perm,
                            const u32 *__restrict__ item, float *__restrict__ out)) {
  FOR_EACH(t, (u64)items * h) {
    u32 j = (u32)(t % h);
    const u32 *it = item + 3 * (t / h);
    float acc = 0.0f;
    for (u32 k = it[1]; k < it[2]; ++k) {
      u32 p = perm[k];
      float gp = 0.0f;
      if (c == 0) {
        gp = g[(u64)p * h + j];
      } else {
        for (u32 o = 0; o < c; ++o) gp += g[(u64)p * c + o] * wb[(u64)o * (h + 1) + j];
      }
      acc += gp * w0 * cosf(w0 * level_pre(z, m, parent, digit, p, h, j));
    }
    atomicAdd(&out[(u64)it[0] * h + j], acc);
  }
}

// out[p, o] = sum_j wb[o, j] sin(w0 (z[parent p, j] + m[digit p, j])) + wb[o, h], c <= MAX_OUTPUTS.
KERNEL(level_output_fwd, (u32 n, u32 h, u32 c, float w0, const float *__restrict__ z,
                          const float *__restrict__ m, const float *__restrict__ wb,
                          const u32 *__restrict__ parent, const u32 *__restrict__ digit,
                          float *__restrict__ out)) {
  FOR_EACH(p, n) {
    float acc[MAX_OUTPUTS];
#pragma unroll
    for (u32 o = 0; o < MAX_OUTPUTS; ++o) acc[o] = o < c ? wb[(u64)o * (h + 1) + h] : 0.0f;
    for (u32 j = 0; j < h; ++j) {
      float a = sinf(w0 * level_pre(z, m, parent, digit, (u32)p, h, j));
#pragma unroll
      for (u32 o = 0; o < MAX_OUTPUTS; ++o)
        if (o < c) acc[o] += a * wb[(u64)o * (h + 1) + j];
    }
#pragma unroll
    for (u32 o = 0; o < MAX_OUTPUTS; ++o)
      if (o < c) out[p * c + o] = acc[o];
  }
}

// Gradient of the output layer's [W | b] (c rows of h + 1): gwb[o, j] += sum over the points p of
// one chunk of g[p, o] a(p, j), a = the level's activation for j < h and 1 for the bias (j = h).
// Thread t takes chunk t / (h + 1) and column t % (h + 1); gwb starts at zero.
KERNEL(output_weight_grad, (u32 n, u32 h, u32 c, u32 chunk, float w0, const float *__restrict__ z,
                            const float *__restrict__ m, const float *__restrict__ g,
                            const u32 *__restrict__ parent, const u32 *__restrict__ digit,
                            float *__restrict__ gwb)) {
  u64 chunks = (n + (u64)chunk - 1) / chunk;
  FOR_EACH(t, chunks * (h + 1)) {
    u32 j = (u32)(t % (h + 1));
    u64 p0 = (t / (h + 1)) * chunk;
    u64 p1 = p0 + chunk < n ? p0 + chunk : n;
    float acc[MAX_OUTPUTS];
#pragma unroll
    for (u32 o = 0; o < MAX_OUTPUTS; ++o) acc[o] = 0.0f;
    for (u64 p = p0; p < p1; ++p) {
      float a = j < h ? sinf(w0 * level_pre(z, m, parent, digit, (u32)p, h, j)) : 1.0f;
#pragma unroll
      for (u32 o = 0; o < MAX_OUTPUTS; ++o)
        if (o < c) acc[o] += g[p * c + o] * a;
    }
#pragma unroll
    for (u32 o = 0; o < MAX_OUTPUTS; ++o)
      if (o < c) atomicAdd(&gwb[(u64)o * (h + 1) + j], acc[o]);
  }
}
