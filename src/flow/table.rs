//! FlowTable: the live connections by 4-tuple; Wireshark stream numbers, port reuse,
//! tombstones of settled 4-tuples, and settling (closed, idle, over the cap). Hands each packet
//! to its connection ([`Conn`], or the small [`SynOnly`] record while that suffices) and hands
//! settled connections out as [`Settled`].

use crate::capture::{FrameRef, Nanos};
use crate::flow::syn_only::SynOnly;
use crate::flow::{Conn, Dir, Endpoint, EventKind, FlowConfig, IcmpFact};
use crate::tls::keylog::Loaded;
use crate::tls::KeyLog;
use crate::wire::{IcmpError, PacketType, TcpSegment};
use rustc_hash::{FxHashMap, FxHashSet};
use std::sync::Arc;

/// Order-independent key of a 4-tuple: its two endpoints, the lower first (as `Endpoint`
/// orders them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    lo: Endpoint,
    hi: Endpoint,
}

impl Key {
    /// The key of a packet from `src` to `dst`, and whether `src` is its lower endpoint.
    fn of(src: Endpoint, dst: Endpoint) -> (Key, bool) {
        if src <= dst {
            (Key { lo: src, hi: dst }, true)
        } else {
            (Key { lo: dst, hi: src }, false)
        }
    }
}

/// Hash of a 4-tuple in the live index.
fn key_hash(key: &Key) -> u64 {
    use std::hash::BuildHasher;
    rustc_hash::FxBuildHasher.hash_one(key)
}

/// What is remembered of a settled connection's 4-tuple, so its late packets are not taken
/// for a new stream: 16 bytes under a 64-bit hash of the 4-tuple (a busy capture holds tens
/// of thousands). Sequence numbers are indexed by side: 0 leaves the lower endpoint.
#[derive(Debug, Clone, Copy)]
struct Tomb {
    /// Initial sequence number per side; bit `side` of `known` says whether it is known.
    first_seq: [u32; 2],
    known: u8,
    /// Capture time of the last packet, in whole seconds since the epoch (saturating).
    last_s: u32,
}

impl Tomb {
    fn new(first_seq: [Option<u32>; 2], last_ts: Nanos) -> Self {
        Tomb {
            first_seq: first_seq.map(|s| s.unwrap_or(0)),
            known: u8::from(first_seq[0].is_some()) | (u8::from(first_seq[1].is_some()) << 1),
            last_s: secs(last_ts),
        }
    }

    /// Initial sequence number sent from the lower endpoint (`from_lo`) or the higher one.
    fn first_seq(&self, from_lo: bool) -> Option<u32> {
        let side = usize::from(!from_lo);
        (self.known >> side & 1 == 1).then_some(self.first_seq[side])
    }
}

/// Whole seconds since the epoch, clamped to `u32`.
fn secs(ts: Nanos) -> u32 {
    (ts / 1_000_000_000).clamp(0, i64::from(u32::MAX)) as u32
}

/// Identity of a 4-tuple among tombstones: SipHash with fixed keys, so the same in every run.
fn tomb_id(key: &Key) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    key.hash(&mut h);
    h.finish()
}

/// A live connection in its place of the table. Its endpoints are its key in the index: kept
/// here, in place, so that a lookup or a rehash of the index never reaches into a boxed
/// connection.
#[derive(Debug)]
struct Live {
    /// `ends[Orig]` sent the connection's first packet.
    ends: [Endpoint; 2],
    stream: u64,
    rec: Rec,
}

/// A live connection's record: small while it is only SYNs, else whole.
#[derive(Debug)]
enum Rec {
    /// Kept in place: no allocation for a SYN nobody answers.
    Syn(SynOnly),
    /// With the two facts a sweep reads, kept beside the connection so a sweep scans the
    /// table without touching thousands of connections in memory.
    Full {
        last_ts: Nanos,
        closed: bool,
        conn: Box<Conn>,
    },
}

/// Bytes a SYN-only connection takes in the table's places (it has no heap).
#[cfg(test)]
pub(crate) fn live_size() -> usize {
    std::mem::size_of::<Option<Live>>()
}

impl Live {
    fn full(stream: u64, conn: Box<Conn>) -> Self {
        let mut l = Live {
            ends: conn.ends,
            stream,
            rec: Rec::Full {
                last_ts: 0,
                closed: false,
                conn,
            },
        };
        l.update();
        l
    }

    /// Whether this is the connection of the 4-tuple `key`.
    fn has(&self, key: &Key) -> bool {
        let [a, b] = self.ends;
        (a == key.lo && b == key.hi) || (a == key.hi && b == key.lo)
    }

    fn key(&self) -> Key {
        Key::of(self.ends[0], self.ends[1]).0
    }

    /// Direction, in this connection, of a packet sent by `src`.
    fn dir_from(&self, src: Endpoint) -> Dir {
        if src == self.ends[0] {
            Dir::Orig
        } else {
            Dir::Reply
        }
    }

    /// First sequence number of each direction, once known (port reuse is a SYN with another).
    fn first_seq(&self) -> [Option<u32>; 2] {
        match &self.rec {
            Rec::Syn(s) => s.first_seq(),
            Rec::Full { conn: c, .. } => {
                [c.dirs[Dir::Orig].first_seq, c.dirs[Dir::Reply].first_seq]
            }
        }
    }

    fn last_ts(&self) -> Nanos {
        match &self.rec {
            Rec::Syn(s) => s.last().ts,
            Rec::Full { last_ts, .. } => *last_ts,
        }
    }

    fn closed(&self) -> bool {
        matches!(self.rec, Rec::Full { closed: true, .. })
    }

    /// Refreshes what a sweep reads after the connection took a packet.
    fn update(&mut self) {
        if let Rec::Full {
            last_ts,
            closed,
            conn,
        } = &mut self.rec
        {
            *last_ts = conn.last.ts;
            *closed = conn.is_closed();
        }
    }

    /// The whole connection, made from the SYN-only record first if need be (in an
    /// allocation from `spare` when there is one).
    #[allow(clippy::vec_box)] // the boxes are what is reused
    fn conn_mut(&mut self, cfg: &FlowConfig, spare: &mut Vec<Box<Conn>>) -> Option<&mut Conn> {
        if let Rec::Syn(s) = &self.rec {
            let conn = boxed(s.to_conn(self.ends, self.stream, cfg), spare);
            *self = Live::full(self.stream, conn);
        }
        match &mut self.rec {
            Rec::Full { conn, .. } => Some(conn),
            Rec::Syn(_) => None,
        }
    }
}

/// `c` in a box, reusing a spare allocation when there is one.
#[allow(clippy::vec_box)] // the boxes are what is reused
fn boxed(c: Conn, spare: &mut Vec<Box<Conn>>) -> Box<Conn> {
    match spare.pop() {
        Some(mut b) => {
            *b = c;
            b
        }
        None => Box::new(c),
    }
}

/// A connection leaving the table; [`FlowTable::conn`] makes it a [`Conn`] (a SYN-only one
/// is made whole only then, so a sweep of many costs no more than their small records).
#[derive(Debug)]
pub struct Settled(Live);

impl Settled {
    pub fn stream(&self) -> u64 {
        self.0.stream
    }
}

/// The connections open at the end of the capture, by stream: see [`FlowTable::drain`].
#[derive(Debug)]
pub struct Drain(std::vec::IntoIter<Option<Live>>);

impl Iterator for Drain {
    type Item = Settled;
    fn next(&mut self) -> Option<Settled> {
        let mut l = self.0.next().flatten()?;
        if let Rec::Full { conn, .. } = &mut l.rec {
            conn.finish();
        }
        Some(Settled(l))
    }
}

/// The live connections, each in a numbered place that its 4-tuple's index entry names: a
/// packet reaches its connection with one hash lookup, not two. Places are reused; each one
/// is checked against the stream number, so a stale position finds nothing.
#[derive(Debug, Default)]
struct Slab {
    places: Vec<Option<Live>>,
    free: Vec<u32>,
    len: usize,
}

impl Slab {
    fn insert(&mut self, l: Live) -> u32 {
        self.len += 1;
        match self.free.pop() {
            Some(i) => {
                if let Some(p) = self.places.get_mut(i as usize) {
                    *p = Some(l);
                }
                i
            }
            None => {
                self.places.push(Some(l));
                (self.places.len() - 1) as u32
            }
        }
    }
    fn at(&self, at: u32) -> Option<&Live> {
        self.places.get(at as usize)?.as_ref()
    }
    fn get(&self, at: u32, stream: u64) -> Option<&Live> {
        self.at(at).filter(|l| l.stream == stream)
    }
    fn get_mut(&mut self, at: u32, stream: u64) -> Option<&mut Live> {
        self.places
            .get_mut(at as usize)?
            .as_mut()
            .filter(|l| l.stream == stream)
    }
    fn remove(&mut self, at: u32, stream: u64) -> Option<Live> {
        let p = self.places.get_mut(at as usize)?;
        if p.as_ref().is_none_or(|l| l.stream != stream) {
            return None;
        }
        self.len -= 1;
        self.free.push(at);
        p.take()
    }
    /// Every live connection with its position, in position order.
    fn iter(&self) -> impl Iterator<Item = (u32, &Live)> {
        self.places
            .iter()
            .enumerate()
            .filter_map(|(i, p)| Some((i as u32, p.as_ref()?)))
    }
}

/// The places of the live connections by 4-tuple: one entry per 4-tuple, naming the place of
/// its newest connection (port reuse moves it), which holds the key the entry is compared
/// with. Four bytes a bucket where a map from key to place took 72: at the live cap a SYN
/// flood fills the index with deleted entries, and a map more than half full doubles rather
/// than cleans up; measured on 1M SYNs at the default cap, the old and new map together
/// peaked at 57 MB, this index at under 3 MB.
#[derive(Debug, Default)]
struct Index(hashbrown::HashTable<u32>);

impl Index {
    /// The place of `key`'s connection.
    fn find(&self, key: &Key, live: &Slab) -> Option<u32> {
        let has = |&p: &u32| live.at(p).is_some_and(|l| l.has(key));
        self.0.find(key_hash(key), has).copied()
    }

    /// Makes `place` the place of `key`'s connection.
    fn set(&mut self, key: &Key, place: u32, live: &Slab) {
        let has = |&p: &u32| live.at(p).is_some_and(|l| l.has(key));
        let rehash = |&p: &u32| live.at(p).map_or(0, |l| key_hash(&l.key()));
        match self.0.entry(key_hash(key), has, rehash) {
            hashbrown::hash_table::Entry::Occupied(mut e) => *e.get_mut() = place,
            hashbrown::hash_table::Entry::Vacant(e) => {
                e.insert(place);
            }
        }
    }

    /// Forgets `key` if its connection is the one at `place`; whether it was.
    fn remove(&mut self, key: &Key, place: u32) -> bool {
        match self.0.find_entry(key_hash(key), |&p| p == place) {
            Ok(e) => {
                e.remove();
                true
            }
            Err(_) => false,
        }
    }

    fn len(&self) -> usize {
        self.0.len()
    }
}

/// How often (capture time) a sweep looks for idle connections and expired tombstones: both
/// timeouts are minutes, so a few seconds late is nothing, and the scan visits every entry.
const IDLE_SCAN: Nanos = 5_000_000_000;

/// Why a connection left the table early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eviction {
    /// Closed (RST, or FIN both ways) and quiet since.
    Closed,
    /// No packet for the idle timeout.
    Idle,
    /// The live-connection cap was reached and this was the least recently active.
    Cap,
}

/// All connections of a capture, by first packet. Settled connections are handed out by
/// [`sweep`](FlowTable::sweep) so their state can be freed; a small tombstone keeps their
/// 4-tuple so late packets do not open a new stream.
#[derive(Debug, Default)]
pub struct FlowTable {
    cfg: FlowConfig,
    index: Index,
    live: Slab,
    tombs: FxHashMap<u64, Tomb>,
    /// Connections (position, stream) that closed (RST, or FIN both ways) and may soon be
    /// settled.
    closing: Vec<(u32, u64)>,
    /// Capture time of the last scan for idle connections and old tombstones.
    last_scan: Nanos,
    next_stream: u64,
    /// Packets of connections already settled and freed.
    pub late_packets: u64,
    pub evicted_by_cap: u64,
    pub evicted_idle: u64,
    /// Times the tombstones were forgotten because there were too many.
    pub tombstones_dropped: u64,
    /// The key log, when one was given (`--keylog`, a pcapng Decryption Secrets Block).
    keys: Option<Arc<KeyLog>>,
    /// Allocations of settled connections, given back to be reused (see [`FlowTable::recycle`]).
    #[allow(clippy::vec_box)] // the boxes are what is reused
    spare: Vec<Box<Conn>>,
}

/// Settled connections kept for reuse.
const SPARE_MAX: usize = 256;

/// A packet's connection: its place and stream, the packet's direction in it, and whether the
/// index already knows that direction's first sequence number.
struct Route {
    place: u32,
    stream: u64,
    d: Dir,
}

impl FlowTable {
    pub fn new(cfg: FlowConfig) -> Self {
        FlowTable {
            cfg,
            ..Default::default()
        }
    }

    /// Adds the lines of a key log; connections whose TLS starts after this use them.
    pub fn add_key_log(&mut self, text: &[u8]) -> Loaded {
        let mut keys = self
            .keys
            .take()
            .map(Arc::unwrap_or_clone)
            .unwrap_or_default();
        let loaded = keys.add_text(text);
        self.keys = Some(Arc::new(keys));
        loaded
    }

    /// Connections currently open in the table.
    pub fn live(&self) -> usize {
        self.live.len
    }

    /// Opens a stream for a connection of the 4-tuple `key` whose record is `rec`.
    fn open(&mut self, key: Key, rec: impl FnOnce(u64) -> Live) -> Route {
        let stream = self.next_stream;
        self.next_stream += 1;
        let place = self.live.insert(rec(stream));
        self.index.set(&key, place, &self.live);
        Route {
            place,
            stream,
            d: Dir::Orig,
        }
    }

    /// Opens a stream with a full connection from `ends[0]` to `ends[1]`.
    fn open_full(&mut self, key: Key, ends: [Endpoint; 2], at: FrameRef) -> Route {
        let mut conn = boxed(
            Conn::new(0, ends[0], ends[1], at, &self.cfg),
            &mut self.spare,
        );
        self.open(key, |stream| {
            conn.stream = stream;
            Live::full(stream, conn)
        })
    }

    /// Takes back settled connections, done with: their allocation is reused for a new
    /// connection and what they hold is freed here, by the thread that allocated it. (With
    /// glibc, memory freed by the summarising thread contends for the packet thread's arena
    /// lock on every allocation; that was a tenth of the packet thread.)
    pub fn recycle(&mut self, conns: impl IntoIterator<Item = Box<Conn>>) {
        for mut c in conns {
            if self.spare.len() < SPARE_MAX {
                let (ends, first) = (c.ends, c.first);
                *c = Conn::new(0, ends[0], ends[1], first, &self.cfg);
                self.spare.push(c);
            }
        }
    }

    /// Adds one TCP segment.
    pub fn tcp(
        &mut self,
        seg: &TcpSegment<'_>,
        at: FrameRef,
        iface: u32,
        pkttype: Option<PacketType>,
    ) {
        let (src, dst) = Endpoint::of_segment(seg);
        let (key, from_lo) = Key::of(src, dst);
        let Some(r) = self.route(key, from_lo, [src, dst], seg, at, (iface, pkttype)) else {
            return;
        };
        let Some(live) = self.live.get_mut(r.place, r.stream) else {
            return;
        };
        if let Rec::Syn(s) = &mut live.rec {
            if s.absorb(r.d, seg, at, iface, pkttype) {
                return;
            }
        }
        let Some(c) = live.conn_mut(&self.cfg, &mut self.spare) else {
            return;
        };
        if let (Some(k), None) = (&self.keys, &c.keys) {
            c.keys = Some(Arc::clone(k));
        }
        c.on_segment(r.d, seg, at, iface, pkttype);
        let was_closed = live.closed();
        live.update();
        if live.closed() && !was_closed {
            self.closing.push((r.place, r.stream));
        }
    }

    /// Finds a TCP packet's connection, opening one if it is new. `None`: nothing more to do
    /// (a late packet of a settled connection, or a SYN that opened a SYN-only record). One
    /// hash lookup per packet on the common path.
    fn route(
        &mut self,
        key: Key,
        from_lo: bool,
        ends: [Endpoint; 2],
        seg: &TcpSegment<'_>,
        at: FrameRef,
        (iface, pkttype): (u32, Option<PacketType>),
    ) -> Option<Route> {
        let pure_syn = seg.syn() && !seg.has_ack();
        let found = self.index.find(&key, &self.live);
        if let Some((place, l)) = found.and_then(|p| Some((p, self.live.at(p)?))) {
            let d = l.dir_from(ends[0]);
            // Port reuse: a SYN with a new ISN on a known 4-tuple is a new stream.
            if !(pure_syn && l.first_seq()[d].is_some_and(|s| s != seg.seq)) {
                return Some(Route {
                    place,
                    stream: l.stream,
                    d,
                });
            }
        } else if !self.tombs.is_empty() {
            let id = tomb_id(&key);
            if let Some(t) = self.tombs.get_mut(&id) {
                if !(pure_syn && t.first_seq(from_lo).is_some_and(|s| s != seg.seq)) {
                    self.late_packets += 1;
                    t.last_s = secs(at.ts);
                    return None;
                }
                self.tombs.remove(&id);
            }
        }
        if SynOnly::takes(seg) {
            let rec = SynOnly::new(seg, at, iface, pkttype);
            let syn = |stream| Live {
                ends,
                stream,
                rec: Rec::Syn(rec),
            };
            self.open(key, syn);
            return None;
        }
        Some(self.open_full(key, ends, at))
    }

    /// Adds an ICMP error; it joins the connection whose headers it quotes.
    pub fn icmp(&mut self, e: &IcmpError, at: FrameRef) {
        let Some(q) = e.quoted else {
            return;
        };
        let src = Endpoint {
            ip: q.src,
            port: q.sport,
        };
        let dst = Endpoint {
            ip: q.dst,
            port: q.dport,
        };
        let (key, _) = Key::of(src, dst);
        let found = self.index.find(&key, &self.live);
        let (place, stream, d, opened) = match found.and_then(|p| Some((p, self.live.at(p)?))) {
            Some((p, l)) => (p, l.stream, l.dir_from(src), false),
            None if !self.tombs.is_empty() && self.tombs.contains_key(&tomb_id(&key)) => {
                self.late_packets += 1;
                return;
            }
            None => {
                let r = self.open_full(key, [src, dst], at);
                (r.place, r.stream, r.d, true)
            }
        };
        let Some(live) = self.live.get_mut(place, stream) else {
            return;
        };
        let Some(c) = live.conn_mut(&self.cfg, &mut self.spare) else {
            return;
        };
        c.icmp_only |= opened;
        c.last = at;
        if c.icmp.len() < 8 {
            c.icmp.push(IcmpFact {
                at,
                v6: e.v6,
                icmp_type: e.icmp_type,
                code: e.code,
                reporter: e.ip.src,
                quoted_dir: Some(d),
                quoted_flags: q.flags,
                mtu: e.mtu,
            });
        }
        let (v6, icmp_type, code) = (e.v6, e.icmp_type, e.code);
        c.log(
            at,
            d,
            EventKind::Icmp {
                v6,
                icmp_type,
                code,
            },
        );
        live.update();
    }

    /// Hands out connections whose outcome is settled at capture time `now`: closed ones quiet
    /// for [`FlowConfig::close_linger`], idle ones past [`FlowConfig::idle_timeout`], and the
    /// least recently active beyond [`FlowConfig::max_live`]. Forgets old tombstones.
    pub fn sweep(&mut self, now: Nanos, out: &mut Vec<(Settled, Eviction)>) {
        let mut gone = self.closed_and_quiet(now);
        // Idle connections and old tombstones: a full scan every [`IDLE_SCAN`] of capture time.
        let scan = now.saturating_sub(self.last_scan) >= IDLE_SCAN;
        if scan {
            self.last_scan = now;
            let idle = self.cfg.idle_timeout;
            for (place, l) in self.live.iter() {
                if !l.closed() && now.saturating_sub(l.last_ts()) >= idle {
                    gone.push((place, l.stream, Eviction::Idle));
                }
            }
        }
        self.over_cap(&mut gone);
        for (place, stream, why) in gone {
            if let Some(l) = self.live.remove(place, stream) {
                self.retire(place, &l, why);
                out.push((Settled(l), why));
            }
        }
        if scan {
            let keep = self.cfg.tombstone_timeout / 1_000_000_000;
            let now = i64::from(secs(now));
            self.tombs
                .retain(|_, t| now.saturating_sub(i64::from(t.last_s)) < keep);
        }
        // Bounded like the live table: under a flood of short connections, forget all
        // tombstones rather than grow (a late packet may then open a new stream). The map keeps
        // its buckets: grown anew, it held its old and new buckets at once at each doubling
        // (10 MB at the default cap, the peak of a 1M-SYN flood).
        if self.index.len() + self.tombs.len() > 2 * self.cfg.max_live.max(1024) {
            self.tombs.clear();
            self.tombstones_dropped += 1;
        }
    }

    /// Closed connections quiet for the linger, from the list of those that closed: a sweep
    /// does not visit every open connection.
    fn closed_and_quiet(&mut self, now: Nanos) -> Vec<(u32, u64, Eviction)> {
        let mut gone = Vec::new();
        let linger = self.cfg.close_linger;
        let live = &self.live;
        self.closing
            .retain(|&(place, stream)| match live.get(place, stream) {
                Some(l) if l.closed() => {
                    let quiet = now.saturating_sub(l.last_ts()) >= linger;
                    if quiet {
                        gone.push((place, stream, Eviction::Closed));
                    }
                    !quiet
                }
                _ => false,
            });
        gone
    }

    /// Beyond the live cap: evicts down to 90 % of it, least recently active first (the older
    /// stream first among equals).
    fn over_cap(&self, gone: &mut Vec<(u32, u64, Eviction)>) {
        let max_live = self.cfg.max_live;
        let over = (self.live.len - gone.len()).saturating_sub(max_live);
        if over == 0 {
            return;
        }
        let target = over + max_live / 10;
        let leaving: FxHashSet<u64> = gone.iter().map(|(_, s, _)| *s).collect();
        let staying = || {
            self.live
                .iter()
                .filter(|(_, l)| !leaving.contains(&l.stream))
        };
        // The last activity of the `target`-th least recently active, selected among times
        // alone; only the connections up to it are sorted. Sorting all of them with stream and
        // place took 24 bytes a connection: 6 MB at the peak of a 1M-SYN flood, now 1.6 MB.
        let mut times: Vec<Nanos> = staying().map(|(_, l)| l.last_ts()).collect();
        let Some(nth) = target.min(times.len()).checked_sub(1) else {
            return;
        };
        let cut = *times.select_nth_unstable(nth).1;
        drop(times);
        let mut candidates: Vec<(Nanos, u64, u32)> = staying()
            .filter(|(_, l)| l.last_ts() <= cut)
            .map(|(place, l)| (l.last_ts(), l.stream, place))
            .collect();
        candidates.sort_unstable();
        gone.extend(
            candidates
                .into_iter()
                .take(target)
                .map(|(_, s, place)| (place, s, Eviction::Cap)),
        );
    }

    /// Forgets a connection leaving the table: counts it and leaves a tombstone for its
    /// 4-tuple.
    fn retire(&mut self, place: u32, l: &Live, why: Eviction) {
        match why {
            Eviction::Cap => self.evicted_by_cap += 1,
            Eviction::Idle => self.evicted_idle += 1,
            Eviction::Closed => {}
        }
        let last = match &l.rec {
            Rec::Syn(s) => s.last(),
            Rec::Full { conn: c, .. } => c.last,
        };
        let seqs = l.first_seq();
        let (key, first_from_lo) = Key::of(l.ends[0], l.ends[1]);
        // A connection superseded by port reuse no longer owns its 4-tuple.
        if self.index.remove(&key, place) {
            let by_side = if first_from_lo {
                seqs
            } else {
                [seqs[1], seqs[0]]
            };
            self.tombs
                .insert(tomb_id(&key), Tomb::new(by_side, last.ts));
        }
    }

    /// A settled connection, whole. (A SYN-only record is made whole here, in an allocation
    /// given back by [`FlowTable::recycle`] when there is one.)
    pub fn conn(&mut self, s: Settled) -> Box<Conn> {
        let Settled(l) = s;
        match l.rec {
            Rec::Full { conn, .. } => conn,
            Rec::Syn(r) => boxed(r.to_conn(l.ends, l.stream, &self.cfg), &mut self.spare),
        }
    }

    /// Ends the capture: every connection still open, by stream (each finished as it is
    /// taken, so the table's places are the only copy).
    pub fn drain(&mut self) -> Drain {
        let mut places = std::mem::take(&mut self.live.places);
        self.live = Slab::default();
        places.sort_unstable_by_key(|p| p.as_ref().map_or(u64::MAX, |l| l.stream));
        self.index = Index::default();
        self.tombs.clear();
        self.closing.clear();
        Drain(places.into_iter())
    }

    /// Ends the capture and returns every connection (for tests and small captures).
    pub fn into_connections(mut self) -> Vec<Box<Conn>> {
        let v = self.drain();
        v.into_iter().map(|s| self.conn(s)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::Dir;
    use crate::wire::{tcp_flags as F, IpInfo};
    use std::net::{IpAddr, Ipv4Addr};

    fn seg(from_client: bool, seq: u32, ack: u32, flags: u8, payload: &[u8]) -> TcpSegment<'_> {
        let c = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let s = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        let (src, dst, sport, dport) = if from_client {
            (c, s, 40000, 443)
        } else {
            (s, c, 443, 40000)
        };
        TcpSegment {
            ip: IpInfo {
                src,
                dst,
                ttl: 64,
                id: None,
            },
            sport,
            dport,
            seq,
            ack,
            flags,
            window: 1000,
            checksum: (seq as u16) ^ u16::from(flags),
            payload,
            wire_len: payload.len() as u32,
            header_truncated: false,
            bytes: &[],
            hlen: 20,
            whole: false,
        }
    }

    fn at(n: u64) -> FrameRef {
        FrameRef::new(0, n, n as i64 * 100_000_000)
    }

    #[test]
    fn handshake_then_unacked_data_counts_retransmissions() {
        let mut t = FlowTable::new(FlowConfig::default());
        t.tcp(&seg(true, 100, 0, F::SYN, b""), at(1), 0, None);
        t.tcp(&seg(false, 500, 101, F::SYN | F::ACK, b""), at(2), 0, None);
        t.tcp(&seg(true, 101, 501, F::ACK, b""), at(3), 0, None);
        t.tcp(
            &seg(true, 101, 501, F::ACK | F::PSH, b"hello"),
            at(4),
            0,
            None,
        );
        t.tcp(
            &seg(true, 101, 501, F::ACK | F::PSH, b"hello"),
            at(5),
            0,
            None,
        );
        t.tcp(&seg(true, 106, 501, F::ACK | F::FIN, b""), at(6), 0, None);
        let conns = t.into_connections();
        assert_eq!(conns.len(), 1);
        let c = &conns[0];
        assert_eq!(c.syn_dir, Some(Dir::Orig));
        assert_eq!(c.handshake_ack, Some(at(3)));
        assert_eq!(c.dirs[0].payload_segments, 2);
        assert_eq!(c.dirs[0].retransmissions, 1);
        assert_eq!(c.dirs[0].acked, Some(0)); // the SYN only
        assert_eq!(c.dirs[0].fin_offset, Some(5));
    }

    #[test]
    fn syn_with_new_isn_on_known_tuple_starts_new_stream() {
        let mut t = FlowTable::new(FlowConfig::default());
        t.tcp(&seg(true, 100, 0, F::SYN, b""), at(1), 0, None);
        t.tcp(&seg(true, 100, 0, F::SYN, b""), at(12), 0, None); // retransmission: same stream
        t.tcp(&seg(true, 9000, 0, F::SYN, b""), at(30), 0, None); // new ISN
        let conns = t.into_connections();
        assert_eq!(conns.len(), 2);
        assert_eq!(conns[0].dirs[0].syn_count, 2);
        assert_eq!(conns[1].stream, 1);
    }

    /// A settled connection's allocation is reused for the next one: nothing of the old
    /// connection may show through.
    #[test]
    fn a_reused_connection_starts_blank() {
        let hello = [0x16, 3, 1, 0, 5, 1, 0, 0, 1, 0];
        let steps = |t: &mut FlowTable| {
            t.tcp(&seg(true, 100, 0, F::SYN, b""), at(1), 0, None);
            t.tcp(&seg(false, 500, 101, F::SYN | F::ACK, b""), at(2), 0, None);
            t.tcp(&seg(true, 101, 501, F::ACK, &hello), at(3), 0, None);
            t.tcp(&seg(false, 501, 111, F::RST, b""), at(4), 0, None);
        };
        let whole = |t: &mut FlowTable| {
            let v = t.drain();
            v.into_iter().map(|s| t.conn(s)).collect::<Vec<_>>()
        };
        let shown = |mut v: Vec<Box<Conn>>| {
            v.iter_mut().for_each(|c| c.stream = 0);
            format!("{v:?}")
        };
        let mut fresh = FlowTable::new(FlowConfig::default());
        steps(&mut fresh);
        let want = shown(whole(&mut fresh));
        let mut used = FlowTable::new(FlowConfig::default());
        steps(&mut used);
        let old = whole(&mut used);
        assert!(old[0].has_tls() && !old[0].events.is_empty());
        used.recycle(old);
        assert_eq!(used.spare.len(), 1);
        steps(&mut used);
        assert!(used.spare.is_empty());
        assert_eq!(shown(whole(&mut used)), want);
    }

    #[test]
    fn duplicate_from_two_interfaces_is_not_a_retransmission() {
        let mut t = FlowTable::new(FlowConfig::default());
        t.tcp(&seg(true, 100, 0, F::SYN, b""), at(1), 0, None);
        let dup = FrameRef::new(0, 2, at(1).ts + 20_000);
        t.tcp(&seg(true, 100, 0, F::SYN, b""), dup, 1, None);
        let conns = t.into_connections();
        assert_eq!(conns[0].dirs[0].syn_count, 1);
        assert_eq!(conns[0].dirs[0].duplicates, 1);
        assert_eq!(conns[0].dirs[0].syn_copies, 1);
    }

    #[test]
    fn syn_flood_stays_within_the_live_cap_and_tombstone_bound() {
        let cfg = FlowConfig {
            max_live: 100,
            ..Default::default()
        };
        let mut t = FlowTable::new(cfg);
        let mut out = Vec::new();
        for i in 0..20_000u32 {
            let mut s = seg(true, i, 0, F::SYN, b"");
            s.sport = (i % 60_000) as u16;
            s.ip.src = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            t.tcp(&s, at(u64::from(i)), 0, None);
            if i % 50 == 0 {
                t.sweep(i64::from(i) * 1_000, &mut out);
                assert!(t.live() <= 200, "live {}", t.live());
                let held = t.index.len() + t.tombs.len();
                assert!(held <= 2 * 1024 + 200, "index {held}");
            }
        }
        assert!(t.evicted_by_cap > 0);
        assert!(t.tombstones_dropped > 0);
    }

    /// The index names the newest connection of a 4-tuple: the one it superseded settling
    /// later must not take the 4-tuple from it.
    #[test]
    fn a_superseded_connection_settles_without_its_successor() {
        let mut t = FlowTable::new(FlowConfig::default());
        let mut out = Vec::new();
        let s = 1_000_000_000i64;
        t.tcp(&seg(true, 100, 0, F::SYN, b""), at(1), 0, None);
        let reuse = FrameRef::new(0, 2, 200 * s);
        t.tcp(&seg(true, 9000, 0, F::SYN, b""), reuse, 0, None);
        t.sweep(301 * s, &mut out);
        assert_eq!((out.len(), out[0].0.stream(), t.live()), (1, 0, 1));
        let answer = FrameRef::new(0, 3, 302 * s);
        t.tcp(
            &seg(false, 500, 9001, F::SYN | F::ACK, b""),
            answer,
            0,
            None,
        );
        assert_eq!((t.late_packets, t.live(), t.index.len()), (0, 1, 1));
        let conns = t.into_connections();
        assert_eq!(
            (conns[0].stream, conns[0].synack_dir),
            (1, Some(Dir::Reply))
        );
    }

    /// Over the cap, the least recently active leave first, the older stream first among
    /// equals, in that order.
    #[test]
    fn over_the_cap_the_least_recently_active_leave_first() {
        let cfg = FlowConfig {
            max_live: 10,
            ..Default::default()
        };
        let mut t = FlowTable::new(cfg);
        let times: Vec<i64> = (0..16).map(|i| (i * 7 % 5) * 1_000).collect();
        for (i, &ts) in times.iter().enumerate() {
            let mut s = seg(true, 1, 0, F::SYN, b"");
            s.sport = 1000 + i as u16;
            t.tcp(&s, FrameRef::new(0, i as u64, ts), 0, None);
        }
        let mut out = Vec::new();
        t.sweep(10_000, &mut out);
        let mut want: Vec<(i64, u64)> = times.iter().zip(0..).map(|(&ts, i)| (ts, i)).collect();
        want.sort_unstable();
        let want: Vec<u64> = want.iter().take(7).map(|w| w.1).collect();
        let got: Vec<u64> = out.iter().map(|(s, _)| s.stream()).collect();
        assert_eq!(got, want);
        assert_eq!((t.live(), t.evicted_by_cap), (9, 7));
    }

    #[test]
    fn settled_tuple_absorbs_late_packets_until_a_new_isn() {
        let mut t = FlowTable::new(FlowConfig::default());
        let mut out = Vec::new();
        // Server-first packet, so the tombstone must orient sequence numbers itself.
        t.tcp(&seg(false, 500, 101, F::SYN | F::ACK, b""), at(1), 0, None);
        t.tcp(&seg(true, 100, 0, F::SYN, b""), at(2), 0, None);
        t.tcp(&seg(true, 101, 501, F::FIN | F::ACK, b""), at(3), 0, None);
        t.tcp(&seg(false, 501, 102, F::FIN | F::ACK, b""), at(4), 0, None);
        t.sweep(5_000_000_000, &mut out);
        assert_eq!((out.len(), t.live()), (1, 0));
        // The last ACK and a retransmitted SYN with the old ISN, both directions: late.
        t.tcp(&seg(true, 102, 502, F::ACK, b""), at(5), 0, None);
        t.tcp(&seg(true, 100, 0, F::SYN, b""), at(6), 0, None);
        t.tcp(&seg(false, 501, 102, F::FIN | F::ACK, b""), at(7), 0, None);
        assert_eq!((t.late_packets, t.live()), (3, 0));
        // A SYN with a new ISN on the same 4-tuple is a new connection.
        t.tcp(&seg(true, 7000, 0, F::SYN, b""), at(8), 0, None);
        assert_eq!((t.late_packets, t.live()), (3, 1));
        let conns = t.into_connections();
        assert_eq!(conns[0].stream, 1);
        assert_eq!(conns[0].dirs[0].first_seq, Some(7000));
    }

    #[test]
    fn sweeps_settle_closed_after_the_linger_and_idle_after_the_timeout() {
        let mut t = FlowTable::new(FlowConfig::default());
        let mut out = Vec::new();
        let s = 1_000_000_000i64;
        // Stream 0 closes by RST at 0.1 s; stream 1 (another port) only sends a SYN.
        t.tcp(&seg(true, 100, 0, F::SYN, b""), at(0), 0, None);
        t.tcp(&seg(false, 0, 101, F::RST | F::ACK, b""), at(1), 0, None);
        let mut syn = seg(true, 7, 0, F::SYN, b"");
        syn.sport = 40001;
        t.tcp(&syn, at(2), 0, None);
        // Within the linger: nothing leaves.
        t.sweep(s / 2, &mut out);
        assert!(out.is_empty());
        // Past the linger: the closed one leaves, the open one stays.
        t.sweep(s, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].0.stream(), out[0].1), (0, Eviction::Closed));
        // The open one leaves once idle for the timeout (found by the periodic scan).
        t.sweep(299 * s, &mut out);
        assert_eq!((out.len(), t.live()), (1, 1));
        t.sweep(310 * s, &mut out);
        assert_eq!((out.len(), t.live(), t.evicted_idle), (2, 0, 1));
        assert_eq!((out[1].0.stream(), out[1].1), (1, Eviction::Idle));
    }

    #[test]
    fn acked_tracks_peer_acknowledgement() {
        let mut t = FlowTable::new(FlowConfig::default());
        t.tcp(&seg(true, 100, 0, F::SYN, b""), at(1), 0, None);
        t.tcp(&seg(false, 500, 101, F::SYN | F::ACK, b""), at(2), 0, None);
        t.tcp(
            &seg(true, 101, 501, F::ACK | F::PSH, b"hello"),
            at(3),
            0,
            None,
        );
        t.tcp(&seg(false, 501, 106, F::ACK, b""), at(4), 0, None);
        let conns = t.into_connections();
        assert_eq!(conns[0].dirs[0].acked, Some(5));
    }
}
