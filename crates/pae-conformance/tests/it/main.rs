//! pae-conformance's integration tests, one binary: a module per concern.

mod broken_adapters;
mod scripted;
