//! The built-in example image: a 192 x 192 RGB pattern made in code (smooth colour gradients, a
//! disc with a soft edge, and rings whose frequency rises outwards), so `fit image` runs with no
//! file at all.

use asmr_core::{Signal, SignalInfo};

pub const EXAMPLE_SIZE: usize = 192;

pub fn example() -> Signal {
    let n = EXAMPLE_SIZE;
    let mut data = Vec::with_capacity(n * n * 3);
    for y in 0..n {
        for x in 0..n {
            let (u, v) = (x as f32 / (n - 1) as f32, y as f32 / (n - 1) as f32);
            let (dx, dy) = (u - 0.35, v - 0.4);
            let r = (dx * dx + dy * dy).sqrt();
            let disc = 1.0 / (1.0 + ((r - 0.22) * 60.0).exp());
            let (ex, ey) = (u - 0.75, v - 0.7);
            let rr = (ex * ex + ey * ey).sqrt();
            let rings = if rr < 0.25 {
                0.5 + 0.5 * (rr * rr * 900.0).cos()
            } else {
                0.0
            };
            let base = [0.15 + 0.6 * u, 0.2 + 0.5 * v, 0.7 - 0.5 * u * v];
            let tint = [0.95, 0.75, 0.2];
            for c in 0..3 {
                let mut p = base[c] * (1.0 - disc) + tint[c] * disc;
                p = p * (1.0 - 0.6 * rings) + 0.6 * rings * (c as f32 * 0.4);
                data.push(p.clamp(0.0, 1.0));
            }
        }
    }
    let mut extra = serde_json::Map::new();
    extra.insert("bit_depth".into(), 8.into());
    Signal::new(
        SignalInfo {
            modality: "image".into(),
            shape: vec![n, n],
            channels: 3,
            source: "builtin:pattern".into(),
            extra,
        },
        data,
    )
    .expect("the example is well formed")
}
