//! Events: what happened on a connection, in capture order, packed small; diagnose builds
//! the report's timeline from them.

use crate::capture::FrameRef;
use crate::flow::Dir;

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
    dir: Dir,
    icmp_type: u8,
    code: u8,
}

impl Event {
    pub(crate) fn new(at: FrameRef, dir: Dir, kind: EventKind) -> Self {
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
            dir,
            icmp_type,
            code,
        }
    }

    /// Direction of the packet.
    pub fn dir(&self) -> Dir {
        self.dir
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
pub(crate) const EVENTS_WITH_DATA: usize = 16;

#[cfg(test)]
mod tests {
    use super::*;

    fn at(n: u64) -> FrameRef {
        FrameRef::new(0, n, n as i64 * 100_000_000)
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
            let d = Dir::from_index(i % 2);
            let e = Event::new(at(i as u64), d, k);
            assert_eq!((e.kind(), e.dir(), e.at), (k, d, at(i as u64)));
        }
    }
}
