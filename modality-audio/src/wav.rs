//! WAV output, written band by band: 16-bit PCM, or 32-bit float when the signal asks for it.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use asmr_core::registry::BandWriter;
use asmr_core::{Error, Result, SignalInfo};

use crate::to_wave;

pub struct WavBands {
    out: Option<BufWriter<File>>,
    float: bool,
    expected: usize,
    written: usize,
    tmp: PathBuf,
    path: PathBuf,
}

impl WavBands {
    pub fn create(info: &SignalInfo, path: &Path) -> Result<Self> {
        if info.shape.len() != 1 || info.channels == 0 || info.channels > u16::MAX as usize {
            return Err(Error::Invalid(format!(
                "cannot write shape {:?} x {} as audio",
                info.shape, info.channels
            )));
        }
        let rate = info
            .extra
            .get("sample_rate")
            .and_then(|v| v.as_u64())
            .filter(|&r| r > 0 && r <= u32::MAX as u64)
            .ok_or_else(|| Error::Invalid("audio signal without a sample rate".into()))?
            as u32;
        let float = info.extra.get("float").and_then(|v| v.as_bool()) == Some(true);
        let bytes_per = if float { 4u32 } else { 2 };
        let channels = info.channels as u16;
        let data_len = info.num_values() as u64 * bytes_per as u64;
        if data_len + 36 > u32::MAX as u64 {
            return Err(Error::Invalid("too long for a WAV file (4 GiB)".into()));
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
        let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let mut out = BufWriter::new(file);
        let mut h = Vec::with_capacity(44);
        h.extend_from_slice(b"RIFF");
        h.extend_from_slice(&(36 + data_len as u32).to_le_bytes());
        h.extend_from_slice(b"WAVEfmt ");
        h.extend_from_slice(&16u32.to_le_bytes());
        h.extend_from_slice(&(if float { 3u16 } else { 1 }).to_le_bytes());
        h.extend_from_slice(&channels.to_le_bytes());
        h.extend_from_slice(&rate.to_le_bytes());
        h.extend_from_slice(&(rate * bytes_per * channels as u32).to_le_bytes());
        h.extend_from_slice(&(bytes_per as u16 * channels).to_le_bytes());
        h.extend_from_slice(&(bytes_per as u16 * 8).to_le_bytes());
        h.extend_from_slice(b"data");
        h.extend_from_slice(&(data_len as u32).to_le_bytes());
        if let Err(e) = out.write_all(&h) {
            let _ = std::fs::remove_file(&tmp);
            return Err(Error::io(&tmp, e));
        }
        Ok(Self {
            out: Some(out),
            float,
            expected: info.num_values(),
            written: 0,
            tmp,
            path: path.to_path_buf(),
        })
    }
}

impl BandWriter for WavBands {
    fn write_band(&mut self, values: &[f32]) -> Result<()> {
        self.written += values.len();
        if self.written > self.expected {
            return Err(Error::Invalid(
                "more samples than the recording holds".into(),
            ));
        }
        let out = self.out.as_mut().expect("open until finish");
        let bytes: Vec<u8> = if self.float {
            values
                .iter()
                .flat_map(|&v| to_wave(v.clamp(0.0, 1.0)).to_le_bytes())
                .collect()
        } else {
            values
                .iter()
                .flat_map(|&v| {
                    ((to_wave(v.clamp(0.0, 1.0)) * 32767.0).round() as i16).to_le_bytes()
                })
                .collect()
        };
        out.write_all(&bytes).map_err(|e| Error::io(&self.tmp, e))
    }

    fn finish(mut self: Box<Self>) -> Result<()> {
        let out = self.out.take().expect("open until finish");
        let result = if self.written != self.expected {
            Err(Error::Invalid(format!(
                "{}: {} of {} samples written",
                self.path.display(),
                self.written,
                self.expected
            )))
        } else {
            out.into_inner()
                .map_err(|e| Error::io(&self.tmp, e.into_error()))
                .and_then(|f| f.sync_all().map_err(|e| Error::io(&self.tmp, e)))
                .and_then(|_| {
                    std::fs::rename(&self.tmp, &self.path).map_err(|e| Error::io(&self.path, e))
                })
        };
        if result.is_err() {
            let _ = std::fs::remove_file(&self.tmp);
        }
        result
    }
}

impl Drop for WavBands {
    fn drop(&mut self) {
        if self.out.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}
