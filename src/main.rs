//! tlsdiag command line: flags -> options -> analyze (or compare) -> render -> exit status.
//! Exit status: 0 analysed; 1 with `--check` when some connection failed; 2 bad usage or an
//! unreadable input.

use clap::{Parser, ValueEnum};
use std::io::{IsTerminal, Write};
use std::net::IpAddr;
use std::process::ExitCode;
use tlsdiag::diagnose::verdict::Side;
use tlsdiag::report::{self, Format, RenderOptions};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FormatArg {
    Text,
    Json,
    Ndjson,
    Markdown,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum VantageArg {
    Client,
    Server,
}

/// Reads tcpdump captures and says, connection by connection, why TLS handshakes failed.
#[derive(Debug, Parser)]
#[command(
    name = "tlsdiag",
    version,
    about,
    after_help = "Two captures of the same connections (gateway side and backend side): tlsdiag compare --help"
)]
struct Cli {
    /// Capture files (pcap, pcapng, optionally gzip/zstd); several files are one capture in
    /// the order given; `-` reads standard input.
    #[arg(required = true, value_name = "CAPTURE")]
    inputs: Vec<String>,
    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value = "text")]
    format: FormatArg,
    /// List every connection, not only those that did not succeed.
    #[arg(long)]
    all: bool,
    /// Print the timeline (ladder) of each listed connection.
    #[arg(long)]
    timeline: bool,
    /// Where the capture was taken, overriding the inference.
    #[arg(long, value_enum)]
    vantage: Option<VantageArg>,
    /// Only connections with this address at either end.
    #[arg(long)]
    host: Option<IpAddr>,
    /// Only connections with this port at either end.
    #[arg(long)]
    port: Option<u16>,
    /// Only connections to this server: IP, IP:PORT or [IPv6]:PORT.
    #[arg(long, value_parser = parse_server)]
    server: Option<(IpAddr, Option<u16>)>,
    /// Exit with status 1 when some connection did not succeed.
    #[arg(long)]
    check: bool,
    /// Bytes of each direction analysed per connection.
    #[arg(long, default_value_t = 1 << 20, value_name = "BYTES")]
    reassembly_cap: u64,
    /// Replace addresses (prefix-preserving) and names (hashed) in all output, for sharing.
    #[arg(long)]
    redact: bool,
    /// Key for --redact: the same key gives the same mapping (default: random per run).
    #[arg(long, value_name = "KEY", requires = "redact")]
    redact_key: Option<String>,
    /// With --redact, keep SNI and certificate names.
    #[arg(long, requires = "redact")]
    keep_names: bool,
    /// Connections open at once before the least recently active are settled early.
    #[arg(long, default_value_t = 200_000, value_name = "N")]
    max_connections: usize,
    /// No progress output.
    #[arg(long, short = 'q')]
    quiet: bool,
}

/// Compares a capture taken near the client (gateway) with one taken near the server
/// (backend) of the same connections: which packets crossed the path and which vanished.
#[derive(Debug, Parser)]
#[command(name = "tlsdiag compare", bin_name = "tlsdiag compare", version)]
struct CompareCli {
    /// CLIENT_SIDE SERVER_SIDE: two capture files; their sides are inferred (and swapped when
    /// the evidence says so). For several files per side, use --client-side / --server-side.
    #[arg(value_name = "CAPTURE", conflicts_with_all = ["client_side", "server_side"])]
    captures: Vec<String>,
    /// A file of the capture taken near the client (repeat for several files, in order).
    #[arg(long, value_name = "FILE", requires = "server_side")]
    client_side: Vec<String>,
    /// A file of the capture taken near the server (repeat for several files, in order).
    #[arg(long, value_name = "FILE", requires = "client_side")]
    server_side: Vec<String>,
    /// Output format (ndjson: one pair per line).
    #[arg(long, short = 'f', value_enum, default_value = "text")]
    format: FormatArg,
    /// List and explain every pair, not only a few failed ones per verdict.
    #[arg(long)]
    all: bool,
    /// Only connections with this address at either end (on either side).
    #[arg(long)]
    host: Option<IpAddr>,
    /// Only connections with this port at either end (on either side).
    #[arg(long)]
    port: Option<u16>,
    /// Exit with status 1 when some pair did not succeed.
    #[arg(long)]
    check: bool,
}

fn compare_main(args: Vec<std::ffi::OsString>) -> ExitCode {
    let cli = CompareCli::parse_from(args);
    let (client_side, server_side, sides_given) = if cli.client_side.is_empty() {
        if cli.captures.len() != 2 {
            eprintln!(
                "tlsdiag compare: give two captures (CLIENT_SIDE SERVER_SIDE), or --client-side FILE... --server-side FILE..."
            );
            return ExitCode::from(2);
        }
        (
            vec![cli.captures[0].clone()],
            vec![cli.captures[1].clone()],
            false,
        )
    } else {
        (cli.client_side.clone(), cli.server_side.clone(), true)
    };
    let opts = tlsdiag::compare::CompareOptions {
        client_side,
        server_side,
        sides_given,
        analysis: tlsdiag::Options {
            host: cli.host,
            port: cli.port,
            ..Default::default()
        },
    };
    let cmp = match tlsdiag::compare::compare(&opts) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tlsdiag: {e}");
            return ExitCode::from(2);
        }
    };
    let format = format_of(cli.format);
    if let Err(code) = write_stdout(cli.all, true, &mut |o, w| {
        report::compare::render_to(&cmp, format, o, w)
    }) {
        return code;
    }
    if cli.check && cmp.summary.failed > 0 {
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

/// Renders to standard output (colour and width only on a terminal); a closed pipe (`| head`)
/// is not an error, any other write error is status 2.
fn write_stdout(
    all: bool,
    timeline: bool,
    render: &mut dyn FnMut(&RenderOptions, &mut dyn Write) -> std::io::Result<()>,
) -> Result<(), ExitCode> {
    let stdout = std::io::stdout();
    let tty = stdout.is_terminal();
    let opts = RenderOptions {
        all,
        timeline,
        width: if tty { terminal_width() } else { None },
        color: tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        max_problems: 0,
    };
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    match render(&opts, &mut out).and_then(|_| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            eprintln!("tlsdiag: cannot write output: {e}");
            Err(ExitCode::from(2))
        }
        _ => Ok(()),
    }
}

fn format_of(f: FormatArg) -> Format {
    match f {
        FormatArg::Text => Format::Text,
        FormatArg::Json => Format::Json,
        FormatArg::Ndjson => Format::Ndjson,
        FormatArg::Markdown => Format::Markdown,
    }
}

fn parse_server(s: &str) -> Result<(IpAddr, Option<u16>), String> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok((ip, None));
    }
    if let Ok(sa) = s.parse::<std::net::SocketAddr>() {
        return Ok((sa.ip(), Some(sa.port())));
    }
    Err(format!("'{s}' is not IP, IP:PORT or [IPv6]:PORT"))
}

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "compare") {
        return compare_main(args.into_iter().skip(1).collect());
    }
    let cli = Cli::parse_from(args);
    let opts = tlsdiag::Options {
        vantage: cli.vantage.map(|v| match v {
            VantageArg::Client => Side::Client,
            VantageArg::Server => Side::Server,
        }),
        host: cli.host,
        port: cli.port,
        server: cli.server,
        flow: tlsdiag::flow::FlowConfig {
            reassembly_cap: cli.reassembly_cap,
            max_live: cli.max_connections,
            ..Default::default()
        },
        timeline_limit: None,
        memory_records: 0,
        max_servers: 0,
        redact: cli.redact.then(|| tlsdiag::RedactOptions {
            key: cli.redact_key.clone(),
            keep_names: cli.keep_names,
        }),
        trace: false,
    };
    let bar = progress_bar(&cli.inputs, cli.quiet);
    let mut done_before: Vec<u64> = Vec::new();
    let mut on_progress = |file: usize, bytes: u64| {
        if let Some(b) = &bar {
            done_before.resize(file + 1, 0);
            done_before[file] = bytes;
            b.set_position(done_before.iter().sum());
        }
    };
    // NDJSON is the live format: each connection is written the moment it is settled.
    let live = matches!(cli.format, FormatArg::Ndjson);
    let mut live_error: Option<std::io::Error> = None;
    let mut line = Vec::new();
    // Runs on the summarising thread; each line is written whole, at once.
    let mut emit = |c: tlsdiag::model::Connection| {
        if live_error.is_some() {
            return;
        }
        line.clear();
        let written = report::json::connection_line(&c, &mut line).and_then(|_| {
            let mut out = std::io::stdout().lock();
            out.write_all(&line).and_then(|_| out.flush())
        });
        if let Err(e) = written {
            live_error = Some(e);
        }
    };
    let analysed = tlsdiag::analyze_live(
        &cli.inputs,
        &opts,
        &mut on_progress,
        if live { Some(&mut emit) } else { None },
    );
    if let Some(e) = live_error {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("tlsdiag: cannot write output: {e}");
            return ExitCode::from(2);
        }
        return ExitCode::SUCCESS;
    }
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let report = match analysed {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tlsdiag: {e}");
            return ExitCode::from(2);
        }
    };
    let format = format_of(cli.format);
    if let Err(code) = write_stdout(cli.all, cli.timeline, &mut |o, w| {
        report::render_to(&report, format, o, w)
    }) {
        return code;
    }
    if !report.warnings.is_empty() && format != Format::Text && !cli.quiet {
        for w in &report.warnings {
            eprintln!("tlsdiag: warning: {}", tlsdiag::escape::text(w));
        }
    }
    if cli.check && report.summary.failed > 0 {
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

/// A progress bar on stderr for inputs worth waiting for, when stderr is a terminal.
fn progress_bar(inputs: &[String], quiet: bool) -> Option<indicatif::ProgressBar> {
    if quiet || !std::io::stderr().is_terminal() {
        return None;
    }
    let total: u64 = inputs
        .iter()
        .filter(|p| p.as_str() != "-")
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    if total < 64 << 20 {
        return None;
    }
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(total),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
    ) {
        bar.set_style(style);
    }
    Some(bar)
}

fn terminal_width() -> Option<u16> {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .or(Some(120))
}
