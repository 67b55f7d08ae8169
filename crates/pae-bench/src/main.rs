//! `pae-bench`: runs one benchmark suite of `pae` and prints its figures.
//!
//! `cargo run --release -p pae-bench -- <suite> [options]`; `list` shows
//! the suites, `<suite> --help` a suite's options.

use std::process::ExitCode;

use pae_bench::{BenchError, SUITES, suite};

fn usage() -> String {
    let mut text =
        String::from("usage: pae-bench <suite> [options]\n       pae-bench list\n\nsuites:\n");
    for s in SUITES {
        text.push_str(&format!("  {:<10} {}\n", s.name, s.about));
    }
    text.push_str("\n`pae-bench <suite> --help` shows a suite's options. Build with --release.");
    text
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(name) = args.first() else {
        eprintln!("{}", usage());
        return ExitCode::from(2);
    };
    match name.as_str() {
        "list" => {
            for s in SUITES {
                println!("{}\t{}", s.name, s.about);
            }
            return ExitCode::SUCCESS;
        }
        "-h" | "--help" | "help" => {
            println!("{}", usage());
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    let Some(found) = suite(name) else {
        eprintln!("unknown suite {name:?}\n\n{}", usage());
        return ExitCode::from(2);
    };
    let rest = &args[1..];
    if rest.iter().any(|a| a == "-h" || a == "--help") {
        println!("{}", found.usage);
        return ExitCode::SUCCESS;
    }
    if cfg!(debug_assertions) {
        eprintln!("note: this is a debug build; run with --release for meaningful figures");
    }
    match (found.run)(rest) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error @ BenchError::Usage(_)) => {
            eprintln!("{error}\n\n{}", found.usage);
            ExitCode::from(2)
        }
        Err(error) => {
            eprintln!("{error}");
            ExitCode::FAILURE
        }
    }
}
