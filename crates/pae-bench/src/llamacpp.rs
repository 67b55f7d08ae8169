//! The `llamacpp` suite: prompt and generation tokens per second of
//! `pae-llamacpp` on a GGUF model (the default Qwen2.5-Coder-0.5B), side by
//! side with llama.cpp itself through llama-cpp-python on the same file,
//! prompt and settings, in the same run.
//!
//! Both engines get the same prompt text (rendered once by `pae-llamacpp`'s
//! chat template, so both read the same tokens), greedy decoding, the same
//! context size, batch size, thread count and flash-attention setting, and
//! no prompt cache (every run reads the whole prompt). Both are timed the
//! same way, from the outside, as a user sees them: the prompt rate is
//! prompt tokens over the time to the first generated token, the
//! generation rate is the tokens after the first over the time from the
//! first to the last. Runs alternate between the engines so that load from
//! other processes hits both alike; the median of the repeats is shown.
//! A third row shows `pae-llamacpp` generating under a JSON-schema grammar.
//!
//! llama-cpp-python runs as a child process (`python -c` with a small
//! script that answers one run per line on stdin); it is skipped with a
//! note when its Python is missing.
//!
//! The suite needs the `llamacpp` feature (which compiles llama.cpp):
//! `cargo run --release -p pae-bench --features llamacpp -- llamacpp`.

use std::path::PathBuf;

use crate::BenchError;
use crate::options::Format;

/// The suite's options. Needs the `llamacpp` feature:
/// `cargo run --release -p pae-bench --features llamacpp -- llamacpp`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The GGUF file (default $PAE_MODEL, else
    /// $PAE_CACHE_DIR/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf,
    /// PAE_CACHE_DIR defaulting to ~/.cache/pae).
    #[arg(long, value_name = "PATH")]
    pub model: Option<PathBuf>,
    /// The Python with llama-cpp-python (default
    /// $PAE_CACHE_DIR/venv/bin/python); `none` skips it.
    #[arg(long, value_name = "PATH")]
    pub python: Option<String>,
    /// Tokens generated per run (at least 2).
    #[arg(long, value_name = "N", default_value_t = 128)]
    pub gen_tokens: u32,
    /// Timed runs per engine; the median is shown.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub repeat: usize,
    /// CPU threads (default: all cores).
    #[arg(long, value_name = "N")]
    pub threads: Option<u32>,
    /// Context size.
    #[arg(long, value_name = "N", default_value_t = 4096)]
    pub ctx: u32,
    /// Flash attention, for both engines.
    #[arg(long, value_name = "B", default_value = "on", value_parser = on_off)]
    pub flash_attn: bool,
    /// Skip the JSON-schema row.
    #[arg(long)]
    pub no_grammar: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

fn on_off(text: &str) -> Result<bool, String> {
    match text {
        "on" => Ok(true),
        "off" => Ok(false),
        other => Err(format!("{other:?}: on or off")),
    }
}

/// What a run of the suite uses: the options with their defaults filled
/// in from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The GGUF file.
    pub model: PathBuf,
    /// The Python with llama-cpp-python; `None` skips it.
    pub python: Option<PathBuf>,
    /// Tokens generated per run.
    pub gen_tokens: u32,
    /// Timed runs per engine.
    pub repeat: usize,
    /// CPU threads.
    pub threads: u32,
    /// Context size.
    pub ctx: u32,
    /// Flash attention on.
    pub flash_attn: bool,
    /// Whether the JSON-schema row runs.
    pub grammar: bool,
    /// JSON lines instead of a table.
    pub json: bool,
}

/// `$PAE_CACHE_DIR`, else `~/.cache/pae`.
fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PAE_CACHE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache").join("pae")
}

/// The settings for `args`, defaults filled in.
pub fn settings(args: &Args) -> Settings {
    let model = args
        .model
        .clone()
        .or_else(|| {
            std::env::var_os("PAE_MODEL")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| {
            cache_dir()
                .join("models")
                .join("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf")
        });
    let python = match args.python.as_deref() {
        Some("none") => None,
        Some(path) => Some(PathBuf::from(path)),
        None => Some(cache_dir().join("venv").join("bin").join("python")),
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    Settings {
        model,
        python,
        gen_tokens: args.gen_tokens.max(2),
        repeat: args.repeat.max(1),
        threads: args.threads.unwrap_or(cores).max(1),
        ctx: args.ctx,
        flash_attn: args.flash_attn,
        grammar: !args.no_grammar,
        json: args.format == Format::Json,
    }
}

/// Runs the suite.
///
/// # Errors
/// [`BenchError::Usage`] for a build without the `llamacpp` feature;
/// [`BenchError::Failed`] when a model cannot be loaded or run.
pub fn run(args: &Args) -> Result<(), BenchError> {
    let settings = settings(args);
    #[cfg(feature = "llamacpp")]
    {
        imp::run(settings)
    }
    #[cfg(not(feature = "llamacpp"))]
    {
        let _ = settings;
        Err(BenchError::Usage(String::from(
            "pae-bench was built without the `llamacpp` feature; run \
             `cargo run --release -p pae-bench --features llamacpp -- llamacpp`",
        )))
    }
}

/// The figures of one timed generation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Prompt tokens read.
    pub prompt_tokens: u64,
    /// Tokens generated.
    pub gen_tokens: u64,
    /// Seconds from the request to the first generated token.
    pub first_token_s: f64,
    /// Seconds from the first to the last generated token.
    pub gen_s: f64,
}

impl Sample {
    /// Prompt tokens per second (time to the first token).
    pub fn prompt_rate(&self) -> f64 {
        rate(self.prompt_tokens as f64, self.first_token_s)
    }

    /// Generated tokens per second after the first.
    pub fn gen_rate(&self) -> f64 {
        rate(self.gen_tokens.saturating_sub(1) as f64, self.gen_s)
    }
}

fn rate(count: f64, seconds: f64) -> f64 {
    if seconds > 0.0 { count / seconds } else { 0.0 }
}

/// The median of `values` (0 for none).
pub fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// The llama-cpp-python side: loads the model once, then answers each
/// `run` line on stdin with one JSON line of figures.
pub const PYTHON_SCRIPT: &str = r#"
import json, sys, time
cfg = json.loads(sys.argv[1])
from llama_cpp import Llama
t0 = time.perf_counter()
llm = Llama(model_path=cfg["model"], n_ctx=cfg["n_ctx"], n_batch=cfg["n_batch"],
            n_ubatch=cfg["n_batch"], n_threads=cfg["threads"], n_threads_batch=cfg["threads"],
            flash_attn=cfg["flash_attn"], seed=cfg["seed"], verbose=False)
prompt_tokens = len(llm.tokenize(cfg["prompt"].encode("utf-8"), special=True))
print(json.dumps({"ready": True, "load_s": time.perf_counter() - t0,
                  "prompt_tokens": prompt_tokens}), flush=True)
for line in sys.stdin:
    if line.strip() != "run":
        break
    llm.reset()
    marks = []
    def mark(input_ids, scores):
        marks.append(time.perf_counter())
        return scores
    start = time.perf_counter()
    out = llm.create_completion(cfg["prompt"], max_tokens=cfg["gen_tokens"], temperature=0.0,
                                top_k=1, seed=cfg["seed"], logits_processor=[mark])
    end = time.perf_counter()
    usage = out["usage"]
    first = marks[0] if marks else end
    last = marks[-1] if marks else end
    print(json.dumps({"prompt_tokens": usage["prompt_tokens"],
                      "gen_tokens": usage["completion_tokens"],
                      "first_token_s": first - start, "gen_s": last - first,
                      "text": out["choices"][0]["text"][:80]}), flush=True)
"#;

#[cfg(feature = "llamacpp")]
mod imp {
    use std::io::{BufRead, BufReader, Write};
    use std::path::PathBuf;
    use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
    use std::time::Instant;

    use futures::StreamExt;
    use pae_core::{ChatModel, ChatRequest, Message, ResponseFormat};
    use pae_llamacpp::{LlamaCppConfig, LlamaCppModel};
    use serde_json::{Value, json};

    use super::{PYTHON_SCRIPT, Sample, Settings, median};
    use crate::BenchError;

    const STORY: &str = "The lighthouse on Gull Point had been dark for eleven years when Mara \
        Ellison took the keeper's job. The town council had voted to restore the light after a \
        fishing boat ran onto the rocks during a winter storm, and Mara, who had spent twenty \
        years repairing ship engines, was the only applicant who knew how to rebuild the old \
        clockwork that turned the lens. She arrived in March with two suitcases, a toolbox and a \
        grey cat named Pilot. The keeper's cottage smelled of salt and mildew. The stairs to the \
        lamp room were rusted through in three places, and the great Fresnel lens was cracked \
        along one of its brass seams. Every morning she climbed the tower with a lantern and a \
        notebook, measuring, sketching and listing the parts she would need. Every evening she \
        walked down to the harbour to ask the fishermen what they remembered about the light: how \
        fast it turned, what colour it shone, how far out to sea it could be seen. Old Tomas, \
        who had fished those waters for fifty years, told her the light had flashed twice every \
        ten seconds, white, and that on clear nights you could see it from the Horn Banks, \
        twenty miles out. He also told her about the night the light went dark.";

    fn failed(what: &str, error: impl std::fmt::Display) -> BenchError {
        BenchError::Failed(format!("{what}: {error}"))
    }

    fn request(gen_tokens: u32) -> ChatRequest {
        ChatRequest::new(vec![
            Message::system("You are a novelist. Write long, vivid prose."),
            Message::user(format!(
                "{STORY}\n\nContinue the story for several pages, in the same style."
            )),
        ])
        .with_temperature(0.0)
        .with_seed(1)
        .with_max_tokens(gen_tokens)
    }

    fn grammar_request(gen_tokens: u32) -> ChatRequest {
        request(gen_tokens).with_response_format(ResponseFormat::json_schema(
            "story",
            json!({
                "type": "object",
                "properties": {
                    "title": {"type": "string"},
                    "paragraphs": {"type": "array", "items": {"type": "string"}}
                },
                "required": ["title", "paragraphs"]
            }),
        ))
    }

    /// One timed streamed generation through the `ChatModel` API.
    async fn pae_run(model: &LlamaCppModel, request: ChatRequest) -> Result<Sample, BenchError> {
        let start = Instant::now();
        let mut stream = model
            .stream(request)
            .await
            .map_err(|e| failed("pae-llamacpp", e))?;
        let mut first = None;
        let mut last = start;
        let mut usage = None;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| failed("pae-llamacpp", e))?;
            let now = Instant::now();
            if !chunk.delta.is_empty() || !chunk.tool_calls.is_empty() {
                first.get_or_insert(now);
                last = now;
            }
            if chunk.usage.is_some() {
                usage = chunk.usage;
            }
        }
        let usage = usage.ok_or_else(|| failed("pae-llamacpp", "no usage reported"))?;
        let first = first.unwrap_or(last);
        Ok(Sample {
            prompt_tokens: usage.prompt_tokens,
            gen_tokens: usage.completion_tokens,
            first_token_s: (first - start).as_secs_f64(),
            gen_s: (last - first).as_secs_f64(),
        })
    }

    struct Python {
        child: Child,
        stdin: ChildStdin,
        stdout: BufReader<ChildStdout>,
        load_s: f64,
    }

    impl Python {
        fn start(python: &PathBuf, config: &Value) -> Result<Self, BenchError> {
            let mut child = Command::new(python)
                .arg("-c")
                .arg(PYTHON_SCRIPT)
                .arg(config.to_string())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .map_err(|e| failed(&format!("cannot start {}", python.display()), e))?;
            let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
                return Err(failed("llama-cpp-python", "no pipes to the child"));
            };
            let mut this = Self {
                child,
                stdin,
                stdout: BufReader::new(stdout),
                load_s: 0.0,
            };
            let ready = this.read_line()?;
            this.load_s = ready["load_s"].as_f64().unwrap_or(0.0);
            Ok(this)
        }

        fn read_line(&mut self) -> Result<Value, BenchError> {
            let mut line = String::new();
            let read = self
                .stdout
                .read_line(&mut line)
                .map_err(|e| failed("llama-cpp-python", e))?;
            if read == 0 {
                return Err(failed(
                    "llama-cpp-python",
                    "the script ended early (see its error above)",
                ));
            }
            serde_json::from_str(&line).map_err(|e| failed("llama-cpp-python's reply", e))
        }

        fn run(&mut self) -> Result<Sample, BenchError> {
            writeln!(self.stdin, "run").map_err(|e| failed("llama-cpp-python", e))?;
            self.stdin
                .flush()
                .map_err(|e| failed("llama-cpp-python", e))?;
            let reply = self.read_line()?;
            let num = |key: &str| reply[key].as_f64().unwrap_or(0.0);
            Ok(Sample {
                prompt_tokens: num("prompt_tokens") as u64,
                gen_tokens: num("gen_tokens") as u64,
                first_token_s: num("first_token_s"),
                gen_s: num("gen_s"),
            })
        }
    }

    impl Drop for Python {
        fn drop(&mut self) {
            let _ = writeln!(self.stdin, "quit");
            let _ = self.stdin.flush();
            let _ = self.child.wait();
        }
    }

    struct Row {
        engine: &'static str,
        load_s: f64,
        samples: Vec<Sample>,
    }

    impl Row {
        fn medians(&self) -> (f64, f64, u64, u64) {
            let mut prompt: Vec<f64> = self.samples.iter().map(Sample::prompt_rate).collect();
            let mut gen_rates: Vec<f64> = self.samples.iter().map(Sample::gen_rate).collect();
            let prompt_tokens = self.samples.first().map_or(0, |s| s.prompt_tokens);
            let gen_tokens = self.samples.first().map_or(0, |s| s.gen_tokens);
            (
                median(&mut prompt),
                median(&mut gen_rates),
                prompt_tokens,
                gen_tokens,
            )
        }
    }

    pub(super) fn run(settings: Settings) -> Result<(), BenchError> {
        if !settings.model.is_file() {
            return Err(BenchError::Failed(format!(
                "model file {} not found (cargo xtask fetch-models, or --model PATH)",
                settings.model.display()
            )));
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| failed("tokio", e))?;

        let load_start = Instant::now();
        let model = LlamaCppModel::load(
            LlamaCppConfig::new(&settings.model)
                .with_context_size(settings.ctx)
                .with_batch_size(512)
                .with_threads(settings.threads)
                .with_prompt_cache(false)
                .with_flash_attention(Some(settings.flash_attn)),
        )
        .map_err(|e| failed("loading the model in pae-llamacpp", e))?;
        let pae_load = load_start.elapsed().as_secs_f64();
        let prompt = model
            .render_prompt(&request(settings.gen_tokens))
            .map_err(|e| failed("rendering the prompt", e))?;

        let mut python = None;
        let mut python_note = None;
        match &settings.python {
            Some(path) if path.is_file() => {
                let config = json!({
                    "model": settings.model,
                    "n_ctx": model.context_size(),
                    "n_batch": 512,
                    "threads": settings.threads,
                    "flash_attn": settings.flash_attn,
                    "seed": 1,
                    "gen_tokens": settings.gen_tokens,
                    "prompt": prompt,
                });
                python = Some(Python::start(path, &config)?);
            }
            Some(path) => {
                python_note = Some(format!(
                    "llama-cpp-python skipped: {} not found (cargo xtask setup installs it)",
                    path.display()
                ));
            }
            None => python_note = Some(String::from("llama-cpp-python skipped (--python none)")),
        }

        let mut pae_row = Row {
            engine: "pae-llamacpp",
            load_s: pae_load,
            samples: Vec::new(),
        };
        let mut python_row = python.as_ref().map(|p| Row {
            engine: "llama-cpp-python",
            load_s: p.load_s,
            samples: Vec::new(),
        });
        let mut grammar_row = settings.grammar.then(|| Row {
            engine: "pae-llamacpp + JSON schema",
            load_s: pae_load,
            samples: Vec::new(),
        });

        // One untimed warm-up each, then alternate.
        runtime.block_on(pae_run(&model, request(8)))?;
        if let Some(p) = python.as_mut() {
            p.run()?;
        }
        for _ in 0..settings.repeat {
            pae_row
                .samples
                .push(runtime.block_on(pae_run(&model, request(settings.gen_tokens)))?);
            if let (Some(p), Some(row)) = (python.as_mut(), python_row.as_mut()) {
                row.samples.push(p.run()?);
            }
            if let Some(row) = grammar_row.as_mut() {
                row.samples
                    .push(runtime.block_on(pae_run(&model, grammar_request(settings.gen_tokens)))?);
            }
        }
        drop(python);

        let rows: Vec<&Row> = std::iter::once(&pae_row)
            .chain(python_row.as_ref())
            .chain(grammar_row.as_ref())
            .collect();
        let avx2 = cfg!(target_feature = "avx2");
        if settings.json {
            for row in &rows {
                let (prompt_rate, gen_rate, prompt_tokens, gen_tokens) = row.medians();
                println!(
                    "{}",
                    json!({
                        "suite": "llamacpp",
                        "engine": row.engine,
                        "model": settings.model,
                        "threads": settings.threads,
                        "ctx": model.context_size(),
                        "flash_attn": settings.flash_attn,
                        "avx2": avx2,
                        "repeat": settings.repeat,
                        "load_s": row.load_s,
                        "prompt_tokens": prompt_tokens,
                        "gen_tokens": gen_tokens,
                        "prompt_tokens_per_s": prompt_rate,
                        "gen_tokens_per_s": gen_rate,
                    })
                );
            }
        } else {
            println!(
                "llamacpp: {} | {} threads, ctx {}, batch 512, flash attention {}, greedy, \
                 median of {} runs",
                settings.model.display(),
                settings.threads,
                model.context_size(),
                if settings.flash_attn { "on" } else { "off" },
                settings.repeat
            );
            println!(
                "{:<28} {:>8} {:>14} {:>12} {:>14} {:>12}",
                "engine", "load s", "prompt tokens", "prompt t/s", "gen tokens", "gen t/s"
            );
            for row in &rows {
                let (prompt_rate, gen_rate, prompt_tokens, gen_tokens) = row.medians();
                println!(
                    "{:<28} {:>8.2} {:>14} {:>12.1} {:>14} {:>12.1}",
                    row.engine, row.load_s, prompt_tokens, prompt_rate, gen_tokens, gen_rate
                );
            }
            if let Some(python_row) = &python_row {
                let (p_ours, g_ours, _, _) = pae_row.medians();
                let (p_py, g_py, _, _) = python_row.medians();
                println!(
                    "pae-llamacpp / llama-cpp-python: prompt {:.2}x, generation {:.2}x",
                    if p_py > 0.0 { p_ours / p_py } else { 0.0 },
                    if g_py > 0.0 { g_ours / g_py } else { 0.0 }
                );
            }
            if !avx2 {
                println!(
                    "note: built without AVX2; build with RUSTFLAGS=\"-C target-cpu=x86-64-v3\" \
                     (as .cargo/config.toml does) so llama.cpp uses the CPU's vector \
                     instructions"
                );
            }
        }
        if let Some(note) = python_note {
            eprintln!("{note}");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_medians() {
        let sample = Sample {
            prompt_tokens: 300,
            gen_tokens: 101,
            first_token_s: 3.0,
            gen_s: 2.0,
        };
        assert_eq!(sample.prompt_rate(), 100.0);
        assert_eq!(sample.gen_rate(), 50.0);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&mut []), 0.0);
        let empty = Sample {
            prompt_tokens: 0,
            gen_tokens: 0,
            first_token_s: 0.0,
            gen_s: 0.0,
        };
        assert_eq!(empty.gen_rate(), 0.0);
    }
}
