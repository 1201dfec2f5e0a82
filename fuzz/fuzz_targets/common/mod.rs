//! What every target shares: the bytes as an input file, read through a modality's registered
//! loader with `data` options layered the way `fit` layers them.
#![allow(dead_code)]

use std::path::PathBuf;

use asmr_core::config::{assemble, Base, Layers, OptionKind};
use asmr_core::registry::find_modality;

// The plugin crates register through `inventory`; naming them keeps them linked.
use modality_array as _;
use modality_audio as _;
use modality_image as _;
use modality_shape as _;

/// A file of this process holding `bytes`, named with `extension` (in memory where possible).
pub fn input_file(bytes: &[u8], extension: &str) -> PathBuf {
    let dir = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let path = dir.join(format!("asmr-fuzz-{}.{extension}", std::process::id()));
    std::fs::write(&path, bytes).expect("write the fuzz input");
    path
}

/// Read `bytes` as a `modality` input file with the given `data.*` options (full keys and their
/// text, as on the command line). Errors are fine; panics, hangs and huge allocations are not.
pub fn load(modality: &str, bytes: &[u8], extension: &str, options: &[(&str, String)]) {
    let m = find_modality(modality).expect("registered modality");
    let options: Vec<(String, OptionKind, String)> = options
        .iter()
        .map(|(k, v)| (k.to_string(), OptionKind::Value, v.clone()))
        .collect();
    let Ok(config) = assemble(&Layers {
        modality: Some(m),
        base: Base::Defaults,
        files: &[],
        sets: &[],
        options: &options,
    }) else {
        return;
    };
    let path = input_file(bytes, extension);
    if let Ok(signal) = (m.load)(&path, &config.data) {
        // A signal that loads is whole: its values are finite and fill its shape.
        assert_eq!(
            signal.info.num_values(),
            signal.data.len(),
            "shape and data disagree"
        );
    }
}

/// Splits a few leading bytes off as choices.
pub struct Choices<'a> {
    pub rest: &'a [u8],
}

impl<'a> Choices<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { rest: data }
    }

    pub fn byte(&mut self) -> u8 {
        match self.rest.split_first() {
            Some((b, rest)) => {
                self.rest = rest;
                *b
            }
            None => 0,
        }
    }

    pub fn pick<T: Clone>(&mut self, options: &[T]) -> T {
        options[self.byte() as usize % options.len()].clone()
    }
}
