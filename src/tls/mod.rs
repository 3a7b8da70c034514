//! TLS: records and handshake messages over the reassembled prefix of each direction.
//!
//! Reads, in the order bytes pass through them: [`record`] (record framing, content types,
//! non-TLS detection), [`handshake`] (messages joined across records), [`hello`] (ClientHello
//! and ServerHello, with [`ja4`]), [`certificate`] (the TLS <= 1.2 leaf). [`TlsConn`] drives
//! them per direction and keeps what they teach in [`TlsFacts`]: raw wire values, handed on
//! to `diagnose`, which names, escapes and formats them for people.

pub mod certificate;
mod codec;
mod conn;
pub mod decrypt;
pub mod extension;
mod facts;
pub mod handshake;
pub mod hello;
pub mod ja4;
pub mod keylog;
mod memo;
pub mod names;
mod protected;
pub mod record;

pub use conn::TlsConn;
pub use facts::{AfterClientFinished, AlertFact, ClientCertFacts, NonTls, TlsFacts, PREVIEW_LEN};
pub use handshake::MAX_HANDSHAKE_MSG;
pub use keylog::KeyLog;
pub use protected::Decryption;
pub use record::SHORT_ENCRYPTED;
