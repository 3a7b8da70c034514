//! Reassembly: one direction of a TCP byte stream, delivered in order and capped.
//!
//! Sequence numbers wrap, so the stream is addressed by 64-bit offsets from a base sequence
//! number ([`SeqSpace`]). [`Reassembler`] delivers bytes the moment they become contiguous,
//! whether or not the peer ever acknowledged them (an unanswered ClientHello is the main case).
//! Overlaps keep the first copy, retransmissions add nothing, out-of-order segments wait in a
//! bounded holding area. Only the first `cap` bytes of a direction are ever delivered; the
//! caller learns when that cap, or the holding area's, was hit. This is the one place payload
//! is copied, and only when it arrives out of order.

use crate::capture::FrameRef;
use std::collections::BTreeMap;

/// Maps 32-bit sequence numbers of one direction onto 64-bit stream offsets.
#[derive(Debug, Clone, Copy)]
pub struct SeqSpace {
    /// Sequence number of stream offset 0 (ISN + 1 when the SYN was seen).
    base: u32,
    /// The offset most recently mapped, to resolve wraparound.
    last: u64,
}

impl SeqSpace {
    pub fn new(base: u32) -> Self {
        SeqSpace { base, last: 0 }
    }

    pub fn base(&self) -> u32 {
        self.base
    }

    /// Offset of `seq`, taken as the nearest one to the last offset mapped. `None` when it
    /// lies before the stream start (e.g. the SYN itself, or a keep-alive probe).
    pub fn offset(&mut self, seq: u32) -> Option<u64> {
        let off = self.peek(seq)?;
        if off > self.last {
            self.last = off;
        }
        Some(off)
    }

    /// Like [`offset`](Self::offset) without moving the window (for ACK numbers).
    pub fn peek(&self, seq: u32) -> Option<u64> {
        let last_seq = self.base.wrapping_add(self.last as u32);
        let delta = seq.wrapping_sub(last_seq) as i32;
        let off = self.last as i64 + i64::from(delta);
        (off >= 0).then_some(off as u64)
    }
}

/// Why delivery stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct ReassemblyLimits {
    /// The per-direction cap was reached: later bytes were not analysed.
    pub cap_reached: bool,
    /// Out-of-order data exceeded the holding area and some was dropped.
    pub holding_overflow: bool,
    /// A gap was never filled (bytes after it were delivered after skipping it at the end).
    pub gaps: u32,
}

/// Holding area bounds for out-of-order data.
pub const MAX_HELD_BYTES: usize = 256 * 1024;
pub const MAX_HELD_SEGMENTS: usize = 128;

/// What the reassembler hands on: bytes, or a count of bytes known to exist but not captured
/// (a snaplen cut them, or a hole skipped at the end of the capture).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'a> {
    Bytes(&'a [u8]),
    Missing(u64),
}

#[derive(Debug)]
pub struct Reassembler {
    /// Next offset to deliver.
    next: u64,
    cap: u64,
    /// Out-of-order data and the frame that brought it.
    held: BTreeMap<u64, (Vec<u8>, FrameRef)>,
    held_bytes: usize,
    pub limits: ReassemblyLimits,
}

impl Reassembler {
    pub fn new(cap: u64) -> Self {
        Reassembler {
            next: 0,
            cap,
            held: BTreeMap::new(),
            held_bytes: 0,
            limits: ReassemblyLimits::default(),
        }
    }

    /// Offset of the next byte not yet delivered.
    pub fn delivered(&self) -> u64 {
        self.next
    }

    /// Moves delivery back to `off` so bytes from there are delivered again (the consumer
    /// restarted). Held data beyond stays.
    pub fn rewind(&mut self, off: u64) {
        if off < self.next {
            self.next = off;
        }
    }

    /// Stops delivering anything further (the consumer has what it needs); frees held data.
    pub fn close(&mut self) {
        self.cap = self.next;
        self.held.clear();
        self.held_bytes = 0;
    }

    pub fn is_closed(&self) -> bool {
        self.next >= self.cap
    }

    /// Adds `data` found at stream offset `off`; calls `sink` with each newly contiguous run.
    pub fn push(
        &mut self,
        off: u64,
        data: &[u8],
        at: FrameRef,
        sink: &mut dyn FnMut(Piece<'_>, FrameRef),
    ) {
        if data.is_empty() || self.next >= self.cap {
            if self.next >= self.cap && !data.is_empty() && off + data.len() as u64 > self.cap {
                self.limits.cap_reached = true;
            }
            return;
        }
        let end = off.saturating_add(data.len() as u64);
        if end <= self.next {
            return; // pure retransmission
        }
        if off <= self.next {
            let from = (self.next - off) as usize;
            self.deliver(&data[from..], at, sink);
            self.drain_held(sink);
        } else if off < self.cap {
            self.hold(off, data, at);
        } else {
            self.limits.cap_reached = true;
        }
    }

    fn deliver(&mut self, data: &[u8], at: FrameRef, sink: &mut dyn FnMut(Piece<'_>, FrameRef)) {
        let room = (self.cap - self.next) as usize;
        let take = data.len().min(room);
        if take < data.len() {
            self.limits.cap_reached = true;
        }
        if take > 0 {
            sink(Piece::Bytes(&data[..take]), at);
            self.next += take as u64;
        }
        if self.next >= self.cap {
            self.held.clear();
            self.held_bytes = 0;
        }
    }

    fn hold(&mut self, off: u64, data: &[u8], at: FrameRef) {
        let room = (self.cap - off) as usize;
        let data = &data[..data.len().min(room)];
        if let Some((existing, _)) = self.held.get(&off) {
            if existing.len() >= data.len() {
                return;
            }
        }
        if self.held_bytes + data.len() > MAX_HELD_BYTES || self.held.len() >= MAX_HELD_SEGMENTS {
            self.limits.holding_overflow = true;
            return;
        }
        self.held_bytes += data.len();
        if let Some((old, _)) = self.held.insert(off, (data.to_vec(), at)) {
            self.held_bytes -= old.len();
        }
    }

    fn drain_held(&mut self, sink: &mut dyn FnMut(Piece<'_>, FrameRef)) {
        while let Some((&off, _)) = self.held.first_key_value() {
            if off > self.next {
                break;
            }
            let Some((_, (seg, at))) = self.held.pop_first() else {
                break;
            };
            self.held_bytes -= seg.len();
            let end = off + seg.len() as u64;
            if end > self.next {
                let from = (self.next - off) as usize;
                self.deliver(&seg[from..], at, sink);
            }
        }
    }

    /// `n` bytes at `off` exist on the wire but were not captured (snaplen). When they are next
    /// in line, the consumer is told and delivery moves past them; otherwise they leave a hole.
    pub fn push_missing(
        &mut self,
        off: u64,
        n: u64,
        at: FrameRef,
        sink: &mut dyn FnMut(Piece<'_>, FrameRef),
    ) {
        let end = off.saturating_add(n).min(self.cap);
        if off <= self.next && end > self.next {
            sink(Piece::Missing(end - self.next), at);
            self.next = end;
            self.drain_held(sink);
        }
    }

    /// Bytes waiting behind a hole.
    pub fn has_held(&self) -> bool {
        !self.held.is_empty()
    }

    /// Skips the first hole and delivers what was held behind it (end of capture). Returns the
    /// size of the hole skipped, if any.
    pub fn skip_gap(&mut self, sink: &mut dyn FnMut(Piece<'_>, FrameRef)) -> Option<u64> {
        let (&off, (_, at)) = self.held.first_key_value()?;
        let at = *at;
        let hole = off.checked_sub(self.next)?;
        self.limits.gaps += 1;
        sink(Piece::Missing(hole), at);
        self.next = off;
        self.drain_held(sink);
        Some(hole)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT: FrameRef = FrameRef::new(0, 1, 0);

    fn collect(r: &mut Reassembler, off: u64, d: &[u8], out: &mut Vec<u8>) {
        r.push(off, d, AT, &mut |p, _| {
            if let Piece::Bytes(b) = p {
                out.extend_from_slice(b)
            }
        });
    }

    #[test]
    fn in_order_out_of_order_and_overlap() {
        let mut r = Reassembler::new(1 << 20);
        let mut out = Vec::new();
        collect(&mut r, 0, b"abc", &mut out);
        collect(&mut r, 6, b"ghi", &mut out); // held
        assert_eq!(out, b"abc");
        collect(&mut r, 2, b"XdeY", &mut out); // overlap keeps first copy of 'c'
        assert_eq!(out, b"abcdeYghi");
        collect(&mut r, 0, b"abcdef", &mut out); // retransmission adds nothing
        assert_eq!(out.len(), 9);
    }

    #[test]
    fn cap_stops_delivery_and_is_reported() {
        let mut r = Reassembler::new(4);
        let mut out = Vec::new();
        collect(&mut r, 0, b"abcdef", &mut out);
        assert_eq!(out, b"abcd");
        assert!(r.limits.cap_reached);
        assert!(r.is_closed());
    }

    #[test]
    fn holding_area_is_bounded() {
        let mut r = Reassembler::new(u64::MAX);
        let mut out = Vec::new();
        let chunk = vec![0u8; 4096];
        for i in 0..(MAX_HELD_SEGMENTS as u64 + 10) {
            collect(&mut r, 10 + i * 5000, &chunk, &mut out);
        }
        assert!(r.limits.holding_overflow);
        assert!(r.held.len() <= MAX_HELD_SEGMENTS);
        assert!(out.is_empty());
    }

    #[test]
    fn gap_skipped_at_end() {
        let mut r = Reassembler::new(1 << 20);
        let mut out = Vec::new();
        collect(&mut r, 0, b"ab", &mut out);
        collect(&mut r, 5, b"fg", &mut out);
        let mut missing = 0;
        let hole = r.skip_gap(&mut |p, _| match p {
            Piece::Bytes(b) => out.extend_from_slice(b),
            Piece::Missing(n) => missing += n,
        });
        assert_eq!(hole, Some(3));
        assert_eq!(missing, 3);
        assert_eq!(out, b"abfg");
        assert_eq!(r.limits.gaps, 1);
    }

    #[test]
    fn snaplen_missing_bytes_advance_delivery() {
        let mut r = Reassembler::new(1 << 20);
        let mut log = Vec::new();
        let mut sink = |p: Piece<'_>, _| log.push(format!("{p:?}"));
        r.push(0, b"ab", AT, &mut sink);
        r.push_missing(2, 10, AT, &mut sink);
        r.push(12, b"cd", AT, &mut sink);
        assert_eq!(r.delivered(), 14);
        assert_eq!(log.len(), 3);
        assert!(log[1].contains("Missing(10)"));
    }

    #[test]
    fn seq_space_wraps() {
        let mut s = SeqSpace::new(u32::MAX - 1);
        assert_eq!(s.offset(u32::MAX - 1), Some(0));
        assert_eq!(s.offset(1), Some(3)); // wrapped past 0
        assert_eq!(s.offset(u32::MAX), Some(1)); // older, still mapped
        assert_eq!(s.peek(u32::MAX - 2), None); // before the start
    }

    #[test]
    fn seq_space_tracks_long_streams() {
        let mut s = SeqSpace::new(100);
        let mut off = 0u64;
        for _ in 0..10 {
            off += 1_000_000_000;
            let seq = 100u32.wrapping_add(off as u32);
            assert_eq!(s.offset(seq), Some(off));
        }
    }
}
