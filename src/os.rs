//! Operating-system presets: the defaults a `host.os` line stands for.
//!
//! A preset picks an allocator, a TIME_WAIT length and whether an unbound
//! connect() may share a local port across destinations. Each of these can be
//! overridden in the scenario; the preset only fills what the file leaves out.
//! The allocators named here are the closest RFC 6056 algorithm for each OS
//! (see `alloc`); the facts behind each choice are in the `notes`.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Os {
    Linux,
    Freebsd,
    Macos,
    Windows,
    Generic,
}

/// What a preset means.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Preset {
    pub os: Os,
    pub name: &'static str,
    pub allocator: &'static str,
    pub time_wait_s: u64,
    pub share_across_destinations: bool,
    pub notes: &'static str,
}

pub const PRESETS: &[Preset] = &[
    Preset {
        os: Os::Linux,
        name: "linux",
        allocator: "rfc6056-4",
        time_wait_s: 60,
        share_across_destinations: true,
        notes: "connect() uses a double hash with a perturbation table (RFC 6056 \
                algorithm 4); a port is shared across destinations, only the 4-tuple \
                must be unique; TIME_WAIT is fixed at 60 s (TCP_TIMEWAIT_LEN).",
    },
    Preset {
        os: Os::Freebsd,
        name: "freebsd",
        allocator: "rfc6056-1",
        time_wait_s: 60,
        share_across_destinations: true,
        notes: "in_pcb_lport_dest(): random start then linear probe (RFC 6056 \
                algorithm 1) with a 4-tuple check; TIME_WAIT is 2 x MSL = 60 s.",
    },
    Preset {
        os: Os::Macos,
        name: "macos",
        allocator: "sequential",
        time_wait_s: 30,
        share_across_destinations: false,
        notes: "TCP ports are not randomized by default (net.inet.tcp.randomize_ports \
                = 0): a global cursor; connect() binds implicitly, so a port is never \
                shared across destinations; TIME_WAIT is 2 x MSL = 30 s.",
    },
    Preset {
        os: Os::Windows,
        name: "windows",
        allocator: "rfc6056-1",
        time_wait_s: 120,
        share_across_destinations: true,
        notes: "The probe order is undocumented; randomized start is assumed. connect() \
                with an implicit bind shares ports across destinations \
                (SO_REUSE_UNICASTPORT, Windows 10+). TcpTimedWaitDelay is 120 s by \
                default in current documentation (older documents say 240 s; set \
                host.time_wait = \"240s\" for that).",
    },
    Preset {
        os: Os::Generic,
        name: "generic",
        allocator: "rfc6056-1",
        time_wait_s: 60,
        share_across_destinations: true,
        notes: "No OS in particular: random start then linear probe, 60 s TIME_WAIT, \
                4-tuple sharing across destinations.",
    },
];

impl Os {
    pub fn preset(self) -> &'static Preset {
        PRESETS
            .iter()
            .find(|p| p.os == self)
            .expect("every Os has a preset")
    }

    pub fn from_name(name: &str) -> Option<Os> {
        PRESETS.iter().find(|p| p.name == name).map(|p| p.os)
    }

    pub fn names() -> Vec<&'static str> {
        PRESETS.iter().map(|p| p.name).collect()
    }
}
