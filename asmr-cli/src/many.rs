//! Dataset runs: many (signal, model, preset, seed) fits into one root folder, sharded over
//! processes or a Slurm job array; a summary table at the end (asmr_core::dataset holds the run
//! list, shards and claims).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Result};
use asmr_core::candle_core::Device;
use asmr_core::config::{assemble, Base, Layers, OptionKind};
use asmr_core::dataset::{claim, publish, Claim, RunSpec, Shard};
use asmr_core::{checkpoint, run, Config, Modality};

use crate::progress::{self, duration};

/// What every run of a dataset shares: the layers over each run's preset.
pub struct Shared<'a> {
    pub modality: &'static Modality,
    pub files: Vec<&'a Path>,
    pub sets: &'a [String],
    /// Options given on the command line (the model and seed come from the run).
    pub options: &'a [(String, OptionKind, String)],
}

impl Shared<'_> {
    /// The configuration of one recipe: the preset, the shared layers, then the run's model and
    /// seed.
    pub fn config(&self, model: Option<&str>, preset: &str, seed: Option<u64>) -> Result<Config> {
        let mut options = Vec::new();
        if let Some(m) = model {
            options.push(("model".to_string(), OptionKind::Word, m.to_string()));
        }
        options.extend(self.options.iter().cloned());
        if let Some(s) = seed {
            options.push(("train.seed".into(), OptionKind::Value, s.to_string()));
        }
        Ok(assemble(&Layers {
            modality: Some(self.modality),
            base: Base::Preset(preset),
            files: &self.files,
            sets: self.sets,
            options: &options,
        })?)
    }

    /// `(model, preset)` pairs with the model each resolves to (a preset names its own model when
    /// no model is given), every configuration checked before anything runs.
    pub fn recipes(&self, models: &[String], presets: &[String]) -> Result<Vec<(String, String)>> {
        let models: Vec<Option<&str>> = if models.is_empty() {
            vec![None]
        } else {
            models.iter().map(|m| Some(m.as_str())).collect()
        };
        let mut out = Vec::new();
        for preset in presets {
            for &m in &models {
                let c = self.config(m, preset, None)?;
                let pair = (c.model.clone(), preset.clone());
                if !out.contains(&pair) {
                    out.push(pair);
                }
            }
        }
        Ok(out)
    }
}

/// The shard this process takes: `--shard`, else a Slurm job array's, else the whole list.
pub fn shard_of(flag: Option<&str>) -> Result<Shard> {
    if let Some(s) = flag {
        return Ok(Shard::parse(s)?);
    }
    Ok(Shard::from_slurm(|k| std::env::var(k).ok())?.unwrap_or(Shard::WHOLE))
}

pub struct Outcome {
    pub fitted: usize,
    pub already: usize,
    pub taken: Vec<String>,
    pub failed: Vec<(String, String)>,
}

/// Fit this shard's runs of `runs` under `root`, then write the summary of every finished run
/// there. A failed run is reported and the others go on; the result is an error naming the
/// failures.
pub fn run_all(
    shared: &Shared,
    runs: &[RunSpec],
    root: &Path,
    shard: Shard,
    device: &Device,
    quiet: bool,
) -> Result<()> {
    let mine = shard.pick(runs);
    let say = |s: String| {
        if !quiet {
            eprintln!("{s}");
        }
    };
    let of_shard = if shard == Shard::WHOLE {
        String::new()
    } else {
        format!(" (shard {shard}: {} of {})", mine.len(), runs.len())
    };
    say(format!(
        "{} runs{of_shard} into {}/",
        if shard == Shard::WHOLE {
            runs.len()
        } else {
            mine.len()
        },
        root.display()
    ));
    std::fs::create_dir_all(root).map_err(|e| anyhow::anyhow!("--out {}: {e}", root.display()))?;
    let mut out = Outcome {
        fitted: 0,
        already: 0,
        taken: Vec::new(),
        failed: Vec::new(),
    };
    let started = Instant::now();
    for (k, spec) in mine.iter().enumerate() {
        let (work, resume, lock) = match claim(root, spec)? {
            Claim::Done(_) => {
                out.already += 1;
                continue;
            }
            Claim::Taken => {
                out.taken.push(spec.label());
                continue;
            }
            Claim::Mine { work, resume, lock } => (work, resume, lock),
        };
        let eta = if out.fitted > 0 {
            let per = started.elapsed().as_secs_f64() / out.fitted as f64;
            format!(", about {} left", duration(per * (mine.len() - k) as f64))
        } else {
            String::new()
        };
        say(format!("[{}/{}] {}{eta}", k + 1, mine.len(), spec.label()));
        match fit_one(shared, spec, &work, resume.as_deref(), device, quiet) {
            Ok(report) => {
                let done = publish(root, spec, &work, lock)?;
                out.fitted += 1;
                say(format!(
                    "      {} in {} -> {}/",
                    (shared.modality.summary)(&report.quality),
                    duration(report.wall_seconds),
                    done.display()
                ));
            }
            Err(e) => {
                // The lock goes with `lock`; what the run wrote stays for the next attempt.
                drop(lock);
                if let Some(asmr_core::Error::Interrupted { step, total, .. }) = e.downcast_ref() {
                    return Err(crate::interrupt::Stopped(format!(
                        "interrupted in run {} at step {step} of {total} (its state is saved); \
                         the same command continues the dataset",
                        spec.label()
                    ))
                    .into());
                }
                let line = crate::report(&e);
                say(format!("      failed: {line}"));
                out.failed.push((spec.label(), line));
            }
        }
    }
    say(format!(
        "{} fitted, {} already complete, {} taken by other processes, {} failed ({})",
        out.fitted,
        out.already,
        out.taken.len(),
        out.failed.len(),
        duration(started.elapsed().as_secs_f64())
    ));
    for label in &out.taken {
        say(format!("  in progress in another process: {label}"));
    }
    write_summary(root, quiet)?;
    if !out.failed.is_empty() {
        let list: Vec<String> = out
            .failed
            .iter()
            .map(|(l, e)| format!("\n  {l}: {e}"))
            .collect();
        bail!(
            "{} of {} runs failed:{}",
            out.failed.len(),
            mine.len(),
            list.concat()
        );
    }
    Ok(())
}

fn fit_one(
    shared: &Shared,
    spec: &RunSpec,
    work: &Path,
    resume: Option<&Path>,
    device: &Device,
    quiet: bool,
) -> Result<run::FitReport> {
    // A dead owner's checkpoint carries the run's configuration; an unreadable one (never a
    // partial file: checkpoints are written atomically) means starting again.
    let saved = resume.and_then(|p| checkpoint::load(p, &Device::Cpu).ok());
    let (config, resume) = match saved {
        Some(ckpt) => (ckpt.meta.config, resume),
        None => {
            clear_folder(work)?;
            let c = shared.config(Some(&spec.model), &spec.preset, Some(spec.seed))?;
            (c, None)
        }
    };
    let signal = run::load_signal(shared.modality, Some(&spec.input), &config.data)?;
    for note in &signal.notes {
        if !quiet {
            eprintln!("      warning: {note}");
        }
    }
    let mut progress = progress::Progress::new(quiet);
    Ok(run::fit(run::FitRequest {
        modality: shared.modality,
        signal,
        config,
        out_dir: work.to_path_buf(),
        device: device.clone(),
        resume,
        preset: Some(spec.preset.clone()),
        observer: &mut progress,
    })?)
}

/// Remove what an earlier, unfinished attempt left in a work folder.
fn clear_folder(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let p = entry?.path();
        if p.is_dir() {
            std::fs::remove_dir_all(&p)?;
        } else {
            std::fs::remove_file(&p)?;
        }
    }
    Ok(())
}

/// `summary.*` of every finished run under `root`.
pub fn write_summary(root: &Path, quiet: bool) -> Result<()> {
    let Ok((summary, n)) = asmr_core::summary::summarise_dirs(&[root.to_path_buf()]) else {
        return Ok(());
    };
    let files = summary.write(root)?;
    if !quiet {
        eprintln!(
            "summary of {n} runs: {}",
            files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

/// A run list's expected time: each distinct (recipe, input) timed for a few steps.
pub fn plan(
    shared: &Shared,
    runs: &[RunSpec],
    shard: Shard,
    device: &Device,
) -> Result<Vec<(RunSpec, Option<f64>, String)>> {
    use std::collections::BTreeMap;
    let mut cache: BTreeMap<(String, String, PathBuf), std::result::Result<f64, String>> =
        BTreeMap::new();
    let mut out = Vec::new();
    for spec in shard.pick(runs) {
        let key = (spec.model.clone(), spec.preset.clone(), spec.input.clone());
        let estimate = cache
            .entry(key)
            .or_insert_with(|| estimate(shared, &spec, device).map_err(|e| crate::report(&e)))
            .clone();
        match estimate {
            Ok(s) => out.push((spec, Some(s), String::new())),
            Err(e) => out.push((spec, None, e)),
        }
    }
    Ok(out)
}

/// Seconds a run should take: the median of a few timed steps times the steps it will take, plus
/// its evaluations.
fn estimate(shared: &Shared, spec: &RunSpec, device: &Device) -> Result<f64> {
    let config = shared.config(Some(&spec.model), &spec.preset, Some(spec.seed))?;
    let signal = run::load_signal(shared.modality, Some(&spec.input), &config.data)?;
    let t = &config.train;
    let n = signal.info.num_samples();
    let case = asmr_core::bench::BenchCase {
        config: config.clone(),
        batch: t.minibatch().then_some(t.batch.min(n)),
        kernels: asmr_core::kernels::Kernels::Fused,
    };
    let r = asmr_core::bench::bench_model(&case, &signal, 2, device)?;
    let seconds = if t.minibatch() {
        let per_epoch = n.div_ceil(t.batch.max(1));
        let epochs = t.epochs_for(per_epoch);
        let evals = epochs.div_ceil(t.eval_every.max(1));
        (epochs * per_epoch) as f64 * r.step_median()
            + (evals * per_epoch) as f64 * r.infer_median()
    } else {
        t.iterations as f64 * r.step_median()
    };
    Ok(if t.time_limit > 0.0 {
        seconds.min(t.time_limit)
    } else {
        seconds
    })
}
