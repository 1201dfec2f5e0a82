//! The built-in example array: a 24 x 40 x 40 float32 field made in code (two drifting Gaussian
//! blobs over a travelling wave, values about -1 .. 2.5), so `fit array` runs with no file.

use asmr_core::Signal;

use crate::npy::{Array, Kind};
use crate::options::ArrayOptions;

pub const EXAMPLE_SHAPE: [usize; 3] = [24, 40, 40];

pub fn example() -> Signal {
    let [t, h, w] = EXAMPLE_SHAPE;
    let mut values = Vec::with_capacity(t * h * w);
    for k in 0..t {
        let time = k as f64 / t as f64;
        for y in 0..h {
            for x in 0..w {
                let (u, v) = (x as f64 / w as f64, y as f64 / h as f64);
                let blob = |cx: f64, cy: f64, r: f64| {
                    (-((u - cx).powi(2) + (v - cy).powi(2)) / (2.0 * r * r)).exp()
                };
                let f = 2.0 * blob(0.3 + 0.4 * time, 0.4, 0.12)
                    + 1.2 * blob(0.7, 0.7 - 0.3 * time, 0.08)
                    + 0.5 * (9.0 * u + 5.0 * v - 4.0 * time).sin();
                values.push(f as f32 as f64);
            }
        }
    }
    let array = Array {
        shape: EXAMPLE_SHAPE.to_vec(),
        dtype: "<f4".into(),
        kind: Kind::F32,
        values,
    };
    crate::signal_from_array(array, &ArrayOptions::default(), "builtin:field")
        .expect("the example is finite and well formed")
}
