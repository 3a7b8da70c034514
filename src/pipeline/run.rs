//! The packet thread: every frame through wire and flow, sweeps that settle connections, and
//! the capture's summary and warnings at the end.

use super::keys;
use super::options::Options;
use super::settle::{prepare, Batch, Settler, SETTLE_BATCH};
use crate::analysis::Report;
use crate::capture::{Frame, InputSummary, Nanos, LINKTYPE_TLS_SECRETS};
use crate::diagnose::clock::{round6, secs, Ctx};
use crate::diagnose::vantage;
use crate::flow::{Conn, FlowTable};
use crate::model::{Summary, Tool, VantageOut, SCHEMA_VERSION};
use crate::wire::defrag::Defragmenter;
use crate::wire::{self, Decoded, LinkMeta};

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

pub(super) struct Run<'o, 'c> {
    opts: &'o Options,
    table: FlowTable,
    defrag: Defragmenter,
    counters: Counters,
    ctx: Ctx,
    pub(super) settler: Settler<'o, 'c>,
    /// Where settled connections go when summarised on another thread, a batch at a time.
    /// (Boxed: they come boxed from the flow table; unboxing would copy each one.)
    #[allow(clippy::vec_box)]
    pub(super) queue: Option<std::sync::mpsc::SyncSender<Batch>>,
    #[allow(clippy::vec_box)]
    batch: Vec<Box<Conn>>,
    /// Connections the summarising thread is done with, coming back to be freed or reused.
    #[allow(clippy::vec_box)]
    pub(super) given_back: Option<std::sync::mpsc::Receiver<Vec<Box<Conn>>>>,
    pub(super) inputs: Vec<InputSummary>,
    /// Warnings about the inputs as a whole (their order).
    pub(super) notes: Vec<String>,
    /// The inputs' paths, to name them in notes.
    pub(super) names: Vec<String>,
    since_sweep: u32,
    last_sweep: Nanos,
    peak_live: usize,
    evicted: Vec<(crate::flow::Settled, crate::flow::Eviction)>,
}

impl<'o, 'c> Run<'o, 'c> {
    /// Reads the `--keylog` files into the flow table's key log.
    pub(super) fn load_key_logs(&mut self) -> Result<(), crate::capture::CaptureError> {
        for path in &self.opts.key_logs {
            keys::load(&mut self.table, &mut self.notes, path)?;
        }
        Ok(())
    }

    /// The name of input `file` for a note (its path, when known).
    fn input_name(&self, file: usize) -> String {
        self.names
            .get(file)
            .cloned()
            .unwrap_or_else(|| format!("capture {file}"))
    }

    pub(super) fn new(multi_file: bool, opts: &'o Options) -> Self {
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
            notes: Vec::new(),
            names: Vec::new(),
            since_sweep: 0,
            last_sweep: 0,
            peak_live: 0,
            evicted: Vec::new(),
        }
    }

    pub(super) fn frame(&mut self, f: &Frame<'_>) {
        if f.linktype == LINKTYPE_TLS_SECRETS {
            let what = format!("{}: Decryption Secrets Block", self.input_name(f.file));
            keys::add(&mut self.table, &mut self.notes, &what, f.data);
            return;
        }
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

    /// Live input, no packet for `quiet` of wall time: the capture clock runs on from the last
    /// packet, and connections quiet (or idle) by it are settled, though no packet came.
    pub(super) fn quiet(&mut self, quiet: std::time::Duration) {
        if self.ctx.capture_start.is_none() {
            return;
        }
        let last_packet = self.ctx.capture_end;
        let elapsed = Nanos::try_from(quiet.as_nanos()).unwrap_or(Nanos::MAX);
        let now = last_packet.saturating_add(elapsed);
        if now.saturating_sub(self.last_sweep) < self.opts.flow.sweep_interval {
            return;
        }
        // Connections settled now see the capture run until now; the summary's last time
        // stays the last packet's.
        self.ctx.capture_end = now;
        self.sweep();
        self.ctx.capture_end = last_packet;
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
    pub(super) fn flush_settled(&mut self) {
        self.peak_live = self.peak_live.max(self.table.live());
        for s in self.table.drain() {
            let c = self.table.conn(s);
            self.settle(c);
        }
        self.send_batch();
    }

    pub(super) fn finish(mut self) -> Report {
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
        let mut warnings: Vec<String> = self.notes.clone();
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
        let filter = super::settle::filter_words(self.opts);
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
            // Counted before the filter, for "nothing matched" words.
            connections_seen: filter.is_some().then_some(self.settler.seen),
            filter,
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
