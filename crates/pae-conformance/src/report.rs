//! The report of a conformance run: one result per check, a printable table
//! and assertions for tests.

use std::fmt;
use std::time::Duration;

use pae_core::Capabilities;

use crate::{Check, CheckResult, Outcome};

/// What a conformance run found: one [`CheckResult`] per [`Check`], in the
/// order of [`Check::ALL`]. `Display` prints it as a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The model's [`model_name`](pae_core::ChatModel::model_name).
    pub model: String,
    /// The capabilities the model claimed.
    pub capabilities: Capabilities,
    /// One result per check.
    pub results: Vec<CheckResult>,
    /// Wall-clock time of the whole run.
    pub elapsed: Duration,
}

impl Report {
    /// The result of `check`.
    pub fn result(&self, check: Check) -> Option<&CheckResult> {
        self.results.iter().find(|result| result.check == check)
    }

    /// The outcome of `check`.
    pub fn outcome(&self, check: Check) -> Option<&Outcome> {
        self.result(check).map(|result| &result.outcome)
    }

    /// The checks that passed.
    pub fn passed(&self) -> Vec<Check> {
        self.checks_where(Outcome::is_passed)
    }

    /// The checks that failed.
    pub fn failed(&self) -> Vec<Check> {
        self.checks_where(Outcome::is_failed)
    }

    /// The checks that were skipped.
    pub fn skipped(&self) -> Vec<Check> {
        self.checks_where(Outcome::is_skipped)
    }

    /// Whether no check failed (skipped checks are fine).
    pub fn all_passed(&self) -> bool {
        self.results
            .iter()
            .all(|result| !result.outcome.is_failed())
    }

    /// Prints the table to stdout and panics, with the table in the message,
    /// when a check failed. Skipped checks do not fail the assertion.
    ///
    /// # Panics
    /// When at least one check failed.
    #[track_caller]
    pub fn assert_all_passed(&self) {
        println!("{self}");
        let failed = self.failed();
        if !failed.is_empty() {
            panic!(
                "{} conformance check(s) failed for `{}`: {}\n{self}",
                failed.len(),
                self.model,
                names(&failed)
            );
        }
    }

    /// Prints the table to stdout and panics when one of `checks` did not
    /// pass (failed or skipped), for tests that must show a capability
    /// works.
    ///
    /// # Panics
    /// When one of `checks` did not pass.
    #[track_caller]
    pub fn assert_passed(&self, checks: &[Check]) {
        println!("{self}");
        let missing: Vec<Check> = checks
            .iter()
            .copied()
            .filter(|check| !self.outcome(*check).is_some_and(Outcome::is_passed))
            .collect();
        if !missing.is_empty() {
            panic!(
                "conformance check(s) did not pass for `{}`: {}\n{self}",
                self.model,
                names(&missing)
            );
        }
    }

    fn checks_where(&self, keep: impl Fn(&Outcome) -> bool) -> Vec<Check> {
        self.results
            .iter()
            .filter(|result| keep(&result.outcome))
            .map(|result| result.check)
            .collect()
    }
}

fn names(checks: &[Check]) -> String {
    checks
        .iter()
        .map(|check| check.name())
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let claimed: Vec<&str> = [
            (self.capabilities.native_tools, "native_tools"),
            (self.capabilities.json_schema, "json_schema"),
            (self.capabilities.streaming, "streaming"),
        ]
        .into_iter()
        .filter_map(|(claimed, name)| claimed.then_some(name))
        .collect();
        let claimed = if claimed.is_empty() {
            String::from("no capabilities")
        } else {
            claimed.join(", ")
        };
        writeln!(f, "conformance of `{}` (claims {claimed}):", self.model)?;
        let rows: Vec<Row<'_>> = self
            .results
            .iter()
            .map(|r| Row {
                name: r.check.name(),
                outcome: &r.outcome,
                detail: &r.detail,
                elapsed: r.elapsed,
            })
            .collect();
        write_table(f, &rows, 7, self.elapsed)
    }
}

/// One line of a report: a check or scenario and how it went.
pub(crate) struct Row<'a> {
    pub(crate) name: &'a str,
    pub(crate) outcome: &'a Outcome,
    pub(crate) detail: &'a str,
    pub(crate) elapsed: Duration,
}

/// Writes one line per row (label, name padded to the longest, time in a
/// column `time_width` wide, detail or reason), then the counts and the
/// total time: the layout the conformance and fault reports share.
pub(crate) fn write_table(
    f: &mut fmt::Formatter<'_>,
    rows: &[Row<'_>],
    time_width: usize,
    elapsed: Duration,
) -> fmt::Result {
    let width = rows.iter().map(|row| row.name.len()).max().unwrap_or(0);
    for row in rows {
        let text = match row.outcome {
            Outcome::Passed => row.detail,
            Outcome::Failed { reason } | Outcome::Skipped { reason } => reason.as_str(),
        };
        writeln!(
            f,
            "  {} {:<width$} {:>time_width$.2}s  {text}",
            row.outcome.label(),
            row.name,
            row.elapsed.as_secs_f64(),
        )?;
    }
    let count = |keep: fn(&Outcome) -> bool| rows.iter().filter(|row| keep(row.outcome)).count();
    write!(
        f,
        "{} passed, {} failed, {} skipped in {:.2}s",
        count(Outcome::is_passed),
        count(Outcome::is_failed),
        count(Outcome::is_skipped),
        elapsed.as_secs_f64()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(outcomes: Vec<(Check, Outcome)>) -> Report {
        Report {
            model: "m".into(),
            capabilities: Capabilities::default(),
            results: outcomes
                .into_iter()
                .map(|(check, outcome)| CheckResult {
                    check,
                    outcome,
                    detail: "seen".into(),
                    elapsed: Duration::from_millis(5),
                })
                .collect(),
            elapsed: Duration::from_millis(10),
        }
    }

    #[test]
    fn table_lists_every_check_with_its_label_and_reason() {
        let report = report(vec![
            (Check::PlainReply, Outcome::Passed),
            (
                Check::Usage,
                Outcome::Failed {
                    reason: "no usage".into(),
                },
            ),
            (
                Check::JsonSchema,
                Outcome::Skipped {
                    reason: "not claimed".into(),
                },
            ),
        ]);
        let table = report.to_string();
        assert!(table.starts_with("conformance of `m` (claims no capabilities):"));
        assert!(table.contains("PASS plain_reply    0.01s  seen"), "{table}");
        assert!(
            table.contains("FAIL usage          0.01s  no usage"),
            "{table}"
        );
        assert!(
            table.contains("SKIP json_schema    0.01s  not claimed"),
            "{table}"
        );
        assert!(table.ends_with("1 passed, 1 failed, 1 skipped in 0.01s"));
        assert_eq!(report.failed(), [Check::Usage]);
        assert_eq!(report.skipped(), [Check::JsonSchema]);
        assert!(!report.all_passed());
    }

    #[test]
    #[should_panic(expected = "1 conformance check(s) failed for `m`: usage")]
    fn assert_all_passed_panics_on_a_failure() {
        report(vec![
            (Check::PlainReply, Outcome::Passed),
            (
                Check::Usage,
                Outcome::Failed {
                    reason: "no usage".into(),
                },
            ),
        ])
        .assert_all_passed();
    }

    #[test]
    #[should_panic(expected = "did not pass for `m`: json_schema")]
    fn assert_passed_treats_skipped_as_not_passed() {
        report(vec![(
            Check::JsonSchema,
            Outcome::Skipped {
                reason: "not claimed".into(),
            },
        )])
        .assert_passed(&[Check::JsonSchema]);
    }

    #[test]
    fn skipped_checks_do_not_fail_the_run() {
        let report = report(vec![
            (Check::PlainReply, Outcome::Passed),
            (
                Check::ToolCall,
                Outcome::Skipped {
                    reason: "not claimed".into(),
                },
            ),
        ]);
        report.assert_all_passed();
        report.assert_passed(&[Check::PlainReply]);
    }
}
