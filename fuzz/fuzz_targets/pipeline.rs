//! Fuzz target `pipeline`: arbitrary bytes as a capture file -> `tlsdiag::analyze` -> all four
//! report formats; then again in live mode and with redaction, a tiny live-connection cap and
//! a spilling store; and with the samples' key logs, so that mutated captures of the keyed
//! samples drive decryption over truncated and forged protected records. The library reads paths, so each input is written to a per-process file
//! in /dev/shm (falling back to the temp dir), analysed from there and removed.
//!
//! Run from /work/main/fuzz (see Cargo.toml for details):
//!   ./seed.sh
//!   RUSTC_BOOTSTRAP=1 cargo fuzz run -a pipeline -- -max_total_time=1800 -timeout=10 \
//!       -rss_limit_mb=2048
//! Seeds: every capture in ../samples (pcap, pcapng, gzip, zstd).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;
use tlsdiag::report::{render, Format, RenderOptions};

fn scratch() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = PathBuf::from("/dev/shm");
        let dir = if dir.is_dir() {
            dir
        } else {
            std::env::temp_dir()
        };
        dir.join(format!("tlsdiag-fuzz-pipeline-{}.cap", std::process::id()))
    })
}

/// The key logs of the samples (`../samples/*.keys`), found once.
fn sample_key_logs() -> &'static [String] {
    static KEYS: OnceLock<Vec<String>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../samples");
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "keys"))
            .map(|p| p.to_string_lossy().into_owned())
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let path = scratch();
    if std::fs::write(path, data).is_err() {
        return;
    }
    let paths = [path.to_string_lossy().into_owned()];
    let result = tlsdiag::analyze(&paths, &tlsdiag::Options::default());
    // The other paths through the library: live mode (each connection handed over as it
    // settles), with redaction, a tiny live-connection cap (early eviction) and a tiny
    // in-memory store (spilled to a temporary file), a per-server rollup of one server.
    let tight = tlsdiag::Options {
        flow: tlsdiag::flow::FlowConfig {
            max_live: 2,
            ..Default::default()
        },
        memory_records: 1,
        max_servers: 1,
        redact: Some(tlsdiag::pipeline::RedactOptions {
            key: Some("fuzz".into()),
            keep_names: false,
        }),
        ..Default::default()
    };
    let mut settled = 0usize;
    let mut on_settled = |c: tlsdiag::model::Connection| settled += format!("{c:?}").len();
    let live =
        tlsdiag::pipeline::analyze_live(&paths, &tight, &mut |_, _| {}, Some(&mut on_settled));
    let spilled = tlsdiag::analyze(&paths, &tight);
    let keyed = tlsdiag::Options {
        key_logs: sample_key_logs().to_vec(),
        ..Default::default()
    };
    if let Ok(r) = tlsdiag::analyze(&paths, &keyed) {
        let _ = render(&r, Format::Json, &RenderOptions::default());
    }
    // Removed at once, so a run leaves at most one file behind (on a crash).
    let _ = std::fs::remove_file(path);
    assert_eq!(
        live.is_ok(),
        result.is_ok(),
        "live mode disagrees on readability"
    );
    if let Ok(r) = spilled {
        for format in [Format::Text, Format::Json, Format::Ndjson, Format::Markdown] {
            let _ = render(&r, format, &RenderOptions::default());
        }
    }
    match result {
        Ok(report) => {
            let plain = RenderOptions::default();
            let full = RenderOptions {
                all: true,
                timeline: true,
                width: Some(80),
                color: true,
                // Every bound on what a report explains is reached.
                max_problems: 1,
            };
            for format in [Format::Text, Format::Json, Format::Ndjson, Format::Markdown] {
                let _ = render(&report, format, &plain);
                let _ = render(&report, format, &full);
            }
        }
        Err(e) => {
            // An unreadable input is an error that names the file.
            let msg = e.to_string();
            assert!(msg.contains(paths[0].as_str()), "error without path: {msg}");
        }
    }
});
