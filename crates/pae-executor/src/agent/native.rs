//! The native tool-calling protocol: tool specifications in the request,
//! tool calls in the reply, each result sent back as a tool message with
//! its call id; a reply without calls is the answer. Small models that
//! write their calls as text (JSON or `<tool_call>` blocks) instead are
//! honoured, and a call to a `final_answer` function answers.

use std::collections::HashSet;

use pae_core::output::strip_reasoning;
use pae_core::{
    ChatRequest, ChatResponse, ExecError, Message, StepInput, ToolCall, ToolChoice, ToolInvocation,
};
use serde_json::Value;

use super::AgentExecutor;
use super::arguments::ArgumentSource;
use super::state::{Finish, StepPrompt, StepRun};
use super::toolbox::Toolbox;
use crate::action::{Action, ActionParseError, is_final_answer, parse_action};
use crate::prompt;

/// The most tool calls run from one native-mode reply written as text.
const MAX_TEXT_CALLS: usize = 16;

/// The system message: no tool list (the request carries the tools).
pub(super) fn system_prompt(preamble: &str, tools: &Toolbox) -> String {
    prompt::native_system_prompt(preamble, !tools.is_empty())
}

/// A request carrying the tools, if there are any.
fn request_with(agent: &AgentExecutor, messages: Vec<Message>) -> ChatRequest {
    let request = ChatRequest::new(messages).with_sampling(agent.settings.sampling);
    if agent.tools.is_empty() {
        request
    } else {
        request
            .with_tools(agent.tools.specs())
            .with_tool_choice(ToolChoice::Auto)
    }
}

/// The messages of the next request: the system and step messages, then
/// the conversation so far.
fn messages(
    agent: &AgentExecutor,
    step: &StepPrompt<'_>,
    run: &StepRun,
    extra: usize,
) -> Result<Vec<Message>, ExecError> {
    let mut messages = Vec::with_capacity(2 + run.messages.len() + extra);
    messages.push(Message::system(agent.system_prompt.clone()));
    messages.push(Message::user(agent.step_message(step, "")?));
    messages.extend(run.messages.iter().cloned());
    Ok(messages)
}

/// The request of the next iteration.
pub(super) fn request(
    agent: &AgentExecutor,
    step: &StepPrompt<'_>,
    run: &StepRun,
) -> Result<ChatRequest, ExecError> {
    Ok(request_with(agent, messages(agent, step, run, 0)?))
}

/// The last request under "generate" early stopping: the conversation,
/// the instruction to answer now, and no tool to call.
pub(super) fn final_request(
    agent: &AgentExecutor,
    step: &StepPrompt<'_>,
    run: &StepRun,
    reason: &str,
) -> Result<ChatRequest, ExecError> {
    let mut messages = messages(agent, step, run, 1)?;
    messages.push(Message::user(prompt::generate_native(reason)));
    let mut request = request_with(agent, messages);
    if !request.tools.is_empty() {
        request.tool_choice = Some(ToolChoice::None);
    }
    Ok(request)
}

/// Acts on a reply: runs its tool calls (at most the per-reply limit), or
/// reads a reply without calls as the answer, a call written as text, or
/// a broken one to feed back.
pub(super) async fn on_reply(
    agent: &AgentExecutor,
    input: &StepInput,
    run: &mut StepRun,
    response: ChatResponse,
) -> Result<Option<Finish>, ExecError> {
    let Message {
        content,
        mut tool_calls,
        ..
    } = response.message;
    if !tool_calls.is_empty() {
        let limit = agent.settings.max_calls_per_reply.max(1);
        let total = tool_calls.len();
        tool_calls.truncate(limit);
        let tool_calls = with_unique_ids(tool_calls, run.iterations);
        // A call to a "final_answer" function (models trained on agent
        // frameworks that have one) answers, when it is the only kind.
        let only_answers = tool_calls.iter().all(|c| is_final_answer(&c.name));
        if only_answers
            && let Some(answer) = tool_calls
                .iter()
                .find_map(|c| final_call_answer(&c.arguments))
        {
            return Ok(Some(Finish::from_value(answer)));
        }
        run.messages.push(Message::assistant_tool_calls(
            content.clone(),
            tool_calls.clone(),
        ));
        for call in tool_calls {
            let observation = if is_final_answer(&call.name) {
                // Every call needs its result message; an answer given
                // next to tool calls, or without a value, is not taken.
                refuse_final_call(input, run, &call, &content, only_answers)
            } else {
                agent
                    .call_tool(
                        input,
                        run,
                        &call.name,
                        call.arguments,
                        &content,
                        ArgumentSource::Native,
                    )
                    .await?;
                recorded_observation(run)
            };
            run.messages
                .push(Message::tool(call.id, call.name, observation));
        }
        note_calls_over_limit(run, total, limit);
        return Ok(None);
    }
    // A reasoning model's thoughts are neither the answer nor a call.
    let visible = strip_reasoning(&content);
    let text = visible.trim();
    if text.is_empty() {
        let observation = agent.parse_failure(run, &ActionParseError::Empty, &content)?;
        run.messages.push(Message::user(observation));
        return Ok(None);
    }
    // Small models often write the call as JSON text instead of a
    // native call; honour it. A call naming a tool we do not have gets
    // the unknown-tool observation, as a native one would. Several
    // `<tool_call>` blocks (Qwen's and Hermes' parallel calls) are all
    // run, as native calls would be.
    let limit = agent.settings.max_calls_per_reply.clamp(1, MAX_TEXT_CALLS);
    let (tagged, total) = tagged_tool_calls(text, limit);
    let parsed = if tagged.len() > 1 {
        Ok(None)
    } else {
        parse_action(text).map(Some)
    };
    match parsed {
        Ok(Some(Action::Final { answer })) => Ok(Some(Finish::from_value(answer))),
        Ok(Some(Action::Tool { name, input: args })) => {
            foreign_format(&format!("a call to {name} written as text"));
            run_text_calls(agent, input, run, vec![(name, args)], text).await?;
            Ok(None)
        }
        Ok(None) => {
            foreign_format(&format!("{} tool calls written as text", tagged.len()));
            run_text_calls(agent, input, run, tagged, text).await?;
            note_calls_over_limit(run, total, limit);
            Ok(None)
        }
        // JSON that does not parse (often cut off at the token limit)
        // is a failed call, not an answer.
        Err(error @ ActionParseError::InvalidJson { .. }) if looks_like_call(text) => {
            let observation = agent.parse_failure(run, &error, &content)?;
            run.messages.push(Message::user(observation));
            Ok(None)
        }
        _ => Ok(Some(Finish::text(text))),
    }
}

/// Reports a native-mode reply read in the text-JSON format.
fn foreign_format(what: &str) {
    pae_core::telemetry::repaired(
        pae_core::RepairKind::ForeignFormat,
        format!("a native tool-calling reply was read as text-JSON: {what}"),
    );
}

/// Tells the model, after the results of the calls that ran, that the
/// rest of its `total` calls were not run.
fn note_calls_over_limit(run: &mut StepRun, total: usize, limit: usize) {
    if total > limit {
        run.messages
            .push(Message::user(prompt::calls_over_limit(total, limit)));
    }
}

/// Runs tool calls a native-mode reply wrote as text, and records them
/// in the conversation as calls with made-up ids.
async fn run_text_calls(
    agent: &AgentExecutor,
    input: &StepInput,
    run: &mut StepRun,
    calls: Vec<(String, Value)>,
    text: &str,
) -> Result<(), ExecError> {
    let calls: Vec<ToolCall> = calls
        .into_iter()
        .enumerate()
        .map(|(index, (name, args))| {
            let id = if index == 0 {
                format!("text_call_{}", run.iterations)
            } else {
                format!("text_call_{}_{}", run.iterations, index + 1)
            };
            ToolCall::new(id, name, args)
        })
        .collect();
    // The conversation keeps the calls, not the text around them: small
    // models pad such replies with whatever follows (up to the token
    // limit), and each turn would carry it again.
    run.messages
        .push(Message::assistant_tool_calls(String::new(), calls.clone()));
    for call in calls {
        agent
            .call_tool(
                input,
                run,
                &call.name,
                call.arguments,
                text,
                ArgumentSource::Text,
            )
            .await?;
        let observation = recorded_observation(run);
        run.messages
            .push(Message::tool(call.id, call.name, observation));
    }
    Ok(())
}

/// Records a native "final answer" call that was not taken as the
/// answer; returns the observation sent back for it.
fn refuse_final_call(
    _input: &StepInput,
    run: &mut StepRun,
    call: &ToolCall,
    log: &str,
    only_answers: bool,
) -> String {
    let observation = if only_answers {
        prompt::EMPTY_FINAL_CALL.to_owned()
    } else {
        prompt::FINAL_CALL_WITH_TOOLS.to_owned()
    };
    run.context
        .record_refused_call(&call.name, call.arguments.clone(), &observation);
    run.record(ToolInvocation {
        tool: call.name.clone(),
        input: call.arguments.clone(),
        observation: observation.clone(),
        log: log.to_owned(),
        is_error: true,
        duration_ms: None,
    });
    observation
}

/// The calls with an id each, unique within the reply: providers and
/// small local servers sometimes send none, or the same one twice, and
/// every result message must name its call. Linear in the number of
/// calls.
fn with_unique_ids(calls: Vec<ToolCall>, iteration: usize) -> Vec<ToolCall> {
    let mut seen: HashSet<String> = HashSet::with_capacity(calls.len());
    calls
        .into_iter()
        .enumerate()
        .map(|(index, mut call)| {
            if call.id.trim().is_empty() || seen.contains(&call.id) {
                let mut id = format!("call_{iteration}_{}", index + 1);
                while seen.contains(&id) {
                    id.push('_');
                }
                call.id = id;
            }
            seen.insert(call.id.clone());
            call
        })
        .collect()
}

/// The answer a native call to a "final answer" function carries: its
/// only argument, or all of them; `None` when it carries nothing.
fn final_call_answer(arguments: &Value) -> Option<Value> {
    let arguments = match arguments {
        Value::String(text) => match serde_json::from_str::<Value>(text) {
            Ok(value @ (Value::Object(_) | Value::Array(_))) => value,
            _ => Value::String(text.clone()),
        },
        other => other.clone(),
    };
    let answer = match arguments {
        Value::Object(mut object) if object.len() == 1 => {
            object.values_mut().next().map(Value::take)?
        }
        other => other,
    };
    let empty = match &answer {
        Value::Null => true,
        Value::String(text) => text.trim().is_empty(),
        Value::Object(object) => object.is_empty(),
        _ => false,
    };
    (!empty).then_some(answer)
}

/// The tool calls of a reply written as `<tool_call>...</tool_call>`
/// blocks, when every block is one (otherwise none); at most `limit`,
/// with the number of blocks in the reply (counted, not read, past the
/// limit).
fn tagged_tool_calls(text: &str, limit: usize) -> (Vec<(String, Value)>, usize) {
    const OPEN: &str = "<tool_call>";
    const CLOSE: &str = "</tool_call>";
    let mut calls = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find(OPEN) {
        if calls.len() == limit {
            return (calls, limit + rest.matches(OPEN).count());
        }
        let after = &rest[open + OPEN.len()..];
        let (inner, next) = match after.find(CLOSE) {
            Some(close) => (&after[..close], &after[close + CLOSE.len()..]),
            None => (after, ""),
        };
        match parse_action(inner) {
            Ok(Action::Tool { name, input }) => calls.push((name, input)),
            _ => return (Vec::new(), 0),
        }
        rest = next;
    }
    let total = calls.len();
    (calls, total)
}

/// Whether a native-mode text reply starts like a tool call written as
/// text (a JSON object, a fenced block or a `<tool_call>` tag).
fn looks_like_call(text: &str) -> bool {
    let text = text.trim_start();
    text.starts_with('{') || text.starts_with("```") || text.starts_with("<tool_call>")
}

/// The observation of the call just recorded, for its tool message.
fn recorded_observation(run: &StepRun) -> String {
    run.calls
        .last()
        .map(|call| call.observation.clone())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn final_call_answers() {
        assert_eq!(final_call_answer(&json!({"answer": "a"})), Some(json!("a")));
        assert_eq!(
            final_call_answer(&json!("{\"answer\": [1]}")),
            Some(json!([1]))
        );
        assert_eq!(final_call_answer(&json!("plain")), Some(json!("plain")));
        assert_eq!(
            final_call_answer(&json!({"a": 1, "b": 2})),
            Some(json!({"a": 1, "b": 2}))
        );
        assert_eq!(final_call_answer(&json!({})), None);
        assert_eq!(final_call_answer(&json!({"answer": " "})), None);
        assert_eq!(final_call_answer(&Value::Null), None);
    }

    #[test]
    fn tagged_calls_are_all_or_nothing() {
        let call = |e: &str| {
            format!(
                "<tool_call>{{\"name\": \"calc\", \"arguments\": {{\"e\": \"{e}\"}}}}</tool_call>"
            )
        };
        let two = format!("{}\n{}", call("1"), call("2"));
        assert_eq!(
            tagged_tool_calls(&two, MAX_TEXT_CALLS),
            (
                vec![
                    ("calc".to_owned(), json!({"e": "1"})),
                    ("calc".to_owned(), json!({"e": "2"}))
                ],
                2
            )
        );
        // The last block may lack its closing tag.
        let open = two.trim_end_matches("</tool_call>");
        assert_eq!(tagged_tool_calls(open, MAX_TEXT_CALLS).0.len(), 2);
        let with_answer = format!(
            "{}<tool_call>{{\"name\": \"final_answer\", \"arguments\": {{\"a\": 1}}}}</tool_call>",
            call("1")
        );
        assert!(tagged_tool_calls(&with_answer, MAX_TEXT_CALLS).0.is_empty());
        assert!(
            tagged_tool_calls(
                &format!("{}<tool_call>{{oops</tool_call>", call("1")),
                MAX_TEXT_CALLS
            )
            .0
            .is_empty()
        );
        assert!(tagged_tool_calls("no tags", MAX_TEXT_CALLS).0.is_empty());
        let many = (0..40).map(|i| call(&i.to_string())).collect::<String>();
        let (calls, total) = tagged_tool_calls(&many, MAX_TEXT_CALLS);
        assert_eq!(calls.len(), MAX_TEXT_CALLS);
        assert_eq!(total, 40);
        assert_eq!(tagged_tool_calls(&many, 3).0.len(), 3);
    }

    #[test]
    fn call_ids_are_made_unique() {
        let calls = vec![
            ToolCall::new("", "a", json!({})),
            ToolCall::new("x", "a", json!({})),
            ToolCall::new("x", "a", json!({})),
            ToolCall::new("call_2_3", "a", json!({})),
        ];
        let ids: Vec<String> = with_unique_ids(calls, 2)
            .into_iter()
            .map(|c| c.id)
            .collect();
        // The model's own "call_2_3" now repeats a made-up id, so it gets one too.
        assert_eq!(ids, ["call_2_1", "x", "call_2_3", "call_2_4"]);
    }
}
