//! A dense sampled signal (docs/method.md, "Signals"): `N_0 x ... x N_{d-1}` samples of `c` channels, raster order,
//! channels last, values in the training range `[0, 1]`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// Everything but the samples: enough for a checkpoint to rebuild and write the signal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalInfo {
    pub modality: String,
    pub shape: Vec<usize>,
    pub channels: usize,
    /// Where it came from (a file path, or `builtin:<name>`).
    pub source: String,
    /// Modality specifics a writer needs (bit depth, sample rate, frame rate...).
    #[serde(default)]
    pub extra: Map<String, Value>,
}

impl SignalInfo {
    pub fn num_samples(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn num_values(&self) -> usize {
        self.num_samples() * self.channels
    }
}

/// The samples of a signal, raster order, channels last, in the training range `[0, 1]`. 8- and
/// 16-bit sources stay in their compact form (`v / 255`, `v / 65535`): a megapixel photo takes a
/// quarter of the memory it would as f32.
#[derive(Debug, Clone, PartialEq)]
pub enum Samples {
    F32(Vec<f32>),
    U8(Vec<u8>),
    U16(Vec<u16>),
}

impl Samples {
    pub fn len(&self) -> usize {
        match self {
            Samples::F32(v) => v.len(),
            Samples::U8(v) => v.len(),
            Samples::U16(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[inline]
    pub fn get(&self, i: usize) -> f32 {
        match self {
            Samples::F32(v) => v[i],
            Samples::U8(v) => v[i] as f32 / 255.0,
            Samples::U16(v) => v[i] as f32 / 65535.0,
        }
    }

    /// Values `range` as f32 (borrowed when stored as f32).
    pub fn slice(&self, range: std::ops::Range<usize>) -> std::borrow::Cow<'_, [f32]> {
        match self {
            Samples::F32(v) => std::borrow::Cow::Borrowed(&v[range]),
            _ => std::borrow::Cow::Owned(range.map(|i| self.get(i)).collect()),
        }
    }

    /// All values as f32.
    pub fn values(&self) -> std::borrow::Cow<'_, [f32]> {
        self.slice(0..self.len())
    }
}

#[derive(Debug, Clone)]
pub struct Signal {
    pub info: SignalInfo,
    pub data: Samples,
    /// Things the user should hear about (an alpha channel dropped...).
    pub notes: Vec<String>,
}

impl Signal {
    pub fn new(info: SignalInfo, data: Vec<f32>) -> Result<Self> {
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            return Err(Error::Invalid(format!("signal value {i} is not finite")));
        }
        Self::from_samples(info, Samples::F32(data))
    }

    pub fn from_samples(info: SignalInfo, data: Samples) -> Result<Self> {
        if info.shape.is_empty() || info.shape.contains(&0) {
            return Err(Error::Invalid(format!(
                "a signal needs non-empty axes, got shape {:?}",
                info.shape
            )));
        }
        if info.channels == 0 {
            return Err(Error::Invalid("a signal needs at least one channel".into()));
        }
        if data.len() != info.num_values() {
            return Err(Error::Invalid(format!(
                "signal of shape {:?} x {} channels needs {} values, got {}",
                info.shape,
                info.channels,
                info.num_values(),
                data.len()
            )));
        }
        Ok(Self {
            info,
            data,
            notes: Vec::new(),
        })
    }
}
