//! Handshake: joins the handshake messages of one direction across records and segments
//! (RFC 8446 4: a 4-byte header, type and 24-bit length, then the body), skips what is too
//! large or was not captured, and hands each message on whole as an [`Event`].

use std::fmt;

/// A handshake message type. Unknown values stay readable (as a number), never an error.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct HandshakeType(pub u8);

impl HandshakeType {
    pub const CLIENT_HELLO: Self = Self(1);
    pub const SERVER_HELLO: Self = Self(2);
    pub const ENCRYPTED_EXTENSIONS: Self = Self(8);
    pub const CERTIFICATE: Self = Self(11);
    pub const CERTIFICATE_REQUEST: Self = Self(13);
    pub const FINISHED: Self = Self(20);
}

impl fmt::Debug for HandshakeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::CLIENT_HELLO => f.write_str("client_hello"),
            Self::SERVER_HELLO => f.write_str("server_hello"),
            Self::CERTIFICATE => f.write_str("certificate"),
            Self(other) => write!(f, "HandshakeType({other})"),
        }
    }
}

/// The largest handshake message buffered for parsing (certificate chains are the big ones).
pub const MAX_HANDSHAKE_MSG: usize = 64 * 1024;
/// Type and 24-bit length.
const HEADER_LEN: usize = 4;
/// A joined message buffer this small is kept for the direction's next message.
const KEEP_OWN_BUFFER: usize = 256;

/// Body length of the handshake message whose 4-byte header starts `h` (0 if `h` is shorter).
pub fn message_len(h: &[u8]) -> usize {
    match *h {
        [_, a, b, c, ..] => (usize::from(a) << 16) | (usize::from(b) << 8) | usize::from(c),
        _ => 0,
    }
}

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

/// What the joiner found in the handshake bytes of a direction.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A message begins in the record being read.
    Begins(HandshakeType),
    /// A whole message: header and body.
    Message(&'a [u8]),
    /// A message some of whose bytes were not captured: only its type is known.
    Partial(HandshakeType),
    /// A message longer than [`MAX_HANDSHAKE_MSG`], skipped unparsed.
    Oversized(HandshakeType),
}

/// Whether the joiner reads on after a whole message: not once the direction turned
/// encrypted (the rest of the record is not plaintext).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    ReadOn,
    Stop,
}

/// One direction's handshake message under assembly.
#[derive(Debug, Default)]
pub struct Joiner {
    /// The message's bytes so far (header included), when it spans records or segments.
    buf: Vec<u8>,
    /// Bytes still to skip: the rest of an oversized message or of one that lost bytes.
    skip: usize,
    /// Type of a message being skipped because bytes of it were not captured.
    partial: Option<HandshakeType>,
}

impl Joiner {
    /// Reads `chunk`, handshake bytes of a plaintext record, calling `on` for each event.
    pub fn push(&mut self, mut chunk: &[u8], on: &mut impl FnMut(Event<'_>) -> Next) {
        while let Some(&first) = chunk.first() {
            if self.skip > 0 {
                let n = self.skip.min(chunk.len());
                chunk = &chunk[n..];
                self.skipped(n, on);
                continue;
            }
            if self.buf.is_empty() {
                on(Event::Begins(HandshakeType(first)));
                // A whole message in this chunk (the usual case): read it in place.
                let mlen = message_len(chunk);
                if chunk.len() >= HEADER_LEN && mlen <= MAX_HANDSHAKE_MSG {
                    if let Some((msg, rest)) = chunk.split_at_checked(HEADER_LEN + mlen) {
                        chunk = rest;
                        if on(Event::Message(msg)) == Next::Stop {
                            return;
                        }
                        continue;
                    }
                }
            }
            let n = self.need().min(chunk.len());
            let (part, rest) = chunk.split_at(n);
            chunk = rest;
            if self.append(part, on) == Next::Stop {
                return;
            }
        }
    }

    /// Bytes that complete the header, or else the message.
    fn need(&self) -> usize {
        if self.buf.len() < HEADER_LEN {
            HEADER_LEN - self.buf.len()
        } else {
            HEADER_LEN + message_len(&self.buf) - self.buf.len()
        }
    }

    /// Appends `part` (at most what [`Joiner::need`] asked for) to the message under assembly,
    /// handing it on once whole.
    fn append(&mut self, part: &[u8], on: &mut impl FnMut(Event<'_>) -> Next) -> Next {
        if self.buf.capacity() == 0 {
            self.buf = hs_buffer();
        }
        self.buf.extend_from_slice(part);
        let mlen = message_len(&self.buf);
        if self.buf.len() == HEADER_LEN {
            if mlen > MAX_HANDSHAKE_MSG {
                on(Event::Oversized(HandshakeType(self.buf[0])));
                self.skip = mlen;
                self.buf.clear();
                return Next::ReadOn;
            }
            self.buf.reserve_exact(mlen);
        }
        if self.buf.len() < HEADER_LEN || self.buf.len() != HEADER_LEN + mlen {
            return Next::ReadOn;
        }
        let msg = std::mem::take(&mut self.buf);
        let next = on(Event::Message(&msg));
        // Keep a small buffer for the next message; give a large one back (a ClientHello or
        // certificate chain would otherwise stay allocated for as long as the connection
        // lives, e.g. waiting for a silent server).
        if msg.capacity() <= KEEP_OWN_BUFFER {
            self.buf = msg;
            self.buf.clear();
        } else {
            give_hs_buffer(msg);
        }
        next
    }

    /// `n` bytes (at most `skip`) were skipped; the end of a partial message is an event.
    fn skipped(&mut self, n: usize, on: &mut impl FnMut(Event<'_>) -> Next) {
        self.skip -= n;
        if self.skip == 0 {
            if let Some(t) = self.partial.take() {
                on(Event::Partial(t));
            }
        }
    }

    /// `k` bytes of a plaintext handshake record were not captured; `rec_remaining` bytes of
    /// the record follow them.
    pub fn missing(
        &mut self,
        mut k: usize,
        rec_remaining: usize,
        on: &mut impl FnMut(Event<'_>) -> Next,
    ) {
        while k > 0 {
            if self.skip > 0 {
                let m = self.skip.min(k);
                k -= m;
                self.skipped(m, on);
                continue;
            }
            let [t, _, _, _, ..] = self.buf[..] else {
                // The message header itself is lost: skip the rest of this record's messages.
                self.buf.clear();
                self.skip = rec_remaining + k;
                self.partial = None;
                return;
            };
            self.skip = (HEADER_LEN + message_len(&self.buf)).saturating_sub(self.buf.len());
            self.partial = Some(HandshakeType(t));
            self.buf.clear();
        }
    }

    /// Alignment was lost: the message under assembly is dropped.
    pub fn reset(&mut self) {
        self.buf.clear();
        self.skip = 0;
    }

    /// Nothing more will be joined in this direction: its buffer goes back to the pool.
    pub fn release(&mut self) {
        if self.buf.capacity() > 0 {
            give_hs_buffer(std::mem::take(&mut self.buf));
        }
    }

    /// Bytes held for the message under assembly.
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
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

    fn events(j: &mut Joiner, pieces: &[&[u8]]) -> Vec<String> {
        let mut out = Vec::new();
        for p in pieces {
            j.push(p, &mut |e| {
                out.push(format!("{e:?}"));
                Next::ReadOn
            });
        }
        out
    }

    #[test]
    fn a_message_split_over_pieces_is_joined() {
        let mut j = Joiner::default();
        let got = events(&mut j, &[&[11, 0], &[0, 2, 0xaa], &[0xbb, 2, 0, 0, 0]]);
        assert_eq!(
            got,
            [
                "Begins(certificate)",
                "Message([11, 0, 0, 2, 170, 187])",
                "Begins(server_hello)",
                "Message([2, 0, 0, 0])",
            ]
        );
    }

    #[test]
    fn oversized_message_is_skipped_then_reading_goes_on() {
        let mut j = Joiner::default();
        let mut big = vec![1, 0xff, 0xff, 0xff];
        big.resize(4 + 100, 0);
        let got = events(&mut j, &[&big]);
        assert_eq!(got, ["Begins(client_hello)", "Oversized(client_hello)"]);
        assert!(j.capacity() <= KEEP_OWN_BUFFER.max(HEADER_LEN));
    }

    #[test]
    fn a_message_that_lost_bytes_is_known_by_type() {
        let mut j = Joiner::default();
        let mut out = Vec::new();
        j.push(&[11, 0, 0, 10, 1, 2], &mut |e| {
            out.push(format!("{e:?}"));
            Next::ReadOn
        });
        j.missing(3, 0, &mut |e| {
            out.push(format!("{e:?}"));
            Next::ReadOn
        });
        j.push(&[7, 8, 9, 10, 11], &mut |e| {
            out.push(format!("{e:?}"));
            Next::ReadOn
        });
        assert_eq!(out, ["Begins(certificate)", "Partial(certificate)"]);
    }

    #[test]
    fn stop_leaves_the_rest_of_the_chunk_unread() {
        let mut j = Joiner::default();
        let mut n = 0;
        j.push(&[2, 0, 0, 0, 1, 0, 0, 0], &mut |e| {
            n += usize::from(matches!(e, Event::Message(_)));
            Next::Stop
        });
        assert_eq!(n, 1);
    }
}
