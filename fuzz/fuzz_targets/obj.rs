//! OBJ text into the mesh, field and surface path of the shape modality (a coarse field, so each
//! input stays quick).
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut c = common::Choices::new(data);
    let resolution = c.pick(&["8", "12", "16"]);
    let target = c.pick(&["sdf", "occupancy"]);
    common::load(
        "shape",
        c.rest,
        "obj",
        &[("data.resolution", resolution.into()), ("data.target", target.into())],
    );
});
