//! Small helpers: running commands, paths, progress lines.

use std::path::{Path, PathBuf};
use std::process::Command;

/// xtask's result type: any error, printed once at the top.
pub(crate) type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// A `cargo` command using the same cargo that runs xtask.
pub(crate) fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Runs a command, inheriting stdio; fails on a non-zero exit.
pub(crate) fn run(command: &mut Command) -> Result<()> {
    let status = command
        .status()
        .map_err(|e| format!("could not start {}: {e}", describe(command)))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{} failed ({status})", describe(command)).into())
    }
}

/// Runs a command and returns its stdout; fails on a non-zero exit.
pub(crate) fn output(command: &mut Command) -> Result<String> {
    let out = command
        .output()
        .map_err(|e| format!("could not start {}: {e}", describe(command)))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed ({}): {}",
            describe(command),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into());
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// Whether a command runs and exits with success (output discarded).
pub(crate) fn succeeds(command: &mut Command) -> bool {
    command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn describe(command: &Command) -> String {
    let mut text = command.get_program().to_string_lossy().into_owned();
    for arg in command.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}

/// Prints a progress heading.
pub(crate) fn step(what: &str) {
    eprintln!("\n==> {what}");
}

/// The workspace root (the parent of xtask's manifest directory).
pub(crate) fn workspace_root() -> Result<PathBuf> {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| "xtask's manifest directory has no parent".into())
}

/// The cache root: $PAE_CACHE_DIR, else ~/.cache/pae.
pub(crate) fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PAE_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache").join("pae")
}

/// The names of the workspace's packages, from `cargo metadata`.
pub(crate) fn workspace_members() -> Result<Vec<String>> {
    let text = output(cargo().args(["metadata", "--no-deps", "--format-version", "1"]))?;
    let meta: serde_json::Value = serde_json::from_str(&text)?;
    let mut names: Vec<String> = meta["packages"]
        .as_array()
        .ok_or("cargo metadata without packages")?
        .iter()
        .filter_map(|p| p["name"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    Ok(names)
}

/// A binary of the release build: in $CARGO_TARGET_DIR/release, or
/// target/release under the workspace root.
pub(crate) fn release_binary(name: &str) -> Result<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"));
    let binary = target.join("release").join(name);
    if binary.exists() {
        Ok(std::fs::canonicalize(binary)?)
    } else {
        Err(format!("no {name} binary at {}", binary.display()).into())
    }
}
