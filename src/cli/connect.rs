//! Connection flags shared by every subcommand.

use std::path::PathBuf;
use std::time::Duration;

use weir::kafka::connect::{
    ClientAuth, ConnectionConfig, DEFAULT_CLIENT_ID, Password, SaslMechanism, SaslOptions,
    TlsOptions,
};

use super::usage;

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
        requires = "tls_key",
        global = true
    )]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of the client certificate (needs --tls-cert).
    #[arg(
        long,
        env = "WEIR_TLS_KEY",
        hide_env_values = true,
        value_name = "FILE",
        requires = "tls_cert",
        global = true
    )]
    pub tls_key: Option<PathBuf>,

    /// SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512. The password
    /// comes from WEIR_SASL_PASSWORD or --sasl-password-file, never a flag.
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
    /// Validates the flags into a [`ConnectionConfig`].
    ///
    /// # Errors
    ///
    /// A usage error naming the flag at fault.
    pub fn to_config(&self) -> anyhow::Result<ConnectionConfig> {
        let brokers: Vec<String> = self
            .brokers
            .split(',')
            .map(str::trim)
            .filter(|b| !b.is_empty())
            .map(str::to_owned)
            .collect();
        if brokers.is_empty() {
            return Err(usage("--brokers: no broker given"));
        }
        for b in &brokers {
            match b.rsplit_once(':') {
                Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {}
                _ => {
                    return Err(usage(format!(
                        "--brokers: \"{b}\" is not host:port (e.g. 127.0.0.1:9092)"
                    )));
                }
            }
        }
        if self.timeout.is_zero() {
            return Err(usage("--timeout must be greater than zero"));
        }

        let tls =
            (self.tls || self.tls_ca.is_some() || self.tls_cert.is_some()).then(|| TlsOptions {
                ca_file: self.tls_ca.clone(),
                client_auth: match (&self.tls_cert, &self.tls_key) {
                    (Some(cert), Some(key)) => Some(ClientAuth {
                        cert_file: cert.clone(),
                        key_file: key.clone(),
                    }),
                    _ => None,
                },
            });

        let sasl = match (&self.sasl_mechanism, &self.sasl_username) {
            (None, None) => None,
            (None, Some(_)) => {
                return Err(usage("--sasl-username needs --sasl-mechanism"));
            }
            (Some(_), None) => {
                return Err(usage("--sasl-mechanism needs --sasl-username"));
            }
            (Some(mechanism), Some(username)) => {
                let mechanism: SaslMechanism = mechanism
                    .parse()
                    .map_err(|e| usage(format!("--sasl-mechanism: {e}")))?;
                Some(SaslOptions {
                    mechanism,
                    username: username.clone(),
                    password: self.password()?,
                })
            }
        };

        Ok(ConnectionConfig {
            brokers,
            client_id: self.client_id.clone(),
            timeout: self.timeout,
            tls,
            sasl,
        })
    }

    fn password(&self) -> anyhow::Result<Password> {
        if let Some(path) = &self.sasl_password_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                usage(format!(
                    "--sasl-password-file: cannot read \"{}\": {e}",
                    path.display()
                ))
            })?;
            let line = text.lines().next().unwrap_or_default();
            return Ok(Password::new(line));
        }
        match std::env::var(PASSWORD_ENV) {
            Ok(p) => Ok(Password::new(p)),
            Err(_) => Err(usage(format!(
                "SASL needs a password: set {PASSWORD_ENV} or pass --sasl-password-file"
            ))),
        }
    }
}
