//! Pipeline: drives capture -> wire -> flow (and TLS) for every frame, and settles each
//! finished connection (diagnose: facts, capture-point evidence, verdict code) into the store,
//! on a second thread.
//!
//! The library's entry point is [`analyze`]. It never prints: it returns a [`Report`] that the
//! report module renders. Per-packet problems never abort a run; an input that cannot be read
//! at all is an error naming the file.

use crate::analysis::{Report, Settled, Wording};
use crate::capture::{self, CaptureError, Frame, InputSummary, Nanos};
use crate::diagnose::clock::{round6, secs, Ctx};
use crate::diagnose::facts::{summarise, trace};
use crate::diagnose::rollup::Rollup;
use crate::diagnose::vantage::{self, Evidence};
use crate::diagnose::verdict::{self, Side};
use crate::flow::{Conn, FlowConfig, FlowTable};
use crate::model::{Connection, Summary, Tool, VantageOut, SCHEMA_VERSION};
use crate::store::Store;
use crate::wire::defrag::Defragmenter;
use crate::wire::{self, Decoded, LinkMeta};
use std::net::IpAddr;

/// What to analyse and how.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Forced capture point (`--vantage`).
    pub vantage: Option<Side>,
    /// Keep only connections with this address at either end.
    pub host: Option<IpAddr>,
    /// Keep only connections with this port at either end.
    pub port: Option<u16>,
    /// Keep only connections to this server (address and optional port).
    pub server: Option<(IpAddr, Option<u16>)>,
    pub flow: FlowConfig,
    /// Maximum timeline entries per connection.
    pub timeline_limit: Option<usize>,
    /// Settled connections kept in memory before they are spilled to a temporary file
    /// (0 = the default).
    pub memory_records: usize,
    /// Servers listed in the per-server rollup (0 = [`crate::diagnose::rollup::MAX_SERVERS`]).
    pub max_servers: usize,
    /// Redact addresses and names in everything reported.
    pub redact: Option<RedactOptions>,
    /// Keep each connection's packets for matching against another capture.
    pub trace: bool,
}

/// How to redact.
#[derive(Debug, Clone, Default)]
pub struct RedactOptions {
    /// Key for the address and name mapping (same key, same mapping); None = random per run.
    pub key: Option<String>,
    /// Keep SNI and certificate names.
    pub keep_names: bool,
}

/// Packet counters for the summary.
#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    packets: u64,
    tcp: u64,
    non_ip: u64,
    other_ip: u64,
    malformed: u64,
    unsupported_link: u64,
}

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
    run.settler.on_settled = on_settled;
    let read_all =
        |run: &mut Run<'_, '_>, progress: &mut dyn FnMut(usize, u64)| -> Result<(), CaptureError> {
            for (i, path) in paths.iter().enumerate() {
                let mut on_frame = |f: &Frame<'_>| run.frame(f);
                let mut on_progress = |bytes: u64| progress(i, bytes);
                // Files are read on a second thread; standard input (live use) frame by frame,
                // so a frame is analysed the moment it arrives.
                let summary = if path == "-" {
                    capture::read_input_with_progress(path, i, &mut on_frame, &mut on_progress)?
                } else {
                    capture::read_input_threaded(path, i, &mut on_frame, &mut on_progress)?
                };
                run.inputs.push(summary);
            }
            Ok(())
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

#[cfg(test)]
thread_local! {
    /// Tests: settle in line, the reference the threaded path must match.
    static INLINE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn settle_in_line_for_tests() -> bool {
    #[cfg(test)]
    return INLINE.with(std::cell::Cell::get);
    #[cfg(not(test))]
    false
}

/// Connections the summarising thread settles before it offers its core to another thread.
/// On two cores it shares one with the reading thread, which the packet thread waits on: left
/// to the scheduler, the reader could wait a whole time slice (milliseconds) for the core
/// while the packet thread ran out of input; yielding every ~0.1 ms of summarising lets it in
/// at once (packet thread busy ~75 % -> ~97 % of the analysis, 1 GB: ~10 % less wall time).
const YIELD_EVERY: usize = 8;

/// Settled connections go to the summarising thread in batches of at most this many (one
/// wake-up per batch, not per connection), at most [`SETTLE_QUEUE`] batches in flight: a
/// bounded number of connections waits in the queue, whatever a sweep settles. The queue is
/// often full (the summariser yields, and the packet thread summarises a batch itself when
/// it finds no room), so its size is memory: 32 x 8 connections of ~2.3 KiB, 1 MiB less at
/// peak than 64 x 8 for the same speed.
const SETTLE_BATCH: usize = if cfg!(test) { 1 } else { 32 };
const SETTLE_QUEUE: usize = if cfg!(test) { 0 } else { 8 };

/// A size from the options, where 0 means the default.
fn or_default(n: usize, default: usize) -> usize {
    if n == 0 {
        default
    } else {
        n
    }
}

/// Summarises settled connections into the store (or hands them to the caller, live) and keeps
/// the per-verdict counts.
struct Settler<'o, 'c> {
    opts: &'o Options,
    /// Live mode: settled connections go here instead of the store.
    on_settled: Option<&'c mut (dyn FnMut(Connection) + Send)>,
    wording: Wording,
    store: Store<Settled>,
    rollup: Rollup,
    evidence: vantage::Tally,
    duplicates: u64,
    store_error: Option<std::io::Error>,
}

impl<'o, 'c> Settler<'o, 'c> {
    fn new(opts: &'o Options) -> Self {
        Settler {
            opts,
            on_settled: None,
            wording: Wording {
                vantage_override: opts.vantage,
                timeline_limit: opts.timeline_limit,
                redactor: opts
                    .redact
                    .as_ref()
                    .map(|r| crate::redact::Redactor::new(r.key.as_deref(), r.keep_names)),
            },
            store: Store::new(or_default(
                opts.memory_records,
                crate::store::DEFAULT_MEMORY_RECORDS,
            )),
            rollup: Rollup::with_max_servers(or_default(
                opts.max_servers,
                crate::diagnose::rollup::MAX_SERVERS,
            )),
            evidence: vantage::Tally::default(),
            duplicates: 0,
            store_error: None,
        }
    }

    fn settle(&mut self, c: &mut Conn, ctx: &Ctx) {
        self.store_prepared(prepare(self.opts, c, ctx));
    }

    /// Settles a batch from the queue, in order; gives back the connections, done with.
    #[allow(clippy::vec_box)] // boxed as the flow table made them, to be reused as boxes
    fn take(&mut self, batch: Batch) -> Vec<Box<Conn>> {
        match batch {
            Batch::Settled(mut conns, ctx) => {
                for (i, c) in conns.iter_mut().enumerate() {
                    self.settle(c, &ctx);
                    if i % YIELD_EVERY == YIELD_EVERY - 1 {
                        std::thread::yield_now();
                    }
                }
                conns
            }
            Batch::Prepared(done) => {
                for p in done {
                    self.store_prepared(p);
                }
                Vec::new()
            }
        }
    }

    /// Counts a summarised connection (in settling order) and stores it, or (live) hands it
    /// to the caller worded for its own capture-point evidence.
    fn store_prepared(&mut self, p: Prepared) {
        self.duplicates += p.duplicates;
        let Some(kept) = p.kept else {
            return;
        };
        self.rollup.add(kept.settled.facts.server, kept.code);
        self.evidence.add(kept.evidence);
        let stored = match self.on_settled.as_mut() {
            Some(emit) => {
                emit(self.wording.connection(kept.settled, Side::Unknown));
                Ok(())
            }
            None => {
                let key = kept.settled.facts.stream;
                self.store.push(key, kept.code.is_failure(), kept.settled)
            }
        };
        if let Err(e) = stored {
            self.store_error.get_or_insert(e);
        }
    }
}

/// A settled connection, summarised: the expensive, order-free part of settling, which either
/// thread may do.
struct Prepared {
    duplicates: u64,
    /// None when a filter leaves the connection out.
    kept: Option<Kept>,
}

struct Kept {
    settled: Settled,
    code: verdict::VerdictCode,
    evidence: Evidence,
}

fn prepare(opts: &Options, c: &mut Conn, ctx: &Ctx) -> Prepared {
    let duplicates = u64::from(c.dirs[0].duplicates + c.dirs[1].duplicates);
    let built = summarise(c, ctx);
    if !matches_filters(&built.facts, opts) {
        return Prepared {
            duplicates,
            kept: None,
        };
    }
    // The verdict code does not depend on the capture point, only the wording does, which is
    // made when the connection is read back.
    let code = verdict::judge(&built.facts, Side::Unknown).code;
    let trace = opts
        .trace
        .then(|| trace(c, built.client_dir, &built.facts.timeline));
    Prepared {
        duplicates,
        kept: Some(Kept {
            settled: Settled {
                facts: built.facts,
                evidence: built.evidence.side,
                trace,
            },
            code,
            evidence: built.evidence,
        }),
    }
}

/// What goes to the summarising thread: settled connections, or (when it is behind) ones the
/// packet thread already summarised itself.
#[allow(clippy::vec_box)]
enum Batch {
    Settled(Vec<Box<Conn>>, Ctx),
    Prepared(Vec<Prepared>),
}

/// One analysis in progress.
struct Run<'o, 'c> {
    opts: &'o Options,
    table: FlowTable,
    defrag: Defragmenter,
    counters: Counters,
    ctx: Ctx,
    settler: Settler<'o, 'c>,
    /// Where settled connections go when summarised on another thread, a batch at a time.
    /// (Boxed: they come boxed from the flow table; unboxing would copy each one.)
    #[allow(clippy::vec_box)]
    queue: Option<std::sync::mpsc::SyncSender<Batch>>,
    #[allow(clippy::vec_box)]
    batch: Vec<Box<Conn>>,
    /// Connections the summarising thread is done with, coming back to be freed or reused.
    #[allow(clippy::vec_box)]
    given_back: Option<std::sync::mpsc::Receiver<Vec<Box<Conn>>>>,
    inputs: Vec<InputSummary>,
    since_sweep: u32,
    last_sweep: Nanos,
    peak_live: usize,
    evicted: Vec<(crate::flow::Settled, crate::flow::Eviction)>,
}

impl<'o, 'c> Run<'o, 'c> {
    fn new(multi_file: bool, opts: &'o Options) -> Self {
        Run {
            opts,
            table: FlowTable::new(opts.flow),
            defrag: Defragmenter::new(),
            counters: Counters::default(),
            ctx: Ctx {
                capture_start: None,
                capture_end: 0,
                multi_file,
            },
            settler: Settler::new(opts),
            queue: None,
            batch: Vec::new(),
            given_back: None,
            inputs: Vec::new(),
            since_sweep: 0,
            last_sweep: 0,
            peak_live: 0,
            evicted: Vec::new(),
        }
    }

    fn frame(&mut self, f: &Frame<'_>) {
        self.ctx.capture_start.get_or_insert(f.ts);
        self.ctx.capture_end = self.ctx.capture_end.max(f.ts);
        process_frame(f, &mut self.table, &mut self.defrag, &mut self.counters);
        self.since_sweep += 1;
        // By packet count, and by capture time so a slow capture (or live input) settles
        // connections as promptly as a busy one; the same sweeps whatever the input.
        if self.since_sweep >= self.opts.flow.sweep_packets
            || f.ts.saturating_sub(self.last_sweep) >= self.opts.flow.sweep_interval
        {
            self.sweep();
        }
    }

    fn sweep(&mut self) {
        self.since_sweep = 0;
        let now = self.ctx.capture_end;
        self.peak_live = self.peak_live.max(self.table.live());
        if now.saturating_sub(self.last_sweep) < self.opts.flow.sweep_interval
            && self.table.live() <= self.opts.flow.max_live
        {
            return;
        }
        self.last_sweep = now;
        self.defrag.expire(now, false);
        let mut out = std::mem::take(&mut self.evicted);
        self.table.sweep(now, &mut out);
        for (s, _) in out.drain(..) {
            let mut c = self.table.conn(s);
            c.finish();
            self.settle(c);
        }
        self.evicted = out;
        self.send_batch();
    }

    /// Hands a finished connection over to be summarised (its packet state is dropped after):
    /// to the summarising thread (which stores it, or hands it to the caller live), or in line.
    fn settle(&mut self, mut c: Box<Conn>) {
        if self.queue.is_some() {
            self.batch.push(c);
            if self.batch.len() >= SETTLE_BATCH {
                self.send_batch();
            }
            return;
        }
        self.settler.settle(&mut c, &self.ctx);
        self.table.recycle([c]);
    }

    /// Sends the connections settled since the last batch to the summarising thread.
    fn send_batch(&mut self) {
        let Some(q) = &self.queue else {
            return;
        };
        if self.batch.is_empty() {
            return;
        }
        if let Some(back) = &self.given_back {
            while let Ok(done) = back.try_recv() {
                self.table.recycle(done);
            }
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(SETTLE_BATCH));
        // The summarising thread is behind (always so at the end of the input, when every
        // open connection settles at once): summarise here rather than wait. The batch still
        // goes through the queue, so the store sees connections in settling order.
        let batch = match q.try_send(Batch::Settled(batch, self.ctx)) {
            Ok(()) => return,
            Err(std::sync::mpsc::TrySendError::Full(Batch::Settled(mut conns, ctx))) => {
                let done = conns
                    .iter_mut()
                    .map(|c| prepare(self.opts, c, &ctx))
                    .collect();
                self.table.recycle(conns);
                Batch::Prepared(done)
            }
            Err(std::sync::mpsc::TrySendError::Full(b))
            | Err(std::sync::mpsc::TrySendError::Disconnected(b)) => b,
        };
        // Fails only if the thread is gone (it panicked): then finish here.
        if let Err(std::sync::mpsc::SendError(b)) = q.send(batch) {
            self.queue = None;
            let done = self.settler.take(b);
            self.table.recycle(done);
        }
    }

    /// Settles every connection still open (the end of the input).
    fn flush_settled(&mut self) {
        self.peak_live = self.peak_live.max(self.table.live());
        for s in self.table.drain() {
            let c = self.table.conn(s);
            self.settle(c);
        }
        self.send_batch();
    }

    fn finish(mut self) -> Report {
        self.flush_settled();
        if let Err(e) = self.settler.store.finish() {
            self.settler.store_error.get_or_insert(e);
        }
        let (overall_side, overall_text) = vantage::overall(&self.settler.evidence);
        let vantage = match self.opts.vantage {
            Some(side) => VantageOut {
                side,
                decided_by: "override".into(),
                evidence: "given with --vantage".into(),
            },
            None => VantageOut {
                side: overall_side,
                decided_by: "inferred".into(),
                evidence: overall_text,
            },
        };
        let counted = std::mem::take(&mut self.settler.rollup).finish();
        let mut warnings = self.warnings(&counted);
        let mut summary = self.summary(counted);
        let mut captures = std::mem::take(&mut self.inputs);
        if let Some(r) = &self.settler.wording.redactor {
            r.head(&mut summary, &mut warnings, &mut captures);
        }
        Report {
            schema_version: SCHEMA_VERSION,
            tool: Tool::default(),
            captures,
            vantage,
            summary,
            warnings,
            store: self.settler.store,
            wording: self.settler.wording,
        }
    }

    /// What the reader should know about the whole capture (damaged inputs, limits hit).
    fn warnings(&self, counted: &crate::diagnose::rollup::Counted) -> Vec<String> {
        let n = self.counters;
        let mut warnings: Vec<String> = Vec::new();
        for i in &self.inputs {
            for w in &i.warnings {
                warnings.push(format!("{}: {w}", i.path));
            }
        }
        if n.unsupported_link > 0 {
            let lts: Vec<String> = self
                .inputs
                .iter()
                .flat_map(|i| i.link_types.iter())
                .filter(|(lt, _)| !wire::is_decoded_linktype(*lt))
                .map(|(lt, count)| format!("{} ({count} packets)", wire::linktype_name(*lt)))
                .collect();
            warnings.push(format!(
                "{} packets on link types this tool does not decode: {}",
                n.unsupported_link,
                lts.join(", ")
            ));
        }
        if self.defrag.incomplete() > 0 || self.defrag.dropped > 0 {
            warnings.push(format!(
                "{} IP datagrams could not be reassembled from their fragments",
                self.defrag.incomplete() as u64 + self.defrag.dropped
            ));
        }
        if self.table.evicted_by_cap > 0 {
            warnings.push(format!(
                "{} connections were settled early because more than {} were open at once \
                 (--max-connections); their verdicts may be incomplete",
                self.table.evicted_by_cap, self.opts.flow.max_live
            ));
        }
        if counted.unlisted > 0 {
            warnings.push(format!(
                "connections went to more than {} servers: {} connections to the servers seen \
                 after those are counted but not listed per server",
                counted.servers.len(),
                counted.unlisted
            ));
        }
        if let Some(e) = &self.settler.store_error {
            warnings.push(format!(
                "could not write the temporary file for settled connections ({e}); some \
                 connections are missing from the report"
            ));
        }
        warnings
    }

    fn summary(&self, counted: crate::diagnose::rollup::Counted) -> Summary {
        let n = self.counters;
        let capture_start = self.ctx.capture_start.unwrap_or(0);
        let capture_end = self.ctx.capture_end;
        Summary {
            connections: counted.connections,
            failed: counted.failed,
            verdicts: counted.verdicts,
            servers: counted.servers,
            unlisted_server_connections: counted.unlisted,
            packets: n.packets,
            tcp_packets: n.tcp,
            duplicates_ignored: self.settler.duplicates,
            non_ip_packets: n.non_ip,
            other_ip_packets: n.other_ip,
            undecoded_packets: n.malformed,
            unsupported_link_packets: n.unsupported_link,
            fragments_reassembled: self.defrag.reassembled,
            first_time: (n.packets > 0).then(|| crate::timefmt::rfc3339_nanos(capture_start)),
            last_time: (n.packets > 0).then(|| crate::timefmt::rfc3339_nanos(capture_end)),
            span_s: round6(secs(capture_end.saturating_sub(capture_start))),
            evicted_by_cap: self.table.evicted_by_cap,
            late_packets: self.table.late_packets,
            peak_live_connections: self.peak_live as u64,
        }
    }
}

fn process_frame(
    f: &Frame<'_>,
    table: &mut FlowTable,
    defrag: &mut Defragmenter,
    n: &mut Counters,
) {
    n.packets += 1;
    let mut meta = LinkMeta::default();
    let decoded = wire::decode(f.linktype, f.data, &mut meta);
    let at = f.at();
    let iface = meta.ifindex.unwrap_or(f.interface);
    let pkttype = meta.pkttype;
    match decoded {
        Decoded::Tcp(mut seg) => {
            n.tcp += 1;
            // The IP length can claim more than the frame ever had: only bytes the snaplen
            // cut (original length minus captured length) may be missing.
            let cut = f.orig_len.saturating_sub(f.data.len() as u32);
            seg.wire_len = seg.wire_len.min(seg.payload.len() as u32 + cut);
            table.tcp(&seg, at, iface, pkttype);
        }
        Decoded::Icmp(e) => table.icmp(&e, at),
        Decoded::Fragment(frag) => {
            if let Some(dg) = defrag.push(f.ts, &frag) {
                let wire = dg.data.len() as u32;
                match wire::transport(
                    dg.ip,
                    dg.v6,
                    etherparse::IpNumber(dg.protocol),
                    &dg.data,
                    wire,
                    0,
                ) {
                    Decoded::Tcp(seg) => {
                        n.tcp += 1;
                        table.tcp(&seg, at, iface, pkttype);
                    }
                    Decoded::Icmp(e) => table.icmp(&e, at),
                    _ => n.other_ip += 1,
                }
            }
        }
        Decoded::OtherIp => n.other_ip += 1,
        Decoded::NotIp => n.non_ip += 1,
        Decoded::UnsupportedLink => n.unsupported_link += 1,
        Decoded::Malformed(_) => n.malformed += 1,
    }
}

fn matches_filters(f: &crate::diagnose::facts::Facts, o: &Options) -> bool {
    let (cip, sip) = (f.client.ip, f.server.ip);
    if let Some(h) = o.host {
        if cip != h && sip != h {
            return false;
        }
    }
    if let Some(p) = o.port {
        if f.client.port != p && f.server.port != p {
            return false;
        }
    }
    if let Some((ip, port)) = o.server {
        if sip != ip || port.is_some_and(|p| p != f.server.port) {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod threading_tests {
    use super::*;

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
