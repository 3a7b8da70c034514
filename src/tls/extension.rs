//! Extension: the hello extension codes this room reads (RFC 8446 4.2 and the IANA
//! registry). Unknown codes stay readable (as hex), never an error.

use std::fmt;

/// A hello extension's code.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ExtensionType(pub u16);

impl ExtensionType {
    pub const SERVER_NAME: Self = Self(0x0000);
    pub const SIGNATURE_ALGORITHMS: Self = Self(0x000d);
    pub const ALPN: Self = Self(0x0010);
    /// TLS 1.3 drafts up to 22 numbered key_share 40.
    pub const KEY_SHARE_DRAFT: Self = Self(0x0028);
    pub const SUPPORTED_VERSIONS: Self = Self(0x002b);
    pub const KEY_SHARE: Self = Self(0x0033);
}

impl fmt::Debug for ExtensionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::SERVER_NAME => f.write_str("server_name"),
            Self::SIGNATURE_ALGORITHMS => f.write_str("signature_algorithms"),
            Self::ALPN => f.write_str("application_layer_protocol_negotiation"),
            Self::KEY_SHARE_DRAFT => f.write_str("key_share(draft)"),
            Self::SUPPORTED_VERSIONS => f.write_str("supported_versions"),
            Self::KEY_SHARE => f.write_str("key_share"),
            Self(other) => write!(f, "ExtensionType(0x{other:04x})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_codes_stay_readable() {
        assert_eq!(
            format!("{:?}", ExtensionType(0xfe0d)),
            "ExtensionType(0xfe0d)"
        );
        assert_eq!(format!("{:?}", ExtensionType::KEY_SHARE), "key_share");
    }
}
