//! The made-up provider: a TinyChat API server on 127.0.0.1, speaking just
//! enough HTTP/1.1 over a tokio `TcpListener`, with a deterministic "model"
//! that treats each space-separated word as a token.
//!
//! Some model names make it misbehave, for the error-mapping tests:
//! `overloaded` answers 429 with `Retry-After: 3`, `garbage` answers a body
//! that is not JSON, and `cut-stream` closes a stream after two words.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A running server; it stops when dropped.
pub(crate) struct Server {
    /// The base URL, `http://127.0.0.1:<port>`.
    pub(crate) url: String,
    requests: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Server {
    pub(crate) async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&requests);
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    // A client that hangs up early is not the server's problem.
                    let _ = handle(socket).await;
                });
            }
        });
        Self {
            url,
            requests,
            task,
        }
    }

    /// Connections accepted so far.
    #[allow(dead_code)]
    pub(crate) fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(mut socket: TcpStream) -> std::io::Result<()> {
    let mut buffer = Vec::new();
    let mut scratch = [0_u8; 4096];
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let read = socket.read(&mut scratch).await?;
        if read == 0 {
            return Ok(());
        }
        buffer.extend_from_slice(&scratch[..read]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let length: usize = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse().ok())
        .unwrap_or(0);
    while buffer.len() < head_end + length {
        let read = socket.read(&mut scratch).await?;
        if read == 0 {
            return Ok(());
        }
        buffer.extend_from_slice(&scratch[..read]);
    }
    if !head.starts_with("POST /generate ") {
        return respond(&mut socket, "404 Not Found", &[], &error("no such route")).await;
    }
    let request: Value = match serde_json::from_slice(&buffer[head_end..head_end + length]) {
        Ok(request) => request,
        Err(e) => {
            return respond(&mut socket, "400 Bad Request", &[], &error(&e.to_string())).await;
        }
    };
    let messages = request["messages"].as_array().cloned().unwrap_or_default();
    if messages.is_empty() {
        return respond(&mut socket, "400 Bad Request", &[], &error("no messages")).await;
    }
    match request["model"].as_str() {
        Some("overloaded") => {
            return respond(
                &mut socket,
                "429 Too Many Requests",
                &["Retry-After: 3"],
                &error("too busy"),
            )
            .await;
        }
        Some("garbage") => {
            return respond(&mut socket, "200 OK", &[], "this is not JSON").await;
        }
        _ => {}
    }
    let reply = generate(&request, &messages);
    if request["stream"].as_bool() != Some(true) {
        let body = json!({
            "text": reply.text,
            "calls": reply.calls,
            "end": reply.end,
            "tokens": {"in": reply.tokens_in, "out": reply.tokens_out},
        });
        return respond(&mut socket, "200 OK", &[], &body.to_string()).await;
    }
    socket
        .write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nConnection: close\r\n\r\n",
        )
        .await?;
    let cut = request["model"].as_str() == Some("cut-stream");
    for (sent, word) in reply.text.split_inclusive(' ').enumerate() {
        if cut && sent == 2 {
            return socket.shutdown().await;
        }
        let line = json!({"text": word}).to_string() + "\n";
        socket.write_all(line.as_bytes()).await?;
        socket.flush().await?;
    }
    let last = json!({
        "calls": reply.calls,
        "end": reply.end,
        "tokens": {"in": reply.tokens_in, "out": reply.tokens_out},
    })
    .to_string()
        + "\n";
    socket.write_all(last.as_bytes()).await?;
    socket.shutdown().await
}

fn error(message: &str) -> String {
    json!({"error": {"message": message}}).to_string()
}

async fn respond(
    socket: &mut TcpStream,
    status: &str,
    headers: &[&str],
    body: &str,
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for header in headers {
        head.push_str(header);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    socket.write_all(head.as_bytes()).await?;
    socket.write_all(body.as_bytes()).await?;
    socket.shutdown().await
}

struct Reply {
    text: String,
    calls: Vec<Value>,
    end: &'static str,
    tokens_in: usize,
    tokens_out: usize,
}

/// The "model": calls a forced tool, fills a schema, quotes a tool result,
/// or echoes the last user message; then applies `limit` and `stop`.
fn generate(request: &Value, messages: &[Value]) -> Reply {
    let tokens_in = messages
        .iter()
        .map(|message| {
            message["text"]
                .as_str()
                .unwrap_or("")
                .split_whitespace()
                .count()
                + 1
        })
        .sum();
    if let Some(name) = request["force_tool"].as_str() {
        let schema = request["tools"]
            .as_array()
            .and_then(|tools| tools.iter().find(|tool| tool["name"] == name))
            .map(|tool| tool["input_schema"].clone())
            .unwrap_or(Value::Null);
        return Reply {
            text: String::new(),
            calls: vec![json!({
                "id": format!("tc-{}", messages.len()),
                "tool": name,
                "input": example(&schema),
            })],
            end: "calls",
            tokens_in,
            tokens_out: 6,
        };
    }
    let last = messages.last().cloned().unwrap_or(Value::Null);
    let text = if !request["schema"].is_null() {
        example(&request["schema"]).to_string()
    } else if last["role"] == "tool" {
        format!("Noted: {}", last["text"].as_str().unwrap_or(""))
    } else {
        let said = messages
            .iter()
            .rev()
            .find(|message| message["role"] == "user")
            .and_then(|message| message["text"].as_str())
            .unwrap_or("");
        format!("You said: {said}")
    };
    let limit = request["limit"].as_u64().map_or(usize::MAX, |n| n as usize);
    let words: Vec<&str> = text.split_inclusive(' ').collect();
    let mut generated: String = words.iter().take(limit).copied().collect();
    let mut end = if words.len() > limit { "limit" } else { "done" };
    let stops = request["stop"].as_array().cloned().unwrap_or_default();
    let cut = stops
        .iter()
        .filter_map(Value::as_str)
        .filter(|stop| !stop.is_empty())
        .filter_map(|stop| generated.find(stop))
        .min();
    if let Some(at) = cut {
        generated.truncate(at);
        end = "done";
    }
    Reply {
        tokens_out: generated.split_inclusive(' ').count(),
        text: generated,
        calls: Vec::new(),
        end,
        tokens_in,
    }
}

/// A value matching `schema`: the first `enum` value, else a fixed value of
/// its type, objects with every property filled.
fn example(schema: &Value) -> Value {
    if let Some(first) = schema["enum"].as_array().and_then(|values| values.first()) {
        return first.clone();
    }
    match schema["type"].as_str().unwrap_or("object") {
        "string" => json!("Paris"),
        "integer" => json!(7),
        "number" => json!(0.5),
        "boolean" => json!(true),
        "array" => json!([example(&schema["items"])]),
        _ => Value::Object(
            schema["properties"]
                .as_object()
                .map(|properties| {
                    properties
                        .iter()
                        .map(|(key, field)| (key.clone(), example(field)))
                        .collect()
                })
                .unwrap_or_default(),
        ),
    }
}
