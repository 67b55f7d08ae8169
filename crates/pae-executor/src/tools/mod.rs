//! Built-in tools that need no network: [`Calculator`], [`CurrentTime`] and
//! [`FileReader`].

mod calculator;
mod calendar;
mod file_reader;
mod time;

pub use calculator::{Calculator, MAX_EXPRESSION_CHARS};
pub use file_reader::{DEFAULT_MAX_BYTES, FileReader};
pub use time::CurrentTime;
