//! What the suites' options share: the output format and the reading of
//! counts. A leaf module, so the suites and the command line (`args`, which
//! names every suite) do not import each other.

use clap::ValueEnum;

/// How a suite prints its figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A table for people.
    #[default]
    Table,
    /// One JSON object per line.
    Json,
}

/// A count above zero; `_` may group digits (`1_000`).
///
/// # Errors
/// A message for clap when the text is not such a number.
pub fn positive(text: &str) -> Result<usize, String> {
    text.trim()
        .replace('_', "")
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("cannot read {text:?} as a number above zero"))
}
