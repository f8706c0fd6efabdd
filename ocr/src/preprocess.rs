//! Turning images into the models' input: resizing and normalising.

use image::{imageops, RgbImage};

/// Per-channel normalisation `(x / 255 - mean) / std`, in BGR order (the
/// order PP-OCR's models were trained in).
#[derive(Debug, Clone, Copy)]
pub struct Normalize {
    /// Means, B, G, R.
    pub mean: [f32; 3],
    /// Deviations, B, G, R.
    pub std: [f32; 3],
}

/// `(x / 255 - 0.5) / 0.5`: the classifier's and recogniser's.
pub const HALF: Normalize = Normalize {
    mean: [0.5; 3],
    std: [0.5; 3],
};

/// The image as `3 x h x w` floats, BGR planes, normalised.
pub fn chw_bgr(img: &RgbImage, n: &Normalize) -> Vec<f32> {
    let (w, h) = img.dimensions();
    let plane = (w * h) as usize;
    let mut out = vec![0.0f32; 3 * plane];
    write_chw_bgr(img, n, &mut out, w as usize);
    out
}

/// Writes `img` into `out`, a `3 x h x stride` block (BGR planes, rows
/// `stride` wide), leaving the columns past the image's width untouched
/// (the padding).
pub fn write_chw_bgr(img: &RgbImage, n: &Normalize, out: &mut [f32], stride: usize) {
    let plane = img.height() as usize * stride;
    for (x, y, px) in img.enumerate_pixels() {
        let (x, y) = (x as usize, y as usize);
        if x >= stride {
            continue;
        }
        for (c, &v) in [px[2], px[1], px[0]].iter().enumerate() {
            out[c * plane + y * stride + x] = (v as f32 / 255.0 - n.mean[c]) / n.std[c];
        }
    }
}

/// A batch of line crops as `n x 3 x height x width`: each crop resized to
/// `height` keeping its aspect ratio (at most `width` wide), normalised,
/// and padded on the right with zeros.
pub fn line_batch(crops: &[&RgbImage], height: u32, width: u32) -> Vec<f32> {
    let block = (3 * height * width) as usize;
    let mut out = vec![0.0f32; crops.len() * block];
    for (i, crop) in crops.iter().enumerate() {
        let (cw, ch) = crop.dimensions();
        let ratio = cw as f32 / ch.max(1) as f32;
        let w = ((height as f32 * ratio).ceil() as u32).clamp(1, width);
        let resized = imageops::resize(*crop, w, height, imageops::FilterType::Triangle);
        write_chw_bgr(
            &resized,
            &HALF,
            &mut out[i * block..(i + 1) * block],
            width as usize,
        );
    }
    out
}
