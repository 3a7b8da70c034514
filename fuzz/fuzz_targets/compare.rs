//! Fuzz target `compare`: arbitrary bytes as two captures of the same connections (the first
//! four bytes, little-endian, give the length of the client-side capture; the rest is the
//! server-side one) -> `tlsdiag::compare::compare` with sides inferred and given -> all four
//! formats. Seeds: the paired samples (`*.client.pcap` + `*.server.pcap`), see seed.sh.
//!
//!   RUSTC_BOOTSTRAP=1 cargo fuzz run -a compare -- -max_total_time=1800 -timeout=10 \
//!       -rss_limit_mb=2048
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;
use tlsdiag::compare::{compare, CompareOptions};
use tlsdiag::report::{compare::render, Format, RenderOptions};

fn scratch(side: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let d = PathBuf::from("/dev/shm");
        if d.is_dir() {
            d
        } else {
            std::env::temp_dir()
        }
    });
    dir.join(format!("tlsdiag-fuzz-compare-{}-{side}.cap", std::process::id()))
}

fuzz_target!(|data: &[u8]| {
    let Some((len, rest)) = data.split_first_chunk::<4>() else {
        return;
    };
    let n = (u32::from_le_bytes(*len) as usize).min(rest.len());
    let (a, b) = rest.split_at(n);
    let (pa, pb) = (scratch("client"), scratch("server"));
    if std::fs::write(&pa, a).is_err() || std::fs::write(&pb, b).is_err() {
        return;
    }
    let (sa, sb) = (
        pa.to_string_lossy().into_owned(),
        pb.to_string_lossy().into_owned(),
    );
    for sides_given in [false, true] {
        let o = CompareOptions {
            client_side: vec![sa.clone()],
            server_side: vec![sb.clone()],
            sides_given,
            ..Default::default()
        };
        match compare(&o) {
            Ok(c) => {
                let full = RenderOptions {
                    all: true,
                    timeline: true,
                    width: Some(80),
                    color: true,
                    ..Default::default()
                };
                for format in [Format::Text, Format::Json, Format::Ndjson, Format::Markdown] {
                    let _ = render(&c, format, &RenderOptions::default());
                    let _ = render(&c, format, &full);
                }
            }
            Err(e) => {
                let msg = e.to_string();
                assert!(
                    msg.contains(&sa) || msg.contains(&sb),
                    "error without path: {msg}"
                );
            }
        }
    }
    let _ = std::fs::remove_file(&pa);
    let _ = std::fs::remove_file(&pb);
});
