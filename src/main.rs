//! tlsdiag command line: flags -> options -> analyze (or compare) -> render -> exit status;
//! `--generate` prints the man page or a completion script instead (src/generate.rs).
//! Exit status: 0 analysed; 1 with `--check` when some connection failed; 2 bad usage or an
//! unreadable input. Only this binary prints.

mod cli;
mod generate;

use cli::{AnalyseArgs, Cli, Command, CompareArgs, FormatArg};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use tlsdiag::report::{self, Format, RenderOptions};

/// `--check` found a connection (or pair) that did not succeed.
const CHECK_FAILED: u8 = 1;
/// Bad usage, an unreadable input, or output that could not be written.
const TROUBLE: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse_args();
    if let Some(what) = cli.generate {
        return write_stdout(false, false, &mut |_, w| generate::generate(what, w))
            .err()
            .unwrap_or(ExitCode::SUCCESS);
    }
    match &cli.command {
        Some(Command::Compare(args)) => compare(args),
        None => analyse(&cli.analyse),
    }
}

fn compare(args: &CompareArgs) -> ExitCode {
    let opts = match args.options() {
        Ok(o) => o,
        Err(usage) => {
            eprintln!("{usage}");
            return ExitCode::from(TROUBLE);
        }
    };
    let cmp = match tlsdiag::compare::compare(&opts) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tlsdiag: {e}");
            return ExitCode::from(TROUBLE);
        }
    };
    let format = Format::from(args.format);
    if let Err(code) = write_stdout(args.all, true, &mut |o, w| {
        report::compare::render_to(&cmp, format, o, w)
    }) {
        return code;
    }
    check_status(args.check && cmp.summary.failed > 0)
}

fn analyse(args: &AnalyseArgs) -> ExitCode {
    let report = match read(args) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let format = Format::from(args.format);
    if let Err(code) = write_stdout(args.all, args.timeline, &mut |o, w| {
        report::render_to(&report, format, o, w)
    }) {
        return code;
    }
    if !report.warnings.is_empty() && format != Format::Text && !args.quiet {
        for w in &report.warnings {
            eprintln!("tlsdiag: warning: {}", tlsdiag::escape::text(w));
        }
    }
    check_status(args.check && report.summary.failed > 0)
}

fn check_status(failed: bool) -> ExitCode {
    if failed {
        ExitCode::from(CHECK_FAILED)
    } else {
        ExitCode::SUCCESS
    }
}

/// Analyses the captures, with a progress bar on a terminal; with NDJSON each connection is
/// written the moment it is settled. `Err` is the exit status when the run ends here (an
/// unreadable input, or the live output's reader went away).
fn read(args: &AnalyseArgs) -> Result<tlsdiag::Report, ExitCode> {
    let opts = args.options();
    let bar = progress_bar(&args.inputs, args.quiet);
    let mut done_before: Vec<u64> = Vec::new();
    let mut on_progress = |file: usize, bytes: u64| {
        if let Some(b) = &bar {
            done_before.resize(file + 1, 0);
            done_before[file] = bytes;
            b.set_position(done_before.iter().sum());
        }
    };
    // NDJSON is the live format: each connection is written the moment it is settled.
    let mut live = LiveLines::default();
    let mut emit = |c: tlsdiag::model::Connection| live.emit(&c);
    let live_emit: Option<&mut (dyn FnMut(tlsdiag::model::Connection) + Send)> =
        matches!(args.format, FormatArg::Ndjson).then_some(&mut emit);
    let analysed = tlsdiag::analyze_live(&args.inputs, &opts, &mut on_progress, live_emit);
    if let Some(e) = live.error {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("tlsdiag: cannot write output: {e}");
            return Err(ExitCode::from(TROUBLE));
        }
        return Err(ExitCode::SUCCESS);
    }
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    analysed.map_err(|e| {
        eprintln!("tlsdiag: {e}");
        ExitCode::from(TROUBLE)
    })
}

/// Connections written to standard output as NDJSON lines while the analysis runs; the first
/// write error stops the writing.
#[derive(Default)]
struct LiveLines {
    line: Vec<u8>,
    error: Option<std::io::Error>,
}

impl LiveLines {
    /// Runs on the summarising thread; each line is written whole, at once.
    fn emit(&mut self, c: &tlsdiag::model::Connection) {
        if self.error.is_some() {
            return;
        }
        self.line.clear();
        let written = report::json::connection_line(c, &mut self.line).and_then(|_| {
            let mut out = std::io::stdout().lock();
            out.write_all(&self.line).and_then(|_| out.flush())
        });
        if let Err(e) = written {
            self.error = Some(e);
        }
    }
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
            Err(ExitCode::from(TROUBLE))
        }
        _ => Ok(()),
    }
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

/// The width of the terminal standard output writes to; `$COLUMNS` overrides it (shells do not
/// export it, so when set it is the user's choice); 120 when neither says.
fn terminal_width() -> Option<u16> {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .filter(|w: &u16| *w > 0)
        .or_else(|| terminal_size::terminal_size_of(std::io::stdout()).map(|(w, _)| w.0))
        .or(Some(120))
}
