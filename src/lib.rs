//! tlsdiag: reads tcpdump captures and says, connection by connection, why TLS handshakes to a
//! backend failed.
//!
//! The pipeline reads top to bottom, one room per stage; no room imports from one above it:
//!
//! ```text
//! capture   pcap/pcapng (gzip, zstd) stream      -> Frame { file, number, ts, linktype, data }
//! wire      link (Ethernet/VLAN, SLL, SLL2, raw, NULL) -> IP (defrag) -> TCP segment | ICMP error
//! flow      connection table, Wireshark stream ids, TCP events, bounded reassembly
//! tls       records and handshake messages over each direction's reassembled prefix
//! diagnose  connection -> facts (client/server terms) -> capture point -> verdict -> record
//! pipeline  the packet and settling threads; store: settled facts, spilled to disk
//! analysis  the Report: connections read back in order, worded for their capture point
//! report    terminal table, JSON / NDJSON, Markdown
//! ```
//!
//! Invariants: payload is copied only into bounded buffers (out-of-order holding, handshake
//! messages); per-packet problems never abort a run; the library never prints; output order is
//! deterministic (by stream); the verdict rules are a pure function of plain facts; nothing
//! is parsed as plaintext after a direction turns encrypted.

pub mod analysis;
pub mod capture;
pub mod compare;
pub mod diagnose;
pub mod escape;
pub mod flow;
pub mod model;
pub mod pipeline;
pub mod redact;
pub mod report;
pub mod store;
pub mod timefmt;
pub mod tls;
pub mod wire;

pub use analysis::Report;
pub use pipeline::{analyze, analyze_live, analyze_with_progress, Options, RedactOptions};
