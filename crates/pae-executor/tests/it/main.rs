//! pae-executor's integration tests, as one test binary (one link instead
//! of one per file); each module was a test file of its own and uses only
//! the public API.

mod action_parser;
mod actions;
mod agent_loop;
mod file_reader_race;
mod fuzz;
mod tool_exclusivity;
mod tool_fn;
mod tools;
