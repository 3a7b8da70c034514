//! How long each step took: per connection (`tcp_rtt_ms`, `server_hello_delay_s`,
//! `handshake_s`) and per server (`{p50, p90, p99, max}`), checked against the times the
//! capture files themselves hold, read here straight from their record headers.
//!
//! Frame numbers are tshark's (`tshark -r samples/NAME -T fields -e frame.number -e ip.src
//! -e tcp.flags.str -e tls.record.content_type`): in tls13_ok.pcap, 1 SYN, 2 SYN-ACK, 3 ACK,
//! 4 ClientHello, 6 ServerHello (the server's first TLS record), 8 the client's CCS and
//! Finished, 9 its first application data (both sides encrypted); tls12_ok.pcap and the
//! healthy pair have the same first frames, tls12_ok's server CCS in frame 9.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::{bin, sample};
use serde_json::Value;

/// Record timestamps (seconds) of a classic little-endian pcap, by frame number (index 0 is
/// frame 1), and where each record header starts.
fn frame_times(bytes: &[u8]) -> Vec<(f64, usize)> {
    let magic = u32::from_le_bytes(bytes[0..4].try_into().unwrap());
    let nanos = match magic {
        0xa1b2_c3d4 => false,
        0xa1b2_3c4d => true,
        m => panic!("not a little-endian classic pcap: {m:#x}"),
    };
    let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let frac = f64::from(word(at + 4)) / if nanos { 1e9 } else { 1e6 };
        out.push((f64::from(word(at)) + frac, at));
        at += 16 + word(at + 8) as usize;
    }
    out
}

fn times_of(name: &str) -> Vec<f64> {
    let bytes = std::fs::read(sample(name)).expect("sample");
    frame_times(&bytes).into_iter().map(|(t, _)| t).collect()
}

fn json(args: &[&str]) -> Value {
    let mut all = vec!["--format", "json", "--all"];
    all.extend_from_slice(args);
    let (status, out, err) = bin(&all);
    assert_eq!(status, 0, "{err}");
    serde_json::from_str(&out).expect("JSON")
}

/// Seconds between frames `a` and `b` (1-based), to the microsecond.
fn between(t: &[f64], a: usize, b: usize) -> f64 {
    ((t[b - 1] - t[a - 1]) * 1e6).round() / 1e6
}

fn close(got: &Value, want: f64, what: &str) {
    let got = got.as_f64().unwrap_or_else(|| panic!("{what}: {got}"));
    assert!(
        (got - want).abs() < 1e-9,
        "{what}: {got}, the frames say {want}"
    );
}

#[test]
fn tls13_timings_equal_what_the_frames_say() {
    let t = times_of("tls13_ok.pcap");
    let c = &json(&[&sample("tls13_ok.pcap")])["connections"][0];
    assert_eq!(c["vantage"], "client");
    close(&c["tcp_rtt_ms"], between(&t, 1, 2) * 1e3, "SYN to SYN-ACK");
    close(&c["server_hello_delay_s"], between(&t, 4, 6), "CH to SH");
    close(&c["handshake_s"], between(&t, 1, 9), "SYN to done");
    // A fast server is not worth a word.
    let e = c["explanation"].as_str().unwrap();
    assert!(!e.contains("answered the ClientHello after"), "{e}");
}

#[test]
fn tls12_handshake_ends_at_the_second_change_cipher_spec() {
    let t = times_of("tls12_ok.pcap");
    let c = &json(&[&sample("tls12_ok.pcap")])["connections"][0];
    close(&c["server_hello_delay_s"], between(&t, 4, 6), "CH to SH");
    close(&c["handshake_s"], between(&t, 1, 9), "SYN to server CCS");
}

/// The round trip is the capture point's: SYN to SYN-ACK on the client, SYN-ACK to ACK on the
/// server, as the connection's own packets tell or `--vantage` says.
#[test]
fn round_trip_is_measured_from_the_capture_point() {
    let client = times_of("healthy.client.pcap");
    let c = &json(&[&sample("healthy.client.pcap")])["connections"][0];
    assert_eq!(c["vantage"], "client");
    close(
        &c["tcp_rtt_ms"],
        between(&client, 1, 2) * 1e3,
        "client side",
    );
    let server = times_of("healthy.server.pcap");
    let s = &json(&[&sample("healthy.server.pcap")])["connections"][0];
    assert_eq!(s["vantage"], "server");
    close(
        &s["tcp_rtt_ms"],
        between(&server, 2, 3) * 1e3,
        "server side",
    );
    // Told the other side, the other leg.
    let forced = &json(&["--vantage", "server", &sample("healthy.client.pcap")])["connections"][0];
    close(
        &forced["tcp_rtt_ms"],
        between(&client, 2, 3) * 1e3,
        "forced",
    );
    close(
        &c["server_hello_delay_s"],
        between(&client, 4, 6),
        "client CH to SH",
    );
    close(
        &s["server_hello_delay_s"],
        between(&server, 4, 6),
        "server CH to SH",
    );
}

/// tls13_ok.pcap with every frame from the ServerHello on 7 s later (the kernel's ACK of the
/// ClientHello stays where it was): a backend that thinks for 7 s.
fn slow_backend() -> (tempdir::Dir, String) {
    slow_backend_after(0)
}

/// [`slow_backend`], the whole capture moved `offset` seconds later (so that, analysed with
/// the sample it was made from, it is another connection, not the same packets again).
fn slow_backend_after(offset: u32) -> (tempdir::Dir, String) {
    let mut bytes = std::fs::read(sample("tls13_ok.pcap")).expect("sample");
    for (i, (_, at)) in frame_times(&bytes).into_iter().enumerate() {
        let delay = if i + 1 >= 6 { 7 } else { 0 };
        let secs = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) + offset + delay;
        bytes[at..at + 4].copy_from_slice(&secs.to_le_bytes());
    }
    let dir = tempdir::Dir::new("slow-backend");
    let path = dir.path.join("slow_backend.pcap");
    std::fs::write(&path, &bytes).expect("write");
    (dir, path.to_string_lossy().into_owned())
}

mod tempdir {
    /// A directory removed when dropped.
    pub struct Dir {
        pub path: std::path::PathBuf,
    }

    impl Dir {
        pub fn new(name: &str) -> Dir {
            let path = std::env::temp_dir().join(format!(
                "tlsdiag-test-{name}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            std::fs::create_dir_all(&path).expect("temp dir");
            Dir { path }
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

#[test]
fn slow_backend_names_the_delay_and_the_timeouts_it_exceeds() {
    let (_dir, path) = slow_backend();
    let original = times_of("tls13_ok.pcap");
    let c = &json(&[&path])["connections"][0];
    assert_eq!(c["verdict"], "tls_ok");
    close(
        &c["server_hello_delay_s"],
        between(&original, 4, 6) + 7.0,
        "CH to SH",
    );
    close(
        &c["handshake_s"],
        between(&original, 1, 9) + 7.0,
        "SYN to done",
    );
    close(
        &c["tcp_rtt_ms"],
        between(&original, 1, 2) * 1e3,
        "unchanged",
    );
    let e = c["explanation"].as_str().unwrap();
    assert!(
        e.ends_with(
            "; the server answered the ClientHello after 7.0 s, longer than the Apigee Edge \
             connect timeout (3 s) and Envoy's default cluster connect_timeout (5 s) would wait"
        ),
        "{e}"
    );
    assert!(c["next_step"].as_str().unwrap().contains("slow to answer"));
    // The table says so too, and the ticket's headline names the server.
    let (_, text, _) = bin(&["--all", &path]);
    assert!(text.contains("ServerHello after 7.0s"), "{text}");
    let (_, md, _) = bin(&["--format", "markdown", &path]);
    assert!(
        md.contains(
            "**All 1 connection(s) completed their handshake or carried no TLS. 10.99.2.2:443 is \
             slow to answer the ClientHello: p99 7.0 s, max 7.0 s.**"
        ),
        "{md}"
    );
}

/// Nearest rank: the smallest value that at least `p` % of them do not exceed.
fn percentile(sorted: &[f64], p: usize) -> f64 {
    sorted[(p * sorted.len()).div_ceil(100) - 1]
}

/// Milliseconds as the text and Markdown server lists write them.
fn ms(v: f64) -> String {
    if v < 1.0 {
        format!("{v:.3}")
    } else if v < 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

/// Many samples as one capture (a busy backend at 10.99.2.2:443, others beside it): every
/// server's percentiles are those of its connections' own times, in every format.
#[test]
fn busy_capture_rollup_has_the_percentiles_in_every_format() {
    // Files given together are one capture, merged by packet time: the slow copy stands in
    // for tls13_ok.pcap (the same 4-tuple and ISN would be the same connection, as Wireshark
    // sees it), and comes an hour after the samples.
    let (_dir, slow) = slow_backend_after(3600);
    let mut inputs: Vec<String> = [
        "tls12_ok.pcap",
        "healthy.client.pcap",
        "mixed.pcap",
        "client_alert_tls12.pcap",
        "client_alert_tls13.pcap",
        "server_alert_protocol_version.pcap",
        "tls13_ok_nano.pcap",
        "tls13_ok_sll2.pcap",
        "tls12_ok_vlan.pcap",
        "nat.client.pcap",
    ]
    .iter()
    .map(|s| sample(s))
    .collect();
    inputs.push(slow);
    let args: Vec<&str> = inputs.iter().map(String::as_str).collect();
    let report = json(&args);
    let servers = report["summary"]["servers"].as_array().unwrap();
    let busiest = &servers[0];
    assert!(busiest["connections"].as_u64().unwrap() >= 8, "{busiest}");
    let mut checked = 0;
    for sv in servers {
        let name = sv["server"].as_str().unwrap();
        let of = |key: &str, scale: f64| {
            let mut v: Vec<f64> = report["connections"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|c| {
                    let ip = c["server_ip"].as_str().unwrap();
                    let ep = if ip.contains(':') {
                        format!("[{ip}]:{}", c["server_port"])
                    } else {
                        format!("{ip}:{}", c["server_port"])
                    };
                    ep == name
                })
                .filter_map(|c| c[key].as_f64())
                .map(|x| x * scale)
                .collect();
            v.sort_by(f64::total_cmp);
            v
        };
        for (key, values) in [
            ("tcp_rtt_ms", of("tcp_rtt_ms", 1.0)),
            ("server_hello_delay_ms", of("server_hello_delay_s", 1e3)),
        ] {
            let spread = &sv[key];
            if values.is_empty() {
                assert!(spread.is_null(), "{name} {key}: {spread}");
                continue;
            }
            assert_eq!(spread["count"].as_u64(), Some(values.len() as u64));
            for (p, k) in [(50, "p50"), (90, "p90"), (99, "p99")] {
                close(
                    &spread[k],
                    percentile(&values, p),
                    &format!("{name} {key} {k}"),
                );
            }
            close(&spread["max"], values[values.len() - 1], "max");
            checked += 1;
        }
    }
    assert!(checked >= 4, "only {checked} spreads checked");
    // The slow backend's 7 s is the busiest server's maximum, and more than 1 % of its
    // connections: its p99.
    let sh = &busiest["server_hello_delay_ms"];
    assert!(sh["p99"].as_f64().unwrap() > 7000.0, "{sh}");
    let line = |spread: &Value| {
        ["p50", "p90", "p99", "max"]
            .map(|k| ms(spread[k].as_f64().unwrap()))
            .join("/")
    };
    let (rtt, sh) = (line(&busiest["tcp_rtt_ms"]), line(sh));
    let name = busiest["server"].as_str().unwrap();
    let (_, text, _) = bin(&args);
    assert!(
        text.contains(&format!(
            "    ms p50/p90/p99/max: TCP round trip {rtt}; ServerHello delay {sh}\n"
        )),
        "{text}"
    );
    let mut md_args = vec!["--format", "markdown"];
    md_args.extend_from_slice(&args);
    let (_, md, _) = bin(&md_args);
    assert!(md.contains(&format!(" | {rtt} | {sh} |\n")), "{md}");
    assert!(
        md.contains(&format!(
            "{name} is slow to answer the ClientHello: p99 7.0 s"
        )),
        "{md}"
    );
}
