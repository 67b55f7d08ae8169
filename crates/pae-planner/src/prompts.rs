//! The default prompts of the planners and the replanner, the end marker
//! they ask for, and the JSON schemas (with their names) of structured plans
//! and replanning decisions.
//!
//! The wording is ours; what the text planner's prompt asks for follows
//! LangChain's `load_chat_planner` (a `Plan:` header, a numbered list, as few
//! steps as possible, a last step that answers a question, the end marker).
//! Each planner takes its own prompt instead of these through its builder or
//! `with_*` methods.

use serde_json::{Value, json};

/// The end marker the chat planner's prompt asks for, and its stop sequence.
pub const END_OF_PLAN: &str = "<END_OF_PLAN>";

/// The name of the JSON schema sent with structured plan requests.
pub const PLAN_SCHEMA_NAME: &str = "plan";

/// The name of the JSON schema sent with structured replanning requests.
pub const REPLAN_SCHEMA_NAME: &str = "replan_decision";

/// The text planner's system message. It is sent literally (it is not a
/// template), so braces in a custom prompt are safe.
pub const PLANNER_SYSTEM_PROMPT: &str = "You are the planning part of an agent. Read the user's objective, work out what it takes to reach it, and write a plan.\n\
Start your reply with the line \"Plan:\" and then give the steps as a numbered list, one step per line: \"1. ...\", \"2. ...\", and so on.\n\
Use as few steps as the job needs. Each step must be an instruction that can be carried out on its own.\n\
If the objective is a question, the last step must be: \"Using the results of the previous steps, answer the user's original question.\"\n\
After the last step, write <END_OF_PLAN> and stop.";

/// The structured planner's system message (JSON plans).
pub const STRUCTURED_PLANNER_SYSTEM_PROMPT: &str = "You are the planning part of an agent. Read the user's objective, work out what it takes to reach it, and write a plan as JSON.\n\
Reply with only a JSON object of this form:\n\
{\"steps\": [{\"id\": \"1\", \"description\": \"...\", \"depends_on\": []}, {\"id\": \"2\", \"description\": \"...\", \"depends_on\": [\"1\"]}]}\n\
Give every step a unique id. \"description\" is an instruction that can be carried out on its own. \"depends_on\" lists the ids of the earlier steps whose results the step needs (an empty list when it needs none).\n\
Use as few steps as the job needs. If the objective is a question, the last step must answer the user's original question from the results of the steps it depends on.";

/// The name of the JSON schema sent with tool-plan requests.
pub const TOOL_PLAN_SCHEMA_NAME: &str = "tool_plan";

/// The tool planner's system message (plan-and-solve); the tools and any
/// examples follow it.
pub const TOOL_PLANNER_SYSTEM_PROMPT: &str = "You plan how to reach the user's request with tools. Write every step as one tool call, in the order the calls must run. After the last step, an answer is written from the results.\n\
Reply with only a JSON object: {\"steps\": [{\"step\": \"what the step does\", \"tool\": \"tool name\", \"with\": {the tool's arguments}}]}\n\
Rules:\n\
- Write the numbers, dates and names exactly as the request gives them, and use every fact of the request that the result depends on.\n\
- Write facts everyone knows as numbers yourself, inside the arguments of the step that uses them (a week has 7 days, a kilogram is 1000 grams); tools are for what you cannot know.\n\
- #E1 stands for the result of step 1, #E2 for the result of step 2, and so on. Write it where that result goes in a later step's arguments; never write a result you do not have yet.\n\
- Use as few steps as the job needs. The last step must give the final result the request asks for; when that result is built from several results, the last step combines them.";

/// The text of the answer step that closes a tool plan, and that
/// [`AnswerStepPlanner`](crate::AnswerStepPlanner) adds to plans.
pub const ANSWER_STEP: &str = "Answer the request from the results of the steps before.";

/// What the tool planner is told after a reply it could not use.
pub const TOOL_PLAN_RETRY_INSTRUCTIONS: &str = "Write the plan again as only a JSON object {\"steps\": [{\"step\": \"...\", \"tool\": \"...\", \"with\": {...}}]}, with at least one step, each naming one of the tools.";

/// What a text planner is told after a reply it could not use.
pub const PLAN_RETRY_INSTRUCTIONS: &str = "Write the plan again: the line \"Plan:\", then the steps as a numbered list (\"1. ...\", \"2. ...\"), then <END_OF_PLAN>.";

/// What the structured planner is told after a reply it could not use.
pub const STRUCTURED_PLAN_RETRY_INSTRUCTIONS: &str = "Write the plan again as only a JSON object {\"steps\": [{\"id\": \"...\", \"description\": \"...\", \"depends_on\": [\"...\"]}]}, with at least one step, unique ids, and depends_on naming only ids of other steps in the plan, without cycles.";

/// The replanner's system message when it answers in text.
pub const REPLANNER_SYSTEM_PROMPT: &str = "You revise the plan of an agent while it works. You are shown the user's objective, the plan, the steps carried out so far with their results, the steps not yet done, and why you are asked.\n\
Decide how to go on, and reply in exactly one of these two ways:\n\
- If the results so far are enough to reach the objective, write a line starting with \"FINAL ANSWER:\" followed by the complete answer for the user.\n\
- Otherwise write the line \"Plan:\" and then, as a numbered list, only the steps that still have to be done (not the steps already done; replace or fix steps that failed), then write <END_OF_PLAN>.\n\
Use as few steps as the job needs. If the objective is a question, the last step must answer it from the results of the steps before.";

/// The replanner's system message when it answers in JSON.
pub const STRUCTURED_REPLANNER_SYSTEM_PROMPT: &str = "You revise the plan of an agent while it works. You are shown the user's objective, the plan, the steps carried out so far with their results, the steps not yet done, and why you are asked.\n\
Decide how to go on, and reply with only a JSON object:\n\
- If the results so far are enough to reach the objective: {\"action\": \"finish\", \"answer\": \"<the complete answer for the user>\", \"steps\": []}\n\
- Otherwise: {\"action\": \"continue\", \"answer\": \"\", \"steps\": [{\"id\": \"...\", \"description\": \"...\", \"depends_on\": []}]} listing only the steps that still have to be done (not the steps already done; replace or fix steps that failed). \"depends_on\" names ids of other listed steps.\n\
Use as few steps as the job needs. If the objective is a question, the last step must answer it from the results of the steps before.";

/// What a text replanner is told after a reply it could not use.
pub const REPLAN_RETRY_INSTRUCTIONS: &str = "Reply again in one of the two forms: a line starting with \"FINAL ANSWER:\" followed by the answer, or the line \"Plan:\" followed by a numbered list of the remaining steps and <END_OF_PLAN>.";

/// What a structured replanner is told after a reply it could not use.
pub const STRUCTURED_REPLAN_RETRY_INSTRUCTIONS: &str = "Reply again with only a JSON object: {\"action\": \"finish\", \"answer\": \"...\", \"steps\": []} or {\"action\": \"continue\", \"answer\": \"\", \"steps\": [{\"id\": \"...\", \"description\": \"...\", \"depends_on\": []}]} with at least one step.";

fn step_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "description": {"type": "string"},
            "depends_on": {"type": "array", "items": {"type": "string"}}
        },
        "required": ["id", "description", "depends_on"],
        "additionalProperties": false
    })
}

/// The JSON schema of a structured plan:
/// `{"steps": [{"id": string, "description": string, "depends_on": [string]}]}`
/// with at least one step. Every property is required and no other is
/// allowed, as OpenAI's strict mode wants.
pub fn plan_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "steps": {"type": "array", "minItems": 1, "items": step_schema()}
        },
        "required": ["steps"],
        "additionalProperties": false
    })
}

/// The JSON schema of a replanning decision:
/// `{"action": "finish" | "continue", "answer": string, "steps": [step]}`.
/// All three properties are required (strict mode); the one the action does
/// not use is left empty.
pub fn replan_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "action": {"type": "string", "enum": ["finish", "continue"]},
            "answer": {"type": "string"},
            "steps": {"type": "array", "items": step_schema()}
        },
        "required": ["action", "answer", "steps"],
        "additionalProperties": false
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_ask_for_what_the_parsers_read() {
        for needle in ["\"Plan:\"", "numbered list", "<END_OF_PLAN>", "question"] {
            assert!(PLANNER_SYSTEM_PROMPT.contains(needle), "{needle}");
        }
        assert!(REPLANNER_SYSTEM_PROMPT.contains("FINAL ANSWER:"));
        assert!(STRUCTURED_PLANNER_SYSTEM_PROMPT.contains("\"depends_on\""));
        assert_eq!(plan_schema()["properties"]["steps"]["minItems"], 1);
        assert_eq!(
            replan_schema()["required"],
            json!(["action", "answer", "steps"])
        );
    }
}
