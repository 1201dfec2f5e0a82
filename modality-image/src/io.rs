//! Decoding photos into signals and writing predictions back as PNG.

use std::io::Write;
use std::path::{Path, PathBuf};

use asmr_core::registry::BandWriter;
use asmr_core::{Error, Result, Samples, Signal, SignalInfo};
use image::{DynamicImage, ImageReader};

/// Read a PNG or JPEG file as an image signal.
pub fn load(path: &Path) -> Result<Signal> {
    let open = || -> Result<ImageReader<std::io::BufReader<std::fs::File>>> {
        ImageReader::open(path)
            .map_err(|e| Error::input(path, format!("cannot open: {e}")))?
            .with_guessed_format()
            .map_err(|e| Error::input(path, format!("cannot read: {e}")))
    };
    let mut reader = open()?;
    match reader.format() {
        Some(image::ImageFormat::Png) | Some(image::ImageFormat::Jpeg) => {}
        Some(f) => {
            return Err(Error::input(
                path,
                format!("{f:?} images are not supported (PNG or JPEG)"),
            ))
        }
        None => return Err(Error::input(path, "not a PNG or JPEG image")),
    }
    // The header says how much a picture needs before any of it is decoded.
    let allowed = asmr_core::memory::input_memory_limit() as u64;
    let (w, h, need) = {
        use image::ImageDecoder;
        let decoder = open()?
            .into_decoder()
            .map_err(|e| Error::input(path, format!("cannot decode image: {e}")))?;
        let (w, h) = decoder.dimensions();
        (w, h, decoder.total_bytes())
    };
    let what = format!("a {w} x {h} picture decoded");
    let fix = "scale it down first";
    if let Some(m) = asmr_core::memory::input_too_large(&what, need as usize, allowed as usize, fix)
    {
        return Err(Error::input(path, m));
    }
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(allowed.max(need));
    reader.limits(limits);
    let img = reader
        .decode()
        .map_err(|e| Error::input(path, format!("cannot decode image: {e}")))?;
    load_image(img, &path.display().to_string())
}

/// Turn a decoded image into a signal; alpha is dropped (with a note).
pub fn load_image(img: DynamicImage, source: &str) -> Result<Signal> {
    use image::ColorType as C;
    let (w, h) = (img.width() as usize, img.height() as usize);
    if w == 0 || h == 0 {
        return Err(Error::input(source, "the image is empty"));
    }
    let color = img.color();
    let gray = matches!(color, C::L8 | C::L16 | C::La8 | C::La16);
    let has_alpha = color.has_alpha();
    let depth = match color {
        C::L8 | C::La8 | C::Rgb8 | C::Rgba8 => 8,
        C::L16 | C::La16 | C::Rgb16 | C::Rgba16 => 16,
        _ => 32,
    };
    // Kept compact: 8- and 16-bit photos stay integers (a quarter or half of f32's memory).
    let data = match (depth, gray) {
        (8, true) => Samples::U8(img.into_luma8().into_raw()),
        (8, false) => Samples::U8(img.into_rgb8().into_raw()),
        (16, true) => Samples::U16(img.into_luma16().into_raw()),
        (16, false) => Samples::U16(img.into_rgb16().into_raw()),
        (_, true) => float_samples(img.to_luma32f().into_raw())?,
        (_, false) => float_samples(img.into_rgb32f().into_raw())?,
    };
    let mut extra = serde_json::Map::new();
    extra.insert("bit_depth".into(), depth.into());
    let mut signal = Signal::from_samples(
        SignalInfo {
            modality: "image".into(),
            shape: vec![h, w],
            channels: if gray { 1 } else { 3 },
            source: source.to_string(),
            extra,
        },
        data,
    )?;
    if has_alpha {
        signal
            .notes
            .push(format!("{source}: alpha channel dropped"));
    }
    Ok(signal)
}

fn float_samples(v: Vec<f32>) -> Result<Samples> {
    if v.iter().any(|x| !x.is_finite()) {
        return Err(Error::Invalid("the image holds non-finite values".into()));
    }
    Ok(Samples::F32(
        v.into_iter().map(|x| x.clamp(0.0, 1.0)).collect(),
    ))
}

/// Write a prediction (training range, clamped) as PNG in one piece.
pub fn write_png(info: &SignalInfo, prediction: &[f32], path: &Path) -> Result<()> {
    if prediction.len() != info.num_values() {
        return Err(Error::Invalid(
            "prediction size does not match the image".into(),
        ));
    }
    let mut w = PngBands::create(info, path)?;
    w.write_band(prediction)?;
    Box::new(w).finish()
}

/// A PNG written band by band through a streaming encoder (the float image is never held whole):
/// 16-bit when the source was deeper than 8 bits, 8-bit otherwise; gray or RGB as the source.
/// It goes to a temporary file that `finish` renames into place.
pub struct PngBands {
    stream: Option<png::StreamWriter<'static, std::fs::File>>,
    /// The same file, to sync it once the encoder has finished.
    file: std::fs::File,
    deep: bool,
    expected: usize,
    written: usize,
    tmp: PathBuf,
    path: PathBuf,
}

impl PngBands {
    pub fn create(info: &SignalInfo, path: &Path) -> Result<Self> {
        if info.shape.len() != 2 || !(info.channels == 1 || info.channels == 3) {
            return Err(Error::Invalid(format!(
                "cannot write shape {:?} x {} as an image",
                info.shape, info.channels
            )));
        }
        let (h, w) = (info.shape[0] as u32, info.shape[1] as u32);
        let deep = info
            .extra
            .get("bit_depth")
            .and_then(|v| v.as_u64())
            .is_some_and(|d| d > 8);
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
        let file = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let png_err = |e: png::EncodingError| Error::Invalid(format!("{}: {e}", path.display()));
        let handle = file.try_clone().map_err(|e| Error::io(&tmp, e))?;
        let mut enc = png::Encoder::new(file, w, h);
        enc.set_color(if info.channels == 1 {
            png::ColorType::Grayscale
        } else {
            png::ColorType::Rgb
        });
        enc.set_depth(if deep {
            png::BitDepth::Sixteen
        } else {
            png::BitDepth::Eight
        });
        let result = enc
            .write_header()
            .and_then(|w| w.into_stream_writer())
            .map_err(png_err);
        match result {
            Ok(stream) => Ok(Self {
                stream: Some(stream),
                file: handle,
                deep,
                expected: info.num_values(),
                written: 0,
                tmp,
                path: path.to_path_buf(),
            }),
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(e)
            }
        }
    }
}

impl BandWriter for PngBands {
    fn write_band(&mut self, values: &[f32]) -> Result<()> {
        self.written += values.len();
        if self.written > self.expected {
            return Err(Error::Invalid("more pixels than the image holds".into()));
        }
        let bytes: Vec<u8> = if self.deep {
            values
                .iter()
                .flat_map(|v| ((v.clamp(0.0, 1.0) * 65535.0).round() as u16).to_be_bytes())
                .collect()
        } else {
            values
                .iter()
                .map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
                .collect()
        };
        let stream = self.stream.as_mut().expect("open until finish");
        stream
            .write_all(&bytes)
            .map_err(|e| Error::io(&self.tmp, e))
    }

    fn finish(mut self: Box<Self>) -> Result<()> {
        if self.written != self.expected {
            return Err(Error::Invalid(format!(
                "{}: {} of {} values written",
                self.path.display(),
                self.written,
                self.expected
            )));
        }
        let stream = self.stream.take().expect("open until finish");
        let result = stream
            .finish()
            .map_err(|e| Error::Invalid(format!("{}: {e}", self.path.display())))
            .and_then(|_| self.file.sync_all().map_err(|e| Error::io(&self.tmp, e)))
            .and_then(|_| {
                std::fs::rename(&self.tmp, &self.path).map_err(|e| Error::io(&self.path, e))
            });
        if result.is_err() {
            let _ = std::fs::remove_file(&self.tmp);
        }
        result
    }
}

impl Drop for PngBands {
    fn drop(&mut self) {
        // Unfinished (an error, a panic): leave nothing behind.
        if self.stream.is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}
