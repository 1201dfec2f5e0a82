//! `render.png`: meshes shaded side by side from one viewpoint (a small z-buffer rasteriser with
//! Lambert shading), so a fit can be judged without a 3-D viewer.

use std::path::Path;

use asmr_core::figure::{write_panels, Panel, Raster};
use asmr_core::Result;

use crate::mesh::{cross, dot, normalize, sub, Mesh, Vec3};

const SIZE: usize = 512;

/// Camera looking at the origin from `direction` (unit cube content), orthographic.
struct View {
    right: Vec3,
    up: Vec3,
    forward: Vec3,
}

impl View {
    fn new() -> Self {
        let forward = normalize([-0.55, -0.45, -0.7]);
        let right = normalize(cross(forward, [0.0, 1.0, 0.0]));
        let up = cross(right, forward);
        Self { right, up, forward }
    }

    /// Pixel coordinates and depth of a point in `[-1, 1]^3`.
    fn project(&self, p: Vec3) -> (f64, f64, f64) {
        let s = SIZE as f64 / 2.0 / 1.8;
        (
            SIZE as f64 / 2.0 + dot(p, self.right) * s,
            SIZE as f64 / 2.0 - dot(p, self.up) * s,
            dot(p, self.forward),
        )
    }
}

/// Shade `mesh` (unit-cube coordinates) into a `SIZE x SIZE` RGB panel.
fn panel(mesh: &Mesh, tint: [f64; 3]) -> Vec<u8> {
    let view = View::new();
    let mut depth = vec![f64::INFINITY; SIZE * SIZE];
    let mut rgb = vec![30u8; SIZE * SIZE * 3];
    let light = normalize([-0.3, 0.8, 0.5]);
    for f in &mesh.faces {
        let [a, b, c] = f.map(|i| mesh.vertices[i as usize]);
        let n = normalize(cross(sub(b, a), sub(c, a)));
        // Two-sided: a flipped face still shows.
        let facing = if dot(n, view.forward) > 0.0 {
            -1.0
        } else {
            1.0
        };
        let shade = 0.25 + 0.75 * (facing * dot(n, light)).max(0.0);
        let pa = view.project(a);
        let pb = view.project(b);
        let pc = view.project(c);
        let area = (pb.0 - pa.0) * (pc.1 - pa.1) - (pb.1 - pa.1) * (pc.0 - pa.0);
        if area.abs() < 1e-12 {
            continue;
        }
        let x0 = pa.0.min(pb.0).min(pc.0).floor().max(0.0) as usize;
        let x1 = (pa.0.max(pb.0).max(pc.0).ceil() as usize).min(SIZE - 1);
        let y0 = pa.1.min(pb.1).min(pc.1).floor().max(0.0) as usize;
        let y1 = (pa.1.max(pb.1).max(pc.1).ceil() as usize).min(SIZE - 1);
        for y in y0..=y1 {
            for x in x0..=x1 {
                let (px, py) = (x as f64 + 0.5, y as f64 + 0.5);
                let w0 = ((pb.0 - px) * (pc.1 - py) - (pb.1 - py) * (pc.0 - px)) / area;
                let w1 = ((pc.0 - px) * (pa.1 - py) - (pc.1 - py) * (pa.0 - px)) / area;
                let w2 = 1.0 - w0 - w1;
                if w0 < 0.0 || w1 < 0.0 || w2 < 0.0 {
                    continue;
                }
                let z = w0 * pa.2 + w1 * pb.2 + w2 * pc.2;
                let k = y * SIZE + x;
                if z < depth[k] {
                    depth[k] = z;
                    for ch in 0..3 {
                        rgb[k * 3 + ch] = (255.0 * shade * tint[ch]).clamp(0.0, 255.0) as u8;
                    }
                }
            }
        }
    }
    rgb
}

/// The source (left) and the fitted surface (right; empty when none was found), both in the
/// source's normalised frame, seen from the same viewpoint, each titled.
pub fn write(source: &Mesh, fitted: Option<&Mesh>, path: &Path) -> Result<()> {
    let picture = |rgb| Raster {
        width: SIZE,
        height: SIZE,
        rgb,
    };
    let right_title = if fitted.is_some() {
        "fitted surface (the field's 0.5 level)"
    } else {
        "fitted surface: none (the field never crosses 0.5)"
    };
    let panels = [
        Panel {
            title: "source mesh".into(),
            raster: picture(panel(source, [0.85, 0.85, 0.9])),
            axes: None,
        },
        Panel {
            title: right_title.into(),
            raster: picture(match fitted {
                Some(m) => panel(m, [0.95, 0.75, 0.45]),
                None => vec![30u8; SIZE * SIZE * 3],
            }),
            axes: None,
        },
    ];
    write_panels(
        path,
        "shape: the source and the fit, shaded from the same viewpoint",
        &panels,
        2,
        (SIZE as u32, SIZE as u32 + 30),
        None,
    )
}
