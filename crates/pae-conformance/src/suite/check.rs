//! The checks of the suite (the one table that declares each check and
//! dispatches to the method running it), their outcomes and one check's
//! result.

use std::fmt;
use std::time::Duration;

use pae_core::{Capabilities, ChatModel};

use super::{Suite, Verdict};

/// Declares [`Check`] (with [`Check::ALL`] and [`Check::name`]) and the
/// suite's dispatch to the method that runs each check, from one table of
/// `Variant => method` rows (the method's name is the check's name).
macro_rules! checks {
    ($($(#[$doc:meta])* $variant:ident => $run:ident,)*) => {
        /// One clause of the [`ChatModel`](pae_core::ChatModel) contract that
        /// the suite checks. [`Check::ALL`] lists them in the order they run.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum Check {
            $($(#[$doc])* $variant,)*
        }

        impl Check {
            /// Every check, in the order the suite runs them.
            pub const ALL: [Self; [$(Self::$variant),*].len()] = [$(Self::$variant),*];

            /// The check's snake_case name, as printed in reports.
            pub fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => stringify!($run),)*
                }
            }
        }

        impl<M: ChatModel + ?Sized> Suite<'_, M> {
            /// Runs `check` (which applies and is not skipped).
            pub(crate) async fn dispatch(&mut self, check: Check) -> Verdict {
                match check {
                    $(Check::$variant => self.$run().await,)*
                }
            }
        }
    };
}

checks! {
    /// A plain request gets a non-empty assistant text, no tool calls, and a
    /// finish reason of `Stop` or `Length`.
    PlainReply => plain_reply,
    /// A stop sequence cuts the reply before its first occurrence and the
    /// stop text is not returned.
    StopSequence => stop_sequence,
    /// `max_tokens` is respected: reported completion tokens are within the
    /// limit and the text is short.
    MaxTokens => max_tokens,
    /// Usage is reported, with prompt tokens and completion tokens counted.
    Usage => usage,
    /// Streamed chunks concatenate to the reply `chat` gives for the same
    /// request, and the stream carries a finish reason.
    StreamMatchesChat => stream_matches_chat,
    /// A model that claims streaming delivers a multi-word reply in more
    /// than one chunk.
    StreamIncremental => stream_incremental,
    /// A stop sequence cuts a streamed reply too.
    StreamStopSequence => stream_stop_sequence,
    /// A forced tool call comes back with the tool's name, a JSON object of
    /// arguments and a non-empty id (needs `native_tools`).
    ToolCall => tool_call,
    /// The same forced tool call, streamed, reassembles into a complete call
    /// (needs `native_tools`).
    StreamToolCall => stream_tool_call,
    /// A conversation ending with a tool result is accepted and answered
    /// (needs `native_tools`).
    ToolResult => tool_result,
    /// A JSON-schema response format yields JSON that matches the schema
    /// (needs `json_schema`).
    JsonSchema => json_schema,
    /// Requests no provider can answer (no messages; a forced tool that is
    /// not offered) fail with a `ProviderError` instead of a reply or a
    /// panic.
    InvalidRequestRejected => invalid_request_rejected,
    /// The adapter pointed at an address where nothing listens fails with
    /// `ProviderError::Connection` or `Timeout` (needs
    /// [`Options::with_unreachable`](crate::Options::with_unreachable)).
    UnreachableEndpoint => unreachable_endpoint,
}

impl Check {
    /// The check named `name` (as [`Check::name`] spells it).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|check| check.name() == name)
    }

    /// Why the check does not apply to a model with these capabilities, or
    /// `None` when it applies.
    pub(crate) fn not_applicable(self, capabilities: Capabilities) -> Option<&'static str> {
        match self {
            Self::StreamIncremental if !capabilities.streaming => {
                Some("the model does not claim streaming")
            }
            Self::ToolCall | Self::StreamToolCall | Self::ToolResult
                if !capabilities.native_tools =>
            {
                Some("the model does not claim native tool calls")
            }
            Self::JsonSchema if !capabilities.json_schema => {
                Some("the model does not claim JSON-schema output")
            }
            _ => None,
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How one check ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The model behaved as the contract says.
    Passed,
    /// The model broke the contract.
    Failed {
        /// What was wrong, with the evidence.
        reason: String,
    },
    /// The check did not run.
    Skipped {
        /// Why (a capability not claimed, or skipped by the caller).
        reason: String,
    },
}

impl Outcome {
    /// Whether the check passed.
    pub fn is_passed(&self) -> bool {
        matches!(self, Self::Passed)
    }

    /// Whether the check failed.
    pub fn is_failed(&self) -> bool {
        matches!(self, Self::Failed { .. })
    }

    /// Whether the check was skipped.
    pub fn is_skipped(&self) -> bool {
        matches!(self, Self::Skipped { .. })
    }

    /// The reason of a failure or skip.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Self::Passed => None,
            Self::Failed { reason } | Self::Skipped { reason } => Some(reason),
        }
    }

    /// A four-letter label for tables: `PASS`, `FAIL` or `SKIP`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Passed => "PASS",
            Self::Failed { .. } => "FAIL",
            Self::Skipped { .. } => "SKIP",
        }
    }
}

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    /// Which check.
    pub check: Check,
    /// How it ended.
    pub outcome: Outcome,
    /// What was observed when it passed (for example the reply's text), empty
    /// otherwise.
    pub detail: String,
    /// Wall-clock time the check took.
    pub elapsed: Duration,
}
