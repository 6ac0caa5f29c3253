//! The connection settings in force, each with where it came from, and
//! their validation into a [`ConnectionConfig`]: messages name the flag,
//! variable or profile setting at fault.

use std::path::PathBuf;
use std::time::Duration;

use weir::kafka::connect::{
    BearerToken, ClientAuth, ConnectionConfig, Password, SaslAuth, SaslMechanism, SaslOptions,
    TlsOptions, TokenSource,
};
use weir::kafka::profile::ConfigFile;

use super::{Origin, PASSWORD_ENV};
use crate::cli::usage;

/// The connection settings in force, each with where it came from:
/// flags, then environment variables, then the profile, then defaults.
#[derive(Debug)]
pub struct Effective {
    /// The config file read, if any.
    pub file: Option<ConfigFile>,
    /// The profile selected, if any.
    pub profile: Option<(String, Origin)>,
    /// Bootstrap brokers.
    pub brokers: (Vec<String>, Origin),
    /// Client id.
    pub client_id: (String, Origin),
    /// Deadline.
    pub timeout: (Duration, Origin),
    /// TLS asked for.
    pub tls: (bool, Origin),
    /// CA file.
    pub tls_ca: Option<(PathBuf, Origin)>,
    /// Client certificate.
    pub tls_cert: Option<(PathBuf, Origin)>,
    /// Client key.
    pub tls_key: Option<(PathBuf, Origin)>,
    /// Broker certificates need not name the host.
    pub tls_skip_hostname_check: (bool, Origin),
    /// SASL mechanism, as written.
    pub sasl_mechanism: Option<(String, Origin)>,
    /// SASL user.
    pub sasl_username: Option<(String, Origin)>,
    /// Where the password is.
    pub password: Option<(Secret, Origin)>,
    /// Where the OAUTHBEARER token is.
    pub token: Option<(TokenSource, Origin)>,
    /// The profile's Schema Registry URL (`registry`), for commands whose
    /// `--registry` is not given.
    pub registry: Option<String>,
}

/// Where a password comes from.
#[derive(Debug, Clone)]
pub enum Secret {
    /// The first line of a file.
    File(PathBuf),
    /// `WEIR_SASL_PASSWORD`.
    Env,
    /// The config file itself.
    Inline(Password),
}

impl Effective {
    /// How a setting is named in a message: `--brokers`, the environment
    /// variable it came from, or the profile's key with the profile and
    /// file.
    fn name(&self, flag: &str, origin: &Origin) -> String {
        match (origin, &self.profile, &self.file) {
            (Origin::Profile, Some((name, _)), Some(file)) => format!(
                "profile \"{name}\" in \"{}\": {}",
                file.path.display(),
                flag.trim_start_matches('-')
            ),
            (Origin::Env(var), _, _) if !var.is_empty() => var.clone(),
            _ => flag.to_owned(),
        }
    }

    /// How the password's source is named in a message.
    fn password_name(&self, secret: &Secret, origin: &Origin) -> String {
        match secret {
            Secret::File(_) => self.name("--sasl-password-file", origin),
            Secret::Env => PASSWORD_ENV.to_owned(),
            Secret::Inline(_) => self.name("sasl-password", origin),
        }
    }

    /// Validates the settings into a [`ConnectionConfig`].
    ///
    /// # Errors
    ///
    /// A usage error naming the setting at fault.
    pub fn to_config(&self) -> anyhow::Result<ConnectionConfig> {
        let (brokers, origin) = &self.brokers;
        let name = self.name("--brokers", origin);
        if brokers.is_empty() {
            return Err(usage(format!("{name}: no broker given")));
        }
        for b in brokers {
            match b.rsplit_once(':') {
                Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {}
                _ => {
                    return Err(usage(format!(
                        "{name}: \"{b}\" is not host:port (e.g. 127.0.0.1:9092)"
                    )));
                }
            }
        }
        if self.timeout.0.is_zero() {
            return Err(usage(format!(
                "{} must be greater than zero",
                self.name("--timeout", &self.timeout.1)
            )));
        }

        let client_auth = match (&self.tls_cert, &self.tls_key) {
            (Some((cert, _)), Some((key, _))) => Some(ClientAuth {
                cert_file: cert.clone(),
                key_file: key.clone(),
            }),
            (Some((_, origin)), None) => {
                return Err(usage(format!(
                    "{} needs --tls-key",
                    self.name("--tls-cert", origin)
                )));
            }
            (None, Some((_, origin))) => {
                return Err(usage(format!(
                    "{} needs --tls-cert",
                    self.name("--tls-key", origin)
                )));
            }
            (None, None) => None,
        };
        let tls = (self.tls.0 || self.tls_ca.is_some() || client_auth.is_some()).then(|| {
            let mut tls =
                TlsOptions::default().with_skip_hostname_check(self.tls_skip_hostname_check.0);
            tls.ca_file = self.tls_ca.as_ref().map(|(f, _)| f.clone());
            tls.client_auth = client_auth;
            tls
        });

        let mut config = ConnectionConfig::new(brokers.iter().cloned())
            .with_client_id(self.client_id.0.clone())
            .with_timeout(self.timeout.0);
        config.tls = tls;
        config.sasl = self.sasl()?;
        Ok(config)
    }

    fn mechanism(&self) -> anyhow::Result<Option<(SaslMechanism, Origin)>> {
        match &self.sasl_mechanism {
            Some((m, origin)) => {
                let mechanism = m.parse().map_err(|e| {
                    usage(format!("{}: {e}", self.name("--sasl-mechanism", origin)))
                })?;
                Ok(Some((mechanism, origin.clone())))
            }
            // A token says which mechanism it is for.
            None => Ok(self
                .token
                .as_ref()
                .map(|(_, origin)| (SaslMechanism::OAuthBearer, origin.clone()))),
        }
    }

    fn sasl(&self) -> anyhow::Result<Option<SaslAuth>> {
        let explicit = |origin: &Origin| *origin != Origin::Profile;
        let Some((mechanism, _)) = self.mechanism()? else {
            // A user or password without a mechanism would be dropped
            // silently, and the client would connect without SASL.
            if let Some((_, origin)) = &self.sasl_username {
                return Err(usage(format!(
                    "{} needs --sasl-mechanism",
                    self.name("--sasl-username", origin)
                )));
            }
            return match &self.password {
                Some((secret, origin)) => Err(usage(format!(
                    "{} needs --sasl-mechanism",
                    self.password_name(secret, origin)
                ))),
                None => Ok(None),
            };
        };
        if mechanism == SaslMechanism::OAuthBearer {
            if let Some((_, origin)) = self.sasl_username.as_ref().filter(|(_, o)| explicit(o)) {
                return Err(usage(format!(
                    "{} is not used with OAUTHBEARER: the token names the principal",
                    self.name("--sasl-username", origin)
                )));
            }
            if let Some((secret, origin)) = self.password.as_ref().filter(|(_, o)| explicit(o)) {
                return Err(usage(format!(
                    "{} is not used with OAUTHBEARER: the token is the credential",
                    self.password_name(secret, origin)
                )));
            }
            return match &self.token {
                Some((source, _)) => Ok(Some(SaslAuth::OAuthBearer(BearerToken::new(
                    source.clone(),
                )))),
                None => Err(usage(
                    "OAUTHBEARER needs a token: --sasl-token-file or --sasl-token-command",
                )),
            };
        }
        if let Some((source, origin)) = self.token.as_ref().filter(|(_, o)| explicit(o)) {
            let flag = match (source, origin) {
                (_, Origin::Env(var)) => var.as_str(),
                (TokenSource::Command(_), _) => "--sasl-token-command",
                _ => "--sasl-token-file",
            };
            return Err(usage(format!("{flag} is for OAUTHBEARER, not {mechanism}")));
        }
        let Some((username, _)) = &self.sasl_username else {
            return Err(usage(format!(
                "--sasl-mechanism {mechanism} needs --sasl-username"
            )));
        };
        Ok(Some(SaslAuth::Password(SaslOptions {
            mechanism,
            username: username.clone(),
            password: self.password()?,
        })))
    }

    /// The password; an empty one is refused as a missing one is, before
    /// the broker is asked (it would only say the login failed).
    fn password(&self) -> anyhow::Result<Password> {
        let Some((secret, origin)) = &self.password else {
            return Err(usage(format!(
                "SASL needs a password: set {PASSWORD_ENV} or pass --sasl-password-file"
            )));
        };
        let password = match secret {
            Secret::File(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    usage(format!(
                        "{}: cannot read \"{}\": {e}",
                        self.name("--sasl-password-file", origin),
                        path.display()
                    ))
                })?;
                let line = text.lines().next().unwrap_or_default();
                if line.is_empty() {
                    return Err(usage(format!(
                        "{}: the first line of \"{}\" is empty: SASL needs a password",
                        self.name("--sasl-password-file", origin),
                        path.display()
                    )));
                }
                Password::new(line)
            }
            Secret::Env => Password::new(std::env::var(PASSWORD_ENV).unwrap_or_default()),
            Secret::Inline(password) => password.clone(),
        };
        if password.expose().is_empty() {
            return Err(usage(format!(
                "{} is empty: SASL needs a password",
                self.password_name(secret, origin)
            )));
        }
        Ok(password)
    }
}
