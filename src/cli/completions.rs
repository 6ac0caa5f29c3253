//! `weir completions SHELL` and `weir manpage`: both made at run time from
//! the clap definitions, so they always match the binary they come from.

use std::io::Write;

use anyhow::Context;
use clap::CommandFactory;
use clap_complete::Shell;

use super::Cli;

/// Arguments of `weir completions`.
#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Writes the completion script for `args.shell` to stdout.
///
/// # Errors
///
/// Writing to stdout failed.
pub fn completions(args: &CompletionsArgs) -> anyhow::Result<()> {
    // Made in memory first: clap_complete panics on a failed write, and
    // weir aborts on a panic; a closed stdout must stay a quiet success.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "weir", &mut script);
    write_out(&script)
}

/// Writes the man page (roff) to stdout.
///
/// # Errors
///
/// Writing to stdout failed.
pub fn manpage() -> anyhow::Result<()> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut page)
        .context("rendering the man page")?;
    write_out(&page)
}

fn write_out(bytes: &[u8]) -> anyhow::Result<()> {
    let mut out = super::stdout();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .context("writing to stdout")
}
