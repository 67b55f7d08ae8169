//! The runner that calls the checks in order, sharing replies between
//! checks so a slow local model answers as few requests as possible; the
//! checks themselves are in [`checks`].

pub(crate) mod check;
mod checks;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Instant;

use futures::{FutureExt, StreamExt};
use pae_core::{
    ChatChunk, ChatModel, ChatRequest, ChatResponse, FinishReason, Message, ProviderError,
    Sampling, StreamAccumulator, ToolChoice, ToolSpec,
};
use serde_json::{Value, json};

use crate::text::{choose_stop, describe, panic_text, quote};
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
pub(crate) struct Verdict {
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

/// One run of the suite: the model, the options, the replies the checks
/// share and the results so far.
pub(crate) struct Suite<'a, M: ?Sized> {
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
            None => self.dispatch(check).await,
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
