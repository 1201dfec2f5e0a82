//! Decoding any container and codec symphonia reads into interleaved f32 samples, and turning a
//! recording into a signal (offset, duration, channel mixing).

use std::fs::File;
use std::path::Path;

use asmr_core::{Error, Result, Signal, SignalInfo};
use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;

use crate::options::{AudioOptions, Channels};

/// A decoded recording: interleaved samples in `[-1, 1]`.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub sample_rate: u32,
    pub channels: usize,
    pub samples: Vec<f32>,
    /// Frames the container declares (its header), when it declares any: more than decoded means
    /// the file was cut short.
    pub declared_frames: Option<u64>,
}

impl Decoded {
    pub fn frames(&self) -> usize {
        self.samples.len() / self.channels.max(1)
    }
}

pub fn decode(path: &Path) -> Result<Decoded> {
    decode_until(path, |_| None)
}

/// Decode until `frames_needed(sample_rate)` frames are in (all of them when it says `None`): the
/// first seconds of a long recording cost only those seconds.
pub fn decode_until(path: &Path, frames_needed: impl Fn(u32) -> Option<usize>) -> Result<Decoded> {
    let bad = |m: String| Error::input(path, m);
    let file = File::open(path).map_err(|e| bad(format!("cannot open: {e}")))?;
    let mss = MediaSourceStream::new(Box::new(file), Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    let mut format = symphonia::default::get_probe()
        .probe(
            &hint,
            mss,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(|e| bad(format!("not a readable audio file ({e})")))?;
    let track = format
        .default_track(TrackType::Audio)
        .ok_or_else(|| bad("has no audio track".into()))?;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or_else(|| bad("has no audio track".into()))?
        .clone();
    let track_id = track.id;
    let declared_frames = track.num_frames;
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(&params, &AudioDecoderOptions::default())
        .map_err(|e| bad(format!("unsupported codec ({e})")))?;
    let mut samples: Vec<f32> = Vec::new();
    let mut buf: Vec<f32> = Vec::new();
    let (mut rate, mut channels) = (params.sample_rate.unwrap_or(0), 0usize);
    let mut stopped_early = false;
    loop {
        let packet = match format.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => break,
            // A stream cut short ends like a truncated file: keep what decoded; `load` checks it.
            Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(bad(format!("cannot read the stream ({e})"))),
        };
        if packet.track_id != track_id {
            continue;
        }
        match decoder.decode(&packet) {
            Ok(audio) => {
                rate = audio.spec().rate();
                channels = audio.spec().channels().count();
                buf.resize(audio.samples_interleaved(), 0.0);
                audio.copy_to_slice_interleaved(&mut buf);
                samples.extend_from_slice(&buf);
                if frames_needed(rate)
                    .is_some_and(|n| samples.len() >= n.saturating_mul(channels.max(1)))
                {
                    stopped_early = true;
                    break;
                }
            }
            Err(SymError::DecodeError(_)) => continue,
            Err(e) => return Err(bad(format!("cannot decode ({e})"))),
        }
    }
    if channels == 0 {
        channels = params.channels.as_ref().map_or(0, |c| c.count());
    }
    if channels == 0 {
        return Err(bad("has zero channels".into()));
    }
    if samples.is_empty() {
        return Err(bad("holds no audio samples".into()));
    }
    if rate == 0 {
        return Err(bad("has no sample rate".into()));
    }
    if samples.iter().any(|v| !v.is_finite()) {
        return Err(bad("holds non-finite samples".into()));
    }
    samples.truncate(samples.len() / channels * channels);
    Ok(Decoded {
        sample_rate: rate,
        channels,
        samples,
        // What was not read cannot be missing.
        declared_frames: declared_frames.filter(|_| !stopped_early),
    })
}

impl Decoded {
    /// The declared frame count when the file holds fewer frames than its header declares. The
    /// slack is one AAC priming (2112 frames): lossy codecs' declared and decoded lengths may differ
    /// by their encoder delay.
    pub fn truncated(&self) -> Option<u64> {
        const SLACK: u64 = 2112;
        self.declared_frames
            .filter(|&n| (self.frames() as u64).saturating_add(SLACK) < n)
    }
}

/// A recording as a signal: the span `options` asks for, resampled and mixed as they say.
pub fn load(path: &Path, options: &AudioOptions) -> Result<Signal> {
    let offset = options.offset.unwrap_or(0.0);
    let seconds = options.seconds;
    let keep = options.channels == Some(Channels::Keep);
    let float = options.float;
    let target_rate = options.sample_rate;
    // Decode only as far as the span asked for (plus what the resampler reads past its end).
    let d = decode_until(path, |from| {
        let end = offset + seconds?;
        let to = target_rate.unwrap_or(from);
        Some(
            ((end * from as f64).ceil() as usize)
                .saturating_add(crate::resample::reach_frames(from, to) + 1),
        )
    })?;
    // A file cut short is an error unless the span asked for ends before the cut.
    let mut notes = Vec::new();
    if let Some(declared) = d.truncated() {
        let rate = d.sample_rate as f64;
        let held = d.frames() as f64 / rate;
        let wanted_end = seconds.map(|s| offset + s);
        let message = format!(
            "truncated: its header declares {:.3} s ({declared} frames), the file holds {held:.3} s",
            declared as f64 / rate
        );
        match wanted_end {
            Some(end) if end <= held => notes.push(format!("{}: {message}", path.display())),
            _ => {
                return Err(Error::input(
                    path,
                    format!(
                    "{message}; --offset/--seconds inside the first {held:.3} s fit what it holds"
                ),
                ))
            }
        }
    }
    let from = d.sample_rate;
    let to = target_rate.unwrap_or(from);
    let rate = to as f64;
    let total = crate::resample::output_frames(d.frames(), from, to);
    let start = (offset * rate).round() as usize;
    if start >= total {
        return Err(Error::input(
            path,
            format!(
                "--offset {offset} s is past the end ({:.3} s long)",
                d.frames() as f64 / from as f64
            ),
        ));
    }
    let end = match seconds {
        Some(s) => {
            let wanted = start.saturating_add((s * rate).round() as usize);
            if wanted > total {
                notes.push(format!(
                    "--seconds {s}: the recording holds {:.3} s after the offset; fitting those",
                    (total - start) as f64 / rate
                ));
            }
            wanted.min(total)
        }
        None => total,
    };
    if end <= start {
        return Err(Error::input(path, "the selected span holds no samples"));
    }
    let span = crate::resample::resample_span(&d.samples, d.channels, from, to, start..end);
    let c = d.channels;
    let frames = &span[..];
    let (channels, data): (usize, Vec<f32>) = if keep || c == 1 {
        (
            c,
            frames
                .iter()
                .map(|&x| (x.clamp(-1.0, 1.0) + 1.0) / 2.0)
                .collect(),
        )
    } else {
        let mixed = frames
            .chunks_exact(c)
            .map(|f| (f.iter().sum::<f32>() / c as f32).clamp(-1.0, 1.0))
            .map(|x| (x + 1.0) / 2.0)
            .collect();
        (1, mixed)
    };
    let mut extra = serde_json::Map::new();
    extra.insert("sample_rate".into(), to.into());
    extra.insert("source_channels".into(), c.into());
    extra.insert("float".into(), float.into());
    let mut signal = Signal::new(
        SignalInfo {
            modality: "audio".into(),
            shape: vec![end - start],
            channels,
            source: path.display().to_string(),
            extra,
        },
        data,
    )?;
    signal.notes = notes;
    Ok(signal)
}
