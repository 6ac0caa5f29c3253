//! Kafka's rule for topic names, checked before any request: the broker
//! would refuse such a name anyway (`INVALID_TOPIC_EXCEPTION`), but only
//! after a connection, and for a read it would say the topic does not
//! exist.

/// The longest topic name Kafka accepts (`Topic.MAX_NAME_LENGTH`: 255 less
/// room for a partition suffix in file names).
pub const MAX_TOPIC_NAME_LENGTH: usize = 249;

/// Kafka's rule, as one line for messages.
const RULE: &str =
    "Kafka's rule: 1 to 249 characters of a-z, A-Z, 0-9, '.', '_' and '-', not \".\" or \"..\"";

/// A topic name Kafka would refuse, and why. The name is shown quoted and
/// escaped as Rust's `{:?}` writes it, so a message stays on one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidTopicName {
    /// The empty name.
    #[error("topic name \"\" is empty ({RULE})")]
    Empty,
    /// `.` or `..`.
    #[error("topic name {name:?} is not allowed ({RULE})")]
    Dots {
        /// The name as given.
        name: String,
    },
    /// Longer than [`MAX_TOPIC_NAME_LENGTH`].
    #[error("topic name {name:?} has {length} characters ({RULE})")]
    TooLong {
        /// The name as given.
        name: String,
        /// Its length in characters.
        length: usize,
    },
    /// A character outside `[a-zA-Z0-9._-]`.
    #[error("topic name {name:?} has {character:?}, which is not allowed ({RULE})")]
    Character {
        /// The name as given.
        name: String,
        /// The first character not allowed.
        character: char,
    },
}

/// Checks `name` against Kafka's rule for topic names (Java's
/// `org.apache.kafka.common.internals.Topic.validate`): 1 to 249
/// characters of `a-z`, `A-Z`, `0-9`, `.`, `_` and `-`, not `.` or `..`.
///
/// # Errors
///
/// [`InvalidTopicName`] naming the name and what breaks the rule.
pub fn validate_topic_name(name: &str) -> Result<(), InvalidTopicName> {
    if name.is_empty() {
        return Err(InvalidTopicName::Empty);
    }
    if name == "." || name == ".." {
        return Err(InvalidTopicName::Dots {
            name: name.to_owned(),
        });
    }
    if let Some(character) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(InvalidTopicName::Character {
            name: name.to_owned(),
            character,
        });
    }
    // Only ASCII is left, so bytes are characters.
    if name.len() > MAX_TOPIC_NAME_LENGTH {
        return Err(InvalidTopicName::TooLong {
            name: name.to_owned(),
            length: name.len(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_s_rule() {
        for ok in ["t", "a.b_c-D9", "__consumer_offsets", "...", ".a", "-"] {
            assert_eq!(validate_topic_name(ok), Ok(()), "{ok}");
        }
        assert_eq!(validate_topic_name(&"x".repeat(249)), Ok(()));

        assert_eq!(validate_topic_name(""), Err(InvalidTopicName::Empty));
        for dots in [".", ".."] {
            let e = validate_topic_name(dots).unwrap_err();
            assert_eq!(
                e,
                InvalidTopicName::Dots {
                    name: dots.to_owned()
                }
            );
            assert!(e.to_string().contains(&format!("\"{dots}\"")), "{e}");
        }
        let long = "x".repeat(250);
        let e = validate_topic_name(&long).unwrap_err();
        assert!(matches!(e, InvalidTopicName::TooLong { length: 250, .. }));
        assert!(e.to_string().contains("250 characters"), "{e}");

        for (bad, c) in [
            ("bad name!", ' '),
            ("a/b", '/'),
            ("é", 'é'),
            ("a:b", ':'),
            ("a\nb", '\n'),
            ("^logs", '^'),
        ] {
            let e = validate_topic_name(bad).unwrap_err();
            assert_eq!(
                e,
                InvalidTopicName::Character {
                    name: bad.to_owned(),
                    character: c
                },
                "{bad:?}"
            );
        }
        let e = validate_topic_name("bad name!").unwrap_err().to_string();
        assert_eq!(
            e,
            "topic name \"bad name!\" has ' ', which is not allowed (Kafka's rule: 1 to 249 characters of a-z, A-Z, 0-9, '.', '_' and '-', not \".\" or \"..\")"
        );
        // One line, whatever the name holds.
        assert!(
            !validate_topic_name("a\nb")
                .unwrap_err()
                .to_string()
                .contains('\n')
        );
    }
}
