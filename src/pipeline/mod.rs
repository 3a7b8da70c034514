//! Pipeline: drives capture -> wire -> flow (and TLS) for every frame, and settles each
//! finished connection (diagnose: facts, capture-point evidence, verdict code) into the store,
//! on a second thread.
//!
//! The library's entry point is [`analyze`]. It never prints: it returns a [`Report`] that the
//! report module renders. Per-packet problems never abort a run; an input that cannot be read
//! at all is an error naming the file.

mod keys;
mod options;
mod run;
mod settle;

pub use options::{Options, RedactOptions};

use crate::analysis::Report;
use crate::capture::{self, CaptureError, Frame};
use crate::flow::Conn;
use crate::model::Connection;
use run::Run;
use settle::{Batch, Settler, SETTLE_QUEUE};

/// Analyses the inputs, in the order given, as one capture.
pub fn analyze(paths: &[String], opts: &Options) -> Result<Report, CaptureError> {
    analyze_with_progress(paths, opts, &mut |_, _| {})
}

/// [`analyze`], reporting progress as (input index, raw bytes of that input read so far).
pub fn analyze_with_progress(
    paths: &[String],
    opts: &Options,
    progress: &mut dyn FnMut(usize, u64),
) -> Result<Report, CaptureError> {
    analyze_live(paths, opts, progress, None)
}

/// [`analyze_with_progress`] for live use: each connection is handed to `on_settled` as soon
/// as its outcome is settled (closed and quiet, idle, or at the end), in settling order and
/// worded for its own capture-point evidence; the returned report then holds no
/// connections, only the summary. `on_settled` runs on the summarising thread.
pub fn analyze_live(
    paths: &[String],
    opts: &Options,
    progress: &mut dyn FnMut(usize, u64),
    on_settled: Option<&mut (dyn FnMut(Connection) + Send)>,
) -> Result<Report, CaptureError> {
    if paths.len() > crate::capture::MAX_FILES {
        return Err(CaptureError::TooManyFiles {
            first: paths.first().cloned().unwrap_or_default(),
            count: paths.len(),
        });
    }
    let mut run = Run::new(paths.len() > 1, opts);
    run.names = paths.to_vec();
    run.load_key_logs()?;
    run.settler.on_settled = on_settled;
    let read_all = |run: &mut Run<'_, '_>, progress: &mut dyn FnMut(usize, u64)| {
        read_inputs(run, paths, progress)
    };
    if settle_in_line_for_tests() {
        read_all(&mut run, progress)?;
        return Ok(run.finish());
    }
    // Settled connections are summarised and stored (or, live, handed to the caller) on another
    // thread, in settling order, so the report is the same as when done in line. Live, a batch
    // goes at every sweep, so a connection is handed over as promptly as its settling.
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Batch>(SETTLE_QUEUE);
        let (back_tx, back_rx) = std::sync::mpsc::channel::<Vec<Box<Conn>>>();
        let mut settler = std::mem::replace(&mut run.settler, Settler::new(opts));
        let worker = scope.spawn(move || {
            for batch in rx {
                let done = settler.take(batch);
                if !done.is_empty() {
                    // The packet thread frees or reuses them (see FlowTable::recycle).
                    let _ = back_tx.send(done);
                }
            }
            settler
        });
        run.queue = Some(tx);
        run.given_back = Some(back_rx);
        let read = read_all(&mut run, progress);
        run.flush_settled();
        run.queue = None;
        match worker.join() {
            Ok(settler) => run.settler = settler,
            Err(_) => {
                run.settler
                    .store_error
                    .get_or_insert(std::io::Error::other("the summarising thread failed"));
            }
        }
        read?;
        Ok(run.finish())
    })
}

/// Reads the inputs into the packet thread: one file, several merged by packet time, or
/// standard input live (settling also on the wall clock while no packet comes). Standard input
/// among files is read in the order given.
fn read_inputs(
    run: &mut Run<'_, '_>,
    paths: &[String],
    progress: &mut dyn FnMut(usize, u64),
) -> Result<(), CaptureError> {
    if let [path] = paths {
        let mut on_progress = |bytes: u64| progress(0, bytes);
        let summary = if path == "-" {
            let run = std::cell::RefCell::new(&mut *run);
            let mut on_frame = |f: &Frame<'_>| run.borrow_mut().frame(f);
            let mut on_quiet = |quiet| run.borrow_mut().quiet(quiet);
            capture::read_live(path, 0, &mut on_frame, &mut on_quiet, &mut on_progress)?
        } else {
            let mut on_frame = |f: &Frame<'_>| run.frame(f);
            capture::read_input_threaded(path, 0, &mut on_frame, &mut on_progress)?
        };
        run.inputs.push(summary);
        return Ok(());
    }
    if !paths.iter().any(|p| p == "-") {
        let mut on_frame = |f: &Frame<'_>| run.frame(f);
        let merged = capture::read_merged_threaded(paths, &mut on_frame, progress)?;
        if let Some((a, b)) = merged.out_of_order {
            run.notes.push(format!(
                "files given out of time order ({} before {}, which starts earlier); merged by \
                 packet time",
                paths[a], paths[b]
            ));
        }
        run.inputs = merged.inputs;
        return Ok(());
    }
    run.notes.push(
        "standard input among files: the inputs were read one after another in the order \
         given, not merged by packet time"
            .into(),
    );
    for (i, path) in paths.iter().enumerate() {
        let mut on_frame = |f: &Frame<'_>| run.frame(f);
        let mut on_progress = |bytes: u64| progress(i, bytes);
        let summary = if path == "-" {
            capture::read_input_with_progress(path, i, &mut on_frame, &mut on_progress)?
        } else {
            capture::read_input_threaded(path, i, &mut on_frame, &mut on_progress)?
        };
        run.inputs.push(summary);
    }
    Ok(())
}

#[cfg(test)]
thread_local! {
    /// Tests: settle in line, the reference the threaded path must match.
    static INLINE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

pub(super) fn settle_in_line_for_tests() -> bool {
    #[cfg(test)]
    return INLINE.with(std::cell::Cell::get);
    #[cfg(not(test))]
    false
}

/// Connections the summarising thread settles before it offers its core to another thread.
/// On two cores it shares one with the reading thread, which the packet thread waits on: left
/// to the scheduler, the reader could wait a whole time slice (milliseconds) for the core
#[cfg(test)]
mod threading_tests {
    use super::*;
    use crate::model::Side;

    /// Every sample capture, sorted.
    fn sample_paths() -> Vec<String> {
        let mut paths: Vec<String> =
            std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/samples"))
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path().to_string_lossy().into_owned())
                .filter(|p| p.contains(".pcap"))
                .collect();
        paths.sort();
        assert!(paths.len() > 20, "samples not found");
        paths
    }

    /// Every sample capture at once (hundreds of connections), with the settling queue at
    /// zero (test builds) so the packet thread often summarises batches itself: the report
    /// must be the same as when every connection is settled in line, in order.
    #[test]
    fn threaded_settling_matches_inline() {
        let paths = sample_paths();
        let opts = Options::default();
        let render =
            |r: &Report| crate::report::render(r, crate::report::Format::Json, &Default::default());
        INLINE.with(|c| c.set(true));
        let inline = analyze(&paths, &opts).map_err(|e| e.to_string());
        INLINE.with(|c| c.set(false));
        let inline = inline.map(|r| render(&r));
        for _ in 0..3 {
            let threaded = analyze(&paths, &opts)
                .map_err(|e| e.to_string())
                .map(|r| render(&r));
            assert!(
                inline.is_ok() && threaded == inline,
                "threaded report differs"
            );
        }
    }

    /// Connections spilled to disk (two in memory at most) read back as the same report as
    /// when all stay in memory: for every sample, with the capture point decided by each
    /// capture, by each connection or forced, with the timeline capped or not, in every format.
    #[test]
    fn spilled_connections_read_back_as_kept_in_memory() {
        let paths = sample_paths();
        let mut spilled = 0;
        for path in &paths {
            for vantage in [None, Some(Side::Client), Some(Side::Server)] {
                for timeline_limit in [None, Some(2)] {
                    let memory = Options {
                        vantage,
                        timeline_limit,
                        ..Default::default()
                    };
                    let disk = Options {
                        memory_records: 2,
                        ..memory.clone()
                    };
                    let (Ok(a), Ok(b)) = (
                        analyze(std::slice::from_ref(path), &memory),
                        analyze(std::slice::from_ref(path), &disk),
                    ) else {
                        panic!("{path}: analysis failed");
                    };
                    spilled += usize::from(b.store.spilled());
                    for f in [
                        crate::report::Format::Json,
                        crate::report::Format::Ndjson,
                        crate::report::Format::Markdown,
                        crate::report::Format::Text,
                    ] {
                        let o = crate::report::RenderOptions {
                            all: true,
                            timeline: true,
                            ..Default::default()
                        };
                        assert_eq!(
                            crate::report::render(&a, f, &o),
                            crate::report::render(&b, f, &o),
                            "{path} {f:?} {vantage:?} {timeline_limit:?}"
                        );
                    }
                }
            }
        }
        assert!(spilled > 20, "only {spilled} analyses spilled");
    }
}
