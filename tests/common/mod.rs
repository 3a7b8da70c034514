//! What the integration tests share: where their inputs live (`samples/`, the public corpus),
//! running the built binary, saying loudly that a test skipped, and builders for hand-made
//! packets and captures.
//!
//! `packets`, `pcap` and `tls` use std only, so the benchmark's capture generator
//! (`benches/gen`) includes the same files: the bytes of a header are built in one place.

// Each test binary uses a part of this module.
#![allow(dead_code)]
#![allow(clippy::expect_used)]

pub mod packets;
pub mod pcap;
pub mod tls;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The checkout's `samples/` directory.
pub fn samples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("samples")
}

/// The path of `samples/<name>`, as an argument for the binary or the library.
pub fn sample(name: &str) -> String {
    samples_dir().join(name).display().to_string()
}

/// The environment variable naming the public corpus directory (the one holding `public/` and
/// `facts/`); by default it is `../shared/corpus` beside the checkout.
pub const CORPUS_ENV: &str = "TLSDIAG_CORPUS";

/// The public corpus directory, whether or not it exists: `$TLSDIAG_CORPUS`, else
/// `../shared/corpus` relative to the checkout.
pub fn corpus_dir() -> PathBuf {
    match std::env::var_os(CORPUS_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"),
    }
}

/// The corpus's `public/` captures directory, or why it is not there (for a test to say it
/// skips). A `TLSDIAG_CORPUS` naming no corpus is a mistake, not a reason to skip: it panics.
pub fn corpus_public() -> Result<PathBuf, String> {
    let dir = corpus_dir();
    let public = dir.join("public");
    if public.is_dir() {
        return Ok(public);
    }
    assert!(
        std::env::var_os(CORPUS_ENV).is_none_or(|v| v.is_empty()),
        "{CORPUS_ENV}={} holds no public/ directory",
        dir.display()
    );
    Err(format!(
        "no public corpus at {} (set {CORPUS_ENV} to the corpus directory, the one holding \
         public/ and facts/)",
        dir.display()
    ))
}

/// Says on the terminal, even when the test passes, that `test` did not run and why.
pub fn skipped(test: &str, why: &str) {
    say(&format!("SKIPPED {test}: {why}\n"));
}

/// Says on the terminal, even when the test passes, that `test` ran with less than usual.
pub fn narrowed(test: &str, why: &str) {
    say(&format!("NOTE {test}: {why}\n"));
}

/// The test harness captures `println!` and `eprintln!` and shows them only for failing tests,
/// so this writes to the process's standard error directly, in one write so that the line is
/// not cut by the harness's own output.
fn say(line: &str) {
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// Runs the built binary with `args`: (exit status, stdout, stderr); -1 when killed.
pub fn bin(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tlsdiag"))
        .args(args)
        .output()
        .expect("the tlsdiag binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
