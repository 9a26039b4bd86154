//! Operating-system presets: the defaults a `host.os` line stands for.
//!
//! A preset picks an allocator, a TIME_WAIT length, whether an unbound
//! connect() may share a local port across destinations, and the OS's own
//! ephemeral range (used with `port_range = "native"`). Every value can be
//! overridden in the scenario; the preset only fills what the file leaves out.
//! A preset also names the allocator of UDP flows (`traffic.protocol =
//! "udp"`), which the OS may choose by other code than TCP's.
//! Each OS is one file holding its [`Preset`], with the facts behind it and
//! every assumption the public sources leave open, named with the scenario
//! key that changes it. A new preset is one file plus one line in [`PRESETS`].

mod freebsd;
mod generic;
mod linux;
mod macos;
mod windows;

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
    /// The allocator of UDP flows when the scenario keeps `allocator`.
    pub udp_allocator: &'static str,
    pub time_wait_s: u64,
    pub share_across_destinations: bool,
    /// The OS's default ephemeral range (`port_range = "native"`).
    pub native_range: (u16, u16),
    /// What the model does and where it comes from.
    pub notes: &'static str,
    /// Points the sources leave open, each with the key that changes it.
    pub assumptions: &'static [&'static str],
}

/// Every preset a scenario can name.
pub const PRESETS: &[Preset] = &[
    linux::PRESET,
    freebsd::PRESET,
    macos::PRESET,
    windows::PRESET,
    generic::PRESET,
];

/// The range every preset uses unless the scenario says otherwise.
pub const DEFAULT_RANGE: (u16, u16) = (49152, 65535);

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

    /// The allocator UDP flows use on this OS when the host's (TCP)
    /// allocator is `allocator`: the preset's UDP allocator when `allocator`
    /// is the preset's own, `linux-udp` for `linux` on any OS, else
    /// `allocator` itself (a scenario that names an allocator gets it).
    pub fn udp_allocator(self, allocator: &str) -> &str {
        let p = self.preset();
        if allocator == p.allocator {
            p.udp_allocator
        } else if allocator == linux::PRESET.allocator {
            linux::PRESET.udp_allocator
        } else {
            allocator
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_name_registered_allocators_and_sane_ranges() {
        for p in PRESETS {
            assert!(
                crate::alloc::entry(p.allocator).is_some(),
                "{}: {}",
                p.name,
                p.allocator
            );
            assert!(
                crate::alloc::entry(p.udp_allocator).is_some(),
                "{}: {}",
                p.name,
                p.udp_allocator
            );
            assert!(p.native_range.0 <= p.native_range.1, "{}", p.name);
            assert_eq!(Os::from_name(p.name), Some(p.os));
        }
    }

    #[test]
    fn udp_allocators() {
        assert_eq!(Os::Linux.udp_allocator("linux"), "linux-udp");
        // macOS randomizes UDP ports (net.inet.udp.randomize_ports = 1)
        // but not TCP's.
        assert_eq!(Os::Macos.udp_allocator("sequential"), "freebsd");
        assert_eq!(Os::Freebsd.udp_allocator("freebsd"), "freebsd");
        assert_eq!(Os::Windows.udp_allocator("rfc6056-1"), "rfc6056-1");
        assert_eq!(Os::Generic.udp_allocator("rfc6056-1"), "rfc6056-1");
        // Linux's allocator named on another OS brings its UDP code along;
        // any other allocator a scenario names is used as named.
        assert_eq!(Os::Freebsd.udp_allocator("linux"), "linux-udp");
        assert_eq!(Os::Linux.udp_allocator("rfc6056-3"), "rfc6056-3");
        assert_eq!(Os::Linux.udp_allocator("linux-udp"), "linux-udp");
    }
}
