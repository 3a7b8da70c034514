//! Escape: makes capture-derived bytes and strings safe to print.
//!
//! Anything that came from the wire (server bytes, HTTP lines, SNI, certificate names) passes
//! through here before it reaches a report, so a hostile capture cannot send terminal escape
//! sequences or break a table. Per-format escaping (Markdown) builds on top of this.

/// Printable ASCII kept; `\r`, `\n`, `\t`, `\\` and `"` as backslash escapes; everything else as
/// `\xNN`.
pub fn bytes(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len());
    for &c in b {
        match c {
            b'\r' => out.push_str("\\r"),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            0x20..=0x7e => out.push(c as char),
            _ => out.push_str(&format!("\\x{c:02x}")),
        }
    }
    out
}

/// Escapes control characters (C0, DEL, C1, bidi overrides) in a string; other Unicode is kept.
pub fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    push_text(&mut out, s);
    out
}

/// [`text`], appended to `out`.
pub fn push_text(out: &mut String, s: &str) {
    // Printable ASCII other than the backslash (names, almost always) is kept as it is.
    if s.bytes().all(|b| (b' '..=b'~').contains(&b) && b != b'\\') {
        out.push_str(s);
        return;
    }
    push_escaped_chars(out, s);
}

/// The general path of [`push_text`], character by character.
fn push_escaped_chars(out: &mut String, s: &str) {
    for ch in s.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            c if c.is_control()
                || ('\u{202a}'..='\u{202e}').contains(&c)
                || ('\u{2066}'..='\u{2069}').contains(&c) =>
            {
                out.push_str(&format!("\\u{{{:x}}}", c as u32))
            }
            c => out.push(c),
        }
    }
}

/// The first line of `b` (up to CR/LF), escaped, at most `max` bytes.
pub fn first_line(b: &[u8], max: usize) -> String {
    let end = b
        .iter()
        .position(|c| *c == b'\r' || *c == b'\n')
        .unwrap_or(b.len())
        .min(max);
    bytes(&b[..end])
}

/// True when `b` starts like an HTTP/1 request line.
pub fn is_http_request(b: &[u8]) -> bool {
    const METHODS: [&[u8]; 9] = [
        b"GET ",
        b"POST ",
        b"PUT ",
        b"HEAD ",
        b"DELETE ",
        b"OPTIONS ",
        b"PATCH ",
        b"CONNECT ",
        b"TRACE ",
    ];
    METHODS.iter().any(|m| b.starts_with(m))
}

/// True when `b` starts like an HTTP/1 status line.
pub fn is_http_response(b: &[u8]) -> bool {
    b.starts_with(b"HTTP/1.") || b.starts_with(b"HTTP/2")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_escapes_are_neutralised() {
        assert_eq!(bytes(b"\x1b[31mred\r\n"), "\\x1b[31mred\\r\\n");
        assert_eq!(text("evil\u{1b}]0;title\u{7}"), "evil\\u{1b}]0;title\\u{7}");
        assert_eq!(text("a\u{202e}b"), "a\\u{202e}b");
        assert_eq!(text("bücher.example"), "bücher.example");
    }

    #[test]
    fn printable_ascii_shortcut_escapes_like_the_general_path() {
        for b in 0u8..128 {
            let s = format!("ab{}cd", char::from(b));
            let mut general = String::from("x");
            push_escaped_chars(&mut general, &s);
            let mut appended = String::from("x");
            push_text(&mut appended, &s);
            assert_eq!(appended, general, "byte {b:#x}");
            assert_eq!(format!("x{}", text(&s)), general, "byte {b:#x}");
        }
        assert_eq!(text("a\\b"), "a\\\\b");
        assert_eq!(text("a\u{7f}"), "a\\u{7f}");
    }

    #[test]
    fn first_line_stops_at_crlf() {
        assert_eq!(
            first_line(b"HTTP/1.1 502 Bad Gateway\r\nX: y", 200),
            "HTTP/1.1 502 Bad Gateway"
        );
        assert!(is_http_response(b"HTTP/1.1 400 Bad Request"));
        assert!(is_http_request(b"GET / HTTP/1.1"));
    }
}
