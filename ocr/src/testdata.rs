//! Images of known text, rendered with a real TrueType font, to check the
//! pipeline against: several lines per image at several sizes, some
//! turned 180°, with light noise and blur.

use std::path::Path;

use ab_glyph::{FontVec, PxScale};
use image::{imageops, Rgb, RgbImage};
use imageproc::drawing::{draw_text_mut, text_size};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::geometry::Quad;
use crate::OcrError;

/// One rendered line: its text and where it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TruthLine {
    /// The text drawn.
    pub text: String,
    /// The box the glyphs were drawn in: `[x, y, width, height]`.
    pub rect: [f32; 4],
    /// Drawn upside down.
    pub upside_down: bool,
    /// The font size, in pixels.
    pub size: f32,
}

impl TruthLine {
    /// Its box as a quadrilateral.
    pub fn quad(&self) -> Quad {
        let [x, y, w, h] = self.rect;
        Quad::rect(x, y, w, h)
    }
}

/// One generated image and the lines on it.
#[derive(Debug, Clone)]
pub struct Sample {
    /// The file name it is saved under.
    pub name: String,
    /// The image.
    pub image: RgbImage,
    /// Its lines, top to bottom.
    pub lines: Vec<TruthLine>,
}

/// How samples are drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TestDataOptions {
    /// Image width in pixels.
    pub width: u32,
    /// Lines per image, at least and at most.
    pub lines: (usize, usize),
    /// Font sizes in pixels, at least and at most.
    pub sizes: (f32, f32),
    /// The share of lines drawn upside down.
    pub upside_down: f64,
    /// Noise added to every channel, at most (plus or minus).
    pub noise: u8,
    /// Gaussian blur sigma, at most (each image draws its own).
    pub blur: f32,
}

impl Default for TestDataOptions {
    fn default() -> Self {
        Self {
            width: 960,
            lines: (2, 5),
            sizes: (22.0, 44.0),
            upside_down: 0.2,
            noise: 12,
            blur: 0.8,
        }
    }
}

/// Loads a TrueType font file.
pub fn load_font(path: &Path) -> Result<FontVec, OcrError> {
    let bytes = std::fs::read(path).map_err(|source| OcrError::Read {
        path: path.to_owned(),
        source,
    })?;
    FontVec::try_from_vec(bytes).map_err(|e| OcrError::Decode {
        path: path.to_owned(),
        reason: format!("not a TrueType font: {e}"),
    })
}

const WORDS: &[&str] = &[
    "the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "Pool", "worker", "queue",
    "priority", "model", "batch", "image", "text", "line", "reads", "fast", "north", "river",
    "Paris", "London", "Monday", "invoice", "total", "price", "order", "number", "street",
    "delivery", "Report", "green", "window", "market", "garden", "letter", "station", "summer",
    "winter", "coffee", "paper", "silver", "Table", "engine", "signal", "harbour", "valley",
];
const PUNCT: &[&str] = &[",", ".", "!", "?", ":", ";"];

/// A sentence of words, numbers and punctuation.
fn sentence(rng: &mut StdRng) -> String {
    let n = rng.gen_range(2..=6);
    let mut words: Vec<String> = Vec::with_capacity(n);
    for i in 0..n {
        let mut w = match rng.gen_range(0..10) {
            0 => format!("{}", rng.gen_range(0..10_000)),
            1 => format!("{}.{:02}", rng.gen_range(0..1000), rng.gen_range(0..100)),
            2 => format!("({})", WORDS[rng.gen_range(0..WORDS.len())]),
            3 => format!("{}-{}", rng.gen_range(10..99), rng.gen_range(100..999)),
            _ => WORDS[rng.gen_range(0..WORDS.len())].to_owned(),
        };
        if i + 1 < n && rng.gen_bool(0.15) {
            w.push_str(PUNCT[rng.gen_range(0..2)]);
        }
        words.push(w);
    }
    let mut s = words.join(" ");
    s.push_str(PUNCT[rng.gen_range(0..PUNCT.len())]);
    s
}

/// `count` samples from `seed` (the same seed gives the same images).
pub fn generate(font: &FontVec, seed: u64, count: usize, opts: &TestDataOptions) -> Vec<Sample> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..count)
        .map(|i| sample(font, &mut rng, format!("sample-{i:04}.png"), opts))
        .collect()
}

fn sample(font: &FontVec, rng: &mut StdRng, name: String, opts: &TestDataOptions) -> Sample {
    let n = rng.gen_range(opts.lines.0..=opts.lines.1);
    let margin = 24i32;
    // Lay the lines out first, to know the height.
    let mut planned = Vec::with_capacity(n);
    let mut y = margin as f32;
    for _ in 0..n {
        let size = rng.gen_range(opts.sizes.0..=opts.sizes.1);
        let scale = PxScale::from(size);
        let mut text = sentence(rng);
        // Shorten until it fits.
        while text_size(scale, font, &text).0 as i32 > opts.width as i32 - 2 * margin {
            match text.rfind(' ') {
                Some(cut) => text.truncate(cut),
                None => break,
            }
        }
        let (tw, th) = text_size(scale, font, &text);
        let room = (opts.width as i32 - 2 * margin - tw as i32).max(0);
        let x = margin + rng.gen_range(0..=room);
        planned.push((text, size, x, y, tw, th, rng.gen_bool(opts.upside_down)));
        y += size * rng.gen_range(1.6..2.4);
    }
    let height = y as u32 + margin as u32;
    let bg = rng.gen_range(225..=255u8);
    let mut image = RgbImage::from_pixel(opts.width, height, Rgb([bg, bg, bg.saturating_sub(4)]));
    let mut lines = Vec::with_capacity(n);
    for (text, size, x, y, tw, th, upside_down) in planned {
        let ink = rng.gen_range(0..=70u8);
        let color = Rgb([ink, ink, ink]);
        let scale = PxScale::from(size);
        if upside_down {
            // Drawn on its own canvas, turned, and pasted back.
            let (cw, ch) = (tw + 8, (size * 1.4) as u32);
            let mut line = RgbImage::from_pixel(cw, ch, *image.get_pixel(0, 0));
            draw_text_mut(&mut line, color, 4, 0, scale, font, &text);
            imageops::rotate180_in_place(&mut line);
            imageops::overlay(&mut image, &line, i64::from(x) - 4, y as i64);
        } else {
            draw_text_mut(&mut image, color, x, y as i32, scale, font, &text);
        }
        lines.push(TruthLine {
            text,
            rect: [x as f32, y, tw as f32, th as f32],
            upside_down,
            size,
        });
    }
    let sigma = rng.gen_range(0.0..=opts.blur);
    if sigma > 0.3 {
        image = imageproc::filter::gaussian_blur_f32(&image, sigma);
    }
    if opts.noise > 0 {
        let n = i16::from(opts.noise);
        for p in image.pixels_mut() {
            for c in p.0.iter_mut() {
                *c = (i16::from(*c) + rng.gen_range(-n..=n)).clamp(0, 255) as u8;
            }
        }
    }
    Sample { name, image, lines }
}
