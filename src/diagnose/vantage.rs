//! Vantage: was the capture taken on the client (gateway) or the server (backend)?
//!
//! Per connection, four kinds of evidence, strongest first: the SLL/SLL2 packet type (the
//! capturing host marks what it sent as "outgoing"), the TTL / hop limit (the capturing host's
//! own packets carry an initial value, the peer's arrive decremented), TCP checksums (with TX
//! checksum offload the capturing host's own packets are captured before the NIC fills the
//! checksum in: wrong there, the peer's right), and handshake timing (on the client SYN ->
//! SYN-ACK is the round trip and SYN-ACK -> ACK is near zero; on the server the reverse). The capture-wide answer is the majority, with the evidence that decided it.

use crate::model::Side;
use crate::wire::PacketType;

/// What one connection says about the capture point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Evidence {
    pub side: Side,
    pub by: Method,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Method {
    PacketType,
    Ttl,
    Checksum,
    Timing,
    None,
}

impl Method {
    pub fn describe(self) -> &'static str {
        match self {
            Method::PacketType => "Linux cooked-capture packet types (outgoing vs. to this host)",
            Method::Ttl => {
                "TTL/hop limit (the capturing host's own packets carry the initial value)"
            }
            Method::Checksum => {
                "TCP checksums (the capturing host's own packets carry wrong ones: TX checksum \
                 offload)"
            }
            Method::Timing => "handshake timing (which side answers at once)",
            Method::None => "no usable evidence",
        }
    }
}

/// Inputs for one connection, in client/server terms.
#[derive(Debug, Clone, Copy, Default)]
pub struct Clues {
    pub client_pkttype: Option<PacketType>,
    pub server_pkttype: Option<PacketType>,
    pub client_ttl: Option<u8>,
    pub server_ttl: Option<u8>,
    /// Seconds: last SYN -> SYN-ACK, SYN-ACK -> handshake ACK.
    pub syn_to_synack: Option<f64>,
    pub synack_to_ack: Option<f64>,
    /// TCP checksums checked and, of those, wrong: (checked, wrong) per side.
    pub client_sums: (u8, u8),
    pub server_sums: (u8, u8),
}

fn initial_ttl(t: u8) -> bool {
    matches!(t, 32 | 64 | 128 | 255)
}

/// Decides one connection's capture point.
pub fn infer(c: &Clues) -> Evidence {
    use PacketType::{Outgoing, ToUs};
    let by_type = match (c.client_pkttype, c.server_pkttype) {
        (Some(Outgoing), Some(Outgoing)) | (Some(ToUs), Some(ToUs)) => None,
        (Some(Outgoing), _) | (_, Some(ToUs)) => Some(Side::Client),
        (Some(ToUs), _) | (_, Some(Outgoing)) => Some(Side::Server),
        _ => None,
    };
    if let Some(side) = by_type {
        return Evidence {
            side,
            by: Method::PacketType,
        };
    }
    if let (Some(ct), Some(st)) = (c.client_ttl.or(Some(0)), c.server_ttl.or(Some(0))) {
        // A side that sent nothing counts as "not initial": only the other side's packets
        // were captured, at their sender's initial TTL (e.g. unanswered SYNs on the client).
        match (initial_ttl(ct), initial_ttl(st)) {
            (true, false) => {
                return Evidence {
                    side: Side::Client,
                    by: Method::Ttl,
                }
            }
            (false, true) => {
                return Evidence {
                    side: Side::Server,
                    by: Method::Ttl,
                }
            }
            _ => {}
        }
    }
    if let Some(side) = by_checksum(c.client_sums, c.server_sums) {
        return Evidence {
            side,
            by: Method::Checksum,
        };
    }
    if let (Some(a), Some(b)) = (c.syn_to_synack, c.synack_to_ack) {
        const MIN_DIFF: f64 = 50e-6;
        if a > 3.0 * b && a - b > MIN_DIFF {
            return Evidence {
                side: Side::Client,
                by: Method::Timing,
            };
        }
        if b > 3.0 * a && b - a > MIN_DIFF {
            return Evidence {
                side: Side::Server,
                by: Method::Timing,
            };
        }
    }
    Evidence {
        side: Side::Unknown,
        by: Method::None,
    }
}

/// The side whose packets mostly carry wrong TCP checksums while every checked one of the
/// other side is right: the capturing host's own, under TX checksum offload. Nothing when
/// either side has none checked, or both have wrong ones (a capture of offloaded traffic in
/// both directions, or damage) or neither. A virtual link (veth, loopback) hands the peer's
/// unfilled checksums to the receiver as they are: a capture there sees them wrong on both
/// ends' packets when both offload, which says nothing; hence ranked below the TTL.
fn by_checksum(client: (u8, u8), server: (u8, u8)) -> Option<Side> {
    let own = |(checked, wrong): (u8, u8)| wrong > 0 && u16::from(wrong) * 2 > u16::from(checked);
    let clean = |(checked, wrong): (u8, u8)| checked > 0 && wrong == 0;
    match (own(client), own(server)) {
        (true, false) if clean(server) => Some(Side::Client),
        (false, true) if clean(client) => Some(Side::Server),
        _ => None,
    }
}

/// Per-connection evidence, counted (constant size, however many connections).
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    client: u64,
    server: u64,
    best_client: Option<Method>,
    best_server: Option<Method>,
}

impl Tally {
    pub fn add(&mut self, e: Evidence) {
        let (n, best) = match e.side {
            Side::Client => (&mut self.client, &mut self.best_client),
            Side::Server => (&mut self.server, &mut self.best_server),
            Side::Unknown => return,
        };
        *n += 1;
        *best = Some(best.map_or(e.by, |b| b.min(e.by)));
    }
}

/// Capture-wide decision from per-connection evidence: (side, explanation).
pub fn overall(t: &Tally) -> (Side, String) {
    let (client, server) = (t.client, t.server);
    if client + server == 0 {
        return (
            Side::Unknown,
            "no connection carried usable evidence (packet type, TTL, TCP checksums or handshake \
             timing)"
                .into(),
        );
    }
    let (side, best) = if client > server {
        (Side::Client, t.best_client)
    } else if server > client {
        (Side::Server, t.best_server)
    } else {
        (Side::Unknown, None)
    };
    let text = format!(
        "{client} connection(s) point to the client side and {server} to the server side; \
         strongest evidence: {}",
        best.unwrap_or(Method::None).describe()
    );
    (side, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_type_wins_over_ttl() {
        let c = Clues {
            client_pkttype: Some(PacketType::Outgoing),
            client_ttl: Some(63),
            server_ttl: Some(64),
            ..Default::default()
        };
        assert_eq!(infer(&c).side, Side::Client);
        assert_eq!(infer(&c).by, Method::PacketType);
    }

    #[test]
    fn ttl_decides_when_one_side_is_decremented() {
        let c = Clues {
            client_ttl: Some(63),
            server_ttl: Some(64),
            ..Default::default()
        };
        assert_eq!(infer(&c).side, Side::Server);
    }

    #[test]
    fn unanswered_syns_at_initial_ttl_mean_client_side() {
        let c = Clues {
            client_ttl: Some(64),
            ..Default::default()
        };
        assert_eq!(infer(&c).side, Side::Client);
    }

    #[test]
    fn timing_decides_last() {
        let client = Clues {
            syn_to_synack: Some(0.030),
            synack_to_ack: Some(0.00005),
            ..Default::default()
        };
        assert_eq!(infer(&client).side, Side::Client);
        let server = Clues {
            syn_to_synack: Some(0.00004),
            synack_to_ack: Some(0.030),
            ..Default::default()
        };
        assert_eq!(infer(&server).side, Side::Server);
        let both_fast = Clues {
            syn_to_synack: Some(0.00001),
            synack_to_ack: Some(0.00002),
            ..Default::default()
        };
        assert_eq!(infer(&both_fast).side, Side::Unknown);
    }

    #[test]
    fn checksums_decide_when_ttls_cannot() {
        // A RST from a one-hop router and the client's SYN, both at 64: TTLs cannot tell.
        let client = Clues {
            client_ttl: Some(64),
            server_ttl: Some(64),
            client_sums: (1, 1),
            server_sums: (1, 0),
            ..Default::default()
        };
        assert_eq!(
            infer(&client),
            Evidence {
                side: Side::Client,
                by: Method::Checksum
            }
        );
        let server = Clues {
            client_sums: (4, 0),
            server_sums: (4, 3),
            ..client
        };
        assert_eq!(infer(&server).side, Side::Server);
        assert_eq!(infer(&server).by, Method::Checksum);
        // Wrong or right everywhere, one wrong among several right, or a silent peer: nothing.
        for (c, s) in [
            ((4, 4), (4, 4)),
            ((4, 0), (4, 0)),
            ((4, 1), (4, 0)),
            ((2, 2), (0, 0)),
        ] {
            let none = Clues {
                client_sums: c,
                server_sums: s,
                ..client
            };
            assert_eq!(infer(&none).by, Method::None, "{c:?} {s:?}");
        }
        // TTL outranks checksums; checksums outrank timing.
        let ttl = Clues {
            server_ttl: Some(63),
            server_sums: (4, 4),
            client_sums: (4, 0),
            ..client
        };
        assert_eq!(
            (infer(&ttl).side, infer(&ttl).by),
            (Side::Client, Method::Ttl)
        );
        let timing = Clues {
            syn_to_synack: Some(0.030),
            synack_to_ack: Some(0.000_05),
            ..server
        };
        assert_eq!(infer(&timing).by, Method::Checksum);
        let (_, text) = overall(&{
            let mut t = Tally::default();
            t.add(infer(&client));
            t
        });
        assert!(text.contains("TX checksum offload"), "{text}");
    }

    #[test]
    fn majority_decides_capture() {
        let e = [
            Evidence {
                side: Side::Client,
                by: Method::Ttl,
            },
            Evidence {
                side: Side::Client,
                by: Method::Timing,
            },
            Evidence {
                side: Side::Unknown,
                by: Method::None,
            },
        ];
        let mut t = Tally::default();
        e.into_iter().for_each(|e| t.add(e));
        let (side, text) = overall(&t);
        assert_eq!(side, Side::Client);
        assert!(text.contains("TTL"));
    }
}
