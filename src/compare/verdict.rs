//! A pair's verdict and its wording: where the failure happened, as a sentence citing the frames,
//! and the next step. A pure function of the pair's packets and fates ([`PairFacts`]), the first
//! rule that fits, path problems before endpoint problems.

use super::fate::{Crossed, Crossing, Fate};
use crate::diagnose::verdict::times;
use crate::model::VerdictCode;
use crate::model::{TraceKind, TracePacket};
use serde::Serialize;

/// Where a pair's failure happened, in the style of the single-capture verdicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PairVerdict {
    /// The handshake completed; anything lost on the way was recovered.
    Ok,
    /// Packets of the client left the client side and never reached the server side.
    DroppedClientToServer,
    /// Packets of the server left the server side and never reached the client side.
    DroppedServerToClient,
    /// The ClientHello reached the server, which never answered.
    ServerSilent,
    /// The server's packets reached the client, which did not go on.
    ClientSilent,
    /// A reset arrived that the endpoint whose address it carries never sent.
    ResetInPath,
    /// The server ended the handshake (alert, reset, close, not TLS) and that arrived.
    ServerRefused,
    /// The client ended the handshake (alert) after the server's answer arrived.
    ClientRefused,
    /// Not enough on either side to say.
    Inconclusive,
}

impl PairVerdict {
    pub fn as_str(self) -> &'static str {
        match self {
            PairVerdict::Ok => "ok",
            PairVerdict::DroppedClientToServer => "dropped_client_to_server",
            PairVerdict::DroppedServerToClient => "dropped_server_to_client",
            PairVerdict::ServerSilent => "server_silent",
            PairVerdict::ClientSilent => "client_silent",
            PairVerdict::ResetInPath => "reset_in_path",
            PairVerdict::ServerRefused => "server_refused",
            PairVerdict::ClientRefused => "client_refused",
            PairVerdict::Inconclusive => "inconclusive",
        }
    }

    pub fn is_failure(self) -> bool {
        !matches!(self, PairVerdict::Ok)
    }

    /// Severity for ordering headlines: path problems first.
    pub fn rank(self) -> u8 {
        match self {
            PairVerdict::DroppedClientToServer => 0,
            PairVerdict::DroppedServerToClient => 1,
            PairVerdict::ResetInPath => 2,
            PairVerdict::ServerSilent => 3,
            PairVerdict::ServerRefused => 4,
            PairVerdict::ClientSilent => 5,
            PairVerdict::ClientRefused => 6,
            PairVerdict::Inconclusive => 7,
            PairVerdict::Ok => 8,
        }
    }
}

/// What the verdict is judged from.
pub(super) struct PairFacts<'a> {
    /// Both directions, packet by packet, with their fates.
    pub x: &'a Crossed<'a>,
    /// The server side saw the connection at all.
    pub server_seen: bool,
    /// Resets that arrived without having been sent (`client-side frame N`).
    pub appeared_rst: &'a [String],
    /// The single-capture verdict of each side.
    pub client_verdict: VerdictCode,
    pub server_verdict: Option<VerdictCode>,
    /// The client sent an alert (seen, not inferred).
    pub client_alert: bool,
}

/// A verdict, the sentence that explains it and the next step.
pub(super) type Judged = (PairVerdict, String, String);

const STEP_PATH_FWD: &str = "A device between the two capture points drops the client's packets: check the firewalls, IPS/DPI (SNI filtering), security groups, load balancers and MTU of every hop after the client-side capture point and before the server-side one.";
const STEP_PATH_BACK: &str = "The server's packets are lost on the way back: check the path MTU (ICMP fragmentation-needed filtered, tunnels), asymmetric routing, and firewalls on the return direction between the two capture points.";

/// The packets of a pair the rules look at, by kind and fate.
struct Seen<'a> {
    lost_fwd: Vec<&'a TracePacket>,
    lost_back: Vec<&'a TracePacket>,
    c_data: Vec<&'a TracePacket>,
    s_data: Vec<&'a TracePacket>,
    s_got_data: Vec<&'a TracePacket>,
    c_got_data: Vec<&'a TracePacket>,
}

impl<'a> Seen<'a> {
    fn of(x: &'a Crossed<'a>) -> Seen<'a> {
        Seen {
            lost_fwd: fated(&x.c_sent, &x.fwd, Fate::Lost),
            lost_back: fated(&x.s_sent, &x.back, Fate::Lost),
            c_data: of_kind(&x.c_sent, TraceKind::Data),
            s_data: of_kind(&x.s_sent, TraceKind::Data),
            s_got_data: of_kind(&x.s_recv, TraceKind::Data),
            c_got_data: of_kind(&x.c_recv, TraceKind::Data),
        }
    }
}

fn of_kind<'a>(list: &[&'a TracePacket], kind: TraceKind) -> Vec<&'a TracePacket> {
    list.iter().copied().filter(|p| p.kind == kind).collect()
}

/// The sent packets (`sent` is the whole list `x` was computed for) with this fate.
fn fated<'a>(sent: &[&'a TracePacket], x: &Crossing, fate: Fate) -> Vec<&'a TracePacket> {
    sent.iter()
        .zip(&x.sent)
        .filter(|(_, f)| f.0 == fate)
        .map(|(p, _)| *p)
        .collect()
}

fn frames(list: &[&TracePacket]) -> String {
    let mut v: Vec<String> = list.iter().take(8).map(|p| p.frame.to_string()).collect();
    if list.len() > 8 {
        v.push(format!("… {} more", list.len() - 8));
    }
    v.join(", ")
}

/// The pair verdict: the first rule that fits, path problems before endpoint problems.
pub(super) fn judge(f: &PairFacts<'_>) -> Judged {
    let k = Seen::of(f.x);
    reset_in_path(f)
        .or_else(|| syn_dropped(f))
        .or_else(|| synack_dropped(f, &k))
        .or_else(|| client_data_dropped(&k))
        .or_else(|| server_data_dropped(f, &k))
        .or_else(|| server_ended(&k, f.x))
        .or_else(|| by_client_verdict(f, &k))
        .or_else(|| client_stopped(f, &k))
        .unwrap_or_else(|| inconclusive(f))
}

fn reset_in_path(f: &PairFacts<'_>) -> Option<Judged> {
    if f.appeared_rst.is_empty() && f.client_verdict != VerdictCode::MiddleboxReset {
        return None;
    }
    let what = if f.appeared_rst.is_empty() {
        "the reset the client side received carries a TTL the server's packets never have (the server-side capture has no packet from that moment on, so it cannot confirm)".to_string()
    } else {
        format!(
            "a reset arrived ({}) that the other side's capture never saw sent",
            f.appeared_rst.join(", ")
        )
    };
    Some((
        PairVerdict::ResetInPath,
        format!(
            "{what}: something between the capture points reset the connection in the endpoint's name"
        ),
        "A middlebox (firewall, IPS, load balancer, proxy) resets this connection: find the device between the capture points that sends resets (idle timeouts, SNI or policy rules) and its logs.".into(),
    ))
}

/// The server side, recording at the time, never saw the connection.
fn syn_dropped(f: &PairFacts<'_>) -> Option<Judged> {
    if f.server_seen {
        return None;
    }
    let c_syn = of_kind(&f.x.c_sent, TraceKind::Syn);
    Some((
        PairVerdict::DroppedClientToServer,
        format!(
            "the SYN left the client side {} (client frames {}) and never reached the server side, which was recording at the time",
            times(c_syn.len() as u32),
            frames(&c_syn)
        ),
        STEP_PATH_FWD.into(),
    ))
}

/// Every SYN-ACK the server sent was lost on the way back.
fn synack_dropped(f: &PairFacts<'_>, k: &Seen<'_>) -> Option<Judged> {
    let s_synack = of_kind(&f.x.s_sent, TraceKind::SynAck);
    let c_got_synack = of_kind(&f.x.c_recv, TraceKind::SynAck);
    let synack_lost = of_kind(&k.lost_back, TraceKind::SynAck);
    if s_synack.is_empty() || !c_got_synack.is_empty() || synack_lost.len() != s_synack.len() {
        return None;
    }
    Some((
        PairVerdict::DroppedServerToClient,
        format!(
            "the server's SYN-ACK left the server side {} (server frames {}) and never reached the client side",
            times(s_synack.len() as u32),
            frames(&s_synack)
        ),
        STEP_PATH_BACK.into(),
    ))
}

/// The client's data was lost on the way and none of it arrived.
fn client_data_dropped(k: &Seen<'_>) -> Option<Judged> {
    if k.c_data.is_empty() || !k.s_got_data.is_empty() {
        return None;
    }
    let lost = of_kind(&k.lost_fwd, TraceKind::Data);
    if lost.is_empty() {
        return None;
    }
    let what = if k.c_data.iter().any(|p| p.label.contains("ClientHello")) {
        "the ClientHello"
    } else {
        "the client's data"
    };
    Some((
        PairVerdict::DroppedClientToServer,
        format!(
            "{what} left the client side {} (client frames {}) and none of it reached the server side, where the TCP handshake had completed",
            times(lost.len() as u32),
            frames(&lost)
        ),
        STEP_PATH_FWD.into(),
    ))
}

/// Some of the server's data was lost on the way back and the client failed.
fn server_data_dropped(f: &PairFacts<'_>, k: &Seen<'_>) -> Option<Judged> {
    let s_data_lost = of_kind(&k.lost_back, TraceKind::Data);
    if s_data_lost.is_empty() || !f.client_verdict.is_failure() {
        return None;
    }
    let full = k.s_data.iter().map(|p| p.end - p.start).max().unwrap_or(0);
    let full_lost = s_data_lost
        .iter()
        .filter(|p| p.end - p.start == full)
        .count();
    let mtu = if full_lost > 0
        && full >= 1000
        && k.c_got_data.iter().all(|p| p.end - p.start < full)
    {
        format!("; every {full}-byte segment vanished while smaller ones arrived, the mark of a path MTU black hole")
    } else {
        String::new()
    };
    Some((
        PairVerdict::DroppedServerToClient,
        format!(
            "{} of the server's {} data segments (server frames {}) never reached the client side{mtu}",
            s_data_lost.len(),
            k.s_data.len(),
            frames(&s_data_lost)
        ),
        STEP_PATH_BACK.into(),
    ))
}

/// The client's first bytes arrived and the server sent no data back: it closed, or stayed
/// silent.
fn server_ended(k: &Seen<'_>, x: &Crossed<'_>) -> Option<Judged> {
    let first = k.s_got_data.first()?;
    if !k.s_data.is_empty() {
        return None;
    }
    let s_end = x
        .s_sent
        .iter()
        .find(|p| matches!(p.kind, TraceKind::Rst | TraceKind::Fin));
    if let Some(end) = s_end {
        return Some((
            PairVerdict::ServerRefused,
            format!(
                "the client's first bytes reached the server side (server frame {}) and the server closed the connection without answering ({}, server frame {})",
                first.frame,
                end.label,
                end.frame
            ),
            "The backend itself closed the connection: check the backend service's logs and TLS configuration (listener expecting another protocol, connection limits).".into(),
        ));
    }
    Some((
        PairVerdict::ServerSilent,
        format!(
            "the client's first bytes reached the server side (server frame {}) and the server never answered",
            first.frame
        ),
        "The backend received the ClientHello and did not answer: check the backend's TLS service (hung worker, full accept queue, CPU), its logs, and that the port speaks TLS.".into(),
    ))
}

/// Nothing was lost that explains it: the client side's own verdict says whether the handshake
/// completed or the server refused it.
fn by_client_verdict(f: &PairFacts<'_>, k: &Seen<'_>) -> Option<Judged> {
    match f.client_verdict {
        VerdictCode::TlsOk => {
            let note = match (k.lost_fwd.len(), k.lost_back.len()) {
                (0, 0) => "every packet sent was seen on both sides".to_string(),
                (a, b) => format!(
                    "the handshake completed; {a} packet(s) to the server and {b} back were lost between the capture points and recovered by retransmission"
                ),
            };
            Some((
                PairVerdict::Ok,
                note,
                "Nothing to do between these capture points.".into(),
            ))
        }
        VerdictCode::ServerAlert
        | VerdictCode::ServerReset
        | VerdictCode::NotTls
        | VerdictCode::ServerClosed
        | VerdictCode::TcpRefused => Some((
            PairVerdict::ServerRefused,
            format!(
                "the server's answer arrived intact (client side: {}): the server itself refused the handshake",
                f.client_verdict.as_str()
            ),
            "The backend ended the handshake: see the single-capture verdict on either side for why, then the backend's TLS configuration and logs.".into(),
        )),
        _ => None,
    }
}

/// The client did not go on: it sent nothing, refused the server's answer or stopped.
fn client_stopped(f: &PairFacts<'_>, k: &Seen<'_>) -> Option<Judged> {
    if k.c_data.is_empty() && f.server_verdict.is_some() {
        return Some((
            PairVerdict::ClientSilent,
            "the TCP handshake completed on both sides and the client never sent a ClientHello".into(),
            "The client (gateway) opened the connection and sent nothing: check its TLS configuration, its CPU, and whether it expects the server to speak first.".into(),
        ));
    }
    if k.s_data.is_empty() || !of_kind(&k.lost_back, TraceKind::Data).is_empty() {
        return None;
    }
    if f.client_alert {
        return Some((
            PairVerdict::ClientRefused,
            "the server's answer arrived intact and the client refused it with an alert".into(),
            "The client rejected the backend's handshake: check the certificate chain, names and trust store on the client (gateway) side.".into(),
        ));
    }
    Some((
        PairVerdict::ClientSilent,
        format!(
            "the server's answer arrived intact ({} segment(s), client frames {}) and the client did not finish the handshake",
            k.c_got_data.len(),
            frames(&k.c_got_data)
        ),
        "The client (gateway) received the backend's answer and stopped: check its TLS library, certificate validation, and its own timeout.".into(),
    ))
}

fn inconclusive(f: &PairFacts<'_>) -> Judged {
    (
        PairVerdict::Inconclusive,
        format!(
            "no packet was lost between the capture points as far as both captures show (client side: {}, server side: {})",
            f.client_verdict.as_str(),
            f.server_verdict.map_or("none", |v| v.as_str())
        ),
        "See the single-capture verdicts of each side.".into(),
    )
}

#[cfg(test)]
mod tests {
    use super::super::fate::Timing;
    use super::*;
    use crate::model::Trace;

    fn pkt(frame: u64, ts: i64, from_client: bool, kind: TraceKind, label: &str) -> TracePacket {
        TracePacket {
            frame,
            file: 0,
            ts,
            from_client,
            kind,
            start: 0,
            end: 0,
            label: label.into(),
        }
    }

    fn facts<'a>(x: &'a Crossed<'a>, server_seen: bool, client: VerdictCode) -> PairFacts<'a> {
        PairFacts {
            x,
            server_seen,
            appeared_rst: &[],
            client_verdict: client,
            server_verdict: None,
            client_alert: false,
        }
    }

    const AT: Timing = Timing {
        offset: Some(0),
        client_span: None,
        server_span: None,
    };

    #[test]
    fn syns_the_server_side_never_saw_were_dropped_on_the_way() {
        let mut ct = Trace::default();
        for (i, ts) in [0, 1_000_000_000, 3_000_000_000].into_iter().enumerate() {
            ct.packets
                .push(pkt(i as u64 + 1, ts, true, TraceKind::Syn, "SYN"));
        }
        let st = Trace::default();
        let x = Crossed::new(&ct, &st, &AT);
        let (v, why, _) = judge(&facts(&x, false, VerdictCode::TcpNoSynack));
        assert_eq!(v, PairVerdict::DroppedClientToServer);
        assert!(why.contains("3 times (client frames 1, 2, 3)"), "{why}");
    }

    #[test]
    fn a_lost_synack_is_dropped_on_the_way_back() {
        let mut ct = Trace::default();
        ct.packets.push(pkt(1, 0, true, TraceKind::Syn, "SYN"));
        let mut st = Trace::default();
        st.packets
            .push(pkt(1, 1_000_000, true, TraceKind::Syn, "SYN"));
        st.packets
            .push(pkt(2, 1_100_000, false, TraceKind::SynAck, "SYN-ACK"));
        let x = Crossed::new(&ct, &st, &AT);
        let (v, why, _) = judge(&facts(&x, true, VerdictCode::TcpNoSynack));
        assert_eq!(v, PairVerdict::DroppedServerToClient);
        assert!(why.contains("once (server frames 2)"), "{why}");
    }

    #[test]
    fn a_reset_that_appeared_on_the_way_comes_first() {
        let (ct, st) = (Trace::default(), Trace::default());
        let x = Crossed::new(&ct, &st, &AT);
        let rst = ["client-side frame 9".to_string()];
        let f = PairFacts {
            appeared_rst: &rst,
            ..facts(&x, false, VerdictCode::TlsOk)
        };
        let (v, why, _) = judge(&f);
        assert_eq!(v, PairVerdict::ResetInPath);
        assert!(why.contains("(client-side frame 9)"), "{why}");
    }

    #[test]
    fn path_problems_rank_before_endpoint_problems() {
        assert!(PairVerdict::DroppedClientToServer.rank() < PairVerdict::ServerSilent.rank());
        assert!(PairVerdict::ClientRefused.rank() < PairVerdict::Ok.rank());
        assert!(!PairVerdict::Ok.is_failure());
        assert_eq!(PairVerdict::ResetInPath.as_str(), "reset_in_path");
    }
}
