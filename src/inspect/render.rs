//! `portsim inspect` as text: one sentence that answers "is this host about
//! to run out?", then the figures behind it, as `portsim run` prints its
//! summary.

use std::fmt::Write as _;

use super::figures::{Inspection, PortView};
use super::watch::Watched;
use crate::report::format::{amount, human_s, percent, thousands};

fn owner(pid: Option<u32>, process: &Option<String>) -> String {
    match (pid, process) {
        (Some(p), Some(n)) => format!("{n} (pid {p})"),
        (Some(p), None) => format!("pid {p}"),
        (None, _) => "no process told".to_string(),
    }
}

/// The summary of an inspection (and of a watch, if any).
pub fn inspection(i: &Inspection, w: Option<&Watched>) -> String {
    let mut s = String::new();
    let r = &i.range;
    let _ = writeln!(
        s,
        "portsim inspect · {}{}",
        i.hostname
            .as_deref()
            .map(|h| format!("{h} · "))
            .unwrap_or_default(),
        i.source
    );
    let headline = match i.pools.first() {
        Some(p) => format!(
            "The busiest pool, {} to {}, holds {} of its {} ports ({}): {} ports of headroom.",
            p.local,
            p.destination,
            thousands(p.in_use),
            thousands(p.capacity),
            percent(p.in_use as f64 / p.capacity.max(1) as f64),
            thousands(p.headroom.max(0) as u64)
        ),
        None => "No connection holds a port of the range.".to_string(),
    };
    let _ = writeln!(s, "\n  {headline}\n");
    let _ = writeln!(
        s,
        "  range           {}-{}: {} usable{}; {} in use ({}); {} sockets read",
        r.low,
        r.high,
        thousands(u64::from(r.usable)),
        if r.reserved > 0 {
            format!(" ({} reserved)", thousands(u64::from(r.reserved)))
        } else {
            String::new()
        },
        thousands(u64::from(r.in_use)),
        percent(f64::from(r.in_use) / f64::from(r.usable.max(1))),
        thousands(i.sockets)
    );
    let states: Vec<String> = i
        .by_state
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| format!("{k} {}", thousands(*n)))
        .collect();
    let _ = writeln!(
        s,
        "  states          {} (TCP on ports of the range){}",
        if states.is_empty() {
            "none".to_string()
        } else {
            states.join(" · ")
        },
        if i.udp_in_range > 0 {
            format!("; UDP {}", thousands(i.udp_in_range))
        } else {
            String::new()
        }
    );
    for (k, p) in i.pools.iter().take(5).enumerate() {
        let _ = writeln!(
            s,
            "  {}{} → {}: {} in use ({} TIME_WAIT) of {}, headroom {}{}",
            if k == 0 {
                "pools           "
            } else {
                "                  "
            },
            p.local,
            p.destination,
            thousands(p.in_use),
            thousands(p.time_wait),
            thousands(p.capacity),
            if p.headroom < 0 { "-" } else { "" },
            thousands(p.headroom.unsigned_abs())
        );
    }
    if i.pools_total > 5 {
        let _ = writeln!(
            s,
            "                  … {} pools in all",
            thousands(i.pools_total)
        );
    }
    let c = &i.churn;
    let _ = writeln!(
        s,
        "  churn           about {} closes/s by this host ({} TIME_WAIT ÷ {}), the quick estimate{}",
        amount(c.closes_per_s),
        thousands(c.time_wait),
        human_s(c.time_wait_s),
        if w.is_none() { "; inspect --watch 60s measures it" } else { "" }
    );
    if let Some(w) = w {
        let _ = writeln!(
            s,
            "  watched         {} new connections in {} ({}/s, {} samples); {} closed here; {}",
            thousands(w.new_connections),
            human_s(w.duration_s),
            amount(w.per_second),
            w.samples,
            thousands(w.client_closes),
            if w.hold_s.n > 0 {
                format!(
                    "holds p50 {}, p99 {} (n = {}; {} below the {} interval)",
                    human_s(w.hold_s.p50),
                    human_s(w.hold_s.p99),
                    w.hold_s.n,
                    w.holds_below_interval,
                    human_s(w.interval_s)
                )
            } else {
                format!(
                    "no hold seen whole ({} below the {} interval)",
                    w.holds_below_interval,
                    human_s(w.interval_s)
                )
            }
        );
        for d in w.destinations.iter().take(5) {
            let _ = writeln!(
                s,
                "                  {}: {}/s, hold p50 {} (n = {})",
                d.destination,
                amount(d.per_second),
                human_s(d.hold_s.p50),
                d.hold_s.n
            );
        }
    }
    if !i.listeners.is_empty() {
        let list: Vec<String> = i
            .listeners
            .iter()
            .take(5)
            .map(|l| format!("{}:{} {}", l.local, l.port, owner(l.pid, &l.process)))
            .collect();
        let _ = writeln!(
            s,
            "  listeners       {} port{} of the range listening, lost to every pool on its address: {}",
            i.listeners_in_range.len(),
            if i.listeners_in_range.len() == 1 { "" } else { "s" },
            list.join(", ")
        );
    }
    for (k, p) in i.processes.iter().take(5).enumerate() {
        let _ = writeln!(
            s,
            "  {}{}: {} sockets",
            if k == 0 {
                "processes       "
            } else {
                "                  "
            },
            owner(Some(p.pid), &p.name),
            thousands(p.sockets)
        );
    }
    for (k, d) in i.destinations.iter().take(5).enumerate() {
        let _ = writeln!(
            s,
            "  {}{}: {} sockets ({} TIME_WAIT)",
            if k == 0 {
                "destinations    "
            } else {
                "                  "
            },
            d.destination,
            thousands(d.sockets),
            thousands(d.time_wait)
        );
    }
    if let Some(x) = &i.sysctls {
        let mut parts = Vec::new();
        if let Some(v) = x.tcp_tw_reuse {
            parts.push(format!("tcp_tw_reuse {v}"));
        }
        if let Some(v) = x.tcp_max_tw_buckets {
            parts.push(format!("tcp_max_tw_buckets {}", thousands(v)));
        }
        if let Some(v) = x.tcp_fin_timeout {
            parts.push(format!("tcp_fin_timeout {v} s"));
        }
        if let (Some(n), Some(m)) = (x.nf_conntrack_count, x.nf_conntrack_max) {
            parts.push(format!("conntrack {} of {}", thousands(n), thousands(m)));
        }
        if !parts.is_empty() {
            let _ = writeln!(s, "  sysctls         {}", parts.join(" · "));
        }
    }
    if i.unowned > 0 {
        let _ = writeln!(
            s,
            "  owners          {} socket{} with no process told (TIME_WAIT has none; another user's need root)",
            thousands(i.unowned),
            if i.unowned == 1 { "" } else { "s" }
        );
    }
    s
}

/// `inspect --port N` as text.
pub fn port(v: &PortView) -> String {
    let mut s = String::new();
    if v.sockets.is_empty() {
        let _ = writeln!(s, "Nothing holds local port {}.", v.port);
        return s;
    }
    let _ = writeln!(
        s,
        "Local port {}{} is held by {} socket{}:",
        v.port,
        if v.in_range {
            " (in the dynamic range)"
        } else {
            ""
        },
        v.sockets.len(),
        if v.sockets.len() == 1 { "" } else { "s" }
    );
    for x in &v.sockets {
        let _ = writeln!(
            s,
            "  {:<4} {:<12} {} → {}  {}",
            match x.proto {
                super::Proto::Tcp => "tcp",
                super::Proto::Udp => "udp",
            },
            x.state,
            x.local,
            x.remote.map_or("*".to_string(), |r| r.to_string()),
            owner(x.pid, &x.process)
        );
    }
    s
}
