//! `.npy` bytes into the array modality, with its channel-axis and normalisation options.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut c = common::Choices::new(data);
    let mut options = Vec::new();
    if let Some(a) = c.pick(&[None, Some("0"), Some("-1"), Some("2"), Some("-9")]) {
        options.push(("data.channel_axis", a.to_string()));
    }
    let n = c.pick(&["range", "channel", "none"]);
    options.push(("data.normalize", n.to_string()));
    common::load("array", c.rest, "npy", &options);
});
