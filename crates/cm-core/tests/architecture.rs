//! The invariants of ARCHITECTURE.md that a machine can check: the core does no I/O and knows
//! no adapter, adapters know only the core, and each outside library is imported by its one
//! adapter (plus tools that measure against it).

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

/// The workspace's `crates/` folder.
fn crates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

/// The names in a manifest's `[dependencies]` table (not dev-dependencies).
fn dependencies(krate: &str) -> Vec<String> {
    let text = std::fs::read_to_string(crates_dir().join(krate).join("Cargo.toml")).unwrap();
    let manifest: toml::Table = toml::from_str(&text).unwrap();
    manifest
        .get("dependencies")
        .and_then(|d| d.as_table())
        .map(|d| d.keys().cloned().collect())
        .unwrap_or_default()
}

/// Every `.rs` file under a crate's `src/` and `tests/`.
fn sources(krate: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    for sub in ["src", "tests", "examples", "benches"] {
        walk(&crates_dir().join(krate).join(sub), &mut out);
    }
    out
}

/// The crates whose code (comments aside) names `library::`.
fn importers(library: &str) -> Vec<String> {
    let needle = format!("{library}::");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(crates_dir()).unwrap().flatten() {
        let krate = entry.file_name().to_string_lossy().into_owned();
        let uses = sources(&krate).iter().any(|file| {
            std::fs::read_to_string(file).unwrap().lines().any(|line| {
                let code = line.trim_start();
                !code.starts_with("//") && code.contains(&needle)
            })
        });
        if uses {
            found.push(krate);
        }
    }
    found.sort();
    found
}

#[test]
fn the_core_depends_on_no_io_library_and_no_adapter() {
    let deps = dependencies("cm-core");
    for forbidden in [
        "bollard",
        "rusqlite",
        "actix-web",
        "minijinja",
        "ssh-key",
        "tar",
        "hyper",
        "reqwest",
        "ureq",
        "jsonwebtoken",
        "rand",
    ] {
        assert!(
            !deps.iter().any(|d| d == forbidden),
            "cm-core depends on {forbidden}"
        );
    }
    assert!(
        !deps.iter().any(|d| d.starts_with("cm-")),
        "cm-core depends on another of our crates: {deps:?}"
    );
}

#[test]
fn adapters_know_only_the_core() {
    for adapter in ["cm-docker", "cm-store", "cm-nginx", "cm-ssh", "cm-toolbox"] {
        let ours: Vec<String> = dependencies(adapter)
            .into_iter()
            .filter(|d| d.starts_with("cm-"))
            .collect();
        assert_eq!(ours, ["cm-core"], "{adapter} depends on {ours:?}");
    }
    // The Swarm adapter drives the same outside thing, the Docker engine, in swarm mode: it is
    // built on cm-docker's runtime (one per node's engine) and knows nothing else of ours.
    let swarm: Vec<String> = dependencies("cm-swarm")
        .into_iter()
        .filter(|d| d.starts_with("cm-"))
        .collect();
    assert_eq!(swarm, ["cm-core", "cm-docker"], "cm-swarm depends on {swarm:?}");
    // Nothing but the composition root (and tests) builds on the Swarm adapter.
    for krate in [
        "cm-core",
        "cm-docker",
        "cm-store",
        "cm-nginx",
        "cm-ssh",
        "cm-toolbox",
        "cm-cli",
        "cm-api",
    ] {
        assert!(
            !dependencies(krate).iter().any(|d| d == "cm-swarm"),
            "{krate} depends on cm-swarm"
        );
    }
}

#[test]
fn each_outside_library_is_imported_by_its_adapter_only() {
    // cm-bench drives the raw engine itself: it measures the manager against it.
    for (library, allowed) in [
        // cm-swarm speaks the engine's swarm API (services, tasks, nodes) beside cm-docker.
        ("bollard", &["cm-bench", "cm-docker", "cm-swarm"][..]),
        ("rusqlite", &["cm-store"][..]),
        ("ssh_key", &["cm-ssh"][..]),
        ("jsonwebtoken", &["cm-toolbox"][..]),
        // Two HTTP clients of two outside services: the remote CLI's (cm-api) and the ToolBox
        // worker's (cm-toolbox asks it about ToolBox credentials).
        ("ureq", &["cm-cli", "cm-toolbox"][..]),
    ] {
        assert_eq!(importers(library), allowed, "who imports {library}");
    }
}

/// The paths named right after a `crate::` or `super::`: one path, or each path of a group
/// (`{a::B, c::{D, E}}` names `a::B` and `c`).
fn paths_at(rest: &str) -> Vec<String> {
    let word = |text: &str| -> String {
        text.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
            .collect::<String>()
            .trim_end_matches(':')
            .to_owned()
    };
    let Some(group) = rest.strip_prefix('{') else {
        return vec![word(rest)];
    };
    let mut depth = 1;
    let mut end = group.len();
    for (at, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    end = at;
                    break;
                }
            }
            _ => {}
        }
    }
    let inner = &group[..end];
    let mut paths = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (at, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                paths.push(word(inner[start..at].trim()));
                start = at + 1;
            }
            _ => {}
        }
    }
    paths.push(word(inner[start..].trim()));
    paths.into_iter().filter(|p| !p.is_empty()).collect()
}

/// The modules of a crate's `src/` (`usecase::create`, `dashboard`, ...) and the modules of the
/// same crate each one names (`crate::x`, `super::x`), its unit tests aside.
fn module_graph(krate: &str) -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    use std::collections::{BTreeMap, BTreeSet};
    let src = crates_dir().join(krate).join("src");
    let mut files = Vec::new();
    for file in sources(krate) {
        let Ok(relative) = file.strip_prefix(&src) else {
            continue;
        };
        let path = relative.with_extension("").to_string_lossy().replace('/', "::");
        let name = path.strip_suffix("::mod").unwrap_or(&path).to_owned();
        if name == "lib" || name == "main" || name.starts_with("bin::") {
            continue;
        }
        files.push((name, file));
    }
    let known: BTreeSet<String> = files.iter().map(|(name, _)| name.clone()).collect();
    // The longest known module a path names (`crate::usecase::create::X` is `usecase::create`).
    let module_of = |path: &str| -> Option<String> {
        let parts: Vec<&str> = path.split("::").collect();
        (1..=parts.len())
            .rev()
            .map(|n| parts[..n].join("::"))
            .find(|candidate| known.contains(candidate))
    };
    let mut graph = BTreeMap::new();
    for (name, file) in &files {
        let parent = name.rsplit_once("::").map_or("", |(parent, _)| parent);
        // The code as one line (comments and the unit tests left out), so that grouped imports
        // spread over lines read like the others.
        let mut code = String::new();
        for line in std::fs::read_to_string(file).unwrap().lines() {
            let line = line.trim_start();
            if line.starts_with("mod tests") {
                break;
            }
            if !line.starts_with("//") {
                code.push_str(line);
                code.push(' ');
            }
        }
        let mut named = BTreeSet::new();
        for (prefix, base) in [("crate::", String::new()), ("super::", parent.to_owned())] {
            for (at, _) in code.match_indices(prefix) {
                // The word before must not make it another path (`self::super::`, `my_crate::`).
                if code[..at].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
                    continue;
                }
                for path in paths_at(&code[at + prefix.len()..]) {
                    let full = if base.is_empty() {
                        path
                    } else {
                        format!("{base}::{path}")
                    };
                    if let Some(module) = module_of(&full) {
                        named.insert(module);
                    }
                }
            }
        }
        named.remove(name);
        graph.insert(name.clone(), named);
    }
    graph
}

/// The modules of a crate that can reach themselves through the modules they name.
fn modules_in_circles(krate: &str) -> Vec<String> {
    let graph = module_graph(krate);
    let reaches = |from: &str, to: &str| -> bool {
        let mut seen = std::collections::BTreeSet::new();
        let mut todo: Vec<&str> = graph[from].iter().map(String::as_str).collect();
        while let Some(next) = todo.pop() {
            if next == to {
                return true;
            }
            if seen.insert(next) {
                todo.extend(graph.get(next).into_iter().flatten().map(String::as_str));
            }
        }
        false
    };
    graph.keys().filter(|m| reaches(m, m)).cloned().collect()
}

#[test]
fn no_crate_has_modules_that_name_each_other_in_a_circle() {
    for entry in std::fs::read_dir(crates_dir()).unwrap().flatten() {
        let krate = entry.file_name().to_string_lossy().into_owned();
        let circles = modules_in_circles(&krate);
        assert!(
            circles.is_empty(),
            "{krate}: modules in a circle of imports: {circles:?}"
        );
    }
    // The checker sees what modules name: a use case names the manager, a group of imports
    // counts (`use crate::{...}`), and the dashboard's pages name its views through `super::`.
    assert!(module_graph("cm-core")["usecase::create"].contains("manager"));
    assert!(module_graph("cm-api")["routes"].contains("call"));
    assert!(module_graph("cm-api")["dashboard::pages"].contains("dashboard::views"));
}
