//! SynOnly: the small record of a connection that so far is only a SYN (or a SYN and one
//! retransmission of it), nothing answered. Scans and floods open hundreds of thousands of
//! these; a full [`Conn`] is about a kilobyte, this record a tenth of that, kept in place in
//! the table. Anything else for the connection (an answer, a third SYN, a capture copy, an
//! ICMP error) makes it a full `Conn` first, exactly as if it had been one from the start.

use crate::capture::FrameRef;
use crate::flow::event::EventKind;
use crate::flow::reassembly::SeqSpace;
use crate::flow::sender::{checksum_count, copy_of, fingerprint};
use crate::flow::{Conn, Dir, Endpoint, FlowConfig};
use crate::wire::{PacketType, TcpSegment};

/// What a connection's SYNs told, while there are at most two and nothing else.
#[derive(Debug, Clone)]
pub(crate) struct SynOnly {
    /// Frames of the SYNs, oldest first; both the same while there is one.
    syns: [FrameRef; 2],
    /// Their fingerprints and interfaces, to recognise capture copies of them.
    sigs: [u64; 2],
    ifaces: [u32; 2],
    /// Two SYNs, not one.
    two: bool,
    /// Sequence number of the SYNs (a SYN with another one is a new connection).
    seq: u32,
    ttl: u8,
    pkttype: Option<PacketType>,
    mss: Option<u16>,
    tsval: Option<u32>,
    /// The SYNs' TCP checksums: checked, wrong (as a full connection counts them).
    sums: (u8, u8),
}

impl SynOnly {
    /// Whether a connection's first packet can open a SYN-only record: a plain SYN, no
    /// payload, no other flag that matters, headers whole.
    pub(crate) fn takes(seg: &TcpSegment<'_>) -> bool {
        seg.syn()
            && !seg.has_ack()
            && !seg.fin()
            && !seg.rst()
            && seg.wire_len == 0
            && !seg.header_truncated
    }

    /// The record of a connection opened by `seg` (which [`SynOnly::takes`]).
    pub(crate) fn new(
        seg: &TcpSegment<'_>,
        at: FrameRef,
        iface: u32,
        pkttype: Option<PacketType>,
    ) -> Self {
        let sig = fingerprint(seg);
        SynOnly {
            syns: [at, at],
            sigs: [sig, sig],
            ifaces: [iface, iface],
            two: false,
            seq: seg.seq,
            ttl: seg.ip.ttl,
            pkttype,
            mss: seg.mss(),
            tsval: seg.timestamps().map(|(v, _)| v),
            sums: checksum_count(seg),
        }
    }

    /// The first sequence number of each direction (the reply has sent nothing).
    pub(crate) fn first_seq(&self) -> [Option<u32>; 2] {
        [Some(self.seq), None]
    }

    /// The last packet's frame.
    pub(crate) fn last(&self) -> FrameRef {
        self.syns[1]
    }

    fn count(&self) -> usize {
        1 + usize::from(self.two)
    }

    /// Takes a second SYN of the same connection, if the record can hold it: from the same
    /// side, plain, the first retransmission, not a capture copy. `false`: the packet needs a
    /// full connection.
    pub(crate) fn absorb(
        &mut self,
        d: Dir,
        seg: &TcpSegment<'_>,
        at: FrameRef,
        iface: u32,
        pkttype: Option<PacketType>,
    ) -> bool {
        if d != Dir::Orig || self.two || !SynOnly::takes(seg) || seg.seq != self.seq {
            return false;
        }
        let sig = fingerprint(seg);
        let same_id = seg.ip.id.is_some_and(|id| id != 0);
        let then = (self.sigs[0], self.syns[0].ts, self.ifaces[0]);
        if copy_of(then, (sig, at.ts, iface), same_id) {
            return false;
        }
        self.two = true;
        (self.syns[1], self.sigs[1], self.ifaces[1]) = (at, sig, iface);
        self.pkttype = self.pkttype.or(pkttype);
        self.mss = self.mss.or(seg.mss());
        self.tsval = self.tsval.or(seg.timestamps().map(|(v, _)| v));
        let (checked, wrong) = checksum_count(seg);
        self.sums = (self.sums.0 + checked, self.sums.1 + wrong);
        true
    }

    /// The full connection these SYNs make, sent from `ends[0]` to `ends[1]`: the state
    /// [`Conn::on_segment`] leaves after them.
    pub(crate) fn to_conn(&self, ends: [Endpoint; 2], stream: u64, cfg: &FlowConfig) -> Conn {
        let n = self.count();
        let [src, dst] = ends;
        let mut c = Conn::new(stream, src, dst, self.syns[0], cfg);
        let s = &mut c.dirs[Dir::Orig];
        for i in 0..n {
            s.remember((self.sigs[i], self.syns[i].ts, self.ifaces[i]));
        }
        s.packets = n as u32;
        s.syn_count = n as u32;
        s.first_at = Some(self.syns[0]);
        s.first_seq = Some(self.seq);
        s.space = Some(SeqSpace::new(self.seq.wrapping_add(1)));
        s.syns = [Some(self.syns[0]), Some(self.syns[1])];
        s.ttl = Some(self.ttl);
        s.pkttype = self.pkttype;
        s.mss = self.mss;
        s.syn_tsval = self.tsval;
        s.ts_seen = self.tsval.is_some();
        (s.checksums_checked, s.checksums_wrong) = self.sums;
        c.syn_dir = Some(Dir::Orig);
        for &at in &self.syns[..n] {
            c.log(at, Dir::Orig, EventKind::Syn);
        }
        c.last = self.last();
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::FlowTable;
    use crate::wire::{tcp_flags as F, IpInfo};
    use std::net::{IpAddr, Ipv4Addr};

    fn seg(from_client: bool, seq: u32, ack: u32, flags: u8, id: u16) -> TcpSegment<'static> {
        let c = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let s = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        let (src, dst, sport, dport) = if from_client {
            (c, s, 40000, 443)
        } else {
            (s, c, 443, 40000)
        };
        // MSS 1460 and timestamps (TSval = seq), as a Linux SYN carries them.
        const HEADER: &[u8] = &[
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x90, 0, 0, 0, 0, 0, 0,
            0, // data offset 9 words
            2, 4, 5, 180, 1, 1, 8, 10, 0, 0, 0, 7, 0, 0, 0, 0,
        ];
        TcpSegment {
            ip: IpInfo {
                src,
                dst,
                ttl: 63,
                id: Some(u32::from(id)),
            },
            sport,
            dport,
            seq,
            ack,
            flags,
            window: 1000,
            checksum: id,
            payload: b"",
            wire_len: 0,
            header_truncated: false,
            bytes: HEADER,
            hlen: 36,
            whole: false,
        }
    }

    fn at(n: u64) -> FrameRef {
        FrameRef::new(0, n, n as i64 * 1_000_000)
    }

    /// The same packets through a full connection from the first packet on.
    fn reference(pkts: &[(TcpSegment<'_>, FrameRef, u32)]) -> String {
        let (s0, a0, _) = &pkts[0];
        let (src, dst) = Endpoint::of_segment(s0);
        let mut c = Conn::new(0, src, dst, *a0, &FlowConfig::default());
        for (s, a, iface) in pkts {
            let d = if s.ip.src == src.ip {
                Dir::Orig
            } else {
                Dir::Reply
            };
            c.on_segment(d, s, *a, *iface, Some(PacketType::Outgoing));
        }
        c.finish();
        format!("{c:?}")
    }

    fn through_table(pkts: &[(TcpSegment<'_>, FrameRef, u32)]) -> String {
        let mut t = FlowTable::new(FlowConfig::default());
        for (s, a, iface) in pkts {
            t.tcp(s, *a, *iface, Some(PacketType::Outgoing));
        }
        let conns = t.into_connections();
        assert_eq!(conns.len(), 1);
        format!("{:?}", conns[0])
    }

    #[test]
    fn a_syn_only_record_with_its_heap_fits_in_128_bytes() {
        assert!(std::mem::size_of::<SynOnly>() <= 80);
        assert!(crate::flow::table::live_size() <= 128);
    }

    /// SYN-only, then whatever comes: the connection is the one a full record from the first
    /// packet gives.
    #[test]
    fn promotion_gives_the_same_connection() {
        let syn = |n: u64, id: u16| (seg(true, 100, 0, F::SYN, id), at(n), 0);
        let cases: Vec<Vec<(TcpSegment<'_>, FrameRef, u32)>> = vec![
            // Unanswered, once and retransmitted (settled from the small record).
            vec![syn(1, 1)],
            vec![syn(1, 1), syn(1000, 2)],
            // Retransmitted twice: the third SYN needs a full record.
            vec![syn(1, 1), syn(1000, 2), syn(3000, 3)],
            // Answered by a SYN-ACK, by a RST.
            vec![
                syn(1, 1),
                syn(1000, 2),
                (seg(false, 500, 101, F::SYN | F::ACK, 9), at(1001), 0),
                (seg(true, 101, 501, F::ACK, 3), at(1002), 0),
            ],
            vec![
                syn(1, 1),
                (seg(false, 0, 101, F::RST | F::ACK, 9), at(2), 0),
            ],
            // A capture copy (same IP ID, another interface).
            vec![syn(1, 1), (seg(true, 100, 0, F::SYN, 1), at(1), 1)],
            vec![
                syn(1, 1),
                syn(1000, 2),
                (seg(true, 100, 0, F::SYN, 2), at(1000), 1),
            ],
            // Data without an answer (a SYN-ACK lost to the capture).
            vec![
                syn(1, 1),
                (seg(true, 101, 501, F::ACK | F::FIN, 2), at(5), 0),
            ],
        ];
        for pkts in cases {
            assert_eq!(
                through_table(&pkts),
                reference(&pkts),
                "{} packets",
                pkts.len()
            );
        }
    }

    #[test]
    fn an_icmp_error_makes_a_syn_only_record_whole() {
        use crate::wire::{IcmpError, QuotedTcp};
        let mut t = FlowTable::new(FlowConfig::default());
        let s = seg(true, 100, 0, F::SYN, 1);
        t.tcp(&s, at(1), 0, None);
        let e = IcmpError {
            ip: IpInfo {
                src: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9)),
                dst: s.ip.src,
                ttl: 60,
                id: None,
            },
            v6: false,
            icmp_type: 3,
            code: 13,
            mtu: None,
            quoted: Some(QuotedTcp {
                src: s.ip.src,
                dst: s.ip.dst,
                sport: s.sport,
                dport: s.dport,
                seq: 100,
                flags: Some(F::SYN),
            }),
        };
        t.icmp(&e, at(2));
        let conns = t.into_connections();
        assert_eq!(conns.len(), 1);
        let c = &conns[0];
        assert_eq!((c.dirs[Dir::Orig].syn_count, c.icmp.len()), (1, 1));
        assert_eq!(c.icmp[0].quoted_dir, Some(Dir::Orig));
        assert_eq!(c.events.len(), 2);
    }
}
