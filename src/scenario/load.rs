//! Reading a scenario: TOML text -> table -> `--set` overrides -> typed scenario.
//!
//! Overrides are applied to the parsed table, not to the text, so the file's
//! line numbers stay valid for every key the user did not override; an error in
//! an overridden key names the `--set` flag instead of a line.

use std::path::{Path, PathBuf};

use super::raw::RawScenario;
use super::validate::{validate, KeyError};
use super::Scenario;
use crate::error::{did_you_mean, escaped, InputError, Origin};

/// One `--set key.path=value` flag.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    pub key: String,
    pub value: toml::Value,
    /// The flag's value as typed, for messages.
    pub text: String,
    /// The flag it came from (`--set`, or `--vary` for a swept value).
    pub flag: &'static str,
}

/// The flag as typed: `--set key=value`.
impl std::fmt::Display for Override {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.flag, self.text)
    }
}

impl std::str::FromStr for Override {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Override::parse_as(s, "--set")
    }
}

impl Override {
    /// Parse `KEY=VALUE` given with `flag` (`--set`, or `--vary` for one
    /// value of a sweep); messages name that flag.
    pub fn parse_as(s: &str, flag: &'static str) -> Result<Override, String> {
        let (key, value) = s.split_once('=').ok_or_else(|| {
            format!("{flag} {s}: expected KEY=VALUE, e.g. {flag} traffic.rate=300")
        })?;
        let key = key.trim();
        if key.is_empty() || key.split('.').any(|p| p.is_empty()) {
            return Err(format!(
                "{flag} {s}: expected a dotted key such as traffic.rate"
            ));
        }
        // A TOML value if it parses as one (300, true, [1, 2], "x"), else a bare string (60s).
        let value = toml::from_str::<toml::Table>(&format!("v = {value}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.trim().to_string()));
        Ok(Override {
            key: key.to_string(),
            value,
            text: s.to_string(),
            flag,
        })
    }
}

/// Load and validate a scenario file, with overrides.
pub fn load_file(path: &Path, overrides: &[Override]) -> Result<Scenario, InputError> {
    load_str(&read_file(path)?, path, overrides)
}

/// Largest scenario file read, in bytes: far above any real scenario, far
/// below what would strain memory.
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// The text of a scenario file. A file above [`MAX_FILE_BYTES`] is refused
/// before it is read (by its size when it has one, else after reading one
/// byte past the limit, so `/dev/zero` costs 16 MiB, not all memory).
pub fn read_file(path: &Path) -> Result<String, InputError> {
    use std::io::Read;
    let fail = |message: String| InputError::File {
        origin: Origin::File {
            path: path.to_path_buf(),
            line: None,
        },
        message,
    };
    let too_big = || {
        fail(format!(
            "the scenario file is larger than {} MiB; a scenario is a few hundred bytes of TOML",
            MAX_FILE_BYTES >> 20
        ))
    };
    let file = std::fs::File::open(path)
        .map_err(|e| fail(format!("cannot read the scenario file: {e}")))?;
    if file
        .metadata()
        .is_ok_and(|m| m.is_file() && m.len() > MAX_FILE_BYTES)
    {
        return Err(too_big());
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(format!("cannot read the scenario file: {e}")))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_big());
    }
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let text = String::from_utf8_lossy(&e.as_bytes()[..at]);
        InputError::File {
            origin: Origin::File {
                path: path.to_path_buf(),
                line: Some(line_of(&text, at)),
            },
            message: format!("not valid UTF-8 (byte {at}); a scenario file is UTF-8 text"),
        }
    })
}

/// Load and validate scenario text; `path` is used in messages, and its
/// directory is where the files the scenario names (`traffic.replay`,
/// `traffic.rate_profile`) are looked for.
pub fn load_str(text: &str, path: &Path, overrides: &[Override]) -> Result<Scenario, InputError> {
    let file_origin = |line| Origin::File {
        path: path.to_path_buf(),
        line,
    };
    let table: toml::Table = toml::from_str(text).map_err(|e| InputError::File {
        origin: file_origin(e.span().map(|s| line_of(text, s.start))),
        message: format!("not valid TOML: {}", e.message().trim()),
    })?;
    let mut root = toml::Value::Table(table);
    for o in overrides {
        apply(&mut root, o)?;
    }
    let mut raw: RawScenario = serde_path_to_error::deserialize(root).map_err(|e| {
        let key = path_text(e.path());
        let message = with_unit_hint(&key, serde_message(&e.inner().to_string()));
        key_error(text, path, overrides, KeyError { key, message })
    })?;
    // The CSV files a scenario names are relative to its directory.
    raw.resolve_paths(path.parent().unwrap_or(Path::new("")));
    validate(raw).map_err(|e| key_error(text, path, overrides, e))
}

fn key_error(text: &str, path: &Path, overrides: &[Override], e: KeyError) -> InputError {
    let origin = match overrides.iter().rev().find(|o| same_key(&e.key, &o.key)) {
        Some(o) => Origin::Flag(o.to_string()),
        None => Origin::File {
            path: PathBuf::from(path),
            line: find_line(text, &e.key),
        },
    };
    InputError::Key {
        origin,
        key: if e.key.is_empty() {
            "(top level)".into()
        } else {
            e.key
        },
        message: e.message,
    }
}

/// Does the error key lie under the overridden key? (`destinations[0]` = `destinations.0`)
fn same_key(error_key: &str, set_key: &str) -> bool {
    let norm = |k: &str| k.replace('[', ".").replace(']', "");
    let (e, s) = (norm(error_key), norm(set_key));
    e == s || e.starts_with(&format!("{s}."))
}

fn apply(root: &mut toml::Value, o: &Override) -> Result<(), InputError> {
    let parts: Vec<&str> = o.key.split('.').collect();
    let fail = |m: String| InputError::Key {
        origin: Origin::Flag(o.to_string()),
        key: o.key.clone(),
        message: m,
    };
    let mut cur: &mut toml::Value = root;
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        cur = match cur {
            toml::Value::Table(t) => {
                if last {
                    t.insert(part.to_string(), o.value.clone());
                    return Ok(());
                }
                t.entry(part.to_string())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            }
            toml::Value::Array(a) => {
                let idx: usize = part.parse().map_err(|_| {
                    fail(format!(
                        "`{part}` is not an index; address list items as KEY.0, KEY.1, ..."
                    ))
                })?;
                let len = a.len();
                let slot = a.get_mut(idx).ok_or_else(|| {
                    fail(format!(
                        "index {idx} is out of range; the list has {len} items"
                    ))
                })?;
                if last {
                    *slot = o.value.clone();
                    return Ok(());
                }
                slot
            }
            _ => {
                return Err(fail(format!(
                    "`{}` holds a single value, so it has no key `{part}`",
                    parts[..i].join(".")
                )))
            }
        };
    }
    Ok(())
}

fn path_text(p: &serde_path_to_error::Path) -> String {
    let mut out = String::new();
    for seg in p.iter() {
        match seg {
            serde_path_to_error::Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            serde_path_to_error::Segment::Map { key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            serde_path_to_error::Segment::Enum { variant } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(variant);
            }
            serde_path_to_error::Segment::Unknown => {}
        }
    }
    out
}

/// Keys that hold a duration, by their last segments (`timeouts.close`, not
/// `traffic.close`, which is a name).
const DURATION_KEYS: &[&str] = &[
    "duration",
    "time_wait",
    "tw_reuse_delay",
    "bin",
    "after",
    "at",
    "over",
    "timeouts.syn_sent",
    "timeouts.established",
    "timeouts.fin_wait",
    "timeouts.close_wait",
    "timeouts.last_ack",
    "timeouts.close",
];

/// A bare number where a duration goes (`time_wait = 30`): say that a
/// duration is a string with a unit, and show the likely one.
fn with_unit_hint(key: &str, message: String) -> String {
    let is_duration = DURATION_KEYS
        .iter()
        .any(|d| key == *d || key.ends_with(&format!(".{d}")));
    let number = message
        .strip_prefix("found integer `")
        .or_else(|| message.strip_prefix("found floating point `"))
        .and_then(|rest| rest.split('`').next());
    match number {
        Some(n) if is_duration && message.ends_with("expected a string") => {
            format!(
                "found the number {n}; a duration is a string with a unit, e.g. \"{n}s\" or \"{n}ms\""
            )
        }
        _ => message,
    }
}

/// Make serde's wording friendlier and add "did you mean" to unknown keys.
fn serde_message(m: &str) -> String {
    // toml appends the key path on a line of its own; the caller reports it.
    let m = m.split("\nin `").next().unwrap_or(m).trim();
    if let Some(rest) = m.strip_prefix("unknown field `") {
        if let Some((found, tail)) = rest.split_once('`') {
            let allowed: Vec<&str> = tail.split('`').skip(1).step_by(2).collect();
            let list = allowed.join(", ");
            let shown = escaped(found);
            return match did_you_mean(found, allowed.iter().copied()) {
                Some(s) => {
                    format!("unknown key `{shown}`; allowed here: {list} (did you mean `{s}`?)")
                }
                None => format!("unknown key `{shown}`; allowed here: {list}"),
            };
        }
    }
    if let Some(rest) = m.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or(rest);
        return format!("missing required key `{field}`");
    }
    m.replace("invalid type: ", "found ")
        .replace("expected f64", "expected a number")
        .replace("expected u64", "expected a whole number >= 0")
        .replace("expected u32", "expected a whole number >= 0")
        .replace("expected i64", "expected a whole number")
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The line where a key path (`traffic.hold.mean`, `destinations[1].address`) is
/// written: the longest prefix of the path that a line of the file defines.
fn find_line(text: &str, key: &str) -> Option<usize> {
    let target: Vec<String> = key
        .replace('[', ".")
        .replace(']', "")
        .split('.')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if target.is_empty() {
        return None;
    }
    let mut current: Vec<String> = Vec::new();
    let mut array_counts: std::collections::HashMap<String, usize> = Default::default();
    let mut best: Option<(usize, usize)> = None; // (matched segments, line)
    for (n, raw_line) in text.lines().enumerate() {
        let line = raw_line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let full: Vec<String> = if let Some(h) = line.strip_prefix("[[") {
            let name = h.split("]]").next().unwrap_or("").trim().to_string();
            let idx = array_counts.entry(name.clone()).or_insert(0);
            let mut p: Vec<String> = name.split('.').map(|s| s.trim().to_string()).collect();
            p.push(idx.to_string());
            *idx += 1;
            current = p.clone();
            p
        } else if let Some(h) = line.strip_prefix('[') {
            let name = h.split(']').next().unwrap_or("").trim();
            current = name
                .split('.')
                .map(|s| s.trim().trim_matches('"').to_string())
                .collect();
            current.clone()
        } else if let Some((k, _)) = line.split_once('=') {
            let mut p = current.clone();
            p.extend(k.split('.').map(|s| s.trim().trim_matches('"').to_string()));
            p
        } else {
            continue;
        };
        let matched = full.iter().zip(&target).take_while(|(a, b)| a == b).count();
        if matched == full.len() && matched > 0 && best.is_none_or(|(m, _)| matched > m) {
            best = Some((matched, n + 1));
        }
    }
    best.map(|(_, l)| l)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_lines_of_nested_keys() {
        let t = "name = \"x\"\n[host]\nos = \"linux\"\n[[destinations]]\naddress = \"a\"\n[[destinations]]\naddress = \"b\"\n[traffic]\nhold = { dist = \"exponential\", mean = \"x\" }\n";
        assert_eq!(find_line(t, "host.os"), Some(3));
        assert_eq!(find_line(t, "destinations[1].address"), Some(7));
        assert_eq!(find_line(t, "traffic.hold.mean"), Some(9));
        assert_eq!(find_line(t, "traffic.rate"), Some(8));
        assert_eq!(find_line(t, "nothing"), None);
    }

    #[test]
    fn override_values_parse_as_toml_or_text() {
        let o: Override = "traffic.rate=300".parse().unwrap();
        assert_eq!(o.value, toml::Value::Integer(300));
        let o: Override = "host.time_wait=30s".parse().unwrap();
        assert_eq!(o.value, toml::Value::String("30s".into()));
        assert!("traffic.rate".parse::<Override>().is_err());
    }
}
