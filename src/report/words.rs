//! Sentences the text and Markdown reports share: why a report is empty, and who refused a
//! handshake with an alert.

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
        // Unnamed, the alert says less than when it came.
        None => match c.gave_up_after_s {
            Some(s) => format!("{who} ended it with an encrypted alert after {s:.1} s"),
            None => format!("{who} ended it with an encrypted alert"),
        },
    })
}
