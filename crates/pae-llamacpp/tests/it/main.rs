//! pae-llamacpp's integration tests, as one test binary (one link instead
//! of one per file, and llama.cpp is the largest thing linked); each module
//! was a test file of its own and uses only the public API. They need the
//! tiny test model (`PAE_TINY_MODEL`) and skip with a reason without it.
//! Each module loads its own copy of the model, as it did in its own
//! process; llama.cpp's backend is initialised once per process by the
//! crate, so the copies share it.

mod conformance;
mod special_tokens;
mod tiny_model;
