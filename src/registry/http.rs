//! One HTTP/1.1 request to the registry: a connection of its own (plain
//! TCP or rustls), hyper's client handshake, the answer read whole. The
//! registry is asked once per schema id and per subject, so connections
//! are not kept.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;

/// Where the registry is: its scheme, host, port and path prefix.
#[derive(Debug, Clone)]
pub(super) struct Endpoint {
    pub(super) tls: bool,
    pub(super) host: String,
    pub(super) port: u16,
    /// The URL's path without a trailing `/` (e.g. `/apis/ccompat/v6`).
    pub(super) prefix: String,
}

impl Endpoint {
    /// Parses `http://host[:port][/prefix]` or `https://...`.
    pub(super) fn parse(url: &str) -> Result<Self, String> {
        let uri: hyper::Uri = url.parse().map_err(|e| format!("not a URL: {e}"))?;
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            Some(other) => return Err(format!("scheme {other}: expected http or https")),
            None => return Err("no scheme: expected http:// or https://".to_owned()),
        };
        let host = uri.host().ok_or("no host")?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        if uri.query().is_some() {
            return Err("a query has no place in the registry's URL".to_owned());
        }
        let prefix = uri.path().trim_end_matches('/').to_owned();
        Ok(Self {
            tls,
            host,
            port,
            prefix,
        })
    }
}

/// What came back: the status and the body.
pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) body: Bytes,
}

/// Sends one request (`body` as JSON when given) and reads the answer.
/// The caller puts a deadline around it.
pub(super) async fn send(
    endpoint: &Endpoint,
    tls: Option<&Arc<rustls::ClientConfig>>,
    authorization: Option<&HeaderValue>,
    method: hyper::Method,
    path: &str,
    body: Option<Vec<u8>>,
) -> Result<Answer, String> {
    let tcp = TcpStream::connect((endpoint.host.as_str(), endpoint.port))
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let host = if endpoint.host.contains(':') {
        format!("[{}]", endpoint.host)
    } else {
        endpoint.host.clone()
    };
    let default_port = if endpoint.tls { 443 } else { 80 };
    let host_header = if endpoint.port == default_port {
        host
    } else {
        format!("{host}:{}", endpoint.port)
    };
    let mut request = Request::builder()
        .method(method)
        .uri(format!("{}{path}", endpoint.prefix))
        .header(HOST, host_header)
        .header(
            ACCEPT,
            "application/vnd.schemaregistry.v1+json, application/json",
        );
    if let Some(auth) = authorization {
        request = request.header(AUTHORIZATION, auth.clone());
    }
    if body.is_some() {
        request = request.header(CONTENT_TYPE, "application/vnd.schemaregistry.v1+json");
    }
    let request = request
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(|e| format!("cannot build the request: {e}"))?;
    match tls {
        Some(config) => {
            let name = ServerName::try_from(endpoint.host.clone())
                .map_err(|e| format!("{}: not a TLS server name: {e}", endpoint.host))?;
            let stream = tokio_rustls::TlsConnector::from(Arc::clone(config))
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS handshake failed: {e}"))?;
            exchange(TokioIo::new(stream), request).await
        }
        None => exchange(TokioIo::new(tcp), request).await,
    }
}

async fn exchange<S>(io: S, request: Request<Full<Bytes>>) -> Result<Answer, String>
where
    S: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("HTTP handshake failed: {e}"))?;
    let driver = tokio::spawn(connection);
    let result = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("no answer: {e}"))?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("answer cut short: {e}"))?
            .to_bytes();
        Ok(Answer { status, body })
    }
    .await;
    driver.abort();
    result
}

/// `s` with every byte outside RFC 3986's unreserved set percent-encoded,
/// for a subject in a path.
pub(super) fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_give_scheme_host_port_and_prefix() {
        let e = Endpoint::parse("https://registry.example.com/apis/ccompat/v6/").unwrap();
        assert!(e.tls);
        assert_eq!(
            (e.host.as_str(), e.port, e.prefix.as_str()),
            ("registry.example.com", 443, "/apis/ccompat/v6")
        );
        let e = Endpoint::parse("http://[::1]:8081").unwrap();
        assert_eq!(
            (e.tls, e.host.as_str(), e.port, e.prefix.as_str()),
            (false, "::1", 8081, "")
        );
        for bad in ["127.0.0.1:8081", "ftp://h/", "http://h/?a=b", "not a url"] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn subjects_are_percent_encoded_in_paths() {
        assert_eq!(path_segment("orders-value"), "orders-value");
        assert_eq!(path_segment("a b/c?é"), "a%20b%2Fc%3F%C3%A9");
    }
}
