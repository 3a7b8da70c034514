//! TCP checksum: is a captured segment's checksum right, wrong, or not checkable? The sum
//! runs over the IPv4 (RFC 793) or IPv6 (RFC 8200 section 8.1) pseudo-header and the whole
//! segment, checksum field included (RFC 1071): a right one folds to zero. A capturing host
//! with TX checksum offload records its own outgoing segments before the NIC fills the field,
//! so they read wrong there (DOMAIN.md section 10); that is capture-point evidence.

use super::ip::IpInfo;
use etherparse::checksum::Sum16BitWords;
use std::net::IpAddr;

/// What a segment's checksum says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checksum {
    Right,
    Wrong,
    /// Not checkable: the segment was cut by the snaplen, its length on the wire is not known
    /// (a TSO capture), or it does not fit a pseudo-header length field.
    Unknown,
}

/// Checks `segment`, the TCP header and payload exactly as long as the IP header says (empty
/// when the captured bytes fall short of it), sent from `ip.src` to `ip.dst`.
pub(super) fn tcp(ip: &IpInfo, segment: &[u8]) -> Checksum {
    if segment.len() < 20 {
        return Checksum::Unknown;
    }
    let mut sum = Sum16BitWords::new();
    match (ip.src, ip.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let Ok(len) = u16::try_from(segment.len()) else {
                return Checksum::Unknown;
            };
            sum = sum
                .add_4bytes(s.octets())
                .add_4bytes(d.octets())
                .add_2bytes([0, 6])
                .add_2bytes(len.to_be_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let Ok(len) = u32::try_from(segment.len()) else {
                return Checksum::Unknown;
            };
            sum = sum
                .add_16bytes(s.octets())
                .add_16bytes(d.octets())
                .add_4bytes(len.to_be_bytes())
                .add_4bytes([0, 0, 0, 6]);
        }
        _ => return Checksum::Unknown,
    }
    if sum.add_slice(segment).ones_complement() == 0 {
        Checksum::Right
    } else {
        Checksum::Wrong
    }
}

#[cfg(test)]
mod tests {
    use super::super::{decode_as, Decoded, LinkMeta, LINKTYPE_ETHERNET};
    use super::Checksum;

    /// Frame 1 of samples/tls13_ok.pcap (`tshark -x`): the client's SYN, offload off.
    const SYN_V4: [u8; 74] = [
        0x16, 0x8c, 0xd2, 0xe0, 0x0c, 0x09, 0xea, 0xa2, 0xe0, 0xf2, 0x63, 0xd3, 0x08, 0x00, 0x45,
        0x00, 0x00, 0x3c, 0x54, 0xe9, 0x40, 0x00, 0x40, 0x06, 0xce, 0x09, 0x0a, 0x63, 0x01, 0x02,
        0x0a, 0x63, 0x02, 0x02, 0xd1, 0xd6, 0x01, 0xbb, 0x65, 0x32, 0x46, 0xfd, 0x00, 0x00, 0x00,
        0x00, 0xa0, 0x02, 0xfa, 0xf0, 0xba, 0x2c, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x04, 0x02,
        0x08, 0x0a, 0xdb, 0xea, 0x1f, 0x6a, 0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x0a,
    ];
    /// Frame 1 of samples/tls13_ok_ipv6.pcap: the client's SYN over IPv6.
    const SYN_V6: [u8; 94] = [
        0x16, 0x8c, 0xd2, 0xe0, 0x0c, 0x09, 0xea, 0xa2, 0xe0, 0xf2, 0x63, 0xd3, 0x86, 0xdd, 0x60,
        0x05, 0xe6, 0x94, 0x00, 0x28, 0x06, 0x40, 0xfd, 0x00, 0x00, 0x99, 0x00, 0x01, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0xfd, 0x00, 0x00, 0x99, 0x00, 0x02, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0xc5, 0xb2, 0x01, 0xbb, 0x8d, 0xc1,
        0xdb, 0x61, 0x00, 0x00, 0x00, 0x00, 0xa0, 0x02, 0xfd, 0x20, 0xb6, 0x33, 0x00, 0x00, 0x02,
        0x04, 0x05, 0xa0, 0x04, 0x02, 0x08, 0x0a, 0x48, 0x26, 0x20, 0xcb, 0x00, 0x00, 0x00, 0x00,
        0x01, 0x03, 0x03, 0x0a,
    ];

    /// The checksum status by both decoding paths (they must agree).
    fn status(frame: &[u8]) -> Checksum {
        let mut meta = LinkMeta::default();
        let [fast, lax] =
            [true, false].map(
                |fast| match decode_as(LINKTYPE_ETHERNET, frame, &mut meta, fast) {
                    Decoded::Tcp(seg) => seg.checksum_status(),
                    other => panic!("not TCP: {other:?}"),
                },
            );
        assert_eq!(fast, lax);
        fast
    }

    #[test]
    fn real_segments_sum_right_over_both_pseudo_headers() {
        assert_eq!(status(&SYN_V4), Checksum::Right);
        assert_eq!(status(&SYN_V6), Checksum::Right);
    }

    #[test]
    fn a_changed_byte_or_a_zero_checksum_is_wrong() {
        for (frame, at) in [(&SYN_V4[..], 50), (&SYN_V6[..], 70)] {
            let mut f = frame.to_vec();
            f[at] ^= 0x01; // the checksum field's first byte
            assert_eq!(status(&f), Checksum::Wrong);
            (f[at], f[at + 1]) = (0, 0); // TCP has no "no checksum" value
            assert_eq!(status(&f), Checksum::Wrong);
            let mut f = frame.to_vec();
            *f.last_mut().unwrap_or(&mut 0) ^= 0x80; // an option byte
            assert_eq!(status(&f), Checksum::Wrong);
        }
        // An address of the pseudo-header (the IPv4 source) takes part too; the IPv4 header
        // checksum is not ours to check.
        let mut f = SYN_V4.to_vec();
        f[29] ^= 0x01;
        assert_eq!(status(&f), Checksum::Wrong);
    }

    #[test]
    fn a_segment_cut_by_the_snaplen_is_not_checkable() {
        assert_eq!(status(&SYN_V4[..70]), Checksum::Unknown);
        assert_eq!(status(&SYN_V6[..80]), Checksum::Unknown);
        // Ethernet padding after the IP length is not summed.
        let mut padded = SYN_V4.to_vec();
        padded.extend_from_slice(&[0xff; 6]);
        assert_eq!(status(&padded), Checksum::Right);
    }
}
