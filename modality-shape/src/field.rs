//! A mesh as a dense field on an `R^3` voxel grid over `[-1, 1]^3` (voxel centres, axis order
//! `(x, y, z)`, `z` fastest): the truncated signed distance mapped to `[0, 1]`, or occupancy.
//! Distances are exact (closest point through the BVH); the sign comes from the generalised
//! winding number, evaluated for every voxel near the surface and once for each connected region
//! of voxels farther away (a region away from the surface is wholly inside or outside).

use std::collections::VecDeque;

use asmr_core::kernels::{num_threads, split_range};

use crate::bvh::Bvh;
use crate::mesh::Mesh;

/// What the field holds (`sdf` or `occupancy` in the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Target {
    /// `0.5 - 0.5 clamp(sdf / band, -1, 1)`: 0.5 on the surface, above inside.
    Sdf,
    /// 1 inside, 0 outside.
    Occupancy,
}

impl TryFrom<String> for Target {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "sdf" => Ok(Target::Sdf),
            "occupancy" => Ok(Target::Occupancy),
            _ => Err(format!("`{s}` is neither sdf nor occupancy")),
        }
    }
}

impl From<Target> for String {
    fn from(t: Target) -> String {
        match t {
            Target::Sdf => "sdf",
            Target::Occupancy => "occupancy",
        }
        .into()
    }
}

/// Iso-level of the surface in either field.
pub const LEVEL: f32 = 0.5;

/// Centre of voxel `i` of `r` along an axis.
pub fn voxel_center(i: usize, r: usize) -> f64 {
    -1.0 + (i as f64 + 0.5) * 2.0 / r as f64
}

/// The field of a mesh already normalised into the cube. `band` is the truncation distance of the
/// SDF in cube units.
pub fn field(mesh: &Mesh, r: usize, target: Target, band: f64) -> Vec<f32> {
    let bvh = Bvh::new(mesh);
    let n = r * r * r;
    // Pass 1, per x-slab in parallel: distance within the band, and the sign there.
    let mut dist = vec![f32::NAN; n];
    let mut inside = vec![false; n];
    std::thread::scope(|s| {
        let mut rest_d = dist.as_mut_slice();
        let mut rest_i = inside.as_mut_slice();
        for xs in split_range(r, num_threads()) {
            let (d, td) = rest_d.split_at_mut(xs.len() * r * r);
            let (ins, ti) = rest_i.split_at_mut(xs.len() * r * r);
            rest_d = td;
            rest_i = ti;
            let bvh = &bvh;
            s.spawn(move || {
                for (lx, x) in xs.enumerate() {
                    for y in 0..r {
                        for z in 0..r {
                            let p = [voxel_center(x, r), voxel_center(y, r), voxel_center(z, r)];
                            let k = (lx * r + y) * r + z;
                            if let Some(c) = bvh.closest(p, band) {
                                d[k] = c.distance as f32;
                                ins[k] = bvh.winding_number(p) > 0.5;
                            }
                        }
                    }
                }
            });
        }
    });
    // Pass 2: regions of far voxels, one winding number each.
    let mut seen = vec![false; n];
    let mut queue = VecDeque::new();
    for start in 0..n {
        if seen[start] || !dist[start].is_nan() {
            continue;
        }
        let (x, y, z) = (start / (r * r), (start / r) % r, start % r);
        let sign =
            bvh.winding_number([voxel_center(x, r), voxel_center(y, r), voxel_center(z, r)]) > 0.5;
        seen[start] = true;
        queue.push_back(start);
        while let Some(k) = queue.pop_front() {
            inside[k] = sign;
            let (x, y, z) = (k / (r * r), (k / r) % r, k % r);
            let mut visit = |nk: usize| {
                if !seen[nk] && dist[nk].is_nan() {
                    seen[nk] = true;
                    queue.push_back(nk);
                }
            };
            if x > 0 {
                visit(k - r * r);
            }
            if x + 1 < r {
                visit(k + r * r);
            }
            if y > 0 {
                visit(k - r);
            }
            if y + 1 < r {
                visit(k + r);
            }
            if z > 0 {
                visit(k - 1);
            }
            if z + 1 < r {
                visit(k + 1);
            }
        }
    }
    (0..n)
        .map(|k| match target {
            Target::Occupancy => f32::from(u8::from(inside[k])),
            Target::Sdf => {
                let d = if dist[k].is_nan() {
                    band as f32
                } else {
                    dist[k]
                };
                let sdf = if inside[k] { -d } else { d };
                0.5 - 0.5 * (sdf / band as f32).clamp(-1.0, 1.0)
            }
        })
        .collect()
}

/// Intersection over union of the inside (`> LEVEL`) voxels of two fields.
pub fn iou(a: &[f32], b: &[f32]) -> f64 {
    let (mut both, mut either) = (0usize, 0usize);
    for (&x, &y) in a.iter().zip(b) {
        let (p, q) = (x > LEVEL, y > LEVEL);
        both += usize::from(p && q);
        either += usize::from(p || q);
    }
    if either == 0 {
        1.0
    } else {
        both as f64 / either as f64
    }
}
