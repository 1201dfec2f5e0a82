//! `spectrogram.png`: original, reconstruction and error spectrograms of every channel, with time
//! and frequency axes, on one shared dB colour scale (its bar beside them), so the error is read
//! against the signal's own level.

use std::path::Path;

use asmr_core::figure::{magma, write_panels, Axes, ColourBar, Panel, Raster};
use asmr_core::{Error, Result};

const WINDOW: usize = 512;
const HOP: usize = 128;
/// Dynamic range shown below the loudest bin of the original.
const RANGE_DB: f32 = 80.0;
const MAX_COLUMNS: usize = 1600;

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

/// The spectrogram of `x` as a panel: time (s) across, frequency (kHz) up, colours on the dB
/// scale `bottom..top`.
fn panel(x: &[f32], rate: f64, title: String, bottom: f32, top: f32) -> Panel {
    let frames_db = stft_db(x);
    let frames = frames_db.len();
    let step = frames.div_ceil(MAX_COLUMNS).max(1);
    let w = frames.div_ceil(step);
    let bins = WINDOW / 2 + 1;
    let mut values = vec![0f32; w * bins];
    for col in 0..w {
        // Loudest of the frames this column covers.
        let cols = &frames_db[col * step..((col + 1) * step).min(frames)];
        for k in 0..bins {
            let v = cols.iter().map(|c| c[k]).fold(f32::NEG_INFINITY, f32::max);
            values[(bins - 1 - k) * w + col] = (v - bottom) / (top - bottom);
        }
    }
    Panel {
        title,
        raster: Raster::from_values(w, bins, &values, magma),
        axes: Some(Axes {
            x: (0.0, x.len() as f64 / rate),
            x_desc: "time (s)".into(),
            y: (0.0, rate / 2000.0),
            y_desc: "frequency (kHz)".into(),
        }),
    }
}

/// Original, reconstruction and error spectrograms of every channel on one dB scale (0 dB: the
/// loudest bin of the originals), and that scale.
pub struct Spectrograms {
    /// Row by row: originals, reconstructions, errors; a column per channel.
    pub panels: Vec<Panel>,
    pub channels: usize,
    pub bottom: f32,
    pub top: f32,
}

/// The waveforms of a fit: each channel's (or the mix's) original and reconstruction, their
/// sample rate and the channels' names.
pub struct Waveforms {
    pub pairs: Vec<(Vec<f32>, Vec<f32>)>,
    pub rate: f64,
    pub names: Vec<String>,
}

pub fn spectrograms(w: &Waveforms) -> Result<Spectrograms> {
    let (channels, rate, names) = (&w.pairs, w.rate, &w.names);
    if channels.is_empty()
        || channels
            .iter()
            .any(|(a, b)| a.len() != b.len() || a.is_empty())
    {
        return Err(Error::Invalid(
            "spectrogram: waveform lengths differ".into(),
        ));
    }
    let top = channels
        .iter()
        .flat_map(|(a, _)| stft_db(a).into_iter().flatten())
        .fold(f32::NEG_INFINITY, f32::max);
    let bottom = top - RANGE_DB;
    let mut rows: [Vec<Panel>; 3] = Default::default();
    for ((original, reconstruction), name) in channels.iter().zip(names) {
        let error: Vec<f32> = original
            .iter()
            .zip(reconstruction)
            .map(|(a, b)| a - b)
            .collect();
        rows[0].push(panel(
            original,
            rate,
            format!("original, {name}"),
            bottom,
            top,
        ));
        rows[1].push(panel(
            reconstruction,
            rate,
            format!("reconstruction, {name}"),
            bottom,
            top,
        ));
        rows[2].push(panel(
            &error,
            rate,
            format!("error (original - reconstruction), {name}"),
            bottom,
            top,
        ));
    }
    Ok(Spectrograms {
        panels: rows.into_iter().flatten().collect(),
        channels: channels.len(),
        bottom,
        top,
    })
}

/// The colour bar of a set of spectrograms (dB relative to the loudest bin of the originals).
pub fn bar(s: &Spectrograms) -> ColourBar<'static> {
    ColourBar {
        label: "level (dB below the loudest bin of the original)",
        min: (s.bottom - s.top) as f64,
        max: 0.0,
        map: magma,
    }
}

/// Write `spectrogram.png`: a column per channel, a row each for the original, the
/// reconstruction and the error, on one dB scale with its colour bar.
pub fn write(w: &Waveforms, path: &Path) -> Result<()> {
    let s = spectrograms(w)?;
    let cell = if s.channels == 1 {
        (900, 300)
    } else {
        (620, 300)
    };
    write_panels(
        path,
        "spectrograms (Hann window of 512 samples, hop 128)",
        &s.panels,
        s.channels,
        cell,
        Some(&bar(&s)),
    )
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
    fn writes_labelled_panels_for_every_channel() {
        let dir = tempfile::tempdir().unwrap();
        let x: Vec<f32> = (0..8000).map(|i| (i as f32 * 0.3).sin() * 0.5).collect();
        let y: Vec<f32> = x.iter().map(|v| v * 0.9).collect();
        let p = dir.path().join("s.png");
        let names = vec!["channel 1".to_string(), "channel 2".to_string()];
        let both = Waveforms {
            pairs: vec![(x.clone(), y.clone()), (y.clone(), x.clone())],
            rate: 16000.0,
            names: names.clone(),
        };
        let s = spectrograms(&both).unwrap();
        assert_eq!(s.panels.len(), 6);
        assert!(s.panels[0].title.contains("original, channel 1"));
        assert!(s.panels[5].title.contains("error") && s.panels[5].title.contains("channel 2"));
        let axes = s.panels[0].axes.as_ref().unwrap();
        assert_eq!(axes.x, (0.0, 0.5));
        assert_eq!(axes.y, (0.0, 8.0));
        let one = |pair: (Vec<f32>, Vec<f32>)| Waveforms {
            pairs: vec![pair],
            rate: 16000.0,
            names: names[..1].to_vec(),
        };
        write(&one((x.clone(), y.clone())), &p).unwrap();
        let img = image::open(&p).unwrap();
        assert!(
            img.width() > 800 && img.height() > 800,
            "{:?}",
            (img.width(), img.height())
        );
        assert!(write(&one((x, y[..10].to_vec())), &p).is_err());
    }
}
