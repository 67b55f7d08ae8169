//! Failures of `pae` and their exit codes (listed in `pae --help`).

use std::fmt;

use pae_core::{ProviderError, RunError, StoreError};

/// What kind of failure ended the program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailureKind {
    /// The run itself failed.
    RunFailed,
    /// Bad flags (clap reports its own with the same code).
    Usage,
    /// The local model file is missing or unusable.
    ModelFile,
    /// The server cannot be reached.
    Unreachable,
    /// The API key is missing or rejected.
    ApiKey,
    /// The run waits for a person to approve its plan.
    AwaitingApproval,
    /// A budget ran out; the run is interrupted and resumable.
    BudgetExceeded,
    /// The run is interrupted and needs a person (a call in doubt).
    NeedsAttention,
    /// The run finished without a real answer.
    NoRealAnswer,
    /// The run store cannot be used (unknown run, damaged file, busy, …).
    Store,
    /// A signal stopped the run (SIGINT 130, SIGTERM 143, SIGHUP 129).
    Signal(i32),
}

impl FailureKind {
    pub(crate) fn exit_code(self) -> u8 {
        match self {
            Self::RunFailed => 1,
            Self::Usage => 2,
            Self::ModelFile => 3,
            Self::Unreachable => 4,
            Self::ApiKey => 5,
            Self::AwaitingApproval => 6,
            Self::BudgetExceeded => 7,
            Self::NeedsAttention => 8,
            Self::NoRealAnswer => 9,
            Self::Store => 10,
            Self::Signal(signal) => u8::try_from(128 + signal).unwrap_or(u8::MAX),
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::RunFailed => "run_failed",
            Self::Usage => "usage",
            Self::ModelFile => "model_file",
            Self::Unreachable => "unreachable",
            Self::ApiKey => "api_key",
            Self::AwaitingApproval => "awaiting_approval",
            Self::BudgetExceeded => "budget_exceeded",
            Self::NeedsAttention => "needs_attention",
            Self::NoRealAnswer => "no_real_answer",
            Self::Store => "store",
            Self::Signal(_) => "signal",
        }
    }
}

/// A failure with the message shown to the user.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) kind: FailureKind,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// Classifies an error from a run: a connection failure or a rejected
    /// key anywhere in its chain gets its own code.
    pub(crate) fn from_error(error: &(dyn std::error::Error + 'static), context: &str) -> Self {
        let message = format!("{context}: {}", pae_core::error_chain(error));
        if let Some(run) = error.downcast_ref::<RunError>() {
            match run {
                RunError::BudgetExceeded { .. } => {
                    return Self::new(FailureKind::BudgetExceeded, message);
                }
                RunError::Interrupted { .. } => {
                    return Self::new(FailureKind::NeedsAttention, message);
                }
                RunError::Store(_)
                | RunError::NoStore
                | RunError::NotResumable { .. }
                | RunError::NotAwaitingApproval { .. } => {
                    return Self::new(FailureKind::Store, message);
                }
                RunError::InvalidEdit { .. } => return Self::new(FailureKind::Usage, message),
                _ => {}
            }
        }
        if error.downcast_ref::<StoreError>().is_some() {
            return Self::new(FailureKind::Store, message);
        }
        let mut message = message;
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
        while let Some(err) = source {
            if let Some(provider) = err.downcast_ref::<ProviderError>() {
                // The server's own reason, bounded and on one line: "HTTP
                // 400" alone does not say what to fix.
                if let ProviderError::Http { body, .. } = provider
                    && !body.trim().is_empty()
                {
                    message.push_str(&format!(
                        " (the server said: {})",
                        crate::term::one_line(body, 300)
                    ));
                }
                if let Some(kind) = provider_kind(provider) {
                    return Self::new(kind, message);
                }
            }
            source = err.source();
        }
        Self::new(FailureKind::RunFailed, message)
    }
}

/// The exit kind a provider error calls for, when it is not a plain run
/// failure.
pub(crate) fn provider_kind(error: &ProviderError) -> Option<FailureKind> {
    match error {
        ProviderError::Connection { .. } => Some(FailureKind::Unreachable),
        ProviderError::Http {
            status: 401 | 403, ..
        } => Some(FailureKind::ApiKey),
        _ => None,
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pae_core::PlanError;

    #[test]
    fn connection_errors_deep_in_a_run_error_are_unreachable() {
        let err = RunError::Plan(PlanError::Provider(ProviderError::connection(
            "http://127.0.0.1:9/v1/chat/completions",
            std::io::Error::other("connection refused"),
        )));
        let failure = Failure::from_error(&err, "the run failed");
        assert_eq!(failure.kind, FailureKind::Unreachable);
        assert_eq!(failure.kind.exit_code(), 4);
        assert!(failure.message.contains("connection refused"), "{failure}");
    }

    #[test]
    fn rejected_keys_and_other_errors() {
        let err = RunError::Plan(PlanError::Provider(ProviderError::Http {
            status: 401,
            body: "bad key".into(),
            retry_after: None,
        }));
        assert_eq!(Failure::from_error(&err, "x").kind, FailureKind::ApiKey);
        let err = RunError::EmptyPlan;
        assert_eq!(Failure::from_error(&err, "x").kind, FailureKind::RunFailed);
    }
}
