//! The metrics endpoint: a small HTTP/1.1 server on tokio's
//! [`TcpListener`] that answers `GET /metrics`, `/healthz` and `/readyz`,
//! one request per connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::Metrics;

/// Errors of the metrics endpoint.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// The address could not be listened on (in use, not local, no such
    /// host).
    #[error("cannot listen for metrics on {addr}")]
    Bind {
        /// The address as given.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The most a request's head may take; a longer one is refused (431).
pub const MAX_REQUEST_BYTES: usize = 4096;

/// How long a client has to send its request's head, and to read the
/// answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections answered at once; more wait to be accepted.
const MAX_CONNECTIONS: usize = 16;

/// The metrics endpoint, listening until dropped.
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl MetricsServer {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Listens on `addr` (`HOST:PORT`) and answers `/metrics`, `/healthz` and
/// `/readyz` from `metrics` on tasks of the current runtime, until the
/// returned server is dropped.
///
/// # Errors
///
/// [`MetricsError::Bind`]: the address is in use or cannot be listened on.
pub async fn serve(addr: &str, metrics: &'static Metrics) -> Result<MetricsServer, MetricsError> {
    let bind = |source| MetricsError::Bind {
        addr: addr.to_owned(),
        source,
    };
    let listener = TcpListener::bind(addr).await.map_err(bind)?;
    let local = listener.local_addr().map_err(bind)?;
    tracing::info!(addr = %local, "serving metrics");
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let task = tokio::spawn(async move {
        loop {
            let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
                return;
            };
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors, or a connection reset before it
                    // was accepted: the next may do.
                    tracing::debug!(error = %e, "metrics: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            tokio::spawn(async move {
                let _ = answer(stream, metrics).await;
                drop(permit);
            });
        }
    });
    Ok(MetricsServer { addr: local, task })
}

/// Reads one request's head (within [`REQUEST_TIMEOUT`] and
/// [`MAX_REQUEST_BYTES`]), writes the response and closes.
async fn answer(mut stream: TcpStream, metrics: &Metrics) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let read = tokio::time::timeout(REQUEST_TIMEOUT, read_head(&mut stream, &mut head)).await;
    let response = match read {
        Err(_) => Response::text(408, "Request Timeout", "request timeout\n"),
        Ok(Err(e)) => return Err(e),
        Ok(Ok(false)) => Response::text(
            431,
            "Request Header Fields Too Large",
            "request too large\n",
        ),
        Ok(Ok(true)) => respond(&head, metrics),
    };
    // A client that does not read its answer is given as long as one
    // that does not send its request.
    let write = async {
        stream.write_all(&response.to_bytes()).await?;
        stream.shutdown().await
    };
    tokio::time::timeout(REQUEST_TIMEOUT, write)
        .await
        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
}

/// Reads until the blank line that ends a request's head; false when it
/// passes [`MAX_REQUEST_BYTES`] first.
async fn read_head(stream: &mut TcpStream, head: &mut Vec<u8>) -> std::io::Result<bool> {
    let mut buf = [0; 1024];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.extend_from_slice(&buf[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            return Ok(head.len() <= MAX_REQUEST_BYTES);
        }
        if head.len() > MAX_REQUEST_BYTES {
            return Ok(false);
        }
    }
}

/// An HTTP response, closed after it is written.
#[derive(Debug, PartialEq, Eq)]
struct Response {
    status: u16,
    reason: &'static str,
    content_type: &'static str,
    allow: bool,
    body: String,
}

impl Response {
    fn text(status: u16, reason: &'static str, body: impl Into<String>) -> Self {
        Self {
            status,
            reason,
            content_type: "text/plain; charset=utf-8",
            allow: false,
            body: body.into(),
        }
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.status,
            self.reason,
            self.content_type,
            self.body.len()
        );
        if self.allow {
            head.push_str("Allow: GET\r\n");
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(self.body.as_bytes());
        bytes
    }
}

/// The answer to a request whose head is `head`.
fn respond(head: &[u8], metrics: &Metrics) -> Response {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = std::str::from_utf8(line).unwrap_or_default().trim_end();
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Response::text(400, "Bad Request", "bad request\n");
    };
    if !version.starts_with("HTTP/1.") || parts.next().is_some() {
        return Response::text(400, "Bad Request", "bad request\n");
    }
    let path = target.split('?').next().unwrap_or_default();
    if !matches!(path, "/metrics" | "/healthz" | "/readyz") {
        return Response::text(
            404,
            "Not Found",
            "not found: try /metrics, /healthz or /readyz\n",
        );
    }
    if method != "GET" {
        return Response {
            allow: true,
            ..Response::text(405, "Method Not Allowed", "method not allowed: GET only\n")
        };
    }
    match path {
        "/metrics" => Response {
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            ..Response::text(200, "OK", metrics.render())
        },
        "/healthz" => Response::text(200, "OK", "ok\n"),
        _ => match metrics.ready() {
            Ok(()) => Response::text(200, "OK", "ready\n"),
            Err(reason) => Response::text(503, "Service Unavailable", format!("{reason}\n")),
        },
    }
}
