//! The direction classifier: is a line upside down?

use image::RgbImage;

use crate::preprocess::line_batch;

/// The classifier's input height.
pub const HEIGHT: u32 = 48;
/// The classifier's input width (crops are padded to it).
pub const WIDTH: u32 = 192;

/// The classifier's input for `crops`: `n x 3 x 48 x 192`.
pub fn prepare(crops: &[&RgbImage]) -> Vec<f32> {
    line_batch(crops, HEIGHT, WIDTH)
}

/// Whether each line is upside down, from the classifier's `n x 2`
/// output (`[p(0°), p(180°)]`): when 180° is the likelier and its
/// probability reaches `threshold`.
pub fn upside_down(probs: &[f32], threshold: f32) -> Vec<(bool, f32)> {
    probs
        .chunks_exact(2)
        .map(|p| {
            let turned = p[1] > p[0] && p[1] >= threshold;
            (turned, p[0].max(p[1]))
        })
        .collect()
}
