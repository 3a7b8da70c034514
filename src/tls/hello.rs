//! Hello: what a ClientHello offered and what a ServerHello chose, as raw wire values (names,
//! escaping and text for people are made in `diagnose`).
//!
//! tls-parser frames the messages; the extension block is walked here with a bounds-checked
//! [`Cursor`] because JA4 needs every extension code in wire order and tls-parser returns the
//! key_share extension raw and does not know the ML-KEM hybrid groups.

use super::codec::{u16s, Cursor};
use super::extension::ExtensionType;
use super::handshake::HandshakeType;
use super::ja4::{ja4, Ja4, Ja4Input};
use super::names::is_grease;
use std::cell::RefCell;
use tls_parser::{TlsMessage, TlsMessageHandshake};

/// What a ClientHello offered, as sent. The packet thread keeps it until its connection is
/// summarised (a connection waiting on a silent server keeps it for as long as it waits).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientHelloFacts {
    /// Record-layer version of the record that carried it.
    pub record_version: u16,
    /// The legacy_version field; `None` when the hello could not be parsed.
    pub legacy_version: Option<u16>,
    /// supported_versions, GREASE included, as sent.
    pub supported_versions: Vec<u16>,
    /// Groups of the key shares offered, as sent.
    pub key_share_groups: Vec<u16>,
    /// The first name of the server_name list (whatever its type), bytes as sent.
    pub sni: Option<Vec<u8>>,
    /// The ALPN protocols, bytes as sent.
    pub alpn: Vec<Vec<u8>>,
    /// Cipher suites offered, GREASE not counted.
    pub cipher_suites: usize,
    pub ja4: Option<Ja4>,
    /// An SSLv2-format (pre-TLS) hello.
    pub sslv2_format: bool,
    /// Size of the handshake message.
    pub length: usize,
}

impl ClientHelloFacts {
    /// A ClientHello message that could not be parsed: only where it came and its size.
    pub fn unparsed(record_version: u16, length: usize) -> Self {
        ClientHelloFacts {
            record_version,
            length,
            ..Default::default()
        }
    }
}

/// The lists JA4 reads besides what [`ClientHelloFacts`] keeps. One per thread, reused: a
/// ClientHello's lists are cleared, not allocated and freed, on the packet thread.
#[derive(Debug, Default)]
struct Work {
    /// Extension codes in wire order.
    codes: Vec<u16>,
    /// A server_name extension was sent, whether or not its name could be read.
    has_sni: bool,
    signature_algorithms: Vec<u16>,
    /// The offered cipher suites, as sent.
    ciphers: Vec<u16>,
}

thread_local! {
    static WORK: RefCell<Work> = RefCell::new(Work::default());
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
        cipher_suites: ch.ciphers.iter().filter(|c| !is_grease(c.0)).count(),
        length: msg.len(),
        ..Default::default()
    };
    let block = ch.ext.unwrap_or(&[]);
    let mut fill = |work: &mut Work| {
        walk_extensions(block, &mut facts, work);
        work.ciphers.clear();
        work.ciphers.extend(ch.ciphers.iter().map(|c| c.0));
        facts.ja4 = Some(ja4(&Ja4Input {
            legacy_version: ch.version.0,
            supported_versions: &facts.supported_versions,
            has_sni: work.has_sni,
            first_alpn: facts.alpn.first().map(Vec::as_slice),
            ciphers: &work.ciphers,
            extensions: &work.codes,
            signature_algorithms: &work.signature_algorithms,
        }));
    };
    WORK.with(|w| match w.try_borrow_mut() {
        Ok(mut w) => fill(&mut w),
        Err(_) => fill(&mut Work::default()),
    });
    Some(facts)
}

/// Reads the extension block of a ClientHello into `facts` and `work` (which forgets the
/// previous hello).
fn walk_extensions(block: &[u8], facts: &mut ClientHelloFacts, work: &mut Work) {
    work.codes.clear();
    work.has_sni = false;
    work.signature_algorithms.clear();
    let mut c = Cursor::new(block);
    while !c.is_empty() {
        let (Some(code), Some(data)) = (c.u16(), c.vec_u16()) else {
            break;
        };
        work.codes.push(code);
        let mut d = Cursor::new(data);
        match ExtensionType(code) {
            ExtensionType::SERVER_NAME => {
                work.has_sni = true;
                read_server_name(&mut d, &mut facts.sni);
            }
            ExtensionType::ALPN => read_alpn(&mut d, &mut facts.alpn),
            ExtensionType::SUPPORTED_VERSIONS => {
                if let Some(list) = d.vec_u8() {
                    facts.supported_versions.extend(u16s(list));
                }
            }
            ExtensionType::SIGNATURE_ALGORITHMS => {
                if let Some(list) = d.vec_u16() {
                    work.signature_algorithms.extend(u16s(list));
                }
            }
            ExtensionType::KEY_SHARE => read_key_shares(&mut d, &mut facts.key_share_groups),
            _ => {}
        }
    }
}

/// server_name_list: u16 length, then (u8 type, u16 length, name); the first name is kept.
fn read_server_name(d: &mut Cursor<'_>, sni: &mut Option<Vec<u8>>) {
    if let (Some(_), Some(_), Some(n)) = (d.u16(), d.u8(), d.u16()) {
        *sni = d.take(usize::from(n)).map(<[u8]>::to_vec);
    }
}

/// protocol_name_list: u16 length, then u8-length strings.
fn read_alpn(d: &mut Cursor<'_>, alpn: &mut Vec<Vec<u8>>) {
    let Some(list) = d.vec_u16() else {
        return;
    };
    let mut l = Cursor::new(list);
    while let Some(p) = l.vec_u8() {
        alpn.push(p.to_vec());
    }
}

/// client_shares: u16 length, then (u16 group, u16 length, key); the groups are kept.
fn read_key_shares(d: &mut Cursor<'_>, groups: &mut Vec<u16>) {
    let Some(list) = d.vec_u16() else {
        return;
    };
    let mut l = Cursor::new(list);
    while let (Some(g), Some(_key)) = (l.u16(), l.vec_u16()) {
        groups.push(g);
    }
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
        // SSLv2 cipher kinds are 3 bytes each.
        cipher_suites: usize::from(cipher_len) / 3,
        sslv2_format: true,
        length: body.len(),
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
    /// The application protocol the server chose (ServerHello in TLS <= 1.2, EncryptedExtensions
    /// in TLS 1.3), bytes as sent.
    pub alpn: Option<Vec<u8>>,
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

/// The application protocol a (decrypted) TLS 1.3 EncryptedExtensions message chose.
pub fn encrypted_extensions_alpn(msg: &[u8]) -> Option<Vec<u8>> {
    let mut c = Cursor::new(msg.get(4..)?);
    let mut info = ServerHelloInfo::default();
    server_extensions(c.vec_u16()?, &mut info);
    info.alpn
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
        match ExtensionType(code) {
            ExtensionType::SUPPORTED_VERSIONS => info.selected_version = d.u16(),
            ExtensionType::KEY_SHARE | ExtensionType::KEY_SHARE_DRAFT => {
                info.key_share_group = d.u16()
            }
            ExtensionType::ALPN => {
                let mut chosen = Vec::new();
                read_alpn(&mut d, &mut chosen);
                info.alpn = chosen.into_iter().next();
            }
            _ => {}
        }
    }
}

fn parse_server_hello_raw(msg: &[u8]) -> Option<ServerHelloInfo> {
    let mut c = Cursor::new(msg);
    if HandshakeType(c.u8()?) != HandshakeType::SERVER_HELLO {
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

#[cfg(test)]
pub(crate) mod tests_support {
    /// [`sample_client_hello`] with a NUL in its SNI ("back\0nd.test") and its ALPN list
    /// starting with an empty name and a one-byte NUL name (then http/1.1).
    pub(crate) fn hostile_client_hello() -> Vec<u8> {
        let mut msg = sample_client_hello();
        if let Some(at) = msg.windows(12).position(|w| w == b"backend.test") {
            msg[at + 4] = 0;
        }
        if let Some(at) = msg.windows(3).position(|w| w == b"\x02h2") {
            msg[at..at + 3].copy_from_slice(b"\x00\x01\x00");
        }
        msg
    }

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

    fn parse(msg: &[u8]) -> ClientHelloFacts {
        parse_client_hello(msg, 0x0301).expect("parses")
    }

    fn ja4_of(msg: &[u8]) -> String {
        parse(msg).ja4.map(|j| j.to_string()).expect("ja4")
    }

    #[test]
    fn client_hello_fields() {
        let ch = parse(&sample_client_hello());
        assert_eq!(ch.sni.as_deref(), Some(&b"backend.test"[..]));
        assert_eq!(ch.alpn, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
        assert_eq!(ch.cipher_suites, 2); // GREASE not counted
        assert_eq!(ch.key_share_groups, vec![0x11ec, 0x001d]);
        assert_eq!(ch.record_version, 0x0301);
        assert_eq!(ch.supported_versions, vec![0x0a0a, 0x0304, 0x0303]);
        let ja4 = ja4_of(&sample_client_hello());
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
        let full = parse(&sample_client_hello());
        let after = parse(&bare);
        assert_eq!(after.sni, None);
        assert!(after.alpn.is_empty() && after.supported_versions.is_empty());
        assert!(after.key_share_groups.is_empty());
        // sha256("1301")[:12]; no extensions: the last part is zeros.
        assert_eq!(ja4_of(&bare), "t12i010000_0f2cb44170f4_000000000000");
        assert_eq!(parse(&sample_client_hello()), full);
    }

    #[test]
    fn ja4_cipher_hash_matches_spec_input() {
        // JA4 b: sha256("1301,1302") truncated to 12 hex chars
        let ja4 = ja4_of(&sample_client_hello());
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
            ja4_of(&msg)
        };
        let first = ja4_with([0x13, 0x01, 0x13, 0x02, 0x2a, 0x2a]);
        assert_eq!(ja4_with([0x13, 0x02, 0x13, 0x01, 0x3a, 0x3a]), first);
        let other = ja4_with([0x13, 0x01, 0x13, 0x03, 0x2a, 0x2a]);
        // sha256("1301,1303")[:12]; the rest as before.
        assert_eq!(other.split('_').nth(1), Some("88d8eb61a8ee"));
        assert_eq!(other.replace("88d8eb61a8ee", "62ed6f6ca7ad"), first);
        assert_eq!(ja4_with([0x13, 0x01, 0x13, 0x02, 0x2a, 0x2a]), first);
    }

    /// Names are kept as sent: a name with a NUL in it, an empty ALPN entry and one that is a
    /// NUL come back in order, unescaped.
    #[test]
    fn hello_names_keep_their_order_and_bytes() {
        let ch = parse(&tests_support::hostile_client_hello());
        assert_eq!(ch.sni.as_deref(), Some(&b"back\0nd.test"[..]));
        assert_eq!(ch.alpn, vec![vec![], vec![0], b"http/1.1".to_vec()]);
        assert_eq!(ch.key_share_groups, vec![0x11ec, 0x001d]);
        assert_eq!(ch.supported_versions.len(), 3);
    }

    #[test]
    fn truncated_client_hello_is_none_not_panic() {
        let msg = sample_client_hello();
        for cut in 0..msg.len() {
            let _ = parse_client_hello(&msg[..cut], 0x0301);
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

    #[test]
    fn encrypted_extensions_name_the_chosen_protocol() {
        // EncryptedExtensions: server_name (empty), then ALPN ["h2"].
        let msg = [
            8, 0, 0, 15, 0, 13, 0, 0, 0, 0, 0, 16, 0, 5, 0, 3, 2, b'h', b'2',
        ];
        assert_eq!(encrypted_extensions_alpn(&msg), Some(b"h2".to_vec()));
        assert_eq!(encrypted_extensions_alpn(&[8, 0, 0, 2, 0, 0]), None);
        assert_eq!(encrypted_extensions_alpn(&[8, 0, 0]), None);
    }
}
