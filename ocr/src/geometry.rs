//! Quadrilaterals and rotated rectangles in image coordinates.

/// A point, `(x, y)`, in pixels.
pub type Pt = (f32, f32);

/// A text box: four corners in order top-left, top-right, bottom-right,
/// bottom-left (as the text reads).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Quad(pub [Pt; 4]);

impl Quad {
    /// An axis-aligned box.
    pub fn rect(x: f32, y: f32, w: f32, h: f32) -> Self {
        Quad([(x, y), (x + w, y), (x + w, y + h), (x, y + h)])
    }

    /// Its corners ordered as PP-OCR orders them: the two leftmost (by x)
    /// give top-left and bottom-left (by y), the others top-right and
    /// bottom-right.
    pub fn ordered(points: [Pt; 4]) -> Self {
        let mut p = points;
        p.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (l0, l1) = if p[0].1 <= p[1].1 {
            (p[0], p[1])
        } else {
            (p[1], p[0])
        };
        let (r0, r1) = if p[2].1 <= p[3].1 {
            (p[2], p[3])
        } else {
            (p[3], p[2])
        };
        Quad([l0, r0, r1, l1])
    }

    /// Width (the longer of top and bottom edges) and height (the longer
    /// of the left and right edges).
    pub fn size(&self) -> (f32, f32) {
        let [tl, tr, br, bl] = self.0;
        (
            dist(tl, tr).max(dist(bl, br)),
            dist(tl, bl).max(dist(tr, br)),
        )
    }

    /// The smallest axis-aligned rectangle holding it: `(x0, y0, x1, y1)`.
    pub fn bounds(&self) -> (f32, f32, f32, f32) {
        self.0.iter().fold(
            (f32::MAX, f32::MAX, f32::MIN, f32::MIN),
            |(x0, y0, x1, y1), &(x, y)| (x0.min(x), y0.min(y), x1.max(x), y1.max(y)),
        )
    }

    /// Its centre.
    pub fn center(&self) -> Pt {
        let (sx, sy) = self
            .0
            .iter()
            .fold((0.0, 0.0), |a, p| (a.0 + p.0, a.1 + p.1));
        (sx / 4.0, sy / 4.0)
    }

    /// Whether `p` lies inside (a convex quadrilateral, either winding).
    pub fn contains(&self, p: Pt) -> bool {
        let mut sign = 0.0f32;
        for i in 0..4 {
            let (a, b) = (self.0[i], self.0[(i + 1) % 4]);
            let c = (b.0 - a.0) * (p.1 - a.1) - (b.1 - a.1) * (p.0 - a.0);
            if c != 0.0 {
                if sign != 0.0 && c.signum() != sign {
                    return false;
                }
                sign = c.signum();
            }
        }
        true
    }

    /// Each corner mapped through `f`.
    pub fn map(&self, f: impl Fn(Pt) -> Pt) -> Self {
        Quad(self.0.map(f))
    }
}

/// Euclidean distance.
pub fn dist(a: Pt, b: Pt) -> f32 {
    (a.0 - b.0).hypot(a.1 - b.1)
}

/// A rotated rectangle: centre, unit axis along its width, half sizes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RotatedRect {
    /// Centre.
    pub center: Pt,
    /// Unit vector along the width; the height runs along its normal.
    pub axis: Pt,
    /// Half the width.
    pub half_w: f32,
    /// Half the height.
    pub half_h: f32,
}

impl RotatedRect {
    /// The rectangle grown by `d` on every side.
    pub fn grown(self, d: f32) -> Self {
        Self {
            half_w: self.half_w + d,
            half_h: self.half_h + d,
            ..self
        }
    }

    /// Its shorter side.
    pub fn short_side(&self) -> f32 {
        2.0 * self.half_w.min(self.half_h)
    }

    /// Area.
    pub fn area(&self) -> f32 {
        4.0 * self.half_w * self.half_h
    }

    /// Perimeter.
    pub fn perimeter(&self) -> f32 {
        4.0 * (self.half_w + self.half_h)
    }

    /// Its corners, ordered.
    pub fn quad(&self) -> Quad {
        let (c, u) = (self.center, self.axis);
        let v = (-u.1, u.0);
        let corner = |a: f32, b: f32| {
            (
                c.0 + a * self.half_w * u.0 + b * self.half_h * v.0,
                c.1 + a * self.half_w * u.1 + b * self.half_h * v.1,
            )
        };
        Quad::ordered([
            corner(-1.0, -1.0),
            corner(1.0, -1.0),
            corner(1.0, 1.0),
            corner(-1.0, 1.0),
        ])
    }
}

/// The smallest-area rectangle holding the convex polygon `hull`
/// (rotating calipers: one side of the best rectangle lies on a hull
/// edge); `None` for no points.
pub fn min_area_rect(hull: &[Pt]) -> Option<RotatedRect> {
    let first = *hull.first()?;
    let mut best: Option<(f32, RotatedRect)> = None;
    for i in 0..hull.len() {
        let (a, b) = (hull[i], hull[(i + 1) % hull.len()]);
        let len = dist(a, b);
        if len == 0.0 {
            continue;
        }
        let u = ((b.0 - a.0) / len, (b.1 - a.1) / len);
        let v = (-u.1, u.0);
        let (mut u0, mut u1, mut v0, mut v1) = (f32::MAX, f32::MIN, f32::MAX, f32::MIN);
        for p in hull {
            let pu = p.0 * u.0 + p.1 * u.1;
            let pv = p.0 * v.0 + p.1 * v.1;
            (u0, u1, v0, v1) = (u0.min(pu), u1.max(pu), v0.min(pv), v1.max(pv));
        }
        let area = (u1 - u0) * (v1 - v0);
        if best.as_ref().is_none_or(|(a, _)| area < *a) {
            let (cu, cv) = ((u0 + u1) / 2.0, (v0 + v1) / 2.0);
            let rect = RotatedRect {
                center: (cu * u.0 + cv * v.0, cu * u.1 + cv * v.1),
                axis: u,
                half_w: (u1 - u0) / 2.0,
                half_h: (v1 - v0) / 2.0,
            };
            best = Some((area, rect));
        }
    }
    Some(best.map_or(
        RotatedRect {
            center: first,
            axis: (1.0, 0.0),
            half_w: 0.0,
            half_h: 0.0,
        },
        |(_, r)| r,
    ))
}

/// The smallest-area rectangle holding a contour's pixels.
pub fn contour_rect(points: &[imageproc::point::Point<i32>]) -> Option<RotatedRect> {
    let hull: Vec<Pt> = imageproc::geometry::convex_hull(points.to_vec())
        .into_iter()
        .map(|p| (p.x as f32, p.y as f32))
        .collect();
    min_area_rect(&hull)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_min_area_rect_of_a_rotated_rectangle_is_that_rectangle() {
        let r = RotatedRect {
            center: (50.0, 40.0),
            axis: (30f32.to_radians().cos(), 30f32.to_radians().sin()),
            half_w: 20.0,
            half_h: 5.0,
        };
        let m = min_area_rect(&r.quad().0).unwrap();
        assert!((m.area() - r.area()).abs() < 1e-2, "{m:?}");
        assert!((m.short_side() - 10.0).abs() < 1e-3);
    }

    #[test]
    fn ordering_puts_the_top_left_first() {
        let q = Quad::ordered([(10.0, 5.0), (0.0, 0.0), (10.0, 0.0), (0.0, 5.0)]);
        assert_eq!(q.0, [(0.0, 0.0), (10.0, 0.0), (10.0, 5.0), (0.0, 5.0)]);
        assert!(q.contains((5.0, 2.0)));
        assert!(!q.contains((11.0, 2.0)));
    }
}
