//! Table-driven tests of `PlanningOutputParser` on model outputs, and parity
//! with LangChain's split rule on text in LangChain's format.

use pae_core::{PlanOutputParser, PlanParseError};
use pae_planner::PlanningOutputParser;

/// Parses `input` and compares the step texts with `expected`; an empty
/// `expected` means the parse must fail with `NoSteps` carrying the text.
fn check(input: &str, expected: &[&str]) {
    let parser = PlanningOutputParser::new();
    match parser.parse(input) {
        Ok(plan) => {
            let steps: Vec<&str> = plan.steps.iter().map(|s| s.value.as_str()).collect();
            assert_eq!(steps, expected, "input: {input:?}");
            assert!(
                plan.steps
                    .iter()
                    .all(|s| s.id.is_none() && s.depends_on.is_empty())
            );
        }
        Err(PlanParseError::NoSteps { text }) => {
            assert!(
                expected.is_empty(),
                "no steps found in {input:?}, expected {expected:?}"
            );
            assert_eq!(text, input, "the error keeps the text");
        }
        Err(other) => panic!("unexpected error {other:?} for {input:?}"),
    }
}

#[test]
fn model_outputs_and_their_steps() {
    let cases: &[(&str, &str, &[&str])] = &[
        // --- LangChain's format ---
        (
            "seed format, as cut at the stop sequence",
            "Plan:\n1. Search for the population of France\n2. Given the above steps taken, please respond to the users original question\n",
            &[
                "Search for the population of France",
                "Given the above steps taken, please respond to the users original question",
            ],
        ),
        (
            "seed format with the end marker",
            "Plan:\n1. a\n2. b\n<END_OF_PLAN>",
            &["a", "b"],
        ),
        ("step on the very first line", "1. a\n2. b", &["a", "b"]),
        (
            "unstripped end marker with trailing chatter",
            "Plan:\n1. a\n2. b\n<END_OF_PLAN>\nI hope this helps! 3. Ask again",
            &["a", "b"],
        ),
        (
            "end marker on the last step's line",
            "1. a\n2. b <END_OF_PLAN> extra words",
            &["a", "b"],
        ),
        (
            "end marker variant",
            "1. a\n2. b\n</END_OF_PLAN>",
            &["a", "b"],
        ),
        // --- other list styles ---
        ("dash bullets", "Plan:\n- a\n- b", &["a", "b"]),
        ("star bullets", "* a\n* b", &["a", "b"]),
        ("round bullets", "• a\n• b\n• c", &["a", "b", "c"]),
        ("task-list bullets", "- [ ] a\n- [x] b", &["a", "b"]),
        ("closing parenthesis", "1) a\n2) b", &["a", "b"]),
        ("parenthesised numbers", "(1) a\n(2) b", &["a", "b"]),
        ("bold numbers", "**1.** a\n**2.** b", &["a", "b"]),
        (
            "bold whole step",
            "**1. Search the web**\n**2. Answer**",
            &["Search the web", "Answer"],
        ),
        ("Step N:", "Step 1: a\nStep 2: b", &["a", "b"]),
        ("bold Step N:", "**Step 1:** a\n**Step 2:** b", &["a", "b"]),
        (
            "headings",
            "### Step 1: Search\n### Step 2: Answer",
            &["Search", "Answer"],
        ),
        (
            "Step N: with the text on the next line",
            "Step 1:\nSearch the web\nStep 2:\nAnswer",
            &["Search the web", "Answer"],
        ),
        ("tab after the dot", "1.\ta\n2.\tb", &["a", "b"]),
        ("two spaces after the dot", "1.  a\n2.   b", &["a", "b"]),
        (
            "no space after the dot",
            "1.Search\n2.Answer",
            &["Search", "Answer"],
        ),
        // --- numbers inside steps ---
        (
            "1.1 sub-steps stay inside their step",
            "1. Gather data\n1.1 Find A\n1.2 Find B\n2. Answer",
            &["Gather data\n1.1 Find A\n1.2 Find B", "Answer"],
        ),
        (
            "a year at the start of a line",
            "1. Summarise the history\n2024. was the year it launched\n2. Answer",
            &[
                "Summarise the history\n2024. was the year it launched",
                "Answer",
            ],
        ),
        (
            "a number inside a step's text",
            "1. It costs 2024. Then pay\n2. Answer",
            &["It costs 2024. Then pay", "Answer"],
        ),
        (
            "a nested numbered list",
            "1. Compare\n   1. price\n   2. speed\n2. Answer",
            &["Compare\n1. price\n2. speed", "Answer"],
        ),
        (
            "a numbered list that is not the plan, before the header",
            "Things to consider:\n1. cost\n2. time\n\nPlan:\n1. a\n2. b",
            &["a", "b"],
        ),
        // --- line ends and scripts ---
        ("CRLF line ends", "Plan:\r\n1. a\r\n2. b\r\n", &["a", "b"]),
        ("CR line ends", "1. a\r2. b", &["a", "b"]),
        (
            "non-ASCII text",
            "Plan:\n1. Café ☕ — 東京の天気を調べる\n2. Répondre à la question 😀",
            &["Café ☕ — 東京の天気を調べる", "Répondre à la question 😀"],
        ),
        (
            "fullwidth digits",
            "１．調べる\n２．答える",
            &["調べる", "答える"],
        ),
        ("Arabic-Indic digits", "١. ابحث\n٢. أجب", &["ابحث", "أجب"]),
        // --- surrounding text ---
        (
            "preamble prose",
            "Sure! Here is a plan to solve this.\n\n1. a\n2. b",
            &["a", "b"],
        ),
        (
            "trailing chatter after a blank line",
            "1. a\n2. b\n\nLet me know if you need anything else!",
            &["a", "b"],
        ),
        (
            "continuation lines and sub-bullets",
            "1. Search for:\n   - flights\n   - hotels\n2. Book",
            &["Search for:\n- flights\n- hotels", "Book"],
        ),
        (
            "indented paragraph after a blank line stays in the last step",
            "1. a\n2. b\n\n   more about b",
            &["a", "b\nmore about b"],
        ),
        (
            "loose list with blank lines",
            "Plan:\n\n1. a\n\n2. b\n\n<END_OF_PLAN>",
            &["a", "b"],
        ),
        (
            "nested bullets",
            "- a\n  - detail\n- b",
            &["a\n- detail", "b"],
        ),
        ("uneven indentation", " 1. a\n2. b", &["a", "b"]),
        // --- numbering ---
        (
            "a revised plan numbered from 3",
            "Plan:\n3. c\n4. d",
            &["c", "d"],
        ),
        (
            "markdown numbering with every item 1.",
            "1. a\n1. b\n1. c",
            &["a", "b", "c"],
        ),
        ("a skipped number starts a step", "1. a\n3. c", &["a", "c"]),
        (
            "non-sequential numbers (seed parity)",
            "Plan:\n1. First.\n3. Second.\n7. Third.",
            &["First.", "Second.", "Third."],
        ),
        (
            "bullets before a numbered line stay steps (seed parity)",
            "Plan:\n- Think of a joke\n- Tell the joke\n1) also not a step\nStep 2: nor this",
            &[
                "Think of a joke",
                "Tell the joke\n1) also not a step\nStep 2: nor this",
            ],
        ),
        (
            "bullets alone (seed parity)",
            "Plan:\n- a\n- b\n",
            &["a", "b"],
        ),
        (
            "a year after the last step stays in it",
            "1. a\n2. Summarise the history\n2023. was a turning point",
            &["a", "Summarise the history\n2023. was a turning point"],
        ),
        (
            "bullets, then a numbered list after a blank line",
            "Plan:\n- a\n- b\n\n1. c\n2. d",
            &["a", "b", "c", "d"],
        ),
        ("an empty step is dropped", "1. \n2. b", &["b"]),
        // --- one-line plans ---
        (
            "one-line plan after a header",
            "Plan: 1. a 2. b",
            &["a", "b"],
        ),
        (
            "one numbered line with three items",
            "1. a 2. b 3. c",
            &["a", "b", "c"],
        ),
        (
            "one numbered line mentioning 2. stays one step",
            "1. It costs 2. Then pay",
            &["It costs 2. Then pay"],
        ),
        (
            "a list that begins inline",
            "Plan: 1. a\n2. b\n3. c",
            &["a", "b", "c"],
        ),
        // --- nothing to find ---
        ("empty input", "", &[]),
        ("whitespace only", "  \n\t\n", &[]),
        ("prose only", "I think you should just ask someone.", &[]),
        (
            "only the end marker",
            "<END_OF_PLAN>\n1. after the end",
            &[],
        ),
        ("a horizontal rule is not a bullet", "---\n* * *", &[]),
    ];
    assert!(cases.len() >= 25, "the table must hold at least 25 cases");
    for (name, input, expected) in cases {
        eprintln!("case: {name}");
        check(input, expected);
    }
    eprintln!("{} cases passed", cases.len());
}

/// LangChain's `re.split(r"\n\s*\d+\. ", text)[1:]`, for ASCII digits.
fn langchain_split(text: &str) -> Vec<String> {
    let bytes: Vec<char> = text.chars().collect();
    let mut pieces = Vec::new();
    let mut piece_start: Option<usize> = None;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == '\n' {
            let mut j = i + 1;
            while j < bytes.len() && bytes[j].is_whitespace() {
                j += 1;
            }
            let digits_start = j;
            while j < bytes.len() && bytes[j].is_ascii_digit() {
                j += 1;
            }
            if j > digits_start && bytes.get(j) == Some(&'.') && bytes.get(j + 1) == Some(&' ') {
                if let Some(start) = piece_start {
                    pieces.push(bytes[start..i].iter().collect());
                }
                piece_start = Some(j + 2);
                i = j + 2;
                continue;
            }
        }
        i += 1;
    }
    if let Some(start) = piece_start {
        pieces.push(bytes[start..].iter().collect());
    }
    pieces
}

#[test]
fn same_steps_as_langchain_on_its_format() {
    let texts = [
        "Plan:\n1. a\n2. b",
        "Plan:\n1. a\n2. b\n",
        "Plan:\n1. Find the capital of France\n2. Find its population\n3. Given the above steps taken, please respond to the users original question\n",
        "Plan:\n  1. indented a\n  2. indented b\n",
        "Plan:\n1. a \n2. b  \n",
        "\n1. only",
        "Here is my plan.\nPlan:\n1. x\n2. y\n3. z\n4. w\n5. v\n6. u\n7. t\n8. s\n9. r\n10. q\n11. p\n",
        "Plan:\n\n1. blank line before\n\n2. and between\n",
        "Plan:\n1. Call the weather API for Paris, FR (units: metric)\n2. Say whether to take an umbrella\n",
    ];
    let parser = PlanningOutputParser::new();
    for text in texts {
        let expected: Vec<String> = langchain_split(text)
            .iter()
            .map(|s| s.trim().to_owned())
            .collect();
        assert_eq!(parser.parse_steps(text), expected, "{text:?}");
        // The same text followed by the end marker and chatter: LangChain
        // would keep those in the last step; the steps are otherwise equal.
        let leaked = format!("{text}<END_OF_PLAN>\nHope this helps!");
        assert_eq!(parser.parse_steps(&leaked), expected, "{leaked:?}");
    }
    // What LangChain loses and this parser keeps.
    assert_eq!(langchain_split("1. a\n2. b"), ["b"]);
    assert_eq!(parser.parse_steps("1. a\n2. b"), ["a", "b"]);
}

#[test]
fn a_custom_end_marker() {
    let parser = PlanningOutputParser::new().with_end_marker("[DONE]");
    assert_eq!(parser.parse_steps("1. a\n2. b\n[DONE]\n3. c"), ["a", "b"]);
    let no_marker = PlanningOutputParser::new().with_end_marker("");
    assert_eq!(
        no_marker.parse_steps("1. a\n2. b <END_OF_PLAN>"),
        ["a", "b <END_OF_PLAN>"]
    );
}

#[test]
fn long_outputs_are_parsed_in_linear_time() {
    // Many header-like lines after the list made an earlier version scan
    // the rest of the text once per line.
    let mut text = String::from("1. a\n2. b\n");
    text.push_str(&"Plan:\n".repeat(150_000));
    let started = std::time::Instant::now();
    let steps = PlanningOutputParser::new().parse_steps(&text);
    assert_eq!(steps.len(), 2);
    assert!(steps[1].starts_with("b\nPlan:"));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}
