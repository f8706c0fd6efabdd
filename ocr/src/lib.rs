//! An OCR service over accelpool: the three PP-OCRv4 models (a text
//! detector, a direction classifier and a recogniser) in one runtime, and
//! a generator of images of known text to check it against.
//!
//! ```no_run
//! use accelpool::Priority;
//! use accelpool_ocr::{image_io, Dictionary, Ocr, OcrOptions, RuntimeEngine};
//! use std::path::Path;
//!
//! let engine = RuntimeEngine::from_yaml_file(Path::new("config/runtime/ppocr.yaml"))?;
//! let dict = Dictionary::load(Path::new("models/ppocr/ppocr_keys_v1.txt"))?;
//! let ocr = Ocr::new(engine, dict, OcrOptions::default());
//! let page = ocr.read(&image_io::load(Path::new("page.png"))?, Priority::Normal)?;
//! for line in page.lines {
//!     println!("{:.2} {}", line.confidence, line.text);
//! }
//! # Ok::<(), accelpool_ocr::OcrError>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod annotate;
pub mod cls;
pub mod crop;
pub mod ctc;
pub mod det;
mod dict;
pub mod engine;
mod error;
pub mod geometry;
pub mod image_io;
mod pipeline;
pub mod preprocess;
pub mod rec;
pub mod score;
pub mod testdata;

pub use dict::Dictionary;
pub use engine::{Engine, RuntimeEngine, Stage};
pub use error::OcrError;
pub use pipeline::{Line, Ocr, OcrOptions, Page, StageTimes};
