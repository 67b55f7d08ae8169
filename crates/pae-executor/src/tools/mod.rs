//! Built-in tools that need no network: [`Calculator`], [`CurrentTime`] and
//! [`FileReader`]; and [`tool_fn`], a tool from an async function with a
//! typed argument struct.

mod calculator;
mod calendar;
mod file_reader;
mod function;
mod table;
mod time;

pub use calculator::{Calculator, MAX_EXPRESSION_CHARS};
pub use file_reader::{DEFAULT_MAX_BYTES, FileReader};
pub use function::{FnTool, tool_fn, tool_fn_with_context};
pub use time::CurrentTime;
