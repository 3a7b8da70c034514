//! Verdict edges on real captures (samples/README.md says how each was recorded): a
//! HelloRetryRequest is not a retransmission, a server that closes on accept is
//! `server_closed` although its kernel resets the ClientHello, `incomplete` is not judged,
//! and a slow backend's explanation names its delay.
//!
//! Frame numbers are tshark's (`tshark -r samples/NAME`).

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::{bin, sample};
use serde_json::Value;

fn json(name: &str) -> Value {
    let (code, out, err) = bin(&["--format", "json", &sample(name)]);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).expect("JSON")
}

fn only_connection(v: &Value) -> &Value {
    let conns = v["connections"].as_array().expect("connections");
    assert_eq!(conns.len(), 1, "{v}");
    &conns[0]
}

/// hello_retry.pcap: ClientHello 4 (key share X25519), HelloRetryRequest 6, second
/// ClientHello 8 (key share P-256), ServerHello 9. Each hello was sent once.
#[test]
fn a_hello_retry_is_not_a_second_transmission() {
    let v = json("hello_retry.pcap");
    let c = only_connection(&v);
    assert_eq!(c["verdict"], "tls_ok");
    assert_eq!(c["hello_retry_request"], true);
    assert_eq!(
        c["clienthello_count"], 1,
        "the second hello is a new message"
    );
    assert_eq!(c["clienthello"]["key_share_groups"][0], "x25519");
    let (_, text, _) = bin(&["--all", &sample("hello_retry.pcap")]);
    assert!(text.contains("CH x1, ACKed; HRR"), "{text}");
    assert!(!text.contains("CH x2"), "{text}");
}

/// server_closed_on_accept.pcap: the server's FIN (frame 4) comes 1.4 ms after the handshake,
/// the client's ClientHello (frame 6) 0.2 s later, and the server's kernel resets it (frame 7).
#[test]
fn a_server_closing_on_accept_is_server_closed_not_reset() {
    let v = json("server_closed_on_accept.pcap");
    let c = only_connection(&v);
    assert_eq!(c["verdict"], "server_closed");
    assert_eq!(c["server_fin"]["frame"], 4);
    assert_eq!(c["server_rst"]["frame"], 7);
    let e = c["explanation"].as_str().unwrap();
    assert!(
        e.contains("FIN (frame 4") && e.contains("closed on accept"),
        "{e}"
    );
    assert!(e.contains("reset the ClientHello (frame 7"), "{e}");
    let (_, text, _) = bin(&[&sample("server_closed_on_accept.pcap")]);
    assert!(text.contains("server FIN, then RST"), "{text}");
    // The reset that answers a ClientHello the server left unread stays server_reset.
    let v = json("server_reset.client.pcap");
    assert_eq!(only_connection(&v)["verdict"], "server_reset");
}

/// midstream.pcap: the capture began after the handshake of a connection that then worked.
#[test]
fn a_connection_older_than_the_capture_is_not_judged() {
    let v = json("midstream.pcap");
    let c = only_connection(&v);
    assert_eq!(c["verdict"], "incomplete");
    assert_eq!(v["summary"]["failed"], 0);
    assert_eq!(v["summary"]["verdicts"]["incomplete"], 1);
    let next = c["next_step"].as_str().unwrap();
    assert!(next.starts_with("Not judged"), "{next}");
    assert!(!next.contains("Start the capture"), "{next}");
    let (code, text, _) = bin(&["--check", &sample("midstream.pcap")]);
    assert_eq!(code, 0, "incomplete is not a failure for --check");
    assert!(text.contains("(0 did not succeed, 1 not judged)"), "{text}");
    assert!(
        !text.contains("stream 0 [incomplete]"),
        "listed only with --all: {text}"
    );
    let (_, md, _) = bin(&["--format", "markdown", &sample("midstream.pcap")]);
    assert!(
        md.contains(
            "none was judged: the capture does not hold the whole handshake of its 1 connection(s)"
        ),
        "{md}"
    );
    let both = [sample("midstream.pcap"), sample("tls13_ok.pcap")];
    let (_, md, _) = bin(&["--format", "markdown", &both[0], &both[1]]);
    assert!(
        md.contains(
            "No connection failed: 1 completed their handshake or carried no TLS; 1 not judged"
        ),
        "{md}"
    );
    // A real failure next to it still fails --check.
    let (code, _, _) = bin(&[
        "--check",
        &sample("midstream.pcap"),
        &sample("syn_dropped.pcap"),
    ]);
    assert_eq!(code, 1);
}

/// slow_backend.pcap: ClientHello in frame 4 at 0.001615 s, the proxy releases the
/// ServerHello in frame 6 at 7.008298 s (tshark's frame.time_relative).
#[test]
fn a_slow_backend_names_its_delay() {
    let v = json("slow_backend.pcap");
    let c = only_connection(&v);
    assert_eq!(c["verdict"], "tls_ok");
    let delay = c["server_hello_delay_s"].as_f64().unwrap();
    assert!((delay - (7.008298 - 0.001615)).abs() < 2e-6, "{delay}");
    assert!(c["handshake_s"].as_f64().unwrap() > delay);
    assert!(c["tcp_rtt_ms"].as_f64().unwrap() < 1.0);
    let e = c["explanation"].as_str().unwrap();
    assert!(
        e.contains("the server answered the ClientHello after 7.0 s"),
        "{e}"
    );
    assert!(e.contains("Apigee") && e.contains("Envoy"), "{e}");
    let sv = &v["summary"]["servers"][0];
    assert!(sv["server_hello_delay_ms"]["p99"].as_f64().unwrap() > 7000.0);
}

/// mtu_blackhole.client.pcap: of the server's 11,880-byte flight only a 1,200-byte segment
/// (frame 6, rel. seq 2897) and the 616-byte tail (frame 8) arrive; the 1,448-byte segments
/// between never do. The server-side recording of the same connection sees them retransmitted.
#[test]
fn an_mtu_black_hole_is_named_from_both_sides() {
    let c = json("mtu_blackhole.client.pcap");
    let c = only_connection(&c);
    assert_eq!(c["verdict"], "server_response_lost");
    let e = c["explanation"].as_str().expect("explanation");
    assert!(e.contains("path MTU black hole"), "{e}");
    assert!(e.contains("reached 11880 bytes"), "{e}");
    assert!(e.contains("only 1816 bytes arrived"), "{e}");
    assert!(e.contains("largest 1200 bytes"), "{e}");
    let next = c["next_step"].as_str().expect("next_step");
    assert!(next.contains("path MTU black hole"), "{next}");
    assert!(!next.contains("asymmetric"), "{next}");

    let s = json("mtu_blackhole.server.pcap");
    let s = only_connection(&s);
    assert_eq!(s["verdict"], "server_response_lost");
    let e = s["explanation"].as_str().expect("explanation");
    assert!(e.contains("7 of them full-size 1448-byte segments"), "{e}");
    assert!(e.contains("path MTU black hole"), "{e}");
}

/// mixed.pcap stream 3 opens with frame 54 at 0.171467 s and its client sends the unknown_ca
/// alert in frame 73 at 0.347633 s (tshark's frame.time_relative, Wireshark's time column),
/// 0.176166 s into the connection. Explanations cite Wireshark's column; the ladder's column
/// says it counts from the connection's first packet.
#[test]
fn times_cite_wireshark_column_and_ladders_say_they_count_from_the_connection() {
    let v = json("mixed.pcap");
    let conns = v["connections"].as_array().expect("connections");
    let c = conns.iter().find(|c| c["stream"] == 3).expect("stream 3");
    let e = c["explanation"].as_str().expect("explanation");
    assert!(e.contains("(frame 73 at 0.348 s)"), "{e}");
    let alert = c["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .find(|t| t["frame"] == 73)
        .expect("frame 73");
    assert_eq!(
        alert["t"], 0.176166,
        "timeline t counts from the connection"
    );
    assert_eq!(
        c["client_rst"]["t"], 0.376321,
        "At.t counts from the capture"
    );

    let (_, text, _) = bin(&["--timeline", &sample("mixed.pcap")]);
    assert!(text.contains("frame 73 at 0.348 s"), "{text}");
    assert!(text.contains("conn. s") && text.contains("seconds into the connection"));
    let (_, md, _) = bin(&["--format", "markdown", "--timeline", &sample("mixed.pcap")]);
    assert!(md.contains("frame 73 at 0.348 s"), "{md}");
    assert!(md.contains("| frame | s into the connection |"), "{md}");
}
