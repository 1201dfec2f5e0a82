//! The paper's image presets (docs/method.md, "Training"): YAML overlays over asmr-core's defaults.

asmr_core::preset!(
    "image",
    "image",
    "default: ASMR 4x256, automatic bases, 10,000 full-image steps"
);
asmr_core::preset!(
    "image",
    "demo",
    "the built-in example: ASMR 4x256, automatic bases, 300 steps at lr 1e-3"
);
asmr_core::preset!(
    "image",
    "kodak",
    "768x512 RGB: ASMR 4x256, h [4,4,4,8], w [4,4,6,8], 10,000 steps"
);
asmr_core::preset!(
    "image",
    "low-mac-1",
    "512x512 gray: ASMR 7x256, [2,2,2,2,2,2,8], 10,000 steps"
);
asmr_core::preset!(
    "image",
    "low-mac-2",
    "512x512 gray: ASMR 6x256, [4,2,2,2,2,8], 10,000 steps"
);
asmr_core::preset!(
    "image",
    "low-mac-3",
    "512x512 gray: ASMR 5x256, [8,2,2,2,8], 10,000 steps"
);
asmr_core::preset!(
    "image",
    "low-mac-4",
    "512x512 gray: ASMR 4x256, [4,4,4,8], 10,000 steps"
);
asmr_core::preset!(
    "image",
    "low-mac-5",
    "512x512 gray: ASMR 3x256, [8,8,8], 10,000 steps"
);
asmr_core::preset!(
    "image",
    "megapixel",
    "large photos: ASMR 6x512, 2^18-sample batches (16x16 grid sampler), 500 epochs"
);
asmr_core::preset!(
    "image",
    "megapixel-nonlinear",
    "as megapixel, with nonlinear modulators"
);
