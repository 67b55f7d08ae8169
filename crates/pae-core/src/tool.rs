//! The tool contract: what an executor's agent can call.

use async_trait::async_trait;

use crate::error::ToolError;
use crate::model::ToolSpec;

/// A tool an agent can call: a name, a description and a JSON schema for the
/// model, and an async call from JSON input to text.
///
/// Object-safe: hold tools as `Arc<dyn Tool>`.
#[cfg_attr(any(test, feature = "test-util"), mockall::automock)]
#[async_trait]
pub trait Tool: Send + Sync {
    /// The name the model uses to call the tool. Unique among an agent's
    /// tools.
    fn name(&self) -> &str;

    /// What the tool does and when to use it, for the model.
    fn description(&self) -> &str;

    /// A JSON schema of the input object. The default accepts any object.
    fn parameters(&self) -> serde_json::Value {
        serde_json::json!({"type": "object"})
    }

    /// Runs the tool.
    ///
    /// # Errors
    /// A [`ToolError`] whose message the executor shows to the model.
    async fn call(&self, input: serde_json::Value) -> Result<String, ToolError>;

    /// Whether the tool only reads (no side effects). Read-only, idempotent
    /// tools may run concurrently and be retried.
    fn is_read_only(&self) -> bool {
        false
    }

    /// Whether calling the tool twice with the same input has the same effect
    /// as calling it once.
    fn is_idempotent(&self) -> bool {
        false
    }

    /// The specification sent to models with native tool calling.
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: self.name().to_owned(),
            description: self.description().to_owned(),
            parameters: self.parameters(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Upper;

    #[async_trait]
    impl Tool for Upper {
        fn name(&self) -> &str {
            "upper"
        }

        fn description(&self) -> &str {
            "Upper-cases {text}."
        }

        async fn call(&self, input: serde_json::Value) -> Result<String, ToolError> {
            input["text"]
                .as_str()
                .map(str::to_uppercase)
                .ok_or_else(|| ToolError::invalid_input("`text` must be a string"))
        }
    }

    #[test]
    fn default_spec_and_flags() {
        let spec = Upper.spec();
        assert_eq!(spec.name, "upper");
        assert_eq!(spec.description, "Upper-cases {text}.");
        assert_eq!(spec.parameters, serde_json::json!({"type": "object"}));
        assert!(!Upper.is_read_only());
        assert!(!Upper.is_idempotent());
    }

    #[test]
    fn mock_tools_can_be_scripted() {
        let mut tool = MockTool::new();
        tool.expect_name().return_const("calc".to_string());
        tool.expect_call()
            .withf(|input| input["expression"] == "1+1")
            .returning(|_| Ok("2".into()));
        let out = futures::executor::block_on(tool.call(serde_json::json!({"expression": "1+1"})));
        assert_eq!(tool.name(), "calc");
        assert_eq!(out, Ok("2".to_string()));
    }
}
