//! The delivery report (`--report`): one JSON object per record, a side
//! channel that stops on its own when its reader goes away.

use std::io::Write;

use tracing::warn;

/// The report stream, shared by the delivery reader and the input loop.
/// Reports are a side channel of the records: when their reader goes away
/// (`--report | head`), reports stop with a warning and producing goes on
/// to the end of the input; the summary still says what was delivered.
pub(super) struct Report {
    out: std::io::BufWriter<Box<dyn Write + Send>>,
    written: u64,
    pub(super) closed: bool,
}

impl Report {
    pub(super) fn new(out: Box<dyn Write + Send>) -> Self {
        Self {
            out: std::io::BufWriter::with_capacity(1 << 16, out),
            written: 0,
            closed: false,
        }
    }

    /// Handles a failed write: a closed stream ends the reports.
    fn failed(&mut self, e: std::io::Error) -> std::io::Result<()> {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(e);
        }
        if !self.closed {
            self.closed = true;
            warn!(
                "the --report reader closed stdout after about {} reports; producing goes on without them",
                self.written
            );
        }
        Ok(())
    }

    pub(super) fn flush(&mut self) -> std::io::Result<()> {
        if self.closed {
            return Ok(());
        }
        match self.out.flush() {
            Ok(()) => Ok(()),
            Err(e) => self.failed(e),
        }
    }
}

pub(super) fn write_report(
    out: &std::sync::Mutex<Report>,
    obj: &serde_json::Map<String, serde_json::Value>,
) -> std::io::Result<()> {
    let mut out = out
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if out.closed {
        return Ok(());
    }
    let written = serde_json::to_writer(&mut out.out, obj)
        .map_err(std::io::Error::from)
        .and_then(|()| out.out.write_all(b"\n"));
    match written {
        Ok(()) => {
            out.written += 1;
            Ok(())
        }
        Err(e) => out.failed(e),
    }
}
