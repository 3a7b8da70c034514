//! Opening an input: a path or standard input (`-`), compression peeled off by its magic bytes
//! (gzip, zstd), and the container recognised by pcap-parser, with a clear error when the input
//! is empty, foreign, corrupt (compressed data that does not decompress), or cut inside its own
//! header.
//!
//! Hands on an [`Opened`] input: pcap-parser's block reader over the decompressed bytes, and
//! the counters the read loop reports from.

use super::{CaptureError, Compression};
use pcap_parser::traits::PcapReaderIterator;
use pcap_parser::PcapError;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// Initial read buffer; grows (up to [`super::MAX_BLOCK`]) only for oversized records.
pub(super) const READ_BUFFER: usize = 256 << 10;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// pcapng's section header block type, the first four bytes of every pcapng file.
const PCAPNG_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];
/// First four bytes (read little-endian) of the containers pcap-parser reads: legacy pcap in
/// micro- and nanoseconds and the "modified" variant, each in both byte orders, and pcapng.
const CAPTURE_MAGIC: [u32; 7] = [
    0xa1b2_c3d4,
    0xd4c3_b2a1,
    0xa1b2_3c4d,
    0x4d3c_b2a1,
    0xa1b2_cd34,
    0x34cd_b2a1,
    0x0a0d_0d0a,
];

type BoxRead = Box<dyn Read + Send>;

/// An input ready to be read block by block.
pub(super) struct Opened {
    pub(super) blocks: Box<dyn PcapReaderIterator + Send>,
    pub(super) compression: Option<Compression>,
    /// Raw (possibly compressed) bytes read so far, for progress reporting.
    pub(super) counter: Arc<AtomicU64>,
    /// Set when the compressed stream turned out cut or damaged.
    pub(super) damaged: Arc<AtomicBool>,
    /// The first bytes of the container, to describe a foreign input.
    head: Vec<u8>,
}

impl Opened {
    /// The error for an input that turned out not to be a capture.
    pub(super) fn not_a_capture(&self, path: &str) -> CaptureError {
        not_a_capture(path, &self.head)
    }
}

fn not_a_capture(path: &str, head: &[u8]) -> CaptureError {
    CaptureError::NotACapture {
        path: path.to_string(),
        starts_with: describe_head(head),
    }
}

/// Opens `path` (`-` = standard input), peels compression off and reads the container's file
/// header.
pub(super) fn open(path: &str) -> Result<Opened, CaptureError> {
    let counter = Arc::new(AtomicU64::new(0));
    let damaged = Arc::new(AtomicBool::new(false));
    let (reader, compression) = open_decompressed(path, &counter, &damaged)?;
    let (head, mut reader) = peek_head(reader).map_err(|source| CaptureError::Open {
        path: path.to_string(),
        source,
    })?;
    let corrupt = || {
        compression
            .filter(|_| damaged.load(Ordering::Relaxed))
            .map(|compression| CaptureError::Corrupt {
                path: path.to_string(),
                compression,
            })
    };
    if let Some(e) = corrupt().filter(|_| head.len() < 16) {
        return Err(e);
    }
    reader.skip_probe_read = true;
    if head.is_empty() {
        return Err(CaptureError::Empty {
            path: path.to_string(),
        });
    }
    let blocks = match pcap_parser::create_reader(READ_BUFFER, reader) {
        Ok(r) => r,
        Err(PcapError::Eof) => {
            return Err(CaptureError::Empty {
                path: path.to_string(),
            })
        }
        Err(_) => {
            let have = counter.load(Ordering::Relaxed) as usize;
            let e = corrupt().unwrap_or_else(|| header_failure(path, &head, have, compression));
            return Err(e);
        }
    };
    Ok(Opened {
        blocks,
        compression,
        counter,
        damaged,
        head,
    })
}

/// Why pcap-parser could not read the file header of an input that starts with `head`, of
/// which `have` raw bytes exist: a known magic with fewer bytes than the header it announces
/// is a cut capture, anything else is not a capture.
fn header_failure(
    path: &str,
    head: &[u8],
    have: usize,
    compression: Option<Compression>,
) -> CaptureError {
    let known_magic = match head.first_chunk::<4>() {
        Some(m) => CAPTURE_MAGIC.contains(&u32::from_le_bytes(*m)),
        None => false,
    };
    if !known_magic {
        return not_a_capture(path, head);
    }
    let declared = match (head.first_chunk::<4>(), head.get(4..8)) {
        (Some(&PCAPNG_MAGIC), Some(&[a, b, c, d])) => {
            let le = u32::from_le_bytes([a, b, c, d]);
            let be = u32::from_be_bytes([a, b, c, d]);
            le.min(be) as usize
        }
        (Some(&PCAPNG_MAGIC), _) => usize::MAX,
        _ => 24,
    };
    if compression.is_some() || have < declared {
        return CaptureError::HeaderCut {
            path: path.to_string(),
            len: have,
        };
    }
    not_a_capture(path, head)
}

/// A reader that first replays the bytes already peeked, and makes its first read return at
/// least the container's file header (or everything, if shorter): pcap-parser probes the format
/// from a single read, which a pipe would otherwise answer with a handful of bytes. No more
/// than the header: live, the packets after it may not have been captured yet.
struct Replay<R> {
    head: Vec<u8>,
    pos: usize,
    inner: R,
    first: bool,
    /// The next read returns nothing: pcap-parser's reader reads once more right after its
    /// probe, which on a live pipe would wait for the next packet before the first is read.
    /// (An empty read there is "no data yet"; the reader reads again when it needs to.)
    skip_next: bool,
    /// Whether the read after the first one is skipped so (the reader pcap-parser probes).
    skip_probe_read: bool,
}

/// Bytes pcap-parser's probe needs from a container starting with `head`: a legacy pcap file
/// header, or a whole pcapng section header block (its length in the byte order its magic
/// says), at most a few KiB.
fn probe_len(head: &[u8]) -> usize {
    const MOST: usize = 4096;
    match (head.first_chunk::<4>(), head.get(4..8), head.get(8..12)) {
        (Some(&PCAPNG_MAGIC), Some(&[a, b, c, d]), Some(order)) => {
            let len = if order == [0x4d, 0x3c, 0x2b, 0x1a] {
                u32::from_le_bytes([a, b, c, d])
            } else {
                u32::from_be_bytes([a, b, c, d])
            };
            (len as usize).clamp(28, MOST)
        }
        (Some(m), _, _) if CAPTURE_MAGIC.contains(&u32::from_le_bytes(*m)) => 24,
        _ => MOST,
    }
}

impl<R: Read> Read for Replay<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if std::mem::take(&mut self.skip_next) {
            return Ok(0);
        }
        let mut n = 0;
        if let Some(left) = self.head.get(self.pos..) {
            let k = left.len().min(buf.len());
            buf[..k].copy_from_slice(&left[..k]);
            self.pos += k;
            n = k;
        }
        let want = if self.first {
            buf.len().min(probe_len(&self.head))
        } else {
            1
        };
        self.skip_next = self.first && self.skip_probe_read;
        self.first = false;
        while n < buf.len() && (n < want || n == 0) {
            match self.inner.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) if n > 0 => break,
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }
}

/// Reads the first bytes of a stream without losing them.
fn peek_head<R: Read>(mut r: R) -> io::Result<(Vec<u8>, Replay<R>)> {
    let mut head = Vec::with_capacity(16);
    let mut buf = [0u8; 16];
    while head.len() < 16 {
        match r.read(&mut buf[..16 - head.len()]) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok((
        head.clone(),
        Replay {
            head,
            pos: 0,
            inner: r,
            first: true,
            skip_next: false,
            skip_probe_read: false,
        },
    ))
}

/// Describes the first bytes of a non-capture for an error message: printable text in quotes,
/// otherwise hex.
pub fn describe_head(head: &[u8]) -> String {
    if head.is_empty() {
        return "nothing".into();
    }
    let head = &head[..head.len().min(8)];
    let printable = head.iter().all(|b| b.is_ascii_graphic() || *b == b' ');
    if printable {
        format!("\"{}\"", String::from_utf8_lossy(head))
    } else {
        let hex: Vec<String> = head.iter().map(|b| format!("{b:02x}")).collect();
        format!("bytes {}", hex.join(" "))
    }
}

/// Ends a decompressed stream at its first error instead of failing the read, so everything
/// decoded before a cut or damaged compressed file is still analysed; the flag tells.
struct Tolerant<R> {
    inner: R,
    damaged: Arc<AtomicBool>,
    /// Largest read passed on (a decoder that drops a whole read on error loses less).
    max_read: usize,
}

impl<R: Read> Read for Tolerant<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.damaged.load(Ordering::Relaxed) {
            return Ok(0);
        }
        let n = buf.len().min(self.max_read);
        match self.inner.read(&mut buf[..n]) {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(_) => {
                self.damaged.store(true, Ordering::Relaxed);
                Ok(0)
            }
        }
    }
}

/// Counts the raw (possibly compressed) bytes read, for progress reporting.
struct Counted<R> {
    inner: R,
    n: Arc<AtomicU64>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.n.fetch_add(k as u64, Ordering::Relaxed);
        Ok(k)
    }
}

/// Opens `path` (`-` = standard input) and peels compression off by magic bytes.
fn open_decompressed(
    path: &str,
    counter: &Arc<AtomicU64>,
    damaged: &Arc<AtomicBool>,
) -> Result<(BoxRead, Option<Compression>), CaptureError> {
    let open_err = |source| CaptureError::Open {
        path: path.to_string(),
        source,
    };
    let raw: BoxRead = if path == "-" {
        Box::new(Counted {
            inner: io::stdin(),
            n: Arc::clone(counter),
        })
    } else {
        Box::new(Counted {
            inner: File::open(Path::new(path)).map_err(open_err)?,
            n: Arc::clone(counter),
        })
    };
    let (head, r) = peek_head(raw).map_err(open_err)?;
    if head.is_empty() {
        return Err(CaptureError::Empty {
            path: path.to_string(),
        });
    }
    if head.starts_with(&GZIP_MAGIC) {
        let d = flate2::read::MultiGzDecoder::new(io::BufReader::with_capacity(1 << 16, r));
        let d = Tolerant {
            inner: d,
            damaged: Arc::clone(damaged),
            max_read: usize::MAX,
        };
        return Ok((Box::new(d), Some(Compression::Gzip)));
    }
    if head.starts_with(&ZSTD_MAGIC) {
        let d = ruzstd::decoding::StreamingDecoder::new(io::BufReader::with_capacity(1 << 16, r))
            .map_err(|_| CaptureError::Corrupt {
            path: path.to_string(),
            compression: Compression::Zstd,
        })?;
        // Small reads: ruzstd loses the blocks of a read that hits damage.
        let d = Tolerant {
            inner: d,
            damaged: Arc::clone(damaged),
            max_read: 1 << 14,
        };
        return Ok((Box::new(d), Some(Compression::Zstd)));
    }
    Ok((Box::new(r), None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_head_shows_text_or_hex() {
        assert_eq!(describe_head(b"GET / HTTP/1.1"), "\"GET / HT\"");
        assert_eq!(describe_head(&[0, 1, 2]), "bytes 00 01 02");
        assert_eq!(describe_head(b""), "nothing");
    }

    #[test]
    fn a_known_magic_shorter_than_its_header_is_a_cut_capture() {
        let cut = |head: &[u8], have| header_failure("f", head, have, None);
        let pcap = 0xa1b2_c3d4u32.to_le_bytes();
        assert!(matches!(
            cut(&pcap, 10),
            CaptureError::HeaderCut { len: 10, .. }
        ));
        assert!(matches!(cut(&pcap, 30), CaptureError::NotACapture { .. }));
        let ng = [0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0];
        assert!(matches!(cut(&ng, 20), CaptureError::HeaderCut { .. }));
        assert!(matches!(cut(&ng[..4], 4), CaptureError::HeaderCut { .. }));
        assert!(matches!(cut(b"GET /", 5), CaptureError::NotACapture { .. }));
    }
}
