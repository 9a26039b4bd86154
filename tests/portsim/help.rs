//! What `--help` shows and the commands that print things about portsim
//! itself: every subcommand's examples run as written, and `completions`
//! and `man` print their scripts and pages or refuse a bad name with exit 2.

use std::path::{Path, PathBuf};

use crate::util::{portsim, text};

/// The subcommands `portsim --help` lists (without `help`).
fn subcommands() -> Vec<String> {
    let out = portsim().arg("--help").assert().success();
    let help = text(&out.get_output().stdout);
    let list: Vec<String> = help
        .lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .filter(|name| name != "help")
        .collect();
    assert!(list.len() >= 9, "too few subcommands in\n{help}");
    list
}

/// The example lines after "Examples:" in the help of `sub`.
fn examples(sub: &str) -> Vec<String> {
    let out = portsim().args([sub, "--help"]).assert().success();
    let help = text(&out.get_output().stdout);
    let lines: Vec<String> = help
        .lines()
        .skip_while(|l| *l != "Examples:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_string())
        .collect();
    for l in &lines {
        assert!(l.starts_with("portsim "), "{sub}: not a command: {l:?}");
    }
    lines
}

/// Split a command line into words as a POSIX shell would for the simple
/// lines the examples use: blanks separate words, quotes group them, and a
/// redirection or pipe ends the command (its target is the shell's job).
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, '>' | '|' | '<') => {
                assert!(!in_word, "{line}: {c} inside a word");
                return out;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    assert!(quote.is_none(), "{line}: unbalanced quote");
    if in_word {
        out.push(cur);
    }
    out
}

/// `dir/*.ext` expanded as the shell would, relative to `cwd`; other words
/// as they are.
fn glob(word: &str, cwd: &Path) -> Vec<String> {
    let Some((dir, pattern)) = word.rsplit_once('/') else {
        assert!(!word.contains('*'), "{word}: only dir/*.ext globs");
        return vec![word.to_string()];
    };
    let Some(suffix) = pattern.strip_prefix('*') else {
        return vec![word.to_string()];
    };
    let mut found: Vec<String> = std::fs::read_dir(cwd.join(dir))
        .unwrap_or_else(|e| panic!("{word}: {e}"))
        .map(|e| e.expect("a directory entry").file_name())
        .filter_map(|n| n.to_str().map(String::from))
        .filter(|n| n.ends_with(suffix))
        .map(|n| format!("{dir}/{n}"))
        .collect();
    found.sort();
    assert!(!found.is_empty(), "{word} matches nothing");
    found
}

/// A directory the examples run in: `scenarios` links to the shipped ones,
/// and whatever they write stays inside.
fn sandbox() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let scenarios = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    std::os::unix::fs::symlink(&scenarios, tmp.path().join("scenarios")).expect("link scenarios");
    let path = tmp.path().to_path_buf();
    (tmp, path)
}

#[test]
fn words_are_split_like_a_shell_splits_them() {
    assert_eq!(
        words(r#"portsim capacity a.toml --target "failure_ratio<=1e-3" --x 'a b'"#),
        [
            "portsim",
            "capacity",
            "a.toml",
            "--target",
            "failure_ratio<=1e-3",
            "--x",
            "a b"
        ]
    );
    assert_eq!(words("portsim man > portsim.1"), ["portsim", "man"]);
    assert_eq!(words("portsim presets | less"), ["portsim", "presets"]);
}

#[test]
fn every_subcommand_shows_examples_that_run_as_written() {
    let subs = subcommands();
    for sub in ["run", "check", "presets", "sweep", "capacity", "merge"] {
        assert!(subs.iter().any(|s| s == sub), "{sub} not in {subs:?}");
    }
    for sub in &subs {
        let lines = examples(sub);
        assert!(
            (1..=4).contains(&lines.len()),
            "{sub}: {} examples: {lines:?}",
            lines.len()
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("portsim {sub}"))),
            "{sub}: no example of portsim {sub}: {lines:?}"
        );
        // In order, in one directory: a merge example merges the shards
        // the lines before it wrote.
        let (_tmp, cwd) = sandbox();
        for line in &lines {
            let argv: Vec<String> = words(line)
                .iter()
                .skip(1)
                .flat_map(|w| glob(w, &cwd))
                .collect();
            // Scenarios named must exist, but for one an example writes.
            for (k, w) in argv.iter().enumerate() {
                let written = k > 0 && argv[k - 1] == "--write-scenario";
                if w.ends_with(".toml") && !written {
                    assert!(cwd.join(w).is_file(), "{line}: no scenario {w}");
                }
            }
            let out = portsim()
                .current_dir(&cwd)
                .args(&argv)
                .output()
                .expect("run portsim");
            assert_eq!(
                out.status.code(),
                Some(0),
                "{line}\nstdout:\n{}\nstderr:\n{}",
                text(&out.stdout),
                text(&out.stderr)
            );
            assert!(!out.stdout.is_empty(), "{line}: printed nothing");
            if let Some(i) = argv.iter().position(|w| w == "--out") {
                let dir = cwd.join(&argv[i + 1]);
                let n = std::fs::read_dir(&dir).map_or(0, |d| d.count());
                assert!(n > 0, "{line}: nothing written in {}", dir.display());
            }
        }
    }
}

#[test]
fn completions_exist_for_every_shell_and_a_bad_one_is_a_usage_error() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef portsim"),
        ("fish", "complete -c portsim"),
        ("powershell", "Register-ArgumentCompleter"),
        ("elvish", "edit:completion:arg-completer[portsim]"),
    ] {
        let out = portsim().args(["completions", shell]).assert().success();
        let s = text(&out.get_output().stdout);
        assert!(s.contains(marker), "{shell}: no {marker:?} in\n{s}");
        for word in ["capacity", "fail-on-exhaustion", "max-events"] {
            assert!(s.contains(word), "{shell}: no {word}");
        }
    }
    let out = portsim().args(["completions", "tcsh"]).assert().code(2);
    let err = text(&out.get_output().stderr);
    assert!(err.contains("'tcsh'"), "{err}");
    assert!(
        err.contains("[possible values: bash, elvish, fish, powershell, zsh]"),
        "{err}"
    );
    assert!(out.get_output().stdout.is_empty());
}

#[test]
fn man_prints_roff_pages_and_refuses_an_unknown_subcommand() {
    let out = portsim().arg("man").assert().success();
    let page = text(&out.get_output().stdout);
    assert!(page.contains("\n.TH portsim 1 "), "{page}");
    assert!(page.contains("\n.SH NAME\nportsim \\- Simulate"), "{page}");
    assert!(page.contains("portsim\\-capacity(1)"), "{page}");

    let out = portsim().args(["man", "sweep"]).assert().success();
    let page = text(&out.get_output().stdout);
    assert!(page.contains("\n.TH portsim-sweep 1 "), "{page}");
    assert!(page.contains("\\-\\-shard"), "{page}");

    let out = portsim().args(["man", "swep"]).assert().code(2);
    let err = text(&out.get_output().stderr);
    assert_eq!(
        err,
        "error: man \"swep\": no such subcommand; allowed: run, check, presets, sweep, capacity, merge, inspect, completions, man, schema\n"
    );
    assert!(out.get_output().stdout.is_empty());
}
