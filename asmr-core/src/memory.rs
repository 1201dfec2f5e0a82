//! Memory: what a fit may hold (the input limit loaders check from headers), what a full-grid
//! step is estimated to need, and the budget that decides between full-grid steps and
//! minibatches.

use candle_core::Device;

use crate::config::Config;
use crate::models::BuiltModel;

pub const GIB: f64 = (1u64 << 30) as f64;

/// Minibatch size when a signal is too large for full-grid steps.
pub const AUTO_BATCH: usize = 1 << 18;

/// `train.max_memory_gb`, or 80% of the GPU's memory on a GPU, half the machine's RAM on the CPU.
pub fn memory_budget(config: &Config, device: &Device) -> usize {
    if config.train.max_memory_gb > 0.0 {
        return (config.train.max_memory_gb * GIB) as usize;
    }
    match crate::gpu::total_memory(device) {
        // The CUDA context and cuBLAS workspaces take some of it.
        Some(gpu) => gpu / 10 * 8,
        None => physical_memory().map_or(8 << 30, |m| m / 2),
    }
}

/// The most bytes a loaded signal may take in its stored form (8/16-bit or f32): a sixteenth of the
/// RAM, since a fit holds several times the signal (the whole prediction as f32 for the metrics,
/// sampler indices, training buffers), or `ASMR_INPUT_LIMIT_GB`. Loaders check it from a file's
/// header, before decoding.
pub fn input_memory_limit() -> usize {
    let set = std::env::var("ASMR_INPUT_LIMIT_GB")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|g| g.is_finite() && *g > 0.0);
    match set {
        Some(gb) => (gb * GIB) as usize,
        None => physical_memory().map_or(1 << 30, |m| m / 16),
    }
}

/// The error line of an input that would take `need` bytes against `limit` (see
/// [`input_memory_limit`]), or `None` when it fits. `what` names the input (`"a 64^3 field"`),
/// `fix` says what to change.
pub fn input_too_large(what: &str, need: usize, limit: usize, fix: &str) -> Option<String> {
    (need > limit).then(|| {
        format!(
            "{what} takes {}, more than the {} a fit on this machine can hold (a sixteenth of the \
             RAM; ASMR_INPUT_LIMIT_GB sets it): {fix}",
            format_bytes(need),
            format_bytes(limit)
        )
    })
}

/// `8.4 MB`, `4.29 GB`.
pub fn format_bytes(n: usize) -> String {
    if n >= 1_000_000_000 {
        format!("{:.2} GB", n as f64 / 1e9)
    } else {
        format!("{:.1} MB", n as f64 / 1e6)
    }
}

/// The machine's RAM in bytes (Linux `/proc/meminfo`), if it can be read.
pub fn physical_memory() -> Option<usize> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Rough memory of one full-grid training step: the activations kept for the backward and their
/// gradients (about four `h`-wide f32 buffers per hidden resolution), and per output value the
/// target, prediction, loss terms and their gradients (about twelve f32 buffers) besides index
/// maps per sample. Where the fused kernels run (the CPU, and a GPU in a CUDA build), ASMR's last
/// level is fused with the output layer and stores nothing `h`-wide at full resolution. Calibrated
/// on peak RSS of `bench` steps: 3-D ASMR 5 x 256 on 20 x 500 x 500 and 20 x 1000 x 1000, 1 and 3
/// channels (0.5 to 4.0 GB), where 4 buffers per output value underestimated the peak 2.5 times (a
/// 20 x 2000 x 2000 RGB clip then took 13.5 GB against a 12 GB budget).
pub fn full_grid_bytes(built: &BuiltModel) -> usize {
    let net = &built.context.net;
    let n = built.context.num_samples();
    let per_point = HIDDEN_BUFFERS * net.hidden * 4;
    let outputs = output_bytes(built, n);
    match built.model.grid() {
        Some(g) => {
            let last_full = if last_level_fused(built) { 0 } else { 1 };
            let levels = g.levels();
            (1..levels)
                .map(|l| {
                    if l + 1 == levels {
                        last_full * g.resolution(l) * per_point
                    } else {
                        g.resolution(l) * per_point
                    }
                })
                .sum::<usize>()
                + outputs
        }
        None => per_sample_bytes(built, n),
    }
}

/// Whether ASMR's last level runs fused with the output layer (no `h`-wide buffer per sample).
fn last_level_fused(built: &BuiltModel) -> bool {
    built.context.kernels.fused_on_device(&built.device)
        && (built.device.is_cpu()
            || built.context.channels <= crate::kernels::output::GPU_MAX_OUTPUTS)
}

/// f32 buffers kept per hidden activation for the backward (see [`full_grid_bytes`]).
const HIDDEN_BUFFERS: usize = 4;

/// Target, prediction, loss terms and gradients of `n` samples, besides their index maps.
fn output_bytes(built: &BuiltModel, n: usize) -> usize {
    n * built.context.channels * 12 * 4 + n * 8
}

/// A step over `n` samples evaluated one by one (every hidden layer per sample).
fn per_sample_bytes(built: &BuiltModel, n: usize) -> usize {
    let net = &built.context.net;
    n * HIDDEN_BUFFERS * net.hidden * 4 * net.layers.saturating_sub(1) + output_bytes(built, n)
}

/// Rough memory of one training step as `train` sets it up: a full-grid step, or one micro-batch
/// of a minibatch step (see [`batch_bytes`]).
pub fn step_bytes(built: &BuiltModel, train: &crate::config::TrainConfig) -> usize {
    if !train.minibatch() {
        return full_grid_bytes(built);
    }
    let chunk = crate::trainer::micro_batch(train, &built.device).min(train.batch);
    batch_bytes(built, chunk)
}

/// Rough memory of a step through [`crate::models::Model::forward_points`] on `n` samples. A
/// multi-resolution model's deduplicated forward holds one activation per distinct level cell
/// the batch touches: at most `n`, and at most the level's cells. Other models hold every hidden
/// layer per sample.
pub fn batch_bytes(built: &BuiltModel, n: usize) -> usize {
    let Some(g) = built.model.grid() else {
        return per_sample_bytes(built, n);
    };
    let per_point = HIDDEN_BUFFERS * built.context.net.hidden * 4;
    let levels = g.levels();
    (1..levels)
        .map(|l| {
            if l + 1 == levels && last_level_fused(built) {
                0
            } else {
                n.min(g.resolution(l)) * per_point
            }
        })
        .sum::<usize>()
        + output_bytes(built, n)
}

/// Samples per chunk of a minibatch step: `train.micro_batch`, or where it is 0, the device's
/// default for models that evaluate samples one by one ([`crate::trainer::micro_batch`]; small
/// chunks stay in cache), and the whole batch for a multi-resolution model's deduplicated forward,
/// halved until a chunk fits the memory budget. Splitting its batch buys no cache locality (a
/// 2^18-sample step on a 2268 x 1512 photo takes 25% longer in chunks of 2^16; BENCHMARKS.md).
pub fn resolve_micro_batch(
    built: &BuiltModel,
    train: &crate::config::TrainConfig,
    budget: usize,
) -> usize {
    if train.micro_batch > 0 || built.model.grid().is_none() {
        return crate::trainer::micro_batch(train, &built.device);
    }
    let mut chunk = train.batch.max(1);
    while chunk > 1 && batch_bytes(built, chunk) > budget {
        chunk = chunk.div_ceil(2);
    }
    chunk
}

/// Whether an error is the device refusing an allocation (CUDA's `CUDA_ERROR_OUT_OF_MEMORY`,
/// cuBLAS's `CUBLAS_STATUS_ALLOC_FAILED`). On the CPU an allocation failure aborts instead, which
/// is why CPU fits are held to [`memory_budget`] up front.
pub fn is_out_of_memory(e: &candle_core::Error) -> bool {
    let text = format!("{e} {e:?}").to_ascii_uppercase();
    text.contains("OUT_OF_MEMORY")
        || text.contains("ALLOC_FAILED")
        || text.contains("OUT OF MEMORY")
}

/// The one-line error for a device that ran out of memory during a fit: what a step needs by
/// [`full_grid_bytes`] (or per micro-batch), the budget, and the option that lowers it.
pub fn out_of_memory(
    e: crate::Error,
    device: &Device,
    need: usize,
    budget: usize,
    minibatch: bool,
) -> crate::Error {
    let oom = matches!(&e, crate::Error::Candle(c) if is_out_of_memory(c));
    if !oom {
        return e;
    }
    let fix = if minibatch {
        "lower train.micro_batch (samples per chunk of a minibatch) or train.batch".to_string()
    } else {
        format!(
            "set train.max_memory_gb below {:.1} to train on minibatches, or train.batch to choose \
             their size",
            need as f64 / GIB
        )
    };
    crate::Error::OutOfMemory {
        device: if device.is_cuda() {
            "the GPU"
        } else {
            "the device"
        }
        .to_string(),
        need: format_bytes(need),
        budget: format_bytes(budget),
        fix,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn driver_error(text: &str) -> crate::Error {
        crate::Error::Candle(candle_core::Error::Cuda(Box::new(std::io::Error::other(
            text.to_string(),
        ))))
    }

    #[test]
    fn a_device_allocation_failure_becomes_one_line_with_the_option_to_change() {
        let e = out_of_memory(
            driver_error("DriverError(CUDA_ERROR_OUT_OF_MEMORY, \"out of memory\")"),
            &Device::Cpu,
            3 << 30,
            2 << 30,
            false,
        );
        let line = e.to_string();
        assert!(matches!(e, crate::Error::OutOfMemory { .. }), "{line}");
        assert!(
            line.contains("3.22 GB") && line.contains("2.15 GB"),
            "{line}"
        );
        assert!(line.contains("train.max_memory_gb below 3.0"), "{line}");
        assert!(!line.contains('\n'));
        let e = out_of_memory(
            driver_error("CUBLAS_STATUS_ALLOC_FAILED"),
            &Device::Cpu,
            1 << 20,
            2 << 30,
            true,
        );
        assert!(e.to_string().contains("train.micro_batch"), "{e}");
    }

    fn built(model: &str, shape: &[usize]) -> (crate::config::Config, BuiltModel) {
        let mut b = crate::config::ConfigBuilder::new().unwrap();
        b.set("model", model).unwrap();
        b.set("train.batch", "4096").unwrap();
        let config = b.build().unwrap();
        let info = crate::signal::SignalInfo {
            modality: "test".into(),
            shape: shape.to_vec(),
            channels: 1,
            source: "test".into(),
            extra: Default::default(),
        };
        let built = crate::run::build_model(&config, &info, &Device::Cpu).unwrap();
        (config, built)
    }

    #[test]
    fn a_deduplicated_batch_runs_whole_unless_the_budget_splits_it() {
        let (config, asmr) = built("asmr", &[256, 256]);
        let whole = batch_bytes(&asmr, 4096);
        assert_eq!(resolve_micro_batch(&asmr, &config.train, usize::MAX), 4096);
        assert_eq!(resolve_micro_batch(&asmr, &config.train, whole), 4096);
        let chunk = resolve_micro_batch(&asmr, &config.train, whole - 1);
        assert!(chunk < 4096 && batch_bytes(&asmr, chunk) < whole, "{chunk}");
        // Level cells are counted at most once: below a per-sample model's need.
        let (_, siren) = built("siren", &[256, 256]);
        assert!(whole < batch_bytes(&siren, 4096));
        // A per-sample model keeps the cache-sized default, and a set value is kept.
        assert_eq!(
            resolve_micro_batch(&siren, &config.train, usize::MAX),
            crate::trainer::DEFAULT_MICRO_BATCH
        );
        let mut train = config.train.clone();
        train.micro_batch = 1000;
        assert_eq!(resolve_micro_batch(&asmr, &train, usize::MAX), 1000);
    }

    #[test]
    fn other_errors_pass_through() {
        let e = out_of_memory(
            driver_error("CUDA_ERROR_ILLEGAL_ADDRESS"),
            &Device::Cpu,
            1,
            1,
            false,
        );
        assert!(matches!(e, crate::Error::Candle(_)));
        let e = out_of_memory(crate::Error::Invalid("x".into()), &Device::Cpu, 1, 1, false);
        assert!(matches!(e, crate::Error::Invalid(_)));
    }
}
