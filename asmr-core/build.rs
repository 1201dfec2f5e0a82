//! Compiles the CUDA kernels in `cuda/` when a feature asks for them:
//! - `cuda`: each `cuda/*.cu` with nvcc into a fat binary holding machine code for
//!   `CUDA_COMPUTE_CAP` (default 90, the H100/H200) and PTX of the same architecture for newer GPUs,
//!   embedded by `src/kernels/cuda/device.rs` (no PTX is JIT-compiled at start-up on that GPU);
//! - `cuda-emu`: the same sources as C++ into the host emulator (`cuda/emu.cpp`).

use std::path::PathBuf;
use std::process::Command;

const SOURCES: [&str; 3] = ["pointwise", "level", "scatter"];

fn main() {
    println!("cargo:rerun-if-changed=cuda");
    println!("cargo:rerun-if-env-changed=CUDA_COMPUTE_CAP");
    println!("cargo:rerun-if-env-changed=NVCC");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    if std::env::var_os("CARGO_FEATURE_CUDA").is_some() {
        let cap = std::env::var("CUDA_COMPUTE_CAP").unwrap_or_else(|_| "90".into());
        let cap = cap.trim().replace('.', "");
        let nvcc = std::env::var("NVCC").unwrap_or_else(|_| "nvcc".into());
        for src in SOURCES {
            let status = Command::new(&nvcc)
                .args(["--fatbin", "-O3", "-std=c++17"])
                .arg(format!("-gencode=arch=compute_{cap},code=sm_{cap}"))
                .arg(format!("-gencode=arch=compute_{cap},code=compute_{cap}"))
                .arg("-o")
                .arg(out.join(format!("{src}.fatbin")))
                .arg(format!("cuda/{src}.cu"))
                .status()
                .unwrap_or_else(|e| panic!("running {nvcc} (the CUDA compiler): {e}"));
            assert!(status.success(), "{nvcc} failed on cuda/{src}.cu");
        }
    }
    #[cfg(feature = "cuda-emu")]
    cc::Build::new()
        .cpp(true)
        .std("c++17")
        .file("cuda/emu.cpp")
        .warnings(true)
        .flag_if_supported("-Wno-unknown-pragmas")
        .compile("asmr_cuda_emu");
}
