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

    /// The redacted form of an address (cached: one computation per address).
    pub fn ip(&self, a: IpAddr) -> IpAddr {
        let cache = || self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = cache().get(&a) {
            return *r;
        }
        let r = match a {
            IpAddr::V4(v4) => {
                IpAddr::V4(Ipv4Addr::from(
                    self.scramble(4, 32, u128::from(u32::from(v4))) as u32,
                ))
            }
            IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(self.scramble(6, 128, u128::from(v6)))),
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

    /// Redacts what a report says before its connections: servers, warnings, file paths.
    pub fn head(
        &self,
        summary: &mut crate::model::Summary,
        warnings: &mut [String],
        captures: &mut [crate::capture::InputSummary],
    ) {
        for sv in &mut summary.servers {
            sv.server = self.text(&sv.server);
        }
        for w in warnings.iter_mut() {
            *w = self.text(w);
        }
        for c in captures.iter_mut() {
            c.path = self.text(&c.path);
            for w in &mut c.warnings {
                *w = self.text(w);
            }
        }
    }

    /// Redacts one connection record in place.
    pub fn connection(&self, c: &mut Connection) {
        c.client_ip = self.ip_str(&c.client_ip);
        c.server_ip = self.ip_str(&c.server_ip);
        c.explanation = self.text(&c.explanation);
        c.next_step = self.text(&c.next_step);
        c.sni = c.sni.as_deref().map(|s| self.name(s));
        if let Some(ch) = &mut c.clienthello {
            ch.sni = ch.sni.as_deref().map(|s| self.name(s));
        }
        if let Some(cert) = &mut c.certificate {
            cert.subject = self.name(&cert.subject);
            cert.issuer = self.name(&cert.issuer);
            cert.dns_names = cert.dns_names.iter().map(|n| self.name(n)).collect();
        }
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
