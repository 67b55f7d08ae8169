//! [`FaultReport`]: what a [`FaultSuite`](super::FaultSuite)(super::FaultSuite) run found,
//! one [`ScenarioResult`] per [`Scenario`], printable as a table.

use std::fmt;
use std::time::Duration;

use super::Scenario;
use crate::Outcome;
use crate::report::{Row, write_table};

/// One scenario's result.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ScenarioResult {
    /// The scenario.
    pub scenario: Scenario,
    /// Passed, failed with the evidence, or skipped with the reason.
    pub outcome: Outcome,
    /// What was observed when it passed (attempts, error, time).
    pub detail: String,
    /// Wall-clock time the scenario took.
    pub elapsed: Duration,
}

/// What a [`FaultSuite`](super::FaultSuite) run found: one [`ScenarioResult`] per
/// [`Scenario`], in the order of [`Scenario::ALL`]. `Display` prints a
/// table.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FaultReport {
    /// The model's [`model_name`](pae_core::ChatModel::model_name).
    pub model: String,
    /// One result per scenario.
    pub results: Vec<ScenarioResult>,
    /// Wall-clock time of the whole run.
    pub elapsed: Duration,
}

impl FaultReport {
    /// The outcome of `scenario`.
    pub fn outcome(&self, scenario: Scenario) -> Option<&Outcome> {
        self.results
            .iter()
            .find(|result| result.scenario == scenario)
            .map(|result| &result.outcome)
    }

    /// The scenarios that failed.
    pub fn failed(&self) -> Vec<Scenario> {
        self.results
            .iter()
            .filter(|result| result.outcome.is_failed())
            .map(|result| result.scenario)
            .collect()
    }

    /// The scenarios that passed.
    pub fn passed(&self) -> Vec<Scenario> {
        self.results
            .iter()
            .filter(|result| result.outcome.is_passed())
            .map(|result| result.scenario)
            .collect()
    }

    /// Prints the table to stdout and panics, with the table in the message,
    /// when a scenario failed. Skipped scenarios do not fail it.
    ///
    /// # Panics
    /// When at least one scenario failed.
    #[track_caller]
    pub fn assert_all_passed(&self) {
        println!("{self}");
        let failed = self.failed();
        if !failed.is_empty() {
            let names: Vec<&str> = failed.iter().map(|s| s.name()).collect();
            panic!(
                "{} fault scenario(s) failed for `{}`: {}\n{self}",
                failed.len(),
                self.model,
                names.join(", ")
            );
        }
    }
}

impl fmt::Display for FaultReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "fault scenarios for `{}`:", self.model)?;
        let rows: Vec<Row<'_>> = self
            .results
            .iter()
            .map(|r| Row {
                name: r.scenario.name(),
                outcome: &r.outcome,
                detail: &r.detail,
                elapsed: r.elapsed,
            })
            .collect();
        write_table(f, &rows, 6, self.elapsed)
    }
}
