// Elementwise activations with their bias add fused in, their backward passes, and the column sums
// that give a bias its gradient (src/kernels/{sine,relu,gabor}.rs hold the CPU side of each).
#include "device.cuh"

// out = sin(w0 x)
KERNEL(sine_fwd, (u64 n, float w0, const float *__restrict__ x, float *__restrict__ out)) {
  FOR_EACH(i, n) out[i] = sinf(w0 * x[i]);
}

// out = g w0 cos(w0 x)
KERNEL(sine_bwd, (u64 n, float w0, const float *__restrict__ x, const float *__restrict__ g,
                  float *__restrict__ out)) {
  FOR_EACH(i, n) out[i] = g[i] * w0 * cosf(w0 * x[i]);
}

// Rows of h: out[i, j] = sin(w0 (x[i, j] + b[j])); n counts elements.
KERNEL(sine_bias_fwd, (u64 n, u32 h, float w0, const float *__restrict__ x,
                       const float *__restrict__ b, float *__restrict__ out)) {
  FOR_EACH(i, n) out[i] = sinf(w0 * (x[i] + b[i % h]));
}

KERNEL(sine_bias_bwd, (u64 n, u32 h, float w0, const float *__restrict__ x,
                       const float *__restrict__ b, const float *__restrict__ g,
                       float *__restrict__ out)) {
  FOR_EACH(i, n) out[i] = g[i] * w0 * cosf(w0 * (x[i] + b[i % h]));
}

KERNEL(relu_bias_fwd, (u64 n, u32 h, const float *__restrict__ x, const float *__restrict__ b,
                       float *__restrict__ out)) {
  FOR_EACH(i, n) out[i] = fmaxf(x[i] + b[i % h], 0.0f);
}

// The gradient where the ReLU's output is positive (candle's subgradient: 0 at 0).
KERNEL(relu_mask, (u64 n, const float *__restrict__ y, const float *__restrict__ g,
                   float *__restrict__ out)) {
  FOR_EACH(i, n) out[i] = y[i] > 0.0f ? g[i] : 0.0f;
}

// WIRE's complex Gabor of z + bias (src/kernels/gabor.rs): `rows` rows of `cols` inputs (h complex
// values as [re | im], or h real ones when `real`), n = rows * h; the output is [rows, 2h].
DEVICE void gabor_input(const float *z, const float *bias, u64 i, u32 h, u32 cols, u32 real,
                        float *a, float *b) {
  u64 row = i / h;
  u32 j = (u32)(i % h);
  *a = z[row * cols + j] + bias[j];
  *b = real ? 0.0f : z[row * cols + h + j] + bias[h + j];
}

KERNEL(gabor_fwd, (u64 n, u32 h, u32 cols, u32 real, float omega0, float sigma0,
                   const float *__restrict__ z, const float *__restrict__ bias,
                   float *__restrict__ out)) {
  FOR_EACH(i, n) {
    float a, b, s, c;
    gabor_input(z, bias, i, h, cols, real, &a, &b);
    float e = expf(-omega0 * b - sigma0 * sigma0 * (a * a + b * b));
    sincosf(omega0 * a, &s, &c);
    u64 row = i / h;
    u32 j = (u32)(i % h);
    out[row * 2 * h + j] = e * c;
    out[row * 2 * h + h + j] = e * s;
  }
}

KERNEL(gabor_bwd, (u64 n, u32 h, u32 cols, u32 real, float omega0, float sigma0,
                   const float *__restrict__ z, const float *__restrict__ bias,
                   const float *__restrict__ g, float *__restrict__ out)) {
  FOR_EACH(i, n) {
    float a, b, s, c;
    gabor_input(z, bias, i, h, cols, real, &a, &b);
    float sq = sigma0 * sigma0;
    float e = expf(-omega0 * b - sq * (a * a + b * b));
    sincosf(omega0 * a, &s, &c);
    u64 row = i / h;
    u32 j = (u32)(i % h);
    float g_re = g[row * 2 * h + j], g_im = g[row * 2 * h + h + j];
    float p = g_re * c + g_im * s;
    float q = g_im * c - g_re * s;
    out[row * cols + j] = e * (-2.0f * sq * a) * p + e * omega0 * q;
    if (!real) out[row * cols + h + j] = e * (-omega0 - 2.0f * sq * b) * p;
  }
}

// out[j] += sum of x[r, j] over rows r of one chunk; thread t sums chunk t / cols of column t % cols.
// `out` starts at zero; a column gets one atomic add per chunk.
KERNEL(column_sums, (u32 rows, u32 cols, u32 chunk, const float *__restrict__ x,
                     float *__restrict__ out)) {
  u64 chunks = (rows + (u64)chunk - 1) / chunk;
  FOR_EACH(t, chunks * cols) {
    u32 j = (u32)(t % cols);
    u64 r0 = (t / cols) * chunk;
    u64 r1 = r0 + chunk < rows ? r0 + chunk : rows;
    float acc = 0.0f;
    for (u64 r = r0; r < r1; ++r) acc += x[r * cols + j];
    atomicAdd(&out[j], acc);
  }
}

// Adam (src/optim.rs), in place, in two passes per parameter. The moments: mom = beta mom + (1 - beta)
// d, with d = g + wd p (PyTorch's weight decay) for the first moment and d squared for the second.
KERNEL(adam_moment, (u64 n, float beta, u32 square, float wd, const float *__restrict__ g,
                     const float *__restrict__ p, float *__restrict__ mom)) {
  FOR_EACH(i, n) {
    float d = wd != 0.0f ? g[i] + wd * p[i] : g[i];
    if (square) d = d * d;
    mom[i] = mom[i] * beta + d * (1.0f - beta);
  }
}

// The update: p -= step m / (sqrt(v) / sqrt_bc2 + eps), step = lr / (1 - beta1^t).
KERNEL(adam_update, (u64 n, float step, float sqrt_bc2, float eps, const float *__restrict__ m,
                     const float *__restrict__ v, float *__restrict__ p)) {
  FOR_EACH(i, n) p[i] = p[i] - m[i] / (sqrtf(v[i]) / sqrt_bc2 + eps) * step;
}

// The weight average (src/optim.rs, `train.ema`), in place: avg = p + decay (avg - p).
KERNEL(average_update, (u64 n, float decay, const float *__restrict__ p, float *__restrict__ avg)) {
  FOR_EACH(i, n) avg[i] = p[i] + (avg[i] - p[i]) * decay;
}
