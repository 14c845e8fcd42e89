//! Config text → validated [`Config`], the same parse on every host (feature `text`).
//!
//! Errors are one line each: the key path, what is wrong, and — for a syntax or type error,
//! which stops the TOML parse — the line and column it was found at. Validation errors (after
//! a successful parse) are all reported, each at its key path.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use mosaic_core::{Config, RawConfig};

/// Line and column (both from 1) of byte offset `at` in `text`.
#[must_use]
pub fn line_col(text: &str, at: usize) -> (usize, usize) {
    let before = text
        .as_bytes()
        .get(..at.min(text.len()))
        .unwrap_or(text.as_bytes());
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let col = String::from_utf8_lossy(&before[start..]).chars().count() + 1;
    (line, col)
}

/// Parses and validates config text; every problem as `key.path: message`, a parse error with
/// ` (line L, column C)`.
///
/// # Errors
/// Each problem, one per entry.
pub fn parse(text: &str) -> Result<Config, Vec<String>> {
    let raw: RawConfig =
        serde_path_to_error::deserialize(toml::Deserializer::new(text)).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            let at = inner
                .span()
                .map(|s| {
                    let (line, col) = line_col(text, s.start);
                    format!(" (line {line}, column {col})")
                })
                .unwrap_or_default();
            let key = if key == "." {
                String::new()
            } else {
                format!("{key}: ")
            };
            let message = inner.message().trim_end().to_string();
            alloc::vec![format!("{key}{message}{at}")]
        })?;
    raw.validate()
        .map_err(|errs| errs.0.iter().map(ToString::to_string).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_names_key_paths_lines_and_columns() {
        let errs = parse("[server]\nlistenn = 1\n").err().unwrap_or_default();
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0].starts_with("server.listenn: unknown field"),
            "{errs:?}"
        );
        assert!(errs[0].ends_with("(line 2, column 1)"), "{errs:?}");
        let errs = parse("[server]\nmax_body_bytes = \"x\"\n")
            .err()
            .unwrap_or_default();
        assert!(errs[0].starts_with("server.max_body_bytes: "), "{errs:?}");
        assert!(errs[0].contains("line 2, column 18"), "{errs:?}");
        let errs =
            parse("[[routes]]\nname = \"r\"\nmatch = { path = \"/x\" }\nproviders = [\"ghost\"]\n")
                .err()
                .unwrap_or_default();
        assert!(
            errs.iter().any(|e| e.contains("routes[0].providers[0]")),
            "{errs:?}"
        );
        assert!(parse("not toml = = 1").is_err());
        assert!(parse("").is_ok(), "an empty config is valid (no routes)");
    }

    #[test]
    fn line_col_counts_characters() {
        assert_eq!(line_col("ab\ncdé f", 8), (2, 5));
        assert_eq!(line_col("", 0), (1, 1));
        assert_eq!(line_col("x", 99), (1, 2));
    }
}
