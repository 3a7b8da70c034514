//! The first line of a report says the answer: an alert named with who sent it, and words
//! instead of empty tables when a capture holds no TCP or a filter matched nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;

mod common;
use common::packets::{ipv4, put16, PROTO_UDP};
use common::pcap::{Pcap, LINKTYPE_RAW};
use common::{bin, sample};

/// The binary's standard output for `args`, which must succeed.
fn run(args: &[&str]) -> String {
    let (code, out, err) = bin(args);
    assert_eq!(code, 0, "{args:?}: {err}");
    out
}

/// The text report's headline: the line after the version.
fn text_headline(out: &str) -> &str {
    out.lines().nth(1).expect("a headline")
}

#[test]
fn an_alert_is_named_with_its_sender_not_as_the_client_giving_up() {
    for (name, words) in [
        (
            "server_alert_handshake_failure.pcap",
            "the backend refused: handshake_failure",
        ),
        (
            "server_alert_protocol_version.pcap",
            "the backend refused: protocol_version",
        ),
        ("client_alert_tls12.pcap", "the client refused: unknown_ca"),
        ("client_alert_tls13.pcap", "the client refused: unknown_ca"),
    ] {
        let path = sample(name);
        let md = run(&["-q", "--format", "markdown", &path]);
        let headline = md.lines().nth(2).unwrap();
        assert!(
            headline.contains(&words.replace('_', "\\_")),
            "{name}: {headline}"
        );
        let text = run(&["-q", &path]);
        assert!(text_headline(&text).contains(words), "{name}: {text}");
        let (sender, description) = words
            .trim_start_matches("the ")
            .split_once(" refused: ")
            .unwrap();
        let sender = if sender == "backend" {
            "server"
        } else {
            sender
        };
        let row = text
            .lines()
            .find(|l| l.starts_with("│ 0 "))
            .unwrap_or_else(|| panic!("{name}: no row for stream 0 in\n{text}"));
        assert!(
            row.contains(&format!("{sender} alert {description}")),
            "{name}: {row}"
        );
        for out in [&md, &text] {
            assert!(!out.contains("gave up"), "{name}:\n{out}");
        }
    }
}

#[test]
fn a_filter_that_matches_nothing_says_so_and_counts_the_capture() {
    let path = sample("mixed.pcap");
    let said = "Nothing matched --host 10.9.9.9 (20 connection(s) in the capture).";
    let text = run(&["-q", "--host", "10.9.9.9", &path]);
    assert_eq!(text_headline(&text), said, "{text}");
    assert!(!text.contains('┌'), "an empty table:\n{text}");
    let md = run(&["-q", "--format", "markdown", "--host", "10.9.9.9", &path]);
    assert!(md.contains(&format!("**{said}**")), "{md}");
    for table in ["### Verdicts", "### Servers", "| verdict |"] {
        assert!(!md.contains(table), "an empty table {table}:\n{md}");
    }
    let json: Value = serde_json::from_str(&run(&[
        "-q", "--format", "json", "--host", "10.9.9.9", &path,
    ]))
    .unwrap();
    assert_eq!(json["summary"]["connections"], 0);
    assert_eq!(json["summary"]["connections_seen"], 20);
    // A filter that keeps some counts the capture too; no filter, no count.
    let json: Value =
        serde_json::from_str(&run(&["-q", "--format", "json", "--port", "443", &path])).unwrap();
    assert_eq!(json["summary"]["connections_seen"], 20);
    assert!(json["summary"]["connections"].as_u64().unwrap() < 20);
    let json: Value = serde_json::from_str(&run(&["-q", "--format", "json", &path])).unwrap();
    assert!(json["summary"].get("connections_seen").is_none());
    // Redacted, the filter's address is not repeated.
    let red = run(&["-q", "--redact", "--host", "10.9.9.9", &path]);
    assert!(!red.contains("10.9.9.9"), "{red}");
    assert!(red.contains("Nothing matched --host (redacted)"), "{red}");
}

/// 20 UDP datagrams between two hosts, raw IP.
fn udp_only() -> Vec<u8> {
    let frames: Vec<Vec<u8>> = (0..20u16)
        .map(|i| {
            let mut udp = Vec::new();
            for x in [5353 + i, 53, 8 + 4, 0] {
                put16(&mut udp, x);
            }
            udp.extend_from_slice(b"ping");
            ipv4([10, 0, 0, 1], [10, 0, 0, 2], PROTO_UDP, i, 0x4000, &udp)
        })
        .collect();
    Pcap::of(LINKTYPE_RAW, &frames)
}

#[test]
fn a_capture_without_tcp_says_what_it_holds_instead() {
    let path = std::env::temp_dir().join(format!("tlsdiag-udp-only-{}.pcap", std::process::id()));
    std::fs::write(&path, udp_only()).unwrap();
    let p = path.display().to_string();
    let text = run(&["-q", &p]);
    let md = run(&["-q", "--format", "markdown", &p]);
    std::fs::remove_file(&path).unwrap();
    let said = "No TCP among 20 packet(s): 20 UDP, ICMP or other IP.";
    assert_eq!(text_headline(&text), said, "{text}");
    assert!(md.contains(&format!("**{said}**")), "{md}");
    assert!(!md.contains("### Verdicts"), "{md}");
    // A real capture of the public corpus with no TCP, when the corpus is here.
    let corpus = match common::corpus_public() {
        Ok(dir) => dir.join("zeek/pcapng-multi-interface.pcapng"),
        Err(why) => return common::skipped("a_capture_without_tcp (corpus part)", &why),
    };
    let md = run(&["-q", "--format", "markdown", &corpus.display().to_string()]);
    assert!(
        md.contains("**No TCP among 6 packet(s): 6 UDP, ICMP or other IP.**"),
        "{md}"
    );
}

/// TLS 1.3 mutual TLS rejected: without keys the headline says what the alert-sized answer to
/// the client's Finished most likely was; with the key log it names the alert.
#[test]
fn a_mutual_tls_rejection_is_said_with_and_without_keys() {
    let path = sample("tls13_mtls_no_client_cert.pcap");
    let keys = sample("tls13_mtls_no_client_cert.keys");
    let text = run(&["-q", &path]);
    assert!(
        text_headline(&text).contains("the backend most likely rejected the client's certificate"),
        "{text}"
    );
    let text = run(&["-q", "--keylog", &keys, &path]);
    assert!(
        text_headline(&text).contains("the backend refused: certificate_required"),
        "{text}"
    );
}
