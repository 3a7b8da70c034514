//! Facts: a settled connection in client/server terms, built once from its packet state, and
//! what the verdict rules and the report are made from.

use super::timeline::timeline;
use crate::capture::{FrameRef, Nanos};
use crate::diagnose::vantage::{self, Clues, Evidence};
use crate::diagnose::verdict::{self, AlertFacts, ConnFacts, Ev, IcmpFacts, Side};
use crate::escape;
use crate::flow::{Conn, Dir, Endpoint, EventKind};
use crate::model::{AlertOut, At, Connection, HttpOut, IcmpOut};
use crate::tls::{hello::ClientHelloFacts, names, SHORT_ENCRYPTED};
use crate::wire;
use std::net::IpAddr;
pub(crate) fn secs(ns: Nanos) -> f64 {
    ns as f64 / 1e9
}

/// Well-known TLS (and other server) ports, for guessing roles when no handshake was seen.
fn server_port_rank(p: u16) -> u8 {
    match p {
        443 | 8443 | 4433 | 636 | 993 | 995 | 465 | 853 | 5061 | 6443 | 9443 | 10443 => 0,
        80 | 8080 | 25 | 21 | 22 | 110 | 143 | 587 | 3389 | 6667 | 1080 | 3000 => 1,
        p if p < 1024 => 2,
        _ => 3,
    }
}

/// Which direction is the client's, by the rules; and the rule used.
pub(crate) fn client_dir(c: &Conn) -> (usize, &'static str) {
    if let Some(d) = c.syn_dir.map(Dir::index) {
        return (d, "syn");
    }
    if let Some(d) = c.synack_dir.map(Dir::index) {
        return (1 - d, "synack");
    }
    if let Some(d) = c.tls_facts().ch_dir {
        return (d, "clienthello");
    }
    if c.icmp_only {
        if let Some(d) = c.icmp.first().and_then(|i| i.quoted_dir.map(Dir::index)) {
            return (d, "icmp_quote");
        }
    }
    let (a, b) = (c.ends[0].port, c.ends[1].port);
    let d = match server_port_rank(a).cmp(&server_port_rank(b)) {
        std::cmp::Ordering::Less => 1,
        std::cmp::Ordering::Greater => 0,
        // Same rank: the lower port is the server's.
        std::cmp::Ordering::Equal => usize::from(a < b),
    };
    (d, "ports")
}

/// Context shared by all connections of a capture.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ctx {
    /// Time of the capture's first packet.
    pub(crate) capture_start: Option<Nanos>,
    /// Latest packet time seen so far (the end, once the capture is read).
    pub(crate) capture_end: Nanos,
    pub(crate) multi_file: bool,
}

impl Ctx {
    pub(crate) fn at(&self, r: FrameRef) -> At {
        At {
            frame: r.frame(),
            t: round6(secs(
                r.ts.saturating_sub(self.capture_start.unwrap_or(r.ts)),
            )),
            file: self.multi_file.then_some(r.file()),
        }
    }
}

pub(crate) fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

pub(crate) fn ev(r: FrameRef, base: Nanos) -> Ev {
    Ev {
        frame: r.frame(),
        t: round6(secs(r.ts.saturating_sub(base))),
    }
}

/// The most times any byte of [start, end) was sent, the frames that carried it, and the
/// capture copies of such frames. After a restart (junk bytes overwritten by the hello),
/// segments before the hello's first are junk.
pub(crate) fn coverage(
    c: &Conn,
    dir: usize,
    start: u64,
    end: u64,
    restarted: bool,
) -> (u32, Vec<FrameRef>, u32) {
    let first_hello = restarted
        .then(|| {
            c.events.iter().find(|e| {
                e.dir().index() == dir
                    && e.kind()
                        .data_span()
                        .is_some_and(|(s, t)| s <= start && t > start && t - s > 5)
            })
        })
        .flatten()
        .map(|e| e.at);
    let in_hello =
        |e: &&crate::flow::Event| e.dir().index() == dir && first_hello.is_none_or(|f| e.at >= f);
    let copies = c
        .events
        .iter()
        .filter(in_hello)
        .filter(|e| {
            e.kind()
                .copy_span()
                .is_some_and(|(s, t)| s < end && t > start)
        })
        .count() as u32;
    let segs: Vec<(u64, u64, FrameRef)> = c
        .events
        .iter()
        .filter(in_hello)
        .filter_map(|e| match e.kind().data_span() {
            Some((s, t)) if s < end && t > start => Some((s.max(start), t.min(end), e.at)),
            _ => None,
        })
        .collect();
    let mut points: Vec<(u64, i32)> = Vec::with_capacity(segs.len() * 2);
    for (s, t, _) in &segs {
        points.push((*s, 1));
        points.push((*t, -1));
    }
    points.sort();
    let (mut cur, mut best) = (0i32, 0i32);
    for (_, delta) in points {
        cur += delta;
        best = best.max(cur);
    }
    (
        best.max(0) as u32,
        segs.into_iter().map(|(_, _, a)| a).collect(),
        copies,
    )
}

pub(crate) struct Built {
    pub(crate) conn: Connection,
    pub(crate) server: crate::flow::Endpoint,
    pub(crate) evidence: Evidence,
    pub(crate) facts: ConnFacts,
    pub(crate) client_dir: usize,
}

/// The connection's packets in capture order, labelled as its timeline labels them.
pub(crate) fn trace(c: &Conn, cd: usize, conn: &Connection) -> crate::model::Trace {
    use crate::model::{TraceKind, TracePacket};
    let (cdir, sdir) = (&c.dirs[cd], &c.dirs[1 - cd]);
    let mut packets = Vec::with_capacity(c.events.len());
    // The timeline has one entry per event, in order (plus a closing note).
    for (e, entry) in c.events.iter().zip(&conn.timeline) {
        let (kind, start, end) = match e.kind() {
            EventKind::Syn => (TraceKind::Syn, 0, 0),
            EventKind::SynAck => (TraceKind::SynAck, 0, 0),
            EventKind::HandshakeAck => (TraceKind::Ack, 0, 0),
            EventKind::HelloAck => {
                let at = c.tls_facts().ch_range.map_or(0, |(_, t)| t);
                (TraceKind::Ack, at, at)
            }
            EventKind::Data { start, len } => (TraceKind::Data, start, start + u64::from(len)),
            EventKind::Fin => (TraceKind::Fin, 0, 0),
            EventKind::Rst => (TraceKind::Rst, 0, 0),
            EventKind::Copy { .. } | EventKind::Icmp { .. } => continue,
        };
        packets.push(TracePacket {
            frame: e.at.frame(),
            file: e.at.file(),
            ts: e.at.ts,
            from_client: e.dir().index() == cd,
            kind,
            start,
            end,
            label: entry.event.to_string(),
        });
    }
    crate::model::Trace {
        client_isn: cdir.syns[0].and(cdir.first_seq),
        server_isn: sdir.synack_seq,
        syn_tsval: cdir.syn_tsval,
        synack_tsval: sdir.syn_tsval,
        packets,
        packets_dropped: c.events_dropped,
    }
}

pub(crate) fn summarise(c: &Conn, ctx: &Ctx) -> Built {
    // The report's form, made here from the packet thread's compact one (which that thread
    // frees when it reuses the connection: freeing another thread's allocations contends
    // for its malloc arena).
    let client_hello = c
        .tls_facts()
        .client_hello
        .as_ref()
        .map(ClientHelloFacts::info);
    let (cd, rule) = client_dir(c);
    let sd = 1 - cd;
    let (cdir, sdir) = (&c.dirs[cd], &c.dirs[sd]);
    let tf = c.tls_facts();
    let base = c.first.ts;
    let e = |r: FrameRef| ev(r, base);

    let began_midstream = cdir.syn_count == 0 && sdir.synack_count == 0 && !c.icmp_only;
    let mut uncertain: Vec<String> = Vec::new();
    if began_midstream {
        uncertain.push("the capture began after the connection opened".into());
    }
    if rule != "syn" {
        uncertain.push(format!("client inferred from the {rule}"));
    }

    // ClientHello transmissions by sequence-range coverage.
    let ch_from_client = tf.ch_dir == Some(cd);
    let (ch_count, ch_frames, ch_copies) = match (tf.ch_range, ch_from_client) {
        (Some((s, t)), true) => coverage(c, cd, s, t, tf.restarted_at[cd].is_some()),
        _ => (0, Vec::new(), 0),
    };
    let ch_first = ch_frames
        .first()
        .copied()
        .or(if ch_from_client { tf.ch_at } else { None });
    // Transmissions of the first ClientHello, plus any later ClientHello message (the second
    // one after a HelloRetryRequest, or a new one on the same connection).
    let ch_count = if ch_first.is_some() {
        ch_count.max(1) + tf.client_hellos.saturating_sub(1)
    } else {
        0
    };
    let ch_acked = match (tf.ch_range, ch_from_client) {
        (Some((_, end)), true) => Some(cdir.acked.is_some_and(|a| a >= end)),
        _ => None,
    };
    if ch_from_client && client_hello.is_none() {
        uncertain.push("the ClientHello was seen but not complete enough to parse".into());
    }
    for (d, name) in [(cdir, "client"), (sdir, "server")] {
        if d.payload_truncated {
            uncertain.push(format!("{name} payload cut by the snaplen"));
        }
        if d.header_truncated > 0 {
            uncertain.push(format!(
                "{} {name} TCP header(s) cut by the snaplen",
                d.header_truncated
            ));
        }
        if d.reasm.limits.cap_reached {
            uncertain.push(format!(
                "{name} stream beyond the reassembly cap not analysed"
            ));
        }
        if d.reasm.limits.holding_overflow {
            uncertain.push(format!(
                "{name} out-of-order data beyond the holding limit dropped"
            ));
        }
        if d.reasm.limits.gaps > 0 {
            uncertain.push(format!(
                "{} gap(s) in the {name} stream never filled",
                d.reasm.limits.gaps
            ));
        }
    }
    if tf.oversized_message {
        uncertain.push("a handshake message over 64 KiB was skipped".into());
    }

    let client_close = match (cdir.fin, cdir.rst) {
        (Some(f), Some(r)) => Some(f.min(r)),
        (a, b) => a.or(b),
    };
    let gave_up = match (ch_first, client_close) {
        (Some(ch), Some(close)) if close.ts >= ch.ts => {
            Some(round6(secs(close.ts.saturating_sub(ch.ts))))
        }
        _ => None,
    };
    let timeout_match = gave_up.and_then(verdict::match_timeout);

    // Alerts: the one that decided, else the first.
    let sender = |d: usize| if d == cd { "client" } else { "server" };
    let decisive = tf.alerts.iter().find(|a| {
        let before_done = tf.handshake_done.is_none_or(|d| a.at <= d);
        before_done && a.plain.is_none_or(|(lvl, _)| lvl == 2)
    });
    let mut alert_facts = decisive.map(|a| AlertFacts {
        at: e(a.at),
        from_server: a.dir == sd,
        description: a.plain.map(|(_, d)| names::alert_description(d)),
        fatal: a.plain.is_none_or(|(l, _)| l == 2),
        encrypted: a.plain.is_none(),
        inferred: false,
    });
    let mut alert_out = decisive
        .or(tf.alerts.iter().min_by_key(|a| a.at))
        .map(|a| AlertOut {
            sender: sender(a.dir).into(),
            level: a.plain.map(|(l, _)| names::alert_level(l)),
            description: a.plain.map(|(_, d)| names::alert_description(d)),
            encrypted: a.plain.is_none(),
            inferred: false,
            frame: a.at.frame(),
        });
    // TLS 1.3: a short encrypted client record, then a close, no server data after it.
    if alert_facts.is_none() && tf.handshake_done.is_none() && ch_from_client {
        if let (Some((rec_at, len)), Some(close)) = (tf.client_encrypted_after_sh, client_close) {
            if len <= SHORT_ENCRYPTED && tf.client_encrypted_after_sh_count == 1 && close >= rec_at
            {
                alert_facts = Some(AlertFacts {
                    at: e(rec_at),
                    from_server: false,
                    description: None,
                    fatal: true,
                    encrypted: true,
                    inferred: true,
                });
                alert_out = Some(AlertOut {
                    sender: "client".into(),
                    level: None,
                    description: None,
                    encrypted: true,
                    inferred: true,
                    frame: rec_at.frame(),
                });
            }
        }
    }

    let preview = |d: usize| tf.non_tls[d].as_ref();
    let server_non_tls = preview(sd)
        .filter(|n| n.tls_after.is_none())
        .map(|n| escape::first_line(&n.preview, 120));
    let client_non_tls = preview(cd)
        .filter(|n| n.tls_after.is_none())
        .map(|n| escape::first_line(&n.preview, 120));
    let http_request = preview(cd)
        .filter(|n| escape::is_http_request(&n.preview))
        .map(|n| escape::first_line(&n.preview, 200));
    let http_status = preview(sd)
        .filter(|n| escape::is_http_response(&n.preview))
        .map(|n| escape::first_line(&n.preview, 200));

    let icmp = c
        .icmp
        .iter()
        .find(|i| i.quoted_dir.map(Dir::index) == Some(cd))
        .or(c.icmp.first());
    let icmp_facts = icmp.map(|i| {
        let unreachable = if i.v6 {
            i.icmp_type == 1
        } else {
            i.icmp_type == 3 && i.code != 4
        };
        IcmpFacts {
            at: e(i.at),
            description: wire::icmp_description(i.v6, i.icmp_type, i.code),
            icmp_type: i.icmp_type,
            code: i.code,
            reporter: i.reporter.to_string(),
            unreachable,
            frag_needed: (!i.v6 && i.icmp_type == 3 && i.code == 4) || (i.v6 && i.icmp_type == 2),
            mtu: i.mtu,
            quotes_client: i.quoted_dir.map(Dir::index) == Some(cd),
        }
    });

    let sh_from_server = tf.sh_dir == Some(sd);
    let tls_version = tf
        .negotiated_version()
        .filter(|_| sh_from_server)
        .map(names::version_name);
    let established = sdir.synack_count > 0
        && (c.handshake_ack.is_some() || cdir.payload_segments > 0)
        || (began_midstream && cdir.packets > 0 && sdir.packets > 0);
    let client_seq_jump = if cdir.payload_segments == 0 {
        cdir.fin_offset.or(cdir.rst_offset).filter(|o| *o > 0)
    } else {
        None
    };
    let server_server = crate::flow::Endpoint {
        ip: c.ends[sd].ip,
        port: c.ends[sd].port,
    };
    let synack_at = c
        .events
        .iter()
        .find(|x| x.kind() == EventKind::SynAck)
        .map(|x| x.at);
    let facts = ConnFacts {
        vantage: Side::Unknown,
        server: endpoint_text(&server_server),
        began_midstream,
        icmp_only: c.icmp_only,
        syn_count: cdir.syn_count,
        first_syn: cdir.syns[0].map(e),
        last_syn: cdir.syns[1].map(e),
        synack: synack_at.map(e),
        established,
        icmp: icmp_facts,
        client_payload_bytes: cdir.payload_bytes,
        server_payload_bytes: sdir.payload_bytes,
        clienthello: ch_first.map(e),
        clienthello_count: ch_count,
        clienthello_frames: ch_frames.iter().map(|f| f.frame()).collect(),
        clienthello_acked: ch_acked,
        client_non_tls,
        server_non_tls,
        http_status: http_status.clone(),
        http_request: http_request.clone(),
        server_first_tls: tf.first_record[sd].map(e),
        serverhello: tf.sh_at.filter(|_| sh_from_server).map(e),
        tls_version: tls_version.clone(),
        handshake_done: tf.handshake_done.map(e),
        alert: alert_facts,
        client_fin: cdir.fin.map(e),
        client_rst: cdir.rst.map(e),
        server_fin: sdir.fin.map(e),
        server_rst: sdir.rst.map(e),
        server_rst_forged: rst_forged(sdir),
        client_seq_jump,
        server_retransmissions: sdir.retransmissions,
        server_full_size_retransmissions: sdir.full_size_retransmissions,
        server_max_segment: sdir.max_segment,
        server_data_acked: sdir.acked.is_some_and(|a| a >= sdir.max_end),
        client_sacked: sdir.sacked,
        server_gap: sdir.reasm.limits.gaps > 0,
        gave_up_after_s: gave_up,
        timeout_match: timeout_match.clone(),
        capture_end_t: round6(secs(ctx.capture_end.saturating_sub(base))),
    };

    let clues = Clues {
        client_pkttype: cdir.pkttype,
        server_pkttype: sdir.pkttype,
        client_ttl: cdir.ttl,
        server_ttl: sdir.ttl,
        syn_to_synack: match (cdir.syns[1], synack_at) {
            (Some(s), Some(sa)) if sa.ts >= s.ts => Some(secs(sa.ts.saturating_sub(s.ts))),
            _ => None,
        },
        synack_to_ack: match (synack_at, c.handshake_ack) {
            (Some(sa), Some(a)) if a.ts >= sa.ts => Some(secs(a.ts.saturating_sub(sa.ts))),
            _ => None,
        },
    };
    let evidence = vantage::infer(&clues);

    let ch_info = client_hello.filter(|_| ch_from_client);
    let server_first_bytes =
        preview(sd).map(|n| escape::bytes(&n.preview[..n.preview.len().min(64)]));
    let client_first_bytes =
        preview(cd).map(|n| escape::bytes(&n.preview[..n.preview.len().min(64)]));
    let timeline = timeline(c, cd, ctx, &ch_frames);
    let conn = Connection {
        stream: c.stream,
        client_ip: ip_text(c.ends[cd].ip),
        client_port: c.ends[cd].port,
        server_ip: ip_text(c.ends[sd].ip),
        server_port: c.ends[sd].port,
        client_inferred: rule != "syn",
        client_rule: rule.into(),
        verdict: verdict::VerdictCode::Incomplete,
        explanation: String::new(),
        next_step: String::new(),
        vantage: Side::Unknown,
        syn_count: cdir.syn_count,
        syn_copies: cdir.syn_copies,
        synack_seen: sdir.synack_count > 0,
        tcp_established: established,
        clienthello_count: ch_count,
        clienthello_copies: ch_copies,
        clienthello_acked: ch_acked,
        serverhello_seen: sh_from_server && tf.server_hello.is_some(),
        hello_retry_request: tf.hrr_at.is_some(),
        tls_version,
        cipher: tf
            .server_hello
            .as_ref()
            .filter(|s| sh_from_server && s.cipher != 0)
            .map(|s| names::cipher_name(s.cipher)),
        sni: ch_info.as_ref().and_then(|c| c.sni.clone()),
        alpn: ch_info.as_ref().and_then(|c| c.alpn.first().cloned()),
        ja4: ch_info.as_ref().and_then(|c| c.ja4.clone()),
        clienthello: ch_info,
        certificate: tf.certificate.as_ref().and_then(|c| c.info()),
        alert: alert_out,
        server_first_bytes,
        client_first_bytes,
        http: (http_request.is_some() || http_status.is_some()).then_some(HttpOut {
            request_line: http_request,
            status_line: http_status,
        }),
        client_fin: cdir.fin.map(|r| ctx.at(r)),
        client_rst: cdir.rst.map(|r| ctx.at(r)),
        server_fin: sdir.fin.map(|r| ctx.at(r)),
        server_rst: sdir.rst.map(|r| ctx.at(r)),
        icmp: icmp.map(|i| IcmpOut {
            icmp_type: i.icmp_type,
            code: i.code,
            description: wire::icmp_description(i.v6, i.icmp_type, i.code),
            frame: i.at.frame(),
            reporter: i.reporter.to_string(),
            v6: i.v6,
            mtu: i.mtu,
        }),
        first_frame: c.first.frame(),
        last_frame: c.last.frame(),
        file: ctx.multi_file.then_some(c.first.file()),
        start_time: crate::timefmt::rfc3339_nanos(c.first.ts),
        duration_s: round6(secs(c.last.ts.saturating_sub(c.first.ts))),
        gave_up_after_s: gave_up,
        timeout_match,
        client_retransmissions: cdir.retransmissions,
        server_retransmissions: sdir.retransmissions,
        server_payload_bytes: sdir.payload_bytes,
        uncertain,
        timeline,
    };
    Built {
        conn,
        server: server_server,
        evidence,
        facts,
        client_dir: cd,
    }
}

/// Why a direction's RST was not sent by that endpoint: its TTL differs from the one every
/// earlier packet of the direction arrived with (the same host and path give the same TTL;
/// a firewall or IPS forging the reset starts from its own initial TTL and distance).
pub(crate) fn rst_forged(d: &crate::flow::Sender) -> Option<String> {
    let (rst, ttl) = (d.rst_ttl?, d.ttl?);
    if rst == ttl || d.packets < 2 {
        return None;
    }
    let mut why = format!("its TTL is {rst} where the server's other packets arrive with {ttl}");
    if d.rst_without_ts && d.ts_seen {
        why.push_str(", and it carries no TCP timestamp although they do");
    }
    Some(why)
}

/// An address as its `Display` writes it; an IPv4 one without the formatting machinery
/// (about 1,300 instructions each, and a report writes two or three per connection).
pub(crate) fn ip_text(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => {
            // Room for a port after it (`Endpoint::text`).
            let mut s = String::with_capacity(21);
            for (i, o) in a.octets().into_iter().enumerate() {
                if i > 0 {
                    s.push('.');
                }
                s.push_str(itoa::Buffer::new().format(o));
            }
            s
        }
        IpAddr::V6(a) => a.to_string(),
    }
}

/// An endpoint as `Display` writes it (`ip:port`, `[ip6]:port`), an IPv4 one written directly.
pub(crate) fn endpoint_text(e: &Endpoint) -> String {
    {
        match e.ip {
            IpAddr::V4(_) => {
                // `ip_text` leaves room for the port.
                let mut s = ip_text(e.ip);
                s.push(':');
                s.push_str(itoa::Buffer::new().format(e.port));
                s
            }
            IpAddr::V6(_) => e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Addresses and endpoints written directly read as their `Display` does.
    #[test]
    fn address_text_is_what_display_writes() {
        for ip in [
            "0.0.0.0",
            "255.255.255.255",
            "10.2.1.57",
            "192.168.100.9",
            "::1",
            "2001:db8::8a2e:370:7334",
            "::ffff:10.0.0.1",
        ] {
            let ip: IpAddr = ip.parse().expect("address");
            assert_eq!(ip_text(ip), ip.to_string());
            for port in [0, 9, 443, 65535] {
                let e = Endpoint { ip, port };
                assert_eq!(endpoint_text(&e), e.to_string());
            }
        }
    }
}
