//! Differential test against tshark on the public corpus (issue 4): `../shared/corpus` beside
//! the checkout, or the directory `TLSDIAG_CORPUS` names. Without it both tests pass after
//! printing a `SKIPPED <test>: <why>` line on the terminal.
//!
//! For every capture in `public/`, runs the built binary with `--format json` and compares each
//! TCP stream with the facts tshark 4.0 gave (`facts/<source>__<file>.json`; schema and tshark's
//! blind spots in the corpus README). A difference is accepted only when
//! `tests/corpus_differences.tsv` lists it with the same two values and a reason. The test fails
//! on any other difference, on a listed difference that no longer occurs (stale entry), and on a
//! capture the binary does not read cleanly (crash, hang, or an exit status other than 0 or a
//! one-line error with status 2).
//!
//! Streams are paired by their two endpoints (and frame range, for reused ports), so a stream
//! numbered differently shows as one `stream` difference instead of a cascade. The TSV's
//! `stream` column is tshark's stream id, or `tlsdiag:N` for a connection tshark does not have.
//! Facts compared per paired stream, by their name in the TSV:
//!
//! - `stream`: `tcp_stream` vs `stream`; also a stream present on one side only.
//! - `endpoints`: facts `client -> server` vs `client_ip:client_port -> server_ip:server_port`.
//! - `syn_count`, `synack_seen`: same names on both sides; tlsdiag's side is `syn_count +
//!   syn_copies`, because Wireshark counts a packet the capture recorded twice as two frames.
//! - `clienthello_count`: facts `client_hello.count` (messages plus retransmitted copies) less
//!   the messages after the first (`client_hello.tshark[]` beyond one) vs `clienthello_count +
//!   clienthello_copies` (transmissions of the first ClientHello, by sequence coverage, plus
//!   capture copies of frames carrying it). tshark's `tls.handshake.type == 1` also counts the
//!   second hello after a HelloRetryRequest (or a duplicate hello), a new message that
//!   tlsdiag does not count as a transmission of the first.
//! - `serverhello_seen`: facts `server_hello_seen` (a HelloRetryRequest counts there).
//! - `alert`: the first of the facts' `alerts[]` vs `alert`, both as `<sender endpoint>
//!   <description>` or `<sender endpoint> encrypted`; an inferred tlsdiag alert without a name
//!   (TLS 1.3, outer type 23) counts as none; one named close_notify is an encrypted alert.
//! - `sni`: facts `sni[0]`.
//! - `tls_version`: facts `version.negotiated` (hex) named as tlsdiag names versions.
//! - `fin_c2s`, `fin_s2c`, `rst_c2s`, `rst_s2c`: facts count > 0 vs `client_fin`, ... non-null.
//! - `icmp`: facts `icmp_errors[]` not empty vs `icmp` non-null.
//!
//! Directional facts are compared in endpoint terms: `c2s` means "sent by the endpoint the facts
//! call the client", whichever side tlsdiag calls the client, so a role disagreement is reported
//! once, under `endpoints`.
//!
//! Set `CORPUS_DIFFERENCES_OUT=<path>` to write every difference found as TSV rows (reasons
//! copied from the list, `TODO` for new ones), a starting point for updating the list.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

const DIFFERENCES_TSV: &str = "tests/corpus_differences.tsv";
const TSV_HEADER: &str = "file\tstream\tfield\ttshark_value\ttlsdiag_value\treason";
/// A capture that takes longer than this is reported as a hang.
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// The fields compared per paired stream, in report order.
const FIELDS: [&str; 14] = [
    "stream",
    "endpoints",
    "syn_count",
    "synack_seen",
    "clienthello_count",
    "serverhello_seen",
    "alert",
    "sni",
    "tls_version",
    "fin_c2s",
    "fin_s2c",
    "rst_c2s",
    "rst_s2c",
    "icmp",
];

/// One stream as either tool saw it, in endpoint terms.
#[derive(Debug, Clone)]
struct Stream {
    id: u64,
    client: String,
    server: String,
    first_frame: u64,
    last_frame: u64,
    syn_count: u64,
    synack_seen: bool,
    clienthello_count: u64,
    serverhello_seen: bool,
    /// `<sender endpoint> <description | encrypted>`.
    alert: Option<String>,
    sni: Option<String>,
    tls_version: Option<String>,
    fin_from: BTreeSet<String>,
    rst_from: BTreeSet<String>,
    icmp: bool,
}

impl Stream {
    fn endpoints(&self) -> String {
        format!("{} -> {}", self.client, self.server)
    }

    fn same_pair(&self, other: &Stream) -> bool {
        (self.client == other.client && self.server == other.server)
            || (self.client == other.server && self.server == other.client)
    }

    fn overlaps(&self, other: &Stream) -> bool {
        self.first_frame <= other.last_frame && other.first_frame <= self.last_frame
    }
}

/// Identifies a compared fact: file, stream, field.
type Key = (String, String, String);

/// A fact on which the two tools disagree.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Difference {
    file: String,
    stream: String,
    field: String,
    tshark: String,
    tlsdiag: String,
}

impl Difference {
    fn key(&self) -> Key {
        (self.file.clone(), self.stream.clone(), self.field.clone())
    }
}

/// A listed difference: the two values it was seen with and why it is accepted.
#[derive(Debug, Clone)]
struct Listed {
    line: usize,
    tshark: String,
    tlsdiag: String,
    reason: String,
}

/// Something that makes the test fail, as one row of the final table.
#[derive(Debug, Clone)]
struct Problem {
    file: String,
    stream: String,
    field: String,
    tshark: String,
    tlsdiag: String,
    what: String,
}

impl Problem {
    fn about(file: &str, what: String) -> Self {
        Problem {
            file: file.to_string(),
            stream: "-".into(),
            field: "-".into(),
            tshark: String::new(),
            tlsdiag: String::new(),
            what,
        }
    }
}

#[derive(Debug, Default)]
struct Totals {
    captures: usize,
    streams_paired: usize,
    facts: usize,
    agreed: usize,
    accepted: usize,
    by_field: BTreeMap<&'static str, (usize, usize)>,
}

// ---------------------------------------------------------------------------------------------
// JSON access with messages instead of panics.

fn key<'a>(v: &'a Value, k: &str) -> Result<&'a Value, String> {
    v.get(k).ok_or_else(|| format!("missing key `{k}`"))
}

fn u64_at(v: &Value, k: &str) -> Result<u64, String> {
    key(v, k)?
        .as_u64()
        .ok_or_else(|| format!("`{k}` is not a non-negative integer"))
}

fn bool_at(v: &Value, k: &str) -> Result<bool, String> {
    key(v, k)?
        .as_bool()
        .ok_or_else(|| format!("`{k}` is not a boolean"))
}

fn str_at<'a>(v: &'a Value, k: &str) -> Result<&'a str, String> {
    key(v, k)?
        .as_str()
        .ok_or_else(|| format!("`{k}` is not a string"))
}

fn opt_str_at(v: &Value, k: &str) -> Result<Option<String>, String> {
    match key(v, k)? {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        other => Err(format!("`{k}` is neither null nor a string: {other}")),
    }
}

fn array_at<'a>(v: &'a Value, k: &str) -> Result<&'a Vec<Value>, String> {
    key(v, k)?
        .as_array()
        .ok_or_else(|| format!("`{k}` is not an array"))
}

// ---------------------------------------------------------------------------------------------
// Value rendering shared by both sides.

/// `ip:port`, IPv6 in brackets, the address in its canonical text form.
fn endpoint(ip: &str, port: u64) -> String {
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V6(a)) => format!("[{a}]:{port}"),
        Ok(IpAddr::V4(a)) => format!("{a}:{port}"),
        Err(_) => format!("{ip}:{port}"),
    }
}

/// An alert description named as tlsdiag names it (the names themselves are the RFC's; this
/// test compares which alert was sent, not how it is spelt).
fn alert_name(code: u64) -> String {
    u8::try_from(code).map_or_else(
        |_| format!("unknown_alert_{code}"),
        tlsdiag::tls::names::alert_description,
    )
}

/// A version in the facts' hex notation (`"0x0303"`), named as tlsdiag names it.
fn version_name(hex: &str) -> Result<String, String> {
    let v = u16::from_str_radix(hex.trim_start_matches("0x"), 16)
        .map_err(|_| format!("version `{hex}` is not hex"))?;
    Ok(tlsdiag::tls::names::version_name(v).into_owned())
}

fn show_bool(b: bool) -> String {
    b.to_string()
}

fn show_opt(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "none".into())
}

// ---------------------------------------------------------------------------------------------
// Reading both sides.

/// The frames a facts stream spans: its TCP frames, or for a stream that exists only as ICMP
/// quotes (`first_frame` null), the ICMP errors' frames.
fn tshark_frame_range(s: &Value) -> Result<(u64, u64), String> {
    if !key(s, "first_frame")?.is_null() {
        return Ok((u64_at(s, "first_frame")?, u64_at(s, "last_frame")?));
    }
    let mut frames = Vec::new();
    for e in array_at(s, "icmp_errors")? {
        frames.push(u64_at(e, "frame")?);
    }
    match (frames.iter().min(), frames.iter().max()) {
        (Some(&a), Some(&b)) => Ok((a, b)),
        _ => Err("no `first_frame` and no ICMP error frame".into()),
    }
}

/// The streams of one facts file.
/// tshark's ClientHello count without the hello messages after the first: a second hello
/// (after a HelloRetryRequest) is not a transmission of the first.
fn first_hello_transmissions(ch: &Value) -> Result<u64, String> {
    let count = u64_at(ch, "count")?;
    let messages = ch
        .get("tshark")
        .and_then(Value::as_array)
        .ok_or("client_hello.tshark: not an array")?
        .len() as u64;
    Ok(count - messages.saturating_sub(1).min(count.saturating_sub(1)))
}

fn tshark_streams(facts: &Value) -> Result<Vec<Stream>, String> {
    let mut out = Vec::new();
    for s in array_at(facts, "streams")? {
        let id = u64_at(s, "tcp_stream")?;
        let ctx = |e: String| format!("stream {id}: {e}");
        let side = |k: &str| -> Result<String, String> {
            let e = key(s, k)?;
            Ok(endpoint(str_at(e, "ip")?, u64_at(e, "port")?))
        };
        let client = side("client").map_err(ctx)?;
        let server = side("server").map_err(ctx)?;
        let alert = match array_at(s, "alerts").map_err(ctx)?.first() {
            None => None,
            Some(a) => {
                let from = match str_at(a, "dir").map_err(ctx)? {
                    "c2s" => &client,
                    "s2c" => &server,
                    other => return Err(ctx(format!("alert dir `{other}`"))),
                };
                let what = if bool_at(a, "encrypted").map_err(ctx)? {
                    "encrypted".to_string()
                } else {
                    alert_name(u64_at(a, "description").map_err(ctx)?)
                };
                Some(format!("{from} {what}"))
            }
        };
        let sni = match array_at(s, "sni").map_err(ctx)?.first() {
            None => None,
            Some(v) => Some(
                v.as_str()
                    .ok_or_else(|| ctx("sni[0] is not a string".into()))?
                    .to_string(),
            ),
        };
        let tls_version =
            match opt_str_at(key(s, "version").map_err(ctx)?, "negotiated").map_err(ctx)? {
                Some(hex) => Some(version_name(&hex).map_err(ctx)?),
                None => None,
            };
        let senders = |k: &str| -> Result<BTreeSet<String>, String> {
            let counts = key(s, k)?;
            let mut set = BTreeSet::new();
            if u64_at(counts, "c2s")? > 0 {
                set.insert(client.clone());
            }
            if u64_at(counts, "s2c")? > 0 {
                set.insert(server.clone());
            }
            Ok(set)
        };
        let (first_frame, last_frame) = tshark_frame_range(s).map_err(ctx)?;
        out.push(Stream {
            id,
            first_frame,
            last_frame,
            syn_count: u64_at(s, "syn_count").map_err(ctx)?,
            synack_seen: bool_at(s, "synack_seen").map_err(ctx)?,
            clienthello_count: first_hello_transmissions(key(s, "client_hello").map_err(ctx)?)
                .map_err(ctx)?,
            serverhello_seen: bool_at(s, "server_hello_seen").map_err(ctx)?,
            alert,
            sni,
            tls_version,
            fin_from: senders("fin").map_err(ctx)?,
            rst_from: senders("rst").map_err(ctx)?,
            icmp: !array_at(s, "icmp_errors").map_err(ctx)?.is_empty(),
            client,
            server,
        });
    }
    Ok(out)
}

/// The connections of one tlsdiag JSON report.
fn tlsdiag_streams(report: &Value) -> Result<Vec<Stream>, String> {
    let mut out = Vec::new();
    for c in array_at(report, "connections")? {
        let id = u64_at(c, "stream")?;
        let ctx = |e: String| format!("connection {id}: {e}");
        let client = endpoint(
            str_at(c, "client_ip").map_err(ctx)?,
            u64_at(c, "client_port").map_err(ctx)?,
        );
        let server = endpoint(
            str_at(c, "server_ip").map_err(ctx)?,
            u64_at(c, "server_port").map_err(ctx)?,
        );
        let alert = match key(c, "alert").map_err(ctx)? {
            Value::Null => None,
            // Inferred from a record tshark does not call an alert (TLS 1.3's outer type 23);
            // a named inferred alert (close_notify) is a visible encrypted alert record.
            a if bool_at(a, "inferred").map_err(ctx)?
                && opt_str_at(a, "description").map_err(ctx)?.is_none() =>
            {
                None
            }
            a => {
                let from = match str_at(a, "sender").map_err(ctx)? {
                    "client" => &client,
                    "server" => &server,
                    other => return Err(ctx(format!("alert sender `{other}`"))),
                };
                let what = if bool_at(a, "encrypted").map_err(ctx)? {
                    "encrypted".to_string()
                } else {
                    opt_str_at(a, "description")
                        .map_err(ctx)?
                        .ok_or_else(|| ctx("clear alert without a description".into()))?
                };
                Some(format!("{from} {what}"))
            }
        };
        let senders = |kind: &str| -> Result<BTreeSet<String>, String> {
            let mut set = BTreeSet::new();
            for (role, ep) in [("client", &client), ("server", &server)] {
                if !key(c, &format!("{role}_{kind}"))?.is_null() {
                    set.insert(ep.clone());
                }
            }
            Ok(set)
        };
        out.push(Stream {
            id,
            first_frame: u64_at(c, "first_frame").map_err(ctx)?,
            last_frame: u64_at(c, "last_frame").map_err(ctx)?,
            // Wireshark counts frames: capture copies included.
            syn_count: u64_at(c, "syn_count").map_err(ctx)?
                + u64_at(c, "syn_copies").map_err(ctx)?,
            synack_seen: bool_at(c, "synack_seen").map_err(ctx)?,
            clienthello_count: u64_at(c, "clienthello_count").map_err(ctx)?
                + u64_at(c, "clienthello_copies").map_err(ctx)?,
            serverhello_seen: bool_at(c, "serverhello_seen").map_err(ctx)?,
            alert,
            sni: opt_str_at(c, "sni").map_err(ctx)?,
            tls_version: opt_str_at(c, "tls_version").map_err(ctx)?,
            fin_from: senders("fin").map_err(ctx)?,
            rst_from: senders("rst").map_err(ctx)?,
            icmp: !key(c, "icmp").map_err(ctx)?.is_null(),
            client,
            server,
        });
    }
    Ok(out)
}

/// How a run ended.
enum Run {
    Report(Value),
    /// Exit status 2 with a one-line message: the binary refused the file cleanly.
    CleanError(String),
    Failed(String),
}

/// Runs the binary on one capture, with a time limit; stdout and stderr are drained by
/// threads so a large report cannot block the child.
fn run_tlsdiag(capture: &Path) -> Run {
    let child = Command::new(env!("CARGO_BIN_EXE_tlsdiag"))
        .arg("--format")
        .arg("json")
        .arg(capture)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return Run::Failed(format!("cannot start tlsdiag: {e}")),
    };
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) if start.elapsed() > RUN_LIMIT => {
                let _ = child.kill();
                let _ = child.wait();
                break Err(format!(
                    "still running after {} s: killed",
                    RUN_LIMIT.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => break Err(format!("cannot wait for tlsdiag: {e}")),
        }
    };
    let out = stdout.join().unwrap_or_default();
    let err = String::from_utf8_lossy(&stderr.join().unwrap_or_default()).into_owned();
    let status = match status {
        Ok(s) => s,
        Err(e) => return Run::Failed(e),
    };
    if err.contains("panicked at") {
        return Run::Failed(format!("panic: {}", first_line(&err)));
    }
    match status.code() {
        Some(0) => match serde_json::from_slice(&out) {
            Ok(v) => Run::Report(v),
            Err(e) => Run::Failed(format!("exit 0 but the output is not JSON: {e}")),
        },
        Some(2) if err.starts_with("tlsdiag: ") && err.trim_end().lines().count() == 1 => {
            Run::CleanError(err.trim_end().to_string())
        }
        Some(code) => Run::Failed(format!("exit status {code}: {}", first_line(&err))),
        None => Run::Failed(format!("killed by a signal: {}", first_line(&err))),
    }
}

/// Reads a child's pipe to the end on its own thread.
fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            // A read error leaves what was read; the exit status tells the rest.
            let _ = p.read_to_end(&mut buf);
        }
        buf
    })
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").chars().take(160).collect()
}

// ---------------------------------------------------------------------------------------------
// Comparison.

/// Pairs tshark streams with tlsdiag connections with the same endpoint pair, preferring an
/// overlapping frame range and the same stream id, in that order. Returns the pairs and the
/// unpaired indexes of each side.
fn pair_streams(ts: &[Stream], td: &[Stream]) -> (Vec<(usize, usize)>, Vec<usize>, Vec<usize>) {
    let mut used = vec![false; td.len()];
    let mut pairs = Vec::new();
    let mut lonely_ts = Vec::new();
    for (i, t) in ts.iter().enumerate() {
        let candidates: Vec<usize> = (0..td.len())
            .filter(|&j| !used[j] && t.same_pair(&td[j]))
            .collect();
        let find = |ok: &dyn Fn(&Stream) -> bool| candidates.iter().copied().find(|&j| ok(&td[j]));
        let pick = find(&|d| t.overlaps(d) && d.id == t.id)
            .or_else(|| find(&|d| t.overlaps(d)))
            .or_else(|| find(&|d| d.id == t.id));
        match pick {
            Some(j) => {
                used[j] = true;
                pairs.push((i, j));
            }
            None => lonely_ts.push(i),
        }
    }
    let lonely_td = (0..td.len()).filter(|&j| !used[j]).collect();
    (pairs, lonely_ts, lonely_td)
}

/// The value of each compared field for one stream; `c2s`/`s2c` are taken relative to the
/// endpoints the facts call client and server.
fn field_values(s: &Stream, facts_client: &str, facts_server: &str) -> [String; 14] {
    [
        s.id.to_string(),
        s.endpoints(),
        s.syn_count.to_string(),
        show_bool(s.synack_seen),
        s.clienthello_count.to_string(),
        show_bool(s.serverhello_seen),
        show_opt(&s.alert),
        show_opt(&s.sni),
        show_opt(&s.tls_version),
        show_bool(s.fin_from.contains(facts_client)),
        show_bool(s.fin_from.contains(facts_server)),
        show_bool(s.rst_from.contains(facts_client)),
        show_bool(s.rst_from.contains(facts_server)),
        show_bool(s.icmp),
    ]
}

fn compare_capture(
    name: &str,
    ts: &[Stream],
    td: &[Stream],
    totals: &mut Totals,
) -> Vec<Difference> {
    let mut diffs = Vec::new();
    let (pairs, lonely_ts, lonely_td) = pair_streams(ts, td);
    let stream_facts = totals.by_field.entry("stream").or_default();
    stream_facts.0 += lonely_ts.len() + lonely_td.len();
    for i in lonely_ts {
        totals.facts += 1;
        diffs.push(Difference {
            file: name.into(),
            stream: ts[i].id.to_string(),
            field: "stream".into(),
            tshark: format!("present ({})", ts[i].endpoints()),
            tlsdiag: "absent".into(),
        });
    }
    for j in lonely_td {
        totals.facts += 1;
        diffs.push(Difference {
            file: name.into(),
            stream: format!("tlsdiag:{}", td[j].id),
            field: "stream".into(),
            tshark: "absent".into(),
            tlsdiag: format!("present ({})", td[j].endpoints()),
        });
    }
    totals.streams_paired += pairs.len();
    for (i, j) in pairs {
        let (t, d) = (&ts[i], &td[j]);
        let want = field_values(t, &t.client, &t.server);
        let got = field_values(d, &t.client, &t.server);
        for ((field, a), b) in FIELDS.iter().zip(want).zip(got) {
            totals.facts += 1;
            let entry = totals.by_field.entry(field).or_default();
            entry.0 += 1;
            if a == b {
                totals.agreed += 1;
                entry.1 += 1;
            } else {
                diffs.push(Difference {
                    file: name.into(),
                    stream: t.id.to_string(),
                    field: (*field).into(),
                    tshark: a,
                    tlsdiag: b,
                });
            }
        }
    }
    diffs
}

// ---------------------------------------------------------------------------------------------
// The list of accepted differences.

fn read_listed(path: &Path) -> Result<BTreeMap<Key, Listed>, Vec<String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| vec![format!("cannot read {}: {e}", path.display())])?;
    let mut listed = BTreeMap::new();
    let mut errors = Vec::new();
    let mut header_seen = false;
    for (n, line) in text.lines().enumerate() {
        let line_no = n + 1;
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        if !header_seen {
            if line != TSV_HEADER {
                errors.push(format!(
                    "line {line_no}: expected the header `{TSV_HEADER}`"
                ));
            }
            header_seen = true;
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        if cols.len() != 6 {
            errors.push(format!(
                "line {line_no}: {} columns, expected 6",
                cols.len()
            ));
            continue;
        }
        if cols[5].trim().is_empty() {
            errors.push(format!("line {line_no}: no reason given"));
        }
        if !FIELDS.contains(&cols[2]) {
            errors.push(format!("line {line_no}: unknown field `{}`", cols[2]));
        }
        let k = (
            cols[0].to_string(),
            cols[1].to_string(),
            cols[2].to_string(),
        );
        let entry = Listed {
            line: line_no,
            tshark: cols[3].to_string(),
            tlsdiag: cols[4].to_string(),
            reason: cols[5].to_string(),
        };
        if let Some(prev) = listed.insert(k, entry) {
            errors.push(format!(
                "line {line_no}: same file, stream and field as line {}",
                prev.line
            ));
        }
    }
    if errors.is_empty() {
        Ok(listed)
    } else {
        Err(errors)
    }
}

/// `public/<source>/<file>` for every capture, sorted.
fn captures(public: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for source in std::fs::read_dir(public)? {
        let source = source?;
        if !source.file_type()?.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(source.path())? {
            let file = file?;
            if file.file_type()?.is_file() {
                let name = format!(
                    "{}/{}",
                    source.file_name().to_string_lossy(),
                    file.file_name().to_string_lossy()
                );
                out.push((name, file.path()));
            }
        }
    }
    out.sort();
    Ok(out)
}

fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut c: String = s.chars().take(max - 1).collect();
        c.push('…');
        c
    }
}

fn print_problems(problems: &[Problem]) {
    let head = ["file", "stream", "field", "tshark", "tlsdiag", "problem"];
    let rows: Vec<[String; 6]> = problems
        .iter()
        .map(|p| {
            [
                clip(&p.file, 48),
                p.stream.clone(),
                p.field.clone(),
                clip(&p.tshark, 56),
                clip(&p.tlsdiag, 56),
                p.what.clone(),
            ]
        })
        .collect();
    let mut width = head.map(|h| h.chars().count());
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(width).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  "));
            }
        }
        println!("{}", s.trim_end());
    };
    line(&head.map(String::from));
    line(&width.map(|w| "-".repeat(w)));
    for r in &rows {
        line(r);
    }
}

#[test]
fn corpus_agrees_with_tshark() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let corpus = match common::corpus_public() {
        Ok(_) => common::corpus_dir(),
        Err(why) => return common::skipped("corpus_agrees_with_tshark", &why),
    };
    let listed = match read_listed(&manifest.join(DIFFERENCES_TSV)) {
        Ok(l) => l,
        Err(errors) => panic!("{DIFFERENCES_TSV} is malformed:\n{}", errors.join("\n")),
    };
    let files = match captures(&corpus.join("public")) {
        Ok(f) => f,
        Err(e) => panic!("cannot list {}: {e}", corpus.join("public").display()),
    };
    assert!(!files.is_empty(), "no capture under {}", corpus.display());

    let mut totals = Totals::default();
    let mut problems: Vec<Problem> = Vec::new();
    let mut diffs: Vec<Difference> = Vec::new();
    let mut refused: Vec<String> = Vec::new();
    for (name, path) in &files {
        totals.captures += 1;
        let facts_path = corpus
            .join("facts")
            .join(format!("{}.json", name.replacen('/', "__", 1)));
        let facts: Value = match std::fs::read_to_string(&facts_path)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
        {
            Ok(v) => v,
            Err(e) => {
                let what = format!("facts {}: {e}", facts_path.display());
                problems.push(Problem::about(name, what));
                continue;
            }
        };
        let ts = match tshark_streams(&facts) {
            Ok(s) => s,
            Err(e) => {
                problems.push(Problem::about(name, format!("facts: {e}")));
                continue;
            }
        };
        let td = match run_tlsdiag(path) {
            Run::Report(report) => match tlsdiag_streams(&report) {
                Ok(s) => s,
                Err(e) => {
                    problems.push(Problem::about(name, format!("tlsdiag JSON: {e}")));
                    continue;
                }
            },
            // A damaged file may be refused cleanly; its streams then show as absent.
            Run::CleanError(message) => {
                refused.push(format!("{name}: {message}"));
                Vec::new()
            }
            Run::Failed(e) => {
                problems.push(Problem::about(name, format!("not read cleanly: {e}")));
                continue;
            }
        };
        diffs.extend(compare_capture(name, &ts, &td, &mut totals));
    }

    // Differences against the list.
    let mut seen: BTreeSet<Key> = BTreeSet::new();
    for d in &diffs {
        let k = d.key();
        seen.insert(k.clone());
        match listed.get(&k) {
            Some(l) if l.tshark == d.tshark && l.tlsdiag == d.tlsdiag => totals.accepted += 1,
            Some(l) => problems.push(Problem {
                file: d.file.clone(),
                stream: d.stream.clone(),
                field: d.field.clone(),
                tshark: d.tshark.clone(),
                tlsdiag: d.tlsdiag.clone(),
                what: format!(
                    "listed (line {}) with other values: tshark `{}`, tlsdiag `{}`",
                    l.line, l.tshark, l.tlsdiag
                ),
            }),
            None => problems.push(Problem {
                file: d.file.clone(),
                stream: d.stream.clone(),
                field: d.field.clone(),
                tshark: d.tshark.clone(),
                tlsdiag: d.tlsdiag.clone(),
                what: "not listed".into(),
            }),
        }
    }
    for (k, l) in &listed {
        if !seen.contains(k) {
            problems.push(Problem {
                file: k.0.clone(),
                stream: k.1.clone(),
                field: k.2.clone(),
                tshark: l.tshark.clone(),
                tlsdiag: l.tlsdiag.clone(),
                what: format!("stale: listed (line {}) but no longer differs", l.line),
            });
        }
    }

    if let Some(out) = std::env::var_os("CORPUS_DIFFERENCES_OUT") {
        let mut text = format!("{TSV_HEADER}\n");
        for d in &diffs {
            let reason = listed
                .get(&d.key())
                .map_or("TODO", |l| l.reason.as_str())
                .to_string();
            text.push_str(&format!(
                "{}\t{}\t{}\t{}\t{}\t{reason}\n",
                d.file, d.stream, d.field, d.tshark, d.tlsdiag
            ));
        }
        if let Err(e) = std::fs::write(&out, text) {
            println!("cannot write {}: {e}", Path::new(&out).display());
        }
    }

    for r in &refused {
        println!("refused cleanly (its streams count as absent): {r}");
    }
    println!("tshark agreement by field (facts compared, agreed):");
    for field in FIELDS {
        if let Some((n, ok)) = totals.by_field.get(field) {
            println!("  {field:<18} {n:>5} {ok:>5}");
        }
    }
    let differing = totals.facts - totals.agreed;
    let pct = |n: usize| 100.0 * n as f64 / totals.facts.max(1) as f64;
    println!(
        "corpus: {} captures, {} streams compared, {} facts compared, {} agreed ({:.2} %), \
         {} differing on purpose (listed), {} other differences; agreed or explained: {:.2} %",
        totals.captures,
        totals.streams_paired,
        totals.facts,
        totals.agreed,
        pct(totals.agreed),
        totals.accepted,
        differing - totals.accepted,
        pct(totals.agreed + totals.accepted),
    );
    if !problems.is_empty() {
        println!();
        print_problems(&problems);
        panic!(
            "{} problem(s) against tshark: see the table above; an intended difference goes \
             in {DIFFERENCES_TSV} with its reason",
            problems.len()
        );
    }
}

/// JA4 fingerprints published by FoxIO's reference implementation (the `insta` snapshots
/// `ja4__insta@latest.pcapng.snap` and `ja4__insta@badcurveball.pcap.snap` in
/// github.com/FoxIO-LLC/ja4, rust/ja4/src/snapshots) for captures that are in the corpus:
/// (capture under `public/`, client port, JA4).
const JA4_REFERENCE: [(&str, u64, &str); 6] = [
    (
        "ja4/latest.pcapng",
        52936,
        "t13d1516h2_8daaf6152771_e5627efa2ab1",
    ),
    (
        "ja4/latest.pcapng",
        52937,
        "t12d190800_d83cc789557e_7af1ed941c26",
    ),
    (
        "ja4/latest.pcapng",
        52938,
        "t13d1516h2_8daaf6152771_9b887d9acb53",
    ),
    (
        "ja4/latest.pcapng",
        52940,
        "t13d1516h2_8daaf6152771_e5627efa2ab1",
    ),
    (
        "ja4/latest.pcapng",
        52941,
        "t13d1516h2_8daaf6152771_e5627efa2ab1",
    ),
    (
        "ja4/badcurveball.pcap",
        55318,
        "t13d1615h2_46e7e9700bed_45f260be83e2",
    ),
];

#[test]
fn ja4_matches_the_reference_implementation() {
    let public = match common::corpus_public() {
        Ok(public) => public,
        Err(why) => return common::skipped("ja4_matches_the_reference_implementation", &why),
    };
    let mut wrong = Vec::new();
    for (file, port, want) in JA4_REFERENCE {
        let report = match run_tlsdiag(&public.join(file)) {
            Run::Report(v) => v,
            Run::CleanError(e) | Run::Failed(e) => panic!("{file}: {e}"),
        };
        let conns = report["connections"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let got: Vec<&str> = conns
            .iter()
            .filter(|c| c["client_port"].as_u64() == Some(port))
            .filter_map(|c| c["ja4"].as_str())
            .collect();
        if got != [want] {
            wrong.push(format!(
                "{file} client port {port}: want {want}, got {got:?}"
            ));
        }
    }
    assert!(wrong.is_empty(), "JA4 differs:\n{}", wrong.join("\n"));
}
