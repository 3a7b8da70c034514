//! Store: settled connections, kept in memory up to a bound and spilled to a temporary file
//! beyond it, read back in first-frame order.
//!
//! This is what keeps memory proportional to the connections open at once rather than to the
//! capture's size: a connection is summarised and stored as soon as its outcome is settled, its
//! packet state freed, and once the in-memory batch has been spilled (postcard, a compact serde
//! encoding) only its index entry stays in memory. Index entries are themselves written out in
//! sorted runs of [`INDEX_RUN`] and merged into one sorted index on disk at the end (an
//! external merge sort), so a capture of millions of connections needs a few MiB, not 40 bytes
//! per connection. The file is removed when the store is dropped.

use crate::diagnose::verdict::{ConnFacts, Side};
use crate::model::Connection;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

/// A settled connection: its record, the facts its verdict is decided from, and what it said
/// about the capture point.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// Whether the connection failed (its verdict code's `is_failure`). First, so a reader
    /// can skip the rest of a connection it does not report ([`Store::get_failed`]).
    pub failed: bool,
    /// Where it goes in the output: file, first frame, stream.
    pub order: Key,
    pub body: Body,
    /// The facts its verdict is worded from once the capture's capture point is decided; None
    /// when it was worded already, its own capture point known when it settled.
    pub facts: Option<ConnFacts>,
    pub evidence: Side,
    /// The packets, kept only when asked for (`Options::trace`).
    pub trace: Option<crate::model::Trace>,
}

/// Order of output: file, first frame, stream.
pub type Key = (usize, u64, u64);

/// The connection as it will be reported, all but the capture-point wording (verdict,
/// explanation, next step, capture point), which waits until the whole capture was read.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Body {
    Model(Box<Connection>),
    /// Its compact JSON text, for a JSON report written by copying: the capture-point fields
    /// (from `"verdict"` to `"vantage"`) are cut out and go between `text[..gap.0]` and
    /// `text[gap.1..]`.
    Json {
        #[serde(with = "raw")]
        text: Box<[u8]>,
        gap: (u32, u32),
    },
    /// Its complete compact JSON text: its capture point was known when it settled (its own
    /// evidence, or `--vantage`), so its wording was too and nothing waits for the end.
    Final(#[serde(with = "raw")] Box<[u8]>),
}

/// JSON text kept as bytes, written as one byte string: the writer made it from `str`s, so it
/// is not checked for UTF-8 again on its way in and out of the spill file (that was 2 % of a
/// report's instructions); it is only ever copied into the report, or parsed by `serde_json`,
/// which checks it.
mod raw {
    use serde::{de, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Box<[u8]>, D::Error> {
        struct Bytes;
        impl de::Visitor<'_> for Bytes {
            type Value = Box<[u8]>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("JSON text as bytes")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
                Ok(v.into())
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Self::Value, E> {
                Ok(v.into_boxed_slice())
            }
        }
        d.deserialize_byte_buf(Bytes)
    }
}

#[derive(Debug, Clone, Copy)]
enum Loc {
    Mem(usize),
    Disk { off: u64, len: u32 },
}

struct Spill {
    path: PathBuf,
    file: File,
    end: u64,
}

impl Drop for Spill {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Records in memory before a batch is spilled.
pub const DEFAULT_MEMORY_RECORDS: usize = 128;

/// Index entries in memory before they are written out as a sorted run (320 KiB).
pub const INDEX_RUN: usize = 1 << 13;

/// One index entry on disk: file, first frame, stream, record offset, record length.
const ENTRY: usize = 8 * 4 + 4;

fn encode(k: Key, off: u64, len: u32) -> [u8; ENTRY] {
    let mut b = [0u8; ENTRY];
    b[0..8].copy_from_slice(&(k.0 as u64).to_le_bytes());
    b[8..16].copy_from_slice(&k.1.to_le_bytes());
    b[16..24].copy_from_slice(&k.2.to_le_bytes());
    b[24..32].copy_from_slice(&off.to_le_bytes());
    b[32..36].copy_from_slice(&len.to_le_bytes());
    b
}

fn decode(b: &[u8]) -> Option<(Key, u64, u32)> {
    let u = |r: std::ops::Range<usize>| -> Option<u64> {
        Some(u64::from_le_bytes(b.get(r)?.try_into().ok()?))
    };
    let len = u32::from_le_bytes(b.get(32..36)?.try_into().ok()?);
    Some(((u(0..8)? as usize, u(8..16)?, u(16..24)?), u(24..32)?, len))
}

/// A sorted run of index entries in the spill file.
#[derive(Debug, Clone, Copy)]
struct Run {
    off: u64,
    count: u64,
}

pub struct Store {
    /// Entries not yet written out as a run (all of them, for small stores).
    index: Vec<(Key, Loc)>,
    /// Sorted runs written out; after `finish`, a single run holding the whole index.
    runs: Vec<Run>,
    on_disk: usize,
    index_run: usize,
    mem: Vec<Option<Record>>,
    /// Index position of each in-memory record.
    mem_pos: Vec<usize>,
    spill: Option<Spill>,
    /// Serialisation buffer, kept between batches.
    buf: Vec<u8>,
    limit: usize,
    sorted: bool,
    /// Tells this store's entries apart in a thread's read-ahead of the index.
    id: u64,
}

/// Index entries a reading thread takes from the spill file at once: records are read back in
/// index order, so one read serves the next 256 (one system call each saved).
const INDEX_AHEAD: u64 = 256;

thread_local! {
    /// This thread's read-ahead of an index run: (store id, run offset, first entry, entries).
    static AHEAD: std::cell::RefCell<(u64, u64, u64, Vec<u8>)> =
        const { std::cell::RefCell::new((0, 0, 0, Vec::new())) };
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("records", &self.index.len())
            .field("in_memory", &self.mem.len())
            .field("spilled", &self.spill.is_some())
            .finish()
    }
}

impl Default for Store {
    fn default() -> Self {
        Store::new(DEFAULT_MEMORY_RECORDS)
    }
}

impl Store {
    pub fn new(limit: usize) -> Self {
        Store::with_index_run(limit, INDEX_RUN)
    }

    /// A store writing its index out every `index_run` entries.
    pub fn with_index_run(limit: usize, index_run: usize) -> Self {
        Store {
            index: Vec::new(),
            runs: Vec::new(),
            on_disk: 0,
            index_run: index_run.max(1),
            mem: Vec::new(),
            mem_pos: Vec::new(),
            spill: None,
            buf: Vec::new(),
            limit: limit.max(1),
            sorted: true,
            id: {
                static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
                NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            },
        }
    }

    pub fn len(&self) -> usize {
        self.on_disk + self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether records went to disk.
    pub fn spilled(&self) -> bool {
        self.spill.is_some()
    }

    pub fn push(&mut self, r: Record) -> io::Result<()> {
        let key = r.order;
        if self.index.last().is_some_and(|(k, _)| *k > key) {
            self.sorted = false;
        }
        self.mem_pos.push(self.index.len());
        self.index.push((key, Loc::Mem(self.mem.len())));
        self.mem.push(Some(r));
        if self.mem.len() >= self.limit {
            self.flush()?;
        }
        if self.index.len() >= self.index_run {
            self.write_run()?;
        }
        Ok(())
    }

    /// Sorts the in-memory index entries (all on disk once flushed) and writes them as a run.
    fn write_run(&mut self) -> io::Result<()> {
        self.flush()?;
        self.index.sort_by_key(|(k, _)| *k);
        let Some(spill) = self.spill.as_mut() else {
            return Ok(());
        };
        let mut buf = Vec::with_capacity(self.index.len() * ENTRY);
        for (k, loc) in &self.index {
            let Loc::Disk { off, len } = *loc else {
                return Err(io::Error::other("index entry of a record not spilled"));
            };
            buf.extend_from_slice(&encode(*k, off, len));
        }
        spill.file.write_all_at(&buf, spill.end)?;
        self.runs.push(Run {
            off: spill.end,
            count: self.index.len() as u64,
        });
        spill.end += buf.len() as u64;
        self.on_disk += self.index.len();
        self.index.clear();
        self.index.shrink_to(self.index_run);
        Ok(())
    }

    /// Merges the runs into one sorted run at the end of the spill file.
    fn merge_runs(&mut self) -> io::Result<()> {
        if !self.index.is_empty() {
            self.write_run()?;
        }
        if self.runs.len() <= 1 {
            return Ok(());
        }
        let Some(spill) = self.spill.as_mut() else {
            return Ok(());
        };
        // Entries read at a time per run: up to 256 (9 KiB), fewer when there are many runs
        // so that all cursors together stay near 2 MiB (a 19M-connection flood: 2,300 runs
        // of 16 entries).
        let chunk: u64 = ((2 << 20) / ENTRY as u64 / self.runs.len() as u64).clamp(16, 256);
        struct Cursor {
            run: Run,
            next: u64,
            buf: Vec<u8>,
            pos: usize,
        }
        let fill = |c: &mut Cursor, f: &File| -> io::Result<()> {
            let n = chunk.min(c.run.count - c.next);
            c.buf.resize(n as usize * ENTRY, 0);
            f.read_exact_at(&mut c.buf, c.run.off + c.next * ENTRY as u64)?;
            c.next += n;
            c.pos = 0;
            Ok(())
        };
        let mut cursors = Vec::with_capacity(self.runs.len());
        let mut heap = std::collections::BinaryHeap::new();
        for run in &self.runs {
            let mut c = Cursor {
                run: *run,
                next: 0,
                buf: Vec::new(),
                pos: 0,
            };
            fill(&mut c, &spill.file)?;
            if let Some((k, _, _)) = decode(&c.buf) {
                heap.push(std::cmp::Reverse((k, cursors.len())));
            }
            cursors.push(c);
        }
        let start = spill.end;
        let mut out: Vec<u8> = Vec::with_capacity(256 * ENTRY * 4);
        let mut written = 0u64;
        while let Some(std::cmp::Reverse((_, i))) = heap.pop() {
            let Some(c) = cursors.get_mut(i) else {
                break;
            };
            out.extend_from_slice(c.buf.get(c.pos..c.pos + ENTRY).unwrap_or(&[]));
            written += 1;
            c.pos += ENTRY;
            if c.pos >= c.buf.len() && c.next < c.run.count {
                fill(c, &spill.file)?;
            }
            if let Some((k, _, _)) = c.buf.get(c.pos..).and_then(decode) {
                heap.push(std::cmp::Reverse((k, i)));
            }
            if out.len() >= out.capacity() - ENTRY {
                spill.file.write_all_at(&out, spill.end)?;
                spill.end += out.len() as u64;
                out.clear();
            }
        }
        spill.file.write_all_at(&out, spill.end)?;
        spill.end += out.len() as u64;
        self.runs = vec![Run {
            off: start,
            count: written,
        }];
        Ok(())
    }

    /// Writes the in-memory batch to the spill file.
    fn flush(&mut self) -> io::Result<()> {
        if self.spill.is_none() {
            let path = std::env::temp_dir().join(format!(
                "tlsdiag-{}-{}.spill",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0)
            ));
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)?;
            self.spill = Some(Spill { path, file, end: 0 });
        }
        let Some(spill) = self.spill.as_mut() else {
            return Ok(());
        };
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let mut locs = Vec::with_capacity(self.mem.len());
        for rec in self.mem.drain(..).flatten() {
            let start = buf.len();
            buf = postcard::to_extend(&rec, buf).map_err(io::Error::other)?;
            locs.push((spill.end + start as u64, (buf.len() - start) as u32));
        }
        spill.file.write_all_at(&buf, spill.end)?;
        spill.end += buf.len() as u64;
        self.buf = buf;
        for (pos, (off, len)) in self.mem_pos.drain(..).zip(locs) {
            if let Some(entry) = self.index.get_mut(pos) {
                entry.1 = Loc::Disk { off, len };
            }
        }
        Ok(())
    }

    /// Puts the index in output order; call once all records are in (no push after it).
    pub fn finish(&mut self) -> io::Result<()> {
        if !self.runs.is_empty() {
            self.merge_runs()?;
        } else if !self.sorted {
            self.index.sort_by_key(|(k, _)| *k);
            self.sorted = true;
        }
        self.mem_pos.clear();
        Ok(())
    }

    /// Reads record `i` (in output order once [`finish`](Self::finish) ran).
    pub fn get(&self, i: usize) -> io::Result<Record> {
        self.read(i, false)
            .and_then(|r| r.ok_or_else(|| io::Error::other("no such record")))
    }

    /// Reads record `i` if its connection failed; `None` if not, without reading the rest of
    /// it (a report of failures skips most connections).
    pub fn get_failed(&self, i: usize) -> io::Result<Option<Record>> {
        self.read(i, true)
    }

    fn read(&self, i: usize, failed_only: bool) -> io::Result<Option<Record>> {
        let loc = match self.runs.first() {
            None => self.index.get(i).map(|(_, l)| *l),
            Some(run) => {
                let spill = self
                    .spill
                    .as_ref()
                    .ok_or_else(|| io::Error::other("spill file missing"))?;
                if i as u64 >= run.count {
                    None
                } else {
                    self.index_entry(spill, *run, i as u64)?
                }
            }
        };
        match loc {
            Some(Loc::Mem(m)) => self
                .mem
                .get(m)
                .and_then(|r| r.as_ref())
                .map(|r| (!failed_only || r.failed).then(|| r.clone()))
                .ok_or_else(|| io::Error::other("record missing from memory")),
            Some(Loc::Disk { off, len }) => {
                let spill = self
                    .spill
                    .as_ref()
                    .ok_or_else(|| io::Error::other("spill file missing"))?;
                if failed_only {
                    // `failed` is the first field: one byte (postcard writes a bool as 0 or 1).
                    let mut first = [0u8; 1];
                    spill.file.read_exact_at(&mut first, off)?;
                    let failed: bool = postcard::from_bytes(&first).map_err(io::Error::other)?;
                    if !failed {
                        return Ok(None);
                    }
                }
                // Read into a per-thread buffer, reused: a report reads every record back,
                // and a fresh zeroed buffer for each was most of the reading's instructions.
                thread_local! {
                    static READ_BUF: std::cell::RefCell<Vec<u8>> =
                        const { std::cell::RefCell::new(Vec::new()) };
                }
                let decode = |buf: &mut Vec<u8>| -> io::Result<Option<Record>> {
                    let len = len as usize;
                    if buf.len() < len {
                        buf.resize(len, 0);
                    }
                    let bytes = &mut buf[..len];
                    spill.file.read_exact_at(bytes, off)?;
                    postcard::from_bytes(bytes)
                        .map_err(io::Error::other)
                        .map(Some)
                };
                READ_BUF.with(|b| match b.try_borrow_mut() {
                    Ok(mut buf) => {
                        let r = decode(&mut buf);
                        // A rare huge record (a long trace) does not stay allocated.
                        if buf.len() > 1 << 20 {
                            *buf = Vec::new();
                        }
                        r
                    }
                    Err(_) => decode(&mut Vec::new()),
                })
            }
            None => Err(io::Error::other("no such record")),
        }
    }

    /// Where entry `i` of an index run on disk points, read ahead with the entries after it.
    fn index_entry(&self, spill: &Spill, run: Run, i: u64) -> io::Result<Option<Loc>> {
        let at = |b: &[u8], k: u64| {
            let k = k as usize * ENTRY;
            b.get(k..k + ENTRY)
                .and_then(decode)
                .map(|(_, off, len)| Loc::Disk { off, len })
        };
        AHEAD.with(|ahead| {
            let Ok(mut ahead) = ahead.try_borrow_mut() else {
                let mut b = [0u8; ENTRY];
                spill
                    .file
                    .read_exact_at(&mut b, run.off + i * ENTRY as u64)?;
                return Ok(at(&b, 0));
            };
            let (id, off, first, bytes) = &mut *ahead;
            let held = (bytes.len() / ENTRY) as u64;
            if *id != self.id || *off != run.off || i < *first || i - *first >= held {
                let n = INDEX_AHEAD.min(run.count - i) as usize;
                bytes.resize(n * ENTRY, 0);
                spill
                    .file
                    .read_exact_at(bytes, run.off + i * ENTRY as u64)?;
                (*id, *off, *first) = (self.id, run.off, i);
            }
            Ok(at(bytes, i - *first))
        })
    }

    /// Flushes pending writes (no-op for memory-only stores).
    pub fn sync(&mut self) -> io::Result<()> {
        if let Some(s) = self.spill.as_mut() {
            s.file.flush()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Connection;

    fn record(stream: u64, first_frame: u64) -> Record {
        let json = format!(
            r#"{{"stream": {stream}, "client_ip": "10.0.0.1", "client_port": 1,
            "server_ip": "10.0.0.2", "server_port": 443, "client_inferred": false,
            "client_rule": "syn", "verdict": "tls_ok", "explanation": "", "next_step": "",
            "vantage": "unknown", "syn_count": 1, "syn_copies": 0, "synack_seen": true,
            "tcp_established": true,
            "clienthello_count": 1, "clienthello_copies": 0, "clienthello_acked": true,
            "serverhello_seen": true,
            "hello_retry_request": false, "tls_version": null, "cipher": null, "sni": null,
            "alpn": null, "ja4": null, "clienthello": null, "certificate": null, "alert": null,
            "server_first_bytes": null, "client_first_bytes": null, "http": null,
            "client_fin": null, "client_rst": null, "server_fin": null, "server_rst": null,
            "icmp": null, "first_frame": {first_frame}, "last_frame": {first_frame},
            "start_time": "", "duration_s": 0.0, "gave_up_after_s": null,
            "timeout_match": null, "client_retransmissions": 0, "server_retransmissions": 0,
            "server_payload_bytes": 0, "uncertain": [], "timeline": []}}"#
        );
        let conn: Connection = serde_json::from_str(&json).expect("valid connection");
        Record {
            failed: false,
            order: (0, first_frame, stream),
            body: Body::Model(Box::new(conn)),
            facts: Some(ConnFacts::default()),
            evidence: Side::Client,
            trace: None,
        }
    }

    #[test]
    fn spilled_records_come_back_in_first_frame_order() {
        let mut s = Store::new(3);
        for (stream, frame) in [(2, 30), (0, 10), (4, 50), (1, 20), (3, 40)] {
            s.push(record(stream, frame)).expect("push");
        }
        assert!(s.spilled());
        s.finish().expect("finish");
        let frames: Vec<u64> = (0..s.len())
            .map(|i| s.get(i).expect("read").order.1)
            .collect();
        assert_eq!(frames, vec![10, 20, 30, 40, 50]);
    }

    /// Only failed connections come back from `get_failed`, spilled or in memory, whole.
    #[test]
    fn failed_records_are_read_and_the_others_skipped() {
        for limit in [3, 100] {
            let mut s = Store::new(limit);
            for stream in 0..10u64 {
                let mut r = record(stream, stream + 1);
                r.failed = stream % 3 == 0;
                s.push(r).expect("push");
            }
            s.finish().expect("finish");
            assert_eq!(s.spilled(), limit == 3);
            let failed: Vec<u64> = (0..s.len())
                .filter_map(|i| s.get_failed(i).expect("read"))
                .map(|r| {
                    assert!(r.failed);
                    assert!(matches!(&r.body, Body::Model(c) if c.stream == r.order.2));
                    r.order.2
                })
                .collect();
            assert_eq!(failed, vec![0, 3, 6, 9]);
            assert!(s.get_failed(10).is_err());
        }
    }

    /// The read-ahead of index entries is per store and per position: two stores read in turn,
    /// backwards and by jumps on one thread, each record comes back right.
    #[test]
    fn index_read_ahead_serves_each_store_its_own_entries() {
        let build = |base: u64| {
            let mut s = Store::with_index_run(5, 40);
            for k in 0..700u64 {
                s.push(record(base + k, (k * 37) % 701 + 1)).expect("push");
            }
            s.finish().expect("finish");
            assert_eq!(s.runs.len(), 1);
            s
        };
        let (a, b) = (build(0), build(10_000));
        // (first frame, stream) of each store's records, in output order.
        let frames = |base: u64| -> Vec<(u64, u64)> {
            let mut keys: Vec<(u64, u64)> = (0..700u64)
                .map(|k| ((k * 37) % 701 + 1, base + k))
                .collect();
            keys.sort();
            keys
        };
        let (fa, fb) = (frames(0), frames(10_000));
        let order: Vec<usize> = (0..700)
            .rev()
            .chain((0..700).step_by(3))
            .chain([0, 699, 256, 255, 511, 512])
            .collect();
        for &i in &order {
            for (s, f) in [(&a, &fa), (&b, &fb)] {
                let r = s.get(i).expect("read");
                assert_eq!((r.order.1, r.order.2), f[i], "record {i}");
            }
        }
    }

    #[test]
    fn small_stores_stay_in_memory() {
        let mut s = Store::new(100);
        s.push(record(0, 1)).expect("push");
        s.finish().expect("finish");
        assert!(!s.spilled());
        assert_eq!(s.get(0).expect("read").order.2, 0);
    }

    #[test]
    fn index_runs_merge_into_first_frame_order() {
        // 2000 records in a scrambled order, written out in runs of 64 entries and batches of
        // 7 records: the same order as sorting them in memory.
        let mut s = Store::with_index_run(7, 64);
        let mut keys: Vec<(u64, u64)> = (0..2000u64).map(|i| (i, (i * 7919) % 2003 + 1)).collect();
        for (stream, frame) in &keys {
            s.push(record(*stream, *frame)).expect("push");
        }
        assert_eq!(s.len(), 2000);
        assert!(s.runs.len() > 30, "{} runs", s.runs.len());
        s.finish().expect("finish");
        assert_eq!(s.runs.len(), 1);
        keys.sort_by_key(|(stream, frame)| (*frame, *stream));
        let got: Vec<(u64, u64)> = (0..s.len())
            .map(|i| {
                let r = s.get(i).expect("read");
                (r.order.2, r.order.1)
            })
            .collect();
        assert_eq!(got, keys);
        assert!(s.get(2000).is_err());
    }
}
