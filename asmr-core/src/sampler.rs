//! The uniform grid sampler of the paper (docs/method.md, "Training"): the grid is split into `G_0 x ... x G_{d-1}` equal cells;
//! once per epoch the in-cell offsets are shuffled, and batch `k` takes the same offsets (a slice of
//! the shuffled list) from every cell. Every sample is visited exactly once per epoch and every
//! batch covers the whole domain. Sizes that the cell count does not divide get cells of
//! `ceil(N_a / G_a)` samples; offsets that fall past the signal's end are skipped.

use crate::error::{Error, Result};
use crate::rng::Rng;

/// Where minibatches come from: a training strategy's sampling. Batches must be a function of the
/// epoch and the batch number alone (and the seed the source was made with), so a resumed run
/// replays the same ones.
pub trait BatchSource: Send {
    fn batches_per_epoch(&self) -> usize;
    /// Batch `k` of epoch `epoch`: grid indices `[n, d]`, row-major.
    fn batch(&mut self, epoch: usize, k: usize) -> Vec<u32>;
}

#[derive(Debug, Clone)]
pub struct GridSampler {
    shape: Vec<usize>,
    cells: Vec<usize>,
    cell_size: Vec<usize>,
    offsets_per_batch: usize,
    seed: u64,
    /// The last epoch's offset order (drawn once per epoch).
    current: Option<(usize, Vec<u32>)>,
}

impl GridSampler {
    /// `cells` per axis (one value for every axis, or one per axis); `batch` is the wanted number
    /// of samples per batch (rounded to whole offsets per cell).
    pub fn new(shape: &[usize], cells: &[usize], batch: usize, seed: u64) -> Result<Self> {
        let d = shape.len();
        let cells: Vec<usize> = match cells.len() {
            1 => vec![cells[0]; d],
            n if n == d => cells.to_vec(),
            n => {
                return Err(Error::config(
                    "train.sampler_grid",
                    format!("{n} values for {d} axes (give one, or one per axis)"),
                ))
            }
        };
        if cells.contains(&0) || batch == 0 {
            return Err(Error::config(
                "train.sampler_grid",
                "cell counts and the batch size must be at least 1",
            ));
        }
        // No more cells than samples along an axis.
        let cells: Vec<usize> = cells.iter().zip(shape).map(|(&g, &n)| g.min(n)).collect();
        let cell_size: Vec<usize> = shape
            .iter()
            .zip(&cells)
            .map(|(&n, &g)| n.div_ceil(g))
            .collect();
        let num_cells: usize = cells.iter().product();
        let volume: usize = cell_size.iter().product();
        let offsets_per_batch = (batch / num_cells).clamp(1, volume);
        Ok(Self {
            shape: shape.to_vec(),
            cells,
            cell_size,
            offsets_per_batch,
            seed,
            current: None,
        })
    }

    pub fn cells(&self) -> &[usize] {
        &self.cells
    }

    /// Offsets inside one cell.
    fn cell_volume(&self) -> usize {
        self.cell_size.iter().product()
    }

    pub fn batches_per_epoch(&self) -> usize {
        self.cell_volume().div_ceil(self.offsets_per_batch)
    }

    /// Nominal samples per batch (edge cells may contribute fewer).
    pub fn batch_size(&self) -> usize {
        self.offsets_per_batch * self.cells.iter().product::<usize>()
    }

    /// The epoch's offset order: a function of the seed and the epoch alone, so a resumed run
    /// replays the same batches.
    pub fn order(&self, epoch: usize) -> Vec<u32> {
        let mut order: Vec<u32> = (0..self.cell_volume() as u32).collect();
        let mut rng = Rng::new(self.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        rng.shuffle(&mut order);
        order
    }

    /// All batches of one epoch, each `[n, d]` row-major grid indices.
    pub fn epoch(&self, epoch: usize) -> EpochBatches<'_> {
        EpochBatches {
            sampler: self,
            order: self.order(epoch),
            next: 0,
        }
    }

    /// Batch `k` of the epoch whose offset order is `order`.
    pub fn batch_of(&self, order: &[u32], k: usize) -> Vec<u32> {
        let start = (k * self.offsets_per_batch).min(order.len());
        let end = (start + self.offsets_per_batch).min(order.len());
        self.batch_from(&order[start..end])
    }

    fn batch_from(&self, offsets: &[u32]) -> Vec<u32> {
        let d = self.shape.len();
        let num_cells: usize = self.cells.iter().product();
        let mut out = Vec::with_capacity(num_cells * offsets.len() * d);
        let mut origin = vec![0usize; d];
        let mut local = vec![0usize; d];
        for c in 0..num_cells {
            let mut rem = c;
            for a in (0..d).rev() {
                origin[a] = (rem % self.cells[a]) * self.cell_size[a];
                rem /= self.cells[a];
            }
            'offsets: for &o in offsets {
                let mut rem = o as usize;
                for a in (0..d).rev() {
                    local[a] = origin[a] + rem % self.cell_size[a];
                    rem /= self.cell_size[a];
                    if local[a] >= self.shape[a] {
                        continue 'offsets;
                    }
                }
                out.extend(local.iter().map(|&x| x as u32));
            }
        }
        out
    }
}

impl BatchSource for GridSampler {
    fn batches_per_epoch(&self) -> usize {
        GridSampler::batches_per_epoch(self)
    }

    fn batch(&mut self, epoch: usize, k: usize) -> Vec<u32> {
        if self.current.as_ref().is_none_or(|(e, _)| *e != epoch) {
            self.current = Some((epoch, self.order(epoch)));
        }
        match &self.current {
            Some((_, order)) => self.batch_of(order, k),
            None => Vec::new(),
        }
    }
}

pub struct EpochBatches<'a> {
    sampler: &'a GridSampler,
    order: Vec<u32>,
    next: usize,
}

impl Iterator for EpochBatches<'_> {
    type Item = Vec<u32>;

    fn next(&mut self) -> Option<Vec<u32>> {
        let per = self.sampler.offsets_per_batch;
        let start = self.next * per;
        if start >= self.order.len() {
            return None;
        }
        self.next += 1;
        let end = (start + per).min(self.order.len());
        Some(self.sampler.batch_from(&self.order[start..end]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn visits(shape: &[usize], cells: &[usize], batch: usize) -> (Vec<u32>, usize) {
        let s = GridSampler::new(shape, cells, batch, 3).unwrap();
        let n: usize = shape.iter().product();
        let mut count = vec![0u32; n];
        let mut batches = 0;
        for b in s.epoch(0) {
            batches += 1;
            for x in b.chunks_exact(shape.len()) {
                let mut flat = 0usize;
                for (a, &v) in x.iter().enumerate() {
                    assert!((v as usize) < shape[a]);
                    flat = flat * shape[a] + v as usize;
                }
                count[flat] += 1;
            }
        }
        assert_eq!(batches, s.batches_per_epoch());
        (count, batches)
    }

    #[test]
    fn every_sample_once_per_epoch_when_cells_divide() {
        let (count, batches) = visits(&[64, 48], &[16, 16], 256 * 4);
        assert!(count.iter().all(|&c| c == 1));
        // 4x3 samples per cell, 4 offsets per batch.
        assert_eq!(batches, 3);
        let (count, _) = visits(&[30, 20, 10], &[3, 2, 5], 60);
        assert!(count.iter().all(|&c| c == 1));
    }

    #[test]
    fn every_sample_once_when_sizes_do_not_divide() {
        let (count, _) = visits(&[37, 23], &[16], 300);
        assert!(count.iter().all(|&c| c == 1));
        let (count, _) = visits(&[101], &[7], 20);
        assert!(count.iter().all(|&c| c == 1));
        // More cells than samples.
        let (count, _) = visits(&[3, 5], &[16], 10);
        assert!(count.iter().all(|&c| c == 1));
    }

    #[test]
    fn every_batch_covers_every_cell_and_epochs_differ() {
        let s = GridSampler::new(&[32, 32], &[4, 4], 16, 9).unwrap();
        let first: Vec<Vec<u32>> = s.epoch(0).collect();
        for b in &first {
            let mut cells = std::collections::HashSet::new();
            for x in b.chunks_exact(2) {
                cells.insert((x[0] / 8, x[1] / 8));
            }
            assert_eq!(cells.len(), 16);
        }
        let again: Vec<Vec<u32>> = s.epoch(0).collect();
        assert_eq!(first, again);
        let second: Vec<Vec<u32>> = s.epoch(1).collect();
        assert_ne!(first, second);
    }

    #[test]
    fn bad_settings_are_rejected() {
        assert!(GridSampler::new(&[8, 8], &[2, 2, 2], 4, 0).is_err());
        assert!(GridSampler::new(&[8, 8], &[0], 4, 0).is_err());
        assert!(GridSampler::new(&[8, 8], &[2], 0, 0).is_err());
    }
}
