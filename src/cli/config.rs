//! `weir config show`: the connection settings in force, where each came
//! from, with secrets masked.

use std::io::Write as _;

use super::connect::{ConnectArgs, Effective, Origin, Secret};
use weir::kafka::connect::TokenSource;

/// `weir config`.
#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub command: ConfigCommand,
}

/// The config subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// Print the connection settings in force (flags, environment,
    /// profile, defaults) and where each came from; secrets are masked.
    /// Settings every command would refuse then exit 2 with its message.
    Show,
}

/// Runs `weir config`.
///
/// # Errors
///
/// A config file or profile that cannot be used, or settings every
/// command would refuse (usage errors, as the commands report them), or a
/// failed write to stdout.
pub fn run(args: ConfigArgs, connect: &ConnectArgs) -> anyhow::Result<()> {
    match args.command {
        ConfigCommand::Show => {
            let effective = connect.effective()?;
            let mut out = super::stdout();
            out.write_all(show(&effective).as_bytes())?;
            out.flush()?;
            // What every command would refuse is refused here too, after
            // the table that shows where the setting at fault came from.
            effective.to_config()?;
            Ok(())
        }
    }
}

/// The settings as `name  value  (origin)` lines.
fn show(e: &Effective) -> String {
    let origin = |o: &Origin| match o {
        Origin::Flag => "flag".to_owned(),
        Origin::Env(var) => format!("env {var}"),
        Origin::Profile => match &e.profile {
            Some((name, _)) => format!("profile {name}"),
            None => "profile".to_owned(),
        },
        Origin::Default => "default".to_owned(),
    };
    let mut rows: Vec<(&str, String, String)> = Vec::new();
    if let Some(file) = &e.file {
        rows.push(("config", file.path.display().to_string(), String::new()));
    }
    if let Some((name, o)) = &e.profile {
        rows.push(("profile", name.clone(), origin(o)));
    }
    rows.push(("brokers", e.brokers.0.join(","), origin(&e.brokers.1)));
    rows.push(("client-id", e.client_id.0.clone(), origin(&e.client_id.1)));
    rows.push((
        "timeout",
        humantime::format_duration(e.timeout.0).to_string(),
        origin(&e.timeout.1),
    ));
    // --tls-ca and --tls-cert imply --tls, a token OAUTHBEARER: shown as
    // in force, not as the switch was left.
    let implied_tls = [("tls-ca", &e.tls_ca), ("tls-cert", &e.tls_cert)]
        .into_iter()
        .find_map(|(name, set)| set.as_ref().map(|_| name));
    match implied_tls {
        Some(by) if !e.tls.0 => rows.push(("tls", "true".to_owned(), format!("implied by {by}"))),
        _ => rows.push(("tls", e.tls.0.to_string(), origin(&e.tls.1))),
    }
    if e.tls_skip_hostname_check.0 {
        rows.push((
            "tls-skip-hostname-check",
            "true".to_owned(),
            origin(&e.tls_skip_hostname_check.1),
        ));
    }
    for (name, value) in [
        ("tls-ca", &e.tls_ca),
        ("tls-cert", &e.tls_cert),
        ("tls-key", &e.tls_key),
    ] {
        if let Some((path, o)) = value {
            rows.push((name, path.display().to_string(), origin(o)));
        }
    }
    match (&e.sasl_mechanism, &e.token) {
        (Some((m, o)), _) => rows.push(("sasl-mechanism", m.clone(), origin(o))),
        (None, Some(_)) => rows.push((
            "sasl-mechanism",
            "OAUTHBEARER".to_owned(),
            "implied by the token".to_owned(),
        )),
        (None, None) => {}
    }
    if let Some((u, o)) = &e.sasl_username {
        rows.push(("sasl-username", u.clone(), origin(o)));
    }
    if let Some((secret, o)) = &e.password {
        let (name, value) = match secret {
            Secret::File(path) => ("sasl-password-file", path.display().to_string()),
            Secret::Env | Secret::Inline(_) => ("sasl-password", "********".to_owned()),
        };
        rows.push((name, value, origin(o)));
    }
    if let Some((source, o)) = &e.token {
        let (name, value) = match source {
            TokenSource::File(path) => ("sasl-token-file", path.display().to_string()),
            TokenSource::Command(command) => ("sasl-token-command", command.clone()),
            _ => ("sasl-token", "********".to_owned()),
        };
        rows.push((name, value, origin(o)));
    }
    let width = rows.iter().map(|(n, _, _)| n.len()).max().unwrap_or(0);
    let mut text = String::new();
    for (name, value, o) in rows {
        let line = if o.is_empty() {
            format!("{name:width$}  {value}")
        } else {
            format!("{name:width$}  {value}  ({o})")
        };
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}
