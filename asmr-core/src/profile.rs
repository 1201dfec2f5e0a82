//! MAC and parameter accounting (docs/method.md, "Cost"). Each model computes its own figures; this is their shape.

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Profile {
    pub params: usize,
    pub macs_per_sample: f64,
    /// Per-sample MACs by part (`backbone`, `modulators`, `adds`), summing to `macs_per_sample`.
    pub breakdown: Vec<(String, f64)>,
}

impl Profile {
    pub fn new(params: usize, parts: Vec<(&str, f64)>) -> Self {
        Self {
            params,
            macs_per_sample: parts.iter().map(|(_, v)| v).sum(),
            breakdown: parts.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        }
    }

    /// f32 weights.
    pub fn model_bytes(&self) -> usize {
        self.params * 4
    }

    pub fn bits_per_sample(&self, samples: usize) -> f64 {
        self.model_bytes() as f64 * 8.0 / samples as f64
    }
}
