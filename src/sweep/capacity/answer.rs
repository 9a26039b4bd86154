//! A capacity search's answer: the values tried, the bracket, the mean
//! boundary over seeds with its interval, and the one sentence that says it
//! beside the closed form. The search that produces it is in [`super`].

/// Version of `capacity.json`'s layout.
pub const SCHEMA_VERSION: u32 = 1;

use schemars::JsonSchema;
use serde::Serialize;

use super::*;

/// One evaluated value.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Probe {
    pub seed: u64,
    pub value: String,
    pub figure: f64,
    pub meets: bool,
    /// The value as a number, to order probes by.
    #[serde(skip)]
    pub at: f64,
    /// Every figure of the run, for `--fail-on` at the answer.
    #[serde(skip)]
    pub run: Run,
}

/// What an interrupted search had established: the value nearest the
/// boundary known to meet the target in every seed searched, and the value
/// nearest it known to miss it in at least one.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Bracket {
    pub meets: Option<String>,
    pub misses: Option<String>,
    /// Seeds that had run at least one probe.
    pub seeds_searched: usize,
}

/// The answer.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Capacity {
    /// Version of this file's layout, as in report.json and sweep.json.
    #[schemars(extend("const" = SCHEMA_VERSION))]
    pub schema_version: u32,
    pub scenario: String,
    pub key: String,
    pub target: String,
    /// "largest" or "smallest": which end of the key meets the target
    /// (null when interrupted before a bracket was found).
    #[schemars(extend("enum" = ["largest", "smallest", null]))]
    pub direction: Option<&'static str>,
    /// Mean over seeds of each seed's boundary (null when no seed finished).
    pub value: Option<f64>,
    /// 95 % interval of the mean.
    pub interval: Option<[f64; 2]>,
    pub seeds: usize,
    pub per_seed: Vec<f64>,
    /// The same search on the closed form (Erlang B), for failure_ratio.
    pub analytic: Option<f64>,
    /// ports ÷ (hold + TIME_WAIT) × pools, for traffic.rate.
    pub ceiling: Option<f64>,
    /// For a cloud NAT's key, the value its vendor's rule gives, and the
    /// rule.
    pub vendor: Option<VendorAnswer>,
    /// False when interrupted: fewer seeds than asked.
    pub complete: bool,
    /// Only when interrupted: the bracket established so far.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bracket: Option<Bracket>,
    /// Seeds asked for.
    #[serde(skip)]
    pub seeds_asked: usize,
    pub probes: Vec<Probe>,
}

impl Capacity {
    /// The one-sentence answer; when interrupted, what was established.
    pub fn sentence(&self) -> String {
        let rate = self.key == "traffic.rate";
        // Durations are searched in seconds: their probes are written "74.6s".
        let duration = self.probes.iter().any(|p| {
            crate::scenario::spec::quantity(&p.value).is_some_and(|(_, is_duration)| is_duration)
        });
        let unit = if rate {
            " conn/s"
        } else if duration {
            " s"
        } else {
            ""
        };
        let mut s = match (self.value, self.interval, self.direction) {
            (Some(value), Some(interval), Some(direction)) => {
                self.estimate_sentence(value, interval, direction, unit)
            }
            _ => String::new(),
        };
        if let Some(b) = &self.bracket {
            if !s.is_empty() {
                s.push(' ');
            }
            s.push_str(&format!(
                "Interrupted: {} of {} seed{} finished",
                self.seeds,
                self.seeds_asked,
                if self.seeds_asked == 1 { "" } else { "s" }
            ));
            let of = |n: usize| format!("{n} seed{}", if n == 1 { "" } else { "s" });
            let known = match (&b.meets, &b.misses) {
                (Some(m), Some(x)) => format!(
                    "; so far {} = {m}{unit} meets {} in every seed searched ({}) and {x}{unit} misses it in at least one",
                    self.key,
                    self.target,
                    of(b.seeds_searched)
                ),
                (Some(m), None) => format!(
                    "; so far {} = {m}{unit} meets {} in every seed searched ({}), and no value tried missed it",
                    self.key,
                    self.target,
                    of(b.seeds_searched)
                ),
                (None, Some(x)) => format!(
                    "; so far {} = {x}{unit} misses {}, and no value is known to meet it in every seed searched ({})",
                    self.key,
                    self.target,
                    of(b.seeds_searched)
                ),
                (None, None) => {
                    let list = |meets: bool| {
                        let v: Vec<&str> = self
                            .probes
                            .iter()
                            .filter(|p| p.meets == meets)
                            .map(|p| p.value.as_str())
                            .collect();
                        if v.is_empty() {
                            "none".to_string()
                        } else {
                            v.join(", ")
                        }
                    };
                    format!(
                        "; no bracket yet ({} values meeting {}: {}; missing it: {})",
                        self.key,
                        self.target,
                        list(true),
                        list(false)
                    )
                }
            };
            s.push_str(&known);
            s.push('.');
        }
        s
    }

    fn estimate_sentence(
        &self,
        value: f64,
        interval: [f64; 2],
        direction: &str,
        unit: &str,
    ) -> String {
        // Three significant figures or whole numbers, the same for the
        // value and its interval; whole numbers stay whole. The closed
        // forms beside it have digits of their own (a ceiling of 1.64 is
        // not "2" because the answer is 8).
        let decimals = |v: f64, whole: bool| match v.abs() {
            _ if whole => 0,
            v if v >= 100.0 => 0,
            v if v >= 10.0 => 1,
            v if v >= 1.0 => 2,
            _ => 3,
        };
        let show = |v: f64, decimals: usize| {
            if !below(v.abs(), 1e15) || (v != 0.0 && v.abs() < 1e-3) {
                num(v)
            } else if decimals == 0 && v >= 0.0 {
                thousands(v.round() as u64)
            } else {
                format!("{v:.decimals$}")
            }
        };
        let whole = [value, interval[0], interval[1]]
            .iter()
            .all(|v| v.fract() == 0.0);
        let d = decimals(value, whole);
        let w = |v: f64| show(v, d);
        let own = |v: f64| show(v, decimals(v, v.fract() == 0.0));
        let rate = self.key == "traffic.rate";
        let seeds = format!(
            "over {} seed{}",
            self.seeds,
            if self.seeds == 1 { "" } else { "s" }
        );
        let mut s = if rate && direction == "largest" {
            format!(
                "Sustains {}{unit} with {}; 95 % interval {}–{}{unit} {seeds}",
                w(value),
                self.target,
                w(interval[0]),
                w(interval[1])
            )
        } else {
            format!(
                "{}: the {} value with {} is {}{unit}; 95 % interval {}–{}{unit} {seeds}",
                self.key,
                direction,
                self.target,
                w(value),
                w(interval[0]),
                w(interval[1])
            )
        };
        if let Some(a) = self.analytic {
            s.push_str(&format!("; Erlang B gives {}{unit}", own(a)));
        }
        if let Some(c) = self.ceiling {
            s.push_str(&format!("; ports ÷ (hold + TIME_WAIT) = {}{unit}", own(c)));
        }
        if let Some(v) = &self.vendor {
            s.push_str(&format!("; {}", v.text));
        }
        s.push('.');
        s
    }

    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("capacity serializes");
        s.push('\n');
        s
    }
}

/// What a vendor's sizing rule gives for the key searched.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct VendorAnswer {
    /// The value by the rule (`null`: the rule does not bound it).
    pub value: Option<f64>,
    /// The rule and its value, in words.
    pub text: String,
}
