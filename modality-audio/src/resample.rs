//! Band-limited resampling: a Blackman-windowed sinc low-pass evaluated at every output instant
//! (32 zero crossings each side), cut off just below the lower of the two Nyquist frequencies, with
//! the taps normalised to unit gain so the edges keep their level.

/// Zero crossings of the sinc on each side of an output instant.
const ZERO_CROSSINGS: f64 = 32.0;
/// Cut-off as a fraction of the lower Nyquist frequency.
const ROLL_OFF: f64 = 0.95;

/// Resample `channels`-interleaved `input` from `from` Hz to `to` Hz.
pub fn resample(input: &[f32], channels: usize, from: u32, to: u32) -> Vec<f32> {
    if from == to || input.is_empty() {
        return input.to_vec();
    }
    let frames = input.len() / channels;
    let ratio = to as f64 / from as f64;
    let out_frames = ((frames as f64) * ratio).round().max(1.0) as usize;
    // Cut-off in cycles per input sample (input Nyquist = 0.5).
    let fc = 0.5 * ROLL_OFF * ratio.min(1.0);
    let half = ZERO_CROSSINGS / (2.0 * fc);
    let mut out = vec![0f32; out_frames * channels];
    let mut taps: Vec<f64> = Vec::new();
    for j in 0..out_frames {
        let t = j as f64 / ratio;
        let lo = ((t - half).ceil().max(0.0)) as usize;
        let hi = ((t + half).floor() as usize).min(frames - 1);
        taps.clear();
        let mut gain = 0.0;
        for k in lo..=hi {
            let u = t - k as f64;
            let x = 2.0 * fc * u;
            let sinc = if x.abs() < 1e-12 {
                1.0
            } else {
                (std::f64::consts::PI * x).sin() / (std::f64::consts::PI * x)
            };
            let v = u / half;
            let w = 0.42
                + 0.5 * (std::f64::consts::PI * v).cos()
                + 0.08 * (2.0 * std::f64::consts::PI * v).cos();
            let h = sinc * w;
            gain += h;
            taps.push(h);
        }
        for c in 0..channels {
            let mut acc = 0.0;
            for (i, &h) in taps.iter().enumerate() {
                acc += h * input[(lo + i) * channels + c] as f64;
            }
            out[j * channels + c] = (acc / gain) as f32;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(rate: u32, freq: f64, frames: usize) -> Vec<f32> {
        (0..frames)
            .map(|i| (0.5 * (std::f64::consts::TAU * freq * i as f64 / rate as f64).sin()) as f32)
            .collect()
    }

    #[test]
    fn a_tone_in_band_survives() {
        for (from, to) in [(44_100, 16_000), (16_000, 44_100), (48_000, 32_000)] {
            let x = tone(from, 440.0, from as usize / 2);
            let y = resample(&x, 1, from, to);
            assert_eq!(y.len(), to as usize / 2);
            let want = tone(to, 440.0, y.len());
            // Away from the edges the resampled tone matches the ideal one.
            let margin = to as usize / 20;
            let err = y[margin..y.len() - margin]
                .iter()
                .zip(&want[margin..])
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(err < 2e-3, "{from}->{to}: {err}");
        }
    }

    #[test]
    fn content_above_the_new_nyquist_is_removed() {
        let x = tone(32_000, 7_000.0, 16_000);
        let y = resample(&x, 1, 32_000, 8_000);
        let margin = 400;
        let rms = (y[margin..y.len() - margin]
            .iter()
            .map(|v| v * v)
            .sum::<f32>()
            / (y.len() - 2 * margin) as f32)
            .sqrt();
        assert!(rms < 5e-3, "aliased energy: rms {rms}");
    }

    #[test]
    fn channels_stay_apart() {
        let l = tone(22_050, 300.0, 2205);
        let mut x = Vec::new();
        for v in &l {
            x.extend([*v, 0.0]);
        }
        let y = resample(&x, 2, 22_050, 11_025);
        assert!(y.iter().skip(1).step_by(2).all(|v| v.abs() < 1e-6));
        assert!(y.iter().step_by(2).any(|v| v.abs() > 0.4));
    }
}
