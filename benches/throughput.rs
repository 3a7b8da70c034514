//! Throughput and memory benchmark for tlsdiag (issue 5).
//!
//! Run: `cargo bench --bench throughput` (a plain `main`, `harness = false`).
//!
//! For each traffic shape and size it generates (or reuses) a synthetic Ethernet capture under
//! `target/bench-captures/` with `benches/gen` (thousands of interleaved TCP connections,
//! TLS 1.2 / 1.3 handshakes, split post-quantum ClientHellos, IPv6, VLAN tags, DNS noise and a
//! few percent of every failure verdict; a JSON sidecar records the true per-verdict counts).
//! Two shapes: `bulk`, long connections carrying up to megabytes (about 1.4 M packets and
//! 38 k connections per GB), and `dense`, short connections and small packets (about 2.9 M
//! packets and 150 k connections per GB; see `gen::Shape`). The pcapng and `.gz` variants of
//! one bulk size are made too. Then, on the same warm page cache:
//!
//! - `walk`: a bare pcap-parser pass over the file (1 MiB buffer, next/consume/refill, counting
//!   packets and bytes; `.gz` read through flate2), the floor any reader pays;
//! - `tlsdiag`: `tlsdiag --format json --quiet FILE`, whose `summary.verdicts` and
//!   `summary.connections` are checked against the sidecar (MATCH or the differences);
//! - `tshark` (if installed): one pass extracting the per-connection facts
//!   (`-T fields -e frame.number -e tcp.stream -e tcp.flags -e tls.handshake.type ...`,
//!   output to /dev/null).
//!
//! Every tool runs as a grandchild under a small wrapper (this binary re-executed with
//! `--measure`), which times it and reads its peak RSS from `getrusage(RUSAGE_CHILDREN)`, so
//! each number belongs to that tool alone. It prints a table (MB = 10^6 bytes of uncompressed
//! capture, RSS in MiB, ratios tlsdiag/walk and tshark/tlsdiag) and writes
//! `target/bench-results.json`. A tlsdiag that fails or is missing is reported, not fatal.
//!
//! Environment:
//! - `TLSDIAG_BENCH_SIZES`: capture sizes in MB, comma-separated (default `50,200,1000`).
//! - `TLSDIAG_BENCH_SHAPES`: traffic shapes, comma-separated (default `bulk,dense`).
//! - `TLSDIAG_BENCH_SEED`: generator seed (default 1).
//! - `TLSDIAG_BENCH_VARIANTS`: `0` skips the pcapng and `.gz` variants.
//! - `TLSDIAG_BENCH_VARIANT_SIZE`: which bulk size gets the variants (default 200).
//! - `TLSDIAG_BENCH_RUNS`: runs per tool and file, best wall time kept (default 1).
//! - `TLSDIAG_BIN`: tlsdiag binary to measure (default: the one cargo built for this bench,
//!   else `target/release/tlsdiag`, built with `cargo build --release` if missing).
//! - `TLSDIAG_BENCH_FORMATS`: other output formats to measure too, comma-separated (`ndjson`,
//!   `text`, `markdown`; default none). NDJSON's closing summary line is checked against the
//!   sidecar like the JSON report; text and Markdown are only timed.
//! - `TLSDIAG_BENCH_TSHARK`: `auto` (default: skip a file when the speed measured on smaller
//!   files predicts more than `TLSDIAG_BENCH_TSHARK_MAX_S`, default 300 s), `force`, or `off`.
//!
//! Generated captures are cached, keyed by shape, size, seed, format and generator version;
//! delete `target/bench-captures/` to reclaim the disk (about 2.9 GB with the defaults). Each tool's
//! stdout/stderr of the last run stays in `target/bench-work/` for inspection.
//!
//! The generator lives in `benches/gen/mod.rs`, a directory module, so that cargo's target
//! auto-discovery does not build it as a second bench. Needs the dev-dependency `nix`
//! (feature `resource`) for getrusage; the crate forbids `unsafe`, so raw `libc` is not used.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod gen;

use std::collections::{BTreeMap, BTreeSet};
use std::env;
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::{json, Value};

const MB: f64 = 1e6;
const TSHARK_FIELDS: [&str; 9] = [
    "frame.number",
    "tcp.stream",
    "tcp.flags",
    "tls.record.content_type",
    "tls.handshake.type",
    "tls.handshake.extensions_server_name",
    "tls.handshake.extensions.supported_version",
    "tls.alert_message.desc",
    "tcp.analysis.retransmission",
];
const TSHARK_FILTER: &str = "tcp.flags.syn==1 or tcp.flags.fin==1 or tcp.flags.reset==1 \
                             or tls.handshake or tls.alert_message";
/// Assumed tshark speed before one has been measured on this machine (MB/s).
const TSHARK_GUESS_MB_S: f64 = 5.0;

fn main() {
    let args: Vec<OsString> = env::args_os().collect();
    match args.get(1).and_then(|a| a.to_str()) {
        Some("--walk") => walk(Path::new(args.get(2).expect("--walk FILE"))),
        Some("--measure") => measure_child(&args[2..]),
        _ => run(),
    }
}

// ---------------------------------------------------------------------------------------------
// Child modes

/// Bare pcap-parser walk: counts packets and captured bytes, prints them as JSON.
fn walk(path: &Path) {
    let file = File::open(path).expect("open capture for walk");
    let input: Box<dyn Read + Send> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::MultiGzDecoder::new(BufReader::with_capacity(
            1 << 20,
            file,
        )))
    } else {
        Box::new(file)
    };
    let mut reader =
        pcap_parser::create_reader(1 << 20, input).expect("capture is neither pcap nor pcapng");
    let (mut packets, mut bytes) = (0u64, 0u64);
    let mut stalls = 0u32;
    loop {
        match reader.next() {
            Ok((offset, block)) => {
                use pcap_parser::{Block, PcapBlockOwned};
                match block {
                    PcapBlockOwned::Legacy(b) => {
                        packets += 1;
                        bytes += u64::from(b.caplen);
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(b)) => {
                        packets += 1;
                        bytes += u64::from(b.caplen);
                    }
                    PcapBlockOwned::NG(Block::SimplePacket(b)) => {
                        packets += 1;
                        bytes += b.data.len() as u64;
                    }
                    _ => {}
                }
                reader.consume(offset);
                stalls = 0;
            }
            Err(pcap_parser::PcapError::Eof) => break,
            Err(pcap_parser::PcapError::Incomplete(_)) => {
                stalls += 1;
                assert!(
                    stalls < 4,
                    "walk: no progress at the end of the capture (truncated?)"
                );
                reader.refill().expect("walk: refill failed");
            }
            Err(pcap_parser::PcapError::BufferTooSmall) => {
                let cap = reader.data().len().max(1 << 20) * 2;
                assert!(reader.grow(cap), "walk: cannot grow the buffer");
            }
            Err(e) => panic!("walk: {e:?}"),
        }
    }
    println!("{}", json!({ "packets": packets, "bytes": bytes }));
}

/// `--measure OUT.json -- CMD ARGS...`: runs CMD (inheriting stdio), then writes its wall time
/// and resource usage to OUT.json. CMD is this process's only child, so RUSAGE_CHILDREN is its.
fn measure_child(args: &[OsString]) {
    use nix::sys::resource::{getrusage, UsageWho};
    use std::os::unix::process::ExitStatusExt;
    let out = PathBuf::from(&args[0]);
    assert_eq!(
        args.get(1).and_then(|a| a.to_str()),
        Some("--"),
        "--measure OUT -- CMD"
    );
    let cmd = &args[2..];
    let start = Instant::now();
    let status = Command::new(&cmd[0]).args(&cmd[1..]).status();
    let wall = start.elapsed().as_secs_f64();
    let ru = getrusage(UsageWho::RUSAGE_CHILDREN).expect("getrusage(RUSAGE_CHILDREN)");
    let secs = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
    let (exit, error) = match status {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(c), _) => (json!(c), Value::Null),
            (None, Some(sig)) => (Value::Null, json!(format!("killed by signal {sig}"))),
            _ => (Value::Null, json!("unknown exit status")),
        },
        Err(e) => (Value::Null, json!(format!("cannot run {:?}: {e}", cmd[0]))),
    };
    let v = json!({
        "wall_s": wall,
        "max_rss_kib": ru.max_rss(),
        "user_s": secs(ru.user_time()),
        "sys_s": secs(ru.system_time()),
        "exit_code": exit,
        "error": error,
    });
    fs::write(&out, v.to_string()).expect("write measurement");
}

// ---------------------------------------------------------------------------------------------
// Settings

struct Settings {
    manifest: PathBuf,
    target: PathBuf,
    captures: PathBuf,
    work: PathBuf,
    sizes: Vec<f64>,
    shapes: Vec<gen::Shape>,
    seed: u64,
    variants: bool,
    variant_size: f64,
    runs: u32,
    tshark_mode: String,
    tshark_max_s: f64,
    /// Output formats measured besides JSON.
    formats: Vec<&'static str>,
}

fn env_or(name: &str, default: &str) -> String {
    env::var(name).unwrap_or_else(|_| default.to_string())
}

impl Settings {
    fn from_env() -> Self {
        let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let target = match env::var_os("CARGO_TARGET_DIR").map(PathBuf::from) {
            Some(p) if p.is_absolute() => p,
            Some(p) => manifest.join(p),
            None => manifest.join("target"),
        };
        let mut sizes: Vec<f64> = env_or("TLSDIAG_BENCH_SIZES", "50,200,1000")
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| {
                s.trim()
                    .parse::<f64>()
                    .expect("TLSDIAG_BENCH_SIZES: sizes in MB")
            })
            .collect();
        sizes.sort_by(f64::total_cmp);
        sizes.dedup();
        Settings {
            captures: target.join("bench-captures"),
            work: target.join("bench-work"),
            manifest,
            target,
            sizes,
            shapes: env_or("TLSDIAG_BENCH_SHAPES", "bulk,dense")
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| match s {
                    "bulk" => gen::Shape::Bulk,
                    "dense" => gen::Shape::Dense,
                    _ => panic!("TLSDIAG_BENCH_SHAPES: bulk or dense, not {s:?}"),
                })
                .collect(),
            seed: env_or("TLSDIAG_BENCH_SEED", "1")
                .parse()
                .expect("TLSDIAG_BENCH_SEED"),
            variants: env_or("TLSDIAG_BENCH_VARIANTS", "1") != "0",
            variant_size: env_or("TLSDIAG_BENCH_VARIANT_SIZE", "200")
                .parse()
                .expect("TLSDIAG_BENCH_VARIANT_SIZE"),
            runs: env_or("TLSDIAG_BENCH_RUNS", "1")
                .parse()
                .expect("TLSDIAG_BENCH_RUNS"),
            tshark_mode: env_or("TLSDIAG_BENCH_TSHARK", "auto"),
            tshark_max_s: env_or("TLSDIAG_BENCH_TSHARK_MAX_S", "300")
                .parse()
                .expect("TLSDIAG_BENCH_TSHARK_MAX_S"),
            formats: env_or("TLSDIAG_BENCH_FORMATS", "")
                .split(',')
                .map(str::trim)
                .filter(|f| !f.is_empty())
                .map(|f| {
                    ["ndjson", "text", "markdown"]
                        .into_iter()
                        .find(|k| *k == f)
                        .expect("TLSDIAG_BENCH_FORMATS: ndjson, text or markdown")
                })
                .collect(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Captures

struct Capture {
    /// Short name for the table, e.g. `bulk-200MB.pcapng`.
    label: String,
    shape: &'static str,
    path: PathBuf,
    format: String,
    disk_bytes: u64,
    /// Uncompressed capture size (what MB/s is computed on).
    data_bytes: u64,
    /// The generator's sidecar (expected counts).
    truth: Value,
}

fn size_label(mb: f64) -> String {
    if mb.fract() == 0.0 {
        format!("{mb:.0}MB")
    } else {
        format!("{mb}MB")
    }
}

/// Generates the capture unless a complete cached copy exists. Returns it with its sidecar.
fn ensure_capture(s: &Settings, shape: gen::Shape, mb: f64, format: gen::Format) -> Capture {
    // The bulk shape keeps the name it had before there were shapes, so its cache stays valid.
    let prefix = match shape {
        gen::Shape::Bulk => String::new(),
        other => format!("{}-", other.name()),
    };
    let stem = format!(
        "tlsdiag-{prefix}{}-seed{}-g{}",
        size_label(mb).to_lowercase(),
        s.seed,
        gen::GENERATOR_VERSION
    );
    let path = s.captures.join(format!("{stem}.{}", format.ext()));
    let sidecar = s.captures.join(format!("{stem}.{}.json", format.ext()));
    let cached = fs::read(&sidecar)
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .filter(|v| {
            let len = fs::metadata(&path).map(|m| m.len()).ok();
            v["bytes"].as_u64().is_some() && v["bytes"].as_u64() == len
        });
    let truth = match cached {
        Some(v) => {
            eprintln!("reusing {}", path.display());
            v
        }
        None => {
            let _ = fs::remove_file(&sidecar);
            let _ = fs::remove_file(gz_path(&path));
            let tmp = path.with_extension("tmp");
            let cfg = gen::Config::new((mb * MB) as u64, s.seed, format, shape);
            eprint!("generating {} ... ", path.display());
            let rep = gen::generate(&cfg, &tmp).expect("generate capture");
            fs::rename(&tmp, &path).expect("rename generated capture");
            eprintln!(
                "{:.1} MB, {} packets, {} connections (max {} open) in {:.2} s = {:.0} MB/s",
                rep.bytes as f64 / MB,
                rep.packets,
                rep.connections,
                rep.max_open_connections,
                rep.generation_seconds,
                rep.bytes as f64 / MB / rep.generation_seconds
            );
            let text = rep.to_json();
            fs::write(&sidecar, &text).expect("write sidecar");
            serde_json::from_str(&text).expect("sidecar is valid JSON")
        }
    };
    let bytes = truth["bytes"].as_u64().unwrap_or(0);
    Capture {
        label: format!("{}-{}.{}", shape.name(), size_label(mb), format.ext()),
        shape: shape.name(),
        path,
        format: format.ext().to_string(),
        disk_bytes: bytes,
        data_bytes: bytes,
        truth,
    }
}

fn gz_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".gz");
    PathBuf::from(p)
}

/// `gzip -c` of a capture (default level), cached beside it.
fn ensure_gz(src: &Capture) -> Option<Capture> {
    let gz = gz_path(&src.path);
    if !gz.exists() {
        let tmp = gz.with_extension("gz.tmp");
        eprint!("gzip {} ... ", src.path.display());
        let start = Instant::now();
        let out = File::create(&tmp).expect("create .gz.tmp");
        let st = Command::new("gzip")
            .arg("-c")
            .arg(&src.path)
            .stdout(out)
            .status();
        match st {
            Ok(s) if s.success() => {
                fs::rename(&tmp, &gz).expect("rename .gz");
                eprintln!("{:.1} s", start.elapsed().as_secs_f64());
            }
            other => {
                let _ = fs::remove_file(&tmp);
                eprintln!("failed ({other:?}); skipping the .gz variant");
                return None;
            }
        }
    } else {
        eprintln!("reusing {}", gz.display());
    }
    Some(Capture {
        label: format!("{}.gz", src.label),
        shape: src.shape,
        disk_bytes: fs::metadata(&gz).map(|m| m.len()).unwrap_or(0),
        path: gz,
        format: format!("{}.gz", src.format),
        data_bytes: src.data_bytes,
        truth: src.truth.clone(),
    })
}

/// Reads the file once so every tool starts from the same warm page cache.
fn warm(path: &Path) {
    let mut f = File::open(path).expect("open capture");
    let mut buf = vec![0u8; 1 << 20];
    while f.read(&mut buf).expect("read capture") > 0 {}
}

// ---------------------------------------------------------------------------------------------
// Measuring

#[derive(Clone, Debug, Default)]
struct Meas {
    wall_s: f64,
    rss_mib: f64,
    user_s: f64,
    sys_s: f64,
    /// None when the tool ran and exited 0.
    error: Option<String>,
}

/// Runs `cmd` under the `--measure` wrapper; stdout to `stdout` (None: /dev/null), stderr to
/// `stderr_path`.
fn measure(
    s: &Settings,
    tag: &str,
    cmd: &[OsString],
    envs: &[(&str, &Path)],
    stdout: Option<&Path>,
    stderr_path: &Path,
) -> Meas {
    let meas_path = s.work.join(format!("{tag}.measure.json"));
    let _ = fs::remove_file(&meas_path);
    let me = env::current_exe().expect("current_exe");
    let mut c = Command::new(me);
    c.arg("--measure").arg(&meas_path).arg("--").args(cmd);
    for (k, v) in envs {
        c.env(k, v);
    }
    c.stdin(Stdio::null());
    c.stdout(match stdout {
        Some(p) => Stdio::from(File::create(p).expect("create stdout file")),
        None => Stdio::null(),
    });
    c.stderr(Stdio::from(
        File::create(stderr_path).expect("create stderr file"),
    ));
    let st = c.status().expect("run the --measure wrapper");
    let v: Value = match fs::read(&meas_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
    {
        Some(v) => v,
        None => {
            return Meas {
                error: Some(format!("measure wrapper failed: {st}")),
                ..Meas::default()
            }
        }
    };
    let error = match (v["exit_code"].as_i64(), v["error"].as_str()) {
        (Some(0), _) => None,
        (Some(c), _) => Some(format!("exit {c}: {}", first_line(stderr_path))),
        (None, Some(e)) => Some(e.to_string()),
        (None, None) => Some("unknown failure".to_string()),
    };
    Meas {
        wall_s: v["wall_s"].as_f64().unwrap_or(0.0),
        rss_mib: v["max_rss_kib"].as_f64().unwrap_or(0.0) / 1024.0,
        user_s: v["user_s"].as_f64().unwrap_or(0.0),
        sys_s: v["sys_s"].as_f64().unwrap_or(0.0),
        error,
    }
}

/// Best of `runs` (lowest wall time; highest peak RSS).
fn measure_best(
    s: &Settings,
    tag: &str,
    cmd: &[OsString],
    envs: &[(&str, &Path)],
    stdout: Option<&Path>,
    stderr_path: &Path,
) -> Meas {
    let mut best: Option<Meas> = None;
    for _ in 0..s.runs.max(1) {
        let m = measure(s, tag, cmd, envs, stdout, stderr_path);
        if m.error.is_some() {
            return m;
        }
        best = Some(match best {
            None => m,
            Some(b) => Meas {
                rss_mib: b.rss_mib.max(m.rss_mib),
                ..if m.wall_s < b.wall_s { m } else { b }
            },
        });
    }
    best.unwrap_or_default()
}

/// The first non-warning line of a stderr file, shortened.
fn first_line(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let line = text
        .lines()
        .find(|l| !l.trim().is_empty() && !l.contains("Running as user"))
        .unwrap_or("(no stderr)");
    line.chars().take(160).collect()
}

// ---------------------------------------------------------------------------------------------
// Tools

fn resolve_tlsdiag(s: &Settings) -> Result<PathBuf, String> {
    if let Some(p) = env::var_os("TLSDIAG_BIN") {
        return Ok(PathBuf::from(p));
    }
    if let Some(p) = option_env!("CARGO_BIN_EXE_tlsdiag") {
        if Path::new(p).exists() {
            return Ok(PathBuf::from(p));
        }
    }
    let p = s.target.join("release").join("tlsdiag");
    if p.exists() {
        return Ok(p);
    }
    eprintln!("tlsdiag not built: running cargo build --release --bin tlsdiag");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let st = Command::new(cargo)
        .args(["build", "--release", "--bin", "tlsdiag"])
        .current_dir(&s.manifest)
        .status();
    match st {
        Ok(st) if st.success() && p.exists() => Ok(p),
        Ok(st) => Err(format!("cargo build --release failed ({st})")),
        Err(e) => Err(format!("cannot run cargo: {e}")),
    }
}

fn tshark_version() -> Option<String> {
    let out = Command::new("tshark")
        .arg("--version")
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Some(text.lines().next()?.trim_end_matches('.').to_string())
}

/// The part of tlsdiag's JSON output the benchmark checks (other fields are skipped).
#[derive(serde::Deserialize)]
struct TlsdiagOutput {
    summary: TlsdiagSummary,
}

#[derive(serde::Deserialize)]
struct TlsdiagSummary {
    connections: u64,
    verdicts: BTreeMap<String, u64>,
}

/// Compares tlsdiag's summary with the generator's truth. Ok(()) is a match.
fn compare(truth: &Value, got: &TlsdiagSummary) -> Result<(), Vec<String>> {
    let want: BTreeMap<String, u64> = truth["verdicts"]
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default();
    let keys: BTreeSet<&String> = want.keys().chain(got.verdicts.keys()).collect();
    let mut diffs = Vec::new();
    for k in keys {
        let w = want.get(k).copied().unwrap_or(0);
        let g = got.verdicts.get(k).copied().unwrap_or(0);
        if w != g {
            diffs.push(format!("{k}: expected {w}, got {g}"));
        }
    }
    let w = truth["connections"].as_u64().unwrap_or(0);
    if w != got.connections {
        diffs.push(format!(
            "connections: expected {w}, got {}",
            got.connections
        ));
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(diffs)
    }
}

// ---------------------------------------------------------------------------------------------
// Main run

struct Row {
    file: String,
    tool: &'static str,
    disk_mb: f64,
    data_mb: f64,
    packets: u64,
    /// TCP connections in the capture (the sidecar's count).
    connections: u64,
    meas: Option<Meas>,
    note: String,
    verdicts_match: Option<bool>,
    diffs: Vec<String>,
}

impl Row {
    fn ok(&self) -> Option<&Meas> {
        self.meas.as_ref().filter(|m| m.error.is_none())
    }
}

fn run() {
    let s = Settings::from_env();
    fs::create_dir_all(&s.captures).expect("create target/bench-captures");
    fs::create_dir_all(&s.work).expect("create target/bench-work");

    // 1. captures
    let mut caps: Vec<Capture> = Vec::new();
    for &shape in &s.shapes {
        for &mb in &s.sizes {
            let pcap = ensure_capture(&s, shape, mb, gen::Format::Pcap);
            let variants = s.variants && shape == gen::Shape::Bulk && mb == s.variant_size;
            let ng = variants.then(|| ensure_capture(&s, shape, mb, gen::Format::Pcapng));
            let gz = if variants { ensure_gz(&pcap) } else { None };
            caps.push(pcap);
            caps.extend(ng);
            caps.extend(gz);
        }
    }

    // 2. tools
    let tlsdiag = resolve_tlsdiag(&s);
    if let Err(e) = &tlsdiag {
        eprintln!("tlsdiag unavailable: {e}");
    }
    let tshark = if s.tshark_mode == "off" {
        None
    } else {
        tshark_version()
    };
    let tshark_cfg = s.work.join("tshark-config");
    fs::create_dir_all(&tshark_cfg).expect("create tshark config dir");
    let mut tshark_rate: Option<f64> = None;

    // 3. measure
    let mut rows: Vec<Row> = Vec::new();
    for cap in &caps {
        eprintln!(
            "measuring {} ({:.1} MB on disk)",
            cap.label,
            cap.disk_bytes as f64 / MB
        );
        warm(&cap.path);
        let packets = cap.truth["packets"].as_u64().unwrap_or(0);
        let connections = cap.truth["connections"].as_u64().unwrap_or(0);
        let row = |tool, meas, note: String| Row {
            file: cap.label.clone(),
            tool,
            disk_mb: cap.disk_bytes as f64 / MB,
            data_mb: cap.data_bytes as f64 / MB,
            packets,
            connections,
            meas,
            note,
            verdicts_match: None,
            diffs: Vec::new(),
        };
        let tag = cap.label.replace('.', "_");
        let file = cap.path.as_os_str().to_owned();

        // walk
        let out = s.work.join(format!("{tag}.walk.json"));
        let me = env::current_exe().expect("current_exe").into_os_string();
        let cmd = [me, "--walk".into(), file.clone()];
        let m = measure_best(
            &s,
            &format!("{tag}.walk"),
            &cmd,
            &[],
            Some(&out),
            &err_path(&s, &tag, "walk"),
        );
        let mut note = String::new();
        if m.error.is_none() {
            let v: Value =
                serde_json::from_slice(&fs::read(&out).unwrap_or_default()).unwrap_or_default();
            if v["packets"].as_u64() != Some(packets) {
                note = format!(
                    "walk saw {:?} packets, sidecar says {packets}",
                    v["packets"].as_u64()
                );
            }
        }
        rows.push(row("walk", Some(m), note));

        // tlsdiag
        match &tlsdiag {
            Ok(bin) => {
                for format in std::iter::once("json").chain(s.formats.iter().copied()) {
                    rows.push(measure_format(
                        &s, &tag, bin, &file, format, &cap.truth, &row,
                    ));
                }
            }
            Err(e) => rows.push(row("tlsdiag", None, format!("not run: {e}"))),
        }

        // tshark
        match &tshark {
            None => {}
            Some(_) => {
                let est = cap.data_bytes as f64 / MB / tshark_rate.unwrap_or(TSHARK_GUESS_MB_S);
                if s.tshark_mode != "force" && est > s.tshark_max_s {
                    rows.push(row(
                        "tshark",
                        None,
                        format!(
                            "skipped: ~{est:.0} s expected > {:.0} s (TLSDIAG_BENCH_TSHARK=force)",
                            s.tshark_max_s
                        ),
                    ));
                } else {
                    let mut cmd: Vec<OsString> = vec![
                        "tshark".into(),
                        "-r".into(),
                        file.clone(),
                        "-n".into(),
                        "-T".into(),
                        "fields".into(),
                    ];
                    for f in TSHARK_FIELDS {
                        cmd.push("-e".into());
                        cmd.push(f.into());
                    }
                    cmd.push("-Y".into());
                    cmd.push(TSHARK_FILTER.into());
                    let envs = [("WIRESHARK_CONFIG_DIR", tshark_cfg.as_path())];
                    let m = measure_best(
                        &s,
                        &format!("{tag}.tshark"),
                        &cmd,
                        &envs,
                        None,
                        &err_path(&s, &tag, "tshark"),
                    );
                    if m.error.is_none() && m.wall_s > 0.0 {
                        let rate = cap.data_bytes as f64 / MB / m.wall_s;
                        tshark_rate = Some(tshark_rate.map_or(rate, |r: f64| r.min(rate)));
                    }
                    rows.push(row("tshark", Some(m), String::new()));
                }
            }
        }
    }

    // 4. report
    print_table(&rows);
    let results = json!({
        "schema_version": 1,
        "generator_version": gen::GENERATOR_VERSION,
        "seed": s.seed,
        "machine": {
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "os": env::consts::OS,
            "arch": env::consts::ARCH,
        },
        "tlsdiag": tlsdiag.as_ref().map(|p| p.display().to_string()).map_err(Clone::clone).ok(),
        "tshark": tshark,
        "captures": caps.iter().map(|c| json!({
            "file": c.label,
            "shape": c.shape,
            "path": c.path.display().to_string(),
            "format": c.format,
            "disk_bytes": c.disk_bytes,
            "data_bytes": c.data_bytes,
            "truth": c.truth,
        })).collect::<Vec<_>>(),
        "results": rows.iter().map(|r| {
            let m = r.meas.clone().unwrap_or_default();
            let status = match (&r.meas, &m.error) {
                (None, _) => "skipped",
                (Some(_), Some(_)) => "failed",
                (Some(_), None) => "ok",
            };
            json!({
                "file": r.file,
                "tool": r.tool,
                "status": status,
                "error": m.error,
                "wall_s": r.ok().map(|m| m.wall_s),
                "user_s": r.ok().map(|m| m.user_s),
                "sys_s": r.ok().map(|m| m.sys_s),
                "mb_per_s": r.ok().map(|m| r.data_mb / m.wall_s),
                "packets_per_s": r.ok().map(|m| r.packets as f64 / m.wall_s),
                "peak_rss_mib": r.ok().map(|m| m.rss_mib),
                "packets": r.packets,
                "connections": r.connections,
                "verdicts_match": r.verdicts_match,
                "diffs": r.diffs,
                "note": r.note,
            })
        }).collect::<Vec<_>>(),
    });
    let path = s.target.join("bench-results.json");
    fs::write(
        &path,
        serde_json::to_string_pretty(&results).expect("serialize results"),
    )
    .expect("write bench-results.json");
    println!("\nresults written to {}", path.display());
}

/// tlsdiag with output format `format` (the row "tlsdiag" for JSON, else named after the
/// format, see `TLSDIAG_BENCH_FORMATS`); the counts of a JSON report or of an NDJSON run's
/// closing summary line are checked against the generator's.
fn measure_format(
    s: &Settings,
    tag: &str,
    bin: &Path,
    file: &OsString,
    format: &'static str,
    truth: &Value,
    row: &dyn Fn(&'static str, Option<Meas>, String) -> Row,
) -> Row {
    let tool = if format == "json" { "tlsdiag" } else { format };
    let out = s.work.join(format!("{tag}.{tool}.{format}"));
    let cmd: Vec<OsString> = vec![
        bin.into(),
        "--format".into(),
        format.into(),
        "--quiet".into(),
        file.clone(),
    ];
    let m = measure_best(
        s,
        &format!("{tag}.{tool}"),
        &cmd,
        &[],
        Some(&out),
        &err_path(s, tag, tool),
    );
    let mut r = row(tool, Some(m.clone()), String::new());
    if m.error.is_some() {
        return r;
    }
    let parsed = match format {
        "json" => File::open(&out).map_err(|e| e.to_string()).and_then(|f| {
            serde_json::from_reader::<_, TlsdiagOutput>(BufReader::new(f))
                .map_err(|e| e.to_string())
        }),
        "ndjson" => fs::read_to_string(&out)
            .map_err(|e| e.to_string())
            .and_then(|t| {
                let last = t.lines().last().unwrap_or_default();
                serde_json::from_str::<TlsdiagOutput>(last).map_err(|e| e.to_string())
            }),
        _ => return r,
    };
    match parsed {
        Err(e) => r.note = format!("unexpected {format} output: {e}"),
        Ok(v) => check(&mut r, truth, &v.summary),
    }
    r
}

/// Records in `r` whether tlsdiag's counts equal the generator's (MATCH, or the differences).
fn check(r: &mut Row, truth: &Value, got: &TlsdiagSummary) {
    match compare(truth, got) {
        Ok(()) => {
            r.verdicts_match = Some(true);
            r.note = "MATCH".to_string();
        }
        Err(d) => {
            r.verdicts_match = Some(false);
            r.note = format!("{} difference(s)", d.len());
            r.diffs = d;
        }
    }
}

fn err_path(s: &Settings, tag: &str, tool: &str) -> PathBuf {
    s.work.join(format!("{tag}.{tool}.stderr"))
}

fn print_table(rows: &[Row]) {
    println!();
    println!(
        "{:<22} {:<8} {:>8} {:>10} {:>8} {:>8} {:>8} {:>9} {:>9} {:>14}  note",
        "file",
        "tool",
        "disk MB",
        "packets",
        "conns",
        "wall s",
        "MB/s",
        "kpkt/s",
        "RSS MiB",
        "ratio"
    );
    for (i, r) in rows.iter().enumerate() {
        let same_file = |tool: &str| {
            rows.iter()
                .find(|o| o.file == r.file && o.tool == tool)
                .and_then(Row::ok)
                .map(|m| m.wall_s)
        };
        let ratio = match (r.tool, r.ok()) {
            ("tlsdiag" | "ndjson" | "text" | "markdown", Some(m)) => {
                same_file("walk").map(|w| format!("{:.1}x walk", m.wall_s / w))
            }
            ("tshark", Some(m)) => {
                same_file("tlsdiag").map(|t| format!("{:.1}x tlsdiag", m.wall_s / t))
            }
            _ => None,
        }
        .unwrap_or_default();
        let file = if i > 0 && rows[i - 1].file == r.file {
            ""
        } else {
            r.file.as_str()
        };
        match r.ok() {
            Some(m) => println!(
                "{:<22} {:<8} {:>8.1} {:>10} {:>8} {:>8.2} {:>8.1} {:>9.0} {:>9.1} {:>14}  {}",
                file,
                r.tool,
                r.disk_mb,
                r.packets,
                r.connections,
                m.wall_s,
                r.data_mb / m.wall_s,
                r.packets as f64 / m.wall_s / 1e3,
                m.rss_mib,
                ratio,
                r.note
            ),
            None => {
                let why = r
                    .meas
                    .as_ref()
                    .and_then(|m| m.error.clone())
                    .unwrap_or_else(|| r.note.clone());
                println!(
                    "{:<22} {:<8} {:>8.1} {:>10} {:>8} {:>8} {:>8} {:>9} {:>9} {:>14}  {}",
                    file, r.tool, r.disk_mb, r.packets, r.connections, "-", "-", "-", "-", "", why
                );
            }
        }
        for d in &r.diffs {
            println!("{:<32}{d}", "");
        }
    }
}
