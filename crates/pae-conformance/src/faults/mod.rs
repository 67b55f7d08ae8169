//! Fault injection for HTTP adapters (feature `fault-server`): a raw TCP
//! server on 127.0.0.1 that answers each connection with a script of bytes,
//! pauses, stalls and hang-ups, builders for the HTTP/1.1 bytes, and
//! [`FaultSuite`], a parametrised suite of fault scenarios (error statuses,
//! `Retry-After`, garbage bodies, stalls, cut and split streams) that any
//! HTTP adapter's tests run with their own constructor and wire format.
//!
//! A mock HTTP server (wiremock) is the right tool for exact request bodies;
//! this server is for what such a server cannot produce: a connection
//! closed before or after the request, headers followed by a body that
//! never comes, a stream whose events arrive one byte at a time.
//!
//! ```
//! use std::time::Duration;
//! use pae_conformance::faults::{Action, Fault, RawServer, chunk, chunked_head, response};
//!
//! # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
//! # rt.block_on(async {
//! // First connection: HTTP 503; then a chunked body that stalls after one chunk.
//! let server = RawServer::start(|n| match n {
//!     0 => Fault::Write(response(503, &[("retry-after", "1")], "busy")),
//!     _ => Fault::Script(vec![
//!         Action::Write(chunked_head(200, "text/event-stream", &[])),
//!         Action::Write(chunk("data: {}\n\n")),
//!         Action::Stall,
//!     ]),
//! })
//! .await;
//! assert!(server.url.starts_with("http://127.0.0.1:"));
//! assert_eq!(server.accepted(), 0);
//! # });
//! ```

mod date;
mod report;
mod runner;
mod scenarios;
mod suite;
mod wire;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use pae_core::{ChatModel, ChatRequest, ProviderError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub use date::http_date;
pub use report::{FaultReport, ScenarioResult};
pub use scenarios::Scenario;
pub use suite::FaultSuite;
pub use wire::{ModelTarget, WireFormat};

/// What the raw server does with the n-th connection (0-based).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Fault {
    /// Read the request, then close without answering.
    Drop,
    /// Read the request, write these bytes, then close.
    Write(Vec<u8>),
    /// Close the connection as soon as it is accepted, before reading the
    /// request.
    CloseOnAccept,
    /// Read the request, then run these actions in order, then close.
    Script(Vec<Action>),
}

/// One step of a [`Fault::Script`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Action {
    /// Write these bytes (and flush them: with `TCP_NODELAY` each write
    /// leaves as its own segment).
    Write(Vec<u8>),
    /// Wait this long.
    Pause(Duration),
    /// Send nothing more and keep the connection open until the client
    /// closes it (a server that hangs).
    Stall,
}

/// A raw server; [`accepted`](Self::accepted) counts connections (with
/// `connection: close` answers, one per request) and
/// [`requests`](Self::requests) returns what was read from each.
pub struct RawServer {
    /// The server's base URL, `http://127.0.0.1:<port>`.
    pub url: String,
    accepted: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl RawServer {
    /// Starts a server whose n-th connection gets `plan(n)`.
    ///
    /// # Panics
    /// When no port on 127.0.0.1 can be bound (the test cannot run).
    pub async fn start(plan: impl Fn(usize) -> Fault + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1");
        let url = format!("http://{}", listener.local_addr().expect("local address"));
        let accepted = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let counter = Arc::clone(&accepted);
        let seen = Arc::clone(&requests);
        let plan = Arc::new(plan);
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                let fault = plan(n);
                tokio::spawn(serve(socket, fault, Arc::clone(&seen)));
            }
        });
        Self {
            url,
            accepted,
            requests,
        }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// The raw requests (head and body) read so far, in the order they
    /// were read. Connections closed on accept read none.
    pub fn requests(&self) -> Vec<Vec<u8>> {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl std::fmt::Debug for RawServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawServer")
            .field("url", &self.url)
            .field("accepted", &self.accepted())
            .finish()
    }
}

async fn serve(mut socket: TcpStream, fault: Fault, seen: Arc<Mutex<Vec<Vec<u8>>>>) {
    let _ = socket.set_nodelay(true);
    let actions = match fault {
        Fault::CloseOnAccept => return,
        Fault::Drop => Vec::new(),
        Fault::Write(bytes) => vec![Action::Write(bytes)],
        Fault::Script(actions) => actions,
    };
    let request = read_request(&mut socket).await;
    seen.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(request);
    for action in actions {
        match action {
            Action::Write(bytes) => {
                if socket.write_all(&bytes).await.is_err() || socket.flush().await.is_err() {
                    return;
                }
            }
            Action::Pause(wait) => tokio::time::sleep(wait).await,
            Action::Stall => {
                // Hold the connection until the client gives up on it.
                let mut buf = [0u8; 1024];
                while matches!(socket.read(&mut buf).await, Ok(n) if n > 0) {}
                return;
            }
        }
    }
    let _ = socket.shutdown().await;
}

/// Reads the head and a `content-length` body, so that closing the socket
/// does not reset it with unread data.
async fn read_request(socket: &mut TcpStream) -> Vec<u8> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let Ok(n) = socket.read(&mut buf).await else {
            return data;
        };
        if n == 0 {
            return data;
        }
        data.extend_from_slice(&buf[..n]);
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if data.len() >= end + 4 + length {
                return data;
            }
        }
    }
}

/// The reason phrase of common statuses (clients ignore it; it only makes
/// the bytes read naturally).
fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

fn head(status: u16, headers: &[(&str, &str)]) -> String {
    let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("connection: close\r\n");
    out
}

/// A complete HTTP/1.1 response with a `content-length` body and
/// `connection: close`. `headers` are written as given (add a
/// `content-type` when the body needs one).
pub fn response(status: u16, headers: &[(&str, &str)], body: impl AsRef<[u8]>) -> Vec<u8> {
    let body = body.as_ref();
    let mut out = head(status, headers);
    out.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

/// The head of a response whose body follows in chunks (see [`chunk`] and
/// [`LAST_CHUNK`]), with `connection: close`.
pub fn chunked_head(status: u16, content_type: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut out = head(status, headers);
    out.push_str(&format!(
        "content-type: {content_type}\r\ntransfer-encoding: chunked\r\n\r\n"
    ));
    out.into_bytes()
}

/// One chunk of a chunked body. An empty input gives no bytes (an empty
/// chunk would end the body).
pub fn chunk(bytes: impl AsRef<[u8]>) -> Vec<u8> {
    let bytes = bytes.as_ref();
    if bytes.is_empty() {
        return Vec::new();
    }
    let mut out = format!("{:x}\r\n", bytes.len()).into_bytes();
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
    out
}

/// The chunk that ends a chunked body.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// A complete chunked response with status 200: the head, each part as
/// its own chunk written separately (so the client reads them apart), and
/// the end of the body.
pub fn chunked<B: AsRef<[u8]>>(content_type: &str, parts: &[B]) -> Fault {
    let mut actions = vec![Action::Write(chunked_head(200, content_type, &[]))];
    actions.extend(parts.iter().map(|part| Action::Write(chunk(part))));
    actions.push(Action::Write(LAST_CHUNK.to_vec()));
    Fault::Script(actions)
}

/// Streams `request` from `model` to its end: the text of the chunks
/// received, and the error that ended the stream (or failed to start it),
/// if any. Items after an error are not read.
pub async fn stream_text<M: ChatModel + ?Sized>(
    model: &M,
    request: ChatRequest,
) -> (String, Option<ProviderError>) {
    let mut text = String::new();
    let mut stream = match model.stream(request).await {
        Ok(stream) => stream,
        Err(error) => return (text, Some(error)),
    };
    while let Some(item) = stream.next().await {
        match item {
            Ok(chunk) => text.push_str(&chunk.delta),
            Err(error) => return (text, Some(error)),
        }
    }
    (text, None)
}

/// An HTTP/1.1 response head for a chunked body, then the given chunks
/// (without the terminating zero chunk: the connection is then cut).
pub fn chunked_then_cut(content_type: &str, chunks: &[&str]) -> Vec<u8> {
    let mut out = chunked_head(200, content_type, &[]);
    for part in chunks {
        out.extend_from_slice(&chunk(part));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_have_a_length_and_close_the_connection() {
        let bytes = response(429, &[("retry-after", "1")], "slow down");
        let text = String::from_utf8(bytes).unwrap();
        assert_eq!(
            text,
            "HTTP/1.1 429 Too Many Requests\r\nretry-after: 1\r\nconnection: close\r\n\
             content-length: 9\r\n\r\nslow down"
        );
    }

    #[test]
    fn chunks_are_framed_and_empty_ones_vanish() {
        assert_eq!(chunk("hello"), b"5\r\nhello\r\n");
        assert!(chunk("").is_empty());
        let cut = chunked_then_cut("text/event-stream", &["ab"]);
        assert!(cut.ends_with(b"\r\n\r\n2\r\nab\r\n"));
    }
}
