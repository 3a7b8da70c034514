//! Analysis: drives the pipeline (capture -> decode -> flow -> TLS) and turns each finished
//! connection into a [`Connection`] record with its verdict (summarise -> vantage -> verdict).
//!
//! The library's entry point is [`analyze`]. It never prints: it returns a [`Report`] that the
//! report module renders. Per-packet problems never abort a run; an input that cannot be read
//! at all is an error naming the file.

use crate::capture::{self, CaptureError, Frame, FrameRef, InputSummary, Nanos};
use crate::decode::{self, Decoded, LinkMeta};
use crate::defrag::Defragmenter;
use crate::escape;
use crate::flow::{Conn, EventKind, FlowConfig, FlowTable};
use crate::model::{
    AlertOut, At, Connection, HttpOut, IcmpOut, Report, Summary, TimelineEntry, Tool, VantageOut,
    SCHEMA_VERSION,
};
use crate::rollup::Rollup;
use crate::store::{Body, Record, Store};
use crate::tls::{hello::ClientHelloFacts, names, SHORT_ENCRYPTED};
use crate::vantage::{self, Clues, Evidence};
use crate::verdict::{self, AlertFacts, ConnFacts, Ev, IcmpFacts, Side};
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
    /// Index entries kept in memory before they are written out as a sorted run (0 = the
    /// default).
    pub index_run: usize,
    /// Servers listed in the per-server rollup (0 = [`crate::rollup::MAX_SERVERS`]).
    pub max_servers: usize,
    /// Redact addresses and names in everything reported.
    pub redact: Option<RedactOptions>,
    /// Keep each connection's packets for matching against another capture.
    pub trace: bool,
    /// Keep each settled connection as its JSON text (capture-point wording filled in when
    /// rendered), so that a JSON report is written by copying rather than re-serialising;
    /// other renderings parse it back. Ignored with redaction and in live use.
    pub prerender_json: bool,
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
    let live = on_settled.is_some();
    // Live use hands over each connection as a model: nothing to gain from keeping JSON.
    let model_only;
    let opts = if live && opts.prerender_json {
        model_only = Options {
            prerender_json: false,
            ..opts.clone()
        };
        &model_only
    } else {
        opts
    };
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

/// Tests: keep every connection's JSON with its wording cut out, as when its capture point is
/// not known until the end (no sample is such a capture). Both ways give the same report, so
/// other tests running meanwhile are unaffected.
#[cfg(test)]
static CUT_ALWAYS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn keep_whole_allowed() -> bool {
    #[cfg(test)]
    return !CUT_ALWAYS.load(std::sync::atomic::Ordering::Relaxed);
    #[cfg(not(test))]
    true
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
    redactor: Option<crate::redact::Redactor>,
    store: Store,
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
            redactor: opts
                .redact
                .as_ref()
                .map(|r| crate::redact::Redactor::new(r.key.as_deref(), r.keep_names)),
            store: Store::with_index_run(
                or_default(opts.memory_records, crate::store::DEFAULT_MEMORY_RECORDS),
                or_default(opts.index_run, crate::store::INDEX_RUN),
            ),
            rollup: Rollup::with_max_servers(or_default(
                opts.max_servers,
                crate::rollup::MAX_SERVERS,
            )),
            evidence: vantage::Tally::default(),
            duplicates: 0,
            store_error: None,
        }
    }

    /// Counts a summarised connection (the part of settling that must run in settling order).
    fn account(&mut self, p: Prepared) -> Option<Record> {
        self.duplicates += p.duplicates;
        let kept = p.kept?;
        self.rollup.add(kept.server, kept.code);
        self.evidence.add(kept.evidence);
        Some(kept.record)
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

    /// Counts a summarised connection and stores it, or (live) hands it to the caller worded
    /// for its own capture-point evidence.
    fn store_prepared(&mut self, p: Prepared) {
        let Some(rec) = self.account(p) else {
            return;
        };
        let kept = match self.on_settled.as_mut() {
            Some(emit) => crate::model::finalize(
                rec,
                self.opts.vantage,
                Side::Unknown,
                self.opts.timeline_limit,
                self.redactor.as_ref(),
            )
            .map(emit),
            None => self.store.push(rec),
        };
        if let Err(e) = kept {
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
    record: Record,
    code: verdict::VerdictCode,
    /// For the per-server rollup.
    server: crate::flow::Endpoint,
    evidence: Evidence,
}

fn prepare(opts: &Options, c: &mut Conn, ctx: &Ctx) -> Prepared {
    let duplicates = u64::from(c.dirs[0].duplicates + c.dirs[1].duplicates);
    let built = summarise(c, ctx);
    if !matches_filters(&built.conn, opts) {
        return Prepared {
            duplicates,
            kept: None,
        };
    }
    // The capture point the connection is worded for, when already known: forced, or its own
    // evidence (else the capture's, decided at the end). The verdict code does not depend on
    // it, only the wording does.
    let side = opts
        .vantage
        .or(Some(built.evidence.side).filter(|s| *s != Side::Unknown))
        .filter(|_| keep_whole_allowed());
    let mut facts = built.facts;
    facts.vantage = side.unwrap_or(Side::Unknown);
    let judged = verdict::judge(&facts);
    let code = judged.code;
    let server = built.server;
    let trace = opts.trace.then(|| trace(c, built.client_dir, &built.conn));
    let order = (
        built.conn.file.unwrap_or(0),
        built.conn.first_frame,
        built.conn.stream,
    );
    // Worded now when its capture point is known; else its facts wait for the capture's.
    let mut conn = built.conn;
    let facts = match side {
        Some(side) => {
            conn.vantage = side;
            conn.verdict = judged.code;
            conn.explanation = judged.explanation;
            conn.next_step = judged.next_step;
            None
        }
        None => Some(facts),
    };
    // Redaction is applied when rendering, so a redacted report keeps the model.
    let body = if opts.prerender_json && opts.redact.is_none() {
        if let Some(limit) = opts.timeline_limit {
            conn.timeline.truncate(limit);
        }
        crate::report::json::kept(&conn, facts.is_none())
            .unwrap_or_else(|_| Body::Model(Box::new(conn)))
    } else {
        Body::Model(Box::new(conn))
    };
    Prepared {
        duplicates,
        kept: Some(Kept {
            record: Record {
                failed: code.is_failure(),
                order,
                body,
                facts,
                evidence: built.evidence.side,
                trace,
            },
            code,
            server,
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
    evicted: Vec<(Box<Conn>, crate::flow::Eviction)>,
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
        for (mut c, _) in out.drain(..) {
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
        for c in self.table.drain() {
            self.settle(c);
        }
        self.send_batch();
    }

    fn finish(mut self) -> Report {
        self.flush_settled();
        if let Err(e) = self.settler.store.finish() {
            self.settler.store_error.get_or_insert(e);
        }
        let n = self.counters;
        let (overall_side, overall_text) = vantage::overall(&self.settler.evidence);
        let vantage_out = match self.opts.vantage {
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
                .filter(|(lt, _)| !decode::is_decoded_linktype(*lt))
                .map(|(lt, count)| format!("{} ({count} packets)", decode::linktype_name(*lt)))
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
        let capture_start = self.ctx.capture_start.unwrap_or(0);
        let capture_end = self.ctx.capture_end;
        let summary = Summary {
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
        };
        let mut summary = summary;
        let mut captures = self.inputs;
        let redactor = self.settler.redactor.take();
        if let Some(r) = &redactor {
            for sv in &mut summary.servers {
                sv.server = r.text(&sv.server);
            }
            for w in &mut warnings {
                *w = r.text(w);
            }
            for c in &mut captures {
                c.path = r.text(&c.path);
                for w in &mut c.warnings {
                    *w = r.text(w);
                }
            }
        }
        Report {
            schema_version: SCHEMA_VERSION,
            tool: Tool::default(),
            captures,
            vantage: vantage_out,
            summary,
            warnings,
            store: self.settler.store,
            vantage_override: self.opts.vantage,
            timeline_limit: self.opts.timeline_limit,
            redactor,
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
    let decoded = decode::decode(f.linktype, f.data, &mut meta);
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
                match decode::transport(
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

fn secs(ns: Nanos) -> f64 {
    ns as f64 / 1e9
}

/// Well-known TLS (and other server) ports, for guessing roles when no handshake was seen.
fn server_port_rank(p: u16) -> u8 {
    match p {
        443 | 8443 | 4433 | 636 | 993 | 995 | 465 | 853 | 5061 | 6443 | 9443 | 10443 => 0,
        80 | 8080 | 25 | 21 | 22 | 110 | 143 | 587 | 3389 | 6667 | 1080 | 3000 => 1,
        p if p < 1024 => 2,
        _ => 3,
    }
}

/// Which direction is the client's, by the rules; and the rule used.
fn client_dir(c: &Conn) -> (usize, &'static str) {
    if let Some(d) = c.syn_dir.map(usize::from) {
        return (d, "syn");
    }
    if let Some(d) = c.synack_dir.map(usize::from) {
        return (1 - d, "synack");
    }
    if let Some(d) = c.tls_facts().ch_dir {
        return (d, "clienthello");
    }
    if c.icmp_only {
        if let Some(d) = c.icmp.first().and_then(|i| i.quoted_dir) {
            return (d, "icmp_quote");
        }
    }
    let (a, b) = (c.ends[0].port, c.ends[1].port);
    let d = match server_port_rank(a).cmp(&server_port_rank(b)) {
        std::cmp::Ordering::Less => 1,
        std::cmp::Ordering::Greater => 0,
        // Same rank: the lower port is the server's.
        std::cmp::Ordering::Equal => usize::from(a < b),
    };
    (d, "ports")
}

/// Context shared by all connections of a capture.
#[derive(Debug, Clone, Copy)]
struct Ctx {
    /// Time of the capture's first packet.
    capture_start: Option<Nanos>,
    /// Latest packet time seen so far (the end, once the capture is read).
    capture_end: Nanos,
    multi_file: bool,
}

impl Ctx {
    fn at(&self, r: FrameRef) -> At {
        At {
            frame: r.frame(),
            t: round6(secs(
                r.ts.saturating_sub(self.capture_start.unwrap_or(r.ts)),
            )),
            file: self.multi_file.then_some(r.file()),
        }
    }
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

fn ev(r: FrameRef, base: Nanos) -> Ev {
    Ev {
        frame: r.frame(),
        t: round6(secs(r.ts.saturating_sub(base))),
    }
}

/// The most times any byte of [start, end) was sent, the frames that carried it, and the
/// capture copies of such frames. After a restart (junk bytes overwritten by the hello),
/// segments before the hello's first are junk.
fn coverage(
    c: &Conn,
    dir: usize,
    start: u64,
    end: u64,
    restarted: bool,
) -> (u32, Vec<FrameRef>, u32) {
    let first_hello = restarted
        .then(|| {
            c.events.iter().find(|e| {
                e.dir() == dir
                    && e.kind()
                        .data_span()
                        .is_some_and(|(s, t)| s <= start && t > start && t - s > 5)
            })
        })
        .flatten()
        .map(|e| e.at);
    let in_hello =
        |e: &&crate::flow::Event| e.dir() == dir && first_hello.is_none_or(|f| e.at >= f);
    let copies = c
        .events
        .iter()
        .filter(in_hello)
        .filter(|e| {
            e.kind()
                .copy_span()
                .is_some_and(|(s, t)| s < end && t > start)
        })
        .count() as u32;
    let segs: Vec<(u64, u64, FrameRef)> = c
        .events
        .iter()
        .filter(in_hello)
        .filter_map(|e| match e.kind().data_span() {
            Some((s, t)) if s < end && t > start => Some((s.max(start), t.min(end), e.at)),
            _ => None,
        })
        .collect();
    let mut points: Vec<(u64, i32)> = Vec::with_capacity(segs.len() * 2);
    for (s, t, _) in &segs {
        points.push((*s, 1));
        points.push((*t, -1));
    }
    points.sort();
    let (mut cur, mut best) = (0i32, 0i32);
    for (_, delta) in points {
        cur += delta;
        best = best.max(cur);
    }
    (
        best.max(0) as u32,
        segs.into_iter().map(|(_, _, a)| a).collect(),
        copies,
    )
}

struct Built {
    conn: Connection,
    server: crate::flow::Endpoint,
    evidence: Evidence,
    facts: ConnFacts,
    client_dir: usize,
}

/// The connection's packets in capture order, labelled as its timeline labels them.
fn trace(c: &Conn, cd: usize, conn: &Connection) -> crate::model::Trace {
    use crate::model::{TraceKind, TracePacket};
    let (cdir, sdir) = (&c.dirs[cd], &c.dirs[1 - cd]);
    let mut packets = Vec::with_capacity(c.events.len());
    // The timeline has one entry per event, in order (plus a closing note).
    for (e, entry) in c.events.iter().zip(&conn.timeline) {
        let (kind, start, end) = match e.kind() {
            EventKind::Syn => (TraceKind::Syn, 0, 0),
            EventKind::SynAck => (TraceKind::SynAck, 0, 0),
            EventKind::HandshakeAck => (TraceKind::Ack, 0, 0),
            EventKind::HelloAck => {
                let at = c.tls_facts().ch_range.map_or(0, |(_, t)| t);
                (TraceKind::Ack, at, at)
            }
            EventKind::Data { start, len } => (TraceKind::Data, start, start + u64::from(len)),
            EventKind::Fin => (TraceKind::Fin, 0, 0),
            EventKind::Rst => (TraceKind::Rst, 0, 0),
            EventKind::Copy { .. } | EventKind::Icmp { .. } => continue,
        };
        packets.push(TracePacket {
            frame: e.at.frame(),
            file: e.at.file(),
            ts: e.at.ts,
            from_client: e.dir() == cd,
            kind,
            start,
            end,
            label: entry.event.to_string(),
        });
    }
    crate::model::Trace {
        client_isn: cdir.syns[0].and(cdir.first_seq),
        server_isn: sdir.synack_seq,
        syn_tsval: cdir.syn_tsval,
        synack_tsval: sdir.syn_tsval,
        packets,
        packets_dropped: c.events_dropped,
    }
}

fn summarise(c: &Conn, ctx: &Ctx) -> Built {
    // The report's form, made here from the packet thread's compact one (which that thread
    // frees when it reuses the connection: freeing another thread's allocations contends
    // for its malloc arena).
    let client_hello = c
        .tls_facts()
        .client_hello
        .as_ref()
        .map(ClientHelloFacts::info);
    let (cd, rule) = client_dir(c);
    let sd = 1 - cd;
    let (cdir, sdir) = (&c.dirs[cd], &c.dirs[sd]);
    let tf = c.tls_facts();
    let base = c.first.ts;
    let e = |r: FrameRef| ev(r, base);

    let began_midstream = cdir.syn_count == 0 && sdir.synack_count == 0 && !c.icmp_only;
    let mut uncertain: Vec<String> = Vec::new();
    if began_midstream {
        uncertain.push("the capture began after the connection opened".into());
    }
    if rule != "syn" {
        uncertain.push(format!("client inferred from the {rule}"));
    }

    // ClientHello transmissions by sequence-range coverage.
    let ch_from_client = tf.ch_dir == Some(cd);
    let (ch_count, ch_frames, ch_copies) = match (tf.ch_range, ch_from_client) {
        (Some((s, t)), true) => coverage(c, cd, s, t, tf.restarted_at[cd].is_some()),
        _ => (0, Vec::new(), 0),
    };
    let ch_first = ch_frames
        .first()
        .copied()
        .or(if ch_from_client { tf.ch_at } else { None });
    // Transmissions of the first ClientHello, plus any later ClientHello message (the second
    // one after a HelloRetryRequest, or a new one on the same connection).
    let ch_count = if ch_first.is_some() {
        ch_count.max(1) + tf.client_hellos.saturating_sub(1)
    } else {
        0
    };
    let ch_acked = match (tf.ch_range, ch_from_client) {
        (Some((_, end)), true) => Some(cdir.acked.get().is_some_and(|a| a >= end)),
        _ => None,
    };
    if ch_from_client && client_hello.is_none() {
        uncertain.push("the ClientHello was seen but not complete enough to parse".into());
    }
    for (d, name) in [(cdir, "client"), (sdir, "server")] {
        if d.payload_truncated {
            uncertain.push(format!("{name} payload cut by the snaplen"));
        }
        if d.header_truncated > 0 {
            uncertain.push(format!(
                "{} {name} TCP header(s) cut by the snaplen",
                d.header_truncated
            ));
        }
        if d.reasm.limits.cap_reached {
            uncertain.push(format!(
                "{name} stream beyond the reassembly cap not analysed"
            ));
        }
        if d.reasm.limits.holding_overflow {
            uncertain.push(format!(
                "{name} out-of-order data beyond the holding limit dropped"
            ));
        }
        if d.reasm.limits.gaps > 0 {
            uncertain.push(format!(
                "{} gap(s) in the {name} stream never filled",
                d.reasm.limits.gaps
            ));
        }
    }
    if tf.oversized_message {
        uncertain.push("a handshake message over 64 KiB was skipped".into());
    }

    let client_close = match (cdir.fin, cdir.rst) {
        (Some(f), Some(r)) => Some(f.min(r)),
        (a, b) => a.or(b),
    };
    let gave_up = match (ch_first, client_close) {
        (Some(ch), Some(close)) if close.ts >= ch.ts => {
            Some(round6(secs(close.ts.saturating_sub(ch.ts))))
        }
        _ => None,
    };
    let timeout_match = gave_up.and_then(verdict::match_timeout);

    // Alerts: the one that decided, else the first.
    let sender = |d: usize| if d == cd { "client" } else { "server" };
    let decisive = tf.alerts.iter().find(|a| {
        let before_done = tf.handshake_done.is_none_or(|d| a.at <= d);
        before_done && a.plain.is_none_or(|(lvl, _)| lvl == 2)
    });
    let mut alert_facts = decisive.map(|a| AlertFacts {
        at: e(a.at),
        from_server: a.dir == sd,
        description: a.plain.map(|(_, d)| names::alert_description(d)),
        fatal: a.plain.is_none_or(|(l, _)| l == 2),
        encrypted: a.plain.is_none(),
        inferred: false,
    });
    let mut alert_out = decisive
        .or(tf.alerts.iter().min_by_key(|a| a.at))
        .map(|a| AlertOut {
            sender: sender(a.dir).into(),
            level: a.plain.map(|(l, _)| names::alert_level(l)),
            description: a.plain.map(|(_, d)| names::alert_description(d)),
            encrypted: a.plain.is_none(),
            inferred: false,
            frame: a.at.frame(),
        });
    // TLS 1.3: a short encrypted client record, then a close, no server data after it.
    if alert_facts.is_none() && tf.handshake_done.is_none() && ch_from_client {
        if let (Some((rec_at, len)), Some(close)) = (tf.client_encrypted_after_sh, client_close) {
            if len <= SHORT_ENCRYPTED && tf.client_encrypted_after_sh_count == 1 && close >= rec_at
            {
                alert_facts = Some(AlertFacts {
                    at: e(rec_at),
                    from_server: false,
                    description: None,
                    fatal: true,
                    encrypted: true,
                    inferred: true,
                });
                alert_out = Some(AlertOut {
                    sender: "client".into(),
                    level: None,
                    description: None,
                    encrypted: true,
                    inferred: true,
                    frame: rec_at.frame(),
                });
            }
        }
    }

    let preview = |d: usize| tf.non_tls[d].as_ref();
    let server_non_tls = preview(sd)
        .filter(|n| n.tls_after.is_none())
        .map(|n| escape::first_line(&n.preview, 120));
    let client_non_tls = preview(cd)
        .filter(|n| n.tls_after.is_none())
        .map(|n| escape::first_line(&n.preview, 120));
    let http_request = preview(cd)
        .filter(|n| escape::is_http_request(&n.preview))
        .map(|n| escape::first_line(&n.preview, 200));
    let http_status = preview(sd)
        .filter(|n| escape::is_http_response(&n.preview))
        .map(|n| escape::first_line(&n.preview, 200));

    let icmp = c
        .icmp
        .iter()
        .find(|i| i.quoted_dir == Some(cd))
        .or(c.icmp.first());
    let icmp_facts = icmp.map(|i| {
        let unreachable = if i.v6 {
            i.icmp_type == 1
        } else {
            i.icmp_type == 3 && i.code != 4
        };
        IcmpFacts {
            at: e(i.at),
            description: decode::icmp_description(i.v6, i.icmp_type, i.code),
            icmp_type: i.icmp_type,
            code: i.code,
            reporter: i.reporter.to_string(),
            unreachable,
            frag_needed: (!i.v6 && i.icmp_type == 3 && i.code == 4) || (i.v6 && i.icmp_type == 2),
            mtu: i.mtu,
            quotes_client: i.quoted_dir == Some(cd),
        }
    });

    let sh_from_server = tf.sh_dir == Some(sd);
    let tls_version = tf
        .negotiated_version()
        .filter(|_| sh_from_server)
        .map(names::version_name);
    let established = sdir.synack_count > 0
        && (c.handshake_ack.is_some() || cdir.payload_segments > 0)
        || (began_midstream && cdir.packets > 0 && sdir.packets > 0);
    let client_seq_jump = if cdir.payload_segments == 0 {
        cdir.fin_offset
            .get()
            .or(cdir.rst_offset.get())
            .filter(|o| *o > 0)
    } else {
        None
    };
    let server_server = crate::flow::Endpoint {
        ip: c.ends[sd].ip,
        port: c.ends[sd].port,
    };
    let synack_at = c
        .events
        .iter()
        .find(|x| x.kind() == EventKind::SynAck)
        .map(|x| x.at);
    let facts = ConnFacts {
        vantage: Side::Unknown,
        server: server_server.text(),
        began_midstream,
        icmp_only: c.icmp_only,
        syn_count: cdir.syn_count,
        first_syn: cdir.syns[0].map(e),
        last_syn: cdir.syns[1].map(e),
        synack: synack_at.map(e),
        established,
        icmp: icmp_facts,
        client_payload_bytes: cdir.payload_bytes,
        server_payload_bytes: sdir.payload_bytes,
        clienthello: ch_first.map(e),
        clienthello_count: ch_count,
        clienthello_frames: ch_frames.iter().map(|f| f.frame()).collect(),
        clienthello_acked: ch_acked,
        client_non_tls,
        server_non_tls,
        http_status: http_status.clone(),
        http_request: http_request.clone(),
        server_first_tls: tf.first_record[sd].map(e),
        serverhello: tf.sh_at.filter(|_| sh_from_server).map(e),
        tls_version: tls_version.clone(),
        handshake_done: tf.handshake_done.map(e),
        alert: alert_facts,
        client_fin: cdir.fin.map(e),
        client_rst: cdir.rst.map(e),
        server_fin: sdir.fin.map(e),
        server_rst: sdir.rst.map(e),
        server_rst_forged: rst_forged(sdir),
        client_seq_jump,
        server_retransmissions: sdir.retransmissions,
        server_full_size_retransmissions: sdir.full_size_retransmissions,
        server_max_segment: sdir.max_segment,
        server_data_acked: sdir.acked.get().is_some_and(|a| a >= sdir.max_end),
        client_sacked: sdir.sacked,
        server_gap: sdir.reasm.limits.gaps > 0,
        gave_up_after_s: gave_up,
        timeout_match: timeout_match.clone(),
        capture_end_t: round6(secs(ctx.capture_end.saturating_sub(base))),
    };

    let clues = Clues {
        client_pkttype: cdir.pkttype,
        server_pkttype: sdir.pkttype,
        client_ttl: cdir.ttl,
        server_ttl: sdir.ttl,
        syn_to_synack: match (cdir.syns[1], synack_at) {
            (Some(s), Some(sa)) if sa.ts >= s.ts => Some(secs(sa.ts.saturating_sub(s.ts))),
            _ => None,
        },
        synack_to_ack: match (synack_at, c.handshake_ack) {
            (Some(sa), Some(a)) if a.ts >= sa.ts => Some(secs(a.ts.saturating_sub(sa.ts))),
            _ => None,
        },
    };
    let evidence = vantage::infer(&clues);

    let ch_info = client_hello.filter(|_| ch_from_client);
    let server_first_bytes =
        preview(sd).map(|n| escape::bytes(&n.preview[..n.preview.len().min(64)]));
    let client_first_bytes =
        preview(cd).map(|n| escape::bytes(&n.preview[..n.preview.len().min(64)]));
    let timeline = timeline(c, cd, ctx, &ch_frames);
    let conn = Connection {
        stream: c.stream,
        client_ip: crate::flow::ip_text(c.ends[cd].ip),
        client_port: c.ends[cd].port,
        server_ip: crate::flow::ip_text(c.ends[sd].ip),
        server_port: c.ends[sd].port,
        client_inferred: rule != "syn",
        client_rule: rule.into(),
        verdict: verdict::VerdictCode::Incomplete,
        explanation: String::new(),
        next_step: String::new(),
        vantage: Side::Unknown,
        syn_count: cdir.syn_count,
        syn_copies: cdir.syn_copies,
        synack_seen: sdir.synack_count > 0,
        tcp_established: established,
        clienthello_count: ch_count,
        clienthello_copies: ch_copies,
        clienthello_acked: ch_acked,
        serverhello_seen: sh_from_server && tf.server_hello.is_some(),
        hello_retry_request: tf.hrr_at.is_some(),
        tls_version,
        cipher: tf
            .server_hello
            .as_ref()
            .filter(|s| sh_from_server && s.cipher != 0)
            .map(|s| names::cipher_name(s.cipher)),
        sni: ch_info.as_ref().and_then(|c| c.sni.clone()),
        alpn: ch_info.as_ref().and_then(|c| c.alpn.first().cloned()),
        ja4: ch_info.as_ref().and_then(|c| c.ja4.clone()),
        clienthello: ch_info,
        certificate: tf.certificate.as_ref().and_then(|c| c.info()),
        alert: alert_out,
        server_first_bytes,
        client_first_bytes,
        http: (http_request.is_some() || http_status.is_some()).then_some(HttpOut {
            request_line: http_request,
            status_line: http_status,
        }),
        client_fin: cdir.fin.map(|r| ctx.at(r)),
        client_rst: cdir.rst.map(|r| ctx.at(r)),
        server_fin: sdir.fin.map(|r| ctx.at(r)),
        server_rst: sdir.rst.map(|r| ctx.at(r)),
        icmp: icmp.map(|i| IcmpOut {
            icmp_type: i.icmp_type,
            code: i.code,
            description: decode::icmp_description(i.v6, i.icmp_type, i.code),
            frame: i.at.frame(),
            reporter: i.reporter.to_string(),
            v6: i.v6,
            mtu: i.mtu,
        }),
        first_frame: c.first.frame(),
        last_frame: c.last.frame(),
        file: ctx.multi_file.then_some(c.first.file()),
        start_time: crate::timefmt::rfc3339_nanos(c.first.ts),
        duration_s: round6(secs(c.last.ts.saturating_sub(c.first.ts))),
        gave_up_after_s: gave_up,
        timeout_match,
        client_retransmissions: cdir.retransmissions,
        server_retransmissions: sdir.retransmissions,
        server_payload_bytes: sdir.payload_bytes,
        uncertain,
        timeline,
    };
    Built {
        conn,
        server: server_server,
        evidence,
        facts,
        client_dir: cd,
    }
}

/// Why a direction's RST was not sent by that endpoint: its TTL differs from the one every
/// earlier packet of the direction arrived with (the same host and path give the same TTL;
/// a firewall or IPS forging the reset starts from its own initial TTL and distance).
fn rst_forged(d: &crate::flow::Dir) -> Option<String> {
    let (rst, ttl) = (d.rst_ttl?, d.ttl?);
    if rst == ttl || d.packets < 2 {
        return None;
    }
    let mut why = format!("its TTL is {rst} where the server's other packets arrive with {ttl}");
    if d.rst_without_ts && d.ts_seen {
        why.push_str(", and it carries no TCP timestamp although they do");
    }
    Some(why)
}

/// The connection's ladder: frame, time since its first packet, direction, event.
///
/// Runs for every connection, so each label is written once into its own string.
fn timeline(c: &Conn, cd: usize, ctx: &Ctx, ch_frames: &[FrameRef]) -> Vec<TimelineEntry> {
    use crate::model::text;
    use std::borrow::Cow;
    let tf = c.tls_facts();
    let base = c.first.ts;
    let mut out = Vec::with_capacity(c.events.len() + 1);
    let mut syns = 0;
    let mut seen_end = [0u64; 2];
    for e in &c.events {
        let dir = match e.kind() {
            EventKind::Icmp { .. } => text::FROM_PATH,
            _ if e.dir() == cd => text::TO_SERVER,
            _ => text::TO_CLIENT,
        };
        // Fixed texts are shared (`Cow::Borrowed`), the rest written once into their string.
        let event: Cow<'static, str> = match e.kind() {
            EventKind::Syn => {
                syns += 1;
                if syns == 1 {
                    Cow::Borrowed(text::SYN)
                } else {
                    Cow::Owned(format!("SYN retransmission #{}", syns - 1))
                }
            }
            EventKind::SynAck => Cow::Borrowed(text::SYN_ACK),
            EventKind::HandshakeAck => Cow::Borrowed(text::HANDSHAKE_ACK),
            EventKind::HelloAck => Cow::Borrowed(text::HELLO_ACK),
            EventKind::Fin => Cow::Borrowed(text::FIN),
            EventKind::Rst => Cow::Borrowed(text::RST),
            EventKind::Data { start, len } => {
                let retrans = start < seen_end[e.dir()];
                seen_end[e.dir()] = seen_end[e.dir()].max(start + u64::from(len));
                Cow::Owned(data_label(tf, e, cd, u64::from(len), retrans, ch_frames))
            }
            EventKind::Copy { len, .. } => Cow::Owned(format!(
                "capture copy of an earlier frame ({len} bytes), not a retransmission"
            )),
            EventKind::Icmp {
                v6,
                icmp_type,
                code,
            } => Cow::Owned(format!(
                "ICMP {}",
                decode::icmp_description(v6, icmp_type, code)
            )),
        };
        out.push(TimelineEntry {
            frame: e.at.frame(),
            t: round6(secs(e.at.ts.saturating_sub(base))),
            dir: Cow::Borrowed(dir),
            event,
            file: ctx.multi_file.then_some(e.at.file()),
        });
    }
    if c.events_dropped > 0 {
        out.push(TimelineEntry {
            frame: c.last.frame(),
            t: round6(secs(c.last.ts.saturating_sub(base))),
            dir: Cow::Borrowed(text::NO_DIRECTION),
            event: format!("{} later events not kept", c.events_dropped).into(),
            file: None,
        });
    }
    out
}

/// A data segment's timeline text: what it was (ClientHello, its retransmission, other data)
/// and what it carried (": ServerHello, ChangeCipherSpec, ...").
fn data_label(
    tf: &crate::tls::TlsFacts,
    e: &crate::flow::Event,
    cd: usize,
    len: u64,
    retrans: bool,
    ch_frames: &[FrameRef],
) -> String {
    use std::fmt::Write as _;
    let mut label = String::with_capacity(48);
    let ch_n = if e.dir() == cd {
        ch_frames.iter().position(|f| *f == e.at)
    } else {
        None
    };
    match ch_n {
        Some(n) if n > 0 && retrans => {
            let delay = ch_frames
                .first()
                .map(|f| secs(e.at.ts.saturating_sub(f.ts)))
                .unwrap_or(0.0);
            // Writing to a String cannot fail.
            let _ = write!(
                label,
                "ClientHello retransmission #{n} (+{delay:.3} s, {len} bytes)"
            );
        }
        // The common labels without the formatting machinery (a few per connection).
        Some(_) => sized(&mut label, "ClientHello (", len),
        None if retrans => sized(&mut label, "retransmission (", len),
        None => sized(&mut label, "data (", len),
    }
    let mut sep = ": ";
    let mut note = |label: &mut String, args: std::fmt::Arguments<'_>| {
        label.push_str(sep);
        let _ = label.write_fmt(args);
        sep = ", ";
    };
    if tf.sh_at == Some(e.at) && e.dir() != cd {
        note(&mut label, format_args!("ServerHello"));
    }
    if tf.hrr_at == Some(e.at) {
        note(&mut label, format_args!("HelloRetryRequest"));
    }
    for a in tf
        .alerts
        .iter()
        .filter(|a| a.at == e.at && a.dir == e.dir())
    {
        match a.plain {
            Some((l, d)) => note(
                &mut label,
                format_args!(
                    "Alert {} {}",
                    names::alert_level(l),
                    names::alert_description(d)
                ),
            ),
            None => note(&mut label, format_args!("encrypted Alert")),
        }
    }
    if tf.ccs[e.dir()] == Some(e.at) {
        note(&mut label, format_args!("ChangeCipherSpec"));
    }
    if let Some(nt) = tf.non_tls[e.dir()].as_ref().filter(|n| n.at == e.at) {
        note(
            &mut label,
            format_args!("\"{}\"", escape::first_line(&nt.preview, 60)),
        );
    }
    label
}

/// Appends `{what}{len} bytes)`.
fn sized(label: &mut String, what: &str, len: u64) {
    label.push_str(what);
    label.push_str(itoa::Buffer::new().format(len));
    label.push_str(" bytes)");
}

fn matches_filters(c: &Connection, o: &Options) -> bool {
    let cip: Option<IpAddr> = c.client_ip.parse().ok();
    let sip: Option<IpAddr> = c.server_ip.parse().ok();
    if let Some(h) = o.host {
        if cip != Some(h) && sip != Some(h) {
            return false;
        }
    }
    if let Some(p) = o.port {
        if c.client_port != p && c.server_port != p {
            return false;
        }
    }
    if let Some((ip, port)) = o.server {
        if sip != Some(ip) || port.is_some_and(|p| p != c.server_port) {
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

    /// Connections kept as JSON text (whole, or with the capture-point wording cut out until
    /// the end): for every sample, with the capture point decided by each capture, by each
    /// connection or forced, with the timeline capped or not, and spilled to
    /// disk, the JSON report is byte for byte the one re-serialised from the model, and the
    /// connections read back (text and Markdown reports) are equal to the model's.
    #[test]
    fn connections_kept_as_json_match_the_model() {
        let paths = sample_paths();
        // Kept whole (capture point known when settled) and with the wording cut out.
        let (mut whole, mut cut) = (0, 0);
        for (path, cut_always) in paths.iter().flat_map(|p| [(p, false), (p, true)]) {
            CUT_ALWAYS.store(cut_always, std::sync::atomic::Ordering::Relaxed);
            for vantage in [None, Some(Side::Client), Some(Side::Server)] {
                for timeline_limit in [None, Some(2)] {
                    let model = Options {
                        vantage,
                        timeline_limit,
                        memory_records: 2,
                        ..Default::default()
                    };
                    let json = Options {
                        prerender_json: true,
                        ..model.clone()
                    };
                    let (Ok(a), Ok(b)) = (
                        analyze(std::slice::from_ref(path), &model),
                        analyze(std::slice::from_ref(path), &json),
                    ) else {
                        panic!("{path}: analysis failed");
                    };
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
                    let (ma, mb): (Vec<_>, Vec<_>) = (
                        a.connections()
                            .map(|c| c.map_err(|e| e.to_string()))
                            .collect(),
                        b.connections()
                            .map(|c| c.map_err(|e| e.to_string()))
                            .collect(),
                    );
                    assert_eq!(ma, mb, "{path}");
                    for i in 0..b.len() {
                        match b.store.get(i).map(|r| r.body) {
                            Ok(Body::Final(_)) => whole += 1,
                            Ok(Body::Json { .. }) => cut += 1,
                            _ => {}
                        }
                    }
                }
            }
        }
        CUT_ALWAYS.store(false, std::sync::atomic::Ordering::Relaxed);
        assert!(
            whole > 100 && cut > 100,
            "kept as JSON: {whole} whole, {cut} cut"
        );
    }
}
