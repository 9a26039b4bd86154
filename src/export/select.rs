//! `--files LIST`: which of the registered files `--out` writes, as a
//! comma-separated list of names or globs (`*` any run of characters, `?`
//! one), e.g. `report.json,*.png`.
//!
//! Patterns are matched against the registry's names, not the disk, so a
//! new exporter is selectable as soon as it is registered, and a pattern
//! that matches none of them is refused (exit 2) with the allowed names and
//! the closest one: a typo must not silently write nothing.

use crate::error::{allowed_list, quote, InputError};

/// Which of `names` the `flag`'s `list` chooses, one flag per name.
pub fn choose(flag: &str, list: &str, names: &[String]) -> Result<Vec<bool>, InputError> {
    let mut chosen = vec![false; names.len()];
    for part in list.split(',').map(str::trim) {
        if part.is_empty() {
            return Err(InputError::usage(format!(
                "{flag} {}: expected a comma-separated list of file names or globs, e.g. report.json,*.png",
                quote(list)
            )));
        }
        let mut any = false;
        for (name, keep) in names.iter().zip(chosen.iter_mut()) {
            if glob(part, name) {
                *keep = true;
                any = true;
            }
        }
        if !any {
            let allowed: Vec<&str> = names.iter().map(String::as_str).collect();
            return Err(InputError::usage(format!(
                "{flag} {}: matches no file --out writes (names, or globs such as *.png); {}",
                quote(part),
                allowed_list(part, &allowed)
            )));
        }
    }
    Ok(chosen)
}

/// Whether `name` matches `pattern`: `*` is any run of characters, `?` any
/// one, everything else itself.
pub fn glob(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // Iterative matching with backtracking to the last `*`: linear in
    // practice, and never recursive, whatever the pattern.
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while j < n.len() {
        if i < p.len() && (p[i] == '?' || p[i] == n[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some((i, j));
            i += 1;
        } else if let Some((si, sj)) = star {
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        [
            "report.json",
            "timeseries.csv",
            "occupancy.png",
            "occupancy.svg",
        ]
        .map(String::from)
        .to_vec()
    }

    #[test]
    fn globs_match_whole_names() {
        assert!(glob("*.png", "occupancy.png"));
        assert!(!glob("*.png", "occupancy.svg"));
        assert!(glob("occupancy.*", "occupancy.svg"));
        assert!(glob("?eport.json", "report.json"));
        assert!(!glob("report", "report.json"));
        assert!(glob("*", "report.json"));
        assert!(glob("*o*n*", "report.json"));
        assert!(!glob("*.json", "report.json.bak"));
    }

    #[test]
    fn lists_choose_names_and_refuse_what_matches_nothing() {
        let n = names();
        assert_eq!(
            choose("--files", "report.json, *.png", &n).unwrap(),
            [true, false, true, false]
        );
        assert_eq!(
            choose("--files", "*", &n).unwrap(),
            [true, true, true, true]
        );
        let e = choose("--files", "report.jsn", &n).unwrap_err().to_string();
        assert!(e.contains("--files \"report.jsn\""), "{e}");
        assert!(e.contains("did you mean \"report.json\""), "{e}");
        assert!(choose("--files", "*.pdf", &n).is_err());
        assert!(choose("--files", "report.json,", &n).is_err());
        assert!(choose("--files", "", &n).is_err());
    }
}
