//! `[[destinations]]`: addresses, weights and counts, expanded into one
//! destination per address; the total is counted before any is expanded.

use std::net::SocketAddr;

use super::host::expand_ip;
use super::*;

/// Destinations a scenario may expand to, over all `[[destinations]]`.
const MAX_DESTINATIONS: usize = 1_000_000;

pub(super) fn destinations(raw: &[RawDestination]) -> R<Vec<Destination>> {
    if raw.is_empty() {
        return err(
            "destinations",
            "missing; add at least one [[destinations]] table with address = \"10.0.0.5:5432\"",
        );
    }
    let mut out = Vec::new();
    for (i, d) in raw.iter().enumerate() {
        let key = format!("destinations[{i}]");
        let sa: SocketAddr = d.address.parse().or_else(|_| {
            err(
                &format!("{key}.address"),
                format!("found {}; expected \"ip:port\" such as \"10.0.0.5:5432\" or \"[2001:db8::1]:443\"", quote(&d.address)),
            )
        })?;
        let weight = positive(&format!("{key}.weight"), d.weight.unwrap_or(1.0), "weight")?;
        if weight > MAX_WEIGHT {
            return err(
                &format!("{key}.weight"),
                format!(
                    "found {}; weights are relative, at most {}",
                    num(weight),
                    num(MAX_WEIGHT)
                ),
            );
        }
        let time_wait_ns = d
            .time_wait
            .as_deref()
            .map(|t| duration(&format!("{key}.time_wait"), t))
            .transpose()?;
        let count = d.count.unwrap_or(1);
        if count == 0 || count > 1_000_000 {
            return err(
                &format!("{key}.count"),
                format!("found {count}; expected 1 to 1000000"),
            );
        }
        // Counted before anything is expanded: many tables with large
        // counts must not build billions of addresses first.
        if out.len() + count as usize > MAX_DESTINATIONS {
            return err(
                &format!("{key}.count"),
                format!(
                    "brings the destinations to {} in all; at most {MAX_DESTINATIONS} are allowed",
                    out.len() + count as usize
                ),
            );
        }
        for ip in expand_ip(&format!("{key}.count"), sa.ip(), count)? {
            out.push(Destination {
                address: SocketAddr::new(ip, sa.port()).to_string(),
                weight,
                time_wait_ns,
            });
        }
    }
    Ok(out)
}
