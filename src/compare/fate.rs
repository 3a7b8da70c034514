//! The fate of each packet of a pair: seen on both sides, lost between the capture points, or
//! appeared on the way (arrived without having been sent, as far as the sender's capture shows).
//!
//! Packets are compared in stream offsets relative to each sender's first sequence number, so
//! rewritten sequence numbers do not matter. Hands on each direction's [`Crossing`] (to the pair
//! verdict) and the ladder, the lost and appeared lists and the one-way delays (to the report).

use super::{LadderRow, OneSided};
use crate::capture::Nanos;
use crate::model::{Trace, TraceKind, TracePacket};

/// Slack when deciding that a packet arrived after it was sent, on top of the estimated
/// offset (clock jitter between two hosts' captures).
const SLACK: Nanos = 5_000_000;
/// Ladder rows kept per pair.
const LADDER_MAX: usize = 64;
/// One-sided packets listed per pair and direction.
const LIST_MAX: usize = 16;

/// The two captures in time: the clock offset (server side minus client side) and each
/// capture's first and last packet times, on its own clock.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timing {
    pub offset: Option<Nanos>,
    pub client_span: Option<(Nanos, Nanos)>,
    pub server_span: Option<(Nanos, Nanos)>,
}

/// What happened to one sent packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fate {
    Both,
    Lost,
    Unknown,
}

impl Fate {
    fn status(self) -> &'static str {
        match self {
            Fate::Both => "both",
            Fate::Lost => "lost",
            Fate::Unknown => "unknown",
        }
    }
}

/// One direction's packets: for each sent packet, its fate and the first arrival; for each
/// received packet, whether a sent one explains it.
pub(super) struct Crossing {
    pub sent: Vec<(Fate, Option<usize>)>,
    explained: Vec<bool>,
}

/// Attributes every received packet to the latest sent packet that could be it (same kind,
/// overlapping bytes, sent before it arrived); sent packets nothing is attributed to were
/// lost, unless the receiving capture was not recording then.
fn cross(
    sent: &[&TracePacket],
    recv: &[&TracePacket],
    to_recv_clock: Option<Nanos>,
    recv_window: Option<(Nanos, Nanos)>,
    recv_cut: bool,
) -> Crossing {
    let mut out = Crossing {
        sent: vec![(Fate::Lost, None); sent.len()],
        explained: vec![false; recv.len()],
    };
    for (ri, r) in recv.iter().enumerate() {
        let cand = sent
            .iter()
            .enumerate()
            .filter(|(_, s)| same_packet(s, r))
            .filter(|(_, s)| {
                to_recv_clock.is_none_or(|o| s.ts.saturating_add(o).saturating_sub(SLACK) <= r.ts)
            })
            .map(|(i, _)| i)
            .next_back();
        if let Some(si) = cand {
            out.explained[ri] = true;
            let e = &mut out.sent[si];
            if e.0 != Fate::Both {
                *e = (Fate::Both, Some(ri));
            }
        }
    }
    let last_recv = recv.last().map(|r| r.ts);
    for (si, s) in sent.iter().enumerate() {
        if out.sent[si].0 == Fate::Both {
            continue;
        }
        let at = s.ts.saturating_add(to_recv_clock.unwrap_or(0));
        let outside = recv_window.is_some_and(|(a, e)| at < a || at > e.saturating_sub(SLACK));
        // The receiving trace stopped keeping packets: later ones are not compared.
        let beyond_cut = recv_cut && last_recv.is_none_or(|l| at > l);
        if outside || beyond_cut {
            out.sent[si].0 = Fate::Unknown;
        }
    }
    out
}

fn same_packet(s: &TracePacket, r: &TracePacket) -> bool {
    s.kind == r.kind
        && match s.kind {
            TraceKind::Data => s.start < r.end && r.start < s.end,
            TraceKind::Ack => s.start == r.start,
            _ => true,
        }
}

fn pick(t: &Trace, from_client: bool) -> Vec<&TracePacket> {
    t.packets
        .iter()
        .filter(|p| p.from_client == from_client)
        .collect()
}

/// A pair's packets, each capture split by direction, and how they cross both ways.
pub(super) struct Crossed<'t> {
    pub c_sent: Vec<&'t TracePacket>,
    pub s_recv: Vec<&'t TracePacket>,
    pub s_sent: Vec<&'t TracePacket>,
    pub c_recv: Vec<&'t TracePacket>,
    pub fwd: Crossing,
    pub back: Crossing,
}

impl<'t> Crossed<'t> {
    /// `ct` and `st` are the client side's and the server side's traces of one connection.
    pub(super) fn new(ct: &'t Trace, st: &'t Trace, at: &Timing) -> Crossed<'t> {
        let offset = at.offset;
        let (c_sent, s_recv) = (pick(ct, true), pick(st, true));
        let (s_sent, c_recv) = (pick(st, false), pick(ct, false));
        let fwd = cross(
            &c_sent,
            &s_recv,
            offset,
            at.server_span,
            st.packets_dropped > 0,
        );
        let back = cross(
            &s_sent,
            &c_recv,
            offset.map(|o| -o),
            None,
            ct.packets_dropped > 0,
        );
        Crossed {
            c_sent,
            s_recv,
            s_sent,
            c_recv,
            fwd,
            back,
        }
    }

    /// Both directions, client to server first, with the shifts that put each capture's times
    /// on the client side's clock.
    pub(super) fn ways(&self, axis: &Axis) -> [Way<'_>; 2] {
        let off = axis.off;
        [
            Way {
                from_client: true,
                sent: &self.c_sent,
                recv: &self.s_recv,
                x: &self.fwd,
                shift_sent: 0,
                shift_recv: off,
                sender_window: axis.at.client_span,
            },
            Way {
                from_client: false,
                sent: &self.s_sent,
                recv: &self.c_recv,
                x: &self.back,
                shift_sent: off,
                shift_recv: 0,
                sender_window: axis.at.server_span.map(|(a, e)| (a - off, e - off)),
            },
        ]
    }
}

/// One direction of a pair: what its sender's capture sent, what the receiver's saw, how
/// they cross, and the shifts that put each capture's times on the client side's clock.
pub(super) struct Way<'a> {
    from_client: bool,
    sent: &'a [&'a TracePacket],
    recv: &'a [&'a TracePacket],
    x: &'a Crossing,
    shift_sent: Nanos,
    shift_recv: Nanos,
    /// The sender's capture span, on the client side's clock.
    sender_window: Option<(Nanos, Nanos)>,
}

/// Where a pair's packets are placed for people: times in seconds since the pair's first
/// packet on the client side's clock, frames with their file when a side has several.
pub(super) struct Axis {
    at: Timing,
    base: Nanos,
    off: Nanos,
    c_multi: bool,
    s_multi: bool,
}

impl Axis {
    /// `c_multi` / `s_multi`: that side's capture has several files, whose frame numbers each
    /// restart at 1.
    pub(super) fn new(ct: &Trace, st: &Trace, at: &Timing, c_multi: bool, s_multi: bool) -> Axis {
        let offset = at.offset;
        let base = ct
            .packets
            .first()
            .map(|p| p.ts)
            .or_else(|| st.packets.first().map(|p| p.ts - offset.unwrap_or(0)))
            .unwrap_or(0);
        Axis {
            at: *at,
            base,
            off: offset.unwrap_or(0),
            c_multi,
            s_multi,
        }
    }

    /// The file of a packet of the client side's (or server side's) capture, when it matters.
    fn file(&self, client_side: bool, p: &TracePacket) -> Option<usize> {
        let multi = if client_side {
            self.c_multi
        } else {
            self.s_multi
        };
        multi.then_some(p.file)
    }

    fn t(&self, t: Nanos) -> f64 {
        secs(t - self.base)
    }
}

/// The ladder of a pair and the packets that appeared on the way.
pub(super) struct Ladder {
    pub rows: Vec<LadderRow>,
    pub appeared: Vec<OneSided>,
    /// The resets among them, as `client-side frame N`.
    pub appeared_rst: Vec<String>,
}

/// The ladder, on the client side's clock, one direction at a time, then in time order.
pub(super) fn ladder(ways: &[Way<'_>; 2], axis: &Axis) -> Ladder {
    let mut rows: Vec<(Nanos, LadderRow)> = Vec::new();
    let mut out = Ladder {
        rows: Vec::new(),
        appeared: Vec::new(),
        appeared_rst: Vec::new(),
    };
    for w in ways {
        for (p, (fate, r)) in w.sent.iter().zip(&w.x.sent) {
            let t = p.ts - w.shift_sent;
            let recv = r.map(|r| w.recv[r]);
            rows.push(row(w, axis, t, p, Some(p), recv, fate.status()));
        }
        unexplained(w, axis, &mut rows, &mut out);
    }
    rows.sort_by_key(|(t, r)| (*t, r.client_frame.or(r.server_frame)));
    out.rows = rows.into_iter().take(LADDER_MAX).map(|(_, r)| r).collect();
    out
}

/// The received packets of `w` no sent packet explains: appeared on the way, or unknown when
/// the sender's capture was not recording then.
fn unexplained(w: &Way<'_>, axis: &Axis, rows: &mut Vec<(Nanos, LadderRow)>, out: &mut Ladder) {
    for (p, _) in w.recv.iter().zip(&w.x.explained).filter(|(_, e)| !**e) {
        let t = p.ts - w.shift_recv;
        // Only a packet the sender's capture should have seen leave is one that appeared.
        let unseen = w
            .sender_window
            .is_some_and(|(a, e)| t < a || t > e.saturating_sub(SLACK));
        let status = if unseen { "unknown" } else { "appeared" };
        rows.push(row(w, axis, t, p, None, Some(p), status));
        if unseen {
            continue;
        }
        let side = if w.from_client { "server" } else { "client" };
        if p.kind == TraceKind::Rst {
            out.appeared_rst
                .push(format!("{side}-side frame {}", p.frame));
        }
        out.appeared.push(OneSided {
            frame: p.frame,
            file: axis.file(!w.from_client, p),
            t: axis.t(t),
            event: format!("{side} side: {}", p.label),
        });
    }
}

/// A ladder row for packet `p` of way `w` at `t`, with the frames (and files) of its sending
/// and receiving ends when they were seen.
fn row(
    w: &Way<'_>,
    axis: &Axis,
    t: Nanos,
    p: &TracePacket,
    sent: Option<&TracePacket>,
    recv: Option<&TracePacket>,
    status: &'static str,
) -> (Nanos, LadderRow) {
    let (c, s) = if w.from_client {
        (sent, recv)
    } else {
        (recv, sent)
    };
    let row = LadderRow {
        t: axis.t(t),
        dir: if w.from_client { "->" } else { "<-" },
        event: p.label.clone(),
        client_frame: c.map(|p| p.frame),
        server_frame: s.map(|p| p.frame),
        client_file: c.and_then(|p| axis.file(true, p)),
        server_file: s.and_then(|p| axis.file(false, p)),
        status,
    };
    (t, row)
}

/// The sent packets of one direction that were lost, the first [`LIST_MAX`].
pub(super) fn lost(
    sent: &[&TracePacket],
    x: &Crossing,
    axis: &Axis,
    from_client: bool,
) -> Vec<OneSided> {
    sent.iter()
        .enumerate()
        .filter(|(i, _)| x.sent[*i].0 == Fate::Lost)
        .map(|(_, p)| {
            let on_client_clock = if from_client {
                p.ts
            } else {
                p.ts.saturating_sub(axis.off)
            };
            OneSided {
                frame: p.frame,
                file: axis.file(from_client, p),
                t: axis.t(on_client_clock),
                event: p.label.clone(),
            }
        })
        .take(LIST_MAX)
        .collect()
}

/// The smallest one-way delay of a direction, in milliseconds, from its packets seen on both
/// sides.
pub(super) fn delay(w: &Way<'_>) -> Option<f64> {
    w.sent
        .iter()
        .zip(&w.x.sent)
        .filter_map(|(p, (_, r))| r.map(|r| (w.recv[r].ts - w.shift_recv) - (p.ts - w.shift_sent)))
        .filter(|d| *d >= -SLACK)
        .min()
        .map(|d| ms(d.max(0)))
}

fn ms(ns: Nanos) -> f64 {
    (ns as f64 / 1e3).round() / 1e3
}

fn secs(ns: Nanos) -> f64 {
    (ns as f64 / 1e3).round() / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(frame: u64, ts: Nanos, kind: TraceKind, start: u64, end: u64) -> TracePacket {
        TracePacket {
            frame,
            file: 0,
            ts,
            from_client: true,
            kind,
            start,
            end,
            label: String::new(),
        }
    }

    #[test]
    fn data_that_overlaps_is_the_same_packet() {
        let a = pkt(1, 0, TraceKind::Data, 0, 100);
        assert!(same_packet(&a, &pkt(2, 0, TraceKind::Data, 50, 150)));
        assert!(!same_packet(&a, &pkt(2, 0, TraceKind::Data, 100, 200)));
        assert!(!same_packet(&a, &pkt(2, 0, TraceKind::Ack, 0, 100)));
    }

    #[test]
    fn unanswered_packet_is_lost_unless_outside_the_receiving_window() {
        let sent = [
            pkt(1, 0, TraceKind::Syn, 0, 0),
            pkt(2, 1_000_000_000, TraceKind::Syn, 0, 0),
        ];
        let refs: Vec<&TracePacket> = sent.iter().collect();
        let x = cross(&refs, &[], Some(0), Some((0, 500_000_000)), false);
        assert_eq!(x.sent[0].0, Fate::Lost);
        assert_eq!(x.sent[1].0, Fate::Unknown);
    }

    #[test]
    fn arrival_is_attributed_to_the_latest_retransmission_sent_before_it() {
        let sent = [
            pkt(1, 0, TraceKind::Syn, 0, 0),
            pkt(2, 1_000_000_000, TraceKind::Syn, 0, 0),
        ];
        let recv = [pkt(7, 1_002_000_000, TraceKind::Syn, 0, 0)];
        let (s, r): (Vec<_>, Vec<_>) = (sent.iter().collect(), recv.iter().collect());
        let x = cross(&s, &r, Some(0), None, false);
        assert_eq!(x.sent, vec![(Fate::Lost, None), (Fate::Both, Some(0))]);
        assert_eq!(x.explained, vec![true]);
    }

    #[test]
    fn times_round_to_the_microsecond() {
        assert_eq!(secs(1_234_567_890), 1.234568);
        assert_eq!(ms(1_234_567), 1.235);
    }
}
