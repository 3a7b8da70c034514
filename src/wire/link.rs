//! Link layer: the headers in front of IP, and the link types' names.
//!
//! Ethernet (with up to two 802.1Q/802.1ad tags) is read with etherparse; Linux SLL and SLL2
//! headers are read here (etherparse has no SLL2, and we need SLL's packet type); raw IP (101,
//! 228, 229, and the BSD 12/14 aliases) has no header; BSD NULL/loopback (0, 108) is a 4-byte
//! address family in either byte order. Hands on what follows the link header, and
//! ([`LinkMeta`]) what the header says about the capturing host's view of the packet.

use etherparse::{EtherType, Ethernet2HeaderSlice, SingleVlanHeaderSlice};

pub const LINKTYPE_NULL: u32 = 0;
pub const LINKTYPE_ETHERNET: u32 = 1;
pub const LINKTYPE_RAW_BSD1: u32 = 12;
pub const LINKTYPE_RAW_BSD2: u32 = 14;
pub const LINKTYPE_RAW: u32 = 101;
pub const LINKTYPE_LOOP: u32 = 108;
pub const LINKTYPE_LINUX_SLL: u32 = 113;
pub const LINKTYPE_IPV4: u32 = 228;
pub const LINKTYPE_IPV6: u32 = 229;
pub const LINKTYPE_LINUX_SLL2: u32 = 276;

/// Human name of a link type, as tcpdump prints it.
pub fn linktype_name(lt: u32) -> String {
    match lt {
        LINKTYPE_NULL => "NULL (BSD loopback)".into(),
        LINKTYPE_ETHERNET => "EN10MB (Ethernet)".into(),
        LINKTYPE_RAW | LINKTYPE_RAW_BSD1 | LINKTYPE_RAW_BSD2 => "RAW (raw IP)".into(),
        LINKTYPE_LOOP => "LOOP (OpenBSD loopback)".into(),
        LINKTYPE_LINUX_SLL => "LINUX_SLL (Linux cooked v1)".into(),
        LINKTYPE_IPV4 => "IPV4 (raw IPv4)".into(),
        LINKTYPE_IPV6 => "IPV6 (raw IPv6)".into(),
        LINKTYPE_LINUX_SLL2 => "LINUX_SLL2 (Linux cooked v2)".into(),
        other => format!("linktype {other} (not decoded)"),
    }
}

/// Whether [`super::decode`] understands this link type.
pub fn is_decoded_linktype(lt: u32) -> bool {
    matches!(
        lt,
        LINKTYPE_NULL
            | LINKTYPE_ETHERNET
            | LINKTYPE_RAW_BSD1
            | LINKTYPE_RAW_BSD2
            | LINKTYPE_RAW
            | LINKTYPE_LOOP
            | LINKTYPE_LINUX_SLL
            | LINKTYPE_IPV4
            | LINKTYPE_IPV6
            | LINKTYPE_LINUX_SLL2
    )
}

/// SLL/SLL2 packet type: who the capturing host thought the packet was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketType {
    /// 0: addressed to this host.
    ToUs,
    /// 4: sent by this host.
    Outgoing,
    /// 1, 2, 3: broadcast, multicast, another host.
    Other,
}

impl PacketType {
    fn from_sll(v: u16) -> Self {
        match v {
            0 => PacketType::ToUs,
            4 => PacketType::Outgoing,
            _ => PacketType::Other,
        }
    }
}

/// What the link layer says about the capturing host's view of a packet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkMeta {
    /// SLL/SLL2 packet type.
    pub pkttype: Option<PacketType>,
    /// SLL2 interface index (`tcpdump -i any` records one packet once per interface).
    pub ifindex: Option<u32>,
}

/// What follows the link header.
pub(super) enum LinkPayload<'a> {
    /// A whole Ethernet frame (its header included: etherparse reads it).
    Ethernet(&'a [u8]),
    /// What an SLL or SLL2 header's protocol field announces.
    EtherType(EtherType, &'a [u8]),
    /// An IP header, with nothing (or a loopback header) in front of it.
    Ip(&'a [u8]),
    /// A loopback packet of another address family.
    NotIp,
    /// A link type this tool does not decode.
    Unsupported,
    /// The link header is cut short; the reason names it.
    Malformed(&'static str),
}

/// Reads the link header of a frame of link type `linktype` into `meta`.
pub(super) fn link_payload<'a>(
    linktype: u32,
    data: &'a [u8],
    meta: &mut LinkMeta,
) -> LinkPayload<'a> {
    match linktype {
        LINKTYPE_ETHERNET => LinkPayload::Ethernet(data),
        LINKTYPE_LINUX_SLL => sll(data, meta),
        LINKTYPE_LINUX_SLL2 => sll2(data, meta),
        LINKTYPE_NULL | LINKTYPE_LOOP => loopback(linktype, data),
        LINKTYPE_RAW | LINKTYPE_RAW_BSD1 | LINKTYPE_RAW_BSD2 | LINKTYPE_IPV4 | LINKTYPE_IPV6 => {
            LinkPayload::Ip(data)
        }
        _ => LinkPayload::Unsupported,
    }
}

/// Linux cooked capture v1: pkttype(2) hatype(2) halen(2) addr(8) protocol(2).
fn sll<'a>(data: &'a [u8], meta: &mut LinkMeta) -> LinkPayload<'a> {
    let Some((hdr, rest)) = data.split_first_chunk::<16>() else {
        return LinkPayload::Malformed("Linux SLL header cut short");
    };
    let [p0, p1, .., t0, t1] = *hdr;
    meta.pkttype = Some(PacketType::from_sll(u16::from_be_bytes([p0, p1])));
    LinkPayload::EtherType(EtherType(u16::from_be_bytes([t0, t1])), rest)
}

/// Linux cooked capture v2: protocol(2) reserved(2) ifindex(4) hatype(2) pkttype(1) halen(1)
/// addr(8).
fn sll2<'a>(data: &'a [u8], meta: &mut LinkMeta) -> LinkPayload<'a> {
    let Some((hdr, rest)) = data.split_first_chunk::<20>() else {
        return LinkPayload::Malformed("Linux SLL2 header cut short");
    };
    let [t0, t1, _, _, i0, i1, i2, i3, _, _, pkttype, ..] = *hdr;
    meta.pkttype = Some(PacketType::from_sll(u16::from(pkttype)));
    meta.ifindex = Some(u32::from_be_bytes([i0, i1, i2, i3]));
    LinkPayload::EtherType(EtherType(u16::from_be_bytes([t0, t1])), rest)
}

/// BSD NULL/loopback: the address family, 4 bytes in the capturing host's byte order (LOOP:
/// always big-endian).
fn loopback(linktype: u32, data: &[u8]) -> LinkPayload<'_> {
    let Some((hdr, rest)) = data.split_first_chunk::<4>() else {
        return LinkPayload::Malformed("loopback header cut short");
    };
    let le = u32::from_le_bytes(*hdr);
    let be = u32::from_be_bytes(*hdr);
    let family = if linktype == LINKTYPE_LOOP || le > 0xffff {
        be
    } else {
        le
    };
    match family {
        // AF_INET everywhere; AF_INET6 on BSD (24), FreeBSD (28), Darwin (30)
        2 | 24 | 28 | 30 => LinkPayload::Ip(rest),
        _ => LinkPayload::NotIp,
    }
}

/// The Ethernet II header's EtherType and what follows it.
pub(super) fn ethernet(frame: &[u8]) -> Option<(EtherType, &[u8])> {
    let eth = Ethernet2HeaderSlice::from_slice(frame).ok()?;
    Some((eth.ether_type(), frame.get(eth.slice().len()..)?))
}

/// Peels up to two VLAN tags (802.1Q, 802.1ad, QinQ) off: the inner EtherType and what
/// follows it. `None` when a tag is cut short.
pub(super) fn peel_vlans(ether_type: EtherType, rest: &[u8]) -> Option<(EtherType, &[u8])> {
    let (mut ether_type, mut rest) = (ether_type, rest);
    for _ in 0..2 {
        if matches!(
            ether_type,
            EtherType::VLAN_TAGGED_FRAME
                | EtherType::PROVIDER_BRIDGING
                | EtherType::VLAN_DOUBLE_TAGGED_FRAME
        ) {
            let vlan = SingleVlanHeaderSlice::from_slice(rest).ok()?;
            ether_type = vlan.ether_type();
            rest = rest.get(vlan.slice().len()..)?;
        }
    }
    Some((ether_type, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sll2_header_gives_packet_type_interface_and_protocol() {
        let pkt = [
            0x08, 0x00, 0, 0, 0, 0, 0, 3, 0, 1, 4, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0x45,
        ];
        let mut meta = LinkMeta::default();
        match link_payload(LINKTYPE_LINUX_SLL2, &pkt, &mut meta) {
            LinkPayload::EtherType(t, rest) => {
                assert_eq!((t, rest), (EtherType::IPV4, &[0x45][..]))
            }
            _ => panic!("not an EtherType payload"),
        }
        assert_eq!(meta.pkttype, Some(PacketType::Outgoing));
        assert_eq!(meta.ifindex, Some(3));
    }

    #[test]
    fn cut_link_headers_are_malformed_not_a_panic() {
        for lt in [
            LINKTYPE_LINUX_SLL,
            LINKTYPE_LINUX_SLL2,
            LINKTYPE_NULL,
            LINKTYPE_LOOP,
        ] {
            let mut meta = LinkMeta::default();
            assert!(matches!(
                link_payload(lt, &[0, 0, 0], &mut meta),
                LinkPayload::Malformed(_)
            ));
        }
    }
}
