//! macOS (XNU `in_pcbbind()`): sequential TCP ports, implicit bind; UDP
//! ports from a random cursor (`freebsd`), as `in_pcbbind()` does with
//! `udp_use_randomport` on.

use super::{Os, Preset};

pub const PRESET: Preset = Preset {
    os: Os::Macos,
    name: "macos",
    allocator: "sequential",
    udp_allocator: "freebsd",
    time_wait_s: 30,
    share_across_destinations: false,
    native_range: (49152, 65535),
    notes: "TCP ports are not randomized by default (net.inet.tcp.randomize_ports = 0): \
            a global cursor moves to the next free port. connect() binds implicitly \
            and needs a port unused on the local address, so a port is never shared \
            across destinations. TIME_WAIT is 2 x MSL = 30 s. Native range 49152-65535. UDP ports are randomized \
            (net.inet.udp.randomize_ports = 1): a random cursor advanced before \
            each check, the freebsd allocator.",
    assumptions: &[
        "net.inet.tcp.randomize_ports = 0 (the default); with 1 the cursor starts at \
         random: host.allocator = \"freebsd\"",
        "MSL of 15 s as in XNU's sources: host.time_wait",
    ],
};
