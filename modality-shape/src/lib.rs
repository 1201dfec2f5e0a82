//! The `shape` modality: OBJ meshes (tobj) fitted as dense 3-D fields on an `R^3` voxel grid over
//! the mesh normalised into `[-1, 1]^3` — the truncated signed distance mapped to `[0, 1]`
//! (`--target sdf`, default) or occupancy — by 3-D ASMR with full-grid activation-sharing steps.
//! The fitted field's surface (marching tetrahedra) is written as OBJ in the mesh's own frame;
//! metrics: IoU of the occupancy over the grid, Chamfer distance (L1, L2) and normal consistency
//! against the source mesh in its own units, and the field's PSNR.

pub mod bvh;
pub mod field;
pub mod mesh;
pub mod metrics;
pub mod render;
pub mod sampling;
pub mod shapes;
pub mod surface;

use std::path::Path;

use asmr_core::config::{parse, OptionSpec, Section, SectionSpec, Value};
use asmr_core::metrics::{clamped_mse, psnr_from_mse, Metrics};
use asmr_core::output::write_bytes_atomic;
use asmr_core::registry::{BandMetrics, BandWriter, Modality, Preview};
use asmr_core::{Error, Result, Samples, Signal, SignalInfo};

use field::{Target, LEVEL};
use mesh::{load_obj, Mesh, Normalisation};

/// Voxels per axis unless `--resolution` says otherwise.
pub const DEFAULT_RESOLUTION: usize = 128;
/// Margin left inside the cube around the normalised mesh.
pub const MARGIN: f64 = 0.05;
/// SDF truncation band, in voxels.
pub const BAND_VOXELS: f64 = 8.0;
/// Surface samples per mesh for Chamfer distance and normal consistency.
pub const SURFACE_SAMPLES: usize = 100_000;
/// Resolution of the built-in example (a torus).
pub const EXAMPLE_RESOLUTION: usize = 48;

/// How a mesh becomes a field: `data.*` of the shape modality.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldOptions {
    /// Voxels per axis.
    pub resolution: usize,
    pub target: Target,
}

impl Section for FieldOptions {
    const PATH: &'static str = "data";
    const DEFAULTS: &'static str = "\
resolution: 128    # voxels per axis of the field (--resolution)
target: sdf        # sdf (truncated signed distance) or occupancy (--target)
";
    const OPTIONS: &'static [OptionSpec] = &[
        OptionSpec::value(
            "resolution",
            "resolution",
            "Voxels per axis of the field (default 128)",
        ),
        OptionSpec::word(
            "target",
            "target",
            "`sdf` (truncated signed distance, default) or `occupancy`",
        ),
    ];

    fn validate(&self) -> Result<()> {
        if !(8..=1024).contains(&self.resolution) {
            return Err(Self::bad(
                "resolution",
                format!("{} must be between 8 and 1024 voxels", self.resolution),
            ));
        }
        Ok(())
    }
}

/// The field of a mesh (in its own frame) as a signal.
pub fn signal_from_mesh(mesh: &Mesh, opts: FieldOptions, source: &str) -> Result<Signal> {
    let norm = Normalisation::fit(mesh, MARGIN);
    let unit = mesh.transformed(|p| norm.forward(p));
    let r = opts.resolution;
    let band = BAND_VOXELS * 2.0 / r as f64;
    let values = field::field(&unit, r, opts.target, band);
    let mut extra = serde_json::Map::new();
    extra.insert("center".into(), serde_json::json!(norm.center));
    extra.insert("scale".into(), serde_json::json!(norm.scale));
    extra.insert(
        "target".into(),
        match opts.target {
            Target::Sdf => "sdf",
            Target::Occupancy => "occupancy",
        }
        .into(),
    );
    extra.insert("band".into(), serde_json::json!(band));
    extra.insert("faces".into(), serde_json::json!(mesh.faces.len()));
    let info = SignalInfo {
        modality: "shape".into(),
        shape: vec![r, r, r],
        channels: 1,
        source: source.to_string(),
        extra,
    };
    Signal::from_samples(info, Samples::F32(values))
}

pub fn load(path: &Path, opts: &FieldOptions) -> Result<Signal> {
    let opts = *opts;
    // The field is R^3 f32 values (and about twice that while it is computed).
    let r = opts.resolution;
    let limit = asmr_core::memory::input_memory_limit();
    let what = format!("a {r}^3 field");
    if let Some(m) =
        asmr_core::memory::input_too_large(&what, r * r * r * 4, limit, "use a lower --resolution")
    {
        return Err(Error::config("data.resolution", m));
    }
    let mesh = load_obj(path)?;
    signal_from_mesh(&mesh, opts, &path.display().to_string())
}

/// The built-in example: a torus made in code.
pub fn example_mesh() -> Mesh {
    shapes::torus(0.55, 0.22, 96, 48)
}

pub fn example() -> Signal {
    let opts = FieldOptions {
        resolution: EXAMPLE_RESOLUTION,
        target: Target::Sdf,
    };
    signal_from_mesh(&example_mesh(), opts, "builtin:torus").expect("the example is well formed")
}

/// The normalisation a signal recorded.
pub fn normalisation(info: &SignalInfo) -> Result<Normalisation> {
    let center = info
        .extra
        .get("center")
        .and_then(|v| serde_json::from_value::<[f64; 3]>(v.clone()).ok());
    let scale = info.extra.get("scale").and_then(|v| v.as_f64());
    match (center, scale) {
        (Some(center), Some(scale)) if scale > 0.0 => Ok(Normalisation { center, scale }),
        _ => Err(Error::Invalid(
            "the shape signal lacks its normalisation (center, scale)".into(),
        )),
    }
}

/// The source mesh of a signal, in its own frame (reloaded from the file, or rebuilt).
pub fn source_mesh(info: &SignalInfo) -> Result<Mesh> {
    match info.source.as_str() {
        "builtin:torus" => Ok(example_mesh()),
        path => load_obj(Path::new(path)),
    }
}

/// The `r^3` side of a shape signal.
fn side(info: &SignalInfo) -> Result<usize> {
    match info.shape.as_slice() {
        [a, b, c] if a == b && b == c && info.channels == 1 => Ok(*a),
        _ => Err(Error::Invalid(format!(
            "a shape field is R x R x R with one channel, not {:?} x {} (shapes render whole, \
             without --region)",
            info.shape, info.channels
        ))),
    }
}

/// The surface of a fitted field in the mesh's own frame.
pub fn surface_in_mesh_frame(values: &[f32], info: &SignalInfo) -> Result<Option<Mesh>> {
    let r = side(info)?;
    let norm = normalisation(info)?;
    Ok(surface::extract(values, r, LEVEL).map(|m| m.transformed(|p| norm.inverse(p))))
}

/// Field PSNR and IoU, and the surface metrics of the extracted surface.
pub struct ShapeMetrics<'a> {
    target: &'a Signal,
    values: Vec<f32>,
}

impl BandMetrics for ShapeMetrics<'_> {
    fn add(&mut self, rows: std::ops::Range<usize>, values: &[f32]) -> Result<()> {
        let slab = self.target.info.num_values() / self.target.info.shape[0];
        if rows.start * slab != self.values.len() || rows.len() * slab != values.len() {
            return Err(Error::Invalid("band does not match the field".into()));
        }
        self.values.extend_from_slice(values);
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<Metrics> {
        let target = self.target.data.values();
        if target.len() != self.values.len() {
            return Err(Error::Invalid(
                "the prediction does not cover the field".into(),
            ));
        }
        let mut m = Metrics::new();
        m.insert(
            "psnr".into(),
            psnr_from_mse(clamped_mse(&target, &self.values, 0.0, 1.0), 1.0),
        );
        m.insert("iou".into(), field::iou(&target, &self.values));
        let info = &self.target.info;
        match surface_in_mesh_frame(&self.values, info)? {
            Some(fitted) => {
                let source = source_mesh(info)?;
                let s = metrics::compare(&fitted, &source, SURFACE_SAMPLES, 7);
                m.insert("chamfer_l1".into(), s.chamfer_l1);
                m.insert("chamfer_l2".into(), s.chamfer_l2);
                m.insert("normal_consistency".into(), s.normal_consistency);
                m.insert("surface_faces".into(), fitted.faces.len() as f64);
            }
            None => {
                m.insert("surface_faces".into(), 0.0);
            }
        }
        Ok(m)
    }
}

fn band_metrics(target: &Signal) -> Result<Box<dyn BandMetrics + '_>> {
    Ok(Box::new(ShapeMetrics {
        target,
        values: Vec::with_capacity(target.info.num_values()),
    }))
}

/// The extracted surface as OBJ, in the mesh's own frame; the field is gathered band by band and
/// meshed when complete.
pub struct ObjBands {
    info: SignalInfo,
    values: Vec<f32>,
    path: std::path::PathBuf,
}

impl BandWriter for ObjBands {
    fn write_band(&mut self, values: &[f32]) -> Result<()> {
        if self.values.len() + values.len() > self.info.num_values() {
            return Err(Error::Invalid("more values than the field holds".into()));
        }
        self.values.extend_from_slice(values);
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<()> {
        if self.values.len() != self.info.num_values() {
            return Err(Error::Invalid(format!(
                "{}: {} of {} field values written",
                self.path.display(),
                self.values.len(),
                self.info.num_values()
            )));
        }
        let header = format!(
            "asmr: surface (level {LEVEL}) of the fitted field of {}",
            self.info.source
        );
        let text = match surface_in_mesh_frame(&self.values, &self.info)? {
            Some(m) => m.to_obj(&header),
            None => format!("# {header}\n# the fitted field has no surface at this level\n"),
        };
        write_bytes_atomic(&self.path, text.as_bytes())
    }
}

fn obj_writer(info: &SignalInfo, path: &Path) -> Result<Box<dyn BandWriter>> {
    side(info)?;
    normalisation(info)?;
    Ok(Box::new(ObjBands {
        info: info.clone(),
        values: Vec::with_capacity(info.num_values()),
        path: path.to_path_buf(),
    }))
}

/// `render.png`: the source and the fitted surface from the same viewpoint.
/// The fitted field's middle slice along the first axis (0.5 on the surface) and its error map,
/// for `summary.png`.
fn preview(target: &Signal, prediction: &[f32]) -> Result<Preview> {
    let r = side(&target.info)?;
    let range = r / 2 * r * r..(r / 2 + 1) * r * r;
    let what = format!("field slice {} of {r} (0.5: the surface)", r / 2);
    let original = target.data.slice(range.clone());
    Preview::of_picture(&original, &prediction[range], (r, r), 1, &what)
}

fn extras(target: &Signal, prediction: &[f32], dir: &Path) -> Result<Vec<String>> {
    let info = &target.info;
    let norm = normalisation(info)?;
    let source = source_mesh(info)?.transformed(|p| norm.forward(p));
    let fitted = surface::extract(prediction, side(info)?, LEVEL);
    let name = "render.png";
    render::write(&source, fitted.as_ref(), &dir.join(name))?;
    Ok(vec![name.into()])
}

asmr_core::inventory::submit! {
    Modality {
        name: "shape",
        description: "meshes (OBJ) as R^3 signed-distance or occupancy fields; IoU, Chamfer, normal consistency; OBJ surface output",
        default_preset: "shape",
        example_preset: "shape-demo",
        output_file: "reconstruction.obj",
        extensions: &["obj"],
        config: SectionSpec::of::<FieldOptions>(),
        load: |path, data: &Value| load(path, &parse::<FieldOptions>(data)?),
        example,
        metrics: band_metrics,
        writer: obj_writer,
        extras: Some(extras),
        preview: Some(preview),
        summary,
    }
}

/// `IoU 0.9812, Chamfer L1 0.0042, normal consistency 0.9731, field PSNR 30.10 dB`.
fn summary(m: &Metrics) -> String {
    let get = |k: &str| m.get(k).copied().unwrap_or(f64::NAN);
    let (iou, psnr) = (get("iou"), get("psnr"));
    if !get("chamfer_l1").is_finite() {
        return format!(
            "IoU {iou:.4}, no surface (the field never crosses 0.5: train longer), field PSNR \
             {psnr:.2} dB"
        );
    }
    format!(
        "IoU {iou:.4}, Chamfer L1 {:.4}, normal consistency {:.4}, field PSNR {psnr:.2} dB",
        get("chamfer_l1"),
        get("normal_consistency"),
    )
}

asmr_core::inventory::submit! {
    asmr_core::registry::Strategy {
        name: "surface",
        modality: "shape",
        description: "minibatches (--batch N) drawing half their voxels from a 2-voxel shell around the surface",
        batches: sampling::surface_batches,
    }
}

asmr_core::preset!(
    "shape",
    "shape",
    "default for meshes: near-surface minibatches (train.strategy surface) on the 128^3 field"
);
asmr_core::preset!(
    "shape",
    "paper-shape",
    "the shape default with the paper's optimiser settings (lr 1e-4, betas 0.9/0.999)"
);
asmr_core::preset!(
    "shape",
    "shape-grid",
    "full-grid steps over the whole field"
);
asmr_core::preset!("shape", "shape-demo", "the built-in torus (48^3 SDF)");

// ASMR's fast recipe for 3-D signals: on the bunny it halves the Chamfer distance of the paper's
// settings at equal time (BENCHMARKS.md, "Shapes"), and a short weight average raises the IoU from
// 0.995 to 0.997 at equal steps ("The weight average").
asmr_core::inventory::submit! {
    asmr_core::FastRecipe {
        modality: "shape",
        model: "asmr",
        optim: asmr_core::config::OptimDefaults {
            ema: 0.9,
            ..asmr_core::models::asmr::FAST_3D
        },
    }
}

asmr_core::inventory::submit! {
    asmr_core::Experiment {
        name: "shapes",
        modality: "shape",
        description: "meshes as occupancy fields: ASMR against SIREN (IoU, Chamfer)",
        data: &["*.obj"],
        expects: "meshes as OBJ files",
        recipes: &[("asmr", "paper-shape"), ("siren", "paper-shape")],
        seeds: &[1, 2, 3],
    }
}
