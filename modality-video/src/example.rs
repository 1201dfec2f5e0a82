//! The built-in example clip: 24 frames of 64 x 96 RGB made in code (a drifting colour gradient, a
//! disc moving across it and rings that pulse), so `fit video` runs with no file at all.

use asmr_core::{Signal, SignalInfo};

pub const EXAMPLE_FRAMES: usize = 24;
pub const EXAMPLE_HEIGHT: usize = 64;
pub const EXAMPLE_WIDTH: usize = 96;

pub fn example() -> Signal {
    let (t_n, h, w) = (EXAMPLE_FRAMES, EXAMPLE_HEIGHT, EXAMPLE_WIDTH);
    let mut data = Vec::with_capacity(t_n * h * w * 3);
    for t in 0..t_n {
        let s = t as f32 / t_n as f32;
        for y in 0..h {
            for x in 0..w {
                let (u, v) = (x as f32 / (w - 1) as f32, y as f32 / (h - 1) as f32);
                let (dx, dy) = (u - (0.2 + 0.6 * s), v - 0.45);
                let disc = 1.0 / (1.0 + (((dx * dx + dy * dy).sqrt() - 0.18) * 50.0).exp());
                let (ex, ey) = (u - 0.7, v - 0.6);
                let r = (ex * ex + ey * ey).sqrt();
                let rings = if r < 0.25 {
                    0.5 + 0.5 * (r * 60.0 - s * 6.0).cos()
                } else {
                    0.0
                };
                let base = [0.2 + 0.5 * u, 0.25 + 0.4 * v + 0.2 * s, 0.7 - 0.4 * u];
                let tint = [0.95, 0.8, 0.25];
                for c in 0..3 {
                    let mut p = base[c] * (1.0 - disc) + tint[c] * disc;
                    p = p * (1.0 - 0.5 * rings) + 0.5 * rings * (c as f32 * 0.45);
                    data.push(p.clamp(0.0, 1.0));
                }
            }
        }
    }
    let mut extra = serde_json::Map::new();
    extra.insert("rate".into(), serde_json::json!([12, 1]));
    Signal::new(
        SignalInfo {
            modality: "video".into(),
            shape: vec![t_n, h, w],
            channels: 3,
            source: "builtin:moving-disc".into(),
            extra,
        },
        data,
    )
    .expect("the example is well formed")
}
