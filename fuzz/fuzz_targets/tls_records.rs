//! Fuzz target `tls_records`: the TLS record layer and the link/IP decoder on their own.
//!
//! Input format (so the fuzzer can build two interleaved directions with gaps):
//! a sequence of chunks, each `[ctl, len_lo, len_hi, bytes...]`; `ctl & 1` is the direction,
//! `ctl & 2` means "`len` bytes were not captured" (`TlsConn::missing`) instead of data. A
//! short final chunk takes what is left. The whole input is also decoded as a frame of link
//! types 1 (Ethernet), 113 (SLL), 276 (SLL2), 101 (raw IP) and 0 (NULL), and fragments are
//! pushed through the defragmenter.
//!
//! Run from /work/main/fuzz (see Cargo.toml for details):
//!   ./seed.sh
//!   RUSTC_BOOTSTRAP=1 cargo fuzz run -a tls_records -- -max_total_time=1800 -timeout=10 \
//!       -rss_limit_mb=2048
//! Seeds: the TCP payloads of ../samples, in the chunk format above (seed.sh makes them).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tlsdiag::capture::FrameRef;
use tlsdiag::wire::{decode, Decoded, LinkMeta};
use tlsdiag::wire::defrag::Defragmenter;
use tlsdiag::tls::TlsConn;

fuzz_target!(|data: &[u8]| {
    let mut conn = TlsConn::new();
    let mut rest = data;
    let mut frame = 0u64;
    let mut first_at: [Option<FrameRef>; 2] = [None, None];
    while let Some((&ctl, tail)) = rest.split_first() {
        frame += 1;
        let at = FrameRef::new(0, frame, frame as i64 * 1_000_000);
        let d = usize::from(ctl & 1);
        let len = match tail {
            [lo, hi, ..] => usize::from(u16::from_le_bytes([*lo, *hi])),
            _ => tail.len(),
        };
        let tail = tail.get(2..).unwrap_or(&[]);
        first_at[d].get_or_insert(at);
        if ctl & 2 != 0 {
            conn.missing(d, len as u64, at);
            rest = tail;
        } else {
            let n = len.min(tail.len());
            conn.feed(d, &tail[..n], at);
            rest = &tail[n..];
        }
        let _ = conn.wants(d);
    }
    conn.finish(first_at);
    let _ = conn.facts.negotiated_version();

    let mut defrag = Defragmenter::new();
    for (i, lt) in [1u32, 113, 276, 101, 0].into_iter().enumerate() {
        let mut meta = LinkMeta::default();
        if let Decoded::Fragment(f) = decode(lt, data, &mut meta) {
            let _ = defrag.push(i as i64, &f);
        }
    }
});
