//! pae-core's integration tests, as one test binary (one link instead of
//! one per file); each module was a test file of its own and uses only the
//! public API. `telemetry` installs its `tracing` subscriber with
//! `set_default` (this thread only), so the other modules' runs on other
//! threads do not reach it.

mod durable;
mod parallel;
mod plan_execute;
mod scripted_and_chain;
mod telemetry;
