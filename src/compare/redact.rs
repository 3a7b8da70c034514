//! Redaction of a whole comparison, before any renderer sees it: one [`Redactor`] for both
//! captures, so an address seen on both sides maps to the same redacted address on both.

use super::{CaptureSide, Comparison, OneSided, PairEnd};
use crate::redact::{hide_paths, Redactor};

/// Replaces every address, name (unless kept) and given file path (`paths`: the inputs as
/// listed, client side then server side) in `c`, and marks it redacted.
pub(super) fn comparison(c: &mut Comparison, r: &Redactor, paths: &[String]) {
    // File paths first: an address inside a path would otherwise hide the path.
    let free = |s: &str| r.text(&hide_paths(s, paths));
    for side in [&mut c.client_side, &mut c.server_side] {
        capture_side(side, &free);
    }
    c.clock.method = free(&c.clock.method);
    for p in &mut c.pairs {
        p.explanation = free(&p.explanation);
        p.next_step = free(&p.next_step);
        for e in [&mut p.client_side, &mut p.server_side]
            .into_iter()
            .flatten()
        {
            end(e, r);
        }
        for s in [&mut p.matched_by, &mut p.nat].into_iter().flatten() {
            *s = free(s);
        }
        p.sni = p.sni.as_deref().map(|s| r.name(s));
        for o in [&mut p.lost_c2s, &mut p.lost_s2c, &mut p.appeared] {
            one_sided(o, r);
        }
        for row in &mut p.ladder {
            row.event = r.text(&row.event);
        }
    }
    for u in &mut c.unmatched {
        end(&mut u.conn, r);
        u.reason = free(&u.reason);
    }
    for w in &mut c.warnings {
        *w = free(w);
    }
    c.redacted = true;
    c.names_kept = r.keeps_names();
}

fn capture_side(side: &mut CaptureSide, free: &dyn Fn(&str) -> String) {
    for f in &mut side.files {
        *f = free(f);
    }
    side.decided_by = free(&side.decided_by);
    for w in &mut side.warnings {
        *w = free(w);
    }
}

fn end(e: &mut PairEnd, r: &Redactor) {
    e.client = r.text(&e.client);
    e.server = r.text(&e.server);
}

fn one_sided(packets: &mut [OneSided], r: &Redactor) {
    for p in packets {
        p.event = r.text(&p.event);
    }
}
