//! What models and servers wrap around an answer that is not part of it: a
//! reasoning block (`<think>...</think>`) and chat-template tokens that leak
//! when a server does not stop at them (`<|im_end|>`, `<|eot_id|>`, `</s>`).

use std::borrow::Cow;

use pae_core::output::strip_reasoning;

/// Chat-template tokens that are not of the `<|name|>` form.
const OTHER_TOKENS: [&str; 5] = [
    "</s>",
    "<end_of_turn>",
    "<start_of_turn>",
    "[/INST]",
    "[INST]",
];

/// Tokens that open a turn; the role name after them is dropped too.
const TURN_OPENERS: [&str; 3] = ["<|im_start|>", "<|start_header_id|>", "<start_of_turn>"];

/// The longest name accepted inside a `<|name|>` token.
const MAX_TOKEN_NAME: usize = 40;

/// `text` without reasoning blocks ([`strip_reasoning`]) and cut at the
/// first chat-template token that follows some content (tokens before any
/// content are dropped, with the role name after a turn opener).
pub(crate) fn strip_noise(text: &str) -> Cow<'_, str> {
    let text = strip_reasoning(text);
    let (skip, cut) = {
        let body: &str = &text;
        let skip = leading_tokens_len(body);
        let cut = first_token(&body[skip..]).map(|pos| skip + pos);
        (skip, cut)
    };
    if skip == 0 && cut.is_none() {
        return text;
    }
    let end = cut.unwrap_or(text.len());
    match text {
        Cow::Borrowed(s) => Cow::Borrowed(&s[skip..end]),
        Cow::Owned(s) => Cow::Owned(s[skip..end].to_owned()),
    }
}

/// The length of the whitespace, tokens and role names before any content.
fn leading_tokens_len(text: &str) -> usize {
    let mut pos = 0;
    loop {
        let rest = &text[pos..];
        let trimmed = rest.trim_start();
        let Some(len) = token_at(trimmed) else {
            return pos;
        };
        let token = &trimmed[..len];
        let mut next = pos + (rest.len() - trimmed.len()) + len;
        if TURN_OPENERS.contains(&token) {
            // The role name ("assistant", "model") up to the end of its line
            // or the closing header token.
            let after = &text[next..];
            let role_end = after
                .find(['\n', '<'])
                .filter(|&i| after[..i].trim().chars().all(|c| c.is_ascii_alphanumeric()))
                .unwrap_or(0);
            next += role_end;
        }
        pos = next;
    }
}

/// The length of a chat-template token at the start of `s`, if any.
fn token_at(s: &str) -> Option<usize> {
    if let Some(after) = s.strip_prefix("<|") {
        let name_len = after
            .char_indices()
            .take_while(|&(i, c)| i < MAX_TOKEN_NAME && (c.is_ascii_alphanumeric() || c == '_'))
            .count();
        return (name_len > 0 && after[name_len..].starts_with("|>")).then_some(name_len + 4);
    }
    OTHER_TOKENS
        .iter()
        .find(|t| s.starts_with(*t))
        .map(|t| t.len())
}

/// Where the first chat-template token in `text` starts.
fn first_token(text: &str) -> Option<usize> {
    // Every token starts with `<` or `[` (ASCII: found by memchr, and
    // always at a character boundary).
    memchr::memchr2_iter(b'<', b'[', text.as_bytes()).find(|&i| token_at(&text[i..]).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasoning_blocks_are_dropped() {
        assert_eq!(strip_noise("<think>1. no</think>\n1. yes"), "\n1. yes");
        assert_eq!(strip_noise("<THINKING>x</THINKING>ok"), "ok");
        assert_eq!(strip_noise("only the end</think>ok"), "ok");
        assert_eq!(strip_noise("Sure.<think>cut off"), "Sure.");
        assert_eq!(strip_noise("a <think>b</think> c"), "a  c");
        assert_eq!(strip_noise("no tags"), "no tags");
    }

    #[test]
    fn chat_tokens_end_the_answer() {
        assert_eq!(strip_noise("1. a<|im_end|>\n<|im_start|>user"), "1. a");
        assert_eq!(strip_noise("1. a<|eot_id|>"), "1. a");
        assert_eq!(strip_noise("1. a</s>"), "1. a");
        assert_eq!(strip_noise("1. a<end_of_turn>\n"), "1. a");
        assert_eq!(
            strip_noise("<|im_start|>assistant\n1. a<|im_end|>"),
            "\n1. a"
        );
        assert_eq!(
            strip_noise("<|start_header_id|>assistant<|end_header_id|>\n\n1. a<|eot_id|>"),
            "\n\n1. a"
        );
        assert_eq!(
            strip_noise("keep <|not a token|> and <| x"),
            "keep <|not a token|> and <| x"
        );
        assert_eq!(strip_noise("<|im_end|>"), "");
    }
}
