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

/// What `async_trait` methods return.
type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

// The async methods are written out as `async_trait` expands them, to hand
// back the inner future instead of boxing another around it (see the
// `Executor` impl below).
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
    fn call<'life0, 'async_trait>(
        &'life0 self,
        input: Value,
    ) -> BoxFuture<'async_trait, Result<String, ToolError>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        (**self).call(input)
    }
    fn call_with_context<'life0, 'life1, 'async_trait>(
        &'life0 self,
        input: Value,
        context: &'life1 ToolContext,
    ) -> BoxFuture<'async_trait, Result<String, ToolError>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        (**self).call_with_context(input, context)
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

// Written out as `async_trait` expands it, to hand back the inner future as
// it is: an `async fn` here would box a second future around it (a copy
// of the whole step's state) on every step.
impl<T: Executor + ?Sized> Executor for Arc<T> {
    fn step<'life0, 'life1, 'async_trait>(
        &'life0 self,
        input: &'life1 StepInput,
    ) -> BoxFuture<'async_trait, Result<StepResponse, ExecError>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        (**self).step(input)
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
