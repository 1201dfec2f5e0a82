//! Triangle meshes: loading OBJ files with tobj (triangulated, every object merged, unused vertices
//! dropped), validation, and the similarity transform into the cube `[-1, 1]^3`.

use std::path::Path;

use asmr_core::{Error, Result};

pub type Vec3 = [f64; 3];

#[derive(Debug, Clone, PartialEq)]
pub struct Mesh {
    pub vertices: Vec<Vec3>,
    pub faces: Vec<[u32; 3]>,
}

/// `p -> (p - center) * scale`: the mesh's own frame to the unit cube, and back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Normalisation {
    pub center: Vec3,
    pub scale: f64,
}

impl Normalisation {
    /// Centre the bounding box and scale its longest side to `2 (1 - margin)`.
    pub fn fit(mesh: &Mesh, margin: f64) -> Self {
        let (lo, hi) = mesh.bounds();
        let center = [
            0.5 * (lo[0] + hi[0]),
            0.5 * (lo[1] + hi[1]),
            0.5 * (lo[2] + hi[2]),
        ];
        let extent = (0..3).map(|a| hi[a] - lo[a]).fold(0.0, f64::max);
        let scale = if extent > 0.0 {
            2.0 * (1.0 - margin) / extent
        } else {
            1.0
        };
        Self { center, scale }
    }

    pub fn forward(&self, p: Vec3) -> Vec3 {
        [
            (p[0] - self.center[0]) * self.scale,
            (p[1] - self.center[1]) * self.scale,
            (p[2] - self.center[2]) * self.scale,
        ]
    }

    pub fn inverse(&self, p: Vec3) -> Vec3 {
        [
            p[0] / self.scale + self.center[0],
            p[1] / self.scale + self.center[1],
            p[2] / self.scale + self.center[2],
        ]
    }
}

impl Mesh {
    /// Checks indices and values; drops vertices no face uses (renumbering the faces).
    pub fn new(vertices: Vec<Vec3>, faces: Vec<[u32; 3]>) -> std::result::Result<Self, String> {
        if faces.is_empty() {
            return Err("has no faces".into());
        }
        if let Some((i, _)) = vertices
            .iter()
            .enumerate()
            .find(|(_, v)| v.iter().any(|x| !x.is_finite()))
        {
            return Err(format!("vertex {} is not finite", i + 1));
        }
        if let Some((f, i)) = faces.iter().enumerate().find_map(|(f, t)| {
            t.iter()
                .find(|&&i| i as usize >= vertices.len())
                .map(|&i| (f, i))
        }) {
            return Err(format!(
                "face {} points at vertex {} but there are {} vertices",
                f + 1,
                i + 1,
                vertices.len()
            ));
        }
        let mut map = vec![u32::MAX; vertices.len()];
        let mut kept = Vec::new();
        let faces = faces
            .iter()
            .map(|t| {
                t.map(|i| {
                    let m = &mut map[i as usize];
                    if *m == u32::MAX {
                        *m = kept.len() as u32;
                        kept.push(vertices[i as usize]);
                    }
                    *m
                })
            })
            .collect();
        Ok(Self {
            vertices: kept,
            faces,
        })
    }

    pub fn bounds(&self) -> (Vec3, Vec3) {
        let mut lo = [f64::INFINITY; 3];
        let mut hi = [f64::NEG_INFINITY; 3];
        for v in &self.vertices {
            for a in 0..3 {
                lo[a] = lo[a].min(v[a]);
                hi[a] = hi[a].max(v[a]);
            }
        }
        (lo, hi)
    }

    pub fn transformed(&self, f: impl Fn(Vec3) -> Vec3) -> Self {
        Self {
            vertices: self.vertices.iter().map(|&v| f(v)).collect(),
            faces: self.faces.clone(),
        }
    }

    pub fn triangle(&self, f: usize) -> [Vec3; 3] {
        self.faces[f].map(|i| self.vertices[i as usize])
    }

    /// Total surface area.
    pub fn area(&self) -> f64 {
        (0..self.faces.len())
            .map(|f| {
                let [a, b, c] = self.triangle(f);
                0.5 * norm(cross(sub(b, a), sub(c, a)))
            })
            .sum()
    }

    /// The mesh as OBJ text (`v` and `f` lines).
    pub fn to_obj(&self, header: &str) -> String {
        let mut s = String::with_capacity(self.vertices.len() * 40 + self.faces.len() * 24);
        for line in header.lines() {
            s.push_str("# ");
            s.push_str(line);
            s.push('\n');
        }
        for v in &self.vertices {
            s.push_str(&format!("v {:.6} {:.6} {:.6}\n", v[0], v[1], v[2]));
        }
        for f in &self.faces {
            s.push_str(&format!("f {} {} {}\n", f[0] + 1, f[1] + 1, f[2] + 1));
        }
        s
    }
}

/// Load an OBJ file: every object merged, polygons triangulated.
pub fn load_obj(path: &Path) -> Result<Mesh> {
    let err = |m: String| Error::input(path, m);
    if !path.exists() {
        return Err(err("no such file".into()));
    }
    let options = tobj::LoadOptions {
        triangulate: true,
        single_index: false,
        ignore_points: true,
        ignore_lines: true,
    };
    let (models, _) = tobj::load_obj(path, &options)
        .map_err(|e| err(format!("not a readable OBJ file ({e})")))?;
    let mut vertices = Vec::new();
    let mut faces = Vec::new();
    for m in &models {
        let base = vertices.len() as u32;
        let p = &m.mesh.positions;
        if p.len() % 3 != 0 {
            return Err(err(format!("object `{}` has a broken vertex list", m.name)));
        }
        vertices.extend(
            p.chunks_exact(3)
                .map(|v| [v[0] as f64, v[1] as f64, v[2] as f64]),
        );
        let idx = &m.mesh.indices;
        faces.extend(
            idx.chunks_exact(3)
                .map(|t| [t[0] + base, t[1] + base, t[2] + base]),
        );
    }
    if models.is_empty() || faces.is_empty() {
        return Err(err(
            "has no faces (not an OBJ mesh, or an empty object)".into()
        ));
    }
    Mesh::new(vertices, faces).map_err(err)
}

pub fn sub(a: Vec3, b: Vec3) -> Vec3 {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

pub fn add(a: Vec3, b: Vec3) -> Vec3 {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}

pub fn scale(a: Vec3, s: f64) -> Vec3 {
    [a[0] * s, a[1] * s, a[2] * s]
}

pub fn dot(a: Vec3, b: Vec3) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

pub fn cross(a: Vec3, b: Vec3) -> Vec3 {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

pub fn norm(a: Vec3) -> f64 {
    dot(a, a).sqrt()
}

pub fn normalize(a: Vec3) -> Vec3 {
    let n = norm(a);
    if n > 0.0 {
        scale(a, 1.0 / n)
    } else {
        a
    }
}
