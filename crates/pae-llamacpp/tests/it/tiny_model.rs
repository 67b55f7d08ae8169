//! End-to-end tests of `LlamaCppModel` with the tiny test model
//! (SmolLM2-135M-Instruct, path in `PAE_TINY_MODEL`).
//!
//! Without `PAE_TINY_MODEL` the tests print why and pass, unless
//! `PAE_REQUIRE_SERVERS=1`, which makes them fail.

use std::sync::OnceLock;
use std::time::Instant;

use futures::StreamExt;
use pae_core::{
    ChatModel, ChatRequest, FinishReason, Message, ProviderError, ResponseFormat,
    StreamAccumulator, ToolChoice, ToolSpec,
};
use pae_llamacpp::{LlamaCppConfig, LlamaCppModel};
use serde_json::{Value, json};

/// The tiny model's path, or `None` (with the reason printed) when the
/// test should be skipped.
fn tiny_model_path() -> Option<String> {
    pae_conformance::env::require_env("PAE_TINY_MODEL")
}

/// One model shared by the tests of this module (they run on parallel
/// threads, so this also exercises the request queue).
fn tiny() -> Option<&'static LlamaCppModel> {
    static MODEL: OnceLock<LlamaCppModel> = OnceLock::new();
    let path = tiny_model_path()?;
    Some(MODEL.get_or_init(|| {
        LlamaCppModel::load(LlamaCppConfig::new(path).with_context_size(2048))
            .expect("the tiny model loads")
    }))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

fn user(text: &str) -> ChatRequest {
    ChatRequest::new(vec![Message::user(text)])
}

#[test]
fn generates_text_and_reports_usage() {
    let Some(model) = tiny() else { return };
    let started = Instant::now();
    let reply = runtime()
        .block_on(
            model.chat(
                user("Write one sentence about the sea.")
                    .with_max_tokens(48)
                    .with_temperature(0.0),
            ),
        )
        .unwrap();
    eprintln!("{:?} in {:?}", reply.content(), started.elapsed());
    assert!(!reply.content().trim().is_empty());
    let usage = reply.usage.expect("usage is reported");
    assert!(usage.prompt_tokens > 5, "{usage:?}");
    assert!((1..=48).contains(&usage.completion_tokens), "{usage:?}");
    assert!(matches!(
        reply.finish_reason,
        FinishReason::Stop | FinishReason::Length
    ));
    if usage.completion_tokens < 48 {
        assert_eq!(reply.finish_reason, FinishReason::Stop);
    }
}

#[test]
fn max_tokens_limits_generation_and_reports_length() {
    let Some(model) = tiny() else { return };
    let reply = runtime()
        .block_on(
            model.chat(
                user("Tell me a long story about a dragon and a knight.")
                    .with_max_tokens(5)
                    .with_temperature(0.0),
            ),
        )
        .unwrap();
    assert_eq!(reply.usage.unwrap().completion_tokens, 5);
    assert_eq!(reply.finish_reason, FinishReason::Length);
}

#[test]
fn identical_output_twice_at_temperature_zero() {
    let Some(model) = tiny() else { return };
    let rt = runtime();
    let request = user("List three fruits.")
        .with_temperature(0.0)
        .with_seed(7)
        .with_max_tokens(40);
    let first = rt.block_on(model.chat(request.clone())).unwrap();
    // Something else in between, so the prompt cache holds other tokens.
    rt.block_on(model.chat(user("Name a colour.").with_max_tokens(8)))
        .unwrap();
    let second = rt.block_on(model.chat(request.clone())).unwrap();
    let third = rt.block_on(model.chat(request)).unwrap();
    assert_eq!(first.content(), second.content());
    assert_eq!(first.content(), third.content());
    assert!(!first.content().is_empty());
}

#[test]
fn seeded_sampling_repeats_itself() {
    let Some(model) = tiny() else { return };
    let rt = runtime();
    let request = user("Invent a name for a cat.")
        .with_temperature(0.9)
        .with_seed(42)
        .with_max_tokens(24);
    let first = rt.block_on(model.chat(request.clone())).unwrap();
    let second = rt.block_on(model.chat(request)).unwrap();
    assert_eq!(first.content(), second.content());
}

#[test]
fn stop_sequences_cut_the_output() {
    let Some(model) = tiny() else { return };
    let rt = runtime();
    let request = user("Count from 1 to 20, separated by commas.")
        .with_temperature(0.0)
        .with_max_tokens(80);
    let full = rt.block_on(model.chat(request.clone())).unwrap();
    let text = full.content().to_owned();
    // A stop sequence taken from the middle of the free reply.
    let words: Vec<&str> = text.split_whitespace().collect();
    assert!(words.len() >= 4, "the reply is too short to test: {text:?}");
    let stop = words[words.len() / 2].to_owned();
    let cut = rt
        .block_on(model.chat(request.with_stop([stop.clone(), "never-appears".to_owned()])))
        .unwrap();
    let expected = &text[..text.find(&stop).unwrap()];
    eprintln!("stop {stop:?}: {:?}", cut.content());
    assert_eq!(cut.content(), expected);
    assert!(!cut.content().contains(&stop));
    assert_eq!(cut.finish_reason, FinishReason::Stop);
    assert!(
        cut.usage.unwrap().completion_tokens < full.usage.unwrap().completion_tokens,
        "generation did not stop early"
    );
}

#[test]
fn streaming_matches_chat_and_honours_stop() {
    let Some(model) = tiny() else { return };
    let rt = runtime();
    let request = user("Describe a forest in two sentences.")
        .with_temperature(0.0)
        .with_max_tokens(40);
    let whole = rt.block_on(model.chat(request.clone())).unwrap();
    let (chunks, streamed) = rt.block_on(async {
        let mut stream = model.stream(request.clone()).await.unwrap();
        let mut acc = StreamAccumulator::new();
        let mut chunks = 0;
        while let Some(chunk) = stream.next().await {
            acc.push(&chunk.unwrap());
            chunks += 1;
        }
        (chunks, acc.finish())
    });
    assert_eq!(streamed.content(), whole.content());
    assert_eq!(streamed.usage, whole.usage);
    assert!(chunks > 3, "only {chunks} chunks");

    let words: Vec<&str> = whole.content().split_whitespace().collect();
    let stop = words[words.len() / 2].to_owned();
    let streamed = rt.block_on(async {
        let mut stream = model
            .stream(request.with_stop([stop.clone()]))
            .await
            .unwrap();
        let mut acc = StreamAccumulator::new();
        while let Some(chunk) = stream.next().await {
            acc.push(&chunk.unwrap());
        }
        acc.finish()
    });
    let content = whole.content();
    assert_eq!(streamed.content(), &content[..content.find(&stop).unwrap()]);
}

fn plan_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "title": {"type": "string", "maxLength": 60},
            "steps": {
                "type": "array",
                "items": {"type": "string", "maxLength": 80},
                "minItems": 1,
                "maxItems": 4
            },
            "difficulty": {"type": "integer", "minimum": 1, "maximum": 5}
        },
        "required": ["title", "steps", "difficulty"],
        "additionalProperties": false
    })
}

/// Checks a value against `plan_schema` by hand.
fn matches_plan_schema(value: &Value) -> Result<(), String> {
    let object = value.as_object().ok_or("not an object")?;
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    if keys != ["difficulty", "steps", "title"] {
        return Err(format!("keys {keys:?}"));
    }
    let title = object["title"].as_str().ok_or("title is not a string")?;
    if title.chars().count() > 60 {
        return Err("title too long".into());
    }
    let steps = object["steps"].as_array().ok_or("steps is not an array")?;
    if !(1..=4).contains(&steps.len()) {
        return Err(format!("{} steps", steps.len()));
    }
    for step in steps {
        let step = step.as_str().ok_or("a step is not a string")?;
        if step.chars().count() > 80 {
            return Err("step too long".into());
        }
    }
    let difficulty = object["difficulty"]
        .as_i64()
        .ok_or("difficulty is not an integer")?;
    if !(1..=5).contains(&difficulty) {
        return Err(format!("difficulty {difficulty}"));
    }
    Ok(())
}

#[test]
fn json_schema_output_parses_for_twenty_prompts() {
    let Some(model) = tiny() else { return };
    let objectives = [
        "bake bread",
        "plant a tree",
        "learn to juggle",
        "paint a room",
        "write a poem",
        "fix a bicycle tyre",
        "plan a birthday party",
        "make tea",
        "clean a kitchen",
        "train for a 5k run",
        "build a bookshelf",
        "start a vegetable garden",
        "prepare for a job interview",
        "organise a closet",
        "wash a car",
        "learn ten words of Spanish",
        "set up a fish tank",
        "cook pasta",
        "write a cover letter",
        "pack for a camping trip",
    ];
    let rt = runtime();
    let started = Instant::now();
    let mut failures = Vec::new();
    for (i, objective) in objectives.iter().enumerate() {
        let request = ChatRequest::new(vec![
            Message::system("You plan tasks. Reply with JSON only."),
            Message::user(format!("Make a short plan to {objective}.")),
        ])
        .with_response_format(ResponseFormat::json_schema("plan", plan_schema()))
        .with_temperature(0.7)
        .with_seed(i as u64)
        .with_max_tokens(400);
        let reply = rt.block_on(model.chat(request)).unwrap();
        let parsed = serde_json::from_str::<Value>(reply.content())
            .map_err(|e| e.to_string())
            .and_then(|v| matches_plan_schema(&v));
        if let Err(reason) = parsed {
            failures.push(format!("{objective}: {reason}: {:?}", reply.content()));
        }
        assert_eq!(
            reply.finish_reason,
            FinishReason::Stop,
            "{:?}",
            reply.content()
        );
    }
    eprintln!("20 schema replies in {:?}", started.elapsed());
    assert!(failures.is_empty(), "{failures:#?}");
}

fn tools() -> Vec<ToolSpec> {
    vec![
        ToolSpec {
            name: "calculator".into(),
            description: "Evaluates an arithmetic expression.".into(),
            parameters: json!({
                "type": "object",
                "properties": {"expression": {"type": "string"}},
                "required": ["expression"]
            }),
        },
        ToolSpec {
            name: "current_time".into(),
            description: "Returns the current time.".into(),
            parameters: json!({"type": "object", "properties": {}}),
        },
    ]
}

#[test]
fn forced_tool_call_is_parsed_into_a_tool_call() {
    let Some(model) = tiny() else { return };
    let rt = runtime();
    let request = user("What is 17 * 23?")
        .with_tools(tools())
        .with_tool_choice(ToolChoice::Tool("calculator".into()))
        .with_temperature(0.0);
    let reply = rt.block_on(model.chat(request)).unwrap();
    assert_eq!(reply.finish_reason, FinishReason::ToolCalls);
    assert_eq!(reply.message.tool_calls.len(), 1, "{reply:?}");
    let call = &reply.message.tool_calls[0];
    assert_eq!(call.name, "calculator");
    assert!(call.arguments["expression"].is_string(), "{call:?}");
    assert!(call.id.starts_with("call_"));
    assert!(reply.usage.is_some());

    // Required: some tool, whichever.
    let request = user("What time is it?")
        .with_tools(tools())
        .with_tool_choice(ToolChoice::Required)
        .with_temperature(0.0);
    let reply = rt.block_on(model.chat(request)).unwrap();
    assert_eq!(reply.message.tool_calls.len(), 1, "{reply:?}");
    assert!(["calculator", "current_time"].contains(&reply.message.tool_calls[0].name.as_str()));

    // None: tools are ignored.
    let request = user("Say hi.")
        .with_tools(tools())
        .with_tool_choice(ToolChoice::None)
        .with_temperature(0.0)
        .with_max_tokens(16);
    let reply = rt.block_on(model.chat(request)).unwrap();
    assert!(reply.message.tool_calls.is_empty());
    assert!(!reply.content().is_empty());
}

#[test]
fn tool_results_in_the_history_are_answered() {
    let Some(model) = tiny() else { return };
    let call = pae_core::ToolCall::new("call_1", "calculator", json!({"expression": "17*23"}));
    let request = ChatRequest::new(vec![
        Message::user("What is 17 * 23?"),
        Message::assistant_tool_calls("", vec![call]),
        Message::tool("call_1", "calculator", "391"),
    ])
    .with_tools(tools())
    .with_tool_choice(ToolChoice::None)
    .with_temperature(0.0)
    .with_max_tokens(32);
    let reply = runtime().block_on(model.chat(request)).unwrap();
    assert!(!reply.content().trim().is_empty());
}

#[test]
fn prompt_longer_than_the_context_is_an_invalid_request() {
    let Some(model) = tiny() else { return };
    let long = "lorem ipsum dolor sit amet ".repeat(2000);
    let err = runtime()
        .block_on(model.chat(user(&long).with_max_tokens(4)))
        .unwrap_err();
    assert!(
        matches!(&err, ProviderError::InvalidRequest { reason } if reason.contains("context")),
        "{err:?}"
    );
    // The worker is still fine afterwards.
    let reply = runtime()
        .block_on(model.chat(user("Hi").with_max_tokens(4)))
        .unwrap();
    assert!(reply.usage.is_some());
}

#[test]
fn invalid_requests_fail_without_reaching_the_model() {
    let Some(model) = tiny() else { return };
    let rt = runtime();
    let err = rt.block_on(model.chat(ChatRequest::default())).unwrap_err();
    assert!(
        matches!(err, ProviderError::InvalidRequest { .. }),
        "{err:?}"
    );
    let err = rt
        .block_on(
            model.chat(
                user("hi")
                    .with_tools(tools())
                    .with_tool_choice(ToolChoice::Tool("missing".into())),
            ),
        )
        .unwrap_err();
    assert!(
        matches!(err, ProviderError::InvalidRequest { .. }),
        "{err:?}"
    );
    let err = rt.block_on(model.chat(user("nul \0 byte"))).unwrap_err();
    assert!(
        matches!(err, ProviderError::InvalidRequest { .. }),
        "{err:?}"
    );
}

#[test]
fn concurrent_requests_are_all_answered_like_sequential_ones() {
    let Some(path) = tiny_model_path() else {
        return;
    };
    let model = LlamaCppModel::load(
        LlamaCppConfig::new(path)
            .with_context_size(1024)
            .with_workers(2),
    )
    .unwrap();
    let prompts = [
        "Name a fruit.",
        "Name a river.",
        "Name a planet.",
        "Name a tool.",
    ];
    let request = |p: &str| user(p).with_temperature(0.0).with_max_tokens(12);
    let rt = runtime();
    let started = Instant::now();
    let concurrent = rt.block_on(futures::future::join_all(
        prompts.iter().map(|p| model.chat(request(p))),
    ));
    eprintln!(
        "4 concurrent requests on 2 workers in {:?}",
        started.elapsed()
    );
    for (prompt, reply) in prompts.iter().zip(concurrent) {
        let reply = reply.unwrap();
        let alone = rt.block_on(model.chat(request(prompt))).unwrap();
        assert_eq!(reply.content(), alone.content(), "{prompt}");
    }
}

#[test]
fn dropping_a_stream_cancels_generation() {
    let Some(model) = tiny() else { return };
    let rt = runtime();
    rt.block_on(async {
        let mut stream = model
            .stream(user("Write a very long essay about rivers.").with_max_tokens(2000))
            .await
            .unwrap();
        let first = stream.next().await.unwrap().unwrap();
        assert!(first.finish_reason.is_none());
        drop(stream);
        // The worker moves on: the next request is answered promptly.
        let started = Instant::now();
        let reply = model.chat(user("Hi").with_max_tokens(4)).await.unwrap();
        assert!(reply.usage.is_some());
        assert!(started.elapsed().as_secs() < 30);
    });
}
