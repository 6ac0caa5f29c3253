//! A Schema Registry client (Confluent's REST API, as Confluent's
//! registry, Apicurio's `/apis/ccompat/v6` and Karapace serve it) and the
//! Confluent wire format: a zero byte, the schema id (4 bytes, big-endian),
//! then the encoded value.
//!
//! [`Registry`] fetches a schema once per id ([`Registry::schema`]) and
//! keeps it, and looks up ([`Registry::version`]) and registers
//! ([`Registry::register`]) subjects' schemas; every request ends within
//! [`RegistryConfig::timeout`]. [`avro`] turns Avro values into plain JSON
//! and back; [`codec`] decodes consumed records (the shared reader calls
//! it) and encodes produced values.
//!
//! Only Avro schemas are decoded and encoded so far; a Protobuf or JSON
//! Schema id is refused by name.

pub mod avro;
pub mod codec;
mod http;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use hyper::header::HeaderValue;

use crate::kafka::secret::Password;
use avro::AvroSchema;

/// The first byte of a value in the Confluent wire format.
pub const MAGIC: u8 = 0;

/// How to reach the registry.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RegistryConfig {
    /// Its base URL, e.g. `http://127.0.0.1:8081` or
    /// `https://registry.example.com/apis/ccompat/v6`.
    pub url: String,
    /// How requests authenticate.
    pub auth: RegistryAuth,
    /// PEM file of the CAs that sign its certificate (`https` URLs);
    /// the Mozilla roots without it.
    pub ca_file: Option<PathBuf>,
    /// Every request's deadline.
    pub timeout: Duration,
}

impl RegistryConfig {
    /// A registry at `url`, without authentication, 30 s per request.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            auth: RegistryAuth::None,
            ca_file: None,
            timeout: Duration::from_secs(30),
        }
    }

    /// With this authentication.
    pub fn with_auth(mut self, auth: RegistryAuth) -> Self {
        self.auth = auth;
        self
    }

    /// With this CA file.
    pub fn with_ca_file(mut self, path: Option<PathBuf>) -> Self {
        self.ca_file = path;
        self
    }

    /// With this deadline per request.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// How requests to the registry authenticate.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub enum RegistryAuth {
    /// Not at all.
    #[default]
    None,
    /// HTTP basic authentication.
    Basic {
        /// The user.
        user: String,
        /// The password.
        password: Password,
    },
    /// A bearer token (`Authorization: Bearer ...`).
    Bearer(Password),
}

/// A request to the registry that failed, or an answer weir cannot use.
/// Each names the registry's URL and what was asked (a schema id or a
/// subject).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The configuration cannot be used (URL, CA file).
    #[error("schema registry {url}: {problem}")]
    Config {
        /// The registry's URL.
        url: String,
        /// What is wrong.
        problem: String,
    },
    /// The registry could not be reached or the exchange broke off.
    #[error("schema registry {url}: {what}: {problem}")]
    Unreachable {
        /// The registry's URL.
        url: String,
        /// What was asked.
        what: String,
        /// What went wrong.
        problem: String,
    },
    /// No answer within the timeout.
    #[error("schema registry {url}: {what}: no answer within {}", humantime::format_duration(*.timeout))]
    TimedOut {
        /// The registry's URL.
        url: String,
        /// What was asked.
        what: String,
        /// The deadline.
        timeout: Duration,
    },
    /// The registry answered with an error status.
    #[error("schema registry {url}: {what}: HTTP {status}: {message}")]
    Status {
        /// The registry's URL.
        url: String,
        /// What was asked.
        what: String,
        /// The HTTP status.
        status: u16,
        /// The registry's own message (its `message` field, else the body).
        message: String,
    },
    /// An answer weir does not understand, or a schema it cannot use.
    #[error("schema registry {url}: {what}: {problem}")]
    Invalid {
        /// The registry's URL.
        url: String,
        /// What was asked.
        what: String,
        /// What is wrong with it.
        problem: String,
    },
}

impl RegistryError {
    /// Whether the registry answered that the schema or subject does not
    /// exist (HTTP 404).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Status { status: 404, .. })
    }
}

/// The kinds of schema a registry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaType {
    /// Apache Avro.
    Avro,
    /// Protocol Buffers.
    Protobuf,
    /// JSON Schema.
    Json,
}

impl SchemaType {
    fn from_name(name: Option<&str>) -> Option<Self> {
        match name.unwrap_or("AVRO") {
            "AVRO" => Some(Self::Avro),
            "PROTOBUF" => Some(Self::Protobuf),
            "JSON" => Some(Self::Json),
            _ => None,
        }
    }

    /// The registry's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Avro => "AVRO",
            Self::Protobuf => "PROTOBUF",
            Self::Json => "JSON",
        }
    }
}

/// A schema as the registry holds it, parsed where weir can use it.
#[derive(Debug)]
pub struct Schema {
    /// Its id.
    pub id: u32,
    /// Its kind.
    pub kind: SchemaType,
    /// The Avro schema, parsed (Avro only).
    pub avro: Option<AvroSchema>,
}

/// A subject's version as the registry answers it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct SubjectVersion {
    /// The subject.
    #[serde(default)]
    pub subject: String,
    /// The version number.
    #[serde(default)]
    pub version: i64,
    /// The schema's id.
    pub id: u32,
    /// The schema's text.
    pub schema: String,
    /// Its kind (absent: Avro).
    #[serde(default, rename = "schemaType")]
    pub schema_type: Option<String>,
}

#[derive(serde::Deserialize)]
struct SchemaAnswer {
    schema: String,
    #[serde(default, rename = "schemaType")]
    schema_type: Option<String>,
}

#[derive(serde::Deserialize)]
struct Registered {
    id: u32,
}

/// A schema as the cache keeps it: the error shared, as each record with
/// that id reports it.
type Cached = Result<Arc<Schema>, Arc<RegistryError>>;

/// A Schema Registry client with its cache of schemas by id.
#[derive(Debug)]
pub struct Registry {
    url: String,
    endpoint: http::Endpoint,
    tls: Option<Arc<rustls::ClientConfig>>,
    authorization: Option<HeaderValue>,
    timeout: Duration,
    /// Schemas by id, and the ids the registry said it does not have.
    cache: Mutex<HashMap<u32, Cached>>,
}

impl Registry {
    /// A client for `config` (nothing is sent yet).
    ///
    /// # Errors
    ///
    /// A URL that is not `http://` or `https://`, or a CA file that cannot
    /// be read.
    pub fn new(config: &RegistryConfig) -> Result<Self, RegistryError> {
        let url = config.url.trim_end_matches('/').to_owned();
        let bad = |problem: String| RegistryError::Config {
            url: url.clone(),
            problem,
        };
        let endpoint = http::Endpoint::parse(&url).map_err(&bad)?;
        let tls = if endpoint.tls {
            Some(tls_config(config.ca_file.as_ref()).map_err(&bad)?)
        } else {
            if config.ca_file.is_some() {
                return Err(bad("a CA file is for https:// URLs".to_owned()));
            }
            None
        };
        let authorization = match &config.auth {
            RegistryAuth::None => None,
            RegistryAuth::Basic { user, password } => {
                let token = base64::engine::general_purpose::STANDARD
                    .encode(format!("{user}:{}", password.expose()));
                Some(format!("Basic {token}"))
            }
            RegistryAuth::Bearer(token) => Some(format!("Bearer {}", token.expose().trim())),
        };
        let authorization = authorization
            .map(|a| {
                let mut value = HeaderValue::from_str(&a).map_err(|_| {
                    bad("the credentials hold characters a header cannot".to_owned())
                })?;
                value.set_sensitive(true);
                Ok(value)
            })
            .transpose()?;
        Ok(Self {
            url,
            endpoint,
            tls,
            authorization,
            timeout: config.timeout,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The registry's URL, for messages.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The schema with this id: from the cache, else asked once
    /// (`GET /schemas/ids/N`). An id the registry does not have is
    /// remembered too.
    ///
    /// # Errors
    ///
    /// The request failed, or the schema cannot be parsed.
    pub async fn schema(&self, id: u32) -> Result<Arc<Schema>, Arc<RegistryError>> {
        if let Some(found) = self.cache.lock().expect("schema cache").get(&id) {
            return found.clone();
        }
        let what = format!("schema id {id}");
        let result = match self
            .get::<SchemaAnswer>(&format!("/schemas/ids/{id}"), &what)
            .await
        {
            Ok(answer) => self
                .parse(id, answer.schema_type.as_deref(), &answer.schema, &what)
                .map(Arc::new)
                .map_err(Arc::new),
            Err(e) => Err(Arc::new(e)),
        };
        // Only what holds for good: a schema, or the registry's word that
        // it has none; a failed request is tried again next time.
        if result.as_ref().is_ok() || result.as_ref().is_err_and(|e| e.is_not_found()) {
            self.cache
                .lock()
                .expect("schema cache")
                .insert(id, result.clone());
        }
        result
    }

    /// A subject's version (`None`: the latest), with its schema
    /// (`GET /subjects/S/versions/V`).
    ///
    /// # Errors
    ///
    /// The request failed.
    pub async fn version(
        &self,
        subject: &str,
        version: Option<u32>,
    ) -> Result<SubjectVersion, RegistryError> {
        let (v, what) = match version {
            Some(v) => (v.to_string(), format!("subject \"{subject}\" version {v}")),
            None => (
                "latest".to_owned(),
                format!("subject \"{subject}\" latest version"),
            ),
        };
        let path = format!("/subjects/{}/versions/{v}", http::path_segment(subject));
        self.get(&path, &what).await
    }

    /// Registers `schema` under `subject` (`POST /subjects/S/versions`);
    /// the registry answers the id it has, new or existing.
    ///
    /// # Errors
    ///
    /// The request failed (an incompatible schema is HTTP 409).
    pub async fn register(
        &self,
        subject: &str,
        kind: SchemaType,
        schema: &str,
    ) -> Result<u32, RegistryError> {
        let what = format!("registering under subject \"{subject}\"");
        let mut body = serde_json::json!({ "schema": schema });
        if kind != SchemaType::Avro {
            body["schemaType"] = kind.as_str().into();
        }
        let path = format!("/subjects/{}/versions", http::path_segment(subject));
        let body = serde_json::to_vec(&body).expect("JSON of a string");
        let answer: Registered = self
            .request(hyper::Method::POST, &path, Some(body), &what)
            .await?;
        Ok(answer.id)
    }

    /// Parses a schema's text as the registry gave it.
    ///
    /// # Errors
    ///
    /// An unknown schema type or an Avro schema that does not parse.
    pub fn parse(
        &self,
        id: u32,
        kind: Option<&str>,
        text: &str,
        what: &str,
    ) -> Result<Schema, RegistryError> {
        let invalid = |problem: String| RegistryError::Invalid {
            url: self.url.clone(),
            what: what.to_owned(),
            problem,
        };
        let kind = SchemaType::from_name(kind)
            .ok_or_else(|| invalid(format!("unknown schema type {}", kind.unwrap_or(""))))?;
        let avro = match kind {
            SchemaType::Avro => Some(
                AvroSchema::parse(text)
                    .map_err(|e| invalid(format!("not an Avro schema weir can use: {e}")))?,
            ),
            _ => None,
        };
        Ok(Schema { id, kind, avro })
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        what: &str,
    ) -> Result<T, RegistryError> {
        self.request(hyper::Method::GET, path, None, what).await
    }

    async fn request<T: serde::de::DeserializeOwned>(
        &self,
        method: hyper::Method,
        path: &str,
        body: Option<Vec<u8>>,
        what: &str,
    ) -> Result<T, RegistryError> {
        let sent = http::send(
            &self.endpoint,
            self.tls.as_ref(),
            self.authorization.as_ref(),
            method,
            path,
            body,
        );
        let answer = match tokio::time::timeout(self.timeout, sent).await {
            Err(_) => {
                return Err(RegistryError::TimedOut {
                    url: self.url.clone(),
                    what: what.to_owned(),
                    timeout: self.timeout,
                });
            }
            Ok(Err(problem)) => {
                return Err(RegistryError::Unreachable {
                    url: self.url.clone(),
                    what: what.to_owned(),
                    problem,
                });
            }
            Ok(Ok(answer)) => answer,
        };
        if !(200..300).contains(&answer.status) {
            return Err(RegistryError::Status {
                url: self.url.clone(),
                what: what.to_owned(),
                status: answer.status,
                message: error_message(&answer.body),
            });
        }
        serde_json::from_slice(&answer.body).map_err(|e| RegistryError::Invalid {
            url: self.url.clone(),
            what: what.to_owned(),
            problem: format!("an answer weir does not understand ({e})"),
        })
    }
}

/// The registry's message in an error answer: its `message` field, else
/// the body's first line, shortened.
fn error_message(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct ErrorAnswer {
        message: Option<String>,
    }
    if let Ok(ErrorAnswer { message: Some(m) }) = serde_json::from_slice(body) {
        return m.lines().next().unwrap_or_default().to_owned();
    }
    let text = String::from_utf8_lossy(body);
    let line = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("(no message)")
        .trim();
    line.chars().take(200).collect()
}

fn tls_config(ca_file: Option<&PathBuf>) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("CA file \"{}\": {e}", path.display()))?;
            if certs.is_empty() {
                return Err(format!(
                    "CA file \"{}\" holds no certificate",
                    path.display()
                ));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| format!("CA file \"{}\": {e}", path.display()))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registrys_message_is_one_line() {
        assert_eq!(
            error_message(br#"{"error_code":40401,"message":"Subject 'x' not found.\nmore"}"#),
            "Subject 'x' not found."
        );
        assert_eq!(
            error_message(b"\n<html>Unauthorized</html>\n"),
            "<html>Unauthorized</html>"
        );
        assert_eq!(error_message(b""), "(no message)");
    }

    #[test]
    fn credentials_never_show_and_bad_urls_are_refused() {
        let config = RegistryConfig::new("http://127.0.0.1:1").with_auth(RegistryAuth::Basic {
            user: "u".into(),
            password: Password::new("s3cret"),
        });
        let registry = Registry::new(&config).unwrap();
        assert!(!format!("{registry:?}").contains("s3cret"));
        assert!(!format!("{config:?}").contains("s3cret"));
        let e = Registry::new(&RegistryConfig::new("localhost:8081")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("schema registry localhost:8081: "),
            "{e}"
        );
        let e = Registry::new(&RegistryConfig::new("http://h").with_ca_file(Some("ca.pem".into())))
            .unwrap_err();
        assert!(e.to_string().contains("https"), "{e}");
    }

    #[tokio::test]
    async fn nothing_listening_is_one_line_naming_the_url_and_id() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}");
        let registry = Registry::new(&RegistryConfig::new(&url)).unwrap();
        let e = registry.schema(7).await.unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with(&format!(
                "schema registry {url}: schema id 7: cannot connect"
            )),
            "{text}"
        );
        assert!(!text.contains('\n'));
    }
}
