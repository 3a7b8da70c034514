//! TLS bytes: length-prefixed fields, records, handshake messages, extensions, and a minimal
//! ClientHello for tests.
//!
//! std only: the benchmark's capture generator (`benches/gen`) includes this file too (beside
//! `packets.rs`, whose `put16` it uses), and builds its richer hellos with these helpers.

use super::packets::put16;

/// Runs `f`, then writes the length of what it appended into a `width`-byte big-endian prefix
/// (1 to 3 bytes).
pub fn with_len(v: &mut Vec<u8>, width: usize, f: impl FnOnce(&mut Vec<u8>)) {
    let at = v.len();
    v.extend_from_slice(&[0u8; 3][..width]);
    f(v);
    let n = (v.len() - at - width) as u32;
    let b = n.to_be_bytes();
    v[at..at + width].copy_from_slice(&b[4 - width..]);
}

/// An extension: its type, then the body `f` writes, length-prefixed.
pub fn ext(v: &mut Vec<u8>, typ: u16, f: impl FnOnce(&mut Vec<u8>)) {
    put16(v, typ);
    with_len(v, 2, f);
}

/// A TLS record of content type `ctype` (22 handshake, 21 alert, 23 application data).
pub fn record(ctype: u8, version: u16, payload: &[u8]) -> Vec<u8> {
    let mut r = Vec::with_capacity(payload.len() + 5);
    r.push(ctype);
    put16(&mut r, version);
    put16(&mut r, payload.len() as u16);
    r.extend_from_slice(payload);
    r
}

/// A handshake message (1 ClientHello, 2 ServerHello, ...) around `body`.
pub fn handshake(msg_type: u8, body: &[u8]) -> Vec<u8> {
    let mut hs = vec![msg_type];
    with_len(&mut hs, 3, |v| v.extend_from_slice(body));
    hs
}

/// A minimal ClientHello record (record version 0x0301): TLS 1.2, one cipher suite
/// (TLS_AES_128_GCM_SHA256), no session id, and a server_name extension carrying `sni` as is.
pub fn client_hello(sni: &[u8]) -> Vec<u8> {
    let mut body = vec![3, 3];
    body.extend_from_slice(&[7; 32]);
    body.extend_from_slice(&[0, 0, 2, 0x13, 0x01, 1, 0]);
    with_len(&mut body, 2, |e| {
        ext(e, 0x0000, |v| {
            with_len(v, 2, |v| {
                v.push(0);
                with_len(v, 2, |v| v.extend_from_slice(sni));
            })
        })
    });
    record(22, 0x0301, &handshake(1, &body))
}
