//! `cargo xtask`: the project's one entry point for lint, test, release,
//! benchmarks and the demo.
//!
//! Run `cargo xtask help` for the commands. Everything a fresh machine needs
//! (system packages, the Python test servers, model files) is installed by
//! the commands that need it, into caches outside the checkout.

mod chaos;
mod deps;
mod postgres;
mod release;
mod servers;
mod setup;
mod util;

use std::process::ExitCode;

use util::{Result, cargo, run};

const HELP: &str = "\
cargo xtask <command>

Commands:
  lint                 cargo fmt --check, clippy and rustdoc with warnings denied,
                       and the dependency-direction check
  test [--offline] [CARGO TEST ARGS]
                       the whole test suite: installs what is missing (system
                       packages, Python servers, models), starts the test
                       servers on 127.0.0.1, runs every test and doctest, stops
                       the servers. --offline skips servers and models (their
                       tests then skip with a printed reason). Extra arguments
                       select tests as `cargo test` takes them, e.g.
                       `-p pae-openai --test conformance -- --nocapture`
  ci                   lint, then test
  chaos postgres [...]  kill worker processes and the database under load, then
                       check nothing was lost or done twice (`chaos help`)
  setup                install system packages, the Python servers and models
  fetch-models         download and verify the model files only
  demo [OBJECTIVE]     set up, then run `pae run` on the objective with the
                       default local model
  bench [SUITE...]     run the benchmarks (suites: overhead, latency, tool-calls,
                       llamacpp; default: all)
  release VERSION [--execute]
                       refuse a dirty tree, bump the lockstep version, roll the
                       changelog, and run `cargo publish --workspace --dry-run`
                       (with --execute: commit and tag; never publishes)
  help                 this text

Environment:
  PAE_CACHE_DIR        cache root for models, wheels and the venv
                       (default ~/.cache/pae)
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match dispatch(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(args: &[String]) -> Result<()> {
    let root = util::workspace_root()?;
    std::env::set_current_dir(&root)?;
    let command = args.first().map(String::as_str).unwrap_or("help");
    let rest = &args[args.len().min(1)..];
    match command {
        "lint" => lint(),
        "test" => test(rest),
        "ci" => {
            lint()?;
            test(rest)
        }
        "setup" => {
            setup::system_packages()?;
            setup::python_env()?;
            setup::models().map(|_| ())
        }
        "fetch-models" => setup::models().map(|_| ()),
        "chaos" => chaos(rest),
        "demo" => demo(rest),
        "bench" => bench(rest),
        "release" => release::release(rest),
        "help" | "--help" | "-h" => {
            print!("{HELP}");
            Ok(())
        }
        other => Err(format!("unknown command {other:?}\n\n{HELP}").into()),
    }
}

fn lint() -> Result<()> {
    util::step("cargo fmt --check");
    run(cargo().args(["fmt", "--all", "--check"]))?;
    util::step("cargo clippy (warnings denied)");
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--",
        "-D",
        "warnings",
    ]))?;
    util::step("cargo doc (warnings denied)");
    run(cargo()
        .args(["doc", "--workspace", "--no-deps", "--all-features"])
        .env("RUSTDOCFLAGS", "-D warnings"))?;
    util::step("dependency direction");
    deps::check()?;
    println!("lint: all checks passed");
    Ok(())
}

fn test(args: &[String]) -> Result<()> {
    let offline = args.iter().any(|a| a == "--offline");
    // Anything else selects what to test, as `cargo test` takes it (for
    // example `-p pae-openai --test conformance -- --nocapture`); the
    // default is the whole workspace.
    let selection: Vec<&String> = args.iter().filter(|a| *a != "--offline").collect();
    let build_args: Vec<&str> = if selection.is_empty() {
        vec!["--workspace"]
    } else {
        selection
            .iter()
            .take_while(|a| a.as_str() != "--")
            .map(|a| a.as_str())
            .collect()
    };
    let mut command = cargo();
    command.args(["test", "--all-features", "--no-fail-fast"]);
    if selection.is_empty() {
        command.arg("--workspace");
    } else {
        command.args(&selection);
    }
    if offline {
        util::step("cargo test (offline: no servers, no models)");
        return run(&mut command);
    }
    setup::system_packages()?;
    setup::python_env()?;
    let models = setup::models()?;
    // Build everything before starting the servers, so the servers do not
    // compete with the compiler for the two cores.
    util::step("building the test suite");
    run(cargo()
        .args(["test", "--all-features", "--no-run"])
        .args(&build_args))?;
    let servers = servers::start(&models)?;
    let database = postgres::Cluster::start()?;
    command.env(postgres::URL_VAR, database.url());
    command.env("PAE_REQUIRE_SERVERS", "1");
    command.env("PAE_MODEL", &models.default);
    command.env("PAE_TINY_MODEL", &models.tiny);
    servers.export(&mut command);
    util::step("cargo test (with servers and models)");
    let result = run(&mut command);
    drop(servers);
    drop(database);
    result
}

fn chaos(args: &[String]) -> Result<()> {
    match args.first().map(String::as_str) {
        Some("postgres") => chaos::postgres::chaos(&chaos::Options::parse(&args[1..])?),
        _ => {
            println!("{}", chaos::HELP);
            Ok(())
        }
    }
}

fn demo(args: &[String]) -> Result<()> {
    let objective = args
        .first()
        .cloned()
        .unwrap_or_else(|| "What is 17*23 plus the number of days in a leap year?".into());
    setup::system_packages()?;
    let models = setup::models()?;
    util::step("building and running `pae run`");
    run(cargo()
        .args([
            "run",
            "--release",
            "--quiet",
            "--package",
            "pae-cli",
            "--",
            "run",
        ])
        .arg(&objective)
        .args(["--tools", "calculator"])
        .env("PAE_MODEL", &models.default))
}

fn bench(args: &[String]) -> Result<()> {
    setup::system_packages()?;
    setup::python_env()?;
    let models = setup::models()?;
    // Without arguments: every suite, one after another.
    let suites: Vec<Vec<String>> = if args.is_empty() {
        ["overhead", "latency", "tool-calls", "llamacpp"]
            .iter()
            .map(|s| vec![(*s).to_owned()])
            .collect()
    } else {
        vec![args.to_vec()]
    };
    util::step("building the benchmarks (release, with the llamacpp suite)");
    run(cargo().args([
        "build",
        "--release",
        "--quiet",
        "--package",
        "pae-bench",
        "--features",
        "llamacpp",
    ]))?;
    for suite in suites {
        util::step(&format!("pae-bench {}", suite.join(" ")));
        run(cargo()
            .args([
                "run",
                "--release",
                "--quiet",
                "--package",
                "pae-bench",
                "--features",
                "llamacpp",
                "--",
            ])
            .args(&suite)
            .env("PAE_MODEL", &models.default)
            .env("PAE_TINY_MODEL", &models.tiny))?;
    }
    Ok(())
}
