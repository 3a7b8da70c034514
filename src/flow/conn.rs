//! Conn: one TCP connection's bookkeeping (handshake, acknowledgements, retransmissions,
//! teardown, events) and the one place that feeds its payload, reassembled, to the TLS layer.
//! The table hands each packet here with its direction; diagnose reads the settled result.

use crate::capture::FrameRef;
use crate::flow::event::{Event, EventKind, EVENTS_WITH_DATA, MAX_EVENTS};
use crate::flow::reassembly::{Piece, SeqSpace};
use crate::flow::sender::{fingerprint, Sender};
use crate::flow::{Dir, Endpoint, FlowConfig};
use crate::tls::{KeyLog, TlsConn, TlsFacts};
use crate::wire::{PacketType, TcpSegment};
use std::net::IpAddr;
use std::sync::Arc;

/// An ICMP error that quoted this connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcmpFact {
    pub at: FrameRef,
    pub v6: bool,
    pub icmp_type: u8,
    pub code: u8,
    pub reporter: IpAddr,
    /// Direction of the quoted packet (None if neither endpoint matches, e.g. NAT).
    pub quoted_dir: Option<Dir>,
    pub quoted_flags: Option<u8>,
    pub mtu: Option<u32>,
}

/// A TCP connection under analysis.
#[derive(Debug)]
pub struct Conn {
    pub stream: u64,
    /// `ends[Orig]` sent the first packet seen; direction `d` goes from `ends[d]` to
    /// `ends[d.other()]`.
    pub ends: [Endpoint; 2],
    pub dirs: [Sender; 2],
    /// Created with the first payload byte: most connections of a SYN flood never get one.
    tls: Option<Box<TlsConn>>,
    /// Directions that began mid-stream (for the TLS layer, once it exists).
    midstream: [bool; 2],
    /// The key log, when one was given (for the TLS layer, once it exists).
    pub(crate) keys: Option<Arc<KeyLog>>,
    pub first: FrameRef,
    pub last: FrameRef,
    /// Direction of the first pure SYN, of the first SYN-ACK.
    pub syn_dir: Option<Dir>,
    pub synack_dir: Option<Dir>,
    pub handshake_ack: Option<FrameRef>,
    pub icmp: Vec<IcmpFact>,
    pub events: Vec<Event>,
    pub events_dropped: u32,
    /// The connection exists only because an ICMP error quoted it.
    pub icmp_only: bool,
    hello_ack_logged: bool,
}

impl Conn {
    pub(crate) fn new(
        stream: u64,
        src: Endpoint,
        dst: Endpoint,
        at: FrameRef,
        cfg: &FlowConfig,
    ) -> Self {
        Conn {
            stream,
            ends: [src, dst],
            dirs: [
                Sender::new(cfg.reassembly_cap),
                Sender::new(cfg.reassembly_cap),
            ],
            tls: None,
            midstream: [false; 2],
            keys: None,
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

    /// Whether the TLS layer was given anything.
    #[cfg(test)]
    pub(crate) fn has_tls(&self) -> bool {
        self.tls.is_some()
    }

    fn tls_wants(&self, d: Dir) -> bool {
        self.tls.as_ref().is_none_or(|t| t.wants(d.index()))
    }

    /// RST seen, or FIN both ways.
    pub fn is_closed(&self) -> bool {
        self.dirs.iter().any(|d| d.rst.is_some()) || self.dirs.iter().all(|d| d.fin.is_some())
    }

    pub(crate) fn log(&mut self, at: FrameRef, dir: Dir, kind: EventKind) {
        // Teardown and errors are always kept; data only while there is room and while the
        // handshake is still open.
        let essential = !matches!(kind, EventKind::Data { .. } | EventKind::Copy { .. });
        if !essential && self.tls_facts().handshake_done.is_some() {
            self.events_dropped += 1;
            return;
        }
        self.push_event(at, dir, kind, essential);
    }

    /// Keeps an event while there is room (more for teardown and errors).
    fn push_event(&mut self, at: FrameRef, dir: Dir, kind: EventKind, essential: bool) {
        if self.events.len() < MAX_EVENTS || (essential && self.events.len() < MAX_EVENTS + 16) {
            self.events.push(Event::new(at, dir, kind));
        } else {
            self.events_dropped += 1;
        }
    }

    /// Takes one TCP segment sent in direction `d`.
    pub(crate) fn on_segment(
        &mut self,
        d: Dir,
        seg: &TcpSegment<'_>,
        at: FrameRef,
        iface: u32,
        pkttype: Option<PacketType>,
    ) {
        let now = (fingerprint(seg), at.ts, iface);
        let same_id = seg.ip.id.is_some_and(|id| id != 0);
        if self.dirs[d].is_copy(now, same_id) {
            self.on_copy(d, seg, at);
            return;
        }
        self.dirs[d].remember(now);
        self.last = at;
        self.icmp_only = false;
        self.count_packet(d, seg, at, pkttype);
        if seg.syn() {
            self.on_syn(d, seg, at);
        } else if seg.has_ack() && !seg.rst() && self.handshake_ack.is_none() {
            self.on_handshake_ack(d, seg, at);
        }
        if seg.has_ack() && !seg.header_truncated {
            self.on_ack(d, seg, at);
        }
        self.join_midstream(d, seg);
        let data_seq = seg.seq.wrapping_add(u32::from(seg.syn()));
        let off = self.dirs[d].space.as_mut().and_then(|s| s.offset(data_seq));
        if let Some(off) = off.filter(|_| seg.wire_len > 0) {
            self.on_data(d, seg, off, at);
        }
        self.on_teardown(d, seg, off, at);
    }

    /// A capture copy of a recent packet: counted, shown, otherwise ignored.
    fn on_copy(&mut self, d: Dir, seg: &TcpSegment<'_>, at: FrameRef) {
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
    }

    /// What every packet tells of its sender.
    fn count_packet(
        &mut self,
        d: Dir,
        seg: &TcpSegment<'_>,
        at: FrameRef,
        pkttype: Option<PacketType>,
    ) {
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
        dir.check_sum(seg);
    }

    /// A SYN or SYN-ACK: anchors the direction's sequence space.
    fn on_syn(&mut self, d: Dir, seg: &TcpSegment<'_>, at: FrameRef) {
        let dir = &mut self.dirs[d];
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
            self.synack_dir.get_or_insert(d);
            self.log(at, d, EventKind::SynAck);
        } else {
            dir.syn_count += 1;
            if dir.syns[0].is_none() {
                dir.syns[0] = Some(at);
            }
            dir.syns[1] = Some(at);
            self.syn_dir.get_or_insert(d);
            self.log(at, d, EventKind::Syn);
        }
    }

    /// The third packet of the handshake, if this acknowledges one of the peer's SYN-ACKs.
    fn on_handshake_ack(&mut self, d: Dir, seg: &TcpSegment<'_>, at: FrameRef) {
        // The client acknowledges one SYN-ACK; when the server sent several with different
        // numbers, the acknowledged one is the connection's (re-anchor before any data).
        let peer = &mut self.dirs[d.other()];
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

    /// What the peer has received of the other direction.
    fn on_ack(&mut self, d: Dir, seg: &TcpSegment<'_>, at: FrameRef) {
        let o = d.other();
        let peer = &mut self.dirs[o];
        if let Some(space) = &peer.space {
            if let Some(off) = space.peek(seg.ack) {
                if off <= peer.max_end + 1 {
                    peer.acked = Some(peer.acked.map_or(off, |a| a.max(off)));
                }
            }
        }
        if seg.sack_blocks().next().is_some() {
            peer.sacked = true;
        }
        let acked = peer.acked;
        let f = self.tls_facts();
        if !self.hello_ack_logged && f.ch_dir == Some(o.index()) {
            if let (Some((_, end)), Some(a)) = (f.ch_range, acked) {
                if a >= end {
                    self.hello_ack_logged = true;
                    self.log(at, d, EventKind::HelloAck);
                }
            }
        }
    }

    /// A direction first seen without its SYN: the first sequence number seen is offset 0.
    fn join_midstream(&mut self, d: Dir, seg: &TcpSegment<'_>) {
        let dir = &mut self.dirs[d];
        let carries_data = seg.wire_len > 0;
        if dir.space.is_none() && (carries_data || seg.fin() || seg.rst() || seg.has_ack()) {
            dir.space = Some(SeqSpace::new(seg.seq));
            if dir.syn_count + dir.synack_count == 0 {
                self.midstream[d] = true;
                if let Some(t) = self.tls.as_mut() {
                    t.set_midstream(d.index());
                }
            }
        }
    }

    /// Payload at stream offset `off`: counted, logged, and fed to the TLS layer.
    fn on_data(&mut self, d: Dir, seg: &TcpSegment<'_>, off: u64, at: FrameRef) {
        let dir = &mut self.dirs[d];
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
        // A connection that carries data logs a dozen events or more: room for them at once
        // rather than by doubling (one connecting to nothing stays small).
        if self.events.capacity() < EVENTS_WITH_DATA {
            self.events
                .reserve_exact(EVENTS_WITH_DATA.saturating_sub(self.events.len()));
        }
        // Data is kept while the handshake is open, and past it the one segment that may
        // have ended it after all: a TLS 1.3 server's alert-sized answer to the client's
        // Finished (decided once the TLS layer has read the segment).
        let done_before = self.tls_facts().handshake_done.is_some();
        if self.tls_wants(d) {
            self.feed_tls(d, seg, off, at);
        }
        let kind = EventKind::Data {
            start: off,
            len: seg.wire_len,
        };
        if done_before && !self.tls_facts().alert_sized_answer(at) {
            self.events_dropped += 1;
        } else {
            self.push_event(at, d, kind, false);
        }
    }

    /// The one door to the TLS layer: the segment's bytes at `off`, through the direction's
    /// reassembler (bytes cut by the snaplen go as a gap).
    fn feed_tls(&mut self, d: Dir, seg: &TcpSegment<'_>, off: u64, at: FrameRef) {
        let (midstream, keys) = (self.midstream, &self.keys);
        let tls = self.tls.get_or_insert_with(|| {
            let mut t = Box::new(TlsConn::with_keys(keys.clone()));
            for d in Dir::BOTH {
                if midstream[d] {
                    t.set_midstream(d.index());
                }
            }
            t
        });
        let i = d.index();
        let reasm = &mut self.dirs[d].reasm;
        if off < reasm.delivered() && tls.restart_on_hello(i, off, seg.payload) {
            reasm.rewind(off);
        }
        let mut sink = |p: Piece<'_>, from: FrameRef| feed_piece(tls, i, p, from);
        reasm.push(off, seg.payload, at, &mut sink);
        let cut = u64::from(seg.wire_len).saturating_sub(seg.payload.len() as u64);
        if cut > 0 {
            reasm.push_missing(off + seg.payload.len() as u64, cut, at, &mut sink);
        }
        if !tls.wants(i) {
            reasm.close();
        }
    }

    /// FIN and RST (`off`: the segment's stream offset), and whether timestamps are in use.
    fn on_teardown(&mut self, d: Dir, seg: &TcpSegment<'_>, off: Option<u64>, at: FrameRef) {
        let dir = &mut self.dirs[d];
        if seg.fin() {
            dir.fin_count += 1;
            if dir.fin.is_none() {
                dir.fin = Some(at);
                dir.fin_offset = off.map(|o| o + u64::from(seg.wire_len));
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
                dir.rst_offset = off;
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
        for d in Dir::BOTH {
            let reasm = &mut self.dirs[d].reasm;
            while reasm.has_held() {
                if reasm
                    .skip_gap(&mut |p, from| feed_piece(tls, d.index(), p, from))
                    .is_none()
                {
                    break;
                }
            }
        }
        tls.finish([
            self.dirs[Dir::Orig].first_at,
            self.dirs[Dir::Reply].first_at,
        ]);
    }
}

/// Hands the TLS layer what the reassembler delivered: bytes, or bytes known to exist but not
/// captured.
fn feed_piece(tls: &mut TlsConn, d: usize, p: Piece<'_>, at: FrameRef) {
    match p {
        Piece::Bytes(b) => tls.feed(d, b, at),
        Piece::Missing(n) => tls.missing(d, n, at),
    }
}
