//! The Prometheus text exposition format (version 0.0.4) of the
//! registry, written by hand: `# HELP` and `# TYPE` lines, then one
//! `name{labels} value` line per series.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use super::{BUCKETS_MICROS, ErrorKind, InputPartition, Metrics, OutputPartition, Timer};
use crate::TopicPartition;

impl Metrics {
    /// The text exposition format (version 0.0.4) of every figure.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let inputs: Vec<(TopicPartition, Arc<InputPartition>)> = {
            let inputs = self.inputs.lock().unwrap_or_else(|e| e.into_inner());
            inputs
                .iter()
                .map(|(k, v)| (k.clone(), Arc::clone(v)))
                .collect()
        };
        let outputs: Vec<(TopicPartition, Arc<OutputPartition>)> = {
            let outputs = self.outputs.lock().unwrap_or_else(|e| e.into_inner());
            outputs
                .iter()
                .map(|(k, v)| (k.clone(), Arc::clone(v)))
                .collect()
        };
        let per_input = |out: &mut String,
                         name: &str,
                         kind: &str,
                         help: &str,
                         value: &dyn Fn(&InputPartition) -> Option<i64>| {
            family(out, name, kind, help);
            for (at, p) in &inputs {
                if let Some(v) = value(p) {
                    series(out, name, at, v);
                }
            }
        };
        let per_output =
            |out: &mut String, name: &str, help: &str, value: &dyn Fn(&OutputPartition) -> u64| {
                family(out, name, "counter", help);
                for (at, p) in &outputs {
                    series(out, name, at, value(p) as i64);
                }
            };

        per_input(
            &mut out,
            "records_in_total",
            "counter",
            "Records consumed.",
            &|p| Some(p.records.load(Relaxed) as i64),
        );
        per_input(
            &mut out,
            "bytes_in_total",
            "counter",
            "Bytes of keys and values consumed.",
            &|p| Some(p.bytes.load(Relaxed) as i64),
        );
        per_input(
            &mut out,
            "consumer_lag",
            "gauge",
            "Records behind the end of the log (high watermark, or last stable offset under read_committed, minus the offset after the last record the job handled), per assigned partition.",
            &InputPartition::lag,
        );
        per_input(
            &mut out,
            "records_filtered_total",
            "counter",
            "Records a filter left out.",
            &|p| Some(p.filtered.load(Relaxed) as i64),
        );
        per_input(
            &mut out,
            "records_unparsed_total",
            "counter",
            "Records whose key or fields could not be read.",
            &|p| Some(p.unparsed.load(Relaxed) as i64),
        );
        per_input(
            &mut out,
            "records_late_total",
            "counter",
            "Records for a window that had closed (count/agg).",
            &|p| Some(p.late.load(Relaxed) as i64),
        );
        for (name, help, value) in [
            (
                "share_accepted_total",
                "Share groups: records acknowledged ACCEPT (processed).",
                (|p| &p.accepted) as fn(&InputPartition) -> &std::sync::atomic::AtomicU64,
            ),
            (
                "share_released_total",
                "Share groups: records acknowledged RELEASE (given back unprocessed).",
                |p| &p.released,
            ),
            (
                "share_rejected_total",
                "Share groups: records acknowledged REJECT (archived unprocessed).",
                |p| &p.rejected,
            ),
            (
                "share_redeliveries_total",
                "Share groups: records delivered more than once (delivery count above 1).",
                |p| &p.redelivered,
            ),
        ] {
            per_input(&mut out, name, "counter", help, &|p| {
                Some(value(p).load(Relaxed) as i64)
            });
        }
        per_output(
            &mut out,
            "records_out_total",
            "Records produced (acknowledged).",
            &|p| p.records.load(Relaxed),
        );
        per_output(
            &mut out,
            "bytes_out_total",
            "Bytes of keys and values produced (acknowledged).",
            &|p| p.bytes.load(Relaxed),
        );
        let plain = [
            (
                "retries_total",
                "counter",
                "Fetches and (idempotent) produce requests tried again after a failure.",
                self.retries.load(Relaxed) as i64,
            ),
            (
                "rebalances_total",
                "counter",
                "Rebalances of the group this member went through.",
                self.rebalances.load(Relaxed) as i64,
            ),
            (
                "assigned_partitions",
                "gauge",
                "Input partitions being read.",
                inputs
                    .iter()
                    .filter(|(_, p)| p.assigned.load(Relaxed))
                    .count() as i64,
            ),
            (
                "windows_open",
                "gauge",
                "Windows open across partitions (count/agg; with --session-gap, keys with an open session).",
                self.windows_open.load(Relaxed),
            ),
            (
                "state_bytes",
                "gauge",
                "Bytes of aggregation state at the last checkpoint (count/agg).",
                self.state_bytes.load(Relaxed),
            ),
            (
                "ready",
                "gauge",
                "1 when /readyz answers 200.",
                i64::from(self.ready().is_ok()),
            ),
        ];
        for (name, kind, help, value) in plain {
            family(&mut out, name, kind, help);
            let _ = writeln!(out, "weir_{name} {value}");
        }
        family(&mut out, "errors_total", "counter", "Errors, by kind.");
        for kind in ErrorKind::ALL {
            let n = self.errors[kind as usize].load(Relaxed);
            let _ = writeln!(out, "weir_errors_total{{kind=\"{}\"}} {n}", kind.label());
        }
        timer(
            &mut out,
            "commit_duration_seconds",
            "Commits and checkpoints written to the offsets store, and their time.",
            &self.commits,
        );
        timer(
            &mut out,
            "produce_duration_seconds",
            "Produce requests acknowledged, and their time.",
            &self.produce,
        );
        out
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP weir_{name} {help}\n# TYPE weir_{name} {kind}");
}

/// One series of family `name`, labelled with `at`.
fn series(out: &mut String, name: &str, at: &TopicPartition, value: i64) {
    let _ = write!(out, "weir_{name}{{topic=\"");
    escape(out, &at.topic);
    let _ = writeln!(out, "\",partition=\"{}\"}} {value}", at.partition);
}

/// A label value as the format wants it: `\`, `"` and newlines escaped.
fn escape(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn timer(out: &mut String, name: &str, help: &str, timer: &Timer) {
    family(out, name, "histogram", help);
    let mut cumulative = 0;
    for (bound, bucket) in BUCKETS_MICROS.iter().zip(&timer.buckets) {
        cumulative += bucket.load(Relaxed);
        let _ = writeln!(
            out,
            "weir_{name}_bucket{{le=\"{}\"}} {cumulative}",
            seconds(*bound)
        );
    }
    let count = timer.count.load(Relaxed);
    let _ = writeln!(
        out,
        "weir_{name}_bucket{{le=\"+Inf\"}} {count}\nweir_{name}_sum {}\nweir_{name}_count {count}",
        seconds(timer.micros.load(Relaxed)),
    );
}

/// Microseconds as seconds, without trailing zeros: `0.005`, `2.5`, `1`.
fn seconds(micros: u64) -> String {
    let fraction = format!("{:06}", micros % 1_000_000);
    let fraction = fraction.trim_end_matches('0');
    if fraction.is_empty() {
        (micros / 1_000_000).to_string()
    } else {
        format!("{}.{fraction}", micros / 1_000_000)
    }
}
