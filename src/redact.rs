//! Redact: makes a report safe to share outside the company.
//!
//! Addresses are replaced consistently and prefix-preservingly, in the way of Crypto-PAn and
//! tcpdpriv: output bit `i` is input bit `i` flipped by a keyed pseudo-random function of the
//! first `i` input bits, so two addresses that share an `n`-bit prefix still share exactly an
//! `n`-bit prefix (same subnet stays same subnet). The function is HMAC-SHA-256-like over the
//! key, so the mapping cannot be reversed without it. Names (SNI, certificate names) are
//! replaced by a keyed hash unless kept. Free text (explanations, first bytes, HTTP lines) is
//! scanned for anything that parses as an IPv4 or IPv6 address, so no original address
//! survives anywhere in the output.
//!
//! Private and special-purpose ranges (10/8, 192.168/16, fc00::/7, fe80::/10, 2001:db8::/32,
//! ... [`special_range`]) stay within their range: the range's prefix bits are kept and only
//! the rest is permuted, so a reader can still tell internal from public. A public address
//! whose image falls into a special range is mapped again (cycle walking) until it is public,
//! which keeps the mapping one-to-one on public addresses; subnets no wider than the range
//! they were mapped away from keep their prefixes. File paths become `capture N`.

use crate::model::Connection;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub struct Redactor {
    key: [u8; 32],
    keep_names: bool,
    /// Addresses already mapped (shared by the rendering threads; cleared when large).
    cache: std::sync::Mutex<HashMap<IpAddr, IpAddr>>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("keep_names", &self.keep_names)
            .finish_non_exhaustive()
    }
}

/// A key nobody chose: process id, time and the standard library's random hasher seed.
fn random_key() -> [u8; 32] {
    use std::hash::{BuildHasher, Hasher};
    let mut h = Sha256::new();
    let rs = std::collections::hash_map::RandomState::new();
    let mut hasher = rs.build_hasher();
    hasher.write_u64(0x0074_6c73_6469_6167);
    h.update(hasher.finish().to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    if let Ok(d) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.update(d.as_nanos().to_le_bytes());
    }
    h.finalize().into()
}

/// IPv4 private and special-purpose ranges (IANA's registry, the ones a reader should
/// recognise): value, prefix length. None contains another.
const SPECIAL_V4: [(u32, u8); 15] = [
    (0x0000_0000, 8),  // 0/8 "this network"
    (0x0a00_0000, 8),  // 10/8 private
    (0x6440_0000, 10), // 100.64/10 shared (carrier-grade NAT)
    (0x7f00_0000, 8),  // 127/8 loopback
    (0xa9fe_0000, 16), // 169.254/16 link-local
    (0xac10_0000, 12), // 172.16/12 private
    (0xc000_0000, 24), // 192.0.0/24 protocol assignments
    (0xc000_0200, 24), // 192.0.2/24 documentation
    (0xc058_6300, 24), // 192.88.99/24 6to4 relay
    (0xc0a8_0000, 16), // 192.168/16 private
    (0xc612_0000, 15), // 198.18/15 benchmarking
    (0xc633_6400, 24), // 198.51.100/24 documentation
    (0xcb00_7100, 24), // 203.0.113/24 documentation
    (0xe000_0000, 4),  // 224/4 multicast
    (0xf000_0000, 4),  // 240/4 reserved, broadcast
];

/// IPv6 special-purpose ranges (IPv4-mapped addresses are mapped as IPv4).
const SPECIAL_V6: [(u128, u8); 10] = [
    (0, 128),                // :: unspecified
    (1, 128),                // ::1 loopback
    (0x0064_ff9b << 96, 96), // 64:ff9b::/96 NAT64
    (0x0100 << 112, 64),     // 100::/64 discard
    (0x2001_0db8 << 96, 32), // 2001:db8::/32 documentation
    (0x3fff << 112, 20),     // 3fff::/20 documentation
    (0xfc00 << 112, 7),      // fc00::/7 unique local
    (0xfe80 << 112, 10),     // fe80::/10 link-local
    (0xfec0 << 112, 10),     // fec0::/10 site-local (deprecated)
    (0xff00 << 112, 8),      // ff00::/8 multicast
];

/// The prefix length of the special range holding `value` (4: IPv4, else IPv6), if any.
fn special_range(family: u8, value: u128) -> Option<usize> {
    let within = |prefix: u128, len: u8, width: u32| {
        let shift = width - u32::from(len);
        value.checked_shr(shift).unwrap_or(0) == prefix.checked_shr(shift).unwrap_or(0)
    };
    if family == 4 {
        SPECIAL_V4
            .iter()
            .find(|(p, len)| within(u128::from(*p), *len, 32))
            .map(|(_, len)| usize::from(*len))
    } else {
        SPECIAL_V6
            .iter()
            .find(|(p, len)| within(*p, *len, 128))
            .map(|(_, len)| usize::from(*len))
    }
}

impl Redactor {
    /// `key`: any string (the same key gives the same mapping in every run); `None` = random.
    pub fn new(key: Option<&str>, keep_names: bool) -> Self {
        let key = match key {
            Some(k) => Sha256::digest(k.as_bytes()).into(),
            None => random_key(),
        };
        Redactor {
            key,
            keep_names,
            cache: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// With names kept (SNI and certificate names shown as captured).
    pub fn keeps_names(&self) -> bool {
        self.keep_names
    }

    /// One pseudo-random bit for the prefix `bits` (the first `n` bits of `bits`).
    fn prf(&self, family: u8, n: usize, bits: u128) -> bool {
        let prefix = if n == 0 { 0 } else { bits >> (128 - n) };
        let mut h = Sha256::new();
        h.update(self.key);
        h.update([family, n as u8]);
        h.update(prefix.to_be_bytes());
        h.finalize()[0] & 1 == 1
    }

    fn scramble(&self, family: u8, width: usize, value: u128) -> u128 {
        // Work left-aligned in 128 bits.
        let input = value << (128 - width);
        let mut out = 0u128;
        for i in 0..width {
            let bit = (input >> (127 - i)) & 1 == 1;
            let flip = self.prf(family, i, input);
            if bit ^ flip {
                out |= 1u128 << (127 - i);
            }
        }
        out >> (128 - width)
    }

    /// Bits `keep..width` of `value` permuted prefix-preservingly, bits before `keep` kept.
    fn scramble_from(&self, family: u8, width: usize, keep: usize, value: u128) -> u128 {
        let kept = if keep == 0 {
            0
        } else {
            value >> (width - keep) << (width - keep)
        };
        // The flips of the kept bits are dropped: the rest still depends on the whole prefix.
        let tail_mask = if keep == 0 {
            u128::MAX
        } else {
            (1u128 << (width - keep)) - 1
        };
        kept | (self.scramble(family, width, value) & tail_mask)
    }

    /// An address value mapped within its special range, or (public) to a public one.
    fn map(&self, family: u8, width: usize, value: u128) -> u128 {
        if let Some(keep) = special_range(family, value) {
            return self.scramble_from(family, width, keep, value);
        }
        // Cycle walking: the permutation restricted to public addresses stays a permutation.
        // The cycle through `value` comes back to a public address after passing only special
        // ones, so the walk is short; the bound only guards the loop.
        let mut v = self.scramble(family, width, value);
        for _ in 0..1024 {
            if special_range(family, v).is_none() {
                break;
            }
            v = self.scramble(family, width, v);
        }
        v
    }

    /// The redacted form of an address (cached: one computation per address).
    pub fn ip(&self, a: IpAddr) -> IpAddr {
        let cache = || self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = cache().get(&a) {
            return *r;
        }
        let r = match a {
            IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(
                self.map(4, 32, u128::from(u32::from(v4))) as u32,
            )),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                // ::ffff:a.b.c.d carries an IPv4 address: the same one as a.b.c.d.
                Some(v4) => match self.ip(IpAddr::V4(v4)) {
                    IpAddr::V4(m) => IpAddr::V6(m.to_ipv6_mapped()),
                    other => other,
                },
                None => IpAddr::V6(Ipv6Addr::from(self.map(6, 128, u128::from(v6)))),
            },
        };
        let mut c = cache();
        if c.len() >= 1 << 16 {
            c.clear();
        }
        c.insert(a, r);
        r
    }

    /// A name replaced by a keyed hash (`name-1a2b3c4d5e`), unless names are kept.
    pub fn name(&self, s: &str) -> String {
        if self.keep_names {
            return s.to_string();
        }
        let mut h = Sha256::new();
        h.update(self.key);
        h.update(b"name");
        h.update(s.as_bytes());
        let d = h.finalize();
        let hex: String = d.iter().take(5).map(|b| format!("{b:02x}")).collect();
        format!("name-{hex}")
    }

    /// Replaces every IPv4/IPv6 address found in free text.
    pub fn text(&self, s: &str) -> String {
        let is_tok = |c: char| c.is_ascii_hexdigit() || c == ':' || c == '.';
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        while let Some(start) = rest.find(is_tok) {
            out.push_str(&rest[..start]);
            let tail = &rest[start..];
            let end = tail.find(|c: char| !is_tok(c)).unwrap_or(tail.len());
            let token = &tail[..end];
            out.push_str(&self.token(token));
            rest = &tail[end..];
        }
        out.push_str(rest);
        out
    }

    /// A run of hex digits, dots and colons: addresses inside it are replaced.
    fn token(&self, t: &str) -> String {
        let trimmed = t.trim_end_matches(['.', ':']);
        let suffix = &t[trimmed.len()..];
        if let Ok(a) = trimmed.parse::<IpAddr>() {
            return format!("{}{suffix}", self.ip(a));
        }
        // "10.0.0.2:443" and similar: an IPv4 address followed by a port.
        if let Some((addr, port)) = trimmed.rsplit_once(':') {
            if let Ok(v4) = addr.parse::<Ipv4Addr>() {
                if port.chars().all(|c| c.is_ascii_digit()) {
                    return format!("{}:{port}{suffix}", self.ip(IpAddr::V4(v4)));
                }
            }
        }
        // Dotted quads inside a longer run (e.g. "a.1.2.3.4").
        let parts: Vec<&str> = trimmed.split('.').collect();
        if parts.len() > 4 {
            for i in 0..=parts.len() - 4 {
                let cand = parts[i..i + 4].join(".");
                if let Ok(v4) = cand.parse::<Ipv4Addr>() {
                    return t.replace(&cand, &self.ip(IpAddr::V4(v4)).to_string());
                }
            }
        }
        t.to_string()
    }

    fn ip_str(&self, s: &str) -> String {
        match s.parse::<IpAddr>() {
            Ok(a) => self.ip(a).to_string(),
            Err(_) => self.text(s),
        }
    }

    /// Redacts what a report says before its connections: servers, warnings, file paths
    /// (`capture N`, N the file's place in `captures`).
    pub fn head(
        &self,
        summary: &mut crate::model::Summary,
        warnings: &mut [String],
        captures: &mut [crate::capture::InputSummary],
    ) {
        let paths: Vec<String> = captures.iter().map(|c| c.path.clone()).collect();
        for sv in &mut summary.servers {
            sv.server = self.text(&sv.server);
        }
        for w in warnings.iter_mut() {
            *w = self.text(&hide_paths(w, &paths));
        }
        for (i, c) in captures.iter_mut().enumerate() {
            c.path = capture_name(i);
            for w in &mut c.warnings {
                *w = self.text(&hide_paths(w, &paths));
            }
        }
    }

    /// Hides the names of a server certificate, of its problems and of a client certificate,
    /// before the verdict that cites them is worded: the words then hold the same hashed
    /// names as the record.
    pub fn certificate(
        &self,
        cert: Option<&mut crate::model::CertInfo>,
        problems: &mut [crate::diagnose::certificate::CertProblem],
        client: Option<&mut crate::model::ClientCertInfo>,
    ) {
        use crate::diagnose::certificate::CertProblem;
        if let Some(cc) = client {
            for n in [&mut cc.subject, &mut cc.issuer].into_iter().flatten() {
                *n = self.name(n);
            }
        }
        if let Some(cert) = cert {
            cert.subject = self.name(&cert.subject);
            cert.issuer = self.name(&cert.issuer);
            cert.dns_names = cert.dns_names.iter().map(|n| self.name(n)).collect();
        }
        for p in problems {
            if let CertProblem::NameMismatch { sni, covers } = p {
                *sni = self.name(sni);
                for n in covers.iter_mut() {
                    *n = self.name(n);
                }
            }
        }
    }

    /// Redacts one connection record in place (its server certificate's names are hidden
    /// before, by [`Redactor::certificate`]).
    pub fn connection(&self, c: &mut Connection) {
        c.client_ip = self.ip_str(&c.client_ip);
        c.server_ip = self.ip_str(&c.server_ip);
        c.explanation = self.text(&c.explanation);
        c.next_step = self.text(&c.next_step);
        c.sni = c.sni.as_deref().map(|s| self.name(s));
        if let Some(ch) = &mut c.clienthello {
            ch.sni = ch.sni.as_deref().map(|s| self.name(s));
        }
        // The certificates' names were hidden before the verdict was worded
        // ([`Redactor::certificate`]).
        if let Some(i) = &mut c.icmp {
            i.reporter = self.ip_str(&i.reporter);
        }
        for s in [
            &mut c.server_first_bytes,
            &mut c.client_first_bytes,
            &mut c.timeout_match,
        ]
        .into_iter()
        .flatten()
        {
            *s = self.text(s);
        }
        if let Some(h) = &mut c.http {
            for s in [&mut h.request_line, &mut h.status_line]
                .into_iter()
                .flatten()
            {
                *s = self.text(s);
            }
        }
        for u in &mut c.uncertain {
            *u = self.text(u);
        }
        for e in &mut c.timeline {
            e.event = self.text(&e.event).into();
        }
    }
}

/// What a redacted report calls the file given `i`-th (from 0, as the inputs are listed).
pub fn capture_name(i: usize) -> String {
    format!("capture {i}")
}

/// `s` with every file path of `paths` in it replaced by its [`capture_name`]; where several
/// start at the same place, the longest (`gw.pcap10` is not `gw.pcap1` followed by `0`).
/// Standard input (`-`) names no file and is left alone in free text.
pub fn hide_paths(s: &str, paths: &[String]) -> String {
    let present: Vec<(usize, &str)> = paths
        .iter()
        .enumerate()
        .filter(|(_, p)| !p.is_empty() && p.as_str() != "-" && s.contains(p.as_str()))
        .map(|(i, p)| (i, p.as_str()))
        .collect();
    if present.is_empty() {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(c) = rest.chars().next() {
        let longest = present
            .iter()
            .filter(|(_, p)| rest.starts_with(p))
            .max_by_key(|(_, p)| p.len());
        match longest {
            Some((i, p)) => {
                out.push_str(&capture_name(*i));
                rest = &rest[p.len()..];
            }
            None => {
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    #[test]
    fn same_key_same_mapping_and_prefixes_preserved() {
        let r = Redactor::new(Some("k"), false);
        let a = r.ip(v4("10.99.1.2"));
        let b = r.ip(v4("10.99.1.77"));
        let c = r.ip(v4("10.99.2.2"));
        assert_eq!(a, Redactor::new(Some("k"), false).ip(v4("10.99.1.2")));
        assert_ne!(a, v4("10.99.1.2"));
        let (IpAddr::V4(a), IpAddr::V4(b), IpAddr::V4(c)) = (a, b, c) else {
            panic!("family changed")
        };
        // 10.99.1.2 and 10.99.1.77 share 25 bits; 10.99.1.x and 10.99.2.x share 22.
        let common = |x: Ipv4Addr, y: Ipv4Addr| (u32::from(x) ^ u32::from(y)).leading_zeros();
        assert_eq!(common(a, b), 25);
        assert_eq!(common(a, c), 22);
    }

    fn common(x: IpAddr, y: IpAddr) -> u32 {
        match (x, y) {
            (IpAddr::V4(x), IpAddr::V4(y)) => (u32::from(x) ^ u32::from(y)).leading_zeros(),
            (IpAddr::V6(x), IpAddr::V6(y)) => (u128::from(x) ^ u128::from(y)).leading_zeros(),
            _ => panic!("family changed"),
        }
    }

    fn value(a: IpAddr) -> (u8, u128) {
        match a {
            IpAddr::V4(v4) => (4, u128::from(u32::from(v4))),
            IpAddr::V6(v6) => (6, u128::from(v6)),
        }
    }

    #[test]
    fn special_ranges_keep_their_prefix_and_permute_the_rest() {
        let r = Redactor::new(Some("k"), false);
        for (a, prefix) in [
            ("10.99.1.2", 8),
            ("172.16.5.4", 12),
            ("172.31.255.1", 12),
            ("192.168.1.1", 16),
            ("100.64.1.1", 10),
            ("127.0.0.1", 8),
            ("169.254.1.1", 16),
            ("192.0.2.1", 24),
            ("198.51.100.7", 24),
            ("203.0.113.9", 24),
            ("224.0.0.251", 4),
            ("fd00:99:2::2", 7),
            ("fe80::1", 10),
            ("2001:db8::5", 32),
        ] {
            let (x, m) = (v4(a), r.ip(v4(a)));
            assert_ne!(x, m, "{a} unchanged");
            assert!(common(x, m) >= prefix, "{a} -> {m} left its /{prefix}");
            let (fam, v) = value(m);
            assert_eq!(special_range(fam, v), Some(prefix as usize), "{a} -> {m}");
        }
        // Inside a range, addresses sharing n bits still share exactly n bits.
        for (a, b, n) in [
            ("192.168.7.1", "192.168.7.200", 24),
            ("192.168.7.1", "192.168.9.1", 20),
            ("172.20.0.1", "172.21.0.1", 15),
            ("fd00:99:2::2", "fd00:99:2::1:2", 111),
            ("fd00:99:2::2", "fd00:99:3::2", 47),
        ] {
            assert_eq!(common(v4(a), v4(b)), n, "{a} {b}");
            assert_eq!(common(r.ip(v4(a)), r.ip(v4(b))), n, "{a} {b}");
        }
        // IPv4 inside IPv6 is mapped as the IPv4 address.
        let IpAddr::V4(m) = r.ip(v4("10.99.1.2")) else {
            panic!("family changed")
        };
        assert_eq!(r.ip(v4("::ffff:10.99.1.2")), IpAddr::V6(m.to_ipv6_mapped()));
    }

    #[test]
    fn public_addresses_map_one_to_one_onto_public_ones() {
        let r = Redactor::new(Some("k"), false);
        let mut seen = std::collections::HashSet::new();
        // Public addresses everywhere, many right next to a special range.
        let near = [
            "8.8.8.8",
            "11.0.0.1",
            "172.32.0.1",
            "192.169.0.1",
            "203.0.112.5",
            "198.51.101.1",
            "223.255.255.1",
            "2001:db9::1",
            "2a00:1450::1",
            "fbff::1",
        ];
        let mut x: u32 = 12345;
        let spread = (0..4000).map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            IpAddr::V4(Ipv4Addr::from(x))
        });
        for a in near.iter().map(|a| v4(a)).chain(spread) {
            let (fam, v) = value(a);
            if special_range(fam, v).is_some() {
                continue;
            }
            let m = r.ip(a);
            let (fam, v) = value(m);
            assert_eq!(special_range(fam, v), None, "{a} -> {m}");
            assert!(seen.insert(m), "{a} -> {m} twice");
        }
        // A public subnet stays a subnet.
        let (a, b) = (v4("93.184.216.34"), v4("93.184.216.200"));
        assert_eq!(common(r.ip(a), r.ip(b)), common(a, b));
    }

    #[test]
    fn no_special_range_contains_another() {
        for (i, (p, len)) in SPECIAL_V4.iter().enumerate() {
            for (q, _) in SPECIAL_V4.iter().skip(i + 1) {
                assert_ne!(p >> (32 - len), q >> (32 - len), "{p:x} {q:x}");
            }
            assert_eq!(special_range(4, u128::from(*p)), Some(usize::from(*len)));
        }
        for (p, len) in SPECIAL_V6 {
            assert_eq!(special_range(6, p), Some(usize::from(len)), "{p:x}");
        }
    }

    #[test]
    fn file_paths_become_capture_n_the_longest_first() {
        let paths: Vec<String> = ["gw.pcap", "gw.pcap1", "gw.pcap10", "-"]
            .iter()
            .map(|p| p.to_string())
            .collect();
        assert_eq!(
            hide_paths(
                "files given out of time order (gw.pcap10 before gw.pcap1)",
                &paths
            ),
            "files given out of time order (capture 2 before capture 1)"
        );
        assert_eq!(
            hide_paths("gw.pcap: cut short", &paths),
            "capture 0: cut short"
        );
        assert_eq!(hide_paths("a - b", &paths), "a - b");
    }

    #[test]
    fn free_text_addresses_are_replaced() {
        let r = Redactor::new(Some("k"), false);
        let t = r.text("nothing listens on 10.99.2.2:443 or [fd00:99:2::2]:8444; Host: 10.99.2.2");
        assert!(!t.contains("10.99.2.2"), "{t}");
        assert!(!t.contains("fd00:99:2::2"), "{t}");
        assert!(t.contains(":443"));
        // numbers that are not addresses survive
        assert_eq!(
            r.text("frame 4 at 0.008 s, 5 times"),
            "frame 4 at 0.008 s, 5 times"
        );
    }

    #[test]
    fn names_hashed_unless_kept() {
        let r = Redactor::new(Some("k"), false);
        assert!(r.name("backend.test").starts_with("name-"));
        assert_eq!(
            Redactor::new(Some("k"), true).name("backend.test"),
            "backend.test"
        );
    }
}
