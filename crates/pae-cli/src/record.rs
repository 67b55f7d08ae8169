//! The hidden `record` tool (for tests and `cargo xtask chaos`): a tool with
//! a side effect that deduplicates by idempotency key, as a payments or
//! mail API would.
//!
//! The effect is a file per key under `$PAE_TEST_EFFECTS` (created with
//! `O_EXCL`, so a key acts once however many processes call with it); every
//! call, acting or not, is also appended as a JSON line to
//! `$PAE_TEST_EFFECTS/calls.jsonl` and synced to disk before the tool
//! answers: `{"key", "run", "step", "call", "effect", "at_ms", "pid"}`.
//! A checker can then count the calls made for a step after the step was
//! committed, and the keys used per step.

use std::io::Write;
use std::path::PathBuf;

use async_trait::async_trait;
use pae_core::store::now_ms;
use pae_core::{Tool, ToolContext, ToolError};
use serde_json::{Value, json};

/// The environment variable naming the directory.
pub(crate) const EFFECTS_DIR: &str = "PAE_TEST_EFFECTS";

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct RecordTool {
    dir: PathBuf,
}

impl RecordTool {
    /// The tool writing under `$PAE_TEST_EFFECTS`.
    pub(crate) fn from_env() -> Result<Self, String> {
        let dir = std::env::var_os(EFFECTS_DIR)
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .ok_or_else(|| format!("--tools record needs {EFFECTS_DIR}=DIR"))?;
        std::fs::create_dir_all(dir.join("keys"))
            .map_err(|e| format!("{EFFECTS_DIR}={}: {e}", dir.display()))?;
        Ok(Self { dir })
    }

    fn act(&self, context: &ToolContext) -> std::io::Result<String> {
        let key = context.idempotency_key();
        let file_name: String = key
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let result = format!("recorded {key}");
        let path = self.dir.join("keys").join(file_name);
        let effect = match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut file) => {
                file.write_all(result.as_bytes())?;
                file.sync_all()?;
                true
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
            Err(e) => return Err(e),
        };
        let line = json!({
            "key": key,
            "run": context.run_id().map(ToString::to_string),
            "step": context.step_index(),
            "call": context.call(),
            "effect": effect,
            "at_ms": now_ms(),
            "pid": std::process::id(),
        });
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("calls.jsonl"))?;
        // One write of one line: appends from several processes do not
        // interleave.
        log.write_all(format!("{line}\n").as_bytes())?;
        log.sync_data()?;
        Ok(result)
    }
}

#[async_trait]
impl Tool for RecordTool {
    fn name(&self) -> &str {
        "record"
    }

    fn description(&self) -> &str {
        "Records that this step happened (a side effect, once per idempotency key)."
    }

    fn parameters(&self) -> Value {
        json!({"type": "object", "properties": {}})
    }

    async fn call(&self, _input: Value) -> Result<String, ToolError> {
        Err(ToolError::failed("record needs a run context"))
    }

    async fn call_with_context(
        &self,
        _input: Value,
        context: &ToolContext,
    ) -> Result<String, ToolError> {
        self.act(context)
            .map_err(|e| ToolError::failed(format!("recording: {e}")))
    }

    // Calling again with the same key acts at most once.
    fn is_idempotent(&self) -> bool {
        true
    }
}
