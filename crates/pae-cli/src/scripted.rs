//! The hidden `scripted` provider: canned replies from a JSON file, so the
//! command line can be tested without a model.
//!
//! The file is a JSON array; each item answers one request, in order:
//! - `"text"`: an assistant reply (cut at the request's stop sequences);
//! - `{"tool_calls": [{"name": "calculator", "arguments": {...}}]}`;
//! - `{"error": "connection"}` or `{"error": "http", "status": 401}`: a
//!   provider failure.
//!
//! Usage is estimated at one token per four characters. `--script-delay-ms`
//! makes every reply wait, so concurrent steps visibly overlap.
//!
//! The file may instead be `{"rules": [{"when": {...}, "reply": ITEM}, ...]}`:
//! each request is answered by the first rule whose conditions all hold
//! (`"last_role": "tool"` — the last message's role; `"contains": "text"` —
//! some message contains it; no `when` always holds). The answer then does
//! not depend on how many calls came before, so a run resumed in another
//! process (whose earlier calls are replayed from the journal, not made
//! again) gets the same answers.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Mutex;

use async_trait::async_trait;
use pae_core::adapter::cut_at_stop;
use pae_core::{
    Capabilities, ChatModel, ChatRequest, ChatResponse, FinishReason, ProviderError, TokenUsage,
    ToolCall,
};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Item {
    Text(String),
    Calls {
        tool_calls: Vec<Call>,
    },
    Error {
        error: String,
        #[serde(default)]
        status: Option<u16>,
    },
}

#[derive(Debug, Clone, Deserialize)]
struct Call {
    name: String,
    #[serde(default)]
    arguments: serde_json::Value,
}

#[derive(Debug, Deserialize)]
struct Rule {
    #[serde(default)]
    when: When,
    reply: Item,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct When {
    #[serde(default)]
    last_role: Option<pae_core::Role>,
    #[serde(default)]
    contains: Option<String>,
}

impl When {
    fn holds(&self, request: &ChatRequest) -> bool {
        let role = self
            .last_role
            .is_none_or(|role| request.messages.last().is_some_and(|m| m.role == role));
        let text = self.contains.as_ref().is_none_or(|text| {
            request
                .messages
                .iter()
                .any(|m| m.content.contains(text.as_str()))
        });
        role && text
    }
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Script {
    Queue(Vec<Item>),
    Rules { rules: Vec<Rule> },
}

/// A model answering from a script file.
#[derive(Debug)]
pub(crate) struct ScriptedProvider {
    rules: Vec<Rule>,
    replies: Mutex<VecDeque<Item>>,
    answered: Mutex<usize>,
    native_tools: bool,
    delay: std::time::Duration,
}

impl ScriptedProvider {
    /// Reads the script. Tool-call items make the model claim native tools.
    pub(crate) fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|err| anyhow::anyhow!("cannot read the script {}: {err}", path.display()))?;
        let script: Script = serde_json::from_str(&text).map_err(|err| {
            anyhow::anyhow!(
                "the script {} is not a JSON array of replies or {{\"rules\": [...]}}: {err}",
                path.display()
            )
        })?;
        let (items, rules) = match script {
            Script::Queue(items) => (items, Vec::new()),
            Script::Rules { rules } => (Vec::new(), rules),
        };
        let native_tools = items
            .iter()
            .chain(rules.iter().map(|r| &r.reply))
            .any(|i| matches!(i, Item::Calls { .. }));
        Ok(Self {
            rules,
            replies: Mutex::new(items.into()),
            answered: Mutex::new(0),
            native_tools,
            delay: std::time::Duration::ZERO,
        })
    }

    /// Waits this long before each reply.
    pub(crate) fn with_delay(mut self, delay: std::time::Duration) -> Self {
        self.delay = delay;
        self
    }
}

fn estimate(chars: usize) -> u64 {
    chars.div_ceil(4) as u64
}

#[async_trait]
impl ChatModel for ScriptedProvider {
    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, ProviderError> {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let (item, answered) = if !self.rules.is_empty() {
            let rule = self.rules.iter().find(|rule| rule.when.holds(&request));
            (rule.map(|rule| rule.reply.clone()), 0)
        } else {
            let mut replies = self
                .replies
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut answered = self
                .answered
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            *answered += 1;
            (replies.pop_front(), *answered - 1)
        };
        let item = item.ok_or(ProviderError::Exhausted { requests: answered })?;
        let prompt = estimate(request.prompt_chars());
        match item {
            Item::Text(text) => {
                let text = cut_at_stop(&text, &request.stop).to_owned();
                let usage = TokenUsage::new(prompt, estimate(text.chars().count()));
                Ok(ChatResponse {
                    finish_reason: FinishReason::Stop,
                    ..ChatResponse::text(text)
                }
                .with_usage(usage))
            }
            Item::Calls { tool_calls } => {
                let calls: Vec<ToolCall> = tool_calls
                    .into_iter()
                    .enumerate()
                    .map(|(i, c)| {
                        ToolCall::new(format!("call_{answered}_{i}"), c.name, c.arguments)
                    })
                    .collect();
                let chars: usize = calls.iter().map(|c| c.arguments.to_string().len()).sum();
                Ok(ChatResponse::tool_calls(calls)
                    .with_usage(TokenUsage::new(prompt, estimate(chars))))
            }
            Item::Error { error, status } => Err(match (error.as_str(), status) {
                ("connection", _) => ProviderError::connection(
                    "scripted connection failure",
                    std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
                ),
                (_, Some(status)) => ProviderError::Http {
                    status,
                    body: error,
                    retry_after: None,
                },
                _ => ProviderError::Backend { message: error },
            }),
        }
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            native_tools: self.native_tools,
            json_schema: false,
            streaming: false,
        }
    }

    fn model_name(&self) -> String {
        String::from("scripted")
    }
}
