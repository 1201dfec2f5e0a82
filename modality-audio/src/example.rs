//! The built-in example recording: one second at 16 kHz of two tones and a rising chirp.

use asmr_core::{Signal, SignalInfo};

pub const EXAMPLE_RATE: u32 = 16_000;

pub fn example() -> Signal {
    let n = EXAMPLE_RATE as usize;
    let data = (0..n)
        .map(|i| {
            let t = i as f32 / EXAMPLE_RATE as f32;
            let tau = std::f32::consts::TAU;
            let x = 0.3 * (tau * 220.0 * t).sin()
                + 0.2 * (tau * 660.0 * t).sin()
                + 0.2 * (tau * (100.0 + 1500.0 * t) * t).sin();
            (x + 1.0) / 2.0
        })
        .collect();
    let mut extra = serde_json::Map::new();
    extra.insert("sample_rate".into(), EXAMPLE_RATE.into());
    Signal::new(
        SignalInfo {
            modality: "audio".into(),
            shape: vec![n],
            channels: 1,
            source: "builtin:tones".into(),
            extra,
        },
        data,
    )
    .expect("the example is well formed")
}
