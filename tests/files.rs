//! Several files as one capture, and live input: a sample cut into pieces named as
//! `tcpdump -C` names them and given in glob order, or spread over files that overlap in time,
//! gives the verdicts of the single capture; a refused connection fed live on a pipe that stays
//! open is written within seconds.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use serde_json::Value;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::pcap::{file_header, record_header, LINKTYPE_ETHERNET, SNAPLEN};
use common::sample;

/// A record of a classic pcap: (microseconds since the epoch, captured bytes, original length).
type Record = (u64, Vec<u8>, u32);

/// The records of a little-endian, microsecond, Ethernet sample.
fn records(name: &str) -> Vec<Record> {
    let bytes = std::fs::read(sample(name)).expect("sample");
    assert_eq!(
        bytes.get(..4),
        Some(&[0xd4, 0xc3, 0xb2, 0xa1][..]),
        "{name}"
    );
    assert_eq!(
        bytes.get(20..24),
        Some(&[1, 0, 0, 0][..]),
        "{name}: Ethernet"
    );
    let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let (sec, usec, caplen, orig) = (word(at), word(at + 4), word(at + 8), word(at + 12));
        let data = bytes[at + 16..at + 16 + caplen as usize].to_vec();
        out.push((u64::from(sec) * 1_000_000 + u64::from(usec), data, orig));
        at += 16 + caplen as usize;
    }
    out
}

/// Writes `records` as a capture file at `path`.
fn write_capture(path: &Path, records: &[Record]) {
    let mut out = Vec::new();
    file_header(&mut out, LINKTYPE_ETHERNET, SNAPLEN);
    for (ts, data, orig) in records {
        record_header(&mut out, *ts, data.len() as u32, *orig);
        out.extend_from_slice(data);
    }
    std::fs::write(path, out).expect("write piece");
}

/// A fresh directory for one test's files.
fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tlsdiag-files-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// The JSON report of `inputs` (all connections, timelines).
fn json(inputs: &[String]) -> Value {
    let mut args = vec!["-q", "--format", "json", "--all", "--timeline"];
    args.extend(inputs.iter().map(String::as_str));
    let (status, out, err) = common::bin(&args);
    assert_eq!(status, 0, "{inputs:?}: {err}");
    serde_json::from_str(&out).expect("JSON")
}

/// Each connection as (stream, client, server, verdict).
fn verdicts(report: &Value) -> Vec<(u64, String, String, String)> {
    report["connections"]
        .as_array()
        .expect("connections")
        .iter()
        .map(|c| {
            (
                c["stream"].as_u64().unwrap(),
                format!("{}:{}", c["client_ip"], c["client_port"]),
                format!("{}:{}", c["server_ip"], c["server_port"]),
                c["verdict"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// `tcpdump -C` pieces of 20 packets (`x.pcap`, `x.pcap1`, ... `x.pcap10`), given in glob
/// order (`x.pcap10` before `x.pcap2`): the same connections, verdicts, counts and time span as
/// the single capture, each connection's first frame named by its piece and its number there,
/// and a warning that the files were given out of time order.
#[test]
fn rotated_pieces_in_glob_order_give_the_single_captures_verdicts() {
    let name = "mixed.pcap";
    let all = records(name);
    assert!(all.len() > 200, "{name}: {} packets", all.len());
    let dir = temp_dir("rotated");
    let mut pieces: Vec<String> = Vec::new();
    for (i, chunk) in all.chunks(20).enumerate() {
        let suffix = if i == 0 { String::new() } else { i.to_string() };
        let path = dir.join(format!("x.pcap{suffix}"));
        write_capture(&path, chunk);
        pieces.push(path.display().to_string());
    }
    let piece_count = pieces.len();
    pieces.sort(); // the shell's glob order
    assert!(pieces[2].ends_with("x.pcap10"), "{pieces:?}");
    let single = json(&[sample(name)]);
    let merged = json(&pieces);
    let _ = std::fs::remove_dir_all(&dir);

    assert_eq!(merged["summary"]["verdicts"], single["summary"]["verdicts"]);
    assert_eq!(verdicts(&merged), verdicts(&single));
    for key in [
        "packets",
        "connections",
        "failed",
        "first_time",
        "last_time",
    ] {
        assert_eq!(merged["summary"][key], single["summary"][key], "{key}");
    }
    assert_eq!(merged["captures"].as_array().unwrap().len(), piece_count);
    let warnings = merged["warnings"].to_string();
    assert!(
        warnings.contains("out of time order") && warnings.contains("x.pcap10 before"),
        "{warnings}"
    );
    // Frame n of the single capture is frame (n - 1) % 20 + 1 of piece (n - 1) / 20, whose
    // index is its place in the order given.
    let index_of = |piece: usize| {
        let suffix = if piece == 0 {
            String::new()
        } else {
            piece.to_string()
        };
        let file = format!("x.pcap{suffix}");
        pieces.iter().position(|p| p.ends_with(&file)).unwrap() as u64
    };
    let (one, many) = (&single["connections"], &merged["connections"]);
    for (a, b) in one.as_array().unwrap().iter().zip(many.as_array().unwrap()) {
        let n = a["first_frame"].as_u64().unwrap();
        let at = (b["file"].as_u64(), b["first_frame"].as_u64());
        let piece = ((n - 1) / 20) as usize;
        assert_eq!(
            at,
            (Some(index_of(piece)), Some((n - 1) % 20 + 1)),
            "{}",
            a["stream"]
        );
    }
}

/// The packets of a sample dealt alternately into two files (two interfaces captured at once,
/// overlapping in time all along), given either way round: merged frame by frame into the
/// single capture's verdicts; given in time order, no warning.
#[test]
fn files_overlapping_in_time_merge_frame_by_frame() {
    let name = "mixed.pcap";
    let all = records(name);
    let dir = temp_dir("overlap");
    let (a, b) = (dir.join("a.pcap"), dir.join("b.pcap"));
    let odd: Vec<Record> = all.iter().step_by(2).cloned().collect();
    let even: Vec<Record> = all.iter().skip(1).step_by(2).cloned().collect();
    write_capture(&a, &odd);
    write_capture(&b, &even);
    let (a, b) = (a.display().to_string(), b.display().to_string());
    let single = json(&[sample(name)]);
    let forward = json(&[a.clone(), b.clone()]);
    let backward = json(&[b, a]);
    let _ = std::fs::remove_dir_all(&dir);
    for merged in [&forward, &backward] {
        assert_eq!(merged["summary"]["verdicts"], single["summary"]["verdicts"]);
        assert_eq!(verdicts(merged), verdicts(&single));
        assert_eq!(merged["summary"]["packets"], single["summary"]["packets"]);
    }
    assert_eq!(forward["warnings"], Value::Array(vec![]));
    assert!(backward["warnings"]
        .to_string()
        .contains("out of time order"));
}

/// Live: a refused connection written into standard input, which stays open, is written as an
/// NDJSON line within seconds (closed and quiet by the wall clock), long before the input
/// ends; then the input ends and the summary line follows.
#[test]
fn live_input_writes_a_refused_connection_while_the_input_stays_open() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tlsdiag"))
        .args(["-q", "--format", "ndjson", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run tlsdiag");
    let mut stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while let Ok(1) = stdout.read(&mut byte) {
            line.push(byte[0]);
            if byte[0] == b'\n' {
                let _ = tx.send(String::from_utf8_lossy(&line).into_owned());
                line.clear();
            }
        }
    });
    let mut stdin = child.stdin.take().expect("stdin");
    let bytes = std::fs::read(sample("port_closed.pcap")).expect("sample");
    stdin.write_all(&bytes).expect("write");
    stdin.flush().expect("flush");
    let start = Instant::now();
    let first = rx.recv_timeout(Duration::from_secs(2));
    let waited = start.elapsed();
    drop(stdin);
    let rest: Vec<String> = rx.iter().collect();
    let _ = child.wait();
    let _ = reader.join();
    let first = first.unwrap_or_else(|_| panic!("no line within 2 s (then: {rest:?})"));
    assert!(first.contains("\"verdict\":\"tcp_refused\""), "{first}");
    assert!(waited < Duration::from_secs(2), "{waited:?}");
    assert_eq!(rest.len(), 1, "{rest:?}");
    assert!(rest[0].contains("\"summary\""), "{rest:?}");
}

/// With several files, text and Markdown write frames `file:frame` (explanations and ladders)
/// under a legend of the numbered files; with one file, bare numbers and no legend.
#[test]
fn several_files_write_frames_as_file_and_frame_with_a_legend() {
    let all = records("mixed.pcap");
    let dir = temp_dir("legend");
    let (a, b) = (dir.join("a.pcap"), dir.join("b.pcap"));
    write_capture(&a, &all[..100]);
    write_capture(&b, &all[100..]);
    let inputs = [a.display().to_string(), b.display().to_string()];
    let report = json(&inputs);
    let render = |format: &str| {
        let mut args = vec!["-q", "--format", format, "--all", "--timeline"];
        args.extend(inputs.iter().map(String::as_str));
        common::bin(&args).1
    };
    let (text, markdown) = (render("text"), render("markdown"));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(text.contains("Frames are written file:frame"), "{text}");
    assert!(
        markdown.contains("Frames are written `file:frame`"),
        "{markdown}"
    );
    assert!(markdown.contains("| 1 | "), "{markdown}");
    // A connection in the second file: its ladder and its explanation name file 1.
    let c = report["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["file"] == 1 && c["verdict"] != "tls_ok")
        .expect("a failed connection in the second file");
    let first = &c["timeline"][0];
    let at = format!("1:{}", first["frame"]);
    assert!(text.contains(&format!("  {at}  ")), "{at} in\n{text}");
    assert!(
        markdown.contains(&format!("| {at} | ")),
        "{at} in\n{markdown}"
    );
    let explanation = c["explanation"].as_str().unwrap();
    assert!(explanation.contains("frame 1:"), "{explanation}");
    assert!(text.contains(explanation), "{text}");

    let (_, single, _) = common::bin(&["-q", "--all", "--timeline", &sample("mixed.pcap")]);
    assert!(!single.contains("Frames are written"), "{single}");
    assert!(!single.contains("frame 0:"), "{single}");
}

/// Standard input among files is not merged (it cannot be read twice): the inputs are read in
/// the order given, and a warning says so.
#[test]
fn standard_input_among_files_is_read_in_the_order_given_with_a_warning() {
    let stdin = std::fs::File::open(sample("port_closed.pcap")).expect("sample");
    let out = Command::new(env!("CARGO_BIN_EXE_tlsdiag"))
        .args(["-q", "--format", "json", &sample("tls13_ok.pcap"), "-"])
        .stdin(stdin)
        .output()
        .expect("run tlsdiag");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(report["captures"][1]["path"], "-");
    let verdicts = &report["summary"]["verdicts"];
    assert_eq!(
        (
            verdicts["tls_ok"].as_u64(),
            verdicts["tcp_refused"].as_u64()
        ),
        (Some(1), Some(1))
    );
    assert!(
        report["warnings"].to_string().contains("not merged"),
        "{}",
        report["warnings"]
    );
}
