//! The bounded call-parse-retry loop shared by the planners and the
//! replanner: a reply that cannot be used goes back to the model with the
//! reason, as an assistant message followed by a user message.

use pae_core::{
    ChatModel, ChatRequest, Message, Plan, PlanError, PlanLimits, PlanOutputParser, PlanParseError,
    PlanValidationError, RunContext,
};

/// Why a reply was not accepted.
#[derive(Debug)]
pub(crate) enum Rejection {
    /// It could not be parsed.
    Parse(PlanParseError),
    /// It parsed into a plan that is not valid.
    Invalid {
        text: String,
        error: PlanValidationError,
    },
}

impl Rejection {
    /// The reason, as told to the model.
    fn reason(&self) -> String {
        match self {
            Self::Parse(PlanParseError::NoSteps { .. }) => {
                String::from("no plan step could be read from it")
            }
            Self::Parse(PlanParseError::Malformed { reason, .. }) => reason.clone(),
            Self::Parse(other) => other.to_string(),
            Self::Invalid { error, .. } => error.to_string(),
        }
    }

    /// The error when no retry is allowed: the parse or validation error.
    fn into_plan_error(self) -> PlanError {
        match self {
            Self::Parse(e) => PlanError::Parse(e),
            Self::Invalid { error, .. } => PlanError::Invalid(error),
        }
    }

    /// The last error of an exhausted retry budget, as a parse error that
    /// keeps the text.
    fn into_parse_error(self) -> PlanParseError {
        match self {
            Self::Parse(e) => e,
            Self::Invalid { text, error } => PlanParseError::Malformed {
                text,
                reason: error.to_string(),
            },
        }
    }
}

/// The feedback message sent after a rejected reply.
pub(crate) fn feedback(reason: &str, instructions: &str) -> String {
    format!("Your reply could not be used: {reason}.\n{instructions}")
}

/// Sends `request` through the run context (journal, budget, events);
/// while the reply is rejected and retries remain, appends the reply and
/// the feedback to the conversation and asks again. Every reply's token
/// usage is recorded in `context`.
///
/// With no retry allowed the first rejection is returned as
/// [`PlanError::Parse`] or [`PlanError::Invalid`]; after retries,
/// [`PlanError::RetriesExhausted`]. Provider errors end the loop at once.
pub(crate) async fn call_until_accepted<T>(
    model: &dyn ChatModel,
    mut request: ChatRequest,
    max_retries: usize,
    context: &RunContext,
    instructions: &str,
    accept: impl Fn(&str) -> Result<T, Rejection>,
) -> Result<T, PlanError> {
    let allowed = max_retries.saturating_add(1);
    let mut attempts = 0;
    loop {
        attempts += 1;
        // Through the run context: journaled, budgeted and reported like every
        // model call of the run.
        let response = context.chat(model, request.clone()).await?;
        if let Some(usage) = response.usage {
            context.record_usage(usage);
        }
        let text = response.message.content;
        match accept(&text) {
            Ok(value) => return Ok(value),
            Err(rejection) if attempts >= allowed => {
                return Err(if allowed == 1 {
                    rejection.into_plan_error()
                } else {
                    PlanError::RetriesExhausted {
                        attempts,
                        last: rejection.into_parse_error(),
                    }
                });
            }
            Err(rejection) => {
                let message = feedback(&rejection.reason(), instructions);
                request.messages.push(Message::assistant(text));
                request.messages.push(Message::user(message));
            }
        }
    }
}

/// Parses and validates a plan, then puts it in execution order.
pub(crate) fn accept_plan(
    parser: &dyn PlanOutputParser,
    limits: &PlanLimits,
    text: &str,
) -> Result<Plan, Rejection> {
    let plan = parser.parse(text).map_err(Rejection::Parse)?;
    checked_plan(plan, limits, text)
}

/// Validates a plan and puts it in execution order.
pub(crate) fn checked_plan(plan: Plan, limits: &PlanLimits, text: &str) -> Result<Plan, Rejection> {
    plan.validate(limits).map_err(|error| Rejection::Invalid {
        text: text.to_owned(),
        error,
    })?;
    in_execution_order(plan).map_err(|error| Rejection::Invalid {
        text: text.to_owned(),
        error,
    })
}

/// Reorders a plan with dependencies so every step comes after the steps it
/// depends on (the orchestrator runs steps in list order). Steps without an
/// id are first given their position as id, so dependencies that name
/// positions still hold after the move.
///
/// # Errors
/// What [`Plan::topological_order`] finds.
pub(crate) fn in_execution_order(plan: Plan) -> Result<Plan, PlanValidationError> {
    if !plan.has_dependencies() {
        return Ok(plan);
    }
    let order = plan.topological_order()?;
    if order.iter().enumerate().all(|(i, &j)| i == j) {
        return Ok(plan);
    }
    let keys: Vec<Option<String>> = (0..plan.len()).map(|i| plan.step_key(i)).collect();
    let mut slots: Vec<Option<pae_core::Step>> = plan
        .steps
        .into_iter()
        .zip(keys)
        .map(|(mut step, key)| {
            if step.id.is_none() {
                step.id = key;
            }
            Some(step)
        })
        .collect();
    Ok(order
        .into_iter()
        .filter_map(|i| slots.get_mut(i).and_then(Option::take))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pae_core::Step;

    #[test]
    fn execution_order_moves_dependencies_first_and_keeps_names() {
        let plan = Plan::new([
            Step::new("answer").with_depends_on(["2", "3"]),
            Step::new("look up a"),
            Step::new("look up b"),
        ]);
        let ordered = in_execution_order(plan).unwrap();
        assert_eq!(
            ordered,
            Plan::new([
                Step::new("look up a").with_id("2"),
                Step::new("look up b").with_id("3"),
                Step::new("answer").with_id("1").with_depends_on(["2", "3"]),
            ])
        );
        assert_eq!(ordered.validate(&PlanLimits::default()), Ok(()));
        let plain = Plan::new(["a", "b"]);
        assert_eq!(in_execution_order(plain.clone()).unwrap(), plain);
    }

    #[test]
    fn rejection_errors() {
        let invalid = Rejection::Invalid {
            text: "t".into(),
            error: PlanValidationError::Empty,
        };
        assert_eq!(invalid.reason(), "the plan is empty");
        assert_eq!(
            invalid.into_parse_error(),
            PlanParseError::Malformed {
                text: "t".into(),
                reason: "the plan is empty".into()
            }
        );
        assert!(matches!(
            Rejection::Parse(PlanParseError::NoSteps { text: "x".into() }).into_plan_error(),
            PlanError::Parse(PlanParseError::NoSteps { .. })
        ));
    }
}
