//! JSON: one document (`--format json`) or one connection per line (`--format ndjson`).
//! The document is written piece by piece so its size never has to fit in memory.

use crate::model::{Connection, Report};
use std::io::{self, Write};

/// Appends `v` as compact JSON, the bytes `serde_json::to_writer` would write
/// ([`jsonw`](super::jsonw), falling back to `serde_json` for what it does not write).
pub(crate) fn write_compact<T: serde::Serialize + ?Sized>(
    out: &mut Vec<u8>,
    v: &T,
) -> io::Result<()> {
    let len = out.len();
    if super::jsonw::to_vec(out, v).is_ok() {
        return Ok(());
    }
    out.truncate(len);
    serde_json::to_writer(out, v).map_err(io::Error::other)
}

/// Appends `c` as one NDJSON line: its compact JSON and a newline (live use writes each
/// connection the moment it is settled).
pub fn connection_line(c: &Connection, out: &mut Vec<u8>) -> io::Result<()> {
    write_compact(out, c)?;
    out.push(b'\n');
    Ok(())
}

/// Keeps a settled connection as its compact JSON text: whole
/// ([`Body::Final`](crate::store::Body::Final)) when its capture-point fields are filled in,
/// else ([`Body::Json`](crate::store::Body::Json)) with them, decided at the end, cut out.
pub(crate) fn kept(c: &Connection, whole: bool) -> io::Result<crate::store::Body> {
    // Written in a per-thread scratch buffer and copied out at its exact size: hundreds of
    // these wait in the settling queue and the store, and a 4 KiB guess wasted a third.
    thread_local! {
        static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    SCRATCH.with(|s| match s.try_borrow_mut() {
        Ok(mut scratch) => {
            scratch.clear();
            let body = keep(c, whole, &mut scratch);
            scratch.clear();
            scratch.shrink_to(64 << 10);
            body
        }
        Err(_) => keep(c, whole, &mut Vec::new()),
    })
}

fn keep(c: &Connection, whole: bool, buf: &mut Vec<u8>) -> io::Result<crate::store::Body> {
    write_compact(buf, c)?;
    let text = || -> Box<[u8]> { buf.as_slice().into() };
    if whole {
        return Ok(crate::store::Body::Final(text()));
    }
    // Inside a JSON string every quote is escaped, so the first `,"name":` is the key.
    let find = |from: usize, key: &[u8]| Some(from + memchr::memmem::find(buf.get(from..)?, key)?);
    let Some((start, end)) =
        find(0, b",\"verdict\":").and_then(|start| Some((start, find(start, b",\"syn_count\":")?)))
    else {
        return Err(io::Error::other(
            "connection JSON without its verdict fields",
        ));
    };
    let gap = (start as u32 + 1, end as u32);
    Ok(crate::store::Body::Json { text: text(), gap })
}

fn json<T: serde::Serialize>(v: &T) -> io::Result<String> {
    serde_json::to_string_pretty(v).map_err(io::Error::other)
}

/// Indents every line after the first by `n` spaces (to nest a pretty-printed value).
fn indent(s: &str, n: usize) -> String {
    s.replace('\n', &format!("\n{}", " ".repeat(n)))
}

pub fn render(r: &Report, w: &mut dyn Write) -> io::Result<()> {
    writeln!(w, "{{")?;
    writeln!(w, "  \"schema_version\": {},", r.schema_version)?;
    writeln!(w, "  \"tool\": {},", indent(&json(&r.tool)?, 2))?;
    writeln!(w, "  \"captures\": {},", indent(&json(&r.captures)?, 2))?;
    writeln!(w, "  \"vantage\": {},", indent(&json(&r.vantage)?, 2))?;
    writeln!(w, "  \"summary\": {},", indent(&json(&r.summary)?, 2))?;
    writeln!(w, "  \"warnings\": {},", indent(&json(&r.warnings)?, 2))?;
    // One connection per line: greppable, and cheap to write for a million of them.
    write!(w, "  \"connections\": [")?;
    super::write_connections(
        r,
        &|i, buf| {
            buf.extend_from_slice(if i == 0 { b"\n    " } else { b",\n    " });
            r.write_connection_json(i, buf)
        },
        w,
    )?;
    if r.is_empty() {
        writeln!(w, "]")?;
    } else {
        writeln!(w, "\n  ]")?;
    }
    writeln!(w, "}}")
}

/// One JSON object per connection, then a final `{"summary": ...}` line.
pub fn render_ndjson(r: &Report, w: &mut dyn Write) -> io::Result<()> {
    super::write_connections(
        r,
        &|i, buf| {
            r.write_connection_json(i, buf)?;
            buf.push(b'\n');
            Ok(())
        },
        w,
    )?;
    let tail = serde_json::json!({
        "summary": r.summary,
        "vantage": r.vantage,
        "warnings": r.warnings,
        "captures": r.captures,
        "schema_version": r.schema_version,
    });
    writeln!(w, "{tail}")
}
