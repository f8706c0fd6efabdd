//! Cutting a text box out of an image as an upright, rectangular line.

use image::{imageops, Rgb, RgbImage};
use imageproc::geometric_transformations::{warp_into_with, Interpolation, Projection};

use crate::geometry::Quad;

/// The line inside `q`, rectified: the quadrilateral mapped onto a
/// rectangle as wide as its longer horizontal edge and as tall as its
/// longer vertical edge (a perspective warp, bilinear). A crop at least
/// 1.5 times taller than wide is a vertical line and is turned a quarter
/// counter-clockwise, as PP-OCR does. `None` for a box under one pixel.
pub fn rectify(img: &RgbImage, q: &Quad) -> Option<RgbImage> {
    let (w, h) = q.size();
    let (w, h) = (w.round() as u32, h.round() as u32);
    if w == 0 || h == 0 {
        return None;
    }
    let to = [
        (0.0, 0.0),
        (w as f32, 0.0),
        (w as f32, h as f32),
        (0.0, h as f32),
    ];
    // From each output pixel back to the image.
    let back = Projection::from_control_points(to, q.0)?;
    // Sampled points are kept inside the image, so the border repeats past
    // its edge (as PP-OCR's crop does) and bilinear sampling at the last
    // row or column never falls outside.
    let (xmax, ymax) = (
        (img.width() as f32 - 1.001).max(0.0),
        (img.height() as f32 - 1.001).max(0.0),
    );
    let mut out = RgbImage::new(w, h);
    warp_into_with(
        img,
        |x, y| {
            let (sx, sy) = back * (x, y);
            (sx.clamp(0.0, xmax), sy.clamp(0.0, ymax))
        },
        Interpolation::Bilinear,
        Rgb([255, 255, 255]),
        &mut out,
    );
    if h as f32 >= 1.5 * w as f32 {
        out = imageops::rotate270(&out);
    }
    Some(out)
}
