//! The checks of the suite, one method of [`Suite`] each (named as
//! [`Check::name`](crate::Check::name) spells the check), and the judging
//! of tool calls they share.

use pae_core::{
    ChatModel, ChatResponse, FinishReason, Message, ProviderErrorKind, ResponseFormat, ToolCall,
    ToolChoice, error_chain,
};
use pae_schema::json_schema;
use serde_json::{Value, json};

use super::{
    JSON_PROMPT, LONG_PROMPT, PLAIN_PROMPT, STOP_PROMPTS, StopProbe, Suite, TOOL_CALL_ID,
    TOOL_NAME, TOOL_PROMPT, Verdict, answer_schema, fail, pass, weather_tool,
};
use crate::Outcome;
use crate::text::{choose_stop, kind_name, quote};

impl<M: ChatModel + ?Sized> Suite<'_, M> {
    pub(crate) async fn plain_reply(&mut self) -> Verdict {
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

    pub(crate) async fn stop_sequence(&mut self) -> Verdict {
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

    pub(crate) async fn max_tokens(&mut self) -> Verdict {
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

    pub(crate) async fn usage(&mut self) -> Verdict {
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

    pub(crate) async fn stream_matches_chat(&mut self) -> Verdict {
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

    pub(crate) async fn stream_incremental(&mut self) -> Verdict {
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

    pub(crate) async fn stream_stop_sequence(&mut self) -> Verdict {
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

    pub(crate) async fn tool_call(&mut self) -> Verdict {
        match self.chat(self.tool_request()).await {
            Ok(reply) => judge_tool_calls(&reply),
            Err(reason) => fail(reason),
        }
    }

    pub(crate) async fn stream_tool_call(&mut self) -> Verdict {
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

    pub(crate) async fn tool_result(&mut self) -> Verdict {
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

    pub(crate) async fn json_schema(&mut self) -> Verdict {
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

    pub(crate) async fn invalid_request_rejected(&mut self) -> Verdict {
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

    pub(crate) async fn unreachable_endpoint(&mut self) -> Verdict {
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

#[cfg(test)]
mod tests {
    use super::*;

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
