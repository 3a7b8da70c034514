//! Defrag: bounded IPv4/IPv6 fragment reassembly, fed with the [`Fragment`]s that `ip` reads.
//!
//! Owns the datagrams under reassembly, keyed by (source, destination, protocol,
//! identification). Bounded three ways: at most [`MAX_PENDING`] datagrams in flight (the oldest is
//! dropped), at most 64 KiB per datagram, and datagrams older than [`TIMEOUT_NS`] of capture
//! time are dropped. Overlapping fragments keep the first copy. A completed datagram is
//! returned as one owned buffer for the decoder to walk.

use super::ip::{Fragment, IpInfo};
use crate::capture::Nanos;
use rustc_hash::FxHashMap;
use std::net::IpAddr;

pub const MAX_PENDING: usize = 4096;
pub const MAX_DATAGRAM: u32 = 65_535;
pub const TIMEOUT_NS: Nanos = 30_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    ident: u32,
}

#[derive(Debug)]
struct Pending {
    first_ts: Nanos,
    /// Received (offset, bytes), kept sorted by offset.
    parts: Vec<(u32, Vec<u8>)>,
    total: Option<u32>,
    ip: Option<IpInfo>,
}

impl Pending {
    /// Whether the sorted parts cover `[0, total)` without a hole.
    fn covers(&self, total: u32) -> bool {
        let mut covered = 0u32;
        for (o, d) in &self.parts {
            if *o > covered {
                return false;
            }
            covered = covered.max(o + d.len() as u32);
        }
        covered >= total
    }

    /// The datagram's `total` bytes from the parts; where parts overlap, the first copy wins.
    fn assemble(&self, total: u32) -> Vec<u8> {
        let mut data = vec![0u8; total as usize];
        let mut filled = 0u32;
        for (o, d) in &self.parts {
            // only write bytes past what is already filled
            let start = filled.max(*o);
            let end = (o + d.len() as u32).min(total);
            if start >= end {
                continue;
            }
            let src = d.get((start - o) as usize..(end - o) as usize);
            let dst = data.get_mut(start as usize..end as usize);
            if let (Some(src), Some(dst)) = (src, dst) {
                dst.copy_from_slice(src);
                filled = end;
            }
        }
        data
    }
}

/// A datagram whose fragments all arrived.
#[derive(Debug)]
pub struct Datagram {
    pub ip: IpInfo,
    pub v6: bool,
    pub protocol: u8,
    pub data: Vec<u8>,
}

/// Fragments kept per datagram (a datagram needs at most 64 KiB / 8 = 8192 in theory; real
/// ones use a handful).
pub const MAX_PARTS: usize = 128;

#[derive(Debug, Default)]
pub struct Defragmenter {
    pending: FxHashMap<Key, Pending>,
    /// Keys in arrival order, to drop the oldest in O(1) when full (may hold stale keys).
    order: std::collections::VecDeque<Key>,
    /// Datagrams given up on (timeout, cap, inconsistent lengths).
    pub dropped: u64,
    pub reassembled: u64,
}

impl Defragmenter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one fragment; returns the datagram when this fragment completes it.
    pub fn push(&mut self, ts: Nanos, f: &Fragment<'_>) -> Option<Datagram> {
        if self.pending.len() >= MAX_PENDING {
            self.drop_oldest();
        }
        let key = Key {
            src: f.ip.src,
            dst: f.ip.dst,
            proto: f.protocol,
            ident: f.ident,
        };
        let end = f.offset.checked_add(f.data.len() as u32)?;
        if end > MAX_DATAGRAM {
            self.dropped += 1;
            self.pending.remove(&key);
            return None;
        }
        if !self.pending.contains_key(&key) {
            self.order.push_back(key);
        }
        let p = self.pending.entry(key).or_insert_with(|| Pending {
            first_ts: ts,
            parts: Vec::new(),
            total: None,
            ip: None,
        });
        // A copy of bytes already held adds nothing (and must not cost anything).
        let covered_already = p
            .parts
            .iter()
            .any(|(o, d)| *o <= f.offset && o + d.len() as u32 >= end);
        if covered_already {
            return None;
        }
        if p.parts.len() >= MAX_PARTS {
            self.pending.remove(&key);
            self.dropped += 1;
            return None;
        }
        if !f.more {
            p.total = Some(end);
        }
        if f.offset == 0 {
            p.ip = Some(f.ip);
        }
        let at = p.parts.partition_point(|(o, _)| *o < f.offset);
        p.parts.insert(at, (f.offset, f.data.to_vec()));
        let total = p.total?;
        if !p.covers(total) {
            return None;
        }
        let p = self.pending.remove(&key)?;
        let ip = p.ip?;
        self.reassembled += 1;
        Some(Datagram {
            ip,
            v6: f.v6,
            protocol: f.protocol,
            data: p.assemble(total),
        })
    }

    fn drop_oldest(&mut self) {
        while let Some(k) = self.order.pop_front() {
            if self.pending.remove(&k).is_some() {
                self.dropped += 1;
                return;
            }
        }
    }

    /// Drops datagrams older than the timeout (or, when `force`, the oldest one).
    pub fn expire(&mut self, now: Nanos, force: bool) {
        let before = self.pending.len();
        self.pending
            .retain(|_, p| now.saturating_sub(p.first_ts) < TIMEOUT_NS);
        let pending = &self.pending;
        self.order.retain(|k| pending.contains_key(k));
        if force && self.pending.len() == before {
            if let Some(k) = self
                .pending
                .iter()
                .min_by_key(|(_, p)| p.first_ts)
                .map(|(k, _)| *k)
            {
                self.pending.remove(&k);
            }
        }
        self.dropped += (before - self.pending.len()) as u64;
    }

    /// Datagrams still incomplete (reported at the end).
    pub fn incomplete(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn frag(offset: u32, more: bool, data: &[u8]) -> Fragment<'_> {
        Fragment {
            ip: IpInfo {
                src: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
                dst: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
                ttl: 64,
                id: Some(7),
            },
            v6: false,
            protocol: 6,
            ident: 7,
            offset,
            more,
            data,
        }
    }

    #[test]
    fn out_of_order_fragments_reassemble() {
        let mut d = Defragmenter::new();
        assert!(d.push(0, &frag(8, false, b"BBBB")).is_none());
        let dg = d.push(1, &frag(0, true, b"AAAAAAAA")).expect("complete");
        assert_eq!(dg.data, b"AAAAAAAABBBB");
        assert_eq!(d.incomplete(), 0);
    }

    #[test]
    fn overlap_keeps_first_copy_and_hole_waits() {
        let mut d = Defragmenter::new();
        assert!(d.push(0, &frag(0, true, b"AAAAAAAA")).is_none());
        assert!(d.push(0, &frag(16, false, b"CC")).is_none());
        let dg = d
            .push(0, &frag(4, true, b"xxxxBBBBBBBB"))
            .expect("complete");
        assert_eq!(dg.data, b"AAAAAAAABBBBBBBBCC");
    }

    #[test]
    fn stale_fragments_expire() {
        let mut d = Defragmenter::new();
        d.push(0, &frag(0, true, b"AAAAAAAA"));
        d.expire(TIMEOUT_NS + 1, false);
        assert_eq!(d.incomplete(), 0);
        assert_eq!(d.dropped, 1);
    }
}
