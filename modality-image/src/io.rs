//! Decoding photos into signals and writing predictions back as PNG.

use std::path::Path;

use asmr_core::output::write_atomic;
use asmr_core::{Error, Result, Signal, SignalInfo};
use image::{DynamicImage, ImageReader};

/// Read a PNG or JPEG file as an image signal.
pub fn load(path: &Path) -> Result<Signal> {
    let reader = ImageReader::open(path)
        .map_err(|e| Error::input(path, format!("cannot open: {e}")))?
        .with_guessed_format()
        .map_err(|e| Error::input(path, format!("cannot read: {e}")))?;
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
    let data: Vec<f32> = if gray {
        img.to_luma32f().into_raw()
    } else {
        img.into_rgb32f().into_raw()
    };
    let mut extra = serde_json::Map::new();
    extra.insert("bit_depth".into(), depth.into());
    let mut signal = Signal::new(
        SignalInfo {
            modality: "image".into(),
            shape: vec![h, w],
            channels: if gray { 1 } else { 3 },
            source: source.to_string(),
            extra,
        },
        data.into_iter().map(|v| v.clamp(0.0, 1.0)).collect(),
    )?;
    if has_alpha {
        signal
            .notes
            .push(format!("{source}: alpha channel dropped"));
    }
    Ok(signal)
}

/// Write a prediction (training range, clamped) as PNG: 16-bit when the source was deeper than
/// 8 bits, 8-bit otherwise; gray or RGB as the source.
pub fn write_png(info: &SignalInfo, prediction: &[f32], path: &Path) -> Result<()> {
    if info.shape.len() != 2 || !(info.channels == 1 || info.channels == 3) {
        return Err(Error::Invalid(format!(
            "cannot write shape {:?} x {} as an image",
            info.shape, info.channels
        )));
    }
    if prediction.len() != info.num_values() {
        return Err(Error::Invalid(
            "prediction size does not match the image".into(),
        ));
    }
    let (h, w) = (info.shape[0] as u32, info.shape[1] as u32);
    let deep = info
        .extra
        .get("bit_depth")
        .and_then(|v| v.as_u64())
        .is_some_and(|d| d > 8);
    let img: DynamicImage = if deep {
        let px: Vec<u16> = prediction
            .iter()
            .map(|v| (v.clamp(0.0, 1.0) * 65535.0).round() as u16)
            .collect();
        if info.channels == 1 {
            image::ImageBuffer::<image::Luma<u16>, _>::from_raw(w, h, px).map(Into::into)
        } else {
            image::ImageBuffer::<image::Rgb<u16>, _>::from_raw(w, h, px).map(Into::into)
        }
    } else {
        let px: Vec<u8> = prediction
            .iter()
            .map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
            .collect();
        if info.channels == 1 {
            image::GrayImage::from_raw(w, h, px).map(Into::into)
        } else {
            image::RgbImage::from_raw(w, h, px).map(Into::into)
        }
    }
    .ok_or_else(|| Error::Invalid("image buffer size".into()))?;
    write_atomic(path, |out| {
        img.write_to(out, image::ImageFormat::Png)
            .map_err(|e| Error::Invalid(format!("{}: PNG encoding failed: {e}", path.display())))
    })
}
