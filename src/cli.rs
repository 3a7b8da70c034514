//! The command line as clap reads it, and its translation into the library's options.
//!
//! `tlsdiag FILE...` analyses (no subcommand name needed); `tlsdiag compare ...` compares two
//! captures; `tlsdiag help [compare]` prints help. A capture file literally named `compare` or
//! `help` is given as `./compare`, `./help`. Hands `main` a [`Cli`] and the
//! [`tlsdiag::Options`] / [`CompareOptions`] built from it.

use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use std::net::IpAddr;
use tlsdiag::compare::CompareOptions;
use tlsdiag::model::Side;
use tlsdiag::report::Format;

/// Reads tcpdump captures and says, connection by connection, why TLS handshakes failed.
#[derive(Debug, Parser)]
#[command(
    name = "tlsdiag",
    version,
    about,
    after_help = "Two captures of the same connections (gateway side and backend side): tlsdiag compare --help",
    // `-r FILE` stands for a CAPTURE, which clap's own usage line would show as optional.
    override_usage = "tlsdiag [OPTIONS] <CAPTURE>...\n       tlsdiag [OPTIONS] -r <FILE>...\n       \
                      tlsdiag compare [OPTIONS] <CLIENT_SIDE> <SERVER_SIDE>\n       tlsdiag help [compare]",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub analyse: AnalyseArgs,
    /// Print a man page or a shell completion script to standard output.
    #[arg(long, value_enum, value_name = "WHAT", exclusive = true)]
    pub generate: Option<GenerateArg>,
}

impl Cli {
    /// The command line, or clap's usage message and exit status 2.
    pub fn parse_args() -> Cli {
        Cli::from_matches(&Cli::command().get_matches()).unwrap_or_else(|e| e.exit())
    }

    /// Reads parsed arguments; captures given with `-r` join the positional ones in
    /// command-line order (the order of rotated files matters).
    fn from_matches(m: &ArgMatches) -> Result<Cli, clap::Error> {
        let mut cli = Cli::from_arg_matches(m)?;
        let at = |id: &str| m.indices_of(id).map(Iterator::collect).unwrap_or_default();
        let (read_at, inputs_at): (Vec<usize>, Vec<usize>) = (at("read"), at("inputs"));
        let a = &mut cli.analyse;
        let mut all: Vec<(usize, String)> = read_at.into_iter().zip(a.read.drain(..)).collect();
        all.extend(inputs_at.into_iter().zip(a.inputs.drain(..)));
        all.sort_by_key(|(i, _)| *i);
        a.inputs = all.into_iter().map(|(_, f)| f).collect();
        Ok(cli)
    }
}

/// What `--generate` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GenerateArg {
    Man,
    CompleteBash,
    CompleteZsh,
    CompleteFish,
    CompletePowershell,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Compares a capture taken near the client (gateway) with one taken near the server
    /// (backend) of the same connections: which packets crossed the path and which vanished.
    // `tlsdiag compare --version` says `tlsdiag compare`, as the command is typed.
    #[command(version, display_name = "tlsdiag compare")]
    Compare(CompareArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FormatArg {
    Text,
    Json,
    Ndjson,
    Markdown,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Format {
        match f {
            FormatArg::Text => Format::Text,
            FormatArg::Json => Format::Json,
            FormatArg::Ndjson => Format::Ndjson,
            FormatArg::Markdown => Format::Markdown,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum VantageArg {
    Client,
    Server,
}

/// Analysing one capture (the command without a subcommand).
#[derive(Debug, Args)]
pub struct AnalyseArgs {
    /// Capture files (pcap, pcapng, optionally gzip/zstd); several files are one capture,
    /// merged by packet time; `-` reads standard input.
    #[arg(required_unless_present = "read", value_name = "CAPTURE")]
    pub inputs: Vec<String>,
    /// A capture file, as tcpdump and tshark take it (repeatable; same as a CAPTURE).
    #[arg(short = 'r', value_name = "FILE")]
    pub read: Vec<String>,
    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value = "text")]
    pub format: FormatArg,
    /// List every connection, not only those that did not succeed.
    #[arg(long)]
    pub all: bool,
    /// Print the timeline (ladder) of each listed connection.
    #[arg(long)]
    pub timeline: bool,
    /// Where the capture was taken, overriding the inference.
    #[arg(long, value_enum)]
    pub vantage: Option<VantageArg>,
    /// Only connections with this address at either end.
    #[arg(long)]
    pub host: Option<IpAddr>,
    /// Only connections with this port at either end.
    #[arg(long)]
    pub port: Option<u16>,
    /// Only connections to this server: IP, IP:PORT or [IPv6]:PORT.
    #[arg(long, value_parser = parse_server)]
    pub server: Option<(IpAddr, Option<u16>)>,
    /// TLS key log (SSLKEYLOGFILE, NSS format; repeatable): decrypts the handshake and alerts
    /// of the connections it holds secrets for. A pcapng's Decryption Secrets Block is read
    /// without it.
    #[arg(long, value_name = "FILE")]
    pub keylog: Vec<String>,
    /// Exit with status 1 when some connection did not succeed.
    #[arg(long)]
    pub check: bool,
    /// Bytes of each direction analysed per connection.
    #[arg(long, default_value_t = 1 << 20, value_name = "BYTES", value_parser = at_least_one::<u64>)]
    pub reassembly_cap: u64,
    #[command(flatten)]
    pub redaction: RedactArgs,
    /// Connections open at once before the least recently active are settled early.
    #[arg(long, default_value_t = 200_000, value_name = "N", value_parser = at_least_one::<usize>)]
    pub max_connections: usize,
    /// No progress bar, no warnings on standard error (the report keeps them).
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

impl AnalyseArgs {
    pub fn options(&self) -> tlsdiag::Options {
        tlsdiag::Options {
            vantage: self.vantage.map(|v| match v {
                VantageArg::Client => Side::Client,
                VantageArg::Server => Side::Server,
            }),
            host: self.host,
            port: self.port,
            server: self.server,
            flow: tlsdiag::flow::FlowConfig {
                reassembly_cap: self.reassembly_cap,
                max_live: self.max_connections,
                ..Default::default()
            },
            timeline_limit: None,
            memory_records: 0,
            max_servers: 0,
            redact: self.redaction.options(),
            trace: false,
            key_logs: self.keylog.clone(),
        }
    }
}

/// Comparing two captures of the same connections.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// CLIENT_SIDE SERVER_SIDE: two capture files; their sides are inferred (and swapped when
    /// the evidence says so). For several files per side, use --client-side / --server-side.
    #[arg(value_name = "CAPTURE", conflicts_with_all = ["client_side", "server_side"])]
    pub captures: Vec<String>,
    /// A file of the capture taken near the client (repeat for several files, in order).
    #[arg(long, value_name = "FILE", requires = "server_side")]
    pub client_side: Vec<String>,
    /// A file of the capture taken near the server (repeat for several files, in order).
    #[arg(long, value_name = "FILE", requires = "client_side")]
    pub server_side: Vec<String>,
    /// Output format (ndjson: one pair per line, then a summary line).
    #[arg(long, short = 'f', value_enum, default_value = "text")]
    pub format: FormatArg,
    /// List and explain every pair, not only a few failed ones per verdict.
    #[arg(long)]
    pub all: bool,
    /// Only connections with this address at either end (on either side).
    #[arg(long)]
    pub host: Option<IpAddr>,
    /// Only connections with this port at either end (on either side).
    #[arg(long)]
    pub port: Option<u16>,
    /// TLS key log (NSS format; repeatable), for the connections of both captures.
    #[arg(long, value_name = "FILE")]
    pub keylog: Vec<String>,
    /// Exit with status 1 when some pair did not succeed.
    #[arg(long)]
    pub check: bool,
    #[command(flatten)]
    pub redaction: RedactArgs,
}

impl CompareArgs {
    /// The comparison asked for, or the usage message when the captures are not two.
    pub fn options(&self) -> Result<CompareOptions, &'static str> {
        let (client_side, server_side, sides_given) = if self.client_side.is_empty() {
            let [client, server] = self.captures.as_slice() else {
                return Err("tlsdiag compare: give two captures (CLIENT_SIDE SERVER_SIDE), or --client-side FILE... --server-side FILE...");
            };
            (vec![client.clone()], vec![server.clone()], false)
        } else {
            (self.client_side.clone(), self.server_side.clone(), true)
        };
        Ok(CompareOptions {
            client_side,
            server_side,
            sides_given,
            analysis: tlsdiag::Options {
                host: self.host,
                port: self.port,
                redact: self.redaction.options(),
                key_logs: self.keylog.clone(),
                ..Default::default()
            },
        })
    }
}

/// A count where 0 would mean nothing (no bytes analysed, no connection kept open).
fn at_least_one<T: std::str::FromStr + From<u8> + PartialOrd>(s: &str) -> Result<T, String> {
    match s.parse::<T>() {
        Ok(n) if n >= T::from(1) => Ok(n),
        Ok(_) => Err("must be at least 1".into()),
        Err(_) => Err(format!("'{s}' is not a whole number")),
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

/// Redaction, the same for both commands.
#[derive(Debug, Args)]
pub struct RedactArgs {
    /// Replace addresses (prefix-preserving, private ranges kept private; one mapping for both
    /// sides of compare), names (hashed) and file paths in all output, for sharing.
    #[arg(long)]
    pub redact: bool,
    /// Key for --redact: the same key gives the same mapping (default: random per run).
    #[arg(long, value_name = "KEY", requires = "redact")]
    pub redact_key: Option<String>,
    /// With --redact, keep SNI and certificate names.
    #[arg(long, requires = "redact")]
    pub keep_names: bool,
}

impl RedactArgs {
    fn options(&self) -> Option<tlsdiag::RedactOptions> {
        self.redact.then(|| tlsdiag::RedactOptions {
            key: self.redact_key.clone(),
            keep_names: self.keep_names,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        let args = std::iter::once("tlsdiag").chain(args.iter().copied());
        Cli::from_matches(&Cli::command().try_get_matches_from(args)?)
    }

    #[test]
    fn definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn files_alone_analyse() {
        let cli = parse(&["-q", "a.pcap", "b.pcap"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.analyse.inputs, ["a.pcap", "b.pcap"]);
    }

    #[test]
    fn compare_is_a_subcommand() {
        let cli = parse(&["compare", "--format", "json", "c.pcap", "s.pcap"]).unwrap();
        let Some(Command::Compare(args)) = cli.command else {
            panic!("not compare: {cli:?}");
        };
        let o = args.options().unwrap();
        assert_eq!(
            (o.client_side, o.server_side),
            (vec!["c.pcap".into()], vec!["s.pcap".into()])
        );
        assert!(!o.sides_given);
    }

    #[test]
    fn a_file_named_compare_after_a_capture_is_a_capture() {
        let cli = parse(&["a.pcap", "compare"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.analyse.inputs, ["a.pcap", "compare"]);
        let cli = parse(&["./compare"]).unwrap();
        assert_eq!(cli.analyse.inputs, ["./compare"]);
    }

    #[test]
    fn help_is_a_subcommand_and_a_file_named_help_is_given_as_a_path() {
        let e = parse(&["help"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::DisplayHelp);
        let e = parse(&["help", "compare"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::DisplayHelp);
        assert!(e.to_string().contains("--client-side"), "{e}");
        assert_eq!(parse(&["./help"]).unwrap().analyse.inputs, ["./help"]);
    }

    #[test]
    fn read_flag_files_join_the_captures_in_command_line_order() {
        let cli = parse(&["-r", "a.pcap", "b.pcap", "-r", "c.pcap", "d.pcap"]).unwrap();
        assert_eq!(cli.analyse.inputs, ["a.pcap", "b.pcap", "c.pcap", "d.pcap"]);
        let cli = parse(&["-q", "-r", "-"]).unwrap();
        assert_eq!(cli.analyse.inputs, ["-"]);
    }

    #[test]
    fn zero_is_refused_where_it_means_nothing() {
        for flag in ["--max-connections", "--reassembly-cap"] {
            let e = parse(&[flag, "0", "a.pcap"]).unwrap_err();
            assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation, "{flag}");
            assert!(parse(&[flag, "1", "a.pcap"]).is_ok(), "{flag}");
        }
    }

    #[test]
    fn generate_needs_no_capture_and_takes_no_other_argument() {
        let cli = parse(&["--generate", "complete-bash"]).unwrap();
        assert_eq!(cli.generate, Some(GenerateArg::CompleteBash));
        assert!(parse(&["--generate", "man", "a.pcap"]).is_err());
    }

    #[test]
    fn no_capture_is_a_usage_error() {
        assert!(parse(&[]).is_err());
    }

    #[test]
    fn compare_wants_two_captures() {
        let cli = parse(&["compare", "only.pcap"]).unwrap();
        let Some(Command::Compare(args)) = cli.command else {
            panic!("not compare");
        };
        assert!(args.options().is_err());
    }

    #[test]
    fn server_filter_takes_an_optional_port() {
        let v6 = parse_server("[2001:db8::1]:8443").unwrap();
        assert_eq!(v6, ("2001:db8::1".parse().unwrap(), Some(8443)));
        assert_eq!(parse_server("10.0.0.1").unwrap().1, None);
        assert!(parse_server("host:443").is_err());
    }
}
