//! Renders a [`Comparison`] (two captures of the same connections) as a terminal report, JSON
//! or Markdown with a two-column ladder (client side | server side); NDJSON is one pair per
//! line, then a summary line.

use super::markdown::{cell, NO_ISSUE_LINK};
use super::text::paint;
use super::{Format, RenderOptions};
use crate::compare::{Comparison, LadderRow, Pair, PairEnd};
use crate::escape;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, ContentArrangement, Table};
use std::io::{self, Write};

/// Pairs explained in full per verdict (text and Markdown), unless `--all`.
const DETAILED_PER_VERDICT: usize = 3;
/// Connections seen on one side only listed (text and Markdown); JSON has them all.
const UNMATCHED_LISTED: usize = 50;

pub fn render_to(
    c: &Comparison,
    format: Format,
    o: &RenderOptions,
    w: &mut dyn Write,
) -> io::Result<()> {
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut *w, c).map_err(io::Error::other)?;
            writeln!(w)
        }
        Format::Ndjson => {
            for p in &c.pairs {
                serde_json::to_writer(&mut *w, p).map_err(io::Error::other)?;
                writeln!(w)?;
            }
            ndjson_summary(c, w)
        }
        Format::Text => text(c, o, w),
        Format::Markdown => markdown(c, o, w),
    }
}

/// The closing NDJSON line, `{"summary": ...}`: everything the JSON document has but the pairs.
fn ndjson_summary(c: &Comparison, w: &mut dyn Write) -> io::Result<()> {
    let tail = serde_json::json!({
        "summary": c.summary,
        "clock": c.clock,
        "client_side": c.client_side,
        "server_side": c.server_side,
        "unmatched": c.unmatched,
        "warnings": c.warnings,
        "schema_version": c.schema_version,
        "tool": c.tool,
        "redacted": c.redacted,
    });
    writeln!(w, "{tail}")
}

pub fn render(c: &Comparison, format: Format, o: &RenderOptions) -> String {
    let mut buf = Vec::new();
    if let Err(e) = render_to(c, format, o, &mut buf) {
        buf.extend_from_slice(format!("\nerror: {e}\n").as_bytes());
    }
    String::from_utf8_lossy(&buf).into_owned()
}

fn end(e: &Option<PairEnd>) -> String {
    match e {
        Some(e) => format!("stream {}: {} -> {}", e.stream, e.client, e.server),
        None => "not seen".into(),
    }
}

/// A frame number, prefixed with its file index when the side has several files.
fn frame(f: Option<u64>, file: Option<usize>) -> String {
    match (f, file) {
        (None, _) => "—".into(),
        (Some(f), None) => f.to_string(),
        (Some(f), Some(i)) => format!("{i}:{f}"),
    }
}

fn offset_line(c: &Comparison) -> String {
    match c.clock.offset_s {
        Some(o) => format!(
            "{o:+.6} s (server-side clock minus client-side clock; {}, from {} + {} packets seen on both sides)",
            c.clock.method, c.clock.samples_c2s, c.clock.samples_s2c
        ),
        None => format!("unknown ({})", c.clock.method),
    }
}

fn delays(p: &Pair) -> String {
    let f = |d: Option<f64>| d.map_or_else(|| "?".into(), |d| format!("{d:.3} ms"));
    if p.delay_c2s_ms.is_none() && p.delay_s2c_ms.is_none() {
        return String::new();
    }
    format!("-> {} / <- {}", f(p.delay_c2s_ms), f(p.delay_s2c_ms))
}

/// Pairs worth explaining: failures, or all with `--all`, a few per verdict.
fn detailed<'c>(c: &'c Comparison, o: &RenderOptions) -> Vec<&'c Pair> {
    let mut per: std::collections::BTreeMap<&str, usize> = Default::default();
    c.pairs
        .iter()
        .filter(|p| o.all || p.verdict.is_failure())
        .filter(|p| {
            let n = per.entry(p.verdict.as_str()).or_default();
            *n += 1;
            o.all || *n <= DETAILED_PER_VERDICT
        })
        .collect()
}

fn text(c: &Comparison, o: &RenderOptions, w: &mut dyn Write) -> io::Result<()> {
    text_head(c, o, w)?;
    text_table(c, o, w)?;
    for p in detailed(c, o) {
        text_pair(p, o, w)?;
    }
    text_unmatched(c, w)
}

/// The sides, the clock offset, the counts and the warnings.
fn text_head(c: &Comparison, o: &RenderOptions, w: &mut dyn Write) -> io::Result<()> {
    writeln!(
        w,
        "{} {} compare",
        paint("tlsdiag", "1", o.color),
        c.tool.version
    )?;
    redaction_note(c, "", w)?;
    for (name, side) in [
        ("Client side", &c.client_side),
        ("Server side", &c.server_side),
    ] {
        let files: Vec<String> = side.files.iter().map(|f| escape::text(f)).collect();
        writeln!(
            w,
            "{name}: {} ({}), {} connection(s)",
            files.join(", "),
            side.decided_by,
            side.connections
        )?;
    }
    writeln!(w, "Clock offset: {}", offset_line(c))?;
    let s = &c.summary;
    writeln!(
        w,
        "Pairs: {} ({} failed; {} matched, {} through NAT); seen on one side only: {} client side, {} server side",
        s.pairs, s.failed, s.matched, s.matched_through_nat, s.unmatched_client_side, s.unmatched_server_side
    )?;
    for (v, n) in &s.verdicts {
        writeln!(w, "  {v:<26} {n}")?;
    }
    for warn in &c.warnings {
        writeln!(w, "warning: {}", escape::text(warn))?;
    }
    Ok(())
}

/// Says so when the comparison is redacted; `gap` ends the line (Markdown: a paragraph).
fn redaction_note(c: &Comparison, gap: &str, w: &mut dyn Write) -> io::Result<()> {
    if c.redacted {
        writeln!(w, "{}{gap}", super::redaction_line(c.names_kept))?;
    }
    Ok(())
}

/// One row per failed pair (every pair with `--all`).
fn text_table(c: &Comparison, o: &RenderOptions, w: &mut dyn Write) -> io::Result<()> {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(vec![
            "client side",
            "server side",
            "SNI",
            "verdict",
            "one-way delay",
        ]);
    if let Some(width) = o.width {
        t.set_width(width);
    }
    // Coloured by the table, so no wrap cuts a colour code (see text::verdict_cell).
    t.force_no_tty();
    if o.color {
        t.enforce_styling();
    }
    let mut rows = 0;
    for p in c.pairs.iter().filter(|p| o.all || p.verdict.is_failure()) {
        t.add_row(vec![
            Cell::new(end(&p.client_side)),
            Cell::new(end(&p.server_side)),
            Cell::new(p.sni.as_deref().unwrap_or_default()),
            super::text::verdict_cell(p.verdict.as_str(), p.verdict.is_failure()),
            Cell::new(delays(p)),
        ]);
        rows += 1;
    }
    if rows > 0 {
        writeln!(w, "\n{t}")?;
    } else if c.summary.pairs > 0 {
        writeln!(w, "\nEvery pair is ok (--all lists them).")?;
    }
    Ok(())
}

/// A pair explained: its verdict, why, the next step and its ladder.
fn text_pair(p: &Pair, o: &RenderOptions, w: &mut dyn Write) -> io::Result<()> {
    writeln!(
        w,
        "\n{} | {}: {}",
        end(&p.client_side),
        end(&p.server_side),
        paint(p.verdict.as_str(), "1", o.color)
    )?;
    if let Some(n) = &p.nat {
        writeln!(w, "  NAT: {n}")?;
    }
    if let Some(m) = &p.matched_by {
        writeln!(w, "  matched by {m}")?;
    }
    writeln!(w, "  {}", p.explanation)?;
    writeln!(w, "  next: {}", p.next_step)?;
    writeln!(
        w,
        "  {:>9}  {:>7}     {:>7}  {:<8}  event (times: seconds into the connection, on the \
         client side's clock)",
        "conn. s", "client", "server", "status"
    )?;
    for r in &p.ladder {
        writeln!(w, "  {}", ladder_line(r))?;
    }
    Ok(())
}

/// Connections seen on one side only, the first [`UNMATCHED_LISTED`].
fn text_unmatched(c: &Comparison, w: &mut dyn Write) -> io::Result<()> {
    if c.unmatched.is_empty() {
        return Ok(());
    }
    writeln!(w, "\nSeen on one side only:")?;
    for u in c.unmatched.iter().take(UNMATCHED_LISTED) {
        writeln!(
            w,
            "  {} side {}: {} ({})",
            u.side,
            end(&Some(u.conn.clone())),
            u.conn.verdict.as_str(),
            u.reason
        )?;
    }
    if c.unmatched.len() > UNMATCHED_LISTED {
        writeln!(
            w,
            "  ... and {} more (--format json)",
            c.unmatched.len() - UNMATCHED_LISTED
        )?;
    }
    Ok(())
}

fn ladder_line(r: &LadderRow) -> String {
    let arrow = if r.dir == "->" { "──>" } else { "<──" };
    format!(
        "{:>9.6}  {:>7} {arrow} {:>7}  {:<8}  {}",
        r.t,
        frame(r.client_frame, r.client_file),
        frame(r.server_frame, r.server_file),
        r.status,
        r.event
    )
}

fn markdown(c: &Comparison, o: &RenderOptions, w: &mut dyn Write) -> io::Result<()> {
    markdown_head(c, w)?;
    for p in detailed(c, o) {
        markdown_pair(p, w)?;
    }
    markdown_unmatched(c, w)
}

/// The headline, the sides, the clock offset, the warnings and the count per verdict.
fn markdown_head(c: &Comparison, w: &mut dyn Write) -> io::Result<()> {
    let s = &c.summary;
    let headline = c
        .pairs
        .iter()
        .filter(|p| p.verdict.is_failure())
        .min_by_key(|p| p.verdict.rank());
    match headline {
        Some(p) => writeln!(
            w,
            "## tlsdiag compare: {} of {} connection(s) failed; first: `{}`\n",
            s.failed,
            s.pairs,
            p.verdict.as_str()
        )?,
        None => writeln!(
            w,
            "## tlsdiag compare: {} connection(s), none failed\n",
            s.pairs
        )?,
    }
    redaction_note(c, "\n", w)?;
    for (name, side) in [
        ("Client side (gateway)", &c.client_side),
        ("Server side (backend)", &c.server_side),
    ] {
        let files: Vec<String> = side
            .files
            .iter()
            .map(|f| format!("`{}`", cell(&escape::text(f))))
            .collect();
        writeln!(
            w,
            "- **{name}**: {}; {}; {} connection(s)",
            files.join(", "),
            cell(&side.decided_by),
            side.connections
        )?;
    }
    writeln!(w, "- **Clock offset**: {}", cell(&offset_line(c)))?;
    writeln!(
        w,
        "- **Matched**: {} pair(s), {} through NAT; one side only: {} client side, {} server side",
        s.matched, s.matched_through_nat, s.unmatched_client_side, s.unmatched_server_side
    )?;
    for warn in &c.warnings {
        writeln!(w, "- **Warning**: {}", cell(&escape::text(warn)))?;
    }
    writeln!(w, "\n| verdict | pairs |\n|---|---:|")?;
    for (v, n) in &s.verdicts {
        writeln!(w, "| `{v}` | {n} |")?;
    }
    Ok(())
}

/// A pair explained: its ends, why, the next step and its ladder as a table.
fn markdown_pair(p: &Pair, w: &mut dyn Write) -> io::Result<()> {
    writeln!(w, "\n### `{}`\n", p.verdict.as_str())?;
    writeln!(w, "- client side: {}", cell(&end(&p.client_side)))?;
    writeln!(w, "- server side: {}", cell(&end(&p.server_side)))?;
    if let Some(n) = &p.nat {
        writeln!(w, "- NAT: {}", cell(n))?;
    }
    if let Some(sni) = &p.sni {
        writeln!(w, "- SNI: `{}`", cell(sni))?;
    }
    let d = delays(p);
    if !d.is_empty() {
        writeln!(w, "- one-way delay: {}", cell(&d))?;
    }
    writeln!(
        w,
        "\n{}\n\n**Next step:** {}\n",
        cell(&p.explanation),
        cell(&p.next_step)
    )?;
    writeln!(
        w,
        "| s into the connection (client side's clock) | client side (gateway) | \
         | server side (backend) | seen |\n|---:|---|:---:|---|---|"
    )?;
    for r in &p.ladder {
        writeln!(w, "{}", markdown_ladder_row(r))?;
    }
    Ok(())
}

/// A ladder row: the event on its sender's column, the other column's frame when it arrived.
fn markdown_ladder_row(r: &LadderRow) -> String {
    let (c, s) = (
        r.client_frame
            .map(|_| format!("#{NO_ISSUE_LINK}{}", frame(r.client_frame, r.client_file))),
        r.server_frame
            .map(|_| format!("#{NO_ISSUE_LINK}{}", frame(r.server_frame, r.server_file))),
    );
    let (left, right) = match r.dir {
        "->" => (c.map(|f| format!("{f} {}", cell(&r.event))), s),
        _ => (c, s.map(|f| format!("{f} {}", cell(&r.event)))),
    };
    let arrow = if r.dir == "->" { "→" } else { "←" };
    format!(
        "| {:.6} | {} | {arrow} | {} | {} |",
        r.t,
        left.unwrap_or_else(|| "—".into()),
        right.unwrap_or_else(|| "—".into()),
        r.status
    )
}

/// Connections seen on one side only, the first [`UNMATCHED_LISTED`].
fn markdown_unmatched(c: &Comparison, w: &mut dyn Write) -> io::Result<()> {
    if c.unmatched.is_empty() {
        return Ok(());
    }
    writeln!(w, "\n### Seen on one side only\n\n| side | connection | verdict | likely reason |\n|---|---|---|---|")?;
    for u in c.unmatched.iter().take(UNMATCHED_LISTED) {
        writeln!(
            w,
            "| {} | {} | `{}` | {} |",
            u.side,
            cell(&end(&Some(u.conn.clone()))),
            u.conn.verdict.as_str(),
            cell(&u.reason)
        )?;
    }
    Ok(())
}
