//! `data.*` of the array modality: which axis holds channels, and how values are brought into the
//! training range (and back on output).

use asmr_core::config::{OptionSpec, Section};
use serde::{Deserialize, Serialize};

/// How values are mapped into `[0, 1]` for training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Normalize {
    /// The whole array's minimum and maximum map to 0 and 1.
    #[default]
    Range,
    /// Each channel's own minimum and maximum map to 0 and 1.
    Channel,
    /// Values are used as they are (they must lie in `[0, 1]`).
    None,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArrayOptions {
    /// The axis that holds channels (numpy's numbering; negative counts from the end); `None`:
    /// every axis is a signal axis and there is one channel.
    pub channel_axis: Option<i64>,
    pub normalize: Normalize,
}

impl Section for ArrayOptions {
    const PATH: &'static str = "data";
    const DEFAULTS: &'static str = "\
channel_axis: null # the axis holding channels (-1: the last); null: one channel (--channel-axis)
normalize: range   # range (the array's min..max to 0..1), channel (each channel's), none (--normalize)
";
    const OPTIONS: &'static [OptionSpec] = &[
        OptionSpec::value(
            "channel_axis",
            "channel-axis",
            "The axis holding channels, numpy's numbering (-1: the last); default: none, one channel",
        ),
        OptionSpec::word(
            "normalize",
            "normalize",
            "`range` (min..max to 0..1, default), `channel` (per channel) or `none` (values in [0, 1])",
        ),
    ];
}

impl ArrayOptions {
    /// The channel axis as an index into `ndim` axes, if any.
    pub fn resolve_channel_axis(&self, ndim: usize) -> std::result::Result<Option<usize>, String> {
        let Some(a) = self.channel_axis else {
            return Ok(None);
        };
        let n = ndim as i64;
        let idx = if a < 0 { a + n } else { a };
        if !(0..n).contains(&idx) {
            return Err(format!(
                "channel axis {a} does not exist in an array of {ndim} axes"
            ));
        }
        if ndim < 2 {
            return Err(
                "a 1-D array has no axis left for samples once one holds channels".to_string(),
            );
        }
        Ok(Some(idx as usize))
    }
}
