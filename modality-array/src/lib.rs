//! The `array` modality: N-D NumPy arrays (`.npy`) — scientific fields, CT volumes, 4-D data — as
//! signals over their axes, with an optional channel axis (`--channel-axis`). Values are mapped
//! into the training range by the array's own range (or each channel's, or not at all:
//! `--normalize`) and mapped back on output. Metrics: PSNR over the data range and the relative L2
//! error, both of the values as written. Output: `reconstruction.npy` with the input's shape and
//! dtype.

mod example;
pub mod npy;
pub mod options;

use std::path::Path;

use asmr_core::config::{parse, SectionSpec, Value};
use asmr_core::memory::{input_memory_limit, input_too_large};
use asmr_core::metrics::{psnr_from_mse, Metrics};
use asmr_core::output::write_atomic;
use asmr_core::registry::{BandMetrics, BandWriter, Modality, Preview};
use asmr_core::{Error, Result, Samples, Signal, SignalInfo};
use serde::{Deserialize, Serialize};

pub use example::example;
pub use npy::{Array, Kind};
pub use options::{ArrayOptions, Normalize};

/// How a signal's training values map back to the array: per channel `x = v * scale + offset`,
/// where the channel axis sits, and the dtype to write. Kept in the signal's `extra` (and so in
/// checkpoints) under `array`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Layout {
    pub dtype: String,
    pub channel_axis: Option<usize>,
    pub scale: Vec<f64>,
    pub offset: Vec<f64>,
    /// The whole array's smallest and largest value (the data range of the PSNR).
    pub min: f64,
    pub max: f64,
}

impl Layout {
    pub fn of(info: &SignalInfo) -> Result<Self> {
        let v = info
            .extra
            .get("array")
            .cloned()
            .ok_or_else(|| Error::Invalid("the signal lacks its array layout".into()))?;
        serde_json::from_value(v).map_err(|e| Error::Invalid(format!("array layout: {e}")))
    }

    pub fn kind(&self) -> Result<Kind> {
        let t: npyz::TypeStr = self
            .dtype
            .parse()
            .map_err(|e| Error::Invalid(format!("dtype {}: {e}", self.dtype)))?;
        Kind::of(&t).map_err(Error::Invalid)
    }

    /// Data range of the PSNR: the array's max - min (1 for a constant array).
    pub fn range(&self) -> f64 {
        let r = self.max - self.min;
        if r > 0.0 {
            r
        } else {
            1.0
        }
    }

    /// The array value of training value `v` of channel `c`, as the dtype stores it (`v` is
    /// clamped to the training range first, as every metric of the toolkit clamps).
    pub fn restore(&self, kind: Kind, v: f32, c: usize) -> f64 {
        kind.stored(v.clamp(0.0, 1.0) as f64 * self.scale[c] + self.offset[c])
    }

    /// The array's shape for a signal shape (channels go back to their axis).
    pub fn array_shape(&self, shape: &[usize], channels: usize) -> Vec<usize> {
        let mut s = shape.to_vec();
        if let Some(a) = self.channel_axis {
            s.insert(a.min(s.len()), channels);
        }
        s
    }
}

/// Which way [`move_channels`] goes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ChannelMove {
    /// `[before, c, after]` to `[before, after, c]` (reading an array).
    ToLast,
    /// `[before, after, c]` to `[before, c, after]` (writing it back).
    BackToAxis,
}

/// Move a channel axis of `c` entries, with `before` entries ahead of it (the product of the
/// axes before it), between its place and the end of a C-order array.
fn move_channels(values: &[f64], before: usize, c: usize, dir: ChannelMove) -> Vec<f64> {
    let after = values.len() / c.max(1) / before.max(1);
    let mut out = vec![0.0; values.len()];
    for b in 0..before {
        for k in 0..c {
            for t in 0..after {
                let at_axis = (b * c + k) * after + t;
                let last = (b * after + t) * c + k;
                match dir {
                    ChannelMove::ToLast => out[last] = values[at_axis],
                    ChannelMove::BackToAxis => out[at_axis] = values[last],
                }
            }
        }
    }
    out
}

/// An array as a signal: the channel axis moved last, values normalised as `options` say.
pub fn signal_from_array(a: Array, options: &ArrayOptions, source: &str) -> Result<Signal> {
    let bad = |m: String| Error::input(source, m);
    if let Some(i) = a.values.iter().position(|v| !v.is_finite()) {
        return Err(bad(format!(
            "holds NaN or infinite values (the first at flat index {i}); replace them (np.nan_to_num) \
             or mask them out before fitting"
        )));
    }
    let ndim = a.shape.len();
    let channel_axis = options
        .resolve_channel_axis(ndim)
        .map_err(|m| Error::config("data.channel_axis", format!("{m} (shape {:?})", a.shape)))?;
    let (shape, channels, values) = match channel_axis {
        None => (a.shape.clone(), 1, a.values),
        Some(ax) => {
            let c = a.shape[ax];
            let before: usize = a.shape[..ax].iter().product();
            let moved = move_channels(&a.values, before, c, ChannelMove::ToLast);
            let mut s = a.shape.clone();
            s.remove(ax);
            (s, c, moved)
        }
    };
    let (min, max) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let (scale, offset): (Vec<f64>, Vec<f64>) = match options.normalize {
        Normalize::Range => {
            let s = if max > min { max - min } else { 1.0 };
            (vec![s; channels], vec![min; channels])
        }
        Normalize::Channel => (0..channels)
            .map(|k| {
                let (lo, hi) = values
                    .iter()
                    .skip(k)
                    .step_by(channels)
                    .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
                        (lo.min(v), hi.max(v))
                    });
                (if hi > lo { hi - lo } else { 1.0 }, lo)
            })
            .unzip(),
        Normalize::None => {
            if min < 0.0 || max > 1.0 {
                return Err(Error::config(
                    "data.normalize",
                    format!(
                        "none needs values in [0, 1]; this array spans {min} .. {max} (use range \
                         or channel)"
                    ),
                ));
            }
            (vec![1.0; channels], vec![0.0; channels])
        }
    };
    let data: Vec<f32> = values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let k = i % channels;
            ((v - offset[k]) / scale[k]) as f32
        })
        .collect();
    let layout = Layout {
        dtype: a.dtype,
        channel_axis,
        scale,
        offset,
        min,
        max,
    };
    let mut extra = serde_json::Map::new();
    extra.insert(
        "array".into(),
        serde_json::to_value(&layout).map_err(|e| Error::Invalid(e.to_string()))?,
    );
    let info = SignalInfo {
        modality: "array".into(),
        shape,
        channels,
        source: source.to_string(),
        extra,
    };
    Signal::from_samples(info, Samples::F32(data))
}

/// Read an `.npy` file as a signal; an array too large for memory is refused from its header.
pub fn load(path: &Path, options: &ArrayOptions) -> Result<Signal> {
    load_limited(path, options, input_memory_limit())
}

/// [`load`] with an explicit memory limit in bytes (of the f32 signal it becomes).
pub fn load_limited(path: &Path, options: &ArrayOptions, limit: usize) -> Result<Signal> {
    let array = npy::read(path, |h| {
        let what = format!("a {:?} array", h.shape);
        match input_too_large(
            &what,
            h.count.saturating_mul(4),
            limit,
            "fit a smaller part of it",
        ) {
            Some(m) => Err(Error::input(path, m)),
            None => Ok(()),
        }
    })?;
    signal_from_array(array, options, &path.display().to_string())
}

/// PSNR over the array's data range and relative L2 error, of the values as written.
pub struct ArrayMetrics<'a> {
    target: &'a Signal,
    layout: Layout,
    kind: Kind,
    error: f64,
    energy: f64,
    count: usize,
}

impl<'a> ArrayMetrics<'a> {
    pub fn new(target: &'a Signal) -> Result<Self> {
        let layout = Layout::of(&target.info)?;
        Ok(Self {
            target,
            kind: layout.kind()?,
            layout,
            error: 0.0,
            energy: 0.0,
            count: 0,
        })
    }
}

impl BandMetrics for ArrayMetrics<'_> {
    fn add(&mut self, rows: std::ops::Range<usize>, values: &[f32]) -> Result<()> {
        let c = self.target.info.channels;
        let per_row = self.target.info.num_values() / self.target.info.shape[0];
        let range = rows.start * per_row..rows.end * per_row;
        if range.end > self.target.data.len() || range.len() != values.len() {
            return Err(Error::Invalid("band does not match the array".into()));
        }
        for (i, &p) in range.zip(values) {
            let k = i % c;
            let x = self.layout.restore(self.kind, self.target.data.get(i), k);
            let e = self.layout.restore(self.kind, p, k) - x;
            self.error += e * e;
            self.energy += x * x;
        }
        self.count += values.len();
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<Metrics> {
        let mse = self.error / self.count.max(1) as f64;
        let mut m = Metrics::new();
        m.insert("psnr".into(), psnr_from_mse(mse, self.layout.range()));
        m.insert(
            "relative_l2".into(),
            (self.error / self.energy.max(f64::MIN_POSITIVE)).sqrt(),
        );
        m.insert("data_range".into(), self.layout.range());
        Ok(m)
    }
}

/// Collects bands, then writes the whole array (its channel axis back in place) atomically.
pub struct NpyBands {
    path: std::path::PathBuf,
    layout: Layout,
    kind: Kind,
    shape: Vec<usize>,
    channels: usize,
    values: Vec<f64>,
}

impl NpyBands {
    pub fn create(info: &SignalInfo, path: &Path) -> Result<Self> {
        let layout = Layout::of(info)?;
        Ok(Self {
            path: path.to_path_buf(),
            kind: layout.kind()?,
            layout,
            shape: info.shape.clone(),
            channels: info.channels,
            values: Vec::with_capacity(info.num_values()),
        })
    }
}

impl BandWriter for NpyBands {
    fn write_band(&mut self, values: &[f32]) -> Result<()> {
        let c = self.channels;
        let base = self.values.len();
        self.values.extend(
            values
                .iter()
                .enumerate()
                .map(|(i, &v)| self.layout.restore(self.kind, v, (base + i) % c)),
        );
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<()> {
        let n: usize = self.shape.iter().product::<usize>() * self.channels;
        if self.values.len() != n {
            return Err(Error::Invalid(format!(
                "{}: {} values written, the array holds {n}",
                self.path.display(),
                self.values.len()
            )));
        }
        let c = self.channels;
        let values = match self.layout.channel_axis {
            None => self.values,
            Some(ax) => {
                let before: usize = self.shape[..ax.min(self.shape.len())].iter().product();
                move_channels(&self.values, before, c, ChannelMove::BackToAxis)
            }
        };
        let shape = self.layout.array_shape(&self.shape, c);
        write_atomic(&self.path, |w| {
            npy::write(w, &shape, &self.layout.dtype, &values)
        })
    }
}

/// `PSNR 41.20 dB over the data range 3.5, relative L2 error 0.0123`.
fn summary(m: &Metrics) -> String {
    let get = |k: &str| m.get(k).copied().unwrap_or(f64::NAN);
    format!(
        "PSNR {:.2} dB over the data range {:.4}, relative L2 error {:.4}",
        get("psnr"),
        get("data_range"),
        get("relative_l2")
    )
}

fn band_metrics(target: &Signal) -> Result<Box<dyn BandMetrics + '_>> {
    Ok(Box::new(ArrayMetrics::new(target)?))
}

/// A 2-D slice through the middle of the array (its last two signal axes, the others at their
/// middle index; the first channel) and its error map, for `summary.png`.
fn preview(target: &Signal, prediction: &[f32]) -> Result<Preview> {
    let shape = &target.info.shape;
    let c = target.info.channels;
    let d = shape.len();
    let (h, w) = match d {
        1 => (1, shape[0]),
        _ => (shape[d - 2], shape[d - 1]),
    };
    let lead: Vec<usize> = shape[..d.saturating_sub(2)].iter().map(|n| n / 2).collect();
    let mut start = 0;
    for (a, &i) in lead.iter().enumerate() {
        start = start * shape[a] + i;
    }
    let plane = h * w;
    let first = |v: &[f32]| -> Vec<f32> {
        v[start * plane * c..(start + 1) * plane * c]
            .iter()
            .step_by(c)
            .copied()
            .collect()
    };
    let what = if lead.is_empty() {
        format!("{h} x {w}, channel 0")
    } else {
        format!("slice {lead:?} of {shape:?}, channel 0")
    };
    Preview::of_picture(
        &first(&target.data.values()),
        &first(prediction),
        (h, w),
        1,
        &what,
    )
}

fn npy_writer(info: &SignalInfo, path: &Path) -> Result<Box<dyn BandWriter>> {
    Ok(Box::new(NpyBands::create(info, path)?))
}

asmr_core::inventory::submit! {
    Modality {
        name: "array",
        description: "N-D NumPy arrays (.npy: fields, volumes, 4-D data; float, int), optional channel axis; PSNR over the data range, relative L2; .npy output",
        default_preset: "array",
        example_preset: "array-demo",
        output_file: "reconstruction.npy",
        extensions: &["npy"],
        config: SectionSpec::of::<ArrayOptions>(),
        load: |path, data: &Value| load(path, &parse::<ArrayOptions>(data)?),
        example,
        metrics: band_metrics,
        writer: npy_writer,
        extras: None,
        preview: Some(preview),
        summary,
    }
}

asmr_core::preset!("array", "array", "default for arrays of any number of axes");
asmr_core::preset!(
    "array",
    "array-demo",
    "the built-in example (a 24 x 40 x 40 field)"
);
asmr_core::preset!(
    "array",
    "array-volume",
    "volumes (CT scans, simulation fields)"
);
