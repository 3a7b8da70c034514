//! Clock: a capture's time frame, and the seconds reports cite (rounded to the microsecond, as
//! Wireshark shows them).

use crate::capture::{FrameRef, Nanos};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A frame and its time: seconds since the connection's first packet (`t`, what durations are
/// measured from) and since the capture's first packet (`since_capture`, Wireshark's default
/// time column, what explanations cite).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Ev {
    pub frame: u64,
    pub t: f64,
    pub since_capture: f64,
    /// Index of the input file, when several files make one capture.
    pub file: Option<usize>,
}

impl fmt::Display for Ev {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.file {
            // Several files: the frame within its file, as Wireshark numbers each.
            Some(file) => write!(
                f,
                "frame {file}:{} at {:.3} s",
                self.frame, self.since_capture
            ),
            None => write!(f, "frame {} at {:.3} s", self.frame, self.since_capture),
        }
    }
}

pub(crate) fn secs(ns: Nanos) -> f64 {
    ns as f64 / 1e9
}

pub(crate) fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// Context shared by all connections of a capture.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ctx {
    /// Time of the capture's first packet.
    pub(crate) capture_start: Option<Nanos>,
    /// Latest packet time seen so far (the end, once the capture is read).
    pub(crate) capture_end: Nanos,
    pub(crate) multi_file: bool,
}

impl Ctx {
    /// A frame of a connection whose first packet came at `base`.
    pub(crate) fn ev(&self, r: FrameRef, base: Nanos) -> Ev {
        Ev {
            frame: r.frame(),
            t: round6(secs(r.ts.saturating_sub(base))),
            since_capture: round6(secs(
                r.ts.saturating_sub(self.capture_start.unwrap_or(r.ts)),
            )),
            file: self.multi_file.then_some(r.file()),
        }
    }
}
