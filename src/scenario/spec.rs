//! Specs written in the `[sweep]` table and on the command line of `sweep`
//! and `capacity`: which values a key takes (`--vary`) and what a run must
//! meet (`--target`). They are parsed here, below the commands that use
//! them, so a scenario file's `[sweep]` table is checked with the rest of
//! the file and reported at its line.
//!
//! `--target` and `--fail-on` share one expression grammar,
//! `FIGURE OP NUMBER` over the [`Figures`] of a run, so every command
//! knows the same figures under the names report.json gives them, and a
//! bad expression gets the same message, listing them all, wherever it is
//! written.
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

/// A figure of a run that an expression (`--target`, `--fail-on`) bounds.
/// The names are those of report.json (`failures`, `bursts.worst_10s`, ...)
/// so an expression reads like the report it is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Metric {
    #[serde(rename = "failure_ratio")]
    FailureRatio,
    #[serde(rename = "failures")]
    Failures,
    #[serde(rename = "attempts")]
    Attempts,
    #[serde(rename = "first_failure_s")]
    FirstFailureS,
    #[serde(rename = "peak_in_use")]
    PeakInUse,
    #[serde(rename = "worst_1s")]
    Worst1s,
    #[serde(rename = "worst_10s")]
    Worst10s,
    #[serde(rename = "worst_60s")]
    Worst60s,
    #[serde(rename = "seconds_with_failures")]
    SecondsWithFailures,
    #[serde(rename = "longest_blocked_s")]
    LongestBlockedS,
    #[serde(rename = "connect_delay_p99")]
    ConnectDelayP99,
    #[serde(rename = "connecting_at_end")]
    ConnectingAtEnd,
    #[serde(rename = "stale_reuse")]
    StaleReuse,
}

/// What a figure measures, which decides the bounds it may be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    /// Between 0 and 1.
    Ratio,
    /// A whole number of attempts, ports or seconds; 0 or more.
    Count,
    /// Seconds; 0 or more, written as a number or a duration (`1h`).
    Seconds,
}

impl Metric {
    /// Every figure, in the order messages list them.
    pub const ALL: [Metric; 13] = [
        Metric::FailureRatio,
        Metric::Failures,
        Metric::Attempts,
        Metric::FirstFailureS,
        Metric::PeakInUse,
        Metric::Worst1s,
        Metric::Worst10s,
        Metric::Worst60s,
        Metric::SecondsWithFailures,
        Metric::LongestBlockedS,
        Metric::ConnectDelayP99,
        Metric::ConnectingAtEnd,
        Metric::StaleReuse,
    ];

    /// The name an expression writes.
    pub fn name(self) -> &'static str {
        match self {
            Metric::FailureRatio => "failure_ratio",
            Metric::Failures => "failures",
            Metric::Attempts => "attempts",
            Metric::FirstFailureS => "first_failure_s",
            Metric::PeakInUse => "peak_in_use",
            Metric::Worst1s => "worst_1s",
            Metric::Worst10s => "worst_10s",
            Metric::Worst60s => "worst_60s",
            Metric::SecondsWithFailures => "seconds_with_failures",
            Metric::LongestBlockedS => "longest_blocked_s",
            Metric::ConnectDelayP99 => "connect_delay_p99",
            Metric::ConnectingAtEnd => "connecting_at_end",
            Metric::StaleReuse => "stale_reuse",
        }
    }

    fn unit(self) -> Unit {
        match self {
            Metric::FailureRatio | Metric::Worst1s | Metric::Worst10s | Metric::Worst60s => {
                Unit::Ratio
            }
            Metric::Failures
            | Metric::Attempts
            | Metric::PeakInUse
            | Metric::SecondsWithFailures
            | Metric::ConnectingAtEnd
            | Metric::StaleReuse => Unit::Count,
            Metric::FirstFailureS | Metric::LongestBlockedS | Metric::ConnectDelayP99 => {
                Unit::Seconds
            }
        }
    }

    /// The figure's value in a run. `first_failure_s` is +infinity when
    /// nothing failed: a run without failures is later than any bound
    /// (`first_failure_s<3600` false, `first_failure_s>=3600` true).
    pub fn of(self, f: &Figures) -> f64 {
        match self {
            Metric::FailureRatio => {
                if f.attempts > 0 {
                    f.failures as f64 / f.attempts as f64
                } else {
                    0.0
                }
            }
            Metric::Failures => f.failures as f64,
            Metric::Attempts => f.attempts as f64,
            Metric::FirstFailureS => f.first_failure_s.unwrap_or(f64::INFINITY),
            Metric::PeakInUse => f64::from(f.peak_in_use),
            Metric::Worst1s => f.worst_1s,
            Metric::Worst10s => f.worst_10s,
            Metric::Worst60s => f.worst_60s,
            Metric::SecondsWithFailures => f.seconds_with_failures as f64,
            Metric::LongestBlockedS => f.longest_blocked_s,
            Metric::ConnectDelayP99 => f.connect_delay_p99,
            Metric::ConnectingAtEnd => f.connecting_at_end as f64,
            Metric::StaleReuse => f.stale_reuse as f64,
        }
    }

    /// A value of the figure as a message shows it, compared with `bound`:
    /// briefly, as other messages show numbers (six decimals, or six
    /// significant digits in exponent form), or in full when the brief form
    /// would read as the bound itself or fall on its other side.
    pub fn show(self, v: f64, bound: f64) -> String {
        if v == f64::INFINITY && self == Metric::FirstFailureS {
            return "inf (nothing failed)".to_string();
        }
        let short = crate::error::num(v);
        let misleading = short.parse::<f64>().map_or(true, |r| {
            (r == bound) != (v == bound) || (r < bound) != (v < bound)
        });
        if misleading {
            num(v)
        } else {
            short
        }
    }
}

/// Every figure's name, for messages: "failure_ratio, failures, ...".
fn figure_names() -> String {
    let names: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
    names.join(", ")
}

/// The figures of one run that expressions compare, whether it came from
/// `run` (a report) or from a sweep or capacity probe (a `sweep::Run`):
/// both fill it with the same conversions, so one expression gives the
/// same verdict on the same run whichever command ran it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Figures {
    pub attempts: u64,
    pub failures: u64,
    /// Seconds from the start of the run; `None` when nothing failed.
    pub first_failure_s: Option<f64>,
    pub peak_in_use: u32,
    pub worst_1s: f64,
    pub worst_10s: f64,
    pub worst_60s: f64,
    pub seconds_with_failures: u64,
    pub longest_blocked_s: f64,
    /// `connect_delay_s.p99`: seconds established connects waited for a SYN.
    pub connect_delay_p99: f64,
    pub connecting_at_end: u64,
    pub stale_reuse: u64,
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

impl Op {
    pub fn text(self) -> &'static str {
        match self {
            Op::Le => "<=",
            Op::Lt => "<",
            Op::Ge => ">=",
            Op::Gt => ">",
        }
    }
}

/// An expression `FIGURE OP BOUND` over a run's figures, e.g.
/// `failure_ratio<=1e-4`: what `capacity --target` keeps and what
/// `--fail-on` exits 1 on. One grammar for both, so a figure added here is
/// known to every command.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Target {
    pub metric: Metric,
    pub op: Op,
    pub bound: f64,
}

impl FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Target, String> {
        Target::parse_as(s, "--target")
    }
}

/// An example of the grammar, for messages.
const EXAMPLE: &str = "e.g. \"failure_ratio<=1e-4\" or \"first_failure_s>=3600\"";

impl Target {
    /// Parse an expression given to `flag`; the message names the flag and
    /// quotes the expression.
    pub fn parse_as(s: &str, flag: &str) -> Result<Target, String> {
        Target::parse_bare(s).map_err(|e| format!("{flag} {}: {e}", quote(s)))
    }

    /// `FIGURE<=X` and the like (spaces allowed); messages say what is
    /// wrong and list what is allowed, the caller says where (`--target`,
    /// `--fail-on`, `sweep.target`).
    pub fn parse_bare(s: &str) -> Result<Target, String> {
        let allowed = format!(
            "allowed: a figure ({}), then <=, <, >= or >, then a number, {EXAMPLE}",
            figure_names()
        );
        if s.contains(',') {
            return Err(format!(
                "one expression at a time (repeat the flag for more); {allowed}"
            ));
        }
        let t: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        // The operator: the first run of <, > and = characters.
        let pos = t
            .find(['<', '>', '='])
            .ok_or_else(|| format!("no comparison; {allowed}"))?;
        let len = t[pos..]
            .find(|c| !matches!(c, '<' | '>' | '='))
            .unwrap_or(t.len() - pos);
        let op = match &t[pos..pos + len] {
            "<=" => Op::Le,
            ">=" => Op::Ge,
            "<" => Op::Lt,
            ">" => Op::Gt,
            other => {
                return Err(format!("{} is not a comparison; {allowed}", quote(other)));
            }
        };
        let name = &t[..pos];
        let metric = Metric::ALL
            .into_iter()
            .find(|m| m.name() == name)
            .ok_or_else(|| {
                let hint = crate::error::did_you_mean(name, Metric::ALL.map(Metric::name))
                    .map(|m| format!(" (did you mean \"{m}\"?)"))
                    .unwrap_or_default();
                if name.is_empty() {
                    format!("no figure before {}; {allowed}", op.text())
                } else {
                    format!("unknown figure {}{hint}; {allowed}", quote(name))
                }
            })?;
        let found = &t[pos + len..];
        let bound = match metric.unit() {
            Unit::Seconds => match parse_quantity(found) {
                Ok((v, _)) => v,
                Err(e) if found.parse::<f64>().is_ok() => {
                    return Err(format!("{e}; a finite number is expected, {EXAMPLE}"))
                }
                Err(_) => {
                    return Err(format!(
                        "{} is neither a number nor a duration such as 1h; {allowed}",
                        quote(found)
                    ))
                }
            },
            _ => {
                let v: f64 = found
                    .parse()
                    .map_err(|_| format!("{} is not a number; {allowed}", quote(found)))?;
                if !v.is_finite() {
                    return Err(format!(
                        "{} is not a finite number; a finite number is expected, {EXAMPLE}",
                        quote(found)
                    ));
                }
                v
            }
        };
        let in_range = match metric.unit() {
            Unit::Ratio => (0.0..=1.0).contains(&bound),
            Unit::Count | Unit::Seconds => bound >= 0.0,
        };
        if !in_range {
            return Err(format!(
                "{} is out of range for {}; {}",
                num(bound),
                metric.name(),
                match metric.unit() {
                    Unit::Ratio => "a failure ratio is between 0 and 1",
                    Unit::Count => "a count is 0 or more",
                    Unit::Seconds => "a time is 0 s or more",
                }
            ));
        }
        Ok(Target { metric, op, bound })
    }

    /// Whether the value `v` of the figure meets the bound.
    pub fn meets(&self, v: f64) -> bool {
        match self.op {
            Op::Le => v <= self.bound,
            Op::Lt => v < self.bound,
            Op::Ge => v >= self.bound,
            Op::Gt => v > self.bound,
        }
    }

    /// Whether the expression is true of a run.
    pub fn holds(&self, f: &Figures) -> bool {
        self.meets(self.metric.of(f))
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} {}",
            self.metric.name(),
            self.op.text(),
            num(self.bound)
        )
    }
}

/// One `--fail-on EXPR` (or `--fail-on-exhaustion`): the flag as typed,
/// which messages repeat, and the expression. The command exits 1 when it
/// is true.
#[derive(Debug, Clone, PartialEq)]
pub struct FailOn {
    /// `--fail-on worst_10s>0.01`, `--fail-on-exhaustion (failures>0)`.
    pub shown: String,
    pub expr: Target,
}

impl FromStr for FailOn {
    type Err = String;
    fn from_str(s: &str) -> Result<FailOn, String> {
        Ok(FailOn {
            expr: Target::parse_as(s, "--fail-on")?,
            shown: format!("--fail-on {}", s.trim()),
        })
    }
}

impl FailOn {
    /// `--fail-on-exhaustion`: any failed attempt, `failures>0`.
    pub fn exhaustion() -> FailOn {
        FailOn {
            shown: "--fail-on-exhaustion (failures>0)".to_string(),
            expr: Target {
                metric: Metric::Failures,
                op: Op::Gt,
                bound: 0.0,
            },
        }
    }

    /// When the expression is true of the run, what the message says:
    /// `--fail-on worst_10s>0.01 is true: worst_10s = 0.57`.
    pub fn trips(&self, f: &Figures) -> Option<String> {
        let v = self.expr.metric.of(f);
        self.expr.meets(v).then(|| {
            format!(
                "{} is true: {} = {}",
                self.shown,
                self.expr.metric.name(),
                self.expr.metric.show(v, self.expr.bound)
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures() -> Figures {
        Figures {
            attempts: 1000,
            failures: 87,
            first_failure_s: Some(12.625),
            peak_in_use: 100,
            worst_1s: 1.0,
            worst_10s: 0.57,
            worst_60s: 0.25,
            seconds_with_failures: 9,
            longest_blocked_s: 0.75,
            connect_delay_p99: 3.0,
            connecting_at_end: 4,
            stale_reuse: 2,
        }
    }

    #[test]
    fn every_figure_parses_and_reads_its_value() {
        let f = figures();
        let want = [
            0.087, 87.0, 1000.0, 12.625, 100.0, 1.0, 0.57, 0.25, 9.0, 0.75, 3.0, 4.0, 2.0,
        ];
        for (m, want) in Metric::ALL.into_iter().zip(want) {
            let t: Target = format!("{}>=0", m.name()).parse().unwrap();
            assert_eq!((t.metric, t.op, t.bound), (m, Op::Ge, 0.0));
            assert_eq!(m.of(&f), want, "{}", m.name());
            // Serialized under the same name.
            assert_eq!(
                serde_json::to_value(m).unwrap(),
                serde_json::Value::from(m.name())
            );
        }
    }

    #[test]
    fn operators_compare_exactly() {
        let f = figures();
        for (text, holds) in [
            ("failures>87", false),
            ("failures>=87", true),
            ("failures<87", false),
            ("failures<=87", true),
            ("failures > 86", true),
            ("worst_10s>0.01", true),
            ("worst_10s <= 0.57", true),
            ("worst_10s<0.57", false),
            ("failure_ratio>1e-4", true),
            ("peak_in_use<100", false),
            ("first_failure_s<12.625", false),
            ("first_failure_s<=12.625", true),
            ("first_failure_s<1m", true),
            ("longest_blocked_s>=750ms", true),
        ] {
            let t: Target = text.parse().unwrap();
            assert_eq!(t.holds(&f), holds, "{text}");
        }
    }

    #[test]
    fn nothing_failed_is_later_than_any_first_failure_bound() {
        let none = Figures {
            attempts: 10,
            ..Figures::default()
        };
        let is = |s: &str| s.parse::<Target>().unwrap().holds(&none);
        assert!(!is("first_failure_s<3600"));
        assert!(!is("first_failure_s<=3600"));
        assert!(is("first_failure_s>=3600"));
        assert!(is("first_failure_s>0"));
        assert!(!is("failures>0"));
        assert!(is("failure_ratio<=0"));
        // No attempts at all: a failure ratio of 0, not NaN.
        let t: Target = "failure_ratio<=0".parse().unwrap();
        assert!(t.holds(&Figures::default()));
    }

    #[test]
    fn display_round_trips() {
        for text in [
            "failure_ratio<=1e-4",
            "failure_ratio<0.123456789012345",
            "failures>0",
            "attempts>=123456789012",
            "first_failure_s>=3600",
            "first_failure_s<1h",
            "first_failure_s<=0.000000001",
            "peak_in_use<1000",
            "worst_1s<1",
            "worst_10s<=0.01",
            "worst_60s>0.5",
            "seconds_with_failures<3",
            "longest_blocked_s>2.5",
        ] {
            let t: Target = text.parse().unwrap();
            let shown = t.to_string();
            let back: Target = shown.parse().unwrap();
            assert_eq!(back, t, "{text} → {shown}");
        }
        let t: Target = "worst_10s<=0.01".parse().unwrap();
        assert_eq!(t.to_string(), "worst_10s <= 0.01");
        let t: Target = "first_failure_s>=1h".parse().unwrap();
        assert_eq!(t.to_string(), "first_failure_s >= 3600");
    }

    #[test]
    fn bad_expressions_say_what_is_allowed() {
        let every = Metric::ALL.map(Metric::name);
        for (text, says) in [
            ("worst_5s>0", "unknown figure \"worst_5s\""),
            ("failure<1", "did you mean \"failures\"?"),
            ("failure_ratio", "no comparison"),
            ("failure_ratio=1", "\"=\" is not a comparison"),
            ("failure_ratio==1", "\"==\" is not a comparison"),
            ("<=1", "no figure before <="),
            ("failure_ratio<=x", "\"x\" is not a number"),
            ("failure_ratio<=", "\"\" is not a number"),
            ("failures=>1", "\"=>\" is not a comparison"),
            ("failures<>1", "\"<>\" is not a comparison"),
            ("failures>0,worst_10s>0.01", "one expression at a time"),
            ("first_failure_s>soon", "neither a number nor a duration"),
        ] {
            let e = text.parse::<Target>().unwrap_err();
            assert!(e.starts_with("--target \""), "{text}: {e}");
            assert!(e.contains(says), "{text}: {e}");
            for name in every {
                assert!(e.contains(name), "{text}: {e} does not list {name}");
            }
        }
        for (text, says) in [
            (
                "failure_ratio<=1.5",
                "1.5 is out of range for failure_ratio",
            ),
            ("worst_10s>-0.1", "between 0 and 1"),
            ("failures>-1", "a count is 0 or more"),
            ("first_failure_s<-5", "a time is 0 s or more"),
            ("failure_ratio<=nan", "a finite number is expected"),
            ("failure_ratio<=inf", "a finite number is expected"),
            ("first_failure_s<=inf", "a finite number is expected"),
            ("first_failure_s<=1e400", "a finite number is expected"),
        ] {
            let e = text.parse::<Target>().unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn fail_on_names_the_expression_and_the_figure() {
        let f = figures();
        let x: FailOn = " worst_10s>0.01 ".parse().unwrap();
        assert_eq!(
            x.trips(&f).unwrap(),
            "--fail-on worst_10s>0.01 is true: worst_10s = 0.57"
        );
        let x: FailOn = "worst_10s>0.6".parse().unwrap();
        assert_eq!(x.trips(&f), None);
        let x: FailOn = "first_failure_s>=3600".parse().unwrap();
        assert_eq!(
            x.trips(&Figures::default()).unwrap(),
            "--fail-on first_failure_s>=3600 is true: first_failure_s = inf (nothing failed)"
        );
        assert_eq!(
            FailOn::exhaustion().trips(&f).unwrap(),
            "--fail-on-exhaustion (failures>0) is true: failures = 87"
        );
        assert_eq!(FailOn::exhaustion().trips(&Figures::default()), None);
        // Briefly, unless that would read as the bound.
        let f = Figures {
            attempts: 3,
            failures: 1,
            ..Figures::default()
        };
        let x: FailOn = "failure_ratio>0.3".parse().unwrap();
        assert_eq!(
            x.trips(&f).unwrap(),
            "--fail-on failure_ratio>0.3 is true: failure_ratio = 0.333333"
        );
        let x: FailOn = "failure_ratio>0.3333333".parse().unwrap();
        assert_eq!(
            x.trips(&f).unwrap(),
            "--fail-on failure_ratio>0.3333333 is true: failure_ratio = 0.3333333333333333"
        );
        let x: FailOn = "failure_ratio>0.333333".parse().unwrap();
        assert_eq!(
            x.trips(&f).unwrap(),
            "--fail-on failure_ratio>0.333333 is true: failure_ratio = 0.3333333333333333"
        );
        let e = "peak>1".parse::<FailOn>().unwrap_err();
        assert!(e.starts_with("--fail-on \"peak>1\": unknown figure"), "{e}");
    }
}
