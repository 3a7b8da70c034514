//! JSON: one document (`--format json`) or one connection per line (`--format ndjson`).

use crate::model::Report;

pub fn render(r: &Report) -> String {
    let mut s =
        serde_json::to_string_pretty(r).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    s.push('\n');
    s
}

/// One JSON object per connection, then a final `{"summary": ...}` line.
pub fn render_ndjson(r: &Report) -> String {
    let mut out = String::new();
    for c in &r.connections {
        if let Ok(line) = serde_json::to_string(c) {
            out.push_str(&line);
            out.push('\n');
        }
    }
    let tail = serde_json::json!({
        "summary": r.summary,
        "vantage": r.vantage,
        "warnings": r.warnings,
        "schema_version": r.schema_version,
    });
    out.push_str(&tail.to_string());
    out.push('\n');
    out
}
