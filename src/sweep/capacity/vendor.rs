//! What a cloud NAT vendor's sizing rule says about the key a capacity
//! search varies, so the answer can stand beside the rule: addresses (a
//! shared pool's per-destination cap, or room for every host's block),
//! ports per host (the most the addresses leave each host), and the
//! number of hosts (how many blocks fit).

use super::answer::VendorAnswer;
use crate::scenario::Scenario;
use crate::util::thousands;

/// The vendor's answer for `key` in `sc` (at the value found), if the key
/// is a cloud NAT's or a host group's behind one.
pub fn answer(sc: &Scenario, key: &str) -> Option<VendorAnswer> {
    let parts: Vec<&str> = key.split('.').collect();
    let (i, field) = match parts.as_slice() {
        ["nat", i, field] => (i.parse::<usize>().ok()?, *field),
        ["hosts", g, "count"] => (sc.groups.get(g.parse::<usize>().ok()?)?.via?, "count"),
        _ => return None,
    };
    let nat = sc.nats.get(i)?;
    let rules = nat.cloud.as_ref()?;
    let title = rules.preset.title;
    let hosts = sc.hosts_behind(i).max(1);
    let per_address = u64::from(nat.range_size());
    let a = nat.addresses.len() as u64;
    let formula = nat.formula(hosts)?;
    let block = u64::from(formula.ports_per_host.unwrap_or(0));
    let (value, text) = match field {
        "addresses" => match (formula.per_destination, block) {
            (Some(cap), 0) => {
                let per_address_cap = cap / a.max(1);
                let horizon = sc.duration_ns.map_or(3600.0, |d| d as f64 / 1e9);
                let open = crate::report::sizing::loads(sc, i, horizon).open_per_destination;
                let need = (open / per_address_cap as f64).ceil().max(1.0);
                (
                    Some(need),
                    format!(
                        "{title}'s rule ({} connections per address to one destination) gives {need} for the {} connections open to the busiest destination, leaving out each port's hold after close",
                        thousands(per_address_cap),
                        thousands(open.round() as u64)
                    ),
                )
            }
            (_, b) if b > 0 => {
                let need = (hosts * b).div_ceil(per_address);
                (
                    Some(need as f64),
                    format!(
                        "{title}'s rule gives {need}: {} hosts × {} ports ÷ {} per address",
                        thousands(hosts),
                        thousands(b),
                        thousands(per_address)
                    ),
                )
            }
            _ => return None,
        },
        "ports_per_host" | "min_ports_per_host" | "max_ports_per_host" => {
            let most = a * per_address / hosts;
            (
                Some(most as f64),
                format!(
                    "{title}'s rule leaves each of {} hosts at most {} ports on {a} address{} (it does not say how many a host needs)",
                    thousands(hosts),
                    thousands(most),
                    if a == 1 { "" } else { "es" }
                ),
            )
        }
        "count" => {
            let served = formula.hosts_served?;
            (
                Some(served as f64),
                format!("{title}'s rule: {}", formula.rule),
            )
        }
        _ => return None,
    };
    Some(VendorAnswer { value, text })
}
