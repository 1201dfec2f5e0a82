// Gathers of table rows and their backward, a scatter-add parallel over the indices (atomics): the
// deduplicated minibatch forward's final gather, KiloNeRF's grouping, and the dense- and hash-grid
// interpolation (src/kernels/{gather,interp}.rs hold the CPU side).
#include "device.cuh"

// out[i, :] = src[index[i], :]; n = rows of out * width.
KERNEL(gather_rows, (u64 n, u32 width, const u32 *__restrict__ index,
                     const float *__restrict__ src, float *__restrict__ out)) {
  FOR_EACH(i, n) out[i] = src[(u64)index[i / width] * width + i % width];
}

// out[index[i], :] += src[i, :]; out starts at zero.
KERNEL(scatter_add_rows, (u64 n, u32 width, const u32 *__restrict__ index,
                          const float *__restrict__ src, float *__restrict__ out)) {
  FOR_EACH(i, n) atomicAdd(&out[(u64)index[i / width] * width + i % width], src[i]);
}

// Interpolation: output row s (one per sample and group) is sum_k w[s, k] table[rows[s, k], :] over
// `corners` corners; n = output rows * f.
KERNEL(interp_fwd, (u64 n, u32 f, u32 corners, const u32 *__restrict__ rows,
                    const float *__restrict__ weights, const float *__restrict__ table,
                    float *__restrict__ out)) {
  FOR_EACH(i, n) {
    u64 s = i / f;
    u32 col = (u32)(i % f);
    float acc = 0.0f;
    for (u32 k = 0; k < corners; ++k) {
      u64 e = s * corners + k;
      acc += weights[e] * table[(u64)rows[e] * f + col];
    }
    out[i] = acc;
  }
}

// Its backward: grad_table[rows[e], :] += w[e] g[e / corners, :] for every corner e; n = corners in
// all * f; grad_table starts at zero.
KERNEL(interp_bwd, (u64 n, u32 f, u32 corners, const u32 *__restrict__ rows,
                    const float *__restrict__ weights, const float *__restrict__ g,
                    float *__restrict__ out)) {
  FOR_EACH(i, n) {
    u64 e = i / f;
    u32 col = (u32)(i % f);
    atomicAdd(&out[(u64)rows[e] * f + col], weights[e] * g[(e / corners) * f + col]);
  }
}
