//! pae-openai in use: one reply and one streamed reply from OpenAI or any
//! OpenAI-compatible server, through pae's `ChatModel` contract, with
//! retries (backoff, `Retry-After`) and a per-call timeout.
//!
//! ```text
//! OPENAI_API_KEY=sk-… OPENAI_MODEL=gpt-4o-mini cargo run -p openai-example
//! OPENAI_BASE_URL=http://127.0.0.1:18080/v1 OPENAI_MODEL=local cargo run -p openai-example
//! ```

use std::io::Write;
use std::time::Duration;

use futures::StreamExt;
use pae_core::{ChatModel, ChatModelExt, ChatRequest, Message, RetryPolicy, StreamAccumulator};
use pae_openai::OpenAiChat;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let name = std::env::var("OPENAI_MODEL").unwrap_or_else(|_| String::from("gpt-4o-mini"));
    // OPENAI_API_KEY and OPENAI_BASE_URL; the key never shows in Debug output.
    let chat = OpenAiChat::from_env(name)?.with_timeout(Duration::from_secs(120));
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
    let streamed = accumulator.finish();
    println!(
        "\nstream usage: {:?}, finish: {:?}",
        streamed.usage, streamed.finish_reason
    );
    Ok(())
}
