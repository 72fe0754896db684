//! The layering rule, checked on the source: no import cycle between stages.
//!
//! A node is a top-level module of `src/lib.rs` or one of its direct submodules (a file
//! or folder under `src/<module>/`), so a stage's settings (`risk::config`,
//! `deploy::settings`) can be read by the ICS file without the ICS file depending on the
//! stage. An edge is a path naming another node (`crate::a::b`, `super::b`, or `b::` in
//! the module's own file). Cycles inside one stage (between its own submodules) are the
//! stage's business; a cycle through two stages fails this test, naming it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::util::root;

/// Top-level modules in the order `src/lib.rs` declares them.
fn top_modules(src: &Path) -> Vec<String> {
    std::fs::read_to_string(src.join("lib.rs"))
        .unwrap()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|m| m.trim_end_matches(';').to_string())
        .collect()
}

/// Node name → the files it is made of.
fn nodes(src: &Path) -> BTreeMap<String, Vec<PathBuf>> {
    let mut out = BTreeMap::new();
    for m in top_modules(src) {
        let dir = src.join(&m);
        let mut own = vec![src.join(format!("{m}.rs")), dir.join("mod.rs")];
        own.retain(|p| p.is_file());
        out.insert(m.clone(), own);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = p.file_stem().unwrap().to_string_lossy().to_string();
            if name == "mod" {
                continue;
            }
            let files = if p.is_dir() {
                rust_files(&p)
            } else if p.extension().is_some_and(|x| x == "rs") {
                vec![p.clone()]
            } else {
                continue;
            };
            out.insert(format!("{m}::{name}"), files);
        }
    }
    out
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            v.extend(rust_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            v.push(p);
        }
    }
    v
}

/// The source without its unit tests (by convention the last item of a file).
fn without_tests(text: &str) -> &str {
    match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    }
}

/// Paths in `text` as segment lists, one level of braces expanded
/// (`crate::risk::{config, features::check}` → `[crate, risk, config]`,
/// `[crate, risk, features, check]`).
fn paths(text: &str) -> Vec<Vec<String>> {
    let re = regex::Regex::new(
        r"\b([a-z_][a-z0-9_]*)((?:::[a-z_][a-z0-9_]*)*)::(?:([a-z_][a-z0-9_]*)|\{([^}]*)\})",
    )
    .unwrap();
    let mut out = Vec::new();
    for c in re.captures_iter(text) {
        let mut base = vec![c[1].to_string()];
        base.extend(c[2].split("::").filter(|s| !s.is_empty()).map(String::from));
        let items: Vec<String> = match (c.get(3), c.get(4)) {
            (Some(one), _) => vec![one.as_str().to_string()],
            (_, Some(group)) => group
                .as_str()
                .split(',')
                .map(|i| i.replace('{', ""))
                .collect(),
            _ => Vec::new(),
        };
        for item in items {
            let mut p = base.clone();
            p.extend(
                item.split("::")
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty()),
            );
            out.push(p);
        }
    }
    out
}

/// The node a path from node `n` names, if any.
fn target(nodes: &BTreeMap<String, Vec<PathBuf>>, n: &str, p: &[String]) -> Option<String> {
    let top = n.split("::").next().unwrap();
    let node = |s: String| nodes.contains_key(&s).then_some(s);
    match p.first().map(String::as_str) {
        Some("crate") => {
            let a = p.get(1)?;
            p.get(2)
                .and_then(|b| node(format!("{a}::{b}")))
                .or_else(|| node(a.clone()))
        }
        Some("super") if n.contains("::") => p
            .get(1)
            .and_then(|b| node(format!("{top}::{b}")))
            .or_else(|| node(top.to_string())),
        Some(head) if !n.contains("::") => node(format!("{top}::{head}")),
        _ => None,
    }
}

fn edges(nodes: &BTreeMap<String, Vec<PathBuf>>) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (n, files) in nodes {
        let mut targets = BTreeSet::new();
        for f in files {
            let text = std::fs::read_to_string(f).unwrap();
            for p in paths(without_tests(&text)) {
                targets.extend(target(nodes, n, &p).filter(|t| t != n));
            }
        }
        out.insert(n.clone(), targets);
    }
    out
}

/// Strongly connected components (Tarjan), each as its sorted node names.
fn components(g: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct T<'a> {
        g: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        let i = t.index.len();
        t.index.insert(v, i);
        t.low.insert(v, i);
        t.stack.push(v);
        t.on.insert(v);
        for w in t.g.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if t.on.contains(w) {
                let iw = t.index[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut c = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                c.push(w.to_string());
                if w == v {
                    break;
                }
            }
            c.sort();
            t.out.push(c);
        }
    }
    let mut t = T {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in g.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    t.out
}

fn cycles_between_stages(src: &Path) -> Vec<Vec<String>> {
    let g = edges(&nodes(src));
    components(&g)
        .into_iter()
        .filter(|c| {
            let stages: BTreeSet<&str> = c.iter().map(|n| n.split("::").next().unwrap()).collect();
            stages.len() > 1
        })
        .collect()
}

#[test]
fn no_import_cycle_between_stages() {
    let cycles = cycles_between_stages(&root().join("src"));
    assert!(
        cycles.is_empty(),
        "modules that depend on each other across stages (break the cycle: move the shared \
         type into the earlier stage or a settings submodule): {cycles:#?}"
    );
}

#[test]
fn the_check_finds_a_cycle_when_there_is_one() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path();
    std::fs::create_dir_all(src.join("b")).unwrap();
    std::fs::write(src.join("lib.rs"), "pub mod a;\npub mod b;\npub mod c;\n").unwrap();
    std::fs::write(src.join("a.rs"), "use crate::b::config::X;\n").unwrap();
    std::fs::write(src.join("b/mod.rs"), "pub mod config;\npub mod run;\n").unwrap();
    std::fs::write(src.join("b/config.rs"), "pub struct X;\n").unwrap();
    std::fs::write(
        src.join("b/run.rs"),
        "use crate::a::Y;\nuse super::config::X;\n",
    )
    .unwrap();
    std::fs::write(src.join("c.rs"), "use crate::a::Y;\n").unwrap();
    assert!(
        cycles_between_stages(src).is_empty(),
        "a → b::config and b::run → a is no cycle"
    );
    std::fs::write(src.join("b/config.rs"), "use crate::a::Y;\npub struct X;\n").unwrap();
    assert_eq!(
        cycles_between_stages(src),
        vec![vec!["a".to_string(), "b::config".to_string()]]
    );
    std::fs::write(src.join("b/config.rs"), "pub struct X;\n").unwrap();
    std::fs::write(
        src.join("b/mod.rs"),
        "pub mod config;\npub mod run;\nuse crate::c::Z;\n",
    )
    .unwrap();
    std::fs::write(src.join("c.rs"), "use crate::b::run::W;\n").unwrap();
    assert_eq!(
        cycles_between_stages(src),
        Vec::<Vec<String>>::new(),
        "b → c → b::run is no cycle (b::run is its own node)"
    );
    std::fs::write(src.join("c.rs"), "use crate::b::W;\n").unwrap();
    assert_eq!(
        cycles_between_stages(src),
        vec![vec!["b".to_string(), "c".to_string()]]
    );
}
