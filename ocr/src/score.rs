//! Scoring what was read against what was drawn: line matching and the
//! character error rate.

use serde::Serialize;

use crate::geometry::Quad;
use crate::testdata::TruthLine;
use crate::Line;

/// Edit (Levenshtein) distance between two strings, by characters.
///
/// ```
/// assert_eq!(accelpool_ocr::score::edit_distance("kitten", "sitting"), 3);
/// ```
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let next = (diag + usize::from(ca != cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            diag = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// Whitespace runs as one space, none at the ends: the recogniser's
/// spaces are read from the gap between words, and the score compares
/// characters, not gap widths.
pub fn normalize(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The scores of a set of pages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Score {
    /// Lines drawn.
    pub lines: usize,
    /// Lines drawn that a read line matched.
    pub found: usize,
    /// Characters drawn.
    pub chars: usize,
    /// Character edits between what was drawn and what was read (a line
    /// not found costs all its characters).
    pub edits: usize,
    /// Upside-down lines drawn.
    pub upside_down: usize,
    /// Upside-down lines found and turned.
    pub upside_down_turned: usize,
    /// Upside-down lines found, turned, and read with at most one edit.
    pub upside_down_read: usize,
    /// Characters of the upside-down lines.
    pub upside_down_chars: usize,
    /// Character edits on the upside-down lines.
    pub upside_down_edits: usize,
}

impl Score {
    /// Character error rate: edits per character drawn.
    pub fn cer(&self) -> f64 {
        self.edits as f64 / self.chars.max(1) as f64
    }

    /// Character error rate of the upside-down lines.
    pub fn upside_down_cer(&self) -> f64 {
        self.upside_down_edits as f64 / self.upside_down_chars.max(1) as f64
    }

    /// Share of the lines drawn that were found.
    pub fn recall(&self) -> f64 {
        self.found as f64 / self.lines.max(1) as f64
    }

    /// Adds another page's score.
    pub fn add(&mut self, o: &Score) {
        self.lines += o.lines;
        self.found += o.found;
        self.chars += o.chars;
        self.edits += o.edits;
        self.upside_down += o.upside_down;
        self.upside_down_turned += o.upside_down_turned;
        self.upside_down_read += o.upside_down_read;
        self.upside_down_chars += o.upside_down_chars;
        self.upside_down_edits += o.upside_down_edits;
    }
}

/// Scores one page: each drawn line is matched to the read line whose box
/// centre lies in its box (grown by half its height) with the fewest
/// edits; a read line matches at most one drawn line.
pub fn score_page(truth: &[TruthLine], read: &[Line]) -> Score {
    let mut s = Score::default();
    let mut used = vec![false; read.len()];
    for t in truth {
        let want = normalize(&t.text);
        s.lines += 1;
        let chars = want.chars().count();
        s.chars += chars;
        if t.upside_down {
            s.upside_down += 1;
            s.upside_down_chars += chars;
        }
        let [x, y, w, h] = t.rect;
        let area = Quad::rect(x - h / 2.0, y - h / 2.0, w + h, 2.0 * h);
        let best = read
            .iter()
            .enumerate()
            .filter(|(i, l)| !used[*i] && area.contains(l.quad.center()))
            .map(|(i, l)| (i, edit_distance(&want, &normalize(&l.text))))
            .min_by_key(|&(_, d)| d);
        let edits = match best {
            Some((i, d)) => {
                used[i] = true;
                s.found += 1;
                if t.upside_down && read[i].turned {
                    s.upside_down_turned += 1;
                    s.upside_down_read += usize::from(d <= 1);
                }
                d
            }
            None => chars,
        };
        s.edits += edits;
        if t.upside_down {
            s.upside_down_edits += edits;
        }
    }
    s
}
