//! Fields, surfaces and metrics on meshes made in code (sphere, cube, torus) with known answers.

use modality_shape::bvh::{closest_on_triangle, Bvh};
use modality_shape::field::{field, iou, voxel_center, Target, LEVEL};
use modality_shape::mesh::{load_obj, norm, sub, Mesh};
use modality_shape::metrics::compare;
use modality_shape::shapes::{cube, sphere, torus};
use modality_shape::surface::extract;

#[test]
fn closest_point_regions() {
    let (a, b, c) = ([0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]);
    let near = |p: [f64; 3], q: [f64; 3]| norm(sub(p, q)) < 1e-12;
    assert!(near(
        closest_on_triangle([0.2, 0.2, 3.0], a, b, c),
        [0.2, 0.2, 0.0]
    ));
    assert_eq!(closest_on_triangle([-1.0, -1.0, 0.0], a, b, c), a);
    assert_eq!(closest_on_triangle([2.0, -0.5, 1.0], a, b, c), b);
    assert!(near(
        closest_on_triangle([0.5, -2.0, 0.0], a, b, c),
        [0.5, 0.0, 0.0]
    ));
    let q = closest_on_triangle([1.0, 1.0, 0.0], a, b, c);
    assert!((q[0] - 0.5).abs() < 1e-12 && (q[1] - 0.5).abs() < 1e-12);
}

#[test]
fn winding_numbers_inside_outside_and_through_holes() {
    let s = sphere([0.0; 3], 0.6, 32, 48);
    let bvh = Bvh::new(&s);
    // First-order far field: a few percent at most, plenty for the sign (threshold 0.5).
    assert!((bvh.winding_number([0.0; 3]) - 1.0).abs() < 0.05);
    assert!((bvh.winding_number([0.1, 0.2, -0.3]) - 1.0).abs() < 0.05);
    assert!(bvh.winding_number([0.9, 0.0, 0.0]).abs() < 0.05);
    assert!(bvh.winding_number([3.0, 2.0, 1.0]).abs() < 0.05);
    // A hole (faces removed) and a flipped face leave the inside inside.
    let mut holed = s.clone();
    holed.faces.truncate(holed.faces.len() - 6);
    holed.faces[40].swap(1, 2);
    let bvh = Bvh::new(&holed);
    assert!(bvh.winding_number([0.0; 3]) > 0.9);
    assert!(bvh.winding_number([0.0, 0.0, 0.9]) < 0.1);
    let t = torus(0.5, 0.2, 48, 24);
    let bvh = Bvh::new(&t);
    assert!((bvh.winding_number([0.5, 0.0, 0.0]) - 1.0).abs() < 0.05);
    let w = bvh.winding_number([0.0; 3]);
    assert!(w.abs() < 0.05, "the hole of the torus is outside: {w}");
}

#[test]
fn sphere_sdf_matches_the_analytic_field() {
    let (r, radius, band) = (24, 0.6, 0.2);
    let s = sphere([0.0; 3], radius, 96, 128);
    let f = field(&s, r, Target::Sdf, band);
    let mut worst = 0f64;
    for x in 0..r {
        for y in 0..r {
            for z in 0..r {
                let p = [voxel_center(x, r), voxel_center(y, r), voxel_center(z, r)];
                let sdf = norm(p) - radius;
                let want = 0.5 - 0.5 * (sdf / band).clamp(-1.0, 1.0);
                worst = worst.max((f[(x * r + y) * r + z] as f64 - want).abs());
            }
        }
    }
    // Tessellation error of the sphere (about 2e-4 in distance) over the band.
    assert!(worst < 2e-3, "worst {worst}");
}

#[test]
fn occupancy_iou_of_a_cube_and_a_torus() {
    let r = 32;
    let analytic = |inside: &dyn Fn([f64; 3]) -> bool| -> Vec<f32> {
        let mut v = Vec::with_capacity(r * r * r);
        for x in 0..r {
            for y in 0..r {
                for z in 0..r {
                    let p = [voxel_center(x, r), voxel_center(y, r), voxel_center(z, r)];
                    v.push(f32::from(u8::from(inside(p))));
                }
            }
        }
        v
    };
    let c = field(&cube(0.5), r, Target::Occupancy, 0.1);
    let want = analytic(&|p| p.iter().all(|x| x.abs() < 0.5));
    assert_eq!(iou(&c, &want), 1.0);
    let t = field(&torus(0.55, 0.25, 96, 48), r, Target::Occupancy, 0.1);
    let want = analytic(&|p| {
        let q = (p[0] * p[0] + p[1] * p[1]).sqrt() - 0.55;
        q * q + p[2] * p[2] < 0.25 * 0.25
    });
    let score = iou(&t, &want);
    assert!(score > 0.98, "torus IoU {score}");
    // IoU of two different cubes: (0.5^3 voxels) / (0.75^3) by voxel count.
    let small = field(&cube(0.25), r, Target::Occupancy, 0.1);
    let big = field(&cube(0.5), r, Target::Occupancy, 0.1);
    assert!((iou(&small, &big) - (8.0f64 / 16.0).powi(3)).abs() < 1e-12);
}

/// Every edge is shared by exactly two faces, in opposite directions: closed and consistently
/// oriented.
fn closed_and_oriented(m: &Mesh) -> bool {
    let mut edges = std::collections::HashMap::new();
    for f in &m.faces {
        for k in 0..3 {
            *edges.entry((f[k], f[(k + 1) % 3])).or_insert(0) += 1;
        }
    }
    edges
        .iter()
        .all(|(&(a, b), &n)| n == 1 && edges.get(&(b, a)) == Some(&1))
}

#[test]
fn extracted_sphere_is_closed_close_and_outward() {
    let r = 32;
    let s = sphere([0.05, -0.1, 0.0], 0.55, 96, 128);
    let f = field(&s, r, Target::Sdf, 0.15);
    let m = extract(&f, r, LEVEL).expect("a surface");
    assert!(closed_and_oriented(&m));
    let got = compare(&m, &s, 20_000, 3);
    let voxel = 2.0 / r as f64;
    assert!(got.chamfer_l1 < 0.05 * voxel, "{got:?}");
    assert!(got.normal_consistency > 0.98, "{got:?}");
    // Outward: the signed volume is positive.
    let volume: f64 = m
        .faces
        .iter()
        .map(|f| {
            let [a, b, c] = f.map(|i| m.vertices[i as usize]);
            modality_shape::mesh::dot(a, modality_shape::mesh::cross(b, c)) / 6.0
        })
        .sum();
    let want = 4.0 / 3.0 * std::f64::consts::PI * 0.55f64.powi(3);
    assert!((volume - want).abs() < 0.01 * want, "{volume} vs {want}");
}

#[test]
fn chamfer_by_hand() {
    let a = sphere([0.0; 3], 0.5, 64, 96);
    let b = sphere([0.0; 3], 0.6, 64, 96);
    let same = compare(&a, &a, 10_000, 1);
    assert!(same.chamfer_l1 < 1e-9 && same.normal_consistency > 0.999_999);
    let m = compare(&a, &b, 20_000, 1);
    assert!((m.chamfer_l1 - 0.1).abs() < 2e-3, "{m:?}");
    assert!((m.chamfer_l2 - 0.01).abs() < 4e-4, "{m:?}");
    assert!(m.normal_consistency > 0.99);
}

#[test]
fn obj_loading_merges_triangulates_and_reports_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let two = write(
        "two.obj",
        "o a\nv 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nv 9 9 9\nf 1 2 3 4\n\
         o b\nv 0 0 1\nv 1 0 1\nv 0 1 1\nf 6 7 8\n",
    );
    let m = load_obj(&two).unwrap();
    assert_eq!(m.faces.len(), 3, "a quad and a triangle");
    assert_eq!(m.vertices.len(), 7, "the unused vertex is dropped");
    assert!(m.vertices.iter().all(|v| v != &[9.0, 9.0, 9.0]));
    let area = m.area();
    assert!((area - 1.5).abs() < 1e-12);
    for (name, text, needle) in [
        ("none.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\n", "no faces"),
        (
            "nan.obj",
            "v 0 0 nan\nv 1 0 0\nv 0 1 0\nf 1 2 3\n",
            "not finite",
        ),
        ("missing.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 7\n", ""),
        ("text.obj", "this is not a mesh at all\n", ""),
        ("empty.obj", "", "no faces"),
    ] {
        let p = write(name, text);
        let e = load_obj(&p).unwrap_err().to_string();
        assert!(e.contains(name), "{name}: {e}");
        assert!(e.contains(needle), "{name}: {e}");
    }
    let e = load_obj(&dir.path().join("absent.obj"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("no such file"), "{e}");
    let _ = sub([0.0; 3], [0.0; 3]);
}
