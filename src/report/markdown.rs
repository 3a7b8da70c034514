//! Markdown: a GitHub-flavoured summary fit to paste into a support ticket. A headline, the
//! capture facts, counts, the per-server rollup, then one section per distinct problem with an
//! example connection's timeline and the Wireshark filter to see it.

use super::RenderOptions;
use crate::decode::linktype_name;
use crate::model::{Connection, Report};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Escapes text for a Markdown table cell or paragraph.
pub fn cell(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
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

fn headline(r: &Report) -> String {
    let s = &r.summary;
    if s.connections == 0 {
        return "No TCP connections in the capture.".into();
    }
    // The most common failure to the busiest failing server.
    let mut groups: BTreeMap<(String, &'static str), u64> = BTreeMap::new();
    for c in r.connections.iter().filter(|c| c.verdict.is_failure()) {
        *groups
            .entry((
                super::text::endpoint(&c.server_ip, c.server_port),
                c.verdict.as_str(),
            ))
            .or_default() += 1;
    }
    let Some(((server, verdict), n)) = groups.iter().max_by_key(|(_, n)| **n) else {
        return format!(
            "All {} connection(s) completed their handshake or carried no TLS.",
            s.connections
        );
    };
    let to_server = r
        .connections
        .iter()
        .filter(|c| super::text::endpoint(&c.server_ip, c.server_port) == *server)
        .count();
    let example = r.connections.iter().find(|c| {
        c.verdict.as_str() == *verdict
            && super::text::endpoint(&c.server_ip, c.server_port) == *server
    });
    let mut h = format!(
        "{n} of {to_server} connection(s) to {} ended in `{verdict}`",
        cell(server)
    );
    if let Some(c) = example {
        if let Some(g) = c.gave_up_after_s {
            h.push_str(&format!("; the client gave up after {g:.1} s"));
            if let Some(m) = &c.timeout_match {
                h.push_str(&format!(", {}", cell(m)));
            }
        }
    }
    h.push('.');
    h
}

pub fn render(r: &Report, o: &RenderOptions) -> String {
    let mut out = String::new();
    let s = &r.summary;
    let _ = writeln!(out, "## tlsdiag: TLS handshake findings\n");
    let _ = writeln!(out, "**{}**\n", headline(r));
    let _ = writeln!(out, "### Capture\n");
    let _ = writeln!(out, "| file | format | packets | link types |");
    let _ = writeln!(out, "|---|---|---|---|");
    for c in &r.captures {
        let links: Vec<String> = c
            .link_types
            .iter()
            .map(|(lt, _)| linktype_name(*lt))
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            cell(&c.path),
            c.format.map(|f| f.to_string()).unwrap_or_default(),
            c.packets,
            cell(&links.join(", "))
        );
    }
    if let (Some(a), Some(b)) = (&s.first_time, &s.last_time) {
        let _ = writeln!(out, "\nSpan: {a} to {b} ({:.1} s).", s.span_s);
    }
    let _ = writeln!(
        out,
        "Capture point: **{} side** ({}: {}).\n",
        r.vantage.side,
        r.vantage.decided_by,
        cell(&r.vantage.evidence)
    );
    let _ = writeln!(out, "### Verdicts\n");
    let _ = writeln!(out, "| verdict | connections |");
    let _ = writeln!(out, "|---|---|");
    for (v, n) in &s.verdicts {
        let _ = writeln!(out, "| `{v}` | {n} |");
    }
    let _ = writeln!(out, "\n### Servers\n");
    let _ = writeln!(out, "| server | connections | verdicts |");
    let _ = writeln!(out, "|---|---|---|");
    for sv in &s.servers {
        let d: Vec<String> = sv
            .verdicts
            .iter()
            .map(|(v, n)| format!("{n} `{v}`"))
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            cell(&sv.server),
            sv.connections,
            d.join(", ")
        );
    }
    // One section per distinct problem.
    let mut groups: BTreeMap<(&'static str, String), Vec<&Connection>> = BTreeMap::new();
    for c in r
        .connections
        .iter()
        .filter(|c| o.all || c.verdict.is_failure())
    {
        groups
            .entry((
                c.verdict.as_str(),
                super::text::endpoint(&c.server_ip, c.server_port),
            ))
            .or_default()
            .push(c);
    }
    for ((verdict, server), conns) in &groups {
        let Some(ex) = conns.first() else { continue };
        let _ = writeln!(
            out,
            "\n### `{verdict}`: {} connection(s) to {}\n",
            conns.len(),
            cell(server)
        );
        let streams: Vec<String> = conns
            .iter()
            .take(20)
            .map(|c| c.stream.to_string())
            .collect();
        let _ = writeln!(
            out,
            "Streams: {}{}.\n",
            streams.join(", "),
            if conns.len() > 20 { ", ..." } else { "" }
        );
        let _ = writeln!(
            out,
            "Example, stream {}: {}.\n",
            ex.stream,
            cell(&ex.explanation)
        );
        let _ = writeln!(
            out,
            "**Next step ({} side):** {}\n",
            ex.vantage,
            cell(&ex.next_step)
        );
        let _ = writeln!(out, "Wireshark: `tcp.stream eq {}`\n", ex.stream);
        if !ex.timeline.is_empty() {
            let _ = writeln!(out, "| frame | time (s) | dir | event |");
            let _ = writeln!(out, "|---:|---:|:---:|---|");
            for e in ex.timeline.iter().take(40) {
                let _ = writeln!(
                    out,
                    "| {} | {:.6} | {} | {} |",
                    e.frame,
                    e.t,
                    match e.dir.as_str() {
                        "->" => "client → server",
                        "<-" => "client ← server",
                        "!" => "ICMP",
                        _ => "",
                    },
                    cell(&e.event)
                );
            }
        }
    }
    if !r.warnings.is_empty() {
        let _ = writeln!(out, "\n### Warnings\n");
        for w in &r.warnings {
            let _ = writeln!(out, "- {}", cell(&crate::escape::text(w)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_cannot_break_tables() {
        assert_eq!(cell("a|b`c\nd"), "a\\|b\\`c d");
    }
}
