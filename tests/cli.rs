//! The command line's conventions, run on the real binary: `--generate` (man page, shell
//! completions), `tlsdiag help`, `-r FILE`, counts that refuse 0, corrupt compressed input
//! named as such, and the machine-readable details of the reports (`events_not_kept`, NDJSON
//! summary lines, Markdown `#N` that cannot become an issue link).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::packets::{Conv, ACK, FIN, PSH, SYN};
use common::pcap::{Pcap, LINKTYPE_RAW};

fn tlsdiag(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tlsdiag"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .expect("run tlsdiag")
}

/// Standard output of a run that must succeed.
fn stdout(args: &[&str]) -> String {
    let out = tlsdiag(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// A run that must be refused with status 2; its standard error.
fn refused(args: &[&str]) -> String {
    let out = tlsdiag(args);
    assert_eq!(out.status.code(), Some(2), "{args:?}");
    assert!(out.stdout.is_empty(), "{args:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn lines(s: &str) -> Vec<Value> {
    s.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn scratch(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tlsdiag-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn generate_writes_a_man_page_and_completions_that_know_compare() {
    let man = stdout(&["--generate", "man"]);
    assert!(man.contains("\n.TH tlsdiag 1 "), "no title: {man}");
    for needle in [
        ".SH OPTIONS",
        "max\\-connections",
        ".SH COMPARE",
        "client\\-side",
    ] {
        assert!(man.contains(needle), "man page lacks {needle}");
    }
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let script = stdout(&["--generate", &format!("complete-{shell}")]);
        assert!(script.contains("compare"), "{shell}: no compare");
        assert!(script.contains("client-side"), "{shell}: no --client-side");
        assert!(script.contains("max-connections"), "{shell}");
    }
    refused(&["--generate", "man", "samples/tls13_ok.pcap"]);
    refused(&["--generate", "complete-tcsh"]);
}

#[test]
fn help_is_a_command_and_a_file_named_help_is_a_path() {
    let help = stdout(&["help"]);
    assert!(
        help.contains("Usage: tlsdiag") && help.contains("--format"),
        "{help}"
    );
    let help = stdout(&["help", "compare"]);
    assert!(help.contains("--client-side"), "{help}");
    let err = refused(&["./help"]);
    assert!(err.starts_with("tlsdiag: ./help: cannot open"), "{err}");
}

#[test]
fn dash_r_reads_a_capture_like_tcpdump_and_repeats_in_order() {
    let (a, b) = ("samples/tls13_ok.pcap", "samples/syn_dropped.pcap");
    let positional = stdout(&["-q", "-f", "json", "--all", a, b]);
    assert_eq!(
        stdout(&["-q", "-f", "json", "--all", "-r", a, "-r", b]),
        positional
    );
    assert_eq!(
        stdout(&["-q", "-f", "json", "--all", "-r", a, b]),
        positional
    );
    let swapped = stdout(&["-q", "-f", "json", "--all", "-r", b, a]);
    assert_ne!(
        swapped, positional,
        "file order must follow the command line"
    );
}

#[test]
fn zero_is_refused_for_counts_where_it_means_nothing() {
    for flag in ["--max-connections", "--reassembly-cap"] {
        let err = refused(&[flag, "0", "samples/tls13_ok.pcap"]);
        assert!(err.contains(flag) && err.contains("at least 1"), "{err}");
        stdout(&["-q", flag, "1", "samples/tls13_ok.pcap"]);
    }
}

#[test]
fn corrupt_compressed_input_is_called_corrupt_not_empty() {
    let pcap =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/tls13_ok.pcap")).unwrap();
    let mut gz = Vec::new();
    {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(&mut gz, flate2::Compression::default());
        e.write_all(&pcap).unwrap();
        e.finish().unwrap();
    }
    // A valid gzip header, then deflate data overwritten with garbage.
    gz[10..50].fill(0xff);
    let mut zst = vec![0x28, 0xb5, 0x2f, 0xfd];
    zst.extend([0xff; 60]);
    for (name, bytes, kind) in [("bad.pcap.gz", gz, "gzip"), ("bad.pcap.zst", zst, "zstd")] {
        let p = scratch(name, &bytes);
        let err = refused(&["-q", p.to_str().unwrap()]);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains(&format!("{}: corrupt {kind} data", p.display())),
            "{err}"
        );
        assert!(!err.contains("empty"), "{err}");
    }
}

#[test]
fn a_cut_timeline_says_events_not_kept_instead_of_a_fake_event() {
    // tls13_ok: the data after the handshake is not kept in the ladder: frames 11, 12, 13 and
    // 15 (frame 11, the server's first answer to the client's Finished, would be kept were it
    // alert-sized: the record that rejects a client certificate).
    let report: Value = serde_json::from_str(&stdout(&[
        "-q",
        "-f",
        "json",
        "--all",
        "samples/tls13_ok.pcap",
    ]))
    .unwrap();
    let c = &report["connections"][0];
    assert_eq!(c["events_not_kept"], 4, "{c}");
    let timeline = c["timeline"].as_array().unwrap();
    assert!(timeline
        .iter()
        .all(|e| e["dir"] != "" && !e["event"].as_str().unwrap().contains("not kept")));
    // Whole ladders say 0.
    let report: Value = serde_json::from_str(&stdout(&[
        "-q",
        "-f",
        "json",
        "samples/clienthello_dropped.client.pcap",
    ]))
    .unwrap();
    assert_eq!(report["connections"][0]["events_not_kept"], 0);
    // The text ladder still closes with the count.
    let text = stdout(&["-q", "--all", "--timeline", "samples/tls13_ok.pcap"]);
    assert!(text.contains("  4 later events not kept\n"), "{text}");
}

/// A long cleartext transfer: the ladder stops at its cap (96 events, more for the teardown)
/// and `events_not_kept` counts the rest, so that ladder + count = every packet.
#[test]
fn a_ladder_past_its_cap_counts_every_packet_it_left_out() {
    let conv = Conv::default();
    let chunk = [b'x'; 100];
    let mut frames = vec![
        conv.seg(true, 100, 0, SYN, b""),
        conv.seg(false, 500, 101, SYN | ACK, b""),
        conv.seg(true, 101, 501, ACK, b""),
    ];
    let mut seq = 101;
    for _ in 0..150 {
        frames.push(conv.seg(true, seq, 501, ACK | PSH, &chunk));
        seq += chunk.len() as u32;
    }
    frames.push(conv.seg(true, seq, 501, FIN | ACK, b""));
    frames.push(conv.seg(false, 501, seq + 1, FIN | ACK, b""));
    let p = scratch("long.pcap", &Pcap::of(LINKTYPE_RAW, &frames));
    let json = stdout(&["-q", "-f", "json", "--all", p.to_str().unwrap()]);
    let report: Value = serde_json::from_str(&json).unwrap();
    let c = &report["connections"][0];
    let ladder = c["timeline"].as_array().unwrap();
    let not_kept = c["events_not_kept"].as_u64().unwrap() as usize;
    assert!(
        ladder.len() < 120 && not_kept > 30,
        "{} + {not_kept}",
        ladder.len()
    );
    assert_eq!(ladder.len() + not_kept, frames.len());
    assert_eq!(
        ladder.last().unwrap()["event"],
        "FIN",
        "teardown is always kept"
    );
}

#[test]
fn ndjson_summary_lines_carry_the_tool_and_close_compare_too() {
    let nd = lines(&stdout(&["-q", "-f", "ndjson", "samples/mixed.pcap"]));
    let last = nd.last().unwrap();
    assert_eq!(last["tool"]["name"], "tlsdiag");
    assert_eq!(last["tool"]["version"], env!("CARGO_PKG_VERSION"));
    let nd = lines(&stdout(&[
        "compare",
        "-f",
        "ndjson",
        "samples/nat.client.pcap",
        "samples/nat.server.pcap",
    ]));
    let (last, pairs) = nd.split_last().unwrap();
    assert!(!pairs.is_empty() && pairs.iter().all(|p| p.get("verdict").is_some()));
    assert_eq!(last["summary"]["pairs"], pairs.len());
    assert_eq!(last["tool"]["name"], "tlsdiag");
    assert!(
        last["clock"].is_object() && last["unmatched"].is_array(),
        "{last}"
    );
}

/// `#` then a digit, escaped or not: GitHub links it to an issue either way.
fn issue_link(md: &str) -> Option<&str> {
    md.lines().find(|l| {
        l.as_bytes()
            .windows(2)
            .any(|w| w[0] == b'#' && w[1].is_ascii_digit())
    })
}

#[test]
fn markdown_numbers_after_a_hash_cannot_become_issue_links() {
    let md = stdout(&["-q", "-f", "markdown", "--all", "samples/syn_dropped.pcap"]);
    assert!(md.contains("SYN retransmission #<!-- -->1"), "{md}");
    assert_eq!(issue_link(&md), None);
    let md = stdout(&[
        "compare",
        "-f",
        "markdown",
        "samples/clienthello_dropped.client.pcap",
        "samples/clienthello_dropped.server.pcap",
    ]);
    assert!(md.contains("| #<!-- -->1 SYN |"), "{md}");
    assert_eq!(issue_link(&md), None);
}
