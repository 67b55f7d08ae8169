//! The grammar that constrains a reply: a JSON schema (the response format),
//! a JSON tool call `{"name": ..., "arguments": ...}` chosen among the
//! request's tools, or a tool call or free text.
//!
//! JSON schemas are converted to GBNF by llama.cpp's own converter. Those
//! grammars allow only a little whitespace after the value, so the model
//! can and must end right after it; generation also stops as soon as the
//! JSON value is complete.

use pae_core::{ResponseFormat, ToolSpec};

use crate::prompt::ToolMode;

/// A grammar and the rule generation starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Grammar {
    /// GBNF text.
    pub(crate) text: String,
    /// The start rule.
    pub(crate) root: &'static str,
}

/// Why no grammar could be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GrammarBuildError {
    /// What was being converted.
    pub(crate) what: String,
    /// The converter's message.
    pub(crate) reason: String,
}

const FREE_TEXT_ROOT: &str = "pae-root";

/// Text that does not start like a JSON object (our tool-call syntax).
const NOT_A_CALL: &str = "[^{ \\t\\r\\n] .*";

/// The schema of one call of `tool`. Written by hand so that `name` comes
/// before `arguments` (the converter keeps the schema's property order, and
/// `serde_json` maps are sorted), letting the model choose the tool first.
fn tool_call_schema(tool: &ToolSpec) -> String {
    let parameters = if tool.parameters.is_object() {
        tool.parameters.to_string()
    } else {
        String::from(r#"{"type":"object"}"#)
    };
    format!(
        r#"{{"type":"object","properties":{{"name":{{"const":{name}}},"arguments":{parameters}}},"required":["name","arguments"],"additionalProperties":false}}"#,
        name = serde_json::Value::String(tool.name.clone()),
    )
}

fn response_schema(format: &ResponseFormat) -> String {
    match format {
        ResponseFormat::JsonObject => String::from(r#"{"type":"object"}"#),
        ResponseFormat::JsonSchema { schema, .. } => schema.to_string(),
    }
}

fn convert(schema: &str, what: impl Into<String>) -> Result<String, GrammarBuildError> {
    llama_cpp_2::json_schema_to_grammar(schema).map_err(|err| GrammarBuildError {
        what: what.into(),
        reason: err.to_string(),
    })
}

/// The grammar for a request, or `None` when the reply is free text.
///
/// # Errors
/// When llama.cpp cannot convert a schema to a grammar.
pub(crate) fn for_request(
    format: Option<&ResponseFormat>,
    mode: &ToolMode<'_>,
) -> Result<Option<Grammar>, GrammarBuildError> {
    let calls: Vec<String> = mode.tools().iter().map(|t| tool_call_schema(t)).collect();
    let one_of = |mut schemas: Vec<String>| {
        if schemas.len() == 1 {
            schemas.remove(0)
        } else {
            format!(r#"{{"anyOf":[{}]}}"#, schemas.join(","))
        }
    };
    let grammar = match (mode, format) {
        (ToolMode::Off, None) => None,
        // Earlier calls in the history invite the model to write another
        // one as text; `tool_choice: None` forbids it.
        (ToolMode::Disabled, None) => Some(Grammar {
            text: format!("root ::= {NOT_A_CALL}\n"),
            root: "root",
        }),
        (ToolMode::Off | ToolMode::Disabled, Some(format)) => Some(Grammar {
            text: convert(
                &response_schema(format),
                "the response format's JSON schema",
            )?,
            root: "root",
        }),
        (ToolMode::Required(_), _) => Some(Grammar {
            text: convert(&one_of(calls), "the tools' argument schemas")?,
            root: "root",
        }),
        (ToolMode::Auto(_), Some(format)) => {
            let mut schemas = calls;
            schemas.push(response_schema(format));
            Some(Grammar {
                text: convert(
                    &one_of(schemas),
                    "the tools' argument schemas and the response format",
                )?,
                root: "root",
            })
        }
        (ToolMode::Auto(_), None) => {
            let mut text = convert(&one_of(calls), "the tools' argument schemas")?;
            // A tool call, or text that does not start like one.
            text.push_str(&format!(
                "\n{FREE_TEXT_ROOT} ::= root | pae-free-text\npae-free-text ::= {NOT_A_CALL}\n"
            ));
            Some(Grammar {
                text,
                root: FREE_TEXT_ROOT,
            })
        }
    };
    Ok(grammar)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pae_core::{ChatRequest, Message, ToolChoice};
    use serde_json::json;

    fn spec(name: &str) -> ToolSpec {
        ToolSpec {
            name: name.into(),
            description: String::new(),
            parameters: json!({"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]}),
        }
    }

    #[test]
    fn tool_call_schema_puts_the_name_first() {
        let schema = tool_call_schema(&spec("calculator"));
        let name = schema.find("\"name\"").unwrap();
        let arguments = schema.find("\"arguments\"").unwrap();
        assert!(name < arguments);
        let parsed: serde_json::Value = serde_json::from_str(&schema).unwrap();
        assert_eq!(parsed["properties"]["name"]["const"], "calculator");
    }

    #[test]
    fn no_tools_and_no_format_means_no_grammar() {
        assert_eq!(for_request(None, &ToolMode::Off).unwrap(), None);
    }

    #[test]
    fn schemas_become_grammars() {
        let format = ResponseFormat::json_schema(
            "plan",
            json!({"type": "object", "properties": {"steps": {"type": "array", "items": {"type": "string"}}}, "required": ["steps"]}),
        );
        let grammar = for_request(Some(&format), &ToolMode::Off).unwrap().unwrap();
        assert_eq!(grammar.root, "root");
        assert!(grammar.text.contains("root ::="), "{}", grammar.text);
        assert!(grammar.text.contains("steps"), "{}", grammar.text);
    }

    #[test]
    fn disabled_tools_forbid_a_call() {
        let request = ChatRequest::new(vec![Message::user("x")])
            .with_tools(vec![spec("calculator")])
            .with_tool_choice(ToolChoice::None);
        let mode = ToolMode::of(&request).unwrap();
        let grammar = for_request(None, &mode).unwrap().unwrap();
        assert_eq!(grammar.text, format!("root ::= {NOT_A_CALL}\n"));
    }

    #[test]
    fn auto_tools_allow_free_text() {
        let request = ChatRequest::new(vec![Message::user("x")])
            .with_tools(vec![spec("calculator"), spec("time")]);
        let mode = ToolMode::of(&request).unwrap();
        let grammar = for_request(None, &mode).unwrap().unwrap();
        assert_eq!(grammar.root, FREE_TEXT_ROOT);
        assert!(grammar.text.contains("pae-free-text ::="));
        assert!(grammar.text.contains("calculator") && grammar.text.contains("time"));

        let forced = request.with_tool_choice(ToolChoice::Tool("time".into()));
        let mode = ToolMode::of(&forced).unwrap();
        let grammar = for_request(None, &mode).unwrap().unwrap();
        assert_eq!(grammar.root, "root");
        assert!(!grammar.text.contains("calculator"), "{}", grammar.text);
    }
}
