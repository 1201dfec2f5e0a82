//! Parameter storage: a seeded `VarBuilder` backend. Layers ask for their tensors by name
//! (`backbone.0.weight`), the names become safetensors keys, and a store pre-filled from a checkpoint
//! hands the saved values back instead of drawing new ones.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};

use crate::rng::Rng;

#[derive(Default)]
struct Inner {
    order: Vec<String>,
    vars: HashMap<String, Var>,
    rng: Option<Rng>,
}

/// Shared, cloneable handle: the model's layers and the optimiser see the same variables.
#[derive(Clone, Default)]
pub struct ParamStore {
    inner: Arc<Mutex<Inner>>,
}

impl ParamStore {
    /// An empty store whose new parameters are drawn from `seed`.
    pub fn seeded(seed: u64) -> Self {
        let store = Self::default();
        store.lock().rng = Some(Rng::new(seed));
        store
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A poisoned lock only means another thread panicked mid-read; the data is still whole.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A `VarBuilder` over this store (f32).
    pub fn var_builder(&self, device: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(self.clone()), DType::F32, device.clone())
    }

    /// Insert a known value (loading a checkpoint). Must come before the model is built.
    pub fn insert(&self, name: &str, value: Tensor) -> candle_core::Result<()> {
        let var = Var::from_tensor(&value.to_dtype(DType::F32)?)?;
        let mut inner = self.lock();
        if inner.vars.insert(name.to_string(), var).is_none() {
            inner.order.push(name.to_string());
        }
        Ok(())
    }

    /// All variables in creation order, with their names.
    pub fn vars(&self) -> Vec<(String, Var)> {
        let inner = self.lock();
        inner
            .order
            .iter()
            .map(|n| (n.clone(), inner.vars[n].clone()))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.lock().order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Total number of scalar parameters.
    pub fn num_params(&self) -> usize {
        self.vars().iter().map(|(_, v)| v.elem_count()).sum()
    }

    /// Detached copies of every value (for best-step snapshots and checkpoints).
    pub fn snapshot(&self) -> candle_core::Result<Vec<(String, Tensor)>> {
        self.vars()
            .into_iter()
            .map(|(n, v)| Ok((n, v.as_tensor().copy()?.detach())))
            .collect()
    }

    /// Overwrite values in place from a snapshot.
    pub fn restore(&self, values: &[(String, Tensor)]) -> candle_core::Result<()> {
        let inner = self.lock();
        for (name, value) in values {
            match inner.vars.get(name) {
                Some(v) => v.set(value)?,
                None => candle_core::bail!("no parameter named `{name}`"),
            }
        }
        Ok(())
    }
}

fn draw(rng: &mut Rng, n: usize, init: &Init) -> candle_core::Result<Vec<f32>> {
    Ok(match *init {
        Init::Const(c) => vec![c as f32; n],
        Init::Uniform { lo, up } => (0..n).map(|_| rng.uniform(lo, up) as f32).collect(),
        Init::Randn { mean, stdev } => (0..n)
            .map(|_| (mean + stdev * rng.normal()) as f32)
            .collect(),
        Init::Kaiming { .. } => candle_core::bail!("Kaiming init must be given as explicit bounds"),
    })
}

impl SimpleBackend for ParamStore {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        init: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let mut inner = self.lock();
        if let Some(v) = inner.vars.get(name) {
            if v.shape() != &shape {
                candle_core::bail!(
                    "parameter `{name}` has shape {:?}, the model expects {:?}",
                    v.shape(),
                    shape
                );
            }
            return v.as_tensor().to_dtype(dtype);
        }
        let rng = match inner.rng.as_mut() {
            Some(r) => r,
            None => candle_core::bail!("parameter `{name}` is missing from the checkpoint"),
        };
        let values = draw(rng, shape.elem_count(), &init)?;
        let var = Var::from_tensor(&Tensor::from_vec(values, shape, dev)?.to_dtype(dtype)?)?;
        let t = var.as_tensor().clone();
        inner.vars.insert(name.to_string(), var);
        inner.order.push(name.to_string());
        Ok(t)
    }

    fn get_unchecked(
        &self,
        name: &str,
        dtype: DType,
        _dev: &Device,
    ) -> candle_core::Result<Tensor> {
        match self.lock().vars.get(name) {
            Some(v) => v.as_tensor().to_dtype(dtype),
            None => candle_core::bail!("no parameter named `{name}`"),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.lock().vars.contains_key(name)
    }
}
