//! Metrics shared by modalities (SPEC §7): PSNR with predictions clamped to the data range, and SSIM
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
    let np = (win * win) as f64;
    let cov_norm = np / (np - 1.0);
    let (c1, c2) = (0.01f64.powi(2), 0.03f64.powi(2));
    let mut total = 0.0;
    for ch in 0..c {
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
        let mut sum = 0.0;
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
                sum += num / den;
            }
        }
        total += sum / ((h - win + 1) * (w - win + 1)) as f64;
    }
    Ok(total / c as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

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
