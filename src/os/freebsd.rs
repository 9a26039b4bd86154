//! FreeBSD (main, 2025): `in_pcb_lport_dest()` with randomized ports, for
//! TCP and UDP alike.

use super::{Os, Preset};

pub const PRESET: Preset = Preset {
    os: Os::Freebsd,
    name: "freebsd",
    allocator: "freebsd",
    udp_allocator: "freebsd",
    time_wait_s: 60,
    share_across_destinations: true,
    native_range: (10000, 65535),
    notes: "in_pcb_lport_dest(): a random cursor advanced before each check, then a \
            linear probe over the whole range (RFC 6056 algorithm 1); connect() \
            checks the 4-tuple, so ports are shared across destinations; bind(0) \
            needs the port free on the address. TIME_WAIT is 2 x MSL = 60 s \
            (net.inet.tcp.msl = 30000). Native range 10000-65535. UDP flows use the \
            same in_pcb_lport code, a port exclusive on its address.",
    assumptions: &[
        "net.inet.ip.portrange.randomized = 1 (the default); with 0 the choice is \
         sequential: host.allocator = \"sequential\"",
        "no TIME_WAIT shortcut for loopback (net.inet.tcp.nolocaltimewait): host.time_wait",
    ],
};
