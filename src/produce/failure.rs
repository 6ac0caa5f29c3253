//! How a produce job fails: as a whole ([`ProduceJobError`]), or one
//! input line at a time ([`LineError`]), and an input that could not be
//! read to its end ([`InputReadError`]).

use std::sync::Arc;

use super::input::ParseError;
use super::producer::ProduceError;
use crate::kafka::transaction::TransactionError;

/// Errors of the produce job.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProduceJobError {
    /// An input file could not be opened.
    #[error("cannot open input \"{input}\"")]
    Open {
        /// The input.
        input: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// An input could not be read to its end (records before it were
    /// sent).
    #[error(transparent)]
    Read(InputReadError),
    /// The run's transaction could not be ended.
    #[error("ending the transaction")]
    Transaction(#[source] Box<TransactionError>),
    /// Records failed delivery.
    #[error("{failed} of {accepted} records failed; first error")]
    Delivery {
        /// How many failed.
        failed: u64,
        /// How many were handed to the producer.
        accepted: u64,
        /// The first failure, with its input line.
        #[source]
        first: Option<LineError>,
    },
    /// A bad line stopped reading.
    #[error(
        "stopped at a bad line (records before it were sent; --on-error skip goes on past bad input)"
    )]
    BadInput(#[source] LineError),
    /// The producer refused a record for a reason that is not the record's.
    #[error("{input}")]
    Produce {
        /// `input:line`.
        input: String,
        /// Why.
        #[source]
        source: ProduceError,
    },
    /// The report stream failed (other than being closed).
    #[error("writing the delivery report")]
    Report(#[source] std::io::Error),
}

/// Why one input line was not written.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{input}:{line}")]
pub struct LineError {
    /// The input's name (`-` for stdin).
    pub input: String,
    /// The line, from 1.
    pub line: u64,
    /// Why.
    #[source]
    pub cause: LineCause,
}

/// Why an input line was not written.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum LineCause {
    /// The line could not be parsed into a record.
    #[error(transparent)]
    Parse(Arc<ParseError>),
    /// The producer refused its record (too large, a timestamp out of
    /// range, a partition out of range), with a hint on getting past it.
    #[error("{error}{}", .hint.as_ref().map(|h| format!(" ({h})")).unwrap_or_default())]
    Refused {
        /// The refusal.
        error: Arc<ProduceError>,
        /// How to get past it.
        hint: Option<String>,
    },
    /// Its record was not delivered.
    #[error(transparent)]
    Delivery(Arc<ProduceError>),
}

/// An input that could not be read to its end; the records before the
/// failure were sent.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot read input \"{input}\" after line {line} (records before it were sent)")]
pub struct InputReadError {
    /// The input, as named on the command line (`-` for stdin).
    pub input: String,
    /// The last line read whole.
    pub line: u64,
    /// The read's failure (shared: a summary is cloned).
    #[source]
    pub source: Arc<std::io::Error>,
}

/// The same input, line and failure (its kind and text: `io::Error` has
/// no equality of its own).
impl PartialEq for InputReadError {
    fn eq(&self, other: &Self) -> bool {
        self.input == other.input
            && self.line == other.line
            && self.source.kind() == other.source.kind()
            && self.source.to_string() == other.source.to_string()
    }
}

impl Eq for InputReadError {}
