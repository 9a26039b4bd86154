//! Operating-system presets: the defaults a `host.os` line stands for.
//!
//! A preset picks an allocator, a TIME_WAIT length, whether an unbound
//! connect() may share a local port across destinations, and the OS's own
//! ephemeral range (used with `port_range = "native"`). Every value can be
//! overridden in the scenario; the preset only fills what the file leaves out.
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
            assert!(p.native_range.0 <= p.native_range.1, "{}", p.name);
            assert_eq!(Os::from_name(p.name), Some(p.os));
        }
    }
}
