//! The reading thread: the read loop on a second thread, so that file I/O, decompression and
//! container parsing overlap the analysis on another core; one file, several merged by packet
//! time ([`super::merge`]), or standard input read live.
//!
//! Owns the batches that carry frames between the two threads: the reader copies each frame's
//! bytes into a batch and sends it when full (live, also whenever it has read all the input
//! there is, before it waits for more); the analysis thread hands the frames on, in order, and
//! sends the emptied batch back. The batches are recycled, so memory stays at [`BATCHES`] x
//! [`BATCH_BYTES`] whatever the file size. Live, the analysis thread wakes every
//! [`QUIET_TICK`] while no packet comes, so the caller can settle connections by the wall clock.

use super::merge::{read_merged, Merged};
use super::reader::read_input_with_progress;
use super::{CaptureError, Frame, InputSummary, Nanos};
use std::cell::RefCell;
use std::io;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::time::{Duration, Instant};

/// Bytes of frame data per batch, and batches in flight (each way): 1 MiB in all. On two
/// cores the reading thread shares its core with the summarising one (which yields it often,
/// see `pipeline`); the batches already read must last until the reader runs again or the
/// analysis thread, the critical path, starves. Deeper (2-4 MiB) measured no faster once the
/// summariser yields, and costs peak memory.
const BATCH_BYTES: usize = 128 << 10;
const BATCHES: usize = 8;
/// Frames per batch at most (a batch of minimum-size frames).
const BATCH_FRAMES: usize = 2048;
/// Live input: how often the analysis thread wakes while no packet arrives.
pub const QUIET_TICK: Duration = Duration::from_millis(100);

/// Frames copied out of the reader's buffer, handed from the reading thread to the analysis.
struct Batch {
    data: Vec<u8>,
    frames: Vec<Meta>,
    /// (input, raw bytes of it read) when the batch was sent, for progress.
    read: (usize, u64),
}

/// A [`Frame`] without its borrow: where its bytes sit in [`Batch::data`].
struct Meta {
    file: usize,
    number: u64,
    ts: Nanos,
    linktype: u32,
    orig_len: u32,
    interface: u32,
    start: usize,
    len: usize,
}

impl Batch {
    fn new() -> Self {
        Batch {
            data: Vec::with_capacity(BATCH_BYTES + (16 << 10)),
            frames: Vec::with_capacity(BATCH_FRAMES),
            read: (0, 0),
        }
    }

    /// Copies a frame in; says whether the batch is now full.
    fn push(&mut self, f: &Frame<'_>) -> bool {
        self.frames.push(Meta {
            file: f.file,
            number: f.number,
            ts: f.ts,
            linktype: f.linktype,
            orig_len: f.orig_len,
            interface: f.interface,
            start: self.data.len(),
            len: f.data.len(),
        });
        self.data.extend_from_slice(f.data);
        self.data.len() >= BATCH_BYTES || self.frames.len() >= BATCH_FRAMES
    }

    /// Hands the frames to `on_frame`, in order.
    fn deliver(&self, on_frame: &mut dyn FnMut(&Frame<'_>)) {
        for m in &self.frames {
            let Some(data) = self.data.get(m.start..m.start + m.len) else {
                continue;
            };
            on_frame(&Frame {
                file: m.file,
                number: m.number,
                ts: m.ts,
                linktype: m.linktype,
                orig_len: m.orig_len,
                interface: m.interface,
                data,
            });
        }
    }

    fn clear(&mut self) {
        self.frames.clear();
        self.data.clear();
    }
}

/// [`read_input_with_progress`] with the reading on a second thread. Frames reach `on_frame`
/// in the same order, with the same contents, as from the single-threaded reader. Not for live
/// input: a batch waits until it is full.
pub fn read_input_threaded(
    path: &str,
    file_index: usize,
    on_frame: &mut dyn FnMut(&Frame<'_>),
    progress: &mut dyn FnMut(u64),
) -> Result<InputSummary, CaptureError> {
    read_one_threaded(path, file_index, None, on_frame, progress)
}

/// One file read on a second thread; with `on_quiet`, live (see [`read_live`]).
fn read_one_threaded(
    path: &str,
    file_index: usize,
    on_quiet: Option<&mut dyn FnMut(Duration)>,
    on_frame: &mut dyn FnMut(&Frame<'_>),
    progress: &mut dyn FnMut(u64),
) -> Result<InputSummary, CaptureError> {
    let mut progress = |_: usize, n: u64| progress(n);
    on_second_thread(
        path,
        move |on, prog| {
            read_input_with_progress(path, file_index, on, &mut |n| prog(file_index, n))
        },
        on_quiet,
        on_frame,
        &mut progress,
    )
}

/// Several files read as one capture, their frames merged by capture time (see
/// [`super::merge`]), on a second thread; `progress` gets (input, raw bytes of it read).
pub fn read_merged_threaded(
    paths: &[String],
    on_frame: &mut dyn FnMut(&Frame<'_>),
    progress: &mut dyn FnMut(usize, u64),
) -> Result<Merged, CaptureError> {
    let first = paths.first().map_or("", String::as_str);
    on_second_thread(
        first,
        move |on, prog| read_merged(paths, on, prog),
        None,
        on_frame,
        progress,
    )
}

/// Live input (standard input fed by `tcpdump -U -w -`): every frame is handed on as soon as
/// it is read, and while none comes `on_quiet` is called every [`QUIET_TICK`] with the wall
/// time since the last one arrived.
pub fn read_live(
    path: &str,
    file_index: usize,
    on_frame: &mut dyn FnMut(&Frame<'_>),
    on_quiet: &mut dyn FnMut(Duration),
    progress: &mut dyn FnMut(u64),
) -> Result<InputSummary, CaptureError> {
    read_one_threaded(path, file_index, Some(on_quiet), on_frame, progress)
}

/// Runs `read` on a second thread, its frames carried over in batches to `on_frame` here;
/// live when `on_quiet` is given.
fn on_second_thread<R: Send>(
    what: &str,
    read: impl FnOnce(&mut dyn FnMut(&Frame<'_>), &mut dyn FnMut(usize, u64)) -> Result<R, CaptureError>
        + Send,
    on_quiet: Option<&mut dyn FnMut(Duration)>,
    on_frame: &mut dyn FnMut(&Frame<'_>),
    progress: &mut dyn FnMut(usize, u64),
) -> Result<R, CaptureError> {
    let (full_tx, full_rx) = sync_channel::<Batch>(BATCHES);
    let (empty_tx, empty_rx) = sync_channel::<Batch>(BATCHES + 1);
    for _ in 0..BATCHES {
        let _ = empty_tx.send(Batch::new());
    }
    let live = on_quiet.is_some();
    std::thread::scope(|scope| {
        let reader = scope.spawn(move || {
            let filler = RefCell::new(Filler {
                batch: empty_rx.recv().ok(),
                empties: &empty_rx,
                full: &full_tx,
                read: (0, 0),
                live,
            });
            let r = read(&mut |f| filler.borrow_mut().push(f), &mut |i, n| {
                filler.borrow_mut().progress(i, n)
            });
            filler.borrow_mut().flush();
            r
        });
        hand_out(&full_rx, &empty_tx, on_frame, progress, on_quiet);
        match reader.join() {
            Ok(r) => r,
            Err(_) => Err(CaptureError::Open {
                path: what.to_string(),
                source: io::Error::other("the reading thread failed"),
            }),
        }
    })
}

/// The batch the reading thread is filling, and where full and empty batches go.
struct Filler<'c> {
    /// `None` once the analysis side has gone: frames are then dropped.
    batch: Option<Batch>,
    empties: &'c Receiver<Batch>,
    full: &'c SyncSender<Batch>,
    /// (input, raw bytes of it read) so far.
    read: (usize, u64),
    /// Send what is read before reading more (which may wait for the next packet).
    live: bool,
}

impl Filler<'_> {
    /// Copies a frame into the batch; sends the batch on when full and takes an empty one.
    fn push(&mut self, f: &Frame<'_>) {
        let Some(b) = self.batch.as_mut() else {
            return;
        };
        if b.push(f) {
            self.send();
        }
    }

    /// Progress from the read loop; live, the batch goes on now, even partly filled.
    fn progress(&mut self, file: usize, bytes: u64) {
        self.read = (file, bytes);
        if self.live && self.batch.as_ref().is_some_and(|b| !b.frames.is_empty()) {
            self.send();
        }
    }

    /// Sends the batch on and takes an empty one.
    fn send(&mut self) {
        if let Some(mut full) = self.batch.take() {
            full.read = self.read;
            if self.full.send(full).is_err() {
                return;
            }
        }
        self.batch = self.empties.recv().ok();
    }

    /// Sends the last, partly filled batch.
    fn flush(&mut self) {
        if let Some(mut last) = self.batch.take().filter(|b| !b.frames.is_empty()) {
            last.read = self.read;
            let _ = self.full.send(last);
        }
    }
}

/// The analysis side: hands on the frames of each full batch, in order, and returns the
/// emptied batches to the reader, until the reader is done. Live, calls `on_quiet` while no
/// batch comes.
fn hand_out(
    full: &Receiver<Batch>,
    empty: &SyncSender<Batch>,
    on_frame: &mut dyn FnMut(&Frame<'_>),
    progress: &mut dyn FnMut(usize, u64),
    on_quiet: Option<&mut dyn FnMut(Duration)>,
) {
    let live = on_quiet.is_some();
    let mut no_quiet = |_: Duration| {};
    let on_quiet = on_quiet.unwrap_or(&mut no_quiet);
    // Empty batches go back in groups: each return to a reader waiting for one wakes it
    // (a futex call, an interprocessor interrupt under a hypervisor), and one wake per
    // batch was a sixth of the analysis thread. Before waiting for a full batch, every
    // empty one is returned, so the reader is never left without one to fill.
    let mut empties: Vec<Batch> = Vec::with_capacity(BATCHES);
    let give_back = |empties: &mut Vec<Batch>| {
        for b in empties.drain(..) {
            // The reader may have finished and dropped its receiver.
            let _ = empty.try_send(b);
        }
    };
    let mut last = Instant::now();
    loop {
        let mut b = match full.try_recv() {
            Ok(b) => b,
            Err(TryRecvError::Empty) => {
                give_back(&mut empties);
                match wait(full, live, &mut *on_quiet, last) {
                    Some(b) => b,
                    None => break,
                }
            }
            Err(TryRecvError::Disconnected) => break,
        };
        if live {
            last = Instant::now();
        }
        b.deliver(on_frame);
        progress(b.read.0, b.read.1);
        b.clear();
        empties.push(b);
        if empties.len() >= BATCHES / 2 {
            give_back(&mut empties);
        }
    }
}

/// The next batch (`None` when the reader is done); live, calls `on_quiet` every
/// [`QUIET_TICK`] of waiting with the time since `last` batch.
fn wait(
    full: &Receiver<Batch>,
    live: bool,
    on_quiet: &mut dyn FnMut(Duration),
    last: Instant,
) -> Option<Batch> {
    if !live {
        return full.recv().ok();
    }
    loop {
        match full.recv_timeout(QUIET_TICK) {
            Ok(b) => return Some(b),
            Err(RecvTimeoutError::Timeout) => on_quiet(last.elapsed()),
            Err(RecvTimeoutError::Disconnected) => return None,
        }
    }
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
            let (single, threaded) = (read_with(&p, false), read_with(&p, true));
            let _ = std::fs::remove_file(&path);
            assert!(single == threaded, "{what}: the readers differ");
            assert!(
                single.len() > 40 || what.starts_with("cut at"),
                "{what}: {single}"
            );
        }
    }
}
