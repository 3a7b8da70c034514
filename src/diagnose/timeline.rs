//! Timeline: a connection's ladder (frame, time, direction, event), as Wireshark users read it.

use super::clock::{round6, secs, Ctx};
use crate::capture::FrameRef;
use crate::escape;
use crate::flow::{Conn, EventKind};
use crate::model::TimelineEntry;
use crate::tls::names;
use crate::wire;
/// The connection's ladder: frame, time since its first packet, direction, event. Events not
/// kept (`Conn::events_dropped`) are counted in the record, not shown as a fake event.
///
/// Runs for every connection, so each label is written once into its own string.
pub(crate) fn timeline(
    c: &Conn,
    cd: usize,
    ctx: &Ctx,
    ch_frames: &[FrameRef],
) -> Vec<TimelineEntry> {
    use crate::model::text;
    use std::borrow::Cow;
    let tf = c.tls_facts();
    let base = c.first.ts;
    let mut out = Vec::with_capacity(c.events.len());
    let mut syns = 0;
    let mut seen_end = [0u64; 2];
    for e in &c.events {
        let dir = match e.kind() {
            EventKind::Icmp { .. } => text::FROM_PATH,
            _ if e.dir().index() == cd => text::TO_SERVER,
            _ => text::TO_CLIENT,
        };
        // Fixed texts are shared (`Cow::Borrowed`), the rest written once into their string.
        let event: Cow<'static, str> = match e.kind() {
            EventKind::Syn => {
                syns += 1;
                if syns == 1 {
                    Cow::Borrowed(text::SYN)
                } else {
                    Cow::Owned(format!("SYN retransmission #{}", syns - 1))
                }
            }
            EventKind::SynAck => Cow::Borrowed(text::SYN_ACK),
            EventKind::HandshakeAck => Cow::Borrowed(text::HANDSHAKE_ACK),
            EventKind::HelloAck => Cow::Borrowed(text::HELLO_ACK),
            EventKind::Fin => Cow::Borrowed(text::FIN),
            EventKind::Rst => Cow::Borrowed(text::RST),
            EventKind::Data { start, len } => {
                let retrans = start < seen_end[e.dir()];
                seen_end[e.dir()] = seen_end[e.dir()].max(start + u64::from(len));
                Cow::Owned(data_label(tf, e, cd, u64::from(len), retrans, ch_frames))
            }
            EventKind::Copy { len, .. } => Cow::Owned(format!(
                "capture copy of an earlier frame ({len} bytes), not a retransmission"
            )),
            EventKind::Icmp {
                v6,
                icmp_type,
                code,
            } => Cow::Owned(format!(
                "ICMP {}",
                wire::icmp_description(v6, icmp_type, code)
            )),
        };
        out.push(TimelineEntry {
            frame: e.at.frame(),
            t: round6(secs(e.at.ts.saturating_sub(base))),
            dir: Cow::Borrowed(dir),
            event,
            file: ctx.multi_file.then_some(e.at.file()),
        });
    }
    out
}

/// A data segment's timeline text: what it was (ClientHello, its retransmission, other data)
/// and what it carried (": ServerHello, ChangeCipherSpec, ...").
fn data_label(
    tf: &crate::tls::TlsFacts,
    e: &crate::flow::Event,
    cd: usize,
    len: u64,
    retrans: bool,
    ch_frames: &[FrameRef],
) -> String {
    use std::fmt::Write as _;
    let mut label = String::with_capacity(48);
    let ch_n = if e.dir().index() == cd {
        ch_frames.iter().position(|f| *f == e.at)
    } else {
        None
    };
    match ch_n {
        Some(n) if n > 0 && retrans => {
            let delay = ch_frames
                .first()
                .map(|f| secs(e.at.ts.saturating_sub(f.ts)))
                .unwrap_or(0.0);
            // Writing to a String cannot fail.
            let _ = write!(
                label,
                "ClientHello retransmission #{n} (+{delay:.3} s, {len} bytes)"
            );
        }
        // The common labels without the formatting machinery (a few per connection).
        Some(_) => sized(&mut label, "ClientHello (", len),
        None if retrans => sized(&mut label, "retransmission (", len),
        None => sized(&mut label, "data (", len),
    }
    tls_notes(&mut label, tf, e, cd);
    label
}

/// Appends what the TLS layer saw in the segment (": ServerHello, ChangeCipherSpec").
fn tls_notes(label: &mut String, tf: &crate::tls::TlsFacts, e: &crate::flow::Event, cd: usize) {
    use std::fmt::Write as _;
    let mut sep = ": ";
    let mut note = |label: &mut String, args: std::fmt::Arguments<'_>| {
        label.push_str(sep);
        let _ = label.write_fmt(args);
        sep = ", ";
    };
    if tf.sh_at == Some(e.at) && e.dir().index() != cd {
        note(label, format_args!("ServerHello"));
    }
    if tf.hrr_at == Some(e.at) {
        note(label, format_args!("HelloRetryRequest"));
    }
    for a in tf
        .alerts
        .iter()
        .filter(|a| a.at == e.at && a.dir == e.dir().index())
    {
        match a.plain {
            Some((l, d)) => note(
                label,
                format_args!(
                    "Alert {} {}",
                    names::alert_level(l),
                    names::alert_description(d)
                ),
            ),
            None => note(label, format_args!("encrypted Alert")),
        }
    }
    let answer = tf
        .server_after_client
        .filter(|a| a.at == e.at && e.dir().index() != cd);
    let named = tf.alerts.iter().any(|a| a.at == e.at);
    if let Some(a) = answer.filter(|a| a.len <= crate::tls::SHORT_ENCRYPTED && !named) {
        note(
            label,
            format_args!("alert-sized encrypted record ({} bytes)", a.len),
        );
    }
    if tf.ccs[e.dir()] == Some(e.at) {
        note(label, format_args!("ChangeCipherSpec"));
    }
    if let Some(nt) = tf.non_tls[e.dir()].as_ref().filter(|n| n.at == e.at) {
        note(
            label,
            format_args!("\"{}\"", escape::first_line(&nt.preview, 60)),
        );
    }
}

/// Appends `{what}{len} bytes)`.
fn sized(label: &mut String, what: &str, len: u64) {
    label.push_str(what);
    label.push_str(itoa::Buffer::new().format(len));
    label.push_str(" bytes)");
}
