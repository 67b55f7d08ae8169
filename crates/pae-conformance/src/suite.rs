//! The checks themselves and the runner that calls them in order, sharing
//! replies between checks so a slow local model answers as few requests as
//! possible.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Instant;

use futures::{FutureExt, StreamExt};
use pae_core::{
    ChatChunk, ChatModel, ChatRequest, ChatResponse, FinishReason, Message, ProviderError,
    ProviderErrorKind, ResponseFormat, Sampling, StreamAccumulator, ToolCall, ToolChoice, ToolSpec,
    error_chain,
};
use pae_schema::json_schema;
use serde_json::{Value, json};

use crate::{Check, CheckResult, Options, Outcome, Report};

/// Prompts whose replies the stop checks cut; the stop text is picked from
/// the model's own reply, so any reply of a few words will do.
const STOP_PROMPTS: [&str; 3] = [
    "Count from 1 to 20, separated by commas. Write only the numbers.",
    "Repeat this line exactly: the quick brown fox jumps over the lazy dog",
    "Name five colours, separated by commas.",
];
const PLAIN_PROMPT: &str = "Say hello in one short sentence.";
const LONG_PROMPT: &str =
    "Write a long story about a dragon who learns to cook. Use at least 300 words.";
const TOOL_PROMPT: &str = "What is the weather in Paris? Use the get_weather tool.";
const TOOL_NAME: &str = "get_weather";
const TOOL_CALL_ID: &str = "call_conformance_1";
const JSON_PROMPT: &str = "Is water wet? Reply with a JSON object whose key \"answer\" is \
    \"yes\" or \"no\" and whose key \"sure\" is true or false.";

/// Runs every check of the suite against `model` and reports one result per
/// check, in the order of [`Check::ALL`].
///
/// Checks for capabilities the model does not claim, and checks named in
/// [`Options::skip`], are skipped. Each request is limited to
/// [`Options::request_timeout`], and a panic inside the adapter fails the
/// check instead of the caller. Must run inside a Tokio runtime with the
/// time driver (any `#[tokio::test]` has it).
///
/// `model` may be the adapter itself, a reference to it, or an
/// `Arc<dyn ChatModel>`.
pub async fn run<M>(model: &M, options: &Options) -> Report
where
    M: ChatModel + ?Sized,
{
    let started = Instant::now();
    let mut suite = Suite {
        model,
        options,
        baselines: vec![None; STOP_PROMPTS.len()],
        probe: None,
        plain: None,
        streamed: None,
        results: Vec::with_capacity(Check::ALL.len()),
    };
    for check in Check::ALL {
        suite.run_check(check).await;
    }
    Report {
        model: model.model_name(),
        capabilities: model.capabilities(),
        results: suite.results,
        elapsed: started.elapsed(),
    }
}

/// A check's verdict: the outcome and, when it passed, what was seen.
struct Verdict {
    outcome: Outcome,
    detail: String,
}

fn pass(detail: impl Into<String>) -> Verdict {
    Verdict {
        outcome: Outcome::Passed,
        detail: detail.into(),
    }
}

fn fail(reason: impl Into<String>) -> Verdict {
    Verdict {
        outcome: Outcome::Failed {
            reason: reason.into(),
        },
        detail: String::new(),
    }
}

/// A stop sequence chosen from a reply to one of [`STOP_PROMPTS`], with the
/// text a compliant model returns when it is set.
#[derive(Clone)]
struct StopProbe {
    request: ChatRequest,
    stop: String,
    expected: String,
}

/// A stream collected to its end.
#[derive(Clone)]
struct Streamed {
    chunks: Vec<ChatChunk>,
    response: ChatResponse,
}

impl Streamed {
    fn text_chunks(&self) -> usize {
        self.chunks
            .iter()
            .filter(|chunk| !chunk.delta.is_empty())
            .count()
    }

    fn finish_reason(&self) -> Option<&FinishReason> {
        self.chunks
            .iter()
            .rev()
            .find_map(|chunk| chunk.finish_reason.as_ref())
    }
}

struct Suite<'a, M: ?Sized> {
    model: &'a M,
    options: &'a Options,
    /// Replies to [`STOP_PROMPTS`] without a stop sequence.
    baselines: Vec<Option<Result<ChatResponse, String>>>,
    probe: Option<StopProbe>,
    plain: Option<Result<ChatResponse, String>>,
    /// The stream of the first baseline request.
    streamed: Option<Result<Streamed, String>>,
    results: Vec<CheckResult>,
}

impl<M: ChatModel + ?Sized> Suite<'_, M> {
    async fn run_check(&mut self, check: Check) {
        let started = Instant::now();
        let skipped = self
            .options
            .skip_reason(check)
            .map(|reason| format!("skipped by the caller: {reason}"))
            .or_else(|| {
                check
                    .not_applicable(self.model.capabilities())
                    .map(String::from)
            });
        let verdict = match skipped {
            Some(reason) => Verdict {
                outcome: Outcome::Skipped { reason },
                detail: String::new(),
            },
            None => match check {
                Check::PlainReply => self.plain_reply().await,
                Check::StopSequence => self.stop_sequence().await,
                Check::MaxTokens => self.max_tokens().await,
                Check::Usage => self.usage().await,
                Check::StreamMatchesChat => self.stream_matches_chat().await,
                Check::StreamIncremental => self.stream_incremental().await,
                Check::StreamStopSequence => self.stream_stop_sequence().await,
                Check::ToolCall => self.tool_call().await,
                Check::StreamToolCall => self.stream_tool_call().await,
                Check::ToolResult => self.tool_result().await,
                Check::JsonSchema => self.json_schema().await,
                Check::InvalidRequestRejected => self.invalid_request_rejected().await,
                Check::UnreachableEndpoint => self.unreachable_endpoint().await,
            },
        };
        self.results.push(CheckResult {
            check,
            outcome: verdict.outcome,
            detail: verdict.detail,
            elapsed: started.elapsed(),
        });
    }

    // ----- requests -----

    fn request(&self, messages: Vec<Message>, max_tokens: u32) -> ChatRequest {
        ChatRequest::new(messages).with_sampling(Sampling {
            temperature: Some(0.0),
            top_p: None,
            max_tokens: Some(max_tokens),
            seed: Some(self.options.seed),
        })
    }

    fn tool_request(&self) -> ChatRequest {
        self.request(
            vec![Message::user(TOOL_PROMPT)],
            self.options.structured_max_tokens,
        )
        .with_tools(vec![weather_tool()])
        .with_tool_choice(ToolChoice::Tool(TOOL_NAME.into()))
    }

    /// Runs `future` within the time limit, turning a timeout or a panic into
    /// a reason.
    async fn guarded<T>(&self, future: impl Future<Output = T>) -> Result<T, String> {
        let limit = self.options.request_timeout;
        match tokio::time::timeout(limit, AssertUnwindSafe(future).catch_unwind()).await {
            Err(_) => Err(format!("no answer within {limit:?}")),
            Ok(Err(panic)) => Err(format!("the adapter panicked: {}", panic_text(&*panic))),
            Ok(Ok(value)) => Ok(value),
        }
    }

    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, String> {
        self.guarded(self.model.chat(request))
            .await?
            .map_err(|error| format!("the request failed: {}", describe(&error)))
    }

    /// Collects a stream. The outer error is a timeout or a panic; the inner
    /// one is the provider's error, with where in the stream it came.
    async fn stream_raw(
        &self,
        request: ChatRequest,
    ) -> Result<Result<Vec<ChatChunk>, (String, ProviderError)>, String> {
        let collect = async {
            let mut stream = match self.model.stream(request).await {
                Ok(stream) => stream,
                Err(error) => return Err(("the stream could not start".to_owned(), error)),
            };
            let mut chunks = Vec::new();
            while let Some(item) = stream.next().await {
                match item {
                    Ok(chunk) => chunks.push(chunk),
                    Err(error) => {
                        return Err((
                            format!("the stream failed after {} chunks", chunks.len()),
                            error,
                        ));
                    }
                }
            }
            Ok(chunks)
        };
        self.guarded(collect).await
    }

    async fn stream(&self, request: ChatRequest) -> Result<Streamed, String> {
        let chunks = self
            .stream_raw(request)
            .await?
            .map_err(|(place, error)| format!("{place}: {}", describe(&error)))?;
        let mut accumulator = StreamAccumulator::new();
        for chunk in &chunks {
            accumulator.push(chunk);
        }
        Ok(Streamed {
            chunks,
            response: accumulator.finish(),
        })
    }

    async fn baseline(&mut self, index: usize) -> Result<ChatResponse, String> {
        if let Some(Some(done)) = self.baselines.get(index) {
            return done.clone();
        }
        let prompt = STOP_PROMPTS.get(index).copied().unwrap_or_default();
        let reply = self
            .chat(self.request(vec![Message::user(prompt)], self.options.max_tokens))
            .await;
        if let Some(slot) = self.baselines.get_mut(index) {
            *slot = Some(reply.clone());
        }
        reply
    }

    fn baseline_request(&self, index: usize) -> ChatRequest {
        let prompt = STOP_PROMPTS.get(index).copied().unwrap_or_default();
        self.request(vec![Message::user(prompt)], self.options.max_tokens)
    }

    async fn plain(&mut self) -> Result<ChatResponse, String> {
        if let Some(done) = &self.plain {
            return done.clone();
        }
        let reply = self
            .chat(self.request(vec![Message::user(PLAIN_PROMPT)], self.options.max_tokens))
            .await;
        self.plain = Some(reply.clone());
        reply
    }

    async fn streamed(&mut self) -> Result<Streamed, String> {
        if let Some(done) = &self.streamed {
            return done.clone();
        }
        let streamed = self.stream(self.baseline_request(0)).await;
        self.streamed = Some(streamed.clone());
        streamed
    }

    /// The stop probe found by [`Check::StopSequence`], or a new one when
    /// that check was skipped or found none.
    async fn probe(&mut self) -> Result<StopProbe, String> {
        if let Some(probe) = &self.probe {
            return Ok(probe.clone());
        }
        let mut notes = Vec::new();
        for index in 0..STOP_PROMPTS.len() {
            match self.baseline(index).await {
                Ok(reply) => match choose_stop(reply.content()) {
                    Some((stop, at)) => {
                        let probe = StopProbe {
                            request: self.baseline_request(index).with_stop([stop.as_str()]),
                            expected: reply.content()[..at].to_owned(),
                            stop,
                        };
                        self.probe = Some(probe.clone());
                        return Ok(probe);
                    }
                    None => notes.push(format!(
                        "no stop text can be chosen from the reply {}",
                        quote(reply.content())
                    )),
                },
                Err(reason) => notes.push(reason),
            }
        }
        Err(notes.join("; "))
    }

    // ----- checks -----

    async fn plain_reply(&mut self) -> Verdict {
        let reply = match self.plain().await {
            Ok(reply) => reply,
            Err(reason) => return fail(reason),
        };
        if reply.content().trim().is_empty() {
            return fail(format!(
                "the reply has no text (finish reason {:?})",
                reply.finish_reason
            ));
        }
        if !reply.message.tool_calls.is_empty() {
            return fail(format!(
                "a request without tools got tool calls: {:?}",
                reply.message.tool_calls
            ));
        }
        if reply.message.role != pae_core::Role::Assistant {
            return fail(format!(
                "the reply's role is {}, not assistant",
                reply.message.role
            ));
        }
        if !matches!(
            reply.finish_reason,
            FinishReason::Stop | FinishReason::Length
        ) {
            return fail(format!(
                "the finish reason is {:?}, not stop or length",
                reply.finish_reason
            ));
        }
        pass(format!(
            "{} (finish {:?})",
            quote(reply.content()),
            reply.finish_reason
        ))
    }

    async fn stop_sequence(&mut self) -> Verdict {
        let mut notes = Vec::new();
        for index in 0..STOP_PROMPTS.len() {
            let baseline = match self.baseline(index).await {
                Ok(reply) => reply,
                Err(reason) => return fail(format!("without a stop sequence: {reason}")),
            };
            let Some((stop, at)) = choose_stop(baseline.content()) else {
                notes.push(format!(
                    "prompt {}: no stop text can be chosen from {}",
                    index + 1,
                    quote(baseline.content())
                ));
                continue;
            };
            let probe = StopProbe {
                request: self.baseline_request(index).with_stop([stop.as_str()]),
                expected: baseline.content()[..at].to_owned(),
                stop,
            };
            if self.probe.is_none() {
                self.probe = Some(probe.clone());
            }
            let stopped = match self.chat(probe.request.clone()).await {
                Ok(reply) => reply,
                Err(reason) => {
                    return fail(format!("with the stop sequence {:?}: {reason}", probe.stop));
                }
            };
            if stopped.content().contains(&probe.stop) {
                return fail(format!(
                    "the stop text {:?} appears in the reply {}",
                    probe.stop,
                    quote(stopped.content())
                ));
            }
            if stopped.content().trim_end() == probe.expected.trim_end() {
                self.probe = Some(probe.clone());
                return pass(format!(
                    "stop {:?} cut {} to {} (finish {:?})",
                    probe.stop,
                    quote(baseline.content()),
                    quote(stopped.content()),
                    stopped.finish_reason
                ));
            }
            notes.push(format!(
                "prompt {}: with stop {:?} the reply was {}, expected {}",
                index + 1,
                probe.stop,
                quote(stopped.content()),
                quote(&probe.expected)
            ));
        }
        fail(format!(
            "no reply was shown cut at its stop sequence (temperature 0 with a seed must \
             repeat a reply): {}",
            notes.join("; ")
        ))
    }

    async fn max_tokens(&mut self) -> Verdict {
        let limit = self.options.length_limit;
        let request = self.request(vec![Message::user(LONG_PROMPT)], limit);
        let reply = match self.chat(request).await {
            Ok(reply) => reply,
            Err(reason) => return fail(reason),
        };
        let words = reply.content().split_whitespace().count();
        if let Some(usage) = reply.usage
            && usage.completion_tokens > u64::from(limit)
        {
            return fail(format!(
                "{} completion tokens reported for a limit of {limit}",
                usage.completion_tokens
            ));
        }
        // A word takes at least one token; twice the limit leaves room for
        // tokenizers that split oddly while still catching an ignored limit.
        if words > 2 * usize::try_from(limit).unwrap_or(usize::MAX / 2) {
            return fail(format!(
                "{words} words for a limit of {limit} tokens: {}",
                quote(reply.content())
            ));
        }
        if !matches!(
            reply.finish_reason,
            FinishReason::Length | FinishReason::Stop
        ) {
            return fail(format!(
                "the finish reason is {:?}, not length",
                reply.finish_reason
            ));
        }
        let tokens = reply.usage.map_or_else(
            || "usage not reported".to_owned(),
            |usage| format!("{} completion tokens", usage.completion_tokens),
        );
        pass(format!(
            "limit {limit}: {} ({tokens}, finish {:?})",
            quote(reply.content()),
            reply.finish_reason
        ))
    }

    async fn usage(&mut self) -> Verdict {
        let reply = match self.plain().await {
            Ok(reply) => reply,
            Err(reason) => return fail(format!("no reply to inspect: {reason}")),
        };
        let Some(usage) = reply.usage else {
            return fail("the reply reports no usage");
        };
        if usage.prompt_tokens == 0 {
            return fail(format!("0 prompt tokens reported ({usage:?})"));
        }
        if usage.completion_tokens == 0 && !reply.content().is_empty() {
            return fail(format!(
                "0 completion tokens reported for the reply {}",
                quote(reply.content())
            ));
        }
        pass(format!(
            "{} prompt + {} completion tokens",
            usage.prompt_tokens, usage.completion_tokens
        ))
    }

    async fn stream_matches_chat(&mut self) -> Verdict {
        let chat = match self.baseline(0).await {
            Ok(reply) => reply,
            Err(reason) => return fail(format!("the chat reply to compare with failed: {reason}")),
        };
        let streamed = match self.streamed().await {
            Ok(streamed) => streamed,
            Err(reason) => return fail(reason),
        };
        let text = streamed.response.content();
        if text.trim() != chat.content().trim() {
            return fail(format!(
                "the chunks join to {}, but chat answered {}",
                quote(text),
                quote(chat.content())
            ));
        }
        let Some(finish) = streamed.finish_reason() else {
            return fail(format!(
                "none of the {} chunks carries a finish reason",
                streamed.chunks.len()
            ));
        };
        if *finish != chat.finish_reason {
            return fail(format!(
                "the stream finished with {finish:?}, chat with {:?}",
                chat.finish_reason
            ));
        }
        if !streamed.response.message.tool_calls.is_empty() {
            return fail(format!(
                "the stream has tool calls chat did not make: {:?}",
                streamed.response.message.tool_calls
            ));
        }
        let usage = if streamed.response.usage.is_some() {
            "usage on the stream"
        } else {
            "no usage on the stream"
        };
        pass(format!(
            "{} chunks joined to {} (finish {finish:?}, {usage})",
            streamed.chunks.len(),
            quote(text)
        ))
    }

    async fn stream_incremental(&mut self) -> Verdict {
        let streamed = match self.streamed().await {
            Ok(streamed) => streamed,
            Err(reason) => return fail(reason),
        };
        let words = streamed.response.content().split_whitespace().count();
        if words < 2 {
            return fail(format!(
                "the streamed reply {} is too short to show streaming",
                quote(streamed.response.content())
            ));
        }
        let pieces = streamed.text_chunks();
        if pieces < 2 {
            return fail(format!(
                "streaming is claimed, but the {words}-word reply came in {pieces} text chunk(s)"
            ));
        }
        pass(format!("{words} words in {pieces} text chunks"))
    }

    async fn stream_stop_sequence(&mut self) -> Verdict {
        let probe = match self.probe().await {
            Ok(probe) => probe,
            Err(reason) => return fail(format!("no stop sequence could be set up: {reason}")),
        };
        let streamed = match self.stream(probe.request.clone()).await {
            Ok(streamed) => streamed,
            Err(reason) => return fail(reason),
        };
        let text = streamed.response.content();
        if text.contains(&probe.stop) {
            return fail(format!(
                "the stop text {:?} appears in the streamed reply {}",
                probe.stop,
                quote(text)
            ));
        }
        if text.trim_end() != probe.expected.trim_end() {
            return fail(format!(
                "with stop {:?} the stream gave {}, expected {}",
                probe.stop,
                quote(text),
                quote(&probe.expected)
            ));
        }
        pass(format!(
            "stop {:?}: {} in {} chunks",
            probe.stop,
            quote(text),
            streamed.chunks.len()
        ))
    }

    async fn tool_call(&mut self) -> Verdict {
        match self.chat(self.tool_request()).await {
            Ok(reply) => judge_tool_calls(&reply),
            Err(reason) => fail(reason),
        }
    }

    async fn stream_tool_call(&mut self) -> Verdict {
        let streamed = match self.stream(self.tool_request()).await {
            Ok(streamed) => streamed,
            Err(reason) => return fail(reason),
        };
        // The accumulator fills in missing ids, so look at the raw fragments.
        let deltas = streamed.chunks.iter().flat_map(|chunk| &chunk.tool_calls);
        let mut indices: Vec<usize> = deltas.clone().map(|delta| delta.index).collect();
        indices.sort_unstable();
        indices.dedup();
        for index in indices {
            let has_id = deltas.clone().any(|d| {
                d.index == index && d.id.as_deref().is_some_and(|id| !id.trim().is_empty())
            });
            if !has_id {
                return fail(format!(
                    "no fragment of streamed tool call {index} carries an id"
                ));
            }
        }
        let verdict = judge_tool_calls(&streamed.response);
        if verdict.outcome.is_passed() {
            pass(format!(
                "{} in {} chunks",
                verdict.detail,
                streamed.chunks.len()
            ))
        } else {
            verdict
        }
    }

    async fn tool_result(&mut self) -> Verdict {
        let call = ToolCall::new(TOOL_CALL_ID, TOOL_NAME, json!({"city": "Paris"}));
        let request = self
            .request(
                vec![
                    Message::user("What is the weather in Paris?"),
                    Message::assistant_tool_calls("", vec![call]),
                    Message::tool(TOOL_CALL_ID, TOOL_NAME, "Sunny, 22 degrees Celsius."),
                ],
                self.options.max_tokens,
            )
            .with_tools(vec![weather_tool()]);
        let reply = match self.chat(request).await {
            Ok(reply) => reply,
            Err(reason) => return fail(reason),
        };
        if reply.content().trim().is_empty() && reply.message.tool_calls.is_empty() {
            return fail(format!(
                "the reply to the tool result is empty (finish {:?})",
                reply.finish_reason
            ));
        }
        if reply.content().trim().is_empty() {
            pass(format!(
                "answered with {} new tool call(s)",
                reply.message.tool_calls.len()
            ))
        } else {
            pass(quote(reply.content()))
        }
    }

    async fn json_schema(&mut self) -> Verdict {
        let schema = answer_schema();
        let request = self
            .request(
                vec![Message::user(JSON_PROMPT)],
                self.options.structured_max_tokens,
            )
            .with_response_format(ResponseFormat::json_schema("answer", schema.clone()));
        let reply = match self.chat(request).await {
            Ok(reply) => reply,
            Err(reason) => return fail(reason),
        };
        let value: Value = match serde_json::from_str(reply.content().trim()) {
            Ok(value) => value,
            Err(error) => {
                return fail(format!(
                    "the reply is not JSON ({error}): {} (finish {:?})",
                    quote(reply.content()),
                    reply.finish_reason
                ));
            }
        };
        let violations = json_schema::validate(&schema, &value);
        if !violations.is_empty() {
            let violations: Vec<String> = violations.iter().map(ToString::to_string).collect();
            return fail(format!(
                "{value} does not match the schema: {}",
                violations.join("; ")
            ));
        }
        pass(value.to_string())
    }

    async fn invalid_request_rejected(&mut self) -> Verdict {
        let mut seen = Vec::new();
        let empty = self.request(Vec::new(), self.options.max_tokens);
        match self.guarded(self.model.chat(empty.clone())).await {
            Err(reason) => return fail(format!("chat without messages: {reason}")),
            Ok(Ok(reply)) => {
                return fail(format!(
                    "chat without messages was answered {} instead of failing with a \
                     ProviderError (see ChatRequest::validate)",
                    quote(reply.content())
                ));
            }
            Ok(Err(error)) => seen.push(format!("no messages: {}", kind_name(&error))),
        }
        match self.stream_raw(empty).await {
            Err(reason) => return fail(format!("stream without messages: {reason}")),
            Ok(Ok(chunks)) => {
                let text: String = chunks.iter().map(|chunk| chunk.delta.as_str()).collect();
                return fail(format!(
                    "stream without messages ended normally with {} instead of an error",
                    quote(&text)
                ));
            }
            Ok(Err((place, error))) => seen.push(format!(
                "stream without messages: {} ({place})",
                kind_name(&error)
            )),
        }
        if self.model.capabilities().native_tools {
            let unknown = self
                .request(vec![Message::user(TOOL_PROMPT)], self.options.max_tokens)
                .with_tools(vec![weather_tool()])
                .with_tool_choice(ToolChoice::Tool("no_such_tool".into()));
            match self.guarded(self.model.chat(unknown)).await {
                Err(reason) => return fail(format!("forcing an unknown tool: {reason}")),
                Ok(Ok(reply)) => {
                    return fail(format!(
                        "forcing a tool that is not offered was answered ({} text, {} tool \
                         calls) instead of failing",
                        quote(reply.content()),
                        reply.message.tool_calls.len()
                    ));
                }
                Ok(Err(error)) => seen.push(format!("unknown forced tool: {}", kind_name(&error))),
            }
        }
        pass(seen.join("; "))
    }

    async fn unreachable_endpoint(&mut self) -> Verdict {
        let Some(unreachable) = self.options.unreachable.clone() else {
            return Verdict {
                outcome: Outcome::Skipped {
                    reason: "no unreachable model given (Options::with_unreachable)".into(),
                },
                detail: String::new(),
            };
        };
        let request = self.request(vec![Message::user(PLAIN_PROMPT)], self.options.max_tokens);
        match self.guarded(unreachable.chat(request)).await {
            Err(reason) => fail(reason),
            Ok(Ok(reply)) => fail(format!(
                "the unreachable model answered {}",
                quote(reply.content())
            )),
            Ok(Err(error))
                if matches!(
                    error.kind(),
                    ProviderErrorKind::Connection | ProviderErrorKind::Timeout
                ) =>
            {
                pass(format!(
                    "{} (retryable: {})",
                    error_chain(&error),
                    error.is_retryable()
                ))
            }
            Ok(Err(error)) => fail(format!(
                "expected a Connection or Timeout error, got {}: {}",
                kind_name(&error),
                error_chain(&error)
            )),
        }
    }
}

fn weather_tool() -> ToolSpec {
    ToolSpec {
        name: TOOL_NAME.into(),
        description: "Get the current weather in a city.".into(),
        parameters: json!({
            "type": "object",
            "properties": {"city": {"type": "string", "description": "The city's name"}},
            "required": ["city"]
        }),
    }
}

fn answer_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "answer": {"type": "string", "enum": ["yes", "no"]},
            "sure": {"type": "boolean"}
        },
        "required": ["answer", "sure"],
        "additionalProperties": false
    })
}

/// The tool calls of a reply to [`Suite::tool_request`]: at least one, the
/// first naming the forced tool, each with a JSON object of arguments and a
/// non-empty id, ids distinct.
fn judge_tool_calls(reply: &ChatResponse) -> Verdict {
    let calls = &reply.message.tool_calls;
    let Some(first) = calls.first() else {
        return fail(format!(
            "no tool call in the reply (finish {:?}, text {})",
            reply.finish_reason,
            quote(reply.content())
        ));
    };
    if first.name != TOOL_NAME {
        return fail(format!(
            "the forced tool is {TOOL_NAME:?}, but the call names {:?}",
            first.name
        ));
    }
    for call in calls {
        if !call.arguments.is_object() {
            return fail(format!(
                "the arguments of {:?} are not a JSON object: {}",
                call.name, call.arguments
            ));
        }
        if call.id.trim().is_empty() {
            return fail(format!("the call of {:?} has an empty id", call.name));
        }
    }
    let mut ids: Vec<&str> = calls.iter().map(|call| call.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.len() != calls.len() {
        return fail(format!("tool-call ids repeat: {calls:?}"));
    }
    pass(format!(
        "{}({}) id {:?}",
        first.name, first.arguments, first.id
    ))
}

/// Picks a stop text from `text`: a word whose first occurrence has visible
/// text before it, as near the middle as possible. Returns the word and the
/// byte offset where a compliant model cuts.
fn choose_stop(text: &str) -> Option<(String, usize)> {
    let middle = text.len() / 2;
    let mut best: Option<(&str, usize)> = None;
    for (start, word) in words(text) {
        if text[..start].trim().is_empty() || text.find(word) != Some(start) {
            continue;
        }
        if best.is_none_or(|(_, at)| start.abs_diff(middle) < at.abs_diff(middle)) {
            best = Some((word, start));
        }
    }
    best.map(|(word, at)| (word.to_owned(), at))
}

/// The maximal runs of alphanumeric characters of `text`, with their byte
/// offsets.
fn words(text: &str) -> Vec<(usize, &str)> {
    let mut found = Vec::new();
    let mut start = None;
    for (at, c) in text.char_indices() {
        match (c.is_alphanumeric(), start) {
            (true, None) => start = Some(at),
            (false, Some(begin)) => {
                found.push((begin, &text[begin..at]));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(begin) = start {
        found.push((begin, &text[begin..]));
    }
    found
}

/// `text` in quotes, shortened to 80 characters.
fn quote(text: &str) -> String {
    const MAX: usize = 80;
    if text.chars().count() <= MAX {
        format!("{text:?}")
    } else {
        let head: String = text.chars().take(MAX).collect();
        format!("{head:?}…")
    }
}

/// An error with its sources and, for HTTP errors and unparsable replies,
/// the start of the body the provider sent.
pub(crate) fn describe(error: &ProviderError) -> String {
    let text = error_chain(error);
    match error {
        ProviderError::Http { body, .. } | ProviderError::InvalidResponse { body, .. }
            if !body.is_empty() =>
        {
            format!("{text} (body {})", quote(body))
        }
        _ => text,
    }
}

/// An error's kind by name, for reports: `Timeout`, `InvalidRequest`, …;
/// HTTP errors as `Http <status> (<kind>)`, such as `Http 429
/// (RateLimited)`.
pub(crate) fn kind_name(error: &ProviderError) -> String {
    match error.status() {
        Some(status) => format!("Http {status} ({:?})", error.kind()),
        None => format!("{:?}", error.kind()),
    }
}

pub(crate) fn panic_text(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(ToString::to_string)
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-text panic payload".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_stop(text: &str, expected: Option<(&str, &str)>) {
        let chosen = choose_stop(text);
        assert_eq!(
            chosen
                .as_ref()
                .map(|(stop, at)| (stop.as_str(), &text[..*at])),
            expected,
            "text {text:?}"
        );
    }

    #[test]
    fn stop_text_is_a_first_occurrence_near_the_middle() {
        check_stop(
            "1, 2, 3, 4, 5, 6, 7, 8, 9, 10",
            Some(("6", "1, 2, 3, 4, 5, ")),
        );
        check_stop("Hello there, friend", Some(("there", "Hello ")));
        check_stop("the cat and the dog", Some(("and", "the cat ")));
        check_stop("  one", None);
        check_stop("", None);
        check_stop("word word", None);
        check_stop("héllo wörld", Some(("wörld", "héllo ")));
    }

    #[test]
    fn words_split_on_non_alphanumerics() {
        assert_eq!(words("a, bc;d"), [(0, "a"), (3, "bc"), (6, "d")]);
        assert!(words(" ,;").is_empty());
    }

    #[test]
    fn quote_shortens_long_text() {
        assert_eq!(quote("hi"), "\"hi\"");
        let long = "x".repeat(100);
        assert_eq!(quote(&long), format!("\"{}\"…", "x".repeat(80)));
    }

    #[test]
    fn descriptions_show_the_body_of_http_errors() {
        let http = ProviderError::Http {
            status: 500,
            body: "template error".into(),
            retry_after: None,
        };
        assert_eq!(
            describe(&http),
            "the provider answered HTTP 500 (body \"template error\")"
        );
        assert_eq!(
            describe(&ProviderError::invalid_request("no messages")),
            "the request is invalid: no messages"
        );
    }

    #[test]
    fn kind_name_names_the_error_kind() {
        assert_eq!(
            kind_name(&ProviderError::invalid_request("x")),
            "InvalidRequest"
        );
        assert_eq!(
            kind_name(&ProviderError::Exhausted { requests: 1 }),
            "Exhausted"
        );
        let limited = ProviderError::Http {
            status: 429,
            body: String::new(),
            retry_after: None,
        };
        assert_eq!(kind_name(&limited), "Http 429 (RateLimited)");
    }

    #[test]
    fn tool_calls_are_judged_on_name_arguments_and_ids() {
        let call = |id: &str, name: &str, arguments: Value| ToolCall::new(id, name, arguments);
        let judge = |calls: Vec<ToolCall>| judge_tool_calls(&ChatResponse::tool_calls(calls));
        assert!(
            judge(vec![call("c1", TOOL_NAME, json!({"city": "Paris"}))])
                .outcome
                .is_passed()
        );
        assert!(judge(Vec::new()).outcome.is_failed());
        assert!(
            judge(vec![call("c1", "other", json!({}))])
                .outcome
                .is_failed()
        );
        assert!(
            judge(vec![call("c1", TOOL_NAME, json!("{oops"))])
                .outcome
                .is_failed()
        );
        assert!(
            judge(vec![call(" ", TOOL_NAME, json!({}))])
                .outcome
                .is_failed()
        );
        assert!(
            judge(vec![
                call("c1", TOOL_NAME, json!({})),
                call("c1", TOOL_NAME, json!({}))
            ])
            .outcome
            .is_failed()
        );
    }
}
