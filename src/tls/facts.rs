//! Facts: everything the TLS layer learnt about one connection ([`TlsFacts`]), and how each
//! record and handshake message adds to it. The feed ([`super::conn`]) frames the bytes; the
//! facts are handed on to `diagnose` as raw values.

use super::certificate::{leaf_certificate, leaf_certificate_tls13, LeafCertificate};
use super::handshake::{Event, HandshakeType};
use super::hello::{self, ClientHelloFacts, ServerHelloInfo};
use super::protected::Decryption;
use super::record::{ContentType, Record, SHORT_ENCRYPTED, SSLV2_CLIENT_HELLO, SSLV2_SERVER_HELLO};
use crate::capture::FrameRef;

/// TLS 1.3: the server's records after the client's first encrypted record (its Finished).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AfterClientFinished {
    /// The server's first record after it, and that record's size.
    pub at: FrameRef,
    pub len: usize,
    /// Server records from that one on.
    pub records: u32,
    /// Size of the client's latest record before the server's (an alert-sized one is the
    /// client's close_notify, which the server answers in kind).
    pub client_len_before: usize,
}

/// Bytes of a non-TLS stream kept for the report.
pub const PREVIEW_LEN: usize = 256;
/// Alerts kept per connection.
const MAX_ALERTS: usize = 16;

/// An alert record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertFact {
    pub dir: usize,
    pub at: FrameRef,
    /// Level and description, when the alert was in clear or decrypted.
    pub plain: Option<(u8, u8)>,
    pub record_len: usize,
    /// It was protected and a key log opened it.
    pub decrypted: bool,
}

/// A client certificate: whether the server asked for one and what the client sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientCertFacts {
    /// The server sent a CertificateRequest.
    pub requested: bool,
    /// The client's Certificate message held a certificate (`None`: no such message seen).
    pub sent: Option<bool>,
    pub leaf: Option<LeafCertificate>,
}

/// Bytes of a direction that did not frame as TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NonTls {
    pub at: FrameRef,
    /// The first bytes, at most [`PREVIEW_LEN`].
    pub preview: Vec<u8>,
    /// A TLS hello was found later in the same direction (STARTTLS, HTTP CONNECT).
    pub tls_after: Option<FrameRef>,
}

/// Everything the TLS layer learnt about one connection, by direction index (0 or 1, as the
/// flow layer numbers them).
#[derive(Debug, Clone, Default)]
pub struct TlsFacts {
    /// The first ClientHello, as sent; `diagnose` makes the report's form of it.
    pub client_hello: Option<ClientHelloFacts>,
    /// Direction that sent the (first) ClientHello.
    pub ch_dir: Option<usize>,
    /// Frame that completed the first ClientHello (Wireshark shows it there).
    pub ch_at: Option<FrameRef>,
    /// Stream offsets [start, end) of the records that carried the first ClientHello, in
    /// `ch_dir`. Known from the record header even when the hello could not be parsed.
    pub ch_range: Option<(u64, u64)>,
    /// ClientHello messages seen (two after a HelloRetryRequest).
    pub client_hellos: u32,
    pub hrr_at: Option<FrameRef>,
    pub server_hello: Option<ServerHelloInfo>,
    pub sh_dir: Option<usize>,
    pub sh_at: Option<FrameRef>,
    /// The leaf, shared with other connections that received the same one.
    pub certificate: Option<LeafCertificate>,
    pub alerts: Vec<AlertFact>,
    pub ccs: [Option<FrameRef>; 2],
    /// First well-formed TLS record per direction.
    pub first_record: [Option<FrameRef>; 2],
    /// First application-data (type 23) record per direction.
    pub first_appdata: [Option<FrameRef>; 2],
    pub appdata_records: [u32; 2],
    /// TLS 1.3: the first encrypted record the client sent after the ServerHello, and its size.
    pub client_encrypted_after_sh: Option<(FrameRef, usize)>,
    pub client_encrypted_after_sh_count: u32,
    /// TLS 1.3: how the server answered the client's first encrypted record (its Finished).
    pub server_after_client: Option<AfterClientFinished>,
    /// TLS 1.3: size of the client's latest encrypted record.
    client_last_len: usize,
    /// When the handshake completed (both sides went encrypted).
    pub handshake_done: Option<FrameRef>,
    pub non_tls: [Option<Box<NonTls>>; 2],
    /// A direction lost record alignment (gap, or the capture began mid-stream).
    pub desync: [bool; 2],
    /// A handshake message larger than [`super::handshake::MAX_HANDSHAKE_MSG`] was skipped unparsed.
    pub oversized_message: bool,
    /// A ServerHello was seen but not captured whole (snaplen): its version is unknown.
    pub sh_unparsed: bool,
    /// What the client was asked for and sent as its certificate.
    pub client_cert: ClientCertFacts,
    /// How far a key log decrypted the connection (`None`: no key log given).
    pub decryption: Option<Decryption>,
    /// Offset where a direction restarted because a hello overwrote junk bytes before it.
    pub restarted_at: [Option<u64>; 2],
}

/// Which directions a record or message turned encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Encrypts {
    Neither,
    /// The direction that sent it (a TLS <= 1.2 ChangeCipherSpec, an SSLv2 SERVER-HELLO).
    This,
    /// Both (a TLS 1.3 ServerHello).
    Both,
}

/// The direction that is not `d`.
fn other(d: usize) -> usize {
    if d == 0 {
        1
    } else {
        0
    }
}

impl TlsFacts {
    /// Negotiated version, from the (last) ServerHello.
    pub fn negotiated_version(&self) -> Option<u16> {
        self.server_hello.as_ref().map(ServerHelloInfo::version)
    }

    /// The frame `at` carried a TLS 1.3 server's first answer to the client's Finished, and
    /// that answer is alert-sized: the record that rejects a client certificate.
    pub fn alert_sized_answer(&self, at: FrameRef) -> bool {
        self.server_after_client
            .is_some_and(|a| a.at == at && a.len <= SHORT_ENCRYPTED)
    }

    pub(super) fn is_tls13(&self) -> bool {
        self.server_hello
            .as_ref()
            .is_some_and(ServerHelloInfo::is_tls13)
    }

    /// Direction `d` began with bytes that are not TLS.
    pub(super) fn not_tls(&mut self, d: usize, at: FrameRef, first_bytes: &[u8]) {
        self.non_tls[d] = Some(Box::new(NonTls {
            at,
            preview: first_bytes.to_vec(),
            tls_after: None,
        }));
    }

    /// A record header was read; `encrypted` tells whether its direction already is.
    pub(super) fn on_record_start(
        &mut self,
        d: usize,
        rec: &Record,
        encrypted: bool,
        at: FrameRef,
    ) {
        self.first_record[d].get_or_insert(at);
        // The ClientHello's byte range grows with each record that carries it.
        if rec.header.content_type == ContentType::HANDSHAKE
            && !encrypted
            && self.ch_at.is_none()
            && self.ch_dir == Some(d)
        {
            if let Some(r) = &mut self.ch_range {
                r.1 = rec.end();
            }
        }
    }

    /// What the handshake messages of `rec` (a plaintext record of direction `d`) teach.
    pub(super) fn on_handshake(
        &mut self,
        d: usize,
        ev: Event<'_>,
        rec: &Record,
        at: FrameRef,
    ) -> Encrypts {
        match ev {
            Event::Begins(t) => {
                if t == HandshakeType::CLIENT_HELLO && self.ch_range.is_none() {
                    self.ch_dir = Some(d);
                    self.ch_range = Some((rec.start, rec.end()));
                }
            }
            Event::Message(msg) => return self.on_message(d, msg, rec, at),
            Event::Partial(t) => self.on_partial_message(d, t, at),
            Event::Oversized(t) => {
                self.oversized_message = true;
                if t == HandshakeType::CLIENT_HELLO && self.ch_dir == Some(d) {
                    self.client_hellos += 1;
                    self.ch_at.get_or_insert(at);
                }
            }
        }
        Encrypts::Neither
    }

    fn on_message(&mut self, d: usize, msg: &[u8], rec: &Record, at: FrameRef) -> Encrypts {
        let Some(&t) = msg.first() else {
            return Encrypts::Neither;
        };
        match HandshakeType(t) {
            HandshakeType::CLIENT_HELLO => self.on_client_hello(d, msg, rec, at),
            HandshakeType::SERVER_HELLO => return self.on_server_hello(d, msg, at),
            HandshakeType::CERTIFICATE if !self.is_tls13() => self.on_certificate(d, msg, false),
            HandshakeType::CERTIFICATE_REQUEST if self.ch_dir != Some(d) => {
                self.client_cert.requested = true;
            }
            _ => {}
        }
        Encrypts::Neither
    }

    /// A Certificate message of direction `d`: the server's leaf, or what the client sent.
    fn on_certificate(&mut self, d: usize, msg: &[u8], tls13: bool) {
        let from_client = self.ch_dir == Some(d);
        if !from_client && self.certificate.is_some() {
            return;
        }
        let leaf = if tls13 {
            leaf_certificate_tls13(msg)
        } else {
            leaf_certificate(msg)
        };
        if from_client {
            self.client_cert.sent = Some(leaf.as_ref().is_some_and(|l| l.chain_length() > 0));
            self.client_cert.leaf = leaf;
        } else {
            self.certificate = leaf;
        }
    }

    /// A handshake message a key log decrypted; says whether it was the direction's Finished.
    pub(super) fn on_decrypted_message(&mut self, d: usize, msg: &[u8]) -> bool {
        match msg.first().map(|&t| HandshakeType(t)) {
            Some(HandshakeType::CERTIFICATE) => self.on_certificate(d, msg, self.is_tls13()),
            Some(HandshakeType::CERTIFICATE_REQUEST) if self.ch_dir != Some(d) => {
                self.client_cert.requested = true;
            }
            Some(HandshakeType::FINISHED) => return true,
            Some(HandshakeType::ENCRYPTED_EXTENSIONS) => {
                if let Some(sh) = self.server_hello.as_mut().filter(|s| s.alpn.is_none()) {
                    sh.alpn = hello::encrypted_extensions_alpn(msg);
                }
            }
            _ => {}
        }
        false
    }

    /// An alert a key log decrypted: names the protected alert record just counted, or (TLS
    /// 1.3, whose alerts hide in application-data records) adds it.
    pub(super) fn on_decrypted_alert(&mut self, d: usize, level: u8, desc: u8, at: FrameRef) {
        if let Some(a) = self
            .alerts
            .last_mut()
            .filter(|a| a.dir == d && a.at == at && a.plain.is_none())
        {
            a.plain = Some((level, desc));
            a.decrypted = true;
            return;
        }
        if self.alerts.len() < MAX_ALERTS {
            self.alerts.push(AlertFact {
                dir: d,
                at,
                plain: Some((level, desc)),
                record_len: 2,
                decrypted: true,
            });
        }
    }

    fn on_client_hello(&mut self, d: usize, msg: &[u8], rec: &Record, at: FrameRef) {
        self.client_hellos += 1;
        if self.client_hello.is_some() {
            return;
        }
        self.ch_dir = Some(d);
        self.ch_at = Some(at);
        let version = rec.header.version;
        self.client_hello = Some(
            hello::parse_client_hello(msg, version)
                .unwrap_or_else(|| ClientHelloFacts::unparsed(version, msg.len())),
        );
        if let Some(r) = &mut self.ch_range {
            r.1 = rec.end();
        }
    }

    fn on_server_hello(&mut self, d: usize, msg: &[u8], at: FrameRef) -> Encrypts {
        let Some(sh) = hello::parse_server_hello(msg) else {
            return Encrypts::Neither;
        };
        if sh.hello_retry_request {
            self.hrr_at.get_or_insert(at);
            if self.server_hello.is_none() {
                self.sh_dir = Some(d);
            }
            return Encrypts::Neither;
        }
        let tls13 = sh.is_tls13();
        self.server_hello = Some(sh);
        self.sh_dir = Some(d);
        self.sh_at = Some(at);
        if tls13 {
            Encrypts::Both
        } else {
            Encrypts::Neither
        }
    }

    /// A handshake message whose bytes were not all captured: its type still tells something.
    fn on_partial_message(&mut self, d: usize, t: HandshakeType, at: FrameRef) {
        match t {
            HandshakeType::CLIENT_HELLO => {
                self.client_hellos += 1;
                if self.ch_at.is_none() {
                    self.ch_dir = Some(d);
                    self.ch_at = Some(at);
                }
            }
            HandshakeType::SERVER_HELLO if self.sh_at.is_none() => {
                self.sh_dir = Some(d);
                self.sh_at = Some(at);
                self.sh_unparsed = true;
            }
            _ => {}
        }
    }

    /// A record of direction `d` ended; `start` holds the first bytes of its body (alerts,
    /// SSLv2 hellos).
    pub(super) fn on_record_end(
        &mut self,
        d: usize,
        rec: &Record,
        start: &[u8],
        at: FrameRef,
    ) -> Encrypts {
        match rec.header.content_type {
            ContentType::CHANGE_CIPHER_SPEC => return self.on_ccs(d, at),
            ContentType::ALERT => self.on_alert(d, rec.header.len, start, at),
            ContentType::APPLICATION_DATA => self.on_appdata(d, rec.header.len, at),
            ContentType::SSLV2 => return self.on_sslv2_record(d, rec, start, at),
            _ => {}
        }
        Encrypts::Neither
    }

    fn on_ccs(&mut self, d: usize, at: FrameRef) -> Encrypts {
        self.ccs[d].get_or_insert(at);
        // TLS <= 1.2 encrypts after CCS; in 1.3 (a ServerHello said so, or a
        // HelloRetryRequest was seen) a CCS is only middlebox compatibility.
        // A CCS before any ServerHello is the client's 1.3 compatibility CCS (in 1.2
        // it always follows the ServerHello).
        let tls12 = match &self.server_hello {
            Some(sh) => !sh.is_tls13(),
            None => self.hrr_at.is_none() && self.sh_at.is_some(),
        };
        if !tls12 {
            return Encrypts::Neither;
        }
        if self.ccs[other(d)].is_some() && self.sh_at.is_some() {
            self.handshake_done.get_or_insert(at);
        }
        Encrypts::This
    }

    fn on_alert(&mut self, d: usize, record_len: usize, body: &[u8], at: FrameRef) {
        let plain = match *body {
            [level, description] if record_len == 2 => Some((level, description)),
            _ => None,
        };
        if self.alerts.len() < MAX_ALERTS {
            self.alerts.push(AlertFact {
                dir: d,
                at,
                plain,
                record_len,
                decrypted: false,
            });
        }
    }

    fn on_appdata(&mut self, d: usize, record_len: usize, at: FrameRef) {
        self.appdata_records[d] = self.appdata_records[d].saturating_add(1);
        self.first_appdata[d].get_or_insert(at);
        if !(self.is_tls13() || self.sh_unparsed) {
            return;
        }
        if self.ch_dir == Some(d) {
            self.client_encrypted_after_sh_count += 1;
            self.client_last_len = record_len;
            self.client_encrypted_after_sh
                .get_or_insert((at, record_len));
            if self.client_encrypted_after_sh_count >= 2 {
                // Finished and then data: the client accepted the server.
                self.handshake_done.get_or_insert(at);
            }
        } else if self.sh_dir == Some(d) && self.client_encrypted_after_sh.is_some() {
            self.handshake_done.get_or_insert(at);
            let client_len_before = self.client_last_len;
            let answer = self.server_after_client.get_or_insert(AfterClientFinished {
                at,
                len: record_len,
                records: 0,
                client_len_before,
            });
            answer.records = answer.records.saturating_add(1);
        }
    }

    fn on_sslv2_record(&mut self, d: usize, rec: &Record, body: &[u8], at: FrameRef) -> Encrypts {
        match body.first() {
            Some(&SSLV2_CLIENT_HELLO) if self.client_hello.is_none() => {
                self.client_hellos += 1;
                self.ch_dir = Some(d);
                self.ch_at = Some(at);
                self.ch_range = Some((rec.start, rec.end()));
                self.client_hello = hello::parse_sslv2_client_hello(body);
            }
            Some(&SSLV2_SERVER_HELLO) if self.server_hello.is_none() => {
                self.server_hello = Some(ServerHelloInfo {
                    legacy_version: 0x0002,
                    selected_version: Some(0x0002),
                    ..Default::default()
                });
                self.sh_dir = Some(d);
                self.sh_at = Some(at);
                return Encrypts::This;
            }
            _ => {}
        }
        Encrypts::Neither
    }
}
