//! Verdict: a pure function from one connection's facts and the capture point to a stable
//! code, a one-sentence explanation citing frames and times, and a next step phrased for the
//! capture point.
//!
//! No packets here: [`Facts`] is plain data, so every rule can be tested without a capture.
//! Rules are checked in a fixed order (path errors, TCP setup, TLS answers, silence), and the
//! first that matches decides. The code never depends on the capture point; the wording does.

use super::cert_words::{problems_clause, remedies};
use super::clock::Ev;
use super::facts::{endpoint_text, Facts, SmallSegmentsOnly, KNOWN_TIMEOUTS};
pub use crate::model::{Side, VerdictCode};

/// The decision for one connection.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    pub code: VerdictCode,
    pub explanation: String,
    pub next_step: String,
}

/// A reset in the server's name that the server's own packets contradict.
fn middlebox_reset(side: Side, rst: Ev, why: &str, when: &str) -> Judgement {
    let next = match side {
        Side::Server => {
            "Seen from the backend: a device between client and backend resets the \
             connection in both directions; find it (firewall, IPS, TLS inspection) and its \
             logs."
        }
        _ => {
            "A firewall or IPS between client and server resets this connection (SNI or URL \
             filtering, threat prevention, TLS inspection policy): its logs name the rule. A \
             capture on the backend will show that the server never sent this RST."
        }
    };
    Judgement {
        code: VerdictCode::MiddleboxReset,
        explanation: format!(
            "the connection was reset {when} by a RST ({rst}) in the server's name that the \
             server did not send: {why}; a device in between forged it"
        ),
        next_step: next.into(),
    }
}

/// "once", "twice", "N times".
pub(crate) fn times(n: u32) -> String {
    match n {
        1 => "once".into(),
        2 => "twice".into(),
        n => format!("{n} times"),
    }
}

fn gave_up_text(f: &Facts) -> String {
    match (f.client_gave_up(), f.gave_up_after_s) {
        (Some((ev, how)), Some(secs)) => {
            let mut s = format!("the client gave up with {how} after {secs:.1} s ({})", ev);
            if let Some(m) = &f.timeout_match {
                s.push_str(&format!(", matching {m}"));
            }
            s
        }
        (Some((ev, how)), None) => format!("the client closed with {how} ({ev})"),
        _ => format!(
            "the capture ended {:.1} s after the connection began with the client still waiting",
            f.capture_end_t
        ),
    }
}

fn j(code: VerdictCode, explanation: String, next_step: &str) -> Judgement {
    Judgement {
        code,
        explanation,
        next_step: next_step.to_string(),
    }
}

/// Decides the verdict of one connection, worded for capture point `side`.
pub fn judge(f: &Facts, side: Side) -> Judgement {
    if let Some(refused) = path_refused(f).or_else(|| tcp_setup_failed(f, side)) {
        return refused;
    }
    if f.icmp_only {
        return j(
            VerdictCode::Incomplete,
            "only an ICMP error quoting this connection was captured, none of its TCP packets"
                .into(),
            "Capture with a filter that includes the connection's TCP packets.",
        );
    }
    match f.clienthello {
        None => judge_without_hello(f),
        Some(ch) => judge_hello(f, ch, side),
    }
}

/// 1. The path refused the connection.
fn path_refused(f: &Facts) -> Option<Judgement> {
    let icmp = f.icmp.as_ref()?;
    if !(icmp.unreachable && !f.established && (icmp.quotes_client || f.icmp_only)) {
        return None;
    }
    Some(j(
        VerdictCode::IcmpUnreachable,
        format!(
            "{} sent ICMP {} (type {}, code {}) in {} quoting the client's packet; no \
             SYN-ACK was seen",
            icmp.reporter, icmp.description, icmp.icmp_type, icmp.code, icmp.at
        ),
        "A firewall or router rejects this destination: check the ACLs / security \
         groups between client and server for this port, starting with the host that \
         sent the ICMP error.",
    ))
}

/// 2. TCP setup failed.
fn tcp_setup_failed(f: &Facts, side: Side) -> Option<Judgement> {
    if !(f.syn_count > 0 && f.synack.is_none() && !f.established) {
        return None;
    }
    if let Some(rst) = f.server_rst {
        return Some(j(
            VerdictCode::TcpRefused,
            format!(
                "the SYN ({}) was answered by RST ({}): nothing listens on {} or a \
                 firewall rejects with reset",
                f.first_syn.unwrap_or_default(),
                rst,
                endpoint_text(&f.server)
            ),
            "Check that the backend service is listening on this port (ss -ltn) and that \
             no firewall rule rejects the connection with a TCP reset.",
        ));
    }
    let last = f.last_syn.unwrap_or_default();
    Some(j(
        VerdictCode::TcpNoSynack,
        format!(
            "the SYN was sent {} ({} to {}) and never answered",
            times(f.syn_count),
            f.first_syn.unwrap_or_default(),
            last
        ),
        match side {
            Side::Server => {
                "The SYNs reached the backend but it never answered: check its listen \
                 backlog, SYN-flood protection and host firewall (iptables DROP)."
            }
            _ => {
                "The SYNs got no answer: check routing and firewalls (DROP rules, security \
                 groups) between client and server; capture on the backend to see whether \
                 the SYNs arrive."
            }
        },
    ))
}

/// A ClientHello was sent: how the server answered it.
fn judge_hello(f: &Facts, ch: Ev, side: Side) -> Judgement {
    if let Some(judged) = alert_ended(f, ch)
        .or_else(|| not_tls(f, ch))
        .or_else(|| completed(f))
        .or_else(|| unfinished_flight(f, ch, side))
    {
        return judged;
    }
    if lost_server_flight(f) {
        return lost_response(f, ch);
    }
    no_tls_answer(f, ch, side)
}

/// 3. A TLS alert ended the handshake.
fn alert_ended(f: &Facts, ch: Ev) -> Option<Judgement> {
    let a = f.alert.as_ref().filter(|a| a.decisive)?;
    if f.handshake_done.is_some() {
        return None;
    }
    let what = match (&a.description, a.encrypted) {
        (Some(d), _) => format!("a {} {d} alert", if a.fatal { "fatal" } else { "warning" }),
        (None, _) if a.inferred => {
            "a short encrypted record then a close, most likely an alert (inferred)".into()
        }
        (None, _) => "an encrypted alert".into(),
    };
    if let (true, Some(fin)) = (a.from_server, a.answers_finished) {
        return Some(rejected_finished(f, a, fin));
    }
    if a.from_server {
        return Some(server_refused(f, a, ch, &what));
    }
    let mut explanation = format!(
        "the client rejected the server's response with {what} ({})",
        a.at
    );
    let cert = f.certificate.as_ref();
    if let Some(problems) = problems_clause(&f.cert_problems, cert) {
        explanation.push_str(": ");
        explanation.push_str(&problems);
    }
    let next = remedies(&f.cert_problems, cert).unwrap_or_else(|| {
        "The client does not accept the backend's certificate or parameters: check the \
         client's truststore against the backend's certificate chain (issuer, expiry, \
         hostname)."
            .into()
    });
    Some(Judgement {
        code: VerdictCode::ClientAlert,
        explanation,
        next_step: next,
    })
}

/// A server alert ended the handshake; when the server had asked for a client certificate
/// and the alert is about one, what the client sent is said and decides the next step.
fn server_refused(f: &Facts, a: &super::facts::AlertFact, ch: Ev, what: &str) -> Judgement {
    let about_cert = a
        .description
        .as_deref()
        .is_none_or(|d| CLIENT_CERT_ALERTS.contains(&d));
    let cert_next = client_cert_next(f).filter(|_| about_cert);
    let mut explanation = format!(
        "the server answered the ClientHello ({ch}) with {what} ({})",
        a.at
    );
    if let Some(cc) = f
        .client_certificate
        .as_ref()
        .filter(|_| cert_next.is_some())
    {
        explanation.push_str(&match (&cc.subject, &cc.issuer) {
            (Some(s), Some(i)) => format!(
                "; it had asked for a client certificate, and the client sent {s}, issued \
                 by {i}"
            ),
            _ if cc.sent == Some(false) => {
                "; it had asked for a client certificate, and the client sent none".into()
            }
            _ => "; it had asked for a client certificate".into(),
        });
    }
    let next = cert_next.unwrap_or_else(|| {
        "The backend refuses this handshake: compare the client's offer (TLS versions, \
         cipher suites, SNI, client certificate) with the backend's TLS configuration \
         and its logs."
            .into()
    });
    j(VerdictCode::ServerAlert, explanation, &next)
}

/// TLS 1.3: the server answered the client's Finished with an alert and closed: it rejected
/// the client's certificate (or its absence). Named when decrypted, inferred otherwise.
fn rejected_finished(f: &Facts, a: &super::facts::AlertFact, fin: Ev) -> Judgement {
    let what = match &a.description {
        Some(d) => format!("a fatal {d} alert ({})", a.at),
        None => format!(
            "one alert-sized encrypted record ({}) and closed: in TLS 1.3 that is how a \
             server rejects the client's certificate or its absence (certificate_required, \
             unknown_ca, bad_certificate; inferred, a key log names it)",
            a.at
        ),
    };
    let next = client_cert_next(f).unwrap_or_else(|| {
        "The backend requires a client certificate it did not get or does not trust \
         (mutual TLS): check that the client presents its certificate and key (Apigee: the \
         target's SSLInfo KeyStore and KeyAlias; nginx: proxy_ssl_certificate; Envoy: the \
         cluster's tls_certificates) and that the backend trusts the issuer of that \
         certificate."
            .into()
    });
    j(
        VerdictCode::ServerAlert,
        format!("the server answered the client's Finished ({fin}) with {what}"),
        &next,
    )
}

/// What to do about a server that asked for a client certificate and refused the handshake,
/// from what the client sent: `None` when the CertificateRequest or the client's answer was
/// not seen.
fn client_cert_next(f: &Facts) -> Option<String> {
    let cc = f.client_certificate.as_ref().filter(|c| c.requested)?;
    match cc.sent? {
        true => Some(format!(
            "The backend does not accept the client certificate it was sent ({}, issued by \
             {}): add that issuer to the backend's trusted client CAs (nginx: \
             ssl_client_certificate; Envoy: validation_context), or give the client a \
             certificate from a CA the backend trusts; check its validity dates too.",
            cc.subject.as_deref().unwrap_or("subject unknown"),
            cc.issuer.as_deref().unwrap_or("an unknown issuer"),
        )),
        false => Some(
            "The backend asked for a client certificate and the client sent none (mutual \
             TLS): configure the client's certificate and key (Apigee: the target's SSLInfo \
             KeyStore and KeyAlias; nginx: proxy_ssl_certificate; Envoy: the cluster's \
             tls_certificates)."
                .into(),
        ),
    }
}

/// Alerts a server sends when it refuses the client's certificate (or its absence; OpenSSL
/// says handshake_failure in TLS 1.2): with a CertificateRequest seen, the refusal is about
/// the client certificate.
const CLIENT_CERT_ALERTS: [&str; 9] = [
    "handshake_failure",
    "bad_certificate",
    "unsupported_certificate",
    "certificate_revoked",
    "certificate_expired",
    "certificate_unknown",
    "unknown_ca",
    "access_denied",
    "certificate_required",
];

/// 4. The server spoke something else.
fn not_tls(f: &Facts, ch: Ev) -> Option<Judgement> {
    let bytes = f.server_non_tls.as_ref()?;
    Some(j(
        VerdictCode::NotTls,
        format!("the server answered the ClientHello ({ch}) with non-TLS bytes: \"{bytes}\""),
        "The client speaks TLS to a port that is not TLS (often plain HTTP): check the \
         target port and protocol in the client's configuration.",
    ))
}

/// 5. Success; a slow server said so.
fn completed(f: &Facts) -> Option<Judgement> {
    let done = f.handshake_done?;
    let v = f.tls_version.as_deref().unwrap_or("TLS");
    let mut explanation = format!("the {v} handshake completed: both sides encrypted by {done}");
    if let Some(problems) = problems_clause(&f.cert_problems, f.certificate.as_ref()) {
        explanation.push_str(
            "; the client accepted a certificate with problems (it does not verify \
             certificates, or trusts this one explicitly): ",
        );
        explanation.push_str(&problems);
    }
    let Some(delay) = f
        .server_hello_delay_s()
        .filter(|d| *d > SLOW_SERVER_HELLO_S)
    else {
        return Some(j(
            VerdictCode::TlsOk,
            explanation,
            "Nothing to do for the handshake.",
        ));
    };
    explanation.push_str("; ");
    explanation.push_str(&slow_answer(delay));
    Some(j(
        VerdictCode::TlsOk,
        explanation,
        "The handshake succeeded, but the backend was slow to answer the ClientHello, and a \
         gateway with a shorter timeout gives up (502/504): check the backend's load (CPU, \
         accept queue, worker threads) and what it does before answering (key or certificate \
         lookup, OCSP).",
    ))
}

/// A completed handshake whose server took longer than this (seconds) to answer the
/// ClientHello names the delay.
pub const SLOW_SERVER_HELLO_S: f64 = 1.0;

/// "the server answered the ClientHello after 7.0 s, longer than A and B would wait": the
/// known gateway timeouts the delay exceeds, shortest first.
fn slow_answer(delay: f64) -> String {
    let mut exceeded: Vec<(f64, &str)> = KNOWN_TIMEOUTS
        .iter()
        .filter(|(t, _)| delay > *t)
        .copied()
        .collect();
    exceeded.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Just over a second would read "1.0 s": to the millisecond there.
    let mut s = if delay < 1.05 {
        format!("the server answered the ClientHello after {delay:.3} s")
    } else {
        format!("the server answered the ClientHello after {delay:.1} s")
    };
    if let Some(((_, last), rest)) = exceeded.split_last() {
        let rest: Vec<&str> = rest.iter().map(|(_, who)| *who).collect();
        s.push_str(", longer than ");
        if !rest.is_empty() {
            s.push_str(&rest.join(", "));
            s.push_str(" and ");
        }
        s.push_str(last);
        s.push_str(" would wait");
    }
    s
}

/// 6. The server's flight started but the handshake did not finish.
fn unfinished_flight(f: &Facts, ch: Ev, side: Side) -> Option<Judgement> {
    let sh = f.serverhello?;
    if lost_server_flight(f) {
        return Some(lost_response(f, ch));
    }
    if let Some(rst) = f.server_rst {
        if let Some(why) = &f.server_rst_forged {
            return Some(middlebox_reset(
                side,
                rst,
                why,
                &format!("after the ServerHello ({sh})"),
            ));
        }
        return Some(j(
            VerdictCode::ServerReset,
            format!("the server sent its ServerHello ({sh}) and then reset ({rst})"),
            "Check the backend's logs for handshake errors at that time.",
        ));
    }
    if let Some((ev, how)) = f.client_gave_up() {
        return Some(j(
            VerdictCode::ClientClosed,
            format!(
                "the client closed with {how} ({ev}) after the server's ServerHello ({sh}) \
                 without completing the handshake or sending a visible alert"
            ),
            "The client abandoned the handshake: check the client's logs for certificate \
             or parameter errors.",
        ));
    }
    Some(j(
        VerdictCode::Incomplete,
        format!(
            "the server answered ({sh}) but the capture ended before the handshake \
             completed"
        ),
        "Capture longer to see how the handshake ends.",
    ))
}

/// 7. No TLS answer at all: the server reset or closed, or stayed silent.
fn no_tls_answer(f: &Facts, ch: Ev, side: Side) -> Judgement {
    let acked = match f.clienthello_acked {
        Some(true) => "acknowledged by the server's TCP stack",
        Some(false) => "never acknowledged",
        None => "of unknown acknowledgement",
    };
    if let Some(closed) = server_ended(f, ch, acked, side) {
        return closed;
    }
    let sent = times(f.clienthello_count.max(1));
    let explanation = format!(
        "the ClientHello ({ch}) was sent {sent}, {acked}; no TLS byte came back from the \
         server, and {}",
        gave_up_text(f)
    );
    let next = match (side, f.clienthello_acked) {
        (Side::Server, _) => {
            "The ClientHello reached the backend and its TCP stack acknowledged it, but the \
             service never answered: the backend application is stalled (check its thread \
             pools, accept queue and logs at that time)."
        }
        (_, Some(false)) => {
            "The ClientHello was never acknowledged: something between client and backend \
             drops it (firewall, IPS/DPI on SNI, MTU). Capture on the backend at the same time: \
             if the ClientHello never arrives there, the path drops it."
        }
        _ => {
            "The backend's TCP stack received the ClientHello but the TLS service never \
             answered: check the backend service (thread pool, TLS termination, logs); capture \
             on the backend to confirm nothing is sent."
        }
    };
    j(VerdictCode::TlsNoServerResponse, explanation, next)
}

/// The server's application closed on accept: its FIN left before the ClientHello arrived,
/// and its kernel then reset the ClientHello that came to a closed socket. The RST is the
/// kernel's answer, the FIN the application's decision, so this is `server_closed`.
fn closed_on_accept(f: &Facts, ch: Ev) -> Option<Judgement> {
    let fin = f.server_fin.filter(|fin| fin.t <= ch.t)?;
    let rst = f
        .server_rst
        .filter(|r| r.t >= fin.t && f.server_rst_forged.is_none())?;
    Some(j(
        VerdictCode::ServerClosed,
        format!(
            "the server closed the connection with FIN ({fin}) before the ClientHello \
             ({ch}), so its application closed on accept; its kernel then reset the \
             ClientHello ({rst})"
        ),
        "The backend accepted and closed at once, before any TLS: check its accept-time \
         limits and logs (connection or rate limits, an overloaded or restarting service, \
         an allow-list on the client's address).",
    ))
}

/// The server reset or closed before the client gave up, without a TLS answer.
fn server_ended(f: &Facts, ch: Ev, acked: &str, side: Side) -> Option<Judgement> {
    if let Some(closed) = closed_on_accept(f, ch) {
        return Some(closed);
    }
    let client_end = f.client_gave_up().map(|(e, _)| e.t);
    if let Some(rst) = f.server_rst.filter(|r| client_end.is_none_or(|t| r.t <= t)) {
        if let Some(why) = &f.server_rst_forged {
            return Some(middlebox_reset(
                side,
                rst,
                why,
                &format!("after the ClientHello ({ch})"),
            ));
        }
        return Some(j(
            VerdictCode::ServerReset,
            format!(
                "the ClientHello ({ch}) was {acked}, and the server reset the connection \
                 ({rst}) without answering"
            ),
            "The backend closed the socket without reading the handshake: check the \
             backend's logs (TLS library errors, connection limits, a proxy or load \
             balancer in front of it).",
        ));
    }
    let fin = f
        .server_fin
        .filter(|fin| client_end.is_none_or(|t| fin.t <= t))?;
    Some(j(
        VerdictCode::ServerClosed,
        format!(
            "the ClientHello ({ch}) was {acked}, and the server closed the connection \
             with FIN ({fin}) without answering"
        ),
        "The backend accepted and closed without a TLS answer (\"peer closed \
         connection in SSL handshake\"): check the backend's TLS listener and its logs.",
    ))
}

/// The server sent data the client never got.
fn lost_server_flight(f: &Facts) -> bool {
    f.server_payload_bytes > 0
        && !f.server_data_acked
        && (f.server_retransmissions > 0 || f.server_gap || f.client_sacked)
}

fn lost_response(f: &Facts, ch: Ev) -> Judgement {
    if let Some(small) = &f.server_small_segments_only {
        return small_segments_only(small, ch);
    }
    let mtu =
        f.server_full_size_retransmissions > 0 || f.icmp.as_ref().is_some_and(|i| i.frag_needed);
    let mut explanation = format!(
        "the server answered the ClientHello ({ch}) with {} bytes that the client never \
         acknowledged in full ({} server retransmissions",
        f.server_payload_bytes, f.server_retransmissions
    );
    if f.server_full_size_retransmissions > 0 {
        explanation.push_str(&format!(
            ", {} of them full-size {}-byte segments",
            f.server_full_size_retransmissions, f.server_max_segment
        ));
    }
    explanation.push(')');
    if mtu {
        explanation.push_str("; the full-size segments vanish, the mark of a path MTU black hole");
    }
    Judgement {
        code: VerdictCode::ServerResponseLost,
        explanation,
        next_step: if mtu {
            "Large server segments are lost on the way back: check the MTU of every hop \
             (tunnels, VPNs) and that ICMP fragmentation-needed is not filtered; lowering the \
             backend's MSS (iptables TCPMSS clamp) works around it."
                .into()
        } else {
            "The server's answer is lost on the way back: check the return path (asymmetric \
             routing, stateful firewalls) and capture on both sides."
                .into()
        },
    }
}

/// Seen from the client: the server's sequence numbers show holes that full-size segments
/// fill, while the smaller segments arrived.
fn small_segments_only(s: &SmallSegmentsOnly, ch: Ev) -> Judgement {
    j(
        VerdictCode::ServerResponseLost,
        format!(
            "the server answered the ClientHello ({ch}): its sequence numbers reached {} bytes \
             but only {} bytes arrived, none in a full-size segment (the largest {} bytes, \
             the client's MSS {}); the holes Wireshark marks \"previous segment not \
             captured\" are the full-size segments that never arrived while smaller ones \
             did, the mark of a path MTU black hole",
            s.reached, s.arrived, s.largest, s.client_mss
        ),
        "A path MTU black hole on the way back: the server's full-size segments are lost \
         while smaller ones arrive. Check the MTU of every hop (tunnels, VPNs) and that ICMP \
         fragmentation-needed is not filtered; lowering the backend's MSS (iptables TCPMSS \
         clamp) works around it.",
    )
}

fn judge_without_hello(f: &Facts) -> Judgement {
    use VerdictCode as V;
    if let Some(bytes) = &f.client_non_tls {
        let mut explanation = match &f.http_request {
            Some(r) => format!("the client spoke cleartext HTTP: \"{r}\""),
            None => format!("the client spoke a non-TLS protocol: \"{bytes}\""),
        };
        if let Some(s) = &f.http_status {
            explanation.push_str(&format!("; the server answered \"{s}\""));
        }
        return j(
            V::Cleartext,
            explanation,
            "Not a TLS connection. If TLS was intended, check the client's scheme (http vs \
             https) and port; a cleartext 5xx status is the backend's own answer.",
        );
    }
    if f.began_midstream {
        return j(
            V::Incomplete,
            "the capture began after this connection's handshake, so the handshake was not seen"
                .into(),
            "Not judged: the connection is older than the capture (a pooled or kept-alive \
             connection), and nothing seen here failed. Only if this connection's own \
             handshake is in question does it take a capture from before it opened.",
        );
    }
    if let Some(jump) = f.client_seq_jump {
        let how = match (f.client_fin, f.client_rst) {
            (Some(e), _) => format!("FIN ({e})"),
            (None, Some(e)) => format!("RST ({e})"),
            _ => "its close".into(),
        };
        return j(
            V::ClienthelloLost,
            format!(
                "the TCP handshake completed but none of the client's {jump} bytes of data \
                 arrived here; the client's sequence number jumps before its {how}"
            ),
            "Seen from the backend: the client's ClientHello never arrived. Something between \
             client and backend drops it (firewall, IPS/DPI, MTU); compare with a capture on \
             the client side.",
        );
    }
    if let Some(bytes) = &f.server_non_tls {
        return j(
            V::Cleartext,
            format!("the server spoke first, in cleartext: \"{bytes}\""),
            "A server-speaks-first protocol (SMTP, FTP, SSH...): not a TLS connection.",
        );
    }
    if f.client_payload_bytes == 0 && f.server_payload_bytes == 0 {
        let closed = f
            .client_fin
            .or(f.client_rst)
            .or(f.server_fin)
            .or(f.server_rst);
        if let Some(c) = closed {
            return j(
                V::TcpNoData,
                format!("the connection opened and closed ({c}) without any payload"),
                "A health check or port probe; nothing to do unless real traffic was expected.",
            );
        }
        if f.established {
            return j(
                V::Incomplete,
                format!(
                    "the TCP handshake completed but no data was sent before the capture ended \
                     {:.1} s later",
                    f.capture_end_t
                ),
                "Capture longer to see the handshake.",
            );
        }
    }
    j(
        V::Incomplete,
        "the capture does not show enough of this connection to judge its handshake".into(),
        "Capture the whole connection, from its SYN to its close.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::facts::{match_timeout, AlertFact, IcmpFact};
    use crate::flow::Endpoint;

    /// The rules as seen from the client side (the capture point of most tests).
    fn judge(f: &Facts) -> Judgement {
        super::judge(f, Side::Client)
    }

    fn judge_server(f: &Facts) -> Judgement {
        super::judge(f, Side::Server)
    }

    fn ev(frame: u64, t: f64) -> Option<Ev> {
        Some(Ev {
            frame,
            t,
            since_capture: t,
            ..Default::default()
        })
    }

    fn established() -> Facts {
        Facts {
            server: Endpoint {
                ip: std::net::Ipv4Addr::new(10, 0, 0, 2).into(),
                port: 443,
            },
            syn_count: 1,
            first_syn: ev(1, 0.0),
            last_syn: ev(1, 0.0),
            synack: ev(2, 0.001),
            established: true,
            ..Default::default()
        }
    }

    fn with_hello(count: u32, acked: bool) -> Facts {
        Facts {
            clienthello: ev(4, 0.002),
            clienthello_count: count,
            clienthello_acked: Some(acked),
            client_payload_bytes: 517,
            ..established()
        }
    }

    #[test]
    fn unanswered_unacked_hello_after_55s_names_apigee() {
        let mut f = with_hello(5, false);
        f.client_fin = ev(12, 55.01);
        f.gave_up_after_s = Some(55.008);
        f.timeout_match = match_timeout(55.008);
        let j = judge(&f);
        assert_eq!(j.code, VerdictCode::TlsNoServerResponse);
        assert!(j.explanation.contains("5 times"), "{}", j.explanation);
        assert!(j.explanation.contains("never acknowledged"));
        assert!(j.explanation.contains("Apigee"));
        assert!(j.next_step.contains("drops it"));
    }

    #[test]
    fn server_side_acked_hello_blames_the_application() {
        let f = with_hello(1, true);
        let j = judge_server(&f);
        assert_eq!(j.code, VerdictCode::TlsNoServerResponse);
        assert!(j.next_step.contains("stalled"));
    }

    #[test]
    fn syn_answered_by_rst_is_refused() {
        let f = Facts {
            syn_count: 1,
            first_syn: ev(1, 0.0),
            server_rst: ev(2, 0.0001),
            ..Default::default()
        };
        assert_eq!(judge(&f).code, VerdictCode::TcpRefused);
    }

    #[test]
    fn unanswered_syns() {
        let f = Facts {
            syn_count: 4,
            first_syn: ev(1, 0.0),
            last_syn: ev(4, 3.0),
            ..Default::default()
        };
        let j = judge(&f);
        assert_eq!(j.code, VerdictCode::TcpNoSynack);
        assert!(j.explanation.contains("4 times"));
    }

    #[test]
    fn icmp_refusal_beats_silence() {
        let f = Facts {
            syn_count: 1,
            first_syn: ev(1, 0.0),
            icmp: Some(IcmpFact {
                at: Ev {
                    frame: 2,
                    ..Default::default()
                },
                description: "communication administratively prohibited".into(),
                icmp_type: 3,
                code: 13,
                reporter: "10.0.0.254".into(),
                unreachable: true,
                quotes_client: true,
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(judge(&f).code, VerdictCode::IcmpUnreachable);
    }

    #[test]
    fn server_alert_before_completion() {
        let mut f = with_hello(1, true);
        f.alert = Some(AlertFact {
            decisive: true,
            at: Ev {
                frame: 6,
                t: 0.003,
                ..Default::default()
            },
            from_server: true,
            description: Some("protocol_version".into()),
            fatal: true,
            ..Default::default()
        });
        let j = judge(&f);
        assert_eq!(j.code, VerdictCode::ServerAlert);
        assert!(j.explanation.contains("protocol_version"));
    }

    /// A handshake whose server certificate expired on 2024-01-01 and does not cover the SNI.
    fn with_bad_certificate(mut f: Facts) -> Facts {
        use crate::diagnose::certificate::CertProblem;
        f.certificate = Some(crate::model::CertInfo {
            subject: "CN=api.example.test".into(),
            issuer: "CN=Lab CA".into(),
            ..Default::default()
        });
        f.cert_problems = vec![
            CertProblem::Expired {
                not_after: 1_704_067_200,
                capture: 1_795_305_600,
            },
            CertProblem::NameMismatch {
                sni: "api.example.com".into(),
                covers: vec!["*.example.test".into()],
            },
        ];
        f
    }

    fn alert_from(from_server: bool) -> Option<AlertFact> {
        Some(AlertFact {
            decisive: true,
            from_server,
            description: Some("bad_certificate".into()),
            fatal: true,
            ..Default::default()
        })
    }

    #[test]
    fn a_client_alert_names_the_certificate_problems_and_what_to_do() {
        let mut f = with_bad_certificate(with_hello(1, true));
        f.alert = alert_from(false);
        let j = judge(&f);
        assert_eq!(j.code, VerdictCode::ClientAlert);
        assert!(
            j.explanation.ends_with(
                "alert (frame 0 at 0.000 s): the backend's certificate \
                 (CN=api.example.test) expired on 2024-01-01, 2 years before this capture; \
                 the certificate covers *.example.test, not the SNI api.example.com"
            ),
            "{}",
            j.explanation
        );
        assert!(j.next_step.starts_with("Renew the backend's certificate"));
        assert!(j.next_step.contains("covers api.example.com"));
        assert!(!j.next_step.contains("truststore"));
    }

    #[test]
    fn certificate_problems_change_only_client_alerts_and_completed_handshakes() {
        let mut plain = with_hello(1, true);
        plain.alert = alert_from(true);
        let bad = with_bad_certificate(plain.clone());
        assert_eq!(judge(&bad), judge(&plain));
        let mut ok = completed_after(0.1);
        ok.certificate = bad.certificate.clone();
        let before = judge(&ok);
        ok.cert_problems = bad.cert_problems.clone();
        let after = judge(&ok);
        assert_eq!(
            (after.code, &after.next_step),
            (before.code, &before.next_step)
        );
        assert!(after.explanation.starts_with(&before.explanation));
        assert!(after
            .explanation
            .contains("accepted a certificate with problems"));
        assert!(after.explanation.contains("expired on 2024-01-01"));
    }

    #[test]
    fn server_alert_answering_the_finished_names_mutual_tls() {
        let mut f = with_hello(1, true);
        f.alert = Some(AlertFact {
            decisive: true,
            from_server: true,
            encrypted: true,
            inferred: true,
            at: Ev {
                frame: 10,
                ..Default::default()
            },
            answers_finished: Some(Ev {
                frame: 8,
                ..Default::default()
            }),
            ..Default::default()
        });
        let j = judge(&f);
        assert_eq!(j.code, VerdictCode::ServerAlert);
        assert!(
            j.explanation.contains("client's Finished (frame 8"),
            "{}",
            j.explanation
        );
        assert!(j.explanation.contains("certificate_required"));
        assert!(j.next_step.contains("client certificate"));
        // What the client sent, when decrypted, decides the next step.
        let sent = |sent, issuer: &str| crate::model::ClientCertInfo {
            requested: true,
            sent,
            subject: Some("CN=gw".into()),
            issuer: Some(issuer.into()),
        };
        f.client_certificate = Some(sent(Some(false), ""));
        assert!(judge(&f).next_step.contains("the client sent none"));
        f.client_certificate = Some(sent(Some(true), "CN=Rogue CA"));
        let next = judge(&f).next_step;
        assert!(next.contains("(CN=gw, issued by CN=Rogue CA)"), "{next}");
        f.client_certificate = Some(sent(None, ""));
        assert!(judge(&f)
            .next_step
            .contains("did not get or does not trust"));
    }

    #[test]
    fn a_server_that_asked_for_a_client_certificate_is_refusing_it() {
        let mut f = with_hello(1, true);
        let alert = |d: &str| AlertFact {
            decisive: true,
            from_server: true,
            description: Some(d.into()),
            fatal: true,
            ..Default::default()
        };
        f.client_certificate = Some(crate::model::ClientCertInfo {
            requested: true,
            sent: Some(false),
            subject: None,
            issuer: None,
        });
        f.alert = Some(alert("handshake_failure"));
        let j = judge(&f);
        assert!(
            j.explanation.ends_with("and the client sent none"),
            "{}",
            j.explanation
        );
        assert!(j.next_step.contains("the client sent none"));
        // An alert about something else keeps the general next step.
        f.alert = Some(alert("protocol_version"));
        let j = judge(&f);
        assert!(
            !j.explanation.contains("client certificate"),
            "{}",
            j.explanation
        );
        assert!(j
            .next_step
            .starts_with("The backend refuses this handshake"));
    }

    #[test]
    fn alert_after_completion_is_still_ok() {
        let mut f = with_hello(1, true);
        f.handshake_done = ev(9, 0.01);
        f.alert = Some(AlertFact {
            decisive: true,
            from_server: true,
            description: Some("close_notify".into()),
            ..Default::default()
        });
        assert_eq!(judge(&f).code, VerdictCode::TlsOk);
    }

    #[test]
    fn non_tls_answer() {
        let mut f = with_hello(1, true);
        f.server_non_tls = Some("HTTP/1.1 400 Bad Request".into());
        assert_eq!(judge(&f).code, VerdictCode::NotTls);
    }

    #[test]
    fn server_reset_or_close_only_before_client_gave_up() {
        let mut f = with_hello(1, true);
        f.server_rst = ev(6, 0.5);
        assert_eq!(judge(&f).code, VerdictCode::ServerReset);
        let mut f = with_hello(1, true);
        f.client_fin = ev(6, 5.0);
        f.server_fin = ev(7, 5.001);
        assert_eq!(judge(&f).code, VerdictCode::TlsNoServerResponse);
        f.server_fin = ev(5, 1.0);
        assert_eq!(judge(&f).code, VerdictCode::ServerClosed);
    }

    #[test]
    fn a_connection_older_than_the_capture_is_not_judged_and_not_a_failure() {
        let f = Facts {
            began_midstream: true,
            client_payload_bytes: 120,
            server_payload_bytes: 300,
            ..Default::default()
        };
        let j = judge(&f);
        assert_eq!(j.code, VerdictCode::Incomplete);
        assert!(j.next_step.starts_with("Not judged"), "{}", j.next_step);
        assert!(
            !j.next_step.contains("Start the capture"),
            "{}",
            j.next_step
        );
        assert!(!VerdictCode::Incomplete.is_failure());
    }

    #[test]
    fn a_fin_before_the_hello_then_a_reset_is_a_close_on_accept() {
        let mut f = with_hello(1, false);
        f.server_fin = ev(4, 0.001);
        f.server_rst = ev(7, 0.209);
        let j = judge(&f);
        assert_eq!(j.code, VerdictCode::ServerClosed);
        assert!(
            j.explanation.contains("closed on accept"),
            "{}",
            j.explanation
        );
        // A FIN after the ClientHello with a RST later is not a close on accept: the RST wins.
        f.server_fin = ev(8, 0.3);
        f.server_rst = ev(9, 0.4);
        assert_eq!(judge(&f).code, VerdictCode::ServerReset);
    }

    #[test]
    fn a_reset_the_server_did_not_send_is_a_middlebox_reset() {
        let mut f = with_hello(1, false);
        f.server_rst = ev(5, 0.003);
        f.server_rst_forged =
            Some("its TTL is 64 where the server's other packets arrive with 63".into());
        let j = judge(&f);
        assert_eq!(j.code, VerdictCode::MiddleboxReset);
        assert!(j.explanation.contains("TTL is 64"), "{}", j.explanation);
        assert!(j.next_step.contains("firewall"));
        // The same after a ServerHello (a firewall inspecting the certificate).
        f.serverhello = ev(6, 0.002);
        f.server_rst = ev(7, 0.004);
        assert_eq!(judge(&f).code, VerdictCode::MiddleboxReset);
        f.server_rst_forged = None;
        assert_eq!(judge(&f).code, VerdictCode::ServerReset);
    }

    #[test]
    fn retransmitted_full_size_server_segments_mean_mtu_black_hole() {
        let mut f = with_hello(1, true);
        f.server_payload_bytes = 4000;
        f.server_retransmissions = 6;
        f.server_full_size_retransmissions = 5;
        f.server_max_segment = 1448;
        let j = judge_server(&f);
        assert_eq!(j.code, VerdictCode::ServerResponseLost);
        assert!(j.explanation.contains("MTU"));
    }

    #[test]
    fn client_view_of_missing_full_size_segments_names_mtu_black_hole() {
        let mut f = with_hello(1, true);
        f.server_payload_bytes = 1816;
        f.server_gap = true;
        f.server_small_segments_only = Some(SmallSegmentsOnly {
            reached: 11880,
            arrived: 1816,
            largest: 1200,
            client_mss: 1460,
        });
        let j = judge(&f);
        assert_eq!(j.code, VerdictCode::ServerResponseLost);
        assert!(
            j.explanation.contains("path MTU black hole"),
            "{}",
            j.explanation
        );
        assert!(
            j.explanation.contains("reached 11880 bytes"),
            "{}",
            j.explanation
        );
        assert!(j.explanation.contains("only 1816 bytes arrived"));
        assert!(j.next_step.contains("path MTU black hole"));
        assert!(!j.next_step.contains("asymmetric"));
        // Without the small-segments fact, the same gap reads as a lost return path.
        f.server_small_segments_only = None;
        assert!(judge(&f).next_step.contains("asymmetric"));
    }

    #[test]
    fn server_view_of_lost_hello() {
        let mut f = established();
        f.client_seq_jump = Some(517);
        f.client_fin = ev(5, 10.0);
        assert_eq!(judge_server(&f).code, VerdictCode::ClienthelloLost);
    }

    #[test]
    fn open_close_without_data() {
        let mut f = established();
        f.client_fin = ev(4, 0.01);
        assert_eq!(judge(&f).code, VerdictCode::TcpNoData);
    }

    #[test]
    fn cleartext_http_with_502() {
        let mut f = established();
        f.client_payload_bytes = 80;
        f.client_non_tls = Some("GET / HTTP/1.1".into());
        f.http_request = Some("GET / HTTP/1.1".into());
        f.http_status = Some("HTTP/1.1 502 Bad Gateway".into());
        let j = judge(&f);
        assert_eq!(j.code, VerdictCode::Cleartext);
        assert!(j.explanation.contains("502"));
    }

    #[test]
    fn timeout_matching_tolerance() {
        assert!(match_timeout(55.4).is_some_and(|s| s.contains("Apigee")));
        assert!(match_timeout(59.2).is_some_and(|s| s.contains("nginx")));
        assert!(match_timeout(10.2).is_some_and(|s| s.contains("Go")));
        assert!(match_timeout(5.1).is_some_and(|s| s.contains("Envoy")));
        assert_eq!(match_timeout(30.0), None);
        assert_eq!(match_timeout(57.5), None);
    }

    /// A completed handshake whose ServerHello came `delay` seconds after the ClientHello.
    fn completed_after(delay: f64) -> Facts {
        let mut f = with_hello(1, true);
        f.serverhello = ev(6, 0.002 + delay);
        f.server_first_tls = f.serverhello;
        f.handshake_done = ev(9, 0.01 + delay);
        f.tls_version = Some("TLSv1.3".into());
        f
    }

    #[test]
    fn slow_server_hello_names_the_gateway_timeouts_it_exceeds() {
        let j = judge(&completed_after(7.0));
        assert_eq!(j.code, VerdictCode::TlsOk);
        assert!(
            j.explanation.ends_with(
                "; the server answered the ClientHello after 7.0 s, longer than the Apigee Edge \
                 connect timeout (3 s) and Envoy's default cluster connect_timeout (5 s) would \
                 wait"
            ),
            "{}",
            j.explanation
        );
        assert!(j.next_step.contains("slow to answer"), "{}", j.next_step);
        // Past Go's 10 s: three, shortest first, in a list.
        let j = judge(&completed_after(12.5));
        assert!(
            j.explanation.contains(
                "after 12.5 s, longer than the Apigee Edge connect timeout (3 s), Envoy's default \
                 cluster connect_timeout (5 s) and Go's http.Transport TLSHandshakeTimeout \
                 (10 s) would wait"
            ),
            "{}",
            j.explanation
        );
    }

    #[test]
    fn slow_server_hello_below_every_timeout_names_only_the_delay() {
        let j = judge(&completed_after(1.5));
        assert!(
            j.explanation
                .ends_with("; the server answered the ClientHello after 1.5 s"),
            "{}",
            j.explanation
        );
        let j = judge(&completed_after(1.003));
        assert!(
            j.explanation.ends_with("after 1.003 s"),
            "{}",
            j.explanation
        );
        // A second is not slow; nor is a fast server.
        for delay in [1.0, 0.009] {
            let j = judge(&completed_after(delay));
            assert!(!j.explanation.contains("answered"), "{}", j.explanation);
            assert_eq!(j.next_step, "Nothing to do for the handshake.");
        }
    }

    #[test]
    fn timings_from_recorded_events() {
        let mut f = completed_after(7.0);
        f.last_syn = ev(1, 0.0);
        f.synack = ev(2, 0.0004);
        f.handshake_ack = ev(3, 0.0005);
        assert_eq!(f.tcp_rtt_s(Side::Client), Some(0.0004));
        assert_eq!(f.tcp_rtt_s(Side::Server), Some(0.0001));
        assert_eq!(f.tcp_rtt_s(Side::Unknown), Some(0.0005));
        assert_eq!(f.server_hello_delay_s(), Some(7.0));
        assert_eq!(f.handshake_s(), Some(7.01));
        // Not measurable: no SYN-ACK, no ServerHello, no end.
        f.synack = None;
        f.serverhello = None;
        f.handshake_done = None;
        assert_eq!(f.tcp_rtt_s(Side::Client), None);
        assert_eq!(f.tcp_rtt_s(Side::Server), None);
        assert_eq!(f.tcp_rtt_s(Side::Unknown), Some(0.0005));
        assert_eq!(
            f.server_hello_delay_s(),
            None,
            "an alert is not a ServerHello"
        );
        assert_eq!(f.handshake_s(), None);
        // A HelloRetryRequest is the server's first answer.
        f.hello_retry_request = true;
        assert_eq!(f.server_hello_delay_s(), Some(7.0));
    }

    #[test]
    fn codes_are_stable_snake_case() {
        for c in VerdictCode::ALL {
            let json = serde_json::to_string(&c).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", c.as_str()));
        }
    }
}
