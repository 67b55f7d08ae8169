//! The integration tests of pae-planner, one binary (one link) with a
//! module per area; they use only the public API.

mod fuzz;
mod model_outputs;
mod no_panic;
mod parser_table;
mod planner;
mod replanner;
