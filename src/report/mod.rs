//! Report: renders a [`Report`](crate::model::Report) as a terminal table, JSON, NDJSON or
//! Markdown. Renderers only read the model; escaping of capture-derived text happens before
//! (in `analysis`) and per format here.

pub mod json;
pub mod markdown;
pub mod text;

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

/// Renders the whole report.
pub fn render(r: &crate::model::Report, format: Format, o: &RenderOptions) -> String {
    match format {
        Format::Text => text::render(r, o),
        Format::Json => json::render(r),
        Format::Ndjson => json::render_ndjson(r),
        Format::Markdown => markdown::render(r, o),
    }
}
