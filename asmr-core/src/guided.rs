//! Error-guided minibatches (`train.error_guided`, docs/method.md "Training"): a share of each
//! batch is drawn in proportion to how far the model was from each sample at the last
//! whole-signal evaluation; the rest of the batch is the training strategy's own. Samples the
//! model already fits are visited less and the hard ones (edges, texture) more, while the
//! strategy's share keeps the whole signal in every step. The trainer sets the share per step
//! (falling to 0 at the schedule's end).

use crate::rng::Rng;

/// Each sample's error at the last whole-signal evaluation: the root of its squared error summed
/// over the channels, in raster order.
#[derive(Debug, Clone)]
pub struct ErrorMap {
    shape: Vec<usize>,
    errors: Vec<f32>,
    total: f64,
}

impl ErrorMap {
    /// `None` when no sample has a positive, finite error to draw from (an exact fit, or a model
    /// gone non-finite): batches then stay the strategy's own.
    pub fn new(shape: &[usize], errors: Vec<f32>) -> Option<Self> {
        if errors.len() != shape.iter().product::<usize>() {
            return None;
        }
        let total: f64 = errors.iter().map(|&e| e as f64).sum();
        let valid = total.is_finite() && total > 0.0 && errors.iter().all(|&e| e >= 0.0);
        valid.then(|| Self {
            shape: shape.to_vec(),
            errors,
            total,
        })
    }

    pub fn errors(&self) -> &[f32] {
        &self.errors
    }

    /// `batch` (`[n, d]` grid indices) with about a share `fraction` of its rows replaced by
    /// samples drawn in proportion to their errors. The draws are systematic (evenly spaced
    /// through the errors' running sum from one random offset), so a batch's guided share follows
    /// the map with little sampling noise. Deterministic in `seed` and `step`, so a resumed run
    /// draws the same batches.
    pub fn guide(&self, batch: Vec<u32>, fraction: f64, seed: u64, step: usize) -> Vec<u32> {
        let d = self.shape.len();
        let mut rng =
            Rng::new(seed ^ 0x6775_6964_6564 ^ (step as u64).wrapping_mul(0xD1B5_4A32_D192_ED03));
        let mut out = Vec::with_capacity(batch.len());
        let mut drawn = 0usize;
        for row in batch.chunks_exact(d) {
            if rng.next_f64() < fraction {
                drawn += 1;
            } else {
                out.extend_from_slice(row);
            }
        }
        if drawn == 0 {
            return out;
        }
        let spacing = self.total / drawn as f64;
        let mut next = rng.next_f64() * spacing;
        let mut sum = 0f64;
        let mut coord = vec![0u32; d];
        let mut placed = 0usize;
        for (flat, &e) in self.errors.iter().enumerate() {
            sum += e as f64;
            while placed < drawn && next < sum {
                push_coord(flat, &self.shape, &mut coord);
                out.extend_from_slice(&coord);
                placed += 1;
                next += spacing;
            }
            if placed == drawn {
                break;
            }
        }
        if placed < drawn {
            // Rounding in the running sum left the last draw past its end.
            let last = self.errors.iter().rposition(|&e| e > 0.0).unwrap_or(0);
            push_coord(last, &self.shape, &mut coord);
            for _ in placed..drawn {
                out.extend_from_slice(&coord);
            }
        }
        out
    }
}

/// The grid index of raster position `flat`.
fn push_coord(mut flat: usize, shape: &[usize], coord: &mut [u32]) {
    for a in (0..shape.len()).rev() {
        coord[a] = (flat % shape[a]) as u32;
        flat /= shape[a];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uniform_batch(shape: &[usize]) -> Vec<u32> {
        let mut out = Vec::new();
        for y in 0..shape[0] as u32 {
            for x in 0..shape[1] as u32 {
                out.extend([y, x]);
            }
        }
        out
    }

    #[test]
    fn the_guided_share_follows_the_errors() {
        let shape = [8, 8];
        // All of the error on two samples, three times as much on (2, 5) as on (7, 0).
        let mut errors = vec![0f32; 64];
        errors[2 * 8 + 5] = 3.0;
        errors[7 * 8] = 1.0;
        let map = ErrorMap::new(&shape, errors).unwrap();
        // The strategy's batch: every other sample, so each row on those two was drawn by error.
        let batch: Vec<u32> = uniform_batch(&shape)
            .chunks(2)
            .filter(|r| r != &[2, 5] && r != &[7, 0])
            .flatten()
            .copied()
            .collect();
        let (mut rows, mut hard, mut second) = (0usize, 0usize, 0usize);
        for step in 0..50 {
            let out = map.guide(batch.clone(), 0.5, 7, step);
            rows += out.len() / 2;
            hard += out.chunks(2).filter(|r| r == &[2, 5]).count();
            second += out.chunks(2).filter(|r| r == &[7, 0]).count();
        }
        // The batch keeps its size; about half of it lands on the two samples, split 3 : 1.
        assert_eq!(rows, 50 * 62);
        let guided = (hard + second) as f64 / rows as f64;
        assert!((guided - 0.5).abs() < 0.05, "guided share {guided}");
        let ratio = hard as f64 / second as f64;
        assert!((ratio - 3.0).abs() < 0.2, "ratio {ratio}");
    }

    #[test]
    fn the_same_step_draws_the_same_batch() {
        let shape = [4, 6];
        let errors: Vec<f32> = (0..24).map(|i| (i % 5) as f32).collect();
        let map = ErrorMap::new(&shape, errors).unwrap();
        let batch = uniform_batch(&shape);
        assert_eq!(
            map.guide(batch.clone(), 0.5, 1, 3),
            map.guide(batch.clone(), 0.5, 1, 3)
        );
        assert_ne!(
            map.guide(batch.clone(), 0.5, 1, 3),
            map.guide(batch.clone(), 0.5, 1, 4)
        );
        // Nothing guided: the strategy's batch unchanged.
        assert_eq!(map.guide(batch.clone(), 0.0, 1, 3), batch);
    }

    #[test]
    fn no_map_without_an_error_to_draw_from() {
        assert!(ErrorMap::new(&[2, 2], vec![0.0; 4]).is_none());
        assert!(ErrorMap::new(&[2, 2], vec![1.0, f32::NAN, 0.0, 0.0]).is_none());
        assert!(ErrorMap::new(&[2, 2], vec![1.0; 3]).is_none());
    }
}
