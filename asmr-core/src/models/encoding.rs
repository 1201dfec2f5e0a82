//! Coordinate inputs of the baselines: grid indices normalised per axis, and the Fourier-feature
//! (positional) encoding of FFN and KiloNeRF. Both are constants of a batch, computed on the host.

/// `linspace(-r, r, N_a)[x]` per axis for `[n, d]` row-major indices (an axis of one sample maps to 0).
pub fn normalise(shape: &[usize], idx: &[u32], range: f32) -> Vec<f32> {
    let d = shape.len();
    let scale: Vec<f32> = shape
        .iter()
        .map(|&n| if n > 1 { 2.0 / (n - 1) as f32 } else { 0.0 })
        .collect();
    idx.iter()
        .enumerate()
        .map(|(i, &v)| {
            let a = i % d;
            if scale[a] == 0.0 {
                0.0
            } else {
                (v as f32 * scale[a] - 1.0) * range
            }
        })
        .collect()
}

/// Width of [`fourier_features`] for `d` inputs and `k` frequencies.
pub fn fourier_width(d: usize, k: usize) -> usize {
    d * (1 + 2 * k)
}

/// `[x, sin(2^0 pi x), cos(2^0 pi x), ..., sin(2^(k-1) pi x), cos(2^(k-1) pi x)]` of every row of
/// `x` (`[n, d]` row-major): the `d` inputs first, then sines and cosines frequency by frequency.
pub fn fourier_features(x: &[f32], d: usize, k: usize) -> Vec<f32> {
    let width = fourier_width(d, k);
    let mut out = Vec::with_capacity(x.len() / d.max(1) * width);
    for row in x.chunks_exact(d) {
        out.extend_from_slice(row);
        for f in 0..k {
            let scale = (1u64 << f) as f64 * std::f64::consts::PI;
            for &v in row {
                let (s, c) = (scale * v as f64).sin_cos();
                out.push(s as f32);
                out.push(c as f32);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalise_spans_the_range() {
        let x = normalise(&[5, 1], &[0, 0, 4, 0, 2, 0], 1.0);
        assert_eq!(x, vec![-1.0, 0.0, 1.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn features_by_hand() {
        let f = fourier_features(&[0.25, -0.5], 2, 2);
        let pi = std::f64::consts::PI;
        let want = [
            0.25,
            -0.5,
            (pi * 0.25).sin(),
            (pi * 0.25).cos(),
            (-pi * 0.5).sin(),
            (-pi * 0.5).cos(),
            (2.0 * pi * 0.25).sin(),
            (2.0 * pi * 0.25).cos(),
            (-2.0 * pi * 0.5).sin(),
            (-2.0 * pi * 0.5).cos(),
        ];
        assert_eq!(f.len(), fourier_width(2, 2));
        for (a, b) in f.iter().zip(want) {
            assert!((*a as f64 - b).abs() < 1e-6, "{f:?}");
        }
    }
}
