//! Observability of the `pae` binary: spans on stderr under `-v`, real
//! OTLP received from it on 127.0.0.1 and checked span by span, the
//! transcript against its published schema (and on stdout with `--json -`),
//! the Mermaid plan, and the HTML report rendered in a real headless
//! browser (Debian's chromium: skipped with a reason when it is missing,
//! failing when `PAE_REQUIRE_SERVERS=1`).

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a failed unwrap is the test failing"
)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message as _;
use serde_json::Value;

/// A scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pae-obs-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// `pae` with an environment that cannot reach anything by accident.
fn pae(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pae"));
    cmd.env_remove("PAE_MODEL")
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .env_remove("OLLAMA_HOST")
        .env_remove("PAE_STORE")
        .env_remove("RUST_LOG")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .env_remove("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT")
        // LangChain's loop (closed by the answer step), which these
        // scripts are written for.
        .env("PAE_MODE", "plan-and-execute")
        .env("PAE_DATA_DIR", dir.join("data"))
        .env("PAE_CACHE_DIR", dir);
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

/// A three-step run: plan, a step with one tool call, a step answering
/// in near-JSON, a step answering at once; then the answer step.
fn three_step_script(dir: &Path) -> PathBuf {
    let script = dir.join("script.json");
    std::fs::write(
        &script,
        r#"[
            "Plan:\n1. Compute 17*23 with the calculator.\n2. Add 366.\n3. Give the answer.\n<END_OF_PLAN>",
            {"tool_calls": [{"name": "calculator", "arguments": {"expression": "17*23"}}]},
            "17*23 is 391.",
            {"tool_calls": [{"name": "calculator", "arguments": {"expression": "391+366"}}]},
            "391 + 366 = 757.",
            "The answer is 757.",
            "The answer is 757."
        ]"#,
    )
    .unwrap();
    script
}

/// The run id `pae run` prints first on stderr.
fn run_id(stderr: &str) -> String {
    stderr
        .lines()
        .find_map(|l| l.strip_prefix("run "))
        .expect("a run id")
        .trim()
        .to_owned()
}

#[test]
fn verbose_runs_show_spans_on_stderr() {
    let dir = scratch("verbose");
    let script = three_step_script(&dir);
    let (code, stdout, stderr) = run(pae(&dir)
        .args([
            "run",
            "What is 17*23+366?",
            "--provider",
            "scripted",
            "-v",
            "--script",
        ])
        .arg(&script));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, "The answer is 757.\n");
    eprintln!("{stderr}");
    for needle in [
        "invoke_agent{",
        "plan{",
        "step{",
        "chat{",
        "execute_tool{",
        "gen_ai.operation.name=\"execute_tool\"",
        "gen_ai.tool.name=\"calculator\"",
        "gen_ai.request.model=\"scripted\"",
        "gen_ai.usage.input_tokens=",
        "close",
        "time.busy",
        // Progress lines are still there.
        "✔ step 4/4 done in",
    ] {
        assert!(stderr.contains(needle), "{needle:?} not in:\n{stderr}");
    }
    // Without -v, no span lines.
    let (code, _, stderr) = run(pae(&dir)
        .args([
            "run",
            "What is 17*23+366?",
            "--provider",
            "scripted",
            "--script",
        ])
        .arg(&script));
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("invoke_agent"), "{stderr}");
    // RUST_LOG chooses instead of -v.
    let (code, _, stderr) = run(pae(&dir)
        .env("RUST_LOG", "pae_core=debug")
        .args([
            "run",
            "What is 17*23+366?",
            "--provider",
            "scripted",
            "--script",
        ])
        .arg(&script));
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("execute_tool{"), "{stderr}");
}

/// A minimal OTLP/HTTP collector on 127.0.0.1: takes POSTs to
/// `/v1/traces`, answers 200, keeps the decoded requests. Stops with the
/// test process.
fn collector() -> (String, Arc<Mutex<Vec<ExportTraceServiceRequest>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let received = Arc::new(Mutex::new(Vec::new()));
    let sink = received.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(64) {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            let _ = reader.read_line(&mut request_line);
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length.min(16 << 20)];
            let _ = reader.read_exact(&mut body);
            if request_line.starts_with("POST /v1/traces")
                && let Ok(request) = ExportTraceServiceRequest::decode(body.as_slice())
            {
                sink.lock().unwrap().push(request);
            }
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            );
        }
    });
    (url, received)
}

/// A received span: name, parent, attributes as text.
#[derive(Debug, Clone)]
struct Span {
    name: String,
    id: Vec<u8>,
    parent: Vec<u8>,
    trace: Vec<u8>,
    attributes: BTreeMap<String, String>,
    start: u64,
}

fn received_spans(requests: &[ExportTraceServiceRequest]) -> (Vec<Span>, Vec<String>) {
    let mut spans = Vec::new();
    let mut services = Vec::new();
    for request in requests {
        for resource in &request.resource_spans {
            for attribute in resource.resource.iter().flat_map(|r| &r.attributes) {
                if attribute.key == "service.name" {
                    services.push(text(
                        attribute.value.as_ref().and_then(|v| v.value.as_ref()),
                    ));
                }
            }
            for scope in &resource.scope_spans {
                for span in &scope.spans {
                    spans.push(Span {
                        name: span.name.clone(),
                        id: span.span_id.clone(),
                        parent: span.parent_span_id.clone(),
                        trace: span.trace_id.clone(),
                        attributes: span
                            .attributes
                            .iter()
                            .map(|a| {
                                (
                                    a.key.clone(),
                                    text(a.value.as_ref().and_then(|v| v.value.as_ref())),
                                )
                            })
                            .collect(),
                        start: span.start_time_unix_nano,
                    });
                }
            }
        }
    }
    spans.sort_by_key(|s| s.start);
    (spans, services)
}

fn text(value: Option<&AnyValue>) -> String {
    match value {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        Some(AnyValue::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

/// The tree under `parent`, one line per span: its name and the attributes
/// named in `keys`.
fn tree(spans: &[Span], parent: &[u8], depth: usize, keys: &[&str], out: &mut String) {
    for span in spans.iter().filter(|s| s.parent == parent) {
        let shown: Vec<String> = keys
            .iter()
            .filter_map(|k| span.attributes.get(*k).map(|v| format!("{k}={v}")))
            .collect();
        out.push_str(&format!(
            "{}{} {}\n",
            "  ".repeat(depth),
            span.name,
            shown.join(" ")
        ));
        tree(spans, &span.id, depth + 1, keys, out);
    }
}

#[test]
fn traces_reach_an_otlp_collector() {
    let dir = scratch("otlp");
    let script = three_step_script(&dir);
    let (url, received) = collector();
    let (code, stdout, stderr) = run(pae(&dir)
        .args([
            "run",
            "What is 17*23+366?",
            "--provider",
            "scripted",
            "--otlp-endpoint",
        ])
        .arg(&url)
        .arg("--script")
        .arg(&script));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, "The answer is 757.\n");
    let id = run_id(&stderr);
    // The exporter flushes at exit; the collector thread may still be
    // decoding the last request.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let (spans, services) = loop {
        let (spans, services) = received_spans(&received.lock().unwrap());
        if spans.iter().any(|s| s.name == "invoke_agent") || std::time::Instant::now() > deadline {
            break (spans, services);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(services.iter().all(|s| s == "pae"), "{services:?}");
    assert!(!spans.is_empty(), "no span arrived");
    assert!(spans.iter().all(|s| s.trace == spans[0].trace), "one trace");
    let mut shown = String::new();
    tree(
        &spans,
        &[],
        0,
        &[
            "gen_ai.operation.name",
            "pae.run.id",
            "pae.outcome",
            "pae.plan.steps",
            "pae.step.index",
            "pae.step.status",
            "gen_ai.request.model",
            "gen_ai.response.finish_reasons",
            "gen_ai.tool.name",
            "pae.call",
        ],
        &mut shown,
    );
    eprintln!("{shown}");
    let expected = format!(
        "invoke_agent gen_ai.operation.name=invoke_agent pae.run.id={id} pae.outcome=completed
  plan pae.plan.steps=4
    chat gen_ai.operation.name=chat gen_ai.request.model=scripted gen_ai.response.finish_reasons=stop pae.call=0
  step pae.step.index=0 pae.step.status=completed
    chat gen_ai.operation.name=chat gen_ai.request.model=scripted gen_ai.response.finish_reasons=tool_calls pae.call=0
    execute_tool gen_ai.operation.name=execute_tool gen_ai.tool.name=calculator
    chat gen_ai.operation.name=chat gen_ai.request.model=scripted gen_ai.response.finish_reasons=stop pae.call=2
  step pae.step.index=1 pae.step.status=completed
    chat gen_ai.operation.name=chat gen_ai.request.model=scripted gen_ai.response.finish_reasons=tool_calls pae.call=0
    execute_tool gen_ai.operation.name=execute_tool gen_ai.tool.name=calculator
    chat gen_ai.operation.name=chat gen_ai.request.model=scripted gen_ai.response.finish_reasons=stop pae.call=2
  step pae.step.index=2 pae.step.status=completed
    chat gen_ai.operation.name=chat gen_ai.request.model=scripted gen_ai.response.finish_reasons=stop pae.call=0
  step pae.step.index=3 pae.step.status=completed
    chat gen_ai.operation.name=chat gen_ai.request.model=scripted gen_ai.response.finish_reasons=stop pae.call=0
"
    );
    assert_eq!(shown, expected);
    // Token usage and the tool call's id are attributes too.
    let chat = spans.iter().find(|s| s.name == "chat").unwrap();
    assert!(
        chat.attributes["gen_ai.usage.input_tokens"]
            .parse::<u64>()
            .unwrap()
            > 0
    );
    assert!(
        chat.attributes["gen_ai.usage.output_tokens"]
            .parse::<u64>()
            .unwrap()
            > 0
    );
    let tool = spans.iter().find(|s| s.name == "execute_tool").unwrap();
    assert_eq!(
        tool.attributes["gen_ai.tool.call.id"],
        format!("{id}/0/0/1")
    );
    assert_eq!(tool.attributes["gen_ai.tool.type"], "function");
    // No prompt content unless asked for.
    assert!(
        spans
            .iter()
            .all(|s| !s.attributes.contains_key("gen_ai.input.messages"))
    );

    // OTEL_EXPORTER_OTLP_ENDPOINT works as well, and --capture-content
    // records the messages.
    let (url, received) = collector();
    let (code, _, stderr) = run(pae(&dir)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &url)
        .args([
            "run",
            "What is 17*23+366?",
            "--provider",
            "scripted",
            "--capture-content",
            "--script",
        ])
        .arg(&script));
    assert_eq!(code, 0, "{stderr}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let spans = loop {
        let (spans, _) = received_spans(&received.lock().unwrap());
        if spans.iter().any(|s| s.name == "invoke_agent") || std::time::Instant::now() > deadline {
            break spans;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let chat = spans
        .iter()
        .find(|s| s.name == "chat")
        .expect("a chat span");
    assert!(
        chat.attributes["gen_ai.input.messages"].contains("What is 17*23+366?"),
        "{chat:?}"
    );
    let tool = spans.iter().find(|s| s.name == "execute_tool").unwrap();
    assert_eq!(tool.attributes["gen_ai.tool.call.result"], "391");
}

/// `$ref`s replaced by what they name (the workspace's schema checker
/// ignores `$ref`).
fn resolve(schema: &Value, root: &Value) -> Value {
    match schema {
        Value::Object(map) => {
            if let Some(Value::String(target)) = map.get("$ref") {
                let name = target.trim_start_matches("#/$defs/");
                return resolve(&root["$defs"][name], root);
            }
            Value::Object(
                map.iter()
                    .filter(|(k, _)| k.as_str() != "$defs")
                    .map(|(k, v)| (k.clone(), resolve(v, root)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| resolve(v, root)).collect()),
        other => other.clone(),
    }
}

fn check_schema(transcript: &Value) {
    let schema: Value = serde_json::from_str(pae_transcript::SCHEMA).unwrap();
    let resolved = resolve(&schema, &schema);
    let violations = pae_executor::schema::validate(&resolved, transcript);
    assert!(violations.is_empty(), "{violations:?}\n{transcript:#}");
}

#[test]
fn the_planner_asks_the_time_tool_for_the_date_and_the_transcript_shows_it() {
    let dir = scratch("planner-clock");
    let script = dir.join("script.json");
    std::fs::write(
        &script,
        r#"[
            "{\"steps\": [{\"step\": \"Years\", \"tool\": \"calculator\", \"with\": {\"expression\": \"2026 + 15\"}}]}",
            "2041"
        ]"#,
    )
    .unwrap();
    let path = dir.join("run.json");
    let (code, stdout, stderr) = run(pae(&dir)
        .args([
            "run",
            "What year will it be 15 years from now?",
            "--provider",
            "scripted",
            "--mode",
            "plan-and-solve",
            "--tools",
            "calculator,time",
            "--now",
            "2026-03-14T10:00:00Z",
            "--capture-content",
            "--json",
        ])
        .arg(&path)
        .arg("--script")
        .arg(&script));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.trim(), "2041");
    let text = std::fs::read_to_string(&path).unwrap();
    check_schema(&serde_json::from_str(&text).unwrap());
    let transcript = pae_transcript::from_str(&text).unwrap();
    let calls = &transcript.planner_tool_calls;
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].tool, "current_time");
    assert_eq!(
        calls[0].observation.as_deref(),
        Some("Saturday, 2026-03-14")
    );
    assert!(!calls[0].is_error);
    let prompt = transcript.planner_calls[0].prompt.as_ref().unwrap();
    let system = prompt[0]["content"].as_str().unwrap();
    assert!(
        system.contains("\nToday is Saturday, 2026-03-14.\n"),
        "{system}"
    );
    // The steps' own calls stay theirs.
    assert_eq!(transcript.steps[0].tool_calls[0].tool, "calculator");
}

#[test]
fn the_transcript_follows_its_schema_and_records_each_call_once() {
    let dir = scratch("transcript");
    let script = three_step_script(&dir);
    let path = dir.join("run.json");
    let (code, _, stderr) = run(pae(&dir)
        .args([
            "run",
            "What is 17*23+366?",
            "--provider",
            "scripted",
            "--capture-content",
            "--json",
        ])
        .arg(&path)
        .arg("--script")
        .arg(&script));
    assert_eq!(code, 0, "{stderr}");
    let text = std::fs::read_to_string(&path).unwrap();
    let json: Value = serde_json::from_str(&text).unwrap();
    check_schema(&json);
    let transcript = pae_transcript::from_str(&text).unwrap();
    assert_eq!(transcript.format, "pae-transcript/2");
    assert_eq!(transcript.steps.len(), 4, "three steps and the answer step");
    for (i, step) in transcript.steps.iter().enumerate() {
        assert_eq!(step.step_index, i);
        assert_eq!(step.status, pae_transcript::StepState::Completed);
    }
    // Each tool call once, with its duration; the step's own copy is gone.
    assert_eq!(transcript.steps[0].tool_calls.len(), 1);
    assert!(transcript.steps[0].tool_calls[0].duration_ms.is_some());
    assert!(json["steps"][0]["response"].is_string());
    assert!(json["steps"][0].get("step").is_none());
    // Model calls: planning, then two in step 1, with prompts (opted in).
    assert_eq!(transcript.planner_calls.len(), 1);
    assert_eq!(transcript.steps[0].model_calls.len(), 2);
    let call = &transcript.steps[0].model_calls[1];
    assert_eq!(call.call, 2);
    assert!(call.prompt.as_ref().is_some_and(|p| p.len() >= 3));
    assert_eq!(call.reply.as_ref().unwrap()["content"], "17*23 is 391.");
    assert_eq!(call.finish_reason.as_deref(), Some("stop"));
    // Events name the step index `step_index`, always.
    for event in &transcript.events {
        assert!(event.get("index").is_none(), "{event}");
    }
    assert!(
        transcript
            .events
            .iter()
            .any(|e| e["type"] == "step_started" && e["step_index"] == 0)
    );
}

#[test]
fn json_dash_writes_the_transcript_to_stdout_instead_of_the_answer() {
    let dir = scratch("json-stdout");
    let script = three_step_script(&dir);
    let (code, stdout, stderr) = run(pae(&dir)
        .args([
            "run",
            "What is 17*23+366?",
            "--provider",
            "scripted",
            "--json",
            "-",
            "--script",
        ])
        .arg(&script));
    assert_eq!(code, 0, "{stderr}");
    let json: Value = serde_json::from_str(&stdout).expect("stdout is the transcript alone");
    assert_eq!(json["answer"], "The answer is 757.");
    assert!(!dir.join("-").exists());
    check_schema(&json);
}

/// A fan-out plan: eight look-ups at once (each 300 ms), then one step
/// combining them.
fn fan_out(dir: &Path) -> PathBuf {
    let script = dir.join("fan-out.json");
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
    replies.push(Value::String(answer("eight facts, combined")));
    // The answer step.
    replies.push(Value::String("eight facts, combined".to_owned()));
    std::fs::write(&script, serde_json::to_string(&replies).unwrap()).unwrap();
    script
}

#[test]
fn the_plan_prints_as_a_mermaid_flowchart() {
    let dir = scratch("mermaid");
    let script = fan_out(&dir);
    let (code, _, stderr) = run(pae(&dir)
        .args([
            "run",
            "Gather eight facts",
            "--provider",
            "scripted",
            "--max-concurrency",
            "8",
            "--script",
        ])
        .arg(&script));
    assert_eq!(code, 0, "{stderr}");
    let id = run_id(&stderr);
    let (code, stdout, stderr) = run(pae(&dir).args(["show", &id, "--mermaid"]));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("flowchart TD\n"), "{stdout}");
    assert!(stdout.contains("    s9[\"9. Combine #E1"), "{stdout}");
    for i in 1..=8 {
        assert!(stdout.contains(&format!("    s{i} --> s9\n")), "{stdout}");
    }
    // The answer step closing the plan depends on every step.
    for i in 1..=9 {
        assert!(stdout.contains(&format!("    s{i} --> s10\n")), "{stdout}");
    }
    assert!(
        stdout.contains("class s1,s2,s3,s4,s5,s6,s7,s8,s9,s10 completed"),
        "{stdout}"
    );
}

/// Debian's chromium, or `None` (with a reason) when it is missing; a
/// failure when `PAE_REQUIRE_SERVERS=1`.
fn chromium() -> Option<PathBuf> {
    for name in ["chromium", "chromium-browser"] {
        if Command::new(name)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return Some(PathBuf::from(name));
        }
    }
    if std::env::var("PAE_REQUIRE_SERVERS").as_deref() == Ok("1") {
        panic!(
            "chromium is not installed but PAE_REQUIRE_SERVERS=1 (cargo xtask setup installs it)"
        );
    }
    eprintln!(
        "skipping: chromium is not installed (apt-get install chromium, or cargo xtask setup)"
    );
    None
}

/// Runs headless chromium on `page` with `action` (`--dump-dom` or
/// `--screenshot=FILE`), in a fresh profile, with nothing to reach.
fn browse(browser: &Path, dir: &Path, page: &Path, action: &str) -> String {
    let profile = dir.join(format!("profile-{}", action.len()));
    let _ = std::fs::remove_dir_all(&profile);
    std::fs::create_dir_all(&profile).unwrap();
    let output = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1200,1800",
            "--virtual-time-budget=2000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(action)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The `(x, width)` of the timeline bar of each step, from the DOM.
fn step_bars(dom: &str) -> BTreeMap<usize, (f64, f64)> {
    let mut bars = BTreeMap::new();
    for piece in dom.split("<rect class=\"bar step ").skip(1) {
        let tag = &piece[..piece.find('>').unwrap_or(piece.len())];
        let attr = |name: &str| {
            let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
            let end = start + tag[start..].find('"')?;
            Some(tag[start..end].to_owned())
        };
        if let (Some(step), Some(x), Some(w)) = (attr("data-step"), attr("x"), attr("width")) {
            bars.insert(
                step.parse().unwrap(),
                (x.parse().unwrap(), w.parse().unwrap()),
            );
        }
    }
    bars
}

#[test]
fn the_html_report_renders_in_a_browser_with_parallel_steps_side_by_side() {
    let dir = scratch("report");
    let script = fan_out(&dir);
    let from_run = dir.join("from-run.html");
    let (code, _, stderr) = run(pae(&dir)
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
            "--html",
        ])
        .arg(&from_run));
    assert_eq!(code, 0, "{stderr}");
    let id = run_id(&stderr);
    let page = dir.join("report.html");
    let (code, _, stderr) = run(pae(&dir).args(["show", &id, "--html"]).arg(&page));
    assert_eq!(code, 0, "{stderr}");
    let html = std::fs::read_to_string(&page).unwrap();
    assert_eq!(html, std::fs::read_to_string(&from_run).unwrap());
    // Self-contained: nothing is loaded from anywhere.
    for needle in ["src=", "href=", "@import", "url(http"] {
        assert!(!html.contains(needle), "{needle} in the page");
    }
    assert!(html.contains("Content-Security-Policy"));

    let Some(browser) = chromium() else {
        return;
    };
    let dom = browse(&browser, &dir, &page, "--dump-dom");
    // The script ran in the page: it counted the steps running at once
    // from the bars as laid out.
    assert!(dom.contains("data-rendered=\"true\""), "{dom}");
    assert!(
        dom.contains("<strong id=\"concurrency\">8</strong>"),
        "{dom}"
    );
    // Every step is there, in the graph, the timeline and the details (the
    // nine planned and the answer step).
    for i in 1..=10 {
        assert!(
            dom.contains(&format!("class=\"node completed\" data-step=\"{i}\"")),
            "graph {i}"
        );
        assert!(
            dom.contains(&format!("data-step=\"{i}\" data-status=\"completed\"")),
            "details {i}"
        );
    }
    // Eight into step 9, nine into the answer step.
    assert_eq!(dom.matches("class=\"edge\"").count(), 17);
    assert!(dom.contains("eight facts, combined"));
    // The eight look-ups overlap on the timeline; the last step starts
    // after them.
    let bars = step_bars(&dom);
    assert_eq!(bars.len(), 10, "{bars:?}");
    let first_end = (1..=8)
        .map(|i| bars[&i].0 + bars[&i].1)
        .fold(f64::MAX, f64::min);
    for i in 1..=8 {
        assert!(
            bars[&i].0 < first_end,
            "step {i} starts after another ends: {bars:?}"
        );
    }
    assert!(bars[&9].0 >= first_end - 1.0, "{bars:?}");
    assert!(bars[&10].0 >= bars[&9].0, "{bars:?}");

    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("pae-report.png");
    let _ = std::fs::remove_file(&shot);
    browse(
        &browser,
        &dir,
        &page,
        &format!("--screenshot={}", shot.display()),
    );
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
    assert!(
        png.len() > 20_000,
        "a blank page is smaller: {} bytes",
        png.len()
    );
    eprintln!("screenshot: {}", shot.display());
}
