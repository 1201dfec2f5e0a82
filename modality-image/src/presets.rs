//! The paper's image presets (docs/method.md, "Training"): YAML overlays over asmr-core's defaults.

asmr_core::preset!(
    "image",
    "image",
    "default for photos: about a minute at 512 x 512 on two cores"
);
asmr_core::preset!("image", "paper-image", "the paper's recipe for photos");
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

// The paper's image experiments, for `asmr-cli reproduce`.
asmr_core::inventory::submit! {
    asmr_core::Experiment {
        name: "low-mac",
        modality: "image",
        description: "ultra-low-MAC ASMR-1..5 against SIREN on cameraman (PSNR against MACs)",
        data: &["*cameraman*.png", "*cameraman*.jpg"],
        expects: "cameraman 512 x 512 gray (a PNG or JPEG whose name contains `cameraman`)",
        recipes: &[
            ("asmr", "low-mac-1"),
            ("asmr", "low-mac-2"),
            ("asmr", "low-mac-3"),
            ("asmr", "low-mac-4"),
            ("asmr", "low-mac-5"),
            ("siren", "low-mac-4"),
        ],
        seeds: &[1, 2, 3],
    }
}
asmr_core::inventory::submit! {
    asmr_core::Experiment {
        name: "image",
        modality: "image",
        description: "Kodak: ASMR against SIREN, FFN, WIRE, KiloNeRF and Instant-NGP",
        data: &["kodim*.png", "kodak/kodim*.png"],
        expects: "the Kodak photos kodim01.png ... kodim24.png (768 x 512 RGB)",
        recipes: &[
            ("asmr", "kodak"),
            ("siren", "kodak"),
            ("ffn", "kodak"),
            ("wire", "kodak"),
            ("kilonerf", "kodak"),
            ("ngp", "kodak"),
        ],
        seeds: &[1, 2, 3],
    }
}
asmr_core::inventory::submit! {
    asmr_core::Experiment {
        name: "megapixel",
        modality: "image",
        description: "the 8192 x 8192 Pluto photo on minibatches: ASMR (linear and nonlinear \
                      modulators) against SIREN, KiloNeRF and Instant-NGP",
        data: &["*pluto*.png", "*pluto*.jpg"],
        expects: "the Pluto photo resized to 8192 x 8192 (a PNG or JPEG whose name contains `pluto`)",
        recipes: &[
            ("asmr", "megapixel"),
            ("asmr", "megapixel-nonlinear"),
            ("siren", "megapixel"),
            ("kilonerf", "megapixel"),
            ("ngp", "megapixel"),
        ],
        seeds: &[1, 2, 3],
    }
}
