//! The run store through the `pae` binary, as other programs drive it:
//! run ids, `runs`, `show`, approval across processes, budgets, signals,
//! kill -9 and resume, and the hardening of what reaches the terminal and
//! the transcript.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{pae, run, scratch};

/// A text-JSON final answer, as the scripted model says it.
fn answer(text: &str) -> Value {
    Value::String(format!(
        "Action:\n```json\n{}\n```",
        json!({"action": "Final Answer", "action_input": text})
    ))
}

/// The solver's reply: the answer step that closes every plan of `pae run`
/// writes the answer in plain text.
fn solved(text: &str) -> Value {
    Value::String(text.to_owned())
}

/// A script for resuming: the solver answers `text`, every step answers
/// `text` (as many as are left, whatever their number).
fn resume_script(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    let rules = json!({"rules": [
        {"when": {"contains": "You write the final answer"}, "reply": text},
        {"reply": answer(text)},
    ]});
    std::fs::write(&path, rules.to_string()).unwrap();
    path
}

fn plan(steps: &[&str]) -> Value {
    let mut text = String::from("Plan:\n");
    for (i, step) in steps.iter().enumerate() {
        text.push_str(&format!("{}. {step}\n", i + 1));
    }
    text.push_str("<END_OF_PLAN>");
    Value::String(text)
}

fn script(dir: &Path, name: &str, replies: &[Value]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_string(replies).unwrap()).unwrap();
    path
}

/// `pae run` with the scripted model, the text planner and plan-and-execute
/// (each plan closed by an answer step, which takes one reply of its own).
fn scripted(dir: &Path, objective: &str, script: &Path) -> Command {
    let mut cmd = pae(dir);
    cmd.args([
        "run",
        objective,
        "--provider",
        "scripted",
        "--planner",
        "text",
        "--mode",
        "plan-and-execute",
        "--script",
    ])
    .arg(script);
    cmd
}

/// The run id from the first line of stderr (`run ID`).
fn run_id(stderr: &str) -> String {
    let first = stderr.lines().next().unwrap_or_default();
    first
        .strip_prefix("run ")
        .unwrap_or_else(|| panic!("the first line is not `run ID`: {stderr}"))
        .trim()
        .to_owned()
}

fn show(dir: &Path, id: &str) -> Value {
    let (code, stdout, stderr) = run(pae(dir).args(["show", id, "--json"]));
    assert_eq!(code, 0, "{stderr}");
    serde_json::from_str(&stdout).unwrap()
}

#[test]
fn runs_are_recorded_listed_and_shown() {
    let dir = scratch("store-listed");
    let s = script(
        &dir,
        "s.json",
        &[plan(&["one", "two"]), answer("1"), answer("2"), solved("2")],
    );
    let (code, stdout, stderr) = run(&mut scripted(&dir, "count to two", &s));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, "2\n");
    let first = run_id(&stderr);
    let (_, _, stderr) = run(&mut scripted(&dir, "count again", &s));
    let second = run_id(&stderr);

    let (code, stdout, stderr) = run(pae(&dir).args(["runs", "--json"]));
    assert_eq!(code, 0, "{stderr}");
    let runs: Value = serde_json::from_str(&stdout).unwrap();
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["id"], first.as_str(), "newest last");
    assert_eq!(runs[1]["id"], second.as_str());
    assert_eq!(runs[0]["status"], "succeeded");
    assert_eq!(runs[0]["objective"], "count to two");

    let shown = show(&dir, &first);
    assert_eq!(shown["status"], "succeeded");
    assert_eq!(shown["answer"], "2");
    let steps = shown["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 3, "two steps and the answer step");
    assert_eq!(steps[0]["step"], "one");
    assert_eq!(steps[0]["status"], "completed");
    assert_eq!(steps[0]["response"], "1");
    assert_eq!(shown["plans"][0]["source"], "planner");
    // Secrets are never stored; the settings are.
    assert_eq!(shown["settings"]["model"]["provider"], "scripted");

    let (code, stdout, _) = run(pae(&dir).args(["show", &first]));
    assert_eq!(code, 0);
    assert!(stdout.contains("answer: 2"), "{stdout}");
}

#[test]
fn a_plan_approved_in_one_process_is_run_by_another_without_planning_again() {
    let dir = scratch("store-approval");
    // Process A plans and stops for approval.
    let a = script(&dir, "a.json", &[plan(&["first", "second"])]);
    let (code, stdout, stderr) = run(scripted(&dir, "do two things", &a).arg("--approve"));
    assert_eq!(code, 6, "{stderr}");
    assert!(stdout.is_empty());
    assert!(stderr.contains("waits for approval"), "{stderr}");
    let id = run_id(&stderr);
    assert_eq!(show(&dir, &id)["status"], "awaiting_approval");

    // Process B edits (a bad edit first) and approves.
    let empty = dir.join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    let (code, _, stderr) = run(pae(&dir).args(["edit", &id, "--plan"]).arg(&empty));
    assert_eq!(code, 2, "{stderr}");
    let edited = dir.join("plan.json");
    std::fs::write(&edited, r#"["first, edited", "second", "third"]"#).unwrap();
    let (code, _, stderr) = run(pae(&dir).args(["edit", &id, "--plan"]).arg(&edited));
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = run(pae(&dir).args(["approve", &id]));
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = run(pae(&dir).args(["approve", &id]));
    assert_eq!(code, 10, "approving twice: {stderr}");

    // Process C finishes with replies for the three steps only: a planner
    // call would take one of them and the run would fail.
    let c = script(&dir, "c.json", &[answer("a"), answer("b"), answer("c")]);
    let (code, stdout, stderr) = run(pae(&dir).args(["resume", &id, "--script"]).arg(&c));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, "c\n");
    let shown = show(&dir, &id);
    assert_eq!(shown["status"], "succeeded");
    let plans = shown["plans"].as_array().unwrap();
    assert_eq!(plans.len(), 2);
    assert_eq!(plans[1]["source"], "human");
    assert_eq!(plans[1]["approved"], true);
    assert_eq!(shown["steps"][0]["step"], "first, edited");
    assert_eq!(
        shown["spent"]["model_calls"], 4,
        "one planner call and three steps"
    );

    let (code, _, stderr) = run(pae(&dir).args(["resume", &id]));
    assert_eq!(code, 10, "resuming a finished run: {stderr}");
}

#[test]
fn bad_store_requests_get_clear_errors_and_change_nothing() {
    let dir = scratch("store-errors");
    let (code, _, stderr) = run(pae(&dir).args(["show", "no-such-run"]));
    assert_eq!(code, 10, "{stderr}");
    assert!(stderr.contains("no run with id"), "{stderr}");
    let (code, _, stderr) = run(pae(&dir).args(["show", "../etc/passwd"]));
    assert_eq!(code, 10, "{stderr}");
    // A file that is not a run store is refused and left as it was.
    let foreign = dir.join("notes.txt");
    std::fs::write(&foreign, "my notes\n".repeat(100)).unwrap();
    for args in [&["runs"][..], &["show", "x"], &["approve", "x"]] {
        let (code, _, stderr) = run(pae(&dir).args(args).arg("--store").arg(&foreign));
        assert_eq!(code, 10, "{args:?}: {stderr}");
        assert!(
            stderr.contains("not a pae store") || stderr.contains("corrupt"),
            "{stderr}"
        );
    }
    let s = script(&dir, "s.json", &[plan(&["a"]), answer("a")]);
    let (code, _, stderr) = run(scripted(&dir, "x", &s).arg("--store").arg(&foreign));
    assert_eq!(code, 10, "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&foreign).unwrap(),
        "my notes\n".repeat(100)
    );
}

#[test]
fn a_budget_stops_the_run_and_a_larger_one_lets_it_finish() {
    let dir = scratch("store-budget");
    let s = script(
        &dir,
        "s.json",
        &[
            plan(&["a", "b", "c"]),
            answer("a"),
            answer("b"),
            answer("c"),
            solved("c"),
        ],
    );
    let (code, stdout, stderr) =
        run(scripted(&dir, "three steps", &s).args(["--budget-tokens", "60"]));
    assert_eq!(code, 7, "{stderr}");
    assert!(stdout.is_empty());
    assert!(stderr.contains("budget"), "{stderr}");
    let id = run_id(&stderr);
    let stopped = show(&dir, &id);
    assert_eq!(stopped["status"], "interrupted");
    let spent = stopped["spent"]["usage"]["prompt_tokens"].as_u64().unwrap()
        + stopped["spent"]["usage"]["completion_tokens"]
            .as_u64()
            .unwrap();
    assert!(spent >= 60, "stopped at the limit: {spent}");
    let done_steps = stopped["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"] == "completed")
        .count();
    let more = resume_script(&dir, "more.json", "later");
    let (code, stdout, stderr) = run(pae(&dir)
        .args(["resume", &id, "--budget-tokens", "100000", "--script"])
        .arg(&more));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, "later\n");
    let done = show(&dir, &id);
    assert_eq!(done["status"], "succeeded");
    assert_eq!(done["budget"]["max_tokens"], 100_000);
    // Steps done before the stop kept their answers.
    for step in &done["steps"].as_array().unwrap()[..done_steps] {
        assert_ne!(step["response"], "later", "{step}");
    }
}

/// Starts a slow scripted run of `steps` one-call steps (and the answer
/// step: `steps + 1` in the progress lines); returns the child
/// and its stderr lines as they come.
fn slow_run(
    dir: &Path,
    steps: usize,
    transcript: &Path,
) -> (Child, std::sync::mpsc::Receiver<String>) {
    let names: Vec<String> = (1..=steps).map(|i| format!("step {i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut replies = vec![plan(&refs)];
    replies.extend((0..steps).map(|i| answer(&format!("answer {}", i + 1))));
    replies.push(solved("all done"));
    let s = script(dir, "slow.json", &replies);
    let mut cmd = scripted(dir, "a slow run", &s);
    cmd.args(["--script-delay-ms", "400", "--json"])
        .arg(transcript)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

fn wait_for(rx: &std::sync::mpsc::Receiver<String>, needle: &str, seen: &mut Vec<String>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            let hit = line.contains(needle);
            seen.push(line);
            if hit {
                return;
            }
        }
    }
    panic!("{needle:?} never came:\n{}", seen.join("\n"));
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn signals_leave_a_transcript_and_a_resumable_run() {
    for (name, code) in [("TERM", 143), ("INT", 130), ("HUP", 129)] {
        let dir = scratch(&format!("store-signal-{name}"));
        let transcript = dir.join("run.json");
        let (mut child, rx) = slow_run(&dir, 4, &transcript);
        let mut seen = Vec::new();
        wait_for(&rx, "▶ step 2/5", &mut seen);
        signal(&child, name);
        let status = child.wait().unwrap();
        while let Ok(line) = rx.recv_timeout(Duration::from_millis(300)) {
            seen.push(line);
        }
        assert_eq!(status.code(), Some(code), "SIG{name}:\n{}", seen.join("\n"));
        let id = run_id(&seen.join("\n"));
        let json: Value =
            serde_json::from_str(&std::fs::read_to_string(&transcript).unwrap()).unwrap();
        assert!(!json["steps"].as_array().unwrap().is_empty(), "{json}");
        let stopped = show(&dir, &id);
        assert_eq!(stopped["status"], "interrupted", "SIG{name}");
        let more = resume_script(&dir, "more.json", "resumed");
        let (code, stdout, stderr) = run(pae(&dir).args(["resume", &id, "--script"]).arg(&more));
        assert_eq!(code, 0, "{stderr}");
        assert_eq!(stdout, "resumed\n");
        assert_eq!(show(&dir, &id)["steps"][0]["response"], "answer 1");
    }
}

#[test]
fn a_killed_run_resumes_at_once_from_where_it_was() {
    let dir = scratch("store-kill");
    let transcript = dir.join("run.json");
    let (mut child, rx) = slow_run(&dir, 4, &transcript);
    let mut seen = Vec::new();
    // Step 3 starts once step 2 is committed.
    wait_for(&rx, "▶ step 3/5", &mut seen);
    child.kill().unwrap();
    child.wait().unwrap();
    let id = run_id(&seen.join("\n"));
    assert_eq!(show(&dir, &id)["status"], "running");
    let more = resume_script(&dir, "more.json", "resumed");
    // The dead process's lease does not block: it is taken over at once.
    let started = Instant::now();
    let (code, stdout, stderr) = run(pae(&dir).args(["resume", &id, "--script"]).arg(&more));
    assert_eq!(code, 0, "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(stdout, "resumed\n");
    let shown = show(&dir, &id);
    assert_eq!(shown["steps"][0]["response"], "answer 1");
    assert_eq!(shown["steps"][1]["response"], "answer 2");
    assert_eq!(shown["spent"]["sessions"], 2);
}

#[test]
fn closed_or_full_outputs_do_not_panic_or_lose_the_run() {
    let dir = scratch("store-pipes");
    let s = script(
        &dir,
        "s.json",
        &[
            plan(&["a", "b"]),
            answer("first"),
            answer("second"),
            solved("second"),
        ],
    );
    // stdout closed before the answer is written (`| true`).
    let mut child = scripted(&dir, "x", &s)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    // stdout on a full disk.
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = scripted(&dir, "x", &s)
        .stdout(Stdio::from(full))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    // stderr read for 20 bytes, then closed: the run still finishes, with
    // its transcript.
    let transcript = dir.join("t.json");
    let mut child = scripted(&dir, "x", &s)
        .arg("--json")
        .arg(&transcript)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut head = [0_u8; 20];
    child
        .stderr
        .as_mut()
        .unwrap()
        .read_exact(&mut head)
        .unwrap();
    drop(child.stderr.take());
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert_eq!(stdout, "second\n");
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&transcript).unwrap()).unwrap();
    assert_eq!(json["answer"], "second");
}

#[test]
fn escape_sequences_from_models_never_reach_the_terminal() {
    let dir = scratch("store-escapes");
    let s = script(
        &dir,
        "s.json",
        &[
            plan(&[
                "clear \u{1b}[2J the screen",
                "set \u{1b}]0;owned\u{7} the title",
            ]),
            answer("\u{1b}[31mred\u{1b}[0m"),
            answer("fake\r[9.9s] ✔ step 9/9 done\u{1b}[K"),
            solved("fake\r[9.9s] ✔ step 9/9 done\u{1b}[K"),
        ],
    );
    let out = scripted(&dir, "x", &s).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        !out.stdout.contains(&0x1b),
        "{:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        !out.stderr.contains(&0x1b),
        "{:?}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.stdout.contains(&b'\r'));
    assert!(!out.stderr.contains(&b'\r'));
    assert!(String::from_utf8_lossy(&out.stdout).contains("\\x1b[K"));
}

#[test]
fn transcripts_are_checked_first_and_written_whole() {
    let dir = scratch("store-transcript");
    let s = script(
        &dir,
        "s.json",
        &[plan(&["a"]), answer("done"), solved("done")],
    );
    let (code, _, stderr) =
        run(scripted(&dir, "x", &s).args(["--json", "/nonexistent/dir/t.json"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(!stderr.contains("run r"), "no run was started: {stderr}");
    // Twenty runs writing one path at once leave one whole transcript.
    let shared = dir.join("shared.json");
    let children: Vec<Child> = (0..20)
        .map(|_| {
            scripted(&dir, "x", &s)
                .arg("--json")
                .arg(&shared)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert_eq!(child.wait().unwrap().code(), Some(0));
    }
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&shared).unwrap()).unwrap();
    assert_eq!(json["answer"], "done");
}

#[test]
fn credentials_in_a_base_url_are_never_stored() {
    let dir = scratch("store-credentials");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://user:hunter2@127.0.0.1:{port}/v1");
    let transcript = dir.join("t.json");
    let (code, _, stderr) = run(pae(&dir)
        .args([
            "run",
            "x",
            "--provider",
            "openai",
            "--attempts",
            "1",
            "--base-url",
            &url,
            "--json",
        ])
        .arg(&transcript));
    assert_eq!(code, 4, "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
    let text = std::fs::read_to_string(&transcript).unwrap();
    assert!(!text.contains("hunter2"), "{text}");
    let id = run_id(&stderr);
    let stored = show(&dir, &id).to_string();
    assert!(!stored.contains("hunter2"), "{stored}");
    assert!(stored.contains(&format!("127.0.0.1:{port}")), "{stored}");
}

#[test]
fn runs_without_a_real_answer_have_their_own_exit_code() {
    let dir = scratch("store-no-answer");
    let call = Value::String(format!(
        "Action:\n```json\n{}\n```",
        json!({"action": "calculator", "action_input": {"expression": "1+1"}})
    ));
    // The model keeps calling the calculator: the step stops at its limit.
    let s = script(
        &dir,
        "s.json",
        &[plan(&["add"]), call.clone(), call.clone(), call],
    );
    let (code, stdout, stderr) =
        run(scripted(&dir, "x", &s).args(["--max-iterations", "2", "--early-stopping", "force"]));
    assert_eq!(code, 9, "{stderr}");
    assert!(stderr.contains("no real answer"), "{stderr}");
    assert!(!stdout.is_empty(), "the best answer found is still printed");
}

#[test]
fn flags_the_provider_ignores_are_refused() {
    let dir = scratch("store-ignored");
    let (code, _, stderr) = run(pae(&dir).args(["run", "x", "--model-name", "gpt-4o"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--model-name has no effect"), "{stderr}");
}

#[test]
fn a_run_in_progress_cannot_be_resumed_by_another_process() {
    let dir = scratch("store-busy");
    let transcript = dir.join("run.json");
    let (mut child, rx) = slow_run(&dir, 3, &transcript);
    let mut seen = Vec::new();
    wait_for(&rx, "▶ step 1/4", &mut seen);
    let id = run_id(&seen.join("\n"));
    let (code, _, stderr) = run(pae(&dir).args(["resume", &id]));
    assert_eq!(code, 10, "{stderr}");
    assert!(stderr.contains("is being run by"), "{stderr}");
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert_eq!(show(&dir, &id)["spent"]["sessions"], 1, "nothing changed");
}
