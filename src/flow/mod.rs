//! Flow: the connection table, Wireshark stream numbers, TCP events and per-direction
//! reassembly feeding the TLS layer.
//!
//! A connection is one Wireshark `tcp.stream`: numbered from 0 in order of first packet; a SYN
//! whose sequence number differs from the base of a known 4-tuple starts a new one (port
//! reuse); an ICMP error joins the stream whose headers it quotes (and starts one if none
//! exists, as Wireshark does). Directions are indexed 0 (sender of the connection's first
//! packet) and 1; who is client and server is decided when the connection is summarised, from
//! the SYN, the SYN-ACK, the ClientHello or the ports. The same packet recorded twice by
//! `tcpdump -i any` is recognised and counted once.

pub mod reassembly;

use crate::capture::{FrameRef, Nanos};
use crate::flow::reassembly::{Piece, Reassembler, SeqSpace};
use crate::tls::{TlsConn, TlsFacts};
use crate::wire::{IcmpError, PacketType, QuotedTcp, TcpSegment};
use rustc_hash::FxHashMap;
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

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Endpoint {
    pub ip: IpAddr,
    pub port: u16,
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

/// Order-independent key of a 4-tuple, packed into five words so that hashing and comparing
/// it (once or twice a packet) are a few integer operations: each endpoint's address as a
/// 128-bit integer (high and low halves), then their families and ports. The lower endpoint
/// comes first, lower as `Endpoint` orders them (family, address, port). (Separate fields,
/// not an array: an array's equality is a call to `memcmp`.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FlowKey {
    a_hi: u64,
    a_lo: u64,
    b_hi: u64,
    b_lo: u64,
    families_ports: u64,
}

/// An endpoint as `(family, address, port)`: ordered as `Endpoint` is (IPv4 before IPv6, then
/// the address bytes, then the port).
fn packed(e: Endpoint) -> (u8, u128, u16) {
    match e.ip {
        IpAddr::V4(a) => (0, u128::from(u32::from(a)), e.port),
        IpAddr::V6(a) => (1, u128::from(a), e.port),
    }
}

impl FlowKey {
    /// The key of a packet from `src` to `dst`, and whether `src` is the key's first endpoint.
    fn oriented(src: Endpoint, dst: Endpoint) -> (Self, bool) {
        let (s, d) = (packed(src), packed(dst));
        let src_first = s <= d;
        let ((fa, a, pa), (fb, b, pb)) = if src_first { (s, d) } else { (d, s) };
        let key = FlowKey {
            a_hi: (a >> 64) as u64,
            a_lo: a as u64,
            b_hi: (b >> 64) as u64,
            b_lo: b as u64,
            families_ports: (u64::from(fa) << 40)
                | (u64::from(fb) << 32)
                | (u64::from(pa) << 16)
                | u64::from(pb),
        };
        (key, src_first)
    }
}

/// What happened, in capture order; the report's timeline is built from these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Syn,
    SynAck,
    /// The third packet of the handshake.
    HandshakeAck,
    /// Payload at stream offsets [start, start + len) (wire length).
    Data {
        start: u64,
        len: u32,
    },
    /// A capture copy of an earlier data packet (same IP ID, sequence and flags) carrying
    /// stream offsets [start, start + len): Wireshark shows it as a retransmission; it is not
    /// one.
    Copy {
        start: u64,
        len: u32,
    },
    Fin,
    Rst,
    Icmp {
        v6: bool,
        icmp_type: u8,
        code: u8,
    },
    /// The first acknowledgement covering the whole ClientHello.
    HelloAck,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    pub at: FrameRef,
    /// [`EventKind`], packed: a live connection keeps dozens of events, 32 bytes each.
    start: u64,
    len: u32,
    tag: u8,
    dir: u8,
    icmp_type: u8,
    code: u8,
}

impl Event {
    fn new(at: FrameRef, dir: usize, kind: EventKind) -> Self {
        let (tag, start, len, icmp_type, code) = match kind {
            EventKind::Syn => (0, 0, 0, 0, 0),
            EventKind::SynAck => (1, 0, 0, 0, 0),
            EventKind::HandshakeAck => (2, 0, 0, 0, 0),
            EventKind::Data { start, len } => (3, start, len, 0, 0),
            EventKind::Copy { start, len } => (4, start, len, 0, 0),
            EventKind::Fin => (5, 0, 0, 0, 0),
            EventKind::Rst => (6, 0, 0, 0, 0),
            EventKind::Icmp {
                v6,
                icmp_type,
                code,
            } => (7 + u8::from(v6), 0, 0, icmp_type, code),
            EventKind::HelloAck => (9, 0, 0, 0, 0),
        };
        Event {
            at,
            start,
            len,
            tag,
            dir: u8::from(dir != 0),
            icmp_type,
            code,
        }
    }

    /// Direction of the packet (0: sent by the first endpoint seen).
    pub fn dir(&self) -> usize {
        usize::from(self.dir)
    }

    pub fn kind(&self) -> EventKind {
        let (start, len) = (self.start, self.len);
        match self.tag {
            0 => EventKind::Syn,
            1 => EventKind::SynAck,
            2 => EventKind::HandshakeAck,
            3 => EventKind::Data { start, len },
            4 => EventKind::Copy { start, len },
            5 => EventKind::Fin,
            6 => EventKind::Rst,
            7 | 8 => EventKind::Icmp {
                v6: self.tag == 8,
                icmp_type: self.icmp_type,
                code: self.code,
            },
            _ => EventKind::HelloAck,
        }
    }
}

impl EventKind {
    /// Stream offsets [start, end) of a data event.
    pub fn data_span(self) -> Option<(u64, u64)> {
        match self {
            EventKind::Data { start, len } => Some((start, start + u64::from(len))),
            _ => None,
        }
    }
    /// Stream offsets [start, end) of a capture copy.
    pub fn copy_span(self) -> Option<(u64, u64)> {
        match self {
            EventKind::Copy { start, len } => Some((start, start + u64::from(len))),
            _ => None,
        }
    }
}

/// Events kept per connection: enough for any handshake, bounded for long transfers.
pub const MAX_EVENTS: usize = 96;

/// Room made in the event list when a connection's first data arrives (512 bytes).
const EVENTS_WITH_DATA: usize = 16;

/// An ICMP error that quoted this connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcmpFact {
    pub at: FrameRef,
    pub v6: bool,
    pub icmp_type: u8,
    pub code: u8,
    pub reporter: IpAddr,
    /// Direction of the quoted packet (None if neither endpoint matches, e.g. NAT).
    pub quoted_dir: Option<usize>,
    pub quoted_flags: Option<u8>,
    pub mtu: Option<u32>,
}

/// Recent packets per direction remembered to recognise copies of them.
const RECENT: usize = 4;

/// A stream offset or none, in 8 bytes (an `Option<u64>` takes 16): kept plus one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offset(Option<std::num::NonZeroU64>);

impl Offset {
    pub const NONE: Offset = Offset(None);

    fn new(off: Option<u64>) -> Self {
        // Offsets stay far below 2^64; the largest one would read back one less.
        Offset(off.and_then(|o| std::num::NonZeroU64::new(o.saturating_add(1))))
    }

    pub fn get(self) -> Option<u64> {
        self.0.map(|v| v.get() - 1)
    }
}

/// What one endpoint of a connection sent (one direction).
#[derive(Debug)]
pub struct Sender {
    /// Sequence number of the first packet (Wireshark's base_seq), for port-reuse detection.
    pub first_seq: Option<u32>,
    pub space: Option<SeqSpace>,
    pub reasm: Reassembler,
    pub first_at: Option<FrameRef>,
    pub packets: u32,
    pub syn_count: u32,
    pub syns: [Option<FrameRef>; 2],
    pub synack_count: u32,
    pub synack_seq: Option<u32>,
    /// Distinct initial numbers of the SYN-ACKs sent: the first `synack_seqs_n` (up to 4).
    synack_seqs: [u32; 4],
    synack_seqs_n: u8,
    pub payload_segments: u32,
    pub payload_bytes: u64,
    /// One past the highest stream offset sent.
    pub max_end: u64,
    pub retransmissions: u32,
    pub max_segment: u32,
    /// Retransmitted segments at the largest size seen (a path-MTU black hole's mark).
    pub full_size_retransmissions: u32,
    /// Highest stream offset of this direction the peer acknowledged.
    pub acked: Offset,
    /// The peer sent SACK blocks about this direction (it saw a hole).
    pub sacked: bool,
    pub fin: Option<FrameRef>,
    /// Stream offset the FIN occupies (= bytes sent before it).
    pub fin_offset: Offset,
    pub fin_count: u32,
    pub rst: Option<FrameRef>,
    pub rst_offset: Offset,
    pub rst_count: u32,
    /// TTL of the first RST, and whether it lacked the TCP timestamp option.
    pub rst_ttl: Option<u8>,
    pub rst_without_ts: bool,
    /// Some packet other than a RST carried TCP timestamps.
    pub ts_seen: bool,
    pub ttl: Option<u8>,
    pub pkttype: Option<PacketType>,
    pub mss: Option<u16>,
    /// TSval of the first SYN or SYN-ACK.
    pub syn_tsval: Option<u32>,
    /// Payload cut by the snaplen in some segment.
    pub payload_truncated: bool,
    pub header_truncated: u32,
    /// `-i any` duplicates ignored.
    pub duplicates: u32,
    /// Of those, copies of a SYN (Wireshark counts them as SYN retransmissions).
    pub syn_copies: u32,
    /// The last few packets sent (fingerprint, time, interface), to recognise copies of them;
    /// an unused entry's time is `Nanos::MIN`, too long ago to match anything.
    recent_sig: [u64; RECENT],
    recent_ts: [Nanos; RECENT],
    recent_iface: [u32; RECENT],
    recent_next: u8,
}

/// What tells a packet apart from the other recent packets of its direction: sequence and
/// acknowledgement numbers, flags, length, IP ID, checksum and window, mixed into 64 bits (a
/// chance collision within the few milliseconds a copy is looked for: about 2^-62).
fn fingerprint(seg: &TcpSegment<'_>) -> u64 {
    fn mix(mut z: u64) -> u64 {
        // SplitMix64's finaliser: a bijection that spreads every input bit.
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    let w1 = (u64::from(seg.seq) << 32) | u64::from(seg.ack);
    let w2 =
        (u64::from(seg.wire_len) << 32) | (u64::from(seg.checksum) << 16) | u64::from(seg.window);
    let w3 = (u64::from(seg.ip.id.unwrap_or(0)) << 9)
        | (u64::from(seg.ip.id.is_some()) << 8)
        | u64::from(seg.flags);
    mix(w1 ^ mix(w2 ^ mix(w3)))
}

impl Sender {
    /// Distinct initial numbers of the SYN-ACKs sent (the first four).
    fn synack_seqs(&self) -> &[u32] {
        &self.synack_seqs[..usize::from(self.synack_seqs_n).min(self.synack_seqs.len())]
    }

    fn new(cap: u64) -> Self {
        Sender {
            first_seq: None,
            space: None,
            reasm: Reassembler::new(cap),
            first_at: None,
            packets: 0,
            syn_count: 0,
            syns: [None, None],
            synack_count: 0,
            synack_seq: None,
            synack_seqs: [0; 4],
            synack_seqs_n: 0,
            payload_segments: 0,
            payload_bytes: 0,
            max_end: 0,
            retransmissions: 0,
            max_segment: 0,
            full_size_retransmissions: 0,
            acked: Offset::NONE,
            sacked: false,
            fin: None,
            fin_offset: Offset::NONE,
            fin_count: 0,
            rst: None,
            rst_offset: Offset::NONE,
            rst_count: 0,
            ttl: None,
            pkttype: None,
            mss: None,
            payload_truncated: false,
            header_truncated: 0,
            duplicates: 0,
            syn_copies: 0,
            syn_tsval: None,
            rst_ttl: None,
            rst_without_ts: false,
            ts_seen: false,
            recent_sig: [0; RECENT],
            recent_ts: [Nanos::MIN; RECENT],
            recent_iface: [0; RECENT],
            recent_next: 0,
        }
    }
}

/// A TCP connection under analysis.
#[derive(Debug)]
pub struct Conn {
    pub stream: u64,
    /// `ends[0]` sent the first packet seen; direction `d` goes from `ends[d]` to `ends[1-d]`.
    pub ends: [Endpoint; 2],
    pub dirs: [Sender; 2],
    /// Created with the first payload byte: most connections of a SYN flood never get one.
    tls: Option<Box<TlsConn>>,
    /// Directions that began mid-stream (for the TLS layer, once it exists).
    midstream: [bool; 2],
    pub first: FrameRef,
    pub last: FrameRef,
    /// Direction of the first pure SYN, of the first SYN-ACK.
    pub syn_dir: Option<u8>,
    pub synack_dir: Option<u8>,
    pub handshake_ack: Option<FrameRef>,
    pub icmp: Vec<IcmpFact>,
    pub events: Vec<Event>,
    pub events_dropped: u32,
    /// The connection exists only because an ICMP error quoted it.
    pub icmp_only: bool,
    hello_ack_logged: bool,
}

impl Conn {
    fn new(stream: u64, src: Endpoint, dst: Endpoint, at: FrameRef, cfg: &FlowConfig) -> Self {
        Conn {
            stream,
            ends: [src, dst],
            dirs: [
                Sender::new(cfg.reassembly_cap),
                Sender::new(cfg.reassembly_cap),
            ],
            tls: None,
            midstream: [false; 2],
            first: at,
            last: at,
            syn_dir: None,
            synack_dir: None,
            handshake_ack: None,
            icmp: Vec::new(),
            events: Vec::new(),
            events_dropped: 0,
            icmp_only: false,
            hello_ack_logged: false,
        }
    }

    /// What the TLS layer learnt (nothing, before the first payload byte).
    pub fn tls_facts(&self) -> &TlsFacts {
        static NOTHING: std::sync::OnceLock<TlsFacts> = std::sync::OnceLock::new();
        match &self.tls {
            Some(t) => &t.facts,
            None => NOTHING.get_or_init(TlsFacts::default),
        }
    }

    fn tls_wants(&self, d: usize) -> bool {
        self.tls.as_ref().is_none_or(|t| t.wants(d))
    }

    /// RST seen, or FIN both ways.
    pub fn is_closed(&self) -> bool {
        self.dirs.iter().any(|d| d.rst.is_some()) || self.dirs.iter().all(|d| d.fin.is_some())
    }

    fn log(&mut self, at: FrameRef, dir: usize, kind: EventKind) {
        // Teardown and errors are always kept; data only while there is room and while the
        // handshake is still open.
        let essential = !matches!(kind, EventKind::Data { .. } | EventKind::Copy { .. });
        if !essential && self.tls_facts().handshake_done.is_some() {
            self.events_dropped += 1;
            return;
        }
        if self.events.len() < MAX_EVENTS || (essential && self.events.len() < MAX_EVENTS + 16) {
            self.events.push(Event::new(at, dir, kind));
        } else {
            self.events_dropped += 1;
        }
    }

    fn on_segment(
        &mut self,
        d: usize,
        seg: &TcpSegment<'_>,
        at: FrameRef,
        iface: u32,
        pkttype: Option<PacketType>,
    ) {
        let o = 1 - d;
        // `tcpdump -i any` records a forwarded or bridged packet once per interface.
        let sig = fingerprint(seg);
        // A retransmission takes a new IPv4 ID (and at least a 200 ms RTO or a ~10 ms
        // tail-loss probe); an identical packet with the same non-zero ID is a copy.
        let same_id = seg.ip.id.is_some_and(|id| id != 0);
        let dir = &self.dirs[d];
        let copy = (0..RECENT).any(|i| {
            // The fingerprint first: it almost never matches, and then no time is compared.
            dir.recent_sig[i] == sig && {
                let dt = at.ts.saturating_sub(dir.recent_ts[i]);
                dt <= 2_000_000
                    || (same_id && dt <= 200_000_000)
                    || (dir.recent_iface[i] != iface && dt <= 50_000_000)
            }
        });
        if copy {
            let dir = &mut self.dirs[d];
            dir.duplicates += 1;
            if seg.syn() && !seg.has_ack() {
                dir.syn_copies += 1;
            }
            let data_seq = seg.seq.wrapping_add(u32::from(seg.syn()));
            if let Some(off) = dir.space.as_ref().and_then(|s| s.peek(data_seq)) {
                if seg.wire_len > 0 {
                    let len = seg.wire_len;
                    self.log(at, d, EventKind::Copy { start: off, len });
                }
            }
            self.last = at;
            return;
        }
        let dir = &mut self.dirs[d];
        let slot = usize::from(dir.recent_next) % RECENT;
        (
            dir.recent_sig[slot],
            dir.recent_ts[slot],
            dir.recent_iface[slot],
        ) = (sig, at.ts, iface);
        dir.recent_next = ((slot + 1) % RECENT) as u8;
        self.last = at;
        self.icmp_only = false;

        let dir = &mut self.dirs[d];
        dir.packets += 1;
        dir.first_at.get_or_insert(at);
        dir.first_seq.get_or_insert(seg.seq);
        if dir.ttl.is_none() {
            dir.ttl = Some(seg.ip.ttl);
        }
        if dir.pkttype.is_none() {
            dir.pkttype = pkttype;
        }
        if seg.header_truncated {
            dir.header_truncated += 1;
        }

        if seg.syn() {
            if dir.space.is_none() || dir.syn_count + dir.synack_count == 0 {
                dir.space = Some(SeqSpace::new(seg.seq.wrapping_add(1)));
            }
            dir.mss = dir.mss.or(seg.mss());
            if dir.syn_tsval.is_none() {
                dir.syn_tsval = seg.timestamps().map(|(v, _)| v);
            }
            if seg.has_ack() {
                dir.synack_count += 1;
                dir.synack_seq.get_or_insert(seg.seq);
                let n = dir.synack_seqs().len();
                if n < dir.synack_seqs.len() && !dir.synack_seqs().contains(&seg.seq) {
                    dir.synack_seqs[n] = seg.seq;
                    dir.synack_seqs_n += 1;
                }
                self.synack_dir.get_or_insert(d as u8);
                self.log(at, d, EventKind::SynAck);
            } else {
                dir.syn_count += 1;
                if dir.syns[0].is_none() {
                    dir.syns[0] = Some(at);
                }
                dir.syns[1] = Some(at);
                self.syn_dir.get_or_insert(d as u8);
                self.log(at, d, EventKind::Syn);
            }
        } else if seg.has_ack() && !seg.rst() && self.handshake_ack.is_none() {
            // The client acknowledges one SYN-ACK; when the server sent several with different
            // numbers, the acknowledged one is the connection's (re-anchor before any data).
            let peer = &mut self.dirs[o];
            if let Some(&s) = peer
                .synack_seqs()
                .iter()
                .find(|s| s.wrapping_add(1) == seg.ack)
            {
                if peer.synack_seq != Some(s) && peer.payload_segments == 0 {
                    peer.synack_seq = Some(s);
                    peer.space = Some(SeqSpace::new(s.wrapping_add(1)));
                }
                self.handshake_ack = Some(at);
                self.log(at, d, EventKind::HandshakeAck);
            }
        }

        // What the peer has received of the other direction.
        if seg.has_ack() && !seg.header_truncated {
            let peer = &mut self.dirs[o];
            if let Some(space) = &peer.space {
                if let Some(off) = space.peek(seg.ack) {
                    if off <= peer.max_end + 1 {
                        peer.acked =
                            Offset::new(Some(peer.acked.get().map_or(off, |a| a.max(off))));
                    }
                }
            }
            if seg.sack_blocks().next().is_some() {
                peer.sacked = true;
            }
            let acked = peer.acked.get();
            let f = self.tls_facts();
            if !self.hello_ack_logged && f.ch_dir == Some(o) {
                if let (Some((_, end)), Some(a)) = (f.ch_range, acked) {
                    if a >= end {
                        self.hello_ack_logged = true;
                        self.log(at, d, EventKind::HelloAck);
                    }
                }
            }
        }

        let dir = &mut self.dirs[d];
        let carries_data = seg.wire_len > 0;
        if dir.space.is_none() && (carries_data || seg.fin() || seg.rst() || seg.has_ack()) {
            // Joined mid-stream: the first sequence number seen is offset 0.
            dir.space = Some(SeqSpace::new(seg.seq));
            if dir.syn_count + dir.synack_count == 0 {
                self.midstream[d] = true;
                if let Some(t) = self.tls.as_mut() {
                    t.set_midstream(d);
                }
            }
        }
        let dir = &mut self.dirs[d];
        let data_seq = if seg.syn() {
            seg.seq.wrapping_add(1)
        } else {
            seg.seq
        };
        let off = dir.space.as_mut().and_then(|s| s.offset(data_seq));
        if carries_data {
            if let Some(off) = off {
                let end = off + u64::from(seg.wire_len);
                dir.payload_segments += 1;
                dir.payload_bytes += u64::from(seg.wire_len);
                if off < dir.max_end {
                    dir.retransmissions += 1;
                    if seg.wire_len >= dir.max_segment && seg.wire_len >= 512 {
                        dir.full_size_retransmissions += 1;
                    }
                }
                dir.max_segment = dir.max_segment.max(seg.wire_len);
                dir.max_end = dir.max_end.max(end);
                if seg.payload_truncated() {
                    dir.payload_truncated = true;
                }
                // A connection that carries data logs a dozen events or more: room for them
                // at once rather than by doubling (one connecting to nothing stays small).
                if self.events.capacity() < EVENTS_WITH_DATA {
                    self.events
                        .reserve_exact(EVENTS_WITH_DATA.saturating_sub(self.events.len()));
                }
                self.log(
                    at,
                    d,
                    EventKind::Data {
                        start: off,
                        len: seg.wire_len,
                    },
                );
                if self.tls_wants(d) {
                    let midstream = self.midstream;
                    let tls = self.tls.get_or_insert_with(|| {
                        let mut t = Box::new(TlsConn::new());
                        for (d, m) in midstream.into_iter().enumerate() {
                            if m {
                                t.set_midstream(d);
                            }
                        }
                        t
                    });
                    let reasm = &mut self.dirs[d].reasm;
                    if off < reasm.delivered() && tls.restart_on_hello(d, off, seg.payload) {
                        reasm.rewind(off);
                    }
                    let mut sink = |p: Piece<'_>, from: FrameRef| tls.feed_piece(d, p, from);
                    reasm.push(off, seg.payload, at, &mut sink);
                    let cut = u64::from(seg.wire_len).saturating_sub(seg.payload.len() as u64);
                    if cut > 0 {
                        reasm.push_missing(off + seg.payload.len() as u64, cut, at, &mut sink);
                    }
                    if !tls.wants(d) {
                        self.dirs[d].reasm.close();
                    }
                }
            }
        }
        let dir = &mut self.dirs[d];
        if seg.fin() {
            dir.fin_count += 1;
            if dir.fin.is_none() {
                dir.fin = Some(at);
                dir.fin_offset = Offset::new(off.map(|o| o + u64::from(seg.wire_len)));
                self.log(at, d, EventKind::Fin);
            }
        }
        let dir = &mut self.dirs[d];
        // Options are walked only until the first packet with timestamps.
        if !dir.ts_seen && !seg.rst() && seg.timestamps().is_some() {
            dir.ts_seen = true;
        }
        if seg.rst() {
            dir.rst_count += 1;
            if dir.rst.is_none() {
                dir.rst = Some(at);
                dir.rst_offset = Offset::new(off);
                dir.rst_ttl = Some(seg.ip.ttl);
                dir.rst_without_ts = seg.timestamps().is_none();
                self.log(at, d, EventKind::Rst);
            }
        }
    }

    /// End of capture: skip unfilled holes so data behind them still reaches the TLS layer.
    pub fn finish(&mut self) {
        let Some(tls) = self.tls.as_mut() else {
            return;
        };
        for d in 0..2 {
            let reasm = &mut self.dirs[d].reasm;
            while reasm.has_held() {
                if reasm
                    .skip_gap(&mut |p, from| tls.feed_piece(d, p, from))
                    .is_none()
                {
                    break;
                }
            }
        }
        tls.finish([self.dirs[0].first_at, self.dirs[1].first_at]);
    }
}

/// Index entry of a live connection's 4-tuple: the stream it maps to, and what port-reuse
/// detection needs.
#[derive(Debug, Clone, Copy)]
struct Slot {
    stream: u64,
    /// Where its connection lives in [`FlowTable::live`].
    at: u32,
    /// The 4-tuple's first packet (`ends[0]` of the connection) came from the key's first
    /// (lower) endpoint, else from its second: how packets are oriented.
    first_from_key0: bool,
    first_seq: [Option<u32>; 2],
}

/// What is remembered of a settled connection's 4-tuple, so its late packets are not taken
/// for a new stream: 16 bytes under a 64-bit hash of the 4-tuple (a busy capture holds tens
/// of thousands). Sequence numbers are indexed by the direction leaving the lower endpoint.
#[derive(Debug, Clone, Copy)]
struct Tomb {
    /// Initial sequence number per direction; bit `d` of `known` says whether it is known.
    first_seq: [u32; 2],
    known: u8,
    /// Capture time of the last packet, in whole seconds since the epoch (saturating).
    last_s: u32,
}

impl Tomb {
    fn new(first_seq: [Option<u32>; 2], last_ts: Nanos) -> Self {
        Tomb {
            first_seq: first_seq.map(|s| s.unwrap_or(0)),
            known: u8::from(first_seq[0].is_some()) | (u8::from(first_seq[1].is_some()) << 1),
            last_s: secs(last_ts),
        }
    }
    fn first_seq(&self, d: usize) -> Option<u32> {
        (self.known >> d & 1 == 1).then(|| self.first_seq[d & 1])
    }
}

/// Whole seconds since the epoch, clamped to `u32`.
fn secs(ts: Nanos) -> u32 {
    (ts / 1_000_000_000).clamp(0, i64::from(u32::MAX)) as u32
}

/// Identity of a 4-tuple among tombstones: SipHash with fixed keys, so the same in every run.
fn tomb_id(key: &FlowKey) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    key.hash(&mut h);
    h.finish()
}

/// A live connection with the two facts a sweep reads, kept beside it so a sweep scans the
/// table without touching thousands of connections in memory.
#[derive(Debug)]
struct Live {
    stream: u64,
    last_ts: Nanos,
    closed: bool,
    conn: Box<Conn>,
}

/// The live connections, each in a numbered place that its 4-tuple's index entry names: a
/// packet reaches its connection with one hash lookup, not two. Places are reused; each one
/// is checked against the stream number, so a stale position finds nothing.
#[derive(Debug, Default)]
struct Slab {
    places: Vec<Option<Live>>,
    free: Vec<u32>,
    len: usize,
}

impl Slab {
    fn insert(&mut self, l: Live) -> u32 {
        self.len += 1;
        match self.free.pop() {
            Some(i) => {
                if let Some(p) = self.places.get_mut(i as usize) {
                    *p = Some(l);
                }
                i
            }
            None => {
                self.places.push(Some(l));
                (self.places.len() - 1) as u32
            }
        }
    }
    fn get(&self, at: u32, stream: u64) -> Option<&Live> {
        self.places
            .get(at as usize)?
            .as_ref()
            .filter(|l| l.stream == stream)
    }
    fn get_mut(&mut self, at: u32, stream: u64) -> Option<&mut Live> {
        self.places
            .get_mut(at as usize)?
            .as_mut()
            .filter(|l| l.stream == stream)
    }
    fn remove(&mut self, at: u32, stream: u64) -> Option<Live> {
        let p = self.places.get_mut(at as usize)?;
        if p.as_ref().is_none_or(|l| l.stream != stream) {
            return None;
        }
        self.len -= 1;
        self.free.push(at);
        p.take()
    }
    /// Every live connection with its position, in position order.
    fn iter(&self) -> impl Iterator<Item = (u32, &Live)> {
        self.places
            .iter()
            .enumerate()
            .filter_map(|(i, p)| Some((i as u32, p.as_ref()?)))
    }
    fn drain(&mut self) -> impl Iterator<Item = Live> + '_ {
        self.len = 0;
        self.free.clear();
        self.places.drain(..).flatten()
    }
}

impl Live {
    fn update(&mut self) {
        self.last_ts = self.conn.last.ts;
        self.closed = self.conn.is_closed();
    }
}

/// How often (capture time) a sweep looks for idle connections and expired tombstones: both
/// timeouts are minutes, so a few seconds late is nothing, and the scan visits every entry.
const IDLE_SCAN: Nanos = 5_000_000_000;

/// Why a connection left the table early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eviction {
    /// Closed (RST, or FIN both ways) and quiet since.
    Closed,
    /// No packet for the idle timeout.
    Idle,
    /// The live-connection cap was reached and this was the least recently active.
    Cap,
}

/// All connections of a capture, by first packet. Settled connections are handed out by
/// [`sweep`](FlowTable::sweep) so their state can be freed; a small tombstone keeps their
/// 4-tuple so late packets do not open a new stream.
#[derive(Debug, Default)]
pub struct FlowTable {
    cfg: FlowConfig,
    index: FxHashMap<FlowKey, Slot>,
    live: Slab,
    tombs: FxHashMap<u64, Tomb>,
    /// Connections (position, stream) that closed (RST, or FIN both ways) and may soon be
    /// settled.
    closing: Vec<(u32, u64)>,
    /// Capture time of the last scan for idle connections and old tombstones.
    last_scan: Nanos,
    next_stream: u64,
    /// Packets of connections already settled and freed.
    pub late_packets: u64,
    pub evicted_by_cap: u64,
    pub evicted_idle: u64,
    /// Times the tombstones were forgotten because there were too many.
    pub tombstones_dropped: u64,
    /// Allocations of settled connections, given back to be reused (see [`FlowTable::recycle`]).
    #[allow(clippy::vec_box)] // the boxes are what is reused
    spare: Vec<Box<Conn>>,
}

/// Settled connections kept for reuse.
const SPARE_MAX: usize = 256;

impl FlowTable {
    pub fn new(cfg: FlowConfig) -> Self {
        FlowTable {
            cfg,
            ..Default::default()
        }
    }

    /// Connections currently open in the table.
    pub fn live(&self) -> usize {
        self.live.len
    }

    /// Opens a stream for a packet from `src` to `dst` (`key`, `from_key0`: its oriented key).
    fn open(
        &mut self,
        (src, dst): (Endpoint, Endpoint),
        key: FlowKey,
        from_key0: bool,
        at: FrameRef,
    ) -> (u64, u32) {
        let stream = self.next_stream;
        self.next_stream += 1;
        let place = self.live.insert(Live {
            stream,
            last_ts: at.ts,
            closed: false,
            conn: match self.spare.pop() {
                Some(mut b) => {
                    *b = Conn::new(stream, src, dst, at, &self.cfg);
                    b
                }
                None => Box::new(Conn::new(stream, src, dst, at, &self.cfg)),
            },
        });
        self.index.insert(
            key,
            Slot {
                stream,
                at: place,
                first_from_key0: from_key0,
                first_seq: [None, None],
            },
        );
        (stream, place)
    }

    /// Takes back settled connections, done with: their allocation is reused for a new
    /// connection and what they hold is freed here, by the thread that allocated it. (With
    /// glibc, memory freed by the summarising thread contends for the packet thread's arena
    /// lock on every allocation; that was a tenth of the packet thread.)
    pub fn recycle(&mut self, conns: impl IntoIterator<Item = Box<Conn>>) {
        for mut c in conns {
            if self.spare.len() < SPARE_MAX {
                let (ends, first) = (c.ends, c.first);
                *c = Conn::new(0, ends[0], ends[1], first, &self.cfg);
                self.spare.push(c);
            }
        }
    }

    /// Adds one TCP segment.
    pub fn tcp(
        &mut self,
        seg: &TcpSegment<'_>,
        at: FrameRef,
        iface: u32,
        pkttype: Option<PacketType>,
    ) {
        let src = Endpoint {
            ip: seg.ip.src,
            port: seg.sport,
        };
        let dst = Endpoint {
            ip: seg.ip.dst,
            port: seg.dport,
        };
        let (key, from_key0) = FlowKey::oriented(src, dst);
        // One hash lookup per packet on the common path: the slot is only written again when
        // a direction's first sequence number becomes known. `d`: the packet's direction in
        // its connection (0 for the packet that opens one).
        let pure_syn = seg.syn() && !seg.has_ack();
        let ((stream, place), seq_known, d) = match self.index.get(&key) {
            Some(slot) => {
                let d = usize::from(from_key0 != slot.first_from_key0);
                // Port reuse: a SYN with a new ISN on a known 4-tuple is a new stream.
                if pure_syn && slot.first_seq[d].is_some_and(|s| s != seg.seq) {
                    (self.open((src, dst), key, from_key0, at), false, 0)
                } else {
                    ((slot.stream, slot.at), slot.first_seq[d].is_some(), d)
                }
            }
            None => {
                if !self.tombs.is_empty() {
                    let id = tomb_id(&key);
                    if let Some(t) = self.tombs.get_mut(&id) {
                        let d = usize::from(!from_key0);
                        if !(pure_syn && t.first_seq(d).is_some_and(|s| s != seg.seq)) {
                            self.late_packets += 1;
                            t.last_s = secs(at.ts);
                            return;
                        }
                        self.tombs.remove(&id);
                    }
                }
                (self.open((src, dst), key, from_key0, at), false, 0)
            }
        };
        let Some(live) = self.live.get_mut(place, stream) else {
            return;
        };
        let c = &mut live.conn;
        c.on_segment(d, seg, at, iface, pkttype);
        let was_closed = live.closed;
        live.update();
        if live.closed && !was_closed {
            self.closing.push((place, stream));
        }
        let c = &live.conn;
        if !seq_known {
            if let Some(slot) = self.index.get_mut(&key) {
                slot.first_seq = [c.dirs[0].first_seq, c.dirs[1].first_seq];
            }
        }
    }

    /// Adds an ICMP error; it joins the connection whose headers it quotes.
    pub fn icmp(&mut self, e: &IcmpError, at: FrameRef) {
        let Some(q): Option<QuotedTcp> = e.quoted else {
            return;
        };
        let src = Endpoint {
            ip: q.src,
            port: q.sport,
        };
        let dst = Endpoint {
            ip: q.dst,
            port: q.dport,
        };
        let (key, from_key0) = FlowKey::oriented(src, dst);
        let ((stream, place), d) = match self.index.get(&key) {
            Some(slot) => (
                (slot.stream, slot.at),
                usize::from(from_key0 != slot.first_from_key0),
            ),
            None if !self.tombs.is_empty() && self.tombs.contains_key(&tomb_id(&key)) => {
                self.late_packets += 1;
                return;
            }
            None => {
                let (s, p) = self.open((src, dst), key, from_key0, at);
                if let Some(l) = self.live.get_mut(p, s) {
                    l.conn.icmp_only = true;
                }
                ((s, p), 0)
            }
        };
        let Some(live) = self.live.get_mut(place, stream) else {
            return;
        };
        let c = &mut live.conn;
        let quoted_dir = Some(d);
        c.last = at;
        if c.icmp.len() < 8 {
            c.icmp.push(IcmpFact {
                at,
                v6: e.v6,
                icmp_type: e.icmp_type,
                code: e.code,
                reporter: e.ip.src,
                quoted_dir,
                quoted_flags: q.flags,
                mtu: e.mtu,
            });
        }
        c.log(
            at,
            d,
            EventKind::Icmp {
                v6: e.v6,
                icmp_type: e.icmp_type,
                code: e.code,
            },
        );
        live.update();
    }

    /// Hands out connections whose outcome is settled at capture time `now`: closed ones quiet
    /// for [`FlowConfig::close_linger`], idle ones past [`FlowConfig::idle_timeout`], and the
    /// least recently active beyond [`FlowConfig::max_live`]. Forgets old tombstones.
    pub fn sweep(&mut self, now: Nanos, out: &mut Vec<(Box<Conn>, Eviction)>) {
        let cfg = self.cfg;
        let mut gone: Vec<(u32, u64, Eviction)> = Vec::new();
        // Closed connections come from the list of those that closed: a sweep does not visit
        // every open connection.
        let live = &self.live;
        self.closing
            .retain(|&(place, stream)| match live.get(place, stream) {
                Some(l) if l.closed => {
                    let quiet = now.saturating_sub(l.last_ts) >= cfg.close_linger;
                    if quiet {
                        gone.push((place, stream, Eviction::Closed));
                    }
                    !quiet
                }
                _ => false,
            });
        // Idle connections and old tombstones: a full scan every [`IDLE_SCAN`] of capture time.
        let scan = now.saturating_sub(self.last_scan) >= IDLE_SCAN;
        if scan {
            self.last_scan = now;
            for (place, l) in self.live.iter() {
                if !l.closed && now.saturating_sub(l.last_ts) >= cfg.idle_timeout {
                    gone.push((place, l.stream, Eviction::Idle));
                }
            }
        }
        let over = (self.live.len - gone.len()).saturating_sub(cfg.max_live);
        if over > 0 {
            // Evict down to 90 % of the cap, least recently active first.
            let target = over + cfg.max_live / 10;
            let leaving: rustc_hash::FxHashSet<u64> = gone.iter().map(|(_, s, _)| *s).collect();
            let mut candidates: Vec<(Nanos, u64, u32)> = self
                .live
                .iter()
                .filter(|(_, l)| !leaving.contains(&l.stream))
                .map(|(place, l)| (l.last_ts, l.stream, place))
                .collect();
            candidates.sort_unstable();
            gone.extend(
                candidates
                    .into_iter()
                    .take(target)
                    .map(|(_, s, place)| (place, s, Eviction::Cap)),
            );
        }
        for (place, stream, why) in gone {
            if let Some(Live { conn: c, .. }) = self.live.remove(place, stream) {
                match why {
                    Eviction::Cap => self.evicted_by_cap += 1,
                    Eviction::Idle => self.evicted_idle += 1,
                    Eviction::Closed => {}
                }
                let (key, first_is_key0) = FlowKey::oriented(c.ends[0], c.ends[1]);
                // A connection superseded by port reuse no longer owns its 4-tuple.
                if self
                    .index
                    .get(&key)
                    .is_some_and(|slot| slot.stream == stream)
                {
                    self.index.remove(&key);
                    let seqs = [c.dirs[0].first_seq, c.dirs[1].first_seq];
                    let first_seq = if first_is_key0 {
                        seqs
                    } else {
                        [seqs[1], seqs[0]]
                    };
                    self.tombs
                        .insert(tomb_id(&key), Tomb::new(first_seq, c.last.ts));
                }
                out.push((c, why));
            }
        }
        if scan {
            let keep = cfg.tombstone_timeout / 1_000_000_000;
            let now = i64::from(secs(now));
            self.tombs
                .retain(|_, t| now.saturating_sub(i64::from(t.last_s)) < keep);
        }
        // Bounded like the live table: under a flood of short connections, forget all
        // tombstones rather than grow (a late packet may then open a new stream).
        if self.index.len() + self.tombs.len() > 2 * cfg.max_live.max(1024) {
            self.tombs = FxHashMap::default();
            self.tombstones_dropped += 1;
        }
    }

    /// Ends the capture: every connection still open, finished.
    pub fn drain(&mut self) -> Vec<Box<Conn>> {
        let mut v: Vec<Box<Conn>> = self.live.drain().map(|l| l.conn).collect();
        v.sort_by_key(|c| c.stream);
        self.index.clear();
        self.tombs.clear();
        self.closing.clear();
        for c in &mut v {
            c.finish();
        }
        v
    }

    /// Ends the capture and returns every connection (for tests and small captures).
    pub fn into_connections(mut self) -> Vec<Box<Conn>> {
        self.drain()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{tcp_flags as F, IpInfo};
    use std::net::Ipv4Addr;

    fn seg(from_client: bool, seq: u32, ack: u32, flags: u8, payload: &[u8]) -> TcpSegment<'_> {
        let c = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let s = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        let (src, dst, sport, dport) = if from_client {
            (c, s, 40000, 443)
        } else {
            (s, c, 443, 40000)
        };
        TcpSegment {
            ip: IpInfo {
                src,
                dst,
                ttl: 64,
                id: None,
            },
            sport,
            dport,
            seq,
            ack,
            flags,
            window: 1000,
            checksum: (seq as u16) ^ u16::from(flags),
            options: &[],
            payload,
            wire_len: payload.len() as u32,
            header_truncated: false,
        }
    }

    fn at(n: u64) -> FrameRef {
        FrameRef::new(0, n, n as i64 * 100_000_000)
    }

    #[test]
    fn handshake_then_unacked_data_counts_retransmissions() {
        let mut t = FlowTable::new(FlowConfig::default());
        t.tcp(&seg(true, 100, 0, F::SYN, b""), at(1), 0, None);
        t.tcp(&seg(false, 500, 101, F::SYN | F::ACK, b""), at(2), 0, None);
        t.tcp(&seg(true, 101, 501, F::ACK, b""), at(3), 0, None);
        t.tcp(
            &seg(true, 101, 501, F::ACK | F::PSH, b"hello"),
            at(4),
            0,
            None,
        );
        t.tcp(
            &seg(true, 101, 501, F::ACK | F::PSH, b"hello"),
            at(5),
            0,
            None,
        );
        t.tcp(&seg(true, 106, 501, F::ACK | F::FIN, b""), at(6), 0, None);
        let conns = t.into_connections();
        assert_eq!(conns.len(), 1);
        let c = &conns[0];
        assert_eq!(c.syn_dir, Some(0));
        assert_eq!(c.handshake_ack, Some(at(3)));
        assert_eq!(c.dirs[0].payload_segments, 2);
        assert_eq!(c.dirs[0].retransmissions, 1);
        assert_eq!(c.dirs[0].acked.get(), Some(0)); // the SYN only
        assert_eq!(c.dirs[0].fin_offset.get(), Some(5));
    }

    #[test]
    fn syn_with_new_isn_on_known_tuple_starts_new_stream() {
        let mut t = FlowTable::new(FlowConfig::default());
        t.tcp(&seg(true, 100, 0, F::SYN, b""), at(1), 0, None);
        t.tcp(&seg(true, 100, 0, F::SYN, b""), at(12), 0, None); // retransmission: same stream
        t.tcp(&seg(true, 9000, 0, F::SYN, b""), at(30), 0, None); // new ISN
        let conns = t.into_connections();
        assert_eq!(conns.len(), 2);
        assert_eq!(conns[0].dirs[0].syn_count, 2);
        assert_eq!(conns[1].stream, 1);
    }

    #[test]
    fn events_pack_every_kind_into_32_bytes() {
        assert_eq!(std::mem::size_of::<Event>(), 32);
        let kinds = [
            EventKind::Syn,
            EventKind::SynAck,
            EventKind::HandshakeAck,
            EventKind::Data {
                start: u64::MAX - 7,
                len: u32::MAX,
            },
            EventKind::Copy { start: 3, len: 9 },
            EventKind::Fin,
            EventKind::Rst,
            EventKind::Icmp {
                v6: false,
                icmp_type: 3,
                code: 13,
            },
            EventKind::Icmp {
                v6: true,
                icmp_type: 1,
                code: 4,
            },
            EventKind::HelloAck,
        ];
        for (i, k) in kinds.into_iter().enumerate() {
            let e = Event::new(at(i as u64), i % 2, k);
            assert_eq!((e.kind(), e.dir(), e.at), (k, i % 2, at(i as u64)));
        }
    }

    /// A settled connection's allocation is reused for the next one: nothing of the old
    /// connection may show through.
    #[test]
    fn a_reused_connection_starts_blank() {
        let hello = [0x16, 3, 1, 0, 5, 1, 0, 0, 1, 0];
        let steps = |t: &mut FlowTable| {
            t.tcp(&seg(true, 100, 0, F::SYN, b""), at(1), 0, None);
            t.tcp(&seg(false, 500, 101, F::SYN | F::ACK, b""), at(2), 0, None);
            t.tcp(&seg(true, 101, 501, F::ACK, &hello), at(3), 0, None);
            t.tcp(&seg(false, 501, 111, F::RST, b""), at(4), 0, None);
        };
        let shown = |mut v: Vec<Box<Conn>>| {
            v.iter_mut().for_each(|c| c.stream = 0);
            format!("{v:?}")
        };
        let mut fresh = FlowTable::new(FlowConfig::default());
        steps(&mut fresh);
        let want = shown(fresh.drain());
        let mut used = FlowTable::new(FlowConfig::default());
        steps(&mut used);
        let old = used.drain();
        assert!(old[0].tls.is_some() && !old[0].events.is_empty());
        used.recycle(old);
        assert_eq!(used.spare.len(), 1);
        steps(&mut used);
        assert!(used.spare.is_empty());
        assert_eq!(shown(used.drain()), want);
    }

    #[test]
    fn duplicate_from_two_interfaces_is_not_a_retransmission() {
        let mut t = FlowTable::new(FlowConfig::default());
        t.tcp(&seg(true, 100, 0, F::SYN, b""), at(1), 0, None);
        let dup = FrameRef::new(0, 2, at(1).ts + 20_000);
        t.tcp(&seg(true, 100, 0, F::SYN, b""), dup, 1, None);
        let conns = t.into_connections();
        assert_eq!(conns[0].dirs[0].syn_count, 1);
        assert_eq!(conns[0].dirs[0].duplicates, 1);
        assert_eq!(conns[0].dirs[0].syn_copies, 1);
    }

    #[test]
    fn syn_flood_stays_within_the_live_cap_and_tombstone_bound() {
        let cfg = FlowConfig {
            max_live: 100,
            ..Default::default()
        };
        let mut t = FlowTable::new(cfg);
        let mut out = Vec::new();
        for i in 0..20_000u32 {
            let mut s = seg(true, i, 0, F::SYN, b"");
            s.sport = (i % 60_000) as u16;
            s.ip.src = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            t.tcp(&s, at(u64::from(i)), 0, None);
            if i % 50 == 0 {
                t.sweep(i64::from(i) * 1_000, &mut out);
                assert!(t.live() <= 200, "live {}", t.live());
                let held = t.index.len() + t.tombs.len();
                assert!(held <= 2 * 1024 + 200, "index {held}");
            }
        }
        assert!(t.evicted_by_cap > 0);
        assert!(t.tombstones_dropped > 0);
    }

    #[test]
    fn settled_tuple_absorbs_late_packets_until_a_new_isn() {
        let mut t = FlowTable::new(FlowConfig::default());
        let mut out = Vec::new();
        // Server-first packet, so the tombstone must orient sequence numbers itself.
        t.tcp(&seg(false, 500, 101, F::SYN | F::ACK, b""), at(1), 0, None);
        t.tcp(&seg(true, 100, 0, F::SYN, b""), at(2), 0, None);
        t.tcp(&seg(true, 101, 501, F::FIN | F::ACK, b""), at(3), 0, None);
        t.tcp(&seg(false, 501, 102, F::FIN | F::ACK, b""), at(4), 0, None);
        t.sweep(5_000_000_000, &mut out);
        assert_eq!((out.len(), t.live()), (1, 0));
        // The last ACK and a retransmitted SYN with the old ISN, both directions: late.
        t.tcp(&seg(true, 102, 502, F::ACK, b""), at(5), 0, None);
        t.tcp(&seg(true, 100, 0, F::SYN, b""), at(6), 0, None);
        t.tcp(&seg(false, 501, 102, F::FIN | F::ACK, b""), at(7), 0, None);
        assert_eq!((t.late_packets, t.live()), (3, 0));
        // A SYN with a new ISN on the same 4-tuple is a new connection.
        t.tcp(&seg(true, 7000, 0, F::SYN, b""), at(8), 0, None);
        assert_eq!((t.late_packets, t.live()), (3, 1));
        let conns = t.into_connections();
        assert_eq!(conns[0].stream, 1);
        assert_eq!(conns[0].dirs[0].first_seq, Some(7000));
    }

    #[test]
    fn sweeps_settle_closed_after_the_linger_and_idle_after_the_timeout() {
        let mut t = FlowTable::new(FlowConfig::default());
        let mut out = Vec::new();
        let s = 1_000_000_000i64;
        // Stream 0 closes by RST at 0.1 s; stream 1 (another port) only sends a SYN.
        t.tcp(&seg(true, 100, 0, F::SYN, b""), at(0), 0, None);
        t.tcp(&seg(false, 0, 101, F::RST | F::ACK, b""), at(1), 0, None);
        let mut syn = seg(true, 7, 0, F::SYN, b"");
        syn.sport = 40001;
        t.tcp(&syn, at(2), 0, None);
        // Within the linger: nothing leaves.
        t.sweep(s / 2, &mut out);
        assert!(out.is_empty());
        // Past the linger: the closed one leaves, the open one stays.
        t.sweep(s, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].0.stream, out[0].1), (0, Eviction::Closed));
        // The open one leaves once idle for the timeout (found by the periodic scan).
        t.sweep(299 * s, &mut out);
        assert_eq!((out.len(), t.live()), (1, 1));
        t.sweep(310 * s, &mut out);
        assert_eq!((out.len(), t.live(), t.evicted_idle), (2, 0, 1));
        assert_eq!((out[1].0.stream, out[1].1), (1, Eviction::Idle));
    }

    #[test]
    fn acked_tracks_peer_acknowledgement() {
        let mut t = FlowTable::new(FlowConfig::default());
        t.tcp(&seg(true, 100, 0, F::SYN, b""), at(1), 0, None);
        t.tcp(&seg(false, 500, 101, F::SYN | F::ACK, b""), at(2), 0, None);
        t.tcp(
            &seg(true, 101, 501, F::ACK | F::PSH, b"hello"),
            at(3),
            0,
            None,
        );
        t.tcp(&seg(false, 501, 106, F::ACK, b""), at(4), 0, None);
        let conns = t.into_connections();
        assert_eq!(conns[0].dirs[0].acked.get(), Some(5));
    }
}
