//! Capture: turns files (or standard input) into a stream of [`Frame`]s.
//!
//! Owns everything about the container: compression (gzip, zstd, recognised by magic bytes),
//! legacy pcap (micro/nanosecond, both byte orders, the "modified" variant) and pcapng (several
//! sections and interfaces, each with its own link type and timestamp resolution). Frames borrow
//! the reader's buffer and are handed to a callback one at a time, so memory does not depend on
//! the file size. Truncated and corrupt files end the file with a warning, never a panic or a
//! loop: the reader keeps a no-progress guard and a cap on the block size it will buffer.

use pcap_parser::pcapng::Block;
use pcap_parser::traits::PcapNGPacketBlock;
use pcap_parser::{PcapBlockOwned, PcapError};
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::num::NonZeroU64;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// Nanoseconds since the Unix epoch.
pub type Nanos = i64;

/// Initial read buffer; grows (up to [`MAX_BLOCK`]) only for oversized records.
const READ_BUFFER: usize = 256 << 10;
/// The largest single record or block the reader accepts (pcapng allows any size; real
/// captures stay under 256 KiB per packet).
pub const MAX_BLOCK: usize = 16 << 20;

/// One captured packet, borrowed from the reader's buffer.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// Index of the input file, in the order given.
    pub file: usize,
    /// Wireshark's `frame.number` in that file: 1-based, file order, across pcapng interfaces.
    pub number: u64,
    pub ts: Nanos,
    /// LINKTYPE_* value of the interface the packet was captured on.
    pub linktype: u32,
    /// Length of the packet on the wire (may exceed `data.len()` under a snaplen).
    pub orig_len: u32,
    pub interface: u32,
    pub data: &'a [u8],
}

/// Where something was seen: which file, which frame, when. Small and `Copy`, so evidence can
/// be kept long after the frame's bytes are gone: 16 bytes, and an `Option<FrameRef>` too
/// (a connection keeps a few dozen of them).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FrameRef {
    /// One more than `file << FRAME_BITS | frame`: never zero, which gives `Option` its niche;
    /// ordered like (file, frame).
    id: NonZeroU64,
    pub ts: Nanos,
}

/// Bits of [`FrameRef`]'s id for the frame number (17.6 trillion frames per file); the rest
/// hold the file index.
const FRAME_BITS: u32 = 44;
const FRAME_MASK: u64 = (1 << FRAME_BITS) - 1;
/// Input files one analysis accepts: what a [`FrameRef`] can name.
pub const MAX_FILES: usize = 1 << (64 - FRAME_BITS - 1);

impl FrameRef {
    /// Frame `frame` of input file `file`, captured at `ts`. A file index at or beyond
    /// [`MAX_FILES`] or a frame number beyond 2^44 - 2 is clamped (the caller refuses more
    /// files; no capture holds that many frames).
    pub const fn new(file: usize, frame: u64, ts: Nanos) -> Self {
        let file = if (file as u64) < MAX_FILES as u64 {
            file as u64
        } else {
            MAX_FILES as u64 - 1
        };
        let frame = if frame < FRAME_MASK {
            frame
        } else {
            FRAME_MASK - 1
        };
        FrameRef {
            id: NonZeroU64::MIN.saturating_add((file << FRAME_BITS) | frame),
            ts,
        }
    }
    /// Index of the input file, in the order given.
    pub fn file(&self) -> usize {
        ((self.id.get() - 1) >> FRAME_BITS) as usize
    }
    /// Wireshark's frame number in that file.
    pub fn frame(&self) -> u64 {
        (self.id.get() - 1) & FRAME_MASK
    }
}

impl fmt::Debug for FrameRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameRef")
            .field("file", &self.file())
            .field("frame", &self.frame())
            .field("ts", &self.ts)
            .finish()
    }
}

impl Frame<'_> {
    pub fn at(&self) -> FrameRef {
        FrameRef::new(self.file, self.number, self.ts)
    }
}

/// Container format of an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Pcap,
    PcapNanosecond,
    PcapModified,
    Pcapng,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Pcap => "pcap",
            Format::PcapNanosecond => "pcap (nanosecond)",
            Format::PcapModified => "pcap (modified)",
            Format::Pcapng => "pcapng",
        })
    }
}

/// Compression wrapped around the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    Gzip,
    Zstd,
}

/// What was learnt about one input while reading it.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct InputSummary {
    pub path: String,
    pub format: Option<Format>,
    pub compression: Option<Compression>,
    pub big_endian: bool,
    pub packets: u64,
    /// Bytes of the (decompressed) container consumed.
    pub bytes: u64,
    /// (linktype, packets) in order of first appearance.
    pub link_types: Vec<(u32, u64)>,
    pub snaplen: Option<u32>,
    pub interfaces: u32,
    pub first_ts: Option<Nanos>,
    pub last_ts: Option<Nanos>,
    /// Problems that did not stop the analysis (truncation, corrupt block).
    pub warnings: Vec<String>,
}

impl InputSummary {
    /// Counts a frame of link type `lt` captured at `ts`.
    fn count_frame(&mut self, lt: u32, ts: Nanos) {
        self.packets += 1;
        match self.link_types.iter_mut().find(|(l, _)| *l == lt) {
            Some((_, n)) => *n += 1,
            None => self.link_types.push((lt, 1)),
        }
        self.first_ts.get_or_insert(ts);
        self.last_ts = Some(ts);
    }

    /// What a legacy pcap file header says.
    fn legacy_header(&mut self, h: &pcap_parser::PcapHeader) {
        self.format = Some(if h.is_modified_format() {
            Format::PcapModified
        } else if h.is_nanosecond_precision() {
            Format::PcapNanosecond
        } else {
            Format::Pcap
        });
        self.big_endian = h.is_bigendian();
        self.snaplen = Some(h.snaplen);
        self.interfaces = 1;
    }
}

/// An input that could not be read at all.
#[derive(Debug)]
pub enum CaptureError {
    Open {
        path: String,
        source: io::Error,
    },
    NotACapture {
        path: String,
        starts_with: String,
    },
    Empty {
        path: String,
    },
    /// The file starts like a capture but ends inside its own header.
    HeaderCut {
        path: String,
        len: usize,
    },
    /// More input files than one analysis can name ([`MAX_FILES`]).
    TooManyFiles {
        first: String,
        count: usize,
    },
}

impl fmt::Display for CaptureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaptureError::Open { path, source } => write!(f, "{path}: cannot open: {source}"),
            CaptureError::NotACapture { path, starts_with } => write!(
                f,
                "{path}: not a pcap or pcapng capture (it starts with {starts_with})"
            ),
            CaptureError::Empty { path } => write!(f, "{path}: empty file, no capture header"),
            CaptureError::HeaderCut { path, len } => write!(
                f,
                "{path}: capture is truncated inside its file header (only {len} bytes); \
                 nothing to analyse"
            ),
            CaptureError::TooManyFiles { first, count } => write!(
                f,
                "{first}: {count} input files given; at most {MAX_FILES} can be analysed as one \
                 capture (merge them with mergecap first)"
            ),
        }
    }
}

impl std::error::Error for CaptureError {}

/// A reader that first replays the bytes already peeked, and makes its first read return at
/// least a few KiB (or everything, if shorter): pcap-parser probes the format from a single
/// read, which a pipe would otherwise answer with a handful of bytes.
struct Replay<R> {
    head: Vec<u8>,
    pos: usize,
    inner: R,
    first: bool,
}

impl<R: Read> Read for Replay<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut n = 0;
        if self.pos < self.head.len() {
            let k = (self.head.len() - self.pos).min(buf.len());
            buf[..k].copy_from_slice(&self.head[self.pos..self.pos + k]);
            self.pos += k;
            n = k;
        }
        let want = if self.first { buf.len().min(4096) } else { 1 };
        self.first = false;
        while n < buf.len() && (n < want || n == 0) {
            match self.inner.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if n > 0 => {
                    let _ = e;
                    break;
                }
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
        },
    ))
}

/// Describes the first bytes of a non-capture for an error message: printable text in quotes,
/// otherwise hex.
pub fn describe_head(head: &[u8]) -> String {
    if head.is_empty() {
        return "nothing".into();
    }
    let n = head.len().min(8);
    let printable = head[..n].iter().all(|b| b.is_ascii_graphic() || *b == b' ');
    if printable {
        format!("\"{}\"", String::from_utf8_lossy(&head[..n]))
    } else {
        let hex: Vec<String> = head[..n].iter().map(|b| format!("{b:02x}")).collect();
        format!("bytes {}", hex.join(" "))
    }
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

type BoxRead = Box<dyn Read + Send>;

/// Opens `path` (`-` = standard input) and peels compression off by magic bytes.
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

fn open_decompressed(
    path: &str,
    counter: &Arc<AtomicU64>,
    damaged: &Arc<AtomicBool>,
) -> Result<(BoxRead, Option<Compression>), CaptureError> {
    let raw: BoxRead = if path == "-" {
        Box::new(Counted {
            inner: io::stdin(),
            n: Arc::clone(counter),
        })
    } else {
        let f = File::open(Path::new(path)).map_err(|source| CaptureError::Open {
            path: path.to_string(),
            source,
        })?;
        Box::new(Counted {
            inner: f,
            n: Arc::clone(counter),
        })
    };
    let open_err = |source| CaptureError::Open {
        path: path.to_string(),
        source,
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
            .map_err(|e| CaptureError::NotACapture {
            path: path.to_string(),
            starts_with: format!("a zstd header that does not decode ({e})"),
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

#[derive(Clone, Copy)]
struct Interface {
    linktype: u32,
    /// Timestamp units per second.
    resolution: u64,
    offset_s: i64,
}

fn ng_ts(high: u32, low: u32, iface: &Interface) -> Nanos {
    let raw = (u64::from(high) << 32) | u64::from(low);
    let res = iface.resolution.max(1);
    let secs = raw / res;
    let frac = raw % res;
    let nanos = (u128::from(frac) * 1_000_000_000u128 / u128::from(res)) as i64;
    (secs as i64)
        .saturating_add(iface.offset_s)
        .saturating_mul(1_000_000_000)
        .saturating_add(nanos)
}

/// Reads one input to the end, calling `on_frame` for every packet. Returns what was learnt
/// about the input; problems after the header become warnings in the summary.
pub fn read_input(
    path: &str,
    file_index: usize,
    on_frame: &mut dyn FnMut(&Frame<'_>),
) -> Result<InputSummary, CaptureError> {
    read_input_with_progress(path, file_index, on_frame, &mut |_| {})
}

/// Frames between progress reports.
const PROGRESS_EVERY: u64 = 16_384;

/// Frames copied out of the reader's buffer, handed from the reading thread to the analysis.
struct Batch {
    data: Vec<u8>,
    frames: Vec<Meta>,
    /// Raw input bytes read when the batch was sent (for progress).
    read: u64,
}

/// A [`Frame`] without its borrow: where its bytes sit in [`Batch::data`].
struct Meta {
    number: u64,
    ts: Nanos,
    linktype: u32,
    orig_len: u32,
    interface: u32,
    start: usize,
    len: usize,
}

/// Bytes of frame data per batch, and batches in flight (each way): 1 MiB in all. On two
/// cores the reading thread shares its core with the summarising one (which yields it often,
/// see `analysis`); the batches already read must last until the reader runs again or the
/// analysis thread, the critical path, starves. Deeper (2-4 MiB) measured no faster once the
/// summariser yields, and costs peak memory.
const BATCH_BYTES: usize = 128 << 10;
const BATCHES: usize = 8;
/// Frames per batch at most (a batch of minimum-size frames).
const BATCH_FRAMES: usize = 2048;

/// [`read_input_with_progress`] with the reading (file I/O, decompression, container parsing)
/// on a second thread, so it overlaps the analysis on another core. Frames reach `on_frame` in
/// the same order, with the same contents, as from the single-threaded reader, through
/// recycled batch buffers that the frames are copied into. Not for live input: a batch waits
/// until it is full.
pub fn read_input_threaded(
    path: &str,
    file_index: usize,
    on_frame: &mut dyn FnMut(&Frame<'_>),
    progress: &mut dyn FnMut(u64),
) -> Result<InputSummary, CaptureError> {
    let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<Batch>(BATCHES);
    let (empty_tx, empty_rx) = std::sync::mpsc::sync_channel::<Batch>(BATCHES + 1);
    for _ in 0..BATCHES {
        let _ = empty_tx.send(Batch {
            data: Vec::with_capacity(BATCH_BYTES + (16 << 10)),
            frames: Vec::with_capacity(BATCH_FRAMES),
            read: 0,
        });
    }
    std::thread::scope(|scope| {
        let reader = scope.spawn(move || {
            let read = std::cell::Cell::new(0u64);
            let mut batch: Option<Batch> = empty_rx.recv().ok();
            let mut gone = false;
            let mut on = |f: &Frame<'_>| {
                if gone {
                    return;
                }
                let Some(b) = batch.as_mut() else {
                    return;
                };
                b.frames.push(Meta {
                    number: f.number,
                    ts: f.ts,
                    linktype: f.linktype,
                    orig_len: f.orig_len,
                    interface: f.interface,
                    start: b.data.len(),
                    len: f.data.len(),
                });
                b.data.extend_from_slice(f.data);
                if b.data.len() >= BATCH_BYTES || b.frames.len() >= BATCH_FRAMES {
                    if let Some(mut full) = batch.take() {
                        full.read = read.get();
                        if full_tx.send(full).is_err() {
                            gone = true;
                            return;
                        }
                    }
                    batch = empty_rx.recv().ok();
                    gone = batch.is_none();
                }
            };
            let summary = read_input_with_progress(path, file_index, &mut on, &mut |n| read.set(n));
            if let Some(mut last) = batch.take().filter(|b| !b.frames.is_empty()) {
                last.read = read.get();
                let _ = full_tx.send(last);
            }
            drop(full_tx);
            summary
        });
        // Empty batches go back in groups: each return to a reader waiting for one wakes it
        // (a futex call, an interprocessor interrupt under a hypervisor), and one wake per
        // batch was a sixth of the analysis thread. Before waiting for a full batch, every
        // empty one is returned, so the reader is never left without one to fill.
        let mut empties: Vec<Batch> = Vec::with_capacity(BATCHES);
        let give_back = |empties: &mut Vec<Batch>| {
            for b in empties.drain(..) {
                // The reader may have finished and dropped its receiver.
                let _ = empty_tx.try_send(b);
            }
        };
        loop {
            let mut b = match full_rx.try_recv() {
                Ok(b) => b,
                Err(std::sync::mpsc::TryRecvError::Empty) => {
                    give_back(&mut empties);
                    match full_rx.recv() {
                        Ok(b) => b,
                        Err(_) => break,
                    }
                }
                Err(std::sync::mpsc::TryRecvError::Disconnected) => break,
            };
            for m in &b.frames {
                let Some(data) = b.data.get(m.start..m.start + m.len) else {
                    continue;
                };
                on_frame(&Frame {
                    file: file_index,
                    number: m.number,
                    ts: m.ts,
                    linktype: m.linktype,
                    orig_len: m.orig_len,
                    interface: m.interface,
                    data,
                });
            }
            progress(b.read);
            b.frames.clear();
            b.data.clear();
            empties.push(b);
            if empties.len() >= BATCHES / 2 {
                give_back(&mut empties);
            }
        }
        match reader.join() {
            Ok(r) => r,
            Err(_) => Err(CaptureError::Open {
                path: path.to_string(),
                source: io::Error::other("the reading thread failed"),
            }),
        }
    })
}

/// [`read_input`], calling `progress` now and then with the raw bytes read so far.
pub fn read_input_with_progress(
    path: &str,
    file_index: usize,
    on_frame: &mut dyn FnMut(&Frame<'_>),
    progress: &mut dyn FnMut(u64),
) -> Result<InputSummary, CaptureError> {
    let counter = Arc::new(AtomicU64::new(0));
    let damaged = Arc::new(AtomicBool::new(false));
    let (reader, compression) = open_decompressed(path, &counter, &damaged)?;
    let (head, reader) = peek_head(reader).map_err(|source| CaptureError::Open {
        path: path.to_string(),
        source,
    })?;
    let not_capture = || CaptureError::NotACapture {
        path: path.to_string(),
        starts_with: describe_head(&head),
    };
    if head.is_empty() {
        return Err(CaptureError::Empty {
            path: path.to_string(),
        });
    }
    let known_magic = head.len() >= 4
        && matches!(
            u32::from_le_bytes([head[0], head[1], head[2], head[3]]),
            0xa1b2_c3d4
                | 0xd4c3_b2a1
                | 0xa1b2_3c4d
                | 0x4d3c_b2a1
                | 0xa1b2_cd34
                | 0x34cd_b2a1
                | 0x0a0d_0d0a
        );
    let mut rdr = match pcap_parser::create_reader(READ_BUFFER, reader) {
        Ok(r) => r,
        Err(PcapError::Eof) => {
            return Err(CaptureError::Empty {
                path: path.to_string(),
            })
        }
        Err(_) if known_magic => {
            // Shorter than the header it announces: cut, not foreign.
            let have = counter.load(Ordering::Relaxed) as usize;
            let declared = match (head.get(..4), head.get(4..8)) {
                (Some([0x0a, 0x0d, 0x0d, 0x0a]), Some(l)) => {
                    let le = u32::from_le_bytes([l[0], l[1], l[2], l[3]]);
                    let be = u32::from_be_bytes([l[0], l[1], l[2], l[3]]);
                    le.min(be) as usize
                }
                (Some([0x0a, 0x0d, 0x0d, 0x0a]), None) => usize::MAX,
                _ => 24,
            };
            if compression.is_some() || have < declared {
                return Err(CaptureError::HeaderCut {
                    path: path.to_string(),
                    len: have,
                });
            }
            return Err(not_capture());
        }
        Err(_) => return Err(not_capture()),
    };
    let mut sum = InputSummary {
        path: path.to_string(),
        compression,
        ..Default::default()
    };
    let mut legacy: Option<(u32, bool)> = None; // (linktype, nanosecond)
    let mut ifaces: Vec<Interface> = Vec::new();
    let mut number: u64 = 0;
    let mut capacity = READ_BUFFER;
    let mut stalled = 0u32;
    let mut bad_interface = 0u64;

    loop {
        let step = rdr.next();
        match step {
            Ok((len, block)) => {
                stalled = 0;
                match block {
                    PcapBlockOwned::LegacyHeader(h) => {
                        sum.legacy_header(&h);
                        legacy = Some((h.network.0 as u32, h.is_nanosecond_precision()));
                    }
                    PcapBlockOwned::Legacy(b) => {
                        if let Some((lt, nano)) = legacy {
                            number += 1;
                            deliver(
                                &mut sum,
                                on_frame,
                                &Frame {
                                    file: file_index,
                                    number,
                                    ts: legacy_ts(&b, nano),
                                    linktype: lt,
                                    orig_len: b.origlen,
                                    interface: 0,
                                    data: b.data,
                                },
                            );
                        }
                    }
                    PcapBlockOwned::NG(Block::SectionHeader(shb)) => {
                        sum.format = Some(Format::Pcapng);
                        sum.big_endian = shb.big_endian();
                        ifaces.clear();
                    }
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                        ifaces.push(Interface {
                            linktype: idb.linktype.0 as u32,
                            resolution: idb.ts_resolution().unwrap_or(1_000_000),
                            offset_s: idb.ts_offset(),
                        });
                        sum.interfaces += 1;
                        if sum.snaplen.is_none() && idb.snaplen != 0 {
                            sum.snaplen = Some(idb.snaplen);
                        }
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        number += 1;
                        match ifaces.get(epb.if_id as usize) {
                            Some(iface) => {
                                deliver(
                                    &mut sum,
                                    on_frame,
                                    &Frame {
                                        file: file_index,
                                        number,
                                        ts: ng_ts(epb.ts_high, epb.ts_low, iface),
                                        linktype: iface.linktype,
                                        orig_len: epb.origlen,
                                        interface: epb.if_id,
                                        data: epb.packet_data(),
                                    },
                                );
                            }
                            None => {
                                bad_interface += 1;
                                if bad_interface <= 10 {
                                    sum.warnings.push(format!(
                                        "frame {number}: packet names interface {} but the \
                                         section declares {}; skipped",
                                        epb.if_id,
                                        ifaces.len()
                                    ));
                                }
                            }
                        }
                    }
                    PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                        number += 1;
                        if let Some(iface) = ifaces.first() {
                            let ts = sum.last_ts.unwrap_or(0);
                            deliver(
                                &mut sum,
                                on_frame,
                                &Frame {
                                    file: file_index,
                                    number,
                                    ts,
                                    linktype: iface.linktype,
                                    orig_len: spb.origlen,
                                    interface: 0,
                                    data: spb.packet_data(),
                                },
                            );
                        }
                    }
                    PcapBlockOwned::NG(_) => {}
                }
                rdr.consume_noshift(len);
                sum.bytes += len as u64;
                if sum.packets.is_multiple_of(PROGRESS_EVERY) {
                    progress(counter.load(Ordering::Relaxed));
                }
            }
            Err(PcapError::Eof) => break,
            Err(PcapError::Incomplete(_)) => {
                if rdr.data().is_empty() && rdr.reader_exhausted() {
                    break; // clean end of file
                }
                let before = rdr.data().len();
                if rdr.refill().is_err() {
                    sum.warnings.push(read_error_warning(&sum));
                    break;
                }
                if rdr.data().len() == before {
                    stalled += 1;
                    if rdr.data().is_empty() {
                        break;
                    }
                    if stalled > 2 || rdr.reader_exhausted() {
                        sum.warnings.push(truncated_warning(&sum, number));
                        break;
                    }
                }
            }
            Err(PcapError::UnexpectedEof) => {
                sum.warnings.push(truncated_warning(&sum, number));
                break;
            }
            Err(PcapError::BufferTooSmall) => {
                if capacity >= MAX_BLOCK {
                    sum.warnings.push(oversized_warning(&sum, number));
                    break;
                }
                capacity = (capacity * 2).min(MAX_BLOCK);
                if !rdr.grow(capacity) {
                    sum.warnings.push(format!(
                        "record at byte {} too large to buffer; rest not analysed",
                        sum.bytes
                    ));
                    break;
                }
                if rdr.refill().is_err() {
                    break;
                }
            }
            Err(e) => {
                if sum.format.is_none() {
                    return Err(not_capture());
                }
                let what = match e {
                    PcapError::HeaderNotRecognized => "unrecognised header".to_string(),
                    PcapError::ReadError => "read error".to_string(),
                    _ => "corrupt block".to_string(),
                };
                sum.warnings.push(format!(
                    "{what} at byte {} (after frame {number}); the rest of the file was not \
                     analysed",
                    sum.bytes
                ));
                break;
            }
        }
    }
    if sum.format.is_none() {
        return Err(not_capture());
    }
    if bad_interface > 10 {
        sum.warnings.push(format!(
            "... and {} more packets naming an undeclared interface; skipped",
            bad_interface - 10
        ));
    }
    if damaged.load(Ordering::Relaxed) {
        sum.warnings.push(damaged_warning(compression, &counter));
    }
    progress(counter.load(Ordering::Relaxed));
    Ok(sum)
}

fn deliver(sum: &mut InputSummary, on_frame: &mut dyn FnMut(&Frame<'_>), f: &Frame<'_>) {
    sum.count_frame(f.linktype, f.ts);
    on_frame(f);
}

/// A legacy pcap record's capture time.
fn legacy_ts(rec: &pcap_parser::LegacyPcapBlock<'_>, nano: bool) -> Nanos {
    let sub = if nano {
        i64::from(rec.ts_usec)
    } else {
        i64::from(rec.ts_usec) * 1000
    };
    i64::from(rec.ts_sec) * 1_000_000_000 + sub.min(999_999_999_999)
}

fn read_error_warning(sum: &InputSummary) -> String {
    format!(
        "read error after byte {}; the rest of the file was not analysed",
        sum.bytes
    )
}

fn oversized_warning(sum: &InputSummary, number: u64) -> String {
    format!(
        "record at byte {} (after frame {number}) is larger than {} MiB; the file is corrupt \
         from there and the rest was not analysed",
        sum.bytes,
        MAX_BLOCK >> 20
    )
}

fn damaged_warning(compression: Option<Compression>, counter: &AtomicU64) -> String {
    format!(
        "the {} stream is cut short or damaged after {} compressed bytes; everything decoded \
         before that was analysed",
        match compression {
            Some(Compression::Zstd) => "zstd",
            _ => "gzip",
        },
        counter.load(Ordering::Relaxed)
    )
}

fn truncated_warning(sum: &InputSummary, number: u64) -> String {
    format!(
        "capture is truncated: the last record, after frame {number}, is cut at byte {}; \
         everything before it was analysed",
        sum.bytes
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames (all fields and bytes), summary and warnings, as one reader delivers them.
    fn read_with(path: &str, threaded: bool) -> String {
        let mut out = String::new();
        let mut on = |f: &Frame<'_>| {
            out.push_str(&format!(
                "{} {} {} {} {} {:?}\n",
                f.number, f.ts, f.linktype, f.orig_len, f.interface, f.data
            ))
        };
        let r = if threaded {
            read_input_threaded(path, 0, &mut on, &mut |_| {})
        } else {
            read_input_with_progress(path, 0, &mut on, &mut |_| {})
        };
        format!("{out}{r:?}")
    }

    /// The threaded reader against the single-threaded one, on a capture spanning many
    /// batches with a record larger than a batch, cut at every kind of place, with a corrupt
    /// record length, and gzip-compressed whole and cut.
    /// (The long capture and the oversized and corrupt records are built from a real sample's
    /// records; no stack writes them so.)
    #[test]
    fn threaded_reader_equals_the_single_threaded_one() {
        let sample = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/samples/mixed.pcap"))
            .expect("sample");
        let (head, records) = sample.split_at(24);
        let mut long = head.to_vec();
        while long.len() < 6 * BATCH_BYTES {
            long.extend_from_slice(records);
        }
        // A 100 KiB record (larger than a batch) in the middle.
        let big = 100 << 10;
        let mut rec = vec![0u8; 16];
        rec[8..12].copy_from_slice(&(big as u32).to_le_bytes());
        rec[12..16].copy_from_slice(&(big as u32).to_le_bytes());
        rec.extend(std::iter::repeat_n(0x5a, big));
        long.extend_from_slice(&rec);
        long.extend_from_slice(records);
        let mut corrupt = long[..24 + records.len()].to_vec();
        corrupt.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0xf0, 0xff, 0xff, 0x7f, 1, 0, 0, 0]);
        corrupt.extend_from_slice(&[0; 64]);
        let mut cases: Vec<(String, Vec<u8>)> =
            vec![("whole".into(), long.clone()), ("corrupt".into(), corrupt)];
        for cut in [
            10,
            24,
            30,
            24 + 16 + 3,
            BATCH_BYTES + 7,
            long.len() - 1,
            long.len() - 20,
        ] {
            cases.push((format!("cut at {cut}"), long[..cut].to_vec()));
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &long).expect("gzip");
        let gz = gz.finish().expect("gzip");
        cases.push(("gzip".into(), gz.clone()));
        cases.push(("gzip cut".into(), gz[..gz.len() / 2].to_vec()));
        let dir = std::env::temp_dir();
        for (what, bytes) in cases {
            let path = dir.join(format!(
                "tlsdiag-threaded-{}-{}.pcap",
                std::process::id(),
                what.replace(' ', "-")
            ));
            std::fs::write(&path, &bytes).expect("write");
            let p = path.to_string_lossy().into_owned();
            let (general, in_place) = (read_with(&p, false), read_with(&p, true));
            let _ = std::fs::remove_file(&path);
            assert!(general == in_place, "{what}: the readers differ");
            assert!(
                general.len() > 40 || what.starts_with("cut at"),
                "{what}: {general}"
            );
        }
    }

    #[test]
    fn describe_head_shows_text_or_hex() {
        assert_eq!(describe_head(b"GET / HTTP/1.1"), "\"GET / HT\"");
        assert_eq!(describe_head(&[0, 1, 2]), "bytes 00 01 02");
        assert_eq!(describe_head(b""), "nothing");
    }

    #[test]
    fn frame_ref_keeps_file_and_frame_in_16_bytes_and_orders_like_the_pair() {
        assert_eq!(std::mem::size_of::<Option<FrameRef>>(), 16);
        let cases = [
            (0, 0),
            (0, 1),
            (1, 0),
            (3, 1 << 40),
            (MAX_FILES - 1, FRAME_MASK - 1),
        ];
        for (file, frame) in cases {
            let r = FrameRef::new(file, frame, -5);
            assert_eq!((r.file(), r.frame(), r.ts), (file, frame, -5));
        }
        let mut refs: Vec<FrameRef> = cases.iter().map(|&(f, n)| FrameRef::new(f, n, 0)).collect();
        refs.reverse();
        refs.sort();
        let back: Vec<(usize, u64)> = refs.iter().map(|r| (r.file(), r.frame())).collect();
        assert_eq!(back, cases);
        // Beyond the range: clamped, never wrapped onto another file.
        let r = FrameRef::new(usize::MAX, u64::MAX, 0);
        assert_eq!((r.file(), r.frame()), (MAX_FILES - 1, FRAME_MASK - 1));
    }

    #[test]
    fn pcapng_timestamp_honours_resolution_and_offset() {
        let micro = Interface {
            linktype: 1,
            resolution: 1_000_000,
            offset_s: 0,
        };
        // 1.5 s in microseconds
        assert_eq!(ng_ts(0, 1_500_000, &micro), 1_500_000_000);
        let nano = Interface {
            linktype: 1,
            resolution: 1_000_000_000,
            offset_s: 10,
        };
        assert_eq!(ng_ts(0, 7, &nano), 10_000_000_007);
    }
}
