//! `merge`: shard outputs back into exactly the unsharded ones. It checks
//! the shards are of one sweep, puts the points back in order, recomputes
//! the figures and gives the same bytes one machine would have.
//!
//! Merge trusts nothing it can check. A shard file is read up to a size
//! bound; its metadata must agree with the other shards'; its points must be
//! exactly the ones its `K/N` owns out of `points_total`, each once, each
//! with one run per seed in seed order and counts that make sense together;
//! every figure written beside the runs must be what the runs give (compared
//! as written, so to the last printed digit); and the points' values must
//! form one grid. Each refusal names the file, the field and both values.

use std::path::Path;

use serde::Deserialize;

use super::output::{PointFigures, Row, SweepReport};
use super::{PointResult, Shard};
use crate::error::{quote, InputError};
use crate::util::thousands;

/// Largest `sweep.json` merge reads: far above what [`super::MAX_RUNS`]
/// runs take, far below what would exhaust memory.
const MAX_SHARD_BYTES: u64 = 1 << 30;

/// A point as read back from a shard, its figures kept as written.
#[derive(Deserialize)]
struct ShardRow {
    #[serde(flatten)]
    point: PointResult,
    figures: Option<serde_json::Value>,
}

/// `sweep.json` as read back from a shard.
#[derive(Deserialize)]
struct ShardFile {
    #[serde(flatten)]
    meta: Meta,
    complete: bool,
    shard: Option<Shard>,
    points: Vec<ShardRow>,
}

/// A refusal about `path`.
fn refuse(path: &str, msg: String) -> InputError {
    InputError::usage(format!("{path}: {msg}"))
}

/// A JSON value as a message shows it.
fn json_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => quote(s),
        other => {
            let t = other.to_string();
            if t.chars().count() > 80 {
                quote(&t)
            } else {
                t
            }
        }
    }
}

/// The first place where `found` (read from a file) differs from `want`
/// (recomputed): its path below `at`, and both values. Numbers compare as
/// floats, so `2` and `2.0` agree; every other value must match exactly.
fn first_difference(
    at: &str,
    want: &serde_json::Value,
    found: Option<&serde_json::Value>,
) -> Option<(String, String, String)> {
    use serde_json::Value;
    let absent = || "absent".to_string();
    let Some(found) = found else {
        return Some((at.to_string(), json_text(want), absent()));
    };
    match (want, found) {
        (Value::Object(w), Value::Object(f)) => {
            for (k, wv) in w {
                if let Some(d) = first_difference(&format!("{at}.{k}"), wv, f.get(k)) {
                    return Some(d);
                }
            }
            f.iter()
                .find(|(k, _)| !w.contains_key(*k))
                .map(|(k, fv)| (format!("{at}.{}", key_text(k)), absent(), json_text(fv)))
        }
        (Value::Number(w), Value::Number(f)) if w.as_f64() == f.as_f64() => None,
        _ if want == found => None,
        _ => Some((at.to_string(), json_text(want), json_text(found))),
    }
}

/// A field name as a message shows it: plain when it is a word.
fn key_text(k: &str) -> String {
    if !k.is_empty()
        && k.len() <= 80
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
    {
        k.to_string()
    } else {
        quote(k)
    }
}

/// Read one shard's `sweep.json`, bounded in size.
fn read_shard(dir: &Path) -> Result<(String, ShardFile), InputError> {
    use std::io::Read as _;
    let path = dir.join("sweep.json");
    let name = quote(&path.display().to_string());
    let file =
        std::fs::File::open(&path).map_err(|e| refuse(&name, format!("cannot read: {e}")))?;
    let mut text = String::new();
    file.take(MAX_SHARD_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| refuse(&name, format!("cannot read: {e}")))?;
    if text.len() as u64 > MAX_SHARD_BYTES {
        return Err(refuse(
            &name,
            format!(
                "larger than {} bytes, more than any sweep portsim writes; not a portsim sweep.json",
                thousands(MAX_SHARD_BYTES)
            ),
        ));
    }
    let de = &mut serde_json::Deserializer::from_str(&text);
    let r: ShardFile = serde_path_to_error::deserialize(de).map_err(|e| {
        let at = e.path().to_string();
        let inner = e.into_inner().to_string();
        let inner: String = inner.chars().take(200).collect();
        refuse(&name, format!("not a portsim sweep.json: {at}: {inner}"))
    })?;
    Ok((name, r))
}

/// How many of `total` points shard `k` of `n` owns (points k−1, k−1+n, ...).
fn shard_points(total: usize, s: Shard) -> usize {
    let (n, k) = (s.n as usize, s.k as usize - 1);
    total / n + usize::from(k < total % n)
}

/// Check one point of a shard against everything it can be checked
/// against: where it belongs, its runs, and the figures written beside them.
fn check_point(
    path: &str,
    i: usize,
    row: &ShardRow,
    file: &ShardFile,
    s: Shard,
) -> Result<(), InputError> {
    let p = &row.point;
    let at = format!("points[{i}]");
    if p.index >= file.meta.points_total {
        return Err(refuse(
            path,
            format!(
                "{at}.index: found {}, but points_total is {} (indices 0 to {})",
                p.index,
                file.meta.points_total,
                file.meta.points_total.saturating_sub(1)
            ),
        ));
    }
    if !s.has(p.index) {
        return Err(refuse(
            path,
            format!(
                "{at}.index: found {}, which is not one of shard {}/{}'s points ({}, {}, {}, ...)",
                p.index,
                s.k,
                s.n,
                s.k - 1,
                s.k - 1 + s.n,
                s.k - 1 + 2 * s.n
            ),
        ));
    }
    if p.values.len() != file.meta.keys.len() {
        return Err(refuse(
            path,
            format!(
                "{at}.values: found {} values, but keys has {}",
                p.values.len(),
                file.meta.keys.len()
            ),
        ));
    }
    if p.runs.len() != file.meta.seeds as usize {
        return Err(refuse(
            path,
            format!(
                "{at}.runs: found {} runs, but seeds is {}",
                p.runs.len(),
                file.meta.seeds
            ),
        ));
    }
    for (j, r) in p.runs.iter().enumerate() {
        let at = format!("{at}.runs[{j}]");
        let want_seed = file.meta.base_seed.wrapping_add(j as u64);
        if r.seed != want_seed {
            return Err(refuse(
                path,
                format!(
                    "{at}.seed: found {}, but base_seed {} gives {want_seed} for run {j}",
                    r.seed, file.meta.base_seed
                ),
            ));
        }
        if r.failures > r.attempts {
            return Err(refuse(
                path,
                format!(
                    "{at}.failures: found {}, more than its attempts ({})",
                    r.failures, r.attempts
                ),
            ));
        }
        if r.first_failure_ns.is_some() != (r.failures > 0) {
            return Err(refuse(
                path,
                format!(
                    "{at}.first_failure_ns: found {}, but failures is {} (a run has a first failure exactly when it has failures)",
                    r.first_failure_ns
                        .map_or("null".to_string(), |t| t.to_string()),
                    r.failures
                ),
            ));
        }
    }
    let closed = [
        ("erlang_b_failure_ratio", p.erlang_b_failure_ratio, 1.0),
        ("offered_load", p.offered_load, f64::MAX),
    ];
    for (name, v, max) in closed {
        if !(0.0..=max).contains(&v) {
            return Err(refuse(
                path,
                format!(
                    "{at}.{name}: found {}, expected a number from 0 to {}",
                    super::num(v),
                    super::num(max)
                ),
            ));
        }
    }
    let Some(found) = &row.figures else {
        return Err(refuse(
            path,
            format!("{at}.figures: absent; every point portsim writes has its figures"),
        ));
    };
    // The figures as this version writes them, read back the same way the
    // file's were, so both sides went through the same text.
    let want: serde_json::Value = serde_json::to_string(&PointFigures::of(p))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(serde_json::Value::Null);
    if let Some((field, want, found)) =
        first_difference(&format!("{at}.figures"), &want, Some(found))
    {
        return Err(refuse(
            path,
            format!("{field}: the file says {found}, but its runs give {want}"),
        ));
    }
    Ok(())
}

/// Check that the points' values form one grid: the first key changes
/// slowest, and point `i` holds the values its mixed-radix digits pick.
fn check_grid(keys: &[String], points: &[(String, Row)]) -> Result<(), InputError> {
    use std::collections::HashMap;
    // Each key's values in order of first appearance.
    let mut distinct: Vec<Vec<&str>> = vec![Vec::new(); keys.len()];
    let mut seen: Vec<HashMap<&str, usize>> = vec![HashMap::new(); keys.len()];
    for (_, r) in points {
        for (j, v) in r.point.values.iter().enumerate() {
            if !seen[j].contains_key(v.as_str()) {
                seen[j].insert(v, distinct[j].len());
                distinct[j].push(v);
            }
        }
    }
    let size = distinct
        .iter()
        .try_fold(1usize, |n, d| n.checked_mul(d.len()));
    if size != Some(points.len()) {
        let sizes: Vec<String> = distinct.iter().map(|d| d.len().to_string()).collect();
        return Err(InputError::usage(format!(
            "merge: the points' values are not one grid: {} distinct values per key make {} points, but there are {}",
            sizes.join(" × "),
            size.map_or_else(|| "too many".to_string(), |n| n.to_string()),
            points.len()
        )));
    }
    for (path, r) in points {
        let mut rest = r.point.index;
        for j in (0..keys.len()).rev() {
            let want = distinct[j][rest % distinct[j].len()];
            rest /= distinct[j].len();
            if r.point.values[j] != want {
                return Err(refuse(
                    path,
                    format!(
                        "point {} has {} = {}, but the grid of all the shards' points puts {} there",
                        r.point.index,
                        key_text(&keys[j]),
                        quote(&r.point.values[j]),
                        quote(want)
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Read the shard outputs in `dirs` and combine them into the unsharded
/// report, after checking everything that can be checked (see the module
/// documentation).
pub fn merge(dirs: &[&Path]) -> Result<SweepReport, InputError> {
    let mut parts: Vec<(String, ShardFile)> = Vec::new();
    for d in dirs {
        parts.push(read_shard(d)?);
    }
    let Some((first_path, first)) = parts.first() else {
        return Err(InputError::usage("merge: no directories given"));
    };
    // Every shard must be one of the same sweep: the same identity, shape
    // and version, field by field.
    for (path, r) in &parts[1..] {
        let fields: [(&str, String, String); 8] = [
            (
                "sweep_id",
                quote(&r.meta.sweep_id),
                quote(&first.meta.sweep_id),
            ),
            (
                "schema_version",
                r.meta.schema_version.to_string(),
                first.meta.schema_version.to_string(),
            ),
            (
                "portsim_version",
                quote(&r.meta.portsim_version),
                quote(&first.meta.portsim_version),
            ),
            (
                "scenario",
                quote(&r.meta.scenario),
                quote(&first.meta.scenario),
            ),
            (
                "keys",
                quote(&r.meta.keys.join(", ")),
                quote(&first.meta.keys.join(", ")),
            ),
            (
                "points_total",
                r.meta.points_total.to_string(),
                first.meta.points_total.to_string(),
            ),
            (
                "seeds",
                r.meta.seeds.to_string(),
                first.meta.seeds.to_string(),
            ),
            (
                "base_seed",
                r.meta.base_seed.to_string(),
                first.meta.base_seed.to_string(),
            ),
        ];
        if let Some((field, mine, theirs)) = fields.iter().find(|(_, a, b)| a != b) {
            return Err(refuse(
                path,
                format!(
                    "a shard of another sweep: {field} is {mine}, but {theirs} in {first_path}; only shards of one sweep merge"
                ),
            ));
        }
    }
    let runs = first
        .meta
        .points_total
        .checked_mul(first.meta.seeds as usize);
    if runs.is_none_or(|r| r > super::MAX_RUNS) || first.meta.seeds == 0 {
        return Err(refuse(
            first_path,
            format!(
                "points_total {} × seeds {}: expected 1 to {} runs, as a sweep allows",
                first.meta.points_total,
                first.meta.seeds,
                thousands(super::MAX_RUNS as u64)
            ),
        ));
    }
    let n = match first.shard {
        Some(s) => s.n,
        None => {
            return Err(refuse(
                first_path,
                "not a shard (written without --shard)".into(),
            ))
        }
    };
    let mut seen: std::collections::HashMap<u32, &str> = std::collections::HashMap::new();
    for (path, r) in &parts {
        let s = r
            .shard
            .ok_or_else(|| refuse(path, "not a shard (written without --shard)".into()))?;
        if s.n != n || s.k == 0 || s.k > s.n {
            return Err(refuse(
                path,
                format!("shard is {}/{}, but {first_path} is one of {n}", s.k, s.n),
            ));
        }
        if let Some(other) = seen.get(&s.k) {
            return Err(refuse(
                path,
                format!("shard {}/{n} is also in {other}", s.k),
            ));
        }
        if !r.complete {
            return Err(refuse(
                path,
                format!("shard {}/{n} was interrupted; run it again", s.k),
            ));
        }
        seen.insert(s.k, path);
    }
    // At most as many present as directories, so this stops soon whatever
    // N a file claims.
    let missing: Vec<String> = (1..=n)
        .filter(|k| !seen.contains_key(k))
        .take(10)
        .map(|k| format!("{k}/{n}"))
        .collect();
    if !missing.is_empty() {
        let more = (n as usize).saturating_sub(seen.len() + missing.len());
        return Err(InputError::usage(format!(
            "merge: missing shard{} {}{}",
            if missing.len() == 1 { "" } else { "s" },
            missing.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        )));
    }
    for (path, r) in &parts {
        let s = r.shard.unwrap_or(Shard { k: 1, n: 1 });
        let want = shard_points(r.meta.points_total, s);
        if r.points.len() != want {
            return Err(refuse(
                path,
                format!(
                    "points: found {} points, but shard {}/{n} of points_total {} owns {want}",
                    r.points.len(),
                    s.k,
                    r.meta.points_total
                ),
            ));
        }
        for (i, row) in r.points.iter().enumerate() {
            check_point(path, i, row, r, s)?;
        }
    }
    // Every shard is there (n distinct K of n), each with exactly the
    // points it owns, and every point passed `has`: no duplicates remain
    // possible, but say so plainly if one slipped through.
    let meta = parts[0].1.meta.clone();
    let mut points: Vec<(String, Row)> = parts
        .into_iter()
        .flat_map(|(path, r)| {
            r.points.into_iter().map(move |row| {
                (
                    path.clone(),
                    Row {
                        point: row.point,
                        figures: None,
                    },
                )
            })
        })
        .collect();
    points.sort_by_key(|(_, r)| r.point.index);
    if let Some(w) = points
        .windows(2)
        .find(|w| w[0].1.point.index == w[1].1.point.index)
    {
        return Err(refuse(
            &w[1].0,
            format!("point {} is also in {}", w[1].1.point.index, w[0].0),
        ));
    }
    if points.len() != meta.points_total {
        return Err(InputError::usage(format!(
            "merge: the shards hold {} points, but points_total is {}",
            points.len(),
            meta.points_total
        )));
    }
    check_grid(&meta.keys, &points)?;
    let out = SweepReport {
        schema_version: meta.schema_version,
        portsim_version: meta.portsim_version,
        scenario: meta.scenario,
        scenario_file: meta.scenario_file,
        sweep_id: meta.sweep_id,
        keys: meta.keys,
        points_total: meta.points_total,
        seeds: meta.seeds,
        base_seed: meta.base_seed,
        complete: true,
        shard: None,
        points: points.into_iter().map(|(_, r)| r).collect(),
    };
    Ok(out.with_figures())
}

/// The fields of a shard file other than its points.
#[derive(Clone, Deserialize)]
struct Meta {
    schema_version: u32,
    portsim_version: String,
    scenario: String,
    scenario_file: String,
    sweep_id: String,
    keys: Vec<String>,
    points_total: usize,
    seeds: u32,
    base_seed: u64,
}
