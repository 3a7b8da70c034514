//! JA4: the ClientHello fingerprint (FoxIO, BSD-3-Clause spec in technical_details/JA4.md),
//! for TCP, and the per-thread memo of its hashed parts.
//!
//! Takes the lists [`super::hello`] read from the wire and hands back a [`Ja4`], 36 ASCII
//! bytes held inline.

use super::extension::ExtensionType;
use super::memo::memo;
use super::names::is_grease;
use rustc_hash::FxHashMap;
use sha2::{Digest, Sha256};
use std::cell::RefCell;
use std::fmt;

/// Length of a JA4 fingerprint: `t13d1516h2_` and two 12-digit hashes joined by `_`.
const JA4_LEN: usize = 36;
/// Length of the hashed parts, b and c: each `_` and 12 hex digits.
const HASHED_LEN: usize = 26;
/// Length of the readable part, a: `t13d1516h2`.
const PART_A_LEN: usize = JA4_LEN - HASHED_LEN;

/// A JA4 fingerprint, e.g. `t13d1516h2_8daaf6152771_e5627efa2ab1`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Ja4([u8; JA4_LEN]);

impl Ja4 {
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever written into it.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Display for Ja4 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Ja4 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ja4({})", self.as_str())
    }
}

/// What JA4 reads from a ClientHello.
#[derive(Debug, Clone, Copy)]
pub struct Ja4Input<'a> {
    pub legacy_version: u16,
    /// supported_versions, as sent.
    pub supported_versions: &'a [u16],
    /// A server_name extension was sent (even one that did not parse).
    pub has_sni: bool,
    pub first_alpn: Option<&'a [u8]>,
    /// The offered cipher suites, as sent.
    pub ciphers: &'a [u16],
    /// The extension codes, in wire order.
    pub extensions: &'a [u16],
    /// signature_algorithms, as sent.
    pub signature_algorithms: &'a [u16],
}

fn ja4_version(v: u16) -> &'static str {
    match v {
        0x0304 => "13",
        0x0303 => "12",
        0x0302 => "11",
        0x0301 => "10",
        0x0300 => "s3",
        0x0002 => "s2",
        0xfeff => "d1",
        0xfefd => "d2",
        0xfefc => "d3",
        _ => "00",
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The low `digits` hex digits of `v`, lower case, zero padded, most significant first.
fn hex_digits(v: u16, digits: u16) -> impl Iterator<Item = u8> {
    (0..digits)
        .rev()
        .map(move |i| HEX[usize::from((v >> (4 * i)) & 0xf)])
}

/// The first 12 hex digits of SHA-256 over `input`, appended to `out`.
fn push_hash12(out: &mut String, input: &[u8]) {
    for b in &Sha256::digest(input)[..6] {
        out.extend(hex_digits(u16::from(*b), 2).map(char::from));
    }
}

/// Appends `values` as comma-separated 4-digit hex to `buf` (JA4's hash input format).
fn push_hex_list(buf: &mut Vec<u8>, values: &[u16]) {
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        buf.extend(hex_digits(*v, 4));
    }
}

/// JA4's work lists, one per thread, reused: cleared, not allocated and freed, per hello.
#[derive(Debug, Default)]
struct Work {
    /// The lists the hashed parts are made of, as a key to [`JA4_HASHED`].
    key: Vec<u16>,
    /// A list without GREASE, sorted; a hash input.
    sorted: Vec<u16>,
    input: Vec<u8>,
}

thread_local! {
    static WORK: RefCell<Work> = RefCell::new(Work::default());
}

/// Distinct JA4 list sets remembered per thread: a capture's clients mostly run the same few
/// TLS stacks, so sorting, hex and SHA-256 (in software, once the largest cost of a
/// ClientHello) run once per stack rather than per connection.
const JA4_HASHED_MAX: usize = 1024;

thread_local! {
    static JA4_HASHED: RefCell<FxHashMap<Box<[u16]>, [u8; HASHED_LEN]>> =
        RefCell::new(FxHashMap::default());
}

/// JA4 of a TCP ClientHello.
///
/// Runs once per ClientHello on the packet thread, so it builds the hash inputs in reused
/// buffers: the spec sorts 4-digit lower-case hex strings, which orders exactly as the
/// numbers do.
pub fn ja4(input: &Ja4Input<'_>) -> Ja4 {
    let mut out = [0u8; JA4_LEN];
    let (a, hashed) = out.split_at_mut(PART_A_LEN);
    part_a(input, a);
    let mut fill = |work: &mut Work| hashed.copy_from_slice(&hashed_parts(input, work));
    WORK.with(|w| match w.try_borrow_mut() {
        Ok(mut w) => fill(&mut w),
        Err(_) => fill(&mut Work::default()),
    });
    Ja4(out)
}

/// JA4 a: transport, version, SNI or not, the two counts, the first ALPN's ends.
fn part_a(input: &Ja4Input<'_>, out: &mut [u8]) {
    let version = input
        .supported_versions
        .iter()
        .copied()
        .filter(|v| !is_grease(*v))
        .max()
        .unwrap_or(input.legacy_version);
    let count = |l: &[u16]| l.iter().filter(|v| !is_grease(**v)).count().min(99) as u8;
    let alpn = match input
        .first_alpn
        .and_then(|a| Some((*a.first()?, *a.last()?)))
    {
        Some((f, l)) if f.is_ascii_alphanumeric() && l.is_ascii_alphanumeric() => [f, l],
        // First hex digit of the first byte, last hex digit of the last byte.
        Some((f, l)) => [HEX[usize::from(f >> 4)], HEX[usize::from(l & 0xf)]],
        None => *b"00",
    };
    let mut a = Vec::with_capacity(PART_A_LEN);
    a.push(b't');
    a.extend_from_slice(ja4_version(version).as_bytes());
    a.push(if input.has_sni { b'd' } else { b'i' });
    for n in [count(input.ciphers), count(input.extensions)] {
        a.extend_from_slice(&[b'0' + n / 10, b'0' + n % 10]);
    }
    a.extend_from_slice(&alpn);
    for (o, b) in out.iter_mut().zip(a) {
        *o = b;
    }
}

/// JA4 b and c, remembered by the lists they depend on: the cipher suites without GREASE as
/// sent, the extensions without GREASE sorted (as the hash sorts them, so a client that
/// permutes them still finds its entry) and the signature algorithms as sent.
fn hashed_parts(input: &Ja4Input<'_>, work: &mut Work) -> [u8; HASHED_LEN] {
    let Work {
        key,
        sorted,
        input: buf,
    } = work;
    key.clear();
    push_counted(key, input.ciphers);
    let at = push_counted(key, input.extensions);
    key[at..].sort_unstable();
    key.extend_from_slice(input.signature_algorithms);
    memo(
        &JA4_HASHED,
        &key[..],
        JA4_HASHED_MAX,
        || key.as_slice().into(),
        || hash_parts(input, sorted, buf),
    )
}

/// Appends the count of `list`'s values without GREASE, then those values; returns where
/// they start.
fn push_counted(key: &mut Vec<u16>, list: &[u16]) -> usize {
    let at = key.len();
    key.push(0);
    key.extend(list.iter().copied().filter(|v| !is_grease(*v)));
    key[at] = u16::try_from(key.len() - at - 1).unwrap_or(u16::MAX);
    at + 1
}

/// JA4's hashed parts, b and c, each `_` and 12 hex digits.
fn hash_parts(input: &Ja4Input<'_>, sorted: &mut Vec<u16>, buf: &mut Vec<u8>) -> [u8; HASHED_LEN] {
    let mut out = String::with_capacity(HASHED_LEN);
    // JA4 b, then c: a sorted list (c: signature algorithms appended as sent), hashed.
    let mut part = |out: &mut String, list: &mut dyn Iterator<Item = u16>, tail: &[u16]| {
        out.push('_');
        sorted.clear();
        sorted.extend(list);
        if sorted.is_empty() {
            out.push_str("000000000000");
            return;
        }
        sorted.sort_unstable();
        buf.clear();
        push_hex_list(buf, sorted);
        if !tail.is_empty() {
            buf.push(b'_');
            push_hex_list(buf, tail);
        }
        push_hash12(out, buf);
    };
    part(
        &mut out,
        &mut input.ciphers.iter().copied().filter(|c| !is_grease(*c)),
        &[],
    );
    // c leaves out the extensions a already shows: SNI and ALPN.
    let shown = [ExtensionType::SERVER_NAME.0, ExtensionType::ALPN.0];
    part(
        &mut out,
        &mut input
            .extensions
            .iter()
            .copied()
            .filter(|c| !is_grease(*c) && !shown.contains(c)),
        input.signature_algorithms,
    );
    let mut hashed = [0u8; HASHED_LEN];
    for (h, b) in hashed.iter_mut().zip(out.bytes()) {
        *h = b;
    }
    hashed
}
