//! The executor's tools: each with its specification and its lock, and the
//! lenient matching of the names models write.

use std::sync::Arc;

use pae_core::{Tool, ToolSpec};

use crate::prompt::ToolLine;

/// One tool of the executor.
pub(crate) struct ToolEntry {
    pub(crate) tool: Arc<dyn Tool>,
    pub(crate) spec: ToolSpec,
    /// Held while a tool that is not both read-only and idempotent runs, so
    /// concurrent steps never call it concurrently with itself.
    pub(crate) exclusive: Option<Arc<tokio::sync::Mutex<()>>>,
}

impl Clone for ToolEntry {
    fn clone(&self) -> Self {
        Self {
            tool: Arc::clone(&self.tool),
            spec: self.spec.clone(),
            // Clones of an executor share the tool, so they share its lock.
            exclusive: self.exclusive.clone(),
        }
    }
}

/// The tools, in the order they were added.
#[derive(Clone)]
pub(crate) struct Toolbox {
    entries: Vec<ToolEntry>,
}

impl Toolbox {
    pub(crate) fn new(tools: Vec<Arc<dyn Tool>>) -> Self {
        let entries = tools
            .into_iter()
            .map(|tool| ToolEntry {
                spec: tool.spec(),
                exclusive: (!(tool.is_read_only() && tool.is_idempotent()))
                    .then(|| Arc::new(tokio::sync::Mutex::new(()))),
                tool,
            })
            .collect();
        Self { entries }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The tools' names, in order.
    pub(crate) fn names(&self) -> Vec<&str> {
        self.entries.iter().map(|t| t.spec.name.as_str()).collect()
    }

    /// The tools' specifications, for native requests.
    pub(crate) fn specs(&self) -> Vec<ToolSpec> {
        self.entries.iter().map(|t| t.spec.clone()).collect()
    }

    /// The tools as the text system prompt lists them.
    pub(crate) fn lines(&self) -> Vec<ToolLine<'_>> {
        self.entries
            .iter()
            .map(|t| ToolLine {
                name: &t.spec.name,
                description: &t.spec.description,
                parameters: &t.spec.parameters,
            })
            .collect()
    }

    /// The tool a model's name means: the exact name, else the only tool
    /// whose name matches ignoring case, else the only one that matches
    /// ignoring case, spaces and punctuation, a `functions.` prefix and a
    /// trailing `()` (`Calculator`, `current time`, `functions.read_file`).
    pub(crate) fn find(&self, name: &str) -> Option<&ToolEntry> {
        let name = name.trim();
        if let Some(exact) = self.entries.iter().find(|t| t.spec.name == name) {
            return Some(exact);
        }
        self.only(|t| t.eq_ignore_ascii_case(name)).or_else(|| {
            let key = tool_key(name);
            if key.is_empty() {
                return None;
            }
            self.only(|t| tool_key(t) == key)
        })
    }

    /// The one tool whose name satisfies `matches`; `None` for none or
    /// several.
    fn only(&self, matches: impl Fn(&str) -> bool) -> Option<&ToolEntry> {
        let mut found = self.entries.iter().filter(|t| matches(&t.spec.name));
        match (found.next(), found.next()) {
            (Some(only), None) => Some(only),
            _ => None,
        }
    }
}

/// A tool name reduced to what identifies it: lower-case letters and
/// digits, without a `functions.` prefix or a trailing `()`.
fn tool_key(name: &str) -> String {
    let name = name.trim();
    let name = match name.get(..10) {
        Some(head) if head.eq_ignore_ascii_case("functions.") => &name[10..],
        _ => name,
    };
    let name = name.strip_suffix("()").unwrap_or(name);
    name.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_keys_ignore_case_punctuation_and_prefixes() {
        assert_eq!(tool_key(" Functions.Read_File() "), "readfile");
        assert_eq!(tool_key("current time"), "currenttime");
        assert_eq!(tool_key("()"), "");
    }
}
