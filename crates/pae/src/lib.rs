//! `pae`: plan-and-execute agents for Rust, in one dependency.
//!
//! A plan-and-execute agent lets one model write a numbered plan for an
//! objective, then has an executor agent with tools carry out each step;
//! every step's response is collected and the last one answers the
//! objective (LangChain's `plan_and_execute`, with replanning, step
//! dependencies, events, budgets and durable runs).
//!
//! This crate is the front door: it re-exports the common path so that a
//! program's first dependency line is
//!
//! ```toml
//! pae = { version = "0.1", features = ["openai"] }
//! ```
//!
//! - everything in [`pae_core`] at the root: the contracts ([`ChatModel`],
//!   [`Tool`], [`Planner`], [`Replanner`], [`Executor`], [`Chain`]), the
//!   orchestrator ([`PlanAndExecute`], [`RunRequest`], [`RunResult`]),
//!   events, errors, the plan data types, middleware ([`ChatModelExt`]),
//!   and the [`store`] and [`adapter`] modules;
//! - the planners ([`load_chat_planner`], [`load_structured_planner`],
//!   [`LlmReplanner`], all of `pae-planner` as [`planner`]);
//! - the executor ([`load_agent_executor`], [`AgentExecutor`], all of
//!   `pae-executor` as [`executor`]) and its [`tools`], with [`tool_fn`]
//!   for a tool from an async function;
//! - the providers and run stores, each behind its feature.
//!
//! The small crates (`pae-core`, `pae-planner`, `pae-executor`,
//! `pae-openai`, …) stay available for a program that wants only what it
//! uses; this crate adds no code of its own.
//!
//! # Feature flags
//!
//! No feature is on by default: the common path needs none, and each
//! provider brings its own dependency tree.
//!
//! - `openai`: `pae::openai` and `OpenAiChat`, OpenAI and any
//!   OpenAI-compatible server (llama.cpp's server, vLLM, LM Studio, …),
//!   from `pae-openai`.
//! - `ollama`: `pae::ollama` and `OllamaChat`, an Ollama server, from
//!   `pae-ollama`.
//! - `llamacpp`: `pae::llamacpp`, `LlamaCppModel` and `LlamaCppConfig`, a
//!   GGUF model run in-process through llama.cpp, from `pae-llamacpp`.
//!   Compiles llama.cpp (needs cmake and a C++ compiler; minutes on the
//!   first build).
//! - `sqlite`: `pae::sqlite` and `SqliteStore`, the embedded run store (one
//!   SQLite file, SQLite compiled in) for durable runs, from `pae-sqlite`.
//! - `full`: `openai`, `ollama`, `llamacpp` and `sqlite`.
//! - `test-util`: `pae::test_util`: `ScriptedModel` (a queue of canned
//!   replies that records every request) and mockall mocks of every trait,
//!   for tests and offline demos.
//!
//! Items behind a feature are marked so on docs.rs.
//!
//! # Example
//!
//! A complete run, offline: a scripted model stands in for a real one (swap
//! in `OpenAiChat::from_env("gpt-4o-mini")?` or any other model), with a
//! tool made from an async closure.
//!
//! ```
//! use std::sync::Arc;
//! use pae::test_util::ScriptedModel;
//! use pae::{PlanAndExecute, load_agent_executor, load_chat_planner, tool_fn, tools::Calculator};
//!
//! /// How many boxes.
//! #[derive(serde::Deserialize, schemars::JsonSchema)]
//! struct Boxes {
//!     /// The number of boxes.
//!     count: u32,
//! }
//!
//! let price = tool_fn("box_price", "The price of some boxes, in euros.", |args: Boxes| async move {
//!     Ok(args.count * 7)
//! });
//! let model = Arc::new(ScriptedModel::new([
//!     "Plan:\n1. Look up the price of 12 boxes\n2. Answer\n<END_OF_PLAN>",
//!     "Action:\n```json\n{\"action\": \"box_price\", \"action_input\": {\"count\": 12}}\n```",
//!     "Twelve boxes cost 84 euros.",
//!     "84 euros.",
//! ]));
//! let planner = load_chat_planner(model.clone());
//! let executor = load_agent_executor(model, vec![Arc::new(price), Arc::new(Calculator::new())], true)?;
//! let agent = PlanAndExecute::new(planner, executor);
//!
//! let result = futures::executor::block_on(agent.run("What do 12 boxes cost?"))?;
//! assert_eq!(result.output, "84 euros.");
//! assert_eq!(result.steps[0].1.tool_calls[0].observation, "84");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! `examples/plan-and-execute` in the repository is the same program with a
//! command line: offline by default, or over a local GGUF model or an
//! OpenAI-compatible server.

#![cfg_attr(docsrs, feature(doc_cfg))]

pub use pae_core::*;

#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub use pae_core::test_util;

/// The planners (`pae-planner`): the chat planner, the structured (JSON)
/// planner, the tolerant plan parsers, the replanner and their prompts.
#[doc(inline)]
pub use pae_planner as planner;
pub use pae_planner::{
    LlmPlanner, LlmReplanner, PlanningOutputParser, StructuredPlanner, load_chat_planner,
    load_structured_planner,
};

/// The step executors (`pae-executor`): the tool-using agent, the chain
/// executor, the action parser and the built-in tools.
#[doc(inline)]
pub use pae_executor as executor;
pub use pae_executor::tools;
pub use pae_executor::tools::{FnTool, tool_fn, tool_fn_with_context};
pub use pae_executor::{
    AgentExecutor, ChainExecutor, EarlyStopping, HistoryPolicy, load_agent_executor,
};

/// OpenAI and OpenAI-compatible servers (`pae-openai`).
#[cfg(feature = "openai")]
#[cfg_attr(docsrs, doc(cfg(feature = "openai")))]
#[doc(inline)]
pub use pae_openai as openai;
#[cfg(feature = "openai")]
#[cfg_attr(docsrs, doc(cfg(feature = "openai")))]
pub use pae_openai::OpenAiChat;

/// Ollama (`pae-ollama`).
#[cfg(feature = "ollama")]
#[cfg_attr(docsrs, doc(cfg(feature = "ollama")))]
#[doc(inline)]
pub use pae_ollama as ollama;
#[cfg(feature = "ollama")]
#[cfg_attr(docsrs, doc(cfg(feature = "ollama")))]
pub use pae_ollama::OllamaChat;

/// A GGUF model in-process through llama.cpp (`pae-llamacpp`).
#[cfg(feature = "llamacpp")]
#[cfg_attr(docsrs, doc(cfg(feature = "llamacpp")))]
#[doc(inline)]
pub use pae_llamacpp as llamacpp;
#[cfg(feature = "llamacpp")]
#[cfg_attr(docsrs, doc(cfg(feature = "llamacpp")))]
pub use pae_llamacpp::{LlamaCppConfig, LlamaCppModel};

/// The embedded run store: durable runs in one SQLite file (`pae-sqlite`).
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
#[doc(inline)]
pub use pae_sqlite as sqlite;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use pae_sqlite::SqliteStore;

// The PostgreSQL run store joins here behind a `postgres` feature when it
// lands: `pub use pae_postgres as postgres;` and its store type.

/// The `#[async_trait]` attribute the contracts use: implement [`Tool`],
/// [`ChatModel`], [`Planner`] or [`Executor`] with `#[pae::async_trait]`
/// without a dependency of your own.
pub use async_trait::async_trait;

/// `serde_json`, whose [`Value`](serde_json::Value) tools take and whose
/// `json!` builds their schemas.
pub use serde_json;

/// The root README's library example, compiled (not run: it needs an API
/// key) as a doctest with the features it shows.
#[cfg(all(doctest, feature = "openai"))]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
