//! Diagnose: a settled connection's facts, where the capture was taken, and the verdict.
//!
//! `vantage` tells the capture point from per-connection clues; `verdict` is a pure function
//! from facts to a verdict code, an explanation and a next step; `rollup` counts verdicts per
//! server.

pub(crate) mod cert_words;
pub mod certificate;
pub(crate) mod clock;
pub mod facts;
pub(crate) mod hello;
pub mod record;
pub mod rollup;
pub(crate) mod timeline;
pub mod vantage;
pub mod verdict;
