//! Multilinear interpolation on a regular lattice: the `2^d` corners of the cell around a point
//! and their weights, shared by the dense-grid and hash-grid encodings.

/// Calls `f(corner, vertex, weight)` for the `2^d` corners of the lattice cell holding `p`
/// (lattice units, axis `a` has `verts[a] >= 2` vertices; `p` is clamped into the lattice).
/// `vertex` is the corner's integer position per axis; weights sum to 1.
pub fn for_each_corner(p: &[f32], verts: &[usize], mut f: impl FnMut(usize, &[u32], f32)) {
    let d = p.len();
    let mut base = [0u32; 8];
    let mut frac = [0f32; 8];
    assert!(d <= 8, "at most 8 axes");
    for a in 0..d {
        let top = (verts[a] - 1) as f32;
        let x = p[a].clamp(0.0, top);
        let i = (x.floor() as u32).min(verts[a] as u32 - 2);
        base[a] = i;
        frac[a] = x - i as f32;
    }
    let mut vertex = [0u32; 8];
    for corner in 0..1usize << d {
        let mut w = 1f32;
        for a in 0..d {
            let up = (corner >> a) & 1 == 1;
            vertex[a] = base[a] + up as u32;
            w *= if up { frac[a] } else { 1.0 - frac[a] };
        }
        f(corner, &vertex[..d], w);
    }
}

/// Row-major index of `vertex` in a lattice of `verts` (last axis fastest).
pub fn dense_index(vertex: &[u32], verts: &[usize]) -> usize {
    vertex
        .iter()
        .zip(verts)
        .fold(0usize, |acc, (&v, &n)| acc * n + v as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bilinear_weights() {
        let mut seen = Vec::new();
        for_each_corner(&[1.25, 0.5], &[4, 2], |_, v, w| seen.push((v.to_vec(), w)));
        let want = [
            (vec![1, 0], 0.75 * 0.5),
            (vec![2, 0], 0.25 * 0.5),
            (vec![1, 1], 0.75 * 0.5),
            (vec![2, 1], 0.25 * 0.5),
        ];
        for (got, want) in seen.iter().zip(want) {
            assert_eq!(got.0, want.0);
            assert!((got.1 - want.1).abs() < 1e-6);
        }
        // The last vertex is reached with the weight on the upper corner.
        let mut top = Vec::new();
        for_each_corner(&[3.0], &[4], |_, v, w| top.push((v[0], w)));
        assert_eq!(top, vec![(2, 0.0), (3, 1.0)]);
        assert_eq!(dense_index(&[2, 1], &[4, 3]), 7);
    }
}
