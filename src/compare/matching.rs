//! Which connection of the client-side capture is which of the server-side capture.
//!
//! Keys, tried in this order, each connection used once: the exact 4-tuple and the client's
//! initial sequence number; the initial sequence numbers and the SYN's TCP timestamp (NAT
//! rewrote the addresses); the SYN's TCP timestamp and the server port (a firewall rewrote the
//! sequence numbers); the 4-tuple alone when one side never saw the SYN. Hands [`Match`]es to
//! the clock estimate and the pairing, and the NAT sentence of a matched pair.

use super::{endpoint, Loaded};
use crate::model::Connection;
use std::collections::HashMap;

/// How two connections were recognised as one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum How {
    Exact,
    AddressesOnly,
    IsnNat,
    TimestampOnly,
}

impl How {
    /// The keys tried, strongest first.
    const ORDER: [How; 4] = [
        How::Exact,
        How::IsnNat,
        How::TimestampOnly,
        How::AddressesOnly,
    ];

    pub(super) fn text(self) -> &'static str {
        match self {
            How::Exact => "addresses, ports and initial sequence number",
            How::AddressesOnly => "addresses and ports (no SYN on one side)",
            How::IsnNat => "initial sequence numbers and TCP timestamps (addresses translated)",
            How::TimestampOnly => {
                "SYN TCP timestamp and server port (sequence numbers rewritten in between)"
            }
        }
    }

    /// `c` (client side) and `s` (server side) agree on what this key compares beyond the
    /// index it was looked up in.
    fn fits(self, c: &Loaded, s: &Loaded) -> bool {
        match self {
            How::Exact => c.trace.client_isn.is_some() && c.trace.client_isn == s.trace.client_isn,
            How::IsnNat => {
                agree(c.trace.server_isn, s.trace.server_isn)
                    && agree(c.trace.syn_tsval, s.trace.syn_tsval)
            }
            How::TimestampOnly => {
                c.conn.server_port == s.conn.server_port || c.trace.server_isn.is_none()
            }
            How::AddressesOnly => c.trace.client_isn.is_none() || s.trace.client_isn.is_none(),
        }
    }
}

/// A client-side connection (index) matched with a server-side one.
pub(super) struct Match {
    pub client: usize,
    pub server: usize,
    pub how: How,
}

type Tuple = (String, u16, String, u16);

fn tuple(c: &Connection) -> Tuple {
    (
        c.client_ip.clone(),
        c.client_port,
        c.server_ip.clone(),
        c.server_port,
    )
}

/// The server side's connections indexed by each key.
struct Index {
    by_tuple: HashMap<Tuple, Vec<usize>>,
    by_isn: HashMap<u32, Vec<usize>>,
    by_tsval: HashMap<u32, Vec<usize>>,
}

impl Index {
    fn new(server: &[Loaded]) -> Index {
        let mut ix = Index {
            by_tuple: HashMap::new(),
            by_isn: HashMap::new(),
            by_tsval: HashMap::new(),
        };
        for (i, s) in server.iter().enumerate() {
            ix.by_tuple.entry(tuple(&s.conn)).or_default().push(i);
            if let Some(isn) = s.trace.client_isn {
                ix.by_isn.entry(isn).or_default().push(i);
            }
            if let Some(ts) = s.trace.syn_tsval.filter(|t| *t != 0) {
                ix.by_tsval.entry(ts).or_default().push(i);
            }
        }
        ix
    }

    /// Server-side connections that share `c`'s key `how`.
    fn candidates(&self, how: How, c: &Loaded) -> Option<&Vec<usize>> {
        match how {
            How::Exact | How::AddressesOnly => self.by_tuple.get(&tuple(&c.conn)),
            How::IsnNat => c.trace.client_isn.and_then(|i| self.by_isn.get(&i)),
            How::TimestampOnly => c.trace.syn_tsval.and_then(|t| self.by_tsval.get(&t)),
        }
    }
}

/// Pairs connections: exact 4-tuple and ISN first, then the NAT-proof keys; each connection
/// is used once, the candidate nearest in start time wins.
pub(super) fn match_connections(client: &[Loaded], server: &[Loaded]) -> Vec<Match> {
    let ix = Index::new(server);
    let mut out = Vec::new();
    let mut used = vec![false; server.len()];
    let mut done = vec![false; client.len()];
    for how in How::ORDER {
        for (ci, c) in client.iter().enumerate() {
            if done[ci] {
                continue;
            }
            let t = c.first_ts().unwrap_or(0);
            let Some(list) = ix.candidates(how, c) else {
                continue;
            };
            let best = list
                .iter()
                .copied()
                .filter(|si| !used[*si] && how.fits(c, &server[*si]))
                .min_by_key(|si| server[*si].first_ts().unwrap_or(0).abs_diff(t));
            if let Some(si) = best {
                used[si] = true;
                done[ci] = true;
                out.push(Match {
                    client: ci,
                    server: si,
                    how,
                });
            }
        }
    }
    out
}

/// Equal, or unknown on one side.
fn agree(a: Option<u32>, b: Option<u32>) -> bool {
    match (a, b) {
        (Some(x), Some(y)) => x == y,
        _ => true,
    }
}

/// The address translation between the capture points, when the two 4-tuples differ.
pub(super) fn nat(c: &Connection, s: &Connection) -> Option<String> {
    let (a, b) = (tuple(c), tuple(s));
    (a != b).then(|| translation(&a, &b))
}

fn translation(a: &Tuple, b: &Tuple) -> String {
    format!(
        "{} -> {} on the client side is {} -> {} on the server side",
        endpoint(&a.0, a.1),
        endpoint(&a.2, a.3),
        endpoint(&b.0, b.1),
        endpoint(&b.2, b.3)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_on_one_side_agrees() {
        assert!(agree(None, Some(1)));
        assert!(agree(Some(1), None));
        assert!(agree(Some(7), Some(7)));
        assert!(!agree(Some(7), Some(8)));
    }

    #[test]
    fn translation_names_both_tuples() {
        let c: Tuple = ("10.0.0.1".into(), 40000, "2001:db8::1".into(), 443);
        let s: Tuple = ("192.0.2.7".into(), 40000, "2001:db8::1".into(), 443);
        assert_eq!(
            translation(&c, &s),
            "10.0.0.1:40000 -> [2001:db8::1]:443 on the client side is 192.0.2.7:40000 -> [2001:db8::1]:443 on the server side"
        );
    }
}
