//! Certificate problems end to end: on the real TLS 1.2 samples (the lab's self-signed
//! certificate, which curl rejected in `client_alert_tls12.pcap` and trusted explicitly in
//! `tls12_ok.pcap`), and on hand-built TLS 1.2 handshakes carrying the certificates of
//! `tests/certificates/` (made by its `make.py`): an expired leaf sent alone for a name it
//! does not cover, and a sound chain. Each problem must be in the JSON, and shown by text and
//! Markdown.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use std::path::PathBuf;

mod common;
use common::packets::{Conv, ACK, PSH, RST, SYN};
use common::pcap::{Pcap, LINKTYPE_RAW, TEST_EPOCH_US};
use common::tls::{client_hello, handshake, record, with_len};
use common::{bin, sample};

const EXPIRED_LEAF: &[u8] = include_bytes!("certificates/expired_leaf.der");
const GOOD_LEAF: &[u8] = include_bytes!("certificates/good_leaf.der");
const INTERMEDIATE: &[u8] = include_bytes!("certificates/intermediate.der");

/// 2026-11-22T00:00:00Z, when the samples were recorded.
const NOV_2026: u64 = 1_795_305_600;

fn run(args: &[&str]) -> String {
    let (status, out, err) = bin(args);
    assert_eq!(status, 0, "{args:?}: {err}");
    out
}

fn json_of(path: &str) -> Value {
    serde_json::from_str(&run(&["--format", "json", "--all", path])).expect("JSON")
}

/// A TLS 1.2 handshake to `sni` at Unix time `at`: the server sends a ServerHello, `chain`
/// and ServerHelloDone; the client answers with a fatal bad_certificate alert and a reset.
fn rejected_handshake(name: &str, sni: &[u8], chain: &[&[u8]], at: u64) -> String {
    let conv = Conv::default();
    let ch = client_hello(sni);
    let mut sh = vec![3, 3];
    sh.extend_from_slice(&[9; 32]);
    sh.extend_from_slice(&[0, 0xc0, 0x2f, 0]);
    let mut certs = Vec::new();
    with_len(&mut certs, 3, |v| {
        for c in chain {
            with_len(v, 3, |v| v.extend_from_slice(c));
        }
    });
    let mut flight = handshake(2, &sh);
    flight.extend_from_slice(&handshake(11, &certs));
    flight.extend_from_slice(&handshake(14, &[]));
    let flight = record(22, 0x0303, &flight);
    let alert = record(21, 0x0303, &[2, 42]);
    let c_after = 101 + ch.len() as u32;
    let s_after = 501 + flight.len() as u32;
    let packets = [
        conv.seg(true, 100, 0, SYN, b""),
        conv.seg(false, 500, 101, SYN | ACK, b""),
        conv.seg(true, 101, 501, ACK, b""),
        conv.seg(true, 101, 501, ACK | PSH, &ch),
        conv.seg(false, 501, c_after, ACK | PSH, &flight),
        conv.seg(true, c_after, s_after, ACK | PSH, &alert),
        conv.seg(true, c_after + alert.len() as u32, s_after, RST | ACK, b""),
    ];
    let mut pcap = Pcap::new(LINKTYPE_RAW);
    let start = at * 1_000_000 - TEST_EPOCH_US;
    for (i, p) in packets.iter().enumerate() {
        pcap.record(start + i as u64 * 1000, p);
    }
    let dir = std::env::temp_dir().join(format!("tlsdiag-certs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file: PathBuf = dir.join(name);
    std::fs::write(&file, pcap.0).expect("write capture");
    file.display().to_string()
}

fn problems(c: &Value) -> Vec<&str> {
    c["certificate"]["problems"]
        .as_array()
        .expect("problems[]")
        .iter()
        .map(|p| p.as_str().expect("a code"))
        .collect()
}

#[test]
fn the_lab_certificate_curl_rejected_is_self_signed_in_every_format() {
    let path = sample("client_alert_tls12.pcap");
    let v = json_of(&path);
    let c = &v["connections"][0];
    assert_eq!(c["verdict"], "client_alert");
    // tshark: subject and issuer CN=backend.test, the same key identifier, one certificate.
    assert_eq!(c["certificate"]["chain_length"], 1);
    assert_eq!(problems(c), ["self_signed"]);
    assert_eq!(c["decrypted"], false);
    assert!(c["client_certificate"].is_null());
    let explanation = c["explanation"].as_str().unwrap();
    assert!(
        explanation.ends_with(
            "alert (frame 8 at 0.045 s): the backend's certificate (CN=backend.test) is \
             self-signed"
        ),
        "{explanation}"
    );
    let text = run(&[&path]);
    let cert = "CN=backend.test, issued by CN=backend.test, valid 2026-11-22 to 2036-11-19";
    assert!(
        text.contains(&format!("\n    Certificate: {cert}, chain of 1\n")),
        "{text}"
    );
    assert!(
        text.contains("\n    Certificate problems: self_signed\n"),
        "{text}"
    );
    assert!(
        text.contains("\n    TLS: offered TLSv1.2; negotiated TLSv1.2; ALPN http/1.1\n"),
        "{text}"
    );
    assert!(text.contains("cert self-signed"), "{text}");
    let md = run(&["--format", "markdown", &path]);
    assert!(
        md.contains("\n- **Certificate problems:** self\\_signed\n"),
        "{md}"
    );
    assert!(md.contains(&format!("\n- **Certificate:** {cert}")), "{md}");
}

#[test]
fn a_matching_name_is_no_mismatch_and_a_trusted_self_signed_handshake_stays_ok() {
    let v = json_of(&sample("tls12_ok.pcap"));
    let c = &v["connections"][0];
    assert_eq!(c["sni"], "backend.test");
    assert_eq!(c["verdict"], "tls_ok");
    assert_eq!(problems(c), ["self_signed"]);
    let explanation = c["explanation"].as_str().unwrap();
    assert!(
        explanation.contains("accepted a certificate with problems")
            && explanation.ends_with("(CN=backend.test) is self-signed"),
        "{explanation}"
    );
}

#[test]
fn an_expired_leaf_sent_alone_for_another_name_has_three_problems() {
    let path = rejected_handshake(
        "expired.pcap",
        b"api.example.com",
        &[EXPIRED_LEAF],
        NOV_2026,
    );
    let v = json_of(&path);
    let c = &v["connections"][0];
    assert_eq!(c["verdict"], "client_alert");
    assert_eq!(
        problems(c),
        ["expired", "name_mismatch", "incomplete_chain"]
    );
    let e = c["explanation"].as_str().unwrap();
    for words in [
        "the backend's certificate (CN=api.example.test) expired on 2024-01-01, 2 years \
         before this capture",
        "the certificate covers *.example.test, not the SNI api.example.com",
        "the server sent only its leaf certificate (issued by CN=Lab Intermediate): unless \
         that issuer is a root the client trusts, the client must already hold the \
         intermediate",
    ] {
        assert!(e.contains(words), "{words} not in: {e}");
    }
    let next = c["next_step"].as_str().unwrap();
    assert!(
        next.starts_with("Renew the backend's certificate (CN=api.example.test)"),
        "{next}"
    );
    assert!(next.contains("Send the full chain"), "{next}");
    let text = run(&[&path]);
    assert!(
        text.contains("Certificate problems: expired, name_mismatch, incomplete_chain"),
        "{text}"
    );
    assert!(
        text.contains("cert expired, name mismatch, chain incomplete"),
        "{text}"
    );
    assert!(text.contains("valid 2023-01-01 to 2024-01-01"), "{text}");
    let md = run(&["--format", "markdown", &path]);
    assert!(
        md.contains("**Certificate problems:** expired, name\\_mismatch, incomplete\\_chain"),
        "{md}"
    );
    assert!(
        md.contains("covers \\*.example.test, not the SNI api.example.com"),
        "{md}"
    );
}

#[test]
fn a_sound_chain_for_a_covered_name_has_no_problem_until_it_is_too_early() {
    let chain: [&[u8]; 2] = [GOOD_LEAF, INTERMEDIATE];
    // Any case, a trailing dot: still the certificate's name.
    let path = rejected_handshake("good.pcap", b"API.Example.TEST.", &chain, NOV_2026);
    let c = &json_of(&path)["connections"][0];
    assert_eq!(c["certificate"]["chain_length"], 2);
    assert!(problems(c).is_empty());
    assert!(c["next_step"].as_str().unwrap().contains("truststore"));
    let text = run(&[&path]);
    assert!(!text.contains("Certificate problems"), "{text}");
    // A wildcard stands for one label only.
    let path = rejected_handshake("deep.pcap", b"a.b.example.test", &chain, NOV_2026);
    assert_eq!(
        problems(&json_of(&path)["connections"][0]),
        ["name_mismatch"]
    );
    // Valid from 2025-01-01, captured on 2023-11-14.
    let path = rejected_handshake("early.pcap", b"api.example.test", &chain, 1_700_000_000);
    let c = &json_of(&path)["connections"][0];
    assert_eq!(problems(c), ["not_yet_valid"]);
    let e = c["explanation"].as_str().unwrap();
    assert!(
        e.contains("is valid only from 2025-01-01, 13 months after this capture"),
        "{e}"
    );
}

#[test]
fn redaction_hides_the_names_the_certificate_words_cite() {
    let path = rejected_handshake("redact.pcap", b"api.example.com", &[EXPIRED_LEAF], NOV_2026);
    for format in ["json", "text", "markdown"] {
        let out = run(&["--format", format, "--redact", "--all", &path]);
        for name in ["example", "Lab Intermediate"] {
            assert!(
                !out.contains(name),
                "--format {format} shows {name}:\n{out}"
            );
        }
        assert!(out.contains("expired on 2024-01-01"), "{format}: {out}");
    }
    let kept = run(&["--format", "json", "--redact", "--keep-names", &path]);
    assert!(kept.contains("not the SNI api.example.com"), "{kept}");
}
