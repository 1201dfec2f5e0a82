//! The `surface` training strategy: minibatches that draw half their voxels from a thin shell
//! around the surface and half from the whole grid. A field's error that matters for the surface
//! (its zero crossing, Chamfer distance, normals) lives in that shell, which is a few percent of
//! the voxels; uniform batches spend most of their samples far from it.

use asmr_core::config::TrainConfig;
use asmr_core::rng::Rng;
use asmr_core::sampler::BatchSource;
use asmr_core::{Error, Result, Signal};

use crate::field::LEVEL;

/// Share of every batch drawn from the shell.
pub const SURFACE_SHARE: f64 = 0.5;
/// Half-width of the shell, in voxels.
pub const SHELL_VOXELS: f64 = 2.0;

#[derive(Debug, Clone)]
pub struct SurfaceSampler {
    /// Voxels per axis.
    side: usize,
    /// Flat indices of the shell's voxels.
    shell: Vec<u32>,
    batch: usize,
    seed: u64,
}

impl SurfaceSampler {
    /// For a shape signal (an `R^3` field, its target and band in `extra`), batches of `batch`.
    pub fn new(signal: &Signal, batch: usize, seed: u64) -> Result<Self> {
        let side = match signal.info.shape.as_slice() {
            [a, b, c] if a == b && b == c => *a,
            s => return Err(Error::Invalid(format!("not a shape field: {s:?}"))),
        };
        if batch == 0 {
            return Err(Error::config("train.batch", "must be at least 1"));
        }
        let values = signal.data.values();
        let sdf = signal.info.extra.get("target").and_then(|t| t.as_str()) == Some("sdf");
        let shell: Vec<u32> = if sdf {
            // Truncated SDF `0.5 - 0.5 sdf / band`: within SHELL_VOXELS of the surface.
            let band = signal
                .info
                .extra
                .get("band")
                .and_then(|b| b.as_f64())
                .ok_or_else(|| Error::Invalid("a shape field without its band".into()))?;
            let voxel = 2.0 / side as f64;
            let reach = (0.5 * SHELL_VOXELS * voxel / band) as f32;
            (0..values.len() as u32)
                .filter(|&i| (values[i as usize] - LEVEL).abs() <= reach)
                .collect()
        } else {
            // Occupancy: voxels with a neighbour on the other side.
            boundary(&values, side)
        };
        Ok(Self {
            side,
            shell,
            batch,
            seed,
        })
    }

    /// Voxels in the shell.
    pub fn shell_len(&self) -> usize {
        self.shell.len()
    }
}

/// Flat indices of occupancy voxels that differ from one of their six neighbours.
fn boundary(values: &[f32], r: usize) -> Vec<u32> {
    let at = |x: usize, y: usize, z: usize| values[(x * r + y) * r + z] > LEVEL;
    let mut out = Vec::new();
    for x in 0..r {
        for y in 0..r {
            for z in 0..r {
                let v = at(x, y, z);
                let differs = (x > 0 && at(x - 1, y, z) != v)
                    || (x + 1 < r && at(x + 1, y, z) != v)
                    || (y > 0 && at(x, y - 1, z) != v)
                    || (y + 1 < r && at(x, y + 1, z) != v)
                    || (z > 0 && at(x, y, z - 1) != v)
                    || (z + 1 < r && at(x, y, z + 1) != v);
                if differs {
                    out.push(((x * r + y) * r + z) as u32);
                }
            }
        }
    }
    out
}

impl BatchSource for SurfaceSampler {
    /// As many batches as the grid has voxels, so an epoch draws about the grid's size.
    fn batches_per_epoch(&self) -> usize {
        self.side.pow(3).div_ceil(self.batch)
    }

    fn batch(&mut self, epoch: usize, k: usize) -> Vec<u32> {
        let mut rng = Rng::new(
            self.seed
                ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
                ^ (k as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F),
        );
        let total = self.side.pow(3);
        let near = if self.shell.is_empty() {
            0
        } else {
            (self.batch as f64 * SURFACE_SHARE).round() as usize
        };
        let r = self.side;
        let mut out = Vec::with_capacity(self.batch * 3);
        for i in 0..self.batch {
            let flat = if i < near {
                self.shell[rng.below(self.shell.len())] as usize
            } else {
                rng.below(total)
            };
            out.extend([
                (flat / (r * r)) as u32,
                (flat / r % r) as u32,
                (flat % r) as u32,
            ]);
        }
        out
    }
}

/// The strategy's constructor (see the registration in `lib.rs`).
pub fn surface_batches(signal: &Signal, train: &TrainConfig) -> Result<Box<dyn BatchSource>> {
    Ok(Box::new(SurfaceSampler::new(
        signal,
        train.batch,
        train.seed,
    )?))
}
