//! `weir completions SHELL` and `weir manpage`: both made at run time from
//! the clap definitions, so they always match the binary they come from.
//! The man page is one page: weir's own options, then a section per
//! subcommand (nested ones too) with its synopsis, description, options
//! and examples.

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
    let page = render_manpage().context("rendering the man page")?;
    write_out(&page)
}

/// The whole man page: clap_mangen's page of `weir` without its list of
/// `weir-SUB(1)` pages (which no command writes), and in its place a
/// section per subcommand, each subcommand's sections one level down.
fn render_manpage() -> std::io::Result<Vec<u8>> {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let man = clap_mangen::Man::new(cmd.clone());
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    man.render_options_section(&mut page)?;
    let subcommands = subcommands(&cmd, "weir");
    page.extend_from_slice(b".SH SUBCOMMANDS\n");
    for (path, sub) in &subcommands {
        let about = sub.get_about().map(ToString::to_string).unwrap_or_default();
        let about = about.lines().map(roff_text).collect::<Vec<_>>().join("\n");
        page.extend_from_slice(format!(".TP\n\\fB{}\\fR\n{about}\n", roff_text(path)).as_bytes());
    }
    for (path, sub) in subcommands {
        page.extend_from_slice(format!(".SH \"{}\"\n", roff_text(&path.to_uppercase())).as_bytes());
        // weir's own options are listed once, above.
        let sub = sub.mut_args(|a| match a.is_global_set() || is_help(&a) {
            true => a.hide(true),
            false => a,
        });
        let man = clap_mangen::Man::new(sub.clone());
        let mut section = Vec::new();
        man.render_synopsis_section(&mut section)?;
        man.render_description_section(&mut section)?;
        if sub.get_arguments().any(|a| !a.is_hide_set()) {
            man.render_options_section(&mut section)?;
        }
        if sub.get_after_help().is_some() {
            man.render_extra_section(&mut section)?;
        }
        page.extend_from_slice(&one_level_down(&section));
    }
    if cmd.get_after_help().is_some() {
        man.render_extra_section(&mut page)?;
    }
    man.render_version_section(&mut page)?;
    Ok(page)
}

/// Every visible subcommand under `cmd`, depth first, with its path
/// (`weir topics create`).
fn subcommands(cmd: &clap::Command, path: &str) -> Vec<(String, clap::Command)> {
    let mut out = Vec::new();
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() || sub.get_name() == "help" {
            continue;
        }
        let sub_path = format!("{path} {}", sub.get_name());
        out.push((sub_path.clone(), sub.clone()));
        out.extend(subcommands(sub, &sub_path));
    }
    out
}

fn is_help(arg: &clap::Arg) -> bool {
    matches!(arg.get_id().as_str(), "help" | "version")
}

/// Sections (`.SH`) made subsections (`.SS`): a subcommand's synopsis,
/// options and examples sit under its own section.
fn one_level_down(roff: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(roff);
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        match line.strip_prefix(".SH ") {
            // clap_mangen's name for the text after the options, which is
            // each subcommand's examples.
            Some("EXTRA\n") => out.push_str(".SS EXAMPLES\n"),
            Some(rest) => {
                out.push_str(".SS ");
                out.push_str(rest);
            }
            None => out.push_str(line),
        }
    }
    out.into_bytes()
}

/// Text as roff prints it: backslashes and hyphens escaped, a leading
/// control character defused.
fn roff_text(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    match escaped.starts_with(['.', '\'']) {
        true => format!("\\&{escaped}"),
        false => escaped,
    }
}

fn write_out(bytes: &[u8]) -> anyhow::Result<()> {
    let mut out = super::stdout();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .context("writing to stdout")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lines of the page from `heading` to the next section.
    fn section<'a>(page: &'a str, heading: &str) -> &'a str {
        let start = page
            .find(&format!("\n{heading}\n"))
            .unwrap_or_else(|| panic!("no {heading}"));
        let rest = &page[start + 1..];
        let end = rest[1..].find("\n.SH ").map_or(rest.len(), |e| e + 1);
        &rest[..end]
    }

    #[test]
    fn the_man_page_covers_every_subcommand_and_its_flags() {
        let page = String::from_utf8(render_manpage().unwrap()).unwrap();
        let mut cmd = Cli::command();
        cmd.build();
        let subs = subcommands(&cmd, "weir");
        for path in [
            "weir consume",
            "weir agg",
            "weir topics create",
            "weir offsets set",
        ] {
            assert!(subs.iter().any(|(p, _)| p == path), "{path}");
        }
        for (path, sub) in &subs {
            let heading = format!(".SH \"{}\"", roff_text(&path.to_uppercase()));
            let text = section(&page, &heading);
            for arg in sub.get_arguments() {
                if arg.is_hide_set() || arg.is_global_set() || is_help(arg) {
                    continue;
                }
                let name = match (arg.get_long(), arg.get_short(), arg.get_value_names()) {
                    (Some(long), _, _) => format!("\\-\\-{}", long.replace('-', "\\-")),
                    (None, Some(short), _) => format!("\\-{short}"),
                    (None, None, Some(names)) => names[0].to_string(),
                    (None, None, None) => arg.get_id().to_string().to_uppercase(),
                };
                assert!(text.contains(&name), "{path}: {name} missing:\n{text}");
            }
        }
        // weir's own options, once.
        assert!(section(&page, ".SH CONNECTION").contains("\\-\\-brokers"));
        assert!(!section(&page, ".SH \"WEIR CONSUME\"").contains("\\-\\-brokers"));
        // No other page is referred to: none is made.
        assert!(!page.contains("(1)"), "a reference to another page");
    }
}
