//! Band-limited resampling: a Blackman-windowed sinc low-pass evaluated at every output instant
//! (32 zero crossings each side), cut off just below the lower of the two Nyquist frequencies, with
//! the taps normalised to unit gain so the edges keep their level.

/// Zero crossings of the sinc on each side of an output instant.
const ZERO_CROSSINGS: f64 = 32.0;
/// Cut-off as a fraction of the lower Nyquist frequency.
const ROLL_OFF: f64 = 0.95;

/// Resample `channels`-interleaved `input` from `from` Hz to `to` Hz.
pub fn resample(input: &[f32], channels: usize, from: u32, to: u32) -> Vec<f32> {
    let frames = input.len() / channels.max(1);
    resample_span(
        input,
        channels,
        from,
        to,
        0..output_frames(frames, from, to),
    )
}

/// Frames `frames` input frames at `from` Hz become at `to` Hz.
pub fn output_frames(frames: usize, from: u32, to: u32) -> usize {
    if from == to {
        return frames;
    }
    ((frames as f64) * to as f64 / from as f64).round().max(1.0) as usize
}

/// Input frames the filter reads on each side of an output instant: decoding may stop this far
/// past the last instant wanted and resample exactly as if it had read everything.
pub fn reach_frames(from: u32, to: u32) -> usize {
    if from == to {
        return 0;
    }
    let ratio = to as f64 / from as f64;
    (ZERO_CROSSINGS / (ROLL_OFF * ratio.min(1.0))).ceil() as usize + 1
}

/// Output frames `span` (at `to` Hz, counted from the input's first frame) of the resampled
/// signal: the same values as `resample(..)[span]`, at the cost of the span alone.
pub fn resample_span(
    input: &[f32],
    channels: usize,
    from: u32,
    to: u32,
    span: std::ops::Range<usize>,
) -> Vec<f32> {
    let frames = input.len() / channels.max(1);
    if from == to || frames == 0 {
        let end = span.end.min(frames);
        let start = span.start.min(end);
        return input[start * channels..end * channels].to_vec();
    }
    let ratio = to as f64 / from as f64;
    // Cut-off in cycles per input sample (input Nyquist = 0.5).
    let fc = 0.5 * ROLL_OFF * ratio.min(1.0);
    let half = ZERO_CROSSINGS / (2.0 * fc);
    let mut out = vec![0f32; span.len() * channels];
    let mut taps: Vec<f64> = Vec::new();
    for (o, j) in span.enumerate() {
        let t = j as f64 / ratio;
        let lo = ((t - half).ceil().max(0.0)) as usize;
        let hi = ((t + half).floor().max(0.0) as usize).min(frames - 1);
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
            out[o * channels + c] = if gain != 0.0 {
                (acc / gain) as f32
            } else {
                0.0
            };
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
    fn a_span_equals_the_same_frames_of_the_whole_and_needs_only_its_reach() {
        for (from, to) in [(44_100, 16_000), (16_000, 44_100), (48_000, 1_000)] {
            let mut x = tone(from, 310.0, from as usize / 4);
            for (i, v) in x.iter_mut().enumerate() {
                *v += 0.3 * ((i * 7919 % 101) as f32 / 101.0 - 0.5);
            }
            let whole = resample(&x, 1, from, to);
            assert_eq!(whole.len(), output_frames(x.len(), from, to));
            let n = whole.len();
            let span = n / 3..n / 3 + n / 5;
            // Input read only up to the reach past the span's last instant.
            let last = ((span.end - 1) as f64 * from as f64 / to as f64).ceil() as usize;
            let input = &x[..(last + reach_frames(from, to)).min(x.len())];
            let part = resample_span(input, 1, from, to, span.clone());
            assert_eq!(part, whole[span], "{from}->{to}");
        }
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
