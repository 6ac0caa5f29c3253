//! The config file and its named cluster profiles.
//!
//! ```toml
//! [profiles.prod]
//! brokers = ["kafka-1.example.com:9093", "kafka-2.example.com:9093"]
//! tls-ca = "certs/ca.pem"          # relative to the config file
//! sasl-mechanism = "SCRAM-SHA-512"
//! sasl-username = "alice"
//! sasl-password-file = "~/.secrets/kafka-prod"
//! ```
//!
//! A profile's keys are the connection flags' names. The file is TOML,
//! parsed by the `toml` crate into its spanned tables (`DeTable`: every key
//! and value with its byte range in the file, no serde). A key's range gives
//! the line that a message about its setting names; a syntax error comes
//! with the range toml found it at. A setting of the wrong kind (a float, a
//! date, an inline table where a string belongs) is refused with its line.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};

use crate::kafka::security::Password;

/// Default location of the config file below `$XDG_CONFIG_HOME` (or
/// `~/.config`), as the XDG base directory specification puts it.
pub const CONFIG_FILE: &str = "weir/config.toml";

/// The config file weir reads when none is named:
/// `$XDG_CONFIG_HOME/weir/config.toml`, else `~/.config/weir/config.toml`.
/// `None` when neither variable is set.
pub fn default_path() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").filter(|v| !v.is_empty())?).join(".config"),
    };
    Some(base.join(CONFIG_FILE))
}

/// A config file that could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// The file could not be read.
    #[error("cannot read the config file \"{}\"", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not TOML, or not a config file.
    #[error("config file \"{}\", line {line}: {message}", .path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The line at fault, from 1.
        line: usize,
        /// What is wrong there.
        message: String,
    },
    /// No profile of that name.
    #[error("no profile \"{name}\" in the config file \"{}\" ({})", .path.display(), known_profiles(.known))]
    UnknownProfile {
        /// The profile asked for.
        name: String,
        /// The file.
        path: PathBuf,
        /// The profiles it has.
        known: Vec<String>,
    },
}

fn known_profiles(known: &[String]) -> String {
    if known.is_empty() {
        "it has none".to_owned()
    } else {
        format!("it has: {}", known.join(", "))
    }
}

/// A parsed config file.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// Its profiles by name.
    pub profiles: BTreeMap<String, Profile>,
    /// Its permission bits (`st_mode & 0o777`).
    pub mode: u32,
}

/// One named cluster: the connection settings it sets. Paths are
/// absolute, resolved against the config file's folder and `~`.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Profile {
    /// The profile's name.
    pub name: String,
    /// `brokers`: bootstrap brokers, `host:port`.
    pub brokers: Option<Vec<String>>,
    /// `client-id`.
    pub client_id: Option<String>,
    /// `timeout`, as written (`30s`).
    pub timeout: Option<String>,
    /// `tls`.
    pub tls: Option<bool>,
    /// `tls-ca`.
    pub tls_ca: Option<PathBuf>,
    /// `tls-cert`.
    pub tls_cert: Option<PathBuf>,
    /// `tls-key`.
    pub tls_key: Option<PathBuf>,
    /// `tls-skip-hostname-check`.
    pub tls_skip_hostname_check: Option<bool>,
    /// `sasl-mechanism`, as written.
    pub sasl_mechanism: Option<String>,
    /// `sasl-username`.
    pub sasl_username: Option<String>,
    /// `sasl-password-file`.
    pub sasl_password_file: Option<PathBuf>,
    /// `sasl-password`: a secret in the file itself.
    pub sasl_password: Option<Password>,
    /// `sasl-token-file`.
    pub sasl_token_file: Option<PathBuf>,
    /// `sasl-token-command`.
    pub sasl_token_command: Option<String>,
    /// `sasl-token`: a secret in the file itself.
    pub sasl_token: Option<Password>,
    /// `registry`: the Schema Registry's URL (`--registry`).
    pub registry: Option<String>,
}

impl Profile {
    /// Whether the profile holds a password or token itself.
    pub fn holds_secret(&self) -> bool {
        self.sasl_password.is_some() || self.sasl_token.is_some()
    }
}

impl ConfigFile {
    /// Reads and parses `path`.
    ///
    /// # Errors
    ///
    /// The file cannot be read, is not TOML, or has a key or table a
    /// config file does not have: [`ProfileError`] naming the file and
    /// the line.
    pub fn load(path: &Path) -> Result<Self, ProfileError> {
        let read = |source| ProfileError::Read {
            path: path.to_owned(),
            source,
        };
        let text = std::fs::read_to_string(path).map_err(read)?;
        let mode = {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::metadata(path).map_err(read)?.permissions().mode() & 0o777
        };
        Self::parse(path, &text, mode)
    }

    /// Parses `text` as the config file at `path` with permissions `mode`.
    ///
    /// # Errors
    ///
    /// As [`ConfigFile::load`].
    pub fn parse(path: &Path, text: &str, mode: u32) -> Result<Self, ProfileError> {
        // `at`: a byte offset into `text`, made a line here.
        let error = |at: usize, message| ProfileError::Parse {
            path: path.to_owned(),
            line: line_of(text, at),
            message,
        };
        let root = DeTable::parse(text)
            .map_err(|e| {
                let (at, message) = syntax_error(text, &e);
                error(at, message)
            })?
            .into_inner();
        let folder = path.parent().unwrap_or(Path::new("."));
        let mut profiles = BTreeMap::new();
        for (key, entry) in root {
            let at = key.span().start;
            let key = key.get_ref();
            let DeValue::Table(table) = entry.into_inner() else {
                return Err(error(
                    at,
                    format!("\"{key}\" is not a config setting (profiles go in [profiles.NAME])"),
                ));
            };
            if key != "profiles" {
                return Err(error(
                    at,
                    format!("unknown table [{key}] (profiles go in [profiles.NAME])"),
                ));
            }
            for (name, entry) in table {
                let at = name.span().start;
                let name = name.into_inner().into_owned();
                let DeValue::Table(settings) = entry.into_inner() else {
                    return Err(error(
                        at,
                        format!("profiles.{name} must be a table: [profiles.{name}]"),
                    ));
                };
                let profile = read_profile(&name, settings, folder)
                    .map_err(|(at, message)| error(at, message))?;
                profiles.insert(name, profile);
            }
        }
        Ok(Self {
            path: path.to_owned(),
            profiles,
            mode,
        })
    }

    /// The profile called `name`.
    ///
    /// # Errors
    ///
    /// [`ProfileError::UnknownProfile`], listing the profiles there are.
    pub fn profile(&self, name: &str) -> Result<&Profile, ProfileError> {
        self.profiles
            .get(name)
            .ok_or_else(|| ProfileError::UnknownProfile {
                name: name.to_owned(),
                path: self.path.clone(),
                known: self.profiles.keys().cloned().collect(),
            })
    }

    /// Whether the file holds a password or token and others than its
    /// owner may read it: the caller warns.
    pub fn exposes_secrets(&self) -> bool {
        self.mode & 0o077 != 0 && self.profiles.values().any(Profile::holds_secret)
    }
}

/// A setting refused: the byte offset of its key, and why.
type Refusal = (usize, String);

fn read_profile(name: &str, settings: DeTable<'_>, folder: &Path) -> Result<Profile, Refusal> {
    let mut profile = Profile {
        name: name.to_owned(),
        ..Profile::default()
    };
    for (key, value) in settings {
        let at = key.span().start;
        let key = key.get_ref();
        let string = |value: DeValue<'_>| match value {
            DeValue::String(s) => Ok(s.into_owned()),
            other => Err((at, format!("{key} must be a string, not {}", kind(&other)))),
        };
        let path = |value: DeValue<'_>| string(value).map(|s| resolve(folder, &s));
        let value = value.into_inner();
        match key.as_ref() {
            "brokers" => {
                profile.brokers = Some(match value {
                    DeValue::String(s) => s
                        .split(',')
                        .map(str::trim)
                        .filter(|b| !b.is_empty())
                        .map(str::to_owned)
                        .collect(),
                    DeValue::Array(items) => items
                        .into_iter()
                        .map(|item| string(item.into_inner()))
                        .collect::<Result<Vec<_>, _>>()?,
                    other => {
                        return Err((
                            at,
                            format!(
                                "brokers must be a string or an array of strings, not {}",
                                kind(&other)
                            ),
                        ));
                    }
                });
            }
            "client-id" => profile.client_id = Some(string(value)?),
            "timeout" => profile.timeout = Some(string(value)?),
            "tls" => match value {
                DeValue::Boolean(b) => profile.tls = Some(b),
                other => {
                    return Err((
                        at,
                        format!("tls must be true or false, not {}", kind(&other)),
                    ));
                }
            },
            "tls-ca" => profile.tls_ca = Some(path(value)?),
            "tls-cert" => profile.tls_cert = Some(path(value)?),
            "tls-key" => profile.tls_key = Some(path(value)?),
            "tls-skip-hostname-check" => match value {
                DeValue::Boolean(b) => profile.tls_skip_hostname_check = Some(b),
                other => {
                    return Err((
                        at,
                        format!(
                            "tls-skip-hostname-check must be true or false, not {}",
                            kind(&other)
                        ),
                    ));
                }
            },
            "sasl-mechanism" => profile.sasl_mechanism = Some(string(value)?),
            "sasl-username" => profile.sasl_username = Some(string(value)?),
            "sasl-password-file" => profile.sasl_password_file = Some(path(value)?),
            "sasl-password" => profile.sasl_password = Some(Password::new(string(value)?)),
            "sasl-token-file" => profile.sasl_token_file = Some(path(value)?),
            "sasl-token-command" => profile.sasl_token_command = Some(string(value)?),
            "sasl-token" => profile.sasl_token = Some(Password::new(string(value)?)),
            "registry" => profile.registry = Some(string(value)?),
            _ => {
                return Err((
                    at,
                    format!("unknown setting \"{key}\" in profile \"{name}\""),
                ));
            }
        }
    }
    Ok(profile)
}

/// The kind of a TOML value, for messages: "a string".
fn kind(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date or time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// The line of byte offset `at` in `text`, from 1.
fn line_of(text: &str, at: usize) -> usize {
    let before = &text.as_bytes()[..at.min(text.len())];
    memchr::memchr_iter(b'\n', before).count() + 1
}

/// Where a syntax error is (a byte offset) and what it says: toml's
/// message, with the text it points at when that is short and on one line
/// (`duplicate key (at "brokers")`). toml's own rendering (its `Display`)
/// spans several lines and quotes the whole line at fault, a password's
/// too; weir's errors are one line.
fn syntax_error(text: &str, e: &toml::de::Error) -> (usize, String) {
    // Without a place (only toml's nesting limit): the end of the file.
    let Some(span) = e.span() else {
        return (text.len(), e.message().to_owned());
    };
    let message = match found(text, span.clone()) {
        Some(found) => format!("{} (at {found:?})", e.message()),
        None => e.message().to_owned(),
    };
    (span.start, message)
}

/// The text of `span`, if it is a short piece of one line: a duplicated
/// key, a string without quotes, a character out of place.
fn found(text: &str, span: Range<usize>) -> Option<&str> {
    let found = text.get(span)?;
    (!found.is_empty() && found.len() <= 40 && !found.contains(['\n', '\r'])).then_some(found)
}

/// `~/x` below `$HOME`, a relative path below the config file's folder.
fn resolve(folder: &Path, path: &str) -> PathBuf {
    if let Some(rest) = path.strip_prefix("~/") {
        if let Some(home) = std::env::var_os("HOME") {
            return PathBuf::from(home).join(rest);
        }
    }
    folder.join(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
# Two clusters.
[profiles.prod]
brokers = [
  "k1:9093",  # the first
  "k2:9093",
]
tls-ca = "certs/ca.pem"
sasl-mechanism = "SCRAM-SHA-512"
sasl-username = "alice"
sasl-password-file = "/run/secrets/kafka"

[profiles."dev box"]
brokers = "127.0.0.1:9092, 127.0.0.1:9093"
tls = false
timeout = '5s'
sasl-token = "a.b."
"#;

    #[test]
    fn profiles_are_read_with_paths_resolved() {
        let file = ConfigFile::parse(Path::new("/etc/weir/config.toml"), EXAMPLE, 0o600).unwrap();
        let prod = file.profile("prod").unwrap();
        assert_eq!(
            prod.brokers.as_deref(),
            Some(&["k1:9093".to_owned(), "k2:9093".to_owned()][..])
        );
        assert_eq!(
            prod.tls_ca.as_deref(),
            Some(Path::new("/etc/weir/certs/ca.pem"))
        );
        assert_eq!(prod.sasl_username.as_deref(), Some("alice"));
        assert!(!prod.holds_secret());
        let dev = file.profile("dev box").unwrap();
        assert_eq!(dev.brokers.as_ref().unwrap().len(), 2);
        assert_eq!(dev.tls, Some(false));
        assert_eq!(dev.timeout.as_deref(), Some("5s"));
        assert!(dev.holds_secret());
        assert!(!file.exposes_secrets());
        let open = ConfigFile::parse(Path::new("c.toml"), EXAMPLE, 0o644).unwrap();
        assert!(open.exposes_secrets());

        let err = file.profile("staging").unwrap_err().to_string();
        assert_eq!(
            err,
            "no profile \"staging\" in the config file \"/etc/weir/config.toml\" (it has: dev box, prod)"
        );
    }

    #[test]
    fn mistakes_name_the_file_and_line() {
        let at = |text: &str| {
            ConfigFile::parse(Path::new("/c.toml"), text, 0o600)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            at("[profiles.a]\nbrokers = \"x:1\"\nsasl-pasword = \"p\"\n"),
            "config file \"/c.toml\", line 3: unknown setting \"sasl-pasword\" in profile \"a\""
        );
        assert!(
            at("[profiles.a]\ntls = \"yes\"\n")
                .contains("line 2: tls must be true or false, not a string")
        );
        assert!(
            at("[profiles.a]\ntls-skip-hostname-check = 1\n")
                .contains("line 2: tls-skip-hostname-check must be true or false, not an integer")
        );
        let file = ConfigFile::parse(
            Path::new("/c.toml"),
            "[profiles.a]\ntls-skip-hostname-check = true\n",
            0o600,
        )
        .unwrap();
        assert_eq!(
            file.profile("a").unwrap().tls_skip_hostname_check,
            Some(true)
        );
        assert!(at("[server]\n").contains("line 1: unknown table [server]"));
        assert!(
            at("[profiles.a]\nbrokers = \"x:1\n").starts_with("config file \"/c.toml\", line 2:")
        );
    }

    fn error(text: &str) -> String {
        ConfigFile::parse(Path::new("/c.toml"), text, 0o600)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn syntax_errors_name_the_line_and_what_is_there() {
        // toml's words, with the key it points at: the line alone would not
        // say which of two keys on it is the duplicate.
        let duplicate = error("[profiles.a]\n  brokers = \"x\"\n  brokers = \"y\"\n");
        assert!(
            duplicate.starts_with("config file \"/c.toml\", line 3: ")
                && duplicate.contains("(at \"brokers\")"),
            "{duplicate}"
        );
        let table = error("[profiles.a]\ntls = true\n\n[profiles.a]\n");
        assert!(
            table.contains("line 4: ") && table.contains("(at \"a\")"),
            "{table}"
        );
        // A point between characters has nothing to quote.
        let unclosed = error("[profiles.a]\nbrokers = \"x:1\n");
        assert!(!unclosed.contains("(at"), "{unclosed}");
        // Lines are counted in bytes past multi-byte characters, and CRLF
        // ends a line as LF does.
        assert!(
            error("# é ü\r\n[profiles.a]\r\nx = 1\r\n").contains("line 3: unknown setting \"x\"")
        );
        let missing_comma = "[profiles.a]\nbrokers = [\n  \"a\",\n  \"b\"\n  \"c\"]\n";
        let lf = error(missing_comma);
        assert!(lf.contains("line 5: "), "{lf}");
        assert_eq!(error(&missing_comma.replace('\n', "\r\n")), lf);
    }

    #[test]
    fn a_value_toml_has_but_a_setting_does_not_is_refused_with_its_line() {
        assert!(
            error("[profiles.a]\n\ntimeout = 1.5\n")
                .contains("line 3: timeout must be a string, not a float")
        );
        assert!(
            error("[profiles.a]\nclient-id = 1979-05-27\n")
                .contains("line 2: client-id must be a string, not a date or time")
        );
        assert!(
            error("[profiles.a]\nbrokers = { a = \"x:1\" }\n")
                .contains("line 2: brokers must be a string or an array of strings, not a table")
        );
        assert!(
            error("[profiles.a]\nbrokers = [\n  \"x:1\",\n  9092,\n]\n")
                .contains("line 2: brokers must be a string, not an integer")
        );
        assert!(
            error("[[profiles.a]]\nbrokers = \"x:1\"\n")
                .contains("line 1: profiles.a must be a table: [profiles.a]")
        );
        assert!(
            error("\nbrokers = \"x:1\"\n").contains("line 2: \"brokers\" is not a config setting")
        );
        // A setting inside an inline table has its own key's line.
        assert!(
            error("[profiles]\na = { brokers = \"x:1\",\n      tls = \"no\" }\n")
                .contains("line 3: tls must be true or false, not a string")
        );
    }

    #[test]
    fn any_toml_spelling_of_a_profile_is_read() {
        let text = "[profiles]\n\
                    a.brokers = ['k:1', \"k\\u003a2\"]\n\
                    b = { client-id = \"\"\"\nme\"\"\", tls = true }\n\
                    [profiles.'c d']\n\
                    tls-ca = 'C:\\ca.pem'\n";
        let file = ConfigFile::parse(Path::new("/etc/c.toml"), text, 0o600).unwrap();
        assert_eq!(
            file.profile("a").unwrap().brokers.as_deref(),
            Some(&["k:1".to_owned(), "k:2".to_owned()][..])
        );
        let b = file.profile("b").unwrap();
        assert_eq!(b.client_id.as_deref(), Some("me"));
        assert_eq!(b.tls, Some(true));
        assert_eq!(
            file.profile("c d").unwrap().tls_ca.as_deref(),
            Some(Path::new("/etc/C:\\ca.pem"))
        );
    }

    #[test]
    fn only_a_short_piece_of_one_line_is_quoted() {
        assert_eq!(found("a = b\n", 4..5), Some("b"));
        assert_eq!(found("a = b\n", 4..4), None);
        assert_eq!(found("a = b\nc", 4..7), None);
        assert_eq!(found(&"x".repeat(41), 0..41), None);
        // Not on a character boundary, or past the end: nothing, not a panic.
        assert_eq!(found("é", 1..2), None);
        assert_eq!(found("a", 0..5), None);
        assert_eq!(line_of("a\nb", 99), 2);
    }
}
