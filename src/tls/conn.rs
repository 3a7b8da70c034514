//! Conn: the TLS state of one connection ([`TlsConn`]): per direction, the record framing
//! state and the feed that reads the reassembled bytes, records, then handshake messages.
//!
//! Once a direction is encrypted (its CCS in TLS <= 1.2, the ServerHello in TLS 1.3) nothing
//! in it is parsed as plaintext again: records are only framed and counted. A stream that
//! starts with plaintext (STARTTLS, HTTP CONNECT) is scanned for a later hello. What the bytes
//! teach goes into [`TlsFacts`].

use super::facts::{Encrypts, TlsFacts, PREVIEW_LEN};
use super::handshake::{Event, Joiner, Next};
use super::keylog::KeyLog;
use super::protected::{Opened, Protected};
use super::record::{
    plausible_header, plausible_hello_start, tls_like_prefix, ContentType, Header, Record,
    HEADER_LEN,
};
use crate::capture::FrameRef;
use std::sync::Arc;

/// How far into a plaintext stream a later TLS hello is looked for (STARTTLS, CONNECT).
const STARTTLS_SCAN: u64 = 64 * 1024;
/// Bytes kept of a record body that is read whole (alerts, the start of an SSLv2 hello).
const SMALL_BODY: usize = 16;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Phase {
    /// Framing TLS (or SSLv2) records.
    #[default]
    Records,
    /// Not TLS: keeping a preview and looking for a later hello.
    NotTls,
    /// Lost alignment: looking for a plausible record header.
    Desync,
    /// Nothing more to learn in this direction.
    Done,
}

/// The framing state of one direction.
#[derive(Debug, Default)]
struct DirState {
    phase: Phase,
    /// Stream offset of the next byte fed.
    offset: u64,
    /// A record header under assembly.
    hdr: [u8; HEADER_LEN],
    hdr_len: usize,
    /// Inside the body of `rec`.
    in_body: bool,
    rec: Record,
    rec_remaining: usize,
    /// Body of a small record (alert) or the start of an SSLv2 record.
    small: Vec<u8>,
    /// Handshake message under assembly.
    joiner: Joiner,
    encrypted: bool,
    /// The record being read is to be opened with the key log's keys.
    open_rec: bool,
    records: u32,
    sslv2: bool,
    /// The stream did not start at its first byte (no SYN seen).
    midstream: bool,
}

impl DirState {
    /// Marks the direction encrypted as `e` says (the peer is the caller's to mark).
    fn encrypt(&mut self, e: Encrypts) {
        if e != Encrypts::Neither {
            self.encrypted = true;
        }
    }
}

/// TLS state of one connection.
#[derive(Debug, Default)]
pub struct TlsConn {
    dirs: [DirState; 2],
    pub facts: TlsFacts,
    /// With a key log: the connection's protected records.
    protected: Option<Box<Protected>>,
}

impl TlsConn {
    pub fn new() -> Self {
        Self::default()
    }

    /// A connection whose protected records are opened with `keys` when it holds theirs.
    pub fn with_keys(keys: Option<Arc<KeyLog>>) -> Self {
        let mut t = Self::default();
        if let Some(k) = keys {
            t.protected = Some(Box::new(Protected::new(k)));
            t.facts.decryption = Some(Default::default());
        }
        t
    }

    /// Marks direction `d` as starting mid-stream (no SYN seen): misaligned bytes there are
    /// not evidence of a non-TLS peer.
    pub fn set_midstream(&mut self, d: usize) {
        self.dirs[d].midstream = true;
    }

    /// A segment that rewrites already-delivered bytes at `off` starts with a TLS hello while
    /// direction `d` never framed a record (its first bytes were not TLS): the earlier bytes
    /// were junk the receiver overwrote (seen: 2 zero bytes riding on the handshake ACK, then
    /// the ClientHello at the same sequence number). Restarts the direction at `off` and says
    /// whether it did.
    pub fn restart_on_hello(&mut self, d: usize, off: u64, bytes: &[u8]) -> bool {
        let st = &self.dirs[d];
        let unframed = match st.phase {
            Phase::NotTls => true,
            Phase::Records => !st.in_body && st.hdr_len > 0,
            _ => false,
        };
        if !unframed || st.records != 0 || !plausible_hello_start(bytes) {
            return false;
        }
        let midstream = st.midstream;
        self.dirs[d] = DirState {
            offset: off,
            midstream,
            ..Default::default()
        };
        self.facts.non_tls[d] = None;
        self.facts.restarted_at[d] = Some(off);
        true
    }

    /// True while direction `d` can still teach something.
    pub fn wants(&self, d: usize) -> bool {
        self.dirs[d].phase != Phase::Done
    }

    /// Feeds contiguous stream bytes of direction `d`, which arrived in frame `at`.
    pub fn feed(&mut self, d: usize, data: &[u8], at: FrameRef) {
        let (st, peer) = split(&mut self.dirs, d);
        Feed {
            facts: &mut self.facts,
            peer,
            protected: self.protected.as_deref_mut(),
        }
        .feed_dir(d, st, data, at);
        if self.facts.handshake_done.is_some() {
            // Both sides are encrypted: records are only framed from here on (so a later
            // alert is still seen); handshake buffers are given back.
            for s in &mut self.dirs {
                if s.phase == Phase::NotTls {
                    s.phase = Phase::Done;
                }
                s.joiner.release();
            }
        }
    }

    /// `n` bytes of direction `d` were not captured (snaplen) or were lost (a hole). Inside a
    /// record body framing goes on, since the header gave the length; a handshake message that
    /// lost bytes is noted by type but not parsed. A loss that reaches a record header makes
    /// the direction search for the next plausible header.
    pub fn missing(&mut self, d: usize, n: u64, at: FrameRef) {
        let (st, peer) = split(&mut self.dirs, d);
        let mut feed = Feed {
            facts: &mut self.facts,
            peer,
            protected: self.protected.as_deref_mut(),
        };
        st.offset += n;
        let mut n = n;
        if st.phase == Phase::Records && st.in_body {
            let k = n.min(st.rec_remaining as u64) as usize;
            n -= k as u64;
            st.rec_remaining -= k;
            if st.rec.header.content_type == ContentType::HANDSHAKE && !st.encrypted {
                feed.handshake_missing(d, st, k, at);
            }
            if let (Some(p), true) = (feed.protected.as_deref_mut(), k > 0 && st.open_rec) {
                p.lost(d);
            }
            if st.rec_remaining == 0 {
                feed.record_end(d, st, at);
            }
        }
        if n > 0 && st.phase == Phase::Records {
            if let Some(p) = feed.protected.as_deref_mut() {
                p.stop(d);
            }
            st.phase = Phase::Desync;
            st.hdr_len = 0;
            st.in_body = false;
            st.joiner.reset();
            feed.facts.desync[d] = true;
        }
    }

    /// End of capture: classify a direction that sent fewer bytes than a record header.
    pub fn finish(&mut self, first_at: [Option<FrameRef>; 2]) {
        for (d, (st, first)) in self.dirs.iter().zip(first_at).enumerate() {
            let short = st.phase == Phase::Records && st.records == 0 && st.hdr_len > 0;
            if !short || st.midstream {
                continue;
            }
            let h = &st.hdr[..st.hdr_len];
            if let (false, Some(at)) = (tls_like_prefix(h), first) {
                self.facts.not_tls(d, at, h);
            }
        }
    }
}

/// The pair of directions as (`d`, the other one).
fn split(dirs: &mut [DirState; 2], d: usize) -> (&mut DirState, &mut DirState) {
    let [a, b] = dirs;
    if d == 0 {
        (a, b)
    } else {
        (b, a)
    }
}

/// Bytes of one direction being framed and parsed: what they teach goes into the facts, and
/// a TLS 1.3 ServerHello also marks the other direction encrypted.
struct Feed<'a> {
    facts: &'a mut TlsFacts,
    peer: &'a mut DirState,
    protected: Option<&'a mut Protected>,
}

impl Feed<'_> {
    fn feed_dir(&mut self, d: usize, st: &mut DirState, mut data: &[u8], at: FrameRef) {
        while !data.is_empty() {
            let used = match st.phase {
                Phase::Done => return,
                Phase::Records if !st.in_body => self.read_header(d, st, data, at),
                Phase::Records => self.read_body(d, st, data, at),
                Phase::NotTls => self.scan_plaintext(d, st, data, at),
                Phase::Desync => self.resync(st, data),
            };
            data = data.get(used..).unwrap_or_default();
        }
    }

    /// Reads bytes of a record header; returns how many.
    fn read_header(&mut self, d: usize, st: &mut DirState, data: &[u8], at: FrameRef) -> usize {
        let n = (HEADER_LEN - st.hdr_len).min(data.len());
        st.hdr[st.hdr_len..st.hdr_len + n].copy_from_slice(&data[..n]);
        st.hdr_len += n;
        st.offset += n as u64;
        if st.hdr_len == HEADER_LEN {
            self.on_header(d, st, at);
            if st.in_body && st.rec_remaining == 0 {
                self.record_end(d, st, at);
            }
        }
        n
    }

    /// Reads bytes of a record body; returns how many.
    fn read_body(&mut self, d: usize, st: &mut DirState, data: &[u8], at: FrameRef) -> usize {
        let n = st.rec_remaining.min(data.len());
        let chunk = &data[..n];
        match st.rec.header.content_type {
            ContentType::HANDSHAKE if !st.encrypted => self.handshake_bytes(d, st, chunk, at),
            ContentType::ALERT | ContentType::SSLV2 => {
                let room = SMALL_BODY.saturating_sub(st.small.len());
                st.small.extend_from_slice(&chunk[..room.min(n)]);
            }
            _ => {}
        }
        if let (true, Some(p)) = (st.open_rec, self.protected.as_deref_mut()) {
            p.body(d, chunk);
        }
        st.rec_remaining -= n;
        st.offset += n as u64;
        if st.rec_remaining == 0 {
            self.record_end(d, st, at);
        }
        n
    }

    /// Plaintext: keeps a preview and looks for a later hello (STARTTLS, HTTP CONNECT);
    /// returns the bytes passed over.
    fn scan_plaintext(&mut self, d: usize, st: &mut DirState, data: &[u8], at: FrameRef) -> usize {
        if let Some(nt) = &mut self.facts.non_tls[d] {
            let room = PREVIEW_LEN.saturating_sub(nt.preview.len());
            nt.preview.extend_from_slice(&data[..room.min(data.len())]);
        }
        if st.offset > STARTTLS_SCAN {
            st.phase = Phase::Done;
            return data.len();
        }
        let hello = memchr::memchr_iter(ContentType::HANDSHAKE.0, data)
            .find(|&i| data.get(i..).is_some_and(plausible_hello_start));
        let Some(i) = hello else {
            st.offset += data.len() as u64;
            return data.len();
        };
        if let Some(nt) = &mut self.facts.non_tls[d] {
            nt.tls_after = Some(at);
        }
        st.offset += i as u64;
        st.phase = Phase::Records;
        st.records = 0;
        i
    }

    /// After a gap, a segment that starts with a record header is the best place to pick the
    /// framing up again; searching inside segments is only worth it while the handshake is
    /// still open. Returns the bytes passed over.
    fn resync(&mut self, st: &mut DirState, data: &[u8]) -> usize {
        let found = if plausible_header(data) {
            Some(0)
        } else if self.facts.handshake_done.is_none() {
            data.windows(HEADER_LEN).position(plausible_header)
        } else {
            None
        };
        let Some(i) = found else {
            st.offset += data.len() as u64;
            return data.len();
        };
        st.offset += i as u64;
        st.phase = Phase::Records;
        st.hdr_len = 0;
        st.in_body = false;
        i
    }

    /// A whole record header is in `st.hdr`.
    fn on_header(&mut self, d: usize, st: &mut DirState, at: FrameRef) {
        let h = st.hdr;
        st.hdr_len = 0;
        let first = st.records == 0;
        let sslv2 = (first || st.sslv2)
            .then(|| Header::sslv2_hello(&h))
            .flatten();
        let header = match sslv2.or_else(|| Header::tls(&h)) {
            Some(header) => header,
            None if first && !st.midstream => {
                st.phase = Phase::NotTls;
                self.facts.not_tls(d, at, &h);
                return;
            }
            None => {
                st.phase = Phase::Desync;
                self.facts.desync[d] = true;
                return;
            }
        };
        st.records += 1;
        st.in_body = true;
        st.rec = Record {
            header,
            start: st.offset - HEADER_LEN as u64,
        };
        st.rec_remaining = header.len;
        st.small.clear();
        if sslv2.is_some() {
            // The SSLv2 length counts the message type and version already read.
            let [_, _, start @ ..] = h;
            st.sslv2 = true;
            st.rec_remaining = header.len.saturating_sub(start.len());
            st.small.extend_from_slice(&start);
        }
        self.facts.on_record_start(d, &st.rec, st.encrypted, at);
        st.open_rec = st.encrypted
            && self
                .protected
                .as_deref()
                .is_some_and(|p| p.wants(d, &header));
    }

    /// The body of `st.rec` is all read (or accounted for as missing).
    #[inline]
    fn record_end(&mut self, d: usize, st: &mut DirState, at: FrameRef) {
        st.in_body = false;
        let was_encrypted = st.encrypted;
        let e = self.facts.on_record_end(d, &st.rec, &st.small, at);
        st.encrypt(e);
        if st.rec.header.content_type == ContentType::SSLV2 {
            st.small.clear();
        }
        if self.protected.is_some() {
            self.protected_record_end(d, st, was_encrypted, e, at);
        }
    }

    /// With a key log: opens the protected record that ended, or derives the keys a
    /// ChangeCipherSpec (TLS <= 1.2) turned on.
    #[cold]
    #[inline(never)]
    fn protected_record_end(
        &mut self,
        d: usize,
        st: &mut DirState,
        was_encrypted: bool,
        e: Encrypts,
        at: FrameRef,
    ) {
        let Some(p) = self.protected.as_deref_mut() else {
            return;
        };
        if was_encrypted {
            let opened = p.record_end(d, &st.rec.header, st.open_rec);
            self.decrypted(d, opened, at);
        } else if e == Encrypts::This {
            p.start(d, self.facts.ch_dir == Some(d), false);
        }
        self.facts.decryption = self.protected.as_deref().map(|p| p.status);
    }

    /// What a record the key log opened held: handshake messages (joined across records)
    /// or an alert.
    fn decrypted(&mut self, d: usize, opened: Opened, at: FrameRef) {
        match opened {
            Opened::Handshake(bytes) => {
                let (facts, Some(p)) = (&mut *self.facts, self.protected.as_deref_mut()) else {
                    return;
                };
                let mut finished = false;
                p.joiner(d).push(&bytes, &mut |ev| {
                    if let Event::Message(msg) = ev {
                        finished |= facts.on_decrypted_message(d, msg);
                    }
                    Next::ReadOn
                });
                if finished {
                    p.finished(d);
                }
            }
            Opened::Alert(level, desc) => self.facts.on_decrypted_alert(d, level, desc, at),
            Opened::Nothing => {}
        }
    }

    /// Handshake bytes of a plaintext record.
    fn handshake_bytes(&mut self, d: usize, st: &mut DirState, chunk: &[u8], at: FrameRef) {
        let (facts, peer, rec) = (&mut *self.facts, &mut *self.peer, st.rec);
        let protected = &mut self.protected;
        st.joiner.push(chunk, &mut |ev| {
            let plain = match (&ev, protected.as_deref_mut()) {
                (Event::Message(msg), Some(p)) => {
                    p.on_plain_message(msg);
                    Some(p)
                }
                _ => None,
            };
            let next = learn(facts, d, ev, &rec, at, &mut st.encrypted, peer);
            if let (Some(p), true) = (plain, peer.encrypted && st.encrypted) {
                // A TLS 1.3 ServerHello: both directions are protected from here on.
                if facts.is_tls13() && !p.started() {
                    let client = facts.ch_dir;
                    p.start(d, client == Some(d), true);
                    p.start(1 - d, client == Some(1 - d), true);
                }
            }
            next
        });
    }

    /// `k` bytes of a plaintext handshake record were not captured.
    fn handshake_missing(&mut self, d: usize, st: &mut DirState, k: usize, at: FrameRef) {
        let (facts, peer, rec) = (&mut *self.facts, &mut *self.peer, st.rec);
        st.joiner.missing(k, st.rec_remaining, &mut |ev| {
            learn(facts, d, ev, &rec, at, &mut st.encrypted, peer)
        });
    }
}

/// What a handshake event of direction `d` teaches; the joiner stops once the direction is
/// encrypted (the rest of its record is not plaintext).
fn learn(
    facts: &mut TlsFacts,
    d: usize,
    ev: Event<'_>,
    rec: &Record,
    at: FrameRef,
    encrypted: &mut bool,
    peer: &mut DirState,
) -> Next {
    match facts.on_handshake(d, ev, rec, at) {
        Encrypts::Neither => {}
        Encrypts::This => *encrypted = true,
        Encrypts::Both => {
            *encrypted = true;
            peer.encrypted = true;
        }
    }
    if *encrypted {
        Next::Stop
    } else {
        Next::ReadOn
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::handshake::MAX_HANDSHAKE_MSG;

    fn at(frame: u64) -> FrameRef {
        FrameRef::new(0, frame, frame as i64 * 1_000_000)
    }

    fn record(ct: ContentType, body: &[u8]) -> Vec<u8> {
        let mut r = vec![ct.0, 3, 3, (body.len() >> 8) as u8, body.len() as u8];
        r.extend_from_slice(body);
        r
    }

    fn client_hello_msg() -> Vec<u8> {
        super::super::hello::tests_support::sample_client_hello()
    }

    #[test]
    fn client_hello_split_over_records_and_segments() {
        let msg = client_hello_msg();
        let (a, b) = msg.split_at(20);
        let mut stream = record(ContentType::HANDSHAKE, a);
        stream.extend(record(ContentType::HANDSHAKE, b));
        let mut t = TlsConn::new();
        // three TCP segments cutting across record boundaries
        let (s1, rest) = stream.split_at(7);
        let (s2, s3) = rest.split_at(30);
        t.feed(0, s1, at(4));
        t.feed(0, s2, at(5));
        assert!(t.facts.client_hello.is_none());
        t.feed(0, s3, at(6));
        let ch = t.facts.client_hello.as_ref().expect("parsed");
        assert_eq!(ch.sni.as_deref(), Some(&b"backend.test"[..]));
        assert_eq!(t.facts.ch_at, Some(at(6)));
        assert_eq!(t.facts.ch_range, Some((0, stream.len() as u64)));
        assert_eq!(t.facts.ch_dir, Some(0));
    }

    #[test]
    fn non_tls_server_bytes_are_kept_as_preview() {
        let mut t = TlsConn::new();
        t.feed(
            0,
            &record(ContentType::HANDSHAKE, &client_hello_msg()),
            at(4),
        );
        t.feed(1, b"HTTP/1.1 400 Bad Request\r\nServer: x\r\n\r\n", at(5));
        let nt = t.facts.non_tls[1].as_ref().expect("non tls");
        assert!(nt.preview.starts_with(b"HTTP/1.1 400 Bad Request"));
        assert!(t.facts.first_record[1].is_none());
    }

    #[test]
    fn plaintext_and_encrypted_alerts() {
        let mut t = TlsConn::new();
        t.feed(
            0,
            &record(ContentType::HANDSHAKE, &client_hello_msg()),
            at(4),
        );
        t.feed(1, &record(ContentType::ALERT, &[2, 70]), at(5));
        assert_eq!(t.facts.alerts[0].plain, Some((2, 70)));
        assert_eq!(t.facts.alerts[0].dir, 1);
        t.feed(0, &record(ContentType::ALERT, &[0u8; 26]), at(6));
        assert_eq!(t.facts.alerts[1].plain, None);
    }

    fn server_hello_msg(version13: bool) -> Vec<u8> {
        let mut body = vec![0x03, 0x03];
        body.extend_from_slice(&[0x22; 32]);
        body.push(0);
        body.extend_from_slice(&[0x13, 0x01, 0x00]);
        let ext: Vec<u8> = if version13 {
            vec![0x00, 0x2b, 0x00, 0x02, 0x03, 0x04]
        } else {
            vec![]
        };
        body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
        body.extend_from_slice(&ext);
        let mut msg = vec![2, 0, 0, body.len() as u8];
        msg.extend_from_slice(&body);
        msg
    }

    #[test]
    fn tls13_completion_needs_client_then_server_records() {
        let mut t = TlsConn::new();
        t.feed(
            0,
            &record(ContentType::HANDSHAKE, &client_hello_msg()),
            at(4),
        );
        let mut flight = record(ContentType::HANDSHAKE, &server_hello_msg(true));
        flight.extend(record(ContentType::CHANGE_CIPHER_SPEC, &[1]));
        // encrypted handshake records look like application data and must not be parsed
        flight.extend(record(ContentType::APPLICATION_DATA, &[0x16; 900]));
        t.feed(1, &flight, at(6));
        assert!(t.facts.server_hello.as_ref().is_some_and(|s| s.is_tls13()));
        assert!(t.facts.handshake_done.is_none());
        t.feed(0, &record(ContentType::APPLICATION_DATA, &[0; 53]), at(8));
        assert!(t.facts.handshake_done.is_none());
        t.feed(1, &record(ContentType::APPLICATION_DATA, &[0; 200]), at(9));
        assert_eq!(t.facts.handshake_done, Some(at(9)));
    }

    #[test]
    fn tls12_completion_on_ccs_both_ways_and_no_plaintext_after_ccs() {
        let mut t = TlsConn::new();
        t.feed(
            0,
            &record(ContentType::HANDSHAKE, &client_hello_msg()),
            at(4),
        );
        t.feed(
            1,
            &record(ContentType::HANDSHAKE, &server_hello_msg(false)),
            at(6),
        );
        let mut c = record(ContentType::CHANGE_CIPHER_SPEC, &[1]);
        // encrypted Finished: content type 22 but ciphertext that starts like a ClientHello
        c.extend(record(ContentType::HANDSHAKE, &client_hello_msg()));
        t.feed(0, &c, at(8));
        assert_eq!(t.facts.client_hellos, 1);
        assert!(t.facts.handshake_done.is_none());
        t.feed(1, &record(ContentType::CHANGE_CIPHER_SPEC, &[1]), at(9));
        assert_eq!(t.facts.handshake_done, Some(at(9)));
    }

    #[test]
    fn starttls_hello_found_after_plaintext() {
        let mut t = TlsConn::new();
        t.feed(0, b"EHLO x\r\nSTARTTLS\r\n", at(4));
        assert!(t.facts.non_tls[0].is_some());
        t.feed(
            0,
            &record(ContentType::HANDSHAKE, &client_hello_msg()),
            at(8),
        );
        assert!(t.facts.client_hello.is_some());
        assert_eq!(
            t.facts.non_tls[0].as_ref().and_then(|n| n.tls_after),
            Some(at(8))
        );
    }

    #[test]
    fn oversized_handshake_message_is_skipped_not_buffered() {
        let mut t = TlsConn::new();
        // a ClientHello claiming 16 MB
        let mut stream = vec![
            ContentType::HANDSHAKE.0,
            3,
            1,
            0x40,
            0x00,
            1,
            0xff,
            0xff,
            0xff,
        ];
        stream.extend(vec![0u8; 0x4000 - 4]);
        t.feed(0, &stream, at(4));
        assert!(t.facts.oversized_message);
        assert!(t.dirs[0].joiner.capacity() <= MAX_HANDSHAKE_MSG + 4);
    }

    #[test]
    fn any_byte_sequence_is_safe() {
        // a cheap exhaustive-ish walk over short inputs and cut points
        let msg = record(ContentType::HANDSHAKE, &client_hello_msg());
        for cut in 0..msg.len() {
            let mut t = TlsConn::new();
            let mut m = msg.clone();
            m[cut] ^= 0xff;
            t.feed(0, &m[..cut], at(1));
            t.feed(0, &m[cut..], at(2));
            t.finish([Some(at(1)), None]);
        }
    }
}
