//! `weir offsets show/set/delete -g G` of a share group: its start offset
//! and lag per partition and its members, as `kafka-share-groups
//! --describe --offsets --members` shows them.

use std::io::Write;

use weir::share::offsets::{ShareGroupReport, ShareOffsetChange};

use super::topics::Output;

/// Prints a share group's report.
pub fn print_show(
    out: &mut impl Write,
    output: Output,
    report: &ShareGroupReport,
) -> anyhow::Result<()> {
    if output == Output::Json {
        let g = &report.group;
        serde_json::to_writer(
            &mut *out,
            &serde_json::json!({
                "group": g.group,
                "type": "share",
                "state": g.state,
                "protocol": g.assignor,
                "members": g.members,
                "partitions": report.partitions,
            }),
        )?;
        writeln!(out)?;
        return Ok(());
    }
    let g = &report.group;
    writeln!(
        out,
        "group \"{}\": type share, assignor {}, state {}, {} member(s)",
        g.group,
        g.assignor,
        g.state,
        g.members.len()
    )?;
    writeln!(
        out,
        "{:<24} {:>9} {:>12} {:>14} {:>8}",
        "TOPIC", "PARTITION", "START-OFFSET", "HIGH-WATERMARK", "LAG"
    )?;
    let dash = |v: Option<i64>| v.map_or("-".to_owned(), |v| v.to_string());
    for p in &report.partitions {
        writeln!(
            out,
            "{:<24} {:>9} {:>12} {:>14} {:>8}",
            p.topic,
            p.partition,
            dash(p.start_offset),
            dash(p.high_watermark),
            dash(p.lag)
        )?;
    }
    for m in &g.members {
        let assigned: Vec<String> = m
            .assignment
            .iter()
            .map(|(t, ps)| {
                let ps: Vec<String> = ps.iter().map(ToString::to_string).collect();
                format!("{t}:{}", ps.join(","))
            })
            .collect();
        writeln!(
            out,
            "member {} ({}, {}): {}",
            m.member_id,
            m.client_id,
            m.host,
            assigned.join(" ")
        )?;
    }
    Ok(())
}

/// Prints what `set` moved (or would move).
pub fn print_changes(
    out: &mut impl Write,
    output: Output,
    group: &str,
    rows: &[ShareOffsetChange],
    dry_run: bool,
) -> anyhow::Result<()> {
    if output == Output::Json {
        serde_json::to_writer(
            &mut *out,
            &serde_json::json!({ "group": group, "type": "share", "dry_run": dry_run, "partitions": rows }),
        )?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<24} {:>9} {:>12} {:>12}",
        "TOPIC", "PARTITION", "FROM", "TO"
    )?;
    for r in rows {
        writeln!(
            out,
            "{:<24} {:>9} {:>12} {:>12}",
            r.topic,
            r.partition,
            r.from.map_or("-".to_owned(), |v| v.to_string()),
            r.to,
        )?;
    }
    if dry_run {
        writeln!(out, "(dry run: nothing written)")?;
    }
    Ok(())
}
