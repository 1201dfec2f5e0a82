//! asmr-core: the engine of the asmr toolkit. ASMR coordinate networks (Activation-Sharing
//! Multi-Resolution, ICLR 2024) and their baselines, the multi-resolution grid they run on, one
//! trainer for every modality, checkpoints, the MAC profiler and the plugin registry through which
//! modality crates plug in.

pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod dataset;
pub mod error;
pub mod figure;
pub mod gpu;
pub mod grid;
pub mod guided;
pub mod kernels;
pub mod layers;
pub mod memory;
pub mod metrics;
pub mod models;
pub mod modulator;
pub mod optim;
pub mod output;
pub mod params;
pub mod plot;
pub mod profile;
pub mod registry;
pub mod render;
pub mod rng;
pub mod run;
pub mod sampler;
pub mod signal;
pub mod summary;
pub mod trainer;

pub use candle_core;
pub use config::{Bases, Config, ConfigBuilder, NetConfig, TrainConfig};
pub use error::{Error, Result};
pub use grid::MultiResGrid;
pub use inventory;
pub use models::{BuiltModel, Model, ModelContext, ModelEntry};
pub use registry::{Experiment, FastRecipe, Modality, Preset};
pub use signal::{Samples, Signal, SignalInfo};
