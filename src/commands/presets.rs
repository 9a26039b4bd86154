//! `portsim presets`: the allocators and OS presets with their defaults,
//! read from the registries in [`crate::alloc`] and [`crate::os`] so the
//! list cannot drift from what a scenario accepts.

use super::{print_out, Exit};

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  portsim presets")]
pub(crate) struct PresetsArgs {}

pub(crate) fn exec(_args: PresetsArgs) -> anyhow::Result<Exit> {
    print_out(&presets_text());
    Ok(Exit::Done)
}

fn presets_text() -> String {
    let squash = |t: &str| t.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut s = String::from("Allocators (host.allocator):\n");
    for e in crate::alloc::REGISTRY {
        s.push_str(&format!("  {:<12} {}\n", e.name, e.summary));
    }
    let (lo, hi) = crate::os::DEFAULT_RANGE;
    s.push_str(&format!(
        "\nOS presets (host.os). Every preset uses ports {lo}-{hi} unless the scenario sets\nhost.port_range; port_range = \"native\" takes the OS's own range.\n"
    ));
    for p in crate::os::PRESETS {
        s.push_str(&format!(
            "\n  {:<8} allocator {}, TIME_WAIT {} s, ports shared across destinations: {}, native range {}-{}\n    {}\n",
            p.name,
            p.allocator,
            p.time_wait_s,
            if p.share_across_destinations { "yes" } else { "no" },
            p.native_range.0,
            p.native_range.1,
            squash(p.notes)
        ));
        for a in p.assumptions {
            s.push_str(&format!("    assumes: {}\n", squash(a)));
        }
    }
    s
}
