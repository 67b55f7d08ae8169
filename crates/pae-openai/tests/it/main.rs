//! pae-openai's integration tests, as one test binary (one link instead of
//! one per file); each module was a test file of its own and uses only the
//! public API. `mock_server` and `faults` need nothing outside the process;
//! `real_server`, `conformance` and `end_to_end` need the local test server
//! (see the crate README) and skip with a reason without it. They take
//! turns on that server through `pae_conformance::env::server_turn`, a lock
//! that now spans all three modules, as one process holds them all.
//! Run one module with a filter, e.g. `cargo test -p pae-openai --test it faults::`.

mod conformance;
mod end_to_end;
mod faults;
mod mock_server;
mod real_server;
