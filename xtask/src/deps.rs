//! The dependency-direction check (`STYLE.md` at the repository root,
//! "Crate boundaries", and ARCHITECTURE.md): reads
//! `cargo metadata` and fails on any edge outside the table.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::util::{Result, cargo, output};

/// Provider SDKs and heavy I/O stacks: allowed in adapters, the CLI, the
/// benchmarks and examples only.
const PROVIDER_STACK: &[&str] = &[
    "async-openai",
    "ollama-rs",
    "llama-cpp-2",
    "llama-cpp-sys-2",
    "reqwest",
    "hyper",
];

/// Provider SDKs: allowed in adapters, the CLI, the benchmarks and
/// examples, never in pae-http (which every adapter shares).
const PROVIDER_SDKS: &[&str] = &[
    "async-openai",
    "ollama-rs",
    "llama-cpp-2",
    "llama-cpp-sys-2",
];

/// HTTP crates that must never be in pae-core's dependency closure: HTTP
/// code lives in pae-http and the adapters.
const NOT_UNDER_CORE: &[&str] = &[
    "pae-http",
    "reqwest",
    "hyper",
    "http",
    "httpdate",
    "h2",
    "rustls",
    "native-tls",
    "openssl",
];

/// Telemetry back ends: a subscriber or an exporter is the application's
/// choice, so only the CLI, the benchmarks and examples (and any crate's
/// tests) may depend on them; libraries emit through `tracing` alone.
const TELEMETRY_BACKENDS: &[&str] = &[
    "tracing-subscriber",
    "tracing-opentelemetry",
    "opentelemetry",
    "opentelemetry_sdk",
    "opentelemetry-otlp",
    "opentelemetry-proto",
];

/// Crates that must never be in pae-schema's dependency closure.
const NOT_UNDER_SCHEMA: &[&str] = &[
    "tokio",
    "async-std",
    "smol",
    "hyper",
    "reqwest",
    "rustls",
    "native-tls",
    "openssl",
    "h2",
    "futures",
];

/// Crates that must never be in the PostgreSQL store's or the workers'
/// dependency closure: sqlx's SQLite driver would link a second SQLite next
/// to pae-sqlite's rusqlite.
const NOT_UNDER_POSTGRES: &[&str] = &["sqlx-sqlite", "libsqlite3-sys", "rusqlite", "pae-sqlite"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Schema,
    Core,
    /// pae-http: what the HTTP adapters share.
    Http,
    Strategy,
    Support,
    /// pae-transcript: a published file format, readable without the agent.
    Format,
    /// Run stores: pae-sqlite, pae-postgres.
    Store,
    /// pae-worker: workers over the PostgreSQL store.
    Worker,
    Adapter,
    /// `pae`, the facade: re-exports the core, the strategies, the adapters
    /// and the stores; only wiring (examples, the CLI) depends on it.
    Facade,
    Wiring,
    Xtask,
}

fn role(name: &str, manifest_path: &str) -> Role {
    match name {
        "pae-schema" => Role::Schema,
        "pae-core" => Role::Core,
        "pae-http" => Role::Http,
        "pae-planner" | "pae-executor" => Role::Strategy,
        "pae-conformance" => Role::Support,
        "pae-transcript" => Role::Format,
        "pae" => Role::Facade,
        "pae-sqlite" | "pae-postgres" => Role::Store,
        "pae-worker" => Role::Worker,
        "pae-cli" | "pae-bench" => Role::Wiring,
        "xtask" => Role::Xtask,
        _ if manifest_path.contains("/examples/") => Role::Wiring,
        _ => Role::Adapter,
    }
}

struct Dep {
    name: String,
    kind: Option<String>,
    optional: bool,
    features: Vec<String>,
    uses_default_features: bool,
}

/// Runs the check.
pub(crate) fn check() -> Result<()> {
    let text = output(cargo().args(["metadata", "--format-version", "1", "--all-features"]))?;
    let meta: Value = serde_json::from_str(&text)?;
    let members: BTreeSet<&str> = meta["workspace_members"]
        .as_array()
        .ok_or("cargo metadata without workspace_members")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let packages = meta["packages"]
        .as_array()
        .ok_or("cargo metadata without packages")?;
    let mut problems = Vec::new();
    let mut workspace_names = BTreeMap::new();
    for package in packages {
        if members.contains(package["id"].as_str().unwrap_or_default()) {
            let name = package["name"].as_str().unwrap_or_default();
            let manifest = package["manifest_path"].as_str().unwrap_or_default();
            workspace_names.insert(name.to_owned(), role(name, manifest));
        }
    }
    for package in packages {
        let name = package["name"].as_str().unwrap_or_default();
        let Some(&own_role) = workspace_names.get(name) else {
            continue;
        };
        let deps: Vec<Dep> = package["dependencies"]
            .as_array()
            .map(|deps| {
                deps.iter()
                    .map(|d| Dep {
                        name: d["name"].as_str().unwrap_or_default().to_owned(),
                        kind: d["kind"].as_str().map(str::to_owned),
                        optional: d["optional"].as_bool().unwrap_or(false),
                        features: d["features"]
                            .as_array()
                            .map(|f| {
                                f.iter()
                                    .filter_map(Value::as_str)
                                    .map(str::to_owned)
                                    .collect()
                            })
                            .unwrap_or_default(),
                        uses_default_features: d["uses_default_features"].as_bool().unwrap_or(true),
                    })
                    .collect()
            })
            .unwrap_or_default();
        for dep in &deps {
            if let Some(problem) = judge(name, own_role, dep, &workspace_names) {
                problems.push(problem);
            }
        }
    }
    problems.extend(closure(&meta, "pae-schema", NOT_UNDER_SCHEMA)?);
    problems.extend(closure(&meta, "pae-core", NOT_UNDER_CORE)?);
    problems.extend(built_closure("pae-postgres", NOT_UNDER_POSTGRES)?);
    problems.extend(built_closure("pae-worker", NOT_UNDER_POSTGRES)?);
    if problems.is_empty() {
        println!(
            "dependency direction: {} workspace crates checked, no forbidden edge",
            workspace_names.len()
        );
        Ok(())
    } else {
        for p in &problems {
            eprintln!("  forbidden: {p}");
        }
        Err(format!(
            "{} forbidden dependency edge(s) (see STYLE.md, Crate boundaries, and ARCHITECTURE.md)",
            problems.len()
        )
        .into())
    }
}

fn judge(name: &str, own: Role, dep: &Dep, workspace: &BTreeMap<String, Role>) -> Option<String> {
    let dev = dep.kind.as_deref() == Some("dev");
    let target = workspace.get(&dep.name).copied();
    let edge = format!("{name} -> {}{}", dep.name, if dev { " (dev)" } else { "" });
    // Rules for edges to workspace crates.
    if let Some(target) = target {
        // A crate's tests may enable its own test features (a dev-dependency
        // on itself).
        if dev && dep.name == name {
            return None;
        }
        let allowed = match (own, target) {
            (Role::Xtask, _) => false,
            (Role::Schema, _) => false,
            (Role::Core, Role::Schema) => true,
            (Role::Core, _) => dev && target == Role::Support,
            // The shared HTTP layer sits on the core, below every adapter.
            (Role::Http, Role::Schema | Role::Core) => true,
            (Role::Http, _) => false,
            (Role::Strategy, Role::Schema | Role::Core) => true,
            // Tests of one strategy may use the other (never at run time).
            (Role::Strategy, Role::Strategy | Role::Support) => dev,
            (Role::Strategy, _) => false,
            (Role::Support, Role::Schema | Role::Core) => true,
            // The fault server's tests check its HTTP dates with pae-http.
            (Role::Support, Role::Http) => dev,
            (Role::Support, _) => false,
            // Its tests check the schema with pae-schema's checker.
            (Role::Format, Role::Schema) => dev,
            (Role::Format, _) => false,
            (Role::Store, Role::Schema | Role::Core) => true,
            (Role::Store, Role::Support) => dev,
            (Role::Store, _) => false,
            // Workers sit on the PostgreSQL store; the program that runs
            // them (the CLI) builds the agents, so no strategy or adapter.
            (Role::Worker, Role::Schema | Role::Core | Role::Store) => true,
            (Role::Worker, Role::Support | Role::Strategy) => dev,
            (Role::Worker, _) => false,
            (Role::Adapter, Role::Schema | Role::Core | Role::Http) => true,
            // Adapters' end-to-end and conformance tests may use the
            // strategies and the kit, never another adapter.
            (Role::Adapter, Role::Strategy | Role::Support) => dev,
            (Role::Adapter, _) => false,
            // The facade depends on what it re-exports (never the test
            // kit, never wiring); nothing below wiring depends on it.
            (Role::Facade, Role::Schema | Role::Core | Role::Http)
            | (Role::Facade, Role::Strategy | Role::Adapter | Role::Store) => true,
            (Role::Facade, _) => false,
            (Role::Wiring, _) => true,
        };
        return (!allowed).then_some(edge);
    }
    // Rules for external crates.
    if !dev && own != Role::Wiring && TELEMETRY_BACKENDS.contains(&dep.name.as_str()) {
        return Some(format!(
            "{edge}: telemetry back ends (subscribers, exporters) belong in the CLI"
        ));
    }
    match own {
        Role::Schema if !dev => (!["serde", "serde_json", "thiserror"]
            .contains(&dep.name.as_str()))
        .then(|| format!("{edge}: pae-schema may use serde, serde_json and thiserror only")),
        Role::Format if !dev => (!["serde", "serde_json", "thiserror"]
            .contains(&dep.name.as_str()))
        .then(|| format!("{edge}: pae-transcript may use serde, serde_json and thiserror only")),
        Role::Core if !dev => match dep.name.as_str() {
            // memchr: already under serde_json; searches replies for stop
            // sequences.
            "async-trait" | "futures" | "memchr" | "serde" | "serde_json" | "thiserror"
            | "tracing" => None,
            "tokio" => {
                let ok = !dep.uses_default_features
                    && dep.features.iter().all(|f| f == "time" || f == "sync");
                (!ok).then(|| {
                    format!("{edge}: pae-core may use tokio's time and sync features only")
                })
            }
            "mockall" => {
                (!dep.optional).then(|| format!("{edge}: mockall must stay optional (test-util)"))
            }
            _ => Some(format!("{edge}: not on pae-core's list")),
        },
        Role::Http if !dev => PROVIDER_SDKS.contains(&dep.name.as_str()).then(|| {
            format!("{edge}: pae-http is shared by every adapter; provider SDKs belong in one")
        }),
        Role::Strategy | Role::Support | Role::Store | Role::Worker if !dev => PROVIDER_STACK
            .contains(&dep.name.as_str())
            .then(|| format!("{edge}: provider SDKs belong in adapter crates")),
        Role::Facade if !dev => PROVIDER_STACK.contains(&dep.name.as_str()).then(|| {
            format!("{edge}: the facade re-exports adapters; provider SDKs belong in one")
        }),
        Role::Xtask if dep.name == "pae" || dep.name.starts_with("pae-") => Some(edge),
        _ => None,
    }
}

/// The resolved normal-dependency closure of `root` must hold none of
/// `forbidden`: pae-schema's no async runtime, HTTP or TLS crate, pae-core's
/// no HTTP crate.
fn closure(meta: &Value, root_name: &str, forbidden: &[&str]) -> Result<Vec<String>> {
    let nodes = meta["resolve"]["nodes"]
        .as_array()
        .ok_or("cargo metadata without resolve")?;
    let by_id: BTreeMap<&str, &Value> = nodes
        .iter()
        .filter_map(|n| Some((n["id"].as_str()?, n)))
        .collect();
    let name_of = |id: &str| -> String {
        meta["packages"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["id"].as_str() == Some(id)))
            .and_then(|p| p["name"].as_str())
            .unwrap_or_default()
            .to_owned()
    };
    let Some(root) = by_id.keys().find(|id| name_of(id) == root_name).copied() else {
        return Ok(Vec::new());
    };
    let mut seen = BTreeSet::new();
    let mut stack = vec![root];
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        let Some(node) = by_id.get(id) else { continue };
        for dep in node["deps"].as_array().into_iter().flatten() {
            let normal = dep["dep_kinds"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|k| k["kind"].is_null()));
            if normal && let Some(pkg) = dep["pkg"].as_str() {
                stack.push(pkg);
            }
        }
    }
    Ok(seen
        .into_iter()
        .map(name_of)
        .filter(|n| forbidden.contains(&n.as_str()))
        .map(|n| format!("{root_name}'s dependency tree contains {n}"))
        .collect())
}

/// The packages `cargo tree` says `root_name` is built with (normal
/// dependencies, all of its features) that are in `forbidden`.
///
/// `cargo metadata`'s resolve also lists optional dependencies that are only
/// named by weak features (`sqlx-sqlite?/json`), which are never built; the
/// PostgreSQL crates' check would see sqlx's SQLite driver there although
/// no build contains it, so these closures come from the real feature
/// resolution instead.
fn built_closure(root_name: &str, forbidden: &[&str]) -> Result<Vec<String>> {
    let text = output(cargo().args([
        "tree",
        "--quiet",
        "--package",
        root_name,
        "--all-features",
        "--edges",
        "normal",
        "--prefix",
        "none",
        "--format",
        "{p}",
    ]))?;
    let built: BTreeSet<&str> = text
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    Ok(forbidden
        .iter()
        .filter(|name| built.contains(**name))
        .map(|name| format!("{root_name}'s dependency tree contains {name}"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep(name: &str, dev: bool) -> Dep {
        Dep {
            name: name.into(),
            kind: dev.then(|| "dev".into()),
            optional: false,
            features: Vec::new(),
            uses_default_features: true,
        }
    }

    fn workspace() -> BTreeMap<String, Role> {
        [
            ("pae-schema", Role::Schema),
            ("pae-core", Role::Core),
            ("pae-http", Role::Http),
            ("pae-planner", Role::Strategy),
            ("pae-executor", Role::Strategy),
            ("pae-conformance", Role::Support),
            ("pae-openai", Role::Adapter),
            ("pae-ollama", Role::Adapter),
            ("pae-cli", Role::Wiring),
            ("pae", Role::Facade),
            ("pae-sqlite", Role::Store),
            ("pae-postgres", Role::Store),
            ("pae-worker", Role::Worker),
        ]
        .into_iter()
        .map(|(n, r)| (n.to_owned(), r))
        .collect()
    }

    #[test]
    fn forbidden_edges_are_reported() {
        let ws = workspace();
        assert!(judge("pae-openai", Role::Adapter, &dep("pae-ollama", false), &ws).is_some());
        assert!(judge("pae-openai", Role::Adapter, &dep("pae-ollama", true), &ws).is_some());
        assert!(
            judge(
                "pae-planner",
                Role::Strategy,
                &dep("pae-executor", false),
                &ws
            )
            .is_some()
        );
        assert!(judge("pae-schema", Role::Schema, &dep("tokio", false), &ws).is_some());
        assert!(judge("pae-core", Role::Core, &dep("reqwest", false), &ws).is_some());
        assert!(judge("pae-core", Role::Core, &dep("pae-planner", false), &ws).is_some());
        assert!(
            judge(
                "pae-planner",
                Role::Strategy,
                &dep("async-openai", false),
                &ws
            )
            .is_some()
        );
        assert!(judge("pae-core", Role::Core, &dep("pae-http", false), &ws).is_some());
        assert!(judge("pae-planner", Role::Strategy, &dep("pae-http", false), &ws).is_some());
        assert!(judge("pae-http", Role::Http, &dep("pae-openai", false), &ws).is_some());
        assert!(judge("pae-http", Role::Http, &dep("async-openai", false), &ws).is_some());
        assert!(
            judge(
                "pae-conformance",
                Role::Support,
                &dep("pae-http", false),
                &ws
            )
            .is_some()
        );
        assert!(
            judge(
                "pae-core",
                Role::Core,
                &dep("opentelemetry-otlp", false),
                &ws
            )
            .is_some()
        );
        assert!(
            judge(
                "pae-executor",
                Role::Strategy,
                &dep("tracing-subscriber", false),
                &ws
            )
            .is_some()
        );
        // Nothing below wiring depends on the facade; it re-exports, so it
        // never takes a provider SDK or the test kit itself.
        assert!(judge("pae-core", Role::Core, &dep("pae", true), &ws).is_some());
        assert!(judge("pae-executor", Role::Strategy, &dep("pae", true), &ws).is_some());
        assert!(judge("pae-openai", Role::Adapter, &dep("pae", false), &ws).is_some());
        assert!(judge("pae", Role::Facade, &dep("pae-conformance", false), &ws).is_some());
        assert!(judge("pae", Role::Facade, &dep("pae-cli", false), &ws).is_some());
        assert!(judge("pae", Role::Facade, &dep("reqwest", false), &ws).is_some());
        assert!(judge("pae-worker", Role::Worker, &dep("pae-cli", false), &ws).is_some());
        assert!(judge("pae-worker", Role::Worker, &dep("pae-planner", false), &ws).is_some());
        assert!(judge("pae-postgres", Role::Store, &dep("pae-sqlite", false), &ws).is_some());
        let mut tokio_full = dep("tokio", false);
        tokio_full.features = vec!["full".into()];
        assert!(judge("pae-core", Role::Core, &tokio_full, &ws).is_some());
    }

    #[test]
    fn allowed_edges_pass() {
        let ws = workspace();
        assert!(judge("pae-openai", Role::Adapter, &dep("pae-core", false), &ws).is_none());
        assert!(judge("pae-openai", Role::Adapter, &dep("pae-planner", true), &ws).is_none());
        assert!(
            judge(
                "pae-openai",
                Role::Adapter,
                &dep("async-openai", false),
                &ws
            )
            .is_none()
        );
        assert!(
            judge(
                "pae-planner",
                Role::Strategy,
                &dep("pae-executor", true),
                &ws
            )
            .is_none()
        );
        assert!(judge("pae-cli", Role::Wiring, &dep("pae-ollama", false), &ws).is_none());
        assert!(judge("pae-openai", Role::Adapter, &dep("pae-http", false), &ws).is_none());
        assert!(judge("pae-http", Role::Http, &dep("pae-core", false), &ws).is_none());
        assert!(judge("pae-http", Role::Http, &dep("reqwest", false), &ws).is_none());
        assert!(judge("pae-http", Role::Http, &dep("httpdate", false), &ws).is_none());
        assert!(
            judge(
                "pae-conformance",
                Role::Support,
                &dep("pae-http", true),
                &ws
            )
            .is_none()
        );
        assert!(judge("pae-schema", Role::Schema, &dep("serde", false), &ws).is_none());
        assert!(judge("pae-core", Role::Core, &dep("tracing", false), &ws).is_none());
        assert!(
            judge(
                "pae-core",
                Role::Core,
                &dep("tracing-subscriber", true),
                &ws
            )
            .is_none()
        );
        assert!(
            judge(
                "pae-cli",
                Role::Wiring,
                &dep("opentelemetry-otlp", false),
                &ws
            )
            .is_none()
        );
        for target in ["pae-core", "pae-planner", "pae-executor", "pae-openai"] {
            assert!(judge("pae", Role::Facade, &dep(target, false), &ws).is_none());
        }
        assert!(judge("pae", Role::Facade, &dep("pae", true), &ws).is_none());
        assert!(judge("pae-cli", Role::Wiring, &dep("pae", false), &ws).is_none());
        // The facade re-exports the stores (behind features), not the workers.
        assert!(judge("pae", Role::Facade, &dep("pae-sqlite", false), &ws).is_none());
        assert!(judge("pae-worker", Role::Worker, &dep("pae-postgres", false), &ws).is_none());
        assert!(judge("pae-worker", Role::Worker, &dep("pae-planner", true), &ws).is_none());
        assert!(judge("pae-cli", Role::Wiring, &dep("pae-worker", false), &ws).is_none());
        let mut tokio_time = dep("tokio", false);
        tokio_time.uses_default_features = false;
        tokio_time.features = vec!["time".into(), "sync".into()];
        assert!(judge("pae-core", Role::Core, &tokio_time, &ws).is_none());
    }
}
