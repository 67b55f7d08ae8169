//! Tests of the `pae` binary: error cases with their messages and exit
//! codes, a scripted run checked through its `--json` transcript, and a
//! run with the default local model (`PAE_MODEL`; skipped with a reason
//! when unset, failing when `PAE_REQUIRE_SERVERS=1`); the PostgreSQL
//! commands are in `cli/postgres.rs`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use serde_json::Value;

const OBJECTIVE: &str = "What is 17*23 plus the number of days in a leap year?";

#[path = "cli/postgres.rs"]
mod postgres;

/// A scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pae-cli-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// `pae` with an environment that cannot reach anything by accident.
fn pae(cache: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pae"));
    cmd.env_remove("PAE_MODEL")
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .env_remove("OLLAMA_HOST")
        .env_remove("PAE_STORE")
        .env("PAE_DATA_DIR", cache.join("data"))
        .env("PAE_CACHE_DIR", cache);
    cmd
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("pae runs");
    (
        status.code().expect("an exit code"),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

#[test]
fn help_lists_the_exit_codes() {
    let dir = scratch("help");
    let (code, stdout, _) = run(pae(&dir).args(["run", "--help"]));
    assert_eq!(code, 0);
    for line in [
        "3  the local model file is missing",
        "4  the model server cannot be reached",
        "5  the API key is missing",
        "2  bad flags",
    ] {
        assert!(stdout.contains(line), "{line:?} not in:\n{stdout}");
    }
}

#[test]
fn missing_default_model_exits_3_with_a_hint() {
    let dir = scratch("missing-default");
    let (code, stdout, stderr) = run(pae(&dir).args(["run", OBJECTIVE]));
    assert_eq!(code, 3, "{stderr}");
    assert!(stdout.is_empty());
    assert!(
        stderr.contains("qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"),
        "{stderr}"
    );
    assert!(stderr.contains("not found"), "{stderr}");
    assert!(stderr.contains("cargo xtask fetch-models"), "{stderr}");
}

#[test]
fn missing_model_given_by_flag_or_env_exits_3() {
    let dir = scratch("missing-flag");
    let missing = dir.join("nope.gguf");
    let (code, _, stderr) = run(pae(&dir).args(["run", OBJECTIVE, "--model"]).arg(&missing));
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("nope.gguf not found"), "{stderr}");
    let (code, _, stderr) = run(pae(&dir)
        .env("PAE_MODEL", &missing)
        .args(["run", OBJECTIVE]));
    assert_eq!(code, 3, "{stderr}");
}

#[test]
fn a_file_that_is_not_gguf_exits_3() {
    let dir = scratch("not-gguf");
    let file = dir.join("model.gguf");
    std::fs::write(&file, "not a model").unwrap();
    let (code, _, stderr) = run(pae(&dir).args(["run", OBJECTIVE, "--model"]).arg(&file));
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("not a GGUF model file"), "{stderr}");
}

#[test]
fn unreachable_server_exits_4() {
    let dir = scratch("unreachable");
    // A port that was just free: nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/v1");
    let started = Instant::now();
    let (code, stdout, stderr) =
        run(pae(&dir).args(["run", OBJECTIVE, "--provider", "openai", "--base-url", &url]));
    assert_eq!(code, 4, "{stderr}");
    assert!(stdout.is_empty());
    assert!(stderr.contains("connection"), "{stderr}");
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");

    let (code, stdout, stderr) = run(pae(&dir).args([
        "run",
        OBJECTIVE,
        "--provider",
        "ollama",
        "--base-url",
        &format!("http://127.0.0.1:{port}"),
    ]));
    assert_eq!(code, 4, "{stderr}");
    assert!(stdout.is_empty());
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
    assert!(started.elapsed().as_secs() < 60);
}

#[test]
fn missing_api_key_exits_5() {
    let dir = scratch("api-key");
    let (code, _, stderr) = run(pae(&dir).args(["run", OBJECTIVE, "--provider", "openai"]));
    assert_eq!(code, 5, "{stderr}");
    assert!(stderr.contains("OPENAI_API_KEY is not set"), "{stderr}");
}

#[test]
fn rejected_api_key_exits_5() {
    let dir = scratch("api-key-rejected");
    let script = dir.join("script.json");
    std::fs::write(&script, r#"[{"error": "invalid api key", "status": 401}]"#).unwrap();
    let (code, _, stderr) = run(pae(&dir)
        .args(["run", OBJECTIVE, "--provider", "scripted", "--script"])
        .arg(&script));
    assert_eq!(code, 5, "{stderr}");
    assert!(stderr.contains("HTTP 401"), "{stderr}");
}

#[test]
fn bad_flags_exit_2() {
    let dir = scratch("flags");
    let cases: &[(&[&str], &str)] = &[
        (&["run"], "OBJECTIVE"),
        (&["run", "x", "--tools", "hammer"], "hammer"),
        (&["run", "x", "--history", "sometimes"], "last:K"),
        (&["run", "x", "--replan", "always"], "always"),
        (&["run", "x", "--max-steps", "0"], "max-steps"),
        (&["run", "x", "--tools", "files"], "--files-root"),
        (
            &[
                "run",
                "x",
                "--provider",
                "openai",
                "--base-url",
                "localhost:1",
            ],
            "not an http",
        ),
        (&["fly"], "fly"),
    ];
    for (args, needle) in cases {
        let (code, stdout, stderr) = run(pae(&dir).args(*args));
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stdout.is_empty(), "{args:?}");
        assert!(
            stderr.contains(needle),
            "{args:?}: {needle:?} not in {stderr}"
        );
    }
}

#[test]
fn generic_failures_exit_1() {
    let dir = scratch("generic");
    let script = dir.join("script.json");
    // The planner's only reply has no plan in it.
    std::fs::write(&script, r#"["I cannot help with that."]"#).unwrap();
    let (code, _, stderr) = run(pae(&dir)
        .args([
            "run",
            OBJECTIVE,
            "--provider",
            "scripted",
            "--mode",
            "plan-and-execute",
            "--planner",
            "text",
            "--script",
        ])
        .arg(&script));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("error: the run failed"), "{stderr}");
}

#[test]
fn scripted_run_writes_a_complete_transcript() {
    let dir = scratch("scripted");
    let script = dir.join("script.json");
    std::fs::write(
        &script,
        r#"[
            "Plan:\n1. Compute 17*23 with the calculator.\n2. Add 366 and give the answer.\n<END_OF_PLAN>",
            {"tool_calls": [{"name": "calculator", "arguments": {"expression": "17*23"}}]},
            "17*23 is 391.",
            {"tool_calls": [{"name": "calculator", "arguments": {"expression": "391+366"}}]},
            "391 + 366 is 757.",
            "The answer is 757."
        ]"#,
    )
    .unwrap();
    let transcript = dir.join("run.json");
    let (code, stdout, stderr) = run(pae(&dir)
        .args(["run", OBJECTIVE, "--provider", "scripted", "--script"])
        .arg(&script)
        .args(["--mode", "plan-and-execute", "--json"])
        .arg(&transcript));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, "The answer is 757.\n");
    // Progress: the plan (closed by the answer step), each step starting
    // and finishing, each tool call.
    for needle in [
        "Plan (3 steps):",
        "1. Compute 17*23 with the calculator.",
        "▶ step 1/3",
        "→ calculator {\"expression\":\"17*23\"}",
        "← calculator: 391",
        "✔ step 1/3 done in",
        "✔ step 2/3 done in",
        "✔ step 3/3 done in",
    ] {
        assert!(stderr.contains(needle), "{needle:?} not in:\n{stderr}");
    }

    let json: Value = serde_json::from_str(&std::fs::read_to_string(&transcript).unwrap()).unwrap();
    assert_eq!(json["format"], "pae-transcript/2");
    assert_eq!(json["objective"], OBJECTIVE);
    assert_eq!(json["model"]["provider"], "scripted");
    assert_eq!(json["settings"]["planner"], "structured");
    assert_eq!(
        json["settings"]["tools"],
        serde_json::json!(["calculator", "time"])
    );
    assert_eq!(json["plans"].as_array().unwrap().len(), 1);
    assert_eq!(
        json["plans"][0]["steps"][1]["value"],
        "Add 366 and give the answer."
    );
    let steps = json["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 3);
    let call = &steps[0]["tool_calls"][0];
    assert_eq!(call["tool"], "calculator");
    assert_eq!(call["input"]["expression"], "17*23");
    assert_eq!(call["observation"], "391");
    assert_eq!(steps[1]["tool_calls"][0]["observation"], "757");
    assert_eq!(steps[0]["response"], "17*23 is 391.");
    assert_eq!(steps[0]["status"], "completed");
    assert_eq!(steps[0]["step_index"], 0);
    for step in steps {
        assert!(step["elapsed_ms"].as_f64().unwrap() >= 0.0);
        assert!(step["started_ms"].as_f64().is_some());
    }
    assert_eq!(json["answer"], "The answer is 757.");
    assert_eq!(json["outcome"]["kind"], "completed");
    assert!(json["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    assert!(json["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    assert_eq!(
        json["usage"]["total_tokens"].as_u64().unwrap(),
        json["usage"]["prompt_tokens"].as_u64().unwrap()
            + json["usage"]["completion_tokens"].as_u64().unwrap()
    );
    assert!(json["timings"]["run_ms"].as_f64().unwrap() > 0.0);
    assert!(
        json["timings"]["total_ms"].as_f64().unwrap()
            >= json["timings"]["run_ms"].as_f64().unwrap()
    );
    assert!(json.get("error").is_none());
    let kinds: Vec<&str> = json["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    // Planning comes first: the structured planner's fallback to text (the
    // scripted model enforces no schema), its model call, the plan.
    assert_eq!(kinds[..3], ["repaired", "model_called", "plan_created"]);
    assert_eq!(kinds.last(), Some(&"run_finished"));
}

#[test]
fn failed_runs_still_write_a_transcript() {
    let dir = scratch("scripted-fail");
    let script = dir.join("script.json");
    std::fs::write(
        &script,
        r#"["Plan:\n1. Compute it.\n<END_OF_PLAN>", {"error": "connection"}]"#,
    )
    .unwrap();
    let transcript = dir.join("run.json");
    let (code, _, stderr) = run(pae(&dir)
        .args(["run", OBJECTIVE, "--provider", "scripted", "--script"])
        .arg(&script)
        .args(["--mode", "plan-and-execute", "--json"])
        .arg(&transcript));
    assert_eq!(code, 4, "{stderr}");
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&transcript).unwrap()).unwrap();
    assert_eq!(json["error"]["exit_code"], 4);
    assert_eq!(json["error"]["kind"], "unreachable");
    assert_eq!(json["plans"].as_array().unwrap().len(), 1);
    assert!(json.get("answer").is_none());
}

#[test]
fn default_local_model_plans_and_answers() {
    let Some(model) = pae_conformance::env::require_env("PAE_MODEL") else {
        return;
    };
    let dir = scratch("local");
    let transcript = dir.join("run.json");
    let started = Instant::now();
    let (code, stdout, stderr) = run(pae(&dir)
        .env("PAE_MODEL", &model)
        .args(["run", OBJECTIVE, "--json"])
        .arg(&transcript));
    let took = started.elapsed();
    eprintln!("--- stderr ---\n{stderr}--- stdout ---\n{stdout}--- {took:?}");
    // A small model may end without a real answer: that is exit 9 with the
    // reasons in the transcript, never a success.
    assert!(code == 0 || code == 9, "exit {code}: {stderr}");
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&transcript).unwrap()).unwrap();
    if code == 0 {
        assert!(!stdout.trim().is_empty());
        assert!(json.get("answer_problems").is_none());
    } else {
        assert!(!json["answer_problems"].as_array().unwrap().is_empty());
    }
    let plan = &json["plans"][0]["steps"];
    assert!(!plan.as_array().unwrap().is_empty(), "no parsed plan");
    assert!(
        plan.as_array()
            .unwrap()
            .iter()
            .all(|s| s["value"].is_string())
    );
    assert_eq!(json["answer"].as_str().unwrap().trim(), stdout.trim());
    assert!(json["usage"]["completion_tokens"].as_u64().unwrap() > 0);
}

#[test]
fn fan_out_plan_runs_its_independent_steps_at_the_same_time() {
    let dir = scratch("fan-out");
    let script = dir.join("script.json");
    let mut plan = String::from("Plan:\n");
    for i in 1..=8 {
        plan.push_str(&format!("{i}. Look up fact number {i}.\n"));
    }
    plan.push_str("9. Combine #E1, #E2, #E3, #E4, #E5, #E6, #E7 and #E8.\n<END_OF_PLAN>");
    let answer = |text: &str| {
        format!(
            "Action:\n```json\n{}\n```",
            serde_json::json!({"action": "Final Answer", "action_input": text})
        )
    };
    let mut replies = vec![Value::String(plan)];
    replies.extend((0..8).map(|_| Value::String(answer("a fact"))));
    replies.push(Value::String(answer("eight facts")));
    // The answer step, which sees every result.
    replies.push(Value::String("eight facts, combined".into()));
    std::fs::write(&script, serde_json::to_string(&replies).unwrap()).unwrap();
    let transcript = dir.join("run.json");
    let started = Instant::now();
    let (code, stdout, stderr) = run(pae(&dir)
        .args([
            "run",
            "Gather eight facts",
            "--provider",
            "scripted",
            "--script",
        ])
        .arg(&script)
        .args([
            "--script-delay-ms",
            "300",
            "--max-concurrency",
            "8",
            "--mode",
            "plan-and-execute",
            "--json",
        ])
        .arg(&transcript));
    let wall = started.elapsed();
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, "eight facts, combined\n");
    eprintln!("{stderr}");

    // The progress display: all eight look-ups start before any finishes,
    // each takes one model latency, and the combining step comes last.
    let lines: Vec<&str> = stderr.lines().collect();
    let first_done = lines
        .iter()
        .position(|l| l.contains("✔ step"))
        .expect("a finished step");
    let started_before: Vec<&&str> = lines[..first_done]
        .iter()
        .filter(|l| l.contains("▶ step"))
        .collect();
    assert_eq!(started_before.len(), 8, "{stderr}");
    for i in 1..=8 {
        let done = lines
            .iter()
            .find(|l| l.contains(&format!("✔ step {i}/10 done in")))
            .unwrap_or_else(|| panic!("step {i} finished:\n{stderr}"));
        assert!(done.contains("done in 0.3s"), "{done}");
    }
    let last_start = lines
        .iter()
        .position(|l| l.contains("▶ step 9/10"))
        .unwrap();
    assert!(last_start > first_done);
    // Planner + one wave of look-ups + the final step + the answer step:
    // about 4 latencies, far from the 11 a sequential run takes.
    assert!(wall.as_millis() < 2500, "took {wall:?}");

    // The transcript shows the overlap with timestamps.
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&transcript).unwrap()).unwrap();
    let steps = json["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 10);
    let first_finish = steps[0]["finished_ms"].as_f64().unwrap();
    for step in &steps[..8] {
        assert!(
            step["started_ms"].as_f64().unwrap() < first_finish,
            "{step}"
        );
    }
    assert!(steps[8]["started_ms"].as_f64().unwrap() >= first_finish);
}

#[test]
fn plan_and_solve_runs_planned_calls_without_the_model_and_answers_once() {
    let dir = scratch("plan-and-solve");
    let script = dir.join("script.json");
    std::fs::write(
        &script,
        r##"[
            "{\"steps\": [{\"step\": \"Multiply\", \"tool\": \"calculator\", \"with\": {\"expression\": \"17*23\"}}, {\"step\": \"Add the days of a leap year\", \"tool\": \"calculator\", \"with\": {\"expression\": \"#E1 + 366\"}}]}",
            "17*23 is 391, and 391 + 366 is 757."
        ]"##,
    )
    .unwrap();
    let transcript = dir.join("run.json");
    let (code, stdout, stderr) = run(pae(&dir)
        .args(["run", OBJECTIVE, "--provider", "scripted", "--script"])
        .arg(&script)
        .arg("--json")
        .arg(&transcript));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, "17*23 is 391, and 391 + 366 is 757.\n");
    assert!(
        stderr.contains(
            "2. Add the days of a leap year  [calculator {\"expression\":\"#E1 + 366\"}]"
        ),
        "{stderr}"
    );
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&transcript).unwrap()).unwrap();
    assert_eq!(json["settings"]["mode"], "plan-and-solve");
    let steps = json["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 3);
    assert_eq!(
        steps[1]["tool_calls"][0]["input"]["expression"],
        "391 + 366"
    );
    assert_eq!(steps[1]["response"], "757");
    // One planning call and one answer: the tool steps cost no model call.
    let calls = json["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "model_called")
        .count();
    assert_eq!(calls, 2);
    assert_eq!(json["outcome"]["kind"], "completed");
    assert!(json.get("answer_problems").is_none());
}

#[test]
fn a_step_stopped_at_its_limit_exits_9_and_says_why() {
    let dir = scratch("stopped");
    let script = dir.join("script.json");
    std::fs::write(
        &script,
        r#"[
            "Plan:\n1. Compute 17*23 with the calculator.\n<END_OF_PLAN>",
            {"tool_calls": [{"name": "calculator", "arguments": {"expression": "17*23"}}]},
            "391"
        ]"#,
    )
    .unwrap();
    let transcript = dir.join("run.json");
    let (code, stdout, stderr) = run(pae(&dir)
        .args(["run", OBJECTIVE, "--provider", "scripted", "--script"])
        .arg(&script)
        .args([
            "--mode",
            "plan-and-execute",
            "--max-iterations",
            "1",
            "--early-stopping",
            "force",
            "--json",
        ])
        .arg(&transcript));
    assert_eq!(code, 9, "{stderr}");
    assert_eq!(stdout, "391\n");
    let warning: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("warning: no real answer"))
        .collect();
    assert_eq!(warning.len(), 1, "{stderr}");
    assert!(
        warning[0].contains("step 1 stopped (iteration limit"),
        "{stderr}"
    );
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&transcript).unwrap()).unwrap();
    assert_eq!(json["answer_problems"][0]["kind"], "step_stopped");
    assert_eq!(json["answer_problems"][0]["step"], 1);
}

#[path = "cli/durable.rs"]
mod durable;

#[path = "cli/observability.rs"]
mod observability;
