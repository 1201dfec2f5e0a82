//! The `audio` modality: recordings decoded with symphonia (WAV, FLAC, MP3, Ogg Vorbis, AAC/ALAC
//! in MP4...) as 1-D signals `(t)`, waveform `[-1, 1]` mapped to `[0, 1]` by `(x + 1) / 2` for
//! training (docs/method.md, "Signals") and back for metrics and output; PSNR (range 2) and SNR; WAV output.

mod decode;
mod example;
pub mod options;
pub mod resample;
pub mod spectrogram;
mod wav;

use asmr_core::config::{parse, SectionSpec, Value};
use asmr_core::metrics::{psnr_from_mse, Metrics};
use asmr_core::registry::{BandMetrics, BandWriter, Modality, Preview};
use asmr_core::{Error, Result, Signal, SignalInfo};

pub use decode::{decode, load, Decoded};
pub use example::example;
pub use options::{AudioOptions, Channels};
pub use wav::WavBands;

/// Waveform value of a training-range value.
#[inline]
pub fn to_wave(v: f32) -> f32 {
    v * 2.0 - 1.0
}

/// PSNR (data range 2 on `[-1, 1]`, prediction clamped) and SNR in dB, accumulated band by band.
pub struct AudioMetrics<'a> {
    target: &'a Signal,
    error: f64,
    energy: f64,
    count: usize,
}

impl BandMetrics for AudioMetrics<'_> {
    fn add(&mut self, rows: std::ops::Range<usize>, values: &[f32]) -> Result<()> {
        let c = self.target.info.channels;
        let range = rows.start * c..rows.end * c;
        if range.end > self.target.data.len() || range.len() != values.len() {
            return Err(Error::Invalid("band does not match the recording".into()));
        }
        for (i, &p) in range.zip(values) {
            let x = to_wave(self.target.data.get(i)) as f64;
            let e = to_wave(p.clamp(0.0, 1.0)) as f64 - x;
            self.error += e * e;
            self.energy += x * x;
        }
        self.count += values.len();
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<Metrics> {
        let mse = self.error / self.count.max(1) as f64;
        let mut m = Metrics::new();
        m.insert("psnr".into(), psnr_from_mse(mse, 2.0));
        m.insert("snr".into(), 10.0 * (self.energy / self.error).log10());
        Ok(m)
    }
}

fn metrics(target: &Signal) -> Result<Box<dyn BandMetrics + '_>> {
    Ok(Box::new(AudioMetrics {
        target,
        error: 0.0,
        energy: 0.0,
        count: 0,
    }))
}

fn writer(info: &SignalInfo, path: &std::path::Path) -> Result<Box<dyn BandWriter>> {
    Ok(Box::new(WavBands::create(info, path)?))
}

asmr_core::inventory::submit! {
    Modality {
        name: "audio",
        description: "recordings (WAV, FLAC, MP3, Ogg Vorbis, AAC/ALAC in MP4) as 1-D signals; PSNR, SNR; WAV output",
        default_preset: "audio",
        example_preset: "audio-demo",
        output_file: "reconstruction.wav",
        extensions: &["wav", "flac", "mp3", "ogg", "oga", "m4a", "aac"],
        config: SectionSpec::of::<AudioOptions>(),
        load: |path, data: &Value| load(path, &parse::<AudioOptions>(data)?),
        example,
        metrics,
        writer,
        extras: Some(extras),
        preview: Some(preview),
        summary,
    }
}

/// `PSNR 48.20 dB, SNR 30.12 dB`.
fn summary(m: &Metrics) -> String {
    let get = |k: &str| m.get(k).copied().unwrap_or(f64::NAN);
    format!("PSNR {:.2} dB, SNR {:.2} dB", get("psnr"), get("snr"))
}

/// Each channel's original and reconstructed waveform, the sample rate, and the channels' names
/// (`mono` for one channel, `channel 1`, `channel 2`... otherwise).
fn waveforms(target: &Signal, prediction: &[f32]) -> spectrogram::Waveforms {
    let c = target.info.channels;
    let values = target.data.values();
    let channel = |v: &[f32], k: usize| -> Vec<f32> {
        v.iter()
            .skip(k)
            .step_by(c)
            .map(|&x| to_wave(x.clamp(0.0, 1.0)))
            .collect()
    };
    let pairs = (0..c)
        .map(|k| (channel(&values, k), channel(prediction, k)))
        .collect();
    let names = if c == 1 {
        let mixed = target
            .info
            .extra
            .get("source_channels")
            .and_then(|v| v.as_u64())
            .is_some_and(|n| n > 1);
        vec![if mixed {
            "channels mixed to mono"
        } else {
            "mono"
        }
        .to_string()]
    } else {
        (1..=c).map(|k| format!("channel {k}")).collect()
    };
    let rate = target
        .info
        .extra
        .get("sample_rate")
        .and_then(|v| v.as_f64())
        .unwrap_or(16000.0);
    spectrogram::Waveforms { pairs, rate, names }
}

/// `spectrogram.png`: every channel's original, reconstruction and error.
fn extras(target: &Signal, prediction: &[f32], dir: &std::path::Path) -> Result<Vec<String>> {
    let name = "spectrogram.png";
    spectrogram::write(&waveforms(target, prediction), &dir.join(name))?;
    Ok(vec![name.to_string()])
}

/// The first channel's reconstruction and error spectrograms for `summary.png`.
fn preview(target: &Signal, prediction: &[f32]) -> Result<Preview> {
    let mut w = waveforms(target, prediction);
    w.pairs.truncate(1);
    w.names.truncate(1);
    let s = spectrogram::spectrograms(&w)?;
    let bar = spectrogram::bar(&s);
    let mut panels = s.panels.into_iter();
    let (_, reconstruction, error) = (panels.next(), panels.next(), panels.next());
    Ok(Preview {
        reconstruction: reconstruction.ok_or_else(|| Error::Invalid("no spectrogram".into()))?,
        error: error.ok_or_else(|| Error::Invalid("no spectrogram".into()))?,
        error_label: bar.label.to_string(),
        error_min: bar.min,
        error_max: bar.max,
        error_map: bar.map,
    })
}

asmr_core::preset!(
    "audio",
    "audio",
    "default for recordings (the whole recording)"
);
asmr_core::preset!(
    "audio",
    "audio-demo",
    "the built-in example (tones and a chirp, 1 s at 16 kHz)"
);
asmr_core::preset!(
    "audio",
    "paper-audio",
    "the paper's: the first 2 s at 16 kHz"
);

asmr_core::inventory::submit! {
    asmr_core::Experiment {
        name: "audio",
        modality: "audio",
        description: "recordings (first 2 s at 16 kHz): ASMR against SIREN",
        data: &["*.wav", "*.flac", "*.mp3", "*.ogg"],
        expects: "audio recordings (WAV, FLAC, MP3 or Ogg files)",
        recipes: &[("asmr", "paper-audio"), ("siren", "paper-audio")],
        seeds: &[1, 2, 3],
    }
}
