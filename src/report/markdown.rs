//! Markdown: a GitHub-flavoured summary fit to paste into a support ticket. A headline, the
//! capture facts, counts, the per-server rollup, then one section per distinct problem with an
//! example connection's timeline and the Wireshark filter to see it.

use super::RenderOptions;
use crate::analysis::Report;
use crate::model::Connection;
use crate::wire::linktype_name;
use std::collections::BTreeMap;
use std::io::{self, Write};

/// Written between `#` and a number (`#<!-- -->18`) so GitHub does not link issue 18: it links
/// `#18` even when escaped as `\#18` (github/cmark-gfm issue 181); the empty comment renders as
/// nothing.
pub const NO_ISSUE_LINK: &str = "<!-- -->";

/// Escapes text for a Markdown table cell or paragraph.
pub fn cell(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(ch) = chars.next() {
        match ch {
            '#' if chars.peek().is_some_and(char::is_ascii_digit) => {
                out.push('#');
                out.push_str(NO_ISSUE_LINK);
            }
            '|' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '#' | '\\' | '~' => {
                out.push('\\');
                out.push(ch);
            }
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Ladder rows shown for a problem's example connection.
const MAX_LADDER_ROWS: usize = 40;

/// How a verdict ranks among groups of the same size: the failure this tool exists for first.
fn severity(v: &str) -> usize {
    const ORDER: [&str; 9] = [
        "tls_no_server_response",
        "server_response_lost",
        "clienthello_lost",
        "tcp_no_synack",
        "icmp_unreachable",
        "tcp_refused",
        "middlebox_reset",
        "server_reset",
        "server_closed",
    ];
    ORDER
        .iter()
        .position(|x| *x == v)
        .map_or(0, |i| ORDER.len() - i)
}

/// The groups worth a section, from the summary's per-server counts: failures first (the
/// headline's group among them), then the biggest, on a tie the more severe, then (as the
/// headline breaks ties) the later verdict and server. Also how many groups were left out, and
/// their connections.
pub(super) fn chosen(r: &Report, all: bool, max: usize) -> (Vec<(String, String)>, usize, u64) {
    let failure = |v: &str| {
        crate::diagnose::verdict::VerdictCode::ALL
            .iter()
            .any(|c| c.as_str() == v && c.is_failure())
    };
    let mut groups: Vec<(bool, u64, usize, &str, &str)> = r
        .summary
        .servers
        .iter()
        .flat_map(|sv| {
            sv.verdicts
                .iter()
                .map(|(v, n)| (failure(v), *n, severity(v), v.as_str(), sv.server.as_str()))
                .filter(|g| all || g.0)
        })
        .collect();
    groups.sort_unstable_by(|a, b| b.cmp(a));
    let left_out = groups.get(max..).unwrap_or_default();
    let left = (left_out.len(), left_out.iter().map(|g| g.1).sum());
    groups.truncate(max);
    let keys = groups
        .into_iter()
        .map(|(_, _, _, v, server)| (v.to_string(), server.to_string()))
        .collect();
    (keys, left.0, left.1)
}

/// A distinct problem: one verdict towards one server.
pub(super) struct Group {
    pub(super) count: u64,
    pub(super) example: Connection,
    pub(super) streams: Vec<u64>,
}

/// The one-line answer both Markdown and text open with: the biggest problem, or why there is
/// nothing to report. `md` quotes verdicts as code and escapes names for Markdown.
pub(super) fn headline(r: &Report, groups: &Groups, md: bool) -> String {
    let s = &r.summary;
    if s.connections == 0 {
        return super::empty_words(s);
    }
    let name = |x: &str| if md { cell(x) } else { crate::escape::text(x) };
    let slow = slow_server(s, name)
        .map(|slow| format!(" {slow}"))
        .unwrap_or_default();
    let Some(((verdict, server), g)) = groups
        .iter()
        .filter(|(_, g)| g.example.verdict.is_failure())
        .max_by_key(|((v, _), g)| (g.count, severity(v)))
    else {
        let not_judged = s.verdicts.get("incomplete").copied().unwrap_or(0);
        if not_judged == s.connections {
            return format!(
                "No connection failed and none was judged: the capture does not hold the \
                 whole handshake of its {not_judged} connection(s) (`incomplete`).{slow}"
            );
        }
        if not_judged > 0 {
            return format!(
                "No connection failed: {} completed their handshake or carried no TLS; \
                 {not_judged} not judged (`incomplete`: the capture does not hold their whole \
                 handshake).{slow}",
                s.connections.saturating_sub(not_judged)
            );
        }
        return format!(
            "All {} connection(s) completed their handshake or carried no TLS.{slow}",
            s.connections
        );
    };
    let to_server = s
        .servers
        .iter()
        .find(|sv| sv.server == *server)
        .map_or(g.count, |sv| sv.connections);
    let verdict = if md {
        format!("`{verdict}`")
    } else {
        verdict.clone()
    };
    let mut h = format!(
        "{} of {to_server} connection(s) to {} ended in {verdict}",
        g.count,
        name(server)
    );
    if let Some(refused) = super::alert_words(&g.example) {
        h.push_str(&format!("; {}", name(&refused)));
    } else if let Some(gv) = g.example.gave_up_after_s {
        h.push_str(&format!("; the client gave up after {gv:.1} s"));
        if let Some(m) = &g.example.timeout_match {
            h.push_str(&format!(", matching {}", name(m)));
        }
    }
    h.push('.');
    h.push_str(&slow);
    h
}

/// The server slowest to answer ClientHellos, when its p99 is over a second, else the one
/// with the slowest TCP round trip over a second: a sentence naming it.
fn slow_server(s: &crate::model::Summary, name: impl Fn(&str) -> String) -> Option<String> {
    const SLOW_MS: f64 = 1000.0;
    let worst = |what: fn(&crate::model::ServerRollup) -> Option<&crate::model::Spread>| {
        s.servers
            .iter()
            .filter_map(|sv| Some((sv, *what(sv)?)))
            .filter(|(_, x)| x.p99 > SLOW_MS)
            .max_by(|a, b| a.1.p99.total_cmp(&b.1.p99))
    };
    let secs = |ms: f64| super::words::seconds(ms / 1e3);
    if let Some((sv, x)) = worst(|sv| sv.server_hello_delay_ms.as_ref()) {
        return Some(format!(
            "{} is slow to answer the ClientHello: p99 {} s, max {} s.",
            name(&sv.server),
            secs(x.p99),
            secs(x.max)
        ));
    }
    let (sv, x) = worst(|sv| sv.tcp_rtt_ms.as_ref())?;
    Some(format!(
        "The TCP round trip to {} is slow: p99 {} s, max {} s.",
        name(&sv.server),
        secs(x.p99),
        secs(x.max)
    ))
}

/// The problems chosen for a section, each with its connections counted, some of their
/// streams, and one example connection (a bounded number of them, whatever the capture).
pub(super) type Groups = BTreeMap<(String, String), Group>;

pub(super) fn group(r: &Report, all: bool, chosen: &[(String, String)]) -> io::Result<Groups> {
    let mut groups = Groups::new();
    for c in r.listed(all) {
        let c = c?;
        let key = (
            c.verdict.as_str().to_string(),
            super::words::endpoint(&c.server_ip, c.server_port),
        );
        match groups.get_mut(&key) {
            None if !chosen.contains(&key) => {}
            Some(g) => {
                g.count += 1;
                if g.streams.len() < 20 {
                    g.streams.push(c.stream);
                }
            }
            None => {
                let stream = c.stream;
                groups.insert(
                    key,
                    Group {
                        count: 1,
                        example: c,
                        streams: vec![stream],
                    },
                );
            }
        }
    }
    Ok(groups)
}

pub fn render(r: &Report, o: &RenderOptions, w: &mut dyn Write) -> io::Result<()> {
    let max_sections = o.max_problems();
    let (chosen, left_out, left_out_connections) = chosen(r, o.all, max_sections);
    let groups = group(r, o.all, &chosen)?;
    writeln!(w, "## tlsdiag: TLS handshake findings\n")?;
    writeln!(w, "**{}**\n", headline(r, &groups, true))?;
    redaction_note(r, w)?;
    capture_section(r, w)?;
    verdicts_section(r, max_sections, w)?;
    for ((verdict, server), g) in &groups {
        problem_section(verdict, server, g, w)?;
    }
    if left_out > 0 {
        writeln!(
            w,
            "\n{left_out} other problem(s) ({left_out_connections} connection(s)) have no section: \
             the {max_sections} biggest have one; `--format json` lists every connection."
        )?;
    }
    if !r.warnings.is_empty() {
        writeln!(w, "\n### Warnings\n")?;
        for x in &r.warnings {
            writeln!(w, "- {}", cell(&crate::escape::text(x)))?;
        }
    }
    Ok(())
}

/// Says so when the report is redacted.
fn redaction_note(r: &Report, w: &mut dyn Write) -> io::Result<()> {
    if r.redacted() {
        writeln!(w, "{}\n", super::redaction_line(r.names_kept()))?;
    }
    Ok(())
}

/// The files read, the time they span, the capture point.
fn capture_section(r: &Report, w: &mut dyn Write) -> io::Result<()> {
    let s = &r.summary;
    writeln!(w, "### Capture\n")?;
    // Several files: numbered, for the frames written file:frame.
    let several = r.captures.len() > 1;
    let (head, rule) = if several {
        (
            "| # | file | format | packets | link types |",
            "|---:|---|---|---|---|",
        )
    } else {
        (
            "| file | format | packets | link types |",
            "|---|---|---|---|",
        )
    };
    writeln!(w, "{head}\n{rule}")?;
    for (i, c) in r.captures.iter().enumerate() {
        let links: Vec<String> = c
            .link_types
            .iter()
            .map(|(lt, _)| linktype_name(*lt))
            .collect();
        if several {
            write!(w, "| {i} ")?;
        }
        writeln!(
            w,
            "| {} | {} | {} | {} |",
            cell(&crate::escape::text(&c.path)),
            c.format.map(|f| f.to_string()).unwrap_or_default(),
            c.packets,
            cell(&links.join(", "))
        )?;
    }
    if several {
        writeln!(
            w,
            "\nFrames are written `file:frame`, the file numbered as in the table."
        )?;
    }
    if let (Some(a), Some(b)) = (&s.first_time, &s.last_time) {
        writeln!(w, "\nSpan: {a} to {b} ({:.1} s).", s.span_s)?;
    }
    writeln!(
        w,
        "Capture point: **{} side** ({}: {}).\n",
        r.vantage.side,
        r.vantage.decided_by,
        cell(&r.vantage.evidence)
    )
}

/// Verdict counts, and the busiest servers with theirs (the rest summed in one row).
fn verdicts_section(r: &Report, max_servers: usize, w: &mut dyn Write) -> io::Result<()> {
    let s = &r.summary;
    // No connection: the headline says why, and empty tables would say nothing more.
    if s.verdicts.is_empty() && s.servers.is_empty() && s.unlisted_server_connections == 0 {
        return Ok(());
    }
    writeln!(w, "### Verdicts\n")?;
    writeln!(w, "| verdict | connections |")?;
    writeln!(w, "|---|---|")?;
    for (v, n) in &s.verdicts {
        writeln!(w, "| `{v}` | {n} |")?;
    }
    writeln!(w, "\n### Servers\n")?;
    writeln!(
        w,
        "| server | connections | verdicts | TCP round trip ms (p50/p90/p99/max) | ServerHello \
         delay ms (p50/p90/p99/max) |"
    )?;
    writeln!(w, "|---|---|---|---|---|")?;
    for sv in s.servers.iter().take(max_servers) {
        let d: Vec<String> = sv
            .verdicts
            .iter()
            .map(|(v, n)| format!("{n} `{v}`"))
            .collect();
        writeln!(
            w,
            "| {} | {} | {} | {} | {} |",
            cell(&sv.server),
            sv.connections,
            d.join(", "),
            super::words::spread(sv.tcp_rtt_ms.as_ref()),
            super::words::spread(sv.server_hello_delay_ms.as_ref())
        )?;
    }
    if let Some(rest) = s.servers.get(max_servers..).filter(|r| !r.is_empty()) {
        writeln!(
            w,
            "| {} more servers | {} | | | |",
            rest.len(),
            rest.iter().map(|sv| sv.connections).sum::<u64>()
        )?;
    }
    if s.unlisted_server_connections > 0 {
        writeln!(
            w,
            "| any other server | {} | not listed: more than {} servers | | |",
            s.unlisted_server_connections,
            s.servers.len()
        )?;
    }
    Ok(())
}

/// One problem (verdict, server): its streams, an example explained, its ladder.
fn problem_section(verdict: &str, server: &str, g: &Group, w: &mut dyn Write) -> io::Result<()> {
    let ex = &g.example;
    writeln!(
        w,
        "\n### `{verdict}`: {} connection(s) to {}\n",
        g.count,
        cell(server)
    )?;
    let streams: Vec<String> = g.streams.iter().map(u64::to_string).collect();
    let more = if g.count > g.streams.len() as u64 {
        ", ..."
    } else {
        ""
    };
    writeln!(w, "Streams: {}{more}.\n", streams.join(", "))?;
    writeln!(
        w,
        "Example, stream {}: {}.\n",
        ex.stream,
        cell(&ex.explanation)
    )?;
    let lines = super::tls_lines::tls_lines(ex);
    for (label, line) in &lines {
        writeln!(w, "- **{label}:** {}", cell(line))?;
    }
    if !lines.is_empty() {
        writeln!(w)?;
    }
    writeln!(
        w,
        "**Next step ({} side):** {}\n",
        ex.vantage,
        cell(&ex.next_step)
    )?;
    writeln!(w, "Wireshark: `tcp.stream eq {}`\n", ex.stream)?;
    if ex.timeline.is_empty() {
        return Ok(());
    }
    writeln!(w, "| frame | s into the connection | direction | event |")?;
    writeln!(w, "|---:|---:|:---:|---|")?;
    for e in ex.timeline.iter().take(MAX_LADDER_ROWS) {
        let dir = match &*e.dir {
            "->" => "client → server",
            "<-" => "client ← server",
            "!" => "ICMP",
            _ => "",
        };
        writeln!(
            w,
            "| {} | {:.6} | {dir} | {} |",
            super::words::frame_at(e.frame, e.file),
            e.t,
            cell(&e.event)
        )?;
    }
    if ex.events_not_kept > 0 && ex.timeline.len() < MAX_LADDER_ROWS {
        writeln!(
            w,
            "| {} | {:.6} |  | {} later events not kept |",
            ex.last_frame, ex.duration_s, ex.events_not_kept
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_cannot_break_tables() {
        assert_eq!(cell("a|b`c\nd"), "a\\|b\\`c d");
    }

    #[test]
    fn a_hash_before_a_number_cannot_become_an_issue_link() {
        assert_eq!(
            cell("retransmission #12, C# #x"),
            "retransmission #<!-- -->12, C\\# \\#x"
        );
    }
}
