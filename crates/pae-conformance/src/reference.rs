//! The reference model: a [`ScriptedModel`] whose replies keep the whole
//! contract, so the suite has a known-good subject and adapter authors a
//! model to compare theirs with.

use pae_core::adapter::cut_at_stop;
use pae_core::test_util::{ScriptedModel, ScriptedReply};
use pae_core::{
    Capabilities, ChatRequest, ChatResponse, FinishReason, ResponseFormat, Role, TokenUsage,
    ToolCall, ToolChoice,
};

use pae_schema::json_schema as schema;

/// A [`ScriptedModel`] answering with [`reference_reply`] that claims every
/// capability (native tools, JSON schema, streaming) and is named
/// `reference`. It passes every check of the suite.
///
/// ```
/// use pae_core::{ChatModel, ChatRequest, FinishReason, Message};
///
/// let model = pae_conformance::reference_model();
/// let request = ChatRequest::new(vec![Message::user("one two three four")]).with_max_tokens(3);
/// let reply = futures::executor::block_on(model.chat(request)).unwrap();
/// assert_eq!(reply.content(), "You said: one ");
/// assert_eq!(reply.finish_reason, FinishReason::Length);
/// assert_eq!(reply.usage.unwrap().completion_tokens, 3);
/// ```
pub fn reference_model() -> ScriptedModel {
    ScriptedModel::from_fn(reference_reply)
        .with_capabilities(Capabilities {
            native_tools: true,
            json_schema: true,
            streaming: true,
        })
        .with_name("reference")
}

/// How a correct model answers `request`, with a space-separated word
/// standing in for a token:
///
/// - an invalid request ([`ChatRequest::validate`]) is an error;
/// - a forced tool call ([`ToolChoice::Tool`] or [`ToolChoice::Required`])
///   calls the tool with arguments made from its parameter schema;
/// - a JSON-schema response format yields a value matching the schema;
/// - after a tool result the reply quotes it; otherwise it is
///   `You said: ` and the last user message;
/// - text is cut at `max_tokens` words (finish reason `Length`) and before
///   the earliest stop sequence (finish reason `Stop`), and usage counts the
///   words sent and returned.
pub fn reference_reply(request: &ChatRequest) -> ScriptedReply {
    if let Err(error) = request.validate() {
        return ScriptedReply::Error(error);
    }
    let prompt_tokens = request
        .messages
        .iter()
        .map(|message| message.content.split_whitespace().count() as u64 + 1)
        .sum();
    let forced = match &request.tool_choice {
        Some(ToolChoice::Tool(name)) => request.tools.iter().find(|tool| &tool.name == name),
        Some(ToolChoice::Required) => request.tools.first(),
        _ => None,
    };
    if let Some(tool) = forced {
        let arguments = schema::example(&tool.parameters);
        let completion = arguments.to_string().split_whitespace().count() as u64 + 1;
        let call = ToolCall::new(
            format!("call_{}", request.messages.len()),
            tool.name.clone(),
            arguments,
        );
        return ScriptedReply::Response(
            ChatResponse::tool_calls(vec![call])
                .with_usage(TokenUsage::new(prompt_tokens, completion)),
        );
    }
    let text = match &request.response_format {
        Some(ResponseFormat::JsonSchema { schema, .. }) => schema::example(schema).to_string(),
        Some(ResponseFormat::JsonObject) => String::from("{}"),
        None => match request.messages.last() {
            Some(last) if last.role == Role::Tool => {
                format!("The tool answered: {}", last.content)
            }
            _ => {
                let said = request
                    .messages
                    .iter()
                    .rev()
                    .find(|message| message.role == Role::User)
                    .map_or("", |message| message.content.as_str());
                format!("You said: {said}")
            }
        },
    };
    let limit = request
        .sampling
        .max_tokens
        .map_or(usize::MAX, |max| usize::try_from(max).unwrap_or(usize::MAX));
    let generated: String = text.split_inclusive(' ').take(limit).collect();
    let truncated = generated.len() < text.len();
    let kept = cut_at_stop(&generated, &request.stop);
    let finish_reason = if kept.len() < generated.len() || !truncated {
        FinishReason::Stop
    } else {
        FinishReason::Length
    };
    let completion = kept.split_inclusive(' ').count() as u64;
    let mut response =
        ChatResponse::text(kept).with_usage(TokenUsage::new(prompt_tokens, completion));
    response.finish_reason = finish_reason;
    ScriptedReply::Response(response)
}
