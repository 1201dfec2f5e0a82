//! Checkpoint bytes into what `info`, `render` and `--resume` do with them: load and check the
//! file, rebuild the model, profile it; for a small signal render it and resume training from it.
#![no_main]

mod common;

use asmr_core::candle_core::Device;
use asmr_core::checkpoint::{self, CheckpointKind};
use asmr_core::models::{find_model, ModelContext};
use asmr_core::trainer::Trainer;
use asmr_core::{Signal, SignalInfo};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = common::input_file(data, "safetensors");
    let Ok(ckpt) = checkpoint::load(&path, &Device::Cpu) else {
        return;
    };
    let m = &ckpt.meta;
    // `info`
    let mut ctx = ModelContext::new(m.config.net.clone(), &m.signal.shape, m.signal.channels);
    ctx.grid = m.grid.clone();
    if let Ok(entry) = find_model(&m.config.model) {
        let _ = (entry.profile)(&ctx);
    }
    let _ = m.config.to_yaml();
    // `render` and `--resume`, for signals small enough to be quick.
    let values = m.signal.shape.iter().product::<usize>().saturating_mul(m.signal.channels);
    if values == 0 || values > 1 << 14 {
        return;
    }
    let prefix = match m.kind {
        CheckpointKind::Model => "",
        CheckpointKind::TrainState => "best/",
    };
    let Ok(built) = ckpt.build_model(prefix, &Device::Cpu, &path) else {
        return;
    };
    let _ = asmr_core::render::for_each_band(&built, &mut |_, _| Ok(()));
    if m.kind == CheckpointKind::TrainState {
        let info = SignalInfo {
            modality: m.signal.modality.clone(),
            shape: m.signal.shape.clone(),
            channels: m.signal.channels,
            source: "fuzz".into(),
            extra: Default::default(),
        };
        let Ok(signal) = Signal::new(info, vec![0.5; values]) else {
            return;
        };
        let Ok(mut trainer) = Trainer::new(&built, &signal, &m.config.train) else {
            return;
        };
        let _ = trainer.resume(&ckpt, &path);
    }
});
