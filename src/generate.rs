//! `--generate`: the man page and the shell completion scripts, written from the command line's
//! own definition (src/cli.rs) so they never drift from `--help`.

use crate::cli::{Cli, GenerateArg};
use clap::CommandFactory;
use clap_complete::Shell;
use std::io::{self, Write};

/// Writes what `what` names to `w`.
pub fn generate(what: GenerateArg, w: &mut dyn Write) -> io::Result<()> {
    let mut cmd = Cli::command();
    let shell = match what {
        GenerateArg::Man => return man(cmd, w),
        GenerateArg::CompleteBash => Shell::Bash,
        GenerateArg::CompleteZsh => Shell::Zsh,
        GenerateArg::CompleteFish => Shell::Fish,
        GenerateArg::CompletePowershell => Shell::PowerShell,
    };
    clap_complete::generate(shell, &mut cmd, "tlsdiag", w);
    Ok(())
}

/// One page, tlsdiag(1): the analysis command's sections, then `compare`'s synopsis,
/// description and options as subsections of a COMPARE section.
fn man(mut cmd: clap::Command, w: &mut dyn Write) -> io::Result<()> {
    cmd.build();
    let page = clap_mangen::Man::new(cmd.clone());
    page.render_title(w)?;
    page.render_name_section(w)?;
    page.render_synopsis_section(w)?;
    page.render_description_section(w)?;
    page.render_options_section(w)?;
    if let Some(compare) = cmd.find_subcommand("compare") {
        let sub = clap_mangen::Man::new(compare.clone());
        let mut roff = Vec::new();
        sub.render_synopsis_section(&mut roff)?;
        sub.render_description_section(&mut roff)?;
        sub.render_options_section(&mut roff)?;
        writeln!(w, ".SH COMPARE")?;
        w.write_all(&demote_sections(&String::from_utf8_lossy(&roff), "compare").into_bytes())?;
    }
    page.render_extra_section(w)?;
    page.render_version_section(w)
}

/// Turns each `.SH NAME` of a sub-page into `.SS "<prefix> NAME"` (lowercase) so it nests.
fn demote_sections(roff: &str, prefix: &str) -> String {
    let mut out = String::with_capacity(roff.len());
    for line in roff.lines() {
        match line.strip_prefix(".SH ") {
            Some(name) => {
                let name = name.trim_matches('"').to_lowercase();
                out.push_str(&format!(".SS \"{prefix} {name}\"\n"));
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_page_sections_become_subsections() {
        let got = demote_sections(".SH SYNOPSIS\n\\fBx\\fR\n.SH \"OPTIONS\"\n", "compare");
        assert_eq!(
            got,
            ".SS \"compare synopsis\"\n\\fBx\\fR\n.SS \"compare options\"\n"
        );
    }
}
