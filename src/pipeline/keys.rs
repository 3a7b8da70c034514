//! Keys: `--keylog` files and pcapng Decryption Secrets Blocks into the flow table's key log.
//!
//! A key log line is never echoed anywhere: a malformed one is named by its line number only,
//! once per file, and secrets never reach a note.

use crate::capture::CaptureError;
use crate::flow::FlowTable;
use crate::tls::keylog::{Loaded, MAX_LINE, MAX_RANDOMS};
use std::io::{BufRead, BufReader, Read};

/// A key log file is read this much at a time (then up to the next line end), so memory
/// stays bounded whatever its size.
const CHUNK: u64 = 4 << 20;

/// Reads the key log at `path` into `table`; a file that cannot be read is an error naming it.
pub(super) fn load(
    table: &mut FlowTable,
    notes: &mut Vec<String>,
    path: &str,
) -> Result<(), CaptureError> {
    let open_err = |source| CaptureError::KeyLog {
        path: path.to_string(),
        source,
    };
    let file = std::fs::File::open(path).map_err(open_err)?;
    let mut rdr = BufReader::new(file);
    let mut total = Loaded::default();
    let mut lines_before = 0;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        (&mut rdr)
            .take(CHUNK)
            .read_to_end(&mut buf)
            .map_err(open_err)?;
        if buf.is_empty() {
            break;
        }
        if buf.last() != Some(&b'\n') {
            finish_line(&mut rdr, &mut buf).map_err(open_err)?;
        }
        let loaded = table.add_key_log(&buf);
        merge(&mut total, &loaded, lines_before);
        lines_before += memchr::memchr_iter(b'\n', &buf).count();
    }
    note(notes, &format!("{path}: key log"), &total);
    Ok(())
}

/// Reads the rest of the line a chunk ended in, keeping at most [`MAX_LINE`] + 1 more bytes:
/// a longer line is malformed whatever it holds, so the rest of it is skipped unread, and a
/// file with no line ends costs no more memory than one chunk.
fn finish_line(rdr: &mut impl BufRead, buf: &mut Vec<u8>) -> std::io::Result<()> {
    rdr.take(MAX_LINE as u64 + 1).read_until(b'\n', buf)?;
    if buf.last() != Some(&b'\n') && rdr.skip_until(b'\n')? > 0 {
        buf.push(b'\n');
    }
    Ok(())
}

/// Adds the key log text of a Decryption Secrets Block, `what` naming it in notes.
pub(super) fn add(table: &mut FlowTable, notes: &mut Vec<String>, what: &str, text: &[u8]) {
    let loaded = table.add_key_log(text);
    note(notes, what, &loaded);
}

/// Adds what a chunk read to the file's total; its line numbers start after `lines_before`.
fn merge(total: &mut Loaded, chunk: &Loaded, lines_before: usize) {
    total.entries += chunk.entries;
    total.ignored += chunk.ignored;
    total.malformed += chunk.malformed;
    total.dropped += chunk.dropped;
    if total.first_malformed_line.is_none() {
        total.first_malformed_line = chunk.first_malformed_line.map(|l| l + lines_before);
    }
}

/// The notes a key log deserves: malformed lines (by number), nothing usable, randoms beyond
/// the cap.
fn note(notes: &mut Vec<String>, what: &str, l: &Loaded) {
    if l.malformed > 0 {
        let first = l
            .first_malformed_line
            .map(|n| format!(" (the first is line {n})"))
            .unwrap_or_default();
        notes.push(format!(
            "{what}: {} line(s) are not key log lines{first}; skipped",
            l.malformed
        ));
    }
    if l.entries == 0 {
        notes.push(format!(
            "{what}: no TLS secrets (CLIENT_RANDOM or *_TRAFFIC_SECRET lines) in it"
        ));
    }
    if l.dropped > 0 {
        notes.push(format!(
            "{what}: {} secret(s) beyond {MAX_RANDOMS} client randoms were not kept",
            l.dropped
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_line_is_named_by_number_and_never_echoed() {
        let secret = "ab".repeat(48);
        let text = format!(
            "# comment\nCLIENT_RANDOM {} {secret}\nCLIENT_RANDOM nothex {secret}\n",
            "11".repeat(32)
        );
        let mut table = FlowTable::new(Default::default());
        let mut notes = Vec::new();
        add(
            &mut table,
            &mut notes,
            "x.pcapng: Decryption Secrets Block",
            text.as_bytes(),
        );
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("the first is line 3"), "{}", notes[0]);
        assert!(!notes[0].contains("ab"), "a secret leaked: {}", notes[0]);
    }

    #[test]
    fn line_numbers_continue_across_chunks() {
        let mut total = Loaded::default();
        let chunk = Loaded {
            malformed: 1,
            first_malformed_line: Some(2),
            ..Default::default()
        };
        merge(&mut total, &Loaded::default(), 0);
        merge(&mut total, &chunk, 100);
        assert_eq!(total.first_malformed_line, Some(102));
    }

    #[test]
    fn the_rest_of_a_long_line_is_skipped_not_kept() {
        let mut text = vec![b'a'; 10 * MAX_LINE];
        text.extend_from_slice(b"\nNEXT");
        let mut rdr = std::io::Cursor::new(text);
        let mut buf = b"CLIENT".to_vec();
        finish_line(&mut rdr, &mut buf).unwrap();
        assert!(buf.len() <= 6 + MAX_LINE + 2, "{} bytes kept", buf.len());
        assert_eq!(buf.last(), Some(&b'\n'));
        let mut rest = String::new();
        rdr.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "NEXT");
    }

    #[test]
    fn a_line_longer_than_a_chunk_is_one_malformed_line() {
        let valid = format!("CLIENT_RANDOM {} {}\n", "11".repeat(32), "ab".repeat(48));
        let mut text = valid.clone().into_bytes();
        text.extend(std::iter::repeat_n(b'a', CHUNK as usize * 2 + 5));
        text.push(b'\n');
        text.extend_from_slice(valid.replace("11", "22").as_bytes());
        text.extend_from_slice(b"nonsense\n");
        let path = std::env::temp_dir().join(format!("tlsdiag-long-line-{}", std::process::id()));
        std::fs::write(&path, &text).unwrap();
        let mut table = FlowTable::new(Default::default());
        let mut notes = Vec::new();
        let loaded = load(&mut table, &mut notes, &path.display().to_string());
        let _ = std::fs::remove_file(&path);
        assert!(loaded.is_ok());
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(
            notes[0].ends_with("2 line(s) are not key log lines (the first is line 2); skipped"),
            "{}",
            notes[0]
        );
    }

    #[test]
    fn a_missing_key_log_is_an_error_naming_it() {
        let mut table = FlowTable::new(Default::default());
        let e = load(&mut table, &mut Vec::new(), "/nonexistent/keys.txt")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.starts_with("/nonexistent/keys.txt: cannot read this key log"),
            "{e}"
        );
    }
}
