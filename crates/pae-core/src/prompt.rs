//! Prompt templates: `{name}` placeholders, `{{` and `}}` escapes, values
//! inserted verbatim.
//!
//! Templates are parsed once, when built, so a malformed template fails at
//! construction and formatting is a single pass: a brace inside a value (a
//! tool description, a previous step's answer) is never read as a
//! placeholder.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use crate::error::TemplateError;
use crate::model::{Message, Role};

/// Named values to fill a template with.
pub trait PromptValues: Sync {
    /// The value of `name`, if any.
    fn value(&self, name: &str) -> Option<&str>;
}

impl PromptValues for BTreeMap<String, String> {
    fn value(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

impl PromptValues for HashMap<String, String> {
    fn value(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

impl PromptValues for [(&str, &str)] {
    fn value(&self, name: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
    }
}

impl<const N: usize> PromptValues for [(&str, &str); N] {
    fn value(&self, name: &str) -> Option<&str> {
        self.as_slice().value(name)
    }
}

impl<V: PromptValues + ?Sized> PromptValues for &V {
    fn value(&self, name: &str) -> Option<&str> {
        (**self).value(name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Text(String),
    Var(String),
}

/// A string template with `{name}` placeholders.
///
/// `{{` and `}}` stand for literal braces. Names are made of letters, digits,
/// `_`, `-` and `.`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptTemplate {
    segments: Vec<Segment>,
}

impl PromptTemplate {
    /// Parses a template.
    ///
    /// # Errors
    /// [`TemplateError::Syntax`] for an unmatched brace or an invalid name.
    pub fn new(template: &str) -> Result<Self, TemplateError> {
        let mut segments = Vec::new();
        let mut text = String::new();
        let bytes = template.as_bytes();
        let mut i = 0;
        while i < template.len() {
            match bytes[i] {
                b'{' if bytes.get(i + 1) == Some(&b'{') => {
                    text.push('{');
                    i += 2;
                }
                b'}' if bytes.get(i + 1) == Some(&b'}') => {
                    text.push('}');
                    i += 2;
                }
                b'{' => {
                    let close = template[i + 1..].find('}').ok_or(TemplateError::Syntax {
                        position: i,
                        reason: "`{` is never closed (write `{{` for a literal brace)".into(),
                    })?;
                    let name = &template[i + 1..i + 1 + close];
                    let valid = !name.is_empty()
                        && name
                            .chars()
                            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'));
                    if !valid {
                        return Err(TemplateError::Syntax {
                            position: i,
                            reason: format!(
                                "{{{name}}} is not a placeholder name (write `{{{{` for a literal brace)"
                            ),
                        });
                    }
                    if !text.is_empty() {
                        segments.push(Segment::Text(std::mem::take(&mut text)));
                    }
                    segments.push(Segment::Var(name.to_owned()));
                    i += close + 2;
                }
                b'}' => {
                    return Err(TemplateError::Syntax {
                        position: i,
                        reason: "`}` has no opening brace (write `}}` for a literal brace)".into(),
                    });
                }
                _ => {
                    // Copy up to the next brace in one go, keeping UTF-8 intact.
                    let next = template[i..]
                        .find(['{', '}'])
                        .map_or(template.len(), |n| i + n);
                    text.push_str(&template[i..next]);
                    i = next;
                }
            }
        }
        if !text.is_empty() {
            segments.push(Segment::Text(text));
        }
        Ok(Self { segments })
    }

    /// A template that is all text: braces in it are literal.
    pub fn literal(text: impl Into<String>) -> Self {
        let text = text.into();
        Self {
            segments: if text.is_empty() {
                Vec::new()
            } else {
                vec![Segment::Text(text)]
            },
        }
    }

    /// The placeholder names, in order of first appearance.
    pub fn variables(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for segment in &self.segments {
            if let Segment::Var(name) = segment
                && !names.contains(&name.as_str())
            {
                names.push(name);
            }
        }
        names
    }

    /// Fills every placeholder it has a value for and keeps the others: the
    /// result is a template with fewer variables.
    #[must_use]
    pub fn partial(&self, values: &dyn PromptValues) -> Self {
        let mut segments: Vec<Segment> = Vec::with_capacity(self.segments.len());
        for segment in &self.segments {
            let next = match segment {
                Segment::Var(name) => match values.value(name) {
                    Some(v) => Segment::Text(v.to_owned()),
                    None => segment.clone(),
                },
                Segment::Text(_) => segment.clone(),
            };
            match (segments.last_mut(), next) {
                (Some(Segment::Text(prev)), Segment::Text(t)) => prev.push_str(&t),
                (_, next) => segments.push(next),
            }
        }
        Self { segments }
    }

    /// Fills the template.
    ///
    /// # Errors
    /// [`TemplateError::MissingVariable`] naming the first placeholder
    /// without a value.
    pub fn format(&self, values: &dyn PromptValues) -> Result<String, TemplateError> {
        // Sized first, so the text (a step prompt is kilobytes) is written
        // into one allocation instead of being copied as it grows.
        let mut len = 0;
        for segment in &self.segments {
            len += match segment {
                Segment::Text(t) => t.len(),
                Segment::Var(name) => values
                    .value(name)
                    .ok_or_else(|| TemplateError::MissingVariable { name: name.clone() })?
                    .len(),
            };
        }
        let mut out = String::with_capacity(len);
        for segment in &self.segments {
            match segment {
                Segment::Text(t) => out.push_str(t),
                Segment::Var(name) => out.push_str(values.value(name).unwrap_or_default()),
            }
        }
        Ok(out)
    }
}

impl fmt::Display for PromptTemplate {
    /// The template's source form (braces in text escaped again).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for segment in &self.segments {
            match segment {
                Segment::Text(t) => f.write_str(&t.replace('{', "{{").replace('}', "}}"))?,
                Segment::Var(name) => write!(f, "{{{name}}}")?,
            }
        }
        Ok(())
    }
}

impl std::str::FromStr for PromptTemplate {
    type Err = TemplateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

/// A list of message templates; typically a system message and a human
/// message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatPromptTemplate {
    messages: Vec<(Role, PromptTemplate)>,
}

impl ChatPromptTemplate {
    /// A system message followed by a human (user) message.
    pub fn new(system: PromptTemplate, human: PromptTemplate) -> Self {
        Self {
            messages: vec![(Role::System, system), (Role::User, human)],
        }
    }

    /// Any sequence of message templates.
    pub fn from_messages(messages: Vec<(Role, PromptTemplate)>) -> Self {
        Self { messages }
    }

    /// The message templates.
    pub fn messages(&self) -> &[(Role, PromptTemplate)] {
        &self.messages
    }

    /// Every placeholder name across the messages, in order of first
    /// appearance.
    pub fn variables(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for (_, template) in &self.messages {
            for name in template.variables() {
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        names
    }

    /// Fills every message.
    ///
    /// # Errors
    /// [`TemplateError::MissingVariable`] naming the first placeholder
    /// without a value.
    pub fn format_messages(
        &self,
        values: &dyn PromptValues,
    ) -> Result<Vec<Message>, TemplateError> {
        self.messages
            .iter()
            .map(|(role, template)| {
                let content = template.format(values)?;
                Ok(match role {
                    Role::System => Message::system(content),
                    Role::User => Message::user(content),
                    Role::Assistant => Message::assistant(content),
                    Role::Tool => Message {
                        role: Role::Tool,
                        ..Message::user(content)
                    },
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(template: &str, values: &[(&str, &str)]) -> Result<String, TemplateError> {
        PromptTemplate::new(template)?.format(&values)
    }

    #[test]
    fn placeholders_and_escapes() {
        assert_eq!(
            fill("Hello {name}!", &[("name", "Ann")]).unwrap(),
            "Hello Ann!"
        );
        assert_eq!(
            fill("{{literal}} {x}", &[("x", "1")]).unwrap(),
            "{literal} 1"
        );
        assert_eq!(fill("a }} b {{", &[]).unwrap(), "a } b {");
        assert_eq!(fill("{{{x}}}", &[("x", "v")]).unwrap(), "{v}");
        assert_eq!(fill("é {x} 😀", &[("x", "ü")]).unwrap(), "é ü 😀");
    }

    #[test]
    fn values_are_inserted_verbatim() {
        let out = fill("{a}|{b}", &[("a", "{b}"), ("b", "}} {{ {x}")]).unwrap();
        assert_eq!(out, "{b}|}} {{ {x}");
    }

    #[test]
    fn missing_variable_is_named() {
        assert_eq!(
            fill("{a} {b}", &[("a", "1")]),
            Err(TemplateError::MissingVariable { name: "b".into() })
        );
    }

    #[test]
    fn malformed_templates_fail_at_construction() {
        for bad in ["{", "a } b", "{not closed", "{}", "{a b}", "{\"json\": 1}"] {
            assert!(
                matches!(PromptTemplate::new(bad), Err(TemplateError::Syntax { .. })),
                "{bad:?} should be a syntax error"
            );
        }
    }

    #[test]
    fn literal_and_partial() {
        let lit = PromptTemplate::literal("{not a var}");
        assert!(lit.variables().is_empty());
        assert_eq!(lit.format(&[("x", "y")]).unwrap(), "{not a var}");
        let t = PromptTemplate::new("{tools}\n{input}").unwrap();
        let p = t.partial(&[("tools", "calc: {expression}")]);
        assert_eq!(p.variables(), vec!["input"]);
        assert_eq!(
            p.format(&[("input", "hi")]).unwrap(),
            "calc: {expression}\nhi"
        );
    }

    #[test]
    fn display_round_trips() {
        let src = "{{a}} {b} c}}";
        let t = PromptTemplate::new(src).unwrap();
        assert_eq!(t.to_string(), src);
        assert_eq!(PromptTemplate::new(&t.to_string()).unwrap(), t);
    }

    #[test]
    fn chat_template_formats_messages() {
        let chat = ChatPromptTemplate::new(
            PromptTemplate::literal("You plan. {braces ok}"),
            PromptTemplate::new("{input}").unwrap(),
        );
        assert_eq!(chat.variables(), vec!["input"]);
        let messages = chat.format_messages(&[("input", "Why?")]).unwrap();
        assert_eq!(
            messages,
            vec![
                Message::system("You plan. {braces ok}"),
                Message::user("Why?")
            ]
        );
    }
}
