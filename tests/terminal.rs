//! The default view on a terminal: tables and prose fit the terminal's width, colour codes are
//! never cut by a wrap, and past 20 failed connections the table has one row per problem.
//! The width is found on a real pseudo-terminal of 100 columns, with no tool but the binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::process::{Command, Stdio};
use tlsdiag::report::{render, Format, RenderOptions};
use unicode_width::UnicodeWidthStr;

mod common;
use common::sample;

/// A line's escape sequences, checked: each is a complete SGR sequence (`ESC [ digits;... m`),
/// and the last one on the line resets, so no colour is left open at its end. The line
/// without them is returned.
fn strip_checked(line: &str) -> String {
    let mut plain = String::new();
    let mut open = [false; 2]; // a foreground colour, bold
    let mut rest = line;
    while let Some(at) = rest.find('\x1b') {
        plain.push_str(&rest[..at]);
        let seq = &rest[at + 1..];
        let body = seq
            .strip_prefix('[')
            .unwrap_or_else(|| panic!("an escape not followed by '[' in {line:?}"));
        let end = body
            .find(|c: char| !(c.is_ascii_digit() || c == ';'))
            .unwrap_or_else(|| panic!("an escape sequence cut at the end of {line:?}"));
        assert_eq!(&body[end..end + 1], "m", "not a colour code in {line:?}");
        sgr(&body[..end], &mut open);
        rest = &body[end + 1..];
    }
    plain.push_str(rest);
    assert_eq!(
        open, [false; 2],
        "a colour left open at the end of {line:?}"
    );
    plain
}

/// What an SGR sequence's parameters open and close: a foreground colour (30-37, 90-97, 38;5;N
/// open, 39 closes) and bold (1 opens, 22 closes); 0 or none closes both.
fn sgr(params: &str, open: &mut [bool; 2]) {
    let mut p = params.split(';');
    while let Some(x) = p.next() {
        match x {
            "" | "0" => *open = [false; 2],
            "1" => open[1] = true,
            "22" => open[1] = false,
            "39" => open[0] = false,
            "38" => {
                assert_eq!(p.next(), Some("5"), "{params}");
                assert!(
                    p.next().is_some_and(|n| n.parse::<u8>().is_ok()),
                    "{params}"
                );
                open[0] = true;
            }
            x => match x.parse::<u8>() {
                Ok(30..=37 | 90..=97) => open[0] = true,
                _ => panic!("an unexpected colour code {params:?}"),
            },
        }
    }
}

/// Every line of `out` is at most `width` columns, its colour codes whole and closed.
fn assert_fits(out: &str, width: usize, what: &str) {
    for line in out.lines() {
        let plain = strip_checked(line.trim_end_matches('\r'));
        assert!(
            plain.width() <= width,
            "{what}: a line of {} columns (> {width}):\n{plain}",
            plain.width()
        );
    }
}

fn options(all: bool) -> RenderOptions {
    RenderOptions {
        all,
        timeline: true,
        width: Some(100),
        color: true,
        max_problems: 0,
    }
}

#[test]
fn text_at_100_columns_with_colour_fits_and_cuts_no_colour_code() {
    for name in [
        "mixed.pcap",
        "server_alert_handshake_failure.pcap",
        "client_alert_tls13.pcap",
        "gateway_timeout_55s.pcap",
        "icmp6_admin_prohibited.pcap",
        "clienthello_dropped.client.pcap",
        "not_tls.pcap",
    ] {
        let r = tlsdiag::analyze(&[sample(name)], &Default::default()).expect(name);
        for all in [false, true] {
            let out = render(&r, Format::Text, &options(all));
            assert!(out.contains("\x1b[1m"), "{name}: no colour at all");
            // The table's verdict column wraps at this width in mixed.pcap: the codes must
            // still be whole on each line.
            assert_fits(&out, 100, name);
        }
    }
}

#[test]
fn the_table_of_many_failures_has_a_row_per_problem_and_all_lists_every_one() {
    let paths: Vec<String> = std::fs::read_dir(common::samples_dir())
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .filter(|p| p.ends_with(".pcap"))
        .collect();
    let r = tlsdiag::analyze(&paths, &Default::default()).expect("all samples");
    let failed = r.summary.failed;
    assert!(failed > 20, "{failed} failed connections: too few to group");
    // Rows (not the lines of wrapped cells: their first cell is blank), less the header.
    let rows = |out: &str| out.lines().filter(|l| is_row(l)).count() - 1;
    let grouped = render(&r, Format::Text, &options(false));
    assert_fits(&grouped, 100, "all samples, grouped");
    assert!(grouped.contains("│ count"), "{grouped}");
    // One row per (verdict, server) among the failures, the counts adding up to all of them.
    let problems: std::collections::BTreeSet<(String, String, u16)> = r
        .listed(false)
        .map(|c| c.unwrap())
        .map(|c| (c.verdict.as_str().to_string(), c.server_ip, c.server_port))
        .collect();
    let problems = problems.len() as u64;
    assert!(problems < failed);
    assert_eq!(rows(&grouped) as u64, problems, "{grouped}");
    let counted: u64 = grouped
        .lines()
        .filter(|l| is_row(l))
        .skip(1)
        .map(|l| {
            l.trim_start_matches("│ ")
                .split_whitespace()
                .next()
                .unwrap()
        })
        .map(|n| n.parse::<u64>().unwrap())
        .sum();
    assert_eq!(counted, failed);
    let all = render(&r, Format::Text, &options(true));
    assert_fits(&all, 100, "all samples, --all");
    assert_eq!(rows(&all), r.len(), "--all lists every connection");
}

/// A table line that starts a row: its first cell is not blank.
fn is_row(line: &str) -> bool {
    line.strip_prefix("│ ")
        .is_some_and(|rest| !rest.starts_with(' '))
}

/// Runs the binary on mixed.pcap with its standard output on a pseudo-terminal `cols` wide;
/// `columns` sets `$COLUMNS`. What the terminal received, `\r\n` made `\n`.
fn on_pty(cols: u16, columns: Option<&str>) -> String {
    let size = nix::pty::Winsize {
        ws_row: 50,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = nix::pty::openpty(&size, None).expect("a pseudo-terminal");
    let mut child = {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tlsdiag"));
        cmd.arg(sample("mixed.pcap"))
            .env_remove("COLUMNS")
            .env_remove("NO_COLOR")
            .stdin(Stdio::null())
            .stdout(Stdio::from(pty.slave))
            .stderr(Stdio::null());
        if let Some(c) = columns {
            cmd.env("COLUMNS", c);
        }
        cmd.spawn().expect("run tlsdiag")
        // The command, and with it this side's copy of the terminal's slave end, is dropped
        // here, so reading the master ends when the child exits.
    };
    let mut master = std::fs::File::from(pty.master);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    // Linux answers EIO once no process holds the slave end: that is the end of the output.
    while let Ok(n) = master.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    assert!(child.wait().unwrap().success());
    String::from_utf8(out).unwrap().replace("\r\n", "\n")
}

#[test]
fn on_a_100_column_terminal_the_report_is_100_wide_and_coloured() {
    let out = on_pty(100, None);
    assert!(out.contains("\x1b["), "a terminal gets colour:\n{out}");
    assert_fits(&out, 100, "pty 100");
    // The table uses the width it was given (the default, 120, would not fit).
    let widest = out
        .lines()
        .filter(|l| l.starts_with('┌'))
        .map(|l| strip_checked(l).width())
        .max()
        .expect("a table");
    assert_eq!(widest, 100, "{out}");
    // $COLUMNS still overrides what the terminal says.
    let narrow = on_pty(100, Some("72"));
    assert_fits(&narrow, 72, "COLUMNS=72");
}

#[test]
fn the_compare_table_at_60_columns_cuts_no_colour_code() {
    for pair in ["clienthello_dropped", "server_reset", "mtu_blackhole"] {
        let o = tlsdiag::compare::CompareOptions {
            client_side: vec![sample(&format!("{pair}.client.pcap"))],
            server_side: vec![sample(&format!("{pair}.server.pcap"))],
            ..Default::default()
        };
        let cmp = tlsdiag::compare::compare(&o).expect(pair);
        let opts = RenderOptions {
            width: Some(60),
            ..options(true)
        };
        let out = tlsdiag::report::compare::render(&cmp, Format::Text, &opts);
        // The verdict column wraps at this width: every piece is coloured whole.
        let table: String = out
            .lines()
            .filter(|l| l.starts_with(['┌', '│', '╞', '└']))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(table.contains("\x1b["), "{pair}: no colour in\n{out}");
        assert_fits(&table, 60, pair);
    }
}
