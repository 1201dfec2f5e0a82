//! Metrics shared by modalities (docs/method.md, "Metrics"): PSNR with predictions clamped to the data range, and SSIM
//! as scikit-image computes it by default.

use std::collections::BTreeMap;

use crate::error::{Error, Result};

/// Named metric values (`psnr`, `ssim`, ...), written to `metrics.json`.
pub type Metrics = BTreeMap<String, f64>;

/// Mean squared error with the prediction clamped to `[lo, hi]`.
pub fn clamped_mse(target: &[f32], pred: &[f32], lo: f32, hi: f32) -> f64 {
    assert_eq!(target.len(), pred.len());
    let sum: f64 = target
        .iter()
        .zip(pred)
        .map(|(&t, &p)| {
            let e = (p.clamp(lo, hi) - t) as f64;
            e * e
        })
        .sum();
    sum / target.len().max(1) as f64
}

/// `10 log10(R^2 / MSE)`; infinite for an exact fit.
pub fn psnr_from_mse(mse: f64, range: f64) -> f64 {
    10.0 * (range * range / mse).log10()
}

/// PSNR on data in `[0, 1]` (range 1), prediction clamped.
pub fn psnr(target: &[f32], pred: &[f32]) -> f64 {
    psnr_from_mse(clamped_mse(target, pred, 0.0, 1.0), 1.0)
}

/// Window side of the SSIM (scikit-image default).
pub const SSIM_WINDOW: usize = 7;

/// Mean SSIM of two `h x w x c` images (channels last) with data range 1: 7x7 uniform window,
/// K1 = 0.01, K2 = 0.03, sample covariance, mean over the windows that fit inside the image,
/// averaged over channels. This is `skimage.metrics.structural_similarity(..., data_range=1,
/// channel_axis=-1)`, whose padded border is cropped before the mean.
pub fn ssim(a: &[f32], b: &[f32], h: usize, w: usize, c: usize) -> Result<f64> {
    let win = SSIM_WINDOW;
    if h < win || w < win {
        return Err(Error::Invalid(format!(
            "SSIM needs at least {win}x{win} samples, the image is {h}x{w}"
        )));
    }
    if a.len() != h * w * c || b.len() != a.len() {
        return Err(Error::Invalid("SSIM: image sizes differ".into()));
    }
    let sums = ssim_window_sums(a, b, h, w, c);
    Ok(sums.iter().sum::<f64>() / ((h - win + 1) * (w - win + 1) * c) as f64)
}

/// Per channel, the sum of the SSIM of every 7x7 window that fits in the `h x w` image.
fn ssim_window_sums(a: &[f32], b: &[f32], h: usize, w: usize, c: usize) -> Vec<f64> {
    let win = SSIM_WINDOW;
    let np = (win * win) as f64;
    let cov_norm = np / (np - 1.0);
    let (c1, c2) = (0.01f64.powi(2), 0.03f64.powi(2));
    let mut out = vec![0f64; c];
    if h < win || w < win {
        return out;
    }
    for (ch, total) in out.iter_mut().enumerate() {
        let get = |img: &[f32], y: usize, x: usize| img[(y * w + x) * c + ch] as f64;
        // Summed-area tables of x, y, x², y², xy.
        let sw = w + 1;
        let mut tables = vec![[0f64; 5]; (h + 1) * sw];
        for y in 0..h {
            let mut row = [0f64; 5];
            for x in 0..w {
                let (p, q) = (get(a, y, x), get(b, y, x));
                let v = [p, q, p * p, q * q, p * q];
                for k in 0..5 {
                    row[k] += v[k];
                    tables[(y + 1) * sw + x + 1][k] = tables[y * sw + x + 1][k] + row[k];
                }
            }
        }
        for y in 0..=h - win {
            for x in 0..=w - win {
                let mut m = [0f64; 5];
                for (k, mk) in m.iter_mut().enumerate() {
                    let s = tables[(y + win) * sw + x + win][k]
                        - tables[y * sw + x + win][k]
                        - tables[(y + win) * sw + x][k]
                        + tables[y * sw + x][k];
                    *mk = s / np;
                }
                let [ux, uy, uxx, uyy, uxy] = m;
                let vx = cov_norm * (uxx - ux * ux);
                let vy = cov_norm * (uyy - uy * uy);
                let vxy = cov_norm * (uxy - ux * uy);
                let num = (2.0 * ux * uy + c1) * (2.0 * vxy + c2);
                let den = (ux * ux + uy * uy + c1) * (vx + vy + c2);
                *total += num / den;
            }
        }
    }
    out
}

/// SSIM of an image fed in bands of rows: each band is processed with the previous band's last
/// six rows prepended, so every 7x7 window is counted exactly once and the result equals
/// [`ssim`] of the whole image (up to float rounding).
pub struct SsimBands {
    w: usize,
    c: usize,
    carry_a: Vec<f32>,
    carry_b: Vec<f32>,
    sums: Vec<f64>,
    rows: usize,
}

impl SsimBands {
    pub fn new(w: usize, c: usize) -> Self {
        Self {
            w,
            c,
            carry_a: Vec::new(),
            carry_b: Vec::new(),
            sums: vec![0.0; c],
            rows: 0,
        }
    }

    /// The next rows of both images (`a` the reference, `b` the prediction).
    pub fn add(&mut self, a: &[f32], b: &[f32]) {
        let row = self.w * self.c;
        let mut ja = std::mem::take(&mut self.carry_a);
        let mut jb = std::mem::take(&mut self.carry_b);
        ja.extend_from_slice(a);
        jb.extend_from_slice(b);
        let h = ja.len() / row;
        for (t, s) in self
            .sums
            .iter_mut()
            .zip(ssim_window_sums(&ja, &jb, h, self.w, self.c))
        {
            *t += s;
        }
        self.rows += a.len() / row;
        let keep = h.min(SSIM_WINDOW - 1);
        self.carry_a = ja[(h - keep) * row..].to_vec();
        self.carry_b = jb[(h - keep) * row..].to_vec();
    }

    /// Mean SSIM, or `None` when the image is smaller than one window.
    pub fn finish(&self) -> Option<f64> {
        let win = SSIM_WINDOW;
        if self.rows < win || self.w < win {
            return None;
        }
        let windows = (self.rows - win + 1) * (self.w - win + 1) * self.c;
        Some(self.sums.iter().sum::<f64>() / windows as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banded_ssim_equals_whole_image_ssim() {
        let (h, w, c) = (29, 13, 3);
        let a: Vec<f32> = (0..h * w * c)
            .map(|i| ((i * 37) % 101) as f32 / 100.0)
            .collect();
        let b: Vec<f32> = a
            .iter()
            .enumerate()
            .map(|(i, v)| (v * 0.8 + ((i * 11) % 7) as f32 / 30.0).min(1.0))
            .collect();
        let whole = ssim(&a, &b, h, w, c).unwrap();
        for band in [1, 3, 6, 7, 10, 29] {
            let mut acc = SsimBands::new(w, c);
            for r0 in (0..h).step_by(band) {
                let r1 = (r0 + band).min(h);
                acc.add(&a[r0 * w * c..r1 * w * c], &b[r0 * w * c..r1 * w * c]);
            }
            let got = acc.finish().unwrap();
            assert!((got - whole).abs() < 1e-12, "band {band}: {got} vs {whole}");
        }
    }

    #[test]
    fn psnr_of_known_error() {
        let t = vec![0.5f32; 100];
        let p = vec![0.6f32; 100];
        // MSE 0.01 -> 20 dB.
        assert!((psnr(&t, &p) - 20.0).abs() < 1e-4);
        // Clamping: a prediction of 2.0 counts as 1.0.
        let t = vec![1.0f32; 4];
        let p = vec![2.0f32; 4];
        assert!(psnr(&t, &p).is_infinite());
    }
}
