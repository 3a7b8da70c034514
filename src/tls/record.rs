//! Record: the TLS record layer's wire values and header checks (RFC 8446 5.1), the SSLv2
//! record header of pre-TLS hellos, and the signs that bytes are not TLS at all.
//!
//! Hands the connection's feed ([`super::conn`]) a parsed [`Header`] per record; what a record
//! teaches is learnt in [`super::facts`].

use std::fmt;

/// A record's content type. Unknown values stay readable (as a number), never an error.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct ContentType(pub u8);

impl ContentType {
    pub const CHANGE_CIPHER_SPEC: Self = Self(20);
    pub const ALERT: Self = Self(21);
    pub const HANDSHAKE: Self = Self(22);
    pub const APPLICATION_DATA: Self = Self(23);
    pub const HEARTBEAT: Self = Self(24);
    /// Not on the wire: marks an SSLv2-format record (its header has no content type).
    pub const SSLV2: Self = Self(0x80);

    /// The content types of TLS 1.0 to 1.3 (RFC 8446 B.1, RFC 6520).
    fn is_known(self) -> bool {
        (Self::CHANGE_CIPHER_SPEC.0..=Self::HEARTBEAT.0).contains(&self.0)
    }
}

impl fmt::Debug for ContentType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match *self {
            Self::CHANGE_CIPHER_SPEC => "change_cipher_spec",
            Self::ALERT => "alert",
            Self::HANDSHAKE => "handshake",
            Self::APPLICATION_DATA => "application_data",
            Self::HEARTBEAT => "heartbeat",
            Self::SSLV2 => "sslv2",
            Self(other) => return write!(f, "ContentType({other})"),
        };
        f.write_str(name)
    }
}

/// Length of a TLS record header: type, version, length.
pub const HEADER_LEN: usize = 5;
/// Length of an SSLv2 record header (two-byte form: the high bit set, 15 bits of length).
const SSLV2_HEADER_LEN: usize = 2;
/// RFC 8446 5.2: ciphertext may exceed 2^14 by 256; TLS <= 1.2 allowed 2048.
const MAX_RECORD_LEN: usize = (1 << 14) + 2048;
/// Encrypted records this short are alerts, not handshake messages (2 + 1 + 16-byte tag,
/// a little padding allowed; a TLS 1.3 Finished is at least 53 bytes).
pub const SHORT_ENCRYPTED: usize = 40;
/// The smallest record that can hold a hello (a ServerHello body is at least 38 bytes).
const MIN_HELLO_RECORD: u16 = 38;
/// Handshake message types that open a handshake (ClientHello, ServerHello).
const HELLO_TYPES: [u8; 2] = [1, 2];
/// SSLv2 message types that open a handshake.
pub const SSLV2_CLIENT_HELLO: u8 = 1;
pub const SSLV2_SERVER_HELLO: u8 = 4;
const SSLV2_HELLO_TYPES: [u8; 2] = [SSLV2_CLIENT_HELLO, SSLV2_SERVER_HELLO];

/// A record as its header describes it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Header {
    pub content_type: ContentType,
    /// Record-layer version (0x0002 for SSLv2).
    pub version: u16,
    /// Body length, after the header.
    pub len: usize,
}

impl Header {
    /// A TLS record header, if `h` is a plausible one.
    pub fn tls(h: &[u8]) -> Option<Header> {
        let [ct, major, minor, hi, lo, ..] = *h else {
            return None;
        };
        plausible_header(h).then(|| Header {
            content_type: ContentType(ct),
            version: u16::from_be_bytes([major, minor]),
            len: usize::from(u16::from_be_bytes([hi, lo])),
        })
    }

    /// An SSLv2 record header that starts a CLIENT-HELLO or SERVER-HELLO: its length counts
    /// the message type and the version that follow the 2-byte header.
    pub fn sslv2_hello(h: &[u8; HEADER_LEN]) -> Option<Header> {
        let [hi, lo, msg_type, ..] = *h;
        (hi & 0x80 != 0 && SSLV2_HELLO_TYPES.contains(&msg_type)).then(|| Header {
            content_type: ContentType::SSLV2,
            version: 0x0002,
            len: usize::from(u16::from_be_bytes([hi & 0x7f, lo])),
        })
    }

    /// Bytes from the record's first header byte to the end of its body.
    pub fn wire_len(&self) -> u64 {
        let header = match self.content_type {
            ContentType::SSLV2 => SSLV2_HEADER_LEN,
            _ => HEADER_LEN,
        };
        (header + self.len) as u64
    }
}

/// A record and where its header starts in its direction's stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Record {
    pub header: Header,
    pub start: u64,
}

impl Record {
    /// Stream offset just past the record's body.
    pub fn end(&self) -> u64 {
        self.start + self.header.wire_len()
    }
}

/// `h` starts with a TLS record header: a known content type, version 3.x (SSL 3.0 to
/// TLS 1.3), a length within what the RFCs allow.
pub fn plausible_header(h: &[u8]) -> bool {
    let [ct, major, minor, hi, lo, ..] = *h else {
        return false;
    };
    ContentType(ct).is_known()
        && major == 3
        && minor <= 4
        && usize::from(u16::from_be_bytes([hi, lo])) <= MAX_RECORD_LEN
}

/// A record header that starts a ClientHello (client) or ServerHello (server) after plaintext.
pub fn plausible_hello_start(h: &[u8]) -> bool {
    let [ct, major, minor, hi, lo, msg_type, len_hi, ..] = *h else {
        return false;
    };
    h.len() >= 9
        && ContentType(ct) == ContentType::HANDSHAKE
        && major == 3
        && minor <= 4
        && HELLO_TYPES.contains(&msg_type)
        && len_hi == 0
        && u16::from_be_bytes([hi, lo]) >= MIN_HELLO_RECORD
}

/// The first bytes of a stream shorter than a record header could still be TLS: a known
/// content type, then version major 3 if the second byte came.
pub fn tls_like_prefix(h: &[u8]) -> bool {
    match *h {
        [ct] => ContentType(ct).is_known(),
        [ct, major, ..] => ContentType(ct).is_known() && major == 3,
        [] => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_of_known_types_and_versions_are_plausible() {
        assert!(plausible_header(&[22, 3, 1, 0x02, 0x00]));
        assert!(!plausible_header(&[22, 3, 1, 0x50, 0x00]), "too long");
        assert!(!plausible_header(b"GET /"));
        assert!(!plausible_header(&[22, 3, 1]));
        let h = Header::tls(&[23, 3, 3, 0, 40]).expect("header");
        assert_eq!(h.content_type, ContentType::APPLICATION_DATA);
        assert_eq!((h.version, h.len, h.wire_len()), (0x0303, 40, 45));
    }

    #[test]
    fn sslv2_client_hello_header() {
        let h = Header::sslv2_hello(&[0x80, 0x2e, 1, 0, 2]).expect("sslv2");
        assert_eq!(
            (h.content_type, h.len, h.wire_len()),
            (ContentType::SSLV2, 0x2e, 0x30)
        );
        assert!(Header::sslv2_hello(&[0x16, 3, 1, 0, 2]).is_none());
    }

    #[test]
    fn unknown_content_types_stay_readable() {
        assert_eq!(format!("{:?}", ContentType(99)), "ContentType(99)");
        assert_eq!(format!("{:?}", ContentType::ALERT), "alert");
    }

    #[test]
    fn short_prefixes() {
        assert!(tls_like_prefix(&[22]) && tls_like_prefix(&[21, 3, 1]));
        assert!(!tls_like_prefix(b"HT") && !tls_like_prefix(&[22, 2]));
    }
}
