//! Windows (Vista and later): what Microsoft's documentation supports. The
//! stack is closed source, so every open point is a scenario option.

use super::{Os, Preset};

pub const PRESET: Preset = Preset {
    os: Os::Windows,
    name: "windows",
    allocator: "rfc6056-1",
    udp_allocator: "rfc6056-1",
    time_wait_s: 120,
    share_across_destinations: true,
    native_range: (49152, 65535),
    notes: "Dynamic range 49152-65535. connect() with an implicit bind reuses a \
            local port across destinations (SO_REUSE_UNICASTPORT is on for \
            implicit binds, Windows 10 / Server 2016 and later) and randomizes it; \
            bind(0) takes a port exclusively. TcpTimedWaitDelay is 120 s.",
    assumptions: &[
        "the probe order is undocumented: random start, then linear probe \
         (RFC 6056 algorithm 1): host.allocator",
        "TIME_WAIT 120 s as in current documentation; older documents say 240 s: \
         host.time_wait = \"240s\"",
        "implicit-bind connect() shares ports across destinations; for older \
         releases or when auto-reuse is off: host.share_across_destinations = false",
        "bind(0) uses the same probe order as connect(): host.allocator",
        "UDP flows use the same probe order as TCP, a port exclusive on its \
         address: host.allocator",
    ],
};
