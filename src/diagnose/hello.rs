//! Hello: the report's form of what the TLS layer parsed (the ClientHello, the leaf
//! certificate).

use crate::model::{CertInfo, ClientHelloInfo};
use crate::tls::hello::{ClientHelloFacts, LeafCertificate};

/// The ClientHello as the report shows it.
pub(crate) fn client_hello(h: &ClientHelloFacts) -> ClientHelloInfo {
    h.info()
}

/// The leaf certificate as the report shows it, when it was parsed.
pub(crate) fn certificate(c: &LeafCertificate) -> Option<CertInfo> {
    c.info()
}
