//! TLS lines: the decisive TLS facts of one connection as short labelled lines, shown by the
//! text report ("What happened") and the Markdown report (each problem's example): the
//! versions offered and negotiated, the server certificate's names, validity and problems,
//! and whether a client certificate was asked for and sent.
//!
//! Names come escaped in the record ([`crate::escape::text`]); Markdown escapes the lines
//! again for its own syntax.

use crate::model::{CertInfo, ClientCertInfo, Connection};
use crate::tls::names::is_grease;

/// Labelled lines, in the order shown; none for a connection without TLS facts.
pub(crate) fn tls_lines(c: &Connection) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if let Some(v) = versions(c) {
        out.push(("TLS", v));
    }
    if let Some(cert) = &c.certificate {
        out.push(("Certificate", certificate(cert)));
        if !cert.problems.is_empty() {
            out.push(("Certificate problems", cert.problems.join(", ")));
        }
    }
    if let Some(cc) = &c.client_certificate {
        out.push(("Client certificate", client_certificate(cc)));
    }
    out
}

/// A supported_versions entry that is GREASE (RFC 8701), as its name reads ("0x0a0a").
fn grease_name(name: &str) -> bool {
    name.strip_prefix("0x")
        .and_then(|h| u16::from_str_radix(h, 16).ok())
        .is_some_and(is_grease)
}

/// "offered TLSv1.3, TLSv1.2; negotiated TLSv1.3": supported_versions without GREASE, else
/// the hello's legacy version.
fn versions(c: &Connection) -> Option<String> {
    let offered: Vec<&str> = match &c.clienthello {
        Some(h) if !h.supported_versions.is_empty() => h
            .supported_versions
            .iter()
            .map(|v| &**v)
            .filter(|v| !grease_name(v))
            .collect(),
        Some(h) if !h.legacy_version.is_empty() => vec![&*h.legacy_version],
        _ => Vec::new(),
    };
    let mut parts = Vec::new();
    if !offered.is_empty() {
        parts.push(format!("offered {}", offered.join(", ")));
    }
    if let Some(v) = &c.tls_version {
        parts.push(format!("negotiated {v}"));
    }
    if let Some(a) = &c.alpn_selected {
        parts.push(format!("ALPN {a}"));
    }
    if parts.is_empty() {
        return None;
    }
    let mut s = parts.join("; ");
    if c.decrypted {
        s.push_str(" (handshake decrypted)");
    }
    Some(s)
}

/// The first 10 characters of an RFC 3339 time: its date.
fn date(t: &str) -> &str {
    t.get(..10).unwrap_or(t)
}

/// "CN=api, issued by CN=Lab CA, valid 2026-01-01 to 2027-01-01, chain of 2".
fn certificate(cert: &CertInfo) -> String {
    format!(
        "{}, issued by {}, valid {} to {}, chain of {}",
        cert.subject,
        cert.issuer,
        date(&cert.not_before),
        date(&cert.not_after),
        cert.chain_length
    )
}

/// "requested, sent (CN=..., issued by CN=...)", "requested, not sent", "not requested",
/// "requested, sent or not unknown (...)".
fn client_certificate(cc: &ClientCertInfo) -> String {
    let mut s = match (cc.requested, cc.sent) {
        (true, Some(true)) => "requested, sent".to_string(),
        (true, Some(false)) => "requested, not sent".to_string(),
        (true, None) => {
            "requested; whether sent is unknown (the client's Certificate was not read)".to_string()
        }
        (false, Some(true)) => "sent".to_string(),
        (false, _) => "not requested".to_string(),
    };
    if let Some(subject) = &cc.subject {
        s.push_str(&format!(" ({subject}"));
        if let Some(issuer) = &cc.issuer {
            s.push_str(&format!(", issued by {issuer}"));
        }
        s.push(')');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ClientHelloInfo;

    fn connection() -> Connection {
        let json = include_str!("../../tests/golden/mixed.pcap.json");
        let v: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
        serde_json::from_value(v["connections"][1].clone()).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn versions_skip_grease_and_name_the_negotiated_one() {
        let mut c = connection();
        c.clienthello = Some(ClientHelloInfo {
            supported_versions: vec!["0x3a3a".into(), "TLSv1.3".into(), "TLSv1.2".into()],
            ..Default::default()
        });
        c.tls_version = Some("TLSv1.2".into());
        c.alpn_selected = Some("h2".into());
        let lines = tls_lines(&c);
        assert_eq!(
            lines[0],
            (
                "TLS",
                "offered TLSv1.3, TLSv1.2; negotiated TLSv1.2; ALPN h2".into()
            )
        );
    }

    #[test]
    fn certificate_lines_show_names_dates_and_problems() {
        let mut c = connection();
        c.certificate = Some(CertInfo {
            subject: "CN=api.example.test".into(),
            issuer: "CN=Lab CA".into(),
            not_before: "2024-01-01T00:00:00Z".into(),
            not_after: "2025-01-01T00:00:00Z".into(),
            chain_length: 1,
            problems: vec!["expired".into(), "incomplete_chain".into()],
            ..Default::default()
        });
        let lines = tls_lines(&c);
        assert!(lines.contains(&(
            "Certificate",
            "CN=api.example.test, issued by CN=Lab CA, valid 2024-01-01 to 2025-01-01, chain \
             of 1"
                .into()
        )));
        assert!(lines.contains(&("Certificate problems", "expired, incomplete_chain".into())));
    }

    #[test]
    fn client_certificate_says_whether_asked_and_sent() {
        let mut c = connection();
        c.client_certificate = Some(ClientCertInfo {
            requested: true,
            sent: Some(false),
            ..Default::default()
        });
        assert!(tls_lines(&c).contains(&("Client certificate", "requested, not sent".into())));
        c.client_certificate = Some(ClientCertInfo {
            requested: true,
            ..Default::default()
        });
        assert!(tls_lines(&c).contains(&(
            "Client certificate",
            "requested; whether sent is unknown (the client's Certificate was not read)".into()
        )));
        c.client_certificate = Some(ClientCertInfo {
            requested: true,
            sent: Some(true),
            subject: Some("CN=gateway".into()),
            issuer: Some("CN=Lab CA".into()),
        });
        assert!(tls_lines(&c).contains(&(
            "Client certificate",
            "requested, sent (CN=gateway, issued by CN=Lab CA)".into()
        )));
        c.client_certificate = None;
        assert!(tls_lines(&c)
            .iter()
            .all(|(l, _)| *l != "Client certificate"));
    }

    #[test]
    fn a_connection_without_tls_has_no_lines() {
        let mut c = connection();
        c.clienthello = None;
        c.tls_version = None;
        c.alpn_selected = None;
        c.certificate = None;
        assert!(tls_lines(&c).is_empty());
    }
}
