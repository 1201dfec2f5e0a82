//! What a CUDA device reports about its memory: its size (for the full-grid memory budget) and the
//! high-water mark of what candle allocated (for `bench`). cudarc allocates stream-ordered
//! (`cuMemAllocAsync`) from the device's default pool, whose used-memory high-water mark can be
//! reset and read. On the CPU, in a build without CUDA, or where the pool is not used (no
//! stream-ordered allocation), these report nothing.

use candle_core::Device;

#[cfg(feature = "cuda")]
mod pool {
    use candle_core::cuda_backend::cudarc::driver::{result, sys};
    use candle_core::Device;

    const USED_HIGH: sys::CUmemPool_attribute =
        sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_HIGH;

    fn default_pool(device: &Device) -> Option<sys::CUmemoryPool> {
        let Device::Cuda(d) = device else {
            return None;
        };
        let stream = d.cuda_stream();
        let ctx = stream.context();
        if !ctx.has_async_alloc() {
            return None;
        }
        // SAFETY: the device handle comes from a live context.
        unsafe { result::device::get_default_mem_pool(ctx.cu_device()) }.ok()
    }

    pub fn total(device: &Device) -> Option<usize> {
        let Device::Cuda(d) = device else {
            return None;
        };
        d.cuda_stream().context().total_mem().ok()
    }

    pub fn reset_peak(device: &Device) {
        if let Some(pool) = default_pool(device) {
            let _ = device.synchronize();
            let mut zero = 0u64;
            // SAFETY: the attribute is a u64, which may only be reset to zero.
            let _ = unsafe {
                result::mem_pool::set_attribute(pool, USED_HIGH, (&mut zero as *mut u64).cast())
            };
        }
    }

    pub fn peak(device: &Device) -> Option<u64> {
        let pool = default_pool(device)?;
        device.synchronize().ok()?;
        let mut v = 0u64;
        // SAFETY: the attribute is a u64.
        unsafe { result::mem_pool::get_attribute(pool, USED_HIGH, (&mut v as *mut u64).cast()) }
            .ok()?;
        Some(v)
    }
}

#[cfg(not(feature = "cuda"))]
mod pool {
    use candle_core::Device;

    pub fn total(_: &Device) -> Option<usize> {
        None
    }

    pub fn reset_peak(_: &Device) {}

    pub fn peak(_: &Device) -> Option<u64> {
        None
    }
}

/// Total memory of a GPU device, in bytes (`None` on the CPU).
pub fn total_memory(device: &Device) -> Option<usize> {
    pool::total(device)
}

/// Start measuring the peak of [`peak_memory`] from now.
pub fn reset_peak_memory(device: &Device) {
    pool::reset_peak(device)
}

/// Most device memory in use by the process's allocations since [`reset_peak_memory`], in bytes
/// (`None` on the CPU).
pub fn peak_memory(device: &Device) -> Option<u64> {
    pool::peak(device)
}
