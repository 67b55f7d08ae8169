//! `cargo xtask`: the project's one entry point for lint, test, release,
//! benchmarks and the demo.
//!
//! Run `cargo xtask help` for the commands. Everything a fresh machine needs
//! (system packages, the Python test servers, model files) is installed by
//! the commands that need it, into caches outside the checkout.

mod chaos;
mod cycles;
mod deps;
mod eval;
mod fuzz;
mod postgres;
mod release;
mod servers;
mod setup;
mod spans;
mod util;

use std::process::{Command, ExitCode};

use util::{Result, cargo, run};

const HELP: &str = "\
cargo xtask <command>

Commands:
  lint                 cargo fmt --check, clippy and rustdoc with warnings denied,
                       the dependency-direction check and the module-cycle check
  cycles               the module-cycle check alone: fails when modules of a
                       crate import each other in a cycle (use crate::/super::)
  test [--offline] [CARGO TEST ARGS]
                       the whole test suite: installs what is missing (system
                       packages, Python servers, models), starts the test
                       servers on 127.0.0.1, runs every test and doctest, stops
                       the servers. --offline skips servers and models (their
                       tests then skip with a printed reason). Extra arguments
                       select tests as `cargo test` takes them, e.g.
                       `-p pae-openai --test it -- conformance:: --nocapture`
  ci                   lint, then test
  chaos postgres [...]  kill worker processes and the database under load, then
                       check nothing was lost or done twice (`chaos help`)
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
  bench [SUITE [OPTIONS]]
                       run the benchmarks (suites: overhead, latency, tool-calls,
                       store, llamacpp; default: all); options go to the suite, e.g.
                       `bench overhead --vs-langchain` (installs the pinned
                       LangChain into $PAE_CACHE_DIR/langchain-venv and runs
                       both on the same workload)
  bench spans [--rounds N] [--steps LIST]
                       what tracing spans cost with no subscriber: the
                       overhead suite built with spans compiled out and as
                       shipped, run in alternating rounds, side by side
  fuzz [--seconds N] [--seed S]
                       run the parsers' fuzz loops (pae-planner, pae-executor;
                       `cargo test` runs them for a fixed 3000 inputs each) for
                       N seconds in all (default 120) and print the inputs run
  chaos sqlite [--kills N] [--seed S]
                       kill -9 a durable run at 200+ random moments (half of
                       them just after a step finished or a tool returned),
                       resume it each time, and check nothing was lost or done
                       twice
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
        "cycles" => cycles::check(),
        "test" => test(rest),
        "ci" => {
            lint()?;
            test(rest)
        }
        "setup" => {
            setup::system_packages()?;
            setup::browser()?;
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
        "chaos" => chaos(rest),
        "fuzz" => fuzz::fuzz(rest),
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
    util::step("module cycles");
    cycles::check()?;
    // The workspace build unifies features: a test target that needs a
    // feature it does not declare compiles there and fails for a
    // contributor running `cargo test -p <crate>`. Check each crate alone.
    util::step("each crate's tests on their own (cargo check --tests -p <crate>)");
    for member in util::workspace_members()? {
        run(cargo().args(["check", "--quiet", "--tests", "--package", &member]))?;
    }
    println!("lint: all checks passed");
    Ok(())
}

fn test(args: &[String]) -> Result<()> {
    let offline = args.iter().any(|a| a == "--offline");
    // Anything else selects what to test, as `cargo test` takes it (for
    // example `-p pae-openai --test it -- conformance:: --nocapture`); the
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
    setup::browser()?;
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

fn chaos(args: &[String]) -> Result<()> {
    let Some(store) = args.first() else {
        return Err("chaos needs a store: `cargo xtask chaos sqlite`".into());
    };
    match store.as_str() {
        "sqlite" => {
            util::step("building pae-bench (release)");
            run(cargo().args(["build", "--release", "--quiet", "--package", "pae-bench"]))?;
            util::step(&format!("pae-bench chaos {}", args.join(" ")));
            run(cargo()
                .args([
                    "run",
                    "--release",
                    "--quiet",
                    "--package",
                    "pae-bench",
                    "--",
                    "chaos",
                ])
                .args(args))
        }
        "postgres" => chaos::postgres::chaos(&chaos::Options::parse(&args[1..])?),
        other => Err(format!(
            "unknown chaos store {other:?} (sqlite, postgres)\n{}",
            chaos::HELP
        )
        .into()),
    }
}

fn bench(args: &[String]) -> Result<()> {
    if args.first().is_some_and(|a| a == "spans") {
        return spans::bench(&args[1..]);
    }
    // Without arguments: every suite, one after another.
    let suites: Vec<Vec<String>> = if args.is_empty() {
        ["overhead", "latency", "tool-calls", "store", "llamacpp"]
            .iter()
            .map(|s| vec![(*s).to_owned()])
            .collect()
    } else {
        vec![args.to_vec()]
    };
    // Only the llamacpp suite needs llama.cpp, llama-cpp-python and the
    // models; only --vs-langchain needs LangChain.
    let llamacpp = suites
        .iter()
        .any(|s| s.first().is_some_and(|n| n == "llamacpp"));
    let langchain = suites.iter().flatten().any(|a| a == "--vs-langchain");
    let mut models = None;
    if llamacpp {
        setup::system_packages()?;
        setup::python_env()?;
        models = Some(setup::models()?);
    }
    if langchain {
        setup::langchain_env()?;
    }
    let features: &[&str] = if llamacpp {
        &["--features", "llamacpp"]
    } else {
        &[]
    };
    util::step(&format!(
        "building the benchmarks (release{})",
        if llamacpp {
            ", with the llamacpp suite"
        } else {
            ""
        }
    ));
    run(cargo()
        .args(["build", "--release", "--quiet", "--package", "pae-bench"])
        .args(features))?;
    for suite in suites {
        util::step(&format!("pae-bench {}", suite.join(" ")));
        let mut command = cargo();
        command
            .args(["run", "--release", "--quiet", "--package", "pae-bench"])
            .args(features)
            .arg("--")
            .args(&suite);
        if langchain && !suite.iter().any(|a| a == "--python") {
            command.arg("--python").arg(setup::langchain_python());
        }
        if let Some(models) = &models {
            command
                .env("PAE_MODEL", &models.default)
                .env("PAE_TINY_MODEL", &models.tiny);
        }
        run(&mut command)?;
    }
    Ok(())
}
