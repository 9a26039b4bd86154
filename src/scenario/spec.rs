//! Specs written in the `[sweep]` table and on the command line of `sweep`
//! and `capacity`: which values a key takes (`--vary`) and what a run must
//! meet (`--target`). They are parsed here, below the commands that use
//! them, so a scenario file's `[sweep]` table is checked with the rest of
//! the file and reported at its line.
//!
//! Every size is counted before anything is built: the values of a range at
//! most [`MAX_VALUES`], computed in floats so no cast can wrap. Every number
//! is checked finite where it is read.

use std::str::FromStr;

use serde::Serialize;

use crate::error::quote;
use crate::util::{below, count_text, num};

/// The most values one `--vary` may expand to.
pub const MAX_VALUES: usize = 10_000;

/// One `--vary KEY=SPEC`: a scenario key and the values it takes.
#[derive(Debug, Clone, PartialEq)]
pub struct Vary {
    pub key: String,
    pub values: Vec<String>,
}

impl FromStr for Vary {
    type Err = String;
    fn from_str(s: &str) -> Result<Vary, String> {
        Vary::parse_spec(s).map_err(|e| format!("--vary {}: {e}", quote(s)))
    }
}

impl Vary {
    /// `KEY=a,b,c` (a list) or `KEY=FROM..TO:STEP` (a range, `TO` included),
    /// with numbers or durations (`10s..120s:10s`). Messages say what is
    /// wrong; the caller says where (`--vary ...`, `sweep.vary[0]`).
    pub fn parse_spec(s: &str) -> Result<Vary, String> {
        let (key, spec) = s.split_once('=').ok_or(
            "expected KEY=SPEC, e.g. traffic.rate=100..1000:50 or host.time_wait=30s,60s,120s",
        )?;
        let key = key.trim();
        if key.is_empty() || key.split('.').any(str::is_empty) {
            return Err("expected a dotted key such as traffic.rate".into());
        }
        let spec = spec.trim();
        let values = if spec.contains("..") {
            range(spec)?
        } else {
            list(spec)?
        };
        Ok(Vary {
            key: key.to_string(),
            values,
        })
    }
}

/// A number or a duration, and how to write values of its kind back.
pub fn quantity(s: &str) -> Option<(f64, bool)> {
    parse_quantity(s).ok()
}

/// A finite number (`true` when it was written as a duration), or why not:
/// `inf`, `nan` and numbers too large for a float (`1e400`) are refused here,
/// where they are read.
pub fn parse_quantity(s: &str) -> Result<(f64, bool), String> {
    if let Ok(v) = s.parse::<f64>() {
        return if v.is_finite() {
            Ok((v, false))
        } else {
            Err(format!("{} is not a finite number", quote(s)))
        };
    }
    match humantime::parse_duration(s) {
        Ok(d) => Ok((d.as_secs_f64(), true)),
        Err(_) => Err(format!(
            "{} is neither a number nor a duration such as 30s",
            quote(s)
        )),
    }
}

/// Write a value: integers plainly, others with up to 9 decimals; durations
/// in the largest whole unit (s, ms, µs as `us`, ns).
pub fn write_quantity(v: f64, duration: bool) -> String {
    if duration {
        let ns = (v * 1e9).round() as u64;
        return match ns {
            n if n % 1_000_000_000 == 0 => format!("{}s", n / 1_000_000_000),
            n if n % 1_000_000 == 0 => format!("{}ms", n / 1_000_000),
            n if n % 1_000 == 0 => format!("{}us", n / 1_000),
            n => format!("{n}ns"),
        };
    }
    if !below(v.abs(), 1e15) {
        // Beyond the digits a float holds: exponent form, which TOML reads.
        return format!("{v:e}");
    }
    let r = (v * 1e9).round() / 1e9;
    if r == r.trunc() {
        format!("{}", r as i64)
    } else {
        let s = format!("{r:.9}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// `a,b,c`: counted before it is split, each value non-empty, finite if it
/// is a number, and listed once.
fn list(spec: &str) -> Result<Vec<String>, String> {
    let n = spec.split(',').count();
    if n > MAX_VALUES {
        return Err(format!(
            "{} values; at most {} are allowed",
            thousands(n),
            thousands(MAX_VALUES)
        ));
    }
    let values: Vec<String> = spec.split(',').map(|v| v.trim().to_string()).collect();
    let mut seen = std::collections::HashSet::new();
    for v in &values {
        if v.is_empty() {
            return Err("an empty value in the list".into());
        }
        if v.parse::<f64>().is_ok_and(|x| !x.is_finite()) {
            return Err(format!("{} is not a finite number", quote(v)));
        }
        if !seen.insert(v.as_str()) {
            return Err(format!("{} is listed twice", quote(v)));
        }
    }
    Ok(values)
}

/// `FROM..TO:STEP`: the number of values is computed in floats and checked
/// finite and within [`MAX_VALUES`] before any value is made.
fn range(spec: &str) -> Result<Vec<String>, String> {
    let (span, step) = spec
        .split_once(':')
        .ok_or("a range needs a step: FROM..TO:STEP, e.g. 100..1000:50")?;
    let (from, to) = span.split_once("..").ok_or("expected FROM..TO:STEP")?;
    let parse = |t: &str| parse_quantity(t.trim());
    let ((a, da), (b, db), (st, ds)) = (parse(from)?, parse(to)?, parse(step)?);
    if da != db || da != ds {
        return Err("FROM, TO and STEP must all be numbers or all durations".into());
    }
    if st <= 0.0 {
        return Err("the step must be positive".into());
    }
    if b < a {
        return Err(format!(
            "the range runs backwards ({} > {})",
            quote(from.trim()),
            quote(to.trim())
        ));
    }
    // Steps from FROM to TO; infinite when TO − FROM overflows or the step
    // is tiny. Compared as a float, so no cast can wrap.
    let steps = (b - a) / st * (1.0 + 1e-12);
    if !below(steps, MAX_VALUES as f64) {
        return Err(format!(
            "{} values; at most {} are allowed (use a larger step)",
            count_text(steps.floor() + 1.0),
            thousands(MAX_VALUES)
        ));
    }
    let n = steps.floor() as usize + 1;
    let values: Vec<String> = (0..n)
        .map(|i| write_quantity(a + i as f64 * st, da))
        .collect();
    // Values are written to 9 decimals (or 1 ns): a finer step repeats them.
    if let Some(w) = values.windows(2).find(|w| w[0] == w[1]) {
        return Err(format!(
            "the step {} is finer than values are written ({} twice); use a larger step",
            quote(step.trim()),
            quote(&w[0])
        ));
    }
    Ok(values)
}

pub(crate) fn thousands(n: usize) -> String {
    crate::util::thousands(n as u64)
}

/// A figure of a run that a target bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    FailureRatio,
    PeakInUse,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Op {
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = ">")]
    Gt,
}

/// `--target "failure_ratio<=1e-4"`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Target {
    pub metric: Metric,
    pub op: Op,
    pub bound: f64,
}

impl FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Target, String> {
        Target::parse_bare(s).map_err(|e| format!("--target {}: {e}", quote(s)))
    }
}

impl Target {
    /// `FIGURE<=X` and the like; messages say what is wrong, the caller
    /// says where (`--target`, `sweep.target`).
    pub fn parse_bare(s: &str) -> Result<Target, String> {
        let allowed = "allowed: failure_ratio or peak_in_use, then <=, <, >= or >, then a number, e.g. \"failure_ratio<=1e-4\"";
        let t = s.replace(' ', "");
        let (pos, op) = ["<=", ">=", "<", ">"]
            .iter()
            .find_map(|op| t.find(op).map(|i| (i, *op)))
            .ok_or_else(|| format!("no comparison; {allowed}"))?;
        let metric = match &t[..pos] {
            "failure_ratio" => Metric::FailureRatio,
            "peak_in_use" => Metric::PeakInUse,
            other => return Err(format!("unknown figure {}; {allowed}", quote(other))),
        };
        let found = &t[pos + op.len()..];
        let bound: f64 = found
            .parse()
            .map_err(|_| format!("{} is not a number; {allowed}", quote(found)))?;
        if !bound.is_finite() {
            return Err(format!(
                "{} is not a finite number; a finite number is expected, e.g. \"failure_ratio<=1e-4\"",
                quote(found)
            ));
        }
        let in_range = match metric {
            Metric::FailureRatio => (0.0..=1.0).contains(&bound),
            Metric::PeakInUse => bound >= 0.0,
        };
        if !in_range {
            return Err(format!(
                "{} is out of range; {}",
                num(bound),
                match metric {
                    Metric::FailureRatio => "a failure ratio is between 0 and 1",
                    Metric::PeakInUse => "a count of ports is 0 or more",
                }
            ));
        }
        let op = match op {
            "<=" => Op::Le,
            ">=" => Op::Ge,
            "<" => Op::Lt,
            _ => Op::Gt,
        };
        Ok(Target { metric, op, bound })
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = match self.metric {
            Metric::FailureRatio => "failure_ratio",
            Metric::PeakInUse => "peak_in_use",
        };
        let op = match self.op {
            Op::Le => "<=",
            Op::Lt => "<",
            Op::Ge => ">=",
            Op::Gt => ">",
        };
        write!(f, "{m} {op} {}", num(self.bound))
    }
}
