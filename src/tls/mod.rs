//! TLS: records and handshake messages over the reassembled prefix of each direction.
//!
//! Owns the per-direction record framing state and the TLS facts of one connection
//! ([`TlsFacts`]): ClientHello and ServerHello (HelloRetryRequest recognised), the TLS <= 1.2
//! Certificate, alerts, ChangeCipherSpec, the first encrypted records, and the first bytes of a
//! peer that does not speak TLS. Handshake messages are joined across records before parsing.
//! Once a direction is encrypted (its CCS in TLS <= 1.2, the ServerHello in TLS 1.3) nothing in
//! it is parsed as plaintext again: records are only framed and counted. A stream that starts
//! with plaintext (STARTTLS, HTTP CONNECT) is scanned for a later hello.

pub mod hello;
pub mod names;

use crate::capture::FrameRef;
use hello::{ClientHelloFacts, LeafCertificate, ServerHelloInfo};

/// The largest handshake message buffered for parsing (certificate chains are the big ones).
pub const MAX_HANDSHAKE_MSG: usize = 64 * 1024;
/// RFC 8446 5.2: ciphertext may exceed 2^14 by 256; TLS <= 1.2 allowed 2048.
const MAX_RECORD_LEN: usize = (1 << 14) + 2048;

/// Buffers for handshake messages that span records or segments, reused from connection to
/// connection on the same thread: a certificate chain is a few KiB, and allocating one per
/// connection, then freeing it, was a tenth of the packet thread's time (glibc consolidates
/// its free lists for every request that size). At most [`HS_POOL`] buffers of at most
/// [`HS_POOL_KEEP`] bytes wait here (512 KiB).
const HS_POOL: usize = 32;
const HS_POOL_KEEP: usize = 16 << 10;

thread_local! {
    static HS_BUFFERS: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// An empty buffer for a handshake message, from the pool when it has one.
fn hs_buffer() -> Vec<u8> {
    HS_BUFFERS
        .with(|p| p.borrow_mut().pop())
        .unwrap_or_default()
}

/// Gives a handshake message buffer back to the pool (or frees it: pool full, or too large).
fn give_hs_buffer(mut b: Vec<u8>) {
    if b.capacity() == 0 || b.capacity() > HS_POOL_KEEP {
        return;
    }
    b.clear();
    HS_BUFFERS.with(|p| {
        let mut p = p.borrow_mut();
        if p.len() < HS_POOL {
            p.push(b);
        }
    });
}
/// Bytes of a non-TLS stream kept for the report.
pub const PREVIEW_LEN: usize = 256;
/// How far into a plaintext stream a later TLS hello is looked for (STARTTLS, CONNECT).
const STARTTLS_SCAN: u64 = 64 * 1024;
/// Encrypted records this short are alerts, not handshake messages (2 + 1 + 16-byte tag,
/// a little padding allowed; a TLS 1.3 Finished is at least 53 bytes).
pub const SHORT_ENCRYPTED: usize = 40;

pub const CT_CCS: u8 = 20;
pub const CT_ALERT: u8 = 21;
pub const CT_HANDSHAKE: u8 = 22;
pub const CT_APPDATA: u8 = 23;
/// Pseudo content type for an SSLv2-format record.
const CT_SSLV2: u8 = 0x80;

/// An alert record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertFact {
    pub dir: usize,
    pub at: FrameRef,
    /// Level and description, when the alert was in clear.
    pub plain: Option<(u8, u8)>,
    pub record_len: usize,
}

/// Bytes of a direction that did not frame as TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NonTls {
    pub at: FrameRef,
    pub preview: Vec<u8>,
    /// A TLS hello was found later in the same direction (STARTTLS, HTTP CONNECT).
    pub tls_after: Option<FrameRef>,
}

/// Everything the TLS layer learnt about one connection, by direction index (0 or 1, as the
/// flow layer numbers them).
#[derive(Debug, Clone, Default)]
pub struct TlsFacts {
    /// The first ClientHello, kept compact; [`ClientHelloFacts::info`] gives the report's form.
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
    /// When the handshake completed (both sides went encrypted).
    pub handshake_done: Option<FrameRef>,
    pub non_tls: [Option<Box<NonTls>>; 2],
    /// A direction lost record alignment (gap, or the capture began mid-stream).
    pub desync: [bool; 2],
    /// A handshake message larger than [`MAX_HANDSHAKE_MSG`] was skipped unparsed.
    pub oversized_message: bool,
    /// A ServerHello was seen but not captured whole (snaplen): its version is unknown.
    pub sh_unparsed: bool,
    /// Offset where a direction restarted because a hello overwrote junk bytes before it.
    pub restarted_at: [Option<u64>; 2],
}

impl TlsFacts {
    /// Negotiated version, from the (last) ServerHello.
    pub fn negotiated_version(&self) -> Option<u16> {
        self.server_hello.as_ref().map(ServerHelloInfo::version)
    }
    fn is_tls13(&self) -> bool {
        self.server_hello
            .as_ref()
            .is_some_and(ServerHelloInfo::is_tls13)
    }
}

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

#[derive(Debug, Default)]
struct DirState {
    phase: Phase,
    /// Stream offset of the next byte fed.
    offset: u64,
    hdr: [u8; 5],
    hdr_len: usize,
    in_body: bool,
    rec_type: u8,
    rec_version: u16,
    rec_len: usize,
    rec_remaining: usize,
    rec_start: u64,
    /// Body of a small record (alert) or the start of an SSLv2 record.
    small: Vec<u8>,
    /// Handshake message under assembly.
    hs: Vec<u8>,
    hs_skip: usize,
    /// Type of a message being skipped because bytes of it were not captured.
    hs_partial: Option<u8>,
    /// Bytes of the current record were not captured.
    rec_missing: bool,
    encrypted: bool,
    records: u32,
    sslv2: bool,
    /// The stream did not start at its first byte (no SYN seen).
    midstream: bool,
}

/// TLS state of one connection.
#[derive(Debug, Default)]
pub struct TlsConn {
    dirs: [DirState; 2],
    pub facts: TlsFacts,
}

/// Body length of the handshake message whose 4-byte header starts `h` (0 if `h` is shorter).
fn message_len(h: &[u8]) -> usize {
    match h {
        [_, a, b, c, ..] => (usize::from(*a) << 16) | (usize::from(*b) << 8) | usize::from(*c),
        _ => 0,
    }
}

fn plausible_header(h: &[u8]) -> bool {
    h.len() >= 5
        && (CT_CCS..=24).contains(&h[0])
        && h[1] == 3
        && h[2] <= 4
        && usize::from(u16::from_be_bytes([h[3], h[4]])) <= MAX_RECORD_LEN
}

/// A record header that starts a ClientHello (client) or ServerHello (server) after plaintext.
fn plausible_hello_start(h: &[u8]) -> bool {
    h.len() >= 9
        && h[0] == CT_HANDSHAKE
        && h[1] == 3
        && h[2] <= 4
        && (h[5] == 1 || h[5] == 2)
        && h[6] == 0
        && u16::from_be_bytes([h[3], h[4]]) >= 38
}

impl TlsConn {
    pub fn new() -> Self {
        Self::default()
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

    /// True while either direction can still teach something.
    pub fn wants(&self, d: usize) -> bool {
        self.dirs[d].phase != Phase::Done
    }

    /// Feeds contiguous stream bytes of direction `d`, which arrived in frame `at`.
    pub fn feed(&mut self, d: usize, data: &[u8], at: FrameRef) {
        let (st, peer) = split(&mut self.dirs, d);
        Feed {
            facts: &mut self.facts,
            peer,
        }
        .feed_dir(d, st, data, at);
        if self.facts.handshake_done.is_some() {
            // Both sides are encrypted: records are only framed from here on (so a later
            // alert is still seen); handshake buffers are given back.
            for s in &mut self.dirs {
                if s.phase == Phase::NotTls {
                    s.phase = Phase::Done;
                }
                if s.hs.capacity() > 0 {
                    give_hs_buffer(std::mem::take(&mut s.hs));
                }
            }
        }
    }

    /// Feeds what the reassembler delivered: bytes, or bytes known to exist but not captured.
    pub fn feed_piece(&mut self, d: usize, p: crate::flow::reassembly::Piece<'_>, at: FrameRef) {
        match p {
            crate::flow::reassembly::Piece::Bytes(b) => self.feed(d, b, at),
            crate::flow::reassembly::Piece::Missing(n) => self.missing(d, n, at),
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
        };
        st.offset += n;
        let mut n = n;
        if st.phase == Phase::Records && st.in_body {
            let k = n.min(st.rec_remaining as u64) as usize;
            n -= k as u64;
            st.rec_remaining -= k;
            st.rec_missing = true;
            if st.rec_type == CT_HANDSHAKE && !st.encrypted {
                feed.handshake_missing(d, st, k, at);
            }
            if st.rec_remaining == 0 {
                feed.on_record_end(d, st, at);
            }
        }
        if n > 0 && st.phase == Phase::Records {
            st.phase = Phase::Desync;
            st.hdr_len = 0;
            st.in_body = false;
            st.hs.clear();
            st.hs_skip = 0;
            feed.facts.desync[d] = true;
        }
    }

    /// End of capture: classify a direction that sent fewer bytes than a record header.
    pub fn finish(&mut self, first_at: [Option<FrameRef>; 2]) {
        for (d, (st, first)) in self.dirs.iter_mut().zip(first_at).enumerate() {
            if st.phase == Phase::Records && st.records == 0 && st.hdr_len > 0 && !st.midstream {
                let h = &st.hdr[..st.hdr_len];
                let tls_like = (CT_CCS..=24).contains(&h[0]) && h.get(1).is_none_or(|b| *b == 3);
                if !tls_like {
                    if let Some(at) = first {
                        self.facts.non_tls[d] = Some(Box::new(NonTls {
                            at,
                            preview: h.to_vec(),
                            tls_after: None,
                        }));
                    }
                }
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
}

impl Feed<'_> {
    /// `k` bytes of a plaintext handshake record were not captured.
    fn handshake_missing(&mut self, d: usize, st: &mut DirState, mut k: usize, at: FrameRef) {
        while k > 0 {
            if st.hs_skip > 0 {
                let m = st.hs_skip.min(k);
                st.hs_skip -= m;
                k -= m;
                if st.hs_skip == 0 {
                    if let Some(t) = st.hs_partial.take() {
                        self.on_partial_message(d, st, t, at);
                    }
                }
                continue;
            }
            if st.hs.len() < 4 {
                // The message header itself is lost: skip the rest of this record's messages.
                st.hs.clear();
                st.hs_skip = st.rec_remaining + k;
                st.hs_partial = None;
                k = 0;
                continue;
            }
            let mlen = message_len(&st.hs);
            let rest = (4 + mlen).saturating_sub(st.hs.len());
            st.hs_partial = Some(st.hs[0]);
            st.hs.clear();
            st.hs_skip = rest;
        }
    }

    /// A handshake message whose bytes were not all captured: its type still tells something.
    fn on_partial_message(&mut self, d: usize, _st: &mut DirState, msg_type: u8, at: FrameRef) {
        let f = &mut *self.facts;
        match msg_type {
            1 => {
                f.client_hellos += 1;
                if f.ch_at.is_none() {
                    f.ch_dir = Some(d);
                    f.ch_at = Some(at);
                }
            }
            2 if f.sh_at.is_none() => {
                f.sh_dir = Some(d);
                f.sh_at = Some(at);
                f.sh_unparsed = true;
            }
            _ => {}
        }
    }

    fn feed_dir(&mut self, d: usize, st: &mut DirState, mut data: &[u8], at: FrameRef) {
        while !data.is_empty() {
            match st.phase {
                Phase::Done => return,
                Phase::Records if !st.in_body => {
                    let n = (5 - st.hdr_len).min(data.len());
                    st.hdr[st.hdr_len..st.hdr_len + n].copy_from_slice(&data[..n]);
                    st.hdr_len += n;
                    data = &data[n..];
                    st.offset += n as u64;
                    if st.hdr_len == 5 {
                        self.on_header(d, st, at);
                        if st.in_body && st.rec_remaining == 0 {
                            self.on_record_end(d, st, at);
                        }
                    }
                }
                Phase::Records => {
                    let n = st.rec_remaining.min(data.len());
                    self.on_body(d, st, &data[..n], at);
                    st.rec_remaining -= n;
                    st.offset += n as u64;
                    data = &data[n..];
                    if st.rec_remaining == 0 {
                        self.on_record_end(d, st, at);
                    }
                }
                Phase::NotTls => {
                    if let Some(nt) = &mut self.facts.non_tls[d] {
                        let room = PREVIEW_LEN.saturating_sub(nt.preview.len());
                        nt.preview.extend_from_slice(&data[..room.min(data.len())]);
                    }
                    if st.offset > STARTTLS_SCAN {
                        st.phase = Phase::Done;
                        return;
                    }
                    match memchr::memchr_iter(CT_HANDSHAKE, data)
                        .find(|&i| data.get(i..).is_some_and(plausible_hello_start))
                    {
                        Some(i) => {
                            if let Some(nt) = &mut self.facts.non_tls[d] {
                                nt.tls_after = Some(at);
                            }
                            st.offset += i as u64;
                            data = &data[i..];
                            st.phase = Phase::Records;
                            st.records = 0;
                        }
                        None => {
                            st.offset += data.len() as u64;
                            return;
                        }
                    }
                }
                // After a gap, a segment that starts with a record header is the best place to
                // pick the framing up again; searching inside segments is only worth it while
                // the handshake is still open.
                Phase::Desync => match if plausible_header(data) {
                    Some(0)
                } else if self.facts.handshake_done.is_none() {
                    data.windows(5).position(plausible_header)
                } else {
                    None
                } {
                    Some(i) => {
                        st.offset += i as u64;
                        data = &data[i..];
                        st.phase = Phase::Records;
                        st.hdr_len = 0;
                        st.in_body = false;
                    }
                    None => {
                        st.offset += data.len() as u64;
                        return;
                    }
                },
            }
        }
    }

    fn on_header(&mut self, d: usize, st: &mut DirState, at: FrameRef) {
        let h = st.hdr;
        st.hdr_len = 0;
        let first = st.records == 0;
        let sslv2 = h[0] & 0x80 != 0 && (h[2] == 1 || h[2] == 4) && (first || st.sslv2);
        if sslv2 {
            let len = usize::from(u16::from_be_bytes([h[0] & 0x7f, h[1]]));
            st.sslv2 = true;
            st.records += 1;
            st.in_body = true;
            st.rec_type = CT_SSLV2;
            st.rec_len = len;
            st.rec_remaining = len.saturating_sub(3);
            st.rec_start = st.offset - 5;
            st.small.clear();
            st.small.extend_from_slice(&h[2..5]);
            self.facts.first_record[d].get_or_insert(at);
            return;
        }
        if !plausible_header(&h) {
            if first && !st.midstream {
                st.phase = Phase::NotTls;
                self.facts.non_tls[d] = Some(Box::new(NonTls {
                    at,
                    preview: h.to_vec(),
                    tls_after: None,
                }));
            } else {
                st.phase = Phase::Desync;
                self.facts.desync[d] = true;
            }
            return;
        }
        st.records += 1;
        st.in_body = true;
        st.rec_missing = false;
        st.rec_type = h[0];
        st.rec_version = u16::from_be_bytes([h[1], h[2]]);
        st.rec_len = usize::from(u16::from_be_bytes([h[3], h[4]]));
        st.rec_remaining = st.rec_len;
        st.rec_start = st.offset - 5;
        st.small.clear();
        self.facts.first_record[d].get_or_insert(at);
        // The ClientHello's byte range grows with each record that carries it.
        if st.rec_type == CT_HANDSHAKE
            && !st.encrypted
            && self.facts.ch_at.is_none()
            && self.facts.ch_dir == Some(d)
        {
            if let Some(r) = &mut self.facts.ch_range {
                r.1 = st.rec_start + 5 + st.rec_len as u64;
            }
        }
    }

    fn on_body(&mut self, d: usize, st: &mut DirState, chunk: &[u8], at: FrameRef) {
        match st.rec_type {
            CT_HANDSHAKE if !st.encrypted => self.on_handshake_bytes(d, st, chunk, at),
            CT_ALERT | CT_SSLV2 => {
                let room = 16usize.saturating_sub(st.small.len());
                st.small.extend_from_slice(&chunk[..room.min(chunk.len())]);
            }
            _ => {}
        }
    }

    fn on_handshake_bytes(&mut self, d: usize, st: &mut DirState, mut chunk: &[u8], at: FrameRef) {
        while !chunk.is_empty() {
            if st.hs_skip > 0 {
                let n = st.hs_skip.min(chunk.len());
                st.hs_skip -= n;
                chunk = &chunk[n..];
                if st.hs_skip == 0 {
                    if let Some(t) = st.hs_partial.take() {
                        self.on_partial_message(d, st, t, at);
                    }
                }
                continue;
            }
            if st.hs.is_empty() && self.facts.ch_range.is_none() && chunk[0] == 1 {
                // A ClientHello begins in this record.
                self.facts.ch_dir = Some(d);
                self.facts.ch_range = Some((st.rec_start, st.rec_start + 5 + st.rec_len as u64));
            }
            // A whole message in this chunk (the usual case): read it in place.
            if st.hs.is_empty() && chunk.len() >= 4 {
                let mlen = message_len(chunk);
                if mlen <= MAX_HANDSHAKE_MSG && chunk.len() >= 4 + mlen {
                    let (msg, rest) = chunk.split_at(4 + mlen);
                    self.on_message(d, st, msg, at);
                    chunk = rest;
                    continue;
                }
            }
            // Take at most what completes the current message.
            let need = if st.hs.len() < 4 {
                4 - st.hs.len()
            } else {
                let mlen = message_len(&st.hs);
                4 + mlen - st.hs.len()
            };
            let n = need.min(chunk.len());
            if st.hs.capacity() == 0 {
                st.hs = hs_buffer();
            }
            st.hs.extend_from_slice(&chunk[..n]);
            chunk = &chunk[n..];
            if st.hs.len() == 4 {
                let mlen = message_len(&st.hs);
                if mlen <= MAX_HANDSHAKE_MSG {
                    st.hs.reserve_exact(mlen);
                }
                if mlen > MAX_HANDSHAKE_MSG {
                    self.facts.oversized_message = true;
                    if st.hs[0] == 1 && self.facts.ch_dir == Some(d) {
                        self.facts.client_hellos += 1;
                        self.facts.ch_at.get_or_insert(at);
                    }
                    st.hs_skip = mlen;
                    st.hs.clear();
                    continue;
                }
            }
            if st.hs.len() >= 4 {
                let mlen = message_len(&st.hs);
                if st.hs.len() == 4 + mlen {
                    let msg = std::mem::take(&mut st.hs);
                    self.on_message(d, st, &msg, at);
                    // Keep a small buffer for the next message; give a large one back (a
                    // ClientHello or certificate chain would otherwise stay allocated for
                    // as long as the connection lives, e.g. waiting for a silent server).
                    if msg.capacity() <= 256 {
                        st.hs = msg;
                        st.hs.clear();
                    } else {
                        give_hs_buffer(msg);
                    }
                    if st.encrypted {
                        return; // the rest of this record cannot be parsed as plaintext
                    }
                }
            }
        }
    }

    fn on_message(&mut self, d: usize, st: &mut DirState, msg: &[u8], at: FrameRef) {
        let f = &mut *self.facts;
        match msg[0] {
            1 => {
                f.client_hellos += 1;
                if f.client_hello.is_none() {
                    f.ch_dir = Some(d);
                    f.ch_at = Some(at);
                    f.client_hello = Some(
                        hello::parse_client_hello(msg, st.rec_version).unwrap_or_else(|| {
                            ClientHelloFacts::unparsed(st.rec_version, msg.len())
                        }),
                    );
                    if let Some(r) = &mut f.ch_range {
                        r.1 = st.rec_start + 5 + st.rec_len as u64;
                    }
                }
            }
            2 => {
                let Some(sh) = hello::parse_server_hello(msg) else {
                    return;
                };
                if sh.hello_retry_request {
                    f.hrr_at.get_or_insert(at);
                    if f.server_hello.is_none() {
                        f.sh_dir = Some(d);
                    }
                    return;
                }
                let tls13 = sh.is_tls13();
                f.server_hello = Some(sh);
                f.sh_dir = Some(d);
                f.sh_at = Some(at);
                if tls13 {
                    st.encrypted = true;
                    self.peer.encrypted = true;
                }
            }
            11 if !f.is_tls13() && f.certificate.is_none() => {
                f.certificate = hello::leaf_certificate(msg);
            }
            _ => {}
        }
    }

    fn on_record_end(&mut self, d: usize, st: &mut DirState, at: FrameRef) {
        st.in_body = false;
        let f = &mut *self.facts;
        match st.rec_type {
            CT_CCS => {
                f.ccs[d].get_or_insert(at);
                // TLS <= 1.2 encrypts after CCS; in 1.3 (a ServerHello said so, or a
                // HelloRetryRequest was seen) a CCS is only middlebox compatibility.
                // A CCS before any ServerHello is the client's 1.3 compatibility CCS (in 1.2
                // it always follows the ServerHello).
                let tls12 = match &f.server_hello {
                    Some(sh) => !sh.is_tls13(),
                    None => f.hrr_at.is_none() && f.sh_at.is_some(),
                };
                if tls12 {
                    st.encrypted = true;
                    let other = if d == 0 { 1 } else { 0 };
                    if f.ccs[other].is_some() && f.sh_at.is_some() {
                        f.handshake_done.get_or_insert(at);
                    }
                }
            }
            CT_ALERT => {
                let plain =
                    (st.rec_len == 2 && st.small.len() == 2).then(|| (st.small[0], st.small[1]));
                if f.alerts.len() < 16 {
                    f.alerts.push(AlertFact {
                        dir: d,
                        at,
                        plain,
                        record_len: st.rec_len,
                    });
                }
            }
            CT_APPDATA => {
                f.appdata_records[d] = f.appdata_records[d].saturating_add(1);
                f.first_appdata[d].get_or_insert(at);
                if f.is_tls13() || f.sh_unparsed {
                    if f.ch_dir == Some(d) {
                        f.client_encrypted_after_sh_count += 1;
                        f.client_encrypted_after_sh.get_or_insert((at, st.rec_len));
                        if f.client_encrypted_after_sh_count >= 2 {
                            // Finished and then data: the client accepted the server.
                            f.handshake_done.get_or_insert(at);
                        }
                    } else if f.sh_dir == Some(d) && f.client_encrypted_after_sh.is_some() {
                        f.handshake_done.get_or_insert(at);
                    }
                }
            }
            CT_SSLV2 => {
                match st.small.first() {
                    Some(1) if f.client_hello.is_none() => {
                        f.client_hellos += 1;
                        f.ch_dir = Some(d);
                        f.ch_at = Some(at);
                        f.ch_range = Some((st.rec_start, st.rec_start + 2 + st.rec_len as u64));
                        f.client_hello = hello::parse_sslv2_client_hello(&st.small);
                    }
                    Some(4) if f.server_hello.is_none() => {
                        f.server_hello = Some(ServerHelloInfo {
                            legacy_version: 0x0002,
                            selected_version: Some(0x0002),
                            ..Default::default()
                        });
                        f.sh_dir = Some(d);
                        f.sh_at = Some(at);
                        st.encrypted = true;
                    }
                    _ => {}
                }
                st.small.clear();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pooled handshake buffer comes back empty, keeps its allocation, and the pool stays
    /// bounded in count and size.
    #[test]
    fn pooled_handshake_buffers_come_back_empty_and_bounded() {
        let mut used = Vec::with_capacity(4096);
        used.extend_from_slice(&[0x0b; 3000]);
        give_hs_buffer(used);
        let b = hs_buffer();
        assert!(b.is_empty() && b.capacity() >= 4096);
        give_hs_buffer(vec![0; HS_POOL_KEEP + 1]);
        for _ in 0..HS_POOL + 8 {
            give_hs_buffer(Vec::with_capacity(64));
        }
        let kept = HS_BUFFERS.with(|p| p.borrow().iter().map(Vec::capacity).collect::<Vec<_>>());
        assert_eq!(kept.len(), HS_POOL);
        assert!(kept.iter().all(|&c| c <= HS_POOL_KEEP));
    }

    fn at(frame: u64) -> FrameRef {
        FrameRef::new(0, frame, frame as i64 * 1_000_000)
    }

    fn record(ct: u8, body: &[u8]) -> Vec<u8> {
        let mut r = vec![ct, 3, 3, (body.len() >> 8) as u8, body.len() as u8];
        r.extend_from_slice(body);
        r
    }

    fn client_hello_msg() -> Vec<u8> {
        hello::tests_support::sample_client_hello()
    }

    #[test]
    fn client_hello_split_over_records_and_segments() {
        let msg = client_hello_msg();
        let (a, b) = msg.split_at(20);
        let mut stream = record(CT_HANDSHAKE, a);
        stream.extend(record(CT_HANDSHAKE, b));
        let mut t = TlsConn::new();
        // three TCP segments cutting across record boundaries
        let (s1, rest) = stream.split_at(7);
        let (s2, s3) = rest.split_at(30);
        t.feed(0, s1, at(4));
        t.feed(0, s2, at(5));
        assert!(t.facts.client_hello.is_none());
        t.feed(0, s3, at(6));
        let ch = t.facts.client_hello.as_ref().expect("parsed").info();
        assert_eq!(ch.sni.as_deref(), Some("backend.test"));
        assert_eq!(t.facts.ch_at, Some(at(6)));
        assert_eq!(t.facts.ch_range, Some((0, stream.len() as u64)));
        assert_eq!(t.facts.ch_dir, Some(0));
    }

    #[test]
    fn non_tls_server_bytes_are_kept_as_preview() {
        let mut t = TlsConn::new();
        t.feed(0, &record(CT_HANDSHAKE, &client_hello_msg()), at(4));
        t.feed(1, b"HTTP/1.1 400 Bad Request\r\nServer: x\r\n\r\n", at(5));
        let nt = t.facts.non_tls[1].as_ref().expect("non tls");
        assert!(nt.preview.starts_with(b"HTTP/1.1 400 Bad Request"));
        assert!(t.facts.first_record[1].is_none());
    }

    #[test]
    fn plaintext_and_encrypted_alerts() {
        let mut t = TlsConn::new();
        t.feed(0, &record(CT_HANDSHAKE, &client_hello_msg()), at(4));
        t.feed(1, &record(CT_ALERT, &[2, 70]), at(5));
        assert_eq!(t.facts.alerts[0].plain, Some((2, 70)));
        assert_eq!(t.facts.alerts[0].dir, 1);
        t.feed(0, &record(CT_ALERT, &[0u8; 26]), at(6));
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
        t.feed(0, &record(CT_HANDSHAKE, &client_hello_msg()), at(4));
        let mut flight = record(CT_HANDSHAKE, &server_hello_msg(true));
        flight.extend(record(CT_CCS, &[1]));
        // encrypted handshake records look like application data and must not be parsed
        flight.extend(record(CT_APPDATA, &[0x16; 900]));
        t.feed(1, &flight, at(6));
        assert!(t.facts.server_hello.as_ref().is_some_and(|s| s.is_tls13()));
        assert!(t.facts.handshake_done.is_none());
        t.feed(0, &record(CT_APPDATA, &[0; 53]), at(8));
        assert!(t.facts.handshake_done.is_none());
        t.feed(1, &record(CT_APPDATA, &[0; 200]), at(9));
        assert_eq!(t.facts.handshake_done, Some(at(9)));
    }

    #[test]
    fn tls12_completion_on_ccs_both_ways_and_no_plaintext_after_ccs() {
        let mut t = TlsConn::new();
        t.feed(0, &record(CT_HANDSHAKE, &client_hello_msg()), at(4));
        t.feed(1, &record(CT_HANDSHAKE, &server_hello_msg(false)), at(6));
        let mut c = record(CT_CCS, &[1]);
        // encrypted Finished: content type 22 but ciphertext that starts like a ClientHello
        c.extend(record(CT_HANDSHAKE, &client_hello_msg()));
        t.feed(0, &c, at(8));
        assert_eq!(t.facts.client_hellos, 1);
        assert!(t.facts.handshake_done.is_none());
        t.feed(1, &record(CT_CCS, &[1]), at(9));
        assert_eq!(t.facts.handshake_done, Some(at(9)));
    }

    #[test]
    fn starttls_hello_found_after_plaintext() {
        let mut t = TlsConn::new();
        t.feed(0, b"EHLO x\r\nSTARTTLS\r\n", at(4));
        assert!(t.facts.non_tls[0].is_some());
        t.feed(0, &record(CT_HANDSHAKE, &client_hello_msg()), at(8));
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
        let mut stream = vec![CT_HANDSHAKE, 3, 1, 0x40, 0x00, 1, 0xff, 0xff, 0xff];
        stream.extend(vec![0u8; 0x4000 - 4]);
        t.feed(0, &stream, at(4));
        assert!(t.facts.oversized_message);
        assert!(t.dirs[0].hs.capacity() <= MAX_HANDSHAKE_MSG + 4);
    }

    #[test]
    fn any_byte_sequence_is_safe() {
        // a cheap exhaustive-ish walk over short inputs and cut points
        let msg = record(CT_HANDSHAKE, &client_hello_msg());
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
