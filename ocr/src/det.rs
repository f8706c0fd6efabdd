//! Text detection: the detector's input, and the DB post-processing of
//! its probability map into text boxes.

use image::{imageops, GrayImage, Luma, RgbImage};
use imageproc::contours::{find_contours, BorderType};

use crate::geometry::{contour_rect, Quad};
use crate::preprocess::{chw_bgr, Normalize};

/// The detector's normalisation: ImageNet's mean and deviation, listed
/// in RGB order but applied to the BGR planes, as PP-OCR trained it.
const DET_NORMALIZE: Normalize = Normalize {
    mean: [0.485, 0.456, 0.406],
    std: [0.229, 0.224, 0.225],
};

/// Settings of detection; the defaults are PP-OCR's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetOptions {
    /// The longer side of the detector's input at most (the image is
    /// shrunk to fit, never enlarged); rounded to a multiple of 32.
    pub max_side: u32,
    /// A pixel is text when its probability is above this.
    pub threshold: f32,
    /// A box is kept when the mean probability inside it is at least this.
    pub box_threshold: f32,
    /// How far a box grows past its core: `area * ratio / perimeter` on
    /// every side.
    pub unclip_ratio: f32,
    /// Regions looked at, at most.
    pub max_candidates: usize,
    /// A box with a shorter side under this many map pixels is dropped.
    pub min_size: f32,
}

impl Default for DetOptions {
    fn default() -> Self {
        Self {
            max_side: 960,
            threshold: 0.3,
            box_threshold: 0.5,
            unclip_ratio: 1.6,
            max_candidates: 1000,
            min_size: 3.0,
        }
    }
}

/// The detector's input for one image.
#[derive(Debug, Clone)]
pub struct DetInput {
    /// `1 x 3 x h x w`, normalised, BGR.
    pub data: Vec<f32>,
    /// Width and height of the input (multiples of 32).
    pub size: (u32, u32),
}

/// Resizes `img` so its longer side is at most `max_side` and both sides
/// are multiples of 32, and normalises it.
pub fn prepare(img: &RgbImage, max_side: u32) -> DetInput {
    let (w, h) = img.dimensions();
    let longer = w.max(h).max(1) as f32;
    let ratio = (max_side as f32 / longer).min(1.0);
    let round32 = |v: u32| ((((v as f32 * ratio) / 32.0).round() as u32) * 32).max(32);
    let size = (round32(w), round32(h));
    let resized = imageops::resize(img, size.0, size.1, imageops::FilterType::Triangle);
    DetInput {
        data: chw_bgr(&resized, &DET_NORMALIZE),
        size,
    }
}

/// The DB post-processing: the text boxes of a `w x h` probability map
/// (row-major), in the map's coordinates, ordered top to bottom then left
/// to right.
///
/// Pixels above the threshold form a bitmap, dilated by a 2x2 square so
/// that neighbouring strokes join; each outer contour's smallest rotated
/// rectangle is kept if it is large enough and the mean probability inside
/// it reaches the box threshold, then grown ("unclipped") by
/// `area * unclip_ratio / perimeter` on every side, since the detector
/// marks a shrunken core of each text line.
pub fn boxes(prob: &[f32], w: usize, h: usize, opts: &DetOptions) -> Vec<Quad> {
    if w == 0 || h == 0 || prob.len() < w * h {
        return Vec::new();
    }
    let on = |x: usize, y: usize| prob[y * w + x] > opts.threshold;
    // 2x2 dilation, anchored as OpenCV anchors an even kernel: a pixel is
    // set when it or its left, upper or upper-left neighbour is.
    let bitmap = GrayImage::from_fn(w as u32, h as u32, |x, y| {
        let (x, y) = (x as usize, y as usize);
        let set = on(x, y)
            || (x > 0 && on(x - 1, y))
            || (y > 0 && on(x, y - 1))
            || (x > 0 && y > 0 && on(x - 1, y - 1));
        Luma([if set { 255 } else { 0 }])
    });
    let mut out = Vec::new();
    for contour in find_contours::<i32>(&bitmap)
        .iter()
        .filter(|c| c.border_type == BorderType::Outer)
        .take(opts.max_candidates)
    {
        let Some(rect) = contour_rect(&contour.points) else {
            continue;
        };
        if rect.short_side() < opts.min_size {
            continue;
        }
        if mean_inside(prob, w, h, &rect.quad()) < opts.box_threshold {
            continue;
        }
        let grown = rect.grown(rect.area() * opts.unclip_ratio / rect.perimeter());
        if grown.short_side() < opts.min_size + 2.0 {
            continue;
        }
        let clamp = |(x, y): (f32, f32)| (x.clamp(0.0, w as f32), y.clamp(0.0, h as f32));
        out.push(grown.quad().map(clamp));
    }
    sort_reading_order(&mut out);
    out
}

/// The mean of `prob` over the pixels whose centres lie in `q`.
fn mean_inside(prob: &[f32], w: usize, h: usize, q: &Quad) -> f32 {
    let (x0, y0, x1, y1) = q.bounds();
    let (x0, y0) = (x0.floor().max(0.0) as usize, y0.floor().max(0.0) as usize);
    let (x1, y1) = (
        (x1.ceil() as usize).min(w - 1),
        (y1.ceil() as usize).min(h - 1),
    );
    let (mut sum, mut n) = (0.0f32, 0usize);
    for y in y0..=y1 {
        for x in x0..=x1 {
            if q.contains((x as f32, y as f32)) {
                sum += prob[y * w + x];
                n += 1;
            }
        }
    }
    if n == 0 {
        0.0
    } else {
        sum / n as f32
    }
}

/// Top to bottom; boxes whose tops are within 10 pixels read left to right.
pub fn sort_reading_order(boxes: &mut [Quad]) {
    boxes.sort_by(|a, b| {
        a.0[0]
            .1
            .total_cmp(&b.0[0].1)
            .then(a.0[0].0.total_cmp(&b.0[0].0))
    });
    // One bubble pass per box, as PP-OCR does: a box on the same line
    // (tops within 10 px) but further left moves ahead.
    for i in 0..boxes.len() {
        let mut j = i;
        while j > 0
            && (boxes[j].0[0].1 - boxes[j - 1].0[0].1).abs() < 10.0
            && boxes[j].0[0].0 < boxes[j - 1].0[0].0
        {
            boxes.swap(j, j - 1);
            j -= 1;
        }
    }
}
