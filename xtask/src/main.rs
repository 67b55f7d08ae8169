//! `cargo xtask`: the project's one entry point for lint, test, release,
//! benchmarks and the demo.
//!
//! Run `cargo xtask help` for the commands. Everything a fresh machine needs
//! (system packages, the Python test servers, model files) is installed by
//! the commands that need it, into caches outside the checkout.

mod deps;
mod eval;
mod release;
mod servers;
mod setup;
mod util;

use std::process::{Command, ExitCode};

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
  setup                install system packages, the Python servers and models
  fetch-models         download and verify the model files only (the default
                       model `pae run` uses, and the test models)
  demo [--model 0.5b] [OBJECTIVE]
                       set up, build `pae` (release, with cargo's progress),
                       then run `pae run` on the objective with the default
                       local model (Qwen2.5-Coder-1.5B; --model 0.5b for the
                       smaller, faster one)
  eval [--models 1.5b,0.5b] [--modes ...] [--limit N] [--only ID,...]
                       how often the answer is right: runs `pae run` on the
                       objectives in xtask/eval/ per model and mode, and
                       LangChain's PlanAndExecute on the same model, and
                       prints one table (`cargo xtask eval --help`)
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
            setup::models()?;
            setup::run_model(setup::RUN_MODELS[0].0).map(|_| ())
        }
        "fetch-models" => {
            setup::models()?;
            setup::run_model(setup::RUN_MODELS[0].0).map(|_| ())
        }
        "demo" => demo(rest),
        "eval" => eval::eval(rest),
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
    command.env("PAE_REQUIRE_SERVERS", "1");
    command.env("PAE_MODEL", &models.default);
    command.env("PAE_TINY_MODEL", &models.tiny);
    servers.export(&mut command);
    util::step("cargo test (with servers and models)");
    let result = run(&mut command);
    drop(servers);
    result
}

fn demo(args: &[String]) -> Result<()> {
    let mut model = setup::RUN_MODELS[0].0.to_owned();
    let mut objective = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--model" => {
                model = args
                    .next()
                    .ok_or("--model needs a name (1.5b, 0.5b)")?
                    .clone()
            }
            _ if objective.is_none() => objective = Some(arg.clone()),
            other => return Err(format!("unexpected argument {other:?}").into()),
        }
    }
    let objective =
        objective.unwrap_or_else(|| "What is 17*23 plus the number of days in a leap year?".into());
    setup::system_packages()?;
    let model = setup::run_model(&model)?;
    util::step(
        "building `pae` (release; the first build compiles llama.cpp: several minutes on 2 cores)",
    );
    run(cargo().args(["build", "--release", "--package", "pae-cli"]))?;
    util::step(&format!("pae run {objective:?} --tools calculator"));
    run(Command::new(util::release_binary("pae")?)
        .arg("run")
        .arg(&objective)
        .args(["--tools", "calculator"])
        .env("PAE_MODEL", &model))
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
