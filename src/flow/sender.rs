//! Sender: what one endpoint of a connection sent (one direction's counters, sequence space,
//! reassembly), and the detector of capture copies (`tcpdump -i any` duplicates).

use crate::capture::{FrameRef, Nanos};
use crate::flow::reassembly::{Reassembler, SeqSpace};
use crate::wire::{Checksum, PacketType, TcpSegment};

/// Recent packets per direction remembered to recognise copies of them.
pub(crate) const RECENT: usize = 4;

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
    pub(crate) synack_seqs: [u32; 4],
    pub(crate) synack_seqs_n: u8,
    pub payload_segments: u32,
    pub payload_bytes: u64,
    /// One past the highest stream offset sent.
    pub max_end: u64,
    pub retransmissions: u32,
    pub max_segment: u32,
    /// Retransmitted segments at the largest size seen (a path-MTU black hole's mark).
    pub full_size_retransmissions: u32,
    /// Highest stream offset of this direction the peer acknowledged.
    pub acked: Option<u64>,
    /// The peer sent SACK blocks about this direction (it saw a hole).
    pub sacked: bool,
    pub fin: Option<FrameRef>,
    /// Stream offset the FIN occupies (= bytes sent before it).
    pub fin_offset: Option<u64>,
    pub fin_count: u32,
    pub rst: Option<FrameRef>,
    pub rst_offset: Option<u64>,
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
    /// TCP checksums checked (the first [`CHECKSUMS_CHECKED`] small segments captured whole)
    /// and, of those, wrong: the capturing host's own segments under TX checksum offload.
    pub checksums_checked: u8,
    pub checksums_wrong: u8,
    /// `-i any` duplicates ignored.
    pub duplicates: u32,
    /// Of those, copies of a SYN (Wireshark counts them as SYN retransmissions).
    pub syn_copies: u32,
    /// The last few packets sent (fingerprint, time, interface), to recognise copies of them;
    /// an unused entry's time is `Nanos::MIN`, too long ago to match anything.
    pub(crate) recent_sig: [u64; RECENT],
    pub(crate) recent_ts: [Nanos; RECENT],
    pub(crate) recent_iface: [u32; RECENT],
    pub(crate) recent_next: u8,
}

/// Segments per direction whose TCP checksum is checked: enough to see offload, a bounded
/// cost however long the connection.
pub const CHECKSUMS_CHECKED: u8 = 2;

/// Only segments with at most this much payload are checked (SYNs, ACKs, FINs, RSTs, alerts):
/// offload leaves every segment's checksum unfilled alike, and summing the ClientHello and the
/// server's first flight cost 2 % of all instructions on dense traffic.
pub const CHECKSUM_MAX_PAYLOAD: u32 = 64;

/// What tells a packet apart from the other recent packets of its direction: sequence and
/// acknowledgement numbers, flags, length, IP ID, checksum and window, mixed into 64 bits (a
/// chance collision within the few milliseconds a copy is looked for: about 2^-62).
pub(crate) fn fingerprint(seg: &TcpSegment<'_>) -> u64 {
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
    /// Checks the segment's TCP checksum while fewer than [`CHECKSUMS_CHECKED`] were, when its
    /// payload is small (see [`CHECKSUM_MAX_PAYLOAD`]).
    pub(crate) fn check_sum(&mut self, seg: &TcpSegment<'_>) {
        if self.checksums_checked < CHECKSUMS_CHECKED {
            let (checked, wrong) = checksum_count(seg);
            self.checksums_checked += checked;
            self.checksums_wrong += wrong;
        }
    }

    /// Distinct initial numbers of the SYN-ACKs sent (the first four).
    pub(crate) fn synack_seqs(&self) -> &[u32] {
        &self.synack_seqs[..usize::from(self.synack_seqs_n).min(self.synack_seqs.len())]
    }

    pub(crate) fn new(cap: u64) -> Self {
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
            acked: None,
            sacked: false,
            fin: None,
            fin_offset: None,
            fin_count: 0,
            rst: None,
            rst_offset: None,
            rst_count: 0,
            ttl: None,
            pkttype: None,
            mss: None,
            payload_truncated: false,
            header_truncated: 0,
            checksums_checked: 0,
            checksums_wrong: 0,
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

/// A segment's checksum as counts: (checked, wrong), (0, 0) when it cannot be checked.
pub(crate) fn checksum_count(seg: &TcpSegment<'_>) -> (u8, u8) {
    if seg.wire_len > CHECKSUM_MAX_PAYLOAD {
        return (0, 0);
    }
    match seg.checksum_status() {
        Checksum::Right => (1, 0),
        Checksum::Wrong => (1, 1),
        Checksum::Unknown => (0, 0),
    }
}

/// Whether a packet (fingerprint `sig`, time `ts`, interface `iface`) is a capture copy of an
/// earlier one sent at `then` on `then_iface` with fingerprint `then_sig`. A retransmission
/// takes a new IPv4 ID (and at least a 200 ms RTO or a ~10 ms tail-loss probe); an identical
/// packet with the same non-zero ID (`same_id`) is a copy.
pub(crate) fn copy_of(
    (then_sig, then, then_iface): (u64, Nanos, u32),
    (sig, ts, iface): (u64, Nanos, u32),
    same_id: bool,
) -> bool {
    // The fingerprint first: it almost never matches, and then no time is compared.
    then_sig == sig && {
        let dt = ts.saturating_sub(then);
        dt <= 2_000_000
            || (same_id && dt <= 200_000_000)
            || (then_iface != iface && dt <= 50_000_000)
    }
}

impl Sender {
    /// Whether the packet is a capture copy of one of the last few this endpoint sent
    /// (`tcpdump -i any` records a forwarded or bridged packet once per interface).
    pub(crate) fn is_copy(&self, now: (u64, Nanos, u32), same_id: bool) -> bool {
        (0..RECENT).any(|i| {
            let then = (self.recent_sig[i], self.recent_ts[i], self.recent_iface[i]);
            copy_of(then, now, same_id)
        })
    }

    /// Remembers a packet sent, to recognise copies of it.
    pub(crate) fn remember(&mut self, (sig, ts, iface): (u64, Nanos, u32)) {
        let slot = usize::from(self.recent_next) % RECENT;
        (
            self.recent_sig[slot],
            self.recent_ts[slot],
            self.recent_iface[slot],
        ) = (sig, ts, iface);
        self.recent_next = ((slot + 1) % RECENT) as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::IpInfo;
    use std::net::{IpAddr, Ipv4Addr};

    fn seg(whole: &[u8]) -> TcpSegment<'_> {
        TcpSegment {
            ip: IpInfo {
                src: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
                dst: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
                ttl: 64,
                id: None,
            },
            sport: 40000,
            dport: 443,
            seq: 1,
            ack: 0,
            flags: 0x10,
            window: 0,
            checksum: 0,
            payload: &[],
            wire_len: 0,
            header_truncated: false,
            bytes: whole,
            hlen: 20,
            whole: !whole.is_empty(),
        }
    }

    #[test]
    fn only_the_first_few_checkable_segments_are_checked() {
        // A bare header with a zero checksum: wrong for any pseudo-header but this one's
        // complement; an empty `whole` (cut or length unknown) is not checkable.
        let mut hdr = [0u8; 20];
        hdr[12] = 0x50;
        let mut s = Sender::new(1024);
        s.check_sum(&seg(&[]));
        assert_eq!((s.checksums_checked, s.checksums_wrong), (0, 0));
        // A segment carrying more than a few dozen bytes is not summed.
        s.check_sum(&TcpSegment {
            wire_len: CHECKSUM_MAX_PAYLOAD + 1,
            ..seg(&hdr)
        });
        assert_eq!((s.checksums_checked, s.checksums_wrong), (0, 0));
        for _ in 0..10 {
            s.check_sum(&seg(&hdr));
        }
        let n = CHECKSUMS_CHECKED;
        assert_eq!((s.checksums_checked, s.checksums_wrong), (n, n));
        // The same header with its checksum filled in is right.
        let sum = !(0x0a00u32 + 0x0001 + 0x0a00 + 0x0002 + 6 + 20 + 0x5000);
        hdr[16..18].copy_from_slice(&(sum as u16).to_be_bytes());
        let mut s = Sender::new(1024);
        s.check_sum(&seg(&hdr));
        assert_eq!((s.checksums_checked, s.checksums_wrong), (1, 0));
    }
}
