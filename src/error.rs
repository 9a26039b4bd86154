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
///
/// Rendered as one line whatever the input: control characters are escaped
/// and the line is cut to a bounded length.
#[derive(Debug)]
pub enum InputError {
    /// A scenario key holds a value that is not allowed.
    Key {
        origin: Origin,
        key: String,
        message: String,
    },
    /// The file is not valid TOML, or cannot be read.
    File { origin: Origin, message: String },
    /// A flag or path on the command line.
    Usage(String),
}

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = match self {
            InputError::Key {
                origin,
                key,
                message,
            } => format!("{origin}: {key}: {message}"),
            InputError::File { origin, message } => format!("{origin}: {message}"),
            InputError::Usage(m) => m.clone(),
        };
        f.write_str(&one_line(&text))
    }
}

impl std::error::Error for InputError {}

impl InputError {
    pub fn usage(msg: impl Into<String>) -> Self {
        InputError::Usage(msg.into())
    }
}

/// Longest found value quoted in a message, in characters.
const QUOTE_MAX: usize = 60;

/// A found value as a message shows it: in double quotes, control
/// characters and terminal escapes escaped (`\n`, `\u{1b}`), cut to a
/// readable length with the full length said. Messages never carry raw
/// input, so one error is always one line.
pub fn quote(found: &str) -> String {
    let count = found.chars().count();
    if count > QUOTE_MAX {
        format!("\"{}\" ({count} characters)", escaped(found))
    } else {
        format!("\"{}\"", escaped(found))
    }
}

/// A found value escaped and cut as [`quote`] does, without the quotes (for
/// names shown in backticks).
pub fn escaped(found: &str) -> String {
    let mut out: String = found
        .chars()
        .take(QUOTE_MAX)
        .flat_map(char::escape_debug)
        .collect();
    if found.chars().nth(QUOTE_MAX).is_some() {
        out.push('…');
    }
    out
}

/// A number as a message shows it: integers up to 1e15 in full, else at
/// most 6 significant digits (`1e308`, `2.5e-7`), never 300 digits.
pub fn num(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    let a = v.abs();
    if a == 0.0 || (1e-4..1e15).contains(&a) {
        let s = format!("{v:.6}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        // 0.1234567 keeps six decimals; 123456.7 keeps its digits.
        return s.to_string();
    }
    let s = format!("{v:.5e}");
    match s.split_once('e') {
        Some((m, e)) => {
            let m = if m.contains('.') {
                m.trim_end_matches('0').trim_end_matches('.')
            } else {
                m
            };
            format!("{m}e{e}")
        }
        None => s,
    }
}

/// Make a rendered message safe to print as one line: control characters
/// escaped, and cut to a bounded length. The last line of defence; values
/// are meant to be [`quote`]d where they are put in a message.
fn one_line(message: &str) -> String {
    const MAX: usize = 600;
    let mut out = String::new();
    let mut shown = 0;
    for c in message.chars() {
        if shown >= MAX {
            out.push('…');
            break;
        }
        if c.is_control() {
            let e: String = c.escape_debug().collect();
            shown += e.chars().count();
            out.push_str(&e);
        } else {
            shown += 1;
            out.push(c);
        }
    }
    out
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
    fn found_values_are_quoted_on_one_line() {
        assert_eq!(quote("60s"), "\"60s\"");
        assert_eq!(quote("a\nb\u{1b}[31m"), "\"a\\nb\\u{1b}[31m\"");
        let long = quote(&"x".repeat(100_000));
        assert!(
            long.len() < 100 && long.ends_with("(100000 characters)"),
            "{long}"
        );
        let e = InputError::usage(format!("bad {}", "y\n".repeat(1000)));
        let shown = e.to_string();
        assert!(
            !shown.contains('\n') && shown.chars().count() <= 610,
            "{shown}"
        );
    }

    #[test]
    fn numbers_have_sensible_precision() {
        assert_eq!(num(1e308), "1e308");
        assert_eq!(num(-2.5e-7), "-2.5e-7");
        assert_eq!(num(300.0), "300");
        assert_eq!(num(0.125), "0.125");
        assert_eq!(num(1.0 / 3.0), "0.333333");
        assert_eq!(num(1.23456789e20), "1.23457e20");
        assert_eq!(num(f64::NAN), "NaN");
    }

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
