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

use crate::analysis::Report;
use crate::capture::{CaptureError, Nanos};
use crate::diagnose::verdict::{Side, VerdictCode};
use crate::model::{Connection, Tool, Trace, TraceKind, TracePacket};
use crate::Options;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

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
    /// Filters and limits, as for a single capture.
    pub analysis: Options,
}

/// Where a pair's failure happened, in the style of the single-capture verdicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PairVerdict {
    /// The handshake completed; anything lost on the way was recovered.
    Ok,
    /// Packets of the client left the client side and never reached the server side.
    DroppedClientToServer,
    /// Packets of the server left the server side and never reached the client side.
    DroppedServerToClient,
    /// The ClientHello reached the server, which never answered.
    ServerSilent,
    /// The server's packets reached the client, which did not go on.
    ClientSilent,
    /// A reset arrived that the endpoint whose address it carries never sent.
    ResetInPath,
    /// The server ended the handshake (alert, reset, close, not TLS) and that arrived.
    ServerRefused,
    /// The client ended the handshake (alert) after the server's answer arrived.
    ClientRefused,
    /// Not enough on either side to say.
    Inconclusive,
}

impl PairVerdict {
    pub fn as_str(self) -> &'static str {
        match self {
            PairVerdict::Ok => "ok",
            PairVerdict::DroppedClientToServer => "dropped_client_to_server",
            PairVerdict::DroppedServerToClient => "dropped_server_to_client",
            PairVerdict::ServerSilent => "server_silent",
            PairVerdict::ClientSilent => "client_silent",
            PairVerdict::ResetInPath => "reset_in_path",
            PairVerdict::ServerRefused => "server_refused",
            PairVerdict::ClientRefused => "client_refused",
            PairVerdict::Inconclusive => "inconclusive",
        }
    }

    pub fn is_failure(self) -> bool {
        !matches!(self, PairVerdict::Ok)
    }

    /// Severity for ordering headlines: path problems first.
    pub fn rank(self) -> u8 {
        match self {
            PairVerdict::DroppedClientToServer => 0,
            PairVerdict::DroppedServerToClient => 1,
            PairVerdict::ResetInPath => 2,
            PairVerdict::ServerSilent => 3,
            PairVerdict::ServerRefused => 4,
            PairVerdict::ClientSilent => 5,
            PairVerdict::ClientRefused => 6,
            PairVerdict::Inconclusive => 7,
            PairVerdict::Ok => 8,
        }
    }
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

/// The clock offset between the captures.
#[derive(Debug, Clone, Serialize)]
pub struct Clock {
    /// Server-side clock minus client-side clock, in seconds (None: nothing to estimate from).
    pub offset_s: Option<f64>,
    pub method: String,
    /// Packets seen on both sides used for the estimate, per direction.
    pub samples_c2s: u64,
    pub samples_s2c: u64,
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
    pub client_side: CaptureSide,
    pub server_side: CaptureSide,
    pub clock: Clock,
    pub summary: CompareSummary,
    pub pairs: Vec<Pair>,
    pub unmatched: Vec<Unmatched>,
    pub warnings: Vec<String>,
}

/// Slack when deciding that a packet arrived after it was sent, on top of the estimated
/// offset (clock jitter between two hosts' captures).
const SLACK: Nanos = 5_000_000;
/// Ladder rows kept per pair.
const LADDER_MAX: usize = 64;
/// One-sided packets listed per pair and direction.
const LIST_MAX: usize = 16;

/// Compares a client-side and a server-side capture.
pub fn compare(o: &CompareOptions) -> Result<Comparison, CaptureError> {
    let mut opts = o.analysis.clone();
    opts.trace = true;
    let a = crate::analyze(&o.client_side, &opts)?;
    let b = crate::analyze(&o.server_side, &opts)?;
    let mut warnings = Vec::new();
    let (mut client, mut server) = (load(&a, &mut warnings), load(&b, &mut warnings));
    let (mut cfiles, mut sfiles) = (o.client_side.clone(), o.server_side.clone());
    let (mut crep, mut srep) = (&a, &b);
    let (decided_c, decided_s);
    if o.sides_given {
        decided_c = "given (--client-side)".to_string();
        decided_s = "given (--server-side)".to_string();
    } else {
        let (sa, sb) = (a.vantage.side, b.vantage.side);
        if sa == Side::Server && sb != Side::Server || sb == Side::Client && sa != Side::Client {
            std::mem::swap(&mut client, &mut server);
            std::mem::swap(&mut cfiles, &mut sfiles);
            std::mem::swap(&mut crep, &mut srep);
            warnings.push(
                "the captures were given server side first; they were swapped (use --client-side / --server-side to force)"
                    .into(),
            );
        } else if sa == sb && sa != Side::Unknown {
            warnings.push(format!(
                "both captures look taken on the {sa} side; the first is taken as the client side"
            ));
        }
        decided_c = decided(crep);
        decided_s = decided(srep);
    }

    let matches = match_connections(&client, &server);
    let clock = estimate_offset(&client, &server, &matches);
    let offset = clock.offset_ns();
    let sspan = span(srep);
    let cspan = span(crep);

    let mut pairs = Vec::new();
    let mut summary = CompareSummary::default();
    let mut used_server = vec![false; server.len()];
    let mut used_client = vec![false; client.len()];
    for m in &matches {
        used_client[m.client] = true;
        used_server[m.server] = true;
        let p = pair(
            &client[m.client],
            Some(&server[m.server]),
            Some(m.how),
            offset,
            sspan,
            cspan,
        );
        summary.matched += 1;
        if p.nat.is_some() {
            summary.matched_through_nat += 1;
        }
        pairs.push(p);
    }
    let mut unmatched = Vec::new();
    for c in client
        .iter()
        .enumerate()
        .filter(|(i, _)| !used_client[*i])
        .map(|(_, c)| c)
    {
        let within = inside(c.first_ts().map(|t| t + offset.unwrap_or(0)), sspan);
        let syn_only = c.trace.packets.iter().all(|p| p.from_client)
            && c.trace.packets.iter().any(|p| p.kind == TraceKind::Syn);
        if within && syn_only {
            // Its SYNs left the client side and the server side, recording at the time,
            // never saw them: the path dropped them.
            pairs.push(pair(c, None, None, offset, sspan, cspan));
            continue;
        }
        let reason = if !within && sspan.is_some() {
            "outside the server-side capture's time span".to_string()
        } else if c.trace.client_isn.is_none() {
            "began before the capture (no SYN) and no connection on the server side has the same addresses".to_string()
        } else {
            "no connection on the server side has its addresses, initial sequence number or TCP timestamp: another destination, a capture filter, or a proxy that terminates TCP in between".to_string()
        };
        unmatched.push(Unmatched {
            side: Side::Client,
            conn: end_of(&c.conn),
            reason,
        });
    }
    for s in server
        .iter()
        .enumerate()
        .filter(|(i, _)| !used_server[*i])
        .map(|(_, s)| s)
    {
        let within = inside(s.first_ts().map(|t| t - offset.unwrap_or(0)), cspan);
        let reason = if !within && cspan.is_some() {
            "outside the client-side capture's time span".to_string()
        } else {
            "not seen on the client side: another client, or a path that does not pass the client-side capture point".to_string()
        };
        unmatched.push(Unmatched {
            side: Side::Server,
            conn: end_of(&s.conn),
            reason,
        });
    }
    pairs.sort_by_key(|p| {
        (
            p.client_side.as_ref().map_or(u64::MAX, |e| e.first_frame),
            p.server_side.as_ref().map_or(u64::MAX, |e| e.first_frame),
        )
    });
    for p in &pairs {
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
    if clock.offset_s.is_none() && !pairs.is_empty() {
        warnings.push("no packet was seen on both sides: the clock offset is unknown, so losses are judged without timing".into());
    }
    Ok(Comparison {
        schema_version: 1,
        tool: Tool::default(),
        client_side: capture_side(crep, cfiles, decided_c),
        server_side: capture_side(srep, sfiles, decided_s),
        clock,
        summary,
        pairs,
        unmatched,
        warnings,
    })
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

fn end_of(c: &Connection) -> PairEnd {
    PairEnd {
        stream: c.stream,
        file: c.file,
        client: crate::report::text::endpoint(&c.client_ip, c.client_port),
        server: crate::report::text::endpoint(&c.server_ip, c.server_port),
        verdict: c.verdict,
        first_frame: c.first_frame,
        last_frame: c.last_frame,
        start_time: c.start_time.clone(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum How {
    Exact,
    AddressesOnly,
    IsnNat,
    TimestampOnly,
}

impl How {
    fn text(self) -> &'static str {
        match self {
            How::Exact => "addresses, ports and initial sequence number",
            How::AddressesOnly => "addresses and ports (no SYN on one side)",
            How::IsnNat => "initial sequence numbers and TCP timestamps (addresses translated)",
            How::TimestampOnly => {
                "SYN TCP timestamp and server port (sequence numbers rewritten in between)"
            }
        }
    }
}

struct Match {
    client: usize,
    server: usize,
    how: How,
}

type Tuple = (String, u16, String, u16);

fn tuple(c: &Connection) -> Tuple {
    (
        c.client_ip.clone(),
        c.client_port,
        c.server_ip.clone(),
        c.server_port,
    )
}

/// Pairs connections: exact 4-tuple and ISN first, then the NAT-proof keys; each connection
/// is used once, the candidate nearest in start time wins.
fn match_connections(client: &[Loaded], server: &[Loaded]) -> Vec<Match> {
    let mut out = Vec::new();
    let mut used = vec![false; server.len()];
    let mut done = vec![false; client.len()];
    let mut by_tuple: HashMap<Tuple, Vec<usize>> = HashMap::new();
    let mut by_isn: HashMap<u32, Vec<usize>> = HashMap::new();
    let mut by_tsval: HashMap<u32, Vec<usize>> = HashMap::new();
    for (i, s) in server.iter().enumerate() {
        by_tuple.entry(tuple(&s.conn)).or_default().push(i);
        if let Some(isn) = s.trace.client_isn {
            by_isn.entry(isn).or_default().push(i);
        }
        if let Some(ts) = s.trace.syn_tsval.filter(|t| *t != 0) {
            by_tsval.entry(ts).or_default().push(i);
        }
    }
    let candidates = |how: How, c: &Loaded| -> Option<&Vec<usize>> {
        match how {
            How::Exact | How::AddressesOnly => by_tuple.get(&tuple(&c.conn)),
            How::IsnNat => c.trace.client_isn.and_then(|i| by_isn.get(&i)),
            How::TimestampOnly => c.trace.syn_tsval.and_then(|t| by_tsval.get(&t)),
        }
    };
    let fits = |how: How, c: &Loaded, s: &Loaded| -> bool {
        match how {
            How::Exact => c.trace.client_isn.is_some() && c.trace.client_isn == s.trace.client_isn,
            How::IsnNat => {
                agree(c.trace.server_isn, s.trace.server_isn)
                    && agree(c.trace.syn_tsval, s.trace.syn_tsval)
            }
            How::TimestampOnly => {
                c.conn.server_port == s.conn.server_port || c.trace.server_isn.is_none()
            }
            How::AddressesOnly => c.trace.client_isn.is_none() || s.trace.client_isn.is_none(),
        }
    };
    for how in [
        How::Exact,
        How::IsnNat,
        How::TimestampOnly,
        How::AddressesOnly,
    ] {
        for (ci, c) in client.iter().enumerate() {
            if done[ci] {
                continue;
            }
            let t = c.first_ts().unwrap_or(0);
            let Some(list) = candidates(how, c) else {
                continue;
            };
            let best = list
                .iter()
                .copied()
                .filter(|si| !used[*si] && fits(how, c, &server[*si]))
                .min_by_key(|si| server[*si].first_ts().unwrap_or(0).abs_diff(t));
            if let Some(si) = best {
                used[si] = true;
                done[ci] = true;
                out.push(Match {
                    client: ci,
                    server: si,
                    how,
                });
            }
        }
    }
    out
}

/// Equal, or unknown on one side.
fn agree(a: Option<u32>, b: Option<u32>) -> bool {
    match (a, b) {
        (Some(x), Some(y)) => x == y,
        _ => true,
    }
}

/// Packet identity across captures: from the client?, kind and stream offsets.
type Key = (bool, TraceKind, u64, u64);

fn key(p: &TracePacket) -> Key {
    (p.from_client, p.kind, p.start, p.end)
}

impl Clock {
    fn offset_ns(&self) -> Option<Nanos> {
        self.offset_s.map(|s| (s * 1e9).round() as Nanos)
    }
}

/// Offset from packets that occur once on each side of a matched connection: the smallest
/// client-to-server difference is offset + delay, the smallest server-to-client difference is
/// delay - offset; with equal delays both ways, offset = (c2s - s2c) / 2 (as NTP does).
fn estimate_offset(client: &[Loaded], server: &[Loaded], matches: &[Match]) -> Clock {
    let (mut c2s, mut s2c): (Option<Nanos>, Option<Nanos>) = (None, None);
    let (mut n_c2s, mut n_s2c) = (0u64, 0u64);
    for m in matches {
        let (c, s) = (&client[m.client].trace, &server[m.server].trace);
        for (k, pc, ps) in unique_common(c, s) {
            if k.0 {
                let d = ps.ts.saturating_sub(pc.ts);
                c2s = Some(c2s.map_or(d, |x| x.min(d)));
                n_c2s += 1;
            } else {
                let d = pc.ts.saturating_sub(ps.ts);
                s2c = Some(s2c.map_or(d, |x| x.min(d)));
                n_s2c += 1;
            }
        }
    }
    let (offset, method) = match (c2s, s2c) {
        (Some(a), Some(b)) => (
            Some((a - b) / 2),
            "half the difference of the smallest one-way transit each way (equal delays assumed)",
        ),
        (Some(a), None) => (
            Some(a),
            "smallest client-to-server transit (no packet crossed back; delay taken as 0)",
        ),
        (None, Some(b)) => (
            Some(-b),
            "smallest server-to-client transit (no packet crossed forward; delay taken as 0)",
        ),
        (None, None) => (None, "no packet seen on both sides"),
    };
    Clock {
        offset_s: offset.map(|o| o as f64 / 1e9),
        method: method.into(),
        samples_c2s: n_c2s,
        samples_s2c: n_s2c,
    }
}

/// Packets whose key occurs exactly once in each trace.
fn unique_common<'t>(c: &'t Trace, s: &'t Trace) -> Vec<(Key, &'t TracePacket, &'t TracePacket)> {
    // Occurrences on each side and the index of the last one.
    let mut count: HashMap<Key, (u32, u32, usize, usize)> = HashMap::new();
    for (i, p) in c.packets.iter().enumerate() {
        let e = count.entry(key(p)).or_insert((0, 0, 0, 0));
        e.0 += 1;
        e.2 = i;
    }
    for (i, p) in s.packets.iter().enumerate() {
        let e = count.entry(key(p)).or_insert((0, 0, 0, 0));
        e.1 += 1;
        e.3 = i;
    }
    let mut out: Vec<_> = count
        .into_iter()
        .filter(|(_, v)| v.0 == 1 && v.1 == 1)
        .map(|(k, v)| (k, &c.packets[v.2], &s.packets[v.3]))
        .collect();
    out.sort_by_key(|(_, pc, _)| (pc.ts, pc.frame));
    out
}

/// One direction of a pair: what its sender's capture sent, what the receiver's saw, how
/// they cross, and the shifts that put each capture's times on the client side's clock.
struct Way<'a> {
    from_client: bool,
    sent: &'a [&'a TracePacket],
    recv: &'a [&'a TracePacket],
    x: &'a Crossing,
    shift_sent: Nanos,
    shift_recv: Nanos,
    /// The sender's capture span, on the client side's clock.
    sender_window: Option<(Nanos, Nanos)>,
}

/// What happened to one sent packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Both,
    Lost,
    Unknown,
}

/// One direction's packets: for each sent packet, its fate and the first arrival; for each
/// received packet, whether a sent one explains it.
struct Crossing {
    sent: Vec<(Fate, Option<usize>)>,
    explained: Vec<bool>,
}

/// Attributes every received packet to the latest sent packet that could be it (same kind,
/// overlapping bytes, sent before it arrived); sent packets nothing is attributed to were
/// lost, unless the receiving capture was not recording then.
fn cross(
    sent: &[&TracePacket],
    recv: &[&TracePacket],
    to_recv_clock: Option<Nanos>,
    recv_window: Option<(Nanos, Nanos)>,
    recv_cut: bool,
) -> Crossing {
    let mut out = Crossing {
        sent: vec![(Fate::Lost, None); sent.len()],
        explained: vec![false; recv.len()],
    };
    for (ri, r) in recv.iter().enumerate() {
        let cand = sent
            .iter()
            .enumerate()
            .filter(|(_, s)| same_packet(s, r))
            .filter(|(_, s)| {
                to_recv_clock.is_none_or(|o| s.ts.saturating_add(o).saturating_sub(SLACK) <= r.ts)
            })
            .map(|(i, _)| i)
            .next_back();
        if let Some(si) = cand {
            out.explained[ri] = true;
            let e = &mut out.sent[si];
            if e.0 != Fate::Both {
                *e = (Fate::Both, Some(ri));
            }
        }
    }
    let last_recv = recv.last().map(|r| r.ts);
    for (si, s) in sent.iter().enumerate() {
        if out.sent[si].0 == Fate::Both {
            continue;
        }
        let at = s.ts.saturating_add(to_recv_clock.unwrap_or(0));
        let outside = recv_window.is_some_and(|(a, e)| at < a || at > e.saturating_sub(SLACK));
        // The receiving trace stopped keeping packets: later ones are not compared.
        let beyond_cut = recv_cut && last_recv.is_none_or(|l| at > l);
        if outside || beyond_cut {
            out.sent[si].0 = Fate::Unknown;
        }
    }
    out
}

fn same_packet(s: &TracePacket, r: &TracePacket) -> bool {
    s.kind == r.kind
        && match s.kind {
            TraceKind::Data => s.start < r.end && r.start < s.end,
            TraceKind::Ack => s.start == r.start,
            _ => true,
        }
}

fn ms(ns: Nanos) -> f64 {
    (ns as f64 / 1e3).round() / 1e3
}

fn secs(ns: Nanos) -> f64 {
    (ns as f64 / 1e3).round() / 1e6
}

fn frames(list: &[&TracePacket]) -> String {
    let mut v: Vec<String> = list.iter().take(8).map(|p| p.frame.to_string()).collect();
    if list.len() > 8 {
        v.push(format!("… {} more", list.len() - 8));
    }
    v.join(", ")
}

/// One pair: per-packet fates both ways, then the verdict.
fn pair(
    c: &Loaded,
    s: Option<&Loaded>,
    how: Option<How>,
    offset: Option<Nanos>,
    server_window: Option<(Nanos, Nanos)>,
    client_window: Option<(Nanos, Nanos)>,
) -> Pair {
    let empty = Trace::default();
    let st = s.map_or(&empty, |s| &s.trace);
    let ct = &c.trace;
    let (c_sent, s_recv) = (pick(ct, true), pick(st, true));
    let (s_sent, c_recv) = (pick(st, false), pick(ct, false));
    let fwd = cross(
        &c_sent,
        &s_recv,
        offset,
        server_window,
        st.packets_dropped > 0,
    );
    let back = cross(
        &s_sent,
        &c_recv,
        offset.map(|o| -o),
        None,
        ct.packets_dropped > 0,
    );
    let base = ct
        .packets
        .first()
        .map(|p| p.ts)
        .or_else(|| st.packets.first().map(|p| p.ts - offset.unwrap_or(0)))
        .unwrap_or(0);
    let to_client_clock = |ts: Nanos| ts.saturating_sub(offset.unwrap_or(0));
    // Frame numbers restart in each file of a rotated capture: say which file when it matters.
    let (c_multi, s_multi) = (
        c.conn.file.is_some(),
        s.is_some_and(|s| s.conn.file.is_some()),
    );
    let cfile = |p: &TracePacket| c_multi.then_some(p.file);
    let sfile = |p: &TracePacket| s_multi.then_some(p.file);

    // Ladder, on the client side's clock, one direction at a time.
    let mut rows: Vec<(Nanos, LadderRow)> = Vec::new();
    let mut appeared = Vec::new();
    let mut appeared_rst = Vec::new();
    let off = offset.unwrap_or(0);
    let ways = [
        Way {
            from_client: true,
            sent: &c_sent,
            recv: &s_recv,
            x: &fwd,
            shift_sent: 0,
            shift_recv: off,
            sender_window: client_window,
        },
        Way {
            from_client: false,
            sent: &s_sent,
            recv: &c_recv,
            x: &back,
            shift_sent: off,
            shift_recv: 0,
            sender_window: server_window.map(|(a, e)| (a - off, e - off)),
        },
    ];
    for w in &ways {
        // Frames and files as (client side, server side).
        let at = |sent: Option<&TracePacket>, recv: Option<&TracePacket>| {
            let (c, s) = if w.from_client {
                (sent, recv)
            } else {
                (recv, sent)
            };
            (
                c.map(|p| p.frame),
                s.map(|p| p.frame),
                c.and_then(cfile),
                s.and_then(sfile),
            )
        };
        let dir = if w.from_client { "->" } else { "<-" };
        let row = |t: Nanos,
                   p: &TracePacket,
                   ends: (Option<u64>, Option<u64>, Option<usize>, Option<usize>),
                   status| {
            (
                t,
                LadderRow {
                    t: secs(t - base),
                    dir,
                    event: p.label.clone(),
                    client_frame: ends.0,
                    server_frame: ends.1,
                    client_file: ends.2,
                    server_file: ends.3,
                    status,
                },
            )
        };
        for (p, (fate, r)) in w.sent.iter().zip(&w.x.sent) {
            let t = p.ts - w.shift_sent;
            rows.push(row(t, p, at(Some(p), r.map(|r| w.recv[r])), status(*fate)));
        }
        for (p, _) in w.recv.iter().zip(&w.x.explained).filter(|(_, e)| !**e) {
            let t = p.ts - w.shift_recv;
            // Only a packet the sender's capture should have seen leave is one that appeared.
            let unseen = w
                .sender_window
                .is_some_and(|(a, e)| t < a || t > e.saturating_sub(SLACK));
            let status = if unseen { "unknown" } else { "appeared" };
            rows.push(row(t, p, at(None, Some(p)), status));
            if unseen {
                continue;
            }
            let side = if w.from_client { "server" } else { "client" };
            if p.kind == TraceKind::Rst {
                appeared_rst.push(format!("{side}-side frame {}", p.frame));
            }
            appeared.push(OneSided {
                frame: p.frame,
                file: if w.from_client { sfile(p) } else { cfile(p) },
                t: secs(t - base),
                event: format!("{side} side: {}", p.label),
            });
        }
    }
    rows.sort_by_key(|(t, r)| (*t, r.client_frame.or(r.server_frame)));
    let ladder: Vec<LadderRow> = rows.into_iter().take(LADDER_MAX).map(|(_, r)| r).collect();

    let lost = |sent: &[&TracePacket],
                x: &Crossing,
                to_client: &dyn Fn(Nanos) -> Nanos,
                file: &dyn Fn(&TracePacket) -> Option<usize>| {
        sent.iter()
            .enumerate()
            .filter(|(i, _)| x.sent[*i].0 == Fate::Lost)
            .map(|(_, p)| OneSided {
                frame: p.frame,
                file: file(p),
                t: secs(to_client(p.ts) - base),
                event: p.label.clone(),
            })
            .take(LIST_MAX)
            .collect::<Vec<_>>()
    };
    let lost_c2s = lost(&c_sent, &fwd, &|t| t, &cfile);
    let lost_s2c = lost(&s_sent, &back, &to_client_clock, &sfile);

    // One-way delays from this pair's packets seen on both sides.
    let delay = |w: &Way<'_>| {
        w.sent
            .iter()
            .zip(&w.x.sent)
            .filter_map(|(p, (_, r))| {
                r.map(|r| (w.recv[r].ts - w.shift_recv) - (p.ts - w.shift_sent))
            })
            .filter(|d| *d >= -SLACK)
            .min()
            .map(|d| ms(d.max(0)))
    };
    // Without an offset the two clocks cannot be compared.
    let delay_c2s_ms = offset.and(delay(&ways[0]));
    let delay_s2c_ms = offset.and(delay(&ways[1]));

    let facts = PairFacts {
        c_sent: &c_sent,
        s_recv: &s_recv,
        s_sent: &s_sent,
        c_recv: &c_recv,
        fwd: &fwd,
        back: &back,
        server_seen: s.is_some(),
        appeared_rst: &appeared_rst,
        client_verdict: c.conn.verdict,
        server_verdict: s.map(|s| s.conn.verdict),
        client_alert: c
            .conn
            .alert
            .as_ref()
            .filter(|a| a.sender == "client" && !a.inferred)
            .is_some(),
    };
    let (verdict, explanation, next_step) = judge(&facts);
    let nat = s.and_then(|s| {
        let (a, b) = (tuple(&c.conn), tuple(&s.conn));
        (a != b).then(|| {
            format!(
                "{} -> {} on the client side is {} -> {} on the server side",
                crate::report::text::endpoint(&a.0, a.1),
                crate::report::text::endpoint(&a.2, a.3),
                crate::report::text::endpoint(&b.0, b.1),
                crate::report::text::endpoint(&b.2, b.3)
            )
        })
    });
    Pair {
        verdict,
        explanation,
        next_step,
        client_side: Some(end_of(&c.conn)),
        server_side: s.map(|s| end_of(&s.conn)),
        matched_by: how.map(|h| h.text().to_string()),
        nat,
        sni: c.conn.sni.clone(),
        delay_c2s_ms,
        delay_s2c_ms,
        lost_c2s,
        lost_s2c,
        appeared,
        ladder,
    }
}

fn pick(t: &Trace, from_client: bool) -> Vec<&TracePacket> {
    t.packets
        .iter()
        .filter(|p| p.from_client == from_client)
        .collect()
}

fn status(f: Fate) -> &'static str {
    match f {
        Fate::Both => "both",
        Fate::Lost => "lost",
        Fate::Unknown => "unknown",
    }
}

struct PairFacts<'a> {
    c_sent: &'a [&'a TracePacket],
    s_recv: &'a [&'a TracePacket],
    s_sent: &'a [&'a TracePacket],
    c_recv: &'a [&'a TracePacket],
    fwd: &'a Crossing,
    back: &'a Crossing,
    server_seen: bool,
    appeared_rst: &'a [String],
    client_verdict: VerdictCode,
    server_verdict: Option<VerdictCode>,
    client_alert: bool,
}

fn of_kind<'a>(list: &[&'a TracePacket], kind: TraceKind) -> Vec<&'a TracePacket> {
    list.iter().copied().filter(|p| p.kind == kind).collect()
}

/// The sent packets (`sent` is the whole list `x` was computed for) with this fate.
fn fated<'a>(sent: &[&'a TracePacket], x: &Crossing, fate: Fate) -> Vec<&'a TracePacket> {
    sent.iter()
        .zip(&x.sent)
        .filter(|(_, f)| f.0 == fate)
        .map(|(p, _)| *p)
        .collect()
}

/// The pair verdict: the first rule that fits, path problems before endpoint problems.
fn judge(f: &PairFacts<'_>) -> (PairVerdict, String, String) {
    use PairVerdict as V;
    let lost_fwd = fated(f.c_sent, f.fwd, Fate::Lost);
    let lost_back = fated(f.s_sent, f.back, Fate::Lost);
    let c_syn = of_kind(f.c_sent, TraceKind::Syn);
    let c_data = of_kind(f.c_sent, TraceKind::Data);
    let s_data = of_kind(f.s_sent, TraceKind::Data);
    let s_got_data = of_kind(f.s_recv, TraceKind::Data);
    let c_got_data = of_kind(f.c_recv, TraceKind::Data);
    let s_synack = of_kind(f.s_sent, TraceKind::SynAck);
    let c_got_synack = of_kind(f.c_recv, TraceKind::SynAck);
    let s_end = f
        .s_sent
        .iter()
        .find(|p| matches!(p.kind, TraceKind::Rst | TraceKind::Fin));
    let step_path_fwd = "A device between the two capture points drops the client's packets: check the firewalls, IPS/DPI (SNI filtering), security groups, load balancers and MTU of every hop after the client-side capture point and before the server-side one.";
    let step_path_back = "The server's packets are lost on the way back: check the path MTU (ICMP fragmentation-needed filtered, tunnels), asymmetric routing, and firewalls on the return direction between the two capture points.";

    if !f.appeared_rst.is_empty() || f.client_verdict == VerdictCode::MiddleboxReset {
        let what = if f.appeared_rst.is_empty() {
            "the reset the client side received carries a TTL the server's packets never have (the server-side capture has no packet from that moment on, so it cannot confirm)".to_string()
        } else {
            format!(
                "a reset arrived ({}) that the other side's capture never saw sent",
                f.appeared_rst.join(", ")
            )
        };
        return (
            V::ResetInPath,
            format!(
                "{what}: something between the capture points reset the connection in the endpoint's name"
            ),
            "A middlebox (firewall, IPS, load balancer, proxy) resets this connection: find the device between the capture points that sends resets (idle timeouts, SNI or policy rules) and its logs.".into(),
        );
    }
    if !f.server_seen {
        return (
            V::DroppedClientToServer,
            format!(
                "the SYN left the client side {} (client frames {}) and never reached the server side, which was recording at the time",
                crate::diagnose::verdict::times(c_syn.len() as u32),
                frames(&c_syn)
            ),
            step_path_fwd.into(),
        );
    }
    let synack_lost = of_kind(&lost_back, TraceKind::SynAck);
    if !s_synack.is_empty() && c_got_synack.is_empty() && synack_lost.len() == s_synack.len() {
        return (
            V::DroppedServerToClient,
            format!(
                "the server's SYN-ACK left the server side {} (server frames {}) and never reached the client side",
                crate::diagnose::verdict::times(s_synack.len() as u32),
                frames(&s_synack)
            ),
            step_path_back.into(),
        );
    }
    if !c_data.is_empty() && s_got_data.is_empty() {
        let lost = of_kind(&lost_fwd, TraceKind::Data);
        if !lost.is_empty() {
            let what = if c_data.iter().any(|p| p.label.contains("ClientHello")) {
                "the ClientHello"
            } else {
                "the client's data"
            };
            return (
                V::DroppedClientToServer,
                format!(
                    "{what} left the client side {} (client frames {}) and none of it reached the server side, where the TCP handshake had completed",
                    crate::diagnose::verdict::times(lost.len() as u32),
                    frames(&lost)
                ),
                step_path_fwd.into(),
            );
        }
    }
    let s_data_lost = of_kind(&lost_back, TraceKind::Data);
    if !s_data_lost.is_empty() && f.client_verdict.is_failure() {
        let full = s_data.iter().map(|p| p.end - p.start).max().unwrap_or(0);
        let full_lost = s_data_lost
            .iter()
            .filter(|p| p.end - p.start == full)
            .count();
        let mtu = if full_lost > 0
            && full >= 1000
            && c_got_data.iter().all(|p| p.end - p.start < full)
        {
            format!("; every {full}-byte segment vanished while smaller ones arrived, the mark of a path MTU black hole")
        } else {
            String::new()
        };
        return (
            V::DroppedServerToClient,
            format!(
                "{} of the server's {} data segments (server frames {}) never reached the client side{mtu}",
                s_data_lost.len(),
                s_data.len(),
                frames(&s_data_lost)
            ),
            step_path_back.into(),
        );
    }
    let ch_arrived = !s_got_data.is_empty();
    if ch_arrived && s_data.is_empty() {
        if let Some(end) = s_end {
            return (
                V::ServerRefused,
                format!(
                    "the client's first bytes reached the server side (server frame {}) and the server closed the connection without answering ({}, server frame {})",
                    s_got_data[0].frame,
                    end.label,
                    end.frame
                ),
                "The backend itself closed the connection: check the backend service's logs and TLS configuration (listener expecting another protocol, connection limits).".into(),
            );
        }
        return (
            V::ServerSilent,
            format!(
                "the client's first bytes reached the server side (server frame {}) and the server never answered",
                s_got_data[0].frame
            ),
            "The backend received the ClientHello and did not answer: check the backend's TLS service (hung worker, full accept queue, CPU), its logs, and that the port speaks TLS.".into(),
        );
    }
    match f.client_verdict {
        VerdictCode::TlsOk => {
            let note = match (lost_fwd.len(), lost_back.len()) {
                (0, 0) => "every packet sent was seen on both sides".to_string(),
                (a, b) => format!(
                    "the handshake completed; {a} packet(s) to the server and {b} back were lost between the capture points and recovered by retransmission"
                ),
            };
            return (
                V::Ok,
                note,
                "Nothing to do between these capture points.".into(),
            );
        }
        VerdictCode::ServerAlert
        | VerdictCode::ServerReset
        | VerdictCode::NotTls
        | VerdictCode::ServerClosed
        | VerdictCode::TcpRefused => {
            return (
                V::ServerRefused,
                format!(
                    "the server's answer arrived intact (client side: {}): the server itself refused the handshake",
                    f.client_verdict.as_str()
                ),
                "The backend ended the handshake: see the single-capture verdict on either side for why, then the backend's TLS configuration and logs.".into(),
            );
        }
        _ => {}
    }
    if c_data.is_empty() && f.server_verdict.is_some() {
        return (
            V::ClientSilent,
            "the TCP handshake completed on both sides and the client never sent a ClientHello".into(),
            "The client (gateway) opened the connection and sent nothing: check its TLS configuration, its CPU, and whether it expects the server to speak first.".into(),
        );
    }
    if !s_data.is_empty() && s_data_lost.is_empty() {
        if f.client_alert {
            return (
                V::ClientRefused,
                "the server's answer arrived intact and the client refused it with an alert".into(),
                "The client rejected the backend's handshake: check the certificate chain, names and trust store on the client (gateway) side.".into(),
            );
        }
        return (
            V::ClientSilent,
            format!(
                "the server's answer arrived intact ({} segment(s), client frames {}) and the client did not finish the handshake",
                c_got_data.len(),
                frames(&c_got_data)
            ),
            "The client (gateway) received the backend's answer and stopped: check its TLS library, certificate validation, and its own timeout.".into(),
        );
    }
    (
        V::Inconclusive,
        format!(
            "no packet was lost between the capture points as far as both captures show (client side: {}, server side: {})",
            f.client_verdict.as_str(),
            f.server_verdict.map_or("none", |v| v.as_str())
        ),
        "See the single-capture verdicts of each side.".into(),
    )
}
