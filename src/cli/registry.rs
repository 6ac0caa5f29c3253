//! The Schema Registry flags: where it is and how to authenticate
//! ([`RegistryArgs`], for every command that reads or writes values),
//! and how consumed keys and values are decoded ([`DecodeArgs`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use weir::kafka::secret::Password;
use weir::registry::codec::{Decoding, Format, OnBadInput};
use weir::registry::{Registry, RegistryAuth, RegistryConfig};

use super::usage;

/// The environment variable that holds the registry's password.
const PASSWORD_ENV: &str = "WEIR_REGISTRY_PASSWORD";

/// Where the Schema Registry is, and how requests authenticate.
#[derive(Debug, Default, clap::Args)]
pub struct RegistryArgs {
    /// Schema Registry URL (Confluent's API), e.g. http://127.0.0.1:8081
    /// or https://host/apis/ccompat/v6: values in its wire format are
    /// decoded (and written with --value-schema). Profile key `registry`.
    #[arg(
        long,
        env = "WEIR_REGISTRY",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub registry: Option<String>,

    /// User for HTTP basic authentication to the registry; the password
    /// comes from --registry-password-file or WEIR_REGISTRY_PASSWORD.
    #[arg(
        long,
        env = "WEIR_REGISTRY_USER",
        hide_env_values = true,
        requires = "registry"
    )]
    pub registry_user: Option<String>,

    /// File holding the registry user's password (its first line).
    #[arg(long, value_name = "FILE", requires = "registry_user")]
    pub registry_password_file: Option<PathBuf>,

    /// File holding a bearer token for the registry (its first line, read
    /// once at start).
    #[arg(
        long,
        value_name = "FILE",
        requires = "registry",
        conflicts_with = "registry_user"
    )]
    pub registry_token_file: Option<PathBuf>,

    /// PEM file of the CAs that sign the registry's certificate (https).
    #[arg(long, value_name = "FILE", requires = "registry")]
    pub registry_ca: Option<PathBuf>,
}

impl RegistryArgs {
    /// Takes the profile's `registry` URL when none was given.
    pub fn or_profile(&mut self, url: Option<String>) {
        if self.registry.is_none() {
            self.registry = url;
        }
    }

    /// The registry client, when --registry (or the profile's `registry`,
    /// [`or_profile`](Self::or_profile)) names one; every request within
    /// `timeout`.
    pub fn client(&self, timeout: Duration) -> anyhow::Result<Option<Arc<Registry>>> {
        let Some(url) = self.registry.as_deref() else {
            return Ok(None);
        };
        let auth = match (&self.registry_user, &self.registry_token_file) {
            (Some(user), _) => {
                let password = match &self.registry_password_file {
                    Some(path) => first_line(path, "--registry-password-file")?,
                    None => std::env::var(PASSWORD_ENV).map_err(|_| {
                        usage(format!(
                            "--registry-user needs a password: --registry-password-file FILE or {PASSWORD_ENV}"
                        ))
                    })?,
                };
                RegistryAuth::Basic {
                    user: user.clone(),
                    password: Password::new(password),
                }
            }
            (None, Some(path)) => {
                RegistryAuth::Bearer(Password::new(first_line(path, "--registry-token-file")?))
            }
            (None, None) => RegistryAuth::None,
        };
        let config = RegistryConfig::new(url)
            .with_auth(auth)
            .with_ca_file(self.registry_ca.clone())
            .with_timeout(timeout);
        Ok(Some(Arc::new(Registry::new(&config)?)))
    }
}

fn first_line(path: &PathBuf, flag: &str) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{flag}: cannot read \"{}\"", path.display()))?;
    Ok(text.lines().next().unwrap_or_default().to_owned())
}

/// How consumed keys and values are decoded through the registry.
#[derive(Debug, clap::Args)]
pub struct DecodeArgs {
    #[command(flatten)]
    pub registry: RegistryArgs,

    /// How values are read: raw (bytes as stored), auto (decoded when in
    /// the registry's wire format and --registry is given), avro (always
    /// decoded: anything else is bad input).
    #[arg(long, value_enum, default_value_t = FormatArg::Auto)]
    pub value_format: FormatArg,

    /// How keys are read, as --value-format.
    #[arg(long, value_enum, default_value_t = FormatArg::Auto)]
    pub key_format: FormatArg,

    /// What a key or value that cannot be decoded (unknown schema id,
    /// malformed bytes) does: skip warns in one line (topic, partition,
    /// offset, the bytes in base64) and leaves the record out; fail stops.
    #[arg(long = "on-error", value_enum, default_value_t = OnErrorArg::Skip)]
    pub on_bad_input: OnErrorArg,
}

/// `--value-format`, `--key-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FormatArg {
    /// As stored.
    Raw,
    /// Decoded when framed and a registry is given.
    Auto,
    /// Always Avro through the registry.
    Avro,
}

/// `--on-error` for records that cannot be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnErrorArg {
    /// Warn and leave the record out.
    Skip,
    /// Stop with the error.
    Fail,
}

impl DecodeArgs {
    /// The reader's decoding, when a registry is given and something is
    /// to be decoded.
    pub fn decoding(&self, timeout: Duration) -> anyhow::Result<Option<Arc<Decoding>>> {
        let Some(registry) = self.registry.client(timeout)? else {
            for (flag, f) in [
                ("--value-format", self.value_format),
                ("--key-format", self.key_format),
            ] {
                if f == FormatArg::Avro {
                    return Err(usage(format!("{flag} avro needs --registry URL")));
                }
            }
            return Ok(None);
        };
        let format = |f: FormatArg| match f {
            FormatArg::Raw => Format::Raw,
            FormatArg::Auto => Format::Auto,
            FormatArg::Avro => Format::Avro,
        };
        let decoding = Decoding {
            registry,
            key: format(self.key_format),
            value: format(self.value_format),
            on_error: match self.on_bad_input {
                OnErrorArg::Skip => OnBadInput::Skip,
                OnErrorArg::Fail => OnBadInput::Fail,
            },
        };
        Ok(decoding.active().then(|| Arc::new(decoding)))
    }
}
