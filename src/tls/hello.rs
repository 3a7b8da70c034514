//! Hello messages and certificates: what a ClientHello offers, what a ServerHello chose, who
//! the leaf certificate names, and the client's JA4 fingerprint.
//!
//! tls-parser frames the messages; the extension block is also walked here with a bounds-checked
//! cursor because JA4 needs every extension code in wire order and tls-parser returns the
//! key_share extension raw and does not know the ML-KEM hybrid groups.

use super::names::{
    deserialize_name, deserialize_names, group_name, is_grease, version_name, Name,
};
use rustc_hash::FxHashMap;
use sha2::{Digest, Sha256};
use std::borrow::Borrow;
use std::cell::RefCell;
use std::ops::Range;
use std::sync::Arc;
use tls_parser::{TlsMessage, TlsMessageHandshake};

/// A cursor whose reads return `None` instead of running off the end.
pub(crate) struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(rest: &'a [u8]) -> Self {
        Cursor { rest }
    }
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.rest.len() {
            return None;
        }
        let (a, b) = self.rest.split_at(n);
        self.rest = b;
        Some(a)
    }
    pub(crate) fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    pub(crate) fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }
}

/// What a ClientHello offered.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClientHelloInfo {
    /// Record-layer version of the record that carried it.
    #[serde(deserialize_with = "deserialize_name")]
    pub record_version: Name,
    /// The legacy_version field.
    #[serde(deserialize_with = "deserialize_name")]
    pub legacy_version: Name,
    /// supported_versions, GREASE included, as sent.
    #[serde(deserialize_with = "deserialize_names")]
    pub supported_versions: Vec<Name>,
    /// Server name and ALPN protocols, escaped for display ([`crate::escape::text`]).
    pub sni: Option<String>,
    pub alpn: Vec<String>,
    pub cipher_suites: usize,
    /// Groups of the key shares offered, by name.
    #[serde(deserialize_with = "deserialize_names")]
    pub key_share_groups: Vec<Name>,
    pub ja4: Option<String>,
    /// An SSLv2-format (pre-TLS) hello.
    pub sslv2_format: bool,
    /// Size of the handshake message.
    pub length: usize,
}

/// Length of a JA4 fingerprint: `t13d1516h2_` and two 12-digit hashes joined by `_`.
const JA4_LEN: usize = 36;

/// A ClientHello as the packet thread keeps it until its connection is summarised: numbers
/// where reports show names, its texts in one string and JA4 inline, so two allocations where
/// [`ClientHelloInfo`] takes a dozen (a connection waiting on a silent server keeps it for as
/// long as it waits). [`ClientHelloFacts::info`] makes the report's form.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientHelloFacts {
    record_version: u16,
    /// None when the hello could not be parsed.
    legacy_version: Option<u16>,
    /// supported_versions (GREASE included, as sent), then the groups of the key shares.
    lists: Box<[u16]>,
    versions: u16,
    /// The server name (when `sni`), then each ALPN protocol, escaped
    /// ([`crate::escape::text`]), each followed by a NUL (which escaped text never holds).
    texts: Box<str>,
    sni: bool,
    cipher_suites: u32,
    ja4: Option<[u8; JA4_LEN]>,
    sslv2_format: bool,
    length: u32,
}

impl ClientHelloFacts {
    /// A ClientHello message that could not be parsed: only where it came and its size.
    pub fn unparsed(record_version: u16, length: usize) -> Self {
        ClientHelloFacts {
            record_version,
            length: u32::try_from(length).unwrap_or(u32::MAX),
            ..Default::default()
        }
    }

    /// The report's form.
    pub fn info(&self) -> ClientHelloInfo {
        let (versions, groups) = self
            .lists
            .split_at(usize::from(self.versions).min(self.lists.len()));
        let mut texts = self.texts.split_terminator('\0').map(String::from);
        ClientHelloInfo {
            record_version: version_name(self.record_version),
            legacy_version: self.legacy_version.map(version_name).unwrap_or_default(),
            supported_versions: versions.iter().map(|v| version_name(*v)).collect(),
            sni: if self.sni { texts.next() } else { None },
            alpn: texts.collect(),
            cipher_suites: self.cipher_suites as usize,
            key_share_groups: groups.iter().map(|g| group_name(*g)).collect(),
            // ASCII, as written by `ja4`.
            ja4: self
                .ja4
                .and_then(|j| std::str::from_utf8(&j).ok().map(String::from)),
            sslv2_format: self.sslv2_format,
            length: self.length as usize,
        }
    }
}

/// Parses a complete ClientHello handshake message (type, length and body).
pub fn parse_client_hello(msg: &[u8], record_version: u16) -> Option<ClientHelloFacts> {
    let (_, parsed) = tls_parser::parse_tls_message_handshake(msg).ok()?;
    let TlsMessage::Handshake(TlsMessageHandshake::ClientHello(ch)) = parsed else {
        return None;
    };
    let mut facts = ClientHelloFacts {
        record_version,
        legacy_version: Some(ch.version.0),
        cipher_suites: ch.ciphers.iter().filter(|c| !is_grease(c.0)).count() as u32,
        length: u32::try_from(msg.len()).unwrap_or(u32::MAX),
        ..Default::default()
    };
    let block = ch.ext.unwrap_or(&[]);
    let mut fill = |raw: &mut RawExtensions| {
        walk_extensions(block, raw);
        // Escaped once here, as reports show them, each followed by a NUL: one allocation
        // of the exact size unless something needs escaping.
        let named = || raw.sni.iter().chain(&raw.alpn);
        let mut texts = String::with_capacity(named().map(|r| r.len() + 1).sum());
        for r in named() {
            let text = String::from_utf8_lossy(block.get(r.clone()).unwrap_or(&[]));
            crate::escape::push_text(&mut texts, &text);
            texts.push('\0');
        }
        facts.texts = texts.into_boxed_str();
        facts.sni = raw.sni.is_some();
        facts.versions = u16::try_from(raw.supported_versions.len()).unwrap_or(u16::MAX);
        facts.lists = raw
            .supported_versions
            .iter()
            .take(usize::from(facts.versions))
            .chain(&raw.key_share_groups)
            .copied()
            .collect();
        raw.ciphers.clear();
        raw.ciphers.extend(ch.ciphers.iter().map(|c| c.0));
        facts.ja4 = Some(ja4(ch.version.0, block, raw));
    };
    RAW_EXTENSIONS.with(|r| match r.try_borrow_mut() {
        Ok(mut raw) => fill(&mut raw),
        Err(_) => fill(&mut RawExtensions::default()),
    });
    Some(facts)
}

/// Extension facts read straight from the wire in one pass (names as byte ranges of the
/// extension block), and JA4's work lists. One per thread, reused: a ClientHello's dozen
/// lists are cleared, not allocated and freed, on the packet thread.
#[derive(Debug, Default)]
struct RawExtensions {
    codes: Vec<u16>,
    has_sni: bool,
    /// First name of the server_name list, whatever its type.
    sni: Option<Range<usize>>,
    alpn: Vec<Range<usize>>,
    supported_versions: Vec<u16>,
    signature_algorithms: Vec<u16>,
    key_share_groups: Vec<u16>,
    /// The offered cipher suites, as sent.
    ciphers: Vec<u16>,
    /// JA4: a list without GREASE, sorted; a hash input.
    sorted: Vec<u16>,
    input: Vec<u8>,
    /// JA4: the lists its hashed parts are made of, as a key to [`JA4_HASHED`].
    key: Vec<u16>,
}

thread_local! {
    static RAW_EXTENSIONS: RefCell<RawExtensions> = RefCell::new(RawExtensions::default());
}

/// Where `part`, a subslice of `block`, lies in it.
fn range_in(block: &[u8], part: &[u8]) -> Range<usize> {
    let start = (part.as_ptr() as usize).saturating_sub(block.as_ptr() as usize);
    start..start + part.len()
}

/// Reads the extension block of a ClientHello into `out`, forgetting the previous one.
fn walk_extensions(block: &[u8], out: &mut RawExtensions) {
    out.codes.clear();
    out.has_sni = false;
    out.sni = None;
    out.alpn.clear();
    out.supported_versions.clear();
    out.signature_algorithms.clear();
    out.key_share_groups.clear();
    let mut c = Cursor::new(block);
    while !c.is_empty() {
        let (Some(code), Some(len)) = (c.u16(), c.u16()) else {
            break;
        };
        let Some(data) = c.take(usize::from(len)) else {
            break;
        };
        out.codes.push(code);
        let mut d = Cursor::new(data);
        match code {
            0x0000 => {
                out.has_sni = true;
                // server_name_list: u16 len, then (u8 type, u16 len, name)
                if let (Some(_), Some(_), Some(n)) = (d.u16(), d.u8(), d.u16()) {
                    out.sni = d.take(usize::from(n)).map(|p| range_in(block, p));
                }
            }
            0x0010 => {
                // protocol_name_list: u16 len, then u8-length strings
                if let Some(n) = d.u16() {
                    if let Some(list) = d.take(usize::from(n)) {
                        let mut l = Cursor::new(list);
                        while let Some(len) = l.u8() {
                            match l.take(usize::from(len)) {
                                Some(p) => out.alpn.push(range_in(block, p)),
                                None => break,
                            }
                        }
                    }
                }
            }
            0x002b => {
                if let Some(n) = d.u8() {
                    if let Some(list) = d.take(usize::from(n)) {
                        out.supported_versions.extend(
                            list.chunks_exact(2)
                                .map(|p| u16::from_be_bytes([p[0], p[1]])),
                        );
                    }
                }
            }
            0x000d => {
                if let Some(n) = d.u16() {
                    if let Some(list) = d.take(usize::from(n)) {
                        out.signature_algorithms.extend(
                            list.chunks_exact(2)
                                .map(|p| u16::from_be_bytes([p[0], p[1]])),
                        );
                    }
                }
            }
            0x0033 => {
                if let Some(n) = d.u16() {
                    if let Some(list) = d.take(usize::from(n)) {
                        let mut l = Cursor::new(list);
                        while let (Some(g), Some(klen)) = (l.u16(), l.u16()) {
                            if l.take(usize::from(klen)).is_none() {
                                break;
                            }
                            out.key_share_groups.push(g);
                        }
                    }
                }
            }
            _ => {}
        }
    }
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

/// The first 12 hex digits of SHA-256 over `input`, appended to `out`.
fn push_hash12(out: &mut String, input: &[u8]) {
    for b in &Sha256::digest(input)[..6] {
        out.extend(hex_digits(u16::from(*b), 2).map(char::from));
    }
}

/// `compute()`, remembered in a per-thread `cache` of at most `max` entries under the key
/// `own()` makes of `key`; when full, one arbitrary entry makes room (more distinct keys than
/// entries lowers the hit rate gradually instead of emptying the cache at every turn).
fn memo<K, Q, V>(
    cache: &'static std::thread::LocalKey<RefCell<FxHashMap<K, V>>>,
    key: &Q,
    max: usize,
    own: impl FnOnce() -> K,
    compute: impl FnOnce() -> V,
) -> V
where
    K: Borrow<Q> + std::hash::Hash + Eq + Clone,
    Q: std::hash::Hash + Eq + ?Sized,
    V: Clone,
{
    cache.with(|cache| {
        let Ok(mut cache) = cache.try_borrow_mut() else {
            return compute();
        };
        if let Some(v) = cache.get(key) {
            return v.clone();
        }
        let v = compute();
        if cache.len() >= max {
            if let Some(k) = cache.keys().next().cloned() {
                cache.remove(k.borrow());
            }
        }
        cache.insert(own(), v.clone());
        v
    })
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The low `digits` hex digits of `v`, lower case, zero padded, most significant first.
fn hex_digits(v: u16, digits: u16) -> impl Iterator<Item = u8> {
    (0..digits)
        .rev()
        .map(move |i| HEX[usize::from((v >> (4 * i)) & 0xf)])
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

/// JA4 (FoxIO, BSD-3-Clause spec in technical_details/JA4.md) for a TCP ClientHello.
///
/// Runs once per ClientHello on the packet thread, so it builds the hash inputs in one reused
/// buffer: the spec sorts 4-digit lower-case hex strings, which orders exactly as the numbers do.
fn ja4(legacy_version: u16, block: &[u8], ext: &mut RawExtensions) -> [u8; JA4_LEN] {
    let version = ext
        .supported_versions
        .iter()
        .copied()
        .filter(|v| !is_grease(*v))
        .max()
        .unwrap_or(legacy_version);
    // JA4 b and c depend on the lists alone: the cipher suites without GREASE as sent, the
    // extensions without GREASE sorted (as the hash sorts them, so a client that permutes
    // them still finds its entry) and the signature algorithms as sent.
    let mut key = std::mem::take(&mut ext.key);
    key.clear();
    let mut counts = [0; 2];
    for (list, n) in [&ext.ciphers, &ext.codes].into_iter().zip(&mut counts) {
        let at = key.len();
        key.push(0);
        key.extend(list.iter().copied().filter(|v| !is_grease(*v)));
        *n = key.len() - at - 1;
        key[at] = u16::try_from(*n).unwrap_or(u16::MAX);
    }
    let codes = key.len() - counts[1]..;
    key[codes].sort_unstable();
    key.extend_from_slice(&ext.signature_algorithms);
    let [n_ciphers, n_codes] = counts;
    let mut out = [0u8; JA4_LEN];
    out[0] = b't';
    for (o, b) in out[1..3].iter_mut().zip(ja4_version(version).bytes()) {
        *o = b;
    }
    out[3] = if ext.has_sni { b'd' } else { b'i' };
    for (i, n) in [n_ciphers, n_codes].into_iter().enumerate() {
        let n = n.min(99) as u8;
        out[4 + 2 * i] = b'0' + n / 10;
        out[5 + 2 * i] = b'0' + n % 10;
    }
    let alpn = ext.alpn.first().and_then(|r| block.get(r.clone()));
    (out[8], out[9]) = match alpn.and_then(|a| Some((*a.first()?, *a.last()?))) {
        Some((f, l)) => {
            if f.is_ascii_alphanumeric() && l.is_ascii_alphanumeric() {
                (f, l)
            } else {
                // First hex digit of the first byte, last hex digit of the last byte.
                (HEX[usize::from(f >> 4)], HEX[usize::from(l & 0xf)])
            }
        }
        _ => (b'0', b'0'),
    };
    let hashed = memo(
        &JA4_HASHED,
        &key[..],
        JA4_HASHED_MAX,
        || key.as_slice().into(),
        || ja4_hashed(ext),
    );
    ext.key = key;
    out[10..].copy_from_slice(&hashed);
    out
}

/// Distinct JA4 list sets remembered per thread: a capture's clients mostly run the same few
/// TLS stacks, so sorting, hex and SHA-256 (in software, once the largest cost of a
/// ClientHello) run once per stack rather than per connection.
const JA4_HASHED_MAX: usize = 1024;

thread_local! {
    static JA4_HASHED: RefCell<FxHashMap<Box<[u16]>, [u8; 26]>> =
        RefCell::new(FxHashMap::default());
}

/// JA4's hashed parts, b and c, each `_` and 12 hex digits.
fn ja4_hashed(ext: &mut RawExtensions) -> [u8; 26] {
    let mut out = String::with_capacity(26);
    let (sorted, input) = (&mut ext.sorted, &mut ext.input);
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
        input.clear();
        push_hex_list(input, sorted);
        if !tail.is_empty() {
            input.push(b'_');
            push_hex_list(input, tail);
        }
        push_hash12(out, input);
    };
    part(
        &mut out,
        &mut ext.ciphers.iter().copied().filter(|c| !is_grease(*c)),
        &[],
    );
    part(
        &mut out,
        &mut ext
            .codes
            .iter()
            .copied()
            .filter(|c| !is_grease(*c) && *c != 0x0000 && *c != 0x0010),
        &ext.signature_algorithms,
    );
    let mut hashed = [0u8; 26];
    for (h, b) in hashed.iter_mut().zip(out.bytes()) {
        *h = b;
    }
    hashed
}

/// Parses an SSLv2-format CLIENT-HELLO record body (after the 2-byte length).
pub fn parse_sslv2_client_hello(body: &[u8]) -> Option<ClientHelloFacts> {
    let mut c = Cursor::new(body);
    let msg_type = c.u8()?;
    if msg_type != 1 {
        return None;
    }
    let version = c.u16()?;
    let cipher_len = c.u16()?;
    Some(ClientHelloFacts {
        record_version: 0x0002,
        legacy_version: Some(version),
        cipher_suites: u32::from(cipher_len) / 3,
        sslv2_format: true,
        length: u32::try_from(body.len()).unwrap_or(u32::MAX),
        ..Default::default()
    })
}

/// The RFC 8446 4.1.3 random that marks a ServerHello as a HelloRetryRequest.
pub const HRR_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

/// What a ServerHello chose.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ServerHelloInfo {
    pub legacy_version: u16,
    /// supported_versions (TLS 1.3), if present.
    pub selected_version: Option<u16>,
    pub cipher: u16,
    pub hello_retry_request: bool,
    /// Key-share group chosen (TLS 1.3).
    pub key_share_group: Option<u16>,
}

impl ServerHelloInfo {
    /// The version actually negotiated.
    pub fn version(&self) -> u16 {
        self.selected_version.unwrap_or(self.legacy_version)
    }
    /// TLS 1.3 or one of its drafts.
    pub fn is_tls13(&self) -> bool {
        let v = self.version();
        v == 0x0304 || v & 0xff00 == 0x7f00 || v == 0xfb1a
    }
}

/// Parses a complete ServerHello handshake message: tls-parser first, then our own reader for
/// the TLS 1.3 drafts tls-parser does not accept (it knows only draft 18).
pub fn parse_server_hello(msg: &[u8]) -> Option<ServerHelloInfo> {
    parse_server_hello_tls_parser(msg).or_else(|| parse_server_hello_raw(msg))
}

/// Reads extensions for the chosen version and key-share group.
fn server_extensions(block: &[u8], info: &mut ServerHelloInfo) {
    let mut c = Cursor::new(block);
    while let (Some(code), Some(len)) = (c.u16(), c.u16()) {
        let Some(data) = c.take(usize::from(len)) else {
            break;
        };
        let mut d = Cursor::new(data);
        match code {
            0x002b => info.selected_version = d.u16(),
            0x0033 | 0x0028 => info.key_share_group = d.u16(),
            _ => {}
        }
    }
}

fn parse_server_hello_raw(msg: &[u8]) -> Option<ServerHelloInfo> {
    let mut c = Cursor::new(msg);
    if c.u8()? != 2 {
        return None;
    }
    c.take(3)?;
    let version = c.u16()?;
    let random = c.take(32)?;
    // Drafts up to 21 dropped session_id and compression; 22 on put them back.
    let old_draft = (0x7f00..=0x7f15).contains(&version);
    if !old_draft {
        let sid = c.u8()?;
        c.take(usize::from(sid))?;
    }
    let cipher = c.u16()?;
    if !old_draft {
        c.u8()?;
    }
    let mut info = ServerHelloInfo {
        legacy_version: version,
        cipher,
        hello_retry_request: random == HRR_RANDOM,
        ..Default::default()
    };
    if old_draft {
        info.selected_version = Some(version);
    }
    if let Some(len) = c.u16() {
        if let Some(block) = c.take(usize::from(len)) {
            server_extensions(block, &mut info);
        }
    }
    Some(info)
}

fn parse_server_hello_tls_parser(msg: &[u8]) -> Option<ServerHelloInfo> {
    let (_, parsed) = tls_parser::parse_tls_message_handshake(msg).ok()?;
    match parsed {
        TlsMessage::Handshake(TlsMessageHandshake::ServerHello(sh)) => {
            let mut info = ServerHelloInfo {
                legacy_version: sh.version.0,
                cipher: sh.cipher.0,
                hello_retry_request: sh.random == HRR_RANDOM,
                ..Default::default()
            };
            server_extensions(sh.ext.unwrap_or(&[]), &mut info);
            Some(info)
        }
        TlsMessage::Handshake(TlsMessageHandshake::ServerHelloV13Draft18(sh)) => {
            Some(ServerHelloInfo {
                legacy_version: sh.version.0,
                selected_version: Some(sh.version.0),
                cipher: sh.cipher.0,
                ..Default::default()
            })
        }
        _ => None,
    }
}

/// The leaf certificate of a TLS <= 1.2 Certificate message. Names are escaped for display
/// ([`crate::escape::text`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CertInfo {
    pub subject: String,
    pub issuer: String,
    pub not_before: String,
    pub not_after: String,
    /// Subject alternative DNS names (at most 8).
    pub dns_names: Vec<String>,
    pub chain_length: usize,
    pub self_signed: bool,
}

/// The leaf certificate of a Certificate message, kept as DER: X.509 parsing is left to
/// [`LeafCertificate::info`], which runs when the connection is summarised, off the packet path.
/// Connections that received the same leaf share one copy of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafCertificate {
    der: Arc<[u8]>,
    chain_length: usize,
}

/// Distinct leaves the packet thread shares between connections; when full, leaves no live
/// connection holds any more are forgotten (and all of them if every one is still held).
const SHARED_LEAVES_MAX: usize = 256;

thread_local! {
    static SHARED_LEAVES: RefCell<rustc_hash::FxHashSet<Arc<[u8]>>> =
        RefCell::new(Default::default());
}

/// `der` as a shared copy: the one already kept by this thread, or a new one it keeps.
fn shared_leaf(der: &[u8]) -> Arc<[u8]> {
    SHARED_LEAVES.with(|set| {
        let Ok(mut set) = set.try_borrow_mut() else {
            return Arc::from(der);
        };
        if let Some(a) = set.get(der) {
            return Arc::clone(a);
        }
        if set.len() >= SHARED_LEAVES_MAX {
            set.retain(|a| Arc::strong_count(a) > 1);
            if set.len() >= SHARED_LEAVES_MAX {
                set.clear();
            }
        }
        let a: Arc<[u8]> = Arc::from(der);
        set.insert(Arc::clone(&a));
        a
    })
}

/// Frames a complete Certificate handshake message and keeps its leaf.
pub fn leaf_certificate(msg: &[u8]) -> Option<LeafCertificate> {
    let (_, parsed) = tls_parser::parse_tls_message_handshake(msg).ok()?;
    let TlsMessage::Handshake(TlsMessageHandshake::Certificate(cc)) = parsed else {
        return None;
    };
    let leaf = cc.cert_chain.first()?;
    Some(LeafCertificate {
        der: shared_leaf(leaf.data),
        chain_length: cc.cert_chain.len(),
    })
}

/// Distinct leaf certificates remembered per thread. A gateway talks to a handful of
/// backends, each presenting the same leaf on every connection: parsing it once per
/// connection was a sixth of the summarising thread.
const CERT_CACHE_MAX: usize = 256;

thread_local! {
    static CERT_CACHE: RefCell<FxHashMap<Arc<[u8]>, Option<CertInfo>>> =
        RefCell::new(FxHashMap::default());
}

impl LeafCertificate {
    /// What the leaf says; `None` if it is not a well-formed X.509 certificate.
    pub fn info(&self) -> Option<CertInfo> {
        let mut info = memo(
            &CERT_CACHE,
            &*self.der,
            CERT_CACHE_MAX,
            || Arc::clone(&self.der),
            || parse_leaf(&self.der),
        )?;
        info.chain_length = self.chain_length;
        Some(info)
    }
}

/// Parses a leaf certificate's DER (the chain length is the caller's to fill in).
fn parse_leaf(der: &[u8]) -> Option<CertInfo> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let mut dns_names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(d) = n {
                if dns_names.len() < 8 {
                    dns_names.push(crate::escape::text(d));
                }
            }
        }
    }
    let rfc3339 = |t: &x509_parser::time::ASN1Time| crate::timefmt::rfc3339_secs(t.timestamp());
    Some(CertInfo {
        subject: crate::escape::text(&cert.subject().to_string()),
        issuer: crate::escape::text(&cert.issuer().to_string()),
        not_before: rfc3339(&cert.validity().not_before),
        not_after: rfc3339(&cert.validity().not_after),
        dns_names,
        chain_length: 0,
        self_signed: cert.subject() == cert.issuer(),
    })
}

#[cfg(test)]
pub(crate) mod tests_support {
    /// A TLS 1.3 ClientHello as curl/OpenSSL 3 sends it (trimmed extension set).
    pub(crate) fn sample_client_hello() -> Vec<u8> {
        let mut ext = Vec::new();
        // SNI "backend.test"
        let name = b"backend.test";
        let mut sni = Vec::new();
        sni.extend_from_slice(&((name.len() + 3) as u16).to_be_bytes());
        sni.push(0);
        sni.extend_from_slice(&(name.len() as u16).to_be_bytes());
        sni.extend_from_slice(name);
        push_ext(&mut ext, 0x0000, &sni);
        // ALPN h2, http/1.1
        push_ext(&mut ext, 0x0010, b"\x00\x0c\x02h2\x08http/1.1");
        // supported_groups
        push_ext(&mut ext, 0x000a, b"\x00\x04\x11\xec\x00\x1d");
        // signature_algorithms
        push_ext(&mut ext, 0x000d, b"\x00\x04\x04\x03\x08\x04");
        // supported_versions: GREASE, 1.3, 1.2
        push_ext(&mut ext, 0x002b, b"\x06\x0a\x0a\x03\x04\x03\x03");
        // key_share: X25519MLKEM768 (4 bytes stand in for the key) and x25519
        push_ext(
            &mut ext,
            0x0033,
            b"\x00\x0e\x11\xec\x00\x02\xaa\xbb\x00\x1d\x00\x04\x01\x02\x03\x04",
        );
        let mut body = vec![0x03, 0x03];
        body.extend_from_slice(&[0x11; 32]);
        body.push(0); // session id
        body.extend_from_slice(&[0x00, 0x06, 0x13, 0x01, 0x13, 0x02, 0x2a, 0x2a]);
        body.extend_from_slice(&[0x01, 0x00]);
        body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
        body.extend_from_slice(&ext);
        let mut msg = vec![1, 0, (body.len() >> 8) as u8, body.len() as u8];
        msg.extend_from_slice(&body);
        msg
    }

    fn push_ext(out: &mut Vec<u8>, code: u16, data: &[u8]) {
        out.extend_from_slice(&code.to_be_bytes());
        out.extend_from_slice(&(data.len() as u16).to_be_bytes());
        out.extend_from_slice(data);
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::sample_client_hello;
    use super::*;

    #[test]
    fn client_hello_fields() {
        let ch = parse_client_hello(&sample_client_hello(), 0x0301)
            .map(|f| f.info())
            .expect("parses");
        assert_eq!(ch.sni.as_deref(), Some("backend.test"));
        assert_eq!(ch.alpn, vec!["h2", "http/1.1"]);
        assert_eq!(ch.cipher_suites, 2); // GREASE not counted
        assert_eq!(ch.key_share_groups, vec!["X25519MLKEM768", "x25519"]);
        assert_eq!(ch.record_version, "TLSv1.0");
        assert_eq!(ch.supported_versions[1], "TLSv1.3");
        let ja4 = ch.ja4.expect("ja4");
        // t, 1.3, SNI present, 2 ciphers, 6 extensions, ALPN h2
        assert!(ja4.starts_with("t13d0206h2_"), "{ja4}");
        assert_eq!(ja4.len(), "t13d0206h2_".len() + 12 + 1 + 12);
    }

    /// The per-thread workspace carries nothing from one ClientHello to the next.
    #[test]
    fn a_hello_without_extensions_after_a_full_one_shows_none() {
        let mut bare = vec![1, 0, 0, 41, 0x03, 0x03];
        bare.extend_from_slice(&[7; 32]);
        bare.extend_from_slice(&[0, 0, 2, 0x13, 0x01, 1, 0]);
        let full = parse_client_hello(&sample_client_hello(), 0x0301)
            .map(|f| f.info())
            .expect("full");
        let after = parse_client_hello(&bare, 0x0301)
            .map(|f| f.info())
            .expect("bare");
        assert_eq!(after.sni, None);
        assert!(after.alpn.is_empty() && after.supported_versions.is_empty());
        assert!(after.key_share_groups.is_empty());
        // sha256("1301")[:12]; no extensions: the last part is zeros.
        assert_eq!(
            after.ja4.as_deref(),
            Some("t12i010000_0f2cb44170f4_000000000000")
        );
        assert_eq!(
            parse_client_hello(&sample_client_hello(), 0x0301).map(|f| f.info()),
            Some(full)
        );
    }

    #[test]
    fn ja4_cipher_hash_matches_spec_input() {
        // JA4 b: sha256("1301,1302") truncated to 12 hex chars
        let ch = parse_client_hello(&sample_client_hello(), 0x0301)
            .map(|f| f.info())
            .expect("parses");
        let ja4 = ch.ja4.expect("ja4");
        let b = ja4.split('_').nth(1).expect("b part");
        // python3 -c "import hashlib;print(hashlib.sha256(b'1301,1302').hexdigest()[:12])"
        assert_eq!(b, "62ed6f6ca7ad");
    }

    /// JA4's hashed parts are remembered by the lists they come from: another GREASE value
    /// or cipher order gives the same JA4, another cipher suite a new one.
    #[test]
    fn ja4_is_remembered_by_its_lists() {
        let ja4_with = |ciphers: [u8; 6]| {
            let mut msg = sample_client_hello();
            let at = msg
                .windows(8)
                .position(|w| w == [0x00, 0x06, 0x13, 0x01, 0x13, 0x02, 0x2a, 0x2a])
                .expect("cipher list");
            msg[at + 2..at + 8].copy_from_slice(&ciphers);
            parse_client_hello(&msg, 0x0301)
                .map(|f| f.info())
                .and_then(|c| c.ja4)
                .expect("ja4")
        };
        let first = ja4_with([0x13, 0x01, 0x13, 0x02, 0x2a, 0x2a]);
        assert_eq!(ja4_with([0x13, 0x02, 0x13, 0x01, 0x3a, 0x3a]), first);
        let other = ja4_with([0x13, 0x01, 0x13, 0x03, 0x2a, 0x2a]);
        // sha256("1301,1303")[:12]; the rest as before.
        assert_eq!(other.split('_').nth(1), Some("88d8eb61a8ee"));
        assert_eq!(other.replace("88d8eb61a8ee", "62ed6f6ca7ad"), first);
        assert_eq!(ja4_with([0x13, 0x01, 0x13, 0x02, 0x2a, 0x2a]), first);
    }

    /// The packet thread keeps a hello's texts in one NUL-separated string: a name with a NUL
    /// in it, an empty ALPN entry and one that is a NUL come back in order, escaped.
    #[test]
    fn hello_texts_keep_their_order_and_escapes() {
        let mut msg = sample_client_hello();
        let at = msg
            .windows(12)
            .position(|w| w == b"backend.test")
            .expect("sni");
        msg[at + 4] = 0;
        let at = msg.windows(3).position(|w| w == b"\x02h2").expect("alpn");
        msg[at..at + 3].copy_from_slice(b"\x00\x01\x00");
        let ch = parse_client_hello(&msg, 0x0301)
            .map(|f| f.info())
            .expect("parses");
        assert_eq!(ch.sni.as_deref(), Some("back\\u{0}nd.test"));
        assert_eq!(ch.alpn, vec!["", "\\u{0}", "http/1.1"]);
        assert_eq!(ch.key_share_groups, vec!["X25519MLKEM768", "x25519"]);
        assert_eq!(ch.supported_versions.len(), 3);
    }

    #[test]
    fn truncated_client_hello_is_none_not_panic() {
        let msg = sample_client_hello();
        for cut in 0..msg.len() {
            let _ = parse_client_hello(&msg[..cut], 0x0301).map(|f| f.info());
        }
    }

    #[test]
    fn draft_19_server_hello_parsed_without_session_id() {
        // version 0x7f13, random, cipher 0x1301, extensions: key_share(x25519, 2-byte key)
        let mut body = vec![0x7f, 0x13];
        body.extend_from_slice(&[0x33; 32]);
        body.extend_from_slice(&[0x13, 0x01]);
        let ext = [0x00, 0x28, 0x00, 0x06, 0x00, 0x1d, 0x00, 0x02, 0xaa, 0xbb];
        body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
        body.extend_from_slice(&ext);
        let mut msg = vec![2, 0, 0, body.len() as u8];
        msg.extend_from_slice(&body);
        let sh = parse_server_hello(&msg).expect("parses");
        assert_eq!(sh.version(), 0x7f13);
        assert!(sh.is_tls13());
        assert_eq!(sh.cipher, 0x1301);
        assert_eq!(sh.key_share_group, Some(0x001d));
    }

    #[test]
    fn hello_retry_request_recognised() {
        let mut body = vec![0x03, 0x03];
        body.extend_from_slice(&HRR_RANDOM);
        body.push(0);
        body.extend_from_slice(&[0x13, 0x01, 0x00]);
        let ext = [
            0x00, 0x2b, 0x00, 0x02, 0x03, 0x04, 0x00, 0x33, 0x00, 0x02, 0x00, 0x17,
        ];
        body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
        body.extend_from_slice(&ext);
        let mut msg = vec![2, 0, 0, body.len() as u8];
        msg.extend_from_slice(&body);
        let sh = parse_server_hello(&msg).expect("parses");
        assert!(sh.hello_retry_request);
        assert!(sh.is_tls13());
        assert_eq!(sh.key_share_group, Some(0x0017));
    }
}
