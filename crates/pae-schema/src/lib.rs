//! The data types of a plan-and-execute run, and nothing else.
//!
//! `pae-schema` is the bottom of the `pae` workspace: [`Plan`] and [`Step`]
//! (what a planner writes), [`StepResponse`] (what an executor returns for a
//! step, with its tool calls and token usage), the [`StepContainer`] trait and
//! [`ListStepContainer`] (where a run collects its steps), the
//! [`PlanOutputParser`] contract, and plan validation ([`Plan::validate`]).
//! It also holds [`json_schema`], the small JSON-schema checker that
//! executors apply to tool arguments and the conformance suite to
//! structured replies.
//!
//! Depend on it directly when you store, transmit or inspect plans and step
//! results without running models: it pulls in only `serde`, `serde_json` and
//! `thiserror`, and nothing async. Everything here serialises with serde, and
//! every type has a `Display` form meant for people.
//!
//! This crate has no feature flags.
//!
//! # Example
//! ```
//! use pae_schema::{ListStepContainer, Plan, PlanLimits, Step, StepContainer, StepResponse};
//!
//! let plan = Plan::new([
//!     Step::new("Look up the population of Paris").with_id("a"),
//!     Step::new("Look up the population of Rome").with_id("b"),
//!     Step::new("Compare them").with_id("c").with_depends_on(["a", "b"]),
//! ]);
//! plan.validate(&PlanLimits::default())?;
//! assert_eq!(plan.topological_order()?, vec![0, 1, 2]);
//!
//! let mut steps = ListStepContainer::new();
//! for step in &plan {
//!     steps.add_step(step.clone(), StepResponse::new(format!("done: {}", step.value)));
//! }
//! assert_eq!(steps.final_response().unwrap().response, "done: Compare them");
//!
//! let json = serde_json::to_string(&plan)?;
//! assert_eq!(serde_json::from_str::<Plan>(&json)?, plan);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod container;
pub mod json_schema;
mod parse;
mod plan;
mod references;
mod response;
mod validate;

pub use container::{ContainerError, ListStepContainer, StepContainer};
pub use parse::{PlanOutputParser, PlanParseError};
pub use plan::{Plan, Step, StepAction};
pub use references::{ReferenceKind, StepReference, find_references, substitute_references};
pub use response::{StepResponse, StepStatus, TokenUsage, ToolInvocation};
pub use validate::{PlanLimits, PlanValidationError};
