//! Words the text and Markdown reports share: why a report is empty, who refused a handshake
//! with an alert, and how endpoints, frames, seconds and per-server times are written.

use crate::model::{Connection, Summary};

/// Why there is no connection to report: no TCP at all (and what the packets were instead),
/// or a filter that matched none of the connections the capture holds.
pub(crate) fn empty_words(s: &Summary) -> String {
    if let (Some(filter), Some(seen)) = (&s.filter, s.connections_seen) {
        if seen > 0 {
            return format!("Nothing matched {filter} ({seen} connection(s) in the capture).");
        }
    }
    if s.packets == 0 {
        return "No packets in the capture.".into();
    }
    if s.tcp_packets > 0 {
        return format!(
            "No TCP connection among {} packet(s) ({} TCP).",
            s.packets, s.tcp_packets
        );
    }
    let kinds: Vec<String> = [
        (s.other_ip_packets, "UDP, ICMP or other IP"),
        (s.non_ip_packets, "not IP"),
        (s.undecoded_packets, "undecodable"),
        (s.unsupported_link_packets, "of an unsupported link type"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{n} {what}"))
    .collect();
    if kinds.is_empty() {
        return format!("No TCP among {} packet(s).", s.packets);
    }
    format!(
        "No TCP among {} packet(s): {}.",
        s.packets,
        kinds.join("; ")
    )
}

/// The alert that ended a handshake, named with its sender ("the backend refused:
/// handshake_failure"); None unless an alert is the verdict.
pub(crate) fn alert_words(c: &Connection) -> Option<String> {
    if !matches!(c.verdict.as_str(), "server_alert" | "client_alert") {
        return None;
    }
    let a = c.alert.as_ref()?;
    let who = if a.sender == "server" {
        "the backend"
    } else {
        "the client"
    };
    Some(match &a.description {
        Some(d) => format!("{who} refused: {d}"),
        // The one inferred server alert: a TLS 1.3 answer to the client's Finished.
        None if a.sender == "server" && a.inferred => {
            "the backend most likely rejected the client's certificate (an alert-sized \
             encrypted answer to the client's Finished)"
                .into()
        }
        // Unnamed, the alert says less than when it came.
        // The give-up time is the client's: said only of the client's own alert.
        None => match c.gave_up_after_s.filter(|_| a.sender == "client") {
            Some(s) => format!("{who} ended it with an encrypted alert after {s:.1} s"),
            None => format!("{who} ended it with an encrypted alert"),
        },
    })
}

/// `ip:port`, with IPv6 addresses in brackets.
pub(crate) fn endpoint(ip: &str, port: u16) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

/// Milliseconds, to the microsecond below 1 ms, then to 0.1 ms, then whole.
pub(crate) fn ms(v: f64) -> String {
    if v < 1.0 {
        format!("{v:.3}")
    } else if v < 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

/// Seconds to 0.1 s, or to the millisecond just over a second (where "1.0" would hide that
/// it is more).
pub(crate) fn seconds(s: f64) -> String {
    if s < 1.05 {
        format!("{s:.3}")
    } else {
        format!("{s:.1}")
    }
}

/// A server's time as "p50/p90/p99/max" in milliseconds, "-" when not measured.
pub(crate) fn spread(s: Option<&crate::model::Spread>) -> String {
    match s {
        Some(s) => format!("{}/{}/{}/{}", ms(s.p50), ms(s.p90), ms(s.p99), ms(s.max)),
        None => "-".into(),
    }
}

/// A frame number, `file:frame` when several files make the capture (files numbered as
/// listed, from 0).
pub(crate) fn frame_at(frame: u64, file: Option<usize>) -> String {
    match file {
        Some(file) => format!("{file}:{frame}"),
        None => frame.to_string(),
    }
}

/// ", N not judged" when some connections are `incomplete` (neither failed nor succeeded).
pub(crate) fn not_judged(s: &crate::model::Summary) -> String {
    match s.verdicts.get("incomplete") {
        Some(n) if *n > 0 => format!(", {n} not judged"),
        _ => String::new(),
    }
}
