//! The trainer: repeatable from a seed, resumable exactly, stops on a non-finite loss, and learns.

mod common;

use asmr_core::candle_core::Device;
use asmr_core::checkpoint;
use asmr_core::config::{Config, ConfigBuilder};
use asmr_core::run::build_model;
use asmr_core::trainer::{Flow, Observer, StepRecord, Trainer};
use asmr_core::{Error, Signal};
use common::test_signal;

fn config(iterations: usize, seed: u64) -> Config {
    let mut b = ConfigBuilder::new().unwrap();
    b.set_pair("net.hidden=24").unwrap();
    b.set_pair("net.layers=3").unwrap();
    b.set_pair("net.bases=[[2,2,4],[2,4,2]]").unwrap();
    b.set_pair("train.lr=1e-3").unwrap();
    b.set_pair(&format!("train.iterations={iterations}"))
        .unwrap();
    b.set_pair(&format!("train.seed={seed}")).unwrap();
    b.build().unwrap()
}

/// Every parameter tensor's values, by name.
type Params = Vec<(String, Vec<f32>)>;

fn params_of(trainer: &Trainer) -> Params {
    trainer
        .model
        .params
        .snapshot()
        .unwrap()
        .into_iter()
        .map(|(n, t)| (n, t.flatten_all().unwrap().to_vec1::<f32>().unwrap()))
        .collect()
}

fn train(cfg: &Config, signal: &Signal) -> (Vec<(String, Vec<f32>)>, f64, usize) {
    train_on(cfg, signal, &common::devices()[0])
}

fn train_on(cfg: &Config, signal: &Signal, dev: &Device) -> (Vec<(String, Vec<f32>)>, f64, usize) {
    let built = build_model(cfg, &signal.info, dev).unwrap();
    let mut t = Trainer::new(&built, signal, &cfg.train).unwrap();
    t.run(&mut asmr_core::trainer::Silent).unwrap();
    (params_of(&t), t.best_psnr, t.best_step)
}

#[test]
fn same_seed_same_run() {
    let s = test_signal(&[16, 16], 3);
    let a = train(&config(6, 5), &s);
    let b = train(&config(6, 5), &s);
    let c = train(&config(6, 6), &s);
    assert_eq!(a, b);
    assert_ne!(a.0, c.0);
}

#[test]
fn resumed_run_ends_where_the_uninterrupted_run_ends() {
    let s = test_signal(&[16, 16], 3);
    let dev = common::devices()[0].clone();
    let full_cfg = config(10, 9);
    let uninterrupted = train(&full_cfg, &s);

    // Four steps, save, stop; then a fresh process-like start from the file.
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.safetensors");
    {
        let built = build_model(&full_cfg, &s.info, &dev).unwrap();
        let mut t = Trainer::new(&built, &s, &full_cfg.train).unwrap();
        for _ in 0..4 {
            t.step().unwrap();
        }
        t.save_state(&state, &full_cfg, &s).unwrap();
    }
    let ckpt = checkpoint::load(&state, &dev).unwrap();
    assert_eq!(ckpt.meta.step, 4);
    let built = build_model(&full_cfg, &s.info, &dev).unwrap();
    let mut t = Trainer::new(&built, &s, &full_cfg.train).unwrap();
    t.resume(&ckpt, &state).unwrap();
    t.run(&mut asmr_core::trainer::Silent).unwrap();
    assert_eq!(t.step, 10);
    let resumed = (params_of(&t), t.best_psnr, t.best_step);
    assert_eq!(resumed, uninterrupted);
}

#[test]
fn non_finite_loss_stops_with_a_clear_error() {
    let s = test_signal(&[8, 8], 1);
    let mut cfg = config(20, 1);
    cfg.net.bases = asmr_core::Bases::Auto;
    cfg.train.lr = 1e30;
    cfg.train.lr_min = 0.0;
    let built = build_model(&cfg, &s.info, &common::devices()[0]).unwrap();
    let mut t = Trainer::new(&built, &s, &cfg.train).unwrap();
    let err = t.run(&mut asmr_core::trainer::Silent).unwrap_err();
    assert!(matches!(err, Error::NonFinite { .. }), "{err}");
    assert!(err.to_string().contains("train.lr"));
}

#[test]
fn a_time_limit_stops_training_early() {
    let s = test_signal(&[8, 8], 1);
    let mut cfg = config(1000, 1);
    cfg.net.bases = asmr_core::Bases::Auto;
    cfg.train.time_limit = 1e-9;
    let built = build_model(&cfg, &s.info, &common::devices()[0]).unwrap();
    let mut t = Trainer::new(&built, &s, &cfg.train).unwrap();
    t.run(&mut asmr_core::trainer::Silent).unwrap();
    assert_eq!(t.step, 1, "the first step already exceeds the limit");
}

#[test]
fn fitting_beats_the_mean_predictor() {
    let s = test_signal(&[32, 32], 1);
    let values = s.data.values();
    let mean = values.iter().sum::<f32>() / values.len() as f32;
    let mean_psnr = asmr_core::metrics::psnr(&values, &vec![mean; values.len()]);
    for dev in common::devices() {
        for model in ["asmr", "siren"] {
            let mut cfg = config(300, 2);
            cfg.model = model.into();
            cfg.net.bases = asmr_core::Bases::Auto;
            cfg.net.hidden = 64;
            let (_, best, best_step) = train_on(&cfg, &s, &dev);
            eprintln!("{dev:?} {model}: {best} dB at {best_step} vs mean {mean_psnr} dB");
            assert!(
                best > mean_psnr + 10.0,
                "{dev:?} {model}: {best} dB vs mean {mean_psnr} dB"
            );
            assert!(best_step > 200);
        }
    }
}

#[test]
fn model_checkpoint_rebuilds_the_same_output() {
    let s = test_signal(&[12, 20], 3);
    let dev = common::devices()[0].clone();
    for model in ["asmr", "siren"] {
        let mut cfg = config(3, 4);
        cfg.model = model.into();
        cfg.net.bases = asmr_core::Bases::Auto; // 12 and 20 get automatic bases
        let built = build_model(&cfg, &s.info, &dev).unwrap();
        let mut t = Trainer::new(&built, &s, &cfg.train).unwrap();
        t.run(&mut asmr_core::trainer::Silent).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        t.save_best(&path, &cfg, &s).unwrap();
        built.params.restore(&t.best_params).unwrap();
        let want = asmr_core::render::predict(&built).unwrap();
        let ckpt = checkpoint::load(&path, &dev).unwrap();
        let again = ckpt.build_model("", &dev, &path).unwrap();
        assert_eq!(asmr_core::render::predict(&again).unwrap(), want, "{model}");
    }
}

#[test]
fn corrupt_checkpoints_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let dev = common::devices()[0].clone();
    let p = dir.path().join("x.safetensors");
    std::fs::write(&p, b"not a checkpoint at all").unwrap();
    let e = checkpoint::load(&p, &dev).err().unwrap().to_string();
    assert!(e.contains("safetensors"), "{e}");
    // A real checkpoint cut short.
    let s = test_signal(&[8, 8], 1);
    let mut cfg = config(1, 1);
    cfg.net.bases = asmr_core::Bases::Auto;
    let built = build_model(&cfg, &s.info, &dev).unwrap();
    let mut t = Trainer::new(&built, &s, &cfg.train).unwrap();
    t.step().unwrap();
    let good = dir.path().join("good.safetensors");
    t.save_state(&good, &cfg, &s).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    assert!(checkpoint::load(&p, &dev).is_err());
    assert!(checkpoint::load(dir.path(), &dev).is_err());
    // Metadata whose grid does not hold together (found by the checkpoint fuzz target: an axis
    // with fewer levels than the others was indexed past its end when the model was profiled).
    for (bases, want) in [
        (serde_json::json!([[2, 4], [8]]), "axis 1 has 1 levels"),
        (serde_json::json!([[2, 4], [4, 3]]), "multiply to 12"),
        (serde_json::json!([[2, 4], [0, 8]]), "a base of 0"),
        (
            serde_json::json!([[2, 4], [1u64 << 40, 1u64 << 40]]),
            "more than any axis holds",
        ),
    ] {
        std::fs::write(&p, with_grid_bases(&bytes, bases)).unwrap();
        let e = checkpoint::load(&p, &dev).err().unwrap().to_string();
        assert!(e.contains(want), "{e}");
    }
    // The same rewrite with the grid's own bases still loads.
    let ckpt = checkpoint::load(&good, &dev).unwrap();
    let bases = serde_json::to_value(ckpt.meta.grid.unwrap().bases()).unwrap();
    std::fs::write(&p, with_grid_bases(&bytes, bases)).unwrap();
    assert!(checkpoint::load(&p, &dev).is_ok());
}

/// A checkpoint's bytes with the bases of the grid in its metadata replaced.
fn with_grid_bases(bytes: &[u8], bases: serde_json::Value) -> Vec<u8> {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let meta = header["__metadata__"]["asmr"].as_str().unwrap();
    let mut meta: serde_json::Value = serde_json::from_str(meta).unwrap();
    meta["grid"]["bases"] = bases;
    header["__metadata__"]["asmr"] = meta.to_string().into();
    let header = header.to_string().into_bytes();
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend(header);
    out.extend(&bytes[8 + n..]);
    out
}

fn minibatch_config(epochs: usize) -> Config {
    let mut cfg = config(1, 3);
    cfg.net.bases = asmr_core::Bases::Auto;
    cfg.net.hidden = 32;
    cfg.train.batch = 64;
    cfg.train.epochs = Some(epochs);
    cfg.train.sampler_grid = vec![4];
    cfg.train.micro_batch = 40; // chunks of 40 + 24: the summed gradient must equal the batch's
    cfg
}

/// The uniform grid sampler of a minibatch config.
fn grid_sampler(cfg: &Config, s: &Signal) -> Box<dyn asmr_core::sampler::BatchSource> {
    Box::new(
        asmr_core::sampler::GridSampler::new(
            &s.info.shape,
            &cfg.train.sampler_grid,
            cfg.train.batch,
            cfg.train.seed,
        )
        .unwrap(),
    )
}

/// Stops the run after a given step.
struct StopAfter(usize);

impl Observer for StopAfter {
    fn stepped(&mut self, t: &Trainer, _: &[StepRecord]) -> asmr_core::Result<Flow> {
        Ok(if t.step >= self.0 {
            Flow::Stop
        } else {
            Flow::Continue
        })
    }
}

/// Minibatch training through the grid sampler: the trainer's one loop, as `run::fit` drives it.
fn train_epochs(
    cfg: &Config,
    s: &'static Signal,
    stop_after: Option<usize>,
    resume: Option<&std::path::Path>,
) -> Trainer<'static> {
    train_epochs_with(cfg, s, stop_after, resume, None)
}

/// [`train_epochs`], with the next batch made ready on a worker thread or not (`None`: the
/// device's default).
fn train_epochs_with(
    cfg: &Config,
    s: &'static Signal,
    stop_after: Option<usize>,
    resume: Option<&std::path::Path>,
    prefetch: Option<bool>,
) -> Trainer<'static> {
    let mut stop = StopAfter(stop_after.unwrap_or(usize::MAX));
    train_epochs_observed(cfg, s, resume, prefetch, &mut stop)
}

/// Minibatch training reported to `observer`.
fn train_epochs_observed(
    cfg: &Config,
    s: &'static Signal,
    resume: Option<&std::path::Path>,
    prefetch: Option<bool>,
    observer: &mut dyn Observer,
) -> Trainer<'static> {
    let dev = common::devices()[0].clone();
    let built = Box::leak(Box::new(build_model(cfg, &s.info, &dev).unwrap()));
    let mut t = Trainer::new(built, s, &cfg.train).unwrap();
    t.set_batches(grid_sampler(cfg, s));
    if let Some(on) = prefetch {
        t.set_prefetch(on);
    }
    if let Some(p) = resume {
        t.resume(&checkpoint::load(p, &dev).unwrap(), p).unwrap();
    }
    t.run(observer).unwrap();
    t
}

#[test]
fn minibatch_epochs_learn_and_resume_exactly() {
    let s: &'static Signal = Box::leak(Box::new(test_signal(&[16, 16], 1)));
    let cfg = minibatch_config(30);
    let initial = {
        let built = build_model(&cfg, &s.info, &common::devices()[0]).unwrap();
        asmr_core::render::evaluate_psnr(&built, s).unwrap()
    };
    let full = train_epochs(&cfg, s, None, None);
    assert_eq!(full.step, 30 * 4); // 256 samples, 64 per batch
    assert!(
        full.best_psnr > initial + 5.0,
        "{} vs {initial}",
        full.best_psnr
    );
    assert_eq!(full.best_step % 4, 0);

    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.safetensors");
    let half = train_epochs(&cfg, s, Some(50), None);
    half.save_state(&state, &cfg, s).unwrap();
    let resumed = train_epochs(&cfg, s, None, Some(&state));
    assert_eq!(params_of(&resumed), params_of(&full));
    assert_eq!(
        (resumed.best_step, resumed.best_psnr),
        (full.best_step, full.best_psnr)
    );
}

/// Error-guided minibatches: each evaluation's errors change the batches after it, the fit still
/// learns, and a run stopped mid-epoch or right after an evaluation resumes into the same steps,
/// with the next batch made ahead or in turn.
#[test]
fn error_guided_batches_learn_and_resume_exactly() {
    let s: &'static Signal = Box::leak(Box::new(test_signal(&[16, 16], 1)));
    let plain_cfg = minibatch_config(8);
    let mut cfg = plain_cfg.clone();
    cfg.train.error_guided = 0.5;
    let initial = {
        let built = build_model(&cfg, &s.info, &common::devices()[0]).unwrap();
        asmr_core::render::evaluate_psnr(&built, s).unwrap()
    };
    let plain = train_epochs(&plain_cfg, s, None, None);
    let full = train_epochs_with(&cfg, s, None, None, Some(false));
    assert_eq!(full.step, 8 * 4);
    assert_ne!(params_of(&full), params_of(&plain));
    assert!(
        full.best_psnr > initial + 3.0,
        "{} vs {initial}",
        full.best_psnr
    );
    let ahead = train_epochs_with(&cfg, s, None, None, Some(true));
    assert_eq!(params_of(&ahead), params_of(&full));
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.safetensors");
    // Step 8 ends epoch 2 and its evaluation; step 10 is inside epoch 3.
    for (stop, prefetch) in [(8, false), (10, false), (8, true)] {
        let half = train_epochs_with(&cfg, s, Some(stop), None, Some(prefetch));
        half.save_state(&state, &cfg, s).unwrap();
        let resumed = train_epochs_with(&cfg, s, None, Some(&state), Some(prefetch));
        assert_eq!(
            params_of(&resumed),
            params_of(&full),
            "stopped at {stop}, prefetch {prefetch}"
        );
    }
}

/// Batches made ready on a worker thread while a step runs give the same steps as batches made
/// between steps, for every model that prepares its batches (ASMR's level cells, the grids'
/// interpolation plans) and one that does not, with micro-batches, and across a stop and resume.
#[test]
fn batches_made_ahead_train_like_batches_made_in_turn() {
    let s: &'static Signal = Box::leak(Box::new(test_signal(&[16, 16], 1)));
    for model in ["asmr", "ngp", "grid", "siren"] {
        let mut cfg = minibatch_config(3);
        cfg.model = model.into();
        let in_turn = train_epochs_with(&cfg, s, None, None, Some(false));
        let ahead = train_epochs_with(&cfg, s, None, None, Some(true));
        assert_eq!(ahead.step, 12, "{model}");
        assert_eq!(params_of(&ahead), params_of(&in_turn), "{model}");
        assert_eq!(ahead.best_psnr, in_turn.best_psnr, "{model}");
    }
    let cfg = minibatch_config(3);
    let full = train_epochs_with(&cfg, s, None, None, Some(false));
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.safetensors");
    let half = train_epochs_with(&cfg, s, Some(5), None, Some(true));
    assert_eq!(half.step, 5);
    half.save_state(&state, &cfg, s).unwrap();
    let resumed = train_epochs_with(&cfg, s, None, Some(&state), Some(true));
    assert_eq!(params_of(&resumed), params_of(&full));
}

#[test]
fn banded_prediction_equals_the_full_grid_forward() {
    let s = test_signal(&[23, 10, 3], 2);
    let dev = common::devices()[0].clone();
    for model in ["asmr", "siren"] {
        let mut cfg = config(1, 8);
        cfg.model = model.into();
        cfg.net.bases = asmr_core::Bases::Auto;
        let built = build_model(&cfg, &s.info, &dev).unwrap();
        let full = asmr_core::render::predict(&built).unwrap();
        let mut banded = Vec::new();
        let mut bands = 0;
        asmr_core::render::for_each_band_sized(&built, 0, 50, &mut |_, b| {
            banded.extend_from_slice(b);
            bands += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(bands, 23); // 30 samples per row, bands of 50 samples -> one row each
        let diff = full
            .iter()
            .zip(&banded)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert_eq!(full.len(), banded.len());
        assert!(diff < 1e-4, "{model}: {diff}");
    }
}

/// The learning rate of each step a trainer takes.
fn lrs(cfg: &Config, s: &Signal) -> Vec<f64> {
    struct Rates(Vec<f64>);
    impl Observer for Rates {
        fn stepped(&mut self, _: &Trainer, recs: &[StepRecord]) -> asmr_core::Result<Flow> {
            self.0.extend(recs.iter().map(|r| r.lr));
            Ok(Flow::Continue)
        }
    }
    let built = build_model(cfg, &s.info, &common::devices()[0]).unwrap();
    let mut t = Trainer::new(&built, s, &cfg.train).unwrap();
    let mut rates = Rates(Vec::new());
    t.run(&mut rates).unwrap();
    rates.0
}

#[test]
fn a_schedule_past_the_lr_horizon_starts_lower() {
    let s = test_signal(&[16, 16], 1);
    let mut cfg = config(16, 1);
    cfg.train.lr_min = 1e-4;
    let plain = lrs(&cfg, &s);
    assert_eq!((plain[0], *plain.last().unwrap() > 1e-4), (1e-3, true));
    cfg.train.lr_horizon = 4;
    let long = lrs(&cfg, &s);
    for (a, b) in plain.iter().zip(&long) {
        // sqrt(4 / 16): the whole cosine, floor included, at half the rates.
        assert!((b - a * 0.5).abs() < 1e-12, "{a} {b}");
    }
    cfg.train.lr_horizon = 16;
    assert_eq!(lrs(&cfg, &s), plain);
    // With a time budget the schedule's length is unknown until its first second is measured:
    // until then `iterations` is only a cap, and the rates are not lowered for it.
    cfg.train.lr_horizon = 4;
    cfg.train.time_limit = 1e6;
    assert_eq!(lrs(&cfg, &s), plain);

    // The fast recipe sets it; the paper's leaves it off.
    let recipe = |r: &str| {
        let mut b = ConfigBuilder::new().unwrap();
        b.set_pair(&format!("train.recipe={r}")).unwrap();
        b.build().unwrap().train.lr_horizon
    };
    assert_eq!((recipe("fast"), recipe("paper")), (700, 0));
    let ema = |r: &str| {
        let mut b = ConfigBuilder::new().unwrap();
        b.set_pair(&format!("train.recipe={r}")).unwrap();
        b.build().unwrap().train.ema
    };
    assert_eq!((ema("fast"), ema("paper")), (0.9, 0.0));
}

/// Every step's record and the parameters after it (on the CPU, where every step reads its
/// losses).
struct Trace(Vec<(StepRecord, Vec<(String, asmr_core::candle_core::Tensor)>)>);

impl Observer for Trace {
    fn stepped(&mut self, t: &Trainer, recs: &[StepRecord]) -> asmr_core::Result<Flow> {
        assert_eq!(recs.len(), 1, "one step per read");
        self.0.push((recs[0], t.model.params.snapshot()?));
        Ok(Flow::Continue)
    }
}

/// `train.ema` leaves the steps alone; at the end the average of every step's parameters, taken
/// by its rule here, is scored on the whole signal, and the better of it and the best step is the
/// result. Minibatch runs score it at every evaluation too.
#[test]
fn the_weight_average_is_scored_and_kept_when_it_beats_the_best_step() {
    let s = test_signal(&[16, 16], 3);
    let dev = common::devices()[0].clone();
    let mut cfg = config(60, 4);
    // A constant rate high enough that single steps jitter, which the average smooths.
    cfg.train.lr = 3e-3;
    cfg.train.lr_min = 3e-3;
    let run = |cfg: &Config| {
        let built = build_model(cfg, &s.info, &dev).unwrap();
        let mut t = Trainer::new(&built, &s, &cfg.train).unwrap();
        let mut trace = Trace(Vec::new());
        t.run(&mut trace).unwrap();
        let best = (
            t.best_psnr,
            t.best_step,
            t.best_is_average,
            t.best_params.clone(),
        );
        drop(t);
        (built, trace.0, best)
    };
    let (_, plain, plain_best) = run(&cfg);
    cfg.train.ema = 0.8;
    let (built, traced, (best_psnr, best_step, is_average, best_params)) = run(&cfg);

    for ((a, pa), (b, pb)) in plain.iter().zip(&traced) {
        assert_eq!((a.step, a.loss), (b.step, b.loss));
        for ((_, x), (_, y)) in pa.iter().zip(pb) {
            assert_eq!(common::max_diff(x, y), 0.0);
        }
    }
    assert!(traced[..59].iter().all(|(r, _)| r.average.is_none()));
    let scored = traced[59]
        .0
        .average
        .expect("the last step scores the average");

    let mut avg = traced[0].1.clone();
    for (_, p) in &traced[1..] {
        for ((_, a), (_, v)) in avg.iter_mut().zip(p) {
            *a = (v + ((&*a - v).unwrap() * 0.8).unwrap()).unwrap();
        }
    }
    built.params.restore(&avg).unwrap();
    let expected = asmr_core::render::evaluate_psnr(&built, &s).unwrap();
    assert!((scored - expected).abs() < 1e-6, "{scored} vs {expected}");

    // This run's average beats its best single step, so the result is the average's.
    assert!(scored > plain_best.0 + 0.1, "{scored} vs {}", plain_best.0);
    assert!(is_average && !plain_best.2);
    assert_eq!((best_psnr, best_step), (scored, 60));
    for ((_, a), (_, b)) in avg.iter().zip(&best_params) {
        assert!(common::max_diff(a, b) < 1e-6);
    }

    // Minibatch mode: scored beside every whole-signal evaluation.
    let mut mb = minibatch_config(4);
    mb.train.ema = 0.8;
    mb.train.eval_every = 2;
    let built = build_model(&mb, &s.info, &dev).unwrap();
    let mut t = Trainer::new(&built, &s, &mb.train).unwrap();
    t.set_batches(Box::new(
        asmr_core::sampler::GridSampler::new(&s.info.shape, &[4], 64, 3).unwrap(),
    ));
    let mut trace = Trace(Vec::new());
    t.run(&mut trace).unwrap();
    let at: Vec<(usize, bool)> = trace
        .0
        .iter()
        .filter(|(r, _)| r.evaluation.is_some() || r.average.is_some())
        .map(|(r, _)| (r.step, r.evaluation.is_some() && r.average.is_some()))
        .collect();
    assert_eq!(at, vec![(8, true), (16, true)]);
    let best = trace
        .0
        .iter()
        .flat_map(|(r, _)| [r.evaluation, r.average])
        .flatten();
    assert_eq!(t.best_psnr, best.fold(f64::NEG_INFINITY, f64::max));
}

/// A stopped run with a weight average resumes into the same average as the uninterrupted run.
#[test]
fn a_resumed_run_continues_its_weight_average() {
    let s = test_signal(&[16, 16], 3);
    let dev = common::devices()[0].clone();
    let mut cfg = config(12, 2);
    cfg.train.ema = 0.7;
    let full = {
        let built = build_model(&cfg, &s.info, &dev).unwrap();
        let mut t = Trainer::new(&built, &s, &cfg.train).unwrap();
        let mut trace = Trace(Vec::new());
        t.run(&mut trace).unwrap();
        (trace.0.last().unwrap().0.average, t.best_psnr, t.best_step)
    };
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.safetensors");
    {
        let built = build_model(&cfg, &s.info, &dev).unwrap();
        let mut t = Trainer::new(&built, &s, &cfg.train).unwrap();
        for _ in 0..5 {
            t.step().unwrap();
        }
        t.save_state(&state, &cfg, &s).unwrap();
    }
    let built = build_model(&cfg, &s.info, &dev).unwrap();
    let mut t = Trainer::new(&built, &s, &cfg.train).unwrap();
    t.resume(&checkpoint::load(&state, &dev).unwrap(), &state)
        .unwrap();
    let mut trace = Trace(Vec::new());
    t.run(&mut trace).unwrap();
    let resumed = (trace.0.last().unwrap().0.average, t.best_psnr, t.best_step);
    assert!(full.0.is_some());
    assert_eq!(resumed, full);
}

/// Each call's records, and the trainer's step at the call.
#[derive(Default)]
struct Groups(Vec<(usize, Vec<StepRecord>)>);

impl Observer for Groups {
    fn stepped(&mut self, t: &Trainer, recs: &[StepRecord]) -> asmr_core::Result<Flow> {
        self.0.push((t.step, recs.to_vec()));
        Ok(Flow::Continue)
    }
}

impl Groups {
    fn ends(&self) -> Vec<usize> {
        self.0.iter().map(|(step, _)| *step).collect()
    }

    /// Every record with its elapsed time dropped (the only field that differs between runs).
    fn records(&self) -> Vec<StepRecord> {
        self.0
            .iter()
            .flat_map(|(_, recs)| recs.iter().map(|r| StepRecord { elapsed: 0.0, ..*r }))
            .collect()
    }
}

/// `train.loss_every` (every 10 steps by default on a GPU) only changes when the losses are read:
/// the steps, their records and the parameters are those of a run that reads every step. Reads
/// also happen at checkpoints, evaluations and the last step, and the best full-grid step is the
/// best of the steps that read.
#[test]
fn losses_read_every_few_steps_give_the_same_steps() {
    let s: &'static Signal = Box::leak(Box::new(test_signal(&[16, 16], 3)));
    let dev = common::devices()[0].clone();
    let run = |cfg: &Config| {
        let built = build_model(cfg, &s.info, &dev).unwrap();
        let mut t = Trainer::new(&built, s, &cfg.train).unwrap();
        let mut groups = Groups::default();
        t.run(&mut groups).unwrap();
        let best = (t.best_psnr, t.best_step);
        (groups, params_of(&t), best)
    };
    let mut cfg = config(60, 4);
    cfg.train.checkpoint_every = 7;
    // A constant rate high enough that single steps jitter, so the best step is not the last.
    cfg.train.lr = 3e-3;
    cfg.train.lr_min = 3e-3;
    let (every, every_params, every_best) = run(&cfg);
    assert_eq!(every.ends(), (1..=60).collect::<Vec<_>>());
    cfg.train.loss_every = 5;
    let (grouped, grouped_params, grouped_best) = run(&cfg);
    // Every 5th step, every checkpoint (7th) and the last.
    let ends = [
        5, 7, 10, 14, 15, 20, 21, 25, 28, 30, 35, 40, 42, 45, 49, 50, 55, 56, 60,
    ];
    assert_eq!(grouped.ends(), ends);
    assert!(grouped
        .0
        .iter()
        .all(|(step, recs)| recs.last().unwrap().step == *step));
    assert_eq!(grouped.records(), every.records());
    assert_eq!(grouped_params, every_params);
    let read = every
        .records()
        .into_iter()
        .filter(|r| grouped.ends().contains(&r.step))
        .max_by(|a, b| a.psnr.total_cmp(&b.psnr))
        .unwrap();
    assert_eq!(grouped_best, (read.psnr, read.step));
    assert!(!grouped.ends().contains(&every_best.1), "{every_best:?}");
    assert!(every_best.0 > grouped_best.0);

    // Minibatch mode: evaluations every epoch of 4 batches read too; the best step is an
    // evaluation's, so it is the same either way.
    let mut mb = minibatch_config(3);
    let (every, every_params, every_best) = run_minibatch(&mb, s);
    mb.train.loss_every = 5;
    let (grouped, grouped_params, grouped_best) = run_minibatch(&mb, s);
    assert_eq!(grouped.ends(), vec![4, 5, 8, 10, 12]);
    assert_eq!(grouped.records(), every.records());
    assert_eq!((grouped_params, grouped_best), (every_params, every_best));

    // A time limit can end the run on a step that does not read: its losses are read then.
    let mut cfg = config(1000, 1);
    cfg.train.loss_every = 5;
    cfg.train.time_limit = 1e-9;
    let (groups, _, _) = run(&cfg);
    assert_eq!(groups.ends(), vec![1]);

    // A non-finite loss is reported at the step that had it, whichever step read it.
    let nan_step = |every: usize| {
        let mut cfg = config(20, 1);
        cfg.net.bases = asmr_core::Bases::Auto;
        cfg.train.lr = 1e30;
        cfg.train.lr_min = 0.0;
        cfg.train.loss_every = every;
        let built = build_model(&cfg, &s.info, &dev).unwrap();
        let mut t = Trainer::new(&built, s, &cfg.train).unwrap();
        match t.run(&mut asmr_core::trainer::Silent).unwrap_err() {
            Error::NonFinite { step, .. } => step,
            e => panic!("{e}"),
        }
    };
    assert_eq!(nan_step(7), nan_step(1));
}

/// A minibatch run's groups, parameters and best step.
fn run_minibatch(cfg: &Config, s: &'static Signal) -> (Groups, Params, (f64, usize)) {
    let mut groups = Groups::default();
    let t = train_epochs_observed(cfg, s, None, None, &mut groups);
    let best = (t.best_psnr, t.best_step);
    (groups, params_of(&t), best)
}

/// On every device the kept weights score what the run reports: on a GPU the weight average is
/// updated in place, so a kept average must be a copy that later steps leave alone.
#[test]
fn the_kept_weights_score_the_best_psnr_on_every_device() {
    let s: &'static Signal = Box::leak(Box::new(test_signal(&[16, 16], 3)));
    let mut cfg = minibatch_config(6);
    cfg.train.ema = 0.8;
    for dev in common::devices() {
        let built = build_model(&cfg, &s.info, &dev).unwrap();
        let mut t = Trainer::new(&built, s, &cfg.train).unwrap();
        t.set_batches(Box::new(
            asmr_core::sampler::GridSampler::new(&s.info.shape, &[4], 64, 3).unwrap(),
        ));
        t.run(&mut asmr_core::trainer::Silent).unwrap();
        let (best, kept) = (t.best_psnr, t.best_params.clone());
        drop(t);
        built.params.restore(&kept).unwrap();
        let scored = asmr_core::render::evaluate_psnr(&built, s).unwrap();
        assert!((scored - best).abs() < 1e-9, "{dev:?}: {scored} vs {best}");
    }
}
