//! Building the chat model the run uses, from the flags.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pae_core::{Capabilities, ChatModel, ChatModelExt, ProviderError, Sampling};
use pae_llamacpp::{LlamaCppConfig, LlamaCppModel};
use pae_ollama::OllamaChat;
use pae_openai::{OpenAiChat, SchemaMode};
use serde::Serialize;

use crate::cli::{Compat, Provider, RunArgs};
use crate::exit::{Failure, FailureKind};
use crate::scripted::ScriptedProvider;

/// The default local model's file name.
pub(crate) const DEFAULT_MODEL_FILE: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf";
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

/// The local model's path: `--model`, `PAE_MODEL`, or the default file in
/// the cache.
pub(crate) fn local_model_path(args: &RunArgs) -> PathBuf {
    args.model
        .clone()
        .unwrap_or_else(|| cache_dir().join("models").join(DEFAULT_MODEL_FILE))
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

/// Builds the model for the flags.
pub(crate) async fn build(args: &RunArgs) -> Result<Built, Failure> {
    let started = Instant::now();
    let (model, mut info): (Arc<dyn ChatModel>, ModelInfo) = match args.provider {
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
                .with_delay(std::time::Duration::from_millis(args.script_delay_ms));
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
        temperature: Some(args.temperature),
        top_p: None,
        max_tokens: Some(args.max_tokens),
        seed: Some(args.seed),
    };
    Ok(Built {
        // Every call of a run is reproducible with the same flags, whatever
        // a component leaves unset.
        model: Arc::new(model.with_sampling_defaults(sampling)),
        info,
    })
}

async fn local(args: &RunArgs) -> Result<(Arc<dyn ChatModel>, ModelInfo), Failure> {
    let path = local_model_path(args);
    if !path.exists() {
        let hint = if args.model.is_some() {
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
    let mut config = LlamaCppConfig::new(&path)
        .with_context_size(args.ctx_size)
        .with_default_max_tokens(Some(args.max_tokens));
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

fn openai(args: &RunArgs) -> Result<(Arc<dyn ChatModel>, ModelInfo), Failure> {
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
    }
    let name = args.model_name.clone().unwrap_or_else(|| {
        if base_url.is_some() {
            String::from("local")
        } else {
            String::from(DEFAULT_OPENAI_MODEL)
        }
    });
    let mut chat = OpenAiChat::new(&name).with_timeout(Duration::from_secs(600));
    if let Some(url) = &base_url {
        chat = chat.with_base_url(url);
    }
    if let Some(key) = api_key {
        chat = chat.with_api_key(key);
    }
    if args.compat == Compat::LlamaCppPython {
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
        base_url: Some(base_url.unwrap_or_else(|| DEFAULT_OPENAI_BASE_URL.to_owned())),
        capabilities: chat.capabilities(),
        load_ms: 0.0,
    };
    Ok((Arc::new(chat), info))
}

async fn ollama(args: &RunArgs) -> Result<(Arc<dyn ChatModel>, ModelInfo), Failure> {
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
    let chat = chat
        .with_timeout(Duration::from_secs(600))
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
    fn urls_are_checked() {
        assert!(check_url("http://127.0.0.1:8080/v1", "--base-url").is_ok());
        assert!(check_url("https://api.example.com", "--base-url").is_ok());
        let err = check_url("127.0.0.1:8080", "--base-url").unwrap_err();
        assert_eq!(err.kind, FailureKind::Usage);
        assert!(check_url("http://", "--base-url").is_err());
    }
}
