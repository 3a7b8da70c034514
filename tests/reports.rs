//! Reports people paste into tickets: redaction leaves nothing of the original addresses and
//! names in any format, and hostile strings from a capture cannot inject terminal escapes,
//! break a Markdown table or leave JSON.
//!
//! The hostile capture is hand-built (no real TLS stack puts escape sequences in an SNI): a
//! TCP handshake, a ClientHello whose SNI carries an ANSI escape, pipes, backticks and a
//! newline, and a server that answers with equally hostile bytes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use std::path::Path;
use std::process::Command;

mod common;
use common::packets::{Conv, ACK, PSH, SYN};
use common::pcap::{Pcap, LINKTYPE_RAW};
use common::tls::client_hello;

fn run(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_tlsdiag"))
        .args(args)
        .output()
        .expect("run tlsdiag");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// `needle` occurs in `hay` as a whole address token (not inside a longer number).
fn contains_token(hay: &str, needle: &str) -> bool {
    let v6 = needle.contains(':');
    let tok = |c: char| {
        if v6 {
            c.is_ascii_hexdigit() || c == '.' || c == ':'
        } else {
            c.is_ascii_digit() || c == '.'
        }
    };
    hay.match_indices(needle).any(|(i, _)| {
        let before = hay[..i].chars().next_back().is_none_or(|c| !tok(c));
        let after = hay[i + needle.len()..]
            .chars()
            .next()
            .is_none_or(|c| !tok(c));
        before && after
    })
}

/// The addresses and names a capture's plain report shows.
fn secrets_of(path: &str) -> Vec<String> {
    let plain: Value = serde_json::from_str(&run(&["--format", "json", path])).expect("json");
    let mut secrets: Vec<String> = Vec::new();
    for c in plain["connections"].as_array().expect("connections") {
        for k in ["client_ip", "server_ip", "sni"] {
            if let Some(s) = c[k].as_str() {
                secrets.push(s.to_string());
            }
        }
        if let Some(r) = c["icmp"]["reporter"].as_str() {
            secrets.push(r.to_string());
        }
        for n in c["certificate"]["dns_names"]
            .as_array()
            .into_iter()
            .flatten()
        {
            secrets.push(n.as_str().unwrap_or_default().to_string());
        }
    }
    secrets.sort();
    secrets.dedup();
    secrets
}

/// Every format says whether it is redacted: JSON at the top level (NDJSON on its summary
/// line), text and Markdown in a line of their own.
fn says_redacted(out: &str, format: &str, redacted: bool) {
    let marked = match format {
        "json" => {
            let v: Value = serde_json::from_str(out).expect("json");
            v["redacted"].as_bool().expect("redacted: a boolean")
        }
        "ndjson" => {
            let last = out.lines().last().expect("a summary line");
            let v: Value = serde_json::from_str(last).expect("json");
            v["redacted"].as_bool().expect("redacted: a boolean")
        }
        _ => out.lines().any(|l| l.starts_with("Redacted: addresses")),
    };
    assert_eq!(marked, redacted, "--format {format}:\n{out}");
}

#[test]
fn redaction_leaves_no_address_or_name_in_any_format() {
    for name in [
        "mixed.pcap",
        "icmp6_admin_prohibited.pcap",
        "tls12_ok.pcap",
        "cleartext.pcap",
    ] {
        let path = common::samples_dir().join(name).display().to_string();
        let secrets = secrets_of(&path);
        assert!(!secrets.is_empty(), "{name}: nothing to redact?");
        // The check can fail: without --redact the addresses are there.
        let shown = run(&["--format", "markdown", "--all", &path]);
        assert!(secrets.iter().any(|s| contains_token(&shown, s)));
        for format in ["text", "json", "ndjson", "markdown"] {
            let out = run(&[
                "--format",
                format,
                "--all",
                "--timeline",
                "--redact",
                "--redact-key",
                "k",
                &path,
            ]);
            for s in &secrets {
                assert!(
                    !contains_token(&out, s),
                    "{name} --format {format} --redact still shows {s}"
                );
            }
            assert!(
                !shows_name(&out, name),
                "{name} --format {format}: file path"
            );
            assert!(out.contains("capture 0"), "{name} --format {format}");
            says_redacted(&out, format, true);
        }
        says_redacted(&run(&["--format", "json", &path]), "json", false);
        // Same key, same mapping; the subnet structure survives.
        let a = run(&["--format", "json", "--redact", "--redact-key", "k", &path]);
        let b = run(&["--format", "json", "--redact", "--redact-key", "k", &path]);
        assert_eq!(a, b);
    }
}

/// Names that only a key log reveals (the TLS 1.3 certificates, the client's certificate) are
/// redacted too, in the words that cite them as well as in the fields.
#[test]
fn redaction_hides_the_names_decryption_reveals() {
    let sample = common::samples_dir().join("tls13_mtls_untrusted_client_cert.pcap");
    let keys = common::samples_dir().join("tls13_mtls_untrusted_client_cert.keys");
    let (path, keys) = (sample.display().to_string(), keys.display().to_string());
    let names = ["gateway.test", "rogue CA", "backend.test", "10.99."];
    // The check can fail: decrypted and not redacted, the names are there.
    let shown = run(&["--format", "text", "--all", "--keylog", &keys, &path]);
    assert!(names.iter().all(|n| shown.contains(n)), "{shown}");
    for format in ["text", "json", "ndjson", "markdown"] {
        let args = ["--format", format, "--all", "--timeline", "--keylog", &keys];
        let out = run(&[&args[..], &["--redact", &path]].concat());
        for n in names {
            assert!(
                !out.contains(n),
                "--format {format} --redact still shows {n}"
            );
        }
    }
}

/// Rotated files (`tcpdump -C`) with an address in their names, given out of time order: the
/// warning that names them, the capture list and every format say `capture N` instead.
#[test]
fn redaction_hides_file_paths_in_the_list_and_in_warnings() {
    let dir = std::env::temp_dir().join(format!("tlsdiag-redact-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let base = dir.join("acme-10.99.2.2.pcap").display().to_string();
    let (first, second) = (format!("{base}10"), format!("{base}2"));
    // mixed starts after tls12_ok: given first (glob order), it is out of time order.
    std::fs::copy(common::samples_dir().join("mixed.pcap"), &first).expect("copy");
    std::fs::copy(common::samples_dir().join("tls12_ok.pcap"), &second).expect("copy");
    let plain = run(&["--format", "json", &first, &second]);
    assert!(plain.contains("out of time order"), "{plain}");
    for format in ["text", "json", "ndjson", "markdown"] {
        let out = run(&["-q", "--format", format, "--redact", &first, &second]);
        assert!(!out.contains("acme"), "--format {format}:\n{out}");
        assert!(
            !out.contains(&*dir.display().to_string()),
            "--format {format}"
        );
        if format != "ndjson" {
            assert!(
                out.contains("capture 0 before capture 1"),
                "--format {format}:\n{out}"
            );
        }
    }
    std::fs::remove_dir_all(&dir).expect("clean up");
}

/// `compare --redact` over every client/server pair of samples: no address, name or file path
/// in any format; the same address is the same redacted address on both sides.
#[test]
fn compare_redaction_leaves_no_address_name_or_path_in_any_format() {
    let mut pairs = 0;
    let mut dir: Vec<_> = std::fs::read_dir(common::samples_dir())
        .expect("samples")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    dir.sort();
    for client in dir {
        let name = client.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let Some(stem) = name.strip_suffix(".client.pcap") else {
            continue;
        };
        let server = client.with_file_name(format!("{stem}.server.pcap"));
        let (c, s) = (client.display().to_string(), server.display().to_string());
        let mut secrets = secrets_of(&c);
        secrets.extend(secrets_of(&s));
        assert!(!secrets.is_empty(), "{stem}: nothing to redact?");
        let plain = run(&["compare", "--format", "markdown", "--all", &c, &s]);
        assert!(secrets.iter().any(|x| contains_token(&plain, x)), "{stem}");
        let files = [name.to_string(), format!("{stem}.server.pcap")];
        assert!(files.iter().all(|f| shows_name(&plain, f)), "{stem}");
        for format in ["text", "json", "ndjson", "markdown"] {
            let args = [
                "compare",
                "-f",
                format,
                "--all",
                "--redact",
                "--redact-key",
                "k",
            ];
            let out = run(&[&args[..], &[&c, &s]].concat());
            for x in &secrets {
                assert!(!contains_token(&out, x), "{stem} -f {format} shows {x}");
            }
            for f in &files {
                assert!(!shows_name(&out, f), "{stem} -f {format}: {f}\n{out}");
            }
            says_redacted(&out, format, true);
        }
        says_redacted(&run(&["compare", "-f", "json", &c, &s]), "json", false);
        pairs += same_mapping_on_both_sides(&c, &s);
    }
    assert!(pairs >= 5, "{pairs} pairs without NAT");
}

/// `name` appears in `out`, as is or escaped for Markdown.
fn shows_name(out: &str, name: &str) -> bool {
    out.contains(name) || out.contains(&name.replace('_', "\\_"))
}

/// With a random key, a pair's server address (outside NAT) is still one address on both
/// sides: both captures share one mapping. Returns the pairs checked.
fn same_mapping_on_both_sides(c: &str, s: &str) -> usize {
    let json = |args: &[&str]| -> Value {
        serde_json::from_str(&run(&[&["compare", "-f", "json"], args].concat())).expect("json")
    };
    let (plain, redacted) = (json(&[c, s]), json(&["--redact", c, s]));
    let mut checked = 0;
    for (p, r) in plain["pairs"]
        .as_array()
        .into_iter()
        .flatten()
        .zip(redacted["pairs"].as_array().into_iter().flatten())
    {
        let server = |v: &Value, side: &str| v[side]["server"].as_str().map(str::to_string);
        if p["nat"].is_null() && server(p, "server_side").is_some() {
            assert_eq!(server(p, "client_side"), server(p, "server_side"));
            assert_eq!(server(r, "client_side"), server(r, "server_side"), "{c}");
            assert_ne!(server(r, "client_side"), server(p, "client_side"), "{c}");
            checked += 1;
        }
    }
    checked
}

#[test]
fn hostile_strings_cannot_escape_their_field() {
    // Seen from the client: the server's packets arrive three hops away.
    let conv = Conv {
        client: [10, 1, 1, 1],
        server: [10, 2, 2, 2],
        ttl: [64, 61],
        ..Conv::default()
    };
    let sni = b"evil\x1b[31m|`x`|\n<b>#*_[a](b).test";
    let ch = client_hello(sni);
    let answer = b"HTTP/1.1 400 \x1b]0;owned\x07|`pwn`|\r\n<script>\r\n\r\n";
    let packets = vec![
        conv.seg(true, 100, 0, SYN, b""),
        conv.seg(false, 500, 101, SYN | ACK, b""),
        conv.seg(true, 101, 501, ACK, b""),
        conv.seg(true, 101, 501, ACK | PSH, &ch),
        conv.seg(false, 501, 101 + ch.len() as u32, ACK | PSH, answer),
    ];
    let dir = std::env::temp_dir().join(format!("tlsdiag-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("hostile.pcap");
    std::fs::write(&file, Pcap::of(LINKTYPE_RAW, &packets)).expect("write capture");
    let path = file.display().to_string();

    let json: Value = serde_json::from_str(&run(&["--format", "json", &path])).expect("valid JSON");
    let c = &json["connections"][0];
    assert_eq!(c["verdict"], "not_tls");
    let shown_sni = c["sni"].as_str().expect("sni");
    assert!(
        !shown_sni.contains('\u{1b}') && !shown_sni.contains('\n'),
        "{shown_sni:?}"
    );
    let first = c["server_first_bytes"].as_str().expect("server bytes");
    assert!(
        first.starts_with("HTTP/1.1 400 \\x1b]0;owned\\x07"),
        "{first}"
    );

    for format in ["text", "markdown", "ndjson"] {
        let out = run(&["--format", format, "--all", "--timeline", &path]);
        assert!(!out.contains('\u{1b}'), "{format}: raw ESC in output");
        assert!(!out.contains('\u{7}'), "{format}: raw BEL in output");
        assert!(!out.contains("<script>") || format == "ndjson" || format == "text");
    }
    // Every Markdown table row keeps its column count: no pipe or newline from the capture
    // splits a cell.
    let md = run(&["--format", "markdown", "--all", &path]);
    let mut columns = None;
    for line in md.lines() {
        if line.starts_with('|') {
            let cells = line.replace("\\|", "").matches('|').count();
            if line.starts_with("|---") || line.starts_with("|:") {
                columns = Some(cells);
            } else if let Some(n) = columns {
                assert_eq!(cells, n, "broken table row: {line}");
            }
        } else {
            columns = None;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Golden outputs: the text, Markdown and JSON reports of a few samples, byte for byte, with
/// only the tool version blanked. `UPDATE_GOLDEN=1 cargo test --test reports` rewrites them
/// after an intended change; the diff then shows what users will see differently.
#[test]
fn golden_reports_over_samples() {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let version = env!("CARGO_PKG_VERSION");
    let mut problems = Vec::new();
    for sample in [
        "clienthello_dropped.client.pcap",
        "clienthello_dropped.server.pcap",
        "mtu_blackhole.server.pcap",
        "mixed.pcap",
    ] {
        for (format, ext) in [("text", "txt"), ("markdown", "md"), ("json", "json")] {
            let out = Command::new(env!("CARGO_BIN_EXE_tlsdiag"))
                .current_dir(common::samples_dir())
                .args(["--format", format, "--all", "--timeline", sample])
                .env("NO_COLOR", "1")
                .output()
                .expect("run tlsdiag");
            assert!(out.status.success());
            let text = String::from_utf8(out.stdout)
                .expect("utf-8")
                .replace(&format!("tlsdiag {version}"), "tlsdiag VERSION")
                .replace(
                    &format!("\"version\": \"{version}\""),
                    "\"version\": \"VERSION\"",
                );
            let file = golden.join(format!("{sample}.{ext}"));
            if update {
                std::fs::write(&file, &text).expect("write golden");
                continue;
            }
            match std::fs::read_to_string(&file) {
                Ok(want) if want == text => {}
                Ok(want) => {
                    let line = want
                        .lines()
                        .zip(text.lines())
                        .position(|(a, b)| a != b)
                        .map_or(want.lines().count().min(text.lines().count()), |i| i);
                    problems.push(format!(
                        "{sample} --format {format}: differs from tests/golden from line {}",
                        line + 1
                    ));
                }
                Err(e) => problems.push(format!("{}: {e}", file.display())),
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{}\n(UPDATE_GOLDEN=1 rewrites the golden files after an intended change)",
        problems.join("\n")
    );
}
