//! The surface of a voxel field: marching tetrahedra (each cube of 8 voxel centres cut into six
//! tetrahedra around its main diagonal, the same cut in every cube, so neighbours agree and the
//! surface is closed). Vertices on grid edges are shared; triangles face out of the inside region.
//! Tetrahedra need no 256-case table and give no ambiguous cases.

use std::collections::HashMap;

use crate::field::voxel_center;
use crate::mesh::{cross, dot, sub, Mesh, Vec3};

/// Corner `c` of a cube is `(c & 1, (c >> 1) & 1, (c >> 2) & 1)`; the six tetrahedra share the
/// diagonal 0 - 7, one per order of the axes.
const TETS: [[usize; 4]; 6] = [
    [0, 1, 3, 7],
    [0, 1, 5, 7],
    [0, 2, 3, 7],
    [0, 2, 6, 7],
    [0, 4, 5, 7],
    [0, 4, 6, 7],
];

/// The iso-surface `field = level` of an `r^3` field (axis order x, y, z; inside is above
/// `level`), in cube coordinates. `None` when the field never crosses the level.
pub fn extract(field: &[f32], r: usize, level: f32) -> Option<Mesh> {
    let index = |x: usize, y: usize, z: usize| (x * r + y) * r + z;
    let pos = |k: usize| -> Vec3 {
        [
            voxel_center(k / (r * r), r),
            voxel_center((k / r) % r, r),
            voxel_center(k % r, r),
        ]
    };
    let mut vertices: Vec<Vec3> = Vec::new();
    let mut faces: Vec<[u32; 3]> = Vec::new();
    let mut on_edge: HashMap<(usize, usize), u32> = HashMap::new();
    // The shared vertex where the level crosses the grid edge i - j.
    let mut vertex = |vertices: &mut Vec<Vec3>, i: usize, j: usize| -> u32 {
        let key = (i.min(j), i.max(j));
        *on_edge.entry(key).or_insert_with(|| {
            let (a, b) = (field[key.0], field[key.1]);
            let t = if a == b {
                0.5
            } else {
                ((level - a) / (b - a)).clamp(0.0, 1.0) as f64
            };
            let (pa, pb) = (pos(key.0), pos(key.1));
            vertices.push([
                pa[0] + t * (pb[0] - pa[0]),
                pa[1] + t * (pb[1] - pa[1]),
                pa[2] + t * (pb[2] - pa[2]),
            ]);
            (vertices.len() - 1) as u32
        })
    };
    for x in 0..r.saturating_sub(1) {
        for y in 0..r - 1 {
            for z in 0..r - 1 {
                let corner = |c: usize| index(x + (c & 1), y + ((c >> 1) & 1), z + ((c >> 2) & 1));
                let cube: [usize; 8] = std::array::from_fn(corner);
                let any_in = cube.iter().any(|&k| field[k] > level);
                let any_out = cube.iter().any(|&k| field[k] <= level);
                if !(any_in && any_out) {
                    continue;
                }
                for tet in TETS {
                    let ks = tet.map(|c| cube[c]);
                    let (ins, outs): (Vec<usize>, Vec<usize>) =
                        ks.iter().partition(|&&k| field[k] > level);
                    let tris: Vec<[u32; 3]> = match ins.len() {
                        1 | 3 => {
                            let (lone, rest) = if ins.len() == 1 {
                                (ins[0], &outs)
                            } else {
                                (outs[0], &ins)
                            };
                            vec![[
                                vertex(&mut vertices, lone, rest[0]),
                                vertex(&mut vertices, lone, rest[1]),
                                vertex(&mut vertices, lone, rest[2]),
                            ]]
                        }
                        2 => {
                            let (a, b, c, d) = (ins[0], ins[1], outs[0], outs[1]);
                            let ac = vertex(&mut vertices, a, c);
                            let ad = vertex(&mut vertices, a, d);
                            let bd = vertex(&mut vertices, b, d);
                            let bc = vertex(&mut vertices, b, c);
                            vec![[ac, ad, bd], [ac, bd, bc]]
                        }
                        _ => continue,
                    };
                    // Face out of the inside region.
                    let mean = |s: &[usize]| -> Vec3 {
                        let mut m = [0.0; 3];
                        for &k in s {
                            let p = pos(k);
                            for a in 0..3 {
                                m[a] += p[a] / s.len() as f64;
                            }
                        }
                        m
                    };
                    let out_dir = sub(mean(&outs), mean(&ins));
                    for t in tris {
                        let [p0, p1, p2] = t.map(|i| vertices[i as usize]);
                        if t[0] == t[1] || t[1] == t[2] || t[0] == t[2] {
                            continue;
                        }
                        let n = cross(sub(p1, p0), sub(p2, p0));
                        faces.push(if dot(n, out_dir) >= 0.0 {
                            t
                        } else {
                            [t[0], t[2], t[1]]
                        });
                    }
                }
            }
        }
    }
    if faces.is_empty() {
        None
    } else {
        Some(Mesh { vertices, faces })
    }
}
