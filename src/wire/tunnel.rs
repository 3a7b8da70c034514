//! Tunnels whose inner packet is decoded like an outer one: PPPoE sessions, GTP-U (UDP 2152)
//! and CAPWAP data (UDP 5247: an 802.3 frame, or an 802.11 data frame with LLC/SNAP). Each
//! reader only finds the inner packet; [`super::decode`] decodes it, at most two levels deep.
//! IP-in-IP needs no reader: its inner packet is the IP payload.

use super::field::{be16, be32};

/// What a tunnel carries.
pub(super) enum Inner<'a> {
    /// An Ethernet frame.
    Ethernet(&'a [u8]),
    /// An IPv4 or IPv6 packet.
    Ip(&'a [u8]),
    /// IP, but nothing this tool decodes (another PPP protocol, a CAPWAP fragment).
    OtherIp,
    /// Not IP (an 802.11 management or control frame, a non-IP LLC/SNAP payload).
    NotIp,
}

/// PPPoE session (EtherType 0x8864): IPv4 or IPv6 inside, or some other PPP protocol.
pub(super) fn pppoe(payload: &[u8]) -> Option<Inner<'_>> {
    let proto = be16(payload, 6)?;
    let inner = payload.get(8..)?;
    Some(match proto {
        0x0021 | 0x0057 => Inner::Ip(inner),
        _ => Inner::OtherIp,
    })
}

/// CAPWAP data channel (UDP 5247, after the UDP header): an 802.3 frame, or an 802.11 data
/// frame with LLC/SNAP. `None` when this is not an unencrypted CAPWAP data packet.
pub(super) fn capwap_data(d: &[u8]) -> Option<Inner<'_>> {
    let word0 = be32(d, 0)?;
    if word0 >> 24 != 0 {
        return None; // preamble: version 0, type 0 (not DTLS-encrypted)
    }
    let hlen = usize::from(*d.get(1)? >> 3) * 4;
    let native_80211 = (word0 >> 8) & 1 == 1;
    let fragment = (word0 >> 7) & 1 == 1;
    if fragment {
        return Some(Inner::OtherIp);
    }
    let frame = d.get(hlen..)?;
    if native_80211 {
        ieee80211_data(frame)
    } else {
        Some(Inner::Ethernet(frame))
    }
}

/// An 802.11 data frame's LLC/SNAP payload, when it is IP.
fn ieee80211_data(frame: &[u8]) -> Option<Inner<'_>> {
    let (mut fc0, mut fc1) = (*frame.first()?, *frame.get(1)?);
    // Some access points (Cisco) send the frame-control bytes swapped, as Wireshark's
    // capwap.swap_frame_control preference knows.
    if (fc0 >> 2) & 3 != 2 && (fc1 >> 2) & 3 == 2 {
        std::mem::swap(&mut fc0, &mut fc1);
    }
    if (fc0 >> 2) & 3 != 2 {
        return Some(Inner::NotIp); // management or control frame
    }
    let qos = fc0 & 0x80 != 0;
    let mut hdr = 24;
    if fc1 & 3 == 3 {
        hdr += 6;
    }
    if qos {
        hdr += 2;
        if fc1 & 0x80 != 0 {
            hdr += 4;
        }
    }
    let (llc, inner) = frame.get(hdr..)?.split_first_chunk::<8>()?;
    let [0xaa, 0xaa, 0x03, 0, 0, 0, t0, t1] = *llc else {
        return Some(Inner::NotIp);
    };
    match u16::from_be_bytes([t0, t1]) {
        0x0800 | 0x86dd => Some(Inner::Ip(inner)),
        _ => Some(Inner::NotIp),
    }
}

/// GTP-U (UDP 2152, after the UDP header) G-PDU carrying a packet: the inner packet.
pub(super) fn gtp_u(d: &[u8]) -> Option<&[u8]> {
    let flags = *d.first()?;
    if flags >> 5 != 1 || *d.get(1)? != 0xff {
        return None;
    }
    let mut off = 8;
    if flags & 0x07 != 0 {
        let mut next = *d.get(off + 3)?;
        off += 4;
        let mut hops = 0;
        while next != 0 && hops < 8 {
            let units = usize::from(*d.get(off)?);
            if units == 0 {
                return None;
            }
            next = *d.get(off + units * 4 - 1)?;
            off += units * 4;
            hops += 1;
        }
    }
    d.get(off..)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capwap_80211_data_with_llc_snap_gives_the_ip_packet() {
        let mut d = vec![0, 0x10, 0x01, 0]; // header length 2 words, 802.11 (T bit)
        d.extend_from_slice(&[0; 4]);
        d.extend_from_slice(&[0x08, 0x01]); // data frame, to DS
        d.extend_from_slice(&[0; 22]);
        d.extend_from_slice(&[0xaa, 0xaa, 0x03, 0, 0, 0, 0x08, 0x00, 0x45]);
        assert!(matches!(capwap_data(&d), Some(Inner::Ip([0x45]))));
        let mut swapped = d.clone();
        swapped.swap(8, 9);
        assert!(matches!(capwap_data(&swapped), Some(Inner::Ip([0x45]))));
        let n = d.len();
        d[n - 3] = 0x06; // ARP
        assert!(matches!(capwap_data(&d), Some(Inner::NotIp)));
    }
}
