//! Settling: a finished connection is summarised (diagnose: facts, capture-point evidence,
//! verdict code), counted, and stored, on the settling thread or, when that one is behind, on
//! the packet thread; either way in settling order.

use super::options::Options;
use crate::analysis::{Settled, Wording};
use crate::diagnose::clock::Ctx;
use crate::diagnose::facts::{summarise, trace, Facts};
use crate::diagnose::rollup::{Rollup, Times};
use crate::diagnose::vantage::{self, Evidence};
use crate::diagnose::verdict::{self, Side};
use crate::flow::Conn;
use crate::model::Connection;
use crate::store::Store;

/// while the packet thread ran out of input; yielding every ~0.1 ms of summarising lets it in
/// at once (packet thread busy ~75 % -> ~97 % of the analysis, 1 GB: ~10 % less wall time).
pub(super) const YIELD_EVERY: usize = 8;

/// Settled connections go to the summarising thread in batches of at most this many (one
/// wake-up per batch, not per connection), at most [`SETTLE_QUEUE`] batches in flight: a
/// bounded number of connections waits in the queue, whatever a sweep settles. The queue is
/// often full (the summariser yields, and the packet thread summarises a batch itself when
/// it finds no room), so its size is memory: 32 x 8 connections of ~2.3 KiB, 1 MiB less at
/// peak than 64 x 8 for the same speed.
pub(super) const SETTLE_BATCH: usize = if cfg!(test) { 1 } else { 32 };
pub(super) const SETTLE_QUEUE: usize = if cfg!(test) { 0 } else { 8 };

/// A size from the options, where 0 means the default.
pub(super) fn or_default(n: usize, default: usize) -> usize {
    if n == 0 {
        default
    } else {
        n
    }
}

/// Summarises settled connections into the store (or hands them to the caller, live) and keeps
/// the per-verdict counts.
pub(super) struct Settler<'o, 'c> {
    pub(super) opts: &'o Options,
    /// Live mode: settled connections go here instead of the store.
    pub(super) on_settled: Option<&'c mut (dyn FnMut(Connection) + Send)>,
    pub(super) wording: Wording,
    pub(super) store: Store<Settled>,
    pub(super) rollup: Rollup,
    pub(super) evidence: vantage::Tally,
    pub(super) duplicates: u64,
    /// Connections settled, whether a filter kept them or not.
    pub(super) seen: u64,
    pub(super) store_error: Option<std::io::Error>,
}

impl<'o, 'c> Settler<'o, 'c> {
    pub(super) fn new(opts: &'o Options) -> Self {
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
            seen: 0,
            store_error: None,
        }
    }

    pub(super) fn settle(&mut self, c: &mut Conn, ctx: &Ctx) {
        self.store_prepared(prepare(self.opts, c, ctx));
    }

    /// Settles a batch from the queue, in order; gives back the connections, done with.
    #[allow(clippy::vec_box)] // boxed as the flow table made them, to be reused as boxes
    pub(super) fn take(&mut self, batch: Batch) -> Vec<Box<Conn>> {
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
        self.seen += 1;
        let Some(kept) = p.kept else {
            return;
        };
        // The round trip as the connection's own evidence (or --vantage) places it: the
        // capture's side is known only at the end.
        let f = &kept.settled.facts;
        let times = Times {
            tcp_rtt_s: f.tcp_rtt_s(self.opts.vantage.unwrap_or(kept.settled.evidence)),
            server_hello_delay_s: f.server_hello_delay_s(),
        };
        self.rollup.add(f.server, kept.code, times);
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
pub(super) struct Prepared {
    duplicates: u64,
    /// None when a filter leaves the connection out.
    kept: Option<Kept>,
}

struct Kept {
    settled: Settled,
    code: verdict::VerdictCode,
    evidence: Evidence,
}

pub(super) fn prepare(opts: &Options, c: &mut Conn, ctx: &Ctx) -> Prepared {
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
pub(super) enum Batch {
    Settled(Vec<Box<Conn>>, Ctx),
    Prepared(Vec<Prepared>),
}

/// One analysis in progress.
fn matches_filters(f: &Facts, o: &Options) -> bool {
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

/// The filters as given on the command line ("--host 10.9.9.9 --port 443"), None without one;
/// with --redact the values are left out (they would name what the redaction hides).
pub(super) fn filter_words(o: &Options) -> Option<String> {
    let hide = o.redact.is_some();
    let value = |v: String| if hide { "(redacted)".to_string() } else { v };
    let mut words = Vec::new();
    if let Some(h) = o.host {
        words.push(format!("--host {}", value(h.to_string())));
    }
    if let Some(p) = o.port {
        words.push(format!("--port {p}"));
    }
    if let Some((ip, port)) = o.server {
        let server = match port {
            Some(p) => std::net::SocketAddr::new(ip, p).to_string(),
            None => ip.to_string(),
        };
        words.push(format!("--server {}", value(server)));
    }
    (!words.is_empty()).then(|| words.join(" "))
}
