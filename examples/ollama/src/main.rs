//! pae-ollama in use: one reply, one streamed reply and a tool call from an
//! Ollama server (or the stand-in in crates/pae-ollama/tests/fixtures),
//! through pae's `ChatModel` contract, with retries and a timeout.
//!
//! ```text
//! OLLAMA_HOST=127.0.0.1:11434 OLLAMA_MODEL=qwen2.5-coder:0.5b cargo run -p ollama-example
//! ```

use std::io::Write;
use std::time::Duration;

use futures::StreamExt;
use pae_core::{
    ChatModel, ChatModelExt, ChatRequest, Message, RetryPolicy, StreamAccumulator, ToolSpec,
};
use pae_ollama::OllamaChat;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let name = std::env::var("OLLAMA_MODEL").unwrap_or_else(|_| String::from("qwen2.5-coder:0.5b"));
    // OLLAMA_HOST, read as Ollama reads it; the server says whether the
    // model supports tools.
    let chat = OllamaChat::from_env(name)?
        .with_timeout(Duration::from_secs(300))
        .detect_capabilities()
        .await?;
    println!("{chat:?}");
    let model = chat.with_retry(RetryPolicy::new().with_max_attempts(3));

    let request = ChatRequest::new(vec![
        Message::system("You answer in one short sentence."),
        Message::user("What is a plan-and-execute agent?"),
    ])
    .with_temperature(0.0)
    .with_max_tokens(64);

    let reply = model.chat(request.clone()).await?;
    println!("reply: {}", reply.content().trim());
    println!(
        "usage: {:?}, finish: {:?}",
        reply.usage, reply.finish_reason
    );

    print!("streamed: ");
    let mut stream = model.stream(request).await?;
    let mut accumulator = StreamAccumulator::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        print!("{}", chunk.delta);
        std::io::stdout().flush()?;
        accumulator.push(&chunk);
    }
    println!("\nstream usage: {:?}", accumulator.finish().usage);

    if model.capabilities().native_tools {
        let calculator = ToolSpec {
            name: "calculator".into(),
            description: "Evaluates an arithmetic expression.".into(),
            parameters: serde_json::json!({
                "type": "object",
                "properties": {"expression": {"type": "string"}},
                "required": ["expression"]
            }),
        };
        let ask = ChatRequest::new(vec![Message::user(
            "What is 17 times 23? Use the calculator tool.",
        )])
        .with_tools(vec![calculator])
        .with_temperature(0.0);
        let reply = model.chat(ask).await?;
        for call in &reply.message.tool_calls {
            println!("tool call {}: {}({})", call.id, call.name, call.arguments);
        }
        if reply.message.tool_calls.is_empty() {
            println!("no tool call; the model said: {}", reply.content().trim());
        }
    }
    Ok(())
}
