//! Topic patterns: a topic argument that begins with `^` is a regular
//! expression (as kcat's `-t ^…` and the Java consumer's
//! `subscribe(Pattern)`), matched against the whole name of every topic
//! but internal ones (names beginning `__`: Kafka's and weir's own).

use regex::Regex;

/// Whether a topic argument is a pattern.
pub fn is_pattern(topic: &str) -> bool {
    topic.starts_with('^')
}

/// A pattern that cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum PatternError {
    /// Not a valid regular expression.
    #[error("topic pattern \"{pattern}\" is not a valid regular expression: {reason}")]
    Invalid {
        /// The pattern.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
    /// It matches no topic (internal ones are not matched).
    #[error(
        "topic pattern \"{pattern}\" matches no topic (internal topics, named __*, are never matched)"
    )]
    NoMatch {
        /// The pattern.
        pattern: String,
    },
}

/// `pattern` compiled to match whole topic names.
///
/// # Errors
///
/// It is not a valid regular expression.
pub fn compile(pattern: &str) -> Result<Regex, PatternError> {
    Regex::new(&format!("^(?:{pattern})$")).map_err(|e| PatternError::Invalid {
        pattern: pattern.to_owned(),
        // The last line says what is wrong; the ones above draw it.
        reason: e
            .to_string()
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("invalid")
            .trim()
            .trim_start_matches("error: ")
            .to_owned(),
    })
}

/// The topics `wanted` names among `existing`, sorted, each once: a
/// plain name as it is, a pattern as every non-internal topic it
/// matches; `Err` names a pattern that matches none (or is invalid).
///
/// # Errors
///
/// A pattern that is invalid or matches no topic.
pub fn resolve<'a>(
    wanted: &[String],
    existing: impl IntoIterator<Item = &'a str> + Clone,
) -> Result<Vec<String>, PatternError> {
    let mut topics = Vec::new();
    for name in wanted {
        if !is_pattern(name) {
            topics.push(name.clone());
            continue;
        }
        let regex = compile(name)?;
        let before = topics.len();
        topics.extend(
            existing
                .clone()
                .into_iter()
                .filter(|t| !t.starts_with("__") && regex.is_match(t))
                .map(str::to_owned),
        );
        if topics.len() == before {
            return Err(PatternError::NoMatch {
                pattern: name.clone(),
            });
        }
    }
    topics.sort();
    topics.dedup();
    Ok(topics)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_whole_names_and_skip_internal_topics() {
        let existing = ["logs-a", "logs-b", "xlogs-c", "logs", "__logs-x", "orders"];
        let wanted = vec!["^logs-.*".to_owned(), "orders".to_owned()];
        assert_eq!(
            resolve(&wanted, existing).unwrap(),
            ["logs-a", "logs-b", "orders"]
        );
        // A plain name is kept as it is, and a topic matched twice is
        // read once.
        let wanted = vec!["^logs-a|logs-b".to_owned(), "logs-a".to_owned()];
        assert_eq!(resolve(&wanted, existing).unwrap(), ["logs-a", "logs-b"]);
        let none = resolve(&["^nothing.*".to_owned()], existing).unwrap_err();
        assert!(none.to_string().contains("matches no topic"), "{none}");
        let bad = compile("^logs-(").unwrap_err();
        assert!(
            bad.to_string()
                .starts_with("topic pattern \"^logs-(\" is not"),
            "{bad}"
        );
        assert!(!bad.to_string().contains('\n'), "{bad}");
    }
}
