//! Text: the default terminal report. Capture facts, counts per verdict, a per-server rollup,
//! a table of the connections that did not succeed, then their explanations.

use super::words::{endpoint, frame_at, not_judged, seconds, spread};
use super::RenderOptions;
use crate::analysis::Report;
use crate::model::{Connection, VerdictCode};
use crate::wire::linktype_name;
use comfy_table::{
    presets::UTF8_FULL_CONDENSED, Attribute, Cell, Color, ColumnConstraint, ContentArrangement,
    Table,
};
use std::io::{self, Write};
use unicode_width::UnicodeWidthStr;

/// How many connections of one (verdict, server) group are explained in full.
const DETAILED_PER_GROUP: usize = 3;

pub(crate) fn paint(s: &str, code: &str, on: bool) -> String {
    if on {
        format!("\x1b[{code}m{s}\x1b[0m")
    } else {
        s.to_string()
    }
}

/// The verdict as a table cell, coloured by the table itself: it colours each wrapped line
/// whole, so no wrap cuts an escape code.
pub(crate) fn verdict_cell(verdict: &str, failure: bool) -> Cell {
    let cell = Cell::new(verdict);
    if failure {
        cell.fg(Color::DarkRed).add_attribute(Attribute::Bold)
    } else {
        cell.fg(Color::DarkGreen)
    }
}

fn verdict_colour(c: &Connection) -> &'static str {
    if c.verdict.is_failure() {
        "1;31"
    } else {
        "32"
    }
}

/// A certificate problem's code in the evidence column's words ("name mismatch").
fn problem_short(code: &str) -> &str {
    match code {
        "not_yet_valid" => "not yet valid",
        "name_mismatch" => "name mismatch",
        "self_signed" => "self-signed",
        "incomplete_chain" => "chain incomplete",
        other => other,
    }
}

/// Short evidence for the table's last column.
pub(crate) fn key_evidence(c: &Connection) -> String {
    let mut parts: Vec<String> = Vec::new();
    if c.clienthello_count > 0 {
        let acked = match c.clienthello_acked {
            Some(true) => ", ACKed",
            Some(false) => ", not ACKed",
            None => "",
        };
        parts.push(format!("CH x{}{acked}", c.clienthello_count));
    } else if c.syn_count > 1 {
        parts.push(format!("SYN x{}", c.syn_count));
    }
    if c.hello_retry_request {
        parts.push("HRR".into());
    }
    if let Some(a) = &c.alert {
        let likely = if a.inferred && a.description.is_some() {
            " (likely)"
        } else {
            ""
        };
        parts.push(format!(
            "{} alert {}{likely}",
            a.sender,
            a.description.as_deref().unwrap_or("(encrypted)")
        ));
    }
    if let Some(cert) = c.certificate.as_ref().filter(|c| !c.problems.is_empty()) {
        let short: Vec<&str> = cert.problems.iter().map(|p| problem_short(p)).collect();
        parts.push(format!("cert {}", short.join(", ")));
    }
    if let Some(i) = &c.icmp {
        parts.push(format!("ICMP {}", i.description));
    }
    if let Some(b) = &c.server_first_bytes {
        let short: String = b.chars().take(28).collect();
        parts.push(format!("server: \"{short}\""));
    }
    if let Some(d) = c
        .server_hello_delay_s
        .filter(|d| *d > crate::diagnose::verdict::SLOW_SERVER_HELLO_S)
    {
        parts.push(format!("ServerHello after {}s", seconds(d)));
    }
    // A named alert is the answer itself: "gave up" after it would read as a timeout.
    let alerted = super::alert_words(c).is_some()
        && c.alert.as_ref().is_some_and(|a| a.description.is_some());
    if let Some(s) = c
        .gave_up_after_s
        .filter(|_| c.verdict.is_failure() && !alerted)
    {
        parts.push(format!("gave up {s:.1}s"));
    }
    if c.server_rst.is_some() && c.verdict == VerdictCode::ServerClosed {
        parts.push("server FIN, then RST".into());
    } else if c.server_rst.is_some() {
        parts.push("server RST".into());
    } else if c.server_fin.is_some() && c.verdict.is_failure() {
        parts.push("server FIN".into());
    }
    parts.join("; ")
}

/// Rows of the connection table printed without `--all`.
const TABLE_ROWS: usize = 1000;

/// The connections' table's columns.
const CONNECTION_COLUMNS: [&str; 6] = ["stream", "client", "server", "SNI", "verdict", "evidence"];

fn table(o: &RenderOptions, header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.to_vec());
    // Verdicts are codes to search for: never cut (every table has one).
    if let Some(verdict) = header.iter().position(|h| *h == "verdict") {
        if let Some(c) = t.column_mut(verdict) {
            c.set_constraint(ColumnConstraint::ContentWidth);
        }
    }
    if let Some(w) = o.width {
        t.set_width(w);
    }
    // The width and colour are the caller's (main asks the terminal): the table does not ask.
    t.force_no_tty();
    if o.color {
        t.enforce_styling();
    }
    t
}

pub fn render(r: &Report, o: &RenderOptions, w: &mut dyn Write) -> io::Result<()> {
    writeln!(w, "{} {}", paint("tlsdiag", "1", o.color), r.tool.version)?;
    let (chosen, left_out, left_out_connections) =
        super::markdown::chosen(r, false, o.max_problems());
    let groups = super::markdown::group(r, false, &chosen)?;
    prose(
        w,
        "",
        &super::markdown::headline(r, &groups, false),
        o.width,
    )?;
    let mut facts = Vec::new();
    summary(r, &mut facts)?;
    fit(&String::from_utf8_lossy(&facts), o.width, w)?;
    redaction_note(r, w)?;
    let grouped = !o.all && r.summary.failed > GROUP_BEYOND;
    if grouped {
        grouped_table(&groups, (left_out, left_out_connections), o, w)?;
    }
    // Without --all both parts are bounded (the first TABLE_ROWS rows, the first problems'
    // explanations), so one pass over the connections fills both, and the explanations wait in
    // memory while the table is written; with --all they are written in a second pass.
    let mut rows = Rows::new(o);
    let mut why = Explanations::default();
    let mut waiting = Vec::new();
    for c in r.listed(o.all) {
        let c = c?;
        if !grouped {
            rows.add(&c, w)?;
        }
        if !o.all {
            why.add(&c, o, &mut waiting)?;
        }
    }
    rows.finish(w)?;
    if o.all {
        for c in r.listed(true) {
            why.add(&c?, o, w)?;
        }
    } else {
        w.write_all(&waiting)?;
    }
    why.finish(o, w)?;
    if !r.warnings.is_empty() {
        writeln!(w, "\nWarnings:")?;
        for x in &r.warnings {
            prose(w, "  ", &crate::escape::text(x), o.width)?;
        }
    }
    Ok(())
}

/// Says so when the report is redacted.
fn redaction_note(r: &Report, w: &mut dyn Write) -> io::Result<()> {
    if r.redacted() {
        writeln!(w, "{}", super::redaction_line(r.names_kept()))?;
    }
    Ok(())
}

/// The inputs, the time they span, the capture point, the verdict counts, the busiest servers.
fn summary(r: &Report, w: &mut dyn Write) -> io::Result<()> {
    for (i, c) in r.captures.iter().enumerate() {
        let links: Vec<String> = c
            .link_types
            .iter()
            .map(|(lt, n)| format!("{} x{n}", linktype_name(*lt)))
            .collect();
        let fmt = c.format.map(|f| f.to_string()).unwrap_or_default();
        let comp = match c.compression {
            Some(crate::capture::Compression::Gzip) => ", gzip",
            Some(crate::capture::Compression::Zstd) => ", zstd",
            None => "",
        };
        writeln!(
            w,
            "Capture {}: {} ({fmt}{comp}), {} packets, {}",
            i,
            crate::escape::text(&c.path),
            c.packets,
            if links.is_empty() {
                "no packets".into()
            } else {
                links.join(", ")
            }
        )?;
    }
    if r.captures.len() > 1 {
        writeln!(
            w,
            "Frames are written file:frame, the file numbered as above"
        )?;
    }
    let s = &r.summary;
    if let (Some(a), Some(b)) = (&s.first_time, &s.last_time) {
        writeln!(w, "Time: {a} to {b} ({:.1} s)", s.span_s)?;
    }
    writeln!(
        w,
        "Capture point: {} side ({}: {})",
        r.vantage.side, r.vantage.decided_by, r.vantage.evidence
    )?;
    writeln!(
        w,
        "Connections: {} ({} did not succeed{}); TCP packets {}, duplicates from -i any ignored {}",
        s.connections,
        s.failed,
        not_judged(s),
        s.tcp_packets,
        s.duplicates_ignored
    )?;
    for (v, n) in &s.verdicts {
        writeln!(w, "  {v:<24} {n}")?;
    }
    if !s.servers.is_empty() {
        writeln!(w, "Servers:")?;
        for sv in s.servers.iter().take(20) {
            let detail: Vec<String> = sv
                .verdicts
                .iter()
                .map(|(v, n)| format!("{n} {v}"))
                .collect();
            writeln!(
                w,
                "  {}: {} connection(s), {}",
                sv.server,
                sv.connections,
                detail.join(", ")
            )?;
            if sv.tcp_rtt_ms.is_some() || sv.server_hello_delay_ms.is_some() {
                writeln!(
                    w,
                    "    ms p50/p90/p99/max: TCP round trip {}; ServerHello delay {}",
                    spread(sv.tcp_rtt_ms.as_ref()),
                    spread(sv.server_hello_delay_ms.as_ref())
                )?;
            }
        }
        if s.servers.len() > 20 {
            writeln!(w, "  ... and {} more servers", s.servers.len() - 20)?;
        }
        if s.unlisted_server_connections > 0 {
            writeln!(
                w,
                "  ... and {} connection(s) to servers beyond the first {}",
                s.unlisted_server_connections,
                s.servers.len()
            )?;
        }
    }
    Ok(())
}

/// The connections' table, written in tables of [`TABLE_ROWS`] rows (all of them with --all,
/// else only the first table and a count of the rest).
struct Rows<'o> {
    o: &'o RenderOptions,
    table: Table,
    rows: usize,
    not_shown: usize,
}

impl<'o> Rows<'o> {
    fn new(o: &'o RenderOptions) -> Self {
        Rows {
            o,
            table: table(o, &CONNECTION_COLUMNS),
            rows: 0,
            not_shown: 0,
        }
    }

    fn add(&mut self, c: &Connection, w: &mut dyn Write) -> io::Result<()> {
        if self.rows >= TABLE_ROWS && !self.o.all {
            self.not_shown += 1;
            return Ok(());
        }
        self.table.add_row(vec![
            Cell::new(c.stream),
            Cell::new(endpoint(&c.client_ip, c.client_port)),
            Cell::new(endpoint(&c.server_ip, c.server_port)),
            Cell::new(c.sni.as_deref().unwrap_or_default()),
            verdict_cell(c.verdict.as_str(), c.verdict.is_failure()),
            Cell::new(key_evidence(c)),
        ]);
        self.rows += 1;
        if self.rows.is_multiple_of(TABLE_ROWS) {
            writeln!(w, "\n{}", self.table)?;
            self.table = table(self.o, &CONNECTION_COLUMNS);
        }
        Ok(())
    }

    fn finish(self, w: &mut dyn Write) -> io::Result<()> {
        if !self.rows.is_multiple_of(TABLE_ROWS) {
            writeln!(w, "\n{}", self.table)?;
        }
        if self.not_shown > 0 {
            writeln!(
                w,
                "... and {} more connections not shown (--all, or --format json/ndjson)",
                self.not_shown
            )?;
        }
        Ok(())
    }
}

/// "What happened": each listed connection explained, grouped by (verdict, server). Without
/// --all, only the first [`DETAILED_PER_GROUP`] of a group and the first problems; the rest are
/// counted.
#[derive(Default)]
struct Explanations {
    shown: std::collections::BTreeMap<(String, String, u16), usize>,
    hidden: std::collections::BTreeMap<(String, String, u16), usize>,
    other_groups: u64,
    started: bool,
}

impl Explanations {
    fn add(&mut self, c: &Connection, o: &RenderOptions, w: &mut dyn Write) -> io::Result<()> {
        if !o.all {
            let key = (
                c.verdict.as_str().to_string(),
                c.server_ip.clone(),
                c.server_port,
            );
            // Bounded: a scan reaches more servers than anyone reads explanations for.
            if self.shown.len() >= o.max_problems() && !self.shown.contains_key(&key) {
                self.other_groups += 1;
                return Ok(());
            }
            let n = self.shown.entry(key.clone()).or_default();
            if *n >= DETAILED_PER_GROUP {
                *self.hidden.entry(key).or_default() += 1;
                return Ok(());
            }
            *n += 1;
        }
        if !self.started {
            writeln!(w, "\nWhat happened:")?;
            self.started = true;
        }
        writeln!(
            w,
            "\n  stream {} [{}]  (Wireshark: tcp.stream eq {})",
            c.stream,
            paint(c.verdict.as_str(), verdict_colour(c), o.color),
            c.stream
        )?;
        prose(w, "    ", &c.explanation, o.width)?;
        for (label, line) in super::tls_lines::tls_lines(c) {
            prose(w, &format!("    {label}: "), &line, o.width)?;
        }
        prose(w, "    Next: ", &c.next_step, o.width)?;
        if !c.uncertain.is_empty() {
            prose(w, "    Uncertain: ", &c.uncertain.join("; "), o.width)?;
        }
        if o.timeline && !c.timeline.is_empty() {
            writeln!(
                w,
                "      {:>7}  {:>10}  {:<2}  event (times: seconds into the connection)",
                "frame", "conn. s", ""
            )?;
            for e in &c.timeline {
                writeln!(
                    w,
                    "      {:>7}  {:>10.6}  {:<2}  {}",
                    frame_at(e.frame, e.file),
                    e.t,
                    e.dir,
                    e.event
                )?;
            }
            if c.events_not_kept > 0 {
                writeln!(
                    w,
                    "      {:>7}  {:>10.6}  {:<2}  {} later events not kept",
                    c.last_frame, c.duration_s, "", c.events_not_kept
                )?;
            }
        }
        Ok(())
    }

    fn finish(self, o: &RenderOptions, w: &mut dyn Write) -> io::Result<()> {
        for ((v, ip, port), n) in &self.hidden {
            writeln!(
                w,
                "\n  ... and {n} more {v} connection(s) to {} like the above (--all lists them)",
                endpoint(ip, *port)
            )?;
        }
        if self.other_groups > 0 {
            writeln!(
                w,
                "\n  ... and {} more connection(s) with other verdicts or servers than the {} \
                 explained above (--all lists them)",
                self.other_groups,
                o.max_problems()
            )?;
        }
        Ok(())
    }
}

/// Failed connections beyond which the table (without --all) has one row per (verdict,
/// server), as the Markdown report's sections, instead of one per connection.
const GROUP_BEYOND: u64 = 20;

/// Streams named in a grouped row.
const GROUP_STREAMS: usize = 5;

/// The failed connections' table, one row per (verdict, server): how many, some streams, the
/// first one's evidence; the biggest first.
fn grouped_table(
    groups: &super::markdown::Groups,
    (left_out, left_out_connections): (usize, u64),
    o: &RenderOptions,
    w: &mut dyn Write,
) -> io::Result<()> {
    let mut t = table(
        o,
        &[
            "count",
            "verdict",
            "server",
            "streams",
            "evidence (first stream)",
        ],
    );
    let mut rows: Vec<_> = groups.iter().collect();
    rows.sort_by_key(|(_, g)| std::cmp::Reverse(g.count));
    for ((verdict, server), g) in rows {
        let mut streams: Vec<String> = g
            .streams
            .iter()
            .take(GROUP_STREAMS)
            .map(u64::to_string)
            .collect();
        if g.count > streams.len() as u64 {
            streams.push("...".into());
        }
        t.add_row(vec![
            Cell::new(g.count),
            verdict_cell(verdict, g.example.verdict.is_failure()),
            Cell::new(server),
            Cell::new(streams.join(", ")),
            Cell::new(key_evidence(&g.example)),
        ]);
    }
    if !t.is_empty() {
        writeln!(w, "\n{t}")?;
    }
    if left_out > 0 {
        writeln!(
            w,
            "... and {left_out} other problem(s) ({left_out_connections} connection(s)) not in the \
             table (--all lists every connection)"
        )?;
    }
    Ok(())
}

/// Writes `lead` and then `text`, wrapped at `width` when known (a terminal), continuation lines
/// indented two more than the lead; a word wider than the line is cut.
fn prose(w: &mut dyn Write, lead: &str, text: &str, width: Option<u16>) -> io::Result<()> {
    let Some(width) = width.map(usize::from) else {
        return writeln!(w, "{lead}{text}");
    };
    let indent = " ".repeat(lead.len() - lead.trim_start().len() + 2);
    let room = width.saturating_sub(indent.len()).max(8);
    let mut line = lead.to_string();
    let mut used = lead.width();
    let mut bare = true; // no word on this line yet
    for word in text.split(' ').filter(|x| !x.is_empty()) {
        for piece in pieces(word, room) {
            let pw = piece.width();
            if !bare && used + 1 + pw > width {
                writeln!(w, "{line}")?;
                line.clone_from(&indent);
                used = indent.len();
                bare = true;
            }
            if !bare {
                line.push(' ');
                used += 1;
            }
            line.push_str(piece);
            used += pw;
            bare = false;
        }
    }
    writeln!(w, "{line}")
}

/// Writes `text`, each line wider than `width` wrapped as [`prose`] (its indent kept), the
/// others as they are (their alignment kept).
fn fit(text: &str, width: Option<u16>, w: &mut dyn Write) -> io::Result<()> {
    for line in text.lines() {
        if width.is_some_and(|width| line.width() > usize::from(width)) {
            let body = line.trim_start();
            prose(w, &line[..line.len() - body.len()], body, width)?;
        } else {
            writeln!(w, "{line}")?;
        }
    }
    Ok(())
}

/// A word cut into pieces at most `room` columns wide.
fn pieces(word: &str, room: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut used) = (0, 0);
    for (i, ch) in word.char_indices() {
        let cw = unicode_width::UnicodeWidthChar::width(ch).unwrap_or(0);
        if used + cw > room && i > start {
            out.push(&word[start..i]);
            (start, used) = (i, 0);
        }
        used += cw;
    }
    out.push(&word[start..]);
    out
}
