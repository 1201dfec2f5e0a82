//! Checkpoints in safetensors. The tensors are the model's parameters under their `VarBuilder` names;
//! the metadata (`asmr` key, JSON) holds the full config, the resolved grid and the signal's shape,
//! so a checkpoint alone rebuilds the model. A training state additionally carries the Adam moments
//! and the best step's weights, under `adam.m/`, `adam.v/` and `best/` prefixes.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use safetensors::tensor::{Dtype as StDtype, TensorView};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::grid::MultiResGrid;
use crate::models::{BuiltModel, ModelContext};
use crate::output::write_bytes_atomic;
use crate::params::ParamStore;
use crate::signal::SignalInfo;

pub const FORMAT: &str = "asmr-checkpoint/1";
const META_KEY: &str = "asmr";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckpointKind {
    /// Weights to render from (a run's `model.safetensors`: the best step).
    Model,
    /// Everything needed to resume training (`state.safetensors`).
    TrainState,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckpointMeta {
    pub format: String,
    pub kind: CheckpointKind,
    pub config: Config,
    pub signal: SignalInfo,
    pub grid: Option<MultiResGrid>,
    /// Training steps completed when saved.
    pub step: usize,
    pub best_step: usize,
    pub best_psnr: f64,
    /// The best weights are the weight average's (`train.ema`). Older checkpoints read as false.
    #[serde(default)]
    pub best_is_average: bool,
    pub adam_steps: u64,
    pub elapsed_seconds: f64,
}

pub struct Checkpoint {
    pub meta: CheckpointMeta,
    pub tensors: HashMap<String, Tensor>,
}

pub fn save(path: &Path, meta: &CheckpointMeta, tensors: &[(String, Tensor)]) -> Result<()> {
    let mut bufs: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let values = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        bufs.push((name.clone(), t.dims().to_vec(), bytes));
    }
    let views = bufs
        .iter()
        .map(|(n, s, b)| {
            TensorView::new(StDtype::F32, s.clone(), b)
                .map(|v| (n.clone(), v))
                .map_err(|e| Error::Checkpoint {
                    path: path.into(),
                    message: e.to_string(),
                })
        })
        .collect::<Result<Vec<_>>>()?;
    let json = serde_json::to_string(meta).map_err(|e| Error::Invalid(e.to_string()))?;
    let info = HashMap::from([(META_KEY.to_string(), json)]);
    let bytes = safetensors::serialize(views, Some(info)).map_err(|e| Error::Checkpoint {
        path: path.into(),
        message: e.to_string(),
    })?;
    write_bytes_atomic(path, &bytes)
}

pub fn load(path: &Path, device: &Device) -> Result<Checkpoint> {
    let bad = |message: String| Error::Checkpoint {
        path: path.into(),
        message,
    };
    if path.is_dir() {
        return Err(bad("is a directory, not a checkpoint file".into()));
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| bad(format!("not a safetensors file ({e})")))?;
    let json = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(META_KEY))
        .ok_or_else(|| bad("no asmr metadata: not written by asmr".into()))?;
    let meta: CheckpointMeta =
        serde_json::from_str(json).map_err(|e| bad(format!("unreadable metadata: {e}")))?;
    if meta.format != FORMAT {
        return Err(bad(format!(
            "format `{}`, this build reads `{FORMAT}`",
            meta.format
        )));
    }
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| bad(format!("corrupt tensor data ({e})")))?;
    let mut tensors = HashMap::new();
    for (name, view) in st.tensors() {
        if view.dtype() != StDtype::F32 {
            return Err(bad(format!(
                "tensor `{name}` is {:?}, expected F32",
                view.dtype()
            )));
        }
        let values: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        tensors.insert(
            name.clone(),
            Tensor::from_vec(values, view.shape().to_vec(), device)?,
        );
    }
    Ok(Checkpoint { meta, tensors })
}

impl Checkpoint {
    /// Tensors under `prefix` (`""` for a model checkpoint, `"best/"`...), prefix stripped, sorted.
    pub fn group(&self, prefix: &str) -> Vec<(String, Tensor)> {
        let mut v: Vec<_> = self
            .tensors
            .iter()
            .filter_map(|(k, t)| k.strip_prefix(prefix).map(|n| (n.to_string(), t.clone())))
            .filter(|(n, _)| !n.contains('/'))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Rebuild the model with the weights under `prefix`.
    pub fn build_model(&self, prefix: &str, device: &Device, path: &Path) -> Result<BuiltModel> {
        let store = ParamStore::default();
        let weights = self.group(prefix);
        for (name, t) in &weights {
            store.insert(name, t.to_device(device)?)?;
        }
        let mut ctx = ModelContext::new(
            self.meta.config.net.clone(),
            &self.meta.signal.shape,
            self.meta.signal.channels,
        );
        ctx.grid = self.meta.grid.clone();
        let built = BuiltModel::new(&self.meta.config.model, ctx, store, device).map_err(|e| {
            Error::Checkpoint {
                path: path.into(),
                message: format!("cannot rebuild the model: {e}"),
            }
        })?;
        if built.params.len() != weights.len() {
            return Err(Error::Checkpoint {
                path: path.into(),
                message: format!(
                    "holds {} tensors, the model uses {}",
                    weights.len(),
                    built.params.len()
                ),
            });
        }
        Ok(built)
    }
}
