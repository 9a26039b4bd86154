//! The readable summary printed by `portsim run`.
//!
//! It opens with one sentence that answers the question a user came with
//! (when did ports run out, or how much headroom is left), then the figures
//! that explain it, the closed-form expectation beside them, and what to try.

use std::fmt::Write as _;

use super::{close_name, Fix, PoolReport, Report};
use crate::scenario::{BindMode, Close, Protocol};

use super::format::trim;
pub use super::format::{amount, human_s, measured_s, percent, thousands};

/// Source addresses connections actually use: connect() takes the first.
pub fn addresses_used(r: &Report) -> u32 {
    if r.scenario.bind == BindMode::Connect {
        1
    } else {
        r.ports.addresses
    }
}

/// Usable ports over the addresses connections use: the pool they draw on.
pub fn pool_size(r: &Report) -> u64 {
    u64::from(r.ports.usable) * u64::from(addresses_used(r))
}

/// The pool nearest to running out, when the run has several and kept
/// their figures.
pub fn busiest_pool(r: &Report) -> Option<&PoolReport> {
    r.pools.first().filter(|_| r.pools_total > 1)
}

/// A pool's peak as a share of its size.
fn pool_share(p: &PoolReport) -> f64 {
    f64::from(p.peak_in_use) / f64::from(p.size.max(1))
}

/// The `pools` line: the busiest pool against its size and its headroom,
/// and how many pools there are (only when there are several).
pub fn pools_line(r: &Report) -> Option<String> {
    // A fleet's pools are its hosts': the `hosts` lines speak of them.
    if r.pools_total <= 1 || r.is_fleet() {
        return None;
    }
    let count = format!(
        "{} pool{}",
        thousands(r.pools_total),
        if r.pools_total == 1 { "" } else { "s" }
    );
    Some(match busiest_pool(r) {
        Some(p) => {
            let headroom = p.size.saturating_sub(p.peak_in_use);
            format!(
                "busiest {}: peak {} of {} ({}), mean {}; {}; {count}",
                p.label,
                thousands(u64::from(p.peak_in_use)),
                thousands(u64::from(p.size)),
                percent(pool_share(p)),
                amount(p.mean_in_use),
                if headroom == 0 {
                    "no headroom".to_string()
                } else {
                    format!(
                        "{} port{} of headroom",
                        thousands(u64::from(headroom)),
                        if headroom == 1 { "" } else { "s" }
                    )
                }
            )
        }
        None => format!(
            "{count} of {} ports; per-pool figures are kept for at most {}",
            thousands(u64::from(r.ports.usable)),
            thousands(crate::sim::pools::MAX_POOL_STATS as u64)
        ),
    })
}

/// Where the first failure happened when a NAT is on the path (", at the
/// NAT node (no port left)"), and whether the host itself ever ran out.
fn nat_first(r: &Report, at: &str) -> (String, String) {
    let Some(n) = r.nats.iter().find(|n| n.name == at) else {
        // Behind a NAT, say that the host itself ran out (its ports may be
        // held by connects retrying SYNs a NAT dropped).
        let host = if r.nats.is_empty() || at.is_empty() {
            String::new()
        } else if r.is_fleet() {
            format!(", on the hosts ({at})")
        } else {
            ", on the host itself".to_string()
        };
        // The first failure was the hosts', but most may be a NAT's.
        let most = r
            .nats
            .iter()
            .max_by_key(|n| n.failures)
            .filter(|n| 2 * n.failures > r.failures)
            .map(|n| {
                format!(
                    " Most failed at the NAT {} ({} of {}).",
                    n.name,
                    thousands(n.failures),
                    thousands(r.failures)
                )
            })
            .unwrap_or_default();
        return (host, most);
    };
    let cause = main_cause(n);
    let at_nats: u64 = r.nats.iter().map(|n| n.failures).sum();
    let host = match r.hosts.as_slice() {
        _ if at_nats != r.failures => String::new(),
        [g] if g.max_count == 1 => " The host itself never ran out.".to_string(),
        [g] => format!(" The {} themselves never ran out.", g.name),
        _ => " The hosts themselves never ran out.".to_string(),
    };
    (format!(", at the NAT {} ({cause})", n.name), host)
}

/// One line per `[[hosts]]` group of a fleet: its hosts, what they tried,
/// where their failures happened. Nothing for a single host.
fn host_lines(r: &Report) -> Vec<String> {
    if !r.is_fleet() {
        return Vec::new();
    }
    r.hosts
        .iter()
        .map(|g| {
            let at: Vec<String> = g
                .failures_at
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(k, n)| format!("{} at {k}", thousands(*n)))
                .collect();
            format!(
                "{}: {} host{}{}, {} {}, {} failed{}; at most {} ports held on one host",
                g.name,
                thousands(u64::from(g.count)),
                if g.count == 1 { "" } else { "s" },
                scale_steps(&g.scale),
                thousands(g.attempts),
                if is_udp(r) { "flows" } else { "attempts" },
                thousands(g.failures),
                if at.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", at.join(", "))
                },
                thousands(u64::from(g.peak_in_use_per_host))
            )
        })
        .collect()
}

/// Most `scale` steps a `hosts` line lists.
const SCALE_SHOWN: usize = 6;

/// A group's `scale` steps as its `hosts` line gives them: ", 52 from 10
/// min, 48 from 20 min" (the first [`SCALE_SHOWN`], then how many more).
fn scale_steps(steps: &[super::ScaleStepReport]) -> String {
    let mut out: String = steps
        .iter()
        .take(SCALE_SHOWN)
        .map(|s| {
            format!(
                ", {} from {}",
                thousands(u64::from(s.count)),
                given_s(s.at_s)
            )
        })
        .collect();
    if steps.len() > SCALE_SHOWN {
        out.push_str(&format!(
            ", … ({} steps in all)",
            thousands(steps.len() as u64)
        ));
    }
    out
}

/// A time the scenario gave, as [`human_s`] writes it but without a
/// trailing ".0" (`10 min`, not `10.0 min`), and 0 as "0 s".
fn given_s(s: f64) -> String {
    if s == 0.0 {
        "0 s".to_string()
    } else if (120.0..7200.0).contains(&s) {
        format!("{} min", trim(s / 60.0, 1))
    } else {
        human_s(s)
    }
}

/// A connect delay: whole seconds as retransmissions make them, 0 as "0 s".
fn delay_s(s: f64) -> String {
    if s == 0.0 {
        "0 s".to_string()
    } else {
        human_s(s)
    }
}

/// Whether the run's attempts were UDP flows rather than TCP connections.
fn is_udp(r: &Report) -> bool {
    r.protocol == Protocol::Udp
}

/// Connects that waited for a SYN to get through a NAT, and those still
/// waiting at the end; nothing when none did. UDP flows never retransmit:
/// only those waiting for a reply a NAT dropped (`connect_timeout`).
fn connect_line(r: &Report) -> Option<String> {
    let d = &r.connect_delay_s;
    if d.waited == 0 && r.connecting_at_end == 0 {
        return None;
    }
    if is_udp(r) {
        return Some(format!(
            "{} flows still waiting at the end for a reply a NAT dropped",
            thousands(r.connecting_at_end)
        ));
    }
    let mut line = format!(
        "{} waited for a SYN retransmission to get through; delay p50 {}, p99 {}, max {}",
        thousands(d.waited),
        delay_s(d.p50),
        delay_s(d.p99),
        delay_s(d.max)
    );
    if r.connecting_at_end > 0 {
        line.push_str(&format!(
            "; {} still in SYN_SENT at the end",
            thousands(r.connecting_at_end)
        ));
    }
    Some(line)
}

/// Why a NAT dropped most of what it dropped, in words.
fn main_cause(n: &super::NatReport) -> &'static str {
    let c = &n.failures_by_cause;
    let blocks = n.cloud.as_ref().is_some_and(|c| c.ports_per_host > 0);
    [
        (
            c.no_port,
            if blocks {
                "no port left in the host's block"
            } else {
                "no port left"
            },
        ),
        (c.table_full, "conntrack table full"),
        (c.no_block, "hosts without a block of its ports"),
        (
            c.per_destination,
            "every address at its cap of connections to the destination",
        ),
        (
            c.endpoint_independence_conflict,
            "endpoint-independent mapping conflicts",
        ),
        (
            c.allocation_in_flight,
            "flows dropped while a block was doubling",
        ),
    ]
    .into_iter()
    .max_by_key(|&(n, _)| n)
    .filter(|&(n, _)| n > 0)
    .map_or("no port left", |(_, w)| w)
}

/// A cloud NAT's line: its pool and blocks, its peaks, its failures by
/// cause under the vendor's name for them, hosts left without ports.
fn cloud_line(n: &super::NatReport, c: &super::CloudReport, tries: &str) -> Vec<String> {
    let c_ = &n.failures_by_cause;
    let causes: Vec<String> = [
        (c_.no_port, "no port"),
        (c_.no_block, "no block"),
        (c_.per_destination, "per-destination cap"),
        (
            c_.endpoint_independence_conflict,
            "endpoint-independence conflict",
        ),
        (c_.allocation_in_flight, "while a block doubled"),
    ]
    .iter()
    .filter(|(k, _)| *k > 0)
    .map(|(k, w)| format!("{w} {}", thousands(*k)))
    .collect();
    let blocks = if c.ports_per_host == 0 {
        "shared on demand".to_string()
    } else if c.max_ports_per_host > c.ports_per_host {
        format!(
            "{} ports per host at first, up to {}",
            thousands(u64::from(c.ports_per_host)),
            thousands(u64::from(c.max_ports_per_host))
        )
    } else {
        block_text(c)
    };
    let cap = c
        .per_destination_limit
        .map(|l| format!(" of {} allowed", thousands(u64::from(l))))
        .unwrap_or_default();
    let mut lines = vec![format!(
        "{} ({}): {} address{} × {} ports, {} hosts, {blocks}; peak {} mappings, {} on one address to one destination{cap}, {} ports used by one host; {} {tries} failed here{}{}",
        n.name,
        n.kind,
        n.addresses,
        if n.addresses == 1 { "" } else { "es" },
        thousands(u64::from(n.ports_per_address)),
        thousands(u64::from(c.hosts)),
        thousands(n.peak_mappings),
        thousands(u64::from(c.peak_per_destination)),
        thousands(u64::from(c.peak_ports_used_per_host)),
        thousands(n.failures),
        if causes.is_empty() {
            String::new()
        } else {
            format!(" ({}: {})", c.failure_metric, causes.join(", "))
        },
        if n.hosts_without_ports > 0 {
            format!("; {} hosts got no ports", thousands(u64::from(n.hosts_without_ports)))
        } else {
            String::new()
        }
    )];
    if c.flows_dropped_by_scale > 0 {
        lines.push(format!(
            "  a scale event took back ports from every host: {} open flows dropped",
            thousands(c.flows_dropped_by_scale)
        ));
    }
    lines.push(format!("  vendor rule: {}", c.formula.rule));
    if !c.assumed.is_empty() {
        lines.push(format!(
            "  assumed (not documented): {}",
            c.assumed.join("; ")
        ));
    }
    lines
}

/// "1,024 ports per host", and what a scale event made of it.
fn block_text(c: &super::CloudReport) -> String {
    let first = format!("{} ports per host", thousands(u64::from(c.ports_per_host)));
    if c.min_ports_per_host > 0 && c.min_ports_per_host < c.ports_per_host {
        format!(
            "{first} ({} after a scale event)",
            thousands(u64::from(c.min_ports_per_host))
        )
    } else {
        first
    }
}

/// One line per NAT: its pool, what it held at most, what it dropped.
fn nat_lines(r: &Report) -> Vec<String> {
    let (sent, tries) = if is_udp(r) {
        ("first packets", "flows")
    } else {
        ("SYNs", "connects")
    };
    r.nats
        .iter()
        .flat_map(|n| {
            if let Some(c) = &n.cloud {
                return cloud_line(n, c, tries);
            }
            vec![format!(
                "{}: {} address{} × {} ports; peak {} mappings, {} ports of one address; {} {sent} dropped, {} {tries} failed here (no port {}, table full {}); {} ports preserved; {} closed entries taken over",
                n.name,
                n.addresses,
                if n.addresses == 1 { "" } else { "es" },
                thousands(u64::from(n.ports_per_address)),
                thousands(n.peak_mappings),
                thousands(u64::from(n.peak_ports_per_address)),
                thousands(n.syns_dropped),
                thousands(n.failures),
                thousands(n.failures_by_cause.no_port),
                thousands(n.failures_by_cause.table_full),
                thousands(n.ports_preserved),
                thousands(n.evicted)
            ) + &if n.stale_reuse > 0 {
                format!(
                    "; {} reused a tuple within the server's TIME_WAIT",
                    thousands(n.stale_reuse)
                )
            } else {
                String::new()
            }]
        })
        .collect()
}

/// The one-sentence answer.
pub fn headline(r: &Report) -> String {
    let full_nat = r
        .nats
        .iter()
        .find(|n| {
            n.failures == 0
                && n.syns_dropped == 0
                && n.peak_ports_per_address >= n.ports_per_address
                && n.evicted > 0
        })
        .map(|n| {
            format!(
                " The NAT {} used all {} of its ports; new connections took over {} closed (TIME_WAIT, CLOSE) entries.",
                n.name,
                thousands(u64::from(n.ports_per_address)),
                thousands(n.evicted)
            )
        })
        .unwrap_or_default();
    let answer = headline_only(r);
    // Connects that waited: the "one extra second".
    let d = &r.connect_delay_s;
    let waited = if d.waited > 0 {
        format!(
            " {} connects waited for a SYN retransmission (p99 {}, max {}).",
            thousands(d.waited),
            delay_s(d.p99),
            delay_s(d.max)
        )
    } else {
        String::new()
    };
    format!("{answer}{full_nat}{waited}")
}

fn headline_only(r: &Report) -> String {
    match &r.first_failure {
        Some(f) => {
            // A mean hides bursts: name the worst 10 s when it is at least
            // twice the mean.
            let burst = if r.bursts.worst_10s >= 2.0 * r.failure_ratio {
                format!(", and {} in the worst 10 s", percent(r.bursts.worst_10s))
            } else {
                String::new()
            };
            let rate = f
                .rate
                .map(|x| format!(" (rate {}/s)", amount(x)))
                .unwrap_or_default();
            let (at, host) = nat_first(r, &f.at);
            format!(
                "First failure at {}{rate}, attempt {}{at}; {} of attempts failed{burst}.{host}",
                measured_s(f.time_s),
                thousands(f.attempt),
                percent(r.failure_ratio)
            )
        }
        // Nothing failed, but a NAT dropped SYNs: connects waited or still
        // wait, which is the answer.
        None if r.nats.iter().any(|n| n.syns_dropped > 0) => {
            let n = r
                .nats
                .iter()
                .max_by_key(|n| n.syns_dropped)
                .expect("a NAT dropped SYNs");
            if is_udp(r) {
                // Only with connect_timeout: flows wait for a reply, and
                // nothing is retransmitted.
                return format!(
                    "No flow failed in {}, but the NAT {} ran out and dropped {} first packets: {} flows were still waiting for a reply at the end.",
                    human_s(r.simulated_s),
                    n.name,
                    thousands(n.syns_dropped),
                    thousands(r.connecting_at_end)
                );
            }
            let still = if r.connecting_at_end > 0 {
                format!(
                    ": {} connects were still retrying at the end",
                    thousands(r.connecting_at_end)
                )
            } else {
                String::new()
            };
            format!(
                "No connect failed in {}, but the NAT {} ran out and dropped {} SYNs{still}.",
                human_s(r.simulated_s),
                n.name,
                thousands(n.syns_dropped)
            )
        }
        // Several pools: the one nearest to running out is the answer.
        None if r.pools_total > 1 => match busiest_pool(r) {
            Some(p) => format!(
                "No port ran out in {}: the busiest pool, {}, peaked at {} of {} ({}).",
                human_s(r.simulated_s),
                p.label,
                thousands(u64::from(p.peak_in_use)),
                thousands(u64::from(p.size)),
                percent(pool_share(p))
            ),
            None => format!(
                "No port ran out in {}: at most {} (address, port) pairs were held at once, over {} pools of {} ports each.",
                human_s(r.simulated_s),
                thousands(u64::from(r.ports.peak_in_use)),
                thousands(r.pools_total),
                thousands(u64::from(r.ports.usable))
            ),
        },
        None => {
            let capacity = pool_size(r);
            format!(
                "No port ran out in {}: at most {} ports were held at once, {} of {}.",
                human_s(r.simulated_s),
                thousands(u64::from(r.ports.peak_in_use)),
                percent(f64::from(r.ports.peak_in_use) / capacity.max(1) as f64),
                thousands(capacity),
            )
        }
    }
}

/// A change as the summary shows it: `--set` values, with a long address
/// list cut to its ends (report.json keeps it whole).
pub fn change_text(change: &[String]) -> String {
    change
        .iter()
        .map(|c| match c.split_once("=[") {
            Some((key, list)) if list.matches(',').count() >= 3 => {
                let items: Vec<&str> = list
                    .trim_end_matches(']')
                    .split(',')
                    .map(|a| a.trim().trim_matches('"'))
                    .collect();
                format!(
                    "{key}=[{} … {}] ({} addresses)",
                    items[0],
                    items[items.len() - 1],
                    items.len()
                )
            }
            _ => c.clone(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// What a fix gives, against the run: "nothing fails (was 8.7 %); peak
/// 9,261 of 16,384 (56.5 %)".
/// What the run a fix is measured against had: its failure ratio, or the
/// connects that waited for a dropped SYN when none failed.
fn was(r: &Report) -> String {
    let waiting = r.connect_delay_s.waited + r.connecting_at_end;
    if r.failures == 0 && waiting > 0 {
        format!(
            "0 % but {} connects waiting on dropped SYNs",
            thousands(waiting)
        )
    } else {
        percent(r.failure_ratio)
    }
}

pub fn fix_effect(r: &Report, f: &Fix) -> String {
    let peak = format!(
        "peak {} of {} ({})",
        thousands(u64::from(f.peak_in_use)),
        thousands(f.ports),
        percent(f64::from(f.peak_in_use) / f.ports.max(1) as f64)
    );
    if f.meets_target && f.failures > 0 {
        format!(
            "meets the target with {} failing (was {}); {peak}",
            percent(f.failure_ratio),
            was(r)
        )
    } else if f.failures == 0 {
        // The smallest change that passes on this seed is at the edge by
        // construction when it fills the pool: another seed may fail.
        let edge = if f64::from(f.peak_in_use) >= 0.95 * f.ports as f64 {
            ", at the edge: leave a margin"
        } else {
            ""
        };
        format!("nothing fails (was {}); {peak}{edge}", was(r))
    } else {
        format!(
            "{} fail (was {}){}; {peak}",
            percent(f.failure_ratio),
            was(r),
            f.first_failure
                .as_ref()
                .map(|ff| format!(", the first at {}", measured_s(ff.time_s)))
                .unwrap_or_default()
        )
    }
}

/// The lines on computed fixes: each change and its effect, then what
/// finding them cost. Nothing when nothing failed.
pub fn fix_lines(r: &Report) -> Vec<String> {
    let Some(cost) = &r.fixes_cost else {
        let waited = r.connecting_at_end > 0 || r.connect_delay_s.waited > 0;
        return if r.failures > 0 || waited {
            vec!["fixes not computed (--no-fixes)".into()]
        } else {
            Vec::new()
        };
    };
    if cost.runs == 0 && r.fixes.is_empty() {
        // The run met its goal: nothing to fix.
        return Vec::new();
    }
    let mut out: Vec<String> = r
        .fixes
        .iter()
        .map(|f| format!("{}: {}", change_text(&f.change), fix_effect(r, f)))
        .collect();
    if out.is_empty() {
        out.push("no single change tried avoids the failures".into());
    }
    let goal = if cost.target == "failures<=0" {
        String::new()
    } else {
        format!("towards {}, ", cost.target)
    };
    if !cost.not_computed.is_empty() {
        out.push(format!(
            "not computed within the budget: {} (--all-fixes computes every lever)",
            cost.not_computed.join(", ")
        ));
    }
    let budget = cost
        .budget_runs
        .map_or_else(String::new, |b| format!(" (budget {}×)", amount(b)));
    out.push(format!(
        "({goal}each rerun with seed {}: {} runs, {}× this run's attempts{budget}; \
         --no-fixes skips them)",
        r.seed,
        thousands(cost.runs),
        amount(cost.relative_to_run)
    ));
    out
}

pub fn render(r: &Report) -> String {
    let mut s = String::new();
    let sc = &r.scenario;
    let _ = writeln!(
        s,
        "portsim {} · {} · seed {} · {} simulated",
        r.portsim_version,
        sc.name,
        r.seed,
        human_s(r.simulated_s)
    );
    if !sc.description.is_empty() {
        let _ = writeln!(s, "{}", sc.description.trim());
    }
    let _ = writeln!(s, "\n  {}\n", headline(r));
    let _ = writeln!(
        s,
        "  {}{} ({} established, {} failed{})",
        if is_udp(r) {
            "flows           "
        } else {
            "attempts        "
        },
        thousands(r.attempts),
        thousands(r.established),
        thousands(r.failures),
        if r.retries > 0 {
            format!(
                ", {} retries, {} given up",
                thousands(r.retries),
                thousands(r.abandoned)
            )
        } else {
            String::new()
        }
    );
    if let Some(rp) = &r.scenario.replay {
        let _ = writeln!(
            s,
            "  replay          {} connections from {}, each made at its start and held its hold",
            thousands(rp.rows),
            rp.file
        );
    }
    for (label, line) in super::client::summary_lines(r) {
        let _ = writeln!(s, "  {label:<16}{line}");
    }
    if let Some(x) = r.highest_rate_before_failure {
        let _ = writeln!(
            s,
            "  rate            reached {}/s {}",
            amount(x),
            if r.failures > 0 {
                "before the first failure"
            } else {
                "at most, and nothing failed"
            }
        );
    }
    if r.failures > 0 {
        let b = &r.bursts;
        let _ = writeln!(
            s,
            "  bursts          worst 1 s {}, 10 s {}, 60 s {}; {} s with failures; longest blocked {}",
            percent(b.worst_1s),
            percent(b.worst_10s),
            percent(b.worst_60s),
            thousands(b.seconds_with_failures),
            measured_s(b.longest_blocked_s)
        );
    }
    let _ = writeln!(
        s,
        "  ports           {} usable of {} in {} ({}, {}){}",
        thousands(u64::from(r.ports.usable)),
        thousands(u64::from(r.ports.range_size)),
        sc.port_range,
        sc.os,
        sc.allocator,
        match (addresses_used(r), r.ports.addresses) {
            (1, 1) => String::new(),
            (1, n) => format!(" (connect() uses 1 of {n} addresses)"),
            (u, _) => format!(" on each of {u} source addresses"),
        }
    );
    if let Some((lo, hi)) = r.native_range_hint {
        let _ = writeln!(
            s,
            "                  (the default range; a stock {} uses {lo}-{hi}, {} ports: port_range = \"native\" models it)",
            os_display(sc.os),
            thousands(u64::from(hi - lo) + 1)
        );
    }
    let _ = writeln!(
        s,
        "  in use          peak {}, mean {}; {} distinct ports used",
        thousands(u64::from(r.ports.peak_in_use)),
        amount(r.ports.mean_in_use),
        thousands(u64::from(r.ports.distinct_used))
    );
    if let Some(line) = pools_line(r) {
        let _ = writeln!(s, "  pools           {line}");
    }
    for line in host_lines(r) {
        let _ = writeln!(s, "  hosts           {line}");
    }
    if let Some(line) = connect_line(r) {
        let label = if is_udp(r) { "replies " } else { "connects" };
        let _ = writeln!(s, "  {label}        {line}");
    }
    for line in nat_lines(r) {
        match line.strip_prefix("  ") {
            // A NAT's further lines sit under its first.
            Some(more) => writeln!(s, "                  {more}"),
            None => writeln!(s, "  nat             {line}"),
        }
        .ok();
    }
    if is_udp(r) {
        let _ = writeln!(
            s,
            "  TIME_WAIT       none: UDP flows free their port when they end"
        );
    } else if let Some(line) = server_time_wait(r) {
        let _ = writeln!(s, "  TIME_WAIT       {line}");
    } else {
        let _ = writeln!(
            s,
            "  TIME_WAIT       peak {}, mean {} ({} each{}{})",
            thousands(u64::from(r.ports.peak_time_wait)),
            amount(r.ports.mean_time_wait),
            if sc.close == Close::Client {
                human_s(sc.time_wait_s)
            } else {
                format!("none: {} close", close_name(sc.close))
            },
            if r.time_wait_reused > 0 {
                format!(", {} taken over by tw_reuse", thousands(r.time_wait_reused))
            } else {
                String::new()
            },
            if r.time_wait_skipped > 0 {
                format!(
                    ", {} skipped at max_tw_buckets",
                    thousands(r.time_wait_skipped)
                )
            } else {
                String::new()
            }
        );
    }
    let ri = &r.reuse_interval_s;
    if let (Some(p50), Some(p99), Some(min)) = (ri.p50, ri.p99, ri.min) {
        let _ = writeln!(
            s,
            "  port reuse      a freed port was taken again after p50 {}, p99 {}, min {} (n = {}{})",
            measured_s(p50),
            measured_s(p99),
            measured_s(min),
            thousands(ri.count),
            reuse_hosts(r)
        );
    } else {
        let _ = writeln!(
            s,
            "  port reuse      no freed port was taken again (n = 0{})",
            reuse_hosts(r)
        );
    }
    let a = &r.analytic;
    let per_port = if a.tw_reuse_applies {
        "(hold + tw_reuse_delay)"
    } else if !is_udp(r) && sc.close == Close::Client && sc.time_wait_s > 0.0 {
        "(hold + TIME_WAIT)"
    } else {
        // No TIME_WAIT on this side: a port is lost only while held.
        "hold"
    };
    if let Some(c) = &r.connections {
        // A pool decides how often connections open: the measured rate
        // against the ceiling, and what a connection per request would do.
        let _ = writeln!(
            s,
            "  analytic        connections opened at {}/s against ports ÷ {per_port} = {} conn/s per pool; a connection per request would offer {} erlangs (Erlang B failure ratio {})",
            amount(c.opened as f64 / r.simulated_s.max(1e-9)),
            amount(a.max_rate_per_pool),
            amount(a.offered_load),
            percent(a.erlang_b_failure_ratio),
        );
    } else {
        let _ = writeln!(
            s,
            "  analytic        offered load {} erlangs over {} pool{} of {} ports; Erlang B failure ratio {}; ports ÷ {per_port} = {} {}/s per pool",
            amount(a.offered_load),
            thousands(a.pools),
            if a.pools == 1 { "" } else { "s" },
            thousands(u64::from(a.ports_per_pool)),
            percent(a.erlang_b_failure_ratio),
            amount(a.max_rate_per_pool),
            if is_udp(r) { "flows" } else { "conn" }
        );
    }
    if let Some(c) = a
        .erlang_b_caveat
        .as_ref()
        .filter(|_| r.connections.is_none())
    {
        let _ = writeln!(
            s,
            "                  (Erlang B is indicative only here: {c})"
        );
    }
    if a.offered_load_peak > a.offered_load * 1.05 {
        let _ = writeln!(
            s,
            "                  at the highest rate the offered load is {} erlangs",
            amount(a.offered_load_peak)
        );
    }
    for line in fix_lines(r) {
        let _ = writeln!(s, "  fix             {line}");
    }
    for line in sizing_lines(r) {
        match line.strip_prefix("  ") {
            Some(more) => writeln!(s, "                  {more}"),
            None => writeln!(s, "  sizing          {line}"),
        }
        .ok();
    }
    s
}

/// For each cloud NAT that dropped anything: what it needs (the computed
/// fixes' answer), when it fails as set, the vendor's rule worked out for
/// this scenario, and where the two part ways.
pub fn sizing_lines(r: &Report) -> Vec<String> {
    let mut out = Vec::new();
    for (i, n) in r.nats.iter().enumerate() {
        let Some(c) = &n.cloud else { continue };
        if n.syns_dropped == 0 && n.hosts_without_ports == 0 {
            continue;
        }
        let l = &c.loads;
        // The simulated answer: the fixes on this NAT's own knobs.
        let own = |lever: &str| {
            r.fixes.iter().find(|f| {
                f.lever == lever
                    && f.meets_target
                    && f.change.iter().any(|k| k.starts_with(&format!("nat.{i}.")))
            })
        };
        let value = |f: &super::Fix| {
            f.change
                .first()
                .and_then(|k| k.split_once('='))
                .map(|(_, v)| v.to_string())
                .unwrap_or_default()
        };
        let mut needs = Vec::new();
        if let Some(f) = own("nat_addresses") {
            let v = value(f);
            // A count, or a list of addresses.
            let count = v
                .parse::<u64>()
                .ok()
                .or_else(|| {
                    v.starts_with('[')
                        .then(|| v.matches('"').count() as u64 / 2)
                })
                .unwrap_or(0);
            needs.push(format!("{} NAT addresses", thousands(count)));
        }
        if let Some(f) = own("nat_ports_per_host") {
            needs.push(format!(
                "{} ports per host",
                thousands(value(f).parse().unwrap_or(0))
            ));
        }
        let as_set = match n.first_failure_s {
            Some(t) => format!(
                "with {} address{}{} it first drops a {} at {}",
                n.addresses,
                if n.addresses == 1 { "" } else { "es" },
                if c.ports_per_host > 0 {
                    format!(" and {}", block_text(c))
                } else {
                    String::new()
                },
                if is_udp(r) { "flow" } else { "SYN" },
                human_s(t)
            ),
            None => format!(
                "{} hosts get no ports",
                thousands(u64::from(n.hosts_without_ports))
            ),
        };
        let answer = if needs.is_empty() {
            let not_computed = r.fixes_cost.as_ref().map(|c| {
                c.not_computed
                    .iter()
                    .any(|l| *l == "nat_addresses" || *l == "nat_ports_per_host")
            });
            let why = match not_computed {
                None => "fixes not computed",
                Some(true) => "no change of its addresses or ports per host avoided the failures within the budget (--all-fixes tries them all)",
                Some(false) => "no change of its addresses or ports per host that it accepts (dynamic allocation included, for Cloud NAT) avoids every drop",
            };
            format!("{}: {why}; {as_set}", n.name)
        } else {
            format!(
                "{} needs {}; {as_set}",
                n.name,
                needs.join(" (or ") + &")".repeat(needs.len() - 1)
            )
        };
        out.push(answer);
        // The vendor's rule, worked out, and its verdict.
        let f = &c.formula;
        let verdict = match (f.hosts_served, f.per_destination) {
            (Some(served), _) if served >= u64::from(c.hosts) => format!(
                "room for all {} hosts (the rule does not ask how many ports a host needs)",
                thousands(u64::from(c.hosts))
            ),
            (Some(served), _) => format!(
                "room for {} of {} hosts",
                thousands(served),
                thousands(u64::from(c.hosts))
            ),
            (None, Some(cap)) => {
                let need = (l.open_per_destination / cap as f64 * n.addresses as f64)
                    .ceil()
                    .max(1.0);
                format!(
                    "{} connections open to the busiest destination need {} address{}",
                    thousands(l.open_per_destination.round() as u64),
                    need,
                    if need == 1.0 { "" } else { "es" }
                )
            }
            (None, None) => String::new(),
        };
        out.push(format!("  {}'s rule: {}; {verdict}", c.title, f.rule));
        // Where they part ways.
        let mut why = Vec::new();
        if l.hold_after_close_s > 0.0 {
            if c.ports_per_host > 0 {
                why.push(format!(
                    "the rule counts blocks, not connections: each host opens connections to its busiest destination and every one keeps its port {} after it closes, so it holds about {} ports there (Little's law at the peak rate), against a block of {}",
                    human_s(l.hold_after_close_s),
                    thousands(l.held_per_host.round() as u64),
                    thousands(u64::from(c.ports_per_host))
                ));
            } else {
                why.push(format!(
                    "the rule counts open connections ({}); each closed one keeps its port {} more, so the NAT holds about {} toward the busiest destination",
                    thousands(l.open_per_destination.round() as u64),
                    human_s(l.hold_after_close_s),
                    thousands(l.held_per_destination.round() as u64)
                ));
            }
        }
        if c.flows_dropped_by_scale > 0 || c.min_ports_per_host < c.ports_per_host {
            why.push("a scale event shrank every block".to_string());
        }
        if c.peak_ports_used_per_host > 0
            && f64::from(c.peak_ports_used_per_host) > 1.05 * l.held_per_host
            && c.ports_per_host > 0
        {
            why.push(format!(
                "arrivals come in bursts: one host held {} at its peak",
                thousands(u64::from(c.peak_ports_used_per_host))
            ));
        }
        if !why.is_empty() {
            out.push(format!("  where they differ: {}", why.join("; ")));
        }
    }
    out
}

/// The OS name as people write it.
fn os_display(os: &str) -> &str {
    match os {
        "linux" => "Linux",
        "freebsd" => "FreeBSD",
        "macos" => "macOS",
        "windows" => "Windows",
        other => other,
    }
}

/// With `close = "server"` the TIME_WAIT is the server's: how soon ports
/// came back against it, and how many connects met a 4-tuple it still held.
fn server_time_wait(r: &Report) -> Option<String> {
    let reuse = r.reuse_within_server_time_wait?;
    let tw = human_s(r.scenario.time_wait_s);
    // Behind a NAT the server sees the NAT's outside tuples, not the
    // host's: what matters is how soon the NAT hands one out again.
    if !r.nats.is_empty() {
        let linux = r
            .nats
            .iter()
            .any(|n| n.cloud.is_none())
            .then(|| r.nats.iter().map(|n| n.stale_reuse).sum::<u64>())
            .map(|k| {
                format!(
                    "; {} connects got one a Linux NAT's last connection on it left in the server's {tw} TIME_WAIT",
                    thousands(k)
                )
            })
            .unwrap_or_default();
        let cloud_hold = r
            .nats
            .iter()
            .filter_map(|n| n.cloud.as_ref())
            .map(|c| c.hold_s.fin)
            .reduce(f64::min);
        let cloud = match cloud_hold {
            Some(h) if h >= r.scenario.time_wait_s => format!(
                "; a cloud NAT holds one {} after a FIN, at least the server's {tw}, so none comes back inside it",
                human_s(h)
            ),
            Some(h) => format!(
                "; a cloud NAT holds one only {} after a FIN, less than the server's {tw}: its reuses inside it are not counted",
                human_s(h)
            ),
            None => String::new(),
        };
        return Some(format!(
            "none here (server close); the server sees the NATs' outside tuples{linux}{cloud}"
        ));
    }
    let Some(p50) = r.reuse_interval_s.p50 else {
        return Some(format!(
            "none here (server close); no port was reused, so no connect met a 4-tuple in the server's {tw} TIME_WAIT"
        ));
    };
    Some(format!(
        "none here (server close); ports came back after a median {}, {} the server's {tw} TIME_WAIT:\n                  {} reuses ({} of connections) would meet a 4-tuple the server still holds",
        measured_s(p50),
        if p50 < r.scenario.time_wait_s {
            "inside"
        } else {
            "beyond"
        },
        thousands(reuse.count),
        percent(reuse.share)
    ))
}

/// ", over 16 of 1,000 hosts" when a fleet's reuse intervals are those of
/// some of its hosts; nothing when they are every host's.
fn reuse_hosts(r: &Report) -> String {
    let total: u64 = r.hosts.iter().map(|h| u64::from(h.max_count)).sum();
    if r.reuse_interval_s.hosts < total {
        format!(
            ", over {} of {} hosts",
            thousands(r.reuse_interval_s.hosts),
            thousands(total)
        )
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_read_well() {
        assert_eq!(amount(16.43), "16.4");
        assert_eq!(amount(6.0), "6");
        assert_eq!(amount(15_592.4), "15,592");
        assert_eq!(amount(273.2), "273");
    }

    #[test]
    fn formats_numbers_for_people() {
        assert_eq!(thousands(16385), "16,385");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000_000), "1,000,000");
        assert_eq!(human_s(54.5), "54.5 s");
        assert_eq!(human_s(0.0012), "1.2 ms");
        assert_eq!(measured_s(14.0), "14.0 s");
        assert_eq!(measured_s(54.2), "54.2 s");
        assert_eq!(measured_s(180.0), "3.0 min");
        assert_eq!(percent(0.105), "10.5 %");
    }

    #[test]
    fn scale_steps_read_well() {
        let step = |at_s, count| super::super::ScaleStepReport { at_s, count };
        assert_eq!(scale_steps(&[]), "");
        assert_eq!(
            scale_steps(&[step(600.0, 52), step(1200.0, 48)]),
            ", 52 from 10 min, 48 from 20 min"
        );
        assert_eq!(
            scale_steps(&[step(0.0, 0), step(50.0, 1200)]),
            ", 0 from 0 s, 1,200 from 50 s"
        );
        let many: Vec<_> = (1..=8).map(|i| step(f64::from(i), i)).collect();
        assert_eq!(
            scale_steps(&many),
            ", 1 from 1 s, 2 from 2 s, 3 from 3 s, 4 from 4 s, 5 from 5 s, 6 from 6 s, … (8 steps in all)"
        );
    }
}
