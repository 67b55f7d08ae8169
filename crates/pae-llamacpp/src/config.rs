//! [`LlamaCppConfig`]: where the model file is and how to run it.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};

/// Default context size in tokens.
pub const DEFAULT_CONTEXT_SIZE: u32 = 4096;
/// Default cap on generated tokens when a request sets no `max_tokens`.
pub const DEFAULT_MAX_TOKENS: u32 = 1024;
/// Default sampling temperature when a request sets none (llama.cpp's own
/// default).
pub const DEFAULT_TEMPERATURE: f32 = 0.8;

/// How to load and run a GGUF model. Required: the path; everything else
/// has a default.
///
/// ```
/// use pae_llamacpp::LlamaCppConfig;
///
/// let config = LlamaCppConfig::new("models/qwen.gguf")
///     .with_context_size(8192)
///     .with_threads(2)
///     .with_workers(1);
/// assert_eq!(config.context_size(), 8192);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaCppConfig {
    path: PathBuf,
    context_size: NonZeroU32,
    batch_size: u32,
    threads: Option<NonZeroU32>,
    workers: usize,
    prompt_cache: bool,
    prompt_cache_dir: Option<PathBuf>,
    chat_template: Option<String>,
    default_max_tokens: Option<u32>,
    default_temperature: f32,
    flash_attention: Option<bool>,
    name: Option<String>,
}

impl LlamaCppConfig {
    /// A configuration for the GGUF file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            context_size: NonZeroU32::new(DEFAULT_CONTEXT_SIZE).unwrap_or(NonZeroU32::MIN),
            batch_size: 512,
            threads: None,
            workers: 1,
            prompt_cache: true,
            prompt_cache_dir: None,
            chat_template: None,
            default_max_tokens: Some(DEFAULT_MAX_TOKENS),
            default_temperature: DEFAULT_TEMPERATURE,
            flash_attention: None,
            name: None,
        }
    }

    /// The context size in tokens (prompt plus reply); at least 16.
    #[must_use]
    pub fn with_context_size(mut self, tokens: u32) -> Self {
        self.context_size = NonZeroU32::new(tokens.max(16)).unwrap_or(NonZeroU32::MIN);
        self
    }

    /// Tokens decoded per batch while reading the prompt; at least 1.
    #[must_use]
    pub fn with_batch_size(mut self, tokens: u32) -> Self {
        self.batch_size = tokens.max(1);
        self
    }

    /// CPU threads per request (default: all available cores).
    #[must_use]
    pub fn with_threads(mut self, threads: u32) -> Self {
        self.threads = NonZeroU32::new(threads);
        self
    }

    /// The number of requests served at the same time, each with its own
    /// llama.cpp context (and so its own memory for the context). Further
    /// requests wait in a queue. Default 1; at least 1.
    #[must_use]
    pub fn with_workers(mut self, workers: usize) -> Self {
        self.workers = workers.max(1);
        self
    }

    /// Whether a worker keeps the previous request's tokens and reuses the
    /// longest common prefix of the next prompt instead of reading it again
    /// (default on). Agents resend a growing conversation, so this saves
    /// most of the prompt time.
    #[must_use]
    pub fn with_prompt_cache(mut self, enabled: bool) -> Self {
        self.prompt_cache = enabled;
        self
    }

    /// Also keeps prompts read before on disk under `dir` (a directory per
    /// model file), so a new process reuses the longest common prefix too:
    /// a long system prompt sent by every run is read once (default: no
    /// directory). Each entry holds a prompt's keys and values (for a 1.5B
    /// model about 28 KB per token); at most 24 are kept per model, the
    /// least recently used go first. Needs the prompt cache to be on.
    #[must_use]
    pub fn with_prompt_cache_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.prompt_cache_dir = dir;
        self
    }

    /// Uses this chat template instead of the one in the GGUF file: the name
    /// of one of llama.cpp's built-in templates (`"chatml"`, `"llama3"`, …)
    /// or a template text llama.cpp recognises. Files without a template
    /// fall back to `"chatml"`.
    #[must_use]
    pub fn with_chat_template(mut self, template: impl Into<String>) -> Self {
        self.chat_template = Some(template.into());
        self
    }

    /// The cap on generated tokens for requests that set no `max_tokens`
    /// (default [`DEFAULT_MAX_TOKENS`]; `None`: until the context is full).
    #[must_use]
    pub fn with_default_max_tokens(mut self, max_tokens: Option<u32>) -> Self {
        self.default_max_tokens = max_tokens;
        self
    }

    /// The temperature for requests that set none (default
    /// [`DEFAULT_TEMPERATURE`]).
    #[must_use]
    pub fn with_default_temperature(mut self, temperature: f32) -> Self {
        self.default_temperature = temperature;
        self
    }

    /// Whether llama.cpp uses flash attention: `Some(true)` or
    /// `Some(false)` to force it, `None` (the default) to let llama.cpp
    /// decide for the device.
    #[must_use]
    pub fn with_flash_attention(mut self, enabled: Option<bool>) -> Self {
        self.flash_attention = enabled;
        self
    }

    /// The name reported by `model_name` (default: the file name without
    /// `.gguf`).
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The model file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The context size in tokens.
    pub fn context_size(&self) -> u32 {
        self.context_size.get()
    }

    /// Tokens per prompt batch.
    pub fn batch_size(&self) -> u32 {
        self.batch_size
    }

    /// CPU threads per request.
    pub fn threads(&self) -> u32 {
        self.threads.map_or_else(
            || {
                std::thread::available_parallelism()
                    .map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX))
            },
            NonZeroU32::get,
        )
    }

    /// Requests served at the same time.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Whether prompt prefixes are reused.
    pub fn prompt_cache(&self) -> bool {
        self.prompt_cache
    }

    /// Where prompts are kept on disk, if anywhere.
    pub fn prompt_cache_dir(&self) -> Option<&Path> {
        self.prompt_cache_dir.as_deref()
    }

    /// The chat template override, if any.
    pub fn chat_template(&self) -> Option<&str> {
        self.chat_template.as_deref()
    }

    /// The generation cap for requests that set none.
    pub fn default_max_tokens(&self) -> Option<u32> {
        self.default_max_tokens
    }

    /// The temperature for requests that set none.
    pub fn default_temperature(&self) -> f32 {
        self.default_temperature
    }

    /// The flash-attention setting (`None`: llama.cpp decides).
    pub fn flash_attention(&self) -> Option<bool> {
        self.flash_attention
    }

    /// The model's name.
    pub fn name(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            self.path
                .file_name()
                .map(|n| n.to_string_lossy().trim_end_matches(".gguf").to_owned())
                .unwrap_or_else(|| String::from("llama.cpp"))
        })
    }
}
