//! Connection flags shared by every subcommand, and where each setting in
//! force came from: a flag, the environment, the selected profile or
//! weir's default. Their validation into a `ConnectionConfig` is
//! `effective`'s.

use std::path::PathBuf;
use std::time::Duration;

use weir::kafka::connect::{DEFAULT_CLIENT_ID, TokenSource};
use weir::kafka::profile::{self, ConfigFile, Profile};

use super::usage;

mod effective;

pub use effective::{Effective, Secret};

/// Environment variable that holds the SASL password.
pub const PASSWORD_ENV: &str = "WEIR_SASL_PASSWORD";

/// How to reach the cluster.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Connection")]
pub struct ConnectArgs {
    /// Bootstrap brokers, host:port, comma-separated.
    #[arg(short, long, env = "WEIR_BROKERS", hide_env_values = true, default_value = weir::kafka::connect::DEFAULT_BROKERS, global = true)]
    pub brokers: String,

    /// Client id sent to the brokers.
    #[arg(long, env = "WEIR_CLIENT_ID", hide_env_values = true, default_value = DEFAULT_CLIENT_ID, global = true)]
    pub client_id: String,

    /// Deadline for connecting and for retries (e.g. 500ms, 30s, 2m).
    #[arg(long, env = "WEIR_TIMEOUT", hide_env_values = true, default_value = "30s", value_parser = parse_duration, allow_hyphen_values = true, global = true)]
    pub timeout: Duration,

    /// Connect with TLS (trusting the CA roots compiled into weir unless
    /// --tls-ca is given). WEIR_TLS takes 1/0, true/false, yes/no, on/off.
    #[arg(long, env = "WEIR_TLS", hide_env_values = true, action = clap::ArgAction::SetTrue, value_parser = super::boolish, global = true)]
    pub tls: bool,

    /// PEM file with the CA certificates to trust (implies --tls).
    #[arg(
        long,
        env = "WEIR_TLS_CA",
        hide_env_values = true,
        value_name = "FILE",
        global = true
    )]
    pub tls_ca: Option<PathBuf>,

    /// PEM client certificate for mutual TLS (implies --tls; needs --tls-key).
    #[arg(
        long,
        env = "WEIR_TLS_CERT",
        hide_env_values = true,
        value_name = "FILE",
        global = true
    )]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of the client certificate (needs --tls-cert).
    #[arg(
        long,
        env = "WEIR_TLS_KEY",
        hide_env_values = true,
        value_name = "FILE",
        global = true
    )]
    pub tls_key: Option<PathBuf>,

    /// Accept a broker certificate that does not name the host weir
    /// connects to (Kafka's ssl.endpoint.identification.algorithm=, empty):
    /// its chain, dates and key usage are still checked. For brokers
    /// reached by an IP address or through a tunnel; not a fix for a wrong
    /// certificate.
    #[arg(long, env = "WEIR_TLS_SKIP_HOSTNAME_CHECK", hide_env_values = true, action = clap::ArgAction::SetTrue, value_parser = super::boolish, global = true)]
    pub tls_skip_hostname_check: bool,

    /// SASL mechanism: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER.
    /// The password comes from WEIR_SASL_PASSWORD or --sasl-password-file,
    /// never a flag; OAUTHBEARER's token from --sasl-token-file or
    /// --sasl-token-command (either implies OAUTHBEARER).
    #[arg(
        long,
        env = "WEIR_SASL_MECHANISM",
        hide_env_values = true,
        value_name = "MECHANISM",
        global = true
    )]
    pub sasl_mechanism: Option<String>,

    /// SASL user name.
    #[arg(
        long,
        env = "WEIR_SASL_USERNAME",
        hide_env_values = true,
        value_name = "NAME",
        global = true
    )]
    pub sasl_username: Option<String>,

    /// File whose first line is the SASL password.
    #[arg(
        long,
        env = "WEIR_SASL_PASSWORD_FILE",
        hide_env_values = true,
        value_name = "FILE",
        global = true
    )]
    pub sasl_password_file: Option<PathBuf>,

    /// File holding the OAUTHBEARER token (a JWT), read again for every
    /// new connection, so a rotated token is picked up.
    #[arg(
        long,
        env = "WEIR_SASL_TOKEN_FILE",
        hide_env_values = true,
        value_name = "FILE",
        global = true
    )]
    pub sasl_token_file: Option<PathBuf>,

    /// Shell command printing the OAUTHBEARER token; run again when 80% of
    /// the token's lifetime (its exp claim) has passed.
    #[arg(
        long,
        env = "WEIR_SASL_TOKEN_COMMAND",
        hide_env_values = true,
        value_name = "COMMAND",
        conflicts_with = "sasl_token_file",
        global = true
    )]
    pub sasl_token_command: Option<String>,

    /// Config file with named cluster profiles [default:
    /// $XDG_CONFIG_HOME/weir/config.toml, else ~/.config/weir/config.toml].
    /// (`--config` is `topics create`'s topic setting, as in kafka-topics.)
    #[arg(
        long = "config-file",
        env = "WEIR_CONFIG",
        hide_env_values = true,
        value_name = "FILE",
        global = true
    )]
    pub config: Option<PathBuf>,

    /// Cluster profile from the config file; flags and environment
    /// variables override its settings.
    #[arg(
        long,
        env = "WEIR_PROFILE",
        hide_env_values = true,
        value_name = "NAME",
        global = true
    )]
    pub profile: Option<String>,

    /// Where each setting given came from (filled from clap's matches).
    #[arg(skip)]
    pub given: Given,
}

/// Where a connection setting came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The command line.
    Flag,
    /// This environment variable.
    Env(String),
    /// The selected profile.
    Profile,
    /// weir's default.
    Default,
}

/// The connection settings given on the command line or in the
/// environment, by argument id, with where each came from: those
/// override the profile's.
#[derive(Debug, Clone, Default)]
pub struct Given(Vec<(String, Origin)>);

impl Given {
    /// Reads the sources of the connection arguments from clap's matches.
    pub fn from_matches(matches: &clap::ArgMatches, command: &clap::Command) -> Self {
        let mut given = Vec::new();
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            let origin = match matches
                .try_get_raw(id)
                .ok()
                .flatten()
                .and(matches.value_source(id))
            {
                Some(clap::parser::ValueSource::CommandLine) => Origin::Flag,
                Some(clap::parser::ValueSource::EnvVariable) => Origin::Env(
                    arg.get_env()
                        .map(|v| v.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                ),
                _ => continue,
            };
            given.push((id.to_owned(), origin));
        }
        Self(given)
    }

    fn get(&self, id: &str) -> Option<&Origin> {
        self.0.iter().find(|(i, _)| i == id).map(|(_, o)| o)
    }
}

/// Parses durations such as `3s`, `500ms`, `2m`. Flags that take one set
/// `allow_hyphen_values`, so that `-3s` reaches this and is refused as
/// negative rather than read as a flag.
///
/// # Errors
///
/// A negative duration, or text that is not one.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    if let Some(magnitude) = s.strip_prefix('-') {
        if humantime::parse_duration(magnitude).is_ok() {
            return Err("a duration cannot be negative".to_owned());
        }
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("not a duration such as 500ms, 30s or 2m ({e})"))
}

impl ConnectArgs {
    /// The `(value, origin)` of a setting: the argument's when given on
    /// the command line or in the environment, else the profile's, else
    /// the argument's default.
    fn pick<T>(&self, id: &str, arg: Option<T>, profile: Option<T>) -> Option<(T, Origin)> {
        match self.given.get(id) {
            Some(origin) => arg.map(|v| (v, origin.clone())),
            None => profile
                .map(|v| (v, Origin::Profile))
                .or_else(|| arg.map(|v| (v, Origin::Default))),
        }
    }

    /// The config file and profile asked for, loaded.
    fn load_profile(&self) -> anyhow::Result<(Option<ConfigFile>, Option<Profile>)> {
        let path = match (&self.config, &self.profile) {
            (Some(path), _) => path.clone(),
            (None, None) => return Ok((None, None)),
            (None, Some(name)) => match profile::default_path() {
                Some(path) if path.exists() => path,
                Some(path) => {
                    return Err(usage(format!(
                        "--profile {name}: there is no config file \"{}\" (--config-file names another)",
                        path.display()
                    )));
                }
                None => {
                    return Err(usage(format!(
                        "--profile {name}: neither XDG_CONFIG_HOME nor HOME is set to find the config file (use --config-file)"
                    )));
                }
            },
        };
        let file =
            ConfigFile::load(&path).map_err(|e| usage(format!("{:#}", anyhow::Error::new(e))))?;
        if file.exposes_secrets() {
            tracing::warn!(
                "config file \"{}\" holds a password or token and others than its owner can read it (mode {:04o}): chmod 600 it",
                file.path.display(),
                file.mode
            );
        }
        let profile = match &self.profile {
            Some(name) => Some(
                file.profile(name)
                    .map_err(|e| usage(e.to_string()))?
                    .clone(),
            ),
            None => None,
        };
        Ok((Some(file), profile))
    }

    /// The settings in force and where each came from.
    ///
    /// # Errors
    ///
    /// A config file that cannot be read or parsed, an unknown profile, or
    /// a profile's timeout that is not a duration: usage errors.
    pub fn effective(&self) -> anyhow::Result<Effective> {
        let (file, profile) = self.load_profile()?;
        let p = profile.clone().unwrap_or_default();
        let in_profile = |key: &str| {
            format!(
                "profile \"{}\" in \"{}\": {key}",
                p.name,
                file.as_ref()
                    .map(|f| f.path.display().to_string())
                    .unwrap_or_default()
            )
        };
        let profile_timeout = match &p.timeout {
            Some(t) => Some(
                parse_duration(t).map_err(|e| usage(format!("{}: {e}", in_profile("timeout"))))?,
            ),
            None => None,
        };
        let split = |b: &str| -> Vec<String> {
            b.split(',')
                .map(str::trim)
                .filter(|b| !b.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let password = match (
            self.given.get("sasl_password_file"),
            std::env::var(PASSWORD_ENV),
        ) {
            (Some(origin), _) => self
                .sasl_password_file
                .clone()
                .map(|f| (Secret::File(f), origin.clone())),
            (None, Ok(_)) => Some((Secret::Env, Origin::Env(PASSWORD_ENV.to_owned()))),
            (None, Err(_)) => p
                .sasl_password_file
                .clone()
                .map(Secret::File)
                .or_else(|| p.sasl_password.clone().map(Secret::Inline))
                .map(|s| (s, Origin::Profile)),
        };
        let token = match (
            self.given.get("sasl_token_file"),
            self.given.get("sasl_token_command"),
        ) {
            (Some(origin), _) => self
                .sasl_token_file
                .clone()
                .map(|f| (TokenSource::File(f), origin.clone())),
            (None, Some(origin)) => self
                .sasl_token_command
                .clone()
                .map(|c| (TokenSource::Command(c), origin.clone())),
            (None, None) => p
                .sasl_token_file
                .clone()
                .map(TokenSource::File)
                .or_else(|| p.sasl_token_command.clone().map(TokenSource::Command))
                .or_else(|| p.sasl_token.clone().map(TokenSource::Fixed))
                .map(|t| (t, Origin::Profile)),
        };
        let profile_name = self.profile.clone().map(|name| {
            let origin = self
                .given
                .get("profile")
                .cloned()
                .unwrap_or(Origin::Default);
            (name, origin)
        });
        Ok(Effective {
            profile: profile_name,
            brokers: self
                .pick("brokers", Some(split(&self.brokers)), p.brokers.clone())
                .expect("--brokers has a default"),
            client_id: self
                .pick(
                    "client_id",
                    Some(self.client_id.clone()),
                    p.client_id.clone(),
                )
                .expect("--client-id has a default"),
            timeout: self
                .pick("timeout", Some(self.timeout), profile_timeout)
                .expect("--timeout has a default"),
            tls: self
                .pick("tls", Some(self.tls), p.tls)
                .expect("--tls has a default"),
            tls_ca: self.pick("tls_ca", self.tls_ca.clone(), p.tls_ca.clone()),
            tls_cert: self.pick("tls_cert", self.tls_cert.clone(), p.tls_cert.clone()),
            tls_key: self.pick("tls_key", self.tls_key.clone(), p.tls_key.clone()),
            tls_skip_hostname_check: self
                .pick(
                    "tls_skip_hostname_check",
                    Some(self.tls_skip_hostname_check),
                    p.tls_skip_hostname_check,
                )
                .expect("--tls-skip-hostname-check has a default"),
            sasl_mechanism: self.pick(
                "sasl_mechanism",
                self.sasl_mechanism.clone(),
                p.sasl_mechanism.clone(),
            ),
            sasl_username: self.pick(
                "sasl_username",
                self.sasl_username.clone(),
                p.sasl_username.clone(),
            ),
            password,
            token,
            registry: p.registry.clone(),
            file,
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, FromArgMatches};
    use weir::kafka::connect::SaslMechanism;

    use super::*;
    use crate::cli::Cli;

    fn effective(args: &[&str]) -> anyhow::Result<Effective> {
        let command = Cli::command();
        let matches = command.clone().try_get_matches_from(args)?;
        let mut cli = Cli::from_arg_matches(&matches)?;
        cli.connect.given = Given::from_matches(&matches, &command);
        cli.connect.effective()
    }

    #[test]
    fn flags_override_the_profile_setting_by_setting() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "[profiles.p]\nbrokers = \"k:1\"\ntimeout = \"5s\"\nsasl-token-file = \"t\"\n",
        )
        .unwrap();
        let file = file.to_str().unwrap();
        let e = effective(&[
            "weir",
            "--config-file",
            file,
            "--profile",
            "p",
            "topics",
            "list",
        ])
        .unwrap();
        assert_eq!(e.brokers, (vec!["k:1".to_owned()], Origin::Profile));
        assert_eq!(e.timeout, (Duration::from_secs(5), Origin::Profile));
        assert_eq!(e.client_id.1, Origin::Default);
        assert!(
            matches!(&e.token, Some((TokenSource::File(f), Origin::Profile)) if f == &dir.path().join("t"))
        );
        let config = e.to_config().unwrap();
        assert_eq!(config.sasl.unwrap().mechanism(), SaslMechanism::OAuthBearer);

        // After the subcommand too (the flags are global).
        let e = effective(&[
            "weir",
            "topics",
            "list",
            "--config-file",
            file,
            "--profile",
            "p",
            "-b",
            "x:2",
            "--timeout",
            "1s",
        ])
        .unwrap();
        assert_eq!(e.brokers, (vec!["x:2".to_owned()], Origin::Flag));
        assert_eq!(e.timeout, (Duration::from_secs(1), Origin::Flag));

        // Without --profile, the file is read but no profile is used.
        let e = effective(&["weir", "--config-file", file, "topics", "list"]).unwrap();
        assert_eq!(e.brokers.1, Origin::Default);
        assert!(e.token.is_none());

        // A token flag with a password mechanism is a usage error.
        let e = effective(&[
            "weir",
            "--sasl-mechanism",
            "PLAIN",
            "--sasl-username",
            "u",
            "--sasl-token-file",
            "t",
            "topics",
            "list",
        ])
        .unwrap();
        let err = e.to_config().unwrap_err().to_string();
        assert_eq!(err, "--sasl-token-file is for OAUTHBEARER, not PLAIN");
    }
}
