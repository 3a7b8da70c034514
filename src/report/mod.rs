//! Report: renders a [`Report`](crate::analysis::Report) as a terminal table, JSON, NDJSON or
//! Markdown, streaming to a writer: connections are read back one at a time, so rendering a
//! million connections needs no more memory than rendering ten. Renderers only read the model;
//! escaping of capture-derived text happens before (in `analysis`) and per format here.

pub mod compare;
pub mod json;
pub mod markdown;
pub mod text;
mod tls_lines;
mod words;

pub(crate) use words::{alert_words, empty_words};

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
    /// Problems (verdict, server) explained at most: Markdown sections (and rows of its
    /// per-server table), text explanations without `all` (0 = [`MAX_PROBLEMS`]).
    pub max_problems: usize,
}

/// Problems explained in a report at most, by default. A capture of a scan reaches thousands of
/// servers; a reader needs the few problems that matter, and the renderer keeps a bounded
/// amount of state per problem.
pub const MAX_PROBLEMS: usize = 50;

impl RenderOptions {
    fn max_problems(&self) -> usize {
        match self.max_problems {
            0 => MAX_PROBLEMS,
            n => n,
        }
    }
}

/// Renders the whole report to `w`.
pub fn render_to(
    r: &crate::analysis::Report,
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

/// The line a redacted report opens with (text and Markdown; JSON says `redacted: true`).
pub(crate) fn redaction_line(names_kept: bool) -> &'static str {
    if names_kept {
        "Redacted: addresses and file paths are replaced, names kept; the same key gives the same mapping."
    } else {
        "Redacted: addresses, names and file paths are replaced; the same key gives the same mapping."
    }
}

/// Appends connection `i` to a buffer, in some format.
pub(crate) type RenderOne<'a> = dyn Fn(usize, &mut Vec<u8>) -> io::Result<()> + Sync + 'a;

/// Connections rendered per chunk by [`write_connections`].
const CHUNK: usize = 256;

/// Writes what `each(i, ..)` appends for every connection `i`, in order. Reading a connection back
/// (spill file, verdict wording, redaction) and serialising it is most of the cost of a big
/// report, so two threads prepare alternate chunks of connections while this one writes them
/// out in order: the bytes are the same as one thread would write.
pub(crate) fn write_connections(
    r: &crate::analysis::Report,
    each: &RenderOne<'_>,
    w: &mut dyn Write,
) -> io::Result<()> {
    write_chunked(r, each, w, CHUNK)
}

fn write_chunked(
    r: &crate::analysis::Report,
    each: &RenderOne<'_>,
    w: &mut dyn Write,
    size: usize,
) -> io::Result<()> {
    let n = r.len();
    let chunk = |c: usize| -> io::Result<Vec<u8>> {
        let mut buf = Vec::with_capacity(64 << 10);
        for i in c * size..((c + 1) * size).min(n) {
            each(i, &mut buf)?;
        }
        Ok(buf)
    };
    let chunks = n.div_ceil(size);
    if chunks <= 1 {
        return (0..chunks).try_for_each(|c| w.write_all(&chunk(c)?));
    }
    const WORKERS: usize = 2;
    std::thread::scope(|scope| {
        let mut queues = Vec::with_capacity(WORKERS);
        for k in 0..WORKERS {
            let (tx, rx) = std::sync::mpsc::sync_channel::<io::Result<Vec<u8>>>(2);
            queues.push(rx);
            let chunk = &chunk;
            scope.spawn(move || {
                for c in (k..chunks).step_by(WORKERS) {
                    // The writer stopped (write error): nothing more to do.
                    if tx.send(chunk(c)).is_err() {
                        return;
                    }
                }
            });
        }
        for c in 0..chunks {
            let buf = queues[c % WORKERS]
                .recv()
                .map_err(|_| io::Error::other("a rendering thread stopped"))??;
            w.write_all(&buf)?;
        }
        Ok(())
    })
}

/// Renders the whole report into a string (small reports, tests).
pub fn render(r: &crate::analysis::Report, format: Format, o: &RenderOptions) -> String {
    let mut buf = Vec::new();
    if let Err(e) = render_to(r, format, o, &mut buf) {
        buf.extend_from_slice(format!("\nerror: {e}\n").as_bytes());
    }
    String::from_utf8_lossy(&buf).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Chunks prepared by two threads come out in order, each connection once, with the same
    /// bytes as one thread writing them (also redacted: the threads share the address cache).
    #[test]
    fn chunked_rendering_keeps_every_connection_in_order() {
        let path = format!("{}/samples/mixed.pcap", env!("CARGO_MANIFEST_DIR"));
        for redact in [false, true] {
            let opts = crate::Options {
                redact: redact.then(|| crate::RedactOptions {
                    key: Some("k".into()),
                    keep_names: false,
                }),
                ..Default::default()
            };
            let r = crate::analyze(std::slice::from_ref(&path), &opts).expect("analyse");
            assert!(r.len() >= 10, "{} connections", r.len());
            let each = |i: usize, buf: &mut Vec<u8>| {
                let c = r.connection(i)?;
                buf.extend_from_slice(format!("{i}:{}:", c.stream).as_bytes());
                serde_json::to_writer(&mut *buf, &c).map_err(io::Error::other)?;
                buf.push(b'\n');
                Ok(())
            };
            let (mut one, mut many) = (Vec::new(), Vec::new());
            write_chunked(&r, &each, &mut one, usize::MAX).expect("one chunk");
            write_chunked(&r, &each, &mut many, 2).expect("chunks of two");
            assert_eq!(
                String::from_utf8_lossy(&one),
                String::from_utf8_lossy(&many)
            );
            assert_eq!(many.iter().filter(|b| **b == b'\n').count(), r.len());
        }
    }
}
