//! Tables of replies in the shapes real chat models give when asked for a
//! plan (GPT-4o, Claude, Llama 3, Qwen2.5, Mistral, Phi-3, Gemma) and what
//! each parser must make of them: `PlanningOutputParser` on text plans,
//! `StructuredPlanParser` (with plan validation) on JSON plans, and
//! `ReplanOutputParser` on replanning replies.

use pae_core::{
    PlanLimits, PlanOutputParser, PlanParseError, PlanValidationError, ReplanDecision, Step,
};
use pae_planner::{PlanningOutputParser, ReplanOutputParser, StructuredPlanParser};

/// Parses a text plan and compares the step texts with `expected`; an empty
/// `expected` means the parse must fail with `NoSteps` carrying the text.
fn check_text(name: &str, input: &str, expected: &[&str]) {
    let parser = PlanningOutputParser::new().with_dependency_inference(false);
    match parser.parse(input) {
        Ok(plan) => {
            let steps: Vec<&str> = plan.steps.iter().map(|s| s.value.as_str()).collect();
            assert_eq!(steps, expected, "{name}: {input:?}");
        }
        Err(PlanParseError::NoSteps { text }) => {
            assert!(
                expected.is_empty(),
                "{name}: no steps found in {input:?}, expected {expected:?}"
            );
            assert_eq!(text, input, "{name}: the error keeps the text");
        }
        Err(other) => panic!("{name}: unexpected error {other:?} for {input:?}"),
    }
}

#[test]
fn text_plans_as_models_write_them() {
    let long_step = "word ".repeat(2_000);
    let long_plan = format!("Plan:\n1. {long_step}\n2. Answer\n");
    let cases: Vec<(&str, &str, Vec<&str>)> = vec![
        // --- headers and preambles ---
        (
            "bold Plan header (GPT-4o)",
            "**Plan:**\n1. Find the capital of France\n2. Answer the question",
            vec!["Find the capital of France", "Answer the question"],
        ),
        (
            "markdown heading header",
            "## Plan\n\n1. Look up the price\n2. Answer\n",
            vec!["Look up the price", "Answer"],
        ),
        (
            "a preamble sentence with numbers",
            "There are 3 steps.\n1. a\n2. b\n3. c",
            vec!["a", "b", "c"],
        ),
        (
            "a preamble announcing a 2-step plan",
            "Sure, here's a 2-step plan:\n1. a\n2. b",
            vec!["a", "b"],
        ),
        (
            "leading space on every line (Mistral)",
            " Plan:\n 1. a\n 2. b\n 3. c",
            vec!["a", "b", "c"],
        ),
        // --- heading-style steps with bodies ---
        (
            "### Step N: headings with a body line",
            "### Step 1: Search the web\nUse a search engine to find X.\n\n### Step 2: Answer\nSummarise the results.",
            vec![
                "Search the web\nUse a search engine to find X.",
                "Answer\nSummarise the results.",
            ],
        ),
        (
            "bold step headings, body after a blank line, closing chatter",
            "**Step 1: Identify X**\n\nUse the search tool to find X.\n\n**Step 2: Answer**\n\nUsing the results, answer the question.\n\nLet me know if you need anything else.",
            vec![
                "Identify X\nUse the search tool to find X.",
                "Answer\nUsing the results, answer the question.",
            ],
        ),
        (
            "heading steps, closing remark after the last body",
            "### Step 1: Research\n\nFind flights.\n\n### Step 2: Book\n\nBook the cheapest flight.\n\nOverall, this should take an hour.",
            vec!["Research\nFind flights.", "Book\nBook the cheapest flight."],
        ),
        (
            "Llama 3 bold steps with the end marker",
            "Here is a step-by-step plan to answer the question:\n\n**Step 1: Identify the current president of France**\nUse the search tool to find the president.\n\n**Step 2: Find the president's age**\nSearch for the birth date.\n\n**Step 3: Answer**\nGiven the above steps taken, respond to the user's original question.\n\n<END_OF_PLAN>",
            vec![
                "Identify the current president of France\nUse the search tool to find the president.",
                "Find the president's age\nSearch for the birth date.",
                "Answer\nGiven the above steps taken, respond to the user's original question.",
            ],
        ),
        (
            "Step N: alone on a line, text after a blank line",
            "Step 1:\n\nSearch the web\n\nStep 2:\n\nAnswer",
            vec!["Search the web", "Answer"],
        ),
        (
            "whole bold steps followed by a closing remark",
            "**1. Search the web**\n**2. Answer**\n\nOverall, this approach works.",
            vec!["Search the web", "Answer"],
        ),
        (
            "numbered markdown headings with bodies",
            "## 1. Research\nFind flights.\n## 2. Book\nBook them.",
            vec!["Research\nFind flights.", "Book\nBook them."],
        ),
        (
            "bare numbered sub-lists under Step headings",
            "### Step 1: Research\n1. Find flights\n2. Find hotels\n### Step 2: Book\n1. Book flight",
            vec![
                "Research\n1. Find flights\n2. Find hotels",
                "Book\n1. Book flight",
            ],
        ),
        (
            "indented numbered sub-list under bold steps",
            "**Step 1: Research**\n   1. Find flights\n   2. Find hotels\n**Step 2: Book**",
            vec!["Research\n1. Find flights\n2. Find hotels", "Book"],
        ),
        // --- other marker styles ---
        (
            "Step N - x",
            "Step 1 - Search\nStep 2 - Answer",
            vec!["Search", "Answer"],
        ),
        ("(N) x", "(1) a\n(2) b", vec!["a", "b"]),
        (
            "N - x",
            "1 - Search the web\n2 - Answer",
            vec!["Search the web", "Answer"],
        ),
        (
            "N: x",
            "1: Search the web\n2: Answer",
            vec!["Search the web", "Answer"],
        ),
        (
            "N.- x (Spanish style)",
            "1.- Buscar el precio\n2.- Responder",
            vec!["Buscar el precio", "Responder"],
        ),
        ("#N: x", "#1: Search\n#2: Answer", vec!["Search", "Answer"]),
        (
            "keycap emoji numbers",
            "1\u{fe0f}\u{20e3} Search\n2\u{fe0f}\u{20e3} Answer",
            vec!["Search", "Answer"],
        ),
        (
            "bullets carrying Step N:",
            "- Step 1: Search\n- Step 2: Answer",
            vec!["Search", "Answer"],
        ),
        (
            "Gemma star bullets with bold Step N:",
            "*   **Step 1:** Search\n*   **Step 2:** Answer",
            vec!["Search", "Answer"],
        ),
        (
            "bold titles inside steps are kept (LangChain keeps them)",
            "1. **Search the web**: find X\n2. **Answer**: respond",
            vec!["**Search the web**: find X", "**Answer**: respond"],
        ),
        (
            "a whole bold step with text after the bold",
            "**1. Search the web**: find X\n**2. Answer**: respond",
            vec!["Search the web: find X", "Answer: respond"],
        ),
        (
            "Gemma plan with two spaces and bold labels",
            "**Plan:**\n\n1.  **Find the population of Paris:** Use a search tool.\n2.  **Compare:** Answer the user.\n\n<END_OF_PLAN>",
            vec![
                "**Find the population of Paris:** Use a search tool.",
                "**Compare:** Answer the user.",
            ],
        ),
        // --- nesting, blank lines, sections ---
        (
            "unindented bullets under numbered steps",
            "1. Research\n- Find flights\n- Find hotels\n2. Book",
            vec!["Research\n- Find flights\n- Find hotels", "Book"],
        ),
        (
            "numbered steps separated by blank lines",
            "1. a\n\n2. b\n\n3. c",
            vec!["a", "b", "c"],
        ),
        (
            "a list indented after its first line (LangChain splits it too)",
            "1. a\n   2. b\n   3. c",
            vec!["a", "b", "c"],
        ),
        (
            "numbering restarts at 1 after a markdown section heading",
            "## Research\n1. Find flights\n2. Find hotels\n\n## Booking\n1. Book the flight\n2. Book the hotel",
            vec![
                "Find flights",
                "Find hotels",
                "Book the flight",
                "Book the hotel",
            ],
        ),
        (
            "numbering restarts at 1 after a bold phase heading",
            "**Phase 1: Research**\n1. Find flights\n2. Find hotels\n\n**Phase 2: Booking**\n1. Book the flight\n2. Book the hotel",
            vec![
                "Find flights",
                "Find hotels",
                "Book the flight",
                "Book the hotel",
            ],
        ),
        (
            "numbering goes on across sections; headings are not step text",
            "## Research\n1. Find flights\n2. Find hotels\n\n## Booking\n3. Book the flight\n4. Book the hotel",
            vec![
                "Find flights",
                "Find hotels",
                "Book the flight",
                "Book the hotel",
            ],
        ),
        (
            "an alternative plan after the plan is not appended",
            "Plan A:\n1. a\n2. b\n\nPlan B:\n1. c\n2. d",
            vec!["a", "b"],
        ),
        (
            "Qwen2.5 0.5B works through its plan under Steps: (real output)",
            "Plan: \n1. Identify the current president of France.\n2. Determine his age.\n3. Respond to the users original question.\n\nSteps:\n1. The current president of France is Jean-Baptiste de Chambert.\n2. Jean-Baptiste de Chambert is 75 years old.\n3. Given the above steps taken, please respond to the users original question.",
            vec![
                "Identify the current president of France.",
                "Determine his age.",
                "Respond to the users original question.",
            ],
        ),
        (
            "Qwen2.5 0.5B works through its plan under Steps:, numbers running on (real output)",
            "Plan:\n1. Use the `requests` library to download the web page.\n2. Count the number of words in the text.\n\nSteps:\n1. Import the necessary libraries:\n```python\nimport requests\n```\n2. Define the URL of the web page:\n```python\nurl = \"https://www.example.com\"\n```\n3. Count the words\n4. Print the count",
            vec![
                "Use the `requests` library to download the web page.",
                "Count the number of words in the text.",
            ],
        ),
        (
            "Qwen2.5 0.5B expands its plan with sub-bullets under Steps: (real output)",
            "Plan: \n1. Collect data on the population of Beijing and Shanghai.\n2. Compare the populations.\n\nSteps:\n1. Collect data on the population of Beijing and Shanghai:\n   - Visit the official websites of Beijing and Shanghai.\n2. Compare the populations:\n   - Compare the population of Beijing and Shanghai.",
            vec![
                "Collect data on the population of Beijing and Shanghai.",
                "Compare the populations.",
            ],
        ),
        (
            "Qwen2.5 0.5B carries out its plan under Step N: (real output)",
            "Plan:\n1. Calculate 17 * 23\n2. Determine the number of days in a leap year\n\nStep 1: Calculate 17 * 23\n17 * 23 = 421\n\nStep 2: Determine the number of days in a leap year\nA leap year has 366 days.",
            vec![
                "Calculate 17 * 23",
                "Determine the number of days in a leap year",
            ],
        ),
        (
            "Qwen2.5 0.5B Step N: list after a Plan: sentence (real output)",
            "Plan: Start by identifying the current president of France, which is Emmanuel Macron.\nStep 1: Research the current president's name and position.\nStep 2: Identify the current year of the election.\n<END_OF_PLAN>",
            vec![
                "Research the current president's name and position.",
                "Identify the current year of the election.",
            ],
        ),
        (
            "Qwen2.5 0.5B puts Step 1: on the header line (real output)",
            "Plan: Step 1: Research Rome and its cultural attractions\nStep 2: Book accommodation in Rome\nStep 3: Start the weekend trip\n<END_OF_PLAN>",
            vec![
                "Research Rome and its cultural attractions",
                "Book accommodation in Rome",
                "Start the weekend trip",
            ],
        ),
        (
            "the whole plan repeated",
            "Plan:\n1. a\n2. b\n\nPlan:\n1. a\n2. b",
            vec!["a", "b"],
        ),
        // --- numbers inside steps ---
        (
            "a decimal at the start of a continuation line",
            "1. Convert the price\n3.5% is the tax rate\n2. Answer",
            vec!["Convert the price\n3.5% is the tax rate", "Answer"],
        ),
        (
            "a URL with a number and a dot",
            "1. Visit https://example.com/2. page\n2. Answer",
            vec!["Visit https://example.com/2. page", "Answer"],
        ),
        (
            "a step that names another step",
            "1. Search X\n2. Use the result of step 1 to answer",
            vec!["Search X", "Use the result of step 1 to answer"],
        ),
        // --- trailing chatter ---
        (
            "Let me know ... right after the last step",
            "1. a\n2. b\nLet me know if you need more help.",
            vec!["a", "b"],
        ),
        (
            "By following these steps ... right after the last step",
            "1. a\n2. b\nBy following these steps, you will get the answer.",
            vec!["a", "b"],
        ),
        (
            "bullets then Hope this helps!",
            "- a\n- b\nHope this helps!",
            vec!["a", "b"],
        ),
        (
            "Qwen2.5 0.5B closing sentence after a blank line",
            "Plan:\n1. Calculate 17 * 23.\n2. Add the result to the number of days in a leap year.\n3. Given the above steps taken, please respond to the user's original question.\n\nThis plan will help us find the answer.",
            vec![
                "Calculate 17 * 23.",
                "Add the result to the number of days in a leap year.",
                "Given the above steps taken, please respond to the user's original question.",
            ],
        ),
        (
            "a bold note after the plan",
            "**Plan:**\n\n1. **Search:** Find X.\n2. **Answer:** Y.\n\n**Note:** This assumes internet access.",
            vec!["**Search:** Find X.", "**Answer:** Y."],
        ),
        (
            "a sub-list in the last step, then chatter",
            "1. Search\n2. Write the answer:\n   - include the figure\n   - cite the source\n\nI hope this helps!",
            vec![
                "Search",
                "Write the answer:\n- include the figure\n- cite the source",
            ],
        ),
        (
            "a horizontal rule and an explanation after the last step",
            "Plan:\n1. a\n2. b\n---\n**Explanation:** b needs a.",
            vec!["a", "b"],
        ),
        (
            "a condition under the last step is part of it",
            "1. Search\n2. Answer the question\nIf you need more data, repeat step 1.",
            vec![
                "Search",
                "Answer the question\nIf you need more data, repeat step 1.",
            ],
        ),
        (
            "a step that starts like chatter is not the last step",
            "1. If you need the weather, call the weather tool\n2. Answer",
            vec!["If you need the weather, call the weather tool", "Answer"],
        ),
        // --- end marker variants ---
        (
            "truncated end marker",
            "1. a\n2. b\n<END_OF_PLAN",
            vec!["a", "b"],
        ),
        (
            "lowercase end marker",
            "1. a\n2. b\n<end_of_plan>",
            vec!["a", "b"],
        ),
        (
            "end marker in backticks",
            "1. a\n2. b\n`<END_OF_PLAN>`",
            vec!["a", "b"],
        ),
        (
            "end marker on the last step's line",
            "1. a\n2. b<END_OF_PLAN>",
            vec!["a", "b"],
        ),
        (
            "end marker in square brackets",
            "1. a\n2. b\n[END_OF_PLAN]",
            vec!["a", "b"],
        ),
        (
            "end marker written with spaces",
            "1. a\n2. b\nEND OF PLAN",
            vec!["a", "b"],
        ),
        (
            "end marker cut short by the token limit",
            "1. a\n2. b<END_OF_",
            vec!["a", "b"],
        ),
        (
            "the words end of plan inside a step",
            "1. Read until the end of plan B\n2. Answer",
            vec!["Read until the end of plan B", "Answer"],
        ),
        // --- chat-template tokens and reasoning ---
        (
            "leaked <|im_end|> and a next turn (Qwen)",
            "Plan:\n1. a\n2. b<|im_end|>\n<|im_start|>user\n1. nope",
            vec!["a", "b"],
        ),
        (
            "leaked <|eot_id|> (Llama 3)",
            "1. a\n2. b<|eot_id|>",
            vec!["a", "b"],
        ),
        (
            "echoed Llama 3 header",
            "<|start_header_id|>assistant<|end_header_id|>\n\nPlan:\n1. a\n2. b\n<|eot_id|>",
            vec!["a", "b"],
        ),
        (
            "leaked <|end|> (Phi-3)",
            "Plan:\n1. Look up\n2. Answer<|end|><|endoftext|>",
            vec!["Look up", "Answer"],
        ),
        ("leaked </s> (Mistral)", "1. a\n2. b</s>", vec!["a", "b"]),
        (
            "leaked <end_of_turn> (Gemma)",
            "1. a\n2. b<end_of_turn>\n",
            vec!["a", "b"],
        ),
        (
            "a reasoning block with its own list",
            "<think>\nThe user wants X. Plan:\n1. think a\n2. think b\n</think>\n\nPlan:\n1. a\n2. b",
            vec!["a", "b"],
        ),
        (
            "reasoning cut off before any plan",
            "<think>\n1. a\n2. b\n",
            vec![],
        ),
        // --- one-line plans, fences, tables, JSON ---
        (
            "Step N: items on one line",
            "Step 1: Search for X. Step 2: Answer the question.",
            vec!["Search for X.", "Answer the question."],
        ),
        (
            "a plan in a text fence",
            "```text\nPlan:\n1. a\n2. b\n```",
            vec!["a", "b"],
        ),
        (
            "a markdown table with a step column",
            "| Step | Action |\n|------|--------|\n| 1 | Search the web |\n| 2 | Answer |",
            vec!["Search the web", "Answer"],
        ),
        (
            "a markdown table with a tool column and a placeholder",
            "| # | Step | Tool |\n|---|------|------|\n| 1 | Find the capital | search |\n| 2 | Answer | - |",
            vec!["Find the capital — search", "Answer"],
        ),
        (
            "a JSON list of numbered strings",
            "[\"1. Search\", \"2. Answer\"]",
            vec!["Search", "Answer"],
        ),
        (
            "a pretty-printed JSON list in a fence",
            "```json\n[\n  \"Search the web\",\n  \"Answer\"\n]\n```",
            vec!["Search the web", "Answer"],
        ),
        // --- line ends, spaces, scripts ---
        (
            "CRLF and tabs",
            "Plan:\r\n1.\ta\r\n\t- detail\r\n2.\tb\r\n",
            vec!["a\n- detail", "b"],
        ),
        (
            "right-to-left marks before Arabic steps",
            "\u{200f}1. ابحث عن سعر القهوة\n\u{200f}2. أجب عن السؤال",
            vec!["ابحث عن سعر القهوة", "أجب عن السؤال"],
        ),
        (
            "zero-width spaces before the numbers",
            "\u{200b}1. a\n\u{200b}2. b",
            vec!["a", "b"],
        ),
        (
            "no-break spaces after the numbers",
            "1.\u{a0}a\n2.\u{a0}b",
            vec!["a", "b"],
        ),
        (
            "a very long step",
            long_plan.as_str(),
            vec![long_step.trim(), "Answer"],
        ),
        // --- the objective's language ---
        (
            "Spanish Paso N:",
            "Plan:\nPaso 1: Buscar el precio\nPaso 2: Responder",
            vec!["Buscar el precio", "Responder"],
        ),
        (
            "French Étape N :",
            "Étape 1 : Chercher le prix\nÉtape 2 : Répondre",
            vec!["Chercher le prix", "Répondre"],
        ),
        (
            "German Schritt N:",
            "Schritt 1: Suchen\nSchritt 2: Antworten",
            vec!["Suchen", "Antworten"],
        ),
        (
            "Russian Шаг N:",
            "Шаг 1: Найти\nШаг 2: Ответить",
            vec!["Найти", "Ответить"],
        ),
        (
            "Chinese 第一步：",
            "计划：\n第一步：搜索巴黎的人口\n第二步：回答问题",
            vec!["搜索巴黎的人口", "回答问题"],
        ),
        (
            "Chinese 第1步：",
            "第1步：搜索\n第2步：回答",
            vec!["搜索", "回答"],
        ),
        (
            "Chinese 步骤1：",
            "步骤1：搜索\n步骤2：回答",
            vec!["搜索", "回答"],
        ),
        ("Chinese 一、", "一、搜索\n二、回答", vec!["搜索", "回答"]),
        (
            "Japanese ステップ1：",
            "ステップ1：検索する\nステップ2：答える",
            vec!["検索する", "答える"],
        ),
        ("circled numbers", "① 搜索\n② 回答", vec!["搜索", "回答"]),
        (
            "Chinese prose starting with a numeral",
            "一个好主意是先搜索。",
            vec![],
        ),
        (
            "Step N/M:",
            "Step 1/3: Search\nStep 2/3: Read\nStep 3/3: Answer",
            vec!["Search", "Read", "Answer"],
        ),
        (
            "Step #N:",
            "Step #1: Search\nStep #2: Answer",
            vec!["Search", "Answer"],
        ),
        // --- nothing to find: typed errors with the text ---
        (
            "a Python script instead of a plan (SmolLM2, real output)",
            "```python\nimport requests\n\ndef count_words(url):\n    response = requests.get(url)\n    response.headers['Content-Type'] = 'application/json'\n```",
            vec![],
        ),
        (
            "a direct answer instead of a plan (SmolLM2, real output)",
            "17 * 23 = 341 days\n23 + 341 = 342 days\n\nThe answer is 342 days.",
            vec![],
        ),
        (
            "a sentence that mentions the plan between steps is not a new plan",
            "1. Search flights\n\nThis part of the plan needs care.\n\n2. Book",
            vec!["Search flights\nThis part of the plan needs care.", "Book"],
        ),
        (
            "only the header and the marker",
            "Plan:\n<END_OF_PLAN>",
            vec![],
        ),
        (
            "ordinal words only",
            "First, search the web. Then, answer the question.",
            vec![],
        ),
        ("a lone chat token", "<|im_end|>", vec![]),
    ];
    assert!(cases.len() >= 40, "at least 40 model outputs");
    for (name, input, expected) in &cases {
        check_text(name, input, expected);
    }
    eprintln!("{} text outputs passed", cases.len());
}

#[test]
fn text_parser_falls_back_to_a_fenced_json_plan_with_dependencies() {
    let plan = PlanningOutputParser::new()
        .parse("```json\n{\"steps\": [{\"id\": 1, \"description\": \"a\"}, {\"id\": 2, \"description\": \"b\", \"depends_on\": [1]}]}\n```")
        .unwrap();
    assert_eq!(
        plan.steps,
        [
            Step::new("a").with_id("1"),
            Step::new("b").with_id("2").with_depends_on(["1"]),
        ]
    );
}

#[test]
fn huge_inputs_are_parsed_quickly() {
    let inputs = [
        // Many steps.
        (1..=20_000)
            .map(|i| format!("{i}. step number {i}\n"))
            .collect::<String>(),
        // One enormous line of inline markers.
        (1..=20_000).map(|i| format!("{i}. x ")).collect::<String>(),
        // Deeper lines carrying the next number under a sub-list.
        format!("1. a\n   - x\n{}", "   2. y\n".repeat(50_000)),
        // Brackets and tokens everywhere.
        "<[{".repeat(100_000),
        "<|im_start|>".repeat(20_000),
        "{\"steps\": [".repeat(20_000),
        "'a', ".repeat(50_000),
    ];
    let plan_parser = PlanningOutputParser::new();
    let replan = ReplanOutputParser::new();
    for input in &inputs {
        let started = std::time::Instant::now();
        let _ = plan_parser.parse(input);
        let _ = StructuredPlanParser::new().parse(input);
        let _ = replan.parse_text(input);
        let _ = replan.parse_json(input);
        eprintln!("{} bytes: {:?}", input.len(), started.elapsed());
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{} bytes took {:?}",
            input.len(),
            started.elapsed()
        );
    }
    assert_eq!(plan_parser.parse_steps(&inputs[0]).len(), 20_000);
    assert_eq!(plan_parser.parse_steps(&inputs[1]).len(), 20_000);
}

/// What a JSON plan must become.
enum Json {
    /// The steps as (text, id, dependencies), and the plan is valid.
    Valid(&'static [(&'static str, Option<&'static str>, &'static [&'static str])]),
    /// It parses, and validation rejects it this way.
    Invalid(fn(&PlanValidationError) -> bool),
    /// A `Malformed` error whose reason contains this.
    Malformed(&'static str),
    /// A `NoSteps` error.
    NoSteps,
}

#[test]
fn json_plans_as_models_write_them() {
    use Json::*;
    let cases: &[(&str, &str, Json)] = &[
        (
            "plan instead of steps",
            r#"{"plan": [{"id": "1", "description": "a"}, {"id": "2", "description": "b"}]}"#,
            Valid(&[("a", Some("1"), &[]), ("b", Some("2"), &[])]),
        ),
        (
            "steps as plain strings (LangGraph's Plan)",
            r#"{"steps": ["Look up the winner", "Find their hometown"]}"#,
            Valid(&[
                ("Look up the winner", None, &[]),
                ("Find their hometown", None, &[]),
            ]),
        ),
        (
            "numbered strings",
            r#"{"steps": ["1. Search", "Step 2: Answer"]}"#,
            Valid(&[("Search", None, &[]), ("Answer", None, &[])]),
        ),
        (
            "task, title, text and step keys",
            r#"{"steps": [{"task": "a"}, {"title": "b"}, {"text": "c"}, {"step": "d"}]}"#,
            Valid(&[
                ("a", None, &[]),
                ("b", None, &[]),
                ("c", None, &[]),
                ("d", None, &[]),
            ]),
        ),
        (
            "content key",
            r#"{"steps": [{"id": "1", "content": "a"}]}"#,
            Valid(&[("a", Some("1"), &[])]),
        ),
        (
            "description preferred over title",
            r#"{"steps": [{"id": "1", "title": "Search", "description": "Search the web for X"}]}"#,
            Valid(&[("Search the web for X", Some("1"), &[])]),
        ),
        (
            "integer ids and dependencies",
            r#"{"steps": [{"id": 1, "description": "a"}, {"id": 2, "description": "b", "depends_on": [1]}]}"#,
            Valid(&[("a", Some("1"), &[]), ("b", Some("2"), &["1"])]),
        ),
        (
            "missing ids, dependencies by position",
            r#"{"steps": [{"description": "a"}, {"description": "b", "depends_on": ["1"]}]}"#,
            Valid(&[("a", None, &[]), ("b", None, &["1"])]),
        ),
        (
            "zero-based ids",
            r#"{"steps": [{"id": 0, "description": "a"}, {"id": 1, "description": "b", "depends_on": [0]}]}"#,
            Valid(&[("a", Some("0"), &[]), ("b", Some("1"), &["0"])]),
        ),
        (
            "step_number as the id",
            r#"{"steps": [{"step_number": 1, "description": "a"}, {"step_number": 2, "description": "b", "depends_on": [1]}]}"#,
            Valid(&[("a", Some("1"), &[]), ("b", Some("2"), &["1"])]),
        ),
        (
            "camelCase keys",
            r#"{"steps": [{"stepId": "1", "description": "a"}, {"stepId": "2", "description": "b", "dependsOn": ["1"]}]}"#,
            Valid(&[("a", Some("1"), &[]), ("b", Some("2"), &["1"])]),
        ),
        (
            "depends_on as a single string",
            r#"{"steps": [{"id": "1", "description": "a"}, {"id": "2", "description": "b", "depends_on": "1"}]}"#,
            Valid(&[("a", Some("1"), &[]), ("b", Some("2"), &["1"])]),
        ),
        (
            "depends_on as a comma-separated string",
            r#"{"steps": [{"id": "1", "description": "a"}, {"id": "2", "description": "b"}, {"id": "3", "description": "c", "depends_on": "1, 2"}]}"#,
            Valid(&[
                ("a", Some("1"), &[]),
                ("b", Some("2"), &[]),
                ("c", Some("3"), &["1", "2"]),
            ]),
        ),
        (
            "depends_on as None and [\"none\"]",
            r#"{"steps": [{"id": "1", "description": "a", "depends_on": "None"}, {"id": "2", "description": "b", "depends_on": ["none"]}]}"#,
            Valid(&[("a", Some("1"), &[]), ("b", Some("2"), &[])]),
        ),
        (
            "depends_on as objects",
            r#"{"steps": [{"id": "1", "description": "a"}, {"id": "2", "description": "b", "depends_on": [{"id": "1"}]}]}"#,
            Valid(&[("a", Some("1"), &[]), ("b", Some("2"), &["1"])]),
        ),
        (
            "depends_on as Step 1",
            r#"{"steps": [{"id": "1", "description": "a"}, {"id": "2", "description": "b", "depends_on": ["Step 1"]}]}"#,
            Valid(&[("a", Some("1"), &[]), ("b", Some("2"), &["1"])]),
        ),
        (
            "ids step1/step2, dependency by number",
            r#"{"steps": [{"id": "step1", "description": "a"}, {"id": "step2", "description": "b", "depends_on": ["1"]}]}"#,
            Valid(&[("a", Some("step1"), &[]), ("b", Some("step2"), &["step1"])]),
        ),
        (
            "named ids, dependency by step number",
            r#"{"steps": [{"id": "search", "description": "a"}, {"id": "answer", "description": "b", "depends_on": [1]}]}"#,
            Valid(&[
                ("a", Some("search"), &[]),
                ("b", Some("answer"), &["search"]),
            ]),
        ),
        (
            "extra fields are ignored",
            r#"{"steps": [{"id": "1", "description": "a", "tool": "search", "priority": "high"}], "reasoning": "x"}"#,
            Valid(&[("a", Some("1"), &[])]),
        ),
        (
            "JSON inside prose",
            "Sure! Here is the plan:\n{\"steps\": [{\"id\": \"1\", \"description\": \"a\"}]}\nHope it helps.",
            Valid(&[("a", Some("1"), &[])]),
        ),
        (
            "pretty JSON in a fence inside prose",
            "Here is my plan:\n```json\n{\n  \"steps\": [\n    {\"id\": \"1\", \"description\": \"a\"},\n    {\"id\": \"2\", \"description\": \"b\", \"depends_on\": [\"1\"]}\n  ]\n}\n```\nLet me know!",
            Valid(&[("a", Some("1"), &[]), ("b", Some("2"), &["1"])]),
        ),
        (
            "after a reasoning block with braces",
            "<think>I will do {this} and [that]</think>\n{\"steps\": [{\"id\": \"1\", \"description\": \"a\"}]}",
            Valid(&[("a", Some("1"), &[])]),
        ),
        (
            "trailing commas",
            r#"{"steps": [{"id": "1", "description": "a",}, {"id": "2", "description": "b", "depends_on": ["1",],},],}"#,
            Valid(&[("a", Some("1"), &[]), ("b", Some("2"), &["1"])]),
        ),
        (
            "single quotes (a Python dict)",
            "{'steps': [{'id': '1', 'description': \"it's a\", 'depends_on': []}]}",
            Valid(&[("it's a", Some("1"), &[])]),
        ),
        (
            "Python literals",
            r#"{"steps": [{"id": "1", "description": "a", "depends_on": None, "optional": False}]}"#,
            Valid(&[("a", Some("1"), &[])]),
        ),
        (
            "comments and unquoted keys",
            "{\n  // the plan\n  steps: [{id: \"1\", description: \"a\" /* first */}]\n}",
            Valid(&[("a", Some("1"), &[])]),
        ),
        (
            "a leaked end token after the JSON",
            "{\"steps\": [\"a\"]}<|im_end|>",
            Valid(&[("a", None, &[])]),
        ),
        // --- invalid plans: typed errors ---
        (
            "duplicate ids",
            r#"{"steps": [{"id": "1", "description": "a"}, {"id": "1", "description": "b"}]}"#,
            Invalid(|e| matches!(e, PlanValidationError::DuplicateId { id } if id == "1")),
        ),
        (
            "self-dependency",
            r#"{"steps": [{"id": "1", "description": "a", "depends_on": ["1"]}]}"#,
            Invalid(|e| matches!(e, PlanValidationError::Cycle { .. })),
        ),
        (
            "a cycle of two",
            r#"{"steps": [{"id": "1", "description": "a", "depends_on": ["2"]}, {"id": "2", "description": "b", "depends_on": ["1"]}]}"#,
            Invalid(|e| matches!(e, PlanValidationError::Cycle { ids } if ids.len() == 3)),
        ),
        (
            "an unknown dependency",
            r#"{"steps": [{"id": "1", "description": "a", "depends_on": ["7"]}]}"#,
            Invalid(
                |e| matches!(e, PlanValidationError::UnknownDependency { index: 0, id } if id == "7"),
            ),
        ),
        (
            "an unknown named dependency",
            r#"{"steps": [{"id": "search", "description": "a"}, {"id": "answer", "description": "b", "depends_on": ["lookup"]}]}"#,
            Invalid(|e| matches!(e, PlanValidationError::UnknownDependency { index: 1, .. })),
        ),
        ("an empty steps list", r#"{"steps": []}"#, NoSteps),
        (
            "an empty description",
            r#"{"steps": [{"id": "1", "description": ""}]}"#,
            Malformed("step 1 has no \"description\""),
        ),
        (
            "JSON cut off by the token limit",
            r#"{"steps": [{"id": "1", "description": "a"}, {"id": "2", "descr"#,
            Malformed("not valid JSON"),
        ),
        (
            "depends_on as a boolean",
            r#"{"steps": [{"id": "1", "description": "a", "depends_on": true}]}"#,
            Malformed("must be a list of step ids"),
        ),
        (
            "prose only",
            "I would search the web first.",
            Malformed("not valid JSON"),
        ),
        (
            "a Python dict inside prose",
            "Here you go: {'steps': ['a', 'b']} done",
            Valid(&[("a", None, &[]), ("b", None, &[])]),
        ),
        (
            "Python code with a subscript is not a plan",
            "```python\nheaders['Content-Type'] = 'json'\n```",
            Malformed("not valid JSON"),
        ),
    ];
    assert!(cases.len() >= 30);
    let parser = StructuredPlanParser::new();
    for (name, input, expected) in cases {
        let result = parser.parse(input);
        match (expected, result) {
            (Valid(steps), Ok(plan)) => {
                let got: Vec<(&str, Option<&str>, Vec<&str>)> = plan
                    .steps
                    .iter()
                    .map(|s| {
                        (
                            s.value.as_str(),
                            s.id.as_deref(),
                            s.depends_on.iter().map(String::as_str).collect(),
                        )
                    })
                    .collect();
                let want: Vec<(&str, Option<&str>, Vec<&str>)> = steps
                    .iter()
                    .map(|(v, id, deps)| (*v, *id, deps.to_vec()))
                    .collect();
                assert_eq!(got, want, "{name}");
                assert_eq!(plan.validate(&PlanLimits::default()), Ok(()), "{name}");
            }
            (Invalid(is_expected), Ok(plan)) => {
                let error = plan.validate(&PlanLimits::default()).unwrap_err();
                assert!(is_expected(&error), "{name}: {error:?}");
            }
            (Malformed(needle), Err(PlanParseError::Malformed { text, reason })) => {
                assert!(reason.contains(needle), "{name}: {reason}");
                assert_eq!(&text, input, "{name}: the error keeps the text");
            }
            (NoSteps, Err(PlanParseError::NoSteps { text })) => assert_eq!(&text, input),
            (_, other) => panic!("{name}: unexpected {other:?}"),
        }
    }
    eprintln!("{} JSON outputs passed", cases.len());
}

/// What a replanning reply must become.
enum Replan {
    Finish(&'static str),
    Continue(&'static [&'static str]),
    Malformed,
}

#[test]
fn replanning_replies_as_models_write_them() {
    use Replan::*;
    let json: &[(&str, &str, Replan)] = &[
        (
            "schema shape, finish",
            r#"{"action": "finish", "answer": "42", "steps": []}"#,
            Finish("42"),
        ),
        (
            "finish wins over steps",
            r#"{"action": "finish", "answer": "42", "steps": [{"id": "1", "description": "a"}]}"#,
            Finish("42"),
        ),
        (
            "continue with an empty list means done",
            r#"{"action": "continue", "answer": "", "steps": []}"#,
            Continue(&[]),
        ),
        (
            "finish with an empty answer means done",
            r#"{"action": "finish", "answer": "", "steps": []}"#,
            Continue(&[]),
        ),
        (
            "only an empty steps list",
            r#"{"steps": []}"#,
            Continue(&[]),
        ),
        (
            "continue with no step but an answer",
            r#"{"action": "continue", "answer": "42", "steps": []}"#,
            Finish("42"),
        ),
        (
            "LangGraph Act with a Response",
            r#"{"action": {"response": "Paris"}}"#,
            Finish("Paris"),
        ),
        (
            "LangGraph Act with a Plan",
            r#"{"action": {"steps": ["look up", "answer"]}}"#,
            Continue(&["look up", "answer"]),
        ),
        (
            "camelCase finalAnswer",
            r#"{"finalAnswer": "42"}"#,
            Finish("42"),
        ),
        ("response key", r#"{"response": "42"}"#, Finish("42")),
        (
            "a trailing comma",
            r#"{"action": "finish", "answer": "42",}"#,
            Finish("42"),
        ),
        (
            "fenced continue with string steps",
            "```json\n{\"action\": \"continue\", \"steps\": [\"retry the search\"]}\n```",
            Continue(&["retry the search"]),
        ),
        (
            "no action, steps and an answer: the steps (ambiguous)",
            r#"{"answer": "42", "steps": [{"id": "1", "description": "a"}]}"#,
            Continue(&["a"]),
        ),
        (
            "continue without a steps list",
            r#"{"action": "continue"}"#,
            Malformed,
        ),
        ("an unknown action", r#"{"action": "dance"}"#, Malformed),
        ("nothing usable", r#"{"thoughts": "hmm"}"#, Malformed),
    ];
    let text: &[(&str, &str, Replan)] = &[
        ("FINAL ANSWER: line", "FINAL ANSWER: 42", Finish("42")),
        ("lowercase label", "final answer: 42", Finish("42")),
        (
            "bold label alone, answer below",
            "**Final Answer**\nParis is the capital.",
            Finish("Paris is the capital."),
        ),
        ("label and a dash", "Final Answer - 42", Finish("42")),
        (
            "a leaked <|im_end|>",
            "FINAL ANSWER: 42<|im_end|>",
            Finish("42"),
        ),
        (
            "steps then a final answer: the answer wins",
            "Plan:\n1. a\n\nFINAL ANSWER: 42",
            Finish("42"),
        ),
        (
            "a revised plan with the end marker",
            "Plan:\n1. Retry the search with a better query\n2. Answer\n<END_OF_PLAN>",
            Continue(&["Retry the search with a better query", "Answer"]),
        ),
        (
            "a step that mentions the final answer is a step",
            "Plan:\n1. Give the final answer: 4",
            Continue(&["Give the final answer: 4"]),
        ),
        (
            "a JSON decision to a text request",
            r#"{"action": "finish", "answer": "42"}"#,
            Finish("42"),
        ),
        (
            "prose without a label or a list",
            "The final answer is 42.",
            Malformed,
        ),
        (
            "no further steps",
            "No further steps are needed.",
            Malformed,
        ),
        ("an empty answer", "FINAL ANSWER:   ", Malformed),
    ];
    let parser = ReplanOutputParser::new();
    let cases = json
        .iter()
        .map(|c| (c, parser.parse_json(c.1)))
        .chain(text.iter().map(|c| (c, parser.parse_text(c.1))));
    let mut count = 0;
    for ((name, input, expected), result) in cases {
        count += 1;
        match (expected, result) {
            (Finish(want), Ok(ReplanDecision::Finish { answer })) => {
                assert_eq!(answer, *want, "{name}")
            }
            (Continue(want), Ok(ReplanDecision::Continue { steps })) => {
                let got: Vec<&str> = steps.iter().map(|s| s.value.as_str()).collect();
                assert_eq!(got, *want, "{name}");
            }
            (Malformed, Err(PlanParseError::Malformed { text, .. })) => {
                assert_eq!(&text, input, "{name}: the error keeps the text")
            }
            (_, other) => panic!("{name}: unexpected {other:?}"),
        }
    }
    assert!(count >= 25);
    eprintln!("{count} replanning replies passed");
}
