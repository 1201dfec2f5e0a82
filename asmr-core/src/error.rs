//! The one error type of asmr-core; modality crates report through it too so the CLI sees one shape.

use std::path::PathBuf;

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Candle(#[from] candle_core::Error),

    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A configuration key with a bad or unknown value; `key` is the dotted path (`net.hidden`).
    #[error("config key `{key}`: {message}")]
    Config { key: String, message: String },

    /// An input file that cannot be used as a signal (missing, corrupt, wrong kind).
    #[error("{}: {message}", path.display())]
    Input { path: PathBuf, message: String },

    /// Multi-resolution decomposition that does not fit the signal.
    #[error("grid: {0}")]
    Grid(String),

    #[error("checkpoint {}: {message}", path.display())]
    Checkpoint { path: PathBuf, message: String },

    #[error("training diverged: loss is {loss} at step {step} (try a lower train.lr)")]
    NonFinite { step: usize, loss: f32 },

    #[error("unknown {kind} `{name}` (known: {known})")]
    Unknown {
        kind: &'static str,
        name: String,
        known: String,
    },

    /// Training stopped on request (Ctrl-C, SIGTERM) with its state saved to `state`.
    #[error("interrupted at step {step} of {total}; the state is saved in {}", state.display())]
    Interrupted {
        step: usize,
        total: usize,
        state: PathBuf,
    },

    /// The device ran out of memory mid-fit; `need` is the estimate of one step, `fix` the option
    /// to change.
    #[error(
        "{device} ran out of memory (one training step needs about {need} by estimate, the budget \
         is {budget}): {fix}"
    )]
    OutOfMemory {
        device: String,
        need: String,
        budget: String,
        fix: String,
    },

    #[error("{0}")]
    Invalid(String),
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub fn config(key: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Config {
            key: key.into(),
            message: message.into(),
        }
    }

    pub fn input(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Input {
            path: path.into(),
            message: message.into(),
        }
    }
}
