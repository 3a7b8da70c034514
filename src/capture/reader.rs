//! The read loop: pcap-parser's blocks, one at a time, from an opened input to the frame
//! callback, on the caller's thread.
//!
//! Owns the next/consume/refill loop and what keeps it from spinning or swallowing memory on
//! a bad file: a no-progress guard (a refill that adds nothing, twice, ends the file) and a cap
//! ([`MAX_BLOCK`]) on the block size the buffer grows to. Every way a file can end early becomes
//! one warning in the [`InputSummary`]; only an input that never looked like a capture is an
//! error.

use super::open::{self, Opened, READ_BUFFER};
use super::pcap::LegacyFile;
use super::pcapng::Section;
use super::{CaptureError, Compression, Frame, InputSummary, Nanos, MAX_BLOCK};
use pcap_parser::pcapng::{Block, SecretsType};
use pcap_parser::traits::PcapReaderIterator;
use pcap_parser::{PcapBlockOwned, PcapError};
use std::sync::atomic::{AtomicU64, Ordering};

/// Frames between progress reports.
const PROGRESS_EVERY: u64 = 16_384;

/// Reads one input to the end, calling `on_frame` for every packet. Returns what was learnt
/// about the input; problems after the header become warnings in the summary.
pub fn read_input(
    path: &str,
    file_index: usize,
    on_frame: &mut dyn FnMut(&Frame<'_>),
) -> Result<InputSummary, CaptureError> {
    read_input_with_progress(path, file_index, on_frame, &mut |_| {})
}

/// [`read_input`], calling `progress` now and then with the raw bytes read so far, and each
/// time the buffered input is used up, before reading (perhaps waiting for) more.
pub fn read_input_with_progress(
    path: &str,
    file_index: usize,
    on_frame: &mut dyn FnMut(&Frame<'_>),
    progress: &mut dyn FnMut(u64),
) -> Result<InputSummary, CaptureError> {
    let mut file = FileReader::open(path, file_index)?;
    file.read_until(NO_LIMIT, on_frame, progress);
    file.finish(progress)
}

/// A [`FileReader::read_until`] limit that holds no frame back.
pub(super) const NO_LIMIT: (Nanos, usize) = (Nanos::MAX, usize::MAX);

/// One input being read, which can stop before a frame and go on later: the merge of several
/// files reads each up to the time of the next file's frame.
pub(super) struct FileReader<'p> {
    path: &'p str,
    input: Opened,
    state: Blocks,
    guard: Guard,
    /// How the input ended, once it has.
    end: Option<Result<(), NotACapture>>,
}

impl<'p> FileReader<'p> {
    /// Opens `path` (`-` = standard input) as input number `file_index`.
    pub(super) fn open(path: &'p str, file_index: usize) -> Result<Self, CaptureError> {
        let input = open::open(path)?;
        Ok(FileReader {
            path,
            state: Blocks {
                file: file_index,
                number: 0,
                sum: InputSummary {
                    path: path.to_string(),
                    compression: input.compression,
                    ..Default::default()
                },
                legacy: None,
                section: Section::default(),
                limit: NO_LIMIT,
            },
            input,
            guard: Guard {
                capacity: READ_BUFFER,
                stalled: 0,
            },
            end: None,
        })
    }

    /// Hands on frames until the input ends (`None`) or the next frame, captured at the
    /// returned time, comes after `limit` (capture time, then file index): that frame stays
    /// unread, and the next call starts with it.
    pub(super) fn read_until(
        &mut self,
        limit: (Nanos, usize),
        on_frame: &mut dyn FnMut(&Frame<'_>),
        progress: &mut dyn FnMut(u64),
    ) -> Option<Nanos> {
        if self.end.is_some() {
            return None;
        }
        self.state.limit = limit;
        match read_blocks(
            &mut self.input,
            &mut self.state,
            &mut self.guard,
            on_frame,
            progress,
        ) {
            Ok(Some(held)) => Some(held),
            Ok(None) => {
                self.end = Some(Ok(()));
                None
            }
            Err(e) => {
                self.end = Some(Err(e));
                None
            }
        }
    }

    /// What was learnt about the input, once it has ended; an error when it never looked like
    /// a capture.
    pub(super) fn finish(
        self,
        progress: &mut dyn FnMut(u64),
    ) -> Result<InputSummary, CaptureError> {
        let mut sum = self.state.sum;
        if matches!(self.end, Some(Err(_))) || sum.format.is_none() {
            return Err(self.input.not_a_capture(self.path));
        }
        self.state.section.finish(&mut sum);
        if self.input.damaged.load(Ordering::Relaxed) {
            sum.warnings
                .push(damaged_warning(self.input.compression, &self.input.counter));
        }
        progress(self.input.counter.load(Ordering::Relaxed));
        Ok(sum)
    }
}

/// The input turned out not to be a capture (corrupt before any file header was read).
struct NotACapture;

/// Reads blocks until the input ends, cleanly or not (`None`), or until a frame beyond the
/// limit, left unread (its capture time).
fn read_blocks(
    input: &mut Opened,
    blocks: &mut Blocks,
    guard: &mut Guard,
    on_frame: &mut dyn FnMut(&Frame<'_>),
    progress: &mut dyn FnMut(u64),
) -> Result<Option<Nanos>, NotACapture> {
    let rdr = input.blocks.as_mut();
    loop {
        let hitch = match rdr.next() {
            Ok((len, block)) => {
                guard.stalled = 0;
                if let Some(held) = blocks.block(block, on_frame) {
                    return Ok(Some(held));
                }
                rdr.consume_noshift(len);
                blocks.sum.bytes += len as u64;
                if blocks.sum.packets.is_multiple_of(PROGRESS_EVERY) {
                    progress(input.counter.load(Ordering::Relaxed));
                }
                continue;
            }
            Err(e) => Hitch::of(&e),
        };
        if let Hitch::Incomplete = hitch {
            // Before reading more, which on a pipe may wait for the next packet.
            progress(input.counter.load(Ordering::Relaxed));
        }
        match guard.recover(hitch, rdr, &mut blocks.sum, blocks.number) {
            Next::Read => {}
            Next::Stop => return Ok(None),
            Next::NotACapture => return Err(NotACapture),
        }
    }
}

/// The state of one input between blocks.
struct Blocks {
    file: usize,
    /// Frames (packet blocks) so far: Wireshark's `frame.number` of the last one.
    number: u64,
    sum: InputSummary,
    /// The legacy pcap file header, once read.
    legacy: Option<LegacyFile>,
    section: Section,
    /// Frames after this (capture time, file index) are held back.
    limit: (Nanos, usize),
}

impl Blocks {
    /// Takes one block: a file or section header, an interface, or a packet. Returns the
    /// capture time of a packet held back by the limit (the block is then left unread).
    fn block(
        &mut self,
        block: PcapBlockOwned<'_>,
        on_frame: &mut dyn FnMut(&Frame<'_>),
    ) -> Option<Nanos> {
        let next = self.number + 1;
        match block {
            PcapBlockOwned::LegacyHeader(h) => {
                self.legacy = Some(LegacyFile::from_header(&h, &mut self.sum));
            }
            PcapBlockOwned::Legacy(rec) => {
                if let Some(legacy) = self.legacy {
                    return self.deliver(&legacy.frame(self.file, next, &rec), on_frame);
                }
            }
            PcapBlockOwned::NG(Block::SectionHeader(shb)) => {
                self.section.start(&shb, &mut self.sum)
            }
            PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                self.section.interface(&idb, &mut self.sum);
            }
            PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                match self.section.enhanced(&epb, self.file, next, &mut self.sum) {
                    Some(f) => return self.deliver(&f, on_frame),
                    None => self.number = next,
                }
            }
            PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                match self.section.simple(&spb, self.file, next, &self.sum) {
                    Some(f) => return self.deliver(&f, on_frame),
                    None => self.number = next,
                }
            }
            PcapBlockOwned::NG(Block::DecryptionSecrets(dsb))
                if dsb.secrets_type == SecretsType::TlsKeyLog =>
            {
                let len = usize::try_from(dsb.secrets_len).unwrap_or(usize::MAX);
                let text = dsb.data.get(..len).unwrap_or(dsb.data);
                on_frame(&Frame::tls_secrets(self.file, self.number, text));
            }
            PcapBlockOwned::NG(_) => {}
        }
        None
    }

    /// Hands a frame on, or holds it back (its time) when it comes after the limit.
    fn deliver(&mut self, f: &Frame<'_>, on_frame: &mut dyn FnMut(&Frame<'_>)) -> Option<Nanos> {
        if (f.ts, f.file) > self.limit {
            return Some(f.ts);
        }
        self.number = f.number;
        self.sum.count_frame(f.linktype, f.ts);
        on_frame(f);
        None
    }
}

/// Why pcap-parser gave no block, without its borrow of the buffer.
enum Hitch {
    /// The input ended cleanly.
    Eof,
    /// The buffer holds only part of the next block.
    Incomplete,
    /// The input ended inside a block.
    UnexpectedEof,
    /// The next block is larger than the buffer.
    BufferTooSmall,
    /// Bytes that are not a block (or a read that failed): what to call them.
    Corrupt(&'static str),
}

impl Hitch {
    fn of(e: &PcapError<&[u8]>) -> Self {
        match e {
            PcapError::Eof => Hitch::Eof,
            PcapError::Incomplete(_) => Hitch::Incomplete,
            PcapError::UnexpectedEof => Hitch::UnexpectedEof,
            PcapError::BufferTooSmall => Hitch::BufferTooSmall,
            PcapError::HeaderNotRecognized => Hitch::Corrupt("unrecognised header"),
            PcapError::ReadError => Hitch::Corrupt("read error"),
            _ => Hitch::Corrupt("corrupt block"),
        }
    }
}

/// What the read loop does after a hitch.
enum Next {
    Read,
    Stop,
    NotACapture,
}

/// Keeps the read loop from spinning on an input that gives nothing more, and the buffer from
/// growing past [`MAX_BLOCK`].
struct Guard {
    /// The reader's buffer size now.
    capacity: usize,
    /// Refills in a row that added no byte.
    stalled: u32,
}

impl Guard {
    /// Recovers from a hitch, or ends the input with the warning that says why.
    fn recover(
        &mut self,
        hitch: Hitch,
        rdr: &mut dyn PcapReaderIterator,
        sum: &mut InputSummary,
        number: u64,
    ) -> Next {
        match hitch {
            Hitch::Eof => Next::Stop,
            Hitch::Incomplete => self.refill(rdr, sum, number),
            Hitch::UnexpectedEof => {
                sum.warnings.push(truncated_warning(sum, number));
                Next::Stop
            }
            Hitch::BufferTooSmall => self.grow(rdr, sum, number),
            Hitch::Corrupt(_) if sum.format.is_none() => Next::NotACapture,
            Hitch::Corrupt(what) => {
                sum.warnings.push(format!(
                    "{what} at byte {} (after frame {number}); the rest of the file was not \
                     analysed",
                    sum.bytes
                ));
                Next::Stop
            }
        }
    }

    /// Reads more into a buffer that holds part of a block; ends the input when nothing more
    /// comes.
    fn refill(
        &mut self,
        rdr: &mut dyn PcapReaderIterator,
        sum: &mut InputSummary,
        number: u64,
    ) -> Next {
        if rdr.data().is_empty() && rdr.reader_exhausted() {
            return Next::Stop; // clean end of file
        }
        let before = rdr.data().len();
        if rdr.refill().is_err() {
            sum.warnings.push(read_error_warning(sum));
            return Next::Stop;
        }
        if rdr.data().len() == before {
            self.stalled += 1;
            if rdr.data().is_empty() {
                return Next::Stop;
            }
            if self.stalled > 2 || rdr.reader_exhausted() {
                sum.warnings.push(truncated_warning(sum, number));
                return Next::Stop;
            }
        }
        Next::Read
    }

    /// Doubles the buffer for a block larger than it, up to [`MAX_BLOCK`].
    fn grow(
        &mut self,
        rdr: &mut dyn PcapReaderIterator,
        sum: &mut InputSummary,
        number: u64,
    ) -> Next {
        if self.capacity >= MAX_BLOCK {
            sum.warnings.push(oversized_warning(sum, number));
            return Next::Stop;
        }
        self.capacity = (self.capacity * 2).min(MAX_BLOCK);
        if !rdr.grow(self.capacity) {
            sum.warnings.push(format!(
                "record at byte {} too large to buffer; rest not analysed",
                sum.bytes
            ));
            return Next::Stop;
        }
        if rdr.refill().is_err() {
            return Next::Stop;
        }
        Next::Read
    }
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
