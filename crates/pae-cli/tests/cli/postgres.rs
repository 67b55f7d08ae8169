//! `pae submit`, `pae worker` and the store commands on PostgreSQL, as
//! processes: bad input (empty objective, unreachable or wrong URLs, a file
//! store for submit, a store of another schema version) with its exit
//! codes, and a submitted run that waits for approval, is approved from
//! another process and finished by a worker.
//!
//! The server comes from `PAE_TEST_POSTGRES_URL` (`cargo xtask test` starts
//! one); without it those tests are skipped with a reason, and fail when
//! `PAE_REQUIRE_SERVERS=1`.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pae_conformance::env::require_env;

use super::{run, scratch};

/// `pae` as the other tests run it, with the hidden record tool writing
/// its side effects under `dir`.
fn pae(dir: &Path) -> Command {
    let mut cmd = super::pae(dir);
    cmd.env("PAE_TEST_EFFECTS", dir.join("effects"));
    cmd
}

/// A database of its own for one test, through psql-free SQL: `pae`
/// creates its schema; the test only needs a fresh database name.
fn database(url: &str, name: &str) -> String {
    let database = format!("pae_cli_{name}_{}", std::process::id());
    let admin = Command::new("psql")
        .arg(url)
        .args(["-X", "-q", "-c"])
        .arg(format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
        .output();
    let created = Command::new("psql")
        .arg(url)
        .args(["-X", "-q", "-c"])
        .arg(format!("CREATE DATABASE {database}"))
        .output()
        .expect("psql runs");
    assert!(admin.is_ok() && created.status.success(), "{created:?}");
    let base = url.split('?').next().unwrap_or(url);
    let (scheme, rest) = base.split_once("://").expect("a URL");
    let authority = rest.split('/').next().unwrap_or_default();
    format!("{scheme}://{authority}/{database}")
}

fn script(dir: &Path) -> PathBuf {
    let path = dir.join("script.json");
    std::fs::write(
        &path,
        r#"{"rules": [
            {"when": {"contains": "You write the final answer"}, "reply": "recorded both"},
            {"when": {"last_role": "tool"}, "reply": "recorded"},
            {"when": {"contains": "You are the planning part of an agent"},
             "reply": "Plan:\n1. Record step one.\n2. Record step two.\n<END_OF_PLAN>"},
            {"reply": {"tool_calls": [{"name": "record", "arguments": {}}]}}
        ]}"#,
    )
    .expect("script");
    path
}

const FLAGS: &[&str] = &[
    "--provider",
    "scripted",
    "--tools",
    "record",
    "--planner",
    "text",
    "--mode",
    "plan-and-execute",
];

#[test]
fn bad_input_gives_typed_errors_and_exit_codes() {
    let dir = scratch("pg-bad");
    // An empty objective is refused before anything is stored.
    let (code, stdout, stderr) =
        run(pae(&dir).args(["submit", "--store", "postgres://x@127.0.0.1:1/x", " "]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stdout.is_empty());
    assert!(stderr.contains("the objective is empty"), "{stderr}");
    // submit needs a PostgreSQL store.
    let (code, _, stderr) = run(pae(&dir).args(["submit", "--store", "runs.db", "x"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("PostgreSQL"), "{stderr}");
    // Nothing listens there: exit 10, the URL without its password.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://pae:secret@127.0.0.1:{port}/pae");
    for args in [
        vec!["runs", "--store", &url],
        vec!["worker", "--store", &url],
        vec!["show", "r1", "--store", &url],
    ] {
        let started = Instant::now();
        let (code, _, stderr) = run(pae(&dir).args(&args));
        assert_eq!(code, 10, "{args:?}: {stderr}");
        assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
        assert!(!stderr.contains("secret"), "the password leaked: {stderr}");
        assert!(started.elapsed() < Duration::from_secs(30));
    }
    let (code, _, stderr) = run(pae(&dir).args(["runs", "--store", "postgres://[::1"]));
    assert_eq!(code, 10, "{stderr}");
}

#[test]
fn a_wrong_database_or_another_schema_version_exits_10() {
    let Some(url) = require_env("PAE_TEST_POSTGRES_URL") else {
        return;
    };
    let dir = scratch("pg-wrong");
    let base = url.split('?').next().unwrap_or(&url);
    let (scheme, rest) = base.split_once("://").expect("a URL");
    let host = rest.split('/').next().unwrap_or_default();
    let host = host.rsplit_once('@').map_or(host, |(_, host)| host);
    // A database that does not exist, a user that does not exist: refused
    // at once (not tried again), typed, without the password.
    for wrong in [
        format!("{scheme}://pae:secret@{host}/no_such_database"),
        format!("{scheme}://no_such_user:secret@{host}/postgres"),
    ] {
        let started = Instant::now();
        let (code, stdout, stderr) = run(pae(&dir).args(["runs", "--store", &wrong]));
        assert_eq!(code, 10, "{wrong}: {stderr}");
        assert!(stdout.is_empty(), "{stdout}");
        assert!(stderr.contains("cannot use the run store"), "{stderr}");
        assert!(!stderr.contains("secret"), "the password leaked: {stderr}");
        assert!(started.elapsed() < Duration::from_secs(30));
    }
    // A store of another schema version is refused and left as it is.
    let url = database(&url, "version");
    let (code, _, stderr) = run(pae(&dir).args(["runs", "--store", &url]));
    assert_eq!(code, 0, "{stderr}");
    let bumped = Command::new("psql")
        .arg(&url)
        .args(["-X", "-q", "-At", "-c"])
        .arg("UPDATE pae.schema_version SET version = version + 1 RETURNING version")
        .output()
        .expect("psql runs");
    assert!(bumped.status.success(), "{bumped:?}");
    let version = String::from_utf8_lossy(&bumped.stdout).trim().to_owned();
    let script = script(&dir);
    let script = script.to_str().expect("a UTF-8 path");
    let mut submit = vec!["submit", "--store", &url, "--script", script];
    submit.extend(FLAGS);
    submit.push("x");
    for args in [
        vec!["runs", "--store", &url],
        vec!["worker", "--store", &url],
        submit,
    ] {
        let (code, _, stderr) = run(pae(&dir).args(&args));
        assert_eq!(code, 10, "{args:?}: {stderr}");
        assert!(
            stderr.contains(&format!("the run store has schema version {version}")),
            "{args:?}: {stderr}"
        );
    }
    let unchanged = Command::new("psql")
        .arg(&url)
        .args([
            "-X",
            "-q",
            "-At",
            "-c",
            "SELECT version FROM pae.schema_version",
        ])
        .output()
        .expect("psql runs");
    assert_eq!(String::from_utf8_lossy(&unchanged.stdout).trim(), version);
}

struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

#[test]
fn a_submitted_run_is_approved_elsewhere_and_finished_by_a_worker() {
    let Some(url) = require_env("PAE_TEST_POSTGRES_URL") else {
        return;
    };
    let dir = scratch("pg-approve");
    let url = database(&url, "approve");
    let script = script(&dir);
    let (code, stdout, stderr) = run(pae(&dir)
        .args(["submit", "--store", &url, "--approve", "--script"])
        .arg(&script)
        .args(FLAGS)
        .arg("record two steps"));
    assert_eq!(code, 0, "{stderr}");
    let id = stdout.lines().last().expect("the run id").trim().to_owned();
    assert!(id.starts_with('r'), "{stdout}");
    let worker = Worker(
        pae(&dir)
            .args(["worker", "--store", &url, "--concurrency", "2"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pae worker starts"),
    );
    let status = |dir: &Path| -> String {
        let (_, stdout, _) = run(pae(dir).args(["show", &id, "--json", "--store", &url]));
        serde_json::from_str::<serde_json::Value>(&stdout)
            .map(|v| v["status"].as_str().unwrap_or_default().to_owned())
            .unwrap_or_default()
    };
    let wait = |want: &str| {
        let started = Instant::now();
        while status(&dir) != want {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "run {id} never became {want}: {}",
                status(&dir)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    wait("awaiting_approval");
    let (code, _, stderr) = run(pae(&dir).args(["approve", &id, "--store", &url]));
    assert_eq!(code, 0, "{stderr}");
    wait("succeeded");
    drop(worker);
    let (code, stdout, _) = run(pae(&dir).args(["runs", "--json", "--store", &url]));
    assert_eq!(code, 0);
    let runs: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(runs.as_array().map(Vec::len), Some(1));
    // The two recording steps and the answer step.
    assert_eq!(runs[0]["steps_committed"], 3);
    // Each step's side effect happened once.
    let keys = std::fs::read_dir(dir.join("effects/keys")).unwrap().count();
    assert_eq!(keys, 2);
}
