//! [`LlamaCppModel`]: the [`ChatModel`] over a GGUF file.

use std::fmt;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use futures::StreamExt;
use futures::channel::{mpsc, oneshot};
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use pae_core::{
    Capabilities, ChatChunk, ChatModel, ChatRequest, ChatResponse, ChatStream, FinishReason,
    Message, ProviderError, TokenUsage, ToolCall, ToolCallDelta,
};

use crate::config::LlamaCppConfig;
use crate::engine::{
    ContextSettings, Engine, Finish, Generation, Job, JsonEnd, SamplingPlan, Sink, StreamEvent,
    backend, backend_error,
};
use crate::grammar;
use crate::prompt::{self, ToolMode};
use crate::rendered::{self, Prompt};

/// Byte size above which a prompt is refused before tokenising (llama.cpp
/// takes sizes as `i32`).
const MAX_PROMPT_BYTES: usize = (i32::MAX / 4) as usize;

/// A chat model running a GGUF file in-process through llama.cpp.
///
/// Cheap to clone: clones share the loaded weights and the worker queue.
/// Inference runs on dedicated worker threads (one per
/// [`LlamaCppConfig::with_workers`], default 1), never on the async
/// runtime's threads; requests beyond the number of workers wait in a FIFO
/// queue. Dropping a reply future or stream cancels its generation at the
/// next token.
///
/// Capabilities: JSON-schema output and native tool calls, both enforced
/// with a llama.cpp grammar, and real token streaming.
#[derive(Clone)]
pub struct LlamaCppModel {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    template: LlamaChatTemplate,
    name: String,
    context_size: u32,
    default_max_tokens: Option<u32>,
    default_temperature: f32,
    model: Arc<LlamaModel>,
}

impl fmt::Debug for LlamaCppModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LlamaCppModel")
            .field("name", &self.inner.name)
            .field("context_size", &self.inner.context_size)
            .finish_non_exhaustive()
    }
}

fn configuration(message: impl Into<String>) -> ProviderError {
    ProviderError::Configuration {
        message: message.into(),
    }
}

/// Checks that `path` is a readable GGUF file before llama.cpp sees it.
fn check_model_file(path: &Path) -> Result<(), ProviderError> {
    let shown = path.display();
    let mut file = std::fs::File::open(path).map_err(|err| match err.kind() {
        std::io::ErrorKind::NotFound => configuration(format!("model file {shown} not found")),
        _ => configuration(format!("model file {shown} cannot be opened: {err}")),
    })?;
    if path.is_dir() {
        return Err(configuration(format!(
            "model path {shown} is a directory, not a GGUF file"
        )));
    }
    let mut magic = [0u8; 4];
    match file.read_exact(&mut magic) {
        Ok(()) if &magic == b"GGUF" => Ok(()),
        Ok(()) | Err(_) => Err(configuration(format!(
            "{shown} is not a GGUF model file (no GGUF header)"
        ))),
    }
}

impl LlamaCppModel {
    /// Loads the model and starts its workers. Blocks for the load (about
    /// half a second for a 0.5B model); call it from
    /// `tokio::task::spawn_blocking` inside an async runtime.
    ///
    /// # Errors
    /// [`ProviderError::Configuration`] when the file is missing, unreadable
    /// or not a GGUF model llama.cpp can load, or the chat template is
    /// unusable; [`ProviderError::Backend`] when no context can be made.
    pub fn load(config: LlamaCppConfig) -> Result<Self, ProviderError> {
        let path = config.path();
        check_model_file(path)?;
        if path.to_str().is_none() {
            return Err(configuration(format!(
                "model path {} is not valid UTF-8, which llama.cpp requires",
                path.display()
            )));
        }
        let backend = backend();
        let model = LlamaModel::load_from_file(backend, path, &LlamaModelParams::default())
            .map_err(|err| {
                configuration(format!(
                    "llama.cpp could not load {}: {err}",
                    path.display()
                ))
            })?;
        let template = match config.chat_template() {
            Some(name) => LlamaChatTemplate::new(name)
                .map_err(|_| configuration("the chat template contains a NUL byte"))?,
            None => match model.chat_template(None) {
                Ok(template) => template,
                Err(_) => LlamaChatTemplate::new("chatml")
                    .map_err(|_| configuration("the chat template contains a NUL byte"))?,
            },
        };
        // Check the template once, so a bad one fails here, not per request.
        let probe = [LlamaChatMessage::new("user".into(), "hi".into())
            .map_err(|err| configuration(format!("cannot build a probe message: {err}")))?];
        model
            .apply_chat_template(&template, &probe, true)
            .map_err(|err| {
                configuration(format!(
                    "llama.cpp does not support this model's chat template ({err}); \
                     set one with LlamaCppConfig::with_chat_template"
                ))
            })?;

        let context_size = config.context_size().min(model.n_ctx_train().max(16));
        let settings = ContextSettings {
            n_ctx: context_size,
            n_batch: config.batch_size().min(context_size),
            threads: i32::try_from(config.threads()).unwrap_or(i32::MAX),
            prompt_cache: config.prompt_cache(),
            flash_attention: config.flash_attention(),
            disk_cache: config
                .prompt_cache_dir()
                .filter(|_| config.prompt_cache())
                .map(|dir| crate::disk_cache::DiskCache::new(dir, config.path())),
        };
        let model = Arc::new(model);
        let engine = Engine::start(&model, settings, config.workers())?;
        Ok(Self {
            inner: Arc::new(Inner {
                engine,
                template,
                name: config.name(),
                context_size,
                default_max_tokens: config.default_max_tokens(),
                default_temperature: config.default_temperature(),
                model,
            }),
        })
    }

    /// The context size in tokens, after clamping to what the model was
    /// trained with.
    pub fn context_size(&self) -> u32 {
        self.inner.context_size
    }

    /// The number of tokens `text` takes for this model as message content
    /// (plain text: `<|im_end|>` written in it is the characters it is, not
    /// the special token; no beginning-of-sequence token).
    pub fn count_tokens(&self, text: &str) -> usize {
        if text.len() > MAX_PROMPT_BYTES {
            return usize::MAX;
        }
        self.tokenize(text).len()
    }

    /// The token ids of `text` read as message content is read: as plain
    /// text, with special-token text such as `<|im_end|>` read as the
    /// characters it is, and no beginning-of-sequence token. Empty for text
    /// longer than any context could hold.
    pub fn tokenize(&self, text: &str) -> Vec<i32> {
        if text.len() > MAX_PROMPT_BYTES {
            return Vec::new();
        }
        self.inner
            .model
            .vocab()
            .tokenize(text.as_bytes(), false, false)
            .into_iter()
            .map(|token| token.0)
            .collect()
    }

    /// The prompt text the model reads for `request`: the messages (and tool
    /// descriptions) run through the chat template, ending with the opening
    /// of the assistant's turn.
    ///
    /// # Errors
    /// [`ProviderError::InvalidRequest`] for a request that names an unknown
    /// tool, has no messages or holds NUL bytes;
    /// [`ProviderError::Backend`] if the template fails.
    pub fn render_prompt(&self, request: &ChatRequest) -> Result<String, ProviderError> {
        let mode = ToolMode::of(request).map_err(ProviderError::invalid_request)?;
        Ok(self.render(request, &mode)?.text())
    }

    /// The token ids the model reads for `request`: the prompt of
    /// [`render_prompt`](Self::render_prompt), where only the chat
    /// template's own markers are special tokens; the messages' contents
    /// are read as plain text (see [`tokenize`](Self::tokenize)), so a
    /// message cannot end its turn or open another by writing
    /// `<|im_end|>`.
    ///
    /// # Errors
    /// As [`render_prompt`](Self::render_prompt).
    pub fn prompt_tokens(&self, request: &ChatRequest) -> Result<Vec<i32>, ProviderError> {
        let mode = ToolMode::of(request).map_err(ProviderError::invalid_request)?;
        let prompt = self.render(request, &mode)?;
        Ok(rendered::tokenize(&self.inner.model, &prompt)
            .into_iter()
            .map(|token| token.0)
            .collect())
    }

    fn render(&self, request: &ChatRequest, mode: &ToolMode<'_>) -> Result<Prompt, ProviderError> {
        if request.messages.is_empty() {
            return Err(ProviderError::invalid_request(
                "the request has no messages",
            ));
        }
        let turns = prompt::turns(request, mode);
        let size: usize = turns.iter().map(|t| t.content.len()).sum();
        if size > MAX_PROMPT_BYTES {
            return Err(ProviderError::invalid_request(format!(
                "the messages hold {size} bytes, far more than any context"
            )));
        }
        let contents: Vec<&str> = turns.iter().map(|t| t.content.as_str()).collect();
        rendered::render(&contents, |contents| {
            let messages = turns
                .iter()
                .zip(contents)
                .map(|(turn, content)| {
                    LlamaChatMessage::new(turn.role.to_owned(), (*content).to_owned())
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| ProviderError::invalid_request("a message contains a NUL byte"))?;
            self.inner
                .model
                .apply_chat_template(&self.inner.template, &messages, true)
                .map_err(|err| backend_error(format!("the chat template failed: {err}")))
        })
    }

    fn job(&self, request: &ChatRequest, sink: Sink) -> Result<(Job, Vec<String>), ProviderError> {
        let mode = ToolMode::of(request).map_err(ProviderError::invalid_request)?;
        let prompt = self.render(request, &mode)?;
        let grammar =
            grammar::for_request(request.response_format.as_ref(), &mode).map_err(|err| {
                ProviderError::Unsupported {
                    feature: format!("{} as a llama.cpp grammar ({})", err.what, err.reason),
                }
            })?;
        let json_end = match (&mode, &request.response_format) {
            (ToolMode::Required(_), _) | (_, Some(_)) => JsonEnd::Always,
            (ToolMode::Auto(_), None) => JsonEnd::IfObject,
            (ToolMode::Off | ToolMode::Disabled, None) => JsonEnd::Never,
        };
        let tool_names: Vec<String> = mode.tools().iter().map(|t| t.name.clone()).collect();
        let sampling = &request.sampling;
        let job = Job {
            prompt,
            stop: request.stop.clone(),
            grammar,
            sampling: SamplingPlan {
                temperature: sampling
                    .temperature
                    .unwrap_or(self.inner.default_temperature),
                top_p: sampling.top_p,
                max_tokens: sampling.max_tokens.or(self.inner.default_max_tokens),
                seed: sampling.seed.map_or_else(fresh_seed, |s| {
                    // llama.cpp seeds are 32-bit; fold the high half in.
                    (s ^ (s >> 32)) as u32
                }),
            },
            json_end,
            hold_back_objects: !tool_names.is_empty(),
            sink,
        };
        Ok((job, tool_names))
    }
}

fn fresh_seed() -> u32 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mixed = nanos ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (mixed ^ (mixed >> 32)) as u32
}

/// A new tool-call id, unique within the process.
fn call_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("call_{:08x}{n}", fresh_seed())
}

/// The tool call in `text`, if it is one: `{"name": <a tool>, "arguments": …}`.
fn parse_tool_call(text: &str, tools: &[String]) -> Option<ToolCall> {
    let trimmed = text.trim();
    if tools.is_empty() || !trimmed.starts_with('{') {
        return None;
    }
    let value: serde_json::Value = serde_json::from_str(trimmed).ok()?;
    let name = value.get("name")?.as_str()?;
    if !tools.iter().any(|t| t == name) {
        return None;
    }
    let arguments = value
        .get("arguments")
        .cloned()
        .unwrap_or_else(|| serde_json::Value::Object(serde_json::Map::new()));
    Some(ToolCall::new(call_id(), name, arguments))
}

fn usage(generation: &Generation) -> TokenUsage {
    TokenUsage::new(generation.prompt_tokens, generation.completion_tokens)
}

fn finish_reason(finish: Finish) -> FinishReason {
    match finish {
        Finish::Stop => FinishReason::Stop,
        Finish::Length => FinishReason::Length,
    }
}

fn response(generation: Generation, tools: &[String]) -> ChatResponse {
    let usage = usage(&generation);
    match parse_tool_call(&generation.text, tools) {
        Some(call) => ChatResponse::tool_calls(vec![call]).with_usage(usage),
        None => ChatResponse {
            message: Message::assistant(generation.text),
            usage: Some(usage),
            finish_reason: finish_reason(generation.finish),
        },
    }
}

#[async_trait]
impl ChatModel for LlamaCppModel {
    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, ProviderError> {
        let (tx, rx) = oneshot::channel();
        let (job, tools) = self.job(&request, Sink::Whole(tx))?;
        self.inner.engine.submit(job)?;
        let generation = rx
            .await
            .map_err(|_| backend_error("the llama.cpp worker stopped without an answer"))??;
        Ok(response(generation, &tools))
    }

    /// Streams text as it is generated. Text that could still become a stop
    /// sequence is held back until it cannot; a tool call arrives whole in
    /// the last chunk.
    async fn stream(&self, request: ChatRequest) -> Result<ChatStream, ProviderError> {
        let (tx, rx) = mpsc::unbounded();
        let (job, tools) = self.job(&request, Sink::Stream(tx))?;
        self.inner.engine.submit(job)?;
        let mut ended = false;
        let stream = rx
            .map(move |event| match event {
                StreamEvent::Delta(delta) => Ok(ChatChunk {
                    delta,
                    ..ChatChunk::default()
                }),
                StreamEvent::Done(Err(err)) => Err(err),
                StreamEvent::Done(Ok(generation)) => Ok(last_chunk(generation, &tools)),
            })
            .take_while(move |item| {
                // Stop after the final chunk or the first error.
                let keep = !ended;
                ended = ended
                    || item.is_err()
                    || item.as_ref().is_ok_and(|c| c.finish_reason.is_some());
                futures::future::ready(keep)
            });
        Ok(Box::pin(stream))
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            native_tools: true,
            json_schema: true,
            streaming: true,
        }
    }

    fn model_name(&self) -> String {
        self.inner.name.clone()
    }
}

fn last_chunk(generation: Generation, tools: &[String]) -> ChatChunk {
    let usage = Some(usage(&generation));
    match parse_tool_call(&generation.text, tools) {
        Some(call) => ChatChunk {
            delta: String::new(),
            tool_calls: vec![ToolCallDelta {
                index: 0,
                id: Some(call.id),
                name: Some(call.name),
                arguments: call.arguments.to_string(),
            }],
            usage,
            finish_reason: Some(FinishReason::ToolCalls),
        },
        None => ChatChunk {
            delta: generation.unsent,
            tool_calls: Vec::new(),
            usage,
            finish_reason: Some(finish_reason(generation.finish)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tool_calls_are_recognised_only_for_offered_tools() {
        let tools = vec!["calculator".to_owned()];
        let call = parse_tool_call(
            r#" {"name": "calculator", "arguments": {"expression": "2+2"}}"#,
            &tools,
        )
        .unwrap();
        assert_eq!(call.name, "calculator");
        assert_eq!(call.arguments, json!({"expression": "2+2"}));
        assert!(call.id.starts_with("call_"));
        assert!(parse_tool_call(r#"{"name": "other", "arguments": {}}"#, &tools).is_none());
        assert!(parse_tool_call("The answer is 4.", &tools).is_none());
        assert!(parse_tool_call(r#"{"name": "calculator""#, &tools).is_none());
        assert!(parse_tool_call(r#"{"name": "calculator"}"#, &[]).is_none());
    }

    /// Without special-token text in the messages, the prompt reads as the
    /// same tokens as the whole rendered string with special tokens parsed
    /// (as it was read before messages were kept apart). Needs
    /// `PAE_TINY_MODEL` (any GGUF chat model); skipped without it.
    #[test]
    fn benign_prompts_read_as_the_whole_string_does() {
        let Some(path) = std::env::var("PAE_TINY_MODEL")
            .ok()
            .filter(|p| !p.trim().is_empty())
        else {
            eprintln!("skipping: PAE_TINY_MODEL is not set");
            return;
        };
        let model = LlamaCppModel::load(LlamaCppConfig::new(path).with_context_size(512)).unwrap();
        let call = ToolCall::new("call_1", "read_file", json!({"path": "notes.txt"}));
        let tool = pae_core::ToolSpec {
            name: "read_file".into(),
            description: "Reads a file.".into(),
            parameters: json!({"type": "object", "properties": {"path": {"type": "string"}}}),
        };
        let requests = [
            ChatRequest::new(vec![Message::user("Hello")]),
            ChatRequest::new(vec![Message::user("  spaced out \n\n")]),
            ChatRequest::new(vec![Message::user(
                "\nstarts on a new line: ünïcödé, 数字 123",
            )]),
            ChatRequest::new(vec![
                Message::system("Be brief."),
                Message::user("Read notes.txt."),
                Message::assistant_tool_calls("", vec![call]),
                Message::tool("call_1", "read_file", "line one\nline two"),
                Message::assistant("Done."),
                Message::user(""),
            ])
            .with_tools(vec![tool]),
        ];
        for request in &requests {
            let prompt = model
                .render(request, &ToolMode::of(request).unwrap())
                .unwrap();
            let whole = model
                .inner
                .model
                .vocab()
                .tokenize(prompt.text().as_bytes(), true, true);
            assert_eq!(
                rendered::tokenize(&model.inner.model, &prompt),
                whole,
                "{:?}",
                prompt.text()
            );
        }
    }

    #[test]
    fn call_ids_are_unique() {
        let a = call_id();
        let b = call_id();
        assert_ne!(a, b);
    }

    #[test]
    fn missing_and_invalid_files_are_configuration_errors() {
        let err = LlamaCppModel::load(LlamaCppConfig::new("/nonexistent/model.gguf")).unwrap_err();
        assert!(
            matches!(&err, ProviderError::Configuration { message } if message.contains("not found")),
            "{err:?}"
        );
        let dir = std::env::temp_dir();
        let err = LlamaCppModel::load(LlamaCppConfig::new(&dir)).unwrap_err();
        assert!(
            matches!(err, ProviderError::Configuration { .. }),
            "{err:?}"
        );
        let file = dir.join(format!("pae-llamacpp-not-gguf-{}.gguf", std::process::id()));
        std::fs::write(&file, b"definitely not a model").unwrap();
        let err = LlamaCppModel::load(LlamaCppConfig::new(&file)).unwrap_err();
        let _ = std::fs::remove_file(&file);
        assert!(
            matches!(&err, ProviderError::Configuration { message } if message.contains("GGUF")),
            "{err:?}"
        );
    }
}
