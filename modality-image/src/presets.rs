//! The paper's image presets (docs/method.md, "Training"): YAML overlays over asmr-core's defaults.

asmr_core::preset!(
    "image",
    "image",
    "default for photos (the paper's schedule)"
);
asmr_core::preset!(
    "image",
    "demo",
    "the built-in example (a 192 x 192 pattern made in code)"
);
asmr_core::preset!(
    "image",
    "kodak",
    "the paper's Kodak recipe (768 x 512 RGB), with its Instant-NGP settings"
);
asmr_core::preset!(
    "image",
    "low-mac-1",
    "the paper's ASMR-1 on 512 x 512 gray (cameraman)"
);
asmr_core::preset!(
    "image",
    "low-mac-2",
    "the paper's ASMR-2 on 512 x 512 gray (cameraman)"
);
asmr_core::preset!(
    "image",
    "low-mac-3",
    "the paper's ASMR-3 on 512 x 512 gray (cameraman)"
);
asmr_core::preset!(
    "image",
    "low-mac-4",
    "the paper's ASMR-4 on 512 x 512 gray (cameraman)"
);
asmr_core::preset!(
    "image",
    "low-mac-5",
    "the paper's ASMR-5 on 512 x 512 gray (cameraman)"
);
asmr_core::preset!(
    "image",
    "megapixel",
    "the paper's megapixel recipe: large photos on minibatches from the 16 x 16 grid sampler"
);
asmr_core::preset!(
    "image",
    "megapixel-nonlinear",
    "megapixel with nonlinear modulators"
);
