//! Certificate: the leaf of a TLS <= 1.2 Certificate message, kept as DER on the packet path
//! and shared between connections; what X.509 says about it ([`LeafFacts`]) is read when the
//! connection is summarised, as raw values (text for people is made in `diagnose`).

use super::memo::memo;
use rustc_hash::{FxHashMap, FxHashSet};
use std::cell::RefCell;
use std::sync::Arc;
use tls_parser::{TlsMessage, TlsMessageHandshake};

/// The leaf certificate of a Certificate message, kept as DER: X.509 parsing is left to
/// [`LeafCertificate::facts`], which runs when the connection is summarised, off the packet
/// path. Connections that received the same leaf share one copy of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafCertificate {
    der: Arc<[u8]>,
    chain_length: usize,
}

/// What a leaf certificate says, as read (names unescaped, times in Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafFacts {
    /// Subject and issuer in x509-parser's RFC 4514-like form.
    pub subject: String,
    pub issuer: String,
    pub not_before: i64,
    pub not_after: i64,
    /// The subject's first common name, when it has one (names are matched against it only
    /// when there is no DNS name).
    pub common_name: Option<String>,
    /// Subject alternative DNS names (at most [`MAX_DNS_NAMES`]).
    pub dns_names: Vec<String>,
    /// Self-issued (subject == issuer) and, when both key identifiers are present, signed by
    /// its own key (authority key id == subject key id). The signature itself is not
    /// verified: that needs a crypto backend this crate does not carry.
    pub self_signed: bool,
}

/// Subject alternative DNS names kept per leaf.
pub const MAX_DNS_NAMES: usize = 8;

/// Distinct leaves the packet thread shares between connections; when full, leaves no live
/// connection holds any more are forgotten (and all of them if every one is still held).
const SHARED_LEAVES_MAX: usize = 256;

thread_local! {
    static SHARED_LEAVES: RefCell<FxHashSet<Arc<[u8]>>> = RefCell::new(Default::default());
}

/// `der` as a shared copy: the one already kept by this thread, or a new one it keeps.
fn shared_leaf(der: &[u8]) -> Arc<[u8]> {
    SHARED_LEAVES.with(|set| {
        let Ok(mut set) = set.try_borrow_mut() else {
            return Arc::from(der);
        };
        if let Some(a) = set.get(der) {
            return Arc::clone(a);
        }
        if set.len() >= SHARED_LEAVES_MAX {
            set.retain(|a| Arc::strong_count(a) > 1);
            if set.len() >= SHARED_LEAVES_MAX {
                set.clear();
            }
        }
        let a: Arc<[u8]> = Arc::from(der);
        set.insert(Arc::clone(&a));
        a
    })
}

/// Frames a complete Certificate handshake message and keeps its leaf.
pub fn leaf_certificate(msg: &[u8]) -> Option<LeafCertificate> {
    let (_, parsed) = tls_parser::parse_tls_message_handshake(msg).ok()?;
    let TlsMessage::Handshake(TlsMessageHandshake::Certificate(cc)) = parsed else {
        return None;
    };
    let leaf = cc.cert_chain.first()?;
    Some(LeafCertificate {
        der: shared_leaf(leaf.data),
        chain_length: cc.cert_chain.len(),
    })
}

/// Reads a 24-bit length and that many bytes.
fn vec_u24<'a>(c: &mut super::codec::Cursor<'a>) -> Option<&'a [u8]> {
    let len = c.take(3)?;
    let n = usize::from(len[0]) << 16 | usize::from(len[1]) << 8 | usize::from(len[2]);
    c.take(n)
}

/// Frames a complete TLS 1.3 Certificate message (RFC 8446 4.4.2: a request context, then
/// entries of certificate data and extensions) and keeps its leaf. An empty list (a client
/// with no certificate) gives a leaf-less record with a chain length of 0.
pub fn leaf_certificate_tls13(msg: &[u8]) -> Option<LeafCertificate> {
    let mut c = super::codec::Cursor::new(msg);
    if c.u8()? != 11 {
        return None;
    }
    let body = vec_u24(&mut c)?;
    let mut c = super::codec::Cursor::new(body);
    c.vec_u8()?;
    let mut list = super::codec::Cursor::new(vec_u24(&mut c)?);
    let mut leaf: Option<&[u8]> = None;
    let mut chain_length = 0;
    while !list.is_empty() {
        let der = vec_u24(&mut list)?;
        list.vec_u16()?;
        leaf.get_or_insert(der);
        chain_length += 1;
    }
    Some(LeafCertificate {
        der: shared_leaf(leaf.unwrap_or_default()),
        chain_length,
    })
}

/// Distinct leaf certificates remembered per thread. A gateway talks to a handful of
/// backends, each presenting the same leaf on every connection: parsing it once per
/// connection was a sixth of the summarising thread.
const CERT_CACHE_MAX: usize = 256;

/// Leaf DER to what it says (`None`: not X.509).
type CertCache = FxHashMap<Arc<[u8]>, Option<Arc<LeafFacts>>>;

thread_local! {
    static CERT_CACHE: RefCell<CertCache> = RefCell::new(FxHashMap::default());
}

impl LeafCertificate {
    /// What the leaf says; `None` if it is not a well-formed X.509 certificate.
    pub fn facts(&self) -> Option<Arc<LeafFacts>> {
        memo(
            &CERT_CACHE,
            &*self.der,
            CERT_CACHE_MAX,
            || Arc::clone(&self.der),
            || parse_leaf(&self.der).map(Arc::new),
        )
    }

    /// Certificates in the chain the leaf came in.
    pub fn chain_length(&self) -> usize {
        self.chain_length
    }
}

/// Parses a leaf certificate's DER.
fn parse_leaf(der: &[u8]) -> Option<LeafFacts> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let mut dns_names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(d) = n {
                if dns_names.len() < MAX_DNS_NAMES {
                    dns_names.push((*d).to_owned());
                }
            }
        }
    }
    let common_name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned);
    let self_signed = cert.subject() == cert.issuer() && own_key_signed(&cert);
    Some(LeafFacts {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        common_name,
        dns_names,
        self_signed,
    })
}

/// Whether the authority key id names the certificate's own key (true when either id is
/// absent: then nothing says otherwise).
fn own_key_signed(cert: &x509_parser::certificate::X509Certificate<'_>) -> bool {
    use x509_parser::extensions::ParsedExtension;
    let (mut ski, mut aki) = (None, None);
    for e in cert.extensions() {
        match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => ski = Some(k.0),
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                aki = a.key_identifier.as_ref().map(|k| k.0)
            }
            _ => {}
        }
    }
    match (ski, aki) {
        (Some(s), Some(a)) => s == a,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_that_is_not_a_certificate_has_no_leaf() {
        assert!(leaf_certificate(&[11, 0, 0, 0]).is_none());
        assert!(leaf_certificate(&[2, 0, 0, 2, 3, 3]).is_none());
    }

    /// Made by tests/certificates/make.py.
    const EXPIRED_LEAF: &[u8] = include_bytes!("../../tests/certificates/expired_leaf.der");
    const INTERMEDIATE: &[u8] = include_bytes!("../../tests/certificates/intermediate.der");
    const SELF_ISSUED: &[u8] = include_bytes!("../../tests/certificates/self_issued_other_key.der");

    #[test]
    fn a_leaf_gives_its_names_dates_and_common_name() {
        let f = parse_leaf(EXPIRED_LEAF).expect("parses");
        assert_eq!(f.subject, "O=Lab, CN=api.example.test");
        assert_eq!(f.issuer, "CN=Lab Intermediate");
        assert_eq!(f.common_name.as_deref(), Some("api.example.test"));
        assert_eq!(f.dns_names, ["*.example.test"]);
        // 2023-01-01 and 2024-01-01.
        assert_eq!((f.not_before, f.not_after), (1_672_531_200, 1_704_067_200));
        assert!(!f.self_signed);
    }

    #[test]
    fn self_issued_is_self_signed_only_when_the_key_ids_agree() {
        // Subject and issuer differ.
        assert!(!parse_leaf(INTERMEDIATE).expect("parses").self_signed);
        // Subject == issuer, but the authority key id names another key.
        let f = parse_leaf(SELF_ISSUED).expect("parses");
        assert_eq!(f.subject, f.issuer);
        assert!(!f.self_signed);
    }

    #[test]
    fn leaves_with_the_same_bytes_are_shared_and_bad_der_has_no_facts() {
        // Certificate message: chain of one 3-byte "certificate".
        let msg = [11, 0, 0, 9, 0, 0, 6, 0, 0, 3, 0x30, 0x01, 0x00];
        let a = leaf_certificate(&msg).expect("leaf");
        let b = leaf_certificate(&msg).expect("leaf");
        assert!(Arc::ptr_eq(&a.der, &b.der));
        assert_eq!(a.chain_length(), 1);
        assert!(a.facts().is_none());
    }

    #[test]
    fn tls13_certificate_entries_carry_extensions_and_an_empty_list_has_no_chain() {
        // context length 0; one entry: 3-byte "certificate", no extensions; then a second.
        let msg = [
            11, 0, 0, 18, 0, 0, 0, 14, 0, 0, 3, 0x30, 0x01, 0x00, 0, 0, 0, 0, 1, 7, 0, 0,
        ];
        let leaf = leaf_certificate_tls13(&msg).expect("leaf");
        assert_eq!(leaf.chain_length(), 2);
        assert_eq!(&*leaf.der, &[0x30, 0x01, 0x00]);
        let empty = leaf_certificate_tls13(&[11, 0, 0, 4, 0, 0, 0, 0]).expect("empty");
        assert_eq!(empty.chain_length(), 0);
        // A TLS 1.2-shaped message (no context byte) does not frame as TLS 1.3.
        assert!(
            leaf_certificate_tls13(&[11, 0, 0, 9, 0, 0, 6, 0, 0, 3, 0x30, 0x01, 0x00]).is_none()
        );
    }
}
