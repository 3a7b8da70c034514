//! Packet bytes for hand-made captures: Ethernet (with an optional 802.1Q tag), IPv4 (with its
//! header checksum), IPv6 and TCP headers, appended to a `Vec<u8>`, and a few whole-packet
//! shorthands for tests.
//!
//! std only: the benchmark's capture generator (`benches/gen`) includes this file too, so the
//! bytes of a header are written in one place. TCP checksums are left zero, as on a capturing
//! host with checksum offload; tlsdiag does not check them.

pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
pub const ETHERTYPE_VLAN: u16 = 0x8100;

pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;

pub fn put16(out: &mut Vec<u8>, x: u16) {
    out.extend_from_slice(&x.to_be_bytes());
}

/// Adds `bytes` as big-endian 16-bit words to a ones'-complement running sum (an odd last byte
/// is padded with zero).
pub fn sum16(mut sum: u32, bytes: &[u8]) -> u32 {
    for w in bytes.chunks(2) {
        sum += u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]));
    }
    sum
}

/// The Internet checksum of a running sum: carries folded in, then complemented.
pub fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The Internet checksum (RFC 1071) of `bytes`.
pub fn checksum(bytes: &[u8]) -> u16 {
    fold(sum16(0, bytes))
}

/// An Ethernet header, with an 802.1Q tag when `vlan` is given.
pub fn ethernet(
    out: &mut Vec<u8>,
    dst: &[u8; 6],
    src: &[u8; 6],
    vlan: Option<u16>,
    ethertype: u16,
) {
    out.extend_from_slice(dst);
    out.extend_from_slice(src);
    if let Some(id) = vlan {
        put16(out, ETHERTYPE_VLAN);
        put16(out, id);
    }
    put16(out, ethertype);
}

/// The fields of an IPv4 header (no options) that differ between packets.
#[derive(Clone, Copy, Debug)]
pub struct Ipv4 {
    pub src: [u8; 4],
    pub dst: [u8; 4],
    pub proto: u8,
    pub ident: u16,
    /// Flags and fragment offset: 0x4000 is "don't fragment", 0x2000 "more fragments".
    pub frag: u16,
    pub ttl: u8,
}

/// An IPv4 header with a correct header checksum, for a payload of `payload_len` bytes.
pub fn ipv4_header(out: &mut Vec<u8>, h: &Ipv4, payload_len: usize) {
    let at = out.len();
    out.extend_from_slice(&[0x45, 0]);
    put16(out, (20 + payload_len) as u16);
    put16(out, h.ident);
    put16(out, h.frag);
    out.extend_from_slice(&[h.ttl, h.proto, 0, 0]);
    out.extend_from_slice(&h.src);
    out.extend_from_slice(&h.dst);
    let c = checksum(&out[at..at + 20]);
    out[at + 10..at + 12].copy_from_slice(&c.to_be_bytes());
}

/// An IPv6 header (traffic class and flow label zero), for a payload of `payload_len` bytes.
pub fn ipv6_header(
    out: &mut Vec<u8>,
    src: &[u8; 16],
    dst: &[u8; 16],
    next: u8,
    hop_limit: u8,
    payload_len: usize,
) {
    out.extend_from_slice(&[0x60, 0, 0, 0]);
    put16(out, payload_len as u16);
    out.extend_from_slice(&[next, hop_limit]);
    out.extend_from_slice(src);
    out.extend_from_slice(dst);
}

/// The fields of a TCP header.
#[derive(Clone, Copy, Debug)]
pub struct Tcp {
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
}

/// A TCP header followed by `options` (a multiple of 4 bytes long); checksum and urgent
/// pointer zero.
pub fn tcp_header(out: &mut Vec<u8>, h: &Tcp, options: &[u8]) {
    put16(out, h.sport);
    put16(out, h.dport);
    out.extend_from_slice(&h.seq.to_be_bytes());
    out.extend_from_slice(&h.ack.to_be_bytes());
    out.push((((20 + options.len()) / 4) as u8) << 4);
    out.push(h.flags);
    put16(out, h.window);
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(options);
}

// ---------------------------------------------------------------------------------------------
// Whole packets, for tests

/// An IPv4 packet (TTL 64) around `payload`; `frag` is the flags + fragment offset field.
pub fn ipv4(
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    ident: u16,
    frag: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut v = Vec::with_capacity(20 + payload.len());
    let h = Ipv4 {
        src,
        dst,
        proto,
        ident,
        frag,
        ttl: 64,
    };
    ipv4_header(&mut v, &h, payload.len());
    v.extend_from_slice(payload);
    v
}

/// A TCP segment (no options, window 65535) around `payload`.
pub fn tcp(sport: u16, dport: u16, seq: u32, ack: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(20 + payload.len());
    let h = Tcp {
        sport,
        dport,
        seq,
        ack,
        flags,
        window: 65535,
    };
    tcp_header(&mut v, &h, &[]);
    v.extend_from_slice(payload);
    v
}

/// One TCP conversation between two IPv4 hosts, for raw-IP (LINKTYPE_RAW) captures.
#[derive(Clone, Copy, Debug)]
pub struct Conv {
    pub client: [u8; 4],
    pub server: [u8; 4],
    pub client_port: u16,
    pub server_port: u16,
    /// TTL of the client's and of the server's packets.
    pub ttl: [u8; 2],
}

impl Default for Conv {
    /// 10.0.0.1:40000 -> 10.0.0.2:443, TTL 64 both ways.
    fn default() -> Self {
        Conv {
            client: [10, 0, 0, 1],
            server: [10, 0, 0, 2],
            client_port: 40000,
            server_port: 443,
            ttl: [64, 64],
        }
    }
}

impl Conv {
    /// An IPv4 packet (don't fragment) carrying a TCP segment of this conversation, sent by
    /// the client or by the server.
    pub fn seg(&self, from_client: bool, seq: u32, ack: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
        let (src, dst, sport, dport, ttl) = if from_client {
            (
                self.client,
                self.server,
                self.client_port,
                self.server_port,
                self.ttl[0],
            )
        } else {
            (
                self.server,
                self.client,
                self.server_port,
                self.client_port,
                self.ttl[1],
            )
        };
        let t = tcp(sport, dport, seq, ack, flags, payload);
        let mut v = Vec::with_capacity(20 + t.len());
        let h = Ipv4 {
            src,
            dst,
            proto: PROTO_TCP,
            ident: 1,
            frag: 0x4000,
            ttl,
        };
        ipv4_header(&mut v, &h, t.len());
        v.extend_from_slice(&t);
        v
    }
}
