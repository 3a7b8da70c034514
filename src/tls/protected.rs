//! Protected: with a connection's secrets from a key log, opens the protected records the
//! diagnosis needs and hands what they hold back to the feed as plaintext.
//!
//! Keys are looked up once, when the ServerHello (TLS 1.3) or a ChangeCipherSpec (TLS <= 1.2)
//! turns a direction protected; a connection without a key log never gets here. TLS 1.3: every
//! record of the handshake epoch is opened (EncryptedExtensions, CertificateRequest,
//! Certificate, CertificateVerify, Finished, alerts), then, under the application traffic
//! secret, only records small enough to be an alert. TLS <= 1.2: the Finished and alert
//! records after the ChangeCipherSpec; application data is never opened, only counted.

use super::decrypt::{self, OpenError, RecordKeys, MAX_BODY};
use super::handshake::{HandshakeType, Joiner};
use super::keylog::{KeyLog, Secrets};
use super::record::{ContentType, Header, SHORT_ENCRYPTED};
use std::sync::Arc;

/// How far decryption of a connection got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Decryption {
    /// The key log held secrets for this connection's ClientHello random.
    pub keys_found: bool,
    /// Records opened.
    pub opened: u32,
    /// Records whose tag did not verify (wrong keys, or bytes changed on the way).
    pub failed: u32,
    /// The negotiated cipher suite has no decryption here (CBC, CCM, ...).
    pub unsupported_suite: bool,
    /// TLS 1.3: alert-sized records after a side's Finished left sealed because the key log
    /// lacks that side's application traffic secret, [client, server].
    pub sealed_short: [u32; 2],
    /// The key log holds secrets for this connection but not the one a direction's keys
    /// come from (or one of the wrong length), and a record of that direction stayed sealed:
    /// the missing secret's label.
    pub unusable: Option<&'static str>,
}

/// What one opened record held.
pub enum Opened {
    /// Handshake bytes (to be joined into messages).
    Handshake(Vec<u8>),
    /// An alert: level and description.
    Alert(u8, u8),
    /// Nothing the diagnosis reads (application data, a record not opened).
    Nothing,
}

/// The keys of one direction: the current epoch's, and (TLS 1.3) the application keys that
/// follow its Finished.
struct DirKeys {
    current: RecordKeys,
    next: Option<RecordKeys>,
    /// The body of the record being read, when it is to be opened.
    body: Vec<u8>,
    /// Bytes of the record being read were not captured: it cannot be opened.
    lost: bool,
    /// Epoch of the current keys: 0 handshake (TLS 1.3), 1 application (or TLS <= 1.2).
    application: bool,
}

/// The protected records of one connection.
pub struct Protected {
    keys: Arc<KeyLog>,
    client_random: Option<[u8; 32]>,
    server_random: Option<[u8; 32]>,
    cipher: Option<u16>,
    dirs: [Option<DirKeys>; 2],
    /// Decrypted handshake messages under assembly, per direction.
    joiners: [Joiner; 2],
    /// Per direction: the client's; and its Finished came with no application secret logged.
    client: [bool; 2],
    app_missing: [bool; 2],
    /// Per direction: the label of the secret its keys lack, and whether it is TLS 1.3.
    lacking: [Option<(&'static str, bool)>; 2],
    started: bool,
    pub status: Decryption,
}

impl std::fmt::Debug for Protected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Protected")
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

/// A hello's random: 32 bytes after the message header (4) and the version (2).
fn hello_random(msg: &[u8]) -> Option<[u8; 32]> {
    msg.get(6..38)?.try_into().ok()
}

impl Protected {
    pub fn new(keys: Arc<KeyLog>) -> Self {
        Protected {
            keys,
            client_random: None,
            server_random: None,
            cipher: None,
            dirs: [None, None],
            joiners: Default::default(),
            client: [false; 2],
            app_missing: [false; 2],
            lacking: [None; 2],
            started: false,
            status: Decryption::default(),
        }
    }

    /// A plaintext handshake message: the hellos carry the randoms and the cipher suite.
    pub fn on_plain_message(&mut self, msg: &[u8]) {
        match msg.first().map(|&t| HandshakeType(t)) {
            Some(HandshakeType::CLIENT_HELLO) if self.client_random.is_none() => {
                self.client_random = hello_random(msg);
            }
            Some(HandshakeType::SERVER_HELLO) => {
                self.server_random = hello_random(msg);
                let sid = usize::from(*msg.get(38).unwrap_or(&0));
                self.cipher = msg
                    .get(39 + sid..41 + sid)
                    .map(|c| u16::from_be_bytes([c[0], c[1]]));
            }
            _ => {}
        }
    }

    /// The connection's secrets, if the key log has them.
    fn secrets(&self) -> Option<&Secrets> {
        self.keys.get(self.client_random.as_ref()?)
    }

    /// Direction `d` turned protected (`client` tells whether it is the client's): derives
    /// its keys. TLS 1.3 starts with the handshake traffic secrets.
    pub fn start(&mut self, d: usize, client: bool, tls13: bool) {
        self.started = true;
        self.client[d] = client;
        let Some(suite) = self.cipher.and_then(decrypt::suite) else {
            self.status.unsupported_suite = self.cipher.is_some();
            return;
        };
        let Some(s) = self.secrets() else {
            return;
        };
        let (keys, label) = if tls13 && suite.tls13 {
            let (hs, app, label) = if client {
                (
                    &s.client_handshake,
                    &s.client_app,
                    "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
                )
            } else {
                (
                    &s.server_handshake,
                    &s.server_app,
                    "SERVER_HANDSHAKE_TRAFFIC_SECRET",
                )
            };
            let current = hs.as_deref().and_then(|k| RecordKeys::tls13(suite, k));
            let next = app.as_deref().and_then(|k| RecordKeys::tls13(suite, k));
            (current.map(|c| (c, next, false)), label)
        } else {
            let keys = match (&s.master, self.client_random, self.server_random) {
                (Some(m), Some(cr), Some(sr)) => {
                    RecordKeys::tls12(suite, m, &cr, &sr, client).map(|c| (c, None, true))
                }
                _ => None,
            };
            (keys, "CLIENT_RANDOM")
        };
        self.status.keys_found = true;
        if keys.is_none() {
            self.lacking[d] = Some((label, tls13 && suite.tls13));
        }
        self.dirs[d] = keys.map(|(current, next, application)| DirKeys {
            current,
            next,
            body: Vec::new(),
            lost: false,
            application,
        });
    }

    /// Whether the record of direction `d` with header `h` will be opened: its body bytes
    /// are then wanted through [`Protected::body`].
    pub fn wants(&self, d: usize, h: &Header) -> bool {
        let Some(k) = &self.dirs[d] else {
            return false;
        };
        match h.content_type {
            ContentType::APPLICATION_DATA if k.current.suite().tls13 => {
                !k.application || h.len <= SHORT_ENCRYPTED
            }
            ContentType::HANDSHAKE | ContentType::ALERT => !k.current.suite().tls13,
            _ => false,
        }
    }

    /// Body bytes of a record [`Protected::wants`].
    pub fn body(&mut self, d: usize, chunk: &[u8]) {
        if let Some(k) = &mut self.dirs[d] {
            if k.body.len() + chunk.len() <= MAX_BODY {
                k.body.extend_from_slice(chunk);
            } else {
                k.lost = true;
            }
        }
    }

    /// The joiner of direction `d`'s decrypted handshake messages.
    pub fn joiner(&mut self, d: usize) -> &mut Joiner {
        &mut self.joiners[d & 1]
    }

    /// Keys were derived for a direction (or looked for and not found).
    pub fn started(&self) -> bool {
        self.started
    }

    /// Direction `d` lost record alignment (bytes not captured across a record header): its
    /// sequence numbers are unknown from here on.
    pub fn stop(&mut self, d: usize) {
        self.dirs[d] = None;
    }

    /// Bytes of the record being read were not captured.
    pub fn lost(&mut self, d: usize) {
        if let Some(k) = &mut self.dirs[d] {
            k.lost = true;
        }
    }

    /// The record of direction `d` with header `h` ended: opens it if it was wanted, else
    /// only counts it (sequence numbers count every protected record).
    pub fn record_end(&mut self, d: usize, h: &Header, wanted: bool) -> Opened {
        let Some(k) = &mut self.dirs[d] else {
            self.count_sealed(d, h);
            return Opened::Nothing;
        };
        let protected = match h.content_type {
            ContentType::CHANGE_CIPHER_SPEC => false,
            ContentType::APPLICATION_DATA => true,
            _ => !k.current.suite().tls13,
        };
        if !protected {
            return Opened::Nothing;
        }
        let body = std::mem::take(&mut k.body);
        if !wanted || std::mem::take(&mut k.lost) {
            k.current.skip();
            return Opened::Nothing;
        }
        let [v0, v1] = h.version.to_be_bytes();
        let len = u16::try_from(h.len).unwrap_or(u16::MAX).to_be_bytes();
        let header = [h.content_type.0, v0, v1, len[0], len[1]];
        match k.current.open(&header, &body) {
            Ok(o) => {
                self.status.opened += 1;
                match (ContentType(o.content_type), o.plaintext.as_slice()) {
                    (ContentType::HANDSHAKE, _) => Opened::Handshake(o.plaintext),
                    (ContentType::ALERT, &[level, desc]) => Opened::Alert(level, desc),
                    _ => Opened::Nothing,
                }
            }
            Err(OpenError::Auth | OpenError::NoContentType) => {
                self.status.failed += 1;
                // Nothing after a record that did not open will open either.
                self.dirs[d] = None;
                Opened::Nothing
            }
            Err(_) => {
                // Not openable by its size (a failed open leaves the sequence number).
                k.current.skip();
                Opened::Nothing
            }
        }
    }

    /// TLS 1.3: direction `d` sent its Finished; what follows is under its application keys.
    pub fn finished(&mut self, d: usize) {
        let Some(k) = &mut self.dirs[d] else {
            return;
        };
        if k.application || !k.current.suite().tls13 {
            return;
        }
        match k.next.take() {
            Some(next) => {
                k.current = next;
                k.application = true;
            }
            None => {
                self.dirs[d] = None;
                self.app_missing[d] = true;
            }
        }
    }

    /// A record of direction `d`, which has no keys: a protected one under a secret the key
    /// log lacks names that secret, and one that could be an alert after a Finished whose
    /// application secret the key log lacks is counted, for the diagnosis to say.
    fn count_sealed(&mut self, d: usize, h: &Header) {
        let app = h.content_type == ContentType::APPLICATION_DATA;
        if let Some((label, tls13)) = self.lacking[d] {
            if app || (!tls13 && h.content_type != ContentType::CHANGE_CIPHER_SPEC) {
                self.status.unusable.get_or_insert(label);
            }
        }
        if self.app_missing[d] && app && h.len <= SHORT_ENCRYPTED {
            let side = usize::from(!self.client[d]);
            self.status.sealed_short[side] = self.status.sealed_short[side].saturating_add(1);
        }
    }
}
