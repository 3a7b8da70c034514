//! Store: settled connections, kept in memory up to a bound and spilled to a temporary file
//! beyond it, read back in first-frame order.
//!
//! This is what keeps memory proportional to the connections open at once rather than to the
//! capture's size: a connection is summarised and stored as soon as its outcome is settled, its
//! packet state freed, and only a 32-byte index entry per connection stays in memory once the
//! in-memory batch has been spilled (postcard, a compact serde encoding). The file is removed
//! when the store is dropped.

use crate::model::Connection;
use crate::verdict::{ConnFacts, Side};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

/// A settled connection: its record, the facts its verdict is decided from, and what it said
/// about the capture point.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub conn: Connection,
    pub facts: ConnFacts,
    pub evidence: Side,
    /// The packets, kept only when asked for (`Options::trace`).
    pub trace: Option<crate::model::Trace>,
}

/// Order of output: file, first frame, stream.
type Key = (usize, u64, u64);

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
pub const DEFAULT_MEMORY_RECORDS: usize = 512;

pub struct Store {
    index: Vec<(Key, Loc)>,
    mem: Vec<Option<Record>>,
    /// Index position of each in-memory record.
    mem_pos: Vec<usize>,
    spill: Option<Spill>,
    limit: usize,
    sorted: bool,
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
        Store {
            index: Vec::new(),
            mem: Vec::new(),
            mem_pos: Vec::new(),
            spill: None,
            limit: limit.max(1),
            sorted: true,
        }
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Whether records went to disk.
    pub fn spilled(&self) -> bool {
        self.spill.is_some()
    }

    pub fn push(&mut self, r: Record) -> io::Result<()> {
        let key = (r.conn.file.unwrap_or(0), r.conn.first_frame, r.conn.stream);
        if self.index.last().is_some_and(|(k, _)| *k > key) {
            self.sorted = false;
        }
        self.mem_pos.push(self.index.len());
        self.index.push((key, Loc::Mem(self.mem.len())));
        self.mem.push(Some(r));
        if self.mem.len() >= self.limit {
            self.flush()?;
        }
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
        let mut buf = Vec::with_capacity(self.mem.len() * 1024);
        let mut locs = Vec::with_capacity(self.mem.len());
        for rec in self.mem.drain(..).flatten() {
            let start = buf.len();
            buf = postcard::to_extend(&rec, buf).map_err(io::Error::other)?;
            locs.push((spill.end + start as u64, (buf.len() - start) as u32));
        }
        spill.file.write_all_at(&buf, spill.end)?;
        spill.end += buf.len() as u64;
        for (pos, (off, len)) in self.mem_pos.drain(..).zip(locs) {
            if let Some(entry) = self.index.get_mut(pos) {
                entry.1 = Loc::Disk { off, len };
            }
        }
        Ok(())
    }

    /// Puts the index in output order; call once all records are in (no push after it).
    pub fn finish(&mut self) {
        if !self.sorted {
            self.index.sort_by_key(|(k, _)| *k);
            self.sorted = true;
        }
        self.mem_pos.clear();
    }

    /// Reads record `i` (in output order once [`finish`](Self::finish) ran).
    pub fn get(&self, i: usize) -> io::Result<Record> {
        match self.index.get(i).map(|(_, l)| *l) {
            Some(Loc::Mem(m)) => self
                .mem
                .get(m)
                .and_then(Clone::clone)
                .ok_or_else(|| io::Error::other("record missing from memory")),
            Some(Loc::Disk { off, len }) => {
                let spill = self
                    .spill
                    .as_ref()
                    .ok_or_else(|| io::Error::other("spill file missing"))?;
                let mut buf = vec![0u8; len as usize];
                spill.file.read_exact_at(&mut buf, off)?;
                postcard::from_bytes(&buf).map_err(io::Error::other)
            }
            None => Err(io::Error::other("no such record")),
        }
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
            conn,
            facts: ConnFacts::default(),
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
        s.finish();
        let frames: Vec<u64> = (0..s.len())
            .map(|i| s.get(i).expect("read").conn.first_frame)
            .collect();
        assert_eq!(frames, vec![10, 20, 30, 40, 50]);
    }

    #[test]
    fn small_stores_stay_in_memory() {
        let mut s = Store::new(100);
        s.push(record(0, 1)).expect("push");
        s.finish();
        assert!(!s.spilled());
        assert_eq!(s.get(0).expect("read").conn.stream, 0);
    }
}
