//! Hello: the report's form of what the TLS layer kept raw. ClientHello values get their
//! names (versions, groups), server and protocol names and certificate names are escaped for
//! display ([`crate::escape::text`]), certificate times become RFC 3339 text. Hands on the
//! JSON contract's [`ClientHelloInfo`] and [`CertInfo`].

use crate::escape;
use crate::model::{CertInfo, ClientCertInfo, ClientHelloInfo};
use crate::timefmt::rfc3339_secs;
use crate::tls::certificate::{LeafCertificate, LeafFacts};
use crate::tls::hello::ClientHelloFacts;
use crate::tls::names::{group_name, version_name};
use crate::tls::ClientCertFacts;

/// Bytes from the wire as text for people: invalid UTF-8 replaced, controls escaped.
pub(crate) fn display_name(raw: &[u8]) -> String {
    escape::text(&String::from_utf8_lossy(raw))
}

/// The report's form of a ClientHello.
pub(crate) fn client_hello_info(ch: &ClientHelloFacts) -> ClientHelloInfo {
    ClientHelloInfo {
        record_version: version_name(ch.record_version),
        legacy_version: ch.legacy_version.map(version_name).unwrap_or_default(),
        supported_versions: ch
            .supported_versions
            .iter()
            .map(|v| version_name(*v))
            .collect(),
        sni: ch.sni.as_deref().map(display_name),
        alpn: ch.alpn.iter().map(|p| display_name(p)).collect(),
        cipher_suites: ch.cipher_suites,
        key_share_groups: ch.key_share_groups.iter().map(|g| group_name(*g)).collect(),
        ja4: ch.ja4.map(|j| j.to_string()),
        sslv2_format: ch.sslv2_format,
        length: ch.length,
    }
}

/// The report's form of a leaf certificate; `None` if it is not well-formed X.509.
pub(crate) fn cert_info(leaf: &LeafCertificate, f: &LeafFacts) -> CertInfo {
    CertInfo {
        subject: escape::text(&f.subject),
        issuer: escape::text(&f.issuer),
        not_before: rfc3339_secs(f.not_before),
        not_after: rfc3339_secs(f.not_after),
        dns_names: f.dns_names.iter().map(|n| escape::text(n)).collect(),
        chain_length: leaf.chain_length(),
        self_signed: f.self_signed,
        problems: Vec::new(),
    }
}

/// What the client was asked for and sent as its certificate; `None` when the server did
/// not ask and the client sent no Certificate message.
pub(crate) fn client_cert_info(cc: &ClientCertFacts) -> Option<ClientCertInfo> {
    if !cc.requested && cc.sent.is_none() {
        return None;
    }
    let leaf = cc.leaf.as_ref().and_then(LeafCertificate::facts);
    Some(ClientCertInfo {
        requested: cc.requested,
        sent: cc.sent,
        subject: leaf.as_ref().map(|f| escape::text(&f.subject)),
        issuer: leaf.as_ref().map(|f| escape::text(&f.issuer)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::hello::parse_client_hello;
    use crate::tls::hello::tests_support::{hostile_client_hello, sample_client_hello};

    #[test]
    fn client_hello_gets_names() {
        let ch = parse_client_hello(&sample_client_hello(), 0x0301).expect("parses");
        let info = client_hello_info(&ch);
        assert_eq!(info.sni.as_deref(), Some("backend.test"));
        assert_eq!(info.alpn, vec!["h2", "http/1.1"]);
        assert_eq!(info.key_share_groups, vec!["X25519MLKEM768", "x25519"]);
        assert_eq!(info.record_version, "TLSv1.0");
        assert_eq!(info.supported_versions[1], "TLSv1.3");
        assert!(info.ja4.is_some_and(|j| j.starts_with("t13d0206h2_")));
    }

    /// A name with a NUL in it, an empty ALPN entry and one that is a NUL come back in
    /// order, escaped.
    #[test]
    fn hostile_hello_names_are_escaped_in_order() {
        let msg = hostile_client_hello();
        let info = client_hello_info(&parse_client_hello(&msg, 0x0301).expect("parses"));
        assert_eq!(info.sni.as_deref(), Some("back\\u{0}nd.test"));
        assert_eq!(info.alpn, vec!["", "\\u{0}", "http/1.1"]);
    }

    #[test]
    fn invalid_utf8_and_bidi_overrides_are_made_safe() {
        assert_eq!(display_name(b"a\xffb"), "a\u{fffd}b");
        assert_eq!(display_name("x\u{202e}y".as_bytes()), "x\\u{202e}y");
        assert_eq!(display_name(b"\x1b[31m"), "\\u{1b}[31m");
    }

    #[test]
    fn an_unparsed_hello_has_empty_version_names() {
        let info = client_hello_info(&ClientHelloFacts::unparsed(0x0303, 90));
        assert_eq!(info.record_version, "TLSv1.2");
        assert_eq!(info.legacy_version, "");
        assert_eq!(info.length, 90);
        assert!(info.ja4.is_none() && info.sni.is_none());
    }
}
