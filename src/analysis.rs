//! Analysis: what an analysis found, as the renderers read it. The capture's summary and
//! capture point, and the settled connections, read back one at a time in output order, each
//! judged and worded for its capture point (the `--vantage` override, its own evidence, else
//! the capture's), then redacted when asked.
//!
//! Redaction happens here, before any renderer sees a connection, so no format can leak what
//! it hides.

use crate::capture::InputSummary;
use crate::diagnose::facts::Facts;
use crate::diagnose::{record, verdict};
use crate::model::{Connection, Side, Summary, Tool, Trace, VantageOut};
use crate::redact::Redactor;
use crate::store::Store;
use serde::{Deserialize, Serialize};

/// A settled connection as stored: its facts, what its own packets said about the capture
/// point, and its packets when kept for `compare`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Settled {
    pub(crate) facts: Facts,
    /// The capture point its own packets tell (`Unknown` when they do not).
    pub(crate) evidence: Side,
    pub(crate) trace: Option<Trace>,
}

/// How each connection is worded when read back.
#[derive(Debug, Default)]
pub(crate) struct Wording {
    pub(crate) vantage_override: Option<Side>,
    pub(crate) timeline_limit: Option<usize>,
    pub(crate) redactor: Option<Redactor>,
}

impl Wording {
    /// The reported connection: capture point chosen (override, its own evidence, else
    /// `capture_side`), verdict worded for it, timeline capped, redacted.
    pub(crate) fn connection(&self, s: Settled, capture_side: Side) -> Connection {
        let side = match (self.vantage_override, s.evidence) {
            (Some(side), _) => side,
            (None, Side::Unknown) => capture_side,
            (None, own) => own,
        };
        let mut facts = s.facts;
        if let Some(r) = &self.redactor {
            r.certificate(
                facts.certificate.as_mut(),
                &mut facts.cert_problems,
                facts.client_certificate.as_mut(),
            );
        }
        let judged = verdict::judge(&facts, side);
        // The round trip is timed from the side known when the connection settled.
        let measured_from = self.vantage_override.unwrap_or(s.evidence);
        let mut c = record::connection(facts, judged, side, measured_from);
        if let Some(limit) = self.timeline_limit {
            c.timeline.truncate(limit);
        }
        if let Some(r) = &self.redactor {
            r.connection(&mut c);
        }
        c
    }
}

/// The whole analysis. Connections live in a [`Store`] (memory, or a spill file for big
/// captures) and come back in first-frame order.
#[derive(Debug)]
pub struct Report {
    pub schema_version: u32,
    pub tool: Tool,
    pub captures: Vec<InputSummary>,
    pub vantage: VantageOut,
    pub summary: Summary,
    pub warnings: Vec<String>,
    pub(crate) store: Store<Settled>,
    pub(crate) wording: Wording,
}

impl Report {
    /// Number of connections reported.
    pub fn len(&self) -> usize {
        self.store.len()
    }

    pub fn is_empty(&self) -> bool {
        self.store.is_empty()
    }

    /// Addresses, file paths and (unless kept) names were replaced (`--redact`).
    pub fn redacted(&self) -> bool {
        self.wording.redactor.is_some()
    }

    /// Redacted with names kept (`--keep-names`).
    pub fn names_kept(&self) -> bool {
        self.wording
            .redactor
            .as_ref()
            .is_some_and(Redactor::keeps_names)
    }

    /// Connection `i` in output order, with its verdict worded for its capture point.
    pub fn connection(&self, i: usize) -> std::io::Result<Connection> {
        Ok(self.word(self.store.get(i)?))
    }

    fn word(&self, s: Settled) -> Connection {
        self.wording.connection(s, self.vantage.side)
    }

    /// Appends connection `i` as compact JSON.
    pub(crate) fn write_connection_json(&self, i: usize, out: &mut Vec<u8>) -> std::io::Result<()> {
        serde_json::to_writer(out, &self.connection(i)?).map_err(std::io::Error::other)
    }

    /// Connection `i` with the packets kept for it (`Options::trace`).
    pub(crate) fn traced(&self, i: usize) -> std::io::Result<(Connection, Option<Trace>)> {
        let mut s = self.store.get(i)?;
        let trace = s.trace.take();
        Ok((self.word(s), trace))
    }

    /// All connections in output order.
    pub fn connections(&self) -> impl Iterator<Item = std::io::Result<Connection>> + '_ {
        (0..self.len()).map(|i| self.connection(i))
    }

    /// The connections a report lists, in output order: all of them, or (`all` false) the
    /// failed ones, the others skipped unread.
    pub fn listed(&self, all: bool) -> impl Iterator<Item = std::io::Result<Connection>> + '_ {
        (0..self.len()).filter_map(move |i| {
            if all {
                return Some(self.connection(i));
            }
            match self.store.get_failed(i) {
                Ok(Some(s)) => Some(Ok(self.word(s))),
                Ok(None) => None,
                Err(e) => Some(Err(e)),
            }
        })
    }
}
