//! The house rules of docs/ARCHITECTURE.md, checked on the sources: inside every crate the modules
//! depend on each other one way (no import circle), and no Rust file (library, test, example,
//! benchmark) is longer than 650 lines.
//!
//! A module's dependencies are the modules its `crate::…` and `super::…` paths name (outside `//`
//! comments and its `#[cfg(test)] mod tests`), a name re-exported by `pub use child::…` counting as
//! its child; the graph is checked between the top-level modules of each crate and between all
//! modules.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_LINES: usize = 650;

type Module = Vec<String>;

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn crates() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("crates"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("src").is_dir())
        .collect();
    dirs.sort();
    dirs
}

/// The module path of a source file (`src/a/b.rs` and `src/a/b/mod.rs` are `[a, b]`).
fn module_of(src: &Path, file: &Path) -> Module {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Module = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if parts.last().is_some_and(|p| p == "mod") || parts == ["lib"] || parts == ["main"] {
        parts.pop();
    }
    parts
}

/// The text that counts: no line comments, no unit-test module.
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]\nmod tests").next().unwrap_or(text);
    text.lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The paths after `crate::` or `super::` in `text`: each a list of identifiers, braces expanded
/// one level (`crate::{a, b::c}` gives `[a]` and `[b, c]`).
fn paths(text: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let ident = |s: &str| -> Vec<String> {
        s.split("::")
            .map(|p| p.trim().to_string())
            .take_while(|p| !p.is_empty() && p.chars().all(|c| c.is_alphanumeric() || c == '_'))
            .collect()
    };
    for (i, _) in text.match_indices(prefix) {
        let before = text[..i].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &text[i + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            out.extend(group.split(',').map(ident).filter(|p| !p.is_empty()));
        } else {
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(rest.len());
            out.push(ident(&rest[..end]));
        }
    }
    out
}

/// The import graph of one crate's modules.
fn graph(src: &Path) -> BTreeMap<Module, BTreeSet<Module>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let texts: BTreeMap<Module, String> = files
        .iter()
        .map(|f| (module_of(src, f), code(&std::fs::read_to_string(f).unwrap())))
        .collect();
    // `pub use child::{A, B}` in module m: m::A is child's.
    let mut exports: BTreeMap<Module, Module> = BTreeMap::new();
    for (module, text) in &texts {
        for line in text.lines().filter(|l| l.trim_start().starts_with("pub use ")) {
            let body = line
                .trim_start()
                .trim_start_matches("pub use ")
                .trim_start_matches("self::");
            let Some((child, names)) = body.split_once("::") else {
                continue;
            };
            let mut child_path = module.clone();
            child_path.push(child.to_string());
            if !texts.contains_key(&child_path) {
                continue;
            }
            for name in names
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .filter(|n| !n.is_empty())
            {
                let mut key = module.clone();
                key.push(name.to_string());
                exports.insert(key, child_path.clone());
            }
        }
    }
    let resolve = |path: &[String]| -> Option<Module> {
        (1..=path.len()).rev().find_map(|k| {
            let prefix = path[..k].to_vec();
            exports
                .get(&prefix)
                .cloned()
                .or_else(|| texts.contains_key(&prefix).then_some(prefix))
        })
    };
    let mut graph = BTreeMap::new();
    for (module, text) in &texts {
        let mut deps = BTreeSet::new();
        let parent: Module = module[..module.len().saturating_sub(1)].to_vec();
        let named = paths(text, "crate::").into_iter().chain(
            paths(text, "super::")
                .into_iter()
                .map(|p| [parent.clone(), p].concat()),
        );
        for path in named {
            if let Some(target) = resolve(&path)
                && !target.is_empty()
                && !module.starts_with(&target)
            {
                deps.insert(target);
            }
        }
        graph.insert(module.clone(), deps);
    }
    graph
}

/// The strongly connected components of more than one node (Tarjan).
fn circles(graph: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    struct State<'a> {
        graph: &'a BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<&'a Module, usize>,
        low: BTreeMap<&'a Module, usize>,
        stack: Vec<&'a Module>,
        on_stack: BTreeSet<&'a Module>,
        out: Vec<Vec<Module>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a Module) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.graph.get(v).into_iter().flatten() {
            let Some((w, _)) = s.graph.get_key_value(w) else {
                continue;
            };
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.clone());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                s.out.push(component);
            }
        }
    }
    let mut state = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !state.index.contains_key(v) {
            visit(&mut state, v);
        }
    }
    state.out
}

/// The graph between top-level modules.
fn top_level(graph: &BTreeMap<Module, BTreeSet<Module>>) -> BTreeMap<Module, BTreeSet<Module>> {
    let mut out: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (module, deps) in graph.iter().filter(|(m, _)| !m.is_empty()) {
        let top = module[..1].to_vec();
        let entry = out.entry(top.clone()).or_default();
        entry.extend(deps.iter().map(|d| d[..1].to_vec()).filter(|d| *d != top));
    }
    out
}

#[test]
fn no_crate_has_an_import_circle() {
    let mut found = Vec::new();
    for dir in crates() {
        let graph = graph(&dir.join("src"));
        for component in circles(&graph).into_iter().chain(circles(&top_level(&graph))) {
            let names: Vec<String> = component.iter().map(|m| m.join("::")).collect();
            found.push(format!("{}: {}", dir.display(), names.join(" ↔ ")));
        }
    }
    assert!(found.is_empty(), "import circles:\n{}", found.join("\n"));
}

#[test]
fn the_checker_finds_a_circle() {
    // The checker itself: two modules naming each other are a circle, a one-way pair is not.
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::write(src.join("lib.rs"), "mod a;\nmod b;\nmod c;\n").unwrap();
    std::fs::write(src.join("a.rs"), "use crate::b::Thing;\npub struct Other;\n").unwrap();
    std::fs::write(src.join("b.rs"), "pub struct Thing(crate::a::Other);\n").unwrap();
    std::fs::write(
        src.join("c.rs"),
        "use super::{a::Other, b};\n// crate::c::x in a comment\n",
    )
    .unwrap();
    let sorted = |mut c: Vec<Module>| {
        c.sort();
        c
    };
    let found: Vec<Vec<Module>> = circles(&graph(src)).into_iter().map(sorted).collect();
    assert_eq!(found, vec![vec![vec!["a".to_string()], vec!["b".to_string()]]]);
    std::fs::write(src.join("b.rs"), "pub struct Thing;\n").unwrap();
    assert!(circles(&graph(src)).is_empty());
    assert!(circles(&top_level(&graph(src))).is_empty());
}

#[test]
fn no_source_file_is_longer_than_650_lines() {
    let mut files = Vec::new();
    for dir in crates() {
        for sub in ["src", "tests", "benches", "examples"] {
            if dir.join(sub).is_dir() {
                rust_files(&dir.join(sub), &mut files);
            }
        }
    }
    for sub in ["tests", "examples", "benches"] {
        rust_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join(sub), &mut files);
    }
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let lines = std::fs::read_to_string(f).unwrap().lines().count();
            (lines > MAX_LINES).then(|| format!("{}: {lines} lines", f.display()))
        })
        .collect();
    assert!(
        long.is_empty(),
        "files over {MAX_LINES} lines:\n{}",
        long.join("\n")
    );
}
