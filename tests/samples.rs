//! Runs the built binary over every capture in `samples/` and checks its JSON against
//! `samples/expected.json`, whose facts were read from the packets (tshark) when the captures
//! were recorded. A boolean expectation on an event key (`client_fin`, ...) checks presence; an
//! object expectation checks the listed keys only.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

mod common;
use common::samples_dir;

fn run(inputs: &[String], args: &[String]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_tlsdiag"))
        .current_dir(samples_dir())
        .arg("--format")
        .arg("json")
        .args(args)
        .args(inputs)
        .output()
        .expect("run tlsdiag");
    assert!(
        out.status.success(),
        "tlsdiag {inputs:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("tlsdiag prints JSON")
}

/// Compares `expected` with `actual` under the rules above; pushes problems to `errs`.
fn compare(path: &str, expected: &Value, actual: &Value, errs: &mut Vec<String>) {
    match (expected, actual) {
        (Value::Bool(want), Value::Object(_)) => {
            if !*want {
                errs.push(format!("{path}: expected none, got {actual}"));
            }
        }
        (Value::Bool(true), Value::Null) => errs.push(format!("{path}: expected one, got null")),
        (Value::Bool(false), Value::Null) => {}
        (Value::Object(want), Value::Object(got)) => {
            for (k, v) in want {
                compare(
                    &format!("{path}.{k}"),
                    v,
                    got.get(k).unwrap_or(&Value::Null),
                    errs,
                );
            }
        }
        (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => {}
        (a, b) if a == b => {}
        (a, b) => errs.push(format!("{path}: expected {a}, got {b}")),
    }
}

#[test]
fn every_sample_matches_its_expectations() {
    let dir = samples_dir();
    let text = std::fs::read_to_string(dir.join("expected.json")).expect("samples/expected.json");
    let expected: Value = serde_json::from_str(&text).expect("expected.json is JSON");
    let files = expected["files"].as_object().expect("files object");
    assert!(!files.is_empty());
    let mut errs: Vec<String> = Vec::new();
    let mut checked = 0;
    for (name, exp) in files {
        let inputs: Vec<String> = match exp.get("inputs").and_then(Value::as_array) {
            Some(list) => list
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect(),
            None => vec![name.clone()],
        };
        let args: Vec<String> = exp
            .get("args")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let report = run(&inputs, &args);
        if let Some(v) = exp.get("vantage") {
            compare(
                &format!("{name}: vantage"),
                v,
                &report["vantage"]["side"],
                &mut errs,
            );
        }
        let conns = report["connections"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if let Some(n) = exp.get("connection_count") {
            compare(
                &format!("{name}: connection_count"),
                n,
                &Value::from(conns.len()),
                &mut errs,
            );
        }
        for want in exp["connections"].as_array().into_iter().flatten() {
            let stream = &want["stream"];
            let Some(got) = conns.iter().find(|c| &c["stream"] == stream) else {
                errs.push(format!("{name}: stream {stream} missing"));
                continue;
            };
            compare(&format!("{name}: stream {stream}"), want, got, &mut errs);
            checked += 1;
        }
    }
    assert!(
        errs.is_empty(),
        "{} mismatches over {checked} connections:\n{}",
        errs.len(),
        errs.join("\n")
    );
}

#[test]
fn every_core_verdict_has_a_real_sample() {
    let text = std::fs::read_to_string(samples_dir().join("expected.json")).expect("expected.json");
    let expected: Value = serde_json::from_str(&text).expect("JSON");
    let mut seen = std::collections::BTreeSet::new();
    for exp in expected["files"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
    {
        for c in exp["connections"].as_array().into_iter().flatten() {
            if let Some(v) = c["verdict"].as_str() {
                seen.insert(v.to_string());
            }
        }
    }
    let core = [
        "tls_ok",
        "tls_no_server_response",
        "tcp_no_synack",
        "tcp_refused",
        "icmp_unreachable",
        "not_tls",
        "server_alert",
        "client_alert",
        "server_reset",
        "server_closed",
        "server_response_lost",
        "clienthello_lost",
        "tcp_no_data",
        "cleartext",
        "incomplete",
    ];
    let missing: Vec<&str> = core
        .iter()
        .copied()
        .filter(|c| !seen.contains(*c))
        .collect();
    assert!(missing.is_empty(), "verdicts without a sample: {missing:?}");
}

/// Settling connections early, spilling them to disk and reading them back must not change a
/// single byte of the report.
#[test]
fn eviction_and_spilling_do_not_change_the_report() {
    use tlsdiag::report::{render, Format, RenderOptions};
    let path = samples_dir().join("mixed.pcap").display().to_string();
    let plain = tlsdiag::analyze(std::slice::from_ref(&path), &tlsdiag::Options::default())
        .expect("analyse");
    let tight = tlsdiag::Options {
        memory_records: 2,
        flow: tlsdiag::flow::FlowConfig {
            close_linger: 100_000_000, // 0.1 s of capture time
            sweep_packets: 1,
            sweep_interval: 0,
            ..Default::default()
        },
        ..Default::default()
    };
    let mut squeezed = tlsdiag::analyze(std::slice::from_ref(&path), &tight).expect("analyse");
    // The one figure that must differ: fewer connections were open at once.
    assert!(squeezed.summary.peak_live_connections < plain.summary.peak_live_connections);
    squeezed.summary.peak_live_connections = plain.summary.peak_live_connections;
    let ro = RenderOptions {
        all: true,
        ..Default::default()
    };
    for f in [Format::Json, Format::Text, Format::Markdown] {
        let (a, b) = (render(&plain, f, &ro), render(&squeezed, f, &ro));
        assert!(!a.is_empty());
        let diff: Vec<String> = a
            .lines()
            .zip(b.lines())
            .enumerate()
            .filter(|(_, (x, y))| x != y)
            .take(5)
            .map(|(i, (x, y))| format!("line {}: {x:?} vs {y:?}", i + 1))
            .collect();
        assert!(
            diff.is_empty() && a.len() == b.len(),
            "{f:?} differs:\n{}",
            diff.join("\n")
        );
    }
    assert_eq!(plain.len(), 20);
    assert!(
        squeezed.summary.late_packets == 0,
        "a settled connection got more packets"
    );
}

/// The per-server rollup lists a bounded number of servers (a scan reaches millions) and counts
/// the connections to the rest, so the totals still add up and nothing is silently dropped.
#[test]
fn the_server_rollup_is_bounded_and_still_adds_up() {
    let path = samples_dir().join("mixed.pcap").display().to_string();
    let analyse = |max_servers| {
        let opts = tlsdiag::Options {
            max_servers,
            ..Default::default()
        };
        tlsdiag::analyze(std::slice::from_ref(&path), &opts).expect("analyse")
    };
    let (full, capped) = (analyse(0), analyse(3));
    let (f, c) = (&full.summary, &capped.summary);
    assert!(
        f.servers.len() > 3,
        "mixed.pcap reaches more than 3 servers"
    );
    assert_eq!(f.unlisted_server_connections, 0);
    assert_eq!(c.servers.len(), 3);
    assert_eq!((c.connections, &c.verdicts), (f.connections, &f.verdicts));
    for sv in &c.servers {
        assert!(
            f.servers.contains(sv),
            "{sv:?}: counted as without the limit"
        );
    }
    let listed: u64 = c.servers.iter().map(|s| s.connections).sum();
    assert!(c.unlisted_server_connections > 0);
    assert_eq!(listed + c.unlisted_server_connections, c.connections);
    let warned = format!(
        "{} connections to the servers",
        c.unlisted_server_connections
    );
    assert!(
        capped.warnings.iter().any(|w| w.contains(&warned)),
        "{:?}",
        capped.warnings
    );
}

/// A ticket summary of a capture with many distinct problems keeps a section for the biggest
/// ones only (each section holds an example connection, so this also bounds the memory), and
/// says how many problems and connections it left out.
#[test]
fn markdown_has_sections_for_the_biggest_problems_only() {
    use tlsdiag::report::{markdown, render, Format, RenderOptions};
    let path = samples_dir().join("mixed.pcap").display().to_string();
    let r = tlsdiag::analyze(std::slice::from_ref(&path), &tlsdiag::Options::default())
        .expect("analyse");
    let md = |all, max_problems| {
        let o = RenderOptions {
            all,
            max_problems,
            ..Default::default()
        };
        render(&r, Format::Markdown, &o)
    };
    // "### `verdict`: N connection(s) to server", in the order written.
    let sections = |text: &str| -> Vec<(u64, String)> {
        text.lines()
            .filter_map(|l| l.strip_prefix("### `"))
            .map(|l| {
                let n = l.split(": ").nth(1).and_then(|x| x.split(' ').next());
                (
                    n.and_then(|x| x.parse().ok()).expect("a count"),
                    l.to_string(),
                )
            })
            .collect()
    };
    let full = md(false, 0);
    let all = sections(&full);
    assert!(all.len() > 4, "mixed.pcap has more than 4 problems");
    assert!(!full.contains("have no section"));
    // 1: only the biggest (2 connections; every other problem has 1).
    for max in [1, 4] {
        let capped = md(false, max);
        let kept = sections(&capped);
        assert_eq!(kept.len(), max);
        let rest: Vec<&(u64, String)> = all.iter().filter(|s| !kept.contains(s)).collect();
        assert_eq!(
            rest.len(),
            all.len() - max,
            "kept sections are the full report's"
        );
        let smallest_kept = kept.iter().map(|s| s.0).min();
        let biggest_left = rest.iter().map(|s| s.0).max();
        assert!(smallest_kept >= biggest_left, "{max}: {kept:?}");
        // Same headline, same order of sections.
        assert_eq!(full.lines().nth(2), capped.lines().nth(2));
        let order: Vec<&(u64, String)> = all.iter().filter(|s| kept.contains(s)).collect();
        assert_eq!(order, kept.iter().collect::<Vec<_>>());
        let left_connections: u64 = rest.iter().map(|s| s.0).sum();
        let note = format!(
            "{} other problem(s) ({left_connections} connection(s)) have no section",
            rest.len()
        );
        assert!(capped.contains(&note), "{note}");
        // The per-server table: the busiest servers, the rest summed in one row.
        let servers = &r.summary.servers;
        let rows = capped.lines().filter(|l| {
            servers
                .iter()
                .any(|sv| l.starts_with(&format!("| {} | ", markdown::cell(&sv.server))))
        });
        assert_eq!(rows.count(), max);
        let rest: u64 = servers[max..].iter().map(|sv| sv.connections).sum();
        let row = format!("| {} more servers | {rest} | |", servers.len() - max);
        assert!(capped.contains(&row), "{row}");
    }
    // With every connection listed, failures still come first: 3 `tls_ok` to one server are
    // more than the 2 `client_alert`s the headline is about.
    let capped = md(true, 1);
    assert_eq!(full.lines().nth(2), capped.lines().nth(2));
    let kept = sections(&capped);
    assert!(kept[0].1.starts_with("client_alert`: 2 "), "{kept:?}");
}

/// `tlsdiag --format ndjson -`, fed through a pipe, as after `tcpdump -U -w -`.
fn live_ndjson() -> std::process::Child {
    use std::process::Stdio;
    Command::new(env!("CARGO_BIN_EXE_tlsdiag"))
        .args(["--format", "ndjson", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn")
}

/// `--format ndjson` writes each connection as soon as it is settled; read from standard
/// input, as `tcpdump -U -w - | tlsdiag --format ndjson -` does, it must report exactly what
/// the whole-file JSON report says.
#[test]
fn live_ndjson_from_stdin_matches_the_json_report() {
    use std::io::Write;
    let path = samples_dir().join("mixed.pcap");
    let json = run(&["mixed.pcap".to_string()], &[]);
    let mut child = live_ndjson();
    let bytes = std::fs::read(&path).expect("read sample");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&bytes)
        .expect("feed stdin");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let mut lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    let tail = lines.pop().expect("summary line");
    assert_eq!(tail["summary"], json["summary"]);
    lines.sort_by_key(|c| c["stream"].as_u64());
    let want = json["connections"].as_array().expect("connections");
    assert_eq!(lines.len(), want.len());
    for (got, want) in lines.iter().zip(want) {
        assert_eq!(got, want, "stream {}", want["stream"]);
    }
}

/// A live monitor: connections settled early in the input are written while the input is still
/// open (the pipe from `tcpdump -U -w -` stays open for as long as the capture runs).
#[test]
fn live_ndjson_writes_settled_connections_before_the_input_ends() {
    use std::io::{BufRead, Write};
    let bytes = std::fs::read(samples_dir().join("mixed.pcap")).expect("read sample");
    // Whole records up to two thirds of the file (24-byte file header, 16-byte record headers).
    let mut cut = 24;
    while cut + 16 <= bytes.len() * 2 / 3 {
        let caplen = u32::from_le_bytes([
            bytes[cut + 8],
            bytes[cut + 9],
            bytes[cut + 10],
            bytes[cut + 11],
        ]);
        cut += 16 + caplen as usize;
    }
    let mut child = live_ndjson();
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(&bytes[..cut]).expect("feed stdin");
    stdin.flush().expect("flush stdin");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            if tx.send(line.expect("read stdout")).is_err() {
                break;
            }
        }
    });
    // The input is still open: the first connection must come anyway.
    let first = rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("no connection written while the input was open");
    let v: Value = serde_json::from_str(&first).expect("JSON line");
    assert!(v["stream"].is_u64() && v["verdict"].is_string(), "{first}");
    drop(stdin);
    let rest: Vec<String> = rx.iter().collect();
    reader.join().expect("reader");
    assert!(child.wait().expect("wait").success());
    let last = rest.last().expect("summary line");
    assert!(
        last.starts_with("{\"captures\"") && last.contains("\"summary\""),
        "{last}"
    );
}

/// Exit status: 0 analysed, 1 only with `--check` when a connection failed, 2 unreadable.
#[test]
fn exit_status_follows_the_contract() {
    let status = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_tlsdiag"))
            .current_dir(samples_dir())
            .args(args)
            .output()
            .expect("run")
            .status
            .code()
    };
    assert_eq!(status(&["tls13_ok.pcap"]), Some(0));
    assert_eq!(status(&["syn_dropped.pcap"]), Some(0));
    assert_eq!(status(&["--check", "tls13_ok.pcap"]), Some(0));
    assert_eq!(status(&["--check", "syn_dropped.pcap"]), Some(1));
    assert_eq!(status(&["README.md"]), Some(2));
    assert_eq!(status(&["no-such-file.pcap"]), Some(2));
    assert_eq!(status(&["--format", "yaml", "tls13_ok.pcap"]), Some(2));
}

/// Leaf certificates are parsed once per distinct DER and reused: captures analysed as one
/// (one summarising thread, one cache) must name the same certificates, with the same chain
/// lengths, as each capture analysed alone. The samples share one lab certificate; the public
/// corpus (`common::corpus_dir`, when present) brings many distinct ones.
#[test]
fn certificates_are_the_same_when_many_captures_share_one_analysis() {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(samples_dir())
        .unwrap()
        .filter_map(|e| Some(e.ok()?.path()))
        .collect();
    let test = "certificates_are_the_same_when_many_captures_share_one_analysis";
    let mut dirs = match common::corpus_public() {
        Ok(public) => vec![public],
        Err(why) => {
            common::narrowed(test, &format!("samples/ only: {why}"));
            Vec::new()
        }
    };
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                paths.push(p);
            }
        }
    }
    paths.retain(|p| {
        let n = p.to_string_lossy();
        n.ends_with(".pcap") || n.ends_with(".pcapng") || n.ends_with(".cap")
    });
    paths.sort();
    let certs = |v: &Value| -> Vec<(u64, Value)> {
        v["connections"]
            .as_array()
            .map(|a| a.as_slice())
            .unwrap_or_default()
            .iter()
            .filter(|c| !c["certificate"].is_null())
            .map(|c| (c["first_frame"].as_u64().unwrap(), c["certificate"].clone()))
            .collect()
    };
    let mut inputs = Vec::new();
    let mut alone = Vec::new();
    for p in &paths {
        let p = p.to_string_lossy().into_owned();
        let out = Command::new(env!("CARGO_BIN_EXE_tlsdiag"))
            .args(["--format", "json", "--quiet", &p])
            .output()
            .unwrap();
        let Ok(v) = serde_json::from_slice::<Value>(&out.stdout) else {
            continue;
        };
        let c = certs(&v);
        if out.status.success() && !c.is_empty() {
            inputs.push(p);
            alone.push(c);
        }
    }
    let all = run(&inputs, &["--quiet".to_string()]);
    let mut together: Vec<Vec<(u64, Value)>> = vec![Vec::new(); inputs.len()];
    for c in all["connections"].as_array().unwrap() {
        if !c["certificate"].is_null() {
            let file = c["file"].as_u64().unwrap() as usize;
            together[file].push((c["first_frame"].as_u64().unwrap(), c["certificate"].clone()));
        }
    }
    for (i, n) in inputs.iter().enumerate() {
        assert_eq!(together[i], alone[i], "{n}");
    }
    let distinct: std::collections::BTreeSet<String> =
        alone.iter().flatten().map(|(_, c)| c.to_string()).collect();
    eprintln!(
        "{} captures, {} distinct certificates",
        inputs.len(),
        distinct.len()
    );
}

/// The terminal report explains a bounded number of problems (verdict, server) too: the first
/// ones met, in connection order, and counts the connections of the others.
#[test]
fn text_explains_a_bounded_number_of_problems() {
    use tlsdiag::report::{render, Format, RenderOptions};
    let path = samples_dir().join("mixed.pcap").display().to_string();
    let r = tlsdiag::analyze(std::slice::from_ref(&path), &tlsdiag::Options::default())
        .expect("analyse");
    let o = RenderOptions {
        max_problems: 2,
        ..Default::default()
    };
    let text = render(&r, Format::Text, &o);
    let explained: Vec<u64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("  stream "))
        .map(|l| {
            l.split(' ')
                .next()
                .and_then(|n| n.parse().ok())
                .expect("stream")
        })
        .collect();
    let failed: Vec<_> = r
        .connections()
        .map(|c| c.expect("stored connection"))
        .filter(|c| c.verdict.is_failure())
        .collect();
    let problem = |c: &tlsdiag::model::Connection| (c.verdict, c.server_ip.clone(), c.server_port);
    let mut first_two = Vec::new();
    for c in &failed {
        if first_two.len() < 2 && !first_two.contains(&problem(c)) {
            first_two.push(problem(c));
        }
    }
    let expected: Vec<u64> = failed
        .iter()
        .filter(|c| first_two.contains(&problem(c)))
        .map(|c| c.stream)
        .collect();
    assert!(failed.len() > expected.len());
    assert_eq!(explained, expected);
    let note = format!(
        "... and {} more connection(s) with other verdicts or servers than the 2 explained",
        failed.len() - expected.len()
    );
    assert!(text.contains(&note), "{note}\n{text}");
}
