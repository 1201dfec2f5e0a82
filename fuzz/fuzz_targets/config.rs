//! YAML configuration text and `--set` strings into the configuration, for every modality's
//! sections: a file layer, then `--set` pairs from the text's last lines.
#![no_main]

mod common;

use asmr_core::config::{assemble, Base, Layers};
use asmr_core::registry::modalities;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Lines after a `---SET---` line are `--set` pairs; the text above is a config file.
    let (yaml, sets) = text.split_once("---SET---").unwrap_or((text, ""));
    let sets: Vec<String> = sets.lines().filter(|l| !l.is_empty()).map(String::from).collect();
    let path = common::input_file(yaml.as_bytes(), "yaml");
    for m in modalities() {
        let files = [path.as_path()];
        if let Ok(config) = assemble(&Layers {
            modality: Some(m),
            base: Base::Defaults,
            files: &files,
            sets: &sets,
            options: &[],
        }) {
            // What config.yaml holds reads back as the same configuration.
            let again = assemble(&Layers {
                modality: Some(m),
                base: Base::Saved(&config),
                files: &[],
                sets: &[],
                options: &[],
            })
            .expect("a built configuration layers again");
            assert_eq!(again, config);
        }
    }
});
