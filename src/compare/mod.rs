//! Two captures of the same connections, one near the client (gateway) and one near the server
//! (backend): which packets crossed the path between them and which vanished.
//!
//! ```text
//! analyze (each side, packets kept) -> sides -> match connections -> clock offset
//!   -> per packet: seen on both sides | lost between | appeared on the way -> pair verdict
//! ```
//!
//! Connections are matched by addresses, ports and the client's initial sequence number; when
//! NAT rewrote the addresses, by the initial sequence numbers and the SYN's TCP timestamp,
//! which NAT leaves alone; when a firewall rewrote the sequence numbers, by the SYN's TCP
//! timestamp and the server port. Packets are compared in stream offsets relative to each
//! sender's first sequence number, so rewritten sequence numbers do not matter there either.
//!
//! The rooms, in pipeline order: [`matching`] pairs the connections, [`clock`] estimates the
//! offset between the captures' clocks, [`fate`] follows each packet across the path, and
//! [`verdict`] judges each pair and words it; [`redact`] redacts the whole result when asked.
//! This module runs them and owns the result types ([`Comparison`]), which `report::compare`
//! renders.

mod clock;
mod fate;
mod matching;
mod redact;
mod verdict;

pub use clock::Clock;
pub use verdict::PairVerdict;

use crate::analysis::Report;
use crate::capture::{CaptureError, Nanos};
use crate::model::{Connection, Tool, Trace, TraceKind};
use crate::model::{Side, VerdictCode};
use crate::Options;
use fate::{Axis, Crossed, Timing};
use matching::{How, Match};
use serde::Serialize;
use std::collections::BTreeMap;

/// What to compare.
#[derive(Debug, Clone, Default)]
pub struct CompareOptions {
    /// Files of the capture taken near the client (gateway), in order.
    pub client_side: Vec<String>,
    /// Files of the capture taken near the server (backend), in order.
    pub server_side: Vec<String>,
    /// The sides are as given (`--client-side` / `--server-side`); otherwise they are
    /// inferred and swapped when the evidence says so.
    pub sides_given: bool,
    /// Filters and limits, as for a single capture; its `redact` redacts the comparison
    /// (one mapping for both captures; file paths become `capture N`, N counting the
    /// client-side files, then the server-side ones, as given).
    pub analysis: Options,
}

/// One side's capture.
#[derive(Debug, Clone, Serialize)]
pub struct CaptureSide {
    pub files: Vec<String>,
    /// How this capture was placed on this side.
    pub decided_by: String,
    pub connections: u64,
    pub first_time: Option<String>,
    pub last_time: Option<String>,
    pub warnings: Vec<String>,
}

/// A connection as one capture saw it.
#[derive(Debug, Clone, Serialize)]
pub struct PairEnd {
    pub stream: u64,
    pub file: Option<usize>,
    pub client: String,
    pub server: String,
    /// The single-capture verdict on this side.
    pub verdict: VerdictCode,
    pub first_frame: u64,
    pub last_frame: u64,
    pub start_time: String,
}

/// A packet seen on one side only.
#[derive(Debug, Clone, Serialize)]
pub struct OneSided {
    /// Frame in the capture that saw it.
    pub frame: u64,
    /// Its input file, when that side has several.
    pub file: Option<usize>,
    /// Seconds since the pair's first packet (client-side clock).
    pub t: f64,
    pub event: String,
}

/// One row of the two-column ladder.
#[derive(Debug, Clone, Serialize)]
pub struct LadderRow {
    /// Seconds since the pair's first packet, on the client side's clock.
    pub t: f64,
    /// `->` client to server, `<-` server to client.
    pub dir: &'static str,
    pub event: String,
    pub client_frame: Option<u64>,
    pub server_frame: Option<u64>,
    /// Input file index of each frame, when that side has several files (rotation).
    pub client_file: Option<usize>,
    pub server_file: Option<usize>,
    /// `both`, `lost` (sent, never arrived), `appeared` (arrived, never sent as far as the
    /// sender's capture shows) or `unknown` (outside the other capture).
    pub status: &'static str,
}

/// Two captures of one connection, or one capture of a connection the other should have seen.
#[derive(Debug, Clone, Serialize)]
pub struct Pair {
    pub verdict: PairVerdict,
    pub explanation: String,
    pub next_step: String,
    pub client_side: Option<PairEnd>,
    pub server_side: Option<PairEnd>,
    /// How the two were recognised as one connection.
    pub matched_by: Option<String>,
    /// Address translation between the capture points, when the 4-tuples differ.
    pub nat: Option<String>,
    pub sni: Option<String>,
    /// Smallest one-way delays seen on this connection, in milliseconds.
    pub delay_c2s_ms: Option<f64>,
    pub delay_s2c_ms: Option<f64>,
    pub lost_c2s: Vec<OneSided>,
    pub lost_s2c: Vec<OneSided>,
    /// Packets that arrived on one side without having been sent from the other's.
    pub appeared: Vec<OneSided>,
    pub ladder: Vec<LadderRow>,
}

/// A connection seen on one side only, and why it probably was.
#[derive(Debug, Clone, Serialize)]
pub struct Unmatched {
    pub side: Side,
    pub conn: PairEnd,
    pub reason: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CompareSummary {
    pub pairs: u64,
    pub failed: u64,
    pub verdicts: BTreeMap<String, u64>,
    pub matched: u64,
    pub matched_through_nat: u64,
    pub unmatched_client_side: u64,
    pub unmatched_server_side: u64,
}

/// The whole comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub schema_version: u32,
    pub tool: Tool,
    /// Addresses, file paths and (unless kept) names were replaced.
    pub redacted: bool,
    /// Redacted with names kept.
    #[serde(skip)]
    pub names_kept: bool,
    pub client_side: CaptureSide,
    pub server_side: CaptureSide,
    pub clock: Clock,
    pub summary: CompareSummary,
    pub pairs: Vec<Pair>,
    pub unmatched: Vec<Unmatched>,
    pub warnings: Vec<String>,
}

/// Compares a client-side and a server-side capture.
pub fn compare(o: &CompareOptions) -> Result<Comparison, CaptureError> {
    let mut opts = o.analysis.clone();
    opts.trace = true;
    // Matching needs the real addresses; the result is redacted as a whole.
    let redaction = opts.redact.take();
    let a = crate::analyze(&o.client_side, &opts)?;
    let b = crate::analyze(&o.server_side, &opts)?;
    let mut warnings = Vec::new();
    let sides = Sides::place(o, &a, &b, &mut warnings);
    let matches = matching::match_connections(&sides.client, &sides.server);
    let clock = clock::estimate_offset(&sides.client, &sides.server, &matches);
    let at = Timing {
        offset: clock.offset_ns(),
        client_span: span(sides.client_report),
        server_span: span(sides.server_report),
    };
    let (pairs, unmatched) = pair_all(&sides, &matches, &at);
    let summary = summarise(&pairs, &unmatched, matches.len());
    if clock.offset_s.is_none() && !pairs.is_empty() {
        warnings.push("no packet was seen on both sides: the clock offset is unknown, so losses are judged without timing".into());
    }
    let mut c = Comparison {
        schema_version: 1,
        tool: Tool::default(),
        redacted: false,
        names_kept: false,
        client_side: capture_side(
            sides.client_report,
            sides.client_files,
            sides.client_decided,
        ),
        server_side: capture_side(
            sides.server_report,
            sides.server_files,
            sides.server_decided,
        ),
        clock,
        summary,
        pairs,
        unmatched,
        warnings,
    };
    if let Some(how) = redaction {
        let given: Vec<String> = o
            .client_side
            .iter()
            .chain(&o.server_side)
            .cloned()
            .collect();
        let r = crate::redact::Redactor::new(how.key.as_deref(), how.keep_names);
        redact::comparison(&mut c, &r, &given);
    }
    Ok(c)
}

/// A connection of one side with its packets.
struct Loaded {
    conn: Connection,
    trace: Trace,
}

impl Loaded {
    fn first_ts(&self) -> Option<Nanos> {
        self.trace.packets.first().map(|p| p.ts)
    }
}

fn load(r: &Report, warnings: &mut Vec<String>) -> Vec<Loaded> {
    let mut out = Vec::with_capacity(r.len());
    for i in 0..r.len() {
        match r.traced(i) {
            Ok((conn, Some(trace))) => out.push(Loaded { conn, trace }),
            Ok((_, None)) => {}
            Err(e) => {
                warnings.push(format!("connection {i} could not be read back: {e}"));
                break;
            }
        }
    }
    out
}

/// The two captures, each placed on its side, and how it was placed there.
struct Sides<'r> {
    client: Vec<Loaded>,
    server: Vec<Loaded>,
    client_files: Vec<String>,
    server_files: Vec<String>,
    client_report: &'r Report,
    server_report: &'r Report,
    client_decided: String,
    server_decided: String,
}

impl<'r> Sides<'r> {
    /// `a` and `b` are the analyses of `o.client_side` and `o.server_side`; unless the sides
    /// were given, they are swapped when the inferred capture points say so.
    fn place(
        o: &CompareOptions,
        a: &'r Report,
        b: &'r Report,
        warnings: &mut Vec<String>,
    ) -> Sides<'r> {
        let mut s = Sides {
            client: load(a, warnings),
            server: load(b, warnings),
            client_files: o.client_side.clone(),
            server_files: o.server_side.clone(),
            client_report: a,
            server_report: b,
            client_decided: "given (--client-side)".to_string(),
            server_decided: "given (--server-side)".to_string(),
        };
        if o.sides_given {
            return s;
        }
        let (sa, sb) = (a.vantage.side, b.vantage.side);
        if sa == Side::Server && sb != Side::Server || sb == Side::Client && sa != Side::Client {
            std::mem::swap(&mut s.client, &mut s.server);
            std::mem::swap(&mut s.client_files, &mut s.server_files);
            std::mem::swap(&mut s.client_report, &mut s.server_report);
            warnings.push(
                "the captures were given server side first; they were swapped (use --client-side / --server-side to force)"
                    .into(),
            );
        } else if sa == sb && sa != Side::Unknown {
            warnings.push(format!(
                "both captures look taken on the {sa} side; the first is taken as the client side"
            ));
        }
        s.client_decided = decided(s.client_report);
        s.server_decided = decided(s.server_report);
        s
    }
}

fn decided(r: &Report) -> String {
    match r.vantage.side {
        Side::Unknown => "order given (the capture point could not be inferred)".into(),
        s => format!("inferred: looks {s}-side ({})", r.vantage.evidence),
    }
}

fn capture_side(r: &Report, files: Vec<String>, decided_by: String) -> CaptureSide {
    let mut warnings = r.warnings.clone();
    warnings.truncate(20);
    CaptureSide {
        files,
        decided_by,
        connections: r.len() as u64,
        first_time: r.summary.first_time.clone(),
        last_time: r.summary.last_time.clone(),
        warnings,
    }
}

/// The matched pairs, the client-side connections whose SYNs were dropped on the way, and the
/// rest seen on one side only; pairs in first-frame order (client side, then server side).
fn pair_all(s: &Sides<'_>, matches: &[Match], at: &Timing) -> (Vec<Pair>, Vec<Unmatched>) {
    let mut pairs = Vec::new();
    let mut used_client = vec![false; s.client.len()];
    let mut used_server = vec![false; s.server.len()];
    for m in matches {
        used_client[m.client] = true;
        used_server[m.server] = true;
        let (c, srv) = (&s.client[m.client], &s.server[m.server]);
        pairs.push(pair(c, Some(srv), Some(m.how), at));
    }
    let mut unmatched = Vec::new();
    for (c, _) in s.client.iter().zip(&used_client).filter(|(_, u)| !**u) {
        match client_only(c, at) {
            Some(reason) => unmatched.push(Unmatched {
                side: Side::Client,
                conn: end_of(&c.conn),
                reason,
            }),
            // Its SYNs left the client side and the server side, recording at the time,
            // never saw them: the path dropped them.
            None => pairs.push(pair(c, None, None, at)),
        }
    }
    for (srv, _) in s.server.iter().zip(&used_server).filter(|(_, u)| !**u) {
        unmatched.push(Unmatched {
            side: Side::Server,
            conn: end_of(&srv.conn),
            reason: server_only(srv, at),
        });
    }
    pairs.sort_by_key(|p| {
        (
            p.client_side.as_ref().map_or(u64::MAX, |e| e.first_frame),
            p.server_side.as_ref().map_or(u64::MAX, |e| e.first_frame),
        )
    });
    (pairs, unmatched)
}

/// Why a client-side connection has no match on the server side; None when it is only SYNs
/// sent while the server side was recording, which the path dropped.
fn client_only(c: &Loaded, at: &Timing) -> Option<String> {
    let within = inside(
        c.first_ts().map(|t| t + at.offset.unwrap_or(0)),
        at.server_span,
    );
    let syn_only = c.trace.packets.iter().all(|p| p.from_client)
        && c.trace.packets.iter().any(|p| p.kind == TraceKind::Syn);
    if within && syn_only {
        return None;
    }
    Some(if !within && at.server_span.is_some() {
        "outside the server-side capture's time span".to_string()
    } else if c.trace.client_isn.is_none() {
        "began before the capture (no SYN) and no connection on the server side has the same addresses".to_string()
    } else {
        "no connection on the server side has its addresses, initial sequence number or TCP timestamp: another destination, a capture filter, or a proxy that terminates TCP in between".to_string()
    })
}

/// Why a server-side connection has no match on the client side.
fn server_only(s: &Loaded, at: &Timing) -> String {
    let within = inside(
        s.first_ts().map(|t| t - at.offset.unwrap_or(0)),
        at.client_span,
    );
    if !within && at.client_span.is_some() {
        "outside the client-side capture's time span".to_string()
    } else {
        "not seen on the client side: another client, or a path that does not pass the client-side capture point".to_string()
    }
}

/// Counts per verdict and per kind of match; `matched` pairs came from both captures.
fn summarise(pairs: &[Pair], unmatched: &[Unmatched], matched: usize) -> CompareSummary {
    let mut summary = CompareSummary {
        matched: matched as u64,
        // Only a matched pair has both 4-tuples, so only it can have gone through NAT.
        matched_through_nat: pairs.iter().filter(|p| p.nat.is_some()).count() as u64,
        ..CompareSummary::default()
    };
    for p in pairs {
        summary.pairs += 1;
        if p.verdict.is_failure() {
            summary.failed += 1;
        }
        *summary
            .verdicts
            .entry(p.verdict.as_str().into())
            .or_default() += 1;
    }
    summary.unmatched_client_side =
        unmatched.iter().filter(|u| u.side == Side::Client).count() as u64;
    summary.unmatched_server_side =
        unmatched.iter().filter(|u| u.side == Side::Server).count() as u64;
    summary
}

/// `t` falls within the capture span `w`.
fn inside(t: Option<Nanos>, w: Option<(Nanos, Nanos)>) -> bool {
    matches!((t, w), (Some(t), Some((a, e))) if t >= a && t <= e)
}

/// First and last packet times of a capture.
fn span(r: &Report) -> Option<(Nanos, Nanos)> {
    let first = r.captures.iter().filter_map(|c| c.first_ts).min()?;
    let last = r.captures.iter().filter_map(|c| c.last_ts).max()?;
    Some((first, last))
}

/// `ip:port`, with IPv6 addresses in brackets: how the comparison names an endpoint.
fn endpoint(ip: &str, port: u16) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

fn end_of(c: &Connection) -> PairEnd {
    PairEnd {
        stream: c.stream,
        file: c.file,
        client: endpoint(&c.client_ip, c.client_port),
        server: endpoint(&c.server_ip, c.server_port),
        verdict: c.verdict,
        first_frame: c.first_frame,
        last_frame: c.last_frame,
        start_time: c.start_time.clone(),
    }
}

/// One pair: per-packet fates both ways, then the verdict. `s` is None for a client-side
/// connection the server side never saw.
fn pair(c: &Loaded, s: Option<&Loaded>, how: Option<How>, at: &Timing) -> Pair {
    let empty = Trace::default();
    let st = s.map_or(&empty, |s| &s.trace);
    let x = Crossed::new(&c.trace, st, at);
    // Frame numbers restart in each file of a rotated capture: say which file when it matters.
    let s_multi = s.is_some_and(|s| s.conn.file.is_some());
    let axis = Axis::new(&c.trace, st, at, c.conn.file.is_some(), s_multi);
    let ways = x.ways(&axis);
    let ladder = fate::ladder(&ways, &axis);
    let facts = verdict::PairFacts {
        x: &x,
        server_seen: s.is_some(),
        appeared_rst: &ladder.appeared_rst,
        client_verdict: c.conn.verdict,
        server_verdict: s.map(|s| s.conn.verdict),
        client_alert: c
            .conn
            .alert
            .as_ref()
            .filter(|a| a.sender == "client" && !a.inferred)
            .is_some(),
    };
    let (verdict, explanation, next_step) = verdict::judge(&facts);
    Pair {
        verdict,
        explanation,
        next_step,
        client_side: Some(end_of(&c.conn)),
        server_side: s.map(|s| end_of(&s.conn)),
        matched_by: how.map(|h| h.text().to_string()),
        nat: s.and_then(|s| matching::nat(&c.conn, &s.conn)),
        sni: c.conn.sni.clone(),
        // Without an offset the two clocks cannot be compared.
        delay_c2s_ms: at.offset.and(fate::delay(&ways[0])),
        delay_s2c_ms: at.offset.and(fate::delay(&ways[1])),
        lost_c2s: fate::lost(&x.c_sent, &x.fwd, &axis, true),
        lost_s2c: fate::lost(&x.s_sent, &x.back, &axis, false),
        appeared: ladder.appeared,
        ladder: ladder.rows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_endpoints_are_bracketed() {
        assert_eq!(endpoint("10.0.0.1", 443), "10.0.0.1:443");
        assert_eq!(endpoint("2001:db8::1", 443), "[2001:db8::1]:443");
    }

    #[test]
    fn inside_needs_a_time_and_a_span() {
        assert!(inside(Some(5), Some((5, 9))));
        assert!(inside(Some(9), Some((5, 9))));
        assert!(!inside(Some(10), Some((5, 9))));
        assert!(!inside(None, Some((5, 9))));
        assert!(!inside(Some(5), None));
    }
}
