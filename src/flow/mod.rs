//! Flow: the connection table, Wireshark stream numbers, TCP events and per-direction
//! reassembly feeding the TLS layer; hands settled connections ([`Conn`]) to diagnose.
//!
//! A connection is one Wireshark `tcp.stream`: numbered from 0 in order of first packet; a SYN
//! whose sequence number differs from the base of a known 4-tuple starts a new one (port
//! reuse); an ICMP error joins the stream whose headers it quotes (and starts one if none
//! exists, as Wireshark does). Directions are [`Dir::Orig`] (from the sender of the
//! connection's first packet) and [`Dir::Reply`]; who is client and server is decided when the
//! connection is summarised, from the SYN, the SYN-ACK, the ClientHello or the ports. The same
//! packet recorded twice by `tcpdump -i any` is recognised and counted once.
//!
//! Rooms: [`table`] (the 4-tuple index, stream numbers, port reuse, tombstones, settling),
//! [`syn_only`] (the small record of a connection that is only SYNs so far), [`conn`] (one
//! connection's TCP bookkeeping and what it feeds the TLS layer), [`sender`] (what one
//! endpoint sent), [`event`] (the timeline's events), [`reassembly`] (bounded reassembly).

pub mod conn;
pub mod event;
pub mod reassembly;
pub mod sender;
pub mod syn_only;
pub mod table;

pub use conn::{Conn, IcmpFact};
pub use event::{Event, EventKind, MAX_EVENTS};
pub use sender::Sender;
pub use table::{Drain, Eviction, FlowTable, Settled};

use crate::capture::Nanos;
use std::net::IpAddr;

/// Tunables of the flow layer.
#[derive(Debug, Clone, Copy)]
pub struct FlowConfig {
    /// Bytes of each direction handed to the TLS layer.
    pub reassembly_cap: u64,
    /// Connections open at once before the least recently active are settled early.
    pub max_live: usize,
    /// A closed connection is settled after this much quiet capture time (late ACKs,
    /// retransmitted FINs still join it).
    pub close_linger: Nanos,
    /// An open connection with no packet for this long is settled.
    pub idle_timeout: Nanos,
    /// How long a settled connection's 4-tuple is remembered (so late packets are not a new
    /// stream).
    pub tombstone_timeout: Nanos,
    /// Sweep for settled connections after this many packets...
    pub sweep_packets: u32,
    /// ...and at most once per this much capture time (unless over the live cap).
    pub sweep_interval: Nanos,
}

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            reassembly_cap: 1 << 20,
            max_live: 200_000,
            close_linger: 500_000_000,
            idle_timeout: 300_000_000_000,
            tombstone_timeout: 120_000_000_000,
            sweep_packets: 2048,
            sweep_interval: 250_000_000,
        }
    }
}

/// A direction of a connection: [`Dir::Orig`] from the endpoint that sent the first packet
/// seen (`ends[0]`), [`Dir::Reply`] back (conntrack's words). Arrays of two, one per direction,
/// are indexed by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dir {
    Orig,
    Reply,
}

impl Dir {
    pub const BOTH: [Dir; 2] = [Dir::Orig, Dir::Reply];

    /// The opposite direction.
    pub fn other(self) -> Dir {
        match self {
            Dir::Orig => Dir::Reply,
            Dir::Reply => Dir::Orig,
        }
    }

    /// 0 for `Orig`, 1 for `Reply`.
    pub fn index(self) -> usize {
        self as usize
    }

    /// `Orig` for 0, `Reply` for anything else.
    pub fn from_index(i: usize) -> Dir {
        if i == 0 {
            Dir::Orig
        } else {
            Dir::Reply
        }
    }
}

impl<T> std::ops::Index<Dir> for [T; 2] {
    type Output = T;
    fn index(&self, d: Dir) -> &T {
        &self[d as usize]
    }
}

impl<T> std::ops::IndexMut<Dir> for [T; 2] {
    fn index_mut(&mut self, d: Dir) -> &mut T {
        &mut self[d as usize]
    }
}

/// One end of a connection. Ordered by family (IPv4 first), address, then port: the table
/// keys a 4-tuple by its two endpoints in that order.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Endpoint {
    pub ip: IpAddr,
    pub port: u16,
}

impl Endpoint {
    /// The sender's and the receiver's endpoints of a segment.
    pub fn of_segment(seg: &crate::wire::TcpSegment<'_>) -> (Endpoint, Endpoint) {
        (
            Endpoint {
                ip: seg.ip.src,
                port: seg.sport,
            },
            Endpoint {
                ip: seg.ip.dst,
                port: seg.dport,
            },
        )
    }
}

impl Default for Endpoint {
    /// The unspecified IPv4 address, port 0.
    fn default() -> Self {
        Endpoint {
            ip: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            port: 0,
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.ip {
            IpAddr::V4(a) => write!(f, "{a}:{}", self.port),
            IpAddr::V6(a) => write!(f, "[{a}]:{}", self.port),
        }
    }
}
