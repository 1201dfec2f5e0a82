//! Surface metrics between two meshes, from points sampled uniformly by area on each: Chamfer
//! distance (mean of the two directions' mean distance, L1, and of their mean squared distance,
//! L2), each point measured to the exact closest point of the other surface; and normal
//! consistency (mean `|n_a . n_b|` of a point's face normal and that of its closest face).

use asmr_core::rng::Rng;

use crate::bvh::Bvh;
use crate::mesh::{add, cross, dot, norm, normalize, scale, sub, Mesh, Vec3};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SurfaceMetrics {
    pub chamfer_l1: f64,
    pub chamfer_l2: f64,
    pub normal_consistency: f64,
}

/// `n` points uniformly by area, each with its face's unit normal.
pub fn sample(mesh: &Mesh, n: usize, seed: u64) -> Vec<(Vec3, Vec3)> {
    let areas: Vec<f64> = (0..mesh.faces.len())
        .map(|f| {
            let [a, b, c] = mesh.triangle(f);
            0.5 * norm(cross(sub(b, a), sub(c, a)))
        })
        .collect();
    let mut cdf = Vec::with_capacity(areas.len());
    let mut acc = 0.0;
    for a in &areas {
        acc += a;
        cdf.push(acc);
    }
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| {
            let t = rng.next_f64() * acc;
            let f = cdf.partition_point(|&c| c < t).min(areas.len() - 1);
            let [a, b, c] = mesh.triangle(f);
            let (r1, r2) = (rng.next_f64().sqrt(), rng.next_f64());
            let p = add(
                scale(a, 1.0 - r1),
                add(scale(b, r1 * (1.0 - r2)), scale(c, r1 * r2)),
            );
            (p, normalize(cross(sub(b, a), sub(c, a))))
        })
        .collect()
}

fn one_way(from: &[(Vec3, Vec3)], to: &Mesh, bvh: &Bvh) -> (f64, f64, f64) {
    let (mut l1, mut l2, mut nc) = (0.0, 0.0, 0.0);
    for &(p, n) in from {
        let c = bvh.closest(p, f64::INFINITY).expect("a non-empty mesh");
        let [a, b, cc] = to.triangle(c.face);
        let m = normalize(cross(sub(b, a), sub(cc, a)));
        l1 += c.distance;
        l2 += c.distance * c.distance;
        nc += dot(n, m).abs();
    }
    let k = from.len().max(1) as f64;
    (l1 / k, l2 / k, nc / k)
}

/// Metrics between `a` and `b` from `n` samples on each.
pub fn compare(a: &Mesh, b: &Mesh, n: usize, seed: u64) -> SurfaceMetrics {
    let (ba, bb) = (Bvh::new(a), Bvh::new(b));
    let sa = sample(a, n, seed);
    let sb = sample(b, n, seed.wrapping_add(1));
    let (ab1, ab2, abn) = one_way(&sa, b, &bb);
    let (ba1, ba2, ban) = one_way(&sb, a, &ba);
    SurfaceMetrics {
        chamfer_l1: 0.5 * (ab1 + ba1),
        chamfer_l2: 0.5 * (ab2 + ba2),
        normal_consistency: 0.5 * (abn + ban),
    }
}
