//! Certificate: what is wrong with the chain a server sent, judged from its leaf's facts, the
//! chain's length, the SNI the client asked for and when the connection was captured. Pure
//! rules on raw values; the names kept in a problem are escaped for display
//! ([`crate::escape::text`]), as the report shows them.
//!
//! Names are matched as RFC 6125 says: case-insensitively, a trailing dot ignored, a wildcard
//! only as the whole leftmost label and standing for exactly one label; the common name only
//! when the certificate has no DNS name. Without a public suffix list, a wildcard needs two
//! labels after it (`*.com` covers nothing; `*.co.uk` is let through).

use crate::capture::Nanos;
use crate::escape;
use crate::model::CertInfo;
use crate::tls::certificate::{LeafCertificate, LeafFacts};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// A problem of the server's certificate, with what the words about it need. Times are Unix
/// seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CertProblem {
    Expired {
        not_after: i64,
        capture: i64,
    },
    NotYetValid {
        not_before: i64,
        capture: i64,
    },
    /// The SNI (escaped) and the names the certificate covers (escaped).
    NameMismatch {
        sni: String,
        covers: Vec<String>,
    },
    SelfSigned,
    /// Only the leaf was sent, and it is not self-signed.
    IncompleteChain,
}

impl CertProblem {
    /// The code the JSON contract uses (`certificate.problems`).
    pub fn code(&self) -> &'static str {
        match self {
            CertProblem::Expired { .. } => "expired",
            CertProblem::NotYetValid { .. } => "not_yet_valid",
            CertProblem::NameMismatch { .. } => "name_mismatch",
            CertProblem::SelfSigned => "self_signed",
            CertProblem::IncompleteChain => "incomplete_chain",
        }
    }
}

/// The server's certificate as reported, and its problems, for a connection that asked for
/// `sni` and began at `start`: the leaf's X.509 facts are read once (none when there is no
/// leaf or it is not X.509).
pub(crate) fn server_certificate(
    leaf: Option<&LeafCertificate>,
    sni: Option<&[u8]>,
    start: Nanos,
) -> (Option<CertInfo>, Vec<CertProblem>) {
    let Some((leaf, f)) = leaf.and_then(|l| Some((l, l.facts()?))) else {
        return (None, Vec::new());
    };
    let found = problems(
        &f,
        leaf.chain_length(),
        sni,
        start.div_euclid(1_000_000_000),
    );
    (Some(super::hello::cert_info(leaf, &f)), found)
}

/// The problems of a chain of `chain_length` certificates led by `leaf`, in the contract's
/// order: expired, not_yet_valid, name_mismatch, self_signed, incomplete_chain.
pub fn problems(
    leaf: &LeafFacts,
    chain_length: usize,
    sni: Option<&[u8]>,
    capture: i64,
) -> Vec<CertProblem> {
    let mut out = Vec::new();
    if leaf.not_after < capture {
        out.push(CertProblem::Expired {
            not_after: leaf.not_after,
            capture,
        });
    }
    if leaf.not_before > capture {
        out.push(CertProblem::NotYetValid {
            not_before: leaf.not_before,
            capture,
        });
    }
    if let Some(m) = sni.and_then(|s| name_mismatch(leaf, s)) {
        out.push(m);
    }
    if leaf.self_signed {
        out.push(CertProblem::SelfSigned);
    } else if chain_length == 1 {
        out.push(CertProblem::IncompleteChain);
    }
    out
}

/// A mismatch between the SNI and the names the leaf covers; none for an IP-literal SNI (not
/// a name) or a leaf that names nothing.
fn name_mismatch(leaf: &LeafFacts, sni: &[u8]) -> Option<CertProblem> {
    let host = std::str::from_utf8(sni).ok();
    if host.is_some_and(|h| h.trim_end_matches('.').parse::<IpAddr>().is_ok()) {
        return None;
    }
    let names: Vec<&str> = if leaf.dns_names.is_empty() {
        leaf.common_name.iter().map(String::as_str).collect()
    } else {
        leaf.dns_names.iter().map(String::as_str).collect()
    };
    if names.is_empty() {
        return None;
    }
    if host.is_some_and(|h| names.iter().any(|n| covers(n, h))) {
        return None;
    }
    Some(CertProblem::NameMismatch {
        sni: escape::text(&String::from_utf8_lossy(sni)),
        covers: names.iter().map(|n| escape::text(n)).collect(),
    })
}

/// Whether certificate name `pattern` covers host name `host` (RFC 6125 section 6.4).
pub fn covers(pattern: &str, host: &str) -> bool {
    let pattern = pattern.strip_suffix('.').unwrap_or(pattern);
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() || host.contains('*') {
        return false;
    }
    match pattern.strip_prefix("*.") {
        Some(rest) => {
            // Two labels at least after the wildcard, and no other wildcard.
            if rest.contains('*') || !rest.contains('.') || rest.split('.').any(str::is_empty) {
                return false;
            }
            match host.split_once('.') {
                Some((first, tail)) => !first.is_empty() && tail.eq_ignore_ascii_case(rest),
                None => false,
            }
        }
        None => !pattern.contains('*') && pattern.eq_ignore_ascii_case(host),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn leaf(dns: &[&str]) -> LeafFacts {
        LeafFacts {
            subject: "CN=api.example.test".into(),
            issuer: "CN=Lab CA".into(),
            not_before: NOW - 1000,
            not_after: NOW + 1000,
            common_name: Some("api.example.test".into()),
            dns_names: dns.iter().map(|d| d.to_string()).collect(),
            self_signed: false,
        }
    }

    fn codes(p: &[CertProblem]) -> Vec<&'static str> {
        p.iter().map(CertProblem::code).collect()
    }

    #[test]
    fn wildcards_cover_exactly_one_leftmost_label() {
        assert!(covers("*.example.test", "a.example.test"));
        assert!(!covers("*.example.test", "example.test"));
        assert!(!covers("*.example.test", "a.b.example.test"));
        assert!(!covers("*.example.test", ".example.test"));
        assert!(covers("*.Example.TEST", "A.example.test."));
        assert!(covers("a.example.test", "A.Example.TEST."));
        assert!(covers("a.example.test.", "a.example.test"));
        assert!(!covers("a.example.test", "b.example.test"));
    }

    #[test]
    fn public_suffix_and_partial_wildcards_cover_nothing() {
        assert!(!covers("*.com", "example.com"));
        assert!(!covers("*", "example"));
        assert!(!covers("f*.example.test", "foo.example.test"));
        assert!(!covers("*.*.example.test", "a.b.example.test"));
        assert!(!covers("a.*.example.test", "a.b.example.test"));
        assert!(!covers("*.example.test", "*.example.test"));
    }

    #[test]
    fn a_sound_leaf_with_its_intermediate_has_no_problem() {
        let l = leaf(&["*.example.test"]);
        assert!(problems(&l, 2, Some(b"api.example.test"), NOW).is_empty());
        assert!(problems(&l, 2, None, NOW).is_empty());
    }

    #[test]
    fn expired_and_not_yet_valid_against_the_capture_time() {
        let l = leaf(&["api.example.test"]);
        let p = problems(&l, 2, None, NOW + 1001);
        assert_eq!(
            p,
            vec![CertProblem::Expired {
                not_after: NOW + 1000,
                capture: NOW + 1001
            }]
        );
        assert!(problems(&l, 2, None, NOW + 1000).is_empty());
        assert_eq!(codes(&problems(&l, 2, None, NOW - 1001)), ["not_yet_valid"]);
    }

    #[test]
    fn a_name_outside_the_sans_is_a_mismatch_naming_both() {
        let l = leaf(&["*.example.test", "example.test"]);
        let p = problems(&l, 2, Some(b"api.example.com"), NOW);
        assert_eq!(
            p,
            vec![CertProblem::NameMismatch {
                sni: "api.example.com".into(),
                covers: vec!["*.example.test".into(), "example.test".into()],
            }]
        );
        assert!(problems(&l, 2, Some(b"a.b.example.test"), NOW)[0].code() == "name_mismatch");
        assert!(problems(&l, 2, Some(b"A.Example.TEST."), NOW).is_empty());
    }

    #[test]
    fn the_common_name_counts_only_without_dns_names() {
        // The CN is api.example.test; with a DNS name present it is ignored.
        let with_san = leaf(&["other.example.test"]);
        let p = problems(&with_san, 2, Some(b"api.example.test"), NOW);
        assert_eq!(codes(&p), ["name_mismatch"]);
        let cn_only = leaf(&[]);
        assert!(problems(&cn_only, 2, Some(b"api.example.test"), NOW).is_empty());
        assert_eq!(
            codes(&problems(&cn_only, 2, Some(b"web.example.test"), NOW)),
            ["name_mismatch"]
        );
    }

    #[test]
    fn ip_literal_snis_and_nameless_leaves_are_not_judged_by_name() {
        let l = leaf(&["api.example.test"]);
        assert!(problems(&l, 2, Some(b"192.0.2.7"), NOW).is_empty());
        assert!(problems(&l, 2, Some(b"2001:db8::1"), NOW).is_empty());
        let mut nameless = leaf(&[]);
        nameless.common_name = None;
        assert!(problems(&nameless, 2, Some(b"api.example.test"), NOW).is_empty());
    }

    #[test]
    fn a_hostile_sni_is_escaped_in_the_mismatch() {
        let l = leaf(&["api.example.test"]);
        let p = problems(&l, 2, Some(b"a\x1b[31m\xff"), NOW);
        let CertProblem::NameMismatch { sni, .. } = &p[0] else {
            panic!("{p:?}");
        };
        assert_eq!(sni, "a\\u{1b}[31m\u{fffd}");
    }

    #[test]
    fn a_lone_leaf_is_incomplete_unless_self_signed() {
        let mut l = leaf(&["api.example.test"]);
        assert_eq!(codes(&problems(&l, 1, None, NOW)), ["incomplete_chain"]);
        l.self_signed = true;
        assert_eq!(codes(&problems(&l, 1, None, NOW)), ["self_signed"]);
        assert_eq!(codes(&problems(&l, 3, None, NOW)), ["self_signed"]);
    }

    #[test]
    fn problems_come_in_the_contract_order() {
        let mut l = leaf(&["api.example.test"]);
        l.self_signed = true;
        let p = problems(&l, 1, Some(b"web.example.test"), NOW + 5000);
        assert_eq!(codes(&p), ["expired", "name_mismatch", "self_signed"]);
    }
}
