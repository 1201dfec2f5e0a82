//! A dense sampled signal (SPEC §1): `N_0 x ... x N_{d-1}` samples of `c` channels, raster order,
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

#[derive(Debug, Clone)]
pub struct Signal {
    pub info: SignalInfo,
    pub data: Vec<f32>,
    /// Things the user should hear about (an alpha channel dropped...).
    pub notes: Vec<String>,
}

impl Signal {
    pub fn new(info: SignalInfo, data: Vec<f32>) -> Result<Self> {
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
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            return Err(Error::Invalid(format!("signal value {i} is not finite")));
        }
        Ok(Self {
            info,
            data,
            notes: Vec::new(),
        })
    }
}
