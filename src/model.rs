//! Model: the JSON contract (`schema_version` [`SCHEMA_VERSION`]): the per-connection record
//! every report is rendered from, the capture summary, and the packets `compare` matches.
//!
//! Data only: keys may be added, never renamed. Everything here is in client/server terms and
//! owned. The record is derived from a connection's facts in `diagnose`; renderers read it.

use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::fmt;

pub const SCHEMA_VERSION: u32 = 1;

/// Stable verdict codes: the same in every output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerdictCode {
    TlsOk,
    TlsNoServerResponse,
    TcpNoSynack,
    TcpRefused,
    IcmpUnreachable,
    NotTls,
    ServerAlert,
    ClientAlert,
    ServerReset,
    /// A reset in the server's name that the server did not send (TTL mismatch).
    MiddleboxReset,
    ServerClosed,
    ServerResponseLost,
    ClienthelloLost,
    ClientClosed,
    TcpNoData,
    Cleartext,
    Incomplete,
}

impl VerdictCode {
    pub const ALL: [VerdictCode; 17] = [
        VerdictCode::TlsOk,
        VerdictCode::TlsNoServerResponse,
        VerdictCode::TcpNoSynack,
        VerdictCode::TcpRefused,
        VerdictCode::IcmpUnreachable,
        VerdictCode::NotTls,
        VerdictCode::ServerAlert,
        VerdictCode::ClientAlert,
        VerdictCode::ServerReset,
        VerdictCode::MiddleboxReset,
        VerdictCode::ServerClosed,
        VerdictCode::ServerResponseLost,
        VerdictCode::ClienthelloLost,
        VerdictCode::ClientClosed,
        VerdictCode::TcpNoData,
        VerdictCode::Cleartext,
        VerdictCode::Incomplete,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            VerdictCode::TlsOk => "tls_ok",
            VerdictCode::TlsNoServerResponse => "tls_no_server_response",
            VerdictCode::TcpNoSynack => "tcp_no_synack",
            VerdictCode::TcpRefused => "tcp_refused",
            VerdictCode::IcmpUnreachable => "icmp_unreachable",
            VerdictCode::NotTls => "not_tls",
            VerdictCode::ServerAlert => "server_alert",
            VerdictCode::ClientAlert => "client_alert",
            VerdictCode::ServerReset => "server_reset",
            VerdictCode::MiddleboxReset => "middlebox_reset",
            VerdictCode::ServerClosed => "server_closed",
            VerdictCode::ServerResponseLost => "server_response_lost",
            VerdictCode::ClienthelloLost => "clienthello_lost",
            VerdictCode::ClientClosed => "client_closed",
            VerdictCode::TcpNoData => "tcp_no_data",
            VerdictCode::Cleartext => "cleartext",
            VerdictCode::Incomplete => "incomplete",
        }
    }

    /// Whether this outcome is a failure worth listing (`--check` exit status, default table,
    /// `summary.failed`). `incomplete` is not judged, so not a failure: the capture missed the
    /// handshake, and `summary.verdicts` counts it apart.
    pub fn is_failure(self) -> bool {
        !matches!(
            self,
            VerdictCode::TlsOk
                | VerdictCode::TcpNoData
                | VerdictCode::Cleartext
                | VerdictCode::Incomplete
        )
    }
}

impl fmt::Display for VerdictCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Capture point: where the capture was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// On the client (gateway, proxy) host.
    Client,
    /// On the server (backend) host.
    Server,
    #[default]
    Unknown,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Client => "client",
            Side::Server => "server",
            Side::Unknown => "unknown",
        })
    }
}

/// Where something was seen: a frame of an input, and seconds since the capture's first packet
/// (`t`, Wireshark's default time column, as explanations cite it).
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
    /// Inferred from a short encrypted record followed by a close (TLS 1.3), or (named
    /// close_notify) an encrypted alert before its sender's close.
    pub inferred: bool,
    /// A key log opened it (`level` and `description` are then the decrypted ones).
    #[serde(default)]
    pub decrypted: bool,
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
    /// Seconds since the connection's first packet (not Wireshark's time column: see `At`).
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
    /// Transmissions of the first ClientHello; the second one after a HelloRetryRequest is
    /// not one of them.
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
    /// The application protocol the server chose (TLS 1.3: with a key log), escaped.
    #[serde(default)]
    pub alpn_selected: Option<String>,
    pub ja4: Option<String>,
    pub clienthello: Option<ClientHelloInfo>,
    pub certificate: Option<CertInfo>,
    /// The handshake was decrypted with keys from a key log.
    #[serde(default)]
    pub decrypted: bool,
    /// What the handshake says about a client certificate, when it is readable.
    #[serde(default)]
    pub client_certificate: Option<ClientCertInfo>,
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
    /// The TCP round trip (ms): SYN to SYN-ACK where the connection was captured on the
    /// client, SYN-ACK to ACK on the server, SYN to ACK where its capture point is unknown
    /// (its own packets tell it, or `--vantage`).
    pub tcp_rtt_ms: Option<f64>,
    /// From the first ClientHello transmission to the first ServerHello (or
    /// HelloRetryRequest) byte.
    pub server_hello_delay_s: Option<f64>,
    /// From the first SYN to the handshake's end (both sides encrypted).
    pub handshake_s: Option<f64>,
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
    /// Packets of the connection left out of `timeline` (data after the handshake, long
    /// transfers); 0 when the timeline is whole.
    #[serde(default)]
    pub events_not_kept: u32,
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
    /// The TCP round trip of its connections (each as `Connection::tcp_rtt_ms`), when measured.
    pub tcp_rtt_ms: Option<Spread>,
    /// First ClientHello to first ServerHello byte of its connections, when measured.
    pub server_hello_delay_ms: Option<Spread>,
}

/// How a time spreads over a server's connections, in milliseconds: percentiles by nearest
/// rank, exact up to 1,024 connections, beyond that from an HDR histogram (within 1 %); `max`
/// always exact.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    /// Connections measured.
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
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
    /// With a filter (--host, --port, --server): the connections in the capture before it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connections_seen: Option<u64>,
    /// The filter as given on the command line, for words about an empty result.
    #[serde(skip)]
    pub filter: Option<String>,
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
    /// Self-issued, and signed by its own key as far as the key identifiers tell.
    pub self_signed: bool,
    /// What is wrong with the chain, in this order: expired, not_yet_valid, name_mismatch,
    /// self_signed, incomplete_chain.
    #[serde(default)]
    pub problems: Vec<String>,
}

/// A client certificate: whether the server asked for one, whether the client sent one, and
/// its names (escaped for display). Known only where the handshake is readable.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClientCertInfo {
    pub requested: bool,
    /// `None`: asked for, but the client's Certificate message was not read (its flight was
    /// not decrypted or not captured), so whether it sent one is unknown.
    pub sent: Option<bool>,
    pub subject: Option<String>,
    pub issuer: Option<String>,
}
