//! The text-JSON action parser: a table of replies models really write, and
//! property tests that no reply makes it panic.

use pae_executor::{Action, ActionParseError, parse_action};
use proptest::prelude::*;
use serde_json::{Value, json};

#[derive(Debug)]
enum Expect {
    Tool(&'static str, Value),
    Final(Value),
    Empty,
    NoAction,
    InvalidJson,
    NotAnAction,
}

fn check(reply: &str, expect: Expect) {
    let got = parse_action(reply);
    let ok = match (&got, &expect) {
        (Ok(Action::Tool { name, input }), Expect::Tool(n, i)) => name == n && input == i,
        (Ok(Action::Final { answer }), Expect::Final(a)) => answer == a,
        (Err(ActionParseError::Empty), Expect::Empty)
        | (Err(ActionParseError::NoAction), Expect::NoAction)
        | (Err(ActionParseError::InvalidJson { .. }), Expect::InvalidJson)
        | (Err(ActionParseError::NotAnAction { .. }), Expect::NotAnAction) => true,
        _ => false,
    };
    assert!(ok, "reply {reply:?}\n  expected {expect:?}\n  got {got:?}");
}

fn calc(expression: &str) -> Expect {
    Expect::Tool("calculator", json!({ "expression": expression }))
}

#[test]
fn action_parser_table() {
    use Expect::*;
    let cases: Vec<(&str, Expect)> = vec![
        // 1. The format the prompt asks for.
        (
            "Thought: add\nAction:\n```json\n{\"action\": \"calculator\", \"action_input\": {\"expression\": \"1+1\"}}\n```",
            calc("1+1"),
        ),
        // 2. A fence without a language tag.
        (
            "```\n{\"action\": \"calculator\", \"action_input\": {\"expression\": \"2\"}}\n```",
            calc("2"),
        ),
        // 3. ```JSON in capitals.
        (
            "Action:\n```JSON\n{\"action\": \"calculator\", \"action_input\": {\"expression\": \"3\"}}\n```",
            calc("3"),
        ),
        // 4. Mixed-case tag.
        (
            "```Json\n{\"action\": \"calculator\", \"action_input\": {\"expression\": \"4\"}}\n```",
            calc("4"),
        ),
        // 5. The tag touching the brace, all on one line.
        (
            "```json{\"action\": \"calculator\", \"action_input\": {\"expression\": \"5\"}}```",
            calc("5"),
        ),
        // 6. A space before the tag.
        (
            "``` json\n{\"action\": \"calculator\", \"action_input\": {\"expression\": \"6\"}}\n```",
            calc("6"),
        ),
        // 7. Unfenced JSON.
        (
            "{\"action\": \"calculator\", \"action_input\": {\"expression\": \"7\"}}",
            calc("7"),
        ),
        // 8. Unfenced JSON between a thought and trailing prose.
        (
            "Thought: easy.\nAction: {\"action\": \"calculator\", \"action_input\": {\"expression\": \"8\"}} and then I will see.",
            calc("8"),
        ),
        // 9. Trailing prose after the fenced block.
        (
            "```json\n{\"action\": \"Final Answer\", \"action_input\": \"nine\"}\n```\nI hope this helps! Let me know {if} you need more.",
            Final(json!("nine")),
        ),
        // 10. A list of actions: the first one is used.
        (
            "```json\n[{\"action\": \"calculator\", \"action_input\": {\"expression\": \"10\"}}, {\"action\": \"Final Answer\", \"action_input\": \"x\"}]\n```",
            calc("10"),
        ),
        // 11. An empty list is not an action.
        ("```json\n[]\n```", NotAnAction),
        // 12. A tool action without action_input gets {}.
        (
            "```json\n{\"action\": \"current_time\"}\n```",
            Tool("current_time", json!({})),
        ),
        // 13. A final answer without action_input is an error.
        ("```json\n{\"action\": \"Final Answer\"}\n```", NotAnAction),
        // 14. Braces inside strings.
        (
            "```json\n{\"action\": \"Final Answer\", \"action_input\": \"use {x} or }{ or {{y}}\"}\n```",
            Final(json!("use {x} or }{ or {{y}}")),
        ),
        // 15. Escaped quotes inside strings.
        (
            "```json\n{\"action\": \"Final Answer\", \"action_input\": \"she said \\\"hi\\\" {ok}\"}\n```",
            Final(json!("she said \"hi\" {ok}")),
        ),
        // 16. "final answer" in lower case.
        (
            "```json\n{\"action\": \"final answer\", \"action_input\": \"lower\"}\n```",
            Final(json!("lower")),
        ),
        // 17. FINAL_ANSWER spelled as an identifier.
        (
            "{\"action\": \"FINAL_ANSWER\", \"action_input\": \"ident\"}",
            Final(json!("ident")),
        ),
        // 18. Truncated JSON inside an unclosed fence.
        (
            "Action:\n```json\n{\"action\": \"calculator\", \"action_input\": {\"expression\": \"1+",
            InvalidJson,
        ),
        // 19. Truncated JSON without a fence.
        (
            "Action: {\"action\": \"calculator\", \"action_input\": {\"expr",
            InvalidJson,
        ),
        // 20. Two fenced blocks, the first invalid: the first valid one wins.
        (
            "```json\n{\"action\": \"calculator\", \"action_input\": }\n```\nSorry, fixed:\n```json\n{\"action\": \"calculator\", \"action_input\": {\"expression\": \"20\"}}\n```",
            calc("20"),
        ),
        // 21. Two valid fenced blocks: the first one.
        (
            "```json\n{\"action\": \"calculator\", \"action_input\": {\"expression\": \"21\"}}\n```\n```json\n{\"action\": \"Final Answer\", \"action_input\": \"no\"}\n```",
            calc("21"),
        ),
        // 22. A code block in another language first.
        (
            "```python\nprint({'a': 1})\n```\n```json\n{\"action\": \"calculator\", \"action_input\": {\"expression\": \"22\"}}\n```",
            calc("22"),
        ),
        // 23. Raw newlines inside a string (json.loads(strict=False) accepts them).
        (
            "```json\n{\"action\": \"Final Answer\", \"action_input\": \"line one\nline two\"}\n```",
            Final(json!("line one\nline two")),
        ),
        // 24. Plain text without any JSON: not an action (fed back).
        ("The answer is probably 42.", NoAction),
        // 25. Prose with braces that are not JSON.
        ("The set {1, 2, 3} has three elements.", NoAction),
        // 26. Empty and whitespace-only replies.
        ("", Empty),
        ("  \n\t ", Empty),
        // 27. An explicit "Final Answer:" line is an answer.
        (
            "Thought: I know it.\nFinal Answer: Paris is the capital.",
            Final(json!("Paris is the capital.")),
        ),
        // 28. ReAct-style Action / Action Input lines.
        (
            "Thought: compute\nAction: calculator\nAction Input: {\"expression\": \"28\"}",
            calc("28"),
        ),
        // 29. ReAct with a bare string input.
        (
            "Action: calculator\nAction Input: 29*1",
            Tool("calculator", json!("29*1")),
        ),
        // 30. A native tool call written as text (name/arguments).
        (
            "{\"name\": \"calculator\", \"arguments\": {\"expression\": \"30\"}}",
            calc("30"),
        ),
        // 31. A non-string action is not an action.
        (
            "```json\n{\"action\": 31, \"action_input\": {}}\n```",
            NotAnAction,
        ),
        // 32. JSON without an action key.
        ("```json\n{\"answer\": 32}\n```", NotAnAction),
        // 33. A structured final answer.
        (
            "```json\n{\"action\": \"Final Answer\", \"action_input\": {\"a\": [1, {\"b\": \"}\"}]}}\n```",
            Final(json!({"a": [1, {"b": "}"}]})),
        ),
        // 34. A number as the final answer.
        (
            "```json\n{\"action\": \"Final Answer\", \"action_input\": 34}\n```",
            Final(json!(34)),
        ),
        // 35. The model invented an observation after its action.
        (
            "```json\n{\"action\": \"calculator\", \"action_input\": {\"expression\": \"35\"}}\n```\nObservation: 35\nThought: done\n```json\n{\"action\": \"Final Answer\", \"action_input\": \"35\"}\n```",
            calc("35"),
        ),
        // 36. A JSON string in the fence is not an action.
        ("```json\n\"just text\"\n```", NotAnAction),
        // 37. A trailing comma is repaired (small models write them).
        (
            "```json\n{\"action\": \"calculator\", \"action_input\": {\"expression\": \"37\"},}\n```",
            calc("37"),
        ),
        // 37b. So are single quotes and Python literals.
        (
            "```json\n{'action': 'Final Answer', 'action_input': True}\n```",
            Final(json!(true)),
        ),
        // 37c. Mixed quotes are not guessed at.
        (
            "```json\n{'action': \"calculator\", 'action_input': {}}\n```",
            InvalidJson,
        ),
        // 38. Unicode survives.
        (
            "```json\n{\"action\": \"Final Answer\", \"action_input\": \"日本 😀 é\"}\n```",
            Final(json!("日本 😀 é")),
        ),
        // 39. Key spelled in another case, input under "input".
        (
            "{\"Action\": \"calculator\", \"input\": {\"expression\": \"39\"}}",
            calc("39"),
        ),
        // 40. A whitespace-padded action name.
        (
            "{\"action\": \"  calculator \", \"action_input\": {\"expression\": \"40\"}}",
            calc("40"),
        ),
        // 41. An empty action name.
        ("{\"action\": \"\", \"action_input\": {}}", NotAnAction),
        // 42. An unclosed fence with valid JSON inside still parses.
        (
            "```json\n{\"action\": \"Final Answer\", \"action_input\": \"open\"}",
            Final(json!("open")),
        ),
        // 43. Escaped backslashes and a quote at the end of a string.
        (
            "{\"action\": \"Final Answer\", \"action_input\": \"C:\\\\dir\\\\ \\\"q\\\"\"}",
            Final(json!("C:\\dir\\ \"q\"")),
        ),
        // 44. A "Final Answer:" line with nothing after it.
        ("Final Answer:   ", NotAnAction),
    ];
    assert!(cases.len() >= 25);
    for (reply, expect) in cases {
        check(reply, expect);
    }
}

/// Replies collected from how real models answer the text-JSON prompt
/// (and the shapes they were trained on elsewhere), beyond the format the
/// prompt asks for. Each comment says what the model did.
#[test]
fn action_parser_real_world_replies() {
    use Expect::*;
    let many_braces = format!(
        "Thought: in LaTeX this is {}.\n{{\"action\": \"calculator\", \"action_input\": {{\"expression\": \"2*21\"}}}}",
        "\\frac{a}{b} ".repeat(40)
    );
    let long_answer = "x".repeat(200_000);
    let long_reply = format!(
        "Thought: {}\nAction:\n```json\n{{\"action\": \"Final Answer\", \"action_input\": \"{long_answer}\"}}\n```",
        "thinking ".repeat(20_000)
    );
    let cases: Vec<(&str, Expect)> = vec![
        // 1. "Action:" then a fenced, pretty-printed blob.
        (
            "Action:\n```json\n{\n  \"action\": \"calculator\",\n  \"action_input\": {\"expression\": \"12 * 7\"}\n}\n```",
            calc("12 * 7"),
        ),
        // 2. LangChain's structured-chat shape with a bare fence.
        (
            "Thought: I need to multiply.\nAction:\n```\n{\"action\": \"calculator\", \"action_input\": {\"expression\": \"3*4\"}}\n```",
            calc("3*4"),
        ),
        // 3. A string action_input: kept as given (the agent maps it onto a
        //    single-argument tool's argument).
        (
            "{\"action\": \"calculator\", \"action_input\": \"2+2\"}",
            Tool("calculator", json!("2+2")),
        ),
        // 4. action_input as JSON text: kept as text here; the agent decodes
        //    it when it fits the tool's schema.
        (
            "```json\n{\"action\": \"calculator\", \"action_input\": \"{\\\"expression\\\": \\\"2+2\\\"}\"}\n```",
            Tool("calculator", json!("{\"expression\": \"2+2\"}")),
        ),
        // 5. {"tool", "tool_input"}.
        (
            "```json\n{\"tool\": \"calculator\", \"tool_input\": {\"expression\": \"5*5\"}}\n```",
            calc("5*5"),
        ),
        // 6. OpenAI's wire shape: arguments as JSON text are decoded.
        (
            "{\"name\": \"calculator\", \"arguments\": \"{\\\"expression\\\": \\\"9-1\\\"}\"}",
            calc("9-1"),
        ),
        // 7. Hermes / Qwen <tool_call> tags.
        (
            "<tool_call>\n{\"name\": \"calculator\", \"arguments\": {\"expression\": \"7*8\"}}\n</tool_call>",
            calc("7*8"),
        ),
        // 8. Llama 3.1's "parameters" key after <|python_tag|>.
        (
            "<|python_tag|>{\"name\": \"calculator\", \"parameters\": {\"expression\": \"3*3\"}}",
            calc("3*3"),
        ),
        // 9. Mistral's [TOOL_CALLS] list.
        (
            "[TOOL_CALLS] [{\"name\": \"calculator\", \"arguments\": {\"expression\": \"4+4\"}}]",
            calc("4+4"),
        ),
        // 10. A whole OpenAI message: tool_calls[0].function, arguments as text.
        (
            "{\"tool_calls\": [{\"id\": \"call_1\", \"type\": \"function\", \"function\": {\"name\": \"calculator\", \"arguments\": \"{\\\"expression\\\": \\\"4*4\\\"}\"}}]}",
            calc("4*4"),
        ),
        // 11. {"type": "function", "function": {...}} in a fence.
        (
            "```json\n{\"type\": \"function\", \"function\": {\"name\": \"calculator\", \"arguments\": {\"expression\": \"5*4\"}}}\n```",
            calc("5*4"),
        ),
        // 12. ReAct lines with a bare input.
        (
            "Thought: I should calculate.\nAction: calculator\nAction Input: 2+2",
            Tool("calculator", json!("2+2")),
        ),
        // 13. ReAct with a blank line before the input.
        (
            "Action: calculator\n\nAction Input: 2+3",
            Tool("calculator", json!("2+3")),
        ),
        // 14. ReAct with a multi-line JSON input.
        (
            "Action: calculator\nAction Input: {\n  \"expression\": \"5+5\"\n}",
            calc("5+5"),
        ),
        // 15. ReAct with the input in a fence on the next lines.
        (
            "Action: calculator\nAction Input:\n```json\n{\"expression\": \"6+6\"}\n```",
            calc("6+6"),
        ),
        // 16. The ReAct paper's tool[input].
        ("Action: calculator[2+7]", Tool("calculator", json!("2+7"))),
        // 17. "Final Answer:" without JSON (LangChain's JSON agent would
        //     fail); the answer runs to the end.
        (
            "Thought: I know the answer.\nFinal Answer: 42",
            Final(json!("42")),
        ),
        // 18. ReAct final answer through Action / Action Input.
        (
            "Thought: done\nAction: Final Answer\nAction Input: The total is 84.\nIt was 12 boxes.",
            Final(json!("The total is 84.\nIt was 12 boxes.")),
        ),
        // 19. ... which needs its input.
        ("Thought: done\nAction: Final Answer", NotAnAction),
        // 20. A "Final Answer:" line whose answer holds a JSON block that is
        //     not an action: the answer, not a parse error.
        (
            "Final Answer: The result is:\n```json\n{\"total\": 84}\n```",
            Final(json!("The result is:\n```json\n{\"total\": 84}\n```")),
        ),
        // 21-24. The final-answer action spelled in other ways.
        (
            "```json\n{\"action\": \"final_answer\", \"action_input\": \"a\"}\n```",
            Final(json!("a")),
        ),
        (
            "```json\n{\"action\": \"Final answer\", \"action_input\": \"b\"}\n```",
            Final(json!("b")),
        ),
        (
            "```json\n{\"action\": \"FINAL ANSWER\", \"action_input\": \"c\"}\n```",
            Final(json!("c")),
        ),
        (
            "{\"action\": \"Final Answer:\", \"action_input\": \"d\"}",
            Final(json!("d")),
        ),
        // 25. {"final_answer": ...} with no action key.
        ("{\"final_answer\": \"42\"}", Final(json!("42"))),
        // 26. A call to a "final_answer" function: its one argument.
        (
            "<tool_call>\n{\"name\": \"final_answer\", \"arguments\": {\"answer\": \"Paris\"}}\n</tool_call>",
            Final(json!("Paris")),
        ),
        // 27. A tool name in another case: kept (the agent matches it).
        (
            "{\"action\": \"Calculator\", \"action_input\": {\"expression\": \"1+1\"}}",
            Tool("Calculator", json!({"expression": "1+1"})),
        ),
        // 28. Line comments inside the JSON.
        (
            "```json\n{\n  // use the calculator\n  \"action\": \"calculator\",\n  \"action_input\": {\"expression\": \"1+1\"} // sum\n}\n```",
            calc("1+1"),
        ),
        // 29. A block comment, and a trailing comma after a comment.
        (
            "```json\n{ /* tool */ \"action\": \"calculator\", \"action_input\": {\"expression\": \"1+2\"}, /* done */ }\n```",
            calc("1+2"),
        ),
        // 30. A URL inside a string is not a comment.
        (
            "```json\n{\"action\": \"Final Answer\", \"action_input\": \"see https://example.org/a\"} // ok\n```",
            Final(json!("see https://example.org/a")),
        ),
        // 31. Nested fences: a markdown block holding the JSON block.
        (
            "````\n```json\n{\"action\": \"calculator\", \"action_input\": {\"expression\": \"6/2\"}}\n```\n````",
            calc("6/2"),
        ),
        // 32. A four-backtick fence.
        (
            "````json\n{\"action\": \"calculator\", \"action_input\": {\"expression\": \"6/3\"}}\n````",
            calc("6/3"),
        ),
        // 33. An invented observation and a second action after the first:
        //     the first action (the agent also cuts at "Observation:").
        (
            "Thought: compute\nAction:\n```json\n{\"action\": \"calculator\", \"action_input\": {\"expression\": \"2*3\"}}\n```\nObservation: 6\nThought: I now know\nAction:\n```json\n{\"action\": \"Final Answer\", \"action_input\": \"6\"}\n```",
            calc("2*3"),
        ),
        // 34. A tool action, then a "Final Answer:" line: the action.
        (
            "I'll compute.\n```json\n{\"action\": \"calculator\", \"action_input\": {\"expression\": \"9*9\"}}\n```\nFinal Answer: 81",
            calc("9*9"),
        ),
        // 35. "Final Answer" in a thought's prose is not an answer line.
        (
            "Thought: Before I can give the Final Answer: I need to compute.\nAction:\n```json\n{\"action\": \"calculator\", \"action_input\": {\"expression\": \"2+2\"}}\n```",
            calc("2+2"),
        ),
        // 36. Numbers and null as action_input.
        (
            "{\"action\": \"Final Answer\", \"action_input\": 42.5}",
            Final(json!(42.5)),
        ),
        (
            "{\"action\": \"current_time\", \"action_input\": null}",
            Tool("current_time", Value::Null),
        ),
        (
            "{\"action\": \"Final Answer\", \"action_input\": null}",
            Final(Value::Null),
        ),
        // 37. Unicode everywhere.
        (
            "Pensée : je calcule.\nAction:\n```json\n{\"action\": \"Final Answer\", \"action_input\": \"Le résultat est 42 — voilà ✅\"}\n```",
            Final(json!("Le résultat est 42 — voilà ✅")),
        ),
        // 38. A Windows path with single backslashes (those that are not
        //     JSON escapes; "\n" in a path stays ambiguous).
        (
            "{\"action\": \"Final Answer\", \"action_input\": \"C:\\Users\\Ann\\Desktop\"}",
            Final(json!("C:\\Users\\Ann\\Desktop")),
        ),
        // 39. Unquoted keys (JSON5 / JavaScript habit).
        (
            "{action: \"calculator\", action_input: {expression: \"2+2\"}}",
            calc("2+2"),
        ),
        // 40. Typographic quotes from a chat UI.
        (
            "{\u{201c}action\u{201d}: \u{201c}calculator\u{201d}, \u{201c}action_input\u{201d}: {\u{201c}expression\u{201d}: \u{201c}2+5\u{201d}}}",
            calc("2+5"),
        ),
        // 41. A Python dict in a python fence.
        (
            "```python\n{'action': 'calculator', 'action_input': {'expression': 'min(1, 2)'}}\n```",
            calc("min(1, 2)"),
        ),
        // 42. One closing brace short inside a closed fence.
        (
            "```json\n{\"action\": \"calculator\", \"action_input\": {\"expression\": \"3+3\"}\n```",
            calc("3+3"),
        ),
        // 43. ... but a string cut off inside a closed fence stays an error.
        (
            "```json\n{\"action\": \"calculator\", \"action_input\": {\"expression\": \"3+\n```",
            InvalidJson,
        ),
        // 44. The fence closed on the JSON's last line.
        (
            "```json\n{\"action\": \"calculator\", \"action_input\": {\"expression\": \"3\"}}```",
            calc("3"),
        ),
        // 45. "json" written as a word before unfenced JSON.
        (
            "json\n{\"action\": \"calculator\", \"action_input\": {\"expression\": \"7-2\"}}",
            calc("7-2"),
        ),
        // 46. {"actions": [...]}: the first one.
        (
            "{\"actions\": [{\"action\": \"calculator\", \"action_input\": {\"expression\": \"2\"}}]}",
            calc("2"),
        ),
        // 47. An action after many braces of prose.
        (&many_braces, calc("2*21")),
        // 48. A very long reply.
        (&long_reply, Final(json!(long_answer))),
        // 49. Bold markdown labels.
        (
            "**Thought:** easy\n**Final Answer:** 12",
            Final(json!("12")),
        ),
        // 51. A reasoning model's draft inside <think> is not the action.
        (
            "<think>\nMaybe:\n```json\n{\"action\": \"calculator\", \"action_input\": {\"expression\": \"1+1\"}}\n```\nNo, I know it.\n</think>\n```json\n{\"action\": \"Final Answer\", \"action_input\": \"2\"}\n```",
            Final(json!("2")),
        ),
        // 52. ... nor when the template opened the <think> in the prompt.
        (
            "Okay, so Final Answer: maybe 3? Let me compute.\n</think>\n\nAction:\n```json\n{\"action\": \"calculator\", \"action_input\": {\"expression\": \"1+2\"}}\n```",
            calc("1+2"),
        ),
        // 53. Thinking only, or cut off inside the thoughts (by the stop
        //     sequence or the token limit): nothing to act on.
        ("<thinking>I am not sure yet.</thinking>\n", Empty),
        (
            "<think>I could call {\"action\": \"calculator\", \"action_input\": {\"expression\": \"1+1\"}}.\n",
            Empty,
        ),
        // 54. YAML-style keys as lines.
        (
            "action: calculator\naction_input: 2+2",
            Tool("calculator", json!("2+2")),
        ),
        // 50. A bare "Action:" line next to broken JSON stays the JSON's error.
        (
            "Action: calculator\n```json\n{\"expression\": \"1+\n",
            InvalidJson,
        ),
    ];
    assert!(cases.len() >= 40);
    for (reply, expect) in cases {
        check(reply, expect);
    }
}

#[test]
fn hostile_inputs_are_bounded_and_do_not_panic() {
    let many_braces = "{".repeat(200_000);
    assert!(parse_action(&many_braces).is_err());
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert!(parse_action(&deep).is_err());
    let fences = "```".repeat(50_000);
    assert_eq!(parse_action(&fences), Err(ActionParseError::NoAction));
    let unterminated = format!(
        "{{\"action\": \"x\", \"action_input\": \"{}",
        "{".repeat(100_000)
    );
    assert!(matches!(
        parse_action(&unterminated),
        Err(ActionParseError::InvalidJson { .. })
    ));
}

/// The number of cases per property: `PROPTEST_CASES`, or 5000.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000)
}

pub(super) fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("```".to_string()),
        Just("json".to_string()),
        Just("JSON\n".to_string()),
        Just("{".to_string()),
        Just("}".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        Just("\"action\"".to_string()),
        Just("\"action_input\"".to_string()),
        Just("\"name\"".to_string()),
        Just("\"arguments\"".to_string()),
        Just(":".to_string()),
        Just(",".to_string()),
        Just("\"Final Answer\"".to_string()),
        Just("\"calculator\"".to_string()),
        Just("\\".to_string()),
        Just("\"".to_string()),
        Just("\n".to_string()),
        Just("Action:".to_string()),
        Just("Action Input:".to_string()),
        Just("Final Answer:".to_string()),
        Just("**".to_string()),
        Just("//".to_string()),
        Just("/*".to_string()),
        Just("*/".to_string()),
        Just("'".to_string()),
        Just("\u{201c}".to_string()),
        Just("\u{201d}".to_string()),
        Just("<tool_call>".to_string()),
        Just("</tool_call>".to_string()),
        Just("\"function\"".to_string()),
        Just("\"tool_calls\"".to_string()),
        Just("\"final_answer\"".to_string()),
        Just("action:".to_string()),
        Just("True".to_string()),
        Just("[x]".to_string()),
        Just("````".to_string()),
        "[a-z0-9 ]{0,6}",
        any::<String>(),
    ]
}

proptest! {
    // 5000 cases by default; PROPTEST_CASES=20000 runs more.
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn no_string_makes_the_parser_panic(reply in any::<String>()) {
        let _ = parse_action(&reply);
    }

    #[test]
    fn no_json_like_reply_makes_the_parser_panic(parts in prop::collection::vec(fragment(), 0..40)) {
        let reply = parts.concat();
        if let Ok(Action::Tool { name, .. }) = parse_action(&reply) {
            prop_assert!(!name.trim().is_empty());
            prop_assert!(!pae_executor::is_final_answer(&name));
        }
    }

    #[test]
    fn a_fenced_action_is_found_in_any_prose(
        before in "[A-Za-z .,:!?\n]{0,80}",
        after in "[A-Za-z .,:!?\n{}]{0,80}",
        tool in "[a-z][a-z_]{0,11}",
        text in any::<String>(),
    ) {
        prop_assume!(!pae_executor::is_final_answer(&tool));
        prop_assume!(!before.to_ascii_lowercase().contains("final answer:"));
        let blob = json!({"action": tool, "action_input": {"text": text}});
        let reply = format!("{before}\n```json\n{blob}\n```\n{after}");
        prop_assert_eq!(
            parse_action(&reply),
            Ok(Action::Tool { name: tool.clone(), input: json!({"text": text}) })
        );
    }
}
