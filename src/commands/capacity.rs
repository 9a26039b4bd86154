//! `portsim capacity`: the largest (or smallest) value of one key that
//! meets a target, searched over seeds; a sentence or JSON on stdout and
//! every value tried in `--out`. The search is [`crate::sweep::capacity`];
//! this reads the flags (and the starting bracket from the scenario when
//! none is given) and does the plumbing.

use std::path::{Path, PathBuf};

use super::common::{
    bar, fail_on_check, fail_on_flags, key_text, max_events, prepare_out, stop_flag, write_files,
    Runs,
};
use super::{print_out, Exit};
use crate::error::{quote, InputError};
use crate::scenario::nat::{Blocks, CloudRules, Nat};
use crate::scenario::{load_str, read_file, Override, Scenario};
use crate::sweep::capacity::{Kind, Metric, Op, Search, Target};
use crate::sweep::{below, num, parse_quantity, pool, Plan};

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  portsim capacity scenarios/sweep-rate.toml
  portsim capacity scenarios/api-no-pooling.toml --vary traffic.rate=100..1000 --target \"failure_ratio<=1e-3\"
  portsim capacity scenarios/sweep-rate.toml --vary host.time_wait=10s..120s --seeds 5 --out capacity")]
pub(crate) struct CapacityArgs {
    /// Scenario file (TOML).
    scenario: PathBuf,
    /// The key to search, optionally with a starting bracket: KEY or
    /// KEY=LOW..HIGH [default: the scenario's [sweep] capacity].
    #[arg(long = "vary", value_name = "KEY[=LOW..HIGH]")]
    vary: Option<String>,
    /// What the answer must keep: a figure (failure_ratio, failures,
    /// attempts, first_failure_s, peak_in_use, worst_1s, worst_10s,
    /// worst_60s, seconds_with_failures, longest_blocked_s), <=, <, >=, >,
    /// a number [default: the scenario's [sweep] target, else
    /// failure_ratio<=1e-4].
    #[arg(long, value_name = "FIGURE<=X")]
    target: Option<String>,
    #[command(flatten)]
    runs: Runs,
    /// Write capacity.json and every value tried (capacity.csv) into DIR.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Refuse to probe a value expected to make more connection attempts
    /// than this in one run (a positive finite number).
    #[arg(long, value_name = "N", default_value = "1e8")]
    max_events: String,
}

/// The value a key has in the scenario (after `--set`), to start a search from.
fn current_value(path: &Path, set: &[Override], key: &str) -> Option<toml::Value> {
    if let Some(o) = set.iter().rev().find(|o| o.key == key) {
        return Some(o.value.clone());
    }
    let text = std::fs::read_to_string(path).ok()?;
    let mut cur = toml::Value::Table(toml::from_str(&text).ok()?);
    for part in key.split('.') {
        cur = match cur {
            toml::Value::Table(mut t) => t.remove(part)?,
            toml::Value::Array(mut a) => {
                let i: usize = part.parse().ok()?;
                (i < a.len()).then(|| a.swap_remove(i))?
            }
            _ => return None,
        };
    }
    Some(cur)
}

/// The value in effect of a NAT or host-group key the file does not write
/// as a number: `nat.N.addresses` (a list counts its addresses),
/// `nat.N.ports_per_host` / `min_ports_per_host` / `max_ports_per_host`
/// (a cloud NAT's default or table block), `hosts.N.count`.
fn effective_value(sc: &Scenario, key: &str) -> Option<i64> {
    if let Some((i, nat, field)) = nat_key(sc, key) {
        let rules = nat.cloud.as_ref();
        return match field {
            "addresses" => Some(nat.addresses.len() as i64),
            "ports_per_host" | "min_ports_per_host" => {
                let set = rules?.ports_per_host;
                let table = match rules?.preset.blocks {
                    Blocks::Table(t) => {
                        let hosts = u32::try_from(sc.hosts_behind(i)).unwrap_or(u32::MAX);
                        Some(CloudRules::table_ports(t, hosts.max(1)))
                    }
                    _ => None,
                };
                set.or(table).map(i64::from)
            }
            "max_ports_per_host" => rules?.max_ports_per_host.map(i64::from),
            _ => None,
        };
    }
    let parts: Vec<&str> = key.split('.').collect();
    match parts.as_slice() {
        ["hosts", i, "count"] => sc
            .groups
            .get(i.parse::<usize>().ok()?)
            .map(|g| i64::from(g.count)),
        _ => None,
    }
}

/// The largest block a cloud NAT key can give every host behind it.
fn key_most(sc: &Scenario, key: &str) -> Option<f64> {
    let (i, nat, "ports_per_host" | "min_ports_per_host") = nat_key(sc, key)? else {
        return None;
    };
    let rules = nat.cloud.as_ref()?;
    let hosts = sc.hosts_behind(i).max(1);
    let most = u64::from(nat.range_size()) * nat.addresses.len() as u64 / hosts;
    // The largest value of the key's own kind within it.
    let most = match rules.preset.blocks {
        Blocks::Table(_) => most / 8 * 8,
        _ if most > 0 => 1 << most.ilog2(),
        _ => 0,
    };
    Some(most as f64)
}

/// Keys whose values are not every whole number: Cloud NAT's ports per VM
/// (powers of two) and Azure's ports per instance (multiples of 8).
fn key_kind(sc: &Scenario, key: &str) -> Option<Kind> {
    let (_, nat, field) = nat_key(sc, key)?;
    match (field, nat.cloud.as_ref()?.preset.blocks) {
        ("min_ports_per_host" | "max_ports_per_host", Blocks::PerHost { .. }) => {
            Some(Kind::PowerOfTwo)
        }
        ("ports_per_host", Blocks::Table(_)) => Some(Kind::Step(8)),
        _ => None,
    }
}

/// `nat.N.FIELD`: the NAT's index, the NAT, and the field.
fn nat_key<'a, 'k>(sc: &'a Scenario, key: &'k str) -> Option<(usize, &'a Nat, &'k str)> {
    let mut parts = key.split('.');
    let (Some("nat"), Some(i), Some(field), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let i: usize = i.parse().ok()?;
    Some((i, sc.nats.get(i)?, field))
}

pub(crate) fn exec(args: CapacityArgs) -> anyhow::Result<Exit> {
    let text = read_file(&args.scenario)?;
    let base = load_str(&text, &args.scenario, &args.runs.set)?;
    let vary = match args.vary.clone().or(base.sweep.capacity.clone()) {
        Some(v) => v,
        None => {
            return Err(InputError::usage(format!(
                "{}: nothing to search: give --vary KEY (e.g. --vary traffic.rate) or a [sweep] table with capacity = \"KEY\" in the scenario",
                args.scenario.display()
            ))
            .into())
        }
    };
    let seeds = args.runs.seeds.or(base.sweep.seeds).unwrap_or(10);
    let max_events = max_events(&args.max_events)?;
    let fail_on = fail_on_flags(&args.runs.fail_on)?;
    let target: Option<Target> = args
        .target
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(InputError::usage)?;
    let target = target.or(base.sweep.target).unwrap_or(Target {
        metric: Metric::FailureRatio,
        op: Op::Le,
        bound: 1e-4,
    });
    let (key, spec) = match vary.split_once('=') {
        Some((k, s)) => (k.trim().to_string(), Some(s.trim().to_string())),
        None => (vary.trim().to_string(), None),
    };
    let bad = |m: String| InputError::usage(format!("--vary {}: {m}", quote(&vary)));
    // With no bracket given, the search starts from half and twice the
    // scenario's value, brought back inside the key's domain.
    let mut start = None;
    let (lo, hi, kind) = match spec {
        Some(spec) => {
            let (a, b) = spec.split_once("..").ok_or_else(|| {
                bad("expected KEY or KEY=LOW..HIGH, e.g. traffic.rate=100..1000".into())
            })?;
            let (a, b) = (a.trim(), b.trim());
            let (x, da) = parse_quantity(a).map_err(|e| bad(format!("LOW: {e}")))?;
            let (y, db) = parse_quantity(b).map_err(|e| bad(format!("HIGH: {e}")))?;
            if da != db || !below(x, y) || x < 0.0 {
                return Err(
                    bad("expected 0 ≤ LOW < HIGH, both numbers or both durations".into()).into(),
                );
            }
            let kind = if da {
                Kind::Duration
            } else if a.parse::<i64>().is_ok() && b.parse::<i64>().is_ok() {
                Kind::Integer
            } else {
                Kind::Real
            };
            (x, y, kind)
        }
        None => {
            // A NAT key the file leaves to its default (a cloud NAT's
            // block, an address count) starts from the value in effect.
            let v = current_value(&args.scenario, &args.runs.set, &key)
                .filter(|v| v.is_integer() || v.is_float() || v.is_str())
                .or_else(|| effective_value(&base, &key).map(toml::Value::Integer));
            let v = v.ok_or_else(|| {
                bad(format!(
                    "the scenario does not set {}, so there is nothing to start from; give a bracket: --vary {}=LOW..HIGH",
                    key_text(&key), key_text(&key)
                ))
            })?;
            let (x, kind) = match &v {
                toml::Value::Integer(i) => (*i as f64, Kind::Integer),
                toml::Value::Float(f) => (*f, Kind::Real),
                toml::Value::String(s) => match parse_quantity(s) {
                    Ok((d, true)) => (d, Kind::Duration),
                    Ok((n, false)) => (n, Kind::Real),
                    Err(_) => {
                        return Err(bad(format!(
                        "{} is {}, not a number or duration; give a bracket: --vary {}=LOW..HIGH",
                        key_text(&key),
                        quote(s),
                        key_text(&key)
                    ))
                        .into())
                    }
                },
                other => {
                    return Err(bad(format!(
                        "{} is {}, not a number or duration",
                        key_text(&key),
                        quote(&other.to_string())
                    ))
                    .into())
                }
            };
            // Written so that NaN is refused too.
            if !(x > 0.0 && x.is_finite()) {
                return Err(bad(format!(
                    "{} is {}; give a bracket: --vary {}=LOW..HIGH",
                    key_text(&key),
                    num(x),
                    key_text(&key)
                ))
                .into());
            }
            start = Some(x);
            (x / 2.0, x * 2.0, kind)
        }
    };
    let plan = Plan {
        scenario: args.scenario.clone(),
        text,
        overrides: args.runs.set.clone(),
        varies: vec![],
        seeds,
        base_seed: args.runs.seed.unwrap_or(base.seed),
    };
    // An integer in the file may still be a key that takes fractions (a
    // rate): search in reals when the scenario accepts a fractional value.
    let kind = if let Some(k) = key_kind(&base, &key) {
        k
    } else if kind == Kind::Integer {
        if plan
            .load_with(&key, &format!("{}.5", lo.floor() as i64))
            .is_ok()
        {
            Kind::Real
        } else {
            Kind::Integer
        }
    } else {
        kind
    };
    // A block past what the addresses hold for every host leaves some
    // host without one: bigger blocks only fail more, so the bracket stops
    // there (a capacity search needs the target to change once).
    let hi = match key_most(&base, &key) {
        Some(most) if hi > most && lo < most => most,
        _ => hi,
    };
    let mut search = Search {
        plan: &plan,
        key: &key,
        kind,
        target,
        lo,
        hi,
        max_attempts: max_events,
    };
    if let Some(x) = start {
        search.fit_to_domain(x);
    }
    search.validate()?;
    let threads = pool(args.runs.jobs)?;
    if let Some(dir) = &args.out {
        prepare_out(dir, &crate::export::names(&crate::export::capacity_files()))?;
    }
    let stop = stop_flag();
    let pb = bar(u64::from(seeds), args.runs.quiet, "seeds searched");
    let cap = threads.install(|| search.run(&stop, &pb))?;
    pb.finish_and_clear();
    if let Some(dir) = &args.out {
        write_files(dir, &crate::export::capacity_files(), &cap)?;
    }
    if args.runs.json {
        print_out(&cap.to_json());
    } else {
        print_out(&format!("{}\n", cap.sentence()));
    }
    if cap.complete {
        // `--fail-on`: of each seed's run at the value found.
        let at_answer = match fail_on.is_empty() {
            true => None,
            false => threads.install(|| search.runs_at_answer(&cap))?,
        };
        if let Some((value, runs)) = at_answer {
            let figures: Vec<_> = runs.iter().map(|r| r.figures()).collect();
            let at = |i: usize| format!("at {key}={value}, seed {}", runs[i].seed);
            if fail_on_check(&fail_on, &figures, "seeds", &at) {
                return Ok(Exit::Exhausted);
            }
        }
        return Ok(Exit::Done);
    }
    eprintln!(
        "interrupted: {} of {} seeds finished{}",
        cap.seeds,
        seeds,
        if args.out.is_some() {
            "; what was established is written"
        } else {
            ""
        }
    );
    Ok(Exit::interrupted())
}
