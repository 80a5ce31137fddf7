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
}

#[test]
fn each_outside_library_is_imported_by_its_adapter_only() {
    // cm-bench drives the raw engine itself: it measures the manager against it.
    for (library, allowed) in [
        ("bollard", &["cm-bench", "cm-docker"][..]),
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
