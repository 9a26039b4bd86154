//! Errors a user can fix: bad scenario files, bad flags, bad paths.
//!
//! Every variant renders as one line that names where the problem is (file and
//! line, or the flag), the key, what was found and what is allowed. The binary
//! maps all of them to exit code 2; anything else is a bug or an I/O failure.

use std::path::PathBuf;

/// Where a bad value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A line (1-based) of a scenario file, when it could be located.
    File { path: PathBuf, line: Option<usize> },
    /// A `--set KEY=VALUE` flag.
    Flag(String),
    /// Elsewhere on the command line.
    CommandLine,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::File {
                path,
                line: Some(l),
            } => write!(f, "{}:{}", path.display(), l),
            Origin::File { path, line: None } => write!(f, "{}", path.display()),
            Origin::Flag(flag) => write!(f, "{flag}"),
            Origin::CommandLine => write!(f, "command line"),
        }
    }
}

/// A problem with the user's input. Exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// A scenario key holds a value that is not allowed.
    #[error("{origin}: {key}: {message}")]
    Key {
        origin: Origin,
        key: String,
        message: String,
    },
    /// The file is not valid TOML, or cannot be read.
    #[error("{origin}: {message}")]
    File { origin: Origin, message: String },
    /// A flag or path on the command line.
    #[error("{0}")]
    Usage(String),
}

impl InputError {
    pub fn usage(msg: impl Into<String>) -> Self {
        InputError::Usage(msg.into())
    }
}

/// Suggest the closest allowed word for a misspelt one ("did you mean").
pub fn did_you_mean<'a>(
    found: &str,
    allowed: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let found_l = found.to_ascii_lowercase();
    allowed
        .into_iter()
        .map(|a| (edit_distance(&found_l, &a.to_ascii_lowercase()), a))
        .filter(|(d, a)| *d <= (a.len().max(found.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// "one of `a`, `b`, `c`" plus a suggestion when one is close.
pub fn allowed_list(found: &str, allowed: &[&str]) -> String {
    let list = allowed
        .iter()
        .map(|a| format!("\"{a}\""))
        .collect::<Vec<_>>()
        .join(", ");
    match did_you_mean(found, allowed.iter().copied()) {
        Some(s) => format!("allowed: {list} (did you mean \"{s}\"?)"),
        None => format!("allowed: {list}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_words_only() {
        assert_eq!(did_you_mean("rat", ["rate", "hold"]), Some("rate"));
        assert_eq!(
            did_you_mean("tw_resue", ["tw_reuse", "time_wait"]),
            Some("tw_reuse")
        );
        assert_eq!(did_you_mean("zzzzzz", ["rate", "hold"]), None);
    }
}
