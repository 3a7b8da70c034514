//! Facts: a settled connection in client/server terms, built once from its packet state.
//!
//! [`summarise`] reads a finished [`Conn`] (flow and TLS state, directions 0/1) and writes one
//! [`Facts`] record: who was client and server, what each sent and when, what the capture
//! leaves uncertain, and the connection's ladder. Everything after it (the verdict rules, the
//! report record, the store) reads only this record, so the packet state can be freed as soon
//! as a connection settles.

pub use super::clock::Ev;
use super::clock::{round6, secs, Ctx};
use super::timeline::timeline;
use crate::capture::{FrameRef, Nanos};
use crate::diagnose::vantage::{self, Clues, Evidence};
use crate::escape;
use crate::flow::{Conn, Dir, Endpoint, EventKind, Sender};
use crate::model::{CertInfo, ClientHelloInfo, Side, TimelineEntry};
use crate::tls::names::{self, Name};
use crate::tls::{TlsFacts, SHORT_ENCRYPTED};
use crate::wire;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// How the client end was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ClientRule {
    /// It sent the SYN.
    #[default]
    Syn,
    /// The other end sent the SYN-ACK.
    Synack,
    /// It sent the ClientHello.
    Clienthello,
    /// An ICMP error quoted its packet.
    IcmpQuote,
    /// Its port looks less like a server's.
    Ports,
}

impl ClientRule {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientRule::Syn => "syn",
            ClientRule::Synack => "synack",
            ClientRule::Clienthello => "clienthello",
            ClientRule::IcmpQuote => "icmp_quote",
            ClientRule::Ports => "ports",
        }
    }
}

/// An ICMP error that quoted the connection.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct IcmpFact {
    pub at: Ev,
    pub icmp_type: u8,
    pub code: u8,
    pub v6: bool,
    pub description: String,
    /// Address that sent the ICMP error.
    pub reporter: String,
    /// Destination/port/admin unreachable (a refusal), as opposed to frag-needed or TTL.
    pub unreachable: bool,
    pub frag_needed: bool,
    /// Next-hop MTU for fragmentation-needed / packet-too-big.
    pub mtu: Option<u32>,
    /// It quotes a packet the client sent.
    pub quotes_client: bool,
}

/// The TLS alert reported: the one that decided the handshake, else the first one seen.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AlertFact {
    pub at: Ev,
    pub from_server: bool,
    /// "fatal" or "warning"; None when encrypted.
    pub level: Option<String>,
    /// RFC name ("handshake_failure"); None when encrypted.
    pub description: Option<String>,
    pub fatal: bool,
    pub encrypted: bool,
    /// Inferred from a short encrypted record followed by a close (TLS 1.3).
    pub inferred: bool,
    /// It ended the handshake (sent before it completed, fatal or encrypted).
    pub decisive: bool,
    /// TLS 1.3: the client's Finished this server alert answered (the mutual-TLS rejection).
    pub answers_finished: Option<Ev>,
    /// A key log opened it.
    pub decrypted: bool,
}

/// The server's stream reached `reached` bytes but only `arrived` of them were captured, in
/// segments no larger than `largest`, below the `client_mss` the client allowed: the
/// full-size segments never arrived while smaller ones did.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SmallSegmentsOnly {
    pub reached: u64,
    pub arrived: u64,
    pub largest: u32,
    pub client_mss: u16,
}

/// Room for TCP options in a full-size segment (timestamps take 12 of the MSS).
const OPTIONS_ROOM: u32 = 40;

/// Holes in the server's stream, each at least a full-size segment, while every segment that
/// arrived was smaller than the client's MSS allows. Exact only without retransmissions
/// (then `payload_bytes` counts distinct bytes).
fn small_segments_only(cdir: &Sender, sdir: &Sender) -> Option<SmallSegmentsOnly> {
    let client_mss = cdir.mss?;
    let full = u32::from(client_mss).checked_sub(OPTIONS_ROOM)?;
    let missing = sdir.max_end.checked_sub(sdir.payload_bytes)?;
    let holes = sdir.reasm.limits.gaps > 0 || sdir.sacked;
    (holes
        && sdir.retransmissions == 0
        && sdir.max_segment > 0
        && sdir.max_segment < full
        && missing >= u64::from(full))
    .then_some(SmallSegmentsOnly {
        reached: sdir.max_end,
        arrived: sdir.payload_bytes,
        largest: sdir.max_segment,
        client_mss,
    })
}

/// Everything known about one connection, in client/server terms: what the verdict rules look
/// at and what the report shows, each fact once.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Facts {
    /// Wireshark's `tcp.stream`.
    pub stream: u64,
    pub client: Endpoint,
    pub server: Endpoint,
    pub client_rule: ClientRule,
    pub first_frame: u64,
    pub last_frame: u64,
    /// Input file of the first packet, when several files make one capture.
    pub file: Option<usize>,
    /// Time of the first packet (nanoseconds since the Unix epoch).
    pub start: Nanos,
    pub duration_s: f64,
    /// Seconds from the connection's first packet to the end of the capture.
    pub capture_end_t: f64,

    /// Neither SYN nor SYN-ACK was captured.
    pub began_midstream: bool,
    /// The connection exists only because an ICMP error quoted it.
    pub icmp_only: bool,
    pub syn_count: u32,
    /// Capture copies of a SYN (`-i any`), not counted in `syn_count`.
    pub syn_copies: u32,
    pub first_syn: Option<Ev>,
    pub last_syn: Option<Ev>,
    pub synack: Option<Ev>,
    /// The client's ACK of the SYN-ACK (the TCP handshake's third packet).
    pub handshake_ack: Option<Ev>,
    pub synack_seen: bool,
    pub established: bool,
    pub icmp: Option<IcmpFact>,

    pub client_payload_bytes: u64,
    pub server_payload_bytes: u64,
    /// First ClientHello transmission, number of transmissions, their frames.
    pub clienthello: Option<Ev>,
    pub clienthello_count: u32,
    /// Capture copies of frames carrying the ClientHello.
    pub clienthello_copies: u32,
    pub clienthello_frames: Vec<u64>,
    pub clienthello_acked: Option<bool>,
    /// The parsed ClientHello the client sent.
    pub hello: Option<ClientHelloInfo>,
    pub certificate: Option<CertInfo>,
    /// What is wrong with the server's certificate.
    pub cert_problems: Vec<super::certificate::CertProblem>,
    /// A key log opened some of the connection's protected records.
    pub decrypted: bool,
    /// Whether the server asked for a client certificate, and what the client sent.
    pub client_certificate: Option<crate::model::ClientCertInfo>,
    pub serverhello_seen: bool,
    pub hello_retry_request: bool,
    #[serde(deserialize_with = "crate::tls::names::deserialize_opt_name")]
    pub tls_version: Option<Name>,
    #[serde(deserialize_with = "crate::tls::names::deserialize_opt_name")]
    pub cipher: Option<Name>,
    /// The application protocol the server chose, escaped.
    pub alpn_selected: Option<String>,
    pub server_first_tls: Option<Ev>,
    pub serverhello: Option<Ev>,
    pub handshake_done: Option<Ev>,
    pub alert: Option<AlertFact>,

    /// First line of what a side sent when it did not speak TLS.
    pub client_non_tls: Option<String>,
    pub server_non_tls: Option<String>,
    pub http_request: Option<String>,
    pub http_status: Option<String>,
    /// Escaped first bytes a side sent when they were not TLS.
    pub client_first_bytes: Option<String>,
    pub server_first_bytes: Option<String>,

    pub client_fin: Option<Ev>,
    pub client_rst: Option<Ev>,
    pub server_fin: Option<Ev>,
    pub server_rst: Option<Ev>,
    /// Why the server's RST was not sent by the server (its TTL differs from the server's
    /// other packets), when it was not.
    pub server_rst_forged: Option<String>,
    /// The client's FIN/RST sits past data never captured (server-side view of a lost hello).
    pub client_seq_jump: Option<u64>,
    pub client_retransmissions: u32,
    pub server_retransmissions: u32,
    pub server_full_size_retransmissions: u32,
    pub server_max_segment: u32,
    /// The client acknowledged everything the server sent.
    pub server_data_acked: bool,
    /// The client reported holes (SACK) in the server's data.
    pub client_sacked: bool,
    /// The server's stream has a hole never filled.
    pub server_gap: bool,
    /// Holes in the server's stream while only small segments arrived (client-side view of
    /// a path-MTU black hole).
    #[serde(default)]
    pub server_small_segments_only: Option<SmallSegmentsOnly>,
    /// From the first ClientHello to the client's first FIN or RST.
    pub gave_up_after_s: Option<f64>,
    /// A known timeout the give-up time matches.
    pub timeout_match: Option<String>,

    /// Facts the capture leaves uncertain (snaplen, gaps, caps, mid-stream start).
    pub uncertain: Vec<String>,
    pub timeline: Vec<TimelineEntry>,
    /// Events left out of the timeline (data after the handshake, long transfers).
    pub events_not_kept: u32,
}

impl Facts {
    /// The TCP round trip in seconds, as capture point `side` sees it: on the client, the
    /// last SYN (the one answered) to the SYN-ACK; on the server, the SYN-ACK to the client's
    /// ACK; where the capture point is unknown, the last SYN to the ACK (both legs: from any
    /// point between the ends, the whole client-server round trip).
    pub fn tcp_rtt_s(&self, side: Side) -> Option<f64> {
        let (from, to) = match side {
            Side::Client => (self.last_syn?, self.synack?),
            Side::Server => (self.synack?, self.handshake_ack?),
            Side::Unknown => (self.last_syn?, self.handshake_ack?),
        };
        span(from, to)
    }

    /// Seconds from the first ClientHello transmission to the server's first TLS byte, when
    /// that began its ServerHello (or a HelloRetryRequest): how long the server thought.
    pub fn server_hello_delay_s(&self) -> Option<f64> {
        if self.serverhello.is_none() && !self.hello_retry_request {
            return None;
        }
        span(
            self.clienthello?,
            self.server_first_tls.or(self.serverhello)?,
        )
    }

    /// Seconds from the first SYN to the handshake's end (both sides encrypted).
    pub fn handshake_s(&self) -> Option<f64> {
        span(self.first_syn?, self.handshake_done?)
    }

    /// How the client gave up, if it did: its first FIN or RST.
    pub fn client_gave_up(&self) -> Option<(Ev, &'static str)> {
        match (self.client_fin, self.client_rst) {
            (Some(f), Some(r)) if r.t < f.t => Some((r, "RST")),
            (Some(f), _) => Some((f, "FIN")),
            (None, Some(r)) => Some((r, "RST")),
            (None, None) => None,
        }
    }
}

/// Seconds from `from` to `to`, when `to` is not earlier.
fn span(from: Ev, to: Ev) -> Option<f64> {
    (to.t >= from.t).then(|| round6(to.t - from.t))
}

/// Known client-side timeouts: (seconds, who).
pub const KNOWN_TIMEOUTS: [(f64, &str); 5] = [
    (55.0, "the Apigee Edge Message Processor I/O timeout (55 s)"),
    (
        60.0,
        "nginx proxy_connect_timeout / proxy_read_timeout (60 s)",
    ),
    (10.0, "Go's http.Transport TLSHandshakeTimeout (10 s)"),
    (5.0, "Envoy's default cluster connect_timeout (5 s)"),
    (3.0, "the Apigee Edge connect timeout (3 s)"),
];

/// Names the known timeout a give-up time matches: within 3 % or 0.25 s, whichever is larger.
pub fn match_timeout(secs: f64) -> Option<String> {
    KNOWN_TIMEOUTS
        .iter()
        .find(|(t, _)| (secs - t).abs() <= (t * 0.03).max(0.25))
        .map(|(_, who)| (*who).to_string())
}

/// Well-known TLS (and other server) ports, for guessing roles when no handshake was seen.
fn server_port_rank(p: u16) -> u8 {
    match p {
        443 | 8443 | 4433 | 636 | 993 | 995 | 465 | 853 | 5061 | 6443 | 9443 | 10443 => 0,
        80 | 8080 | 25 | 21 | 22 | 110 | 143 | 587 | 3389 | 6667 | 1080 | 3000 => 1,
        p if p < 1024 => 2,
        _ => 3,
    }
}

/// Which direction is the client's, and the rule that decided it.
pub(crate) fn client_dir(c: &Conn) -> (usize, ClientRule) {
    if let Some(d) = c.syn_dir.map(Dir::index) {
        return (d, ClientRule::Syn);
    }
    if let Some(d) = c.synack_dir.map(Dir::index) {
        return (1 - d, ClientRule::Synack);
    }
    if let Some(d) = c.tls_facts().ch_dir {
        return (d, ClientRule::Clienthello);
    }
    if c.icmp_only {
        if let Some(d) = c.icmp.first().and_then(|i| i.quoted_dir.map(Dir::index)) {
            return (d, ClientRule::IcmpQuote);
        }
    }
    let (a, b) = (c.ends[0].port, c.ends[1].port);
    let d = match server_port_rank(a).cmp(&server_port_rank(b)) {
        std::cmp::Ordering::Less => 1,
        std::cmp::Ordering::Greater => 0,
        // Same rank: the lower port is the server's.
        std::cmp::Ordering::Equal => usize::from(a < b),
    };
    (d, ClientRule::Ports)
}

/// A connection summarised: its facts, what it says about the capture point, and which of its
/// directions (0/1) is the client's.
pub(crate) struct Built {
    pub(crate) facts: Facts,
    pub(crate) evidence: Evidence,
    pub(crate) client_dir: usize,
}

/// The first ClientHello's transmissions, counted by sequence-range coverage.
struct Hello {
    from_client: bool,
    count: u32,
    frames: Vec<FrameRef>,
    copies: u32,
    first: Option<FrameRef>,
    acked: Option<bool>,
}

fn hello(c: &Conn, cd: usize) -> Hello {
    let tf = c.tls_facts();
    let from_client = tf.ch_dir == Some(cd);
    let (count, frames, copies) = match (tf.ch_range, from_client) {
        (Some((s, t)), true) => coverage(c, cd, s, t, tf.restarted_at[cd].is_some()),
        _ => (0, Vec::new(), 0),
    };
    let first = frames
        .first()
        .copied()
        .or(if from_client { tf.ch_at } else { None });
    // Transmissions of the first ClientHello only: the second one after a HelloRetryRequest
    // is a new message, not a retransmission (the evidence says "HRR" for it).
    let count = if first.is_some() { count.max(1) } else { 0 };
    let acked = match (tf.ch_range, from_client) {
        (Some((_, end)), true) => Some(c.dirs[cd].acked.is_some_and(|a| a >= end)),
        _ => None,
    };
    Hello {
        from_client,
        count,
        frames,
        copies,
        first,
        acked,
    }
}

/// What the capture leaves uncertain about the connection, in the order a reader needs it.
fn uncertain(
    c: &Conn,
    cd: usize,
    rule: ClientRule,
    began_midstream: bool,
    hello_unparsed: bool,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    if began_midstream {
        out.push("the capture began after the connection opened".into());
    }
    if rule != ClientRule::Syn {
        out.push(format!("client inferred from the {}", rule.as_str()));
    }
    if hello_unparsed {
        out.push("the ClientHello was seen but not complete enough to parse".into());
    }
    for (d, name) in [(&c.dirs[cd], "client"), (&c.dirs[1 - cd], "server")] {
        if d.payload_truncated {
            out.push(format!("{name} payload cut by the snaplen"));
        }
        if d.header_truncated > 0 {
            out.push(format!(
                "{} {name} TCP header(s) cut by the snaplen",
                d.header_truncated
            ));
        }
        let limits = &d.reasm.limits;
        if limits.cap_reached {
            out.push(format!(
                "{name} stream beyond the reassembly cap not analysed"
            ));
        }
        if limits.holding_overflow {
            out.push(format!(
                "{name} out-of-order data beyond the holding limit dropped"
            ));
        }
        if limits.gaps > 0 {
            out.push(format!(
                "{} gap(s) in the {name} stream never filled",
                limits.gaps
            ));
        }
    }
    if let Some(note) = decryption_note(c.tls_facts()) {
        out.push(note);
    }
    if c.tls_facts().oversized_message {
        out.push("a handshake message over 64 KiB was skipped".into());
    }
    out
}

/// With a key log: why it did not decrypt this connection (no secrets for its ClientHello,
/// secrets that do not open its records, a cipher suite without decryption here).
fn decryption_note(tf: &TlsFacts) -> Option<String> {
    let d = tf.decryption?;
    tf.server_hello.as_ref()?;
    if d.unsupported_suite {
        return Some("the key log cannot decrypt this cipher suite (CBC, CCM)".into());
    }
    if d.failed > 0 {
        return Some(format!(
            "the key log's secrets for this connection did not decrypt it ({} record(s) \
             failed to authenticate: wrong or mismatched keys)",
            d.failed
        ));
    }
    if !d.keys_found {
        return Some("the key log holds no secrets for this connection's ClientHello".into());
    }
    if let Some(label) = d.unusable {
        return Some(format!(
            "the key log holds secrets for this connection but no usable {label} line: \
             records under it stay sealed"
        ));
    }
    let sealed: Vec<String> = [("client", "CLIENT"), ("server", "SERVER")]
        .iter()
        .zip(d.sealed_short)
        .filter(|(_, n)| *n > 0)
        .map(|((side, label), n)| {
            format!(
                "{n} alert-sized record(s) from the {side} after its Finished stay sealed: the \
                 key log lacks {label}_TRAFFIC_SECRET_0, the {side}'s application traffic secret"
            )
        })
        .collect();
    (!sealed.is_empty()).then(|| sealed.join("; "))
}

/// The earlier of a direction's FIN and RST.
fn close_of(dir: &Sender) -> Option<FrameRef> {
    match (dir.fin, dir.rst) {
        (Some(f), Some(r)) => Some(f.min(r)),
        (a, b) => a.or(b),
    }
}

/// How the TLS exchange ended: when the handshake completed (if it did) and the alert to
/// report. A TLS 1.3 server that answers the client's Finished with one alert-sized record
/// and closes rejected the client (mutual TLS): the handshake did not complete.
fn tls_ending(
    c: &Conn,
    cd: usize,
    ev: &dyn Fn(FrameRef) -> Ev,
    hello_from_client: bool,
) -> (Option<Ev>, Option<AlertFact>) {
    let tf = c.tls_facts();
    let closes = [close_of(&c.dirs[cd]), close_of(&c.dirs[1 - cd])];
    if let Some(at) = server_rejected_finished(tf, hello_from_client, closes) {
        let decrypted = tf
            .alerts
            .iter()
            .find(|a| a.at == at && a.dir != cd)
            .and_then(|a| a.plain);
        // Decrypted, a close_notify (or a warning) is no rejection.
        if decrypted.is_none_or(|(level, _)| level == 2) {
            let rejection = AlertFact {
                at: ev(at),
                from_server: true,
                level: decrypted.map(|(l, _)| names::alert_level(l)),
                description: decrypted.map(|(_, d)| names::alert_description(d)),
                fatal: true,
                encrypted: true,
                inferred: decrypted.is_none(),
                decisive: true,
                answers_finished: tf.client_encrypted_after_sh.map(|(f, _)| ev(f)),
                decrypted: decrypted.is_some(),
            };
            return (None, Some(rejection));
        }
    }
    let alert = alert(tf, cd, ev, hello_from_client, closes);
    (tf.handshake_done.map(ev), alert)
}

/// TLS 1.3: the server's only record after the client's Finished is alert-sized and the
/// server closed after it, before the client closed and not in answer to a client alert:
/// the server's alert (certificate_required, unknown_ca, ...), inferred. Returns its frame.
fn server_rejected_finished(
    tf: &TlsFacts,
    hello_from_client: bool,
    [client_close, server_close]: [Option<FrameRef>; 2],
) -> Option<FrameRef> {
    if !hello_from_client || tf.negotiated_version() != Some(TLS13) {
        return None;
    }
    let a = tf.server_after_client?;
    let alert_sized = a.records == 1 && a.len <= SHORT_ENCRYPTED;
    let answers_client_alert = a.client_len_before == TLS13_ALERT_LEN;
    let closed_after = server_close.is_some_and(|s| s >= a.at);
    let client_still_open = client_close.is_none_or(|c| c >= a.at);
    (alert_sized && !answers_client_alert && closed_after && client_still_open).then_some(a.at)
}

/// TLS 1.3's version number.
const TLS13: u16 = 0x0304;
/// An unpadded TLS 1.3 alert record: 2 bytes of alert, the inner content type, a 16-byte tag.
/// (A client's data record can be as short as an alert: only this exact size is taken for
/// the client's close_notify.)
const TLS13_ALERT_LEN: usize = 19;

/// The alert to report: the one that decided, else the first; or, in TLS 1.3, a short
/// encrypted client record followed by a close and no more server data (inferred). An
/// encrypted alert after the handshake completed, followed by its sender's close, is most
/// likely close_notify and is named so (inferred).
fn alert(
    tf: &TlsFacts,
    cd: usize,
    ev: &dyn Fn(FrameRef) -> Ev,
    hello_from_client: bool,
    closes: [Option<FrameRef>; 2],
) -> Option<AlertFact> {
    let fact = |a: &crate::tls::AlertFact, decisive: bool| AlertFact {
        at: ev(a.at),
        from_server: a.dir != cd,
        level: a.plain.map(|(l, _)| names::alert_level(l)),
        description: a.plain.map(|(_, d)| names::alert_description(d)),
        fatal: a.plain.is_none_or(|(l, _)| l == 2),
        encrypted: a.plain.is_none() || a.decrypted,
        inferred: false,
        decisive,
        answers_finished: None,
        decrypted: a.decrypted,
    };
    let decisive = tf.alerts.iter().find(|a| {
        let before_done = tf.handshake_done.is_none_or(|d| a.at <= d);
        before_done && a.plain.is_none_or(|(lvl, _)| lvl == 2)
    });
    if let Some(a) = decisive {
        return Some(fact(a, true));
    }
    let client_close = closes[0];
    inferred_alert(tf, ev, hello_from_client, client_close).or_else(|| {
        let a = tf.alerts.iter().min_by_key(|a| a.at)?;
        let mut out = fact(a, false);
        let sender_close = closes[usize::from(a.dir != cd)];
        if a.plain.is_none() && sender_close.is_some_and(|c| c >= a.at) {
            out.description = Some(CLOSE_NOTIFY.into());
            out.fatal = false;
            out.inferred = true;
        }
        Some(out)
    })
}

/// The alert a sender's last encrypted alert before its close almost always is.
const CLOSE_NOTIFY: &str = "close_notify";

/// TLS 1.3: a short encrypted client record, then the client's close, no server data after
/// it: most likely the client's alert.
fn inferred_alert(
    tf: &TlsFacts,
    ev: &dyn Fn(FrameRef) -> Ev,
    hello_from_client: bool,
    client_close: Option<FrameRef>,
) -> Option<AlertFact> {
    if tf.handshake_done.is_some() || !hello_from_client {
        return None;
    }
    let (rec_at, len) = tf.client_encrypted_after_sh?;
    let close = client_close?;
    let short = len <= SHORT_ENCRYPTED && tf.client_encrypted_after_sh_count == 1;
    (short && close >= rec_at).then(|| AlertFact {
        at: ev(rec_at),
        from_server: false,
        level: None,
        description: None,
        fatal: true,
        encrypted: true,
        inferred: true,
        decisive: true,
        answers_finished: None,
        decrypted: false,
    })
}

/// What each side sent when it was not TLS: first lines, HTTP, escaped first bytes.
#[derive(Default)]
struct Previews {
    client_non_tls: Option<String>,
    server_non_tls: Option<String>,
    http_request: Option<String>,
    http_status: Option<String>,
    client_first_bytes: Option<String>,
    server_first_bytes: Option<String>,
}

fn previews(tf: &TlsFacts, cd: usize) -> Previews {
    let client = tf.non_tls[cd].as_ref();
    let server = tf.non_tls[1 - cd].as_ref();
    let first_line = |n: Option<&Box<crate::tls::NonTls>>| {
        n.filter(|n| n.tls_after.is_none())
            .map(|n| escape::first_line(&n.preview, 120))
    };
    let first_bytes = |n: Option<&Box<crate::tls::NonTls>>| {
        n.map(|n| escape::bytes(&n.preview[..n.preview.len().min(64)]))
    };
    Previews {
        client_non_tls: first_line(client),
        server_non_tls: first_line(server),
        http_request: client
            .filter(|n| escape::is_http_request(&n.preview))
            .map(|n| escape::first_line(&n.preview, 200)),
        http_status: server
            .filter(|n| escape::is_http_response(&n.preview))
            .map(|n| escape::first_line(&n.preview, 200)),
        client_first_bytes: first_bytes(client),
        server_first_bytes: first_bytes(server),
    }
}

/// The ICMP error to report: one quoting the client's packet, else the first.
fn icmp(c: &Conn, cd: usize, ev: &dyn Fn(FrameRef) -> Ev) -> Option<IcmpFact> {
    let i = c
        .icmp
        .iter()
        .find(|i| i.quoted_dir.map(Dir::index) == Some(cd))
        .or(c.icmp.first())?;
    let unreachable = if i.v6 {
        i.icmp_type == 1
    } else {
        i.icmp_type == 3 && i.code != 4
    };
    Some(IcmpFact {
        at: ev(i.at),
        icmp_type: i.icmp_type,
        code: i.code,
        v6: i.v6,
        description: wire::icmp_description(i.v6, i.icmp_type, i.code),
        reporter: i.reporter.to_string(),
        unreachable,
        frag_needed: (!i.v6 && i.icmp_type == 3 && i.code == 4) || (i.v6 && i.icmp_type == 2),
        mtu: i.mtu,
        quotes_client: i.quoted_dir.map(Dir::index) == Some(cd),
    })
}

/// What the connection says about where the capture was taken.
fn evidence(c: &Conn, cd: usize, synack_at: Option<FrameRef>) -> Evidence {
    let (cdir, sdir) = (&c.dirs[cd], &c.dirs[1 - cd]);
    vantage::infer(&Clues {
        client_pkttype: cdir.pkttype,
        server_pkttype: sdir.pkttype,
        client_ttl: cdir.ttl,
        server_ttl: sdir.ttl,
        syn_to_synack: match (cdir.syns[1], synack_at) {
            (Some(s), Some(sa)) if sa.ts >= s.ts => Some(secs(sa.ts.saturating_sub(s.ts))),
            _ => None,
        },
        synack_to_ack: match (synack_at, c.handshake_ack) {
            (Some(sa), Some(a)) if a.ts >= sa.ts => Some(secs(a.ts.saturating_sub(sa.ts))),
            _ => None,
        },
        client_sums: (cdir.checksums_checked, cdir.checksums_wrong),
        server_sums: (sdir.checksums_checked, sdir.checksums_wrong),
    })
}

/// Summarises a finished connection into its facts.
pub(crate) fn summarise(c: &Conn, ctx: &Ctx) -> Built {
    let (cd, client_rule) = client_dir(c);
    let sd = 1 - cd;
    let (cdir, sdir) = (&c.dirs[cd], &c.dirs[sd]);
    let tf = c.tls_facts();
    let base = c.first.ts;
    let ev = |r: FrameRef| ctx.ev(r, base);
    let began_midstream = cdir.syn_count == 0 && sdir.synack_count == 0 && !c.icmp_only;
    let ch = hello(c, cd);
    let client_hello = tf.client_hello.as_ref().filter(|_| ch.from_client);
    let uncertain = uncertain(
        c,
        cd,
        client_rule,
        began_midstream,
        ch.from_client && tf.client_hello.is_none(),
    );
    let client_close = close_of(cdir);
    let (handshake_done, alert) = tls_ending(c, cd, &ev, ch.from_client);
    let gave_up_after_s = match (ch.first, client_close) {
        (Some(ch), Some(close)) if close.ts >= ch.ts => {
            Some(round6(secs(close.ts.saturating_sub(ch.ts))))
        }
        _ => None,
    };
    let sh_from_server = tf.sh_dir == Some(sd);
    let server_hello = tf.server_hello.as_ref().filter(|_| sh_from_server);
    let synack_at = c
        .events
        .iter()
        .find(|x| x.kind() == EventKind::SynAck)
        .map(|x| x.at);
    let previews = previews(tf, cd);
    let (certificate, cert_problems) = super::certificate::server_certificate(
        tf.certificate.as_ref(),
        client_hello.and_then(|h| h.sni.as_deref()),
        c.first.ts,
    );
    let facts = Facts {
        stream: c.stream,
        client: c.ends[cd],
        server: c.ends[sd],
        client_rule,
        first_frame: c.first.frame(),
        last_frame: c.last.frame(),
        file: ctx.multi_file.then_some(c.first.file()),
        start: c.first.ts,
        duration_s: round6(secs(c.last.ts.saturating_sub(c.first.ts))),
        capture_end_t: round6(secs(ctx.capture_end.saturating_sub(base))),
        began_midstream,
        icmp_only: c.icmp_only,
        syn_count: cdir.syn_count,
        syn_copies: cdir.syn_copies,
        first_syn: cdir.syns[0].map(ev),
        last_syn: cdir.syns[1].map(ev),
        synack: synack_at.map(ev),
        handshake_ack: c.handshake_ack.map(ev),
        synack_seen: sdir.synack_count > 0,
        established: sdir.synack_count > 0
            && (c.handshake_ack.is_some() || cdir.payload_segments > 0)
            || (began_midstream && cdir.packets > 0 && sdir.packets > 0),
        icmp: icmp(c, cd, &ev),
        client_payload_bytes: cdir.payload_bytes,
        server_payload_bytes: sdir.payload_bytes,
        clienthello: ch.first.map(ev),
        clienthello_count: ch.count,
        clienthello_copies: ch.copies,
        clienthello_frames: ch.frames.iter().map(|f| f.frame()).collect(),
        clienthello_acked: ch.acked,
        hello: client_hello.map(super::hello::client_hello_info),
        certificate,
        decrypted: tf.decryption.is_some_and(|d| d.opened > 0),
        client_certificate: super::hello::client_cert_info(&tf.client_cert),
        cert_problems,
        serverhello_seen: server_hello.is_some(),
        hello_retry_request: tf.hrr_at.is_some(),
        tls_version: server_hello.map(|s| names::version_name(s.version())),
        cipher: server_hello
            .filter(|s| s.cipher != 0)
            .map(|s| names::cipher_name(s.cipher)),
        alpn_selected: server_hello
            .and_then(|s| s.alpn.as_deref())
            .map(super::hello::display_name),
        server_first_tls: tf.first_record[sd].map(ev),
        serverhello: tf.sh_at.filter(|_| sh_from_server).map(ev),
        handshake_done,
        alert,
        client_non_tls: previews.client_non_tls,
        server_non_tls: previews.server_non_tls,
        http_request: previews.http_request,
        http_status: previews.http_status,
        client_first_bytes: previews.client_first_bytes,
        server_first_bytes: previews.server_first_bytes,
        client_fin: cdir.fin.map(ev),
        client_rst: cdir.rst.map(ev),
        server_fin: sdir.fin.map(ev),
        server_rst: sdir.rst.map(ev),
        server_rst_forged: rst_forged(sdir),
        client_seq_jump: client_seq_jump(cdir),
        client_retransmissions: cdir.retransmissions,
        server_retransmissions: sdir.retransmissions,
        server_full_size_retransmissions: sdir.full_size_retransmissions,
        server_max_segment: sdir.max_segment,
        server_data_acked: sdir.acked.is_some_and(|a| a >= sdir.max_end),
        client_sacked: sdir.sacked,
        server_gap: sdir.reasm.limits.gaps > 0,
        server_small_segments_only: small_segments_only(cdir, sdir),
        gave_up_after_s,
        timeout_match: gave_up_after_s.and_then(match_timeout),
        uncertain,
        timeline: timeline(c, cd, ctx, &ch.frames),
        events_not_kept: c.events_dropped,
    };
    Built {
        facts,
        evidence: evidence(c, cd, synack_at),
        client_dir: cd,
    }
}

/// The client's FIN or RST sits this far into a stream it sent no payload of.
fn client_seq_jump(cdir: &crate::flow::Sender) -> Option<u64> {
    if cdir.payload_segments > 0 {
        return None;
    }
    cdir.fin_offset.or(cdir.rst_offset).filter(|o| *o > 0)
}

/// The most times any byte of [start, end) was sent, the frames that carried it, and the
/// capture copies of such frames. After a restart (junk bytes overwritten by the hello),
/// segments before the hello's first are junk.
pub(crate) fn coverage(
    c: &Conn,
    dir: usize,
    start: u64,
    end: u64,
    restarted: bool,
) -> (u32, Vec<FrameRef>, u32) {
    let first_hello = restarted
        .then(|| {
            c.events.iter().find(|e| {
                e.dir().index() == dir
                    && e.kind()
                        .data_span()
                        .is_some_and(|(s, t)| s <= start && t > start && t - s > 5)
            })
        })
        .flatten()
        .map(|e| e.at);
    let in_hello =
        |e: &&crate::flow::Event| e.dir().index() == dir && first_hello.is_none_or(|f| e.at >= f);
    let copies = c
        .events
        .iter()
        .filter(in_hello)
        .filter(|e| {
            e.kind()
                .copy_span()
                .is_some_and(|(s, t)| s < end && t > start)
        })
        .count() as u32;
    let segs: Vec<(u64, u64, FrameRef)> = c
        .events
        .iter()
        .filter(in_hello)
        .filter_map(|e| match e.kind().data_span() {
            Some((s, t)) if s < end && t > start => Some((s.max(start), t.min(end), e.at)),
            _ => None,
        })
        .collect();
    let mut points: Vec<(u64, i32)> = Vec::with_capacity(segs.len() * 2);
    for (s, t, _) in &segs {
        points.push((*s, 1));
        points.push((*t, -1));
    }
    points.sort();
    let (mut cur, mut best) = (0i32, 0i32);
    for (_, delta) in points {
        cur += delta;
        best = best.max(cur);
    }
    (
        best.max(0) as u32,
        segs.into_iter().map(|(_, _, a)| a).collect(),
        copies,
    )
}

/// The connection's packets in capture order, labelled as its timeline labels them.
pub(crate) fn trace(c: &Conn, cd: usize, timeline: &[TimelineEntry]) -> crate::model::Trace {
    use crate::model::{TraceKind, TracePacket};
    let (cdir, sdir) = (&c.dirs[cd], &c.dirs[1 - cd]);
    let mut packets = Vec::with_capacity(c.events.len());
    // The timeline has one entry per event, in order.
    for (e, entry) in c.events.iter().zip(timeline) {
        let (kind, start, end) = match e.kind() {
            EventKind::Syn => (TraceKind::Syn, 0, 0),
            EventKind::SynAck => (TraceKind::SynAck, 0, 0),
            EventKind::HandshakeAck => (TraceKind::Ack, 0, 0),
            EventKind::HelloAck => {
                let at = c.tls_facts().ch_range.map_or(0, |(_, t)| t);
                (TraceKind::Ack, at, at)
            }
            EventKind::Data { start, len } => (TraceKind::Data, start, start + u64::from(len)),
            EventKind::Fin => (TraceKind::Fin, 0, 0),
            EventKind::Rst => (TraceKind::Rst, 0, 0),
            EventKind::Copy { .. } | EventKind::Icmp { .. } => continue,
        };
        packets.push(TracePacket {
            frame: e.at.frame(),
            file: e.at.file(),
            ts: e.at.ts,
            from_client: e.dir().index() == cd,
            kind,
            start,
            end,
            label: entry.event.to_string(),
        });
    }
    crate::model::Trace {
        client_isn: cdir.syns[0].and(cdir.first_seq),
        server_isn: sdir.synack_seq,
        syn_tsval: cdir.syn_tsval,
        synack_tsval: sdir.syn_tsval,
        packets,
        packets_dropped: c.events_dropped,
    }
}

/// Why a direction's RST was not sent by that endpoint: its TTL differs from the one every
/// earlier packet of the direction arrived with (the same host and path give the same TTL;
/// a firewall or IPS forging the reset starts from its own initial TTL and distance).
pub(crate) fn rst_forged(d: &crate::flow::Sender) -> Option<String> {
    let (rst, ttl) = (d.rst_ttl?, d.ttl?);
    if rst == ttl || d.packets < 2 {
        return None;
    }
    let mut why = format!("its TTL is {rst} where the server's other packets arrive with {ttl}");
    if d.rst_without_ts && d.ts_seen {
        why.push_str(", and it carries no TCP timestamp although they do");
    }
    Some(why)
}

/// An address as its `Display` writes it; an IPv4 one without the formatting machinery
/// (about 1,300 instructions each, and a report writes two or three per connection).
pub fn ip_text(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => {
            // Room for a port after it (`Endpoint::text`).
            let mut s = String::with_capacity(21);
            for (i, o) in a.octets().into_iter().enumerate() {
                if i > 0 {
                    s.push('.');
                }
                s.push_str(itoa::Buffer::new().format(o));
            }
            s
        }
        IpAddr::V6(a) => a.to_string(),
    }
}

/// An endpoint as `Display` writes it (`ip:port`, `[ip6]:port`), an IPv4 one written directly.
pub fn endpoint_text(e: &Endpoint) -> String {
    match e.ip {
        IpAddr::V4(_) => {
            // `ip_text` leaves room for the port.
            let mut s = ip_text(e.ip);
            s.push(':');
            s.push_str(itoa::Buffer::new().format(e.port));
            s
        }
        IpAddr::V6(_) => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Addresses and endpoints written directly read as their `Display` does.
    #[test]
    fn address_text_is_what_display_writes() {
        for ip in [
            "0.0.0.0",
            "255.255.255.255",
            "10.2.1.57",
            "192.168.100.9",
            "::1",
            "2001:db8::8a2e:370:7334",
            "::ffff:10.0.0.1",
        ] {
            let ip: IpAddr = ip.parse().expect("address");
            assert_eq!(ip_text(ip), ip.to_string());
            for port in [0, 9, 443, 65535] {
                let e = Endpoint { ip, port };
                assert_eq!(endpoint_text(&e), e.to_string());
            }
        }
    }
}
