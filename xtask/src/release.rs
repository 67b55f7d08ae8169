//! `cargo xtask release VERSION [--execute] [--no-verify]`: lockstep version
//! bump, changelog roll, `cargo publish --workspace --dry-run`.
//!
//! Without `--execute` every change is reverted afterwards, so a dry run
//! leaves the tree as it found it. With `--execute` the bump is committed and
//! tagged; publishing to crates.io stays a manual step.

use std::fs;
use std::process::Command;

use crate::util::{Result, cargo, output, run, step};

pub(crate) fn release(args: &[String]) -> Result<()> {
    let version = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .ok_or("usage: cargo xtask release VERSION [--execute] [--no-verify]")?;
    let execute = args.iter().any(|a| a == "--execute");
    let verify = !args.iter().any(|a| a == "--no-verify");
    if !is_semver(version) {
        return Err(format!("{version:?} is not a version like 1.2.3").into());
    }
    let dirty = output(Command::new("git").args(["status", "--porcelain"]))?;
    if !dirty.trim().is_empty() {
        return Err(format!("refusing to release from a dirty tree:\n{dirty}").into());
    }

    let manifest = fs::read_to_string("Cargo.toml")?;
    let changelog = fs::read_to_string("CHANGELOG.md")?;
    let old = current_version(&manifest).ok_or("no version in [workspace.package]")?;
    step(&format!("bumping {old} -> {version}"));
    fs::write("Cargo.toml", bump_manifest(&manifest, &old, version))?;
    fs::write(
        "CHANGELOG.md",
        roll_changelog(&changelog, version, &today()?)?,
    )?;

    let result = (|| {
        // Refresh Cargo.lock for the new versions.
        run(cargo()
            .args(["metadata", "--format-version", "1", "--quiet"])
            .stdout(std::process::Stdio::null()))?;
        step("cargo publish --workspace --dry-run");
        let mut publish = cargo();
        publish.args(["publish", "--workspace", "--dry-run", "--allow-dirty"]);
        if !verify {
            publish.arg("--no-verify");
        }
        run(&mut publish)
    })();

    if execute && result.is_ok() {
        run(Command::new("git").args(["commit", "-am", &format!("Release {version}")]))?;
        run(Command::new("git").args(["tag", &format!("v{version}")]))?;
        println!(
            "release {version}: committed and tagged v{version}; publish with `cargo publish --workspace`"
        );
    } else {
        run(Command::new("git").args([
            "checkout",
            "--",
            "Cargo.toml",
            "CHANGELOG.md",
            "Cargo.lock",
        ]))?;
        if result.is_ok() {
            println!(
                "release {version}: dry run passed; the tree is unchanged (use --execute to commit and tag)"
            );
        }
    }
    result
}

fn is_semver(v: &str) -> bool {
    let core = v.split(['-', '+']).next().unwrap_or_default();
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

/// The `version` in `[workspace.package]`.
fn current_version(manifest: &str) -> Option<String> {
    let mut in_package = false;
    for line in manifest.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            in_package = trimmed == "[workspace.package]";
        } else if in_package && trimmed.starts_with("version") {
            return trimmed.split('"').nth(1).map(str::to_owned);
        }
    }
    None
}

/// Sets the workspace version and every internal dependency's version.
fn bump_manifest(manifest: &str, old: &str, new: &str) -> String {
    let mut section = String::new();
    let mut out = String::with_capacity(manifest.len());
    for line in manifest.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            section = trimmed.to_owned();
        }
        let bumped = if section == "[workspace.package]" && trimmed.starts_with("version") {
            line.replace(&format!("\"{old}\""), &format!("\"{new}\""))
        } else if section == "[workspace.dependencies]"
            && trimmed.starts_with("pae-")
            && trimmed.contains("path")
        {
            line.replace(
                &format!("version = \"{old}\""),
                &format!("version = \"{new}\""),
            )
        } else {
            line.to_owned()
        };
        out.push_str(&bumped);
        out.push('\n');
    }
    out
}

/// Turns "## Unreleased" into "## VERSION - DATE" under a fresh empty
/// "## Unreleased".
fn roll_changelog(changelog: &str, version: &str, date: &str) -> Result<String> {
    if !changelog.contains("## Unreleased") {
        return Err("CHANGELOG.md has no \"## Unreleased\" section".into());
    }
    Ok(changelog.replacen(
        "## Unreleased",
        &format!("## Unreleased\n\n## {version} - {date}"),
        1,
    ))
}

fn today() -> Result<String> {
    Ok(output(Command::new("date").arg("+%Y-%m-%d"))?
        .trim()
        .to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = "[workspace.package]\nversion = \"0.1.0\"\n\n[workspace.dependencies]\npae-core = { path = \"crates/pae-core\", version = \"0.1.0\" }\nserde = \"0.1.0\"\n";

    #[test]
    fn bumps_workspace_and_internal_versions_only() {
        assert_eq!(current_version(MANIFEST).as_deref(), Some("0.1.0"));
        let bumped = bump_manifest(MANIFEST, "0.1.0", "0.2.0");
        assert!(bumped.contains("version = \"0.2.0\"\n\n"));
        assert!(bumped.contains("pae-core = { path = \"crates/pae-core\", version = \"0.2.0\" }"));
        assert!(
            bumped.contains("serde = \"0.1.0\""),
            "external versions stay"
        );
    }

    #[test]
    fn rolls_the_changelog() {
        let rolled =
            roll_changelog("# Changelog\n\n## Unreleased\n- x\n", "0.2.0", "2026-01-01").unwrap();
        assert_eq!(
            rolled,
            "# Changelog\n\n## Unreleased\n\n## 0.2.0 - 2026-01-01\n- x\n"
        );
        assert!(roll_changelog("# nothing", "1.0.0", "d").is_err());
    }

    #[test]
    fn versions_are_checked() {
        assert!(is_semver("1.2.3"));
        assert!(is_semver("0.2.0-rc.1"));
        assert!(!is_semver("1.2"));
        assert!(!is_semver("v1.2.3"));
    }
}
