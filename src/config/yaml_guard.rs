//! Bounds on configuration text before it reaches the YAML parser.
//!
//! Configuration files are written by operators and may come from anywhere,
//! so the text is bounded first: at most [`MAX_CONFIG_BYTES`] bytes, and
//! collections nested at most [`MAX_CONFIG_DEPTH`] deep. The parser's time
//! grows much faster than linearly with nesting (a 1 MiB file of `{a: `
//! takes minutes), so depth is measured by a linear scan here, before it.
//!
//! The scan over-estimates rather than under-estimates: it counts flow
//! brackets outside quotes and comments, block indentation levels, and the
//! compact `- ` markers that open a sequence on the same line. A real
//! configuration nests about six deep.

#![forbid(unsafe_code)]

use super::{ConfigError, MAX_CONFIG_BYTES, MAX_CONFIG_DEPTH};

/// Refuses text that is too long or nested too deep for a configuration.
pub(crate) fn check(text: &str) -> Result<(), ConfigError> {
    if text.len() > MAX_CONFIG_BYTES {
        return Err(ConfigError::new(
            "(top level)",
            format!(
                "the configuration is {} bytes, over the limit of {MAX_CONFIG_BYTES}; \
                 is this the right file?",
                text.len()
            ),
        ));
    }
    if let Some((line, depth)) = too_deep(text, MAX_CONFIG_DEPTH) {
        return Err(ConfigError::new(
            "(top level)",
            format!(
                "line {line}: collections nested {depth} levels deep, over the limit of \
                 {MAX_CONFIG_DEPTH}; is this the right file?"
            ),
        ));
    }
    Ok(())
}

/// The first line (1-based) at which nesting passes `limit`, with the depth
/// reached there.
fn too_deep(text: &str, limit: usize) -> Option<(usize, usize)> {
    let mut flow = 0usize;
    let mut indents: Vec<usize> = Vec::new();
    let mut quote: Option<char> = None;
    for (n, line) in text.lines().enumerate() {
        let body = line.trim_start_matches(' ');
        let indent = line.len() - body.len();
        let blank = body.is_empty() || body.starts_with('#');
        if quote.is_none() && flow == 0 && !blank {
            while indents.last().is_some_and(|&i| i > indent) {
                indents.pop();
            }
            if indents.last() != Some(&indent) {
                indents.push(indent);
            }
        }
        // `- - - x` opens one sequence per marker on the same line.
        let mut dashes = 0;
        let mut rest = body;
        while quote.is_none() && (rest.starts_with("- ") || rest.starts_with("? ")) {
            dashes += 1;
            rest = rest[2..].trim_start_matches(' ');
        }
        let mut prev = ' ';
        for c in rest.chars() {
            match quote {
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None => match c {
                    '"' | '\'' if prev == ' ' || "[{,:".contains(prev) => quote = Some(c),
                    '#' if prev == ' ' => break,
                    '[' | '{' => flow += 1,
                    ']' | '}' => flow = flow.saturating_sub(1),
                    _ => {}
                },
            }
            prev = c;
        }
        // A single-quoted scalar cannot hold a line break unescaped in our
        // files; a double-quoted one can, so only that state carries over.
        if quote == Some('\'') {
            quote = None;
        }
        let depth = flow + indents.len() + dashes;
        if depth > limit {
            return Some((n + 1, depth));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_shapes_pass_and_deep_ones_are_caught_on_their_line() {
        let ok = "groups:\n  - name: cpu\n    backend:\n      openvino:\n        reshape:\n          x: [1, 3, 48, 192]\n        properties: {A: \"[[[[\"}\n";
        assert_eq!(too_deep(ok, 8), None);
        assert_eq!(too_deep(&"[".repeat(40), 32), Some((1, 41)));
        assert_eq!(too_deep(&"{a: ".repeat(40), 32), Some((1, 41)));
        assert_eq!(too_deep(&"- ".repeat(40), 32), Some((1, 41)));
        let stairs: String = (0..40).map(|i| format!("{}a:\n", " ".repeat(i))).collect();
        assert_eq!(too_deep(&stairs, 32), Some((33, 33)));
        // Brackets in comments and quotes do not count.
        assert_eq!(
            too_deep(
                &format!("a: 1 # {}\nb: '{}'\n", "[".repeat(50), "{".repeat(50)),
                32
            ),
            None
        );
    }
}
