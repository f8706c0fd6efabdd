//! The recogniser's character dictionary (`ppocr_keys_v1.txt`).

use std::path::Path;

use crate::OcrError;

/// The recogniser's classes: the CTC blank at index 0, one character per
/// line of the dictionary file, then a space (PP-OCR's `use_space_char`).
///
/// ```
/// use accelpool_ocr::Dictionary;
/// let d = Dictionary::from_lines(["a", "b"]).unwrap();
/// assert_eq!(d.len(), 4); // blank, a, b, space
/// assert_eq!(d.symbol(2), Some("b"));
/// assert_eq!(d.symbol(3), Some(" "));
/// ```
#[derive(Debug, Clone)]
pub struct Dictionary {
    symbols: Vec<String>,
}

impl Dictionary {
    /// Reads a dictionary file: one character per line, UTF-8.
    pub fn load(path: &Path) -> Result<Self, OcrError> {
        let bad = |reason: String| OcrError::Dictionary {
            path: path.to_owned(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            bad(format!(
                "{e}; run ./scripts/setup.sh, which copies it beside the models"
            ))
        })?;
        Self::from_lines(text.lines()).map_err(bad)
    }

    /// A dictionary of the given characters (each line one symbol).
    pub fn from_lines<'a>(lines: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut symbols = vec![String::new()];
        for (i, line) in lines.into_iter().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.is_empty() {
                return Err(format!(
                    "line {} is empty; each line holds one character",
                    i + 1
                ));
            }
            symbols.push(line.to_owned());
        }
        if symbols.len() == 1 {
            return Err("it holds no characters".into());
        }
        symbols.push(" ".into());
        Ok(Self { symbols })
    }

    /// Classes, the blank and the space included: the width of the
    /// recogniser's output.
    pub fn len(&self) -> usize {
        self.symbols.len()
    }

    /// Never true: a dictionary holds at least one character.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The text of class `i`; `None` for the blank and past the end.
    pub fn symbol(&self, i: usize) -> Option<&str> {
        (i > 0)
            .then(|| self.symbols.get(i).map(String::as_str))
            .flatten()
    }
}
