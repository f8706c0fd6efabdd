//! CTC greedy decoding of the recogniser's output.

use crate::Dictionary;

/// A decoded line: its text and confidence (the mean probability of the
/// characters kept; 0 for an empty line).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decoded {
    /// The text.
    pub text: String,
    /// Mean probability of its characters.
    pub confidence: f32,
}

/// Decodes one line's `steps x classes` probabilities (row-major): the
/// most probable class at each step, repeats merged, blanks dropped.
///
/// ```
/// use accelpool_ocr::{ctc, Dictionary};
/// let d = Dictionary::from_lines(["a", "b"]).unwrap();
/// // classes: blank, a, b, space; steps: a a blank a b
/// let p = [
///     0.1, 0.9, 0.0, 0.0, //
///     0.2, 0.8, 0.0, 0.0, //
///     0.9, 0.1, 0.0, 0.0, //
///     0.0, 0.7, 0.3, 0.0, //
///     0.0, 0.0, 1.0, 0.0,
/// ];
/// let line = ctc::decode(&p, d.len(), &d);
/// assert_eq!(line.text, "aab");
/// ```
pub fn decode(probs: &[f32], classes: usize, dict: &Dictionary) -> Decoded {
    let mut text = String::new();
    let (mut sum, mut kept) = (0.0f32, 0usize);
    let mut last = 0usize;
    for step in probs.chunks_exact(classes.max(1)) {
        let (best, p) = step
            .iter()
            .copied()
            .enumerate()
            .fold((0, f32::MIN), |a, (i, v)| if v > a.1 { (i, v) } else { a });
        if best != last {
            if let Some(s) = dict.symbol(best) {
                text.push_str(s);
                sum += p;
                kept += 1;
            }
        }
        last = best;
    }
    Decoded {
        text,
        confidence: if kept == 0 { 0.0 } else { sum / kept as f32 },
    }
}
