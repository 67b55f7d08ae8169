//! `pae-bench`: runs one benchmark suite of `pae` and prints its figures.
//!
//! `cargo run --release -p pae-bench -- <suite> [options]`; `list` shows
//! the suites, `<suite> --help` a suite's options.

use std::process::ExitCode;

use clap::Parser;
use pae_bench::BenchError;
use pae_bench::args::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cfg!(debug_assertions) && !matches!(cli.command, Command::List) {
        eprintln!("note: this is a debug build; run with --release for meaningful figures");
    }
    match pae_bench::run(&cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error @ BenchError::Usage(_)) => {
            eprintln!("{error}");
            ExitCode::from(2)
        }
        Err(error) => {
            eprintln!("{error}");
            ExitCode::FAILURE
        }
    }
}
