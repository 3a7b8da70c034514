//! Names of TLS wire values. Unknown values stay readable as hex, never an error.

use std::borrow::Cow;

/// Alert description (RFC 8446 section 6 and the registries), snake_case as the RFC spells it.
pub fn alert_description(v: u8) -> String {
    let s = match v {
        0 => "close_notify",
        10 => "unexpected_message",
        20 => "bad_record_mac",
        21 => "decryption_failed",
        22 => "record_overflow",
        30 => "decompression_failure",
        40 => "handshake_failure",
        41 => "no_certificate",
        42 => "bad_certificate",
        43 => "unsupported_certificate",
        44 => "certificate_revoked",
        45 => "certificate_expired",
        46 => "certificate_unknown",
        47 => "illegal_parameter",
        48 => "unknown_ca",
        49 => "access_denied",
        50 => "decode_error",
        51 => "decrypt_error",
        60 => "export_restriction",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        86 => "inappropriate_fallback",
        90 => "user_canceled",
        100 => "no_renegotiation",
        109 => "missing_extension",
        110 => "unsupported_extension",
        111 => "certificate_unobtainable",
        112 => "unrecognized_name",
        113 => "bad_certificate_status_response",
        114 => "bad_certificate_hash_value",
        115 => "unknown_psk_identity",
        116 => "certificate_required",
        120 => "no_application_protocol",
        121 => "ech_required",
        other => return format!("unknown_alert_{other}"),
    };
    s.to_string()
}

pub fn alert_level(v: u8) -> String {
    match v {
        1 => "warning".into(),
        2 => "fatal".into(),
        other => format!("level_{other}"),
    }
}

/// A name of a wire value: borrowed when the value is known, written out when not.
pub type Name = Cow<'static, str>;

/// Protocol version as Wireshark prints it ("TLSv1.3").
pub fn version_name(v: u16) -> Name {
    Cow::Borrowed(match v {
        0x0002 => "SSLv2",
        0x0300 => "SSLv3",
        0x0301 => "TLSv1.0",
        0x0302 => "TLSv1.1",
        0x0303 => "TLSv1.2",
        0x0304 => "TLSv1.3",
        v if v & 0xff00 == 0x7f00 => return Cow::Owned(format!("TLSv1.3 draft {}", v & 0xff)),
        0xfb1a => "TLSv1.3 (Facebook fizz)",
        other => return Cow::Owned(format!("0x{other:04x}")),
    })
}

/// True for the RFC 8701 GREASE values (0x0a0a, 0x1a1a, ... 0xfafa).
pub fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && (v >> 8) == (v & 0xff)
}

/// Named group (supported_groups / key_share), including the hybrid post-quantum groups.
pub fn group_name(v: u16) -> Name {
    let s = match v {
        0x0017 => "secp256r1",
        0x0018 => "secp384r1",
        0x0019 => "secp521r1",
        0x001d => "x25519",
        0x001e => "x448",
        0x0100 => "ffdhe2048",
        0x0101 => "ffdhe3072",
        0x0102 => "ffdhe4096",
        0x0103 => "ffdhe6144",
        0x0104 => "ffdhe8192",
        0x0200 => "MLKEM512",
        0x0201 => "MLKEM768",
        0x0202 => "MLKEM1024",
        0x11eb => "SecP256r1MLKEM768",
        0x11ec => "X25519MLKEM768",
        0x11ed => "SecP384r1MLKEM1024",
        0x6399 => "X25519Kyber768Draft00",
        0x639a => "SecP256r1Kyber768Draft00",
        v if is_grease(v) => return Cow::Owned(format!("GREASE(0x{v:04x})")),
        other => return Cow::Owned(format!("0x{other:04x}")),
    };
    Cow::Borrowed(s)
}

/// Cipher suite name from tls-parser's table, or hex.
pub fn cipher_name(id: u16) -> Name {
    match tls_parser::TlsCipherSuite::from_id(id) {
        Some(cs) => Cow::Borrowed(cs.name),
        None => Cow::Owned(format!("0x{id:04x}")),
    }
}

/// Every name [`version_name`] and [`group_name`] return borrowed.
const KNOWN_NAMES: [&str; 25] = [
    "SSLv2",
    "SSLv3",
    "TLSv1.0",
    "TLSv1.1",
    "TLSv1.2",
    "TLSv1.3",
    "TLSv1.3 (Facebook fizz)",
    "secp256r1",
    "secp384r1",
    "secp521r1",
    "x25519",
    "x448",
    "ffdhe2048",
    "ffdhe3072",
    "ffdhe4096",
    "ffdhe6144",
    "ffdhe8192",
    "MLKEM512",
    "MLKEM768",
    "MLKEM1024",
    "SecP256r1MLKEM768",
    "X25519MLKEM768",
    "SecP384r1MLKEM1024",
    "X25519Kyber768Draft00",
    "SecP256r1Kyber768Draft00",
];

/// `s` as the static version or group name it spells, if it is one.
pub fn known_name(s: &str) -> Option<&'static str> {
    KNOWN_NAMES.iter().find(|n| **n == s).copied()
}

/// Reads a string, borrowing the static copy `known` finds for it, if any (strings that come
/// back from the spill file for every connection need not be allocated again).
pub(crate) fn deserialize_known<'de, D: serde::Deserializer<'de>>(
    d: D,
    known: fn(&str) -> Option<&'static str>,
) -> Result<Name, D::Error> {
    struct V(fn(&str) -> Option<&'static str>);
    impl serde::de::Visitor<'_> for V {
        type Value = Name;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Name, E> {
            Ok((self.0)(v).map_or_else(|| Cow::Owned(v.to_owned()), Cow::Borrowed))
        }
    }
    d.deserialize_str(V(known))
}

/// Reads a name, borrowing it when it is a [`known_name`].
pub fn deserialize_name<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Name, D::Error> {
    deserialize_known(d, known_name)
}

/// [`deserialize_name`] for an optional name.
pub fn deserialize_opt_name<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Name>, D::Error> {
    #[derive(serde::Deserialize)]
    struct W(#[serde(deserialize_with = "deserialize_name")] Name);
    Ok(<Option<W> as serde::Deserialize>::deserialize(d)?.map(|w| w.0))
}

/// [`deserialize_name`] for a list of names.
pub fn deserialize_names<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Name>, D::Error> {
    #[derive(serde::Deserialize)]
    struct W(#[serde(deserialize_with = "deserialize_name")] Name);
    Ok(<Vec<W> as serde::Deserialize>::deserialize(d)?
        .into_iter()
        .map(|w| w.0)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grease_values_are_recognised() {
        assert!(is_grease(0x0a0a));
        assert!(is_grease(0xfafa));
        assert!(!is_grease(0x0a1a));
        assert!(!is_grease(0x0303));
    }

    #[test]
    fn every_static_name_is_known_back() {
        for v in 0..=u16::MAX {
            for n in [version_name(v), group_name(v)] {
                match n {
                    Cow::Borrowed(b) => assert_eq!(known_name(b), Some(b), "{v:#06x}"),
                    Cow::Owned(o) => assert_eq!(known_name(&o), None, "{v:#06x}"),
                }
            }
        }
    }

    #[test]
    fn known_names_read_back_borrowed() {
        let read = |j: &str| deserialize_name(&mut serde_json::Deserializer::from_str(j));
        assert!(matches!(read("\"TLSv1.3\""), Ok(Cow::Borrowed("TLSv1.3"))));
        assert!(matches!(read("\"X25519MLKEM768\""), Ok(Cow::Borrowed(_))));
        assert!(matches!(read("\"0x1234\""), Ok(Cow::Owned(o)) if o == "0x1234"));
    }

    #[test]
    fn unknown_values_stay_readable() {
        assert_eq!(alert_description(200), "unknown_alert_200");
        assert_eq!(group_name(0x11ec), "X25519MLKEM768");
        assert_eq!(group_name(0x1234), "0x1234");
        assert_eq!(version_name(0x7f13), "TLSv1.3 draft 19");
        assert_eq!(cipher_name(0x1301), "TLS_AES_128_GCM_SHA256");
    }
}
