//! Record: the report's record of a connection, derived in one place from its facts, its
//! verdict and the capture point it is worded for.

use super::clock::Ev;
use super::facts::{ip_text, Facts};
use super::verdict::Judgement;
use crate::model::{AlertOut, At, Connection, HttpOut, IcmpOut, Side};

fn at(e: Ev) -> At {
    At {
        frame: e.frame,
        t: e.since_capture,
        file: e.file,
    }
}

/// Seconds as milliseconds, to the microsecond.
pub(crate) fn ms(s: f64) -> f64 {
    (s * 1e6).round() / 1e3
}

/// The connection as reported: its facts, verdict `j` worded for capture point `side`; its
/// round trip measured as capture point `measured_from` sees it (the `--vantage` override or
/// the connection's own evidence, both known when it settles, unlike the capture's side).
pub fn connection(f: Facts, j: Judgement, side: Side, measured_from: Side) -> Connection {
    let tcp_rtt_ms = f.tcp_rtt_s(measured_from).map(ms);
    let server_hello_delay_s = f.server_hello_delay_s();
    let handshake_s = f.handshake_s();
    let http = (f.http_request.is_some() || f.http_status.is_some()).then_some(HttpOut {
        request_line: f.http_request,
        status_line: f.http_status,
    });
    let hello = f.hello;
    Connection {
        stream: f.stream,
        client_ip: ip_text(f.client.ip),
        client_port: f.client.port,
        server_ip: ip_text(f.server.ip),
        server_port: f.server.port,
        client_inferred: f.client_rule != super::facts::ClientRule::Syn,
        client_rule: f.client_rule.as_str().into(),
        verdict: j.code,
        explanation: j.explanation,
        next_step: j.next_step,
        vantage: side,
        syn_count: f.syn_count,
        syn_copies: f.syn_copies,
        synack_seen: f.synack_seen,
        tcp_established: f.established,
        clienthello_count: f.clienthello_count,
        clienthello_copies: f.clienthello_copies,
        clienthello_acked: f.clienthello_acked,
        serverhello_seen: f.serverhello_seen,
        hello_retry_request: f.hello_retry_request,
        tls_version: f.tls_version,
        cipher: f.cipher,
        sni: hello.as_ref().and_then(|c| c.sni.clone()),
        alpn: hello.as_ref().and_then(|c| c.alpn.first().cloned()),
        alpn_selected: f.alpn_selected,
        ja4: hello.as_ref().and_then(|c| c.ja4.clone()),
        clienthello: hello,
        certificate: f.certificate.map(|mut c| {
            c.problems = f.cert_problems.iter().map(|p| p.code().into()).collect();
            c
        }),
        decrypted: f.decrypted,
        client_certificate: f.client_certificate,
        alert: f.alert.map(|a| AlertOut {
            sender: if a.from_server { "server" } else { "client" }.into(),
            level: a.level,
            description: a.description,
            encrypted: a.encrypted,
            inferred: a.inferred,
            decrypted: a.decrypted,
            frame: a.at.frame,
        }),
        server_first_bytes: f.server_first_bytes,
        client_first_bytes: f.client_first_bytes,
        http,
        client_fin: f.client_fin.map(at),
        client_rst: f.client_rst.map(at),
        server_fin: f.server_fin.map(at),
        server_rst: f.server_rst.map(at),
        icmp: f.icmp.map(|i| IcmpOut {
            icmp_type: i.icmp_type,
            code: i.code,
            description: i.description,
            frame: i.at.frame,
            reporter: i.reporter,
            v6: i.v6,
            mtu: i.mtu,
        }),
        first_frame: f.first_frame,
        last_frame: f.last_frame,
        file: f.file,
        start_time: crate::timefmt::rfc3339_nanos(f.start),
        duration_s: f.duration_s,
        tcp_rtt_ms,
        server_hello_delay_s,
        handshake_s,
        gave_up_after_s: f.gave_up_after_s,
        timeout_match: f.timeout_match,
        client_retransmissions: f.client_retransmissions,
        server_retransmissions: f.server_retransmissions,
        server_payload_bytes: f.server_payload_bytes,
        uncertain: f.uncertain,
        timeline: f.timeline,
        events_not_kept: f.events_not_kept,
    }
}
