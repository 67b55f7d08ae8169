//! A raw TCP server on 127.0.0.1 for faults a mock HTTP server cannot
//! produce: a connection dropped without an answer, a body cut in the
//! middle. Feature `fault-server`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the raw server does with the n-th connection (0-based).
#[derive(Debug, Clone)]
pub enum Fault {
    /// Read the request, then close without answering.
    Drop,
    /// Read the request, write these bytes, then close.
    Write(Vec<u8>),
}

/// A raw server; `accepted()` counts connections.
pub struct RawServer {
    /// The server's base URL, `http://127.0.0.1:<port>`.
    pub url: String,
    accepted: Arc<AtomicUsize>,
}

impl RawServer {
    /// Starts a server whose n-th connection gets `plan(n)`.
    pub async fn start(plan: impl Fn(usize) -> Fault + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1");
        let url = format!("http://{}", listener.local_addr().expect("local address"));
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&accepted);
        let plan = Arc::new(plan);
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                let fault = plan(n);
                tokio::spawn(serve(socket, fault));
            }
        });
        Self { url, accepted }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

async fn serve(mut socket: TcpStream, fault: Fault) {
    read_request(&mut socket).await;
    if let Fault::Write(bytes) = fault {
        let _ = socket.write_all(&bytes).await;
        let _ = socket.flush().await;
    }
    let _ = socket.shutdown().await;
}

/// Reads the head and a `content-length` body, so that closing the socket
/// does not reset it with unread data.
async fn read_request(socket: &mut TcpStream) {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let Ok(n) = socket.read(&mut buf).await else {
            return;
        };
        if n == 0 {
            return;
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
                return;
            }
        }
    }
}

/// An HTTP/1.1 response head for a chunked body, then the given chunks
/// (without the terminating zero chunk: the connection is then cut).
pub fn chunked_then_cut(content_type: &str, chunks: &[&str]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    )
    .into_bytes();
    for chunk in chunks {
        out.extend_from_slice(format!("{:x}\r\n{chunk}\r\n", chunk.len()).as_bytes());
    }
    out
}
