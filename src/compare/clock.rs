//! The offset between the two captures' clocks, estimated from packets both captures saw.
//!
//! Takes the matched connections and hands on a [`Clock`]: the offset (server-side clock minus
//! client-side clock) that puts the server side's times on the client side's clock.

use super::matching::Match;
use super::Loaded;
use crate::capture::Nanos;
use crate::model::{Trace, TraceKind, TracePacket};
use serde::Serialize;
use std::collections::HashMap;

/// The clock offset between the captures.
#[derive(Debug, Clone, Serialize)]
pub struct Clock {
    /// Server-side clock minus client-side clock, in seconds (None: nothing to estimate from).
    pub offset_s: Option<f64>,
    pub method: String,
    /// Packets seen on both sides used for the estimate, per direction.
    pub samples_c2s: u64,
    pub samples_s2c: u64,
}

impl Clock {
    pub(super) fn offset_ns(&self) -> Option<Nanos> {
        self.offset_s.map(|s| (s * 1e9).round() as Nanos)
    }
}

/// Packet identity across captures: from the client?, kind and stream offsets.
type Key = (bool, TraceKind, u64, u64);

fn key(p: &TracePacket) -> Key {
    (p.from_client, p.kind, p.start, p.end)
}

/// Offset from packets that occur once on each side of a matched connection: the smallest
/// client-to-server difference is offset + delay, the smallest server-to-client difference is
/// delay - offset; with equal delays both ways, offset = (c2s - s2c) / 2 (as NTP does).
pub(super) fn estimate_offset(client: &[Loaded], server: &[Loaded], matches: &[Match]) -> Clock {
    let (mut c2s, mut s2c): (Option<Nanos>, Option<Nanos>) = (None, None);
    let (mut n_c2s, mut n_s2c) = (0u64, 0u64);
    for m in matches {
        let (c, s) = (&client[m.client].trace, &server[m.server].trace);
        for (k, pc, ps) in unique_common(c, s) {
            if k.0 {
                let d = ps.ts.saturating_sub(pc.ts);
                c2s = Some(c2s.map_or(d, |x| x.min(d)));
                n_c2s += 1;
            } else {
                let d = pc.ts.saturating_sub(ps.ts);
                s2c = Some(s2c.map_or(d, |x| x.min(d)));
                n_s2c += 1;
            }
        }
    }
    let (offset, method) = offset_from(c2s, s2c);
    Clock {
        offset_s: offset.map(|o| o as f64 / 1e9),
        method: method.into(),
        samples_c2s: n_c2s,
        samples_s2c: n_s2c,
    }
}

/// The offset from the smallest transit each way, and how it was found.
fn offset_from(c2s: Option<Nanos>, s2c: Option<Nanos>) -> (Option<Nanos>, &'static str) {
    match (c2s, s2c) {
        (Some(a), Some(b)) => (
            Some((a - b) / 2),
            "half the difference of the smallest one-way transit each way (equal delays assumed)",
        ),
        (Some(a), None) => (
            Some(a),
            "smallest client-to-server transit (no packet crossed back; delay taken as 0)",
        ),
        (None, Some(b)) => (
            Some(-b),
            "smallest server-to-client transit (no packet crossed forward; delay taken as 0)",
        ),
        (None, None) => (None, "no packet seen on both sides"),
    }
}

/// Packets whose key occurs exactly once in each trace.
fn unique_common<'t>(c: &'t Trace, s: &'t Trace) -> Vec<(Key, &'t TracePacket, &'t TracePacket)> {
    // Occurrences on each side and the index of the last one.
    let mut count: HashMap<Key, (u32, u32, usize, usize)> = HashMap::new();
    for (i, p) in c.packets.iter().enumerate() {
        let e = count.entry(key(p)).or_insert((0, 0, 0, 0));
        e.0 += 1;
        e.2 = i;
    }
    for (i, p) in s.packets.iter().enumerate() {
        let e = count.entry(key(p)).or_insert((0, 0, 0, 0));
        e.1 += 1;
        e.3 = i;
    }
    let mut out: Vec<_> = count
        .into_iter()
        .filter(|(_, v)| v.0 == 1 && v.1 == 1)
        .map(|(k, v)| (k, &c.packets[v.2], &s.packets[v.3]))
        .collect();
    out.sort_by_key(|(_, pc, _)| (pc.ts, pc.frame));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_delays_give_half_the_difference() {
        // Server clock 10 ms ahead, 2 ms each way: c2s sees 12 ms, s2c sees -8 ms.
        let (o, _) = offset_from(Some(12_000_000), Some(-8_000_000));
        assert_eq!(o, Some(10_000_000));
    }

    #[test]
    fn one_way_only_takes_the_delay_as_zero() {
        assert_eq!(offset_from(Some(5), None).0, Some(5));
        assert_eq!(offset_from(None, Some(5)).0, Some(-5));
        assert_eq!(offset_from(None, None).0, None);
    }

    #[test]
    fn offset_in_nanoseconds_rounds() {
        let c = Clock {
            offset_s: Some(0.001_000_000_4),
            method: String::new(),
            samples_c2s: 0,
            samples_s2c: 0,
        };
        assert_eq!(c.offset_ns(), Some(1_000_000));
    }
}
