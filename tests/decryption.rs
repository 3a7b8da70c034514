//! Decryption, certificates and secrets, end to end on the samples recorded with key logs
//! (`samples/X.keys` beside `samples/X.pcap`, and a pcapng holding a Decryption Secrets Block).
//!
//! What these tests prove:
//! - With `--keylog` (and with the DSB pcapng and no key file), the alert tlsdiag reports is the
//!   one tshark names with the same keys at that frame (sender, description, encrypted), the
//!   server certificate (subject, issuer, validity, names, chain length) and the client
//!   certificate (requested, sent, subject, issuer) are tshark's, and `decrypted` agrees. The
//!   facts are read from `samples/expected.json` (`with_keys`, written by `gen_expected.py`
//!   from tshark), never written here.
//! - Without keys, no TLS 1.3 mutual-TLS rejection is `tls_ok`: it is an encrypted, inferred
//!   `server_alert`, and the TLS 1.3 certificate stays hidden.
//! - Certificate problems (`expired`, `name_mismatch`, `incomplete_chain`, `self_signed`),
//!   derived here from tshark's certificate facts and the capture's time, are in JSON and
//!   NDJSON and named by text and Markdown.
//! - No secret and no client random of a key log appears in any output format, `--check`, or
//!   standard error, whether the key log is right, garbled (bad hex, wrong secrets, random
//!   bytes) or carried by the capture; a malformed line is reported by its number only.
//! - Wrong keys leave the diagnosis as it is without keys, with `decrypted` false and a note
//!   in `uncertain[]`; a key log for other connections says it holds no secrets for this one;
//!   a key log short of one secret (the server's application secret, the client's handshake
//!   secret) names it, leaves that alert unnamed and the client certificate's `sent` unknown.
//! - Keyed samples truncated and bit-flipped at every 7th byte, and key logs of 200,000
//!   garbage lines or random bytes, go through the library with no panic and in bounded time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tlsdiag::report::{render, Format, RenderOptions};

mod common;
use common::{bin, sample, samples_dir, Rng, Scratch};

// ---------------------------------------------------------------------------------------------
// Samples, key logs and runs
// ---------------------------------------------------------------------------------------------

/// `samples/expected.json`.
fn expected() -> Value {
    let text = std::fs::read_to_string(samples_dir().join("expected.json")).expect("expected");
    serde_json::from_str(&text).expect("expected.json is JSON")
}

/// The files with tshark's `with_keys` facts: (name, expectations), at least the eleven of
/// issue 20 (the DSB pcapng among them).
fn keyed() -> Vec<(String, Value)> {
    let files = expected()["files"].as_object().expect("files").clone();
    let out: Vec<(String, Value)> = files
        .into_iter()
        .filter(|(_, v)| v.get("with_keys").is_some())
        .collect();
    assert!(out.len() >= 11, "only {} keyed samples", out.len());
    assert!(out.iter().any(|(n, _)| n.ends_with(".dsb.pcapng")));
    out
}

/// The arguments that give `name` its keys: `--keylog X.keys`, nothing for a DSB pcapng.
fn key_args(exp: &Value) -> Vec<String> {
    let keylog = exp["keylog"].as_str().expect("keylog");
    if keylog.ends_with(".keys") {
        vec!["--keylog".into(), sample(keylog)]
    } else {
        assert!(keylog.contains("Decryption Secrets Block"), "{keylog}");
        Vec::new()
    }
}

/// Runs the binary; (status, stdout, stderr).
fn run(args: &[String]) -> (i32, String, String) {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    bin(&refs)
}

/// The JSON report of `file` with `extra` arguments (status 0 required).
fn json(file: &str, extra: &[String]) -> Value {
    let mut args = vec!["--format".into(), "json".into(), "--all".into()];
    args.extend_from_slice(extra);
    args.push(sample(file));
    let (status, out, err) = run(&args);
    assert_eq!(status, 0, "{args:?}: {err}");
    serde_json::from_str(&out).expect("JSON")
}

/// The connection of `report` with tshark's `stream` number.
fn conn<'a>(report: &'a Value, stream: &Value, file: &str) -> &'a Value {
    report["connections"]
        .as_array()
        .expect("connections")
        .iter()
        .find(|c| &c["stream"] == stream)
        .unwrap_or_else(|| panic!("{file}: no stream {stream}"))
}

/// One key log line: (label, client random, secret), as written.
type KeyLine = (String, String, String);

/// The key log lines of a key file (comments and other lines skipped).
fn key_lines(text: &str) -> Vec<KeyLine> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 3).then(|| (f[0].into(), f[1].into(), f[2].into()))
        })
        .collect()
}

/// `hex` with one hex digit changed (the sixth): a secret of the right length that is wrong.
fn flip(hex: &str) -> String {
    let mut b = hex.as_bytes().to_vec();
    b[5] = if b[5] == b'0' { b'1' } else { b'0' };
    String::from_utf8(b).unwrap()
}

/// Every `samples/*.keys`: (capture name, key file path, text).
fn key_files() -> Vec<(String, PathBuf, String)> {
    let mut out: Vec<(String, PathBuf, String)> = std::fs::read_dir(samples_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "keys"))
        .map(|p| {
            let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&p).unwrap();
            (format!("{stem}.pcap"), p, text)
        })
        .collect();
    out.sort();
    assert!(out.len() >= 10, "only {} key files", out.len());
    out
}

// ---------------------------------------------------------------------------------------------
// 1. With the keys, tshark's alerts and certificates
// ---------------------------------------------------------------------------------------------

/// tlsdiag's alert is the one tshark names at the same frame: same sender, description and
/// encryption, named (not inferred), and decrypted when it was encrypted. Returns whether an
/// alert was compared.
fn alert_matches(file: &str, want: &Value, got: &Value) -> bool {
    let alerts = want["alerts"].as_array().expect("alerts");
    let alert = &got["alert"];
    if alerts.is_empty() {
        return false;
    }
    assert!(
        alert.is_object(),
        "{file}: tshark names {alerts:?}, tlsdiag none"
    );
    let t = alerts
        .iter()
        .find(|a| a["frame"] == alert["frame"])
        .unwrap_or_else(|| panic!("{file}: tlsdiag's alert {alert} is at no frame of {alerts:?}"));
    for key in ["sender", "description", "encrypted"] {
        assert_eq!(
            alert[key], t[key],
            "{file}: alert {key}: {alert} vs tshark {t}"
        );
    }
    assert_eq!(alert["inferred"], false, "{file}: {alert}");
    assert_eq!(alert["decrypted"], t["encrypted"], "{file}: {alert}");
    true
}

/// The server certificate is tshark's: subject, issuer, validity, DNS names, chain length.
fn certificate_matches(file: &str, want: &Value, got: &Value) {
    let cert = &got["certificate"];
    assert!(cert.is_object(), "{file}: no certificate in {got}");
    for (mine, theirs) in [
        ("subject", "certificate_subject"),
        ("issuer", "certificate_issuer"),
        ("not_before", "not_before"),
        ("not_after", "not_after"),
        ("dns_names", "certificate_dns_names"),
        ("chain_length", "server_certificate_count"),
    ] {
        assert_eq!(cert[mine], want[theirs], "{file}: certificate {mine}");
    }
}

/// The client certificate is tshark's: requested, sent, and the sent one's subject and issuer.
/// tlsdiag's `null` (TLS 1.2, nothing asked) is neither requested nor sent.
fn client_certificate_matches(file: &str, want: &Value, got: &Value) {
    let cc = &got["client_certificate"];
    let known = |k: &str| {
        cc.is_object()
            .then(|| cc[k].as_bool().expect("known with the keys"))
    };
    let requested = known("requested").unwrap_or(false);
    let sent = known("sent").unwrap_or(false);
    assert_eq!(
        Some(requested),
        want["client_certificate_requested"].as_bool(),
        "{file}: requested: {cc}"
    );
    assert_eq!(
        Some(sent),
        want["client_certificate_sent"].as_bool(),
        "{file}: sent: {cc}"
    );
    if sent {
        assert_eq!(cc["subject"], want["client_certificate_subject"], "{file}");
        assert_eq!(cc["issuer"], want["client_certificate_issuer"], "{file}");
    }
}

/// The ladder's event at `frame` ("" when the ladder has none).
fn ladder_event<'a>(c: &'a Value, frame: &Value) -> &'a str {
    c["timeline"]
        .as_array()
        .and_then(|t| t.iter().find(|e| &e["frame"] == frame))
        .and_then(|e| e["event"].as_str())
        .unwrap_or_default()
}

#[test]
fn with_the_keys_every_alert_and_certificate_is_as_tshark_names_it() {
    let (mut alerts, mut tls13_certs, mut conns) = (0, 0, 0);
    for (file, exp) in keyed() {
        let report = json(&file, &key_args(&exp));
        for want in exp["with_keys"].as_array().expect("with_keys") {
            let got = conn(&report, &want["stream"], &file);
            assert_eq!(got["decrypted"], want["decrypted"], "{file}: decrypted");
            if want["decrypted"] == true {
                let u = got["uncertain"].to_string();
                assert!(!u.contains("key log"), "{file}: the right keys noted: {u}");
            }
            if alert_matches(&file, want, got) {
                alerts += 1;
                // The ladder names the alert that ended the handshake at its frame too.
                let name = got["alert"]["description"].as_str().unwrap_or_default();
                let event = ladder_event(got, &got["alert"]["frame"]);
                let decisive = got["verdict"]
                    .as_str()
                    .is_some_and(|v| v.ends_with("_alert"));
                assert!(
                    !decisive || event.contains(&format!("Alert fatal {name}")),
                    "{file}: frame {} reads {event:?}",
                    got["alert"]["frame"]
                );
            }
            let tls13 = got["tls_version"] == "TLSv1.3";
            if !tls13 || want["decrypted"] == true {
                certificate_matches(&file, want, got);
                tls13_certs += usize::from(tls13);
            }
            client_certificate_matches(&file, want, got);
            conns += 1;
        }
    }
    assert!(conns >= 11, "{conns} connections");
    assert!(alerts >= 11, "{alerts} alerts compared");
    assert!(
        tls13_certs >= 6,
        "{tls13_certs} TLS 1.3 certificates compared"
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Without keys, the mutual-TLS rejections
// ---------------------------------------------------------------------------------------------

/// The samples where tshark, with the keys, saw the server ask for a client certificate and
/// then send an alert, encrypted (`true`: TLS 1.3's shape) or in clear.
fn client_cert_refusals(encrypted: bool) -> Vec<(String, Value)> {
    keyed()
        .into_iter()
        .filter(|(name, _)| name.ends_with(".pcap"))
        .filter(|(_, exp)| {
            exp["with_keys"].as_array().unwrap().iter().any(|w| {
                w["client_certificate_requested"] == true
                    && w["alerts"].as_array().unwrap().iter().any(|a| {
                        a["sender"] == "server" && a["encrypted"].as_bool() == Some(encrypted)
                    })
            })
        })
        .collect()
}

/// A server that asked for a client certificate and refused in clear (TLS 1.2): the
/// explanation and the next step say what the client sent, as tshark read it.
#[test]
fn a_clear_refusal_of_the_client_certificate_says_what_was_sent() {
    let refusals = client_cert_refusals(false);
    assert!(refusals.len() >= 2, "{} clear refusals", refusals.len());
    for (file, exp) in refusals {
        let report = json(&file, &[]);
        for want in exp["with_keys"].as_array().unwrap() {
            let c = conn(&report, &want["stream"], &file);
            assert_eq!(c["verdict"], "server_alert", "{file}");
            let (e, next) = (
                c["explanation"].as_str().unwrap(),
                c["next_step"].as_str().unwrap(),
            );
            assert!(
                e.contains("it had asked for a client certificate"),
                "{file}: {e}"
            );
            if want["client_certificate_sent"] == true {
                let issuer = c["client_certificate"]["issuer"].as_str().unwrap();
                assert!(
                    next.contains(&format!("issued by {issuer}")),
                    "{file}: {next}"
                );
            } else {
                assert!(next.contains("the client sent none"), "{file}: {next}");
            }
        }
    }
}

/// The TLS 1.3 samples where tshark, with the keys, saw the server ask for a client
/// certificate and then send an encrypted alert: the mutual-TLS rejections. The DSB pcapng
/// carries its keys, so it is not among them.
fn mtls_rejections() -> Vec<(String, Value)> {
    let out = client_cert_refusals(true);
    assert!(out.len() >= 2, "{} mutual-TLS rejections", out.len());
    out
}

#[test]
fn without_keys_no_tls13_mutual_tls_rejection_is_tls_ok() {
    for (file, exp) in mtls_rejections() {
        let report = json(&file, &[]);
        for want in exp["with_keys"].as_array().unwrap() {
            let c = conn(&report, &want["stream"], &file);
            assert_eq!(c["tls_version"], "TLSv1.3", "{file}");
            assert_eq!(c["verdict"], "server_alert", "{file}: {c}");
            let a = &c["alert"];
            assert_eq!(a["sender"], "server", "{file}: {a}");
            assert_eq!(a["encrypted"], true, "{file}: {a}");
            assert_eq!(a["inferred"], true, "{file}: {a}");
            assert_eq!(a["decrypted"], false, "{file}: {a}");
            assert!(
                a["description"].is_null(),
                "{file}: named without keys: {a}"
            );
            // tshark's alert frame, which tlsdiag saw as an alert-sized record.
            let frames: Vec<&Value> = want["alerts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| &a["frame"])
                .collect();
            assert!(
                frames.contains(&&a["frame"]),
                "{file}: {a} not at {frames:?}"
            );
            // The ladder keeps the record and says what its size suggests.
            assert!(
                ladder_event(c, &a["frame"]).contains("alert-sized encrypted record"),
                "{file}: {}",
                c["timeline"]
            );
            // TLS 1.3 hides the certificates and the CertificateRequest.
            assert_eq!(c["decrypted"], false, "{file}");
            assert!(c["certificate"].is_null(), "{file}: {}", c["certificate"]);
            assert!(c["client_certificate"].is_null(), "{file}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Certificate problems in every format
// ---------------------------------------------------------------------------------------------

/// `sni` is covered by the DNS name `name` (RFC 6125: a wildcard stands for one whole label).
fn covers(name: &str, sni: &str) -> bool {
    let (name, sni) = (name.to_ascii_lowercase(), sni.to_ascii_lowercase());
    match name.strip_prefix("*.") {
        Some(rest) => sni
            .split_once('.')
            .is_some_and(|(label, tail)| !label.is_empty() && tail == rest),
        None => name == sni,
    }
}

/// The problems tshark's certificate facts imply for a capture taken at `when` (RFC 3339,
/// compared as text: both are UTC with the same layout up to the seconds).
fn implied_problems(want: &Value, sni: &str, when: &str) -> BTreeSet<&'static str> {
    let s = |k: &str| want[k].as_str().unwrap_or_default().to_string();
    let when = &when[..19];
    let mut out = BTreeSet::new();
    if s("not_after")[..19] < *when {
        out.insert("expired");
    }
    if s("not_before")[..19] > *when {
        out.insert("not_yet_valid");
    }
    let names = want["certificate_dns_names"].as_array().unwrap();
    if !names.iter().any(|n| covers(n.as_str().unwrap(), sni)) {
        out.insert("name_mismatch");
    }
    let self_signed = s("certificate_subject") == s("certificate_issuer");
    if self_signed {
        out.insert("self_signed");
    } else if want["server_certificate_count"] == 1 {
        out.insert("incomplete_chain");
    }
    out
}

fn codes(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .expect("problems[]")
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect()
}

/// Text and Markdown (in `--format`'s own escaping) list every problem code, and name the
/// facts behind expired and name_mismatch.
fn shown(file: &str, format: &str, out: &str, problems: &BTreeSet<&str>, want: &Value, sni: &str) {
    let (label, esc): (&str, fn(&str) -> String) = if format == "text" {
        ("Certificate problems: ", |s| s.to_string())
    } else {
        ("**Certificate problems:** ", |s| {
            s.replace('_', "\\_").replace('*', "\\*")
        })
    };
    let line = out
        .lines()
        .find_map(|l| l.split_once(label).map(|(_, rest)| rest))
        .unwrap_or_else(|| panic!("{file} --format {format}: no problems line:\n{out}"));
    let listed: BTreeSet<String> = line.split(", ").map(str::to_string).collect();
    let wanted: BTreeSet<String> = problems.iter().map(|p| esc(p)).collect();
    assert_eq!(listed, wanted, "{file} --format {format}");
    if problems.contains("expired") {
        let day = &want["not_after"].as_str().unwrap()[..10];
        assert!(
            out.contains(&format!("expired on {day}")),
            "{file} {format}:\n{out}"
        );
    }
    if problems.contains("name_mismatch") {
        let name = esc(want["certificate_dns_names"][0].as_str().unwrap());
        assert!(
            out.contains(&format!("not the SNI {}", esc(sni))),
            "{file} {format}:\n{out}"
        );
        assert!(out.contains(&name), "{file} {format}:\n{out}");
    }
}

/// The problem codes of the connection `stream` in the NDJSON report of `file`.
fn ndjson_problems(file: &str, keys: &[String], stream: &Value) -> BTreeSet<String> {
    let args = [
        &["--format".into(), "ndjson".into(), "--all".into()],
        keys,
        &[sample(file)],
    ]
    .concat();
    let (status, nd, err) = run(&args);
    assert_eq!(status, 0, "{err}");
    let line: Value = nd
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| &v["stream"] == stream)
        .expect("the connection's NDJSON line");
    codes(&line["certificate"]["problems"])
}

#[test]
fn certificate_problems_show_in_every_format() {
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for (file, exp) in keyed() {
        let keys = key_args(&exp);
        let report = json(&file, &keys);
        let when = report["summary"]["first_time"]
            .as_str()
            .unwrap()
            .to_string();
        let want = &exp["with_keys"][0];
        let c = conn(&report, &want["stream"], &file);
        if c["certificate"].is_null() {
            continue;
        }
        let sni = c["sni"].as_str().unwrap().to_string();
        let problems = implied_problems(want, &sni, &when);
        let got = codes(&c["certificate"]["problems"]);
        let expect: BTreeSet<String> = problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(got, expect, "{file}: JSON problems");
        assert_eq!(
            ndjson_problems(&file, &keys, &want["stream"]),
            expect,
            "{file}: NDJSON"
        );
        for format in ["text", "markdown"] {
            let args = [
                vec!["--format".into(), format.into(), "--all".into()],
                keys.clone(),
                vec![sample(&file)],
            ]
            .concat();
            let (status, out, err) = run(&args);
            assert_eq!(status, 0, "{err}");
            shown(&file, format, &out, &problems, want, &sni);
        }
        seen.extend(got.into_iter().map(|p| format!("{file}: {p}")));
    }
    for must in [
        "tls12_expired.pcap: expired",
        "tls12_wrong_name.pcap: name_mismatch",
        "leaf_only.pcap: incomplete_chain",
        "leaf_only_tls13.pcap: incomplete_chain",
        "tls13_client_rejects_expired.pcap: expired",
        "tls13_client_rejects_name.pcap: name_mismatch",
    ] {
        assert!(seen.contains(must), "{must} not among {seen:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Secrets stay secret
// ---------------------------------------------------------------------------------------------

/// Separates stdout from stderr in what [`every_output`] returns.
const STDERR: &str = "\n--- stderr ---\n";

/// Every way of running the binary on `capture` with `keys`: text with `--all --timeline`,
/// JSON (plain and redacted), NDJSON, Markdown, `--check`. Returns each run's arguments and stdout + stderr.
fn every_output(capture: &str, keys: &[String]) -> Vec<(String, String)> {
    let runs: [&[&str]; 6] = [
        &["--all", "--timeline"],
        &["--format", "json", "--all"],
        &["--format", "json", "--redact", "--all"],
        &["--format", "ndjson", "--all"],
        &["--format", "markdown", "--all", "--timeline"],
        &["--check", "--all"],
    ];
    runs.iter()
        .map(|r| {
            let mut args: Vec<String> = r.iter().map(|s| s.to_string()).collect();
            args.extend_from_slice(keys);
            args.push(capture.to_string());
            let (status, out, err) = run(&args);
            assert!(status == 0 || status == 1, "{args:?}: {status} {err}");
            (format!("{args:?}"), format!("{out}\n{STDERR}\n{err}"))
        })
        .collect()
}

/// The strings no output may hold: every hex field of the key log lines (whole, lowercase),
/// their first 16 hex digits, and their first bytes as a Rust byte list would print them.
fn forbidden(lines: &[KeyLine]) -> Vec<String> {
    let mut out = Vec::new();
    for (_, random, secret) in lines {
        for hex in [random, secret] {
            let hex = hex.to_ascii_lowercase();
            out.push(hex[..16.min(hex.len())].to_string());
            let bytes: Vec<String> = (0..6)
                .filter_map(|i| hex.get(2 * i..2 * i + 2))
                .filter_map(|h| u8::from_str_radix(h, 16).ok())
                .map(|b| b.to_string())
                .collect();
            if bytes.len() == 6 {
                out.push(bytes.join(", "));
            }
            out.push(hex);
        }
    }
    out
}

fn assert_no_secret(outputs: &[(String, String)], secrets: &[String]) {
    for (args, out) in outputs {
        let out = out.to_ascii_lowercase();
        for s in secrets {
            assert!(
                !out.contains(s.as_str()),
                "{args} shows secret material {s}:\n{out}"
            );
        }
    }
}

/// A garbled key log from `lines`: a comment (line 1), a line with bad hex (line 2), each
/// line with a wrong secret, a line of random bytes. Returns it with its own forbidden lines
/// and the number of malformed lines.
fn garbled(lines: &[KeyLine], seed: u64) -> (Vec<u8>, Vec<KeyLine>) {
    let fallback = [(
        "CLIENT_RANDOM".to_string(),
        "ab".repeat(32),
        "cd".repeat(48),
    )];
    let lines = if lines.is_empty() {
        &fallback[..]
    } else {
        lines
    };
    let (label, random, secret) = &lines[0];
    let bad_hex = format!("{}g{}", &secret[..7], &secret[8..]);
    let mut text = format!("# garbled\n{label} {random} {bad_hex}\n");
    let mut secrets = vec![(label.clone(), random.clone(), bad_hex)];
    for (label, random, secret) in lines {
        let wrong = flip(secret);
        text.push_str(&format!("{label} {random} {wrong}\n"));
        secrets.push((label.clone(), random.clone(), wrong));
    }
    let mut bytes = text.into_bytes();
    bytes.push(0xff);
    bytes.extend(Rng(seed | 1).fill(300).into_iter().filter(|&b| b != b'\n'));
    bytes.push(b'\n');
    (bytes, secrets)
}

#[test]
fn no_secret_appears_in_any_output_or_warning() {
    let dir = Scratch::new("secrets");
    let mut runs = 0;
    for (i, (capture, path, text)) in key_files().into_iter().enumerate() {
        let lines = key_lines(&text);
        let mut secrets = forbidden(&lines);
        let keys = vec!["--keylog".to_string(), path.display().to_string()];
        let outputs = every_output(&sample(&capture), &keys);
        assert_no_secret(&outputs, &secrets);
        let (bytes, wrong) = garbled(&lines, i as u64);
        secrets.extend(forbidden(&wrong));
        let bad = dir.file(&format!("{i}.keys"), &bytes);
        let outputs = every_output(&sample(&capture), &["--keylog".into(), bad.clone()]);
        assert_no_secret(&outputs, &secrets);
        let note = format!(
            "{bad}: key log: 2 line(s) are not key log lines (the first is line 2); skipped"
        );
        for (args, out) in &outputs {
            let (stdout, stderr) = out.split_once(STDERR).unwrap();
            let (o, e) = (stdout.matches(&note).count(), stderr.matches(&note).count());
            assert!(
                o + e >= 1 && o <= 1 && e <= 1,
                "{args}: {o}+{e} notes {note:?}:\n{out}"
            );
            assert!(
                !out.contains("garbled"),
                "{args} echoes the key log:\n{out}"
            );
        }
        runs += 2 * outputs.len();
    }
    the_secrets_of_a_decryption_secrets_block_stay_secret();
    assert!(runs >= 100, "{runs} runs");
}

/// The secrets a pcapng carries in its Decryption Secrets Block appear in no output, whether
/// the capture is named or read from standard input.
fn the_secrets_of_a_decryption_secrets_block_stay_secret() {
    let dsb = "tls13_mtls_no_client_cert.dsb.pcapng";
    let text =
        std::fs::read_to_string(samples_dir().join("tls13_mtls_no_client_cert.keys")).unwrap();
    let raw = std::fs::read(samples_dir().join(dsb)).unwrap();
    let lines = key_lines(&text);
    let first = lines[0].2.as_bytes();
    assert!(
        raw.windows(first.len()).any(|w| w == first),
        "the DSB holds the key log"
    );
    assert_no_secret(&every_output(&sample(dsb), &[]), &forbidden(&lines));
    let piped = std::process::Command::new(env!("CARGO_BIN_EXE_tlsdiag"))
        .args(["--format", "ndjson", "-"])
        .stdin(std::fs::File::open(samples_dir().join(dsb)).unwrap())
        .output()
        .unwrap();
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&piped.stdout),
        String::from_utf8_lossy(&piped.stderr)
    );
    assert!(
        out.contains("certificate_required"),
        "the DSB read from stdin: {out}"
    );
    assert_no_secret(&[("the DSB on stdin".into(), out)], &forbidden(&lines));
}

// ---------------------------------------------------------------------------------------------
// 5. Wrong keys, keys for other connections
// ---------------------------------------------------------------------------------------------

/// The report without keys and with `keys`, for every connection: verdict, explanation and
/// alert the same; `decrypted` false; the note `note` in `uncertain[]` (and nowhere without keys).
fn same_as_without_keys(capture: &str, keys: &str, note: &str) {
    let plain = json(capture, &[]);
    let keyed = json(capture, &["--keylog".into(), keys.into()]);
    let (plain, keyed) = (&plain["connections"], &keyed["connections"]);
    assert_eq!(
        plain.as_array().unwrap().len(),
        keyed.as_array().unwrap().len()
    );
    for (p, k) in plain
        .as_array()
        .unwrap()
        .iter()
        .zip(keyed.as_array().unwrap())
    {
        for key in [
            "stream",
            "verdict",
            "explanation",
            "next_step",
            "alert",
            "certificate",
        ] {
            assert_eq!(p[key], k[key], "{capture}: {key} changed by {keys}");
        }
        assert_eq!(k["decrypted"], false, "{capture}");
        let says = |c: &Value| {
            c["uncertain"]
                .as_array()
                .unwrap()
                .iter()
                .any(|u| u.as_str().unwrap().contains(note))
        };
        assert!(
            says(k),
            "{capture} with {keys}: no {note:?} in {}",
            k["uncertain"]
        );
        assert!(!says(p), "{capture} without keys: {}", p["uncertain"]);
    }
}

/// The key files that hold secrets: (capture, its key log lines).
fn secret_key_files() -> Vec<(String, Vec<KeyLine>)> {
    let out: Vec<(String, Vec<KeyLine>)> = key_files()
        .into_iter()
        .map(|(capture, _, text)| (capture, key_lines(&text)))
        .filter(|(_, lines)| !lines.is_empty())
        .collect();
    assert!(out.len() >= 7, "{} key logs with secrets", out.len());
    out
}

#[test]
fn keys_that_do_not_decrypt_a_connection_are_said_and_change_nothing_else() {
    let dir = Scratch::new("wrong");
    for (capture, lines) in secret_key_files() {
        let text: String = lines
            .iter()
            .map(|(label, random, secret)| format!("{label} {random} {}\n", flip(secret)))
            .collect();
        let keys = dir.file(&format!("{capture}.wrong"), text.as_bytes());
        same_as_without_keys(&capture, &keys, "did not decrypt it");
    }
}

#[test]
fn a_key_log_for_other_connections_holds_no_secrets_for_this_one() {
    let files = secret_key_files();
    for (i, (capture, _)) in files.iter().enumerate() {
        let other = &files[(i + 1) % files.len()].0;
        let keys = sample(&other.replace(".pcap", ".keys"));
        same_as_without_keys(
            capture,
            &keys,
            "holds no secrets for this connection's ClientHello",
        );
    }
    // A key log with no secret at all (OpenSSL's comment line only) says so once.
    let note = "tls12_expired.keys: key log: no TLS secrets (CLIENT_RANDOM or *_TRAFFIC_SECRET lines) in it";
    for format in ["text", "json"] {
        let (_, out, err) = bin(&[
            "--format",
            format,
            "--keylog",
            &sample("tls12_expired.keys"),
            &sample("tls12_expired.pcap"),
        ]);
        assert_eq!(out.matches(note).count(), 1, "{format}: {out}");
        assert!(err.matches(note).count() <= 1, "{format}: {err}");
    }
}

// ---------------------------------------------------------------------------------------------
// 6. Robustness: damaged keyed captures, garbage key logs
// ---------------------------------------------------------------------------------------------

/// Upper bound for one in-process analysis of a small capture (debug build).
const PER_RUN_LIMIT: Duration = Duration::from_secs(10);

/// Analyses `capture` with `keys` in-process and renders every format: no panic, within
/// [`PER_RUN_LIMIT`]; an error must name the capture. Returns the warnings of an `Ok`.
fn analyse(capture: &str, keys: &[String], label: &str) -> Option<Vec<String>> {
    let t0 = Instant::now();
    let res = catch_unwind(AssertUnwindSafe(|| {
        let opts = tlsdiag::Options {
            key_logs: keys.to_vec(),
            ..Default::default()
        };
        match tlsdiag::analyze(&[capture.to_string()], &opts) {
            Ok(r) => {
                let o = RenderOptions {
                    all: true,
                    timeline: true,
                    width: Some(100),
                    color: false,
                    max_problems: 0,
                };
                for f in [Format::Text, Format::Json, Format::Ndjson, Format::Markdown] {
                    assert!(
                        !render(&r, f, &o).is_empty(),
                        "{label}: {f:?} rendered nothing"
                    );
                }
                Ok(r.warnings.clone())
            }
            Err(e) => Err(e.to_string()),
        }
    }));
    let took = t0.elapsed();
    let out = res.unwrap_or_else(|_| panic!("{label}: the library panicked (message above)"));
    assert!(took < PER_RUN_LIMIT, "{label}: took {took:?}");
    match out {
        Ok(w) => Some(w),
        Err(e) => {
            assert!(
                e.contains(capture),
                "{label}: error does not name the file: {e}"
            );
            None
        }
    }
}

#[test]
fn keyed_captures_truncated_and_bit_flipped_every_7th_byte_never_crash() {
    let dir = Scratch::new("damage");
    let (mut runs, t0) = (0, Instant::now());
    for (file, exp) in keyed() {
        let keys: Vec<String> = key_args(&exp)
            .into_iter()
            .filter(|a| a != "--keylog")
            .collect();
        let bytes = std::fs::read(samples_dir().join(&file)).unwrap();
        for at in (0..bytes.len()).step_by(7) {
            let cut = dir.file("cut", &bytes[..at]);
            analyse(&cut, &keys, &format!("{file} cut at {at}"));
            let mut flipped = bytes.clone();
            flipped[at] ^= 1 << (at % 8);
            let f = dir.file("flip", &flipped);
            analyse(&f, &keys, &format!("{file} bit {} of byte {at}", at % 8));
            runs += 2;
        }
    }
    println!(
        "damaged keyed captures analysed: {runs} in {:?}",
        t0.elapsed()
    );
    assert!(runs > 5000, "{runs}");
}

#[test]
fn garbage_key_logs_get_a_clear_note_and_no_panic() {
    let dir = Scratch::new("garbage");
    let mut rng = Rng(20);
    let mut lines = Vec::new();
    for i in 0..200_000u32 {
        let hex: String = rng.fill(8).iter().map(|b| format!("{b:02x}")).collect();
        lines.extend_from_slice(format!("CLIENT_RANDOM {hex} z{i}\n").as_bytes());
    }
    let many = dir.file("lines.keys", &lines);
    let random = dir.file("random.keys", &Rng(7).fill(1 << 20));
    let capture = sample("tls13_mtls_no_client_cert.pcap");
    for (keys, first) in [
        (&many, "200000 line(s)"),
        (&random, "line(s) are not key log lines"),
    ] {
        let t0 = Instant::now();
        let warnings = analyse(&capture, std::slice::from_ref(keys), keys).expect("analysed");
        let took = t0.elapsed();
        let mine: Vec<&String> = warnings
            .iter()
            .filter(|w| w.starts_with(keys.as_str()))
            .collect();
        assert!(
            mine.iter()
                .any(|w| w.contains(first) && w.contains("(the first is line 1)")),
            "{mine:?}"
        );
        assert!(
            mine.iter().any(|w| w.contains("no TLS secrets")),
            "{mine:?}"
        );
        assert!(mine.iter().all(|w| w.len() < 200), "{mine:?}");
        println!("{keys}: {took:?}");
    }
}

/// The sample's key log without its `label` lines, written to `dir`; its path.
fn key_log_without(dir: &Scratch, file: &str, exp: &Value, label: &str) -> String {
    let path = samples_dir().join(exp["keylog"].as_str().unwrap());
    let text = std::fs::read_to_string(path).unwrap();
    let kept: String = text
        .lines()
        .filter(|l| !l.starts_with(&format!("{label} ")))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(kept.len(), text.len(), "{file}: no {label} to drop");
    dir.file(&format!("{file}.keys"), kept.as_bytes())
}

#[test]
fn a_key_log_without_the_application_secret_says_why_the_alert_stays_sealed() {
    let dir = Scratch::new("noapp");
    let mut checked = 0;
    for (file, exp) in mtls_rejections() {
        let keys = key_log_without(&dir, &file, &exp, "SERVER_TRAFFIC_SECRET_0");
        let report = json(&file, &["--keylog".into(), keys]);
        for want in exp["with_keys"].as_array().unwrap() {
            let c = conn(&report, &want["stream"], &file);
            // The handshake opened: the certificate request is known.
            assert_eq!(c["decrypted"], true, "{file}");
            assert_eq!(c["client_certificate"]["requested"], true, "{file}");
            // The alert under the server's application secret did not.
            assert_eq!(c["alert"]["inferred"], true, "{file}: {}", c["alert"]);
            assert!(
                c["alert"]["description"].is_null(),
                "{file}: {}",
                c["alert"]
            );
            let note = "alert-sized record(s) from the server after its Finished stay sealed: \
                        the key log lacks SERVER_TRAFFIC_SECRET_0";
            let uncertain = c["uncertain"].to_string();
            assert!(uncertain.contains(note), "{file}: {uncertain}");
            checked += 1;
        }
    }
    assert!(checked >= 2);
}

#[test]
fn a_key_log_without_the_client_handshake_secret_leaves_the_client_certificate_unknown() {
    let dir = Scratch::new("nochs");
    let mut checked = 0;
    for (file, exp) in mtls_rejections() {
        let keys = key_log_without(&dir, &file, &exp, "CLIENT_HANDSHAKE_TRAFFIC_SECRET");
        let report = json(&file, &["--keylog".into(), keys.clone()]);
        for want in exp["with_keys"].as_array().unwrap() {
            let c = conn(&report, &want["stream"], &file);
            // The server's flight opened: the request and the server's alert are tshark's.
            assert!(alert_matches(&file, want, c));
            let cc = &c["client_certificate"];
            assert_eq!(cc["requested"], true, "{file}: {cc}");
            // The client's flight did not: whether it sent a certificate is not known, whatever
            // tshark saw with all the keys.
            assert!(cc["sent"].is_null(), "{file}: {cc}");
            let u = c["uncertain"].to_string();
            assert!(
                u.contains("no usable CLIENT_HANDSHAKE_TRAFFIC_SECRET line"),
                "{file}: {u}"
            );
            checked += 1;
        }
        let (_, text, _) = bin(&["--keylog", &keys, &sample(&file)]);
        assert!(
            text.contains("Client certificate: requested; whether sent is unknown"),
            "{text}"
        );
    }
    assert!(checked >= 2);
}

#[test]
fn key_logs_cut_anywhere_never_crash_nor_leak_into_warnings() {
    let dir = Scratch::new("cutkeys");
    let capture = sample("tls13_mtls_untrusted_client_cert.pcap");
    let text = std::fs::read(samples_dir().join("tls13_mtls_untrusted_client_cert.keys")).unwrap();
    let secrets = forbidden(&key_lines(&String::from_utf8_lossy(&text)));
    for at in (0..text.len()).step_by(3) {
        let keys = dir.file("cut.keys", &text[..at]);
        let label = format!("key log cut at {at}");
        let warnings = analyse(&capture, &[keys], &label).expect("analysed");
        assert_no_secret(&[(label, warnings.join("\n"))], &secrets);
    }
}
