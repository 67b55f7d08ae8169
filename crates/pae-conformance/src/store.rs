//! The shared test suite of the run-store contract: every [`RunStore`]
//! (the in-memory one, `pae-sqlite`, `pae-postgres`, yours) must pass it.
//!
//! ```
//! use pae_conformance::store::StoreSuite;
//! use pae_core::MemoryStore;
//!
//! # futures::executor::block_on(async {
//! let report = StoreSuite::new().run(&MemoryStore::new()).await;
//! report.assert_passed();
//! # });
//! ```

use std::fmt;
use std::time::Duration;

use pae_core::store::{
    ApprovalPolicy, Budget, CallKind, CallScope, CallState, Commit, Interruption, JournalEntry,
    Lease, PlanRevision, PlanSource, RunEnding, RunFilter, RunRecord, RunStatus, RunStore, Spent,
    StepRecord, Takeover, now_ms,
};
use pae_core::{
    Event, EventKind, Plan, RunId, RunOutcome, Step, StepResponse, StoreError, TokenUsage,
};
use serde_json::json;

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreCheck {
    /// The check's name.
    pub name: &'static str,
    /// `Ok` or what went wrong.
    pub result: Result<(), String>,
}

/// What [`StoreSuite::run`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreReport {
    /// Every check, in order.
    pub checks: Vec<StoreCheck>,
}

impl StoreReport {
    /// The checks that failed.
    pub fn failures(&self) -> Vec<&StoreCheck> {
        self.checks.iter().filter(|c| c.result.is_err()).collect()
    }

    /// Panics with the failed checks, if any.
    ///
    /// # Panics
    /// When a check failed.
    pub fn assert_passed(&self) {
        let failures = self.failures();
        assert!(failures.is_empty(), "run-store checks failed:\n{self}");
    }
}

impl fmt::Display for StoreReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for check in &self.checks {
            match &check.result {
                Ok(()) => writeln!(f, "PASS {}", check.name)?,
                Err(why) => writeln!(f, "FAIL {}: {why}", check.name)?,
            }
        }
        let failed = self.failures().len();
        write!(f, "{} passed, {failed} failed", self.checks.len() - failed)
    }
}

/// The suite. Each check makes its own runs with fresh ids, so any store
/// (even one holding other runs) can be checked; checks that wait for a
/// lease to expire take about a tenth of a second.
#[derive(Debug, Clone, Default)]
pub struct StoreSuite {
    _private: (),
}

type Outcome = Result<(), String>;

macro_rules! ensure {
    ($cond:expr, $($why:tt)+) => {
        if !$cond {
            return Err(format!($($why)+));
        }
    };
}

fn ok<T>(what: &str, result: Result<T, StoreError>) -> Result<T, String> {
    result.map_err(|e| format!("{what}: unexpected error {e:?}"))
}

fn record(objective: &str) -> RunRecord {
    let mut record = RunRecord::new(RunId::generate(), objective);
    record.inputs.insert("input".into(), objective.into());
    record.settings = json!({"provider": "scripted", "tools": ["calculator"]});
    record.approval = ApprovalPolicy::BeforeExecution;
    record.budget = Budget::unlimited().with_max_tokens(1000);
    record
}

fn event(kind: EventKind) -> Event {
    Event {
        at: Duration::from_millis(7),
        kind,
    }
}

fn step_record(index: usize, text: &str) -> StepRecord {
    StepRecord {
        index,
        revision: 0,
        step: Step::new(text),
        response: StepResponse::new(format!("{text} done")).with_usage(TokenUsage::new(3, 1)),
        attempt: 1,
        started_at_ms: now_ms(),
        finished_at_ms: now_ms(),
    }
}

fn entry(scope: &CallScope, seq: u32, state: CallState) -> JournalEntry {
    JournalEntry {
        scope: scope.clone(),
        seq,
        kind: if seq.is_multiple_of(2) {
            CallKind::Model
        } else {
            CallKind::Tool
        },
        name: "x".into(),
        request_hash: format!("h{seq}"),
        idempotency_key: Some(format!("k{seq}")),
        state,
        request: json!({"seq": seq}),
        result: if state == CallState::Done {
            json!({"ok": format!("r{seq}")})
        } else {
            serde_json::Value::Null
        },
        usage: TokenUsage::new(1, 1),
        started_at_ms: now_ms(),
        finished_at_ms: None,
    }
}

fn plan_revision(revision: u32, steps: &[&str]) -> PlanRevision {
    PlanRevision {
        revision,
        plan: Plan::new(steps.iter().copied()),
        source: if revision == 0 {
            PlanSource::Planner
        } else {
            PlanSource::Human
        },
        approved: false,
        created_at_ms: now_ms(),
    }
}

/// Creates a run and takes its lease as owner "suite".
async fn leased(store: &dyn RunStore, objective: &str) -> Result<(RunId, Lease), String> {
    let record = record(objective);
    ok("create", store.create(&record).await)?;
    let lease = ok(
        "acquire",
        store
            .acquire(
                &record.id,
                "suite",
                Duration::from_secs(30),
                Takeover::IfExpired,
            )
            .await,
    )?;
    Ok((record.id, lease))
}

impl StoreSuite {
    /// The suite.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs every check against `store`.
    pub async fn run(&self, store: &dyn RunStore) -> StoreReport {
        let mut checks = Vec::new();
        macro_rules! check {
            ($name:ident) => {
                checks.push(StoreCheck {
                    name: stringify!($name),
                    result: $name(store).await,
                });
            };
        }
        check!(create_and_read);
        check!(unknown_runs_are_not_found);
        check!(list_is_oldest_first_with_filter_and_limit);
        check!(one_writer_at_a_time);
        check!(stale_writers_are_fenced);
        check!(expired_leases_can_be_taken);
        check!(commits_apply_every_part);
        check!(commits_are_atomic);
        check!(steps_and_revisions_are_written_once);
        check!(journal_upserts_and_truncates_by_scope);
        check!(events_are_numbered_in_order);
        check!(approval_marks_a_revision);
        StoreReport { checks }
    }
}

async fn create_and_read(store: &dyn RunStore) -> Outcome {
    let record = record("read me back");
    ok("create", store.create(&record).await)?;
    let read = ok("run", store.run(&record.id).await)?;
    ensure!(read.objective == record.objective, "objective changed");
    ensure!(read.inputs == record.inputs, "inputs changed");
    ensure!(read.settings == record.settings, "settings changed");
    ensure!(read.approval == record.approval, "approval changed");
    ensure!(read.budget == record.budget, "budget changed");
    ensure!(
        read.status == RunStatus::Planning,
        "status {:?}",
        read.status
    );
    ensure!(read.lease.is_none(), "a new run has a lease");
    ensure!(
        read.created_at_ms == record.created_at_ms,
        "created_at changed"
    );
    match store.create(&record).await {
        Err(StoreError::AlreadyExists { .. }) => {}
        other => return Err(format!("creating twice gave {other:?}")),
    }
    Ok(())
}

async fn unknown_runs_are_not_found(store: &dyn RunStore) -> Outcome {
    let id = RunId::generate();
    let nf = |r: Result<(), StoreError>, what: &str| match r {
        Err(StoreError::NotFound { .. }) => Ok(()),
        other => Err(format!("{what} of an unknown run gave {other:?}")),
    };
    nf(store.run(&id).await.map(drop), "run")?;
    nf(store.plans(&id).await.map(drop), "plans")?;
    nf(store.steps(&id).await.map(drop), "steps")?;
    nf(
        store.journal(&id, &CallScope::Plan).await.map(drop),
        "journal",
    )?;
    nf(store.journal_all(&id).await.map(drop), "journal_all")?;
    nf(store.events(&id, None).await.map(drop), "events")?;
    nf(
        store
            .acquire(&id, "x", Duration::from_secs(1), Takeover::IfExpired)
            .await
            .map(drop),
        "acquire",
    )?;
    Ok(())
}

async fn list_is_oldest_first_with_filter_and_limit(store: &dyn RunStore) -> Outcome {
    let mut ids = Vec::new();
    for (i, status) in [
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::Succeeded,
    ]
    .into_iter()
    .enumerate()
    {
        let mut record = record(&format!("listed {i}"));
        record.status = status;
        // Distinct creation times, newest last.
        record.created_at_ms = now_ms() + 10_000_000 + i as u64;
        ok("create", store.create(&record).await)?;
        ids.push(record.id);
    }
    let all = ok("list", store.list(&RunFilter::default()).await)?;
    let mine: Vec<&RunId> = all
        .iter()
        .map(|r| &r.id)
        .filter(|id| ids.contains(id))
        .collect();
    ensure!(
        mine == ids.iter().collect::<Vec<_>>(),
        "not oldest first: {mine:?}"
    );
    let mut newest = RunFilter::default();
    newest.limit = Some(2);
    let two = ok("list with a limit", store.list(&newest).await)?;
    let two: Vec<&RunId> = two.iter().map(|r| &r.id).collect();
    ensure!(
        two == [&ids[1], &ids[2]],
        "a limit keeps the newest, oldest first: {two:?}"
    );
    let mut failed = RunFilter::default();
    failed.status = Some(RunStatus::Failed);
    let failed = ok("list by status", store.list(&failed).await)?;
    ensure!(
        failed.iter().all(|r| r.status == RunStatus::Failed),
        "the status filter let other statuses through"
    );
    ensure!(
        failed.iter().any(|r| r.id == ids[1]),
        "the failed run is missing"
    );
    Ok(())
}

async fn one_writer_at_a_time(store: &dyn RunStore) -> Outcome {
    let (id, lease) = leased(store, "exclusive").await?;
    let ttl = Duration::from_secs(30);
    match store.acquire(&id, "other", ttl, Takeover::IfExpired).await {
        Err(StoreError::Busy { owner, .. }) if owner == "suite" => {}
        other => return Err(format!("a second owner got {other:?}")),
    }
    match store
        .acquire(&id, "other", ttl, Takeover::IfEpoch(lease.epoch + 7))
        .await
    {
        Err(StoreError::Busy { .. }) => {}
        other => return Err(format!("a takeover at a wrong epoch got {other:?}")),
    }
    let read = ok("run", store.run(&id).await)?;
    ensure!(
        read.lease.as_ref().map(|l| l.owner.as_str()) == Some("suite"),
        "the record does not show the holder: {:?}",
        read.lease
    );
    let renewed = ok("renew", store.renew(&lease, ttl).await)?;
    ensure!(renewed.epoch == lease.epoch, "renewing changed the epoch");
    ok("release", store.release(&renewed).await)?;
    ensure!(
        ok("run", store.run(&id).await)?.lease.is_none(),
        "a released lease is still shown"
    );
    let next = ok(
        "acquire after release",
        store.acquire(&id, "other", ttl, Takeover::IfExpired).await,
    )?;
    ensure!(next.epoch > lease.epoch, "the epoch did not rise");
    Ok(())
}

async fn stale_writers_are_fenced(store: &dyn RunStore) -> Outcome {
    let (id, stale) = leased(store, "fenced").await?;
    let ttl = Duration::from_secs(30);
    let fresh = ok(
        "takeover",
        store
            .acquire(&id, "other", ttl, Takeover::IfEpoch(stale.epoch))
            .await,
    )?;
    ensure!(fresh.epoch > stale.epoch, "the takeover kept the epoch");
    let mut commit = Commit::new();
    commit.status = Some(RunStatus::Failed);
    commit.steps.push(step_record(0, "forked"));
    commit.events.push(event(EventKind::RunResumed {
        session: 9,
        committed_steps: 0,
    }));
    match store.commit(&stale, commit).await {
        Err(StoreError::LeaseLost { epoch, .. }) if epoch == stale.epoch => {}
        other => return Err(format!("a stale commit gave {other:?}")),
    }
    let read = ok("run", store.run(&id).await)?;
    ensure!(read.status == RunStatus::Planning, "the stale commit wrote");
    ensure!(
        ok("steps", store.steps(&id).await)?.is_empty(),
        "the stale step was written"
    );
    ensure!(
        ok("events", store.events(&id, None).await)?.is_empty(),
        "stale events were written"
    );
    match store.renew(&stale, ttl).await {
        Err(StoreError::LeaseLost { .. }) => {}
        other => return Err(format!("renewing a stale lease gave {other:?}")),
    }
    match store.release(&stale).await {
        Err(StoreError::LeaseLost { .. }) => {}
        other => return Err(format!("releasing a stale lease gave {other:?}")),
    }
    ok(
        "commit under the fresh lease",
        store.commit(&fresh, Commit::new()).await,
    )?;
    Ok(())
}

async fn expired_leases_can_be_taken(store: &dyn RunStore) -> Outcome {
    let record = record("expiring");
    ok("create", store.create(&record).await)?;
    let short = ok(
        "acquire",
        store
            .acquire(
                &record.id,
                "sleepy",
                Duration::from_millis(50),
                Takeover::IfExpired,
            )
            .await,
    )?;
    // Blocking is fine here and works under any executor.
    std::thread::sleep(Duration::from_millis(120));
    let taken = ok(
        "acquire an expired lease",
        store
            .acquire(
                &record.id,
                "awake",
                Duration::from_secs(30),
                Takeover::IfExpired,
            )
            .await,
    )?;
    ensure!(taken.epoch > short.epoch, "the epoch did not rise");
    match store.commit(&short, Commit::new()).await {
        Err(StoreError::LeaseLost { .. }) => Ok(()),
        other => Err(format!("the expired holder's commit gave {other:?}")),
    }
}

async fn commits_apply_every_part(store: &dyn RunStore) -> Outcome {
    let (id, lease) = leased(store, "every part").await?;
    let mut commit = Commit::new();
    commit.status = Some(RunStatus::Running);
    commit.plan = Some(plan_revision(0, &["a", "b"]));
    commit.steps.push(step_record(0, "a"));
    let scope = CallScope::Step {
        revision: 0,
        index: 1,
    };
    commit.journal.push(entry(&scope, 0, CallState::Done));
    commit.events.push(event(EventKind::PlanCreated {
        plan: Plan::new(["a", "b"]),
    }));
    let mut spent = Spent::default();
    spent.usage = TokenUsage::new(40, 2);
    spent.tool_calls = 3;
    spent.cost = 0.25;
    spent.sessions = 1;
    commit.spent = Some(spent.clone());
    let ending = RunEnding {
        output: Some("forty-two".into()),
        outcome: Some(RunOutcome::Completed),
        error: None,
        interruption: Some(Interruption::ToolCallInDoubt {
            step_index: 1,
            tool: "pay".into(),
            idempotency_key: "k".into(),
            input: json!({"amount": 5}),
        }),
    };
    commit.ending = Some(ending.clone());
    commit.settings = Some(json!({"model": "new"}));
    commit.budget = Some(Budget::unlimited().with_max_tool_calls(9));
    let seq = ok("commit", store.commit(&lease, commit).await)?;
    ensure!(seq == 1, "one event stored, last seq {seq}");
    let read = ok("run", store.run(&id).await)?;
    ensure!(
        read.status == RunStatus::Running,
        "status {:?}",
        read.status
    );
    ensure!(read.spent == spent, "spent {:?}", read.spent);
    ensure!(read.ending == ending, "ending {:?}", read.ending);
    ensure!(
        read.settings == json!({"model": "new"}),
        "settings not replaced"
    );
    ensure!(read.budget.max_tool_calls == Some(9), "budget not replaced");
    ensure!(
        read.approval == ApprovalPolicy::BeforeExecution,
        "approval changed"
    );
    let plans = ok("plans", store.plans(&id).await)?;
    ensure!(
        plans.len() == 1 && plans[0].plan == Plan::new(["a", "b"]),
        "plans {plans:?}"
    );
    let steps = ok("steps", store.steps(&id).await)?;
    let expected = step_record(0, "a");
    ensure!(
        steps.len() == 1
            && steps[0].index == 0
            && steps[0].step == expected.step
            && steps[0].response == expected.response
            && steps[0].attempt == 1,
        "steps {steps:?}"
    );
    let journal = ok("journal", store.journal(&id, &scope).await)?;
    ensure!(
        journal.len() == 1 && journal[0].result == json!({"ok": "r0"}),
        "journal {journal:?}"
    );
    // An empty commit changes nothing but the update time.
    ok("empty commit", store.commit(&lease, Commit::new()).await)?;
    let again = ok("run", store.run(&id).await)?;
    ensure!(
        again.spent == spent && again.ending == ending,
        "an empty commit changed the run"
    );
    Ok(())
}

async fn commits_are_atomic(store: &dyn RunStore) -> Outcome {
    let (id, lease) = leased(store, "atomic").await?;
    let mut first = Commit::new();
    first.steps.push(step_record(0, "a"));
    ok("commit", store.commit(&lease, first).await)?;
    let mut bad = Commit::new();
    bad.status = Some(RunStatus::Failed);
    bad.events.push(event(EventKind::RunResumed {
        session: 2,
        committed_steps: 1,
    }));
    bad.journal
        .push(entry(&CallScope::Plan, 0, CallState::Done));
    bad.steps.push(step_record(1, "b"));
    bad.steps.push(step_record(0, "a again"));
    match store.commit(&lease, bad).await {
        Err(StoreError::Conflict { .. }) => {}
        other => return Err(format!("a commit writing step 0 twice gave {other:?}")),
    }
    let read = ok("run", store.run(&id).await)?;
    ensure!(
        read.status == RunStatus::Planning,
        "part of a failed commit was written (status)"
    );
    ensure!(
        ok("steps", store.steps(&id).await)?.len() == 1,
        "part of a failed commit was written (step 1)"
    );
    ensure!(
        ok("events", store.events(&id, None).await)?.is_empty(),
        "part of a failed commit was written (events)"
    );
    ensure!(
        ok("journal", store.journal_all(&id).await)?.is_empty(),
        "part of a failed commit was written (journal)"
    );
    Ok(())
}

async fn steps_and_revisions_are_written_once(store: &dyn RunStore) -> Outcome {
    let (id, lease) = leased(store, "once").await?;
    let mut commit = Commit::new();
    commit.plan = Some(plan_revision(0, &["a"]));
    ok("commit revision 0", store.commit(&lease, commit).await)?;
    let mut gap = Commit::new();
    gap.plan = Some(plan_revision(2, &["a", "b"]));
    match store.commit(&lease, gap).await {
        Err(StoreError::Conflict { .. }) => {}
        other => return Err(format!("skipping revision 1 gave {other:?}")),
    }
    let mut again = Commit::new();
    again.plan = Some(plan_revision(0, &["z"]));
    match store.commit(&lease, again).await {
        Err(StoreError::Conflict { .. }) => {}
        other => return Err(format!("rewriting revision 0 gave {other:?}")),
    }
    let mut next = Commit::new();
    next.plan = Some(plan_revision(1, &["a", "b"]));
    ok("commit revision 1", store.commit(&lease, next).await)?;
    let plans = ok("plans", store.plans(&id).await)?;
    ensure!(
        plans.iter().map(|p| p.revision).collect::<Vec<_>>() == [0, 1],
        "revisions {plans:?}"
    );
    ensure!(plans[0].plan == Plan::new(["a"]), "revision 0 changed");
    ensure!(plans[1].source == PlanSource::Human, "the source was lost");
    let mut step = Commit::new();
    step.steps.push(step_record(3, "d"));
    ok("commit step 3", store.commit(&lease, step).await)?;
    let mut twice = Commit::new();
    twice.steps.push(step_record(3, "d"));
    match store.commit(&lease, twice).await {
        Err(StoreError::Conflict { .. }) => {}
        other => return Err(format!("committing step 3 twice gave {other:?}")),
    }
    // Commits without steps in between (a tool call recorded, spending
    // updated) and a new lease do not make a committed step writable.
    let mut spending = Commit::new();
    let mut spent = Spent::default();
    spent.tool_calls = 1;
    spending.spent = Some(spent);
    ok("commit spending", store.commit(&lease, spending).await)?;
    ok("commit nothing", store.commit(&lease, Commit::new()).await)?;
    let mut later = Commit::new();
    later.steps.push(step_record(3, "d again"));
    match store.commit(&lease, later).await {
        Err(StoreError::Conflict { .. }) => {}
        other => {
            return Err(format!(
                "committing step 3 again after a commit without steps gave {other:?}"
            ));
        }
    }
    ok("release", store.release(&lease).await)?;
    let lease = ok(
        "acquire again",
        store
            .acquire(&id, "suite", Duration::from_secs(30), Takeover::IfExpired)
            .await,
    )?;
    let mut resumed = Commit::new();
    resumed.steps.push(step_record(3, "d resumed"));
    match store.commit(&lease, resumed).await {
        Err(StoreError::Conflict { .. }) => {}
        other => {
            return Err(format!(
                "committing step 3 again under a new lease gave {other:?}"
            ));
        }
    }
    let steps = ok("steps", store.steps(&id).await)?;
    ensure!(
        steps.len() == 1 && steps[0].response.response == "d done",
        "step 3 was overwritten: {steps:?}"
    );
    Ok(())
}

async fn journal_upserts_and_truncates_by_scope(store: &dyn RunStore) -> Outcome {
    let (id, lease) = leased(store, "journal").await?;
    let a = CallScope::Step {
        revision: 0,
        index: 2,
    };
    let b = CallScope::Replan { revision: 0 };
    let mut commit = Commit::new();
    for seq in 0..3 {
        commit.journal.push(entry(&a, seq, CallState::Done));
    }
    commit.journal.push(entry(&a, 3, CallState::Started));
    commit.journal.push(entry(&b, 0, CallState::Done));
    ok("commit", store.commit(&lease, commit).await)?;
    let mut finish = Commit::new();
    finish.journal.push(entry(&a, 3, CallState::Done));
    ok("update an entry", store.commit(&lease, finish).await)?;
    let journal = ok("journal", store.journal(&id, &a).await)?;
    ensure!(
        journal.iter().map(|e| e.seq).collect::<Vec<_>>() == [0, 1, 2, 3],
        "seqs {:?}",
        journal.iter().map(|e| e.seq).collect::<Vec<_>>()
    );
    ensure!(journal[3].state == CallState::Done, "the update was lost");
    ensure!(
        journal[1].idempotency_key.as_deref() == Some("k1"),
        "keys were lost"
    );
    let mut truncate = Commit::new();
    truncate.truncate.push((a.clone(), 1));
    truncate.journal.push(entry(&a, 1, CallState::Started));
    ok("truncate", store.commit(&lease, truncate).await)?;
    let journal = ok("journal", store.journal(&id, &a).await)?;
    ensure!(
        journal.iter().map(|e| (e.seq, e.state)).collect::<Vec<_>>()
            == [(0, CallState::Done), (1, CallState::Started)],
        "after truncating from 1 and rewriting 1: {journal:?}"
    );
    let other = ok("journal", store.journal(&id, &b).await)?;
    ensure!(other.len() == 1, "truncating one scope touched another");
    ensure!(
        ok("journal_all", store.journal_all(&id).await)?.len() == 3,
        "journal_all does not hold every scope"
    );
    Ok(())
}

async fn events_are_numbered_in_order(store: &dyn RunStore) -> Outcome {
    let (id, lease) = leased(store, "events").await?;
    let kinds = [
        EventKind::PlanCreated {
            plan: Plan::new(["a"]),
        },
        EventKind::ApprovalRequested { revision: 0 },
        EventKind::ModelCalled {
            step_index: Some(0),
            model: "m".into(),
            usage: TokenUsage::new(5, 6),
            latency_ms: 12.345_678,
            replayed: false,
            call: 2,
            request: Some(pae_core::RequestSummary {
                messages: 3,
                prompt_chars: 120,
                tools: 1,
            }),
            finish_reason: Some(pae_core::FinishReason::ToolCalls),
            prompt: None,
            reply: None,
        },
    ];
    let mut first = Commit::new();
    first.events.extend(kinds[..2].iter().cloned().map(event));
    let last = ok("commit", store.commit(&lease, first).await)?;
    ensure!(last == 2, "last seq {last} after two events");
    let mut second = Commit::new();
    second.events.push(event(kinds[2].clone()));
    let last = ok("commit", store.commit(&lease, second).await)?;
    ensure!(last == 3, "last seq {last} after three events");
    let events = ok("events", store.events(&id, None).await)?;
    ensure!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>() == [1, 2, 3],
        "seqs {:?}",
        events.iter().map(|e| e.seq).collect::<Vec<_>>()
    );
    ensure!(
        events
            .iter()
            .map(|e| e.event.kind.clone())
            .collect::<Vec<_>>()
            == kinds,
        "events did not read back equal"
    );
    ensure!(
        events[0].event.at == Duration::from_millis(7),
        "the time was lost"
    );
    let later = ok("events after 2", store.events(&id, Some(2)).await)?;
    ensure!(later.len() == 1 && later[0].seq == 3, "after 2: {later:?}");
    Ok(())
}

async fn approval_marks_a_revision(store: &dyn RunStore) -> Outcome {
    let (id, lease) = leased(store, "approval").await?;
    let mut commit = Commit::new();
    commit.plan = Some(plan_revision(0, &["a"]));
    commit.status = Some(RunStatus::AwaitingApproval);
    ok("commit", store.commit(&lease, commit).await)?;
    let mut missing = Commit::new();
    missing.approve = Some(5);
    match store.commit(&lease, missing).await {
        Err(StoreError::Conflict { .. }) => {}
        other => return Err(format!("approving a missing revision gave {other:?}")),
    }
    let mut approve = Commit::new();
    approve.approve = Some(0);
    approve.status = Some(RunStatus::Running);
    ok("approve", store.commit(&lease, approve).await)?;
    let plans = ok("plans", store.plans(&id).await)?;
    ensure!(plans[0].approved, "revision 0 is not approved");
    ensure!(
        ok("run", store.run(&id).await)?.status == RunStatus::Running,
        "status not updated"
    );
    Ok(())
}
