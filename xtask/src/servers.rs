//! The test servers, all on 127.0.0.1: llama-cpp-python's OpenAI-compatible
//! server and the Ollama-API stand-in (crates/pae-ollama/tests/fixtures),
//! both serving the default model. Started before the tests, stopped when
//! the guard drops (also on error).

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::setup::{Models, venv_python};
use crate::util::{Result, cache_dir, step};

/// How long a server may take to answer its readiness probe.
const READY_TIMEOUT: Duration = Duration::from_secs(180);

const OLLAMA_STANDIN: &str = "crates/pae-ollama/tests/fixtures/ollama_standin.py";

/// Running servers; dropping this stops them.
pub(crate) struct Servers {
    children: Vec<(String, Child)>,
    env: Vec<(String, String)>,
}

impl Servers {
    /// Adds the servers' addresses to a test command's environment.
    pub(crate) fn export(&self, command: &mut Command) {
        for (key, value) in &self.env {
            command.env(key, value);
        }
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        for (name, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
            eprintln!("stopped {name}");
        }
    }
}

/// Starts both servers and waits until they answer.
pub(crate) fn start(models: &Models) -> Result<Servers> {
    let python = venv_python();
    let logs = cache_dir().join("logs");
    fs::create_dir_all(&logs)?;
    let mut servers = Servers {
        children: Vec::new(),
        env: Vec::new(),
    };

    let openai_port = free_port()?;
    step(&format!(
        "starting llama-cpp-python's OpenAI-compatible server on 127.0.0.1:{openai_port}"
    ));
    let mut openai = Command::new(&python);
    openai
        .args(["-m", "llama_cpp.server", "--model"])
        .arg(&models.default)
        .args(["--model_alias", "local", "--host", "127.0.0.1", "--port"])
        .arg(openai_port.to_string())
        .args(["--n_ctx", "4096", "--n_threads", "2", "--seed", "42"])
        // By default the server ends a running stream when another request
        // arrives; tests from several crates share it.
        .args(["--interrupt_requests", "False"]);
    servers.spawn(
        "openai-compatible server",
        openai,
        logs.join("openai-server.log"),
    )?;
    servers.env.push((
        "PAE_OPENAI_TEST_BASE_URL".into(),
        format!("http://127.0.0.1:{openai_port}/v1"),
    ));
    servers
        .env
        .push(("PAE_OPENAI_TEST_MODEL".into(), "local".into()));

    let ollama_port = free_port()?;
    if PathBuf::from(OLLAMA_STANDIN).exists() {
        step(&format!(
            "starting the Ollama-API stand-in on 127.0.0.1:{ollama_port}"
        ));
        let mut ollama = Command::new(&python);
        ollama
            .arg(OLLAMA_STANDIN)
            .arg("--model")
            .arg(&models.default)
            .args([
                "--model-name",
                "qwen2.5-coder:0.5b",
                "--host",
                "127.0.0.1",
                "--port",
            ])
            .arg(ollama_port.to_string());
        servers.spawn(
            "Ollama-API stand-in",
            ollama,
            logs.join("ollama-standin.log"),
        )?;
        servers.env.push((
            "PAE_OLLAMA_TEST_HOST".into(),
            format!("http://127.0.0.1:{ollama_port}"),
        ));
        servers
            .env
            .push(("PAE_OLLAMA_TEST_MODEL".into(), "qwen2.5-coder:0.5b".into()));
    }

    wait_ready(openai_port, "/v1/models", &logs.join("openai-server.log"))?;
    if PathBuf::from(OLLAMA_STANDIN).exists() {
        wait_ready(
            ollama_port,
            "/api/version",
            &logs.join("ollama-standin.log"),
        )?;
    }
    Ok(servers)
}

impl Servers {
    fn spawn(&mut self, name: &str, mut command: Command, log: PathBuf) -> Result<()> {
        let file = fs::File::create(&log)?;
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .map_err(|e| format!("could not start the {name}: {e}"))?;
        self.children.push((name.to_owned(), child));
        Ok(())
    }
}

/// Starts llama-cpp-python's OpenAI-compatible server alone on `model`
/// (as the test servers are started) and waits until it answers; returns
/// it with its base URL. The model is served as `local`.
pub(crate) fn start_openai(model: &std::path::Path) -> Result<(Servers, String)> {
    let logs = cache_dir().join("logs");
    fs::create_dir_all(&logs)?;
    let port = free_port()?;
    let mut servers = Servers {
        children: Vec::new(),
        env: Vec::new(),
    };
    let mut command = Command::new(venv_python());
    command
        .args(["-m", "llama_cpp.server", "--model"])
        .arg(model)
        .args(["--model_alias", "local", "--host", "127.0.0.1", "--port"])
        .arg(port.to_string())
        .args(["--n_ctx", "4096", "--n_threads", "2", "--seed", "42"]);
    let log = logs.join("eval-openai-server.log");
    servers.spawn("openai-compatible server", command, log.clone())?;
    wait_ready(port, "/v1/models", &log)?;
    Ok((servers, format!("http://127.0.0.1:{port}/v1")))
}

/// A port that was free a moment ago.
fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Polls `GET path` until it answers 200.
fn wait_ready(port: u16, path: &str, log: &PathBuf) -> Result<()> {
    let started = Instant::now();
    while started.elapsed() < READY_TIMEOUT {
        if http_ok(port, path) {
            eprintln!(
                "127.0.0.1:{port} ready after {:.1} s",
                started.elapsed().as_secs_f64()
            );
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let tail = fs::read_to_string(log).unwrap_or_default();
    let tail: String = tail
        .lines()
        .rev()
        .take(20)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n");
    Err(format!("the server on 127.0.0.1:{port} did not become ready within {READY_TIMEOUT:?}; log tail:\n{tail}").into())
}

fn http_ok(port: u16, path: &str) -> bool {
    let Ok(mut stream) =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1))
    else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 16];
    stream.read(&mut head).is_ok_and(|n| {
        head[..n].starts_with(b"HTTP/1.1 200") || head[..n].starts_with(b"HTTP/1.0 200")
    })
}
