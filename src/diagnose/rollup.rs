//! The summary's counts: connections per verdict, overall and per server, in bounded memory.
//!
//! A server is an `ip:port` the connections went to. A gateway talks to a handful of backends,
//! but a scan or a capture of a whole network can reach millions of addresses: the per-server
//! rollup lists the first [`MAX_SERVERS`] servers seen and counts the connections to any other
//! in [`Counted::unlisted`] (they stay in the overall counts).

use crate::diagnose::verdict::VerdictCode;
use crate::flow::Endpoint;
use crate::model::ServerRollup;
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;

/// Distinct servers listed in the per-server rollup (~200 bytes each while counting).
pub const MAX_SERVERS: usize = 10_000;

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
    servers: FxHashMap<Endpoint, Counts>,
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

    /// Counts one connection to `server`.
    pub fn add(&mut self, server: Endpoint, code: VerdictCode) {
        self.verdicts.add(code);
        if code.is_failure() {
            self.failed += 1;
        }
        if let Some(counts) = self.servers.get_mut(&server) {
            counts.add(code);
        } else if self.servers.len() < self.max_servers {
            self.servers.entry(server).or_default().add(code);
        } else {
            self.unlisted += 1;
        }
    }

    pub fn finish(self) -> Counted {
        let mut servers: Vec<ServerRollup> = self
            .servers
            .into_iter()
            .map(|(server, counts)| ServerRollup {
                server: server.to_string(),
                connections: counts.total(),
                verdicts: counts.by_name(),
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
            r.add(s, code);
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

    #[test]
    fn servers_beyond_the_limit_are_counted_but_not_listed() {
        let mut r = Rollup::with_max_servers(3);
        for last in 0..10u8 {
            r.add(server(last, 443), VerdictCode::TcpNoSynack);
        }
        // A listed server keeps counting once the list is full.
        r.add(server(0, 443), VerdictCode::TlsOk);
        // The same address on another port is another server.
        r.add(server(1, 8443), VerdictCode::TlsOk);
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
