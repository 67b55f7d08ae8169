//! The suite can fail: adapters broken in one way each fail exactly the
//! checks about that part of the contract and pass the others.

use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use pae_conformance::{Check, Options, Report, reference_model};
use pae_core::adapter::chunk_from_response;
use pae_core::test_util::ScriptedModel;
use pae_core::{Capabilities, ChatModel, ChatRequest, ChatResponse, ChatStream, ProviderError};

/// One way of breaking the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Never sends the stop sequences to the model.
    IgnoresStop,
    /// Claims native tools, but never sends the tools to the model.
    ClaimsToolsItLacks,
    /// Loses the usage the model reported.
    DropsUsage,
    /// Never sends `max_tokens` to the model.
    IgnoresMaxTokens,
    /// Claims streaming, but delivers each reply as one chunk.
    SingleChunkStream,
    /// Loses the first text chunk of every stream.
    DropsFirstStreamChunk,
    /// Loses tool-call ids.
    DropsToolCallIds,
    /// Claims JSON schema, but never sends the response format.
    IgnoresResponseFormat,
    /// Indexes the first message without looking.
    PanicsOnEmptyMessages,
    /// Answers a request without messages.
    AnswersEmptyRequests,
    /// Never answers.
    Hangs,
}

/// The reference model behind an adapter with one fault.
struct Broken {
    inner: ScriptedModel,
    fault: Fault,
}

impl Broken {
    fn new(fault: Fault) -> Self {
        Self {
            inner: reference_model(),
            fault,
        }
    }

    /// The request as the faulty adapter passes it on.
    fn forward(&self, mut request: ChatRequest) -> Result<ChatRequest, ProviderError> {
        match self.fault {
            Fault::IgnoresStop => request.stop.clear(),
            Fault::ClaimsToolsItLacks => {
                request.validate()?;
                request.tools.clear();
                request.tool_choice = None;
            }
            Fault::IgnoresMaxTokens => request.sampling.max_tokens = None,
            Fault::IgnoresResponseFormat => request.response_format = None,
            Fault::PanicsOnEmptyMessages => {
                // Looks at the first message without checking there is one.
                let _first_role = request.messages[0].role;
            }
            _ => {}
        }
        Ok(request)
    }
}

#[async_trait]
impl ChatModel for Broken {
    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, ProviderError> {
        match self.fault {
            Fault::Hangs => futures::future::pending().await,
            Fault::AnswersEmptyRequests if request.messages.is_empty() => {
                return Ok(ChatResponse::text("Hello!"));
            }
            _ => {}
        }
        let mut reply = self.inner.chat(self.forward(request)?).await?;
        match self.fault {
            Fault::DropsUsage => reply.usage = None,
            Fault::DropsToolCallIds => {
                for call in &mut reply.message.tool_calls {
                    call.id.clear();
                }
            }
            _ => {}
        }
        Ok(reply)
    }

    async fn stream(&self, request: ChatRequest) -> Result<ChatStream, ProviderError> {
        match self.fault {
            Fault::Hangs => futures::future::pending().await,
            Fault::SingleChunkStream => {
                let reply = self.chat(request).await?;
                return Ok(Box::pin(futures::stream::once(async move {
                    Ok(chunk_from_response(reply))
                })));
            }
            Fault::AnswersEmptyRequests if request.messages.is_empty() => {
                return Ok(Box::pin(futures::stream::once(async {
                    Ok(chunk_from_response(ChatResponse::text("Hello!")))
                })));
            }
            _ => {}
        }
        let stream = self.inner.stream(self.forward(request)?).await?;
        let fault = self.fault;
        let mut dropped = false;
        Ok(Box::pin(stream.filter_map(move |item| {
            let item = match item {
                Ok(mut chunk) => match fault {
                    Fault::DropsUsage => {
                        chunk.usage = None;
                        Some(Ok(chunk))
                    }
                    Fault::DropsToolCallIds => {
                        for delta in &mut chunk.tool_calls {
                            delta.id = None;
                        }
                        Some(Ok(chunk))
                    }
                    Fault::DropsFirstStreamChunk if !dropped && !chunk.delta.is_empty() => {
                        dropped = true;
                        None
                    }
                    _ => Some(Ok(chunk)),
                },
                Err(error) => Some(Err(error)),
            };
            futures::future::ready(item)
        })))
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    fn model_name(&self) -> String {
        format!("{:?}", self.fault)
    }
}

async fn run(fault: Fault) -> Report {
    pae_conformance::run(&Broken::new(fault), &Options::default()).await
}

/// Asserts that exactly `failing` failed and everything else passed (the
/// unreachable-endpoint check is skipped: no unreachable model is given).
fn assert_fails_exactly(report: &Report, failing: &[Check]) {
    println!("{report}");
    assert_eq!(report.failed(), failing, "\n{report}");
    assert_eq!(report.skipped(), [Check::UnreachableEndpoint], "\n{report}");
    assert_eq!(
        report.passed().len(),
        Check::ALL.len() - failing.len() - 1,
        "\n{report}"
    );
}

fn reason(report: &Report, check: Check) -> String {
    report
        .outcome(check)
        .and_then(|outcome| outcome.reason())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn ignoring_stop_sequences_fails_both_stop_checks() {
    let report = run(Fault::IgnoresStop).await;
    assert_fails_exactly(&report, &[Check::StopSequence, Check::StreamStopSequence]);
    assert!(
        reason(&report, Check::StopSequence).starts_with("the stop text "),
        "{}",
        reason(&report, Check::StopSequence)
    );
    assert!(reason(&report, Check::StreamStopSequence).contains("appears in the streamed reply"));
}

#[tokio::test]
async fn claiming_tool_calls_it_lacks_fails_the_tool_call_checks() {
    let report = run(Fault::ClaimsToolsItLacks).await;
    assert_fails_exactly(&report, &[Check::ToolCall, Check::StreamToolCall]);
    assert!(reason(&report, Check::ToolCall).starts_with("no tool call in the reply"));
}

#[tokio::test]
async fn dropping_usage_fails_the_usage_check() {
    let report = run(Fault::DropsUsage).await;
    assert_fails_exactly(&report, &[Check::Usage]);
    assert_eq!(reason(&report, Check::Usage), "the reply reports no usage");
}

#[tokio::test]
async fn ignoring_max_tokens_fails_the_max_tokens_check() {
    let report = run(Fault::IgnoresMaxTokens).await;
    assert_fails_exactly(&report, &[Check::MaxTokens]);
    assert!(
        reason(&report, Check::MaxTokens).contains("completion tokens reported for a limit of 4"),
        "{}",
        reason(&report, Check::MaxTokens)
    );
}

#[tokio::test]
async fn a_single_chunk_stream_fails_when_streaming_is_claimed() {
    let report = run(Fault::SingleChunkStream).await;
    assert_fails_exactly(&report, &[Check::StreamIncremental]);
    assert!(reason(&report, Check::StreamIncremental).contains("came in 1 text chunk(s)"));
}

#[tokio::test]
async fn losing_stream_chunks_fails_the_stream_checks() {
    let report = run(Fault::DropsFirstStreamChunk).await;
    assert_fails_exactly(
        &report,
        &[Check::StreamMatchesChat, Check::StreamStopSequence],
    );
    assert!(reason(&report, Check::StreamMatchesChat).contains("but chat answered"));
}

#[tokio::test]
async fn losing_tool_call_ids_fails_the_tool_call_checks() {
    let report = run(Fault::DropsToolCallIds).await;
    assert_fails_exactly(&report, &[Check::ToolCall, Check::StreamToolCall]);
    assert!(reason(&report, Check::ToolCall).contains("has an empty id"));
    assert!(reason(&report, Check::StreamToolCall).contains("carries an id"));
}

#[tokio::test]
async fn ignoring_the_response_format_fails_the_json_schema_check() {
    let report = run(Fault::IgnoresResponseFormat).await;
    assert_fails_exactly(&report, &[Check::JsonSchema]);
    assert!(reason(&report, Check::JsonSchema).starts_with("the reply is not JSON"));
}

#[tokio::test]
async fn panicking_on_empty_messages_fails_without_crashing_the_suite() {
    let report = run(Fault::PanicsOnEmptyMessages).await;
    assert_fails_exactly(&report, &[Check::InvalidRequestRejected]);
    assert!(
        reason(&report, Check::InvalidRequestRejected)
            .contains("the adapter panicked: index out of bounds"),
        "{}",
        reason(&report, Check::InvalidRequestRejected)
    );
}

#[tokio::test]
async fn answering_a_request_without_messages_fails() {
    let report = run(Fault::AnswersEmptyRequests).await;
    assert_fails_exactly(&report, &[Check::InvalidRequestRejected]);
    assert!(reason(&report, Check::InvalidRequestRejected).contains("was answered \"Hello!\""));
}

#[tokio::test]
async fn a_model_that_never_answers_fails_every_check_it_runs() {
    let options = Options::default().with_request_timeout(Duration::from_millis(20));
    let report = pae_conformance::run(&Broken::new(Fault::Hangs), &options).await;
    assert_eq!(report.skipped(), [Check::UnreachableEndpoint], "\n{report}");
    assert_eq!(report.failed().len(), Check::ALL.len() - 1, "\n{report}");
    assert!(reason(&report, Check::PlainReply).contains("no answer within 20ms"));
    assert!(!report.all_passed());
}

#[tokio::test]
async fn an_unreachable_endpoint_must_fail_with_a_connection_error() {
    let answers = ScriptedModel::from_fn(|_| "I answered anyway".into());
    let options = Options::default().with_unreachable(answers);
    let report = pae_conformance::run(&reference_model(), &options).await;
    assert_eq!(report.failed(), [Check::UnreachableEndpoint], "\n{report}");
    assert!(reason(&report, Check::UnreachableEndpoint).contains("answered \"I answered anyway\""));

    let http = ScriptedModel::from_fn(|_| {
        ProviderError::Http {
            status: 404,
            body: "not found".into(),
            retry_after: None,
        }
        .into()
    });
    let report = pae_conformance::run(
        &reference_model(),
        &Options::default().with_unreachable(http),
    )
    .await;
    assert_eq!(report.failed(), [Check::UnreachableEndpoint], "\n{report}");
    assert!(
        reason(&report, Check::UnreachableEndpoint)
            .starts_with("expected a Connection or Timeout error, got Http")
    );
}

#[tokio::test]
#[should_panic(
    expected = "conformance check(s) failed for `IgnoresStop`: stop_sequence, stream_stop_sequence"
)]
async fn assert_all_passed_panics_for_a_broken_adapter() {
    run(Fault::IgnoresStop).await.assert_all_passed();
}
