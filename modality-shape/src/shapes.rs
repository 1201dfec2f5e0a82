//! Meshes made in code, for tests and the built-in example: a UV sphere, a cube and a torus, all
//! closed with outward-facing (counter-clockwise seen from outside) triangles.

use std::f64::consts::PI;

use crate::mesh::{Mesh, Vec3};

/// A sphere of `radius` around `center`: `rings` latitude bands, `segments` around.
pub fn sphere(center: Vec3, radius: f64, rings: usize, segments: usize) -> Mesh {
    let mut v = vec![[center[0], center[1], center[2] + radius]];
    for i in 1..rings {
        let theta = PI * i as f64 / rings as f64;
        for j in 0..segments {
            let phi = 2.0 * PI * j as f64 / segments as f64;
            v.push([
                center[0] + radius * theta.sin() * phi.cos(),
                center[1] + radius * theta.sin() * phi.sin(),
                center[2] + radius * theta.cos(),
            ]);
        }
    }
    v.push([center[0], center[1], center[2] - radius]);
    let south = (v.len() - 1) as u32;
    let ring = |i: usize, j: usize| (1 + (i - 1) * segments + j % segments) as u32;
    let mut f = Vec::new();
    for j in 0..segments {
        f.push([0, ring(1, j), ring(1, j + 1)]);
        f.push([south, ring(rings - 1, j + 1), ring(rings - 1, j)]);
    }
    for i in 1..rings - 1 {
        for j in 0..segments {
            let (a, b, c, d) = (
                ring(i, j),
                ring(i, j + 1),
                ring(i + 1, j),
                ring(i + 1, j + 1),
            );
            f.push([a, c, d]);
            f.push([a, d, b]);
        }
    }
    Mesh::new(v, f).expect("a valid sphere")
}

/// The axis-aligned cube `[-h, h]^3`.
pub fn cube(h: f64) -> Mesh {
    let v: Vec<Vec3> = (0..8)
        .map(|c| {
            [
                if c & 1 == 1 { h } else { -h },
                if c & 2 == 2 { h } else { -h },
                if c & 4 == 4 { h } else { -h },
            ]
        })
        .collect();
    let quads = [
        [0, 2, 3, 1], // z = -h, facing -z
        [4, 5, 7, 6], // z = +h
        [0, 1, 5, 4], // y = -h
        [2, 6, 7, 3], // y = +h
        [0, 4, 6, 2], // x = -h
        [1, 3, 7, 5], // x = +h
    ];
    let f = quads
        .iter()
        .flat_map(|q| [[q[0], q[1], q[2]], [q[0], q[2], q[3]]])
        .collect();
    Mesh::new(v, f).expect("a valid cube")
}

/// A torus around the z axis: tube centre at `major` from the axis, tube radius `minor`.
pub fn torus(major: f64, minor: f64, rings: usize, segments: usize) -> Mesh {
    let mut v = Vec::new();
    for i in 0..rings {
        let u = 2.0 * PI * i as f64 / rings as f64;
        for j in 0..segments {
            let w = 2.0 * PI * j as f64 / segments as f64;
            let rr = major + minor * w.cos();
            v.push([rr * u.cos(), rr * u.sin(), minor * w.sin()]);
        }
    }
    let at = |i: usize, j: usize| ((i % rings) * segments + j % segments) as u32;
    let mut f = Vec::new();
    for i in 0..rings {
        for j in 0..segments {
            let (a, b, c, d) = (at(i, j), at(i + 1, j), at(i + 1, j + 1), at(i, j + 1));
            f.push([a, b, c]);
            f.push([a, c, d]);
        }
    }
    Mesh::new(v, f).expect("a valid torus")
}
