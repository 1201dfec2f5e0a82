//! Audio bytes (WAV, FLAC, MP3, Ogg) into the audio loader, with the span, channel and resampling
//! options drawn from the first bytes.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut c = common::Choices::new(data);
    let ext = c.pick(&["wav", "flac", "mp3", "ogg"]);
    let mut options = Vec::new();
    let offset = c.pick(&[None, Some("0"), Some("0.01"), Some("0.5"), Some("1e9"), Some("-1")]);
    if let Some(o) = offset {
        options.push(("data.offset", o.to_string()));
    }
    let seconds = c.pick(&[None, Some("0.05"), Some("2"), Some("0"), Some("1e12"), Some("nan")]);
    if let Some(s) = seconds {
        options.push(("data.seconds", s.to_string()));
    }
    let rate = c.pick(&[None, Some("8000"), Some("16000"), Some("44100"), Some("1"), Some("4000000000")]);
    if let Some(r) = rate {
        options.push(("data.sample_rate", r.to_string()));
    }
    let channels = c.pick(&[None, Some("keep"), Some("mix")]);
    if let Some(ch) = channels {
        options.push(("data.channels", ch.to_string()));
    }
    common::load("audio", c.rest, ext, &options);
});
