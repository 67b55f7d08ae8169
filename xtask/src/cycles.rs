//! The module-cycle check: within each crate of the workspace, no module
//! may reach itself through `use crate::…`, `use super::…`, `self::…` and
//! inline `crate::`/`super::` paths (ARCHITECTURE.md, "Module cycles").
//!
//! Modules are found by following `mod name;` from each library and binary
//! root, as rustc does (`#[path]` is not used in this workspace). Test code
//! (`#[cfg(test)]` items) is left out: a test module may use anything. A
//! path into a module's own ancestor is not an edge (a child using what its
//! parent defines is how modules nest), but a name the ancestor only
//! re-exports (`pub use child::Name`) is followed to the module that
//! defines it, so `use super::Name` still counts when `Name` lives in a
//! sibling. Cycles are reported as the strongly connected components of the
//! module graph with more than one module.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

use crate::util::{Result, cargo, output};

/// One module of a crate: its path (`[]` for the root), file and imports.
struct Module {
    /// Child modules declared with `mod name;` (outside test code).
    children: BTreeSet<String>,
    /// Paths used by the module's non-test code, as segments
    /// (`crate`, `super`, `self` or a child's name first).
    paths: Vec<Vec<String>>,
    /// `use` imports: the name they bind, and the path it comes from.
    imports: BTreeMap<String, Vec<String>>,
}

type ModPath = Vec<String>;

/// Runs the check over every library and binary target of the workspace and
/// fails when any crate has a module cycle.
pub(crate) fn check() -> Result<()> {
    let text = output(cargo().args(["metadata", "--no-deps", "--format-version", "1"]))?;
    let meta: Value = serde_json::from_str(&text)?;
    let mut found = Vec::new();
    let mut crates = 0;
    for package in meta["packages"]
        .as_array()
        .ok_or("cargo metadata without packages")?
    {
        let name = package["name"].as_str().unwrap_or("?");
        for target in package["targets"].as_array().into_iter().flatten() {
            let kinds: Vec<&str> = target["kind"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            if !kinds
                .iter()
                .any(|k| matches!(*k, "lib" | "bin" | "proc-macro"))
            {
                continue;
            }
            let Some(root) = target["src_path"].as_str() else {
                continue;
            };
            crates += 1;
            let target_name = target["name"].as_str().unwrap_or("?");
            for cycle in crate_cycles(Path::new(root))? {
                found.push(format!(
                    "{name} ({target_name}): {}\n      {}",
                    cycle.modules.join(", "),
                    cycle.edges.join("\n      ")
                ));
            }
        }
    }
    for cycle in &found {
        eprintln!("  module cycle: {cycle}");
    }
    if found.is_empty() {
        eprintln!("no module cycles in {crates} crate targets");
        Ok(())
    } else {
        Err(format!("{} module cycle(s)", found.len()).into())
    }
}

/// One cycle: its modules, sorted, and the edges between them
/// (`a -> b (crate::b::Name)`), sorted.
#[derive(Debug, PartialEq)]
struct Cycle {
    modules: Vec<String>,
    edges: Vec<String>,
}

/// The module cycles of the crate rooted at `root`.
fn crate_cycles(root: &Path) -> Result<Vec<Cycle>> {
    let modules = load_modules(root)?;
    let mut edges: BTreeMap<ModPath, BTreeSet<ModPath>> = BTreeMap::new();
    let mut why: BTreeMap<(ModPath, ModPath), String> = BTreeMap::new();
    for (at, module) in &modules {
        let targets = edges.entry(at.clone()).or_default();
        for path in &module.paths {
            // Edges into descendants are kept (a parent that re-exports a
            // child depends on it); edges into ancestors are not.
            if let Some(target) = resolve(&modules, at, path, 0)
                && target != *at
                && !at.starts_with(target.as_slice())
            {
                why.entry((at.clone(), target.clone()))
                    .or_insert_with(|| path.join("::"));
                targets.insert(target);
            }
        }
    }
    let cycles = strongly_connected(&edges)
        .into_iter()
        .filter(|component| component.len() > 1)
        .map(|component| {
            let members: BTreeSet<&ModPath> = component.iter().collect();
            let edges = why
                .iter()
                .filter(|((from, to), _)| members.contains(from) && members.contains(to))
                .map(|((from, to), path)| format!("{} -> {} ({path})", display(from), display(to)))
                .collect();
            let modules = component.iter().map(|m| display(m)).collect();
            Cycle { modules, edges }
        })
        .collect();
    Ok(cycles)
}

fn display(module: &[String]) -> String {
    if module.is_empty() {
        String::from("crate")
    } else {
        module.join("::")
    }
}

/// Reads the crate's modules by following `mod name;` from `root`.
fn load_modules(root: &Path) -> Result<BTreeMap<ModPath, Module>> {
    let mut modules = BTreeMap::new();
    let dir = root.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut pending = vec![(ModPath::new(), root.to_path_buf(), dir)];
    while let Some((at, file, child_dir)) = pending.pop() {
        let source = std::fs::read_to_string(&file)
            .map_err(|err| format!("reading {}: {err}", file.display()))?;
        let code = without_tests(&strip(&source));
        let children = declared_modules(&code);
        for child in &children {
            let flat = child_dir.join(format!("{child}.rs"));
            let nested = child_dir.join(child).join("mod.rs");
            let (path, grand_dir) = if flat.exists() {
                (flat, child_dir.join(child))
            } else if nested.exists() {
                (nested, child_dir.join(child))
            } else {
                // An inline `mod name { … }` has no file; its code is part
                // of this one.
                continue;
            };
            let mut child_path = at.clone();
            child_path.push(child.clone());
            pending.push((child_path, path, grand_dir));
        }
        let (paths, imports) = used_paths(&code);
        modules.insert(
            at,
            Module {
                children,
                paths,
                imports,
            },
        );
    }
    Ok(modules)
}

/// The module a path leads into: the deepest module it names, or, when it
/// names an item that module only re-exports, the module the item comes
/// from. `None` for paths outside the crate.
fn resolve(
    modules: &BTreeMap<ModPath, Module>,
    at: &ModPath,
    path: &[String],
    depth: usize,
) -> Option<ModPath> {
    let mut segments = path.iter().peekable();
    let mut current = match segments.peek().map(|s| s.as_str()) {
        Some("crate") => {
            segments.next();
            ModPath::new()
        }
        Some("self") => {
            segments.next();
            at.clone()
        }
        Some("super") => {
            let mut current = at.clone();
            while segments.peek().is_some_and(|s| *s == "super") {
                segments.next();
                current.pop()?;
            }
            current
        }
        Some(first) if modules.get(at).is_some_and(|m| m.children.contains(first)) => at.clone(),
        _ => return None,
    };
    for segment in segments {
        let module = modules.get(&current)?;
        if module.children.contains(segment) && modules.contains_key(&child(&current, segment)) {
            current.push(segment.clone());
            continue;
        }
        // An item: follow a re-export to where it is defined.
        if depth < 8
            && let Some(source) = module.imports.get(segment)
            && let Some(defined) = resolve(modules, &current, source, depth + 1)
        {
            return Some(defined);
        }
        break;
    }
    Some(current)
}

fn child(at: &ModPath, name: &str) -> ModPath {
    let mut path = at.clone();
    path.push(name.to_owned());
    path
}

/// Tarjan's strongly connected components.
fn strongly_connected(edges: &BTreeMap<ModPath, BTreeSet<ModPath>>) -> Vec<Vec<ModPath>> {
    struct State<'a> {
        edges: &'a BTreeMap<ModPath, BTreeSet<ModPath>>,
        index: BTreeMap<&'a ModPath, usize>,
        low: BTreeMap<&'a ModPath, usize>,
        stack: Vec<&'a ModPath>,
        on_stack: BTreeSet<&'a ModPath>,
        components: Vec<Vec<ModPath>>,
    }
    fn visit<'a>(state: &mut State<'a>, node: &'a ModPath) {
        let number = state.index.len();
        state.index.insert(node, number);
        state.low.insert(node, number);
        state.stack.push(node);
        state.on_stack.insert(node);
        for next in state.edges.get(node).into_iter().flatten() {
            if !state.index.contains_key(next) {
                visit(state, next);
                let low = state.low[next].min(state.low[node]);
                state.low.insert(node, low);
            } else if state.on_stack.contains(next) {
                let low = state.index[next].min(state.low[node]);
                state.low.insert(node, low);
            }
        }
        if state.low[node] == state.index[node] {
            let mut component = Vec::new();
            while let Some(top) = state.stack.pop() {
                state.on_stack.remove(top);
                component.push(top.clone());
                if top == node {
                    break;
                }
            }
            component.sort();
            state.components.push(component);
        }
    }
    let mut state = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        components: Vec::new(),
    };
    for node in edges.keys() {
        if !state.index.contains_key(node) {
            visit(&mut state, node);
        }
    }
    state.components
}

/// The source with comments, string and character literals blanked out
/// (replaced by spaces, so nothing in them reads as a path or a brace).
fn strip(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if c == 'r'
            && (next == Some('"') || next == Some('#'))
            && !chars.get(i.wrapping_sub(1)).is_some_and(|p| is_ident(*p))
        {
            // A raw string r"…" or r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            while j < chars.len() {
                if chars[j] == '"' && (1..=hashes).all(|k| chars.get(j + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j;
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' {
            // A character literal ('x', '\n', '\u{..}') or a lifetime ('a).
            if next == Some('\\') {
                i += 2;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
                out.push_str("' '");
            } else if chars.get(i + 2) == Some(&'\'') {
                i += 3;
                out.push_str("' '");
            } else {
                out.push(c);
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The code without `#[cfg(test)]` items: from the attribute to the end of
/// the item (its `;` or its balanced `{ … }` block).
fn without_tests(code: &str) -> String {
    const MARK: &str = "#[cfg(test)]";
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(start) = rest.find(MARK) {
        out.push_str(&rest[..start]);
        let after = &rest[start + MARK.len()..];
        let mut depth = 0usize;
        let mut end = after.len();
        for (offset, c) in after.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        end = offset + 1;
                        break;
                    }
                }
                ';' if depth == 0 => {
                    end = offset + 1;
                    break;
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// The names of `mod name;` and `mod name { … }` declarations.
fn declared_modules(code: &str) -> BTreeSet<String> {
    let words = words(code);
    words
        .windows(2)
        .filter(|pair| pair[0] == "mod" && pair[1].chars().all(is_ident))
        .map(|pair| pair[1].clone())
        .collect()
}

/// Identifier-ish words of the code, with `::` kept as its own word and
/// punctuation other than `{`, `}`, `,`, `;`, `*` dropped.
fn words(code: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut chars = code.chars().peekable();
    while let Some(c) = chars.next() {
        if is_ident(c) {
            word.push(c);
            continue;
        }
        if !word.is_empty() {
            words.push(std::mem::take(&mut word));
        }
        if c == ':' && chars.peek() == Some(&':') {
            chars.next();
            words.push(String::from("::"));
        } else if matches!(c, '{' | '}' | ',' | ';' | '*') {
            words.push(c.to_string());
        } else if !c.is_whitespace() {
            words.push(String::from("."));
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// Every path of the code that starts at `crate`, `super` or `self`, and
/// every `use` path (whatever it starts with), expanded from `use` trees;
/// with the names `use` binds.
fn used_paths(code: &str) -> (Vec<Vec<String>>, BTreeMap<String, Vec<String>>) {
    let words = words(code);
    let mut paths = Vec::new();
    let mut imports = BTreeMap::new();
    let mut i = 0;
    while i < words.len() {
        if words[i] == "use" && words.get(i.wrapping_sub(1)).is_none_or(|w| w != "::") {
            let end = words[i..]
                .iter()
                .position(|w| w == ";")
                .map_or(words.len(), |p| i + p);
            let mut position = i + 1;
            let tree = &words[..end];
            use_tree(tree, &mut position, &[], &mut paths, &mut imports);
            i = end + 1;
            continue;
        }
        let starts_path = matches!(words[i].as_str(), "crate" | "super" | "self")
            && words.get(i + 1).is_some_and(|w| w == "::")
            && words.get(i.wrapping_sub(1)).is_none_or(|w| w != "::");
        if starts_path {
            let mut path = vec![words[i].clone()];
            let mut j = i + 1;
            while words.get(j).is_some_and(|w| w == "::")
                && words.get(j + 1).is_some_and(|w| w.chars().all(is_ident))
            {
                path.push(words[j + 1].clone());
                j += 2;
            }
            paths.push(path);
            i = j;
            continue;
        }
        i += 1;
    }
    (paths, imports)
}

/// Parses one `use` tree starting at `words[*at]` under `prefix`.
fn use_tree(
    words: &[String],
    at: &mut usize,
    prefix: &[String],
    paths: &mut Vec<Vec<String>>,
    imports: &mut BTreeMap<String, Vec<String>>,
) {
    let mut path = prefix.to_vec();
    while let Some(word) = words.get(*at) {
        match word.as_str() {
            "::" => *at += 1,
            "{" => {
                *at += 1;
                loop {
                    use_tree(words, at, &path, paths, imports);
                    match words.get(*at).map(String::as_str) {
                        Some(",") => *at += 1,
                        Some("}") => {
                            *at += 1;
                            break;
                        }
                        _ => break,
                    }
                    if words.get(*at).is_some_and(|w| w == "}") {
                        *at += 1;
                        break;
                    }
                }
                return;
            }
            "*" => {
                *at += 1;
                paths.push(path);
                return;
            }
            "," | "}" => break,
            "as" => {
                *at += 1;
                if let Some(alias) = words.get(*at) {
                    *at += 1;
                    if alias != "_" {
                        imports.insert(alias.clone(), path.clone());
                    }
                }
                paths.push(path);
                return;
            }
            word if word.chars().all(is_ident) => {
                path.push(word.to_owned());
                *at += 1;
            }
            _ => *at += 1,
        }
    }
    if let Some(last) = path.last()
        && path.len() > prefix.len()
    {
        let name = if last == "self" {
            path.pop();
            path.last().cloned().unwrap_or_default()
        } else {
            last.clone()
        };
        imports.insert(name, path.clone());
        paths.push(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn imports_of(code: &str) -> Vec<Vec<String>> {
        used_paths(&without_tests(&strip(code))).0
    }

    fn strings(path: &[&str]) -> Vec<String> {
        path.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn use_trees_are_expanded() {
        let paths = imports_of("use crate::{a::X, b::{self, Y as Z}, c::*};");
        assert_eq!(
            paths,
            vec![
                strings(&["crate", "a", "X"]),
                strings(&["crate", "b"]),
                strings(&["crate", "b", "Y"]),
                strings(&["crate", "c"]),
            ]
        );
    }

    #[test]
    fn inline_paths_count_and_comments_strings_and_tests_do_not() {
        let code = "fn f() { crate::a::g(); let s = \"crate::b::h\"; }\n\
                    // super::c::i\n\
                    #[cfg(test)]\nmod tests { use super::d::j; }\n";
        assert_eq!(imports_of(code), vec![strings(&["crate", "a", "g"])]);
    }

    #[test]
    fn lifetimes_and_chars_do_not_swallow_code() {
        let code = "fn f<'a>(x: &'a str) -> char { let _ = '{'; crate::a::b() }";
        assert_eq!(imports_of(code), vec![strings(&["crate", "a", "b"])]);
    }

    #[test]
    fn sibling_cycle_is_found_through_a_reexport() {
        let dir = std::env::temp_dir().join(format!("xtask-cycles-{}", std::process::id()));
        let src = dir.join("src");
        std::fs::create_dir_all(src.join("p")).unwrap();
        std::fs::write(src.join("lib.rs"), "//! r\nmod p;\nmod q;\n").unwrap();
        std::fs::write(
            src.join("p/mod.rs"),
            "//! p\nmod a;\nmod b;\npub use a::A;\npub use b::B;\n",
        )
        .unwrap();
        std::fs::write(src.join("p/a.rs"), "//! a\nuse super::B;\npub struct A;\n").unwrap();
        std::fs::write(
            src.join("p/b.rs"),
            "//! b\nuse super::a::A;\npub struct B;\n",
        )
        .unwrap();
        std::fs::write(src.join("q.rs"), "//! q\nuse crate::p::A;\n").unwrap();
        let cycles = crate_cycles(&src.join("lib.rs")).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            cycles,
            vec![Cycle {
                modules: strings(&["p::a", "p::b"]),
                edges: strings(&["p::a -> p::b (super::B)", "p::b -> p::a (super::a::A)"]),
            }]
        );
    }
}
