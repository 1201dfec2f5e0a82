// Gathers of table rows and their backward, a scatter-add parallel over the indices (atomics): the
// deduplicated minibatch forward's final gather, KiloNeRF's grouping, and the dense- and hash-grid
// interpolation with its corner plan (src/kernels/{gather,interp}.rs and src/models/lattice.rs hold
// the CPU side).
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

// The interpolation plan of a lattice encoding (src/models/lattice.rs): thread t takes sample
// t / levels at level t % levels and writes its 2^d corners' table rows and weights at entries
// t 2^d ... (t + 1) 2^d - 1, the order of the host plan; n = samples * levels. `scale` holds the
// d per-axis units, then one factor per level: the sample's lattice position on axis a is
// (x_a unit_a) scale_l. `level` holds 2 + d words per level: its first table row, whether it is
// hashed, and its vertices per axis. The arithmetic is the host's, operation for operation.
KERNEL(lattice_corners, (u64 n, u32 d, u32 levels, u32 log2_table, const u32 *__restrict__ idx,
                         const float *__restrict__ scale, const u32 *__restrict__ level,
                         u32 *__restrict__ rows, float *__restrict__ weights)) {
  const u32 primes[8] = {1u,          2654435761u, 805459861u,  3674653429u,
                         2097192037u, 1434869437u, 2165219737u, 3624608617u};
  FOR_EACH(t, n) {
    u64 s = t / levels;
    u32 l = (u32)(t % levels);
    const u32 *info = level + (u64)l * (2 + d);
    const u32 *verts = info + 2;
    u32 base[8];
    float frac[8];
    for (u32 a = 0; a < d; ++a) {
      float top = (float)(verts[a] - 1);
      float x = fminf(fmaxf((float)idx[s * d + a] * scale[a] * scale[d + l], 0.0f), top);
      u32 i = (u32)floorf(x);
      if (i > verts[a] - 2) i = verts[a] - 2;
      base[a] = i;
      frac[a] = x - (float)i;
    }
    u32 corners = 1u << d;
    for (u32 c = 0; c < corners; ++c) {
      float w = 1.0f;
      u64 dense = 0;
      u32 hash = 0;
      for (u32 a = 0; a < d; ++a) {
        u32 up = (c >> a) & 1u;
        u32 v = base[a] + up;
        w *= up ? frac[a] : 1.0f - frac[a];
        dense = dense * verts[a] + v;
        hash ^= v * primes[a];
      }
      u32 local = info[1] ? hash & ((1u << log2_table) - 1u) : (u32)dense;
      rows[t * corners + c] = info[0] + local;
      weights[t * corners + c] = w;
    }
  }
}
