//! JSON: one document (`--format json`) or one connection per line (`--format ndjson`).
//! The document is written piece by piece so its size never has to fit in memory.

use crate::analysis::Report;
use crate::model::Connection;
use std::io::{self, Write};

/// Appends `c` as one NDJSON line: its compact JSON and a newline (live use writes each
/// connection the moment it is settled).
pub fn connection_line(c: &Connection, out: &mut Vec<u8>) -> io::Result<()> {
    serde_json::to_writer(&mut *out, c).map_err(io::Error::other)?;
    out.push(b'\n');
    Ok(())
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
    writeln!(w, "  \"redacted\": {},", r.redacted())?;
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
        "tool": r.tool,
        "redacted": r.redacted(),
    });
    writeln!(w, "{tail}")
}
