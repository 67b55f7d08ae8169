//! `pae submit`: store a run with its settings and queue it for the
//! workers of a PostgreSQL store, in one transaction.

use pae_core::RunId;
use pae_core::store::{ApprovalPolicy, RunRecord};
use pae_worker::Queue;

use crate::agent;
use crate::cli::SubmitArgs;
use crate::exit::{Failure, FailureKind};
use crate::provider;
use crate::runstore;
use crate::settings::StoredSettings;
use crate::term;

/// `pae submit`: prints the run's id as the last line on stdout.
pub(crate) async fn submit(args: SubmitArgs) -> Result<(), Failure> {
    let location = runstore::location(&args.store);
    if !runstore::is_postgres(&location) {
        return Err(Failure::new(
            FailureKind::Usage,
            "pae submit needs a PostgreSQL store served by `pae worker` (--store postgres://… \
             or PAE_STORE); `pae run` runs an objective here and now",
        ));
    }
    // The same checks `pae run` makes before it starts.
    provider::check_flags(&args.model)?;
    agent::tools_for(&args.agent)?;
    let budget = agent::budget_for(&args.budget)?;
    let store = runstore::open_postgres(&location).await?;
    let settings = StoredSettings::new(&args.model, &args.agent);
    let mut record = RunRecord::new(RunId::generate(), args.objective.clone());
    record.inputs.insert("input".into(), args.objective.clone());
    record.inputs.insert("objective".into(), args.objective);
    record.settings = serde_json::to_value(&settings).unwrap_or_default();
    record.budget = budget;
    record.approval = if args.approve {
        ApprovalPolicy::BeforeExecution
    } else {
        ApprovalPolicy::Never
    };
    pae_worker::submit(&store, &Queue::default(), &record)
        .await
        .map_err(|err| Failure::from_error(&err, "cannot submit the run"))?;
    term::err(&format!(
        "run {} queued; follow it with `pae show {}`",
        record.id, record.id
    ));
    term::out(record.id.as_str());
    Ok(())
}
