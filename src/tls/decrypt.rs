//! Record protection: the keys of one direction and epoch, and opening its protected records.
//!
//! Takes secrets from [`super::keylog`] and derives record keys with the TLS 1.3 key schedule
//! (RFC 8446 7.3, HKDF-Expand-Label) or the TLS 1.2 PRF (RFC 5246 6.3), then opens AEAD
//! records: AES-GCM (RFC 5288, RFC 8446) and ChaCha20-Poly1305 (RFC 7905, RFC 8446). The
//! ciphers, hashes, HKDF and HMAC are the RustCrypto crates; nothing cryptographic is written
//! here. Only used when keys were given; `Debug` never shows a key.

use std::fmt;

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes128Gcm, Aes256Gcm};
use chacha20poly1305::ChaCha20Poly1305;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha384};

/// The largest record body opened: 2^14 bytes of plaintext plus 256 of expansion (RFC 8446 5.2).
pub const MAX_BODY: usize = (1 << 14) + 256;

/// The AEAD tag length of every supported suite.
const TAG_LEN: usize = 16;

/// The explicit nonce that starts a TLS 1.2 AES-GCM record body (RFC 5288 3).
const EXPLICIT_NONCE_LEN: usize = 8;

/// An AEAD algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aead {
    Aes128Gcm,
    Aes256Gcm,
    ChaCha20Poly1305,
}

/// The hash of the key schedule (TLS 1.3) or of the PRF (TLS 1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hash {
    Sha256,
    Sha384,
}

/// What a cipher suite needs to open its records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Suite {
    pub aead: Aead,
    pub hash: Hash,
    /// A TLS 1.3 suite (0x13xx): records carry an inner content type, keys come from HKDF.
    pub tls13: bool,
}

impl Suite {
    fn key_len(self) -> usize {
        match self.aead {
            Aead::Aes128Gcm => 16,
            Aead::Aes256Gcm | Aead::ChaCha20Poly1305 => 32,
        }
    }

    fn hash_len(self) -> usize {
        match self.hash {
            Hash::Sha256 => 32,
            Hash::Sha384 => 48,
        }
    }

    /// The TLS 1.2 fixed IV: a 4-byte salt for AES-GCM, the whole 12-byte nonce for ChaCha.
    fn tls12_iv_len(self) -> usize {
        match self.aead {
            Aead::Aes128Gcm | Aead::Aes256Gcm => 4,
            Aead::ChaCha20Poly1305 => 12,
        }
    }
}

/// What a cipher suite needs: AEAD and hash. None for suites not supported (CBC, CCM, etc.).
pub fn suite(cipher_suite: u16) -> Option<Suite> {
    use Aead::*;
    use Hash::*;
    let (aead, hash, tls13) = match cipher_suite {
        0x1301 => (Aes128Gcm, Sha256, true),
        0x1302 => (Aes256Gcm, Sha384, true),
        0x1303 => (ChaCha20Poly1305, Sha256, true),
        // RFC 5288 (RSA, DHE, DH, anon), RFC 5487 (PSK), RFC 5289 (ECDHE, ECDH), RFC 8442
        // (ECDHE_PSK): AES_128_GCM_SHA256 at even codes, AES_256_GCM_SHA384 at odd ones.
        0x009C | 0x009E | 0x00A0 | 0x00A2 | 0x00A4 | 0x00A6 | 0x00A8 | 0x00AA | 0x00AC => {
            (Aes128Gcm, Sha256, false)
        }
        0x009D | 0x009F | 0x00A1 | 0x00A3 | 0x00A5 | 0x00A7 | 0x00A9 | 0x00AB | 0x00AD => {
            (Aes256Gcm, Sha384, false)
        }
        0xC02B | 0xC02D | 0xC02F | 0xC031 | 0xD001 => (Aes128Gcm, Sha256, false),
        0xC02C | 0xC02E | 0xC030 | 0xC032 | 0xD002 => (Aes256Gcm, Sha384, false),
        // RFC 7905: ECDHE_RSA, ECDHE_ECDSA, DHE_RSA, PSK, ECDHE_PSK, DHE_PSK, RSA_PSK.
        0xCCA8..=0xCCAE => (ChaCha20Poly1305, Sha256, false),
        _ => return None,
    };
    Some(Suite { aead, hash, tls13 })
}

/// One AEAD keyed for one direction.
enum Cipher {
    Aes128(Box<Aes128Gcm>),
    Aes256(Box<Aes256Gcm>),
    ChaCha(Box<ChaCha20Poly1305>),
}

impl Cipher {
    fn new(aead: Aead, key: &[u8]) -> Option<Cipher> {
        Some(match aead {
            Aead::Aes128Gcm => Cipher::Aes128(Box::new(Aes128Gcm::new_from_slice(key).ok()?)),
            Aead::Aes256Gcm => Cipher::Aes256(Box::new(Aes256Gcm::new_from_slice(key).ok()?)),
            Aead::ChaCha20Poly1305 => {
                Cipher::ChaCha(Box::new(ChaCha20Poly1305::new_from_slice(key).ok()?))
            }
        })
    }

    /// Decrypts `buf` in place and checks `tag`.
    fn open(&self, nonce: [u8; 12], aad: &[u8], buf: &mut [u8], tag: [u8; 16]) -> bool {
        let nonce = nonce.into();
        let tag = tag.into();
        match self {
            Cipher::Aes128(c) => c.decrypt_in_place_detached(&nonce, aad, buf, &tag).is_ok(),
            Cipher::Aes256(c) => c.decrypt_in_place_detached(&nonce, aad, buf, &tag).is_ok(),
            Cipher::ChaCha(c) => c.decrypt_in_place_detached(&nonce, aad, buf, &tag).is_ok(),
        }
    }
}

/// Keys of one direction for one epoch, with its record sequence number.
pub struct RecordKeys {
    suite: Suite,
    cipher: Cipher,
    /// TLS 1.3 and TLS 1.2 ChaCha: the 12-byte IV XORed with the sequence number; TLS 1.2
    /// AES-GCM: the 4-byte salt in the first bytes.
    iv: [u8; 12],
    seq: u64,
}

/// A record opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// TLS 1.3: the inner content type; TLS 1.2: the record header's.
    pub content_type: u8,
    /// TLS 1.3: without the inner content type and the zero padding.
    pub plaintext: Vec<u8>,
}

/// Why a record did not open. The sequence number is then left as it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// Shorter than the AEAD's tag (and explicit nonce, or inner content type).
    TooShort,
    /// Longer than [`MAX_BODY`]; refused before any work.
    TooLong,
    /// The tag did not verify: wrong keys, wrong sequence number, or a corrupted record.
    Auth,
    /// TLS 1.3: the plaintext was all zeros, so it has no inner content type.
    NoContentType,
}

impl RecordKeys {
    /// TLS 1.3 (RFC 8446 7.3): key = HKDF-Expand-Label(secret, "key", "", key_len), iv =
    /// HKDF-Expand-Label(secret, "iv", "", 12). None for a TLS 1.2 suite or a secret whose
    /// length is not the suite's hash length.
    pub fn tls13(suite: Suite, traffic_secret: &[u8]) -> Option<RecordKeys> {
        if !suite.tls13 || traffic_secret.len() != suite.hash_len() {
            return None;
        }
        let key = expand_label(suite.hash, traffic_secret, b"key", suite.key_len())?;
        let iv = expand_label(suite.hash, traffic_secret, b"iv", 12)?;
        Some(RecordKeys {
            suite,
            cipher: Cipher::new(suite.aead, &key)?,
            iv: iv.as_slice().try_into().ok()?,
            seq: 0,
        })
    }

    /// TLS 1.2 (RFC 5246 6.3, RFC 5288, RFC 7905): key_block = PRF(master, "key expansion",
    /// server_random + client_random) with the suite's PRF hash (SHA-256, or SHA-384 for
    /// *_SHA384); `client_writes` picks the client_write or server_write half. None for a
    /// TLS 1.3 suite.
    pub fn tls12(
        suite: Suite,
        master: &[u8; 48],
        client_random: &[u8; 32],
        server_random: &[u8; 32],
        client_writes: bool,
    ) -> Option<RecordKeys> {
        if suite.tls13 {
            return None;
        }
        let (key_len, iv_len) = (suite.key_len(), suite.tls12_iv_len());
        let mut seed = Vec::with_capacity(13 + 64);
        seed.extend_from_slice(b"key expansion");
        seed.extend_from_slice(server_random);
        seed.extend_from_slice(client_random);
        let mut block = vec![0u8; 2 * (key_len + iv_len)];
        match suite.hash {
            Hash::Sha256 => p_hash::<Hmac<Sha256>>(master, &seed, &mut block)?,
            Hash::Sha384 => p_hash::<Hmac<Sha384>>(master, &seed, &mut block)?,
        }
        // client_write_key, server_write_key, client_write_IV, server_write_IV (6.3).
        let (key_at, iv_at) = if client_writes {
            (0, 2 * key_len)
        } else {
            (key_len, 2 * key_len + iv_len)
        };
        let key = block.get(key_at..key_at + key_len)?;
        let mut iv = [0u8; 12];
        iv.get_mut(..iv_len)?
            .copy_from_slice(block.get(iv_at..iv_at + iv_len)?);
        Some(RecordKeys {
            suite,
            cipher: Cipher::new(suite.aead, key)?,
            iv,
            seq: 0,
        })
    }

    /// Opens one protected record (its 5-byte header and body) and advances the sequence
    /// number. TLS 1.3: returns the inner content type and the plaintext with the zero
    /// padding removed. TLS 1.2 AES-GCM: 8-byte explicit nonce at the body's start, nonce =
    /// 4-byte salt || explicit; ChaCha20-Poly1305: nonce = iv XOR seq; AAD = seq(8) || type
    /// || version || plaintext length. Returns the outer content type for 1.2.
    ///
    /// On an error the sequence number is unchanged, so other keys can be tried on the same
    /// record (TLS 1.3 handshake or application keys); [`RecordKeys::skip`] passes it.
    pub fn open(&mut self, header: &[u8; 5], body: &[u8]) -> Result<Opened, OpenError> {
        if body.len() > MAX_BODY {
            return Err(OpenError::TooLong);
        }
        let opened = if self.suite.tls13 {
            self.open13(header, body)?
        } else {
            self.open12(header, body)?
        };
        self.seq = self.seq.wrapping_add(1);
        Ok(opened)
    }

    /// The sequence number of the next record.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Advances the sequence number without decrypting (a record not needed).
    pub fn skip(&mut self) {
        self.seq = self.seq.wrapping_add(1);
    }

    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// RFC 8446 5.2: the AAD is the record header; the inner plaintext ends with its content
    /// type followed by zeros.
    fn open13(&self, header: &[u8; 5], body: &[u8]) -> Result<Opened, OpenError> {
        if body.len() <= TAG_LEN {
            return Err(OpenError::TooShort);
        }
        let (sealed, tag) = split_tag(body)?;
        let mut buf = sealed.to_vec();
        if !self.cipher.open(self.xor_nonce(), header, &mut buf, tag) {
            return Err(OpenError::Auth);
        }
        let end = buf
            .iter()
            .rposition(|&b| b != 0)
            .ok_or(OpenError::NoContentType)?;
        let content_type = buf.get(end).copied().ok_or(OpenError::NoContentType)?;
        buf.truncate(end);
        Ok(Opened {
            content_type,
            plaintext: buf,
        })
    }

    /// RFC 5246 6.2.3.3 with RFC 5288 3 (AES-GCM) or RFC 7905 2 (ChaCha20-Poly1305).
    fn open12(&self, header: &[u8; 5], body: &[u8]) -> Result<Opened, OpenError> {
        let (nonce, rest) = match self.suite.aead {
            Aead::ChaCha20Poly1305 => (self.xor_nonce(), body),
            Aead::Aes128Gcm | Aead::Aes256Gcm => {
                let (explicit, rest) = body
                    .split_at_checked(EXPLICIT_NONCE_LEN)
                    .ok_or(OpenError::TooShort)?;
                let mut nonce = self.iv;
                for (n, e) in nonce.iter_mut().skip(4).zip(explicit) {
                    *n = *e;
                }
                (nonce, rest)
            }
        };
        let (sealed, tag) = split_tag(rest)?;
        let length = u16::try_from(sealed.len()).map_err(|_| OpenError::TooLong)?;
        let [content_type, major, minor, _, _] = *header;
        let mut aad = [0u8; 13];
        aad[..8].copy_from_slice(&self.seq.to_be_bytes());
        aad[8..].copy_from_slice(&[
            content_type,
            major,
            minor,
            (length >> 8) as u8,
            length as u8,
        ]);
        let mut buf = sealed.to_vec();
        if !self.cipher.open(nonce, &aad, &mut buf, tag) {
            return Err(OpenError::Auth);
        }
        Ok(Opened {
            content_type,
            plaintext: buf,
        })
    }

    /// The per-record nonce of RFC 8446 5.3 and RFC 7905 2: the IV XOR the padded sequence
    /// number.
    fn xor_nonce(&self) -> [u8; 12] {
        let mut nonce = self.iv;
        for (n, s) in nonce.iter_mut().skip(4).zip(self.seq.to_be_bytes()) {
            *n ^= s;
        }
        nonce
    }
}

/// Splits the 16-byte tag off the end.
fn split_tag(body: &[u8]) -> Result<(&[u8], [u8; TAG_LEN]), OpenError> {
    let at = body.len().checked_sub(TAG_LEN).ok_or(OpenError::TooShort)?;
    let (sealed, tag) = body.split_at_checked(at).ok_or(OpenError::TooShort)?;
    let tag = tag.try_into().map_err(|_| OpenError::TooShort)?;
    Ok((sealed, tag))
}

/// HKDF-Expand-Label(secret, label, "", len) of RFC 8446 7.1.
fn expand_label(hash: Hash, secret: &[u8], label: &[u8], len: usize) -> Option<Vec<u8>> {
    let mut info = Vec::with_capacity(10 + label.len());
    info.extend_from_slice(&u16::try_from(len).ok()?.to_be_bytes());
    info.push(u8::try_from(6 + label.len()).ok()?);
    info.extend_from_slice(b"tls13 ");
    info.extend_from_slice(label);
    info.push(0);
    let mut out = vec![0u8; len];
    match hash {
        Hash::Sha256 => Hkdf::<Sha256>::from_prk(secret)
            .ok()?
            .expand(&info, &mut out)
            .ok()?,
        Hash::Sha384 => Hkdf::<Sha384>::from_prk(secret)
            .ok()?
            .expand(&info, &mut out)
            .ok()?,
    }
    Some(out)
}

/// P_hash of RFC 5246 5: HMAC(secret, A(i) + seed) for A(0) = seed, A(i) = HMAC(secret,
/// A(i-1)), until `out` is full.
fn p_hash<M: Mac + KeyInit + Clone>(secret: &[u8], seed: &[u8], out: &mut [u8]) -> Option<()> {
    let keyed = <M as KeyInit>::new_from_slice(secret).ok()?;
    let mut a = keyed.clone().chain_update(seed).finalize().into_bytes();
    for chunk in out.chunks_mut(a.len()) {
        let block = keyed
            .clone()
            .chain_update(&a)
            .chain_update(seed)
            .finalize()
            .into_bytes();
        for (o, b) in chunk.iter_mut().zip(block.iter()) {
            *o = *b;
        }
        a = keyed.clone().chain_update(&a).finalize().into_bytes();
    }
    Some(())
}

impl fmt::Debug for RecordKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // By hand: keys and IVs never reach a log or an error message.
        f.debug_struct("RecordKeys")
            .field("suite", &self.suite)
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
        digits
            .chunks(2)
            .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
            .collect()
    }

    fn header(record: &[u8]) -> [u8; 5] {
        record[..5].try_into().unwrap()
    }

    fn array<const N: usize>(text: &str) -> [u8; N] {
        hex(text).try_into().unwrap()
    }

    // RFC 8448 section 3, "Simple 1-RTT Handshake" (TLS_AES_128_GCM_SHA256).
    const RFC8448_SERVER_HS_SECRET: &str = "b6 7b 7d 69 0c c1 6c 4e 75 e5 42 13 cb 2d 37 b4
        e9 c9 12 bc de d9 10 5d 42 be fd 59 d3 91 ad 38";
    const RFC8448_CLIENT_HS_SECRET: &str = "b3 ed db 12 6e 06 7f 35 a7 80 b3 ab f4 5e 2d 8f
        3b 1a 95 07 38 f5 2e 96 00 74 6a 0e 27 a5 5a 21";
    const RFC8448_CLIENT_FINISHED_RECORD: &str = "17 03 03 00 35 75 ec 4d c2 38 cc e6 0b 29 80
        44 a7 1e 21 9c 56 cc 77 b0 51 7f e9 b9 3c 7a 4b fc 44 d8 7f 38 f8 03 38 ac 98 fc 46 de
        b3 84 bd 1c ae ac ab 68 67 d7 26 c4 05 46";
    const RFC8448_CLIENT_FINISHED: &str = "14 00 00 20 a8 ec 43 6d 67 76 34 ae 52 5a c1 fc eb
        e1 1a 03 9e c1 76 94 fa c6 e9 85 27 b6 42 f2 ed d5 ce 61";

    #[test]
    fn suites_name_their_aead_and_hash() {
        let s = |aead, hash, tls13| Some(Suite { aead, hash, tls13 });
        assert_eq!(suite(0x1301), s(Aead::Aes128Gcm, Hash::Sha256, true));
        assert_eq!(suite(0x1302), s(Aead::Aes256Gcm, Hash::Sha384, true));
        assert_eq!(suite(0x1303), s(Aead::ChaCha20Poly1305, Hash::Sha256, true));
        assert_eq!(suite(0xC02F), s(Aead::Aes128Gcm, Hash::Sha256, false));
        assert_eq!(suite(0xC030), s(Aead::Aes256Gcm, Hash::Sha384, false));
        assert_eq!(suite(0x009D), s(Aead::Aes256Gcm, Hash::Sha384, false));
        assert_eq!(
            suite(0xCCA9),
            s(Aead::ChaCha20Poly1305, Hash::Sha256, false)
        );
        // CBC, CCM, ARIA-GCM and TLS 1.3 CCM are not supported.
        for code in [0x002F, 0xC013, 0xC0AC, 0x1304, 0xC050, 0xCCAF] {
            assert_eq!(suite(code), None, "{code:#06x}");
        }
    }

    #[test]
    fn tls13_keys_of_the_rfc_8448_server_handshake_secret() {
        let secret = hex(RFC8448_SERVER_HS_SECRET);
        let key = expand_label(Hash::Sha256, &secret, b"key", 16).unwrap();
        assert_eq!(key, hex("3f ce 51 60 09 c2 17 27 d0 f2 e4 e8 6e e4 03 bc"));
        let keys = RecordKeys::tls13(suite(0x1301).unwrap(), &secret).unwrap();
        assert_eq!(keys.iv.to_vec(), hex("5d 31 3e b2 67 12 76 ee 13 00 0b 30"));
        let secret = hex(RFC8448_CLIENT_HS_SECRET);
        let key = expand_label(Hash::Sha256, &secret, b"key", 16).unwrap();
        assert_eq!(key, hex("db fa a6 93 d1 76 2c 5b 66 6a f5 d9 50 25 8d 01"));
    }

    #[test]
    fn tls13_opens_the_rfc_8448_client_finished_record() {
        let secret = hex(RFC8448_CLIENT_HS_SECRET);
        let mut keys = RecordKeys::tls13(suite(0x1301).unwrap(), &secret).unwrap();
        let record = hex(RFC8448_CLIENT_FINISHED_RECORD);
        let opened = keys.open(&header(&record), &record[5..]).unwrap();
        assert_eq!(opened.content_type, 22);
        assert_eq!(opened.plaintext, hex(RFC8448_CLIENT_FINISHED));
        assert_eq!(keys.seq(), 1);
        // The same record again is at the wrong sequence number: refused, seq unchanged.
        assert_eq!(
            keys.open(&header(&record), &record[5..]),
            Err(OpenError::Auth)
        );
        assert_eq!(keys.seq(), 1);
    }

    #[test]
    fn tls13_keys_from_the_wrong_secret_do_not_open() {
        let secret = hex(RFC8448_SERVER_HS_SECRET);
        let mut keys = RecordKeys::tls13(suite(0x1301).unwrap(), &secret).unwrap();
        let record = hex(RFC8448_CLIENT_FINISHED_RECORD);
        assert_eq!(
            keys.open(&header(&record), &record[5..]),
            Err(OpenError::Auth)
        );
        assert_eq!(keys.seq(), 0);
    }

    #[test]
    fn tls13_close_notify_of_an_openssl_client_under_its_application_secret() {
        // openssl s_client 3.0 -tls1_3 (TLS_AES_256_GCM_SHA384), test keys from its key log:
        // the client's "hello\n" record (seq 0), then its encrypted close_notify (seq 1).
        let secret = hex(
            "925a0baa7d08b63f6f7f617ef695742d5911d8951888a5a37d8505850e56960f\
             e8d8973c970ee149180045c6c9ed0c12",
        );
        let record = hex("1703030013 63c9f3565b01902e96525f2e197746d3a430fc");
        let mut keys = RecordKeys::tls13(suite(0x1302).unwrap(), &secret).unwrap();
        assert_eq!(
            keys.open(&header(&record), &record[5..]),
            Err(OpenError::Auth)
        );
        keys.skip();
        let opened = keys.open(&header(&record), &record[5..]).unwrap();
        assert_eq!((opened.content_type, opened.plaintext), (21, vec![1, 0]));
        assert_eq!(keys.seq(), 2);
        // A 48-byte secret is not a SHA-256 suite's.
        assert!(RecordKeys::tls13(suite(0x1301).unwrap(), &secret).is_none());
    }

    /// A TLS 1.2 connection's key log line and the client's first two protected records.
    struct Tls12Vector {
        master: [u8; 48],
        client: [u8; 32],
        server: [u8; 32],
        finished: Vec<u8>,
        alert: Vec<u8>,
    }

    /// openssl s_server/s_client 3.0 -tls1_2 with test keys from the client's key log:
    /// master secret, client random, server random, then the client's Finished and
    /// close_notify records.
    fn openssl_tls12(code: u16) -> Tls12Vector {
        let texts = match code {
            0xC02F => [
                "c7b3538700d84c65f83819002a5b3c9dfd8c29e9f5dbba22d287ada60b065a18\
                 fba41d1fb32801663fe1c1200c68ec10",
                "738cd69956c47cdcee169422993a3978037ca7cb1d5868edfc16349f75c5cb8e",
                "a9d0c87bed81f79a3e87cbb952a71bf60f9c5d5aec768851444f574e47524401",
                "1603030028 754aca76ffb4c6e5631f481bda3fd2da9b4c95b802a11691f2852947f823b545\
                 d003cc729b4260e8",
                "150303001a 754aca76ffb4c6e6e2cbdb8829f919f9c5bd5df3b7d99cb5b773",
            ],
            _ => [
                "6a93355f29be06a1ccac0ba0aeb87143a905b0c82a955783db9939d13d951688\
                 c7754a87f859345712847f3f73a3bba0",
                "89043591c533479f9d27c0f3bc97eccd485970b0b74eb35032fda26c8c96b1a0",
                "11e61769f7705e7adbf80052fd3ba53e202849a0580bbfd4444f574e47524401",
                "1603030020 1afef8edde273dda9bd344389d7f9cdcc2c04cef670e74f5efbb6e37acdd0ae7",
                "1503030012 32b9e5e78398ff2f4742ec29821690cc0e85",
            ],
        };
        let [master, client, server, finished, alert] = texts;
        Tls12Vector {
            master: array(master),
            client: array(client),
            server: array(server),
            finished: hex(finished),
            alert: hex(alert),
        }
    }

    #[test]
    fn tls12_opens_openssl_client_finished_and_close_notify() {
        for code in [0xC02F, 0xCCA8] {
            let Tls12Vector {
                master,
                client,
                server,
                finished,
                alert,
            } = openssl_tls12(code);
            let suite = suite(code).unwrap();
            let mut keys = RecordKeys::tls12(suite, &master, &client, &server, true).unwrap();
            let opened = keys.open(&header(&finished), &finished[5..]).unwrap();
            assert_eq!(opened.content_type, 22, "{code:#06x}");
            // Finished: type 20, length 12 (verify_data).
            assert_eq!(opened.plaintext[..4], [20, 0, 0, 12], "{code:#06x}");
            assert_eq!(opened.plaintext.len(), 16, "{code:#06x}");
            let opened = keys.open(&header(&alert), &alert[5..]).unwrap();
            assert_eq!((opened.content_type, opened.plaintext), (21, vec![1, 0]));
            // The server's half of the key block does not open the client's records.
            let mut wrong = RecordKeys::tls12(suite, &master, &client, &server, false).unwrap();
            assert_eq!(
                wrong.open(&header(&finished), &finished[5..]),
                Err(OpenError::Auth)
            );
        }
    }

    #[test]
    fn tls12_truncated_forged_and_oversized_records_are_refused() {
        let Tls12Vector {
            master,
            client,
            server,
            finished,
            ..
        } = openssl_tls12(0xC02F);
        let suite = suite(0xC02F).unwrap();
        let mut keys = RecordKeys::tls12(suite, &master, &client, &server, true).unwrap();
        let h = header(&finished);
        assert_eq!(keys.open(&h, &finished[5..12]), Err(OpenError::TooShort));
        assert_eq!(
            keys.open(&h, &finished[5..5 + 8 + 15]),
            Err(OpenError::TooShort)
        );
        assert_eq!(
            keys.open(&h, &finished[5..finished.len() - 1]),
            Err(OpenError::Auth)
        );
        let mut forged = finished.clone();
        forged[20] ^= 1;
        assert_eq!(keys.open(&h, &forged[5..]), Err(OpenError::Auth));
        let mut other_type = h;
        other_type[0] = 23;
        assert_eq!(keys.open(&other_type, &finished[5..]), Err(OpenError::Auth));
        assert_eq!(
            keys.open(&h, &vec![0; MAX_BODY + 1]),
            Err(OpenError::TooLong)
        );
        assert_eq!(keys.seq(), 0);
        assert!(keys.open(&h, &finished[5..]).is_ok());
        assert!(RecordKeys::tls12(
            super::suite(0x1301).unwrap(),
            &master,
            &client,
            &server,
            true
        )
        .is_none());
    }

    impl RecordKeys {
        /// Seals like a TLS 1.3 peer: content, type, `padding` zeros; for round trips.
        fn seal13(&mut self, content_type: u8, content: &[u8], padding: usize) -> Vec<u8> {
            let mut buf = content.to_vec();
            buf.push(content_type);
            buf.resize(buf.len() + padding, 0);
            let len = (buf.len() + TAG_LEN) as u16;
            let mut record = vec![23, 3, 3, (len >> 8) as u8, len as u8];
            let nonce = self.xor_nonce().into();
            let tag = match &self.cipher {
                Cipher::Aes128(c) => c.encrypt_in_place_detached(&nonce, &record, &mut buf),
                Cipher::Aes256(c) => c.encrypt_in_place_detached(&nonce, &record, &mut buf),
                Cipher::ChaCha(c) => c.encrypt_in_place_detached(&nonce, &record, &mut buf),
            }
            .unwrap();
            self.skip();
            record.extend_from_slice(&buf);
            record.extend_from_slice(&tag);
            record
        }
    }

    #[test]
    fn tls13_padding_is_removed_and_all_zero_plaintext_has_no_type() {
        for code in [0x1301, 0x1302, 0x1303] {
            let suite = suite(code).unwrap();
            let secret = vec![7u8; suite.hash_len()];
            let mut sealer = RecordKeys::tls13(suite, &secret).unwrap();
            let mut opener = RecordKeys::tls13(suite, &secret).unwrap();
            let padded = sealer.seal13(21, &[2, 116], 100);
            let opened = opener.open(&header(&padded), &padded[5..]).unwrap();
            assert_eq!(
                (opened.content_type, opened.plaintext),
                (21, vec![2, 116]),
                "{code:#x}"
            );
            let data = sealer.seal13(23, &[0, 0, 5, 0], 0);
            let opened = opener.open(&header(&data), &data[5..]).unwrap();
            assert_eq!(
                (opened.content_type, opened.plaintext),
                (23, vec![0, 0, 5, 0])
            );
            // Only zeros inside: sealed with "type" 0 and padding.
            let zeros = sealer.seal13(0, &[], 5);
            assert_eq!(
                opener.open(&header(&zeros), &zeros[5..]),
                Err(OpenError::NoContentType)
            );
            assert_eq!(
                opener.open(&header(&zeros), &zeros[5..21]),
                Err(OpenError::TooShort)
            );
            assert_eq!(opener.seq(), 2);
        }
    }

    #[test]
    fn debug_never_shows_the_iv() {
        let secret = hex(RFC8448_SERVER_HS_SECRET);
        let keys = RecordKeys::tls13(suite(0x1301).unwrap(), &secret).unwrap();
        let shown = format!("{keys:?} {keys:#?}");
        assert!(shown.contains("seq: 0"), "{shown}");
        for leak in ["5d313e", "5d, 31", "93, 49, 62", "3fce51", "63, 206, 81"] {
            assert!(!shown.to_lowercase().contains(leak), "{shown}");
        }
    }
}
