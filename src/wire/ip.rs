//! IP layer: IPv4 and IPv6 headers (with extension headers) read with etherparse's views, into
//! a small [`IpInfo`] and the transport payload; fragments as [`Fragment`]s for
//! [`super::defrag`].
//!
//! Two readers give the same answers: [`fast`], etherparse's plain header views for the
//! common shape, and [`from_lax`], its lax slicer, which handles every shape and keeps what it
//! decoded when a snaplen cut the packet.

use etherparse::{EtherType, IpNumber, Ipv4HeaderSlice, Ipv6HeaderSlice, LaxNetSlice};
use std::net::IpAddr;

/// What the IP layer said about a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpInfo {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// TTL or hop limit.
    pub ttl: u8,
    /// IPv4 identification (IPv6: fragment id if any, else None).
    pub id: Option<u32>,
}

/// One IP fragment to be reassembled.
#[derive(Debug, Clone, Copy)]
pub struct Fragment<'a> {
    pub ip: IpInfo,
    pub v6: bool,
    pub protocol: u8,
    /// Identification (v4: 16 bits, v6: 32 bits).
    pub ident: u32,
    /// Byte offset of this fragment in the datagram.
    pub offset: u32,
    pub more: bool,
    pub data: &'a [u8],
}

/// A whole (unfragmented) IP packet's transport payload.
pub(super) struct Payload<'a> {
    pub(super) ip: IpInfo,
    pub(super) v6: bool,
    pub(super) proto: IpNumber,
    /// Captured bytes (may be cut by the snaplen).
    pub(super) data: &'a [u8],
    /// Length on the wire, from the IP header (0 = unknown, e.g. TSO captures).
    pub(super) wire_len: u32,
}

/// What the IP layer carries.
pub(super) enum Carried<'a> {
    Whole(Payload<'a>),
    Fragment(Fragment<'a>),
}

/// The common case: IPv4 or IPv6 captured whole, not fragmented, without IPv6 extension
/// headers. `None` leaves the packet to [`from_lax`], which gives the same answer for these;
/// the lax slicer also moves several hundred bytes of slice structures per packet, a fifth of
/// the packet thread's instructions.
pub(super) fn fast(ether_type: EtherType, rest: &[u8]) -> Option<Payload<'_>> {
    match ether_type {
        EtherType::IPV4 => {
            let h = Ipv4HeaderSlice::from_slice(rest).ok()?;
            let hlen = h.slice().len();
            let total = usize::from(h.total_len());
            if total < hlen || total > rest.len() || h.is_fragmenting_payload() {
                return None;
            }
            let ip = IpInfo {
                src: IpAddr::V4(h.source_addr()),
                dst: IpAddr::V4(h.destination_addr()),
                ttl: h.ttl(),
                id: Some(u32::from(h.identification())),
            };
            let data = rest.get(hlen..total)?;
            let wire_len = (total - hlen) as u32;
            Some(Payload {
                ip,
                v6: false,
                proto: h.protocol(),
                data,
                wire_len,
            })
        }
        EtherType::IPV6 => {
            let h = Ipv6HeaderSlice::from_slice(rest).ok()?;
            let len = usize::from(h.payload_length());
            let next = h.next_header();
            // TCP, UDP, ICMPv6: anything else may be an extension header.
            if len == 0 || !matches!(next.0, 6 | 17 | 58) {
                return None;
            }
            let hlen = h.slice().len();
            let data = rest.get(hlen..hlen + len)?;
            let ip = IpInfo {
                src: IpAddr::V6(h.source_addr()),
                dst: IpAddr::V6(h.destination_addr()),
                ttl: h.hop_limit(),
                id: None,
            };
            Some(Payload {
                ip,
                v6: true,
                proto: next,
                data,
                wire_len: len as u32,
            })
        }
        _ => None,
    }
}

/// The IP layer as etherparse's lax slicer read it; `None` for ARP.
pub(super) fn from_lax<'a>(net: &LaxNetSlice<'a>) -> Option<Carried<'a>> {
    let (ip, v6, payload, frag) = match net {
        LaxNetSlice::Ipv4(v4) => {
            let h = v4.header();
            let ip = IpInfo {
                src: IpAddr::V4(h.source_addr()),
                dst: IpAddr::V4(h.destination_addr()),
                ttl: h.ttl(),
                id: Some(u32::from(h.identification())),
            };
            let pl = v4.payload();
            let frag = pl.fragmented.then(|| {
                (
                    u32::from(h.identification()),
                    u32::from(h.fragments_offset().value()) * 8,
                    h.more_fragments(),
                )
            });
            (ip, false, pl, frag)
        }
        LaxNetSlice::Ipv6(v6) => {
            let h = v6.header();
            let mut ip = IpInfo {
                src: IpAddr::V6(h.source_addr()),
                dst: IpAddr::V6(h.destination_addr()),
                ttl: h.hop_limit(),
                id: None,
            };
            let pl = v6.payload();
            let exts = v6.extensions();
            let frag = pl
                .fragmented
                .then(|| v6_fragment_header(exts.first_header().map(|n| n.0), exts.slice()))
                .flatten();
            if let Some((ident, _, _)) = frag {
                ip.id = Some(ident);
            }
            (ip, true, pl, frag)
        }
        LaxNetSlice::Arp(_) => return None,
    };
    if let Some((ident, offset, more)) = frag {
        return Some(Carried::Fragment(Fragment {
            ip,
            v6,
            protocol: payload.ip_number.0,
            ident,
            offset,
            more,
            data: payload.payload,
        }));
    }
    Some(Carried::Whole(Payload {
        ip,
        v6,
        proto: payload.ip_number,
        data: payload.payload,
        wire_len: wire_payload_len(net),
    }))
}

/// Payload length on the wire, from the IP header (0 = unknown, e.g. TSO captures).
fn wire_payload_len(net: &LaxNetSlice<'_>) -> u32 {
    match net {
        LaxNetSlice::Ipv4(v4) => {
            let h = v4.header();
            let ihl = u32::from(h.ihl()) * 4;
            u32::from(h.total_len()).saturating_sub(ihl)
        }
        LaxNetSlice::Ipv6(v6) => u32::from(v6.header().payload_length())
            .saturating_sub(v6.extensions().slice().len() as u32),
        LaxNetSlice::Arp(_) => 0,
    }
}

/// Walks an IPv6 extension chain to its fragment header: (ident, offset, more).
fn v6_fragment_header(first: Option<u8>, mut exts: &[u8]) -> Option<(u32, u32, bool)> {
    let mut next = first?;
    loop {
        let len = match next {
            44 => {
                let (&[_, _, o0, o1, i0, i1, i2, i3], _) = exts.split_first_chunk::<8>()?;
                let off_field = u16::from_be_bytes([o0, o1]);
                let ident = u32::from_be_bytes([i0, i1, i2, i3]);
                return Some((ident, u32::from(off_field & 0xfff8), off_field & 1 == 1));
            }
            0 | 43 | 60 | 135 | 139 | 140 => (usize::from(*exts.get(1)?) + 1) * 8,
            51 => (usize::from(*exts.get(1)?) + 2) * 4,
            _ => return None,
        };
        next = *exts.first()?;
        exts = exts.get(len..)?;
    }
}

/// The EtherType of the IP version `data` starts with, when it is 4 or 6.
pub(super) fn version_ether_type(data: &[u8]) -> Option<EtherType> {
    match data.first().map(|b| b >> 4) {
        Some(4) => Some(EtherType::IPV4),
        Some(6) => Some(EtherType::IPV6),
        _ => None,
    }
}

/// Whether `data` starts like an IP packet (version 4 or 6), as a tunnel's inner packet must.
pub(super) fn looks_like_ip(data: &[u8]) -> bool {
    version_ether_type(data).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v6_fragment_header_is_found_behind_other_extensions() {
        // hop-by-hop (8 bytes, next = fragment), then fragment: offset 2 (x8), more, id 9.
        let exts = [44, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0x11, 0, 0, 0, 9];
        assert_eq!(v6_fragment_header(Some(0), &exts), Some((9, 16, true)));
        assert_eq!(v6_fragment_header(Some(0), &exts[..12]), None);
        assert_eq!(v6_fragment_header(Some(6), &exts), None);
    }
}
