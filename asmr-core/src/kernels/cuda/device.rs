//! Running the kernels on a CUDA device through candle's: the compiled modules (loaded once per
//! device), an [`Exec`] that launches on the device's stream, and the operands' device addresses.
//!
//! Candle runs one stream per device, so stream order alone orders these launches against candle's
//! own; cudarc's per-buffer events matter only in multi-stream mode, and the addresses are taken
//! without them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use candle_core::cuda_backend::cudarc::driver::{
    CudaFunction, CudaModule, CudaSlice, DevicePtr, LaunchConfig, PushKernelArg,
};
use candle_core::cuda_backend::cudarc::nvrtc::Ptx;
use candle_core::cuda_backend::{CudaStorage, DeviceId, WrapErr};
use candle_core::{CudaDevice, Layout, Result};

use super::{Arg, Exec, Ptr, Source, BLOCK};

/// Machine code for the build's `CUDA_COMPUTE_CAP` and PTX for newer GPUs, per source file.
fn fatbin(src: Source) -> &'static [u8] {
    match src {
        Source::Pointwise => include_bytes!(concat!(env!("OUT_DIR"), "/pointwise.fatbin")),
        Source::Level => include_bytes!(concat!(env!("OUT_DIR"), "/level.fatbin")),
        Source::Scatter => include_bytes!(concat!(env!("OUT_DIR"), "/scatter.fatbin")),
    }
}

type Modules = HashMap<(DeviceId, Source), Arc<CudaModule>>;
type Functions = HashMap<(DeviceId, &'static str), CudaFunction>;

/// The kernel `name` of `src` on `dev`, its module loaded on first use.
fn function(dev: &CudaDevice, src: Source, name: &'static str) -> Result<CudaFunction> {
    static MODULES: OnceLock<Mutex<Modules>> = OnceLock::new();
    static FUNCTIONS: OnceLock<Mutex<Functions>> = OnceLock::new();
    let functions = FUNCTIONS.get_or_init(Default::default);
    if let Some(f) = functions
        .lock()
        .expect("kernel cache")
        .get(&(dev.id(), name))
    {
        return Ok(f.clone());
    }
    let module = {
        let mut modules = MODULES
            .get_or_init(Default::default)
            .lock()
            .expect("module cache");
        match modules.get(&(dev.id(), src)) {
            Some(m) => m.clone(),
            None => {
                let ctx = dev.cuda_stream().context().clone();
                let m = ctx
                    .load_module(Ptx::from_binary(fatbin(src).to_vec()))
                    .w()?;
                modules.insert((dev.id(), src), m.clone());
                m
            }
        }
    };
    let f = module.load_function(name).w()?;
    functions
        .lock()
        .expect("kernel cache")
        .insert((dev.id(), name), f.clone());
    Ok(f)
}

/// Launches on a device's stream.
pub struct Gpu<'a>(pub &'a CudaDevice);

impl Exec for Gpu<'_> {
    fn launch(&self, src: Source, kernel: &'static str, blocks: u32, args: &[Arg]) -> Result<()> {
        let f = function(self.0, src, kernel)?;
        let stream = self.0.cuda_stream();
        let mut b = stream.launch_builder(&f);
        for a in args {
            match a {
                Arg::Ptr(v) | Arg::U64(v) => b.arg(v),
                Arg::U32(v) => b.arg(v),
                Arg::F32(v) => b.arg(v),
            };
        }
        let cfg = LaunchConfig {
            grid_dim: (blocks, 1, 1),
            block_dim: (BLOCK, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: every kernel's parameter list is the one its launch function in `super` passes,
        // and those functions size the grid to the operands the callers checked.
        unsafe { b.launch(cfg) }.w()?;
        Ok(())
    }
}

/// The device address of a buffer.
pub fn address<T>(s: &CudaSlice<T>, dev: &CudaDevice) -> Ptr {
    s.device_ptr(&dev.cuda_stream()).0
}

/// The address of a contiguous f32 operand (its layout's offset applied).
pub fn operand(s: &CudaStorage, l: &Layout, what: &str) -> Result<Ptr> {
    let Some((start, _)) = l.contiguous_offsets() else {
        candle_core::bail!("{what}: operands must be contiguous")
    };
    let slice = s.as_cuda_slice::<f32>()?;
    Ok(address(slice, &s.device) + (start * std::mem::size_of::<f32>()) as u64)
}

/// A zeroed f32 buffer of `n` values and its address.
pub fn zeros(dev: &CudaDevice, n: usize) -> Result<(CudaSlice<f32>, Ptr)> {
    let s = dev.alloc_zeros::<f32>(n.max(1))?;
    let p = address(&s, dev);
    Ok((s, p))
}

/// An f32 buffer of `n` values that a kernel overwrites whole, and its address.
pub fn uninit(dev: &CudaDevice, n: usize) -> Result<(CudaSlice<f32>, Ptr)> {
    // SAFETY: the caller's kernel writes every value before anything reads the buffer.
    let s = unsafe { dev.alloc::<f32>(n.max(1))? };
    let p = address(&s, dev);
    Ok((s, p))
}

/// A kernel's result as candle storage.
pub fn storage(s: CudaSlice<f32>, dev: &CudaDevice) -> CudaStorage {
    CudaStorage::wrap_cuda_slice(s, dev.clone())
}

/// Host index data copied to a device once, on first use (index maps that live as long as a
/// model, or as one batch's ops).
#[derive(Default)]
pub struct Uploaded {
    cell: OnceLock<(DeviceId, CudaSlice<u32>)>,
}

impl std::fmt::Debug for Uploaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.cell.get().is_some() {
            "Uploaded(on a device)"
        } else {
            "Uploaded(host only)"
        })
    }
}

impl Uploaded {
    /// Data a kernel already wrote on `dev`.
    pub fn holding(dev: &CudaDevice, s: CudaSlice<u32>) -> Self {
        let cell = OnceLock::new();
        let _ = cell.set((dev.id(), s));
        Self { cell }
    }

    /// The address of the data on `dev`, copied there by one upload of `make()` the first time.
    pub fn get(&self, dev: &CudaDevice, make: impl FnOnce() -> Vec<u32>) -> Result<Ptr> {
        let (id, s) = match self.cell.get() {
            Some(held) => held,
            None => {
                let s = dev.clone_htod(&make()[..])?;
                // Two threads racing here upload the same data; the loser's copy is dropped.
                self.cell.get_or_init(|| (dev.id(), s))
            }
        };
        if *id != dev.id() {
            candle_core::bail!("index data uploaded to another CUDA device");
        }
        Ok(address(s, dev))
    }
}

/// A new f32 buffer of `n` values (zeroed first when `zeroed`, for kernels that add into it) that
/// `run` fills through the device's launcher, as candle storage.
pub fn run_into(
    dev: &CudaDevice,
    n: usize,
    zeroed: bool,
    run: impl FnOnce(&Gpu<'_>, Ptr) -> Result<()>,
) -> Result<CudaStorage> {
    let (s, p) = if zeroed {
        zeros(dev, n)?
    } else {
        uninit(dev, n)?
    };
    run(&Gpu(dev), p)?;
    Ok(storage(s, dev))
}

/// The `z` and `m` operands of a level op (`[coarse, h]`, `[mod, h]`) as its kernels take them.
pub fn level_args(
    h: usize,
    w0: f32,
    z: (&CudaStorage, &Layout),
    m: (&CudaStorage, &Layout),
    what: &str,
) -> Result<super::LevelArgs> {
    Ok(super::LevelArgs {
        h,
        w0,
        z: operand(z.0, z.1, what)?,
        m: operand(m.0, m.1, what)?,
    })
}
