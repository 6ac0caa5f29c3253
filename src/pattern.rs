//! Regular expressions as weir compiles them (`--grep`, `--grep-key`,
//! `regex:` extractors): bytes regexes, with their syntax errors told in
//! one line.
//!
//! The regex engine is built with Unicode case folding and the Unicode
//! Perl classes (`\w`, `\d`, `\s`), but without the Unicode property tables
//! (`\p{Greek}`, `\p{L}`: scripts, general categories, ages, boolean
//! properties), which cost about 250 KB of the static binary (Cargo.toml).
//! A pattern that names one is refused with a message that says so.

use regex::bytes::Regex;

/// A pattern that does not compile: the compiler's complaint in one line.
///
/// It keeps the regex crate's error, and has no `source`: that error's
/// text is the pattern, a caret line and the complaint, which this one
/// says on one line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", one_line(.pattern, .error))]
pub struct PatternError {
    /// The pattern, as given.
    pub pattern: String,
    /// The regex crate's error.
    pub error: regex::Error,
}

/// Compiles `pattern` as a bytes regex.
///
/// # Errors
///
/// [`PatternError`] for a pattern that does not compile.
pub fn compile(pattern: &str) -> Result<Regex, PatternError> {
    Regex::new(pattern).map_err(|error| PatternError {
        pattern: pattern.to_owned(),
        error,
    })
}

/// The regex crate's multi-line error (the pattern, a caret line, then
/// `error: ...`) as one line: the complaint and its column.
fn one_line(pattern: &str, error: &regex::Error) -> String {
    let text = error.to_string();
    let Some(complaint) = text.lines().rev().find_map(|l| l.strip_prefix("error: ")) else {
        return text.lines().map(str::trim).collect::<Vec<_>>().join(" ");
    };
    // The pattern is shown indented by four spaces, and a multi-line one
    // with line numbers: only a one-line pattern's column is given.
    let column = (!pattern.contains('\n'))
        .then(|| text.lines().find_map(|l| l.find('^')))
        .flatten()
        .map(|at| at.saturating_sub(4) + 1);
    let mut line = match column {
        Some(column) => format!("{complaint} at column {column}"),
        None => complaint.to_owned(),
    };
    if complaint == "Unicode property not found"
        && (pattern.contains("\\p") || pattern.contains("\\P"))
    {
        line.push_str(
            " (weir is built without Unicode property classes such as \\p{Greek} or \\p{L}; use a range such as [α-ω])",
        );
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_one_line_with_their_column() {
        let e = compile("ab(c").unwrap_err().to_string();
        assert_eq!(e, "unclosed group at column 3");
        let e = compile("x\\p{Greek}").unwrap_err().to_string();
        assert!(
            e.starts_with("Unicode property not found at column 2 (weir is built without"),
            "{e}"
        );
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn the_perl_classes_and_case_folding_are_unicode() {
        let re = compile(r"(?i)^straße \d\w$").unwrap();
        assert!(re.is_match("STRASSE ٣é".as_bytes()) || re.is_match("STRAßE ٣é".as_bytes()));
        assert!(compile(r"\d").unwrap().is_match("٣".as_bytes()));
    }
}
