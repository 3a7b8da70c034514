//! Store: settled connections, kept in memory up to a bound and spilled to a temporary file
//! beyond it, read back in output order.
//!
//! This is what keeps memory proportional to the connections open at once rather than to the
//! capture's size: a connection is summarised and stored as soon as its outcome is settled and
//! its packet state freed. Records arrive in settling order and are read back by key (the
//! connection's stream number, which Wireshark hands out in order of first packet, so key
//! order is output order). Once a batch has been spilled (postcard, a compact serde encoding),
//! each record's place goes into an index file at a slot addressed by its key: no sorting, and
//! nothing per record stays in memory. [`Store::finish`] reads the slots once, in key order,
//! into a dense index. The files are removed when the store is dropped.

use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

/// Records in memory before a batch is spilled.
pub const DEFAULT_MEMORY_RECORDS: usize = 128;

/// One index slot: record offset plus one (0: no record), record length, whether it failed.
const SLOT: usize = 16;

fn slot(off: u64, len: u32, failed: bool) -> [u8; SLOT] {
    let mut b = [0u8; SLOT];
    b[0..8].copy_from_slice(&(off + 1).to_le_bytes());
    b[8..12].copy_from_slice(&len.to_le_bytes());
    b[12] = u8::from(failed);
    b
}

/// Where a slot points: (offset, length, failed); None for an empty slot.
fn unslot(b: &[u8]) -> Option<(u64, u32, bool)> {
    let off = u64::from_le_bytes(b.get(0..8)?.try_into().ok()?).checked_sub(1)?;
    let len = u32::from_le_bytes(b.get(8..12)?.try_into().ok()?);
    Some((off, len, *b.get(12)? != 0))
}

/// A temporary file, removed when dropped.
struct TempFile {
    path: PathBuf,
    file: File,
}

impl TempFile {
    fn create(what: &str) -> io::Result<Self> {
        let path = std::env::temp_dir().join(format!(
            "tlsdiag-{}-{}.{what}",
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
        Ok(TempFile { path, file })
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Spilled records: their file, and the index of slots addressed by key.
struct Spill {
    records: TempFile,
    end: u64,
    /// Slots by key until [`Store::finish`]; dropped then.
    slots: Option<TempFile>,
    window: Window,
    /// After [`Store::finish`]: where the dense index starts in the records file.
    dense_at: u64,
}

/// Slots kept in memory for the most recent keys, written out in long runs: connections settle
/// roughly in stream order, so a window of recent streams turns one small write per record
/// into one write per [`WINDOW`] / 2 streams. A key below the window (a connection that
/// outlived many newer ones) is written to its slot directly; a slot left empty in a run
/// written out is only ever filled by such a direct write, so no write undoes another.
struct Window {
    /// Key of the first slot held.
    base: u64,
    slots: Vec<u8>,
}

/// Slots held in memory (1 MiB).
const WINDOW: u64 = 1 << 16;

impl Window {
    fn put(&mut self, file: &File, key: u64, entry: &[u8; SLOT]) -> io::Result<()> {
        if key < self.base {
            return file.write_all_at(entry, key * SLOT as u64);
        }
        if key >= self.base + WINDOW {
            // Slide so that `key` fits and at least half the window stays.
            let new_base = (self.base + WINDOW / 2).max(key + 1 - WINDOW);
            let out = ((new_base - self.base).min(WINDOW) as usize) * SLOT;
            file.write_all_at(&self.slots[..out], self.base * SLOT as u64)?;
            self.slots.drain(..out);
            self.slots.resize(WINDOW as usize * SLOT, 0);
            self.base = new_base;
        }
        let at = (key - self.base) as usize * SLOT;
        self.slots[at..at + SLOT].copy_from_slice(entry);
        Ok(())
    }

    /// Writes out every slot held.
    fn flush(&self, file: &File) -> io::Result<()> {
        file.write_all_at(&self.slots, self.base * SLOT as u64)
    }
}

/// A record waiting in memory.
struct Held<R> {
    key: u64,
    failed: bool,
    record: R,
}

pub struct Store<R> {
    mem: Vec<Held<R>>,
    spill: Option<Spill>,
    /// Records stored.
    count: usize,
    limit: usize,
    /// Serialisation buffer, kept between batches.
    buf: Vec<u8>,
    finished: bool,
    /// Tells this store's entries apart in a thread's read-ahead of the index.
    id: u64,
}

/// Index entries a reading thread takes from the file at once: records are read back in index
/// order, so one read serves the next 256 (one system call each saved).
const INDEX_AHEAD: u64 = 256;

thread_local! {
    /// This thread's read-ahead of a dense index: (store id, first entry, entries).
    static AHEAD: std::cell::RefCell<(u64, u64, Vec<u8>)> =
        const { std::cell::RefCell::new((0, 0, Vec::new())) };
    /// This thread's buffer for reading a record (reused: a report reads every record back).
    static READ_BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl<R> std::fmt::Debug for Store<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("records", &self.count)
            .field("in_memory", &self.mem.len())
            .field("spilled", &self.spill.is_some())
            .finish()
    }
}

impl<R: Serialize + DeserializeOwned + Clone> Default for Store<R> {
    fn default() -> Self {
        Store::new(DEFAULT_MEMORY_RECORDS)
    }
}

impl<R: Serialize + DeserializeOwned + Clone> Store<R> {
    /// A store keeping up to `limit` records in memory before it spills them.
    pub fn new(limit: usize) -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Store {
            mem: Vec::new(),
            spill: None,
            count: 0,
            limit: limit.max(1),
            buf: Vec::new(),
            finished: false,
            id: NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        }
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether records went to disk.
    pub fn spilled(&self) -> bool {
        self.spill.is_some()
    }

    /// Stores `record` under `key` (each key once); `failed` lets readers skip it unread.
    pub fn push(&mut self, key: u64, failed: bool, record: R) -> io::Result<()> {
        if self.finished {
            return Err(io::Error::other(
                "record stored after the store was finished",
            ));
        }
        self.mem.push(Held {
            key,
            failed,
            record,
        });
        self.count += 1;
        if self.mem.len() >= self.limit {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the records in memory to the file, and their places to the slots of their keys.
    fn flush(&mut self) -> io::Result<()> {
        if self.spill.is_none() {
            self.spill = Some(Spill {
                records: TempFile::create("spill")?,
                end: 0,
                slots: Some(TempFile::create("index")?),
                window: Window {
                    base: 0,
                    slots: vec![0; WINDOW as usize * SLOT],
                },
                dense_at: 0,
            });
        }
        let Some(spill) = self.spill.as_mut() else {
            return Ok(());
        };
        let Some(slots) = spill.slots.as_ref() else {
            return Err(io::Error::other("the store's index is already closed"));
        };
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        for held in self.mem.drain(..) {
            let start = buf.len();
            buf = postcard::to_extend(&held.record, buf).map_err(io::Error::other)?;
            let at = spill.end + start as u64;
            let len = u32::try_from(buf.len() - start).map_err(io::Error::other)?;
            let entry = slot(at, len, held.failed);
            spill.window.put(&slots.file, held.key, &entry)?;
        }
        spill.records.file.write_all_at(&buf, spill.end)?;
        spill.end += buf.len() as u64;
        self.buf = buf;
        Ok(())
    }

    /// Puts the records in key order; call once all records are in (no push after it).
    pub fn finish(&mut self) -> io::Result<()> {
        if self.finished {
            return Ok(());
        }
        self.finished = true;
        if self.spill.is_none() {
            self.mem.sort_by_key(|h| h.key);
            return Ok(());
        }
        self.flush()?;
        let Some(spill) = self.spill.as_mut() else {
            return Ok(());
        };
        let Some(slots) = spill.slots.take() else {
            return Ok(());
        };
        spill.window.flush(&slots.file)?;
        spill.window.slots = Vec::new();
        // The slots in key order, empty ones left out, appended to the records file.
        spill.dense_at = spill.end;
        let total = slots.file.metadata()?.len();
        let mut chunk = vec![0u8; SLOT << 12];
        let (mut at, mut dense) = (0u64, Vec::with_capacity(chunk.len()));
        while at < total {
            let n = chunk.len().min((total - at) as usize);
            let read = &mut chunk[..n];
            slots.file.read_exact_at(read, at)?;
            at += n as u64;
            dense.clear();
            for s in read.chunks_exact(SLOT) {
                if unslot(s).is_some() {
                    dense.extend_from_slice(s);
                }
            }
            spill.records.file.write_all_at(&dense, spill.end)?;
            spill.end += dense.len() as u64;
        }
        let held = (spill.end - spill.dense_at) / SLOT as u64;
        if held != self.count as u64 {
            return Err(io::Error::other(format!(
                "the store's index holds {held} records, not {}",
                self.count
            )));
        }
        Ok(())
    }

    /// Reads record `i` (in key order once [`finish`](Self::finish) ran).
    pub fn get(&self, i: usize) -> io::Result<R> {
        self.read(i, false)
            .and_then(|r| r.ok_or_else(|| io::Error::other("no such record")))
    }

    /// Reads record `i` if it failed; `None` if not, without reading the rest of it (a report
    /// of failures skips most connections).
    pub fn get_failed(&self, i: usize) -> io::Result<Option<R>> {
        self.read(i, true)
    }

    fn read(&self, i: usize, failed_only: bool) -> io::Result<Option<R>> {
        let Some(spill) = &self.spill else {
            let held = self
                .mem
                .get(i)
                .ok_or_else(|| io::Error::other("no such record"))?;
            return Ok((!failed_only || held.failed).then(|| held.record.clone()));
        };
        if !self.finished || i >= self.count {
            return Err(io::Error::other("no such record"));
        }
        let (off, len, failed) = self.index_entry(spill, i as u64)?;
        if failed_only && !failed {
            return Ok(None);
        }
        let decode = |buf: &mut Vec<u8>| -> io::Result<Option<R>> {
            let len = len as usize;
            if buf.len() < len {
                buf.resize(len, 0);
            }
            let bytes = &mut buf[..len];
            spill.records.file.read_exact_at(bytes, off)?;
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

    /// Entry `i` of the dense index, read ahead with the entries after it.
    fn index_entry(&self, spill: &Spill, i: u64) -> io::Result<(u64, u32, bool)> {
        let at = |b: &[u8], k: u64| {
            let k = k as usize * SLOT;
            b.get(k..k + SLOT)
                .and_then(unslot)
                .ok_or_else(|| io::Error::other("damaged store index"))
        };
        AHEAD.with(|ahead| {
            let Ok(mut ahead) = ahead.try_borrow_mut() else {
                let mut b = [0u8; SLOT];
                spill
                    .records
                    .file
                    .read_exact_at(&mut b, spill.dense_at + i * SLOT as u64)?;
                return at(&b, 0);
            };
            let (id, first, bytes) = &mut *ahead;
            let held = (bytes.len() / SLOT) as u64;
            if *id != self.id || i < *first || i - *first >= held {
                let n = INDEX_AHEAD.min(self.count as u64 - i) as usize;
                bytes.resize(n * SLOT, 0);
                spill
                    .records
                    .file
                    .read_exact_at(bytes, spill.dense_at + i * SLOT as u64)?;
                (*id, *first) = (self.id, i);
            }
            at(bytes, i - *first)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records arrive in settling order; they come back in key order, from memory or disk.
    fn stored(limit: usize, keys: &[u64]) -> Store<(u64, String)> {
        let mut s = Store::new(limit);
        for &k in keys {
            s.push(k, k % 3 == 0, (k, format!("record {k}")))
                .expect("push");
        }
        s.finish().expect("finish");
        s
    }

    #[test]
    fn spilled_records_come_back_in_key_order() {
        let keys = [7, 3, 9, 0, 12, 5, 1, 30, 2, 8];
        for limit in [1, 3, 100] {
            let s = stored(limit, &keys);
            assert_eq!(s.spilled(), limit < keys.len(), "limit {limit}");
            let mut want = keys.to_vec();
            want.sort();
            let got: Vec<u64> = (0..s.len()).map(|i| s.get(i).expect("get").0).collect();
            assert_eq!(got, want, "limit {limit}");
            assert!(s.get(keys.len()).is_err());
        }
    }

    #[test]
    fn failed_records_are_read_and_the_others_skipped() {
        for limit in [2, 100] {
            let s = stored(limit, &[4, 3, 6, 1, 9]);
            let failed: Vec<Option<u64>> = (0..s.len())
                .map(|i| s.get_failed(i).expect("get").map(|r| r.0))
                .collect();
            assert_eq!(failed, [None, Some(3), None, Some(6), Some(9)]);
        }
    }

    #[test]
    fn index_read_ahead_serves_each_store_its_own_entries() {
        let a = stored(1, &(0..600).rev().collect::<Vec<_>>());
        let b = stored(1, &(1000..1300).collect::<Vec<_>>());
        for i in [0, 1, 299, 2, 257] {
            assert_eq!(a.get(i).expect("a").0, i as u64);
            assert_eq!(b.get(i).expect("b").0, 1000 + i as u64);
        }
        assert_eq!(a.get(599).expect("last").0, 599);
    }

    /// Keys beyond the window, keys far apart, and keys that settle long after newer ones
    /// (below the window by then) all come back, in order, each once.
    #[test]
    fn keys_past_and_behind_the_window_come_back_in_order() {
        let late: Vec<u64> = (0..20).map(|k| k * 7_001).collect();
        let mut keys: Vec<u64> = (0..3 * WINDOW + 5).filter(|k| !late.contains(k)).collect();
        keys.push(10 * WINDOW);
        keys.extend(&late);
        let mut s = Store::new(64);
        for &k in &keys {
            s.push(k, k % 2 == 1, k).expect("push");
        }
        s.finish().expect("finish");
        keys.sort();
        assert_eq!(s.len(), keys.len());
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(s.get(i).expect("get"), *k);
        }
    }

    #[test]
    fn small_stores_stay_in_memory() {
        let s = stored(128, &[2, 1]);
        assert!(!s.spilled());
        assert_eq!(s.get(0).expect("first").0, 1);
    }

    #[test]
    fn push_after_finish_is_an_error() {
        let mut s = stored(1, &[1]);
        assert!(s.push(5, false, (5, String::new())).is_err());
    }
}
