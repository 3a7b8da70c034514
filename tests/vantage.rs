//! Capture-point evidence on real captures: TX checksum offload names the capturing end when
//! TTLs cannot (samples/README.md, `offload_port_closed.pcap`), and captures recorded
//! with offload off never claim it.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::{bin, sample, samples_dir};
use serde_json::Value;

const OFFLOAD: &str = "offload_port_closed.pcap";
const CHECKSUM_EVIDENCE: &str = "TCP checksums (the capturing host's own packets carry wrong ones";

fn json(path: &str) -> Value {
    let (code, out, err) = bin(&["--format", "json", path]);
    assert_eq!(code, 0, "{path}: {err}");
    serde_json::from_str(&out).expect("JSON")
}

/// The client's SYN (frame 1, TTL 64) carries a wrong checksum, the router's RST (frame 2,
/// one hop, also TTL 64) a right one: the capture was taken on the client.
#[test]
fn wrong_checksums_on_the_clients_packets_place_the_capture_on_the_client() {
    let v = json(&sample(OFFLOAD));
    assert_eq!(v["vantage"]["side"], "client", "{}", v["vantage"]);
    assert_eq!(v["vantage"]["decided_by"], "inferred");
    let evidence = v["vantage"]["evidence"].as_str().unwrap();
    assert!(
        evidence.starts_with("1 connection(s) point to the client side and 0 to the server"),
        "{evidence}"
    );
    assert!(evidence.contains(CHECKSUM_EVIDENCE), "{evidence}");
    assert!(evidence.contains("TX checksum offload"), "{evidence}");
    let c = &v["connections"][0];
    assert_eq!(c["verdict"], "tcp_refused");
    let (code, text, err) = bin(&[&sample(OFFLOAD)]);
    assert_eq!(code, 0, "{err}");
    let line = text
        .lines()
        .find(|l| l.starts_with("Capture point:"))
        .unwrap();
    assert!(
        line.starts_with("Capture point: client side (inferred: ")
            && line.contains(CHECKSUM_EVIDENCE),
        "{line}"
    );
}

/// Every other sample was recorded with TX checksum offload off: all checksums are right, so
/// none may name them as its evidence (in JSON or in text).
#[test]
fn captures_with_offload_off_claim_no_checksum_evidence() {
    let mut seen = 0;
    for entry in std::fs::read_dir(samples_dir()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let capture = [".pcap", ".pcapng", ".pcap.gz", ".pcap.zst"]
            .iter()
            .any(|e| name.ends_with(e));
        if !capture || name.starts_with("offload_") {
            continue;
        }
        let path = path.to_string_lossy().into_owned();
        let v = json(&path);
        let evidence = v["vantage"]["evidence"].as_str().unwrap();
        assert!(!evidence.contains("checksum"), "{name}: {evidence}");
        let (_, text, _) = bin(&[&path]);
        assert!(!text.contains("TCP checksums"), "{name}: {text}");
        seen += 1;
    }
    assert!(seen >= 40, "only {seen} samples read");
}
