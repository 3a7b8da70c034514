//! Wire: one captured frame -> link layer -> IP -> a TCP segment or an ICMP error, as views
//! that borrow the frame's bytes (after smoltcp's `wire`).
//!
//! One file per layer, each reading its headers with checked accesses only: `link` (Ethernet
//! and VLAN, Linux SLL and SLL2, raw IP, BSD NULL; the link types' names), `ip` (IPv4, IPv6 and
//! extension headers, fragments), `tcp` (segments, flags, options), `checksum` (the TCP
//! checksum checked), `icmp` (errors and the TCP header they quote), `tunnel` (PPPoE, GTP-U,
//! CAPWAP; IP-in-IP), `field` (checked big-endian reads). This file ties them together: [`decode`] walks a frame down the layers and says
//! what it found ([`Decoded`]). Fragments are handed to [`defrag`]; the caller decodes the
//! reassembled datagram with [`transport`]. Tunnels are unwrapped at most two levels deep.
//! Truncation by the snaplen is not an error: a TCP header cut short still yields its ports,
//! sequence numbers and flags, marked truncated.
//!
//! The layers below never import this file: the dependencies run one way, from here down.

mod checksum;
pub mod defrag;
mod field;
mod icmp;
mod ip;
mod link;
mod tcp;
mod tunnel;

pub use checksum::Checksum;
pub use icmp::{icmp_description, IcmpError, QuotedTcp};
pub use ip::{Fragment, IpInfo};
pub use link::{
    is_decoded_linktype, linktype_name, LinkMeta, PacketType, LINKTYPE_ETHERNET, LINKTYPE_IPV4,
    LINKTYPE_IPV6, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2, LINKTYPE_LOOP, LINKTYPE_NULL,
    LINKTYPE_RAW, LINKTYPE_RAW_BSD1, LINKTYPE_RAW_BSD2,
};
pub use tcp::{tcp_flags, TcpSegment};

use etherparse::{EtherType, IpNumber, LaxSlicedPacket};
use field::be16;
use ip::Carried;
use link::LinkPayload;
use tunnel::Inner;

/// A decoded frame.
#[derive(Debug)]
pub enum Decoded<'a> {
    Tcp(TcpSegment<'a>),
    Icmp(IcmpError),
    Fragment(Fragment<'a>),
    /// IP, but neither TCP nor an ICMP error quoting TCP (UDP, ICMP echo, ...).
    OtherIp,
    /// Not IP at all (ARP, LLDP, ...).
    NotIp,
    /// A link type this tool does not decode.
    UnsupportedLink,
    /// Too short or inconsistent to decode; the reason names the layer.
    Malformed(&'static str),
}

/// Decodes one frame; `meta` receives what the link header says about direction and interface.
pub fn decode<'a>(linktype: u32, data: &'a [u8], meta: &mut LinkMeta) -> Decoded<'a> {
    decode_as(linktype, data, meta, true)
}

/// [`decode`], with (`fast`) or without the common-case path ([`ip_fast`]); tests hold the
/// two to the same answers.
fn decode_as<'a>(linktype: u32, data: &'a [u8], meta: &mut LinkMeta, fast: bool) -> Decoded<'a> {
    *meta = LinkMeta::default();
    match link::link_payload(linktype, data, meta) {
        LinkPayload::Ethernet(frame) => fast_or(
            fast,
            || {
                let (ether_type, rest) = link::ethernet(frame)?;
                ip_fast(ether_type, rest)
            },
            || match LaxSlicedPacket::from_ethernet(frame) {
                Ok(p) => from_sliced(&p, 0),
                Err(_) => Decoded::Malformed("Ethernet header cut short"),
            },
        ),
        LinkPayload::EtherType(proto, rest) => from_ether_type(proto, rest, fast),
        LinkPayload::Ip(packet) => from_ip_at_top(packet, fast),
        LinkPayload::NotIp => Decoded::NotIp,
        LinkPayload::Unsupported => Decoded::UnsupportedLink,
        LinkPayload::Malformed(why) => Decoded::Malformed(why),
    }
}

/// The common case, read with etherparse's header views: at most two VLAN tags, then IPv4 or
/// IPv6 captured whole, not fragmented, without IPv6 extension headers, behind any link
/// header (Ethernet, SLL, SLL2, none). `None` leaves the frame to the general path
/// ([`LaxSlicedPacket`]), which handles every shape and gives the same answer for these; it
/// also moves several hundred bytes of slice structures per packet, a fifth of the packet
/// thread's instructions.
fn ip_fast(ether_type: EtherType, rest: &[u8]) -> Option<Decoded<'_>> {
    let (ether_type, rest) = link::peel_vlans(ether_type, rest)?;
    let p = ip::fast(ether_type, rest)?;
    Some(transport(p.ip, p.v6, p.proto, p.data, p.wire_len, 0))
}

/// What follows an SLL or SLL2 header.
fn from_ether_type(proto: EtherType, data: &[u8], fast: bool) -> Decoded<'_> {
    match proto.0 {
        0x0800 | 0x86dd | 0x8100 | 0x88a8 | 0x9100 => fast_or(
            fast,
            || ip_fast(proto, data),
            || from_sliced(&LaxSlicedPacket::from_ether_type(proto, data), 0),
        ),
        _ => Decoded::NotIp,
    }
}

/// [`from_ip`] for a frame's outermost IP header (no link header, or a loopback one).
fn from_ip_at_top(data: &[u8], fast: bool) -> Decoded<'_> {
    let Some(ether_type) = ip::version_ether_type(data) else {
        return from_ip(data);
    };
    fast_or(fast, || ip_fast(ether_type, data), || from_ip(data))
}

/// The common-case path's answer when `fast` and it has one, else the general path's.
fn fast_or<'a>(
    fast: bool,
    quick: impl FnOnce() -> Option<Decoded<'a>>,
    general: impl FnOnce() -> Decoded<'a>,
) -> Decoded<'a> {
    fast.then(quick).flatten().unwrap_or_else(general)
}

/// Decodes a buffer that starts with an IPv4 or IPv6 header.
pub fn from_ip(data: &[u8]) -> Decoded<'_> {
    from_ip_depth(data, 0)
}

fn from_ip_depth(data: &[u8], depth: u8) -> Decoded<'_> {
    match LaxSlicedPacket::from_ip(data) {
        Ok(p) => from_sliced(&p, depth),
        Err(_) => Decoded::Malformed("IP header cut short or invalid"),
    }
}

/// The general path: whatever etherparse's lax slicer found, `depth` tunnels deep.
fn from_sliced<'a>(p: &LaxSlicedPacket<'a>, depth: u8) -> Decoded<'a> {
    let Some(net) = &p.net else {
        let pppoe = p
            .ether_payload()
            .filter(|ep| ep.ether_type.0 == 0x8864)
            .and_then(|ep| tunnel::pppoe(ep.payload));
        return match pppoe {
            Some(inner) => try_inner(inner, depth).unwrap_or(Decoded::NotIp),
            None if p.stop_err.is_some() => Decoded::Malformed("link or IP header invalid"),
            None => Decoded::NotIp,
        };
    };
    match ip::from_lax(net) {
        Some(Carried::Whole(w)) => transport(w.ip, w.v6, w.proto, w.data, w.wire_len, depth),
        Some(Carried::Fragment(f)) => Decoded::Fragment(f),
        None => Decoded::NotIp,
    }
}

/// Decodes a tunnel's inner packet, one level deeper; `None` when an inner Ethernet frame does
/// not even slice (the caller then looks further).
fn try_inner(inner: Inner<'_>, depth: u8) -> Option<Decoded<'_>> {
    match inner {
        Inner::Ethernet(frame) => LaxSlicedPacket::from_ethernet(frame)
            .ok()
            .map(|p| from_sliced(&p, depth + 1)),
        Inner::Ip(packet) if depth < 2 => Some(from_ip_depth(packet, depth + 1)),
        Inner::Ip(_) | Inner::OtherIp => Some(Decoded::OtherIp),
        Inner::NotIp => Some(Decoded::NotIp),
    }
}

/// Decodes the transport layer of a complete (or reassembled) IP payload.
pub fn transport<'a>(
    ip: IpInfo,
    v6: bool,
    proto: IpNumber,
    data: &'a [u8],
    wire_payload_len: u32,
    depth: u8,
) -> Decoded<'a> {
    match proto.0 {
        6 => match TcpSegment::parse(ip, data, wire_payload_len) {
            Ok(seg) => Decoded::Tcp(seg),
            Err(why) => Decoded::Malformed(why),
        },
        1 if !v6 => icmp(ip, false, data),
        58 if v6 => icmp(ip, true, data),
        4 | 41 if depth < 2 => from_ip_depth(data, depth + 1),
        17 if depth < 2 => udp(data, depth),
        _ => Decoded::OtherIp,
    }
}

fn icmp(ip: IpInfo, v6: bool, data: &[u8]) -> Decoded<'_> {
    match IcmpError::parse(ip, v6, data) {
        Ok(Some(e)) => Decoded::Icmp(e),
        Ok(None) => Decoded::OtherIp,
        Err(why) => Decoded::Malformed(why),
    }
}

/// A UDP datagram: a tunnel (CAPWAP data, GTP-U) by its ports, else nothing to decode.
fn udp(data: &[u8], depth: u8) -> Decoded<'_> {
    let (Some(sport), Some(dport)) = (be16(data, 0), be16(data, 2)) else {
        return Decoded::OtherIp;
    };
    if sport == 5247 || dport == 5247 {
        let inner = data.get(8..).and_then(tunnel::capwap_data);
        if let Some(d) = inner.and_then(|inner| try_inner(inner, depth)) {
            return d;
        }
    }
    if sport == 2152 || dport == 2152 {
        if let Some(inner) = data.get(8..).and_then(tunnel::gtp_u) {
            if ip::looks_like_ip(inner) {
                return from_ip_depth(inner, depth + 1);
            }
        }
    }
    Decoded::OtherIp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv4_tcp(payload: &[u8], flags: u8) -> Vec<u8> {
        let total = 20 + 20 + payload.len();
        let mut p = vec![
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0x12,
            0x34,
            0x40,
            0,
            64,
            6,
            0,
            0,
            10,
            0,
            0,
            1,
            10,
            0,
            0,
            2,
        ];
        p.extend_from_slice(&[0x9c, 0x40, 0x01, 0xbb]);
        p.extend_from_slice(&1000u32.to_be_bytes());
        p.extend_from_slice(&2000u32.to_be_bytes());
        p.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn raw_ipv4_tcp_decodes_ports_flags_and_payload() {
        let pkt = ipv4_tcp(b"hello", tcp_flags::ACK | tcp_flags::PSH);
        let mut pt = LinkMeta::default();
        match decode(LINKTYPE_RAW, &pkt, &mut pt) {
            Decoded::Tcp(s) => {
                assert_eq!((s.sport, s.dport, s.seq, s.ack), (40000, 443, 1000, 2000));
                assert_eq!(s.payload, b"hello");
                assert_eq!(s.wire_len, 5);
                assert_eq!(s.ip.ttl, 64);
                assert!(s.has_ack() && !s.syn());
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn snaplen_cut_tcp_header_still_yields_numbers() {
        let pkt = ipv4_tcp(b"hello", tcp_flags::SYN);
        let mut pt = LinkMeta::default();
        match decode(LINKTYPE_RAW, &pkt[..20 + 16], &mut pt) {
            Decoded::Tcp(s) => {
                assert!(s.header_truncated);
                assert!(s.syn());
                assert_eq!(s.wire_len, 5);
                assert!(s.payload.is_empty());
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn sll2_header_gives_packet_type() {
        let ip = ipv4_tcp(b"", tcp_flags::SYN);
        let mut pkt = vec![
            0x08, 0x00, 0, 0, 0, 0, 0, 3, 0, 1, 4, 6, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        pkt.extend_from_slice(&ip);
        let mut pt = LinkMeta::default();
        assert!(matches!(
            decode(LINKTYPE_LINUX_SLL2, &pkt, &mut pt),
            Decoded::Tcp(_)
        ));
        assert_eq!(pt.pkttype, Some(PacketType::Outgoing));
        assert_eq!(pt.ifindex, Some(3));
    }

    #[test]
    fn null_loopback_either_byte_order() {
        let ip = ipv4_tcp(b"", tcp_flags::SYN);
        for hdr in [[2u8, 0, 0, 0], [0, 0, 0, 2]] {
            let mut pkt = hdr.to_vec();
            pkt.extend_from_slice(&ip);
            let mut pt = LinkMeta::default();
            assert!(matches!(
                decode(LINKTYPE_NULL, &pkt, &mut pt),
                Decoded::Tcp(_)
            ));
        }
    }

    #[test]
    fn gtp_u_inner_packet_is_decoded() {
        let inner = ipv4_tcp(b"hi", tcp_flags::ACK);
        let mut gtp = vec![0x30, 0xff];
        gtp.extend_from_slice(&(inner.len() as u16).to_be_bytes());
        gtp.extend_from_slice(&[0, 0, 0, 1]);
        gtp.extend_from_slice(&inner);
        let mut udp = vec![0x08, 0x68, 0x08, 0x68];
        udp.extend_from_slice(&((gtp.len() + 8) as u16).to_be_bytes());
        udp.extend_from_slice(&[0, 0]);
        udp.extend_from_slice(&gtp);
        let total = 20 + udp.len();
        let mut outer = vec![
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            1,
            0,
            0,
            64,
            17,
            0,
            0,
            192,
            0,
            2,
            1,
            192,
            0,
            2,
            2,
        ];
        outer.extend_from_slice(&udp);
        let mut pt = LinkMeta::default();
        match decode(LINKTYPE_RAW, &outer, &mut pt) {
            Decoded::Tcp(s) => assert_eq!(s.payload, b"hi"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn unsupported_link_is_not_fatal() {
        let mut pt = LinkMeta::default();
        assert!(matches!(
            decode(147, &[1, 2, 3], &mut pt),
            Decoded::UnsupportedLink
        ));
    }

    /// Every frame of the sample captures and of the public corpus (when present) decoded
    /// with and without the common-case path: wherever it answers, it answers as the general
    /// one.
    #[test]
    fn fast_path_agrees_with_the_general_path() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = Vec::new();
        let mut dirs = vec![root.join("samples"), root.join("../shared/corpus/public")];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.to_string_lossy().contains(".pcap") {
                    files.push(path);
                }
            }
        }
        // Frames the fast path answers, behind Ethernet and behind SLL2 (`-i any`).
        let (mut ethernet, mut sll2, mut frames) = (0u64, 0u64, 0u64);
        let mut differences = Vec::new();
        let mut meta = LinkMeta::default();
        for path in &files {
            let name = path.to_string_lossy().into_owned();
            let _ = crate::capture::read_input(&name, 0, &mut |f| {
                frames += 1;
                let quick = format!("{:?}", decode_as(f.linktype, f.data, &mut meta, true));
                let general = format!("{:?}", decode_as(f.linktype, f.data, &mut meta, false));
                if quick != general && differences.len() < 5 {
                    differences.push(format!("{name} frame {}: {quick} vs {general}", f.number));
                }
                let served = match f.linktype {
                    LINKTYPE_ETHERNET => &mut ethernet,
                    LINKTYPE_LINUX_SLL2 => &mut sll2,
                    _ => return,
                };
                let (proto, rest) = match f.linktype {
                    LINKTYPE_ETHERNET => (f.data.get(12..14), f.data.get(14..)),
                    _ => (f.data.get(..2), f.data.get(20..)),
                };
                if let (Some(&[p0, p1]), Some(rest)) = (proto, rest) {
                    if ip_fast(EtherType(u16::from_be_bytes([p0, p1])), rest).is_some() {
                        *served += 1;
                    }
                }
            });
        }
        assert!(differences.is_empty(), "{}", differences.join("\n"));
        // The fast path was exercised behind both link types, and frames were left to the
        // general one (the samples alone give 766 Ethernet and 23 SLL2 frames out of 805).
        assert!(
            ethernet > 500 && sll2 > 10 && frames > ethernet + sll2,
            "ethernet {ethernet}, sll2 {sll2}, frames {frames}"
        );
    }
}
