//! Running a fitted model over its whole signal band by band (bounded memory at any size), and
//! rendering a checkpoint to a file.

use std::path::Path;

use candle_core::Device;

use crate::checkpoint;
use crate::error::{Error, Result};
use crate::memory::full_grid_bytes;
use crate::models::BuiltModel;
use crate::signal::{Signal, SignalInfo};

/// The model's whole signal as a flat `[N * c]` buffer in the training range.
pub fn predict(built: &BuiltModel) -> Result<Vec<f32>> {
    let mut out = Vec::with_capacity(built.context.num_samples() * built.context.channels);
    for_each_band(built, &mut |_, band| {
        out.extend_from_slice(band);
        Ok(())
    })?;
    Ok(out)
}

/// Receives the rows of axis 0 a band covers and its values.
pub type BandSink<'a> = dyn FnMut(std::ops::Range<usize>, &[f32]) -> Result<()> + 'a;

/// Samples per band when a signal is rendered in pieces.
pub const BAND_SAMPLES: usize = 1 << 18;

/// Run the model over the whole signal and hand its output to `f` band by band (whole slabs of
/// axis 0, raster order, channels last). A signal whose full-grid inference fits
/// [`FULL_GRID_INFER_BYTES`] goes in one piece (for ASMR the activation-sharing forward); a larger
/// one in bands of about [`BAND_SAMPLES`] samples through the batch forward, so memory stays
/// bounded. The split depends only on the model and the signal shape, so `fit` and `render` agree.
pub fn for_each_band(built: &BuiltModel, f: &mut BandSink) -> Result<()> {
    // A whole-grid inference holds about a quarter of a training step's buffers.
    let one_piece = full_grid_bytes(built) / 4 <= FULL_GRID_INFER_BYTES;
    let limit = if one_piece { usize::MAX } else { 0 };
    for_each_band_sized(built, limit, BAND_SAMPLES, f)
}

/// [`for_each_band`] with explicit limits (tests).
pub fn for_each_band_sized(
    built: &BuiltModel,
    full_grid_samples: usize,
    band_samples: usize,
    f: &mut BandSink,
) -> Result<()> {
    let shape = &built.context.signal_shape;
    let n = built.context.num_samples();
    if n <= full_grid_samples {
        let out = built.model.forward_grid()?.detach().flatten_all()?;
        return f(0..shape[0], &out.to_vec1::<f32>()?);
    }
    let per_row = n / shape[0];
    let rows = (band_samples / per_row).max(1);
    for r0 in (0..shape[0]).step_by(rows) {
        let r1 = (r0 + rows).min(shape[0]);
        let mut sub = shape.clone();
        sub[0] = r1 - r0;
        let mut idx = crate::models::all_indices(&sub);
        let d = shape.len();
        for x in idx.chunks_exact_mut(d) {
            x[0] += r0 as u32;
        }
        let out = built.model.forward_points(&idx)?.detach().flatten_all()?;
        f(r0..r1, &out.to_vec1::<f32>()?)?;
    }
    Ok(())
}

/// Largest estimated memory of a one-piece full-grid inference; above it signals are rendered in
/// bands. A constant (not the machine's RAM) so that `fit` and `render` split the same way.
pub const FULL_GRID_INFER_BYTES: usize = 1 << 30;

/// Whole-signal PSNR (prediction clamped to `[0, 1]`), accumulated band by band.
pub fn evaluate_psnr(built: &BuiltModel, signal: &Signal) -> Result<f64> {
    score(built, signal, None)
}

/// [`evaluate_psnr`] and each sample's error (the root of its squared error summed over the
/// channels, in the range the PSNR is taken in), raster order.
pub fn evaluate_errors(built: &BuiltModel, signal: &Signal) -> Result<(f64, Vec<f32>)> {
    let mut errors = Vec::with_capacity(signal.info.num_samples());
    let psnr = score(built, signal, Some(&mut errors))?;
    Ok((psnr, errors))
}

fn score(built: &BuiltModel, signal: &Signal, mut errors: Option<&mut Vec<f32>>) -> Result<f64> {
    let c = signal.info.channels;
    let per_row = signal.info.num_samples() / signal.info.shape[0] * c;
    let mut sq = 0f64;
    for_each_band(built, &mut |rows, band| {
        let target = signal.data.slice(rows.start * per_row..rows.end * per_row);
        sq += crate::metrics::clamped_mse(&target, band, 0.0, 1.0) * band.len() as f64;
        if let Some(errors) = errors.as_deref_mut() {
            errors.extend(target.chunks(c).zip(band.chunks(c)).map(|(t, p)| {
                let e: f32 = t
                    .iter()
                    .zip(p)
                    .map(|(&t, &p)| (p.clamp(0.0, 1.0) - t).powi(2))
                    .sum();
                e.sqrt()
            }));
        }
        Ok(())
    })?;
    Ok(crate::metrics::psnr_from_mse(
        sq / signal.data.len() as f64,
        1.0,
    ))
}

/// The target rows of a batch of grid indices, `[n, c]`.
pub fn target_rows(signal: &Signal, idx: &[u32], device: &Device) -> Result<candle_core::Tensor> {
    let shape = &signal.info.shape;
    let c = signal.info.channels;
    let n = idx.len() / shape.len();
    let mut rows = Vec::with_capacity(n * c);
    for x in idx.chunks_exact(shape.len()) {
        let mut flat = 0usize;
        for (a, &v) in x.iter().enumerate() {
            flat = flat * shape[a] + v as usize;
        }
        rows.extend((flat * c..(flat + 1) * c).map(|i| signal.data.get(i)));
    }
    Ok(candle_core::Tensor::from_vec(rows, (n, c), device)?)
}

/// Render a checkpoint: rebuild the model from the file alone and write its signal to `out`, band
/// by band; `region` (one range per axis) renders just that box.
pub fn render(
    ckpt_path: &Path,
    out: &Path,
    device: &Device,
    region: Option<&[std::ops::Range<usize>]>,
) -> Result<SignalInfo> {
    let ckpt = checkpoint::load(ckpt_path, device)?;
    let prefix = match ckpt.meta.kind {
        checkpoint::CheckpointKind::Model => "",
        checkpoint::CheckpointKind::TrainState => "best/",
    };
    let modality = crate::registry::find_modality(&ckpt.meta.signal.modality)?;
    // The writer picks the format, so a name that promises another one is refused.
    let wanted = Path::new(modality.output_file).extension();
    if out.extension().map(|e| e.to_ascii_lowercase()).as_deref() != wanted {
        return Err(Error::Invalid(format!(
            "--out {}: {} checkpoints render to .{} files",
            out.display(),
            modality.name,
            wanted.unwrap_or_default().to_string_lossy()
        )));
    }
    let built = ckpt.build_model(prefix, device, ckpt_path)?;
    let mut info = ckpt.meta.signal.clone();
    match region {
        None => {
            let mut writer = (modality.writer)(&info, out)?;
            for_each_band(&built, &mut |_, band| writer.write_band(band))?;
            writer.finish()?;
        }
        Some(ranges) => {
            let shape = info.shape.clone();
            if ranges.len() != shape.len()
                || ranges
                    .iter()
                    .zip(&shape)
                    .any(|(r, &n)| r.start >= r.end || r.end > n)
            {
                return Err(Error::Invalid(format!(
                    "region {ranges:?} is empty or outside the signal's shape {shape:?}"
                )));
            }
            info.shape = ranges.iter().map(|r| r.len()).collect();
            let mut writer = (modality.writer)(&info, out)?;
            let per_row: usize = info.shape[1..].iter().product();
            let rows = (BAND_SAMPLES / per_row.max(1)).max(1);
            let d = shape.len();
            for r0 in (ranges[0].start..ranges[0].end).step_by(rows) {
                let r1 = (r0 + rows).min(ranges[0].end);
                let mut sub = info.shape.clone();
                sub[0] = r1 - r0;
                let mut idx = crate::models::all_indices(&sub);
                for x in idx.chunks_exact_mut(d) {
                    x[0] += r0 as u32;
                    for a in 1..d {
                        x[a] += ranges[a].start as u32;
                    }
                }
                let band = built.model.forward_points(&idx)?.detach().flatten_all()?;
                writer.write_band(&band.to_vec1::<f32>()?)?;
            }
            writer.finish()?;
        }
    }
    Ok(info)
}
