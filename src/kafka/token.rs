//! Bearer tokens for SASL OAUTHBEARER (RFC 7628, Kafka's KIP-255): where
//! a token comes from, when it is fetched again, and the client's one
//! message.
//!
//! A token file is read again for every new connection, so a token that
//! its issuer rotates in place (a Kubernetes projected service account
//! token) is picked up without a restart. A token command's output is
//! kept until 80 % of its lifetime (from `iat`, or from when it was
//! fetched, to `exp`) has passed, as the Java client refreshes
//! (`sasl.login.refresh.window.factor`), then the command runs again.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;

use crate::kafka::secret::Password;

/// Share of a token's lifetime after which a command's token is fetched
/// again: the Java client's `sasl.login.refresh.window.factor` default.
const REFRESH_FACTOR: f64 = 0.8;

/// Where OAUTHBEARER tokens come from. Clones share one cache.
#[derive(Clone)]
pub struct BearerToken {
    source: TokenSource,
    cache: Arc<tokio::sync::Mutex<Option<Cached>>>,
}

/// The origin of a bearer token.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum TokenSource {
    /// A file holding the token, read for every connection.
    File(PathBuf),
    /// A shell command (`sh -c`) printing the token on stdout, run again
    /// when the token it gave is 80 % through its lifetime.
    Command(String),
    /// A token given as it is (from a config file).
    Fixed(Password),
}

impl fmt::Display for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => write!(f, "token file \"{}\"", path.display()),
            Self::Command(command) => write!(f, "token command \"{command}\""),
            Self::Fixed(_) => f.write_str("the configured token"),
        }
    }
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerToken")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

struct Cached {
    token: Token,
    refresh_at: SystemTime,
}

/// A token and what weir could read of it.
#[derive(Clone)]
pub struct Token {
    text: Password,
    /// The JWT's `exp`, when it is a JWT that has one.
    pub expires: Option<SystemTime>,
    /// The JWT's `iat`.
    pub issued: Option<SystemTime>,
    /// The JWT's `sub`: the principal the broker will see.
    pub subject: Option<String>,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("expires", &self.expires)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// A token that could not be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The token file could not be read.
    #[error("cannot read the token file \"{}\"", .path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The token command could not be started.
    #[error("cannot run the token command \"{command}\"")]
    Spawn {
        /// The command.
        command: String,
        /// Why.
        source: std::io::Error,
    },
    /// The token command failed.
    #[error("the token command \"{command}\" failed ({status}){}", stderr_suffix(.stderr))]
    Command {
        /// The command.
        command: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// The first line of its stderr.
        stderr: String,
    },
    /// The source gave no token.
    #[error("{origin} gave no token (it is empty)")]
    Empty {
        /// The source.
        origin: TokenSource,
    },
}

fn stderr_suffix(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!(": {stderr}")
    }
}

impl BearerToken {
    /// Tokens from `source`.
    pub fn new(source: TokenSource) -> Self {
        Self {
            source,
            cache: Arc::default(),
        }
    }

    /// Where the tokens come from.
    pub fn source(&self) -> &TokenSource {
        &self.source
    }

    /// A token for a new connection: the file read now, the command's
    /// last token if it is not yet due for refresh, else the command run
    /// again.
    ///
    /// # Errors
    ///
    /// The file cannot be read, the command fails, or either gives nothing.
    pub async fn token(&self) -> Result<Token, TokenError> {
        match &self.source {
            TokenSource::Fixed(text) => Ok(Token::parse(text.expose())),
            TokenSource::File(path) => {
                let text =
                    tokio::fs::read_to_string(path)
                        .await
                        .map_err(|source| TokenError::File {
                            path: path.clone(),
                            source,
                        })?;
                self.checked(&text)
            }
            TokenSource::Command(command) => {
                let mut cache = self.cache.lock().await;
                let now = SystemTime::now();
                if let Some(cached) = cache.as_ref().filter(|c| now < c.refresh_at) {
                    return Ok(cached.token.clone());
                }
                let text = run_command(command).await?;
                let token = self.checked(&text)?;
                let refresh_at = refresh_time(&token, now);
                tracing::debug!(
                    command,
                    refresh_in = ?refresh_at.duration_since(now).unwrap_or_default(),
                    "new OAUTHBEARER token"
                );
                *cache = Some(Cached {
                    token: token.clone(),
                    refresh_at,
                });
                Ok(token)
            }
        }
    }

    fn checked(&self, text: &str) -> Result<Token, TokenError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(TokenError::Empty {
                origin: self.source.clone(),
            });
        }
        Ok(Token::parse(text))
    }
}

/// When a token fetched at `now` is fetched again: 80 % of the way from
/// its start (`iat`, or `now`) to its `exp`. A token without `exp` is not
/// kept: every connection asks the command again.
fn refresh_time(token: &Token, now: SystemTime) -> SystemTime {
    let Some(expires) = token.expires else {
        return now;
    };
    let start = token.issued.filter(|iat| *iat <= now).unwrap_or(now);
    let lifetime = expires.duration_since(start).unwrap_or_default();
    start + lifetime.mul_f64(REFRESH_FACTOR)
}

async fn run_command(command: &str) -> Result<String, TokenError> {
    let owned = command.to_owned();
    // std's process support, on the blocking pool: tokio's would add its
    // own code to the binary for a command that runs once an hour.
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(&owned)
            .stdin(std::process::Stdio::null())
            .output()
    })
    .await
    .map_err(|e| TokenError::Spawn {
        command: command.to_owned(),
        source: std::io::Error::other(e),
    })?
    .map_err(|source| TokenError::Spawn {
        command: command.to_owned(),
        source,
    })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(TokenError::Command {
            command: command.to_owned(),
            status: output.status,
            stderr: stderr.lines().next().unwrap_or_default().trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

impl Token {
    /// Reads what it can of `text` as a JWT (`header.payload.signature`,
    /// base64url): `exp`, `iat` and `sub`. Anything else is still a token:
    /// the broker judges it.
    pub fn parse(text: &str) -> Self {
        let claims = text
            .split('.')
            .nth(1)
            .and_then(|payload| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(payload.trim_end_matches('='))
                    .ok()
            })
            .and_then(|json| serde_json::from_slice::<serde_json::Value>(&json).ok());
        let time = |name: &str| {
            let seconds = claims.as_ref()?.get(name)?.as_f64()?;
            (seconds >= 0.0).then(|| UNIX_EPOCH + Duration::from_secs_f64(seconds))
        };
        Self {
            expires: time("exp"),
            issued: time("iat"),
            subject: claims
                .as_ref()
                .and_then(|c| c.get("sub")?.as_str().map(str::to_owned)),
            text: Password::new(text),
        }
    }

    /// The client's first (and only) message, RFC 7628 section 3.1: the
    /// GS2 header without an authorization id, then `auth=Bearer <token>`,
    /// each key-value pair ended by `^A` and the whole by another.
    pub fn initial_response(&self) -> Vec<u8> {
        format!("n,,\x01auth=Bearer {}\x01\x01", self.text.expose()).into_bytes()
    }

    /// The token itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        self.text.expose()
    }

    /// Why the broker may have refused it, as far as weir can tell: its
    /// expiry in the past, or not a JWT with an `exp` at all.
    pub fn refusal_hint(&self, now: SystemTime) -> Option<String> {
        match self.expires {
            Some(exp) if exp <= now => {
                let ago = now.duration_since(exp).unwrap_or_default();
                let ago = Duration::from_secs(ago.as_secs());
                Some(format!(
                    "the token expired {} ago",
                    humantime::format_duration(ago)
                ))
            }
            Some(_) => None,
            None => Some("the token is not a JWT with an exp claim".to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: &str) -> String {
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!("{}.{}.", b64(r#"{"alg":"none"}"#), b64(claims))
    }

    #[test]
    fn claims_are_read_from_a_jwt() {
        let token = Token::parse(&jwt(r#"{"sub":"alice","iat":1000,"exp":4600}"#));
        assert_eq!(token.subject.as_deref(), Some("alice"));
        assert_eq!(token.issued, Some(UNIX_EPOCH + Duration::from_secs(1000)));
        assert_eq!(token.expires, Some(UNIX_EPOCH + Duration::from_secs(4600)));
        let opaque = Token::parse("not-a-jwt");
        assert_eq!(opaque.expires, None);
        assert!(opaque.refusal_hint(SystemTime::now()).is_some());
    }

    #[test]
    fn the_initial_response_is_the_gs2_form() {
        let token = Token::parse("abc.def.");
        assert_eq!(
            token.initial_response(),
            b"n,,\x01auth=Bearer abc.def.\x01\x01".to_vec()
        );
        assert!(!format!("{token:?}").contains("abc.def"));
    }

    #[test]
    fn a_command_token_is_refreshed_at_80_percent_of_its_lifetime() {
        let now = UNIX_EPOCH + Duration::from_secs(2000);
        // Issued at 1000, expires at 6000: refresh at 1000 + 0.8 * 5000.
        let token = Token::parse(&jwt(r#"{"iat":1000,"exp":6000}"#));
        assert_eq!(
            refresh_time(&token, now),
            UNIX_EPOCH + Duration::from_secs(5000)
        );
        // No iat: the lifetime counts from when it was fetched.
        let token = Token::parse(&jwt(r#"{"exp":3000}"#));
        assert_eq!(
            refresh_time(&token, now),
            UNIX_EPOCH + Duration::from_secs(2800)
        );
        // No exp: never kept.
        assert_eq!(refresh_time(&Token::parse("opaque"), now), now);
        let expired = Token::parse(&jwt(r#"{"exp":1500}"#));
        assert_eq!(refresh_time(&expired, now), now);
        assert!(expired.refusal_hint(now).unwrap().contains("expired 8m"));
    }

    #[tokio::test]
    async fn a_command_runs_again_only_when_its_token_is_due() {
        let dir = tempfile::tempdir().unwrap();
        let count = dir.path().join("count");
        // Prints a token valid for an hour and counts its runs.
        let far = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 3600;
        let command = format!(
            "echo run >> {}; echo '{}'",
            count.display(),
            jwt(&format!(r#"{{"exp":{far}}}"#))
        );
        let tokens = BearerToken::new(TokenSource::Command(command));
        tokens.token().await.unwrap();
        tokens.clone().token().await.unwrap();
        assert_eq!(std::fs::read_to_string(&count).unwrap().lines().count(), 1);

        let failing = BearerToken::new(TokenSource::Command("echo nope >&2; exit 3".into()));
        let err = failing.token().await.unwrap_err().to_string();
        assert!(err.contains("nope") && err.contains('3'), "{err}");
    }
}
