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
use asmr_core::registry::{BandMetrics, BandWriter, Modality};
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
        default_preset: "audio-auto",
        example_preset: "audio-demo",
        output_file: "reconstruction.wav",
        config: SectionSpec::of::<AudioOptions>(),
        load: |path, data: &Value| load(path, &parse::<AudioOptions>(data)?),
        example,
        metrics,
        writer,
        extras: Some(extras),
        summary,
    }
}

/// `PSNR 48.20 dB, SNR 30.12 dB`.
fn summary(m: &Metrics) -> String {
    let get = |k: &str| m.get(k).copied().unwrap_or(f64::NAN);
    format!("PSNR {:.2} dB, SNR {:.2} dB", get("psnr"), get("snr"))
}

/// `spectrogram.png` of the channel-mixed waveforms.
fn extras(target: &Signal, prediction: &[f32], dir: &std::path::Path) -> Result<Vec<String>> {
    let c = target.info.channels;
    let target = target.data.values();
    let mono = |v: &[f32]| -> Vec<f32> {
        v.chunks_exact(c)
            .map(|f| f.iter().map(|&x| to_wave(x.clamp(0.0, 1.0))).sum::<f32>() / c as f32)
            .collect()
    };
    let name = "spectrogram.png";
    spectrogram::write(&mono(&target), &mono(prediction), &dir.join(name))?;
    Ok(vec![name.to_string()])
}

asmr_core::preset!("audio", "audio-auto", "default for recordings");
asmr_core::preset!(
    "audio",
    "audio-demo",
    "the built-in example (tones and a chirp, 1 s at 16 kHz)"
);
asmr_core::preset!(
    "audio",
    "audio",
    "the paper's recipe: the first 2 s at 16 kHz"
);
