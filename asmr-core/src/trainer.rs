//! The one trainer of the toolkit: MSE, Adam (PyTorch semantics), cosine learning rate, best-PSNR
//! tracking, resumable state. A step over the whole grid uses the model's `forward_grid` (for ASMR
//! the activation-sharing forward: exact, and far cheaper than per-sample).

use std::io::IsTerminal;
use std::path::Path;
use std::time::Instant;

use candle_core::Tensor;
use indicatif::{ProgressBar, ProgressStyle};

use crate::checkpoint::{self, Checkpoint, CheckpointKind, CheckpointMeta};
use crate::config::{Config, TrainConfig};
use crate::error::{Error, Result};
use crate::metrics::psnr_from_mse;
use crate::models::BuiltModel;
use crate::optim::{cosine_lr, Adam, AdamConfig};
use crate::signal::Signal;

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
}

impl StepRecord {
    pub const CSV_HEADER: &'static str = "step,loss,psnr,lr,elapsed_seconds";

    pub fn csv(&self) -> String {
        format!(
            "{},{:.8e},{:.4},{:.6e},{:.3}",
            self.step, self.loss, self.psnr, self.lr, self.elapsed
        )
    }
}

pub struct Trainer<'a> {
    pub model: &'a BuiltModel,
    config: TrainConfig,
    target: Tensor,
    adam: Adam,
    /// Steps completed.
    pub step: usize,
    pub best_psnr: f64,
    pub best_step: usize,
    pub best_params: Vec<(String, Tensor)>,
    /// Training seconds before this process (a resumed run).
    pub elapsed_before: f64,
    started: Instant,
}

impl<'a> Trainer<'a> {
    pub fn new(model: &'a BuiltModel, signal: &Signal, config: &TrainConfig) -> Result<Self> {
        let c = signal.info.channels;
        let expected = &model.context.signal_shape;
        if &signal.info.shape != expected || c != model.context.channels {
            return Err(Error::Invalid(format!(
                "the model was built for shape {expected:?} x {}, the signal is {:?} x {c}",
                model.context.channels, signal.info.shape
            )));
        }
        let target =
            Tensor::from_slice(&signal.data, (signal.info.num_samples(), c), &model.device)?;
        let adam = Adam::new(model.params.vars(), AdamConfig::default())?;
        Ok(Self {
            model,
            config: config.clone(),
            target,
            adam,
            step: 0,
            best_psnr: f64::NEG_INFINITY,
            best_step: 0,
            best_params: Vec::new(),
            elapsed_before: 0.0,
            started: Instant::now(),
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
        self.best_step = ckpt.meta.best_step;
        self.best_psnr = ckpt.meta.best_psnr;
        self.best_params = ckpt.group("best/");
        self.elapsed_before = ckpt.meta.elapsed_seconds;
        if self.step > self.config.iterations {
            return Err(bad(format!(
                "already at step {}, past train.iterations = {}",
                self.step, self.config.iterations
            )));
        }
        Ok(())
    }

    pub fn elapsed(&self) -> f64 {
        self.elapsed_before + self.started.elapsed().as_secs_f64()
    }

    pub fn is_done(&self) -> bool {
        self.step >= self.config.iterations
    }

    /// One full-grid optimisation step; its PSNR is the whole signal's, so it updates the best step.
    pub fn step(&mut self) -> Result<StepRecord> {
        let out = self.model.model.forward_grid()?;
        let target = self.target.clone();
        self.optimise(&out, &target, true)
    }

    /// One optimisation step on a batch of grid indices (`[n, d]` row-major) with their target
    /// rows (`[n, c]`). The PSNR it reports is the batch's; best-step tracking is left to a
    /// whole-signal evaluation.
    pub fn step_points(&mut self, idx: &[u32], target: &Tensor) -> Result<StepRecord> {
        let out = self.model.model.forward_points(idx)?;
        self.optimise(&out, target, false)
    }

    fn optimise(&mut self, out: &Tensor, target: &Tensor, track_best: bool) -> Result<StepRecord> {
        let lr = cosine_lr(
            self.step,
            self.config.iterations,
            self.config.lr,
            self.config.lr_min,
        );
        let loss = (out - target)?.sqr()?.mean_all()?;
        let loss_value = loss.to_scalar::<f32>()?;
        let record_step = self.step + 1;
        if !loss_value.is_finite() {
            return Err(Error::NonFinite {
                step: record_step,
                loss: loss_value,
            });
        }
        let clamped_mse = (out.detach().clamp(0f32, 1f32)? - target)?
            .sqr()?
            .mean_all()?
            .to_scalar::<f32>()? as f64;
        let psnr = psnr_from_mse(clamped_mse, 1.0);
        if track_best && psnr > self.best_psnr {
            self.best_psnr = psnr;
            self.best_step = record_step;
            self.best_params = self.model.params.snapshot()?;
        }
        let grads = loss.backward()?;
        self.adam.step(&grads, lr)?;
        self.step = record_step;
        Ok(StepRecord {
            step: record_step,
            loss: loss_value,
            psnr,
            lr,
            elapsed: self.elapsed(),
        })
    }

    /// Train to `train.iterations`, calling `observe` after every step. Shows a progress bar on a
    /// terminal, a line every tenth of the run otherwise (unless `quiet`).
    pub fn run(
        &mut self,
        quiet: bool,
        observe: &mut dyn FnMut(&Self, &StepRecord) -> Result<()>,
    ) -> Result<()> {
        let total = self.config.iterations;
        let tty = std::io::stderr().is_terminal();
        let bar = if quiet || !tty {
            ProgressBar::hidden()
        } else {
            let b = ProgressBar::new(total as u64);
            b.set_style(
                ProgressStyle::with_template(
                    "{bar:30.cyan/blue} {pos}/{len} [{elapsed_precise} < {eta_precise}] {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            b
        };
        bar.set_position(self.step as u64);
        let session_start = (self.step, Instant::now());
        let every = (total / 10).max(1);
        while !self.is_done() {
            let rec = self.step()?;
            let rate = (self.step - session_start.0) as f64
                / session_start.1.elapsed().as_secs_f64().max(1e-9);
            let msg = format!(
                "loss {:.3e}  PSNR {:.2} dB (best {:.2})  {:.2} steps/s",
                rec.loss, rec.psnr, self.best_psnr, rate
            );
            bar.set_position(self.step as u64);
            bar.set_message(msg.clone());
            if !quiet && !tty && (self.step.is_multiple_of(every) || self.is_done()) {
                eprintln!("step {}/{total}  {msg}", self.step);
            }
            observe(self, &rec)?;
        }
        bar.finish_and_clear();
        Ok(())
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
            adam_steps: self.adam.steps(),
            elapsed_seconds: self.elapsed(),
        }
    }
}
