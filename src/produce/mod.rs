//! The `weir produce` job: inputs read and parsed on a thread of their
//! own, records handed to the [`Producer`], a delivery report per record,
//! and the bad-input policy.
//!
//! Inputs are read in order (files, or stdin), split at a delimiter and
//! parsed by a [`RecordParser`]. Each record carries a tag (input and line)
//! through the producer, so a delivery, good or failed, names the line it
//! came from. A bad line (unparsable, too large, a partition or timestamp
//! the topic refuses) stops reading under [`OnError::Fail`] or is skipped
//! and counted under [`OnError::Skip`]. Once a record fails delivery,
//! reading stops: what was read is still delivered or failed, never lost
//! silently.

mod compression;
mod config;
mod error;
mod failure;
mod future;
pub mod input;
mod metadata;
mod partition;
pub mod partitioner;
pub mod producer;
mod report;
mod sequence;
mod size;
mod start;
mod topic;

pub use compression::Compression;
pub use config::{ProduceRecord, ProducerConfig};
pub use error::{Delivery, ProduceError, SendFailure};
pub use failure::{InputReadError, LineCause, LineError, ProduceJobError};
pub use future::{DeliveryFuture, FutureProducer};
pub use partitioner::PartitionerKind;
pub use producer::Producer;
pub use start::{ProducePlan, StartError, Started, start};
pub use topic::{TopicError, TopicLimits, TopicPlan, prepare_topic, topic_limits};

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tracing::warn;

use crate::kafka::transaction::Transactions;
use crate::produce::input::{DelimitedReader, ParseError, RecordParser};
use crate::produce::report::{Report, write_report};

/// Records read in one go by the input thread.
const CHUNK: usize = 1024;

/// Where records are read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputSource {
    /// Standard input, named `-`.
    Stdin,
    /// A file.
    File(PathBuf),
}

impl InputSource {
    /// The name used in messages and reports: `-` or the path.
    pub fn name(&self) -> String {
        match self {
            Self::Stdin => "-".to_owned(),
            Self::File(path) => path.display().to_string(),
        }
    }

    fn open(&self) -> Result<Box<dyn Read + Send>, ProduceJobError> {
        Ok(match self {
            Self::Stdin => Box::new(std::io::stdin()),
            Self::File(path) => {
                Box::new(File::open(path).map_err(|source| ProduceJobError::Open {
                    input: self.name(),
                    source,
                })?)
            }
        })
    }
}

/// What a bad input line does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnError {
    /// Stop reading at the first bad line.
    #[default]
    Fail,
    /// Skip bad lines, count them and go on.
    Skip,
}

/// Progress while reading: records accepted so far and the time since the
/// start.
pub type Progress = Box<dyn FnMut(u64, Duration) + Send>;

/// The job's inputs and policies.
pub struct ProduceJob {
    /// Inputs, read in order.
    pub inputs: Vec<InputSource>,
    /// Record delimiter.
    pub delimiter: Vec<u8>,
    /// How a record is read from its bytes.
    pub parser: RecordParser,
    /// Bad-input policy.
    pub on_error: OnError,
    /// Where one JSON line per record goes (`--report`), if anywhere. A
    /// report stream its reader closed ends the reports with a warning;
    /// producing goes on.
    pub report: Option<Box<dyn Write + Send>>,
    /// Called about five times a second while reading, and with `None`
    /// semantics left to the caller (`weir produce` draws a progress line).
    pub progress: Option<Progress>,
    /// A hint added to a partition-out-of-range error of a JSON record
    /// (the CLI names its flag).
    pub partition_hint: Option<String>,
    /// The whole run as one transaction of this producer (whose id the
    /// producer's batches carry, and whose partitions it has added):
    /// committed when every record read was delivered, aborted otherwise.
    pub transaction: Option<Transactions>,
}

/// How a run's transaction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionEnd {
    /// Everything became visible to `read_committed` readers at once.
    Committed,
    /// Nothing of the run will ever be visible to them.
    Aborted,
}

impl std::fmt::Debug for ProduceJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProduceJob")
            .field("inputs", &self.inputs)
            .field("on_error", &self.on_error)
            .field("report", &self.report.is_some())
            .finish_non_exhaustive()
    }
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct ProduceSummary {
    /// Records handed to the producer.
    pub accepted: u64,
    /// Records the broker acknowledged.
    pub acked: u64,
    /// Records that failed delivery.
    pub failed: u64,
    /// Bad input lines skipped (`OnError::Skip`).
    pub skipped: u64,
    /// Bytes of values accepted.
    pub bytes: u64,
    /// Time from the start to the last acknowledgement.
    pub elapsed: Duration,
    /// Stopped by the shutdown future.
    pub interrupted: bool,
    /// The first failed delivery.
    pub first_error: Option<LineError>,
    /// How the run's transaction ended, with one.
    pub transaction: Option<TransactionEnd>,
    /// An input that could not be read further.
    pub read_error: Option<InputReadError>,
    /// The bad line that stopped reading (`OnError::Fail`).
    pub bad_input: Option<LineError>,
}

impl ProduceSummary {
    /// The run's failure, if any: an unreadable input, failed deliveries,
    /// or the bad line that stopped it.
    ///
    /// # Errors
    ///
    /// That failure.
    pub fn outcome(&self) -> Result<(), ProduceJobError> {
        if let Some(e) = &self.read_error {
            return Err(ProduceJobError::Read(e.clone()));
        }
        if self.failed > 0 {
            return Err(ProduceJobError::Delivery {
                failed: self.failed,
                accepted: self.accepted,
                first: self.first_error.clone(),
            });
        }
        if let Some(line) = &self.bad_input {
            return Err(ProduceJobError::BadInput(line.clone()));
        }
        Ok(())
    }
}

/// Opens every input, failing before anything is sent when one cannot be
/// opened.
///
/// # Errors
///
/// [`ProduceJobError::Open`] naming the input.
pub fn open_inputs(inputs: &[InputSource]) -> Result<Vec<Box<dyn Read + Send>>, ProduceJobError> {
    inputs.iter().map(InputSource::open).collect()
}

/// Runs the job: reads `readers` (opened from `job.inputs`, in order) into
/// `producer`, whose `deliveries` it tallies, until the inputs end, a bad
/// line stops it, a delivery fails, or `shutdown` resolves. Everything
/// accepted is delivered or failed before it returns.
///
/// # Errors
///
/// A record the producer refused for a reason that is not the record's
/// (the producer closed), or a failing report stream. Bad input and failed
/// deliveries are in the summary ([`ProduceSummary::outcome`]).
pub async fn run(
    mut producer: Producer,
    deliveries: mpsc::UnboundedReceiver<Delivery>,
    readers: Vec<Box<dyn Read + Send>>,
    job: ProduceJob,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<ProduceSummary, ProduceJobError> {
    let names: Vec<String> = job.inputs.iter().map(InputSource::name).collect();
    let transaction = job.transaction;
    let tally = Arc::new(Tally::default());
    let report = job
        .report
        .map(|out| Arc::new(std::sync::Mutex::new(Report::new(out))));
    let reporter = tokio::spawn(report_deliveries(
        deliveries,
        Arc::clone(&tally),
        report.clone(),
        names.clone(),
    ));

    // Input is read and parsed on a blocking thread, in chunks. The thread
    // is never joined: on a signal it may sit in a blocking read of stdin,
    // and the process ends without it.
    let (chunks_tx, mut chunks) = mpsc::channel::<Result<Vec<Input>, InputReadError>>(16);
    let stop_reading = Arc::new(AtomicBool::new(false));
    {
        let stop = Arc::clone(&stop_reading);
        let names = names.clone();
        let parser = job.parser;
        let delimiter = job.delimiter;
        std::thread::spawn(move || {
            read_inputs(readers, &names, &delimiter, &parser, &chunks_tx, &stop);
        });
    }

    let mut progress = job.progress;
    let started = Instant::now();
    let mut summary = ProduceSummary::default();
    let mut last_progress = Instant::now();
    tokio::pin!(shutdown);
    'read: loop {
        let chunk = tokio::select! {
            chunk = chunks.recv() => chunk,
            () = &mut shutdown => {
                summary.interrupted = true;
                None
            }
        };
        let chunk = match chunk {
            Some(Ok(chunk)) => chunk,
            Some(Err(e)) => {
                summary.read_error = Some(e);
                break;
            }
            None => break,
        };
        for input in chunk {
            if tally.delivery_failed.load(Ordering::Relaxed) {
                break 'read;
            }
            let at = format!("{}:{}", names[input.source], input.line);
            let line = |cause| LineError {
                input: names[input.source].clone(),
                line: input.line,
                cause,
            };
            let refused = match input.parsed {
                Ok(record) => {
                    let size = record.value.as_ref().map_or(0, Vec::len) as u64;
                    match producer.send(tag(input.source, input.line), record).await {
                        Ok(_) => {
                            summary.accepted += 1;
                            summary.bytes += size;
                            None
                        }
                        Err(e @ ProduceError::PartitionOutOfRange { .. }) => {
                            Some(line(LineCause::Refused {
                                error: Arc::new(e),
                                hint: job.partition_hint.clone(),
                            }))
                        }
                        Err(
                            e @ (ProduceError::RecordTooLarge { .. }
                            | ProduceError::NullKeyCompacted { .. }
                            | ProduceError::Timestamp { .. }),
                        ) => Some(line(LineCause::Refused {
                            error: Arc::new(e),
                            hint: None,
                        })),
                        Err(source) => {
                            return Err(ProduceJobError::Produce { input: at, source });
                        }
                    }
                }
                Err(e) => Some(line(LineCause::Parse(Arc::new(e)))),
            };
            if let Some(failure) = refused {
                let message = crate::ErrorChain(&failure).to_string();
                if let Some(out) = &report {
                    let mut obj = serde_json::Map::new();
                    if names.len() > 1 {
                        obj.insert("file".into(), names[input.source].clone().into());
                    }
                    obj.insert("line".into(), input.line.into());
                    obj.insert("error".into(), message.clone().into());
                    write_report(out, &obj).map_err(ProduceJobError::Report)?;
                }
                match job.on_error {
                    OnError::Skip => {
                        warn!("skipped {message}");
                        summary.skipped += 1;
                    }
                    OnError::Fail => {
                        summary.bad_input = Some(failure);
                        break 'read;
                    }
                }
            }
        }
        if let Some(progress) = progress.as_mut() {
            if last_progress.elapsed() > Duration::from_millis(200) {
                last_progress = Instant::now();
                progress(summary.accepted, started.elapsed());
            }
        }
    }
    stop_reading.store(true, Ordering::Relaxed);
    drop(chunks);
    producer.close().await;
    match reporter.await {
        Ok(result) => result.map_err(ProduceJobError::Report)?,
        Err(e) => {
            return Err(ProduceJobError::Report(std::io::Error::other(format!(
                "the delivery reporter stopped: {e}"
            ))));
        }
    }
    if let Some(out) = &report {
        out.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .flush()
            .map_err(ProduceJobError::Report)?;
    }
    summary.elapsed = started.elapsed();
    summary.acked = tally.acked.load(Ordering::Relaxed);
    summary.failed = tally.failed.load(Ordering::Relaxed);
    summary.first_error = tally
        .first_error
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    debug_assert_eq!(summary.acked + summary.failed, summary.accepted);
    if let Some(mut transaction) = transaction {
        let commit = summary.outcome().is_ok() && !summary.interrupted;
        transaction
            .end(commit)
            .await
            .map_err(|e| ProduceJobError::Transaction(Box::new(e)))?;
        summary.transaction = Some(if commit {
            TransactionEnd::Committed
        } else {
            TransactionEnd::Aborted
        });
    }
    Ok(summary)
}

/// An input record and where it came from.
struct Input {
    source: usize,
    line: u64,
    parsed: Result<ProduceRecord, ParseError>,
}

/// Tags pack the input index and line number: 24 bits of input, 40 of line.
fn tag(source: usize, line: u64) -> u64 {
    ((source as u64) << 40) | (line & ((1 << 40) - 1))
}

fn untag(tag: u64) -> (usize, u64) {
    ((tag >> 40) as usize, tag & ((1 << 40) - 1))
}

/// Counters shared with the delivery reader.
#[derive(Default)]
struct Tally {
    acked: AtomicU64,
    failed: AtomicU64,
    delivery_failed: AtomicBool,
    first_error: std::sync::Mutex<Option<LineError>>,
}

/// Reads and parses every input into chunks; a read error is the last
/// message sent.
fn read_inputs(
    readers: Vec<Box<dyn Read + Send>>,
    names: &[String],
    delimiter: &[u8],
    parser: &RecordParser,
    chunks: &mpsc::Sender<Result<Vec<Input>, InputReadError>>,
    stop: &AtomicBool,
) {
    let mut buf = Vec::new();
    let mut chunk = Vec::with_capacity(CHUNK);
    for (source, reader) in readers.into_iter().enumerate() {
        let reader = BufReader::with_capacity(1 << 20, reader);
        let mut reader = DelimitedReader::new(reader, delimiter.to_vec());
        let mut line = 0;
        loop {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            match reader.next_record(&mut buf) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    let full = std::mem::take(&mut chunk);
                    let _ = chunks.blocking_send(Ok(full));
                    let _ = chunks.blocking_send(Err(InputReadError {
                        input: names[source].clone(),
                        line,
                        source: Arc::new(e),
                    }));
                    return;
                }
            }
            line += 1;
            chunk.push(Input {
                source,
                line,
                parsed: parser.parse(&buf),
            });
            // Hand over a full chunk, or whatever is read when the next
            // read may block (a pipe or terminal that is slow to write).
            if chunk.len() == CHUNK || reader.get_ref().buffer().is_empty() {
                let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
                if chunks.blocking_send(Ok(full)).is_err() {
                    return;
                }
            }
        }
    }
    if !chunk.is_empty() {
        let _ = chunks.blocking_send(Ok(chunk));
    }
}

async fn report_deliveries(
    mut deliveries: mpsc::UnboundedReceiver<Delivery>,
    tally: Arc<Tally>,
    report: Option<Arc<std::sync::Mutex<Report>>>,
    names: Vec<String>,
) -> std::io::Result<()> {
    let many = names.len() > 1;
    while let Some(d) = deliveries.recv().await {
        let (source, line) = untag(d.tag);
        match &d.result {
            Ok(_) => {
                tally.acked.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                tally.failed.fetch_add(1, Ordering::Relaxed);
                tally.delivery_failed.store(true, Ordering::Relaxed);
                let mut first = tally
                    .first_error
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                first.get_or_insert_with(|| LineError {
                    input: names[source].clone(),
                    line,
                    cause: LineCause::Delivery(Arc::clone(e)),
                });
            }
        }
        if let Some(out) = &report {
            let mut obj = serde_json::Map::new();
            if many {
                obj.insert("file".into(), names[source].clone().into());
            }
            obj.insert("line".into(), line.into());
            obj.insert("partition".into(), d.partition.into());
            match &d.result {
                Ok(offset) => obj.insert("offset".into(), (*offset).into()),
                Err(e) => obj.insert("error".into(), crate::ErrorChain(&**e).to_string().into()),
            };
            write_report(out, &obj)?;
            // Caught up: what is known goes out now, not when the buffer
            // fills, so a reader follows the deliveries as they come.
            if deliveries.is_empty() {
                out.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .flush()?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_carry_input_and_line() {
        for (source, line) in [(0, 1), (3, 1_000_000), (0xff_ffff, (1 << 40) - 1)] {
            assert_eq!(untag(tag(source, line)), (source, line));
        }
    }

    #[test]
    fn summary_outcome_prefers_read_errors_then_deliveries_then_bad_input() {
        let ok = ProduceSummary::default();
        assert!(ok.outcome().is_ok());
        let parse = |line| LineError {
            input: "-".to_owned(),
            line,
            cause: LineCause::Parse(Arc::new(ParseError::MissingKeyDelimiter {
                delimiter: ":".to_owned(),
            })),
        };
        let bad = ProduceSummary {
            bad_input: Some(parse(3)),
            ..ProduceSummary::default()
        };
        assert!(
            crate::ErrorChain(&bad.outcome().unwrap_err())
                .to_string()
                .contains("-:3: key delimiter")
        );
        let failed = ProduceSummary {
            accepted: 10,
            failed: 2,
            first_error: Some(parse(4)),
            ..bad.clone()
        };
        assert_eq!(
            crate::ErrorChain(&failed.outcome().unwrap_err()).to_string(),
            "2 of 10 records failed; first error: -:4: key delimiter \":\" not found"
        );
    }

    #[test]
    fn a_closed_report_stream_stops_reports_only() {
        struct Closed;
        impl Write for Closed {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Err(std::io::ErrorKind::BrokenPipe.into())
            }
        }
        let report = std::sync::Mutex::new(Report::new(Box::new(Closed)));
        let mut obj = serde_json::Map::new();
        obj.insert("line".into(), 1.into());
        // Buffered until the buffer fills or is flushed.
        for _ in 0..10_000 {
            write_report(&report, &obj).unwrap();
        }
        report.lock().unwrap().flush().unwrap();
        assert!(report.lock().unwrap().closed);
    }
}
