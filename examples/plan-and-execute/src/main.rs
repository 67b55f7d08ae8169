//! The first example to read: a complete plan-and-execute program.
//!
//! A planner writes a plan for the objective, an agent carries out each
//! step with two tools (the built-in calculator and `catalogue_price`, a
//! custom tool made from an async closure with `tool_fn`), and the last
//! step's response is the answer. The model is chosen by a flag:
//!
//! ```text
//! cargo run -p plan-and-execute                          # offline, a scripted model
//! cargo run -p plan-and-execute -- --local MODEL.gguf    # a GGUF model in-process
//! cargo run -p plan-and-execute -- --openai http://127.0.0.1:8080/v1 --model NAME
//! ```
//!
//! The scripted model replies with a fixed script written for the default
//! objective, so the offline run needs no model file, no server and no key.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use pae::test_util::ScriptedModel;
use pae::tools::Calculator;
use pae::{
    AgentExecutor, ChatModel, ChatModelExt, EventKind, LlamaCppConfig, LlamaCppModel, OpenAiChat,
    PlanAndExecute, RunRequest, Sampling, ToolError, load_chat_planner, tool_fn,
};

const DEFAULT_OBJECTIVE: &str = "How much do 3 notebooks and 2 pens cost together?";

/// Runs a plan-and-execute agent with a calculator and a shop catalogue.
#[derive(Debug, Parser)]
#[command(name = "plan-and-execute")]
struct Args {
    /// What the agent should find out.
    #[arg(default_value = DEFAULT_OBJECTIVE)]
    objective: String,
    /// Runs a GGUF model in-process (for example the model that
    /// `cargo xtask fetch-models` downloads).
    #[arg(long, value_name = "PATH", conflicts_with = "openai")]
    local: Option<PathBuf>,
    /// Talks to an OpenAI-compatible server at this API root (OPENAI_API_KEY
    /// is sent when set).
    #[arg(long, value_name = "URL")]
    openai: Option<String>,
    /// The model name sent to the server (with --openai).
    #[arg(long, default_value = "gpt-4o-mini", requires = "openai")]
    model: String,
}

/// The custom tool's arguments: the schema the model sees is derived from
/// this struct, its doc comments included.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct PriceQuery {
    /// The item: notebook, pen or stapler.
    item: String,
    /// How many of them.
    quantity: u32,
}

/// The shop's catalogue: cents per item.
fn unit_price_cents(item: &str) -> Option<u32> {
    match item.trim().trim_end_matches('s').to_lowercase().as_str() {
        "notebook" => Some(250),
        "pen" => Some(120),
        "stapler" => Some(899),
        _ => None,
    }
}

/// The replies of the offline run, written for the default objective: the
/// plan, then each step's tool call and answer.
fn offline_script() -> Vec<String> {
    let action = |tool: &str, input: &str| {
        format!(
            "Thought: I will use {tool}.\nAction:\n```json\n{{\"action\": \"{tool}\", \"action_input\": {input}}}\n```"
        )
    };
    vec![
        "Plan:\n1. Look up the price of 3 notebooks in the catalogue.\n\
         2. Look up the price of 2 pens in the catalogue.\n\
         3. Add the two prices and give the total.\n<END_OF_PLAN>"
            .into(),
        action("catalogue_price", r#"{"item": "notebook", "quantity": 3}"#),
        "3 notebooks cost 7.50 euros.".into(),
        action("catalogue_price", r#"{"item": "pen", "quantity": 2}"#),
        "2 pens cost 2.40 euros.".into(),
        action("calculator", r#"{"expression": "7.50 + 2.40"}"#),
        "Together they cost 9.90 euros.".into(),
    ]
}

fn model_for(args: &Args) -> Result<(Arc<dyn ChatModel>, String), Box<dyn std::error::Error>> {
    // Greedy sampling: a real model gives the same run each time.
    let greedy = Sampling {
        temperature: Some(0.0),
        max_tokens: Some(256),
        ..Sampling::default()
    };
    if let Some(path) = &args.local {
        let model = LlamaCppModel::load(LlamaCppConfig::new(path))?;
        let name = format!("local model {}", path.display());
        return Ok((Arc::new(model.with_sampling_defaults(greedy)), name));
    }
    if let Some(url) = &args.openai {
        let mut chat = OpenAiChat::new(&args.model).with_base_url(url);
        if let Ok(key) = std::env::var("OPENAI_API_KEY") {
            chat = chat.with_api_key(key);
        }
        let name = format!("{} at {url}", args.model);
        return Ok((Arc::new(chat.with_sampling_defaults(greedy)), name));
    }
    let scripted = ScriptedModel::new(offline_script()).with_estimated_usage();
    Ok((
        Arc::new(scripted),
        "scripted (offline; --local PATH or --openai URL for a real model)".into(),
    ))
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let (model, name) = model_for(&args)?;
    println!("model: {name}");
    println!("objective: {}", args.objective);

    // A custom tool from an async closure: typed arguments, derived schema.
    let catalogue = tool_fn(
        "catalogue_price",
        "The price in euros of a quantity of one item from the shop's catalogue.",
        |query: PriceQuery| async move {
            let cents = unit_price_cents(&query.item).ok_or_else(|| {
                ToolError::invalid_input(format!(
                    "{:?} is not in the catalogue (notebook, pen, stapler)",
                    query.item
                ))
            })? * query.quantity;
            Ok(format!(
                "{} x {}: {}.{:02} euros",
                query.quantity,
                query.item,
                cents / 100,
                cents % 100
            ))
        },
    )
    .with_read_only(true)
    .with_idempotent(true);

    let planner = load_chat_planner(model.clone());
    // LangChain's executor (`load_agent_executor`: the objective in every
    // step's prompt, a reply without an action is the answer), with fewer
    // model calls per step than the default 15, which a small local model
    // can spend going round in circles.
    let executor = AgentExecutor::builder(model)
        .with_tool(Arc::new(catalogue))
        .with_tool(Arc::new(Calculator::new()))
        .with_task_in_prompt(true)
        .with_plain_text_answers(true)
        .with_max_iterations(4)
        .build()?;
    let agent = PlanAndExecute::new(planner, executor).with_max_steps(6);

    // Progress as it happens, on stderr; the result on stdout.
    let request = RunRequest::new(args.objective).with_callback(|event| {
        if let EventKind::StepStarted {
            step_index, step, ..
        } = &event.kind
        {
            eprintln!("... step {}: {}", step_index + 1, step.value);
        }
    });
    let result = agent.run(request).await?;

    println!("plan:\n{}", result.plans[0]);
    for (index, (step, response)) in result.steps.iter().enumerate() {
        println!("step {}: {}", index + 1, step.value);
        for call in &response.tool_calls {
            println!("  {}({}) -> {}", call.tool, call.input, call.observation);
        }
        println!("  => {}", response.response);
    }
    println!("answer: {}", result.output);
    println!(
        "tokens: {} prompt + {} completion, {:.1?}",
        result.usage.prompt_tokens, result.usage.completion_tokens, result.elapsed
    );
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            let mut source = err.source();
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            ExitCode::FAILURE
        }
    }
}
