//! `pae run` and `pae resume`: build the model and the agent from the
//! settings, run (or go on with) the run in the store, report progress,
//! handle signals, write the transcript and say how it ended.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Instant;

use pae_core::store::{ApprovalPolicy, RunStore};
use pae_core::{CancelToken, EventKind, RunError, RunId, RunOutcome, RunRequest, RunResult};

use crate::agent;
use crate::cli::{AgentArgs, BudgetArgs, ModelArgs, OutputArgs, ResumeArgs, RunArgs};
use crate::exit::{Failure, FailureKind};
use crate::progress::Progress;
use crate::provider;
use crate::runstore;
use crate::settings::StoredSettings;
use crate::term;
use crate::transcript::{self, Recorder, TranscriptRecord};

/// How a command ended: the answer for stdout, a note for stderr and the
/// exit code.
#[derive(Debug)]
pub(crate) struct Ending {
    pub(crate) answer: Option<String>,
    pub(crate) kind: Option<FailureKind>,
    pub(crate) note: Option<String>,
}

impl Ending {
    fn answer(answer: String) -> Self {
        Self {
            answer: Some(answer),
            kind: None,
            note: None,
        }
    }
}

/// Which signal stopped the run, if one did (0: none).
#[derive(Debug, Clone, Default)]
struct Signals {
    received: Arc<AtomicI32>,
}

impl Signals {
    /// Cancels `token` on SIGINT, SIGTERM or SIGHUP; a second SIGINT ends
    /// the process at once.
    fn watch(token: CancelToken) -> Self {
        let signals = Self::default();
        let received = signals.received.clone();
        #[cfg(unix)]
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
                signal(SignalKind::hangup()),
            ) else {
                return;
            };
            loop {
                let number = tokio::select! {
                    _ = int.recv() => 2,
                    _ = term.recv() => 15,
                    _ = hup.recv() => 1,
                };
                if received.load(Ordering::SeqCst) != 0 && number == 2 {
                    term::err("stopping now");
                    std::process::exit(130);
                }
                received.store(number, Ordering::SeqCst);
                token.cancel();
                term::err(
                    "stopping at the next safe point; the run stays resumable (Ctrl-C again \
                     quits at once)",
                );
            }
        });
        signals
    }

    fn received(&self) -> Option<i32> {
        Some(self.received.load(Ordering::SeqCst)).filter(|&n| n != 0)
    }
}

/// Checks before the run that the transcript can be written where asked,
/// so a bad path is an error now rather than a warning after the run.
fn check_transcript_path(path: &Path) -> Result<(), Failure> {
    if transcript::is_stdout(path) {
        return Ok(());
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if path.is_dir() {
        return Err(Failure::new(
            FailureKind::Usage,
            format!("--json {}: is a directory", path.display()),
        ));
    }
    tempfile::NamedTempFile::new_in(&parent)
        .map(drop)
        .map_err(|err| {
            Failure::new(
                FailureKind::Usage,
                format!("--json {}: cannot write there: {err}", path.display()),
            )
        })
}

/// `pae run`.
pub(crate) async fn run(args: RunArgs) -> Result<Ending, Failure> {
    let store = runstore::open(&args.store).await?;
    if let Some(path) = &args.output.json {
        check_transcript_path(path)?;
    }
    provider::check_flags(&args.model)?;
    agent::tools_for(&args.agent)?;
    let budget = agent::budget_for(&args.budget)?;
    let id = RunId::generate();
    term::err(&format!("run {id}"));
    let settings = StoredSettings::new(&args.model, &args.agent);
    let request = RunRequest::new(args.objective.clone())
        .with_run_id(id.clone())
        .with_settings(serde_json::to_value(&settings).unwrap_or_default())
        .with_budget(budget);
    let approval = if args.approve {
        ApprovalPolicy::BeforeExecution
    } else {
        ApprovalPolicy::Never
    };
    execute(Session {
        store,
        id,
        objective: args.objective,
        model: args.model,
        agent: args.agent,
        output: args.output,
        approval,
        request,
    })
    .await
}

/// `pae resume`.
pub(crate) async fn resume(args: ResumeArgs) -> Result<Ending, Failure> {
    let store = runstore::open(&args.store).await?;
    let id = runstore::run_id(&args.run)?;
    if let Some(path) = &args.output.json {
        check_transcript_path(path)?;
    }
    let record = store
        .run(&id)
        .await
        .map_err(|err| Failure::from_error(&err, "cannot resume"))?;
    let stored = StoredSettings::of(&record)?;
    let model = stored.model.overridden_by(&args.model);
    provider::check_flags(&model)?;
    term::err(&format!("run {id}"));
    let mut request = RunRequest::resume(id.clone());
    if args.budget.is_given() {
        request = request.with_budget(merge_budget(&record.budget, &args.budget)?);
    }
    execute(Session {
        store,
        id,
        objective: record.objective,
        model,
        agent: stored.agent,
        output: args.output,
        approval: record.approval,
        request,
    })
    .await
}

/// The stored budget with the limits given on `resume` in place.
fn merge_budget(
    stored: &pae_core::Budget,
    given: &BudgetArgs,
) -> Result<pae_core::Budget, Failure> {
    let new = agent::budget_for(given)?;
    let mut budget = stored.clone();
    if new.max_tokens.is_some() {
        budget.max_tokens = new.max_tokens;
    }
    if new.max_tool_calls.is_some() {
        budget.max_tool_calls = new.max_tool_calls;
    }
    if new.max_wall_ms.is_some() {
        budget.max_wall_ms = new.max_wall_ms;
    }
    if new.max_cost.is_some() {
        budget.max_cost = new.max_cost;
    }
    budget.prices.extend(new.prices);
    Ok(budget)
}

struct Session {
    store: Arc<dyn RunStore>,
    id: RunId,
    objective: String,
    model: ModelArgs,
    agent: AgentArgs,
    output: OutputArgs,
    approval: ApprovalPolicy,
    request: RunRequest,
}

async fn execute(session: Session) -> Result<Ending, Failure> {
    let Session {
        store,
        id,
        objective,
        model: model_args,
        agent: agent_args,
        output,
        approval,
        request,
    } = session;
    let started = Instant::now();
    let progress = Arc::new(Progress::new(output.quiet));
    let cancel = CancelToken::new();
    let signals = Signals::watch(cancel.clone());

    if provider::provider(&model_args) == crate::cli::Provider::Local {
        progress.activity("loading the model");
        progress.line(&format!(
            "loading {}",
            provider::local_model_path(&model_args).display()
        ));
    }
    let built = match provider::build(&model_args, &agent_args).await {
        Ok(built) => built,
        Err(failure) => {
            progress.finish();
            return Err(failure);
        }
    };
    match &built.info.base_url {
        // A remote model is not contacted until planning starts.
        Some(url) if built.info.provider == "openai" => {
            progress.line(&format!("model {} (openai) at {url}", built.info.model))
        }
        _ => progress.line(&format!(
            "model {} ({}) ready in {:.1}s",
            built.info.model,
            built.info.provider,
            built.info.load_ms / 1000.0
        )),
    }
    let model = built.model.clone();
    let recorder = Recorder::default();
    let on_event = {
        let recorder = recorder.clone();
        let progress = Arc::clone(&progress);
        move |event: &pae_core::Event| {
            recorder.record(event);
            progress.on_event(event);
        }
    };
    let agent = agent::agent_for(&model, &agent_args)?
        .with_store(store.clone())
        .with_approval(approval)
        .with_message_content(output.telemetry.capture_content)
        .with_callback(on_event);

    progress.activity("planning");
    let run_started = Instant::now();
    let result = agent.run(request.with_cancel(cancel)).await;
    let run_ms = run_started.elapsed().as_secs_f64() * 1000.0;
    progress.finish();

    let ending = match &result {
        Ok(result) => ending_of(result, &id),
        Err(err) => Err(failure_of(err, &id, signals.received())),
    };
    if let Some(path) = &output.json {
        let events = recorder.events();
        let usage = match &result {
            Ok(result) => result.usage,
            Err(err) => recorder
                .events()
                .iter()
                .rev()
                .find_map(|event| match &event.kind {
                    EventKind::RunFailed { usage, .. } => Some(*usage),
                    _ => None,
                })
                .or_else(|| err.partial().map(|p| p.usage))
                .unwrap_or_default(),
        };
        let settings = transcript::Settings::new(&agent_args);
        let failure = ending.as_ref().err();
        let record = TranscriptRecord {
            run_id: id.as_str(),
            objective: &objective,
            model: &built.info,
            settings: &settings,
            events: &events,
            result: match (&result, failure) {
                (Ok(result), _) => Ok(result),
                (Err(_), Some(failure)) => Err(failure),
                (Err(_), None) => Err(&Failure::new(FailureKind::RunFailed, "the run failed")),
            },
            usage,
            run_ms,
            total_ms: started.elapsed().as_secs_f64() * 1000.0,
        };
        if let Err(err) = transcript::write(path, &record) {
            term::err(&format!("warning: {err}"));
        }
    }
    if let Some(path) = &output.html
        && let Err(err) = crate::report::write_html(store.as_ref(), &id, path).await
    {
        term::err(&format!("warning: {err}"));
    }
    let mut ending = ending?;
    if output.json.as_deref().is_some_and(transcript::is_stdout) {
        // stdout holds the transcript; the answer is its `answer` field.
        ending.answer = None;
    }
    if let Ok(result) = &result
        && !output.quiet
        && !result.is_awaiting_approval()
    {
        term::err(&format!(
            "answer after {:.1}s ({} steps, {} plan(s), {} tokens)",
            started.elapsed().as_secs_f64(),
            result.steps.len(),
            result.plans.len(),
            result.usage.total_tokens()
        ));
    }
    Ok(ending)
}

/// What a successful run means for the user: an answer, a plan waiting for
/// approval, or an answer that is not a real one.
fn ending_of(result: &RunResult, id: &RunId) -> Result<Ending, Failure> {
    if let RunOutcome::AwaitingApproval { revision } = result.outcome {
        let mut note = format!("the plan (revision {revision}) waits for approval:");
        if let Some(plan) = result.plans.last() {
            for (i, step) in plan.steps.iter().enumerate() {
                note.push_str(&format!(
                    "\n  {}. {}",
                    i + 1,
                    crate::term::one_line(&step.value, 160)
                ));
            }
        }
        note.push_str(&format!(
            "\napprove it with `pae approve {id}` (or change it with `pae edit {id} --plan FILE`, \
             or `pae reject {id}`), then `pae resume {id}`"
        ));
        return Ok(Ending {
            answer: None,
            kind: Some(FailureKind::AwaitingApproval),
            note: Some(note),
        });
    }
    let problems = crate::answer::problems(result);
    if problems.is_empty() {
        return Ok(Ending::answer(result.output.clone()));
    }
    let why: Vec<String> = problems.into_iter().map(|p| p.message).collect();
    Ok(Ending {
        answer: Some(result.output.clone()),
        kind: Some(FailureKind::NoRealAnswer),
        note: Some(format!(
            "warning: no real answer: {} (the best answer found is on stdout)",
            why.join("; ")
        )),
    })
}

/// The failure a run error stands for.
fn failure_of(err: &RunError, id: &RunId, signal: Option<i32>) -> Failure {
    match (err, signal) {
        (RunError::Cancelled { .. }, Some(signal)) => {
            let name = match signal {
                2 => "SIGINT",
                15 => "SIGTERM",
                1 => "SIGHUP",
                _ => "a signal",
            };
            Failure::new(
                FailureKind::Signal(signal),
                format!("interrupted by {name}; go on with `pae resume {id}`"),
            )
        }
        (RunError::BudgetExceeded { .. }, _) => Failure::new(
            FailureKind::BudgetExceeded,
            format!(
                "{}; go on with `pae resume {id}` and a larger budget (--budget-…)",
                pae_core::error_chain(err)
            ),
        ),
        (RunError::Interrupted { .. }, _) => Failure::new(
            FailureKind::NeedsAttention,
            format!(
                "{}; then `pae resume {id}` or `pae reject {id}`",
                pae_core::error_chain(err)
            ),
        ),
        _ => Failure::from_error(err, "the run failed"),
    }
}
