//! Drawing what was read onto the image.

use ab_glyph::{FontVec, PxScale};
use image::{Rgb, RgbImage};
use imageproc::drawing::{draw_filled_rect_mut, draw_line_segment_mut, draw_text_mut, text_size};
use imageproc::rect::Rect;

use crate::Line;

/// A copy of `img` with each line's box outlined and its text written
/// above it (with `font`; without one, boxes only).
pub fn annotate(img: &RgbImage, lines: &[Line], font: Option<&FontVec>) -> RgbImage {
    let mut out = img.clone();
    let red = Rgb([220, 30, 30]);
    for line in lines {
        let q = line.quad.0;
        for i in 0..4 {
            let (a, b) = (q[i], q[(i + 1) % 4]);
            draw_line_segment_mut(&mut out, a, b, red);
            // Twice as thick: the same edge one pixel lower.
            draw_line_segment_mut(&mut out, (a.0, a.1 + 1.0), (b.0, b.1 + 1.0), red);
        }
        if let Some(font) = font {
            let scale = PxScale::from(14.0);
            let label = format!("{} ({:.2})", line.text, line.confidence);
            let (tw, th) = text_size(scale, font, &label);
            let x = q[0].0.max(0.0) as i32;
            let y = (q[0].1 as i32 - th as i32 - 4).max(0);
            draw_filled_rect_mut(
                &mut out,
                Rect::at(x, y).of_size(tw.max(1) + 4, th.max(1) + 4),
                Rgb([255, 255, 210]),
            );
            draw_text_mut(
                &mut out,
                Rgb([150, 0, 0]),
                x + 2,
                y + 1,
                scale,
                font,
                &label,
            );
        }
    }
    out
}
