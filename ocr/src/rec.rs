//! The recogniser's input: line crops batched with padding.

use image::RgbImage;

use crate::preprocess::line_batch;

/// The recogniser's input height.
pub const HEIGHT: u32 = 48;
/// The narrowest batch width: PP-OCR's 320 (a 6.67 aspect ratio).
pub const MIN_WIDTH: u32 = 320;
/// The widest batch width taken: a line wider than 40 times its height is
/// squeezed to it.
pub const MAX_WIDTH: u32 = HEIGHT * 40;

/// The width a batch of `crops` is padded to: wide enough for the widest
/// crop at height 48, at least 320.
pub fn batch_width(crops: &[&RgbImage]) -> u32 {
    let widest = crops
        .iter()
        .map(|c| c.width() as f32 / c.height().max(1) as f32)
        .fold(MIN_WIDTH as f32 / HEIGHT as f32, f32::max);
    ((HEIGHT as f32 * widest).ceil() as u32).clamp(MIN_WIDTH, MAX_WIDTH)
}

/// The recogniser's input for `crops`: `n x 3 x 48 x width`, and `width`.
pub fn prepare(crops: &[&RgbImage]) -> (Vec<f32>, u32) {
    let width = batch_width(crops);
    (line_batch(crops, HEIGHT, width), width)
}
