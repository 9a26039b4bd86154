//! The library's modules form one-way layers: each refers only to modules
//! below it (or to itself). This test reads `src/` as text, as a reviewer
//! would, and fails on any reference that points up, naming the file and
//! the path; so an import cycle can never come back.
//!
//! A reference is a `crate::NAME` path, or a `super::` path from a file
//! whose parent is the crate root, outside `#[cfg(test)]` code (tests may
//! build scenarios with the loader wherever they live).

use std::collections::BTreeMap;
use std::path::Path;

/// The layers, lowest first; a module may use those in its own layer or
/// below. `root` stands for the items `lib.rs` itself defines (`run`,
/// `run_with`, `check_size`).
const LAYERS: &[&[&str]] = &[
    &["util", "error"],
    &["ports"],
    &["alloc", "os"],
    &["scenario"],
    &["sim"],
    &["interrupt"],
    &["output"],
    &["trace"],
    &["report"],
    &["limits"],
    &["inspect"],
    &["root"],
    &["fixes"],
    &["sweep"],
    &["chart"],
    &["export"],
    &["commands"],
];

/// Names `lib.rs` re-exports, and the module each comes from.
const REEXPORTS: &[(&str, &str)] = &[
    ("DEFAULT_MAX_EVENTS", "limits"),
    ("DEFAULT_MAX_MEMORY", "limits"),
    ("Limits", "limits"),
    ("Report", "report"),
    ("Scenario", "scenario"),
    ("InputError", "error"),
    ("run", "root"),
    ("run_with", "root"),
    ("check_size", "root"),
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// The code of a file outside its tests and comments.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules `text` refers to.
fn references(text: &str, from_root_child: bool) -> Vec<String> {
    let mut out = Vec::new();
    let code = code(text);
    for prefix in ["crate::", "super::"] {
        if prefix == "super::" && !from_root_child {
            continue;
        }
        let mut rest = code.as_str();
        while let Some(i) = rest.find(prefix) {
            let before = rest[..i].chars().last();
            rest = &rest[i + prefix.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let word = |t: &str| -> String {
                t.trim_start()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect()
            };
            // `crate::{a, b::c}`: the first segment of each.
            if let Some(group) = rest.strip_prefix('{') {
                let inner = group.split('}').next().unwrap_or_default();
                out.extend(inner.split(',').map(word).filter(|n| !n.is_empty()));
                continue;
            }
            let name = word(rest);
            if !name.is_empty() {
                out.push(name);
            }
        }
    }
    out
}

fn rs_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read src") {
        let p = e.expect("a directory entry").path();
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn modules_only_refer_downward() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rs_files(&src, &mut files);
    files.sort();
    let mut violations = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for f in &files {
        let rel = f.strip_prefix(&src).expect("under src");
        let parts: Vec<&str> = rel
            .iter()
            .map(|p| p.to_str().expect("UTF-8 path"))
            .collect();
        let first = parts[0].trim_end_matches(".rs");
        if matches!(first, "lib" | "main") {
            continue;
        }
        let module = first.to_string();
        let Some(own) = layer_of(&module) else {
            violations.push(format!(
                "{}: module `{module}` is in no layer; add it to LAYERS",
                rel.display()
            ));
            continue;
        };
        *seen.entry(module.clone()).or_default() += 1;
        // `super::` from `x.rs` or `x/mod.rs` is the crate root.
        let root_child = parts.len() == 1 || (parts.len() == 2 && parts[1] == "mod.rs");
        let text = std::fs::read_to_string(f).expect("read a source file");
        for name in references(&text, root_child) {
            let target = REEXPORTS
                .iter()
                .find(|(n, _)| *n == name)
                .map_or(name.as_str(), |(_, m)| m);
            if target == module {
                continue;
            }
            match layer_of(target) {
                Some(l) if l <= own => {}
                Some(_) => violations.push(format!(
                    "{}: `{module}` refers up to `{target}` (`{name}`)",
                    rel.display()
                )),
                None => violations.push(format!(
                    "{}: `{name}` is neither a module in LAYERS nor a known re-export",
                    rel.display()
                )),
            }
        }
    }
    violations.sort();
    violations.dedup();
    assert!(violations.is_empty(), "{}", violations.join("\n"));
    // The test sees the modules it names: a renamed module cannot slip by.
    for l in LAYERS.iter().flat_map(|l| l.iter()) {
        assert!(
            *l == "root" || seen.contains_key(*l),
            "LAYERS names `{l}`, which has no file under src/"
        );
    }
}

/// The check itself can fail: a reference up is found, one down is not.
#[test]
fn an_upward_reference_is_caught() {
    let text = "use crate::sim::Outcome;\nfn f() { crate::util::mix64(1); }\n// crate::chart::x\n";
    assert_eq!(references(text, false), vec!["sim", "util"]);
    let grouped = "use crate::{report::Report, sim};\nuse super::chart::x;\n";
    assert_eq!(references(grouped, false), vec!["report", "sim"]);
    assert_eq!(references(grouped, true), vec!["report", "sim", "chart"]);
    let test_only = "fn f() {}\n#[cfg(test)]\nmod tests { use crate::chart; }\n";
    assert!(references(test_only, false).is_empty());
    assert!(layer_of("sim") < layer_of("report"));
}
