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

/// A unique temporary directory for a test's files, removed (with them) on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tlsdiag-test-{}-{}-{tag}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("scratch directory");
        Scratch(dir)
    }

    /// Writes `bytes` to the file `name` in it; its path.
    pub fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, bytes).expect("scratch file");
        p
    }

    /// [`Scratch::write`], the path as an argument for the binary.
    pub fn file(&self, name: &str, bytes: &[u8]) -> String {
        self.write(name, bytes).display().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Deterministic pseudo-random numbers (xorshift64*): the same garbage on every run.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// `n` pseudo-random bytes.
    pub fn fill(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(n);
        v
    }
}
