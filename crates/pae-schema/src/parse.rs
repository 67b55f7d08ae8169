//! The plan output parser contract: model text in, `Plan` out.

use crate::Plan;

/// Why a model's text could not be turned into a plan. Every variant keeps the
/// offending text so nothing the model wrote is lost.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanParseError {
    /// The text contains no recognisable step.
    #[error("no plan step found in the model output ({} characters)", text.chars().count())]
    NoSteps {
        /// The text that was parsed.
        text: String,
    },
    /// The text has a recognisable shape but is malformed (for example JSON
    /// that does not match the plan schema).
    #[error("malformed plan: {reason}")]
    Malformed {
        /// The text that was parsed.
        text: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl PlanParseError {
    /// The text that failed to parse.
    pub fn text(&self) -> &str {
        match self {
            Self::NoSteps { text } | Self::Malformed { text, .. } => text,
        }
    }
}

/// Turns a model's text into a [`Plan`] (LangChain's `PlanOutputParser`).
pub trait PlanOutputParser: Send + Sync {
    /// Parses the text.
    ///
    /// # Errors
    /// A [`PlanParseError`] carrying the text when no plan can be read from it.
    fn parse(&self, text: &str) -> Result<Plan, PlanParseError>;
}

impl<F> PlanOutputParser for F
where
    F: Fn(&str) -> Result<Plan, PlanParseError> + Send + Sync,
{
    fn parse(&self, text: &str) -> Result<Plan, PlanParseError> {
        self(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closures_are_parsers_and_errors_keep_text() {
        let parser = |text: &str| -> Result<Plan, PlanParseError> {
            Err(PlanParseError::NoSteps { text: text.into() })
        };
        let err = PlanOutputParser::parse(&parser, "just prose").unwrap_err();
        assert_eq!(err.text(), "just prose");
        assert!(err.to_string().contains("10 characters"));
    }
}
