//! TCP: the segment header read field by field, so that a header cut by the snaplen still
//! yields its ports, sequence numbers and flags (marked truncated); the options (MSS, SACK,
//! timestamps) read on demand from the borrowed option bytes.

use super::checksum::{self, Checksum};
use super::field::{be16, be32};
use super::ip::IpInfo;

pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
}

/// A TCP segment as captured.
#[derive(Debug, Clone, Copy)]
pub struct TcpSegment<'a> {
    pub ip: IpInfo,
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    pub checksum: u16,
    /// Captured payload; may be shorter than `wire_len` under a snaplen.
    pub payload: &'a [u8],
    /// Payload length on the wire, from the IP length fields.
    pub wire_len: u32,
    /// The TCP header itself was cut by the snaplen: only ports, numbers and flags are known.
    pub header_truncated: bool,
    /// The segment as captured, header first, no longer than the IP length says: the options
    /// are read from it, and its checksum is summed over it when it is `whole`.
    pub(crate) bytes: &'a [u8],
    /// Header length in bytes (the data offset), 20 to 60.
    pub(crate) hlen: u8,
    /// `bytes` is the whole segment: captured whole, its length on the wire known.
    pub(crate) whole: bool,
}

impl<'a> TcpSegment<'a> {
    /// Reads the segment in `d`, an IP payload of `wire_payload_len` bytes on the wire (0 =
    /// unknown). The error names the check that failed.
    pub(super) fn parse(
        ip: IpInfo,
        d: &'a [u8],
        wire_payload_len: u32,
    ) -> Result<Self, &'static str> {
        // Ports, seq, ack, data offset and flags need 14 bytes.
        let (Some(sport), Some(dport), Some(seq), Some(ack), Some(&off), Some(&flags)) = (
            be16(d, 0),
            be16(d, 2),
            be32(d, 4),
            be32(d, 8),
            d.get(12),
            d.get(13),
        ) else {
            return Err("TCP header cut short before its flags");
        };
        let hlen8 = (off >> 4) * 4;
        let hlen = usize::from(hlen8);
        if hlen < 20 {
            return Err("TCP data offset below 20 bytes");
        }
        let (payload, header_truncated) = match d.get(hlen..) {
            Some(p) => (p, false),
            None => (&[][..], true),
        };
        let wire_len = if wire_payload_len == 0 {
            payload.len() as u32
        } else {
            wire_payload_len.saturating_sub(hlen as u32)
        };
        // Ethernet padding: never hand more than the IP length says.
        let payload = match wire_payload_len {
            0 => payload,
            _ => payload.get(..wire_len as usize).unwrap_or(payload),
        };
        let bytes = match wire_payload_len {
            0 => d,
            n => d.get(..n as usize).unwrap_or(d),
        };
        let whole = wire_payload_len != 0 && bytes.len() == wire_payload_len as usize;
        Ok(TcpSegment {
            ip,
            sport,
            dport,
            seq,
            ack,
            flags,
            window: be16(d, 14).unwrap_or(0),
            checksum: be16(d, 16).unwrap_or(0),
            payload,
            wire_len,
            header_truncated,
            bytes,
            hlen: hlen8,
            whole,
        })
    }
}

impl TcpSegment<'_> {
    pub fn fin(&self) -> bool {
        self.flags & tcp_flags::FIN != 0
    }
    pub fn syn(&self) -> bool {
        self.flags & tcp_flags::SYN != 0
    }
    pub fn rst(&self) -> bool {
        self.flags & tcp_flags::RST != 0
    }
    pub fn has_ack(&self) -> bool {
        self.flags & tcp_flags::ACK != 0
    }
    /// Payload cut by the snaplen.
    pub fn payload_truncated(&self) -> bool {
        (self.payload.len() as u32) < self.wire_len
    }
    /// Whether the checksum is right (RFC 793 / 8200 pseudo-header), wrong, or not checkable
    /// (cut by the snaplen, length on the wire unknown). Sums the whole segment: callers check
    /// a few segments, not every one.
    pub fn checksum_status(&self) -> Checksum {
        match self.whole {
            true => checksum::tcp(&self.ip, self.bytes),
            false => Checksum::Unknown,
        }
    }
    /// Raw option bytes (empty when the header was cut).
    fn options(&self) -> &[u8] {
        self.bytes
            .get(20..usize::from(self.hlen))
            .unwrap_or_default()
    }
    /// Iterates over SACK blocks (left, right) in the options.
    pub fn sack_blocks(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        TcpOptions::new(self.options())
            .filter(|(kind, _)| *kind == 5)
            .flat_map(|(_, d)| d.chunks_exact(8))
            .filter_map(|c| Some((be32(c, 0)?, be32(c, 4)?)))
    }
    /// The MSS option, if present.
    pub fn mss(&self) -> Option<u16> {
        TcpOptions::new(self.options()).find_map(|(kind, d)| {
            (kind == 2)
                .then(|| <[u8; 2]>::try_from(d).ok())
                .flatten()
                .map(u16::from_be_bytes)
        })
    }
    /// TCP timestamp option value (TSval, TSecr).
    pub fn timestamps(&self) -> Option<(u32, u32)> {
        TcpOptions::new(self.options())
            .find_map(|(kind, d)| {
                (kind == 8 && d.len() == 8).then(|| Some((be32(d, 0)?, be32(d, 4)?)))
            })
            .flatten()
    }
}

/// Iterator over TCP options as (kind, data); stops at the end-of-options kind or at a length
/// that does not fit.
struct TcpOptions<'a> {
    rest: &'a [u8],
}

impl<'a> TcpOptions<'a> {
    fn new(rest: &'a [u8]) -> Self {
        TcpOptions { rest }
    }
}

impl<'a> Iterator for TcpOptions<'a> {
    type Item = (u8, &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (&kind, tail) = self.rest.split_first()?;
            match kind {
                0 => {
                    self.rest = &[];
                    return None;
                }
                1 => self.rest = tail,
                _ => {
                    let len = usize::from(*tail.first()?);
                    let option = (len >= 2)
                        .then(|| self.rest.split_at_checked(len))
                        .flatten();
                    let Some((option, rest)) = option else {
                        self.rest = &[];
                        return None;
                    };
                    self.rest = rest;
                    return Some((kind, option.get(2..).unwrap_or_default()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn ip() -> IpInfo {
        IpInfo {
            src: IpAddr::V4(Ipv4Addr::LOCALHOST),
            dst: IpAddr::V4(Ipv4Addr::LOCALHOST),
            ttl: 64,
            id: None,
        }
    }

    #[test]
    fn options_iterator_stops_on_bad_length() {
        let opts = [2u8, 4, 0x05, 0xb4, 1, 5, 0];
        let seg_opts: Vec<_> = TcpOptions::new(&opts).collect();
        assert_eq!(seg_opts.len(), 1);
        assert_eq!(seg_opts[0], (2, &[0x05, 0xb4][..]));
    }

    #[test]
    fn mss_sack_and_timestamps_are_read_from_the_options() {
        let mut hdr = vec![
            0, 80, 1, 187, 0, 0, 0, 1, 0, 0, 0, 2, 0x90, 0x10, 0, 0, 0, 0, 0, 0,
        ];
        hdr.extend_from_slice(&[2, 4, 0x05, 0xb4, 8, 10, 0, 0, 0, 7, 0, 0, 0, 9]);
        hdr.extend_from_slice(&[5, 10, 0, 0, 0, 1, 0, 0, 0, 2, 1, 1, 1, 1]);
        hdr.extend_from_slice(&[0; 8]);
        // Data offset 6 words: only the MSS option is inside the header.
        hdr[12] = 0x60;
        let seg = TcpSegment::parse(ip(), &hdr, 0).expect("segment");
        assert_eq!(seg.mss(), Some(1460));
        assert_eq!(seg.timestamps(), None);
        hdr[12] = 0xc0; // 12 words: every option
        let seg = TcpSegment::parse(ip(), &hdr, 0).expect("segment");
        assert_eq!(seg.timestamps(), Some((7, 9)));
        assert_eq!(seg.sack_blocks().collect::<Vec<_>>(), vec![(1, 2)]);
    }

    #[test]
    fn payload_is_cut_to_the_ip_length_not_beyond() {
        let mut seg = vec![
            0, 80, 1, 187, 0, 0, 0, 1, 0, 0, 0, 2, 0x50, 0x18, 0, 0, 0, 0, 0, 0,
        ];
        seg.extend_from_slice(b"hi\0\0"); // two bytes of Ethernet padding
        let s = TcpSegment::parse(ip(), &seg, 22).expect("segment");
        assert_eq!((s.payload, s.wire_len), (&b"hi"[..], 2));
        assert_eq!(
            TcpSegment::parse(ip(), &seg[..13], 0).err(),
            Some("TCP header cut short before its flags")
        );
    }
}
