//! `data.*` of the audio modality: which span of a recording is fitted, at which rate, with which
//! channels, and how the reconstruction is written.

use asmr_core::config::{OptionSpec, Section};
use asmr_core::Result;
use serde::{Deserialize, Serialize};

/// The sample rates `--sample-rate` takes (the highest is the highest any common format stores).
pub const MIN_RATE: u32 = 100;
pub const MAX_RATE: u32 = 768_000;

/// What becomes of a recording's channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channels {
    /// Averaged to one (the paper's setting).
    #[default]
    Mix,
    /// Each channel an output of the network.
    Keep,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioOptions {
    /// Seconds to skip at the start.
    pub offset: Option<f64>,
    /// Seconds to keep.
    pub seconds: Option<f64>,
    /// Resample to this rate (Hz), band-limited, before cutting.
    pub sample_rate: Option<u32>,
    pub channels: Option<Channels>,
    /// Write the reconstruction as 32-bit float WAV (16-bit PCM otherwise).
    pub float: bool,
}

impl Section for AudioOptions {
    const PATH: &'static str = "data";
    const DEFAULTS: &'static str = "\
offset: null       # seconds to skip at the start (--offset)
seconds: null      # seconds to keep (--seconds); null: to the end
sample_rate: null  # resample to this rate in Hz, band-limited (--sample-rate); null: the file's
channels: null     # mix (default) to mono, or keep each channel as an output (--channels)
float: false       # write the reconstruction as 32-bit float WAV (--float)
";
    const OPTIONS: &'static [OptionSpec] = &[
        OptionSpec::value(
            "offset",
            "offset",
            "Start this many seconds into the recording",
        ),
        OptionSpec::value("seconds", "seconds", "Keep this many seconds"),
        OptionSpec::value(
            "sample_rate",
            "sample-rate",
            "Resample to this rate (Hz), band-limited",
        ),
        OptionSpec::word(
            "channels",
            "channels",
            "`mix` channels to mono (default) or `keep` each as an output",
        ),
        OptionSpec::switch(
            "float",
            "float",
            "Write the reconstruction as 32-bit float WAV (16-bit PCM otherwise)",
        ),
    ];

    fn validate(&self) -> Result<()> {
        for (key, v) in [("offset", self.offset), ("seconds", self.seconds)] {
            if v.is_some_and(|x| !(x.is_finite() && x >= 0.0)) {
                return Err(Self::bad(key, "expected seconds >= 0"));
            }
        }
        if self.seconds == Some(0.0) {
            return Err(Self::bad("seconds", "must be more than 0"));
        }
        if let Some(r) = self.sample_rate {
            if !(MIN_RATE..=MAX_RATE).contains(&r) {
                return Err(Self::bad(
                    "sample_rate",
                    format!("{r} Hz: expected Hz from {MIN_RATE} to {MAX_RATE}"),
                ));
            }
        }
        Ok(())
    }
}
