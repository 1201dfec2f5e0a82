//! `spectrogram.png`: original, reconstruction and error spectrograms stacked (low frequencies at
//! the bottom of each panel) on one shared dB colour scale, so the error is read against the
//! signal's own level.

use std::path::Path;

use asmr_core::output::write_bytes_atomic;
use asmr_core::{Error, Result};

const WINDOW: usize = 512;
const HOP: usize = 128;
/// Dynamic range shown below the loudest bin of the original.
const RANGE_DB: f32 = 80.0;
const MAX_COLUMNS: usize = 1600;
const GAP: usize = 4;

/// In-place radix-2 FFT of `re`/`im` (length a power of two).
fn fft(re: &mut [f32], im: &mut [f32]) {
    let n = re.len();
    let mut j = 0;
    for i in 1..n {
        let mut bit = n >> 1;
        while j & bit != 0 {
            j ^= bit;
            bit >>= 1;
        }
        j |= bit;
        if i < j {
            re.swap(i, j);
            im.swap(i, j);
        }
    }
    let mut len = 2;
    while len <= n {
        let ang = -std::f32::consts::TAU / len as f32;
        for start in (0..n).step_by(len) {
            for k in 0..len / 2 {
                let (s, c) = (ang * k as f32).sin_cos();
                let (a, b) = (start + k, start + k + len / 2);
                let tr = re[b] * c - im[b] * s;
                let ti = re[b] * s + im[b] * c;
                re[b] = re[a] - tr;
                im[b] = im[a] - ti;
                re[a] += tr;
                im[a] += ti;
            }
        }
        len <<= 1;
    }
}

/// Magnitudes in dB, `[frames][WINDOW / 2 + 1]`, Hann window.
pub fn stft_db(x: &[f32]) -> Vec<Vec<f32>> {
    let hann: Vec<f32> = (0..WINDOW)
        .map(|i| 0.5 - 0.5 * (std::f32::consts::TAU * i as f32 / WINDOW as f32).cos())
        .collect();
    let frames = if x.len() <= WINDOW {
        1
    } else {
        (x.len() - WINDOW) / HOP + 1
    };
    (0..frames)
        .map(|f| {
            let mut re: Vec<f32> = (0..WINDOW)
                .map(|i| x.get(f * HOP + i).copied().unwrap_or(0.0) * hann[i])
                .collect();
            let mut im = vec![0f32; WINDOW];
            fft(&mut re, &mut im);
            (0..=WINDOW / 2)
                .map(|k| 20.0 * (re[k].hypot(im[k]) + 1e-6).log10())
                .collect()
        })
        .collect()
}

/// A perceptually ordered dark-to-bright colour map (black, purple, red, orange, pale yellow).
fn colour(t: f32) -> [u8; 3] {
    const STOPS: [[f32; 3]; 5] = [
        [0.0, 0.0, 0.02],
        [0.32, 0.07, 0.48],
        [0.75, 0.17, 0.38],
        [0.98, 0.55, 0.22],
        [0.99, 0.99, 0.75],
    ];
    let t = t.clamp(0.0, 1.0) * (STOPS.len() - 1) as f32;
    let i = (t.floor() as usize).min(STOPS.len() - 2);
    let f = t - i as f32;
    let mut out = [0u8; 3];
    for c in 0..3 {
        out[c] = ((STOPS[i][c] * (1.0 - f) + STOPS[i + 1][c] * f) * 255.0).round() as u8;
    }
    out
}

/// Write the three stacked spectrograms of waveforms `original` and `reconstruction` (mono).
pub fn write(original: &[f32], reconstruction: &[f32], path: &Path) -> Result<()> {
    if original.len() != reconstruction.len() || original.is_empty() {
        return Err(Error::Invalid(
            "spectrogram: waveform lengths differ".into(),
        ));
    }
    let error: Vec<f32> = original
        .iter()
        .zip(reconstruction)
        .map(|(a, b)| a - b)
        .collect();
    let panels = [stft_db(original), stft_db(reconstruction), stft_db(&error)];
    let top = panels[0]
        .iter()
        .flatten()
        .fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let bottom = top - RANGE_DB;
    let frames = panels[0].len();
    let step = frames.div_ceil(MAX_COLUMNS).max(1);
    let w = frames.div_ceil(step);
    let bins = WINDOW / 2 + 1;
    let h = 3 * bins + 2 * GAP;
    let mut img = image::RgbImage::from_pixel(w as u32, h as u32, image::Rgb([255, 255, 255]));
    for (p, panel) in panels.iter().enumerate() {
        let y0 = p * (bins + GAP);
        for x in 0..w {
            // Loudest of the frames this column covers.
            let cols = &panel[x * step..((x + 1) * step).min(frames)];
            for k in 0..bins {
                let v = cols.iter().map(|c| c[k]).fold(f32::NEG_INFINITY, f32::max);
                let t = (v - bottom) / (top - bottom);
                let y = y0 + (bins - 1 - k);
                img.put_pixel(x as u32, y as u32, image::Rgb(colour(t)));
            }
        }
    }
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
    write_bytes_atomic(path, &png)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tone_peaks_in_its_bin() {
        let rate = 16_000.0;
        // Bin 64 of 512 at 16 kHz is 2000 Hz.
        let x: Vec<f32> = (0..4096)
            .map(|i| (std::f32::consts::TAU * 2000.0 * i as f32 / rate).sin())
            .collect();
        let s = stft_db(&x);
        for frame in &s {
            let peak = frame
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .unwrap()
                .0;
            assert_eq!(peak, 64);
            assert!(frame[64] - frame[200] > 60.0);
        }
    }

    #[test]
    fn writes_three_panels() {
        let dir = tempfile::tempdir().unwrap();
        let x: Vec<f32> = (0..8000).map(|i| (i as f32 * 0.3).sin() * 0.5).collect();
        let y: Vec<f32> = x.iter().map(|v| v * 0.9).collect();
        let p = dir.path().join("s.png");
        write(&x, &y, &p).unwrap();
        let img = image::open(&p).unwrap();
        assert_eq!(img.height() as usize, 3 * 257 + 2 * GAP);
        assert_eq!(img.width() as usize, (8000 - 512) / 128 + 1);
        assert!(write(&x, &y[..10], &p).is_err());
    }
}
