//! The run store the commands use (a SQLite file, or PostgreSQL with the
//! worker queue's tables), and the commands that only read or decide:
//! `runs`, `show`, `approve`, `edit`, `reject`.

use std::path::PathBuf;
use std::sync::Arc;

use pae_core::store::{
    CallState, JournalEntry, PlanRevision, RunFilter, RunRecord, RunStatus, RunStore, StepRecord,
};
use pae_core::{Decision, Plan, PlanOutputParser, RunId, Step, StepStatus};
use pae_planner::PlanningOutputParser;
use pae_postgres::{PgStore, PgStoreOptions};
use pae_worker::Queue;
use serde_json::{Value, json};

use crate::cli::{DecideArgs, EditArgs, RejectArgs, RunsArgs, ShowArgs, StoreArgs};
use crate::clock::utc;
use crate::exit::{Failure, FailureKind};
use crate::provider;
use crate::term;

/// `$PAE_DATA_DIR`, or `~/.local/share/pae`.
fn data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PAE_DATA_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".local").join("share").join("pae")
}

/// Where the store is: `--store`, `PAE_STORE`, or the default file.
pub(crate) fn location(args: &StoreArgs) -> String {
    args.store
        .clone()
        .or_else(|| std::env::var("PAE_STORE").ok())
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| data_dir().join("runs.db").display().to_string())
}

/// Whether a store location is a PostgreSQL URL.
pub(crate) fn is_postgres(location: &str) -> bool {
    location.starts_with("postgres://") || location.starts_with("postgresql://")
}

/// Opens the store the flags name.
pub(crate) async fn open(args: &StoreArgs) -> Result<Arc<dyn RunStore>, Failure> {
    let location = location(args);
    if is_postgres(&location) {
        return Ok(Arc::new(open_postgres(&location).await?));
    }
    let store = pae_sqlite::SqliteStore::open(&location).map_err(|err| {
        Failure::from_error(&err, &format!("cannot use the run store {location}"))
    })?;
    Ok(Arc::new(store))
}

/// Opens a PostgreSQL store with the worker queue's tables and its
/// approval hook, so `pae approve` wakes the run for the workers.
pub(crate) async fn open_postgres(url: &str) -> Result<PgStore, Failure> {
    pae_worker::connect(PgStoreOptions::new(url), &Queue::default())
        .await
        .map_err(|err| {
            Failure::from_error(
                &err,
                &format!(
                    "cannot use the run store {}",
                    provider::without_credentials(url)
                ),
            )
        })
}

/// Checks a run id given on the command line.
pub(crate) fn run_id(text: &str) -> Result<RunId, Failure> {
    RunId::parse(text.trim()).map_err(|err| Failure::new(FailureKind::Store, err.to_string()))
}

fn store_failure(err: &pae_core::StoreError) -> Failure {
    Failure::from_error(err, "the run store")
}

fn summary_json(record: &RunRecord, steps: usize) -> Value {
    json!({
        "id": record.id,
        "status": record.status,
        "objective": record.objective,
        "created_at": utc(record.created_at_ms),
        "updated_at": utc(record.updated_at_ms),
        "steps_committed": steps,
        "answer": record.ending.output,
        "error": record.ending.error,
        "tokens": record.spent.usage.total_tokens(),
    })
}

/// `pae runs`.
pub(crate) async fn runs(args: &RunsArgs) -> Result<(), Failure> {
    let store = open(&args.store).await?;
    let mut filter = RunFilter::default();
    if let Some(status) = &args.status {
        filter.status = Some(RunStatus::parse(status).ok_or_else(|| {
            Failure::new(
                FailureKind::Usage,
                format!(
                    "unknown status {status:?}; one of planning, awaiting_approval, running, \
                     interrupted, succeeded, failed, cancelled"
                ),
            )
        })?);
    }
    filter.limit = args.last;
    let records = store.list(&filter).await.map_err(|e| store_failure(&e))?;
    let mut rows = Vec::with_capacity(records.len());
    for record in &records {
        let steps = store
            .steps(&record.id)
            .await
            .map_err(|e| store_failure(&e))?
            .len();
        rows.push((record, steps));
    }
    if args.json {
        let list: Vec<Value> = rows.iter().map(|(r, s)| summary_json(r, *s)).collect();
        term::out(&serde_json::to_string_pretty(&list).unwrap_or_default());
        return Ok(());
    }
    if rows.is_empty() {
        term::err(&format!("no runs in {}", location(&args.store)));
        return Ok(());
    }
    for (record, steps) in rows {
        term::out(&format!(
            "{}  {:<17}  {}  {:>3} steps  {}",
            record.id,
            record.status.as_str(),
            utc(record.created_at_ms),
            steps,
            term::bounded(&crate::term::one_line(&record.objective, 200), 80)
        ));
    }
    Ok(())
}

/// The status a step shows: its own once committed, `pending` before.
fn step_status(status: &StepStatus) -> &'static str {
    match status {
        StepStatus::Completed => "completed",
        StepStatus::Stopped { .. } => "stopped",
        StepStatus::Failed { .. } => "failed",
        StepStatus::Skipped { .. } => "skipped",
    }
}

fn plan_json(revision: &PlanRevision) -> Value {
    json!({
        "revision": revision.revision,
        "source": revision.source,
        "approved": revision.approved,
        "created_at": utc(revision.created_at_ms),
        "steps": revision.plan.steps,
    })
}

fn call_json(entry: &JournalEntry) -> Value {
    json!({
        "call": entry.seq,
        "kind": entry.kind,
        "name": entry.name,
        "state": entry.state,
        "idempotency_key": entry.idempotency_key,
        "request": entry.request,
        "result": entry.result,
        "usage": entry.usage,
    })
}

/// Every step of the run's current plan, each with its response once
/// committed.
fn steps_json(
    plans: &[PlanRevision],
    committed: &[StepRecord],
    journal: &[JournalEntry],
    with_calls: bool,
) -> Vec<Value> {
    let latest: Vec<Step> = plans
        .last()
        .map(|p| p.plan.steps.clone())
        .unwrap_or_default();
    let count = latest
        .len()
        .max(committed.iter().map(|s| s.index + 1).max().unwrap_or(0));
    (0..count)
        .map(|index| {
            let record = committed.iter().find(|s| s.index == index);
            let step = record
                .map(|r| r.step.clone())
                .or_else(|| latest.get(index).cloned())
                .unwrap_or_default();
            let mut value = json!({
                "index": index,
                "step": step.value,
                "status": record.map_or("pending", |r| step_status(&r.response.status)),
            });
            if let Some(id) = &step.id {
                value["id"] = json!(id);
            }
            if !step.depends_on.is_empty() {
                value["depends_on"] = json!(step.depends_on);
            }
            if let Some(record) = record {
                value["response"] = json!(record.response.response);
                value["revision"] = json!(record.revision);
                value["attempt"] = json!(record.attempt);
                value["tool_calls"] = json!(record.response.tool_calls);
                value["usage"] = json!(record.response.usage);
                match &record.response.status {
                    StepStatus::Stopped { reason } | StepStatus::Skipped { reason } => {
                        value["reason"] = json!(reason);
                    }
                    StepStatus::Failed { error } => value["error"] = json!(error),
                    StepStatus::Completed => {}
                }
            }
            if with_calls {
                let calls: Vec<Value> = journal
                    .iter()
                    .filter(|e| e.scope.step_index() == Some(index))
                    .map(call_json)
                    .collect();
                value["calls"] = json!(calls);
            }
            value
        })
        .collect()
}

/// `pae show`.
pub(crate) async fn show(args: &ShowArgs) -> Result<(), Failure> {
    let store = open(&args.store).await?;
    let id = run_id(&args.run)?;
    if args.mermaid {
        let data = crate::report::load(store.as_ref(), &id).await?;
        term::out(crate::report::mermaid(&data).trim_end());
        return Ok(());
    }
    if let Some(path) = &args.html {
        crate::report::write_html(store.as_ref(), &id, path).await?;
        term::err(&format!("report written to {}", path.display()));
        return Ok(());
    }
    let record = store.run(&id).await.map_err(|e| store_failure(&e))?;
    let plans = store.plans(&id).await.map_err(|e| store_failure(&e))?;
    let steps = store.steps(&id).await.map_err(|e| store_failure(&e))?;
    let journal = if args.calls {
        store
            .journal_all(&id)
            .await
            .map_err(|e| store_failure(&e))?
    } else {
        Vec::new()
    };
    let steps_json = steps_json(&plans, &steps, &journal, args.calls);
    if args.json {
        let value = json!({
            "id": record.id,
            "objective": record.objective,
            "status": record.status,
            "created_at": utc(record.created_at_ms),
            "updated_at": utc(record.updated_at_ms),
            "inputs": record.inputs,
            "settings": record.settings,
            "approval": record.approval,
            "budget": record.budget,
            "spent": record.spent,
            "plans": plans.iter().map(plan_json).collect::<Vec<_>>(),
            "steps": steps_json,
            "answer": record.ending.output,
            "outcome": record.ending.outcome,
            "error": record.ending.error,
            "interruption": record.ending.interruption,
            "lease": record.lease,
        });
        term::out(&serde_json::to_string_pretty(&value).unwrap_or_default());
        return Ok(());
    }
    term::out(&format!("run {}  {}", record.id, record.status));
    term::out(&format!("objective: {}", record.objective));
    term::out(&format!(
        "created {}, updated {}",
        utc(record.created_at_ms),
        utc(record.updated_at_ms)
    ));
    for revision in &plans {
        term::out(&format!(
            "plan revision {} ({:?}{}):",
            revision.revision,
            revision.source,
            if revision.approved { ", approved" } else { "" }
        ));
        for (i, step) in revision.plan.steps.iter().enumerate() {
            term::out(&format!(
                "  {}. {}",
                i + 1,
                crate::term::one_line(&step.value, 200)
            ));
        }
    }
    if !steps_json.is_empty() {
        term::out("steps:");
    }
    for step in &steps_json {
        let index = step["index"].as_u64().unwrap_or_default() + 1;
        term::out(&format!(
            "  {index}. [{}] {}",
            step["status"].as_str().unwrap_or_default(),
            crate::term::one_line(step["step"].as_str().unwrap_or_default(), 160)
        ));
        if let Some(response) = step["response"].as_str() {
            term::out(&format!("     → {}", crate::term::one_line(response, 200)));
        }
        for call in step["calls"].as_array().into_iter().flatten() {
            term::out(&format!(
                "     · {} {} {}",
                call["kind"].as_str().unwrap_or_default(),
                term::bounded(call["name"].as_str().unwrap_or_default(), 60),
                if call["state"] == json!(CallState::Started) {
                    "(started, no result)"
                } else {
                    ""
                }
            ));
        }
    }
    if let Some(answer) = &record.ending.output {
        term::out(&format!("answer: {answer}"));
    }
    if let Some(reason) = &record.ending.interruption {
        term::out(&format!("interrupted: {reason}"));
    } else if let Some(error) = &record.ending.error {
        term::out(&format!("error: {error}"));
    }
    let spent = &record.spent;
    term::out(&format!(
        "spent: {} tokens ({} prompt + {} completion; {} spent twice), {} model calls, {} tool \
         calls, {} replayed, {:.1}s, {} session(s)",
        spent.usage.total_tokens(),
        spent.usage.prompt_tokens,
        spent.usage.completion_tokens,
        spent.wasted.total_tokens(),
        spent.model_calls,
        spent.tool_calls,
        spent.replayed_calls,
        spent.wall_ms as f64 / 1000.0,
        spent.sessions
    ));
    if record.status == RunStatus::AwaitingApproval {
        term::out(&format!(
            "waiting for approval: pae approve {id}, pae edit {id} --plan FILE, or pae reject {id}"
        ));
    }
    Ok(())
}

/// A plan from a file: a JSON array of steps (text or objects), an object
/// with `steps`, or a numbered list.
fn read_plan(path: &std::path::Path) -> Result<Plan, Failure> {
    let text = std::fs::read_to_string(path).map_err(|err| {
        Failure::new(
            FailureKind::Usage,
            format!("cannot read the plan {}: {err}", path.display()),
        )
    })?;
    let bad = |why: String| {
        Failure::new(
            FailureKind::Usage,
            format!("the plan in {} cannot be read: {why}", path.display()),
        )
    };
    if let Ok(value) = serde_json::from_str::<Value>(&text) {
        let items = match &value {
            Value::Array(items) => items.clone(),
            Value::Object(map) => match map.get("steps") {
                Some(Value::Array(items)) => items.clone(),
                _ => return Err(bad("a JSON plan needs a `steps` array".into())),
            },
            _ => return Err(bad("a JSON plan is an array of steps".into())),
        };
        let steps = items
            .into_iter()
            .map(|item| match item {
                Value::String(text) => Ok(Step::new(text)),
                other => serde_json::from_value::<Step>(other).map_err(|e| bad(e.to_string())),
            })
            .collect::<Result<Vec<Step>, Failure>>()?;
        return Ok(steps.into_iter().collect());
    }
    PlanningOutputParser::new()
        .parse(&text)
        .map_err(|e| bad(e.to_string()))
}

/// An agent that can decide (no model: deciding costs no call).
fn decider(store: Arc<dyn RunStore>) -> pae_core::PlanAndExecute {
    pae_core::PlanAndExecute::new(crate::agent::NoPlanner, crate::agent::NoExecutor)
        .with_store(store)
}

async fn decide(store_args: &StoreArgs, run: &str, decision: Decision) -> Result<(), Failure> {
    let store = open(store_args).await?;
    let id = run_id(run)?;
    let record = decider(store)
        .decide(&id, decision)
        .await
        .map_err(|err| Failure::from_error(&err, "cannot decide"))?;
    term::out(&format!("run {} is {}", record.id, record.status));
    Ok(())
}

/// `pae approve`.
pub(crate) async fn approve(args: &DecideArgs) -> Result<(), Failure> {
    decide(&args.store, &args.run, Decision::Approve).await?;
    term::err(&format!("resume it with: pae resume {}", args.run.trim()));
    Ok(())
}

/// `pae edit`.
pub(crate) async fn edit(args: &EditArgs) -> Result<(), Failure> {
    let plan = read_plan(&args.plan)?;
    decide(&args.store, &args.run, Decision::Edit(plan)).await?;
    term::err(&format!(
        "the edited plan waits for approval: pae approve {}",
        args.run.trim()
    ));
    Ok(())
}

/// `pae reject`.
pub(crate) async fn reject(args: &RejectArgs) -> Result<(), Failure> {
    decide(
        &args.store,
        &args.run,
        Decision::Reject {
            reason: args.reason.clone(),
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_are_read_from_json_or_a_numbered_list() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            ("[\"a\", \"b\"]", vec!["a", "b"]),
            (
                "{\"steps\": [\"a\", {\"value\": \"b\", \"id\": \"x\"}]}",
                vec!["a", "b"],
            ),
            ("1. first\n2. second\n", vec!["first", "second"]),
        ];
        for (i, (text, expected)) in cases.iter().enumerate() {
            let path = dir.path().join(format!("plan{i}"));
            std::fs::write(&path, text).unwrap();
            let plan = read_plan(&path).unwrap();
            let values: Vec<&str> = plan.steps.iter().map(|s| s.value.as_str()).collect();
            assert_eq!(&values, expected, "{text}");
        }
        let path = dir.path().join("bad");
        std::fs::write(&path, "{\"plan\": 3}").unwrap();
        assert_eq!(read_plan(&path).unwrap_err().kind, FailureKind::Usage);
        assert_eq!(
            read_plan(&dir.path().join("missing")).unwrap_err().kind,
            FailureKind::Usage
        );
    }
}
