//! Blanket implementations for `Arc<T>`: every contract is implemented by an
//! `Arc` of an implementation (`Arc<dyn Tool>` included; `ChatModel`'s is
//! next to the trait), so entry
//! points can take `impl ChatModel` and callers pass values or shared
//! handles alike.

use std::sync::Arc;

use async_trait::async_trait;
use pae_schema::{Plan, StepResponse};
use serde_json::Value;

use crate::chain::{Chain, Inputs};
use crate::error::{ChainError, ExecError, PlanError, ToolError};
use crate::executor::{Executor, StepInput};
use crate::model::ToolSpec;
use crate::planner::{PlanRequest, Planner, ReplanDecision, ReplanRequest, Replanner};
use crate::tool::{Tool, ToolContext};

#[async_trait]
impl<T: Tool + ?Sized> Tool for Arc<T> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn description(&self) -> &str {
        (**self).description()
    }
    fn parameters(&self) -> Value {
        (**self).parameters()
    }
    async fn call(&self, input: Value) -> Result<String, ToolError> {
        (**self).call(input).await
    }
    async fn call_with_context(
        &self,
        input: Value,
        context: &ToolContext,
    ) -> Result<String, ToolError> {
        (**self).call_with_context(input, context).await
    }
    fn is_read_only(&self) -> bool {
        (**self).is_read_only()
    }
    fn is_idempotent(&self) -> bool {
        (**self).is_idempotent()
    }
    fn spec(&self) -> ToolSpec {
        (**self).spec()
    }
}

#[async_trait]
impl<T: Planner + ?Sized> Planner for Arc<T> {
    async fn plan(&self, request: &PlanRequest) -> Result<Plan, PlanError> {
        (**self).plan(request).await
    }
}

#[async_trait]
impl<T: Replanner + ?Sized> Replanner for Arc<T> {
    async fn replan(&self, request: &ReplanRequest) -> Result<ReplanDecision, PlanError> {
        (**self).replan(request).await
    }
}

#[async_trait]
impl<T: Executor + ?Sized> Executor for Arc<T> {
    async fn step(&self, input: &StepInput) -> Result<StepResponse, ExecError> {
        (**self).step(input).await
    }
}

#[async_trait]
impl<T: Chain + ?Sized> Chain for Arc<T> {
    fn input_keys(&self) -> Vec<String> {
        (**self).input_keys()
    }
    fn output_keys(&self) -> Vec<String> {
        (**self).output_keys()
    }
    async fn call(&self, inputs: &Inputs) -> Result<Inputs, ChainError> {
        (**self).call(inputs).await
    }
}
