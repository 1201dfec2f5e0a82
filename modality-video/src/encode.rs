//! Encoding RGB frames with ffmpeg-next. [`Mp4Bands`] writes a reconstruction as H.264 (yuv420p,
//! near-lossless) MP4 band by band, to a temporary name renamed into place when complete;
//! [`VideoEncoder`] takes any container and codec FFmpeg has (the tests make their clips with it).

use std::path::{Path, PathBuf};

use asmr_core::output::temp_sibling;
use asmr_core::registry::BandWriter;
use asmr_core::{Error, Result, SignalInfo};
use ffmpeg::format::Pixel;
use ffmpeg::software::scaling::{context::Context as Scaler, flag::Flags};
use ffmpeg::util::frame::video::Video;
use ffmpeg::Rational;
use ffmpeg_next as ffmpeg;

/// Container, codec and settings of an encoded clip.
#[derive(Debug, Clone)]
pub struct EncodeSpec<'a> {
    /// FFmpeg muxer name (`mp4`, `matroska`, `avi`, `webm`, `ogg`...).
    pub container: &'a str,
    /// FFmpeg encoder name (`libx264`, `mpeg4`, `libvpx-vp9`, `png`...).
    pub codec: &'a str,
    /// Pixel format the codec is fed.
    pub pixel: Pixel,
    /// Encoder options (`crf`, `preset`...).
    pub options: &'a [(&'a str, &'a str)],
}

/// H.264 in MP4, yuv420p, CRF 10: visually lossless, and players everywhere open it.
pub const MP4_H264: EncodeSpec<'static> = EncodeSpec {
    container: "mp4",
    codec: "libx264",
    pixel: Pixel::YUV420P,
    options: &[("crf", "10"), ("preset", "medium")],
};

/// Frame geometry and timing of an encoded clip.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Geometry {
    pub width: usize,
    pub height: usize,
    /// Frames per second as a fraction.
    pub rate: (i32, i32),
    /// Pixel aspect ratio.
    pub pixel_aspect: (i32, i32),
}

/// An open encoder writing to `path` (the caller handles temporary names).
pub struct VideoEncoder {
    output: ffmpeg::format::context::Output,
    encoder: ffmpeg::encoder::Video,
    scaler: Scaler,
    geometry: Geometry,
    /// Coded size: 4:2:0 formats need even sizes, so the frame is padded by repeating its last
    /// row/column.
    coded: (u32, u32),
    encoder_tb: Rational,
    stream_tb: Rational,
    next_pts: i64,
    path: PathBuf,
}

impl VideoEncoder {
    pub fn create(path: &Path, spec: &EncodeSpec, geometry: Geometry) -> Result<Self> {
        crate::decode::init()?;
        let fail = |what: &str, e: ffmpeg::Error| {
            Error::Invalid(format!("{}: {what} ({e})", path.display()))
        };
        let Geometry {
            width,
            height,
            rate,
            pixel_aspect,
        } = geometry;
        if width == 0 || height == 0 || rate.0 <= 0 || rate.1 <= 0 {
            return Err(Error::Invalid(format!(
                "{}: cannot encode {width}x{height} frames at {}/{} fps",
                path.display(),
                rate.0,
                rate.1
            )));
        }
        let even = |v: usize| -> u32 {
            let v = v as u32;
            if spec.pixel == Pixel::YUV420P {
                v + (v & 1)
            } else {
                v
            }
        };
        let coded = (even(width), even(height));
        let codec = ffmpeg::encoder::find_by_name(spec.codec).ok_or_else(|| {
            Error::Invalid(format!(
                "this FFmpeg has no `{}` encoder (needed for {})",
                spec.codec,
                path.display()
            ))
        })?;
        let mut output = ffmpeg::format::output_as(&path, spec.container)
            .map_err(|e| fail("cannot create the file", e))?;
        let global_header = output
            .format()
            .flags()
            .contains(ffmpeg::format::Flags::GLOBAL_HEADER);
        let mut stream = output
            .add_stream(codec)
            .map_err(|e| fail("cannot add a video stream", e))?;
        let stream_index = stream.index();
        let mut enc = ffmpeg::codec::context::Context::new_with_codec(codec)
            .encoder()
            .video()
            .map_err(|e| fail("not a video encoder", e))?;
        let encoder_tb = Rational::new(rate.1, rate.0);
        enc.set_width(coded.0);
        enc.set_height(coded.1);
        enc.set_format(spec.pixel);
        enc.set_time_base(encoder_tb);
        enc.set_frame_rate(Some(Rational::new(rate.0, rate.1)));
        enc.set_aspect_ratio(Rational::new(pixel_aspect.0, pixel_aspect.1));
        if global_header {
            enc.set_flags(ffmpeg::codec::Flags::GLOBAL_HEADER);
        }
        let mut options = ffmpeg::Dictionary::new();
        for (k, v) in spec.options {
            options.set(k, v);
        }
        let encoder = enc
            .open_with(options)
            .map_err(|e| fail(&format!("cannot open the `{}` encoder", spec.codec), e))?;
        stream.set_parameters(&encoder);
        stream.set_time_base(encoder_tb);
        stream.set_avg_frame_rate(Rational::new(rate.0, rate.1));
        output
            .write_header()
            .map_err(|e| fail("cannot write the header", e))?;
        let stream_tb = output
            .stream(stream_index)
            .map(|s| s.time_base())
            .unwrap_or(encoder_tb);
        let scaler = Scaler::get(
            Pixel::RGB24,
            coded.0,
            coded.1,
            spec.pixel,
            coded.0,
            coded.1,
            Flags::BICUBIC | Flags::ACCURATE_RND | Flags::FULL_CHR_H_INT,
        )
        .map_err(|e| fail("cannot convert RGB frames for the encoder", e))?;
        Ok(Self {
            output,
            encoder,
            scaler,
            geometry,
            coded,
            encoder_tb,
            stream_tb,
            next_pts: 0,
            path: path.to_path_buf(),
        })
    }

    /// Encode one RGB24 frame (`width * height * 3` bytes, raster order).
    pub fn push(&mut self, rgb: &[u8]) -> Result<()> {
        let (w, h) = (self.geometry.width, self.geometry.height);
        if rgb.len() != w * h * 3 {
            return Err(Error::Invalid(format!(
                "{}: a frame of {w}x{h} RGB needs {} bytes, got {}",
                self.path.display(),
                w * h * 3,
                rgb.len()
            )));
        }
        let (cw, ch) = (self.coded.0 as usize, self.coded.1 as usize);
        let mut frame = Video::new(Pixel::RGB24, cw as u32, ch as u32);
        let stride = frame.stride(0);
        let data = frame.data_mut(0);
        for y in 0..ch {
            let src = &rgb[y.min(h - 1) * w * 3..][..w * 3];
            let dst = &mut data[y * stride..][..cw * 3];
            dst[..w * 3].copy_from_slice(src);
            for x in w..cw {
                dst.copy_within((w - 1) * 3..w * 3, x * 3);
            }
        }
        let mut converted = Video::empty();
        self.scaler
            .run(&frame, &mut converted)
            .map_err(|e| self.err("cannot convert a frame", e))?;
        converted.set_pts(Some(self.next_pts));
        self.next_pts += 1;
        self.encoder
            .send_frame(&converted)
            .map_err(|e| self.err("the encoder refused a frame", e))?;
        self.write_packets()
    }

    fn err(&self, what: &str, e: ffmpeg::Error) -> Error {
        Error::Invalid(format!("{}: {what} ({e})", self.path.display()))
    }

    fn write_packets(&mut self) -> Result<()> {
        let mut packet = ffmpeg::Packet::empty();
        while self.encoder.receive_packet(&mut packet).is_ok() {
            packet.set_stream(0);
            // The MP4 muxer of FFmpeg 5.1 drops the last frame of packets without a duration.
            packet.set_duration(1);
            packet.rescale_ts(self.encoder_tb, self.stream_tb);
            packet
                .write_interleaved(&mut self.output)
                .map_err(|e| self.err("cannot write a packet", e))?;
        }
        Ok(())
    }

    /// Flush the encoder and write the trailer.
    pub fn finish(mut self) -> Result<()> {
        self.encoder
            .send_eof()
            .map_err(|e| self.err("cannot flush the encoder", e))?;
        self.write_packets()?;
        self.output
            .write_trailer()
            .map_err(|e| self.err("cannot write the trailer", e))
    }

    pub fn frames_written(&self) -> usize {
        self.next_pts as usize
    }
}

/// Write a whole clip of RGB24 frames to `path` (through a temporary sibling).
pub fn write_clip(path: &Path, spec: &EncodeSpec, geometry: Geometry, rgb: &[u8]) -> Result<()> {
    let tmp = temp_sibling(path);
    let result = (|| {
        let mut enc = VideoEncoder::create(&tmp, spec, geometry)?;
        let frame = geometry.width * geometry.height * 3;
        if frame == 0 || !rgb.len().is_multiple_of(frame) {
            return Err(Error::Invalid(format!(
                "{}: {} bytes are not whole {}x{} RGB frames",
                path.display(),
                rgb.len(),
                geometry.width,
                geometry.height
            )));
        }
        for f in rgb.chunks_exact(frame) {
            enc.push(f)?;
        }
        enc.finish()?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The geometry a signal's `info` describes (`shape (t, h, w)`, `rate`, `pixel_aspect` extras).
pub fn geometry(info: &SignalInfo) -> Result<Geometry> {
    if info.shape.len() != 3 || info.channels != 3 {
        return Err(Error::Invalid(format!(
            "cannot write shape {:?} x {} as an RGB video",
            info.shape, info.channels
        )));
    }
    let pair = |key: &str, default: (i32, i32)| -> (i32, i32) {
        info.extra
            .get(key)
            .and_then(|v| v.as_array())
            .and_then(|a| Some((a.first()?.as_i64()? as i32, a.get(1)?.as_i64()? as i32)))
            .filter(|(a, b)| *a > 0 && *b > 0)
            .unwrap_or(default)
    };
    Ok(Geometry {
        width: info.shape[2],
        height: info.shape[1],
        rate: pair("rate", (25, 1)),
        pixel_aspect: pair("pixel_aspect", (1, 1)),
    })
}

/// The reconstruction as H.264 MP4, fed band by band (whole frames or parts of them).
pub struct Mp4Bands {
    encoder: Option<VideoEncoder>,
    pending: Vec<u8>,
    frame: usize,
    expected: usize,
    tmp: PathBuf,
    path: PathBuf,
}

impl Mp4Bands {
    pub fn create(info: &SignalInfo, path: &Path) -> Result<Self> {
        let geometry = geometry(info)?;
        let tmp = temp_sibling(path);
        let encoder = match VideoEncoder::create(&tmp, &MP4_H264, geometry) {
            Ok(e) => e,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        Ok(Self {
            encoder: Some(encoder),
            pending: Vec::new(),
            frame: geometry.width * geometry.height * 3,
            expected: info.shape[0],
            tmp,
            path: path.to_path_buf(),
        })
    }
}

impl BandWriter for Mp4Bands {
    fn write_band(&mut self, values: &[f32]) -> Result<()> {
        let encoder = self.encoder.as_mut().expect("open until finish");
        self.pending.extend(
            values
                .iter()
                .map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8),
        );
        let whole = self.pending.len() / self.frame * self.frame;
        for f in self.pending[..whole].chunks_exact(self.frame) {
            if encoder.frames_written() >= self.expected {
                return Err(Error::Invalid("more frames than the clip holds".into()));
            }
            encoder.push(f)?;
        }
        self.pending.drain(..whole);
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<()> {
        let encoder = self.encoder.take().expect("open until finish");
        let result = if encoder.frames_written() != self.expected || !self.pending.is_empty() {
            Err(Error::Invalid(format!(
                "{}: {} of {} frames written",
                self.path.display(),
                encoder.frames_written(),
                self.expected
            )))
        } else {
            encoder.finish().and_then(|_| {
                std::fs::rename(&self.tmp, &self.path).map_err(|e| Error::io(&self.path, e))
            })
        };
        if result.is_err() {
            let _ = std::fs::remove_file(&self.tmp);
        }
        result
    }
}

impl Drop for Mp4Bands {
    fn drop(&mut self) {
        // Unfinished (an error, a panic): leave nothing behind.
        if self.encoder.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}
