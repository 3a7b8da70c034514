//! `tlsdiag compare` on the paired samples (client side and server side of the same
//! connections, recorded at the same time; see samples/README.md for how each pair was made and
//! the facts checked with tshark).

#![allow(clippy::expect_used, clippy::unwrap_used)]

use serde_json::Value;
use tlsdiag::compare::{compare, CompareOptions, Comparison, Pair, PairVerdict};

mod common;
use common::{bin, sample};

fn run(pair: &str) -> Comparison {
    let o = CompareOptions {
        client_side: vec![sample(&format!("{pair}.client.pcap"))],
        server_side: vec![sample(&format!("{pair}.server.pcap"))],
        ..Default::default()
    };
    compare(&o).expect("both captures read")
}

fn only_pair(c: &Comparison) -> &Pair {
    assert_eq!(c.pairs.len(), 1, "{:#?}", c.pairs);
    &c.pairs[0]
}

fn lost_frames(list: &[tlsdiag::compare::OneSided]) -> Vec<u64> {
    list.iter().map(|l| l.frame).collect()
}

/// The ladder's status for the packet with this client-side frame.
fn status_of_client_frame(p: &Pair, frame: u64) -> &'static str {
    p.ladder
        .iter()
        .find(|r| r.client_frame == Some(frame))
        .map_or("absent", |r| r.status)
}

#[test]
fn clienthello_dropped_in_the_path() {
    let c = run("clienthello_dropped");
    let p = only_pair(&c);
    assert_eq!(p.verdict, PairVerdict::DroppedClientToServer);
    // The original and its five retransmissions left the client (frames 4-9); none arrived.
    assert_eq!(lost_frames(&p.lost_c2s), vec![4, 5, 6, 7, 8, 9]);
    assert!(p.lost_s2c.is_empty());
    assert!(p.explanation.contains("ClientHello"), "{}", p.explanation);
    // The handshake and the final RST crossed: client frames 1-3 are server frames 1-3, the
    // client's RST (frame 10) is the server's frame 4.
    for f in 1..=3 {
        assert_eq!(status_of_client_frame(p, f), "both");
    }
    let rst = p.ladder.iter().find(|r| r.client_frame == Some(10));
    assert_eq!(rst.and_then(|r| r.server_frame), Some(4));
    assert_eq!(
        p.matched_by.as_deref(),
        Some("addresses, ports and initial sequence number")
    );
    assert!(p.nat.is_none());
}

#[test]
fn silent_backend_is_the_servers_fault() {
    let c = run("silent_backend");
    let p = only_pair(&c);
    assert_eq!(p.verdict, PairVerdict::ServerSilent);
    assert!(p.lost_c2s.is_empty() && p.lost_s2c.is_empty());
    // The ClientHello (client frame 4) arrived as server frame 4.
    let ch = p.ladder.iter().find(|r| r.event.starts_with("ClientHello"));
    assert_eq!(
        ch.map(|r| (r.client_frame, r.server_frame)),
        Some((Some(4), Some(4)))
    );
}

#[test]
fn mtu_black_hole_loses_the_full_size_segments() {
    let c = run("mtu_blackhole");
    let p = only_pair(&c);
    assert_eq!(p.verdict, PairVerdict::DroppedServerToClient);
    assert!(p.explanation.contains("MTU"), "{}", p.explanation);
    assert!(p.lost_c2s.is_empty());
    // Only the 1200-byte segment and the 616-byte tail reach the client (README facts); every
    // segment the ladder marks lost is a full-size 1448 or the 1376-byte one before the tail.
    let delivered: Vec<&str> = p
        .ladder
        .iter()
        .filter(|r| r.dir == "<-" && r.status == "both" && r.event.contains("bytes"))
        .map(|r| r.event.as_str())
        .collect();
    assert!(
        delivered.iter().any(|e| e.contains("1200 bytes"))
            && delivered.iter().any(|e| e.contains("616 bytes"))
            && delivered.iter().all(|e| !e.contains("1448")),
        "{delivered:?}"
    );
    assert!(p.lost_s2c.len() >= 10, "{:?}", p.lost_s2c);
}

#[test]
fn server_reset_arrives_intact() {
    let c = run("server_reset");
    let p = only_pair(&c);
    assert_eq!(p.verdict, PairVerdict::ServerRefused);
    assert!(p.appeared.is_empty(), "the server sent the RST itself");
}

#[test]
fn healthy_pair_is_ok_with_every_packet_on_both_sides() {
    let c = run("healthy");
    let p = only_pair(&c);
    assert_eq!(p.verdict, PairVerdict::Ok);
    assert!(
        p.ladder.iter().all(|r| r.status == "both"),
        "{:#?}",
        p.ladder
    );
    // Same kernel clock on both sides: the offset is within a few microseconds, and so are
    // the one-way delays over a veth pair and a router namespace.
    let off = c.clock.offset_s.expect("offset estimated");
    assert!(off.abs() < 0.001, "{off}");
    assert!(p.delay_c2s_ms.is_some_and(|d| d < 1.0));
    assert!(p.delay_s2c_ms.is_some_and(|d| d < 1.0));
}

#[test]
fn nat_between_the_capture_points() {
    let c = run("nat");
    assert_eq!(c.pairs.len(), 2);
    assert_eq!(c.summary.matched_through_nat, 2);
    assert!(c.unmatched.is_empty(), "{:#?}", c.unmatched);
    let (ok, dropped) = (&c.pairs[0], &c.pairs[1]);
    assert_eq!(ok.verdict, PairVerdict::Ok);
    assert_eq!(dropped.verdict, PairVerdict::DroppedClientToServer);
    // The VIP and the client's port on the client side; the router's SNAT address and port
    // and the backend on the server side (README facts).
    let (cs, ss) = (
        dropped.client_side.as_ref().expect("client side"),
        dropped.server_side.as_ref().expect("server side"),
    );
    assert_eq!(cs.server, "10.99.9.100:8446");
    assert_eq!(ss.server, "10.99.2.2:9006");
    assert!(ss.client.starts_with("10.99.2.1:"));
    assert_ne!(cs.client, ss.client);
    assert_eq!(lost_frames(&dropped.lost_c2s), vec![21, 22, 23, 24, 25, 26]);
    assert!(dropped.nat.is_some());
    assert!(dropped
        .matched_by
        .as_deref()
        .is_some_and(|m| m.contains("translated")));
    // The client's RST (frame 27) is the server side's frame 21.
    let rst = dropped.ladder.iter().find(|r| r.client_frame == Some(27));
    assert_eq!(rst.and_then(|r| r.server_frame), Some(21));
}

#[test]
fn syn_dropped_in_the_path_while_the_backend_was_recording() {
    let c = run("syn_blocked");
    // Two healthy :443 connections bracket the blocked :9007 one on both sides.
    assert_eq!(c.pairs.len(), 3);
    assert_eq!(c.summary.matched, 2);
    assert!(c.unmatched.is_empty(), "{:#?}", c.unmatched);
    let blocked = &c.pairs[1];
    assert_eq!(blocked.verdict, PairVerdict::DroppedClientToServer);
    assert!(blocked.server_side.is_none());
    assert!(
        blocked.explanation.contains("SYN"),
        "{}",
        blocked.explanation
    );
    assert_eq!(lost_frames(&blocked.lost_c2s), vec![17, 18, 19, 20, 21]);
    assert!(c.pairs[0].verdict == PairVerdict::Ok && c.pairs[2].verdict == PairVerdict::Ok);
    // Client stream 2 is server stream 1: stream numbers differ, the match does not care.
    let third = c.pairs[2].server_side.as_ref().expect("matched");
    assert_eq!(third.stream, 1);
    assert_eq!(third.first_frame, 17);
}

#[test]
fn forged_reset_is_a_reset_in_the_path() {
    let c = run("reset_injected");
    // The reset connection, then a healthy :443 one that shows the backend still recording.
    assert_eq!(c.pairs.len(), 2, "{:#?}", c.pairs);
    let p = &c.pairs[0];
    assert_eq!(p.verdict, PairVerdict::ResetInPath);
    assert_eq!(c.pairs[1].verdict, PairVerdict::Ok);
    // The RST the client received (frame 5) was never sent by the server; the ClientHello
    // (frame 4) never reached it.
    assert_eq!(status_of_client_frame(p, 5), "appeared");
    assert_eq!(lost_frames(&p.lost_c2s), vec![4]);
    assert!(p
        .appeared
        .iter()
        .any(|a| a.frame == 5 && a.event.contains("RST")));
    for f in 1..=3 {
        assert_eq!(status_of_client_frame(p, f), "both");
    }
}

#[test]
fn nothing_is_called_lost_or_forged_after_the_other_capture_stopped() {
    // The backend capture cut after its third frame (the TCP handshake): it cannot say whether
    // the ClientHello arrived or who sent the RST, so both are unknown, and the verdict rests
    // on the client side's own evidence (the RST's TTL).
    let dir = std::env::temp_dir().join(format!("tlsdiag-compare-cut-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let server = dir.join("reset_injected.server.cut.pcap");
    first_frames(&sample("reset_injected.server.pcap"), 3, &server);
    let o = CompareOptions {
        client_side: vec![sample("reset_injected.client.pcap")],
        server_side: vec![server.to_string_lossy().into_owned()],
        ..Default::default()
    };
    let c = compare(&o).expect("read");
    let _ = std::fs::remove_dir_all(&dir);
    let p = &c.pairs[0];
    assert_eq!(status_of_client_frame(p, 4), "unknown");
    assert_eq!(status_of_client_frame(p, 5), "unknown");
    assert!(p.lost_c2s.is_empty() && p.appeared.is_empty());
    assert_eq!(p.verdict, PairVerdict::ResetInPath);
    assert!(p.explanation.contains("TTL"), "{}", p.explanation);
    // The healthy connection after the cut is seen on the client side only.
    assert_eq!(c.summary.unmatched_client_side, 1);
    assert!(
        c.unmatched[0].reason.contains("time span"),
        "{}",
        c.unmatched[0].reason
    );
}

#[test]
fn sides_are_recognised_whatever_the_order() {
    let o = CompareOptions {
        client_side: vec![sample("mtu_blackhole.server.pcap")],
        server_side: vec![sample("mtu_blackhole.client.pcap")],
        ..Default::default()
    };
    let c = compare(&o).expect("read");
    assert!(c.warnings.iter().any(|w| w.contains("swapped")));
    assert_eq!(only_pair(&c).verdict, PairVerdict::DroppedServerToClient);
    assert!(c.client_side.files[0].ends_with("mtu_blackhole.client.pcap"));

    // Forced sides are taken as given, even when wrong: then the server's flight is what
    // the "client" sent, and nothing of it arrived at the "server".
    let forced = CompareOptions {
        sides_given: true,
        ..o
    };
    let c = compare(&forced).expect("read");
    assert!(c.client_side.files[0].ends_with("mtu_blackhole.server.pcap"));
    assert!(c.warnings.iter().all(|w| !w.contains("swapped")));
}

#[test]
fn command_line_formats_and_exit_status() {
    let (a, b) = (
        sample("clienthello_dropped.client.pcap"),
        sample("clienthello_dropped.server.pcap"),
    );
    let (code, json, _) = bin(&["compare", &a, &b, "--format", "json"]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&json).expect("json");
    assert_eq!(v["schema_version"], 1);
    assert_eq!(v["pairs"][0]["verdict"], "dropped_client_to_server");
    assert_eq!(v["pairs"][0]["client_side"]["stream"], 0);
    assert_eq!(v["summary"]["verdicts"]["dropped_client_to_server"], 1);
    assert!(v["clock"]["offset_s"].is_number());

    let (code, md, _) = bin(&["compare", &a, &b, "--format", "markdown", "--check"]);
    assert_eq!(code, 1, "--check with a failed pair");
    assert!(md.contains(
        "| s into the connection (client side's clock) | client side (gateway) | \
         | server side (backend) | seen |"
    ));
    assert!(
        md.contains("| #<!-- -->4 ClientHello (517 bytes) | → | — | lost |"),
        "{md}"
    );

    let (code, text, _) = bin(&["compare", "--client-side", &a, "--server-side", &b]);
    assert_eq!(code, 0);
    assert!(text.contains("dropped_client_to_server"));
    assert!(text.contains("given (--client-side)"));
    assert!(
        text.contains("event (times: seconds into the connection, on the client side's clock)"),
        "{text}"
    );

    let (code, _, err) = bin(&["compare", &a]);
    assert_eq!(code, 2);
    assert!(err.contains("two captures"), "{err}");
    let (code, _, err) = bin(&["compare", &a, "/nonexistent.pcap"]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent.pcap"), "{err}");

    let healthy = (sample("healthy.client.pcap"), sample("healthy.server.pcap"));
    let (code, _, _) = bin(&["compare", &healthy.0, &healthy.1, "--check"]);
    assert_eq!(code, 0, "--check with every pair ok");
}

/// The same classic pcap with every timestamp moved by `shift_us` (a capture host whose clock
/// is off). Only the record headers change.
fn shifted_copy(src: &str, shift_us: i64, dst: &std::path::Path) {
    let data = std::fs::read(src).expect("sample");
    assert_eq!(
        &data[..4],
        &[0xd4, 0xc3, 0xb2, 0xa1],
        "little-endian µs pcap"
    );
    let mut out = data[..24].to_vec();
    let mut off = 24;
    while off + 16 <= data.len() {
        let rd = |o: usize| u32::from_le_bytes([data[o], data[o + 1], data[o + 2], data[o + 3]]);
        let t = i64::from(rd(off)) * 1_000_000 + i64::from(rd(off + 4)) + shift_us;
        let incl = rd(off + 8) as usize;
        out.extend_from_slice(&((t / 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&((t % 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&data[off + 8..off + 16 + incl]);
        off += 16 + incl;
    }
    std::fs::write(dst, out).expect("write");
}

/// Records `from..to` (0-based) of a classic pcap, with its file header: a capture stopped
/// early, or one file of a rotated capture (`tcpdump -C`).
fn frames_range(src: &str, from: usize, to: usize, dst: &std::path::Path) {
    let data = std::fs::read(src).expect("sample");
    let mut out = data[..24].to_vec();
    let mut off = 24;
    let mut i = 0;
    while off + 16 <= data.len() && i < to {
        let incl =
            u32::from_le_bytes([data[off + 8], data[off + 9], data[off + 10], data[off + 11]])
                as usize;
        if i >= from {
            out.extend_from_slice(&data[off..off + 16 + incl]);
        }
        off += 16 + incl;
        i += 1;
    }
    std::fs::write(dst, out).expect("write");
}

fn first_frames(src: &str, n: usize, dst: &std::path::Path) {
    frames_range(src, 0, n, dst);
}

#[test]
fn rotated_files_on_the_client_side() {
    // The client side as two files, cut after frame 5 (tcpdump -C rotation): the same
    // verdict, and frames are numbered per file and say which file they are in.
    let dir = std::env::temp_dir().join(format!("tlsdiag-compare-rot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let src = sample("clienthello_dropped.client.pcap");
    let (a, b) = (dir.join("gw0.pcap"), dir.join("gw1.pcap"));
    frames_range(&src, 0, 5, &a);
    frames_range(&src, 5, usize::MAX, &b);
    let o = CompareOptions {
        client_side: vec![a.to_string_lossy().into(), b.to_string_lossy().into()],
        server_side: vec![sample("clienthello_dropped.server.pcap")],
        sides_given: true,
        ..Default::default()
    };
    let c = compare(&o).expect("read");
    let _ = std::fs::remove_dir_all(&dir);
    let p = only_pair(&c);
    assert_eq!(p.verdict, PairVerdict::DroppedClientToServer);
    // Original frames 4..9: 4 and 5 in file 0, then 6..9 as frames 1..4 of file 1.
    let lost: Vec<(Option<usize>, u64)> = p.lost_c2s.iter().map(|l| (l.file, l.frame)).collect();
    assert_eq!(
        lost,
        vec![
            (Some(0), 4),
            (Some(0), 5),
            (Some(1), 1),
            (Some(1), 2),
            (Some(1), 3),
            (Some(1), 4)
        ]
    );
    // The server side is one file: no file index there.
    assert!(p.ladder.iter().all(|r| r.server_file.is_none()));
    let text =
        tlsdiag::report::compare::render(&c, tlsdiag::report::Format::Text, &Default::default());
    assert!(text.contains("1:4 ──>"), "{text}");
}

#[test]
fn clock_offset_between_hosts_is_estimated_and_removed() {
    let dir = std::env::temp_dir().join(format!("tlsdiag-compare-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let server = dir.join("nat.server.shifted.pcap");
    // The backend's clock runs 1234.567890 s ahead.
    shifted_copy(&sample("nat.server.pcap"), 1_234_567_890, &server);
    let o = CompareOptions {
        client_side: vec![sample("nat.client.pcap")],
        server_side: vec![server.to_string_lossy().into_owned()],
        ..Default::default()
    };
    let c = compare(&o).expect("read");
    let _ = std::fs::remove_dir_all(&dir);
    let off = c.clock.offset_s.expect("estimated");
    assert!((off - 1234.567890).abs() < 0.001, "{off}");
    let unshifted = run("nat");
    let verdicts = |c: &Comparison| c.pairs.iter().map(|p| p.verdict).collect::<Vec<_>>();
    assert_eq!(verdicts(&c), verdicts(&unshifted));
    assert_eq!(
        lost_frames(&c.pairs[1].lost_c2s),
        lost_frames(&unshifted.pairs[1].lost_c2s)
    );
    // Ladder times are on the client side's clock: the same as without the shift.
    let t = |c: &Comparison| c.pairs[1].ladder.iter().map(|r| r.t).collect::<Vec<_>>();
    for (a, b) in t(&c).iter().zip(t(&unshifted)) {
        assert!((a - b).abs() < 0.001, "{a} vs {b}");
    }
}
