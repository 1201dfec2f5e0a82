//! Decoding clips with ffmpeg-next into RGB frames: any container and codec the system's FFmpeg
//! reads, with a start time, a frame count, a frame stride and an optional size (swscale, Lanczos).

use std::path::Path;

use asmr_core::config::{OptionSpec, Section};
use asmr_core::{Error, Result};
use ffmpeg::format::Pixel;
use ffmpeg::media::Type;
use ffmpeg::software::scaling::{context::Context as Scaler, flag::Flags};
use ffmpeg::util::frame::video::Video;
use ffmpeg::Rational;
use ffmpeg_next as ffmpeg;

/// What to take from a clip.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DecodeOptions {
    /// Seconds into the clip of the first frame kept.
    pub start: Option<f64>,
    /// Frames to keep (after the stride); all by default.
    pub frames: Option<usize>,
    /// Keep every `stride`-th frame (1: all).
    pub stride: usize,
    /// Scale every frame to this `(width, height)`.
    pub size: Option<(u32, u32)>,
    /// Most bytes the kept frames may take (RGB24); `None`: `asmr_core::memory::input_memory_limit`.
    pub max_bytes: Option<usize>,
}

impl DecodeOptions {
    /// From the configuration's `data` section (already validated).
    pub fn from_config(o: &VideoOptions) -> Self {
        DecodeOptions {
            start: o.start,
            frames: o.frames,
            stride: o.stride,
            size: o.size.as_deref().and_then(parse_size),
            max_bytes: None,
        }
    }
}

/// `WxH` (e.g. `480x270`), each side 1 to 16384.
pub fn parse_size(v: &str) -> Option<(u32, u32)> {
    let (w, h) = v.split_once(['x', 'X'])?;
    let (w, h) = (w.trim().parse::<u32>().ok()?, h.trim().parse::<u32>().ok()?);
    (w > 0 && h > 0 && w <= 16384 && h <= 16384).then_some((w, h))
}

/// `data.*` of the video modality: which frames are fitted, at which size.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VideoOptions {
    /// Seconds into the clip of the first frame kept.
    pub start: Option<f64>,
    /// Frames to keep (after the stride); all by default.
    pub frames: Option<usize>,
    /// Keep every `stride`-th frame.
    pub stride: usize,
    /// Scale frames to `WxH` (Lanczos).
    pub size: Option<String>,
}

impl Section for VideoOptions {
    const PATH: &'static str = "data";
    const DEFAULTS: &'static str = "\
start: null        # seconds into the clip of the first frame (--start)
frames: null       # frames to keep, after the stride (--frames); null: all
stride: 1          # keep every K-th frame (--stride)
size: null         # scale frames to WxH, Lanczos (--size); null: as stored
";
    const OPTIONS: &'static [OptionSpec] = &[
        OptionSpec::value(
            "start",
            "start",
            "Seconds into the clip of the first frame kept",
        ),
        OptionSpec::value("frames", "frames", "Frames to keep (after --stride)"),
        OptionSpec::value("stride", "stride", "Keep every K-th frame"),
        OptionSpec::word(
            "size",
            "size",
            "Scale frames to WxH (Lanczos), e.g. 480x270",
        ),
    ];

    fn validate(&self) -> Result<()> {
        if let Some(s) = self.start {
            if !(s.is_finite() && s >= 0.0) {
                return Err(Self::bad(
                    "start",
                    format!("`{s}` must be zero or more seconds"),
                ));
            }
        }
        if self.frames == Some(0) {
            return Err(Self::bad("frames", "`0` must be at least 1"));
        }
        if self.stride == 0 {
            return Err(Self::bad("stride", "`0` must be at least 1"));
        }
        if let Some(v) = &self.size {
            if parse_size(v).is_none() {
                return Err(Self::bad(
                    "size",
                    format!("`{v}` is not a size WxH (e.g. 480x270)"),
                ));
            }
        }
        Ok(())
    }
}

/// Decoded frames, RGB24, raster order, channels last.
#[derive(Debug, Clone)]
pub struct Clip {
    pub frames: usize,
    pub width: usize,
    pub height: usize,
    pub rgb: Vec<u8>,
    /// Frame rate of the kept frames (the source's divided by the stride).
    pub rate: (i32, i32),
    /// Sample (pixel) aspect ratio; `(1, 1)` for square pixels.
    pub pixel_aspect: (i32, i32),
    pub codec: String,
    pub notes: Vec<String>,
}

pub(crate) fn init() -> Result<()> {
    ffmpeg::init().map_err(|e| Error::Invalid(format!("FFmpeg failed to initialise: {e}")))?;
    // Our errors name the problem; FFmpeg's own log lines would only repeat it.
    ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Quiet);
    Ok(())
}

pub fn decode(path: &Path, opts: &DecodeOptions) -> Result<Clip> {
    init()?;
    let err = |m: String| Error::input(path, m);
    if !path.exists() {
        return Err(err("no such file".into()));
    }
    let mut input = ffmpeg::format::input(&path)
        .map_err(|e| err(format!("not a media file FFmpeg can read ({e})")))?;
    let stream = input
        .streams()
        .best(Type::Video)
        .ok_or_else(|| err("has no video stream (an audio-only file?)".into()))?;
    let index = stream.index();
    let time_base = stream.time_base();
    let declared = stream.frames().max(0) as usize;
    // Without a frame count (Matroska, WebM...), the header's duration says how many to expect.
    let stream_seconds = (stream.duration() > 0)
        .then(|| stream.duration() as f64 * f64::from(time_base))
        .or_else(|| (input.duration() > 0).then(|| input.duration() as f64 / 1e6));
    let mut rate = stream.avg_frame_rate();
    if rate.numerator() <= 0 || rate.denominator() <= 0 {
        rate = stream.rate();
    }
    if rate.numerator() <= 0 || rate.denominator() <= 0 {
        return Err(err("the video stream has no frame rate".into()));
    }
    let context = ffmpeg::codec::context::Context::from_parameters(stream.parameters())
        .map_err(|e| err(format!("cannot read the stream's codec parameters ({e})")))?;
    let mut decoder = context
        .decoder()
        .video()
        .map_err(|e| err(format!("no decoder for this video codec ({e})")))?;
    let codec = decoder
        .codec()
        .map(|c| c.name().to_string())
        .unwrap_or_else(|| "unknown".into());
    let start_ts = match opts.start {
        Some(s) if s > 0.0 => {
            // Seek to the key frame at or before `start`, then drop frames until `start`.
            let ts = (s * f64::from(ffmpeg::ffi::AV_TIME_BASE)) as i64;
            input
                .seek(ts, ..ts + 1)
                .map_err(|e| err(format!("cannot seek to {s} s ({e})")))?;
            Some(s)
        }
        _ => None,
    };

    let mut state = FrameSink {
        opts,
        max_bytes: opts
            .max_bytes
            .unwrap_or_else(asmr_core::memory::input_memory_limit),
        // What the header promises, to refuse a clip too large before decoding all of it.
        expected: {
            let stride = opts.stride.max(1);
            let available =
                (declared > 0 && opts.start.is_none()).then(|| declared.div_ceil(stride));
            match (opts.frames, available) {
                (Some(n), Some(a)) => Some(n.min(a)),
                (n, a) => n.or(a),
            }
        },
        start: start_ts,
        time_base,
        frame_period: f64::from(rate.invert()),
        seen: 0,
        kept: 0,
        scaler: None,
        size: None,
        rgb: Vec::new(),
        pixel_aspect: decoder.aspect_ratio(),
        source_size: (0, 0),
    };
    let mut corrupt = 0usize;
    let mut read_error = None;
    let mut packet = ffmpeg::Packet::empty();
    loop {
        if state.full() {
            break;
        }
        match packet.read(&mut input) {
            Ok(()) => {}
            Err(ffmpeg::Error::Eof) => break,
            Err(ffmpeg::Error::InvalidData) => {
                corrupt += 1;
                continue;
            }
            Err(e) => {
                read_error = Some(e);
                break;
            }
        }
        if packet.stream() != index {
            continue;
        }
        if decoder.send_packet(&packet).is_err() {
            corrupt += 1;
            continue;
        }
        state.drain(&mut decoder).map_err(err)?;
    }
    if !state.full() && decoder.send_eof().is_ok() {
        state.drain(&mut decoder).map_err(err)?;
    }
    if let Some(e) = read_error {
        return Err(err(format!(
            "reading stopped after {} frames: {e} (truncated or damaged file?)",
            state.seen
        )));
    }
    let limited = opts.start.is_some() || opts.frames.is_some();
    if !limited && declared > 0 && state.seen < declared {
        return Err(err(format!(
            "the container declares {declared} frames but only {} could be decoded \
             (truncated or damaged file?)",
            state.seen
        )));
    }
    if let (false, 0, Some(secs)) = (limited, declared, stream_seconds) {
        // Some slack: durations are rounded and the last frame's length is a guess.
        let expected = secs * f64::from(rate);
        if (state.seen as f64) < expected * 0.95 - 1.0 {
            return Err(err(format!(
                "the container's duration ({secs:.2} s) holds about {expected:.0} frames but \
                 only {} could be decoded (truncated or damaged file?)",
                state.seen
            )));
        }
    }
    let Some((width, height)) = state.size else {
        return Err(err(if start_ts.is_some() {
            format!("no frames at or after {} s", opts.start.unwrap_or(0.0))
        } else {
            "no frames could be decoded".to_string()
        }));
    };
    let mut notes = Vec::new();
    if corrupt > 0 {
        notes.push(format!("{corrupt} damaged packets were skipped"));
    }
    if let Some(n) = opts.frames.filter(|&n| state.kept < n) {
        notes.push(format!(
            "--frames {n}: the clip holds {} frames from there (at stride {}); fitting those",
            state.kept,
            opts.stride.max(1)
        ));
    }
    let mut aspect = reduce((
        state.pixel_aspect.numerator(),
        state.pixel_aspect.denominator(),
    ));
    if aspect.0 <= 0 || aspect.1 <= 0 {
        aspect = (1, 1);
    }
    if let (Some((w, h)), true) = (opts.size, aspect != (1, 1) || state.scaled()) {
        // Keep the display shape: the new pixel aspect is what maps WxH onto the source's picture.
        let (sw, sh) = state.source_size;
        let num = i64::from(aspect.0) * i64::from(sw) * i64::from(h);
        let den = i64::from(aspect.1) * i64::from(sh) * i64::from(w);
        aspect = reduce_i64(num, den);
    }
    if aspect != (1, 1) {
        notes.push(format!(
            "pixels are {}:{} (not square): fitted as stored; the MP4 carries the same aspect",
            aspect.0, aspect.1
        ));
    }
    let stride = opts.stride.max(1) as i32;
    let rate = reduce((rate.numerator(), rate.denominator().saturating_mul(stride)));
    Ok(Clip {
        frames: state.kept,
        width,
        height,
        rgb: state.rgb,
        rate,
        pixel_aspect: aspect,
        codec,
        notes,
    })
}

/// Receives decoded frames: drops those before `start` and between strides, scales the rest to
/// RGB24 at the output size and appends them.
struct FrameSink<'a> {
    opts: &'a DecodeOptions,
    max_bytes: usize,
    /// Frames the clip should give, when the header and options say.
    expected: Option<usize>,
    start: Option<f64>,
    time_base: Rational,
    frame_period: f64,
    /// Frames at or after `start` (before the stride).
    seen: usize,
    kept: usize,
    scaler: Option<(Scaler, Pixel, u32, u32)>,
    /// Output size, fixed by the first kept frame.
    size: Option<(usize, usize)>,
    rgb: Vec<u8>,
    pixel_aspect: Rational,
    /// Decoded size of the first kept frame.
    source_size: (u32, u32),
}

impl FrameSink<'_> {
    fn full(&self) -> bool {
        self.opts.frames.is_some_and(|n| self.kept >= n)
    }

    fn scaled(&self) -> bool {
        self.opts.size.is_some()
    }

    fn drain(&mut self, decoder: &mut ffmpeg::decoder::Video) -> std::result::Result<(), String> {
        let mut frame = Video::empty();
        while !self.full() && decoder.receive_frame(&mut frame).is_ok() {
            if let Some(start) = self.start {
                let t = frame
                    .timestamp()
                    .map(|ts| ts as f64 * f64::from(self.time_base));
                // Half a frame of slack: timestamps are rounded to the time base.
                if t.is_some_and(|t| t < start - 0.5 * self.frame_period) {
                    continue;
                }
            }
            let index = self.seen;
            self.seen += 1;
            if !index.is_multiple_of(self.opts.stride.max(1)) {
                continue;
            }
            self.keep(&frame)?;
        }
        Ok(())
    }

    fn keep(&mut self, frame: &Video) -> std::result::Result<(), String> {
        let (fw, fh) = (frame.width(), frame.height());
        if fw == 0 || fh == 0 {
            return Err("a decoded frame has no pixels".into());
        }
        let (ow, oh) = match self.size {
            Some((w, h)) => (w as u32, h as u32),
            None => self.opts.size.unwrap_or((fw, fh)),
        };
        let frame_bytes = ow as usize * oh as usize * 3;
        let frames = if self.size.is_none() {
            self.expected.unwrap_or(1).max(1)
        } else {
            self.kept + 1
        };
        let what = format!("{frames} frames of {ow}x{oh} (8-bit RGB)");
        let fix = "keep fewer frames (--frames, --stride) or scale them down (--size)";
        let need = frames.saturating_mul(frame_bytes);
        if let Some(m) = asmr_core::memory::input_too_large(&what, need, self.max_bytes, fix) {
            return Err(m);
        }
        if self.size.is_none() {
            self.rgb.reserve_exact(frames * frame_bytes);
            self.size = Some((ow as usize, oh as usize));
            self.source_size = (fw, fh);
            let sar = frame.aspect_ratio();
            if sar.numerator() > 0 && sar.denominator() > 0 {
                self.pixel_aspect = sar;
            }
        }
        let fmt = frame.format();
        let stale = self
            .scaler
            .as_ref()
            .is_none_or(|(_, f, w, h)| (*f, *w, *h) != (fmt, fw, fh));
        if stale {
            // A new scaler whenever the decoded size or format changes mid-clip.
            let s = Scaler::get(fmt, fw, fh, Pixel::RGB24, ow, oh, Flags::LANCZOS)
                .map_err(|e| format!("cannot convert {fmt:?} frames to RGB ({e})"))?;
            self.scaler = Some((s, fmt, fw, fh));
        }
        let (scaler, ..) = self.scaler.as_mut().expect("set above");
        let mut rgb = Video::empty();
        scaler
            .run(frame, &mut rgb)
            .map_err(|e| format!("cannot convert a frame to RGB ({e})"))?;
        let row = ow as usize * 3;
        let stride = rgb.stride(0);
        let data = rgb.data(0);
        for y in 0..oh as usize {
            self.rgb
                .extend_from_slice(&data[y * stride..y * stride + row]);
        }
        self.kept += 1;
        Ok(())
    }
}

fn reduce(r: (i32, i32)) -> (i32, i32) {
    reduce_i64(i64::from(r.0), i64::from(r.1))
}

fn reduce_i64(a: i64, b: i64) -> (i32, i32) {
    fn gcd(a: i64, b: i64) -> i64 {
        if b == 0 {
            a.abs()
        } else {
            gcd(b, a % b)
        }
    }
    let g = gcd(a, b).max(1);
    ((a / g) as i32, (b / g) as i32)
}
