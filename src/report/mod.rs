//! Report: renders a [`Report`](crate::model::Report) as a terminal table, JSON, NDJSON or
//! Markdown, streaming to a writer: connections are read back one at a time, so rendering a
//! million connections needs no more memory than rendering ten. Renderers only read the model;
//! escaping of capture-derived text happens before (in `analysis`) and per format here.

pub mod compare;
pub mod json;
pub mod markdown;
pub mod text;

use std::io::{self, Write};

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    Ndjson,
    Markdown,
}

/// Rendering choices.
#[derive(Debug, Clone, Copy, Default)]
pub struct RenderOptions {
    /// List every connection, not only the failed ones.
    pub all: bool,
    /// Print each problem connection's timeline.
    pub timeline: bool,
    /// Terminal width for tables (None = unbounded).
    pub width: Option<u16>,
    /// ANSI colour.
    pub color: bool,
}

/// Renders the whole report to `w`.
pub fn render_to(
    r: &crate::model::Report,
    format: Format,
    o: &RenderOptions,
    w: &mut dyn Write,
) -> io::Result<()> {
    match format {
        Format::Text => text::render(r, o, w),
        Format::Json => json::render(r, w),
        Format::Ndjson => json::render_ndjson(r, w),
        Format::Markdown => markdown::render(r, o, w),
    }
}

/// Renders the whole report into a string (small reports, tests).
pub fn render(r: &crate::model::Report, format: Format, o: &RenderOptions) -> String {
    let mut buf = Vec::new();
    if let Err(e) = render_to(r, format, o, &mut buf) {
        buf.extend_from_slice(format!("\nerror: {e}\n").as_bytes());
    }
    String::from_utf8_lossy(&buf).into_owned()
}
