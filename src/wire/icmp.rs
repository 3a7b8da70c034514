//! ICMP and ICMPv6 errors: type, code, the MTU a "fragmentation needed" or "packet too big"
//! reports, and the TCP header the error quotes (which names the connection it is about).
//! Echo and other informational messages are not errors and are left alone.

use super::field::{be16, be32};
use super::ip::IpInfo;
use etherparse::{LaxNetSlice, LaxSlicedPacket};
use std::net::IpAddr;

/// The original packet an ICMP error quotes, when it was TCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotedTcp {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    /// Flags, when the quote reaches byte 13 of the TCP header.
    pub flags: Option<u8>,
}

/// An ICMP or ICMPv6 error message.
#[derive(Debug, Clone, Copy)]
pub struct IcmpError {
    /// The reporter (outer source) and the addressee.
    pub ip: IpInfo,
    pub v6: bool,
    pub icmp_type: u8,
    pub code: u8,
    /// Next-hop MTU (v4 frag-needed) or MTU (v6 packet too big).
    pub mtu: Option<u32>,
    pub quoted: Option<QuotedTcp>,
}

impl IcmpError {
    /// Reads the ICMP (or, `v6`, ICMPv6) message in `d`: `Ok(None)` when it is not an error
    /// message; the error names the check that failed.
    pub(super) fn parse(ip: IpInfo, v6: bool, d: &[u8]) -> Result<Option<Self>, &'static str> {
        let (Some(&t), Some(&code)) = (d.first(), d.get(1)) else {
            return Err("ICMP header cut short");
        };
        let is_error = if v6 {
            (1..=4).contains(&t)
        } else {
            matches!(t, 3 | 4 | 5 | 11 | 12)
        };
        if !is_error {
            return Ok(None);
        }
        let mtu = match (v6, t, code) {
            (false, 3, 4) => be16(d, 6).map(u32::from),
            (true, 2, _) => be32(d, 4),
            _ => None,
        };
        Ok(Some(IcmpError {
            ip,
            v6,
            icmp_type: t,
            code,
            mtu,
            quoted: d.get(8..).and_then(quoted_tcp),
        }))
    }
}

/// The TCP header an error quotes, behind the quoted IP header.
fn quoted_tcp(q: &[u8]) -> Option<QuotedTcp> {
    let p = LaxSlicedPacket::from_ip(q).ok()?;
    let (src, dst) = match p.net.as_ref()? {
        LaxNetSlice::Ipv4(v4) => (
            IpAddr::V4(v4.header().source_addr()),
            IpAddr::V4(v4.header().destination_addr()),
        ),
        LaxNetSlice::Ipv6(v6) => (
            IpAddr::V6(v6.header().source_addr()),
            IpAddr::V6(v6.header().destination_addr()),
        ),
        LaxNetSlice::Arp(_) => return None,
    };
    let pl = p.ip_payload()?;
    if pl.ip_number.0 != 6 || pl.fragmented {
        return None;
    }
    let t = pl.payload;
    Some(QuotedTcp {
        src,
        dst,
        sport: be16(t, 0)?,
        dport: be16(t, 2)?,
        seq: be32(t, 4)?,
        flags: t.get(13).copied(),
    })
}

/// Name of an ICMP/ICMPv6 error, as Wireshark words it.
pub fn icmp_description(v6: bool, t: u8, code: u8) -> String {
    let s = if v6 {
        match (t, code) {
            (1, 0) => "no route to destination",
            (1, 1) => "communication with destination administratively prohibited",
            (1, 2) => "beyond scope of source address",
            (1, 3) => "address unreachable",
            (1, 4) => "port unreachable",
            (1, 5) => "source address failed ingress/egress policy",
            (1, 6) => "reject route to destination",
            (1, _) => "destination unreachable",
            (2, _) => "packet too big",
            (3, _) => "time exceeded",
            (4, _) => "parameter problem",
            _ => "ICMPv6 error",
        }
    } else {
        match (t, code) {
            (3, 0) => "network unreachable",
            (3, 1) => "host unreachable",
            (3, 2) => "protocol unreachable",
            (3, 3) => "port unreachable",
            (3, 4) => "fragmentation needed",
            (3, 9) => "network administratively prohibited",
            (3, 10) => "host administratively prohibited",
            (3, 13) => "communication administratively prohibited",
            (3, _) => "destination unreachable",
            (4, _) => "source quench",
            (5, _) => "redirect",
            (11, _) => "time to live exceeded",
            (12, _) => "parameter problem",
            _ => "ICMP error",
        }
    };
    s.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ip() -> IpInfo {
        IpInfo {
            src: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            dst: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            ttl: 64,
            id: None,
        }
    }

    #[test]
    fn frag_needed_gives_the_mtu_and_echo_is_not_an_error() {
        let e = IcmpError::parse(ip(), false, &[3, 4, 0, 0, 0, 0, 0x05, 0xdc])
            .expect("parsed")
            .expect("an error");
        assert_eq!(
            (e.icmp_type, e.code, e.mtu, e.quoted),
            (3, 4, Some(1500), None)
        );
        assert!(matches!(
            IcmpError::parse(ip(), false, &[8, 0, 0, 0]),
            Ok(None)
        ));
        assert!(IcmpError::parse(ip(), true, &[1]).is_err());
    }

    #[test]
    fn descriptions_follow_wireshark() {
        assert_eq!(icmp_description(false, 3, 3), "port unreachable");
        assert_eq!(icmp_description(true, 2, 0), "packet too big");
        assert_eq!(icmp_description(false, 42, 0), "ICMP error");
    }
}
