//! What can go wrong reading an image or running the pipeline.

use std::path::PathBuf;

/// An error of the OCR pipeline. Each says what was wrong and how to fix it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OcrError {
    /// An image file could not be read.
    #[error("cannot read image `{path}`: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// An image file's bytes are not an image this pipeline decodes.
    #[error("cannot decode image `{path}`: {reason} (PNG and JPEG files are read)")]
    Decode {
        /// The file.
        path: PathBuf,
        /// What the decoder said.
        reason: String,
    },
    /// An image is larger than the pipeline takes.
    #[error(
        "image `{path}` is {width}x{height} pixels; at most {max}x{max} are read \
         (downscale it first)"
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its width.
        width: u32,
        /// Its height.
        height: u32,
        /// The largest side accepted.
        max: u32,
    },
    /// An image has no pixels.
    #[error("image `{path}` is empty ({width}x{height} pixels)")]
    Empty {
        /// The file.
        path: PathBuf,
        /// Its width.
        width: u32,
        /// Its height.
        height: u32,
    },
    /// The character dictionary is missing or malformed.
    #[error("dictionary `{path}`: {reason}")]
    Dictionary {
        /// The file.
        path: PathBuf,
        /// What is wrong, and the fix.
        reason: String,
    },
    /// A model's output does not have the shape this pipeline expects.
    #[error("model `{model}`: {reason}")]
    Output {
        /// The model (`det`, `cls` or `rec`).
        model: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// The runtime refused or failed a request.
    #[error("model `{model}`: {reason}")]
    Inference {
        /// The model (`det`, `cls` or `rec`).
        model: &'static str,
        /// The runtime's error, as its `Display` text.
        reason: String,
    },
    /// The runtime could not start.
    #[error("runtime: {0}")]
    Runtime(String),
}
