//! Image bytes (PNG or JPEG) into the image loader.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut c = common::Choices::new(data);
    let ext = c.pick(&["png", "jpg"]);
    common::load("image", c.rest, ext, &[]);
});
