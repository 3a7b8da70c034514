//! Model: the per-connection record every report is rendered from, and the capture summary.
//!
//! These types are the JSON contract (`schema_version` [`SCHEMA_VERSION`]): keys may be added,
//! never renamed. Everything here is in client/server terms and owned, so a connection can be
//! summarised and its packet state freed as soon as its outcome is settled.

use crate::capture::InputSummary;
use crate::diagnose::verdict::{Side, VerdictCode};
use crate::store::Store;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

pub const SCHEMA_VERSION: u32 = 1;

/// Where something was seen: a frame of an input, and seconds since the capture's first packet.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct At {
    pub frame: u64,
    pub t: f64,
    /// Index into `captures` (only when several files make one capture).
    pub file: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertOut {
    /// "client" or "server".
    pub sender: String,
    /// "fatal", "warning", or null when encrypted.
    pub level: Option<String>,
    /// RFC name ("handshake_failure"), or null when encrypted.
    pub description: Option<String>,
    pub encrypted: bool,
    /// Inferred from a short encrypted record followed by a close (TLS 1.3).
    pub inferred: bool,
    pub frame: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IcmpOut {
    #[serde(rename = "type")]
    pub icmp_type: u8,
    pub code: u8,
    pub description: String,
    pub frame: u64,
    /// Address that sent the ICMP error.
    pub reporter: String,
    pub v6: bool,
    /// Next-hop MTU for fragmentation-needed / packet-too-big.
    pub mtu: Option<u32>,
}

/// Timeline texts every connection has. Entries hold them borrowed, so neither building a
/// timeline nor reading one back from the spill file allocates for them (a dozen entries per
/// connection, tens of thousands of connections).
pub(crate) mod text {
    pub const TO_SERVER: &str = "->";
    pub const TO_CLIENT: &str = "<-";
    pub const FROM_PATH: &str = "!";
    pub const NO_DIRECTION: &str = "";
    pub const SYN: &str = "SYN";
    pub const SYN_ACK: &str = "SYN-ACK";
    pub const HANDSHAKE_ACK: &str = "ACK (TCP handshake complete)";
    pub const HELLO_ACK: &str = "ACK of the whole ClientHello";
    pub const FIN: &str = "FIN";
    pub const RST: &str = "RST";
}

const SHARED_TEXTS: [&str; 10] = [
    text::TO_SERVER,
    text::TO_CLIENT,
    text::FROM_PATH,
    text::NO_DIRECTION,
    text::SYN,
    text::SYN_ACK,
    text::HANDSHAKE_ACK,
    text::HELLO_ACK,
    text::FIN,
    text::RST,
];

/// Reads a string, borrowing it from [`SHARED_TEXTS`] when it is one of them.
fn shared_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Cow<'static, str>, D::Error> {
    crate::tls::names::deserialize_known(d, |v| SHARED_TEXTS.iter().find(|t| **t == v).copied())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub frame: u64,
    /// Seconds since the connection's first packet.
    pub t: f64,
    /// "->" client to server, "<-" server to client, "!" ICMP from the path.
    #[serde(deserialize_with = "shared_text")]
    pub dir: Cow<'static, str>,
    #[serde(deserialize_with = "shared_text")]
    pub event: Cow<'static, str>,
    pub file: Option<usize>,
}

/// Cleartext HTTP seen on the connection.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpOut {
    pub request_line: Option<String>,
    pub status_line: Option<String>,
}

/// One TCP connection: facts, verdict, explanation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Connection {
    pub stream: u64,
    pub client_ip: String,
    pub client_port: u16,
    pub server_ip: String,
    pub server_port: u16,
    pub client_inferred: bool,
    /// How the client was chosen: syn, synack, clienthello, icmp_quote, ports.
    pub client_rule: String,
    pub verdict: VerdictCode,
    pub explanation: String,
    pub next_step: String,
    pub vantage: Side,
    pub syn_count: u32,
    /// Capture copies of a SYN (the same packet recorded twice, e.g. by `-i any`): Wireshark
    /// counts them as retransmissions; `syn_count` does not.
    pub syn_copies: u32,
    pub synack_seen: bool,
    pub tcp_established: bool,
    pub clienthello_count: u32,
    /// Capture copies of frames carrying the ClientHello, not counted in `clienthello_count`.
    pub clienthello_copies: u32,
    pub clienthello_acked: Option<bool>,
    pub serverhello_seen: bool,
    pub hello_retry_request: bool,
    #[serde(deserialize_with = "crate::tls::names::deserialize_opt_name")]
    pub tls_version: Option<crate::tls::names::Name>,
    #[serde(deserialize_with = "crate::tls::names::deserialize_opt_name")]
    pub cipher: Option<crate::tls::names::Name>,
    pub sni: Option<String>,
    pub alpn: Option<String>,
    pub ja4: Option<String>,
    pub clienthello: Option<ClientHelloInfo>,
    pub certificate: Option<CertInfo>,
    pub alert: Option<AlertOut>,
    /// Escaped first bytes the server sent when they were not TLS.
    pub server_first_bytes: Option<String>,
    /// Escaped first bytes the client sent when they were not TLS.
    pub client_first_bytes: Option<String>,
    pub http: Option<HttpOut>,
    pub client_fin: Option<At>,
    pub client_rst: Option<At>,
    pub server_fin: Option<At>,
    pub server_rst: Option<At>,
    pub icmp: Option<IcmpOut>,
    pub first_frame: u64,
    pub last_frame: u64,
    pub file: Option<usize>,
    pub start_time: String,
    pub duration_s: f64,
    /// From the first ClientHello to the client's first FIN or RST.
    pub gave_up_after_s: Option<f64>,
    /// A known timeout the give-up time matches.
    pub timeout_match: Option<String>,
    pub client_retransmissions: u32,
    pub server_retransmissions: u32,
    pub server_payload_bytes: u64,
    /// Facts the capture leaves uncertain (snaplen, gaps, caps, mid-stream start).
    pub uncertain: Vec<String>,
    pub timeline: Vec<TimelineEntry>,
}

/// Verdict count.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerdictCount {
    pub verdict: VerdictCode,
    pub count: u64,
}

/// Connections to one server endpoint.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerRollup {
    pub server: String,
    pub connections: u64,
    pub verdicts: std::collections::BTreeMap<String, u64>,
}

/// Capture-wide capture-point decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VantageOut {
    pub side: Side,
    /// "override" when given on the command line.
    pub decided_by: String,
    pub evidence: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub connections: u64,
    pub failed: u64,
    pub verdicts: std::collections::BTreeMap<String, u64>,
    /// The first [`crate::diagnose::rollup::MAX_SERVERS`] servers seen, most connections first.
    pub servers: Vec<ServerRollup>,
    /// Connections to servers seen after the listed ones (counted in the totals).
    pub unlisted_server_connections: u64,
    pub packets: u64,
    pub tcp_packets: u64,
    pub duplicates_ignored: u64,
    pub non_ip_packets: u64,
    pub other_ip_packets: u64,
    pub undecoded_packets: u64,
    pub unsupported_link_packets: u64,
    pub fragments_reassembled: u64,
    pub first_time: Option<String>,
    pub last_time: Option<String>,
    pub span_s: f64,
    /// Connections settled early because the live-connection cap was reached.
    pub evicted_by_cap: u64,
    /// Packets that arrived for connections already settled and freed.
    pub late_packets: u64,
    /// Most connections open at once.
    pub peak_live_connections: u64,
}

/// One packet of a connection's ladder as the capture saw it, for matching against another
/// capture of the same connection (`tlsdiag compare`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TracePacket {
    pub frame: u64,
    pub file: usize,
    /// Capture time, nanoseconds since the Unix epoch.
    pub ts: i64,
    pub from_client: bool,
    pub kind: TraceKind,
    /// Stream offsets [start, end) of the payload (relative to the sender's first sequence
    /// number); for `Ack`, both are the acknowledged offset.
    pub start: u64,
    pub end: u64,
    /// The ladder's wording of this packet.
    pub label: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TraceKind {
    Syn,
    SynAck,
    Ack,
    Data,
    Fin,
    Rst,
}

/// What identifies a connection across two captures, and its packets.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Trace {
    /// Sequence number of the client's SYN and of the server's SYN-ACK.
    pub client_isn: Option<u32>,
    pub server_isn: Option<u32>,
    /// TCP timestamp values of the SYN and of the SYN-ACK (NAT leaves them alone).
    pub syn_tsval: Option<u32>,
    pub synack_tsval: Option<u32>,
    pub packets: Vec<TracePacket>,
    /// Packets of the connection not kept in `packets` (long transfers).
    pub packets_dropped: u32,
}

/// The whole analysis. Connections live in a [`Store`] (memory, or a spill file for big
/// captures) and come back in first-frame order, worded for the capture point decided once
/// the whole capture was read.
#[derive(Debug)]
pub struct Report {
    pub schema_version: u32,
    pub tool: Tool,
    pub captures: Vec<InputSummary>,
    pub vantage: VantageOut,
    pub summary: Summary,
    pub warnings: Vec<String>,
    pub(crate) store: Store,
    pub(crate) vantage_override: Option<Side>,
    pub(crate) timeline_limit: Option<usize>,
    pub(crate) redactor: Option<crate::report::redact::Redactor>,
}

/// The capture point a stored record is worded for: the override, its own evidence, else the
/// capture's.
fn side_of(rec: &crate::store::Record, vantage_override: Option<Side>, capture_side: Side) -> Side {
    match (vantage_override, rec.evidence) {
        (Some(s), _) => s,
        (None, Side::Unknown) => capture_side,
        (None, s) => s,
    }
}

/// The verdict of a record's facts, worded for capture point `side`.
fn judged(
    mut facts: crate::diagnose::verdict::ConnFacts,
    side: Side,
) -> crate::diagnose::verdict::Judgement {
    facts.vantage = side;
    crate::diagnose::verdict::judge(&facts)
}

/// Turns a stored record into the reported connection: capture point chosen (override, its
/// own evidence, else the capture's), verdict worded for it, timeline capped, redacted.
pub(crate) fn finalize(
    rec: crate::store::Record,
    vantage_override: Option<Side>,
    capture_side: Side,
    timeline_limit: Option<usize>,
    redactor: Option<&crate::report::redact::Redactor>,
) -> std::io::Result<Connection> {
    let side = side_of(&rec, vantage_override, capture_side);
    let mut c = match rec.body {
        crate::store::Body::Model(c) => {
            let mut c = *c;
            // Else worded when it settled.
            if let Some(facts) = rec.facts {
                let j = judged(facts, side);
                c.vantage = side;
                c.verdict = j.code;
                c.explanation = j.explanation;
                c.next_step = j.next_step;
            }
            c
        }
        crate::store::Body::Json { .. } => {
            let mut text = Vec::new();
            write_json(rec, vantage_override, capture_side, &mut text)?;
            serde_json::from_slice(&text).map_err(std::io::Error::other)?
        }
        crate::store::Body::Final(text) => {
            serde_json::from_slice(&text).map_err(std::io::Error::other)?
        }
    };
    if let Some(limit) = timeline_limit {
        c.timeline.truncate(limit);
    }
    if let Some(r) = redactor {
        r.connection(&mut c);
    }
    Ok(c)
}

/// Appends a record kept as JSON text ([`Body::Json`](crate::store::Body::Json)) to `out`,
/// with its capture-point fields filled in: what [`finalize`] then `serde_json` would write,
/// without parsing or re-serialising the rest.
fn write_json(
    rec: crate::store::Record,
    vantage_override: Option<Side>,
    capture_side: Side,
    out: &mut Vec<u8>,
) -> std::io::Result<()> {
    let side = side_of(&rec, vantage_override, capture_side);
    let crate::store::Body::Json { text, gap } = rec.body else {
        return Err(std::io::Error::other("record not kept as JSON"));
    };
    let (head, tail) = match (text.get(..gap.0 as usize), text.get(gap.1 as usize..)) {
        (Some(h), Some(t)) => (h, t),
        _ => return Err(std::io::Error::other("damaged JSON record")),
    };
    let facts = rec
        .facts
        .ok_or_else(|| std::io::Error::other("JSON record without its facts"))?;
    let j = judged(facts, side);
    out.extend_from_slice(head);
    json_field(out, "\"verdict\":", &j.code)?;
    json_field(out, ",\"explanation\":", &j.explanation)?;
    json_field(out, ",\"next_step\":", &j.next_step)?;
    json_field(out, ",\"vantage\":", &side)?;
    out.extend_from_slice(tail);
    Ok(())
}

fn json_field<T: Serialize>(out: &mut Vec<u8>, key: &str, v: &T) -> std::io::Result<()> {
    out.extend_from_slice(key.as_bytes());
    crate::report::json::write_compact(out, v)
}

impl Report {
    /// Number of connections reported.
    pub fn len(&self) -> usize {
        self.store.len()
    }

    pub fn is_empty(&self) -> bool {
        self.store.is_empty()
    }

    /// Connection `i` in output order, with its verdict worded for its capture point.
    pub fn connection(&self, i: usize) -> std::io::Result<Connection> {
        self.finalize(self.store.get(i)?)
    }

    /// A stored record as this report's connection ([`finalize`] with its settings).
    fn finalize(&self, rec: crate::store::Record) -> std::io::Result<Connection> {
        finalize(
            rec,
            self.vantage_override,
            self.vantage.side,
            self.timeline_limit,
            self.redactor.as_ref(),
        )
    }

    /// Appends connection `i` as compact JSON (what `serde_json` writes for
    /// [`connection`](Self::connection)`(i)`), copying it when it was kept as JSON.
    pub(crate) fn write_connection_json(&self, i: usize, out: &mut Vec<u8>) -> std::io::Result<()> {
        let rec = self.store.get(i)?;
        // Text kept as JSON is never redacted (analysis keeps the model when redacting).
        if self.redactor.is_none() {
            match rec.body {
                crate::store::Body::Final(text) => {
                    out.extend_from_slice(&text);
                    return Ok(());
                }
                crate::store::Body::Json { .. } => {
                    return write_json(rec, self.vantage_override, self.vantage.side, out);
                }
                crate::store::Body::Model(_) => {}
            }
        }
        crate::report::json::write_compact(out, &self.finalize(rec)?)
    }

    /// Connection `i` with the packets kept for it (`Options::trace`).
    pub(crate) fn traced(
        &self,
        i: usize,
    ) -> std::io::Result<(Connection, Option<crate::model::Trace>)> {
        let mut rec = self.store.get(i)?;
        let trace = rec.trace.take();
        let conn = self.finalize(rec)?;
        Ok((conn, trace))
    }

    /// All connections in output order.
    pub fn connections(&self) -> impl Iterator<Item = std::io::Result<Connection>> + '_ {
        (0..self.len()).map(|i| self.connection(i))
    }

    /// The connections a report lists, in output order: all of them, or (`all` false) the
    /// failed ones, the others skipped unread.
    pub fn listed(&self, all: bool) -> impl Iterator<Item = std::io::Result<Connection>> + '_ {
        (0..self.len()).filter_map(move |i| {
            if all {
                return Some(self.connection(i));
            }
            match self.store.get_failed(i) {
                Ok(Some(rec)) => Some(self.finalize(rec)),
                Ok(None) => None,
                Err(e) => Some(Err(e)),
            }
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Tool {
    pub name: &'static str,
    pub version: &'static str,
}

impl Default for Tool {
    fn default() -> Self {
        Tool {
            name: env!("CARGO_PKG_NAME"),
            version: env!("CARGO_PKG_VERSION"),
        }
    }
}

/// What a ClientHello offered.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClientHelloInfo {
    /// Record-layer version of the record that carried it.
    #[serde(deserialize_with = "crate::tls::names::deserialize_name")]
    pub record_version: crate::tls::names::Name,
    /// The legacy_version field.
    #[serde(deserialize_with = "crate::tls::names::deserialize_name")]
    pub legacy_version: crate::tls::names::Name,
    /// supported_versions, GREASE included, as sent.
    #[serde(deserialize_with = "crate::tls::names::deserialize_names")]
    pub supported_versions: Vec<crate::tls::names::Name>,
    /// Server name and ALPN protocols, escaped for display ([`crate::escape::text`]).
    pub sni: Option<String>,
    pub alpn: Vec<String>,
    pub cipher_suites: usize,
    /// Groups of the key shares offered, by name.
    #[serde(deserialize_with = "crate::tls::names::deserialize_names")]
    pub key_share_groups: Vec<crate::tls::names::Name>,
    pub ja4: Option<String>,
    /// An SSLv2-format (pre-TLS) hello.
    pub sslv2_format: bool,
    /// Size of the handshake message.
    pub length: usize,
}

/// The leaf certificate of a TLS <= 1.2 Certificate message. Names are escaped for display
/// ([`crate::escape::text`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CertInfo {
    pub subject: String,
    pub issuer: String,
    pub not_before: String,
    pub not_after: String,
    /// Subject alternative DNS names (at most 8).
    pub dns_names: Vec<String>,
    pub chain_length: usize,
    pub self_signed: bool,
}
