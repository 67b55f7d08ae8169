//! [`tool_fn`] and [`tool_fn_with_context`]: a [`Tool`] from an async
//! function or closure that takes a typed argument struct, its JSON schema
//! derived with `schemars` (as rig's `#[tool]` or LangChain's `@tool`).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use pae_core::{Tool, ToolContext, ToolError};
use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde::de::DeserializeOwned;
use serde_json::Value;

type CallFuture = Pin<Box<dyn Future<Output = Result<String, ToolError>> + Send>>;
type CallFn = dyn Fn(Value, ToolContext) -> CallFuture + Send + Sync;

/// A tool made from an async function: by [`tool_fn`] or
/// [`tool_fn_with_context`].
///
/// The model sees the argument struct's JSON schema (doc comments become
/// descriptions); a call's input is deserialized into the struct before the
/// function runs, and input that does not fit is an
/// [`InvalidInput`](ToolError::InvalidInput) error the executor shows to
/// the model. Cheap to clone.
#[derive(Clone)]
pub struct FnTool {
    name: String,
    description: String,
    parameters: Value,
    read_only: bool,
    idempotent: bool,
    call: Arc<CallFn>,
}

impl fmt::Debug for FnTool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnTool")
            .field("name", &self.name)
            .field("description", &self.description)
            .field("parameters", &self.parameters)
            .field("read_only", &self.read_only)
            .field("idempotent", &self.idempotent)
            .finish_non_exhaustive()
    }
}

/// A tool named `name`, described to the model by `description`, that runs
/// `function` on its arguments.
///
/// `A` is the argument struct: it derives `serde::Deserialize` and
/// `schemars::JsonSchema`, and its schema (with subschemas inlined, no
/// `$ref`) is the tool's [`parameters`](Tool::parameters). The function
/// returns `Ok` with anything that displays (a `String`, a number, a
/// `serde_json::Value`) or a [`ToolError`]. The tool is neither read-only
/// nor idempotent unless said so with
/// [`with_read_only`](FnTool::with_read_only) and
/// [`with_idempotent`](FnTool::with_idempotent).
///
/// ```
/// use pae_core::{Tool, ToolError};
/// use pae_executor::tools::tool_fn;
///
/// /// Two numbers to add.
/// #[derive(serde::Deserialize, schemars::JsonSchema)]
/// struct AddArgs {
///     /// The first number.
///     a: f64,
///     /// The second number.
///     b: f64,
/// }
///
/// let add = tool_fn("add", "Adds two numbers.", |args: AddArgs| async move {
///     Ok(args.a + args.b)
/// })
/// .with_read_only(true)
/// .with_idempotent(true);
///
/// assert_eq!(add.parameters()["properties"]["a"]["description"], "The first number.");
/// let sum = futures::executor::block_on(add.call(serde_json::json!({"a": 2, "b": 40.5})));
/// assert_eq!(sum.unwrap(), "42.5");
/// let bad = futures::executor::block_on(add.call(serde_json::json!({"a": "two"})));
/// assert!(matches!(bad, Err(ToolError::InvalidInput { .. })));
/// ```
pub fn tool_fn<A, F, Fut, O>(
    name: impl Into<String>,
    description: impl Into<String>,
    function: F,
) -> FnTool
where
    A: DeserializeOwned + JsonSchema + Send + 'static,
    F: Fn(A) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O, ToolError>> + Send + 'static,
    O: fmt::Display,
{
    tool_fn_with_context(name, description, move |args: A, _context: ToolContext| {
        function(args)
    })
}

/// As [`tool_fn`], for a function that also takes the call's
/// [`ToolContext`]: its idempotency key (stable across a crash and resume,
/// for APIs that deduplicate), the run's cancellation token, and
/// [`progress`](ToolContext::progress) reports.
///
/// ```
/// use pae_core::{Tool, ToolContext, ToolError};
/// use pae_executor::tools::tool_fn_with_context;
///
/// #[derive(serde::Deserialize, schemars::JsonSchema)]
/// struct Payment {
///     /// Cents to pay.
///     cents: u64,
/// }
///
/// let pay = tool_fn_with_context("pay", "Pays once.", |args: Payment, context: ToolContext| async move {
///     if context.cancel_token().is_cancelled() {
///         return Err(ToolError::failed("cancelled"));
///     }
///     Ok(format!("paid {} with key {}", args.cents, context.idempotency_key()))
/// });
/// let context = ToolContext::new();
/// let out = futures::executor::block_on(pay.call_with_context(serde_json::json!({"cents": 5}), &context));
/// assert!(out.unwrap().starts_with("paid 5 with key direct/"));
/// ```
pub fn tool_fn_with_context<A, F, Fut, O>(
    name: impl Into<String>,
    description: impl Into<String>,
    function: F,
) -> FnTool
where
    A: DeserializeOwned + JsonSchema + Send + 'static,
    F: Fn(A, ToolContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O, ToolError>> + Send + 'static,
    O: fmt::Display,
{
    let call = move |input: Value, context: ToolContext| -> CallFuture {
        // A model that sends no arguments for a tool whose fields are all
        // optional means an empty object.
        let input = if input.is_null() {
            Value::Object(serde_json::Map::new())
        } else {
            input
        };
        match serde_json::from_value::<A>(input) {
            Ok(args) => {
                let running = function(args, context);
                Box::pin(async move { running.await.map(|out| out.to_string()) })
            }
            Err(err) => Box::pin(std::future::ready(Err(ToolError::invalid_input(
                err.to_string(),
            )))),
        }
    };
    FnTool {
        name: name.into(),
        description: description.into(),
        parameters: parameters_of::<A>(),
        read_only: false,
        idempotent: false,
        call: Arc::new(call),
    }
}

/// The JSON schema of `A` as a tool's parameters: subschemas inlined (the
/// argument checker and small models' grammars know no `$ref`), without the
/// `$schema` line and the root's title (the type's name, which the model
/// does not need).
fn parameters_of<A: JsonSchema>() -> Value {
    let schema = SchemaSettings::draft2020_12()
        .with(|settings| {
            settings.inline_subschemas = true;
            settings.meta_schema = None;
        })
        .into_generator()
        .into_root_schema_for::<A>();
    let mut value = schema.to_value();
    if let Some(object) = value.as_object_mut() {
        object.remove("title");
    }
    value
}

impl FnTool {
    /// Whether the tool only reads (no side effects): read-only, idempotent
    /// tools may run concurrently with themselves.
    #[must_use]
    pub fn with_read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// Whether calling the tool twice with the same input has the effect of
    /// calling it once.
    #[must_use]
    pub fn with_idempotent(mut self, idempotent: bool) -> Self {
        self.idempotent = idempotent;
        self
    }

    /// Replaces the derived JSON schema of the arguments (for example to
    /// add an example or tighten a bound the type cannot express).
    #[must_use]
    pub fn with_parameters(mut self, parameters: Value) -> Self {
        self.parameters = parameters;
        self
    }
}

#[async_trait]
impl Tool for FnTool {
    fn name(&self) -> &str {
        &self.name
    }

    fn description(&self) -> &str {
        &self.description
    }

    fn parameters(&self) -> Value {
        self.parameters.clone()
    }

    async fn call(&self, input: Value) -> Result<String, ToolError> {
        (self.call)(input, ToolContext::new()).await
    }

    async fn call_with_context(
        &self,
        input: Value,
        context: &ToolContext,
    ) -> Result<String, ToolError> {
        (self.call)(input, context.clone()).await
    }

    fn is_read_only(&self) -> bool {
        self.read_only
    }

    fn is_idempotent(&self) -> bool {
        self.idempotent
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(serde::Deserialize, JsonSchema)]
    #[expect(dead_code, reason = "only the schema is read")]
    struct Nested {
        /// A city.
        city: String,
    }

    /// Where and how long.
    #[derive(serde::Deserialize, JsonSchema)]
    #[expect(dead_code, reason = "only the schema is read")]
    struct Trip {
        place: Nested,
        days: Option<u32>,
    }

    #[test]
    fn parameters_are_inlined_and_untitled() {
        let schema = parameters_of::<Trip>();
        assert_eq!(schema["type"], "object");
        assert_eq!(schema["description"], "Where and how long.");
        assert!(schema.get("$schema").is_none());
        assert!(schema.get("title").is_none());
        assert!(schema.get("$defs").is_none());
        assert_eq!(schema["properties"]["place"]["type"], "object");
        assert_eq!(
            schema["properties"]["place"]["properties"]["city"]["description"],
            "A city."
        );
        assert_eq!(schema["required"], json!(["place"]));
    }

    #[tokio::test]
    async fn null_input_is_an_empty_object() {
        #[derive(serde::Deserialize, JsonSchema)]
        struct Optional {
            days: Option<u32>,
        }
        let tool = tool_fn("t", "d", |args: Optional| async move {
            Ok(args.days.unwrap_or(7))
        });
        assert_eq!(tool.call(Value::Null).await.unwrap(), "7");
    }
}
