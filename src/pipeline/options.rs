//! Options: what to analyse and how.

use crate::diagnose::verdict::Side;
use crate::flow::FlowConfig;
use std::net::IpAddr;

/// What to analyse and how.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Forced capture point (`--vantage`).
    pub vantage: Option<Side>,
    /// Keep only connections with this address at either end.
    pub host: Option<IpAddr>,
    /// Keep only connections with this port at either end.
    pub port: Option<u16>,
    /// Keep only connections to this server (address and optional port).
    pub server: Option<(IpAddr, Option<u16>)>,
    pub flow: FlowConfig,
    /// Maximum timeline entries per connection.
    pub timeline_limit: Option<usize>,
    /// Settled connections kept in memory before they are spilled to a temporary file
    /// (0 = the default).
    pub memory_records: usize,
    /// Servers listed in the per-server rollup (0 = [`crate::diagnose::rollup::MAX_SERVERS`]).
    pub max_servers: usize,
    /// Redact addresses and names in everything reported.
    pub redact: Option<RedactOptions>,
    /// Keep each connection's packets for matching against another capture.
    pub trace: bool,
    /// Key logs (NSS format, `--keylog`): their secrets open the records a diagnosis needs.
    pub key_logs: Vec<String>,
}

/// How to redact.
#[derive(Debug, Clone, Default)]
pub struct RedactOptions {
    /// Key for the address and name mapping (same key, same mapping); None = random per run.
    pub key: Option<String>,
    /// Keep SNI and certificate names.
    pub keep_names: bool,
}
