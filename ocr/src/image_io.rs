//! Reading images with bounds: never more memory than a set limit.

use std::path::Path;

use image::{ImageReader, Limits, RgbImage};

use crate::OcrError;

/// The longest side read. A larger image is refused with an error that
/// asks for a downscale, before any pixel is decoded: a 20000 x 20000
/// image would need 1.2 GB as RGB, and text in it would be too small for
/// the detector's 960-pixel input anyway.
pub const MAX_SIDE: u32 = 8192;

/// Reads a PNG or JPEG file as RGB.
pub fn load(path: &Path) -> Result<RgbImage, OcrError> {
    let bytes = std::fs::read(path).map_err(|source| OcrError::Read {
        path: path.to_owned(),
        source,
    })?;
    decode(path, &bytes)
}

/// Decodes an image file's bytes (`path` names it in errors).
pub fn decode(path: &Path, bytes: &[u8]) -> Result<RgbImage, OcrError> {
    let undecodable = |reason: String| OcrError::Decode {
        path: path.to_owned(),
        reason,
    };
    let mut reader = ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| undecodable(e.to_string()))?;
    if reader.format().is_none() {
        return Err(undecodable("not a PNG or JPEG file".into()));
    }
    let (width, height) = reader
        .into_dimensions()
        .map_err(|e| undecodable(e.to_string()))?;
    if width == 0 || height == 0 {
        return Err(OcrError::Empty {
            path: path.to_owned(),
            width,
            height,
        });
    }
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(OcrError::TooLarge {
            path: path.to_owned(),
            width,
            height,
            max: MAX_SIDE,
        });
    }
    reader = ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| undecodable(e.to_string()))?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    // Room for the largest image as 16-bit RGBA while decoding.
    limits.max_alloc = Some(u64::from(MAX_SIDE) * u64::from(MAX_SIDE) * 8);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| undecodable(e.to_string()))?;
    Ok(img.to_rgb8())
}
