//! Capture files built in memory: classic pcap (little-endian, microsecond timestamps) and
//! pcapng (little-endian, one section).
//!
//! std only: the benchmark's capture generator (`benches/gen`) includes this file too. It writes
//! each frame straight into its output buffer between [`begin_record`] and [`end_record`] (or
//! [`ng::begin_epb`] and [`ng::end_epb`]); tests use [`Pcap`] and [`ng::epb`].

pub const LINKTYPE_ETHERNET: u32 = 1;
pub const LINKTYPE_RAW: u32 = 101;

/// The snapshot length tcpdump 4.99 writes (`-s 0`).
pub const SNAPLEN: u32 = 262_144;

/// The classic pcap file header: version 2.4, UTC, microsecond timestamps.
pub fn file_header(out: &mut Vec<u8>, linktype: u32, snaplen: u32) {
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&snaplen.to_le_bytes());
    out.extend_from_slice(&linktype.to_le_bytes());
}

/// A record header at `ts_us` microseconds after the Unix epoch.
pub fn record_header(out: &mut Vec<u8>, ts_us: u64, caplen: u32, origlen: u32) {
    out.extend_from_slice(&((ts_us / 1_000_000) as u32).to_le_bytes());
    out.extend_from_slice(&((ts_us % 1_000_000) as u32).to_le_bytes());
    out.extend_from_slice(&caplen.to_le_bytes());
    out.extend_from_slice(&origlen.to_le_bytes());
}

/// Starts a record; the caller appends the frame, then [`end_record`] fills in its length.
pub fn begin_record(out: &mut Vec<u8>, ts_us: u64) -> usize {
    let at = out.len();
    record_header(out, ts_us, 0, 0);
    at
}

/// Sets the captured and original length of the record begun at `at` to the frame appended
/// since.
pub fn end_record(out: &mut [u8], at: usize) {
    let len = ((out.len() - at - 16) as u32).to_le_bytes();
    out[at + 8..at + 12].copy_from_slice(&len);
    out[at + 12..at + 16].copy_from_slice(&len);
}

/// Test timestamps count from here (2023-11-14), so times look real.
pub const TEST_EPOCH_US: u64 = 1_700_000_000_000_000;

/// A classic pcap file, built in memory.
pub struct Pcap(pub Vec<u8>);

impl Pcap {
    pub fn new(linktype: u32) -> Pcap {
        let mut v = Vec::with_capacity(1 << 16);
        file_header(&mut v, linktype, SNAPLEN);
        Pcap(v)
    }

    /// A record at `usec` microseconds after [`TEST_EPOCH_US`].
    pub fn record(&mut self, usec: u64, data: &[u8]) {
        let len = data.len() as u32;
        self.record_raw(usec, len, len, data);
    }

    /// A record whose length fields may disagree with its data (damaged captures).
    pub fn record_raw(&mut self, usec: u64, caplen: u32, origlen: u32, data: &[u8]) {
        record_header(&mut self.0, TEST_EPOCH_US + usec, caplen, origlen);
        self.0.extend_from_slice(data);
    }

    /// A capture of `frames`, one every millisecond.
    pub fn of(linktype: u32, frames: &[Vec<u8>]) -> Vec<u8> {
        let mut p = Pcap::new(linktype);
        for (i, f) in frames.iter().enumerate() {
            p.record(i as u64 * 1000, f);
        }
        p.0
    }
}

/// Minimal little-endian pcapng blocks.
pub mod ng {
    /// A block of type `kind` around `body` (padded to 4 bytes).
    pub fn block(kind: u32, body: &[u8]) -> Vec<u8> {
        let pad = (4 - body.len() % 4) % 4;
        let total = (12 + body.len() + pad) as u32;
        let mut v = Vec::with_capacity(total as usize);
        v.extend_from_slice(&kind.to_le_bytes());
        v.extend_from_slice(&total.to_le_bytes());
        v.extend_from_slice(body);
        v.extend(std::iter::repeat_n(0u8, pad));
        v.extend_from_slice(&total.to_le_bytes());
        v
    }

    /// A section header block (version 1.0, section length unknown).
    pub fn shb() -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&0x1a2b_3c4du32.to_le_bytes());
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&0u16.to_le_bytes());
        b.extend_from_slice(&(-1i64).to_le_bytes());
        block(0x0a0d_0d0a, &b)
    }

    /// An interface description block (snaplen 262144, microseconds) with `options`, each
    /// (code, value); with any option, end-of-options is added.
    pub fn idb(linktype: u16, options: &[(u16, &[u8])]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&linktype.to_le_bytes());
        b.extend_from_slice(&0u16.to_le_bytes());
        b.extend_from_slice(&super::SNAPLEN.to_le_bytes());
        for (code, value) in options {
            b.extend_from_slice(&code.to_le_bytes());
            b.extend_from_slice(&(value.len() as u16).to_le_bytes());
            b.extend_from_slice(value);
            b.extend(std::iter::repeat_n(0u8, (4 - value.len() % 4) % 4));
        }
        if !options.is_empty() {
            b.extend_from_slice(&[0, 0, 0, 0]);
        }
        block(1, &b)
    }

    /// Starts an enhanced packet block on interface `if_id` at `ts` (in the interface's
    /// resolution); the caller appends the frame, then [`end_epb`] pads and measures it.
    pub fn begin_epb(out: &mut Vec<u8>, if_id: u32, ts: u64) -> usize {
        let at = out.len();
        out.extend_from_slice(&6u32.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&if_id.to_le_bytes());
        out.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
        out.extend_from_slice(&(ts as u32).to_le_bytes());
        out.extend_from_slice(&[0; 8]);
        at
    }

    /// Pads the block begun at `at` and fills in its frame and block lengths.
    pub fn end_epb(out: &mut Vec<u8>, at: usize) {
        let frame = (out.len() - at - 28) as u32;
        out[at + 20..at + 24].copy_from_slice(&frame.to_le_bytes());
        out[at + 24..at + 28].copy_from_slice(&frame.to_le_bytes());
        out.extend_from_slice(&[0; 3][..(4 - frame as usize % 4) % 4]);
        let total = (out.len() - at + 4) as u32;
        out.extend_from_slice(&total.to_le_bytes());
        out[at + 4..at + 8].copy_from_slice(&total.to_le_bytes());
    }

    /// An enhanced packet block holding `data`.
    pub fn epb(if_id: u32, ts: u64, data: &[u8]) -> Vec<u8> {
        let mut v = Vec::with_capacity(32 + data.len() + 3);
        let at = begin_epb(&mut v, if_id, ts);
        v.extend_from_slice(data);
        end_epb(&mut v, at);
        v
    }
}
