//! `pae worker`: serve the queued runs of a PostgreSQL store, building each
//! run's agent from the settings stored with it exactly as `pae resume`
//! does.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pae_core::store::RunRecord;
use pae_core::{ChatModel, PlanAndExecute};
use pae_worker::{AgentFactory, BuildError, Queue, Worker, WorkerEvent, WorkerOptions};

use crate::agent;
use crate::cli::{Provider, WorkerArgs};
use crate::exit::{Failure, FailureKind};
use crate::provider;
use crate::runstore;
use crate::settings::StoredSettings;
use crate::term;

/// Builds agents from the settings the command line stored with a run.
#[derive(Default)]
struct StoredAgents {
    /// Local models are loaded once per worker, keyed by their settings.
    local: tokio::sync::Mutex<HashMap<String, Arc<dyn ChatModel>>>,
}

#[async_trait]
impl AgentFactory for StoredAgents {
    async fn agent(&self, run: &RunRecord) -> Result<PlanAndExecute, BuildError> {
        let stored = StoredSettings::of(run).map_err(|f| f.message)?;
        let model = if provider::provider(&stored.model) == Provider::Local {
            let key = serde_json::to_string(&(&stored.model, &stored.agent)).unwrap_or_default();
            let mut local = self.local.lock().await;
            match local.get(&key) {
                Some(model) => model.clone(),
                None => {
                    let built = provider::build(&stored.model, &stored.agent)
                        .await
                        .map_err(|f| f.message)?;
                    local.insert(key, built.model.clone());
                    built.model
                }
            }
        } else {
            // Scripted models keep a position in their script: one per run.
            provider::build(&stored.model, &stored.agent)
                .await
                .map_err(|f| f.message)?
                .model
        };
        Ok(agent::agent_for(&model, &stored.agent).map_err(|f| f.message)?)
    }
}

fn seconds(value: f64, flag: &str) -> Result<Duration, Failure> {
    Duration::try_from_secs_f64(value).map_err(|_| {
        Failure::new(
            FailureKind::Usage,
            format!("{flag} {value} is not a duration"),
        )
    })
}

/// `pae worker`.
pub(crate) async fn worker(args: WorkerArgs) -> Result<(), Failure> {
    let location = runstore::location(&args.store);
    if !runstore::is_postgres(&location) {
        return Err(Failure::new(
            FailureKind::Usage,
            "pae worker needs a PostgreSQL store (--store postgres://… or PAE_STORE)",
        ));
    }
    let options = WorkerOptions::new()
        .with_concurrency(args.concurrency as usize)
        .with_lease_ttl(seconds(args.lease_ttl, "--lease-ttl")?)
        .with_grace(seconds(args.grace, "--grace")?)
        .with_sweep_every(seconds(args.sweep_every, "--sweep-every")?)
        .with_poll_every(Duration::from_millis(args.poll_ms));
    let store = runstore::open_postgres(&location).await?;
    let quiet = args.quiet;
    let worker = Worker::with_options(
        store.clone(),
        Queue::default(),
        Arc::new(StoredAgents::default()),
        options,
    )
    .with_observer(move |event| report(event, quiet));
    let report = worker.run(shutdown_signal()).await;
    let latency = store.commit_latency();
    term::err(&format!(
        "worker stopped: {} session(s), {} run(s) woken, {} handed back; {} commits, \
         commit latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        report.sessions,
        report.woken,
        report.handed_back,
        latency.count,
        latency.p50_ms,
        latency.p99_ms,
        latency.max_ms
    ));
    Ok(())
}

fn report(event: &WorkerEvent, quiet: bool) {
    let line = match event {
        WorkerEvent::Ready { owner } => format!("worker {owner} ready"),
        WorkerEvent::Trouble { message } => format!("warning: {message}"),
        _ if quiet => return,
        WorkerEvent::Started { run } => format!("run {run} started"),
        WorkerEvent::Finished { run, status, error } => match (status, error) {
            (Some(status), None) => format!("run {run} {status}"),
            (Some(status), Some(error)) => format!("run {run} {status}: {error}"),
            (None, error) => format!("run {run} ended: {}", error.as_deref().unwrap_or("?")),
        },
        WorkerEvent::Woke { run } => format!("run {run} woken (its worker is gone)"),
        WorkerEvent::HandedBack { run } => format!("run {run} handed back"),
        _ => return,
    };
    term::err(&line);
}

/// Completes on SIGTERM, SIGINT or SIGHUP; a second SIGINT or SIGTERM ends
/// the process at once.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
            _ = hup.recv() => {}
        }
        term::err(
            "stopping: no new runs; runs in progress finish or are handed back (again to quit at once)",
        );
        tokio::spawn(async move {
            tokio::select! {
                _ = int.recv() => std::process::exit(130),
                _ = term.recv() => std::process::exit(143),
            }
        });
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
