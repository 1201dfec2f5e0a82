//! The one trainer of the toolkit: MSE, Adam (PyTorch semantics), cosine learning rate, best-PSNR
//! tracking, resumable state, and the one training loop. A step over the whole grid uses the
//! model's `forward_grid` (for ASMR the activation-sharing forward: exact, and far cheaper than
//! per-sample); minibatch steps take their batches from a [`BatchSource`] and evaluate the whole
//! signal at epoch ends. The loop reports to an [`Observer`] and prints nothing.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use candle_core::Tensor;

use crate::checkpoint::{self, Checkpoint, CheckpointKind, CheckpointMeta};
use crate::config::LrSchedule;
use crate::config::{Config, TrainConfig};
use crate::error::{Error, Result};
use crate::guided::ErrorMap;
use crate::metrics::psnr_from_mse;
use crate::models::BuiltModel;
use crate::optim::{cosine_lr, step_lr, Adam, AdamConfig, WeightAverage};
use crate::render::{evaluate_errors, evaluate_psnr, target_rows};
use crate::sampler::BatchSource;
use crate::signal::Signal;

/// Whether the loop goes on after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// End the run after this step (it can be resumed from a checkpoint saved now).
    Stop,
}

/// What the training loop reports. Every method has a default that does nothing.
pub trait Observer {
    /// Before the first step of this process (`t.step` is where a resumed run starts).
    fn started(&mut self, _t: &Trainer) -> Result<()> {
        Ok(())
    }

    /// After each read of the step losses from the device (every step on the CPU, every
    /// `train.loss_every` steps on a GPU): the steps since the last call, in order; the last one
    /// is `t.step`'s.
    fn stepped(&mut self, _t: &Trainer, _recs: &[StepRecord]) -> Result<Flow> {
        Ok(Flow::Continue)
    }

    /// After a whole-signal evaluation (minibatch mode: every `train.eval_every` epochs and at
    /// the end), before [`Observer::stepped`] of the same step.
    fn evaluated(&mut self, _t: &Trainer, _psnr: f64) -> Result<()> {
        Ok(())
    }

    /// Something the user should know (a changed plan, a fallback).
    fn note(&mut self, _message: &str) {}
}

/// An observer that does nothing (tests, benchmarks).
pub struct Silent;

impl Observer for Silent {}

/// One row of `log.csv`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepRecord {
    /// 1-based: the forward of step `s` sees the parameters after `s - 1` updates.
    pub step: usize,
    pub loss: f32,
    /// PSNR of this step's output, prediction clamped to the data range.
    pub psnr: f64,
    pub lr: f64,
    pub elapsed: f64,
    /// Minibatch mode: the whole signal's PSNR after this step, when it was evaluated.
    pub evaluation: Option<f64>,
    /// With `train.ema`: the whole signal's PSNR from the weight average after this step, when it
    /// was scored (at each evaluation and at the end).
    pub average: Option<f64>,
}

impl StepRecord {
    pub const CSV_HEADER: &'static str =
        "step,loss,psnr,lr,elapsed_seconds,evaluation_psnr,average_psnr";

    pub fn csv(&self) -> String {
        let cell = |v: Option<f64>| v.map_or(String::new(), |p| format!("{p:.4}"));
        format!(
            "{},{:.8e},{:.4},{:.6e},{:.3},{},{}",
            self.step,
            self.loss,
            self.psnr,
            self.lr,
            self.elapsed,
            cell(self.evaluation),
            cell(self.average)
        )
    }

    /// A row of `log.csv` (older logs lack the last columns).
    pub fn parse_csv(line: &str) -> Option<Self> {
        let mut c = line.split(',');
        let step = c.next()?.parse().ok()?;
        let loss = c.next()?.parse().ok()?;
        let psnr = c.next()?.parse().ok()?;
        let lr = c.next()?.parse().ok()?;
        let elapsed = c.next()?.parse().ok()?;
        let evaluation = c.next().and_then(|s| s.parse().ok());
        let average = c.next().and_then(|s| s.parse().ok());
        Some(Self {
            step,
            loss,
            psnr,
            lr,
            elapsed,
            evaluation,
            average,
        })
    }
}

/// Samples per chunk of a minibatch when `train.micro_batch` is 0 for a model that evaluates
/// samples one by one (see [`crate::memory::resolve_micro_batch`]), on the CPU (where smaller
/// chunks stay in cache and bound memory) and on a GPU (where a chunk should fill the chip; the
/// paper's batches of 2^18 go through whole).
pub const DEFAULT_MICRO_BATCH: usize = 1 << 16;
pub const DEFAULT_MICRO_BATCH_GPU: usize = 1 << 18;

/// Steps between reads of the step losses on a GPU when `train.loss_every` is 0: each read makes
/// the host wait for the device, so a GPU whose step is shorter than the host's launching of it
/// would otherwise idle once per step.
pub const LOSS_EVERY_GPU: usize = 10;

/// Steps between reads of the step losses on `device` (see [`LOSS_EVERY_GPU`]).
pub fn loss_every(train: &TrainConfig, device: &candle_core::Device) -> usize {
    match train.loss_every {
        0 if device.is_cpu() => 1,
        0 => LOSS_EVERY_GPU,
        n => n,
    }
}

/// The factor `train.lr_horizon` puts on a schedule of `steps` steps: `sqrt(horizon / steps)`
/// beyond the horizon, else 1.
pub fn horizon_scale(horizon: usize, steps: usize) -> f64 {
    if horizon == 0 || steps <= horizon {
        1.0
    } else {
        (horizon as f64 / steps as f64).sqrt()
    }
}

/// Samples per chunk of a minibatch step on `device`.
pub fn micro_batch(train: &TrainConfig, device: &candle_core::Device) -> usize {
    match train.micro_batch {
        0 if device.is_cpu() => DEFAULT_MICRO_BATCH,
        0 => DEFAULT_MICRO_BATCH_GPU,
        m => m,
    }
}

/// MSE loss (for the gradient) and, still on the device, its value with the MSE of the prediction
/// clamped to `[0, 1]` (for the PSNR) as a pair. Pairs are read with [`read_losses`] after a
/// step's backward is queued, the pairs of every step since the last read in one copy, so a GPU
/// runs forward and backward without waiting for the host between them, and waits once per read.
fn losses(out: &Tensor, target: &Tensor) -> Result<(Tensor, Tensor)> {
    let loss = (out - target)?.sqr()?.mean_all()?;
    let clamped = (out.detach().clamp(0f32, 1f32)? - target)?
        .sqr()?
        .mean_all()?;
    let values = Tensor::stack(&[&loss.detach(), &clamped], 0)?;
    Ok((loss, values))
}

/// The `(loss, clamped MSE)` pairs of [`losses`], in one copy to the host.
fn read_losses(pairs: &[Tensor]) -> Result<Vec<(f32, f64)>> {
    let values = Tensor::stack(pairs, 0)?.flatten_all()?.to_vec1::<f32>()?;
    Ok(values
        .chunks_exact(2)
        .map(|v| (v[0], v[1] as f64))
        .collect())
}

/// Scale all gradients so that their global L2 norm is at most `max_norm` (PyTorch's
/// `clip_grad_norm_`): the global norm, a scalar on the device, or `None` without gradients. As in
/// PyTorch the factor `min(1, max_norm / (norm + 1e-6))` stays on the device, so a GPU step does
/// not wait for the host to read the norm.
pub fn clip_grad_norm(
    grads: &mut candle_core::backprop::GradStore,
    vars: &[(String, candle_core::Var)],
    max_norm: f64,
) -> Result<Option<Tensor>> {
    let sums = vars
        .iter()
        .filter_map(|(_, v)| grads.get(v).map(|g| g.sqr()?.sum_all()))
        .collect::<candle_core::Result<Vec<_>>>()?;
    if sums.is_empty() {
        return Ok(None);
    }
    let norm = Tensor::stack(&sums, 0)?.sum_all()?.sqrt()?;
    let scale = ((&norm + 1e-6)?.recip()? * max_norm)?.clamp(0f32, 1f32)?;
    for (_, v) in vars {
        if let Some(g) = grads.get(v) {
            let scaled = g.broadcast_mul(&scale)?;
            grads.insert(v, scaled);
        }
    }
    Ok(Some(norm))
}

/// A step whose loss values are still on the device, until the next read.
struct Unread {
    step: usize,
    lr: f64,
    elapsed: f64,
    /// Each micro-batch's `(loss, clamped MSE)` pair and its share of the batch.
    pairs: Vec<Tensor>,
    weights: Vec<f64>,
}

/// A minibatch ready to run: its grid indices, target rows, and each micro-batch's `(start, len)`
/// with, when made ahead, the model's prepared forward ([`crate::models::Model::prepare_points`]).
struct ReadyBatch {
    idx: Vec<u32>,
    target: Tensor,
    chunks: Vec<(usize, usize, Option<crate::models::Prepared>)>,
}

impl ReadyBatch {
    /// With `prepare` every micro-batch's host-side work is done now; otherwise each chunk's is
    /// done as it runs, so only one chunk's plan is held at a time.
    fn new(
        model: &BuiltModel,
        idx: Vec<u32>,
        target: Tensor,
        chunk: usize,
        prepare: bool,
    ) -> Result<Self> {
        let d = model.context.dims();
        let n = idx.len() / d;
        let chunks = (0..n)
            .step_by(chunk.max(1))
            .map(|start| {
                let len = chunk.min(n - start);
                let prepared = match prepare {
                    true => model
                        .model
                        .prepare_points(&idx[start * d..(start + len) * d])?,
                    false => None,
                };
                Ok((start, len, prepared))
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            idx,
            target,
            chunks,
        })
    }
}

pub struct Trainer<'a> {
    pub model: &'a BuiltModel,
    signal: &'a Signal,
    config: TrainConfig,
    target: Option<Tensor>,
    adam: Adam,
    /// Steps completed.
    pub step: usize,
    pub best_psnr: f64,
    pub best_step: usize,
    pub best_params: Vec<(String, Tensor)>,
    /// The best weights are the weight average's (`train.ema`), not one step's.
    pub best_is_average: bool,
    /// Training seconds before this process (a resumed run).
    pub elapsed_before: f64,
    /// Minibatch mode: where batches come from, and how many make an epoch.
    batches: Option<Box<dyn BatchSource + 'a>>,
    steps_per_epoch: Option<usize>,
    /// Make the next minibatch ready on a worker thread while a step runs.
    prefetch: bool,
    started: Instant,
    /// The step this process started from (after a resume, the checkpoint's).
    first_step: usize,
    /// With `train.time_limit`: the steps the schedule spans, re-estimated every step from the
    /// rate since the warm-up mark (step, process seconds) so the cosine ends at the budget.
    budget_steps: Option<usize>,
    budget_mark: Option<(usize, f64)>,
    average: Option<WeightAverage>,
    /// Steps between reads of the losses ([`loss_every`]), and the steps not read yet.
    loss_every: usize,
    unread: Vec<Unread>,
    /// With `train.error_guided`: the errors of the last whole-signal evaluation, which guide
    /// the batches of the steps after it.
    guide: Option<Arc<ErrorMap>>,
}

/// The training state's tensor of the errors that guide the next batches (`train.error_guided`).
const GUIDE_KEY: &str = "guide/errors";

/// A time budget's rate is measured from the point where this many steps and seconds have passed
/// (the first steps pay one-off costs that would make the estimate short).
const BUDGET_WARMUP_STEPS: usize = 3;
const BUDGET_WARMUP_SECONDS: f64 = 1.0;

/// Steps a run of `total` steps at most reaches in `remaining` seconds at `rate` steps per second,
/// having taken `step` already (at least one more than `step`).
pub fn budget_steps(step: usize, rate: f64, remaining: f64, total: usize) -> usize {
    let more = (rate.max(0.0) * remaining.max(0.0)).floor();
    let more = if more.is_finite() {
        more as usize
    } else {
        total
    };
    step.saturating_add(more.max(1)).min(total)
}

impl<'a> Trainer<'a> {
    pub fn new(model: &'a BuiltModel, signal: &'a Signal, config: &TrainConfig) -> Result<Self> {
        let c = signal.info.channels;
        let expected = &model.context.signal_shape;
        if &signal.info.shape != expected || c != model.context.channels {
            return Err(Error::Invalid(format!(
                "the model was built for shape {expected:?} x {}, the signal is {:?} x {c}",
                model.context.channels, signal.info.shape
            )));
        }
        // cuBLAS's precision for f32 products is process-wide in candle.
        #[cfg(feature = "cuda")]
        if model.device.is_cuda() {
            candle_core::cuda_backend::set_gemm_reduced_precision_f32(config.tf32);
        }
        // Full-grid steps compare against the whole signal; minibatch steps bring their rows.
        let target = if config.minibatch() {
            None
        } else {
            Some(Tensor::from_slice(
                &signal.data.values(),
                (signal.info.num_samples(), c),
                &model.device,
            )?)
        };
        let mut adam = Adam::new(
            model.params.vars(),
            AdamConfig {
                beta1: config.betas[0],
                beta2: config.betas[1],
                eps: config.eps,
                weight_decay: config.weight_decay,
            },
        )?;
        let factors = config.lr_factor_of(&adam.names())?;
        adam.set_factors(factors);
        Ok(Self {
            model,
            signal,
            config: config.clone(),
            target,
            adam,
            step: 0,
            best_psnr: f64::NEG_INFINITY,
            best_step: 0,
            best_params: Vec::new(),
            best_is_average: false,
            elapsed_before: 0.0,
            batches: None,
            steps_per_epoch: None,
            prefetch: !model.device.is_cpu(),
            started: Instant::now(),
            first_step: 0,
            budget_steps: None,
            budget_mark: None,
            average: (config.ema > 0.0).then(|| WeightAverage::new(config.ema)),
            loss_every: loss_every(config, &model.device),
            unread: Vec::new(),
            guide: None,
        })
    }

    /// Continue from a training-state checkpoint: parameters, Adam moments, best step so far.
    pub fn resume(&mut self, ckpt: &Checkpoint, path: &Path) -> Result<()> {
        let bad = |message: String| Error::Checkpoint {
            path: path.into(),
            message,
        };
        if ckpt.meta.kind != CheckpointKind::TrainState {
            return Err(bad(
                "holds weights only; resume from a run's state.safetensors".into(),
            ));
        }
        self.model.params.restore(&ckpt.group("param/"))?;
        self.adam.load_state(ckpt.meta.adam_steps, |name| {
            let m = ckpt.tensors.get(&format!("adam.m/{name}"))?;
            let v = ckpt.tensors.get(&format!("adam.v/{name}"))?;
            Some((m.clone(), v.clone()))
        })?;
        self.step = ckpt.meta.step;
        self.first_step = self.step;
        self.best_step = ckpt.meta.best_step;
        self.best_psnr = ckpt.meta.best_psnr;
        self.best_params = ckpt.group("best/");
        self.best_is_average = ckpt.meta.best_is_average;
        if let Some(avg) = self.average.as_mut() {
            // A state saved without an average (or before the first step) starts a new one.
            let saved: Option<Vec<(String, Tensor)>> = self
                .model
                .params
                .vars()
                .into_iter()
                .map(|(n, v)| {
                    let t = ckpt.tensors.get(&format!("average/{n}"))?;
                    Some(t.to_device(v.device()).map(|t| (n, t)))
                })
                .collect::<Option<candle_core::Result<_>>>()
                .transpose()?;
            if let Some(values) = saved {
                avg.load(values)?;
            }
        }
        self.guide = match ckpt.tensors.get(GUIDE_KEY) {
            Some(t) => {
                let errors = t.to_device(&candle_core::Device::Cpu)?.to_vec1::<f32>()?;
                let map = ErrorMap::new(&self.signal.info.shape, errors)
                    .ok_or_else(|| bad(format!("`{GUIDE_KEY}` does not fit the signal")))?;
                Some(Arc::new(map))
            }
            None => None,
        };
        self.elapsed_before = ckpt.meta.elapsed_seconds;
        if self.step > self.total_steps() {
            return Err(bad(format!(
                "already at step {}, past the {} steps this config runs",
                self.step,
                self.total_steps()
            )));
        }
        Ok(())
    }

    pub fn elapsed(&self) -> f64 {
        self.elapsed_before + self.started.elapsed().as_secs_f64()
    }

    /// All steps taken, or `train.time_limit` seconds of training spent (after one step at least).
    pub fn is_done(&self) -> bool {
        self.step >= self.total_steps()
            || (self.step > 0
                && self.config.time_limit > 0.0
                && self.elapsed() >= self.config.time_limit)
    }

    /// Switch to minibatch mode: batches from `source`, `train.epochs` epochs (auto: enough for
    /// `train.iterations` steps), the learning rate stepped once per epoch.
    pub fn set_batches(&mut self, source: Box<dyn BatchSource + 'a>) {
        self.steps_per_epoch = Some(source.batches_per_epoch().max(1));
        self.batches = Some(source);
    }

    /// Whether minibatch mode makes the next batch ready on a worker thread while a step runs:
    /// by default on GPUs, whose steps would otherwise wait for the host. On the CPU the worker
    /// would take a core from the step's own threads, so batches are made ready between steps
    /// there (BENCHMARKS.md, "Waits for the device per step"). Either way the steps are the same.
    pub fn set_prefetch(&mut self, on: bool) {
        self.prefetch = on;
    }

    /// The training settings this trainer runs with.
    pub fn train_config(&self) -> &TrainConfig {
        &self.config
    }

    /// Batches per epoch in minibatch mode.
    pub fn steps_per_epoch(&self) -> Option<usize> {
        self.steps_per_epoch
    }

    /// Steps of the whole run.
    pub fn total_steps(&self) -> usize {
        match self.steps_per_epoch {
            Some(spe) => spe * self.config.epochs_for(spe),
            None => self.config.iterations,
        }
    }

    /// Epochs of the whole run (minibatch mode); with `train.time_limit`, the epochs the schedule
    /// spans (see [`Trainer::schedule_steps`]).
    pub fn total_epochs(&self) -> usize {
        self.steps_per_epoch
            .map_or(0, |spe| self.schedule_steps().div_ceil(spe))
    }

    /// Epochs completed (minibatch mode).
    pub fn epoch(&self) -> usize {
        self.step / self.steps_per_epoch.unwrap_or(usize::MAX).max(1)
    }

    /// Steps the learning-rate schedule spans: the run's, or with `train.time_limit` as many as
    /// the budget allows at the measured rate (so a cosine ends at the budget).
    pub fn schedule_steps(&self) -> usize {
        self.budget_steps.unwrap_or_else(|| self.total_steps())
    }

    /// Estimate the time budget's steps from the rate since the warm-up mark (the whole run's
    /// rate until the mark has a second of steps behind it).
    fn measure_budget(&mut self) {
        let limit = self.config.time_limit;
        if limit <= 0.0 {
            return;
        }
        let done = self.step - self.first_step;
        let secs = self.started.elapsed().as_secs_f64();
        if done < BUDGET_WARMUP_STEPS || secs < BUDGET_WARMUP_SECONDS {
            return;
        }
        let (mark_step, mark_secs) = *self.budget_mark.get_or_insert((self.step, secs));
        let since = (self.step - mark_step, secs - mark_secs);
        let rate = if since.0 >= BUDGET_WARMUP_STEPS && since.1 >= BUDGET_WARMUP_SECONDS {
            since.0 as f64 / since.1
        } else {
            done as f64 / secs
        };
        let remaining = limit - self.elapsed();
        self.budget_steps = Some(budget_steps(self.step, rate, remaining, self.total_steps()));
    }

    fn current_lr(&self) -> f64 {
        let planned = self.schedule_steps();
        let (pos, total) = match self.steps_per_epoch {
            Some(spe) => (self.step / spe, self.total_epochs().max(1)),
            None => (self.step, planned),
        };
        let c = &self.config;
        // Until a time budget's steps are estimated, `planned` is only the iterations cap.
        let estimating = c.time_limit > 0.0 && self.budget_steps.is_none();
        let scale = if estimating {
            1.0
        } else {
            horizon_scale(c.lr_horizon, planned)
        };
        match c.lr_schedule {
            LrSchedule::Cosine => cosine_lr(pos, total, c.lr * scale, c.lr_min * scale),
            LrSchedule::Step => step_lr(pos, c.lr * scale, c.lr_step_every, c.lr_step_factor),
        }
    }

    /// One full-grid optimisation step, its losses read now; its PSNR is the whole signal's, so
    /// it updates the best step.
    pub fn step(&mut self) -> Result<StepRecord> {
        let records = self.grid_step(true)?;
        last_record(records)
    }

    /// One full-grid step; its losses are read now with those of the steps before it when `read`
    /// holds, else left on the device.
    fn grid_step(&mut self, read: bool) -> Result<Vec<StepRecord>> {
        let target = self.target.as_ref().ok_or_else(|| {
            Error::Invalid("full-grid step on a trainer set up for minibatches".into())
        })?;
        let out = self.model.model.forward_grid()?;
        let (loss, pair) = losses(&out, target)?;
        let grads = loss.backward()?;
        self.apply(grads, vec![pair], vec![1.0], true, read)
    }

    /// One optimisation step on a batch of grid indices (`[n, d]` row-major) with their target
    /// rows (`[n, c]`). The batch goes through the model in chunks of at most `train.micro_batch`
    /// samples whose gradients are summed, so the step equals the whole batch's and memory stays
    /// bounded. The PSNR it reports is the batch's; best-step tracking is left to
    /// [`Trainer::record_evaluation`].
    pub fn step_points(&mut self, idx: &[u32], target: &Tensor) -> Result<StepRecord> {
        let chunk = micro_batch(&self.config, &self.model.device);
        let ready = ReadyBatch::new(self.model, idx.to_vec(), target.clone(), chunk, false)?;
        last_record(self.step_ready(ready, true)?)
    }

    /// One minibatch step; its losses are read as in [`Trainer::grid_step`].
    fn step_ready(&mut self, ready: ReadyBatch, read: bool) -> Result<Vec<StepRecord>> {
        let ReadyBatch {
            idx,
            target,
            chunks,
        } = ready;
        let d = self.model.context.dims();
        let n = idx.len() / d;
        let mut total: Option<candle_core::backprop::GradStore> = None;
        let (mut pairs, mut weights) = (Vec::new(), Vec::new());
        let vars = self.model.params.vars();
        for (start, len, prepared) in chunks {
            let out = self
                .model
                .model
                .forward_prepared(&idx[start * d..(start + len) * d], prepared)?;
            let t = target.narrow(0, start, len)?;
            let (loss, pair) = losses(&out, &t)?;
            let weight = len as f64 / n as f64;
            pairs.push(pair);
            weights.push(weight);
            let grads = (loss * weight)?.backward()?;
            total = Some(match total {
                None => grads,
                Some(mut acc) => {
                    for (_, var) in &vars {
                        if let Some(g) = grads.get(var) {
                            let sum = match acc.get(var) {
                                Some(a) => (a + g)?,
                                None => g.clone(),
                            };
                            acc.insert(var, sum);
                        }
                    }
                    acc
                }
            });
        }
        let grads = total.ok_or_else(|| Error::Invalid("an empty batch".into()))?;
        self.apply(grads, pairs, weights, false, read)
    }

    /// Whether the losses are read after step `step` (1-based): every `train.loss_every` steps,
    /// and where a checkpoint, an evaluation or the last step needs the steps' records.
    fn reads_at(&self, step: usize) -> bool {
        let every = self.config.checkpoint_every;
        self.loss_every <= 1
            || step.is_multiple_of(self.loss_every)
            || step >= self.total_steps()
            || (every > 0 && step.is_multiple_of(every))
            || self.evaluates_at(step)
    }

    /// Minibatch mode: whether the whole signal is evaluated after step `step` (every
    /// `train.eval_every` epochs; the end of the run is handled by the loop).
    fn evaluates_at(&self, step: usize) -> bool {
        self.steps_per_epoch.is_some_and(|spe| {
            step.is_multiple_of(spe) && (step / spe).is_multiple_of(self.config.eval_every)
        })
    }

    /// Read the losses of every step not read yet, in one copy: their records, in order. A
    /// non-finite loss ends the run with the first step that had one.
    fn read_unread(&mut self) -> Result<Vec<StepRecord>> {
        let unread = std::mem::take(&mut self.unread);
        if unread.is_empty() {
            return Ok(Vec::new());
        }
        let pairs: Vec<Tensor> = unread.iter().flat_map(|u| u.pairs.clone()).collect();
        let mut values = read_losses(&pairs)?.into_iter();
        let mut records = Vec::with_capacity(unread.len());
        for u in unread {
            let (mut loss, mut mse) = (0f64, 0f64);
            for (weight, (value, clamped)) in u.weights.iter().zip(values.by_ref()) {
                loss += value as f64 * weight;
                mse += clamped * weight;
            }
            let loss = loss as f32;
            if !loss.is_finite() {
                return Err(Error::NonFinite { step: u.step, loss });
            }
            records.push(StepRecord {
                step: u.step,
                loss,
                psnr: psnr_from_mse(mse, 1.0),
                lr: u.lr,
                elapsed: u.elapsed,
                evaluation: None,
                average: None,
            });
        }
        Ok(records)
    }

    /// Record a whole-signal evaluation of the current parameters (minibatch mode): the best one
    /// so far becomes the best step.
    pub fn record_evaluation(&mut self, psnr: f64) -> Result<()> {
        if psnr > self.best_psnr {
            self.best_psnr = psnr;
            self.best_step = self.step;
            self.best_params = self.model.params.snapshot()?;
            self.best_is_average = false;
        }
        Ok(())
    }

    /// Score the weight average (`train.ema`) on the whole signal; if it beats the best step it
    /// becomes the result. `None` without an average.
    pub fn score_average(&mut self) -> Result<Option<f64>> {
        let Some(avg) = self.average.as_ref().filter(|a| !a.values().is_empty()) else {
            return Ok(None);
        };
        let current = self.model.params.snapshot()?;
        self.model.params.restore(avg.values())?;
        let psnr = evaluate_psnr(self.model, self.signal);
        self.model.params.restore(&current)?;
        let psnr = psnr?;
        if psnr > self.best_psnr {
            self.best_psnr = psnr;
            self.best_step = self.step;
            self.best_params = avg.snapshot()?;
            self.best_is_average = true;
        }
        Ok(Some(psnr))
    }

    /// Update the parameters with a step's gradients. With `read`, the losses of this step and
    /// of those before it not read yet are read first (before the update, so a full-grid step
    /// whose PSNR is the best keeps the parameters its forward saw) and their records returned;
    /// otherwise the step's loss pairs stay on the device and nothing is returned.
    fn apply(
        &mut self,
        mut grads: candle_core::backprop::GradStore,
        pairs: Vec<Tensor>,
        weights: Vec<f64>,
        track_best: bool,
        read: bool,
    ) -> Result<Vec<StepRecord>> {
        let record_step = self.step + 1;
        self.measure_budget();
        let lr = self.current_lr();
        self.unread.push(Unread {
            step: record_step,
            lr,
            elapsed: 0.0,
            pairs,
            weights,
        });
        let mut records = if read {
            self.read_unread()?
        } else {
            Vec::new()
        };
        let best = records.last().map(|r| r.psnr);
        if let Some(psnr) = best.filter(|&p| track_best && p > self.best_psnr) {
            self.best_psnr = psnr;
            self.best_step = record_step;
            self.best_params = self.model.params.snapshot()?;
            self.best_is_average = false;
        }
        if self.config.grad_clip > 0.0 {
            clip_grad_norm(&mut grads, &self.model.params.vars(), self.config.grad_clip)?;
        }
        self.adam.step(&grads, lr)?;
        if let Some(avg) = self.average.as_mut() {
            avg.update(&self.model.params.vars())?;
        }
        self.step = record_step;
        let elapsed = self.elapsed();
        // This step's record is the last read, or it waits as the last unread.
        if let Some(r) = records.last_mut() {
            r.elapsed = elapsed;
        } else if let Some(u) = self.unread.last_mut() {
            u.elapsed = elapsed;
        }
        Ok(records)
    }

    /// Train to the end of the run (or its time limit, or until `observer` stops it): full-grid
    /// steps, or minibatches with a whole-signal evaluation every `train.eval_every` epochs and at
    /// the end.
    pub fn run(&mut self, observer: &mut dyn Observer) -> Result<()> {
        observer.started(self)?;
        let mut batches = self.batches.take();
        let result = self.run_steps(batches.as_mut(), observer);
        self.batches = batches;
        result
    }

    /// The steps of [`Trainer::run`]. In minibatch mode with [`Trainer::set_prefetch`] the next
    /// batch is made ready (drawn, its targets gathered, the model's host-side work done) on a
    /// worker thread while a step runs, so a GPU does not wait for the host between steps.
    fn run_steps(
        &mut self,
        mut batches: Option<&mut Box<dyn BatchSource + 'a>>,
        observer: &mut dyn Observer,
    ) -> Result<()> {
        let chunk = micro_batch(&self.config, &self.model.device);
        let (model, signal, prefetch) = (self.model, self.signal, self.prefetch);
        let seed = self.config.seed;
        let ready = |source: &mut Box<dyn BatchSource + 'a>,
                     step: usize,
                     spe: usize,
                     guide: Option<(Arc<ErrorMap>, f64)>| {
            let mut idx = source.batch(step / spe, step % spe);
            if let Some((map, share)) = guide {
                idx = map.guide(idx, share, seed, step);
            }
            let target = target_rows(signal, &idx, &model.device)?;
            ReadyBatch::new(model, idx, target, chunk, prefetch)
        };
        let mut next: Option<ReadyBatch> = None;
        while !self.is_done() {
            let read = self.reads_at(self.step + 1);
            let mut records = match (batches.as_deref_mut(), self.steps_per_epoch) {
                (Some(source), Some(spe)) => {
                    let current = match next.take() {
                        Some(r) => r,
                        None => ready(source, self.step, spe, self.guide_for(self.step))?,
                    };
                    let following = self.step + 1;
                    let more = self.prefetch && following < self.total_steps();
                    let guide = self.guide_for(following);
                    let (rec, made) = std::thread::scope(|s| {
                        let worker = more.then(|| s.spawn(|| ready(source, following, spe, guide)));
                        let rec = self.step_ready(current, read);
                        let made = worker.map(|w| w.join().expect("the batch worker panicked"));
                        (rec, made)
                    });
                    let rec = rec?;
                    next = made.transpose()?;
                    rec
                }
                _ => self.grid_step(read)?,
            };
            // Full-grid steps score themselves; the average is scored at the end.
            let whole_signal = self.evaluates_at(self.step) || self.is_done();
            if whole_signal {
                // A time limit can end the run on a step that did not read.
                records.extend(self.read_unread()?);
            }
            let Some(rec) = records.last_mut() else {
                continue;
            };
            if whole_signal {
                if self.steps_per_epoch.is_some() {
                    let psnr = if self.config.error_guided > 0.0 {
                        let (psnr, errors) = evaluate_errors(self.model, self.signal)?;
                        self.guide = ErrorMap::new(&self.signal.info.shape, errors).map(Arc::new);
                        // The next batch was made from the previous errors.
                        next = None;
                        psnr
                    } else {
                        evaluate_psnr(self.model, self.signal)?
                    };
                    self.record_evaluation(psnr)?;
                    rec.evaluation = Some(psnr);
                    observer.evaluated(self, psnr)?;
                }
                rec.average = self.score_average()?;
            }
            if observer.stepped(self, &records)? == Flow::Stop {
                break;
            }
        }
        Ok(())
    }

    /// The error map and the share of step `step`'s batch it draws: `train.error_guided` at the
    /// start, falling linearly to 0 at the schedule's end, so the last epochs fit the plain mean
    /// error that the PSNR scores.
    fn guide_for(&self, step: usize) -> Option<(Arc<ErrorMap>, f64)> {
        let spe = self.steps_per_epoch?.max(1);
        let done = (step / spe) as f64 / self.total_epochs().max(1) as f64;
        let share = self.config.error_guided * (1.0 - done).max(0.0);
        let map = self.guide.clone()?;
        (share > 0.0).then_some((map, share))
    }

    /// Save everything needed to resume (`state.safetensors`).
    pub fn save_state(&self, path: &Path, config: &Config, signal: &Signal) -> Result<()> {
        let mut tensors: Vec<(String, Tensor)> = self
            .model
            .params
            .snapshot()?
            .into_iter()
            .map(|(n, t)| (format!("param/{n}"), t))
            .collect();
        for (n, m, v) in self.adam.state() {
            tensors.push((format!("adam.m/{n}"), m));
            tensors.push((format!("adam.v/{n}"), v));
        }
        for (n, t) in &self.best_params {
            tensors.push((format!("best/{n}"), t.clone()));
        }
        if let Some(avg) = &self.average {
            for (n, t) in avg.values() {
                tensors.push((format!("average/{n}"), t.clone()));
            }
        }
        if let Some(map) = &self.guide {
            let errors = map.errors();
            let t = Tensor::from_slice(errors, errors.len(), &candle_core::Device::Cpu)?;
            tensors.push((GUIDE_KEY.into(), t));
        }
        checkpoint::save(
            path,
            &self.meta(CheckpointKind::TrainState, config, signal),
            &tensors,
        )
    }

    /// Save the best step's weights (`model.safetensors`).
    pub fn save_best(&self, path: &Path, config: &Config, signal: &Signal) -> Result<()> {
        checkpoint::save(
            path,
            &self.meta(CheckpointKind::Model, config, signal),
            &self.best_params,
        )
    }

    fn meta(&self, kind: CheckpointKind, config: &Config, signal: &Signal) -> CheckpointMeta {
        CheckpointMeta {
            format: checkpoint::FORMAT.into(),
            kind,
            config: config.clone(),
            signal: signal.info.clone(),
            grid: self.model.context.grid.clone(),
            step: self.step,
            best_step: self.best_step,
            best_psnr: self.best_psnr,
            best_is_average: self.best_is_average,
            adam_steps: self.adam.steps(),
            elapsed_seconds: self.elapsed(),
        }
    }
}

/// The record of a step that read its losses.
fn last_record(mut records: Vec<StepRecord>) -> Result<StepRecord> {
    records
        .pop()
        .ok_or_else(|| Error::Invalid("a step that read its losses has no record".into()))
}

#[cfg(test)]
mod tests {
    use super::{budget_steps, clip_grad_norm};
    use candle_core::{Device, Tensor, Var};

    /// Gradients above the norm are scaled onto it (the global norm over every variable); below
    /// it they are left alone; a variable without a gradient counts for nothing.
    #[test]
    fn clipping_scales_the_global_gradient_norm() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let a = Var::new(&[1f32, 2.0], &dev)?;
        let b = Var::new(&[[3f32], [4.0]], &dev)?;
        let idle = Var::new(&[5f32], &dev)?;
        let vars: Vec<(String, Var)> = [("a", &a), ("b", &b), ("idle", &idle)]
            .into_iter()
            .map(|(n, v)| (n.to_string(), v.clone()))
            .collect();
        // Gradients [3, 4] and [[0], [12]]: global norm 13.
        let wa = Tensor::new(&[3f32, 4.0], &dev)?;
        let wb = Tensor::new(&[[0f32], [12.0]], &dev)?;
        let loss = ((a.as_tensor() * &wa)?.sum_all()? + (b.as_tensor() * &wb)?.sum_all()?)?;
        let host = |g: &candle_core::backprop::GradStore, v: &Var| -> Vec<f32> {
            g.get(v).unwrap().flatten_all().unwrap().to_vec1().unwrap()
        };
        let mut grads = loss.backward()?;
        let norm = clip_grad_norm(&mut grads, &vars, 6.5).unwrap().unwrap();
        let norm = norm.to_scalar::<f32>()?;
        assert!((norm - 13.0).abs() < 1e-5, "{norm}");
        let (ga, gb) = (host(&grads, &a), host(&grads, &b));
        for (got, want) in ga.iter().chain(&gb).zip([1.5f32, 2.0, 0.0, 6.0]) {
            assert!((got - want).abs() < 1e-4, "{ga:?} {gb:?}");
        }
        let mut grads = loss.backward()?;
        clip_grad_norm(&mut grads, &vars, 20.0).unwrap();
        assert_eq!(host(&grads, &a), vec![3.0, 4.0]);
        assert!(clip_grad_norm(&mut grads, &vars[2..], 1.0)
            .unwrap()
            .is_none());
        Ok(())
    }

    #[test]
    fn a_budget_is_the_steps_its_time_allows_within_the_run() {
        // 10 steps done, 4 steps/s, 25 s left: 100 more.
        assert_eq!(budget_steps(10, 4.0, 25.0, 10_000), 110);
        // Never past the run's own steps, always at least one more.
        assert_eq!(budget_steps(10, 4.0, 1e9, 500), 500);
        assert_eq!(budget_steps(10, 4.0, -3.0, 500), 11);
        assert_eq!(budget_steps(10, f64::INFINITY, 5.0, 500), 500);
    }
}
