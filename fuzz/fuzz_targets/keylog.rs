//! Fuzz target `keylog`: key log parsing and record decryption on garbled input.
//!
//! Input format: `[sel, klen_lo, klen_hi, keylog (klen bytes), keys (112 bytes), records...]`.
//! The key log text goes to `KeyLog::add_text`. `sel` picks the cipher suite (its index in
//! `SUITES`) and, in bit 7, the direction. The 112 key bytes are a 48-byte secret (TLS 1.3
//! traffic secret, cut to the hash length, or TLS 1.2 master secret), then the client and the
//! server random; when the key log holds secrets for that client random, they are used
//! instead, so garbled and valid logs both reach decryption. Records follow as
//! `[header (5), len_lo, len_hi, body (len bytes)]`; a short final record takes what is left.
//! Each record is opened; when that fails it is skipped every other time, so both the
//! sequence-number paths and wrong keys are exercised.
//!
//! Run from /work/main/fuzz (see Cargo.toml for details):
//!   RUSTC_BOOTSTRAP=1 cargo fuzz run -a keylog -- -max_total_time=1800 -timeout=10 \
//!       -rss_limit_mb=2048
//! Seeds: none needed; a line like `CLIENT_RANDOM <64 hex> <96 hex>` helps the key log half.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tlsdiag::tls::decrypt::{suite, Hash, RecordKeys};
use tlsdiag::tls::keylog::{KeyLog, Secrets};

const SUITES: [u16; 8] = [
    0x1301, 0x1302, 0x1303, 0xC02F, 0xC030, 0xCCA8, 0x009C, 0x0000,
];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let (klen, rest) = match rest {
        [lo, hi, tail @ ..] => (usize::from(u16::from_le_bytes([*lo, *hi])), tail),
        _ => return,
    };
    let (text, rest) = rest.split_at(klen.min(rest.len()));
    let mut log = KeyLog::new();
    let loaded = log.add_text(text);
    assert!(log.len() <= loaded.entries);
    let _ = format!("{log:?}");

    let Some((keys, records)) = rest.split_first_chunk::<112>() else {
        return;
    };
    let client_writes = sel & 0x80 != 0;
    let Some(keys) = record_keys(usize::from(sel & 0x7f), keys, &log, client_writes) else {
        return;
    };
    open_all(keys, records);
});

/// Keys from the key log when it has the client random, else from the raw key bytes.
fn record_keys(sel: usize, keys: &[u8; 112], log: &KeyLog, client: bool) -> Option<RecordKeys> {
    let suite = suite(*SUITES.get(sel % SUITES.len())?)?;
    let (secret, randoms) = keys.split_first_chunk::<48>()?;
    let (client_random, server_random) = randoms.split_first_chunk::<32>()?;
    let server_random: &[u8; 32] = server_random.try_into().ok()?;
    let logged = log.get(client_random).cloned().unwrap_or_default();
    let _ = format!("{logged:?}");
    if suite.tls13 {
        let Secrets {
            client_app,
            server_handshake,
            ..
        } = logged;
        let hash_len = if suite.hash == Hash::Sha384 { 48 } else { 32 };
        let chosen = if client { client_app } else { server_handshake };
        let chosen = chosen.unwrap_or_else(|| secret[..hash_len].to_vec());
        RecordKeys::tls13(suite, &chosen)
    } else {
        let master = logged.master.unwrap_or(*secret);
        RecordKeys::tls12(suite, &master, client_random, server_random, client)
    }
}

fn open_all(mut keys: RecordKeys, mut rest: &[u8]) {
    let mut failures = 0u32;
    while let Some((header, tail)) = rest.split_first_chunk::<5>() {
        let (len, tail) = match tail {
            [lo, hi, body @ ..] => (usize::from(u16::from_le_bytes([*lo, *hi])), body),
            _ => (tail.len(), &[][..]),
        };
        let (body, tail) = tail.split_at(len.min(tail.len()));
        let before = keys.seq();
        match keys.open(header, body) {
            Ok(opened) => {
                assert_eq!(keys.seq(), before.wrapping_add(1));
                assert!(opened.plaintext.len() <= body.len());
            }
            Err(_) => {
                assert_eq!(keys.seq(), before);
                failures += 1;
                if failures % 2 == 0 {
                    keys.skip();
                }
            }
        }
        rest = tail;
    }
    let _ = format!("{keys:?}");
}
