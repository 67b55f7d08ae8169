//! pae-schema's integration tests, one binary: a module per concern.

mod json_schema;
mod references_no_panic;
mod schema;
