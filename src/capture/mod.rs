//! Capture: turns files (or standard input) into a stream of [`Frame`]s.
//!
//! Owns everything about the container: compression (gzip, zstd, recognised by magic bytes),
//! legacy pcap (micro/nanosecond, both byte orders, the "modified" variant) and pcapng (several
//! sections and interfaces, each with its own link type and timestamp resolution). Frames borrow
//! the reader's buffer and are handed to a callback one at a time, so memory does not depend on
//! the file size. Truncated and corrupt files end the file with a warning, never a panic or a
//! loop: the reader keeps a no-progress guard and a cap on the block size it will buffer.
//!
//! Hands on [`Frame`]s (for `wire` to decode) and one [`InputSummary`] per input.
//! The files: `open` (path or standard input, compression, the container's magic), `pcap` and
//! `pcapng` (each format's headers and timestamps), `reader` (the block loop and its guards),
//! `threaded` (the same loop on a second thread, frames handed over in batches; standard input
//! live), `merge` (several files as one capture, frames in capture-time order).

mod merge;
mod open;
mod pcap;
mod pcapng;
mod reader;
mod threaded;

pub use merge::Merged;
pub use open::describe_head;
pub use reader::{read_input, read_input_with_progress};
pub use threaded::{read_input_threaded, read_live, read_merged_threaded, QUIET_TICK};

use std::fmt;
use std::io;
use std::num::NonZeroU64;

/// Nanoseconds since the Unix epoch.
pub type Nanos = i64;

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

/// The link type of a pseudo-frame that carries a pcapng Decryption Secrets Block's TLS key
/// log (its secrets type, "TLSK"; link types are 16-bit, so no packet has it). It travels
/// with the frames so that the secrets reach the analysis before the packets after them.
pub const LINKTYPE_TLS_SECRETS: u32 = 0x544c_534b;

impl<'a> Frame<'a> {
    /// The pseudo-frame of a Decryption Secrets Block: not a packet, so it takes no frame
    /// number (it carries the last packet's) and no time.
    pub fn tls_secrets(file: usize, number: u64, text: &'a [u8]) -> Self {
        Frame {
            file,
            number,
            ts: Nanos::MIN,
            linktype: LINKTYPE_TLS_SECRETS,
            orig_len: 0,
            interface: 0,
            data: text,
        }
    }
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
    /// The compressed stream fails to decompress before a whole capture header came out.
    Corrupt {
        path: String,
        compression: Compression,
    },
    /// A key log (`--keylog`) that cannot be read.
    KeyLog {
        path: String,
        source: io::Error,
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
            CaptureError::KeyLog { path, source } => {
                write!(f, "{path}: cannot read this key log: {source}")
            }
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
            CaptureError::Corrupt { path, compression } => write!(
                f,
                "{path}: corrupt {} data: it does not decompress (damaged or cut short before \
                 the capture header); nothing to analyse",
                match compression {
                    Compression::Gzip => "gzip",
                    Compression::Zstd => "zstd",
                }
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
