//! A bounding-volume hierarchy over a mesh's triangles for the two queries the fields need: the
//! exact closest point on the surface, and the generalised winding number (inside-ness that holes
//! and flipped faces do not break). The winding number is summed over the tree with far nodes
//! replaced by their dipole (area-weighted normal at the area centroid), as in Barill et al.,
//! "Fast Winding Numbers for Soups and Clouds" (2018), first order.

use crate::mesh::{add, cross, dot, norm, scale, sub, Mesh, Vec3};

const LEAF: usize = 4;
/// A node is "far" from a query beyond this many times its radius (3: the first-order far field
/// is then within about 2% of the exact winding number on the test shapes; the sign needs 50%).
const FAR: f64 = 3.0;

#[derive(Debug, Clone)]
struct Node {
    lo: Vec3,
    hi: Vec3,
    /// Children, or a range of `order` for a leaf.
    kind: Kind,
    /// Sum of area-weighted normals (half cross products) of its triangles.
    normal: Vec3,
    /// Area-weighted centroid.
    center: Vec3,
    /// Largest distance from `center` to a vertex below.
    radius: f64,
}

#[derive(Debug, Clone)]
enum Kind {
    Inner(usize, usize),
    Leaf(usize, usize),
}

pub struct Bvh<'a> {
    mesh: &'a Mesh,
    nodes: Vec<Node>,
    order: Vec<u32>,
}

/// The closest surface point to a query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Closest {
    pub point: Vec3,
    pub distance: f64,
    pub face: usize,
}

impl<'a> Bvh<'a> {
    pub fn new(mesh: &'a Mesh) -> Self {
        let n = mesh.faces.len();
        let tris: Vec<[Vec3; 3]> = (0..n).map(|f| mesh.triangle(f)).collect();
        let centroids: Vec<Vec3> = tris
            .iter()
            .map(|[a, b, c]| scale(add(add(*a, *b), *c), 1.0 / 3.0))
            .collect();
        let mut order: Vec<u32> = (0..n as u32).collect();
        let mut nodes = Vec::with_capacity(2 * n / LEAF + 1);
        build(&tris, &centroids, &mut order, 0, n, &mut nodes);
        Self { mesh, nodes, order }
    }

    /// The closest point of the surface to `p`, if one is nearer than `max_distance`.
    pub fn closest(&self, p: Vec3, max_distance: f64) -> Option<Closest> {
        let mut best: Option<Closest> = None;
        let mut best_d2 = max_distance * max_distance;
        let mut stack = vec![0usize];
        while let Some(i) = stack.pop() {
            let node = &self.nodes[i];
            if box_distance2(p, node.lo, node.hi) >= best_d2 {
                continue;
            }
            match node.kind {
                Kind::Leaf(s, e) => {
                    for &f in &self.order[s..e] {
                        let [a, b, c] = self.mesh.triangle(f as usize);
                        let q = closest_on_triangle(p, a, b, c);
                        let d = sub(q, p);
                        let d2 = dot(d, d);
                        if d2 < best_d2 {
                            best_d2 = d2;
                            best = Some(Closest {
                                point: q,
                                distance: d2.sqrt(),
                                face: f as usize,
                            });
                        }
                    }
                }
                Kind::Inner(l, r) => {
                    // Nearer child last so it is popped first.
                    let dl = box_distance2(p, self.nodes[l].lo, self.nodes[l].hi);
                    let dr = box_distance2(p, self.nodes[r].lo, self.nodes[r].hi);
                    if dl < dr {
                        stack.push(r);
                        stack.push(l);
                    } else {
                        stack.push(l);
                        stack.push(r);
                    }
                }
            }
        }
        best
    }

    /// Generalised winding number at `p`: about 1 inside a closed outward-facing surface, 0
    /// outside, and in between (smoothly) around holes.
    pub fn winding_number(&self, p: Vec3) -> f64 {
        let mut total = 0.0;
        let mut stack = vec![0usize];
        while let Some(i) = stack.pop() {
            let node = &self.nodes[i];
            let d = sub(node.center, p);
            let dist = norm(d);
            if dist > FAR * node.radius && dist > 0.0 {
                total += dot(d, node.normal) / (dist * dist * dist);
                continue;
            }
            match node.kind {
                Kind::Leaf(s, e) => {
                    for &f in &self.order[s..e] {
                        let [a, b, c] = self.mesh.triangle(f as usize);
                        total += solid_angle(p, a, b, c);
                    }
                }
                Kind::Inner(l, r) => {
                    stack.push(l);
                    stack.push(r);
                }
            }
        }
        total / (4.0 * std::f64::consts::PI)
    }
}

fn build(
    tris: &[[Vec3; 3]],
    centroids: &[Vec3],
    order: &mut [u32],
    start: usize,
    end: usize,
    nodes: &mut Vec<Node>,
) -> usize {
    let mut lo = [f64::INFINITY; 3];
    let mut hi = [f64::NEG_INFINITY; 3];
    let mut normal = [0.0; 3];
    let mut weighted = [0.0; 3];
    let mut area = 0.0;
    for &f in &order[start..end] {
        let [a, b, c] = tris[f as usize];
        for v in [a, b, c] {
            for k in 0..3 {
                lo[k] = lo[k].min(v[k]);
                hi[k] = hi[k].max(v[k]);
            }
        }
        let n = scale(cross(sub(b, a), sub(c, a)), 0.5);
        let ar = norm(n);
        normal = add(normal, n);
        weighted = add(weighted, scale(centroids[f as usize], ar));
        area += ar;
    }
    let center = if area > 0.0 {
        scale(weighted, 1.0 / area)
    } else {
        scale(add(lo, hi), 0.5)
    };
    let mut radius: f64 = 0.0;
    for &f in &order[start..end] {
        for v in tris[f as usize] {
            radius = radius.max(norm(sub(v, center)));
        }
    }
    let index = nodes.len();
    nodes.push(Node {
        lo,
        hi,
        kind: Kind::Leaf(start, end),
        normal,
        center,
        radius,
    });
    if end - start > LEAF {
        // Median split of the centroids along their longest extent.
        let mut clo = [f64::INFINITY; 3];
        let mut chi = [f64::NEG_INFINITY; 3];
        for &f in &order[start..end] {
            let c = centroids[f as usize];
            for k in 0..3 {
                clo[k] = clo[k].min(c[k]);
                chi[k] = chi[k].max(c[k]);
            }
        }
        let axis = (0..3)
            .max_by(|&a, &b| (chi[a] - clo[a]).total_cmp(&(chi[b] - clo[b])))
            .unwrap_or(0);
        let mid = (start + end) / 2;
        order[start..end].select_nth_unstable_by(mid - start, |&x, &y| {
            centroids[x as usize][axis].total_cmp(&centroids[y as usize][axis])
        });
        let l = build(tris, centroids, order, start, mid, nodes);
        let r = build(tris, centroids, order, mid, end, nodes);
        nodes[index].kind = Kind::Inner(l, r);
    }
    index
}

fn box_distance2(p: Vec3, lo: Vec3, hi: Vec3) -> f64 {
    let mut d2 = 0.0;
    for k in 0..3 {
        let d = if p[k] < lo[k] {
            lo[k] - p[k]
        } else if p[k] > hi[k] {
            p[k] - hi[k]
        } else {
            0.0
        };
        d2 += d * d;
    }
    d2
}

/// The closest point of triangle `abc` to `p`, by the Voronoi region of `p` (vertex, edge or face).
pub fn closest_on_triangle(p: Vec3, a: Vec3, b: Vec3, c: Vec3) -> Vec3 {
    let ab = sub(b, a);
    let ac = sub(c, a);
    let ap = sub(p, a);
    let d1 = dot(ab, ap);
    let d2 = dot(ac, ap);
    if d1 <= 0.0 && d2 <= 0.0 {
        return a;
    }
    let bp = sub(p, b);
    let d3 = dot(ab, bp);
    let d4 = dot(ac, bp);
    if d3 >= 0.0 && d4 <= d3 {
        return b;
    }
    let vc = d1 * d4 - d3 * d2;
    if vc <= 0.0 && d1 >= 0.0 && d3 <= 0.0 {
        return add(a, scale(ab, d1 / (d1 - d3)));
    }
    let cp = sub(p, c);
    let d5 = dot(ab, cp);
    let d6 = dot(ac, cp);
    if d6 >= 0.0 && d5 <= d6 {
        return c;
    }
    let vb = d5 * d2 - d1 * d6;
    if vb <= 0.0 && d2 >= 0.0 && d6 <= 0.0 {
        return add(a, scale(ac, d2 / (d2 - d6)));
    }
    let va = d3 * d6 - d5 * d4;
    if va <= 0.0 && d4 - d3 >= 0.0 && d5 - d6 >= 0.0 {
        let w = (d4 - d3) / ((d4 - d3) + (d5 - d6));
        return add(b, scale(sub(c, b), w));
    }
    let denom = 1.0 / (va + vb + vc);
    add(a, add(scale(ab, vb * denom), scale(ac, vc * denom)))
}

/// Signed solid angle of triangle `abc` seen from `p` (Van Oosterom and Strackee): positive when
/// the triangle's counter-clockwise side faces away from `p`.
pub fn solid_angle(p: Vec3, a: Vec3, b: Vec3, c: Vec3) -> f64 {
    let (a, b, c) = (sub(a, p), sub(b, p), sub(c, p));
    let (la, lb, lc) = (norm(a), norm(b), norm(c));
    let det = dot(a, cross(b, c));
    let den = la * lb * lc + dot(a, b) * lc + dot(a, c) * lb + dot(b, c) * la;
    2.0 * det.atan2(den)
}
