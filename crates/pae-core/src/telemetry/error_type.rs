//! The `error.type` attribute of spans: a short snake-case name per error
//! variant. A leaf, so that [`RunContext`](crate::RunContext) can name the
//! errors of its calls without depending on the rest of telemetry.

/// The `error.type` of a run error.
pub(crate) fn run_error_type(error: &crate::RunError) -> &'static str {
    use crate::RunError as E;
    match error {
        E::Plan(_) => "plan",
        E::EmptyPlan => "empty_plan",
        E::InvalidPlan(_) => "invalid_plan",
        E::TooManySteps { .. } => "too_many_steps",
        E::Step { .. } => "step",
        E::Replan { .. } => "replan",
        E::Cancelled { .. } => "cancelled",
        E::BudgetExceeded { .. } => "budget_exceeded",
        E::Interrupted { .. } => "interrupted",
        E::Store(_) => "store",
        E::NoStore => "no_store",
        E::NotResumable { .. } => "not_resumable",
        E::InvalidEdit { .. } => "invalid_edit",
        E::NotAwaitingApproval { .. } => "not_awaiting_approval",
    }
}

/// The `error.type` of a provider error: its kind in snake case
/// (`rate_limited`, `timeout`, …).
pub(crate) fn provider_error_type(error: &crate::ProviderError) -> String {
    snake_case(&format!("{:?}", error.kind()))
}

/// The `error.type` of a tool error.
pub(crate) fn tool_error_type(error: &crate::ToolError) -> &'static str {
    match error {
        crate::ToolError::InvalidInput { .. } | crate::ToolError::NotOneOf { .. } => {
            "invalid_input"
        }
        crate::ToolError::Refused { .. } => "refused",
        crate::ToolError::Failed { .. } => "failed",
        crate::ToolError::Timeout { .. } => "timeout",
        crate::ToolError::Stopped { .. } => "stopped",
    }
}

/// `CamelCase` as `camel_case`.
pub(crate) fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}
