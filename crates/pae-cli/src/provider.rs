//! Building the chat model the run uses, from the flags.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pae_core::{Capabilities, ChatModel, ChatModelExt, ProviderError, RetryPolicy, Sampling};
use pae_llamacpp::{LlamaCppConfig, LlamaCppModel};
use pae_ollama::OllamaChat;
use pae_openai::{OpenAiChat, SchemaMode};
use serde::Serialize;

use crate::cli::{AgentArgs, Compat, ModelArgs, Provider};
use crate::exit::{Failure, FailureKind};
use crate::scripted::ScriptedProvider;

/// The default local model's file name.
pub(crate) const DEFAULT_MODEL_FILE: &str = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf";
const DEFAULT_OPENAI_MODEL: &str = "gpt-4o-mini";
const DEFAULT_OPENAI_BASE_URL: &str = "https://api.openai.com/v1";
const DEFAULT_OLLAMA_MODEL: &str = "qwen2.5-coder:0.5b";

/// The model a run uses, and how it was set up.
pub(crate) struct Built {
    pub(crate) model: Arc<dyn ChatModel>,
    pub(crate) info: ModelInfo,
}

/// What the transcript says about the model.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ModelInfo {
    pub(crate) provider: &'static str,
    pub(crate) model: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) path: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) base_url: Option<String>,
    pub(crate) capabilities: Capabilities,
    pub(crate) load_ms: f64,
}

/// `$PAE_CACHE_DIR`, or `~/.cache/pae`.
pub(crate) fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PAE_CACHE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache").join("pae")
}

/// The default time limit of one model call.
const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(600);
/// The default attempts per model call.
const DEFAULT_ATTEMPTS: u32 = 3;
/// The default context size of the local model.
const DEFAULT_CTX_SIZE: u32 = 4096;

/// The provider the flags choose.
pub(crate) fn provider(args: &ModelArgs) -> Provider {
    args.provider.unwrap_or(Provider::Local)
}

/// The local model's path: `--model`, `PAE_MODEL`, or the default file in
/// the cache.
pub(crate) fn local_model_path(args: &ModelArgs) -> PathBuf {
    args.model
        .clone()
        .or_else(|| env_var("PAE_MODEL").map(PathBuf::from))
        .unwrap_or_else(|| cache_dir().join("models").join(DEFAULT_MODEL_FILE))
}

/// Refuses flags the chosen provider would ignore: `--model-name gpt-4o`
/// without `--provider openai` must not quietly run the local model.
pub(crate) fn check_flags(args: &ModelArgs) -> Result<(), Failure> {
    let provider = provider(args);
    let mut ignored = Vec::new();
    let remote = matches!(provider, Provider::Openai | Provider::Ollama);
    if !remote {
        if args.model_name.is_some() {
            ignored.push("--model-name");
        }
        if args.base_url.is_some() {
            ignored.push("--base-url");
        }
    }
    if provider != Provider::Openai && args.compat.is_some() {
        ignored.push("--compat");
    }
    if provider != Provider::Local {
        if args.model.is_some() {
            ignored.push("--model");
        }
        if args.ctx_size.is_some() {
            ignored.push("--ctx-size");
        }
        if args.threads.is_some() {
            ignored.push("--threads");
        }
    }
    if provider != Provider::Scripted && (args.script.is_some() || args.script_delay_ms.is_some()) {
        ignored.push("--script");
    }
    if ignored.is_empty() {
        return Ok(());
    }
    let hint = match provider {
        Provider::Local => " (add --provider openai or --provider ollama to use a server)",
        _ => "",
    };
    Err(Failure::new(
        FailureKind::Usage,
        format!(
            "{} has no effect with --provider {}{hint}",
            ignored.join(", "),
            provider.as_str()
        ),
    ))
}

/// A URL with any `user:password@` removed, for what is stored, printed
/// or written to a transcript.
pub(crate) fn without_credentials(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

/// Whether a URL names this machine.
fn is_loopback(url: &str) -> bool {
    let Some((_, rest)) = url.split_once("://") else {
        return false;
    };
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.split_once(']').map(|(h, _)| h))
        .unwrap_or_else(|| host.split(':').next().unwrap_or(host));
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn check_url(url: &str, flag: &str) -> Result<(), Failure> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    match rest {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') => Ok(()),
        _ => Err(Failure::new(
            FailureKind::Usage,
            format!("{flag} {url:?} is not an http:// or https:// URL"),
        )),
    }
}

/// Builds the model for the flags; `sampling` sets every call's defaults.
pub(crate) async fn build(args: &ModelArgs, agent: &AgentArgs) -> Result<Built, Failure> {
    check_flags(args)?;
    let started = Instant::now();
    let (model, mut info): (Arc<dyn ChatModel>, ModelInfo) = match provider(args) {
        Provider::Local => local(args).await?,
        Provider::Openai => openai(args)?,
        Provider::Ollama => ollama(args).await?,
        Provider::Scripted => {
            let path = args.script.as_ref().ok_or_else(|| {
                Failure::new(
                    FailureKind::Usage,
                    "--provider scripted needs --script FILE",
                )
            })?;
            let model = ScriptedProvider::from_file(path)
                .map_err(|err| Failure::new(FailureKind::Usage, err.to_string()))?
                .with_delay(std::time::Duration::from_millis(
                    args.script_delay_ms.unwrap_or_default(),
                ));
            let info = ModelInfo {
                provider: "scripted",
                model: model.model_name(),
                path: Some(path.clone()),
                base_url: None,
                capabilities: model.capabilities(),
                load_ms: 0.0,
            };
            (Arc::new(model), info)
        }
    };
    info.load_ms = started.elapsed().as_secs_f64() * 1000.0;
    let sampling = Sampling {
        temperature: Some(agent.temperature),
        top_p: None,
        max_tokens: Some(agent.max_tokens),
        seed: Some(agent.seed),
    };
    // Every call of a run is reproducible with the same flags, whatever a
    // component leaves unset; a transient server error (429, 5xx, a
    // dropped connection) is tried again with backoff.
    let model = model.with_sampling_defaults(sampling);
    // Canned replies are a test double: a scripted failure is the answer
    // under test, not a transient fault to try again.
    let default_attempts = if provider(args) == Provider::Scripted {
        1
    } else {
        DEFAULT_ATTEMPTS
    };
    let attempts = args.attempts.unwrap_or(default_attempts);
    let model: Arc<dyn ChatModel> = if attempts > 1 {
        Arc::new(model.with_retry(RetryPolicy::new().with_max_attempts(attempts)))
    } else {
        Arc::new(model)
    };
    Ok(Built { model, info })
}

async fn local(args: &ModelArgs) -> Result<(Arc<dyn ChatModel>, ModelInfo), Failure> {
    let path = local_model_path(args);
    if !path.exists() {
        let hint = if args.model.is_some() || env_var("PAE_MODEL").is_some() {
            "check --model / PAE_MODEL"
        } else {
            "fetch the default model with `cargo xtask fetch-models`, or pass --model PATH \
             (or set PAE_MODEL)"
        };
        return Err(Failure::new(
            FailureKind::ModelFile,
            format!("model file {} not found; {hint}", path.display()),
        ));
    }
    // Prompts read before stay on disk, so the planner's long system
    // prompt is read once, not on every run; PAE_PROMPT_CACHE=off turns it
    // off.
    let disk_cache = (env_var("PAE_PROMPT_CACHE").as_deref() != Some("off"))
        .then(|| cache_dir().join("prompt-cache"));
    let mut config = LlamaCppConfig::new(&path)
        .with_context_size(args.ctx_size.unwrap_or(DEFAULT_CTX_SIZE))
        .with_prompt_cache_dir(disk_cache);
    if let Some(threads) = args.threads {
        config = config.with_threads(threads);
    }
    let loaded = tokio::task::spawn_blocking(move || LlamaCppModel::load(config))
        .await
        .map_err(|err| {
            Failure::new(
                FailureKind::RunFailed,
                format!("loading the model failed: {err}"),
            )
        })?;
    let model = loaded.map_err(|err| match err {
        ProviderError::Configuration { message } => Failure::new(FailureKind::ModelFile, message),
        other => Failure::from_error(&other, "loading the model failed"),
    })?;
    let info = ModelInfo {
        provider: "local",
        model: model.model_name(),
        path: Some(path),
        base_url: None,
        capabilities: model.capabilities(),
        load_ms: 0.0,
    };
    Ok((Arc::new(model), info))
}

fn openai(args: &ModelArgs) -> Result<(Arc<dyn ChatModel>, ModelInfo), Failure> {
    let base_url = args.base_url.clone().or_else(|| env_var("OPENAI_BASE_URL"));
    let api_key = env_var("OPENAI_API_KEY");
    if base_url.is_none() && api_key.is_none() {
        return Err(Failure::new(
            FailureKind::ApiKey,
            "OPENAI_API_KEY is not set; export it, or pass --base-url for a compatible server \
             that needs no key",
        ));
    }
    if let Some(url) = &base_url {
        check_url(url, "--base-url")?;
        if api_key.is_some() && url.starts_with("http://") && !is_loopback(url) {
            crate::term::err(&format!(
                "warning: OPENAI_API_KEY is sent in clear text over plain http:// to {}; use \
                 https:// for servers on other machines",
                without_credentials(url)
            ));
        }
    }
    let name = args.model_name.clone().unwrap_or_else(|| {
        if base_url.is_some() {
            String::from("local")
        } else {
            String::from(DEFAULT_OPENAI_MODEL)
        }
    });
    let timeout = args
        .call_timeout
        .map_or(DEFAULT_CALL_TIMEOUT, Duration::from_secs);
    let mut chat = OpenAiChat::new(&name).with_timeout(timeout);
    if let Some(url) = &base_url {
        chat = chat.with_base_url(url);
    }
    if let Some(key) = api_key {
        chat = chat.with_api_key(key);
    }
    if args.compat == Some(Compat::LlamaCppPython) {
        chat = chat
            .with_schema_mode(SchemaMode::JsonObjectWithSchema)
            .with_capabilities(Capabilities {
                native_tools: false,
                json_schema: true,
                streaming: true,
            });
    }
    let info = ModelInfo {
        provider: "openai",
        model: name,
        path: None,
        base_url: Some(without_credentials(
            &base_url.unwrap_or_else(|| DEFAULT_OPENAI_BASE_URL.to_owned()),
        )),
        capabilities: chat.capabilities(),
        load_ms: 0.0,
    };
    Ok((Arc::new(chat), info))
}

async fn ollama(args: &ModelArgs) -> Result<(Arc<dyn ChatModel>, ModelInfo), Failure> {
    let name = args
        .model_name
        .clone()
        .unwrap_or_else(|| DEFAULT_OLLAMA_MODEL.to_owned());
    let chat = match &args.base_url {
        Some(url) => OllamaChat::new(&name).with_host(url),
        None => OllamaChat::from_env(&name)
            .map_err(|err| Failure::new(FailureKind::Usage, format!("OLLAMA_HOST: {err}")))?,
    };
    let host = chat
        .host()
        .map_err(|err| Failure::new(FailureKind::Usage, format!("--base-url: {err}")))?
        .to_string();
    // Asking what the model can do also shows early whether the server is
    // there and has the model.
    let host = without_credentials(&host);
    let timeout = args
        .call_timeout
        .map_or(DEFAULT_CALL_TIMEOUT, Duration::from_secs);
    let chat = chat
        .with_timeout(timeout)
        .detect_capabilities()
        .await
        .map_err(|err| Failure::from_error(&err, &format!("the Ollama server at {host}")))?;
    let info = ModelInfo {
        provider: "ollama",
        model: name,
        path: None,
        base_url: Some(host),
        capabilities: chat.capabilities(),
        load_ms: 0.0,
    };
    Ok((Arc::new(chat), info))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_removed_from_urls() {
        assert_eq!(
            without_credentials("http://user:secret@10.0.0.2:8080/v1?x=@y"),
            "http://10.0.0.2:8080/v1?x=@y"
        );
        assert_eq!(
            without_credentials("https://api.example.com/v1"),
            "https://api.example.com/v1"
        );
        assert_eq!(without_credentials("not a url"), "not a url");
    }

    #[test]
    fn loopback_hosts_are_recognised() {
        assert!(is_loopback("http://127.0.0.1:8080/v1"));
        assert!(is_loopback("http://localhost/v1"));
        assert!(is_loopback("http://[::1]:80/v1"));
        assert!(is_loopback("http://u:p@127.0.0.1/v1"));
        assert!(!is_loopback("http://10.0.0.2/v1"));
        assert!(!is_loopback("http://127.0.0.1.evil.com/v1"));
    }

    #[test]
    fn flags_the_provider_ignores_are_refused() {
        let args = ModelArgs {
            model_name: Some("gpt-4o".into()),
            ..ModelArgs::default()
        };
        let err = check_flags(&args).unwrap_err();
        assert_eq!(err.kind, FailureKind::Usage);
        assert!(err.message.contains("--model-name"), "{err}");
        let args = ModelArgs {
            provider: Some(Provider::Openai),
            model: Some("x.gguf".into()),
            ..ModelArgs::default()
        };
        assert!(check_flags(&args).is_err());
        let args = ModelArgs {
            provider: Some(Provider::Openai),
            model_name: Some("gpt-4o".into()),
            ..ModelArgs::default()
        };
        assert!(check_flags(&args).is_ok());
    }

    #[test]
    fn urls_are_checked() {
        assert!(check_url("http://127.0.0.1:8080/v1", "--base-url").is_ok());
        assert!(check_url("https://api.example.com", "--base-url").is_ok());
        let err = check_url("127.0.0.1:8080", "--base-url").unwrap_err();
        assert_eq!(err.kind, FailureKind::Usage);
        assert!(check_url("http://", "--base-url").is_err());
    }
}
