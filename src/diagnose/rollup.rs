//! The summary's counts: connections per verdict, overall and per server, in bounded memory.
//!
//! A server is an `ip:port` the connections went to. A gateway talks to a handful of backends,
//! but a scan or a capture of a whole network can reach millions of addresses: the per-server
//! rollup lists the first [`MAX_SERVERS`] servers seen and counts the connections to any other
//! in [`Counted::unlisted`] (they stay in the overall counts).
//!
//! Per listed server it also keeps how two times spread (TCP round trip, ServerHello delay):
//! every value, exactly, up to [`EXACT_VALUES`] connections, then an HDR histogram
//! ([`Spread`]), so a server costs at most ~32 KiB however many connections it has.

use crate::diagnose::verdict::VerdictCode;
use crate::flow::Endpoint;
use crate::model::{self, ServerRollup};
use hdrhistogram::Histogram;
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;

/// Distinct servers listed in the per-server rollup (~250 bytes each while counting, and the
/// times they keep, see [`Spread`]).
pub const MAX_SERVERS: usize = 10_000;

/// Values of one time kept exactly per server (4 KiB), before a histogram takes over.
pub const EXACT_VALUES: usize = 1024;

/// Histogram range: microseconds up to 2^32 - 1 (71 minutes; longer times count as that, the
/// maximum stays exact), two significant digits (a value within 1 %): 3,328 counters of 4
/// bytes, 13 KiB.
const HISTOGRAM_HIGH: u64 = u32::MAX as u64;
const HISTOGRAM_DIGITS: u8 = 2;

/// How one time (in microseconds) spread over a server's connections.
#[derive(Debug, Clone)]
enum Spread {
    /// Every value so far (at most [`EXACT_VALUES`]).
    Exact(Vec<u32>),
    /// Counted in a histogram; the largest value kept exactly.
    Histogram { h: Box<Histogram<u32>>, max: u64 },
}

impl Default for Spread {
    fn default() -> Self {
        Spread::Exact(Vec::new())
    }
}

impl Spread {
    fn add(&mut self, micros: u64) {
        match self {
            Spread::Exact(v) if v.len() < EXACT_VALUES => {
                v.push(u32::try_from(micros).unwrap_or(u32::MAX));
            }
            Spread::Exact(v) => {
                // The bounds are valid constants: creation cannot fail; were it to, the exact
                // values would stay and later ones go uncounted.
                let Ok(mut h) =
                    Histogram::<u32>::new_with_bounds(1, HISTOGRAM_HIGH, HISTOGRAM_DIGITS)
                else {
                    return;
                };
                for x in v.iter() {
                    h.saturating_record(u64::from(*x));
                }
                let max = v.iter().copied().max().map_or(0, u64::from);
                *self = Spread::Histogram {
                    h: Box::new(h),
                    max,
                };
                self.add(micros);
            }
            Spread::Histogram { h, max } => {
                h.saturating_record(micros);
                *max = (*max).max(micros);
            }
        }
    }

    /// p50, p90, p99 (nearest rank) and the maximum, in milliseconds; None when empty.
    fn finish(self) -> Option<model::Spread> {
        let (count, [p50, p90, p99], max) = match self {
            Spread::Exact(mut v) => {
                v.sort_unstable();
                let max = u64::from(*v.last()?);
                let at = |p: usize| v.get(rank(p, v.len())).map_or(0, |x| u64::from(*x));
                (v.len() as u64, [at(50), at(90), at(99)], max)
            }
            Spread::Histogram { h, max } => {
                // The histogram answers the highest value equivalent to the rank's: never
                // beyond the largest value seen.
                let at = |p: f64| h.value_at_quantile(p).min(max);
                (h.len(), [at(0.50), at(0.90), at(0.99)], max)
            }
        };
        let ms = |micros: u64| micros as f64 / 1e3;
        Some(model::Spread {
            count,
            p50: ms(p50),
            p90: ms(p90),
            p99: ms(p99),
            max: ms(max),
        })
    }
}

/// The 0-based index of percentile `p` of `n` sorted values by nearest rank: the smallest
/// value at least `p` % of the values are no larger than.
fn rank(p: usize, n: usize) -> usize {
    (p * n).div_ceil(100).saturating_sub(1)
}

/// Seconds as whole microseconds (a capture's times are no finer).
fn micros(s: f64) -> u64 {
    (s * 1e6).round() as u64
}

/// The times one connection adds to its server's spreads, in seconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Times {
    pub tcp_rtt_s: Option<f64>,
    pub server_hello_delay_s: Option<f64>,
}

/// One server's counts and times.
#[derive(Debug, Clone, Default)]
struct Server {
    counts: Counts,
    tcp_rtt: Spread,
    server_hello_delay: Spread,
}

impl Server {
    fn add(&mut self, code: VerdictCode, times: Times) {
        self.counts.add(code);
        if let Some(s) = times.tcp_rtt_s {
            self.tcp_rtt.add(micros(s));
        }
        if let Some(s) = times.server_hello_delay_s {
            self.server_hello_delay.add(micros(s));
        }
    }
}

/// Connections per verdict code, indexed in [`VerdictCode::ALL`] order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Counts([u64; VerdictCode::ALL.len()]);

impl Counts {
    fn add(&mut self, code: VerdictCode) {
        self.0[code as usize] += 1;
    }

    fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// The codes seen at least once, by name.
    fn by_name(&self) -> BTreeMap<String, u64> {
        VerdictCode::ALL
            .iter()
            .zip(self.0)
            .filter(|(_, n)| *n > 0)
            .map(|(code, n)| (code.as_str().to_string(), n))
            .collect()
    }
}

/// Verdict counts of the connections settled so far.
#[derive(Debug, Clone)]
pub struct Rollup {
    verdicts: Counts,
    failed: u64,
    servers: FxHashMap<Endpoint, Server>,
    max_servers: usize,
    unlisted: u64,
}

impl Default for Rollup {
    fn default() -> Self {
        Self::with_max_servers(MAX_SERVERS)
    }
}

/// The finished counts, as the summary shows them.
#[derive(Debug, Clone, PartialEq)]
pub struct Counted {
    pub connections: u64,
    pub failed: u64,
    pub verdicts: BTreeMap<String, u64>,
    /// Most connections first, then by `ip:port` text.
    pub servers: Vec<ServerRollup>,
    /// Connections to servers beyond the listed ones.
    pub unlisted: u64,
}

impl Rollup {
    pub fn with_max_servers(max_servers: usize) -> Self {
        Rollup {
            verdicts: Counts::default(),
            failed: 0,
            servers: FxHashMap::default(),
            max_servers,
            unlisted: 0,
        }
    }

    /// Counts one connection to `server`, and its times.
    pub fn add(&mut self, server: Endpoint, code: VerdictCode, times: Times) {
        self.verdicts.add(code);
        if code.is_failure() {
            self.failed += 1;
        }
        if let Some(s) = self.servers.get_mut(&server) {
            s.add(code, times);
        } else if self.servers.len() < self.max_servers {
            self.servers.entry(server).or_default().add(code, times);
        } else {
            self.unlisted += 1;
        }
    }

    pub fn finish(self) -> Counted {
        let mut servers: Vec<ServerRollup> = self
            .servers
            .into_iter()
            .map(|(server, s)| ServerRollup {
                server: server.to_string(),
                connections: s.counts.total(),
                verdicts: s.counts.by_name(),
                tcp_rtt_ms: s.tcp_rtt.finish(),
                server_hello_delay_ms: s.server_hello_delay.finish(),
            })
            .collect();
        servers.sort_by(|a, b| {
            b.connections
                .cmp(&a.connections)
                .then(a.server.cmp(&b.server))
        });
        Counted {
            connections: self.verdicts.total(),
            failed: self.failed,
            verdicts: self.verdicts.by_name(),
            servers,
            unlisted: self.unlisted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    fn server(last: u8, port: u16) -> Endpoint {
        Endpoint {
            ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)),
            port,
        }
    }

    #[test]
    fn counts_per_verdict_and_per_server_in_order() {
        let mut r = Rollup::default();
        let v6 = Endpoint {
            ip: IpAddr::V6(Ipv6Addr::LOCALHOST),
            port: 443,
        };
        for (s, code) in [
            (server(2, 443), VerdictCode::TlsOk),
            (server(1, 443), VerdictCode::TlsNoServerResponse),
            (server(2, 443), VerdictCode::TlsNoServerResponse),
            (server(1, 443), VerdictCode::TlsOk),
            (v6, VerdictCode::TcpNoData),
        ] {
            r.add(s, code, Times::default());
        }
        let c = r.finish();
        assert_eq!((c.connections, c.failed, c.unlisted), (5, 2, 0));
        assert_eq!(c.verdicts.get("tls_ok"), Some(&2));
        assert_eq!(c.verdicts.get("tls_no_server_response"), Some(&2));
        assert_eq!(c.verdicts.get("tcp_no_data"), Some(&1));
        assert_eq!(c.verdicts.len(), 3, "only codes seen are listed");
        let names: Vec<&str> = c.servers.iter().map(|s| s.server.as_str()).collect();
        // Two connections each: ties broken by the text; IPv6 in brackets.
        assert_eq!(names, ["10.0.0.1:443", "10.0.0.2:443", "[::1]:443"]);
        assert_eq!(c.servers[0].connections, 2);
        assert_eq!(c.servers[0].verdicts.get("tls_ok"), Some(&1));
    }

    fn spread(values_us: impl IntoIterator<Item = u64>) -> Option<model::Spread> {
        let mut s = Spread::default();
        for v in values_us {
            s.add(v);
        }
        s.finish()
    }

    #[test]
    fn nearest_rank_percentiles_are_exact_up_to_the_bound() {
        assert_eq!(spread([]), None);
        // 1..=100 ms: the p-th value.
        let s = spread((1..=100).rev().map(|ms| ms * 1000)).expect("values");
        assert_eq!(
            (s.count, s.p50, s.p90, s.p99, s.max),
            (100, 50.0, 90.0, 99.0, 100.0)
        );
        // One value is every percentile.
        let s = spread([512]).expect("value");
        assert_eq!((s.p50, s.p99, s.max), (0.512, 0.512, 0.512));
        // Ten values: p50 is the 5th, p90 the 9th, p99 the 10th (rank rounds up).
        let s = spread([7, 1, 2, 3, 4, 5, 6, 8, 9, 10]).expect("values");
        assert_eq!((s.p50, s.p90, s.p99), (0.005, 0.009, 0.010));
        // A slow tail: one connection in 200 at 7 s moves p99 only past 99 %.
        let s = spread((0..200).map(|i| if i == 17 { 7_000_000 } else { 300 })).expect("v");
        assert_eq!((s.p50, s.p99, s.max), (0.3, 0.3, 7000.0));
        let s = spread((0..100).map(|i| if i < 2 { 7_000_000 } else { 300 })).expect("v");
        assert_eq!((s.p99, s.max), (7000.0, 7000.0));
        assert_eq!(rank(50, 1), 0);
        assert_eq!(rank(99, 1000), 989);
    }

    #[test]
    fn past_the_bound_a_histogram_keeps_percentiles_within_one_percent() {
        let n = (EXACT_VALUES * 5) as u64;
        // 1 us .. n ms, in a scrambled order.
        let values: Vec<u64> = (1..=n).map(|i| (i * 7919 % n + 1) * 1000).collect();
        let mut s = Spread::default();
        for v in &values {
            s.add(*v);
        }
        if let Spread::Histogram { h, .. } = &s {
            // 13 KiB of counters, whatever the count.
            assert!(h.distinct_values() <= 3328, "{}", h.distinct_values());
        } else {
            panic!("still exact after {n} values");
        }
        let got = s.finish().expect("values");
        let mut sorted = values.clone();
        sorted.sort_unstable();
        assert_eq!(got.count, n);
        assert_eq!(got.max, n as f64, "the maximum stays exact");
        for (p, v) in [(50, got.p50), (90, got.p90), (99, got.p99)] {
            let exact = sorted[rank(p, sorted.len())] as f64 / 1e3;
            assert!(
                (v - exact).abs() <= exact * 0.01,
                "p{p}: {v} vs exact {exact}"
            );
        }
    }

    #[test]
    fn times_go_to_the_server_they_were_measured_for() {
        let mut r = Rollup::default();
        let t = |rtt: f64, sh: Option<f64>| Times {
            tcp_rtt_s: Some(rtt),
            server_hello_delay_s: sh,
        };
        r.add(server(1, 443), VerdictCode::TlsOk, t(0.0004, Some(7.0)));
        r.add(server(1, 443), VerdictCode::TlsOk, t(0.0002, Some(0.01)));
        r.add(server(2, 443), VerdictCode::TcpNoSynack, Times::default());
        let c = r.finish();
        let one = &c.servers[0];
        let rtt = one.tcp_rtt_ms.expect("measured");
        assert_eq!((rtt.count, rtt.p50, rtt.max), (2, 0.2, 0.4));
        let sh = one.server_hello_delay_ms.expect("measured");
        assert_eq!((sh.count, sh.p50, sh.p99), (2, 10.0, 7000.0));
        assert_eq!(c.servers[1].tcp_rtt_ms, None);
        assert_eq!(c.servers[1].server_hello_delay_ms, None);
    }

    #[test]
    fn servers_beyond_the_limit_are_counted_but_not_listed() {
        let mut r = Rollup::with_max_servers(3);
        for last in 0..10u8 {
            r.add(
                server(last, 443),
                VerdictCode::TcpNoSynack,
                Times::default(),
            );
        }
        // A listed server keeps counting once the list is full.
        r.add(server(0, 443), VerdictCode::TlsOk, Times::default());
        // The same address on another port is another server.
        r.add(server(1, 8443), VerdictCode::TlsOk, Times::default());
        let c = r.finish();
        assert_eq!(c.connections, 12);
        assert_eq!(c.servers.len(), 3);
        assert_eq!(c.unlisted, 8);
        assert_eq!(c.servers[0].server, "10.0.0.0:443");
        assert_eq!(c.servers[0].connections, 2);
        let listed: u64 = c.servers.iter().map(|s| s.connections).sum();
        assert_eq!(listed + c.unlisted, c.connections);
    }
}
