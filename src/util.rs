//! The bottom layer: small pure functions every other layer may use, and
//! that use nothing of the crate. A keyed hash (stable across platforms and
//! Rust versions, so runs reproduce byte for byte) and number formatting.

/// A keyed 64-bit mix (splitmix64 finalizer): stable across platforms and
/// Rust versions, unlike `std`'s hasher, so runs reproduce byte for byte.
pub fn mix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A count with thousands separators: "1,234,567".
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// A number as outputs write it: plainly from 1e-4 to 1e15 (the shortest
/// form that reads back the same), in exponent form outside, so no value
/// prints with hundreds of digits.
pub fn num(v: f64) -> String {
    if v == 0.0 || !v.is_finite() || (1e-4..1e15).contains(&v.abs()) {
        format!("{v}")
    } else {
        format!("{v:e}")
    }
}

/// `x <= limit`, false when either is NaN: a guard written with it refuses
/// what it cannot compare instead of letting it through.
pub fn at_most(x: f64, limit: f64) -> bool {
    matches!(
        x.partial_cmp(&limit),
        Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal)
    )
}

/// `x < limit`, false when either is NaN.
pub fn below(x: f64, limit: f64) -> bool {
    x.partial_cmp(&limit) == Some(std::cmp::Ordering::Less)
}

/// A count as a message shows it: with thousands separators when it is a
/// whole number below 1e15, in exponent form above.
pub fn count_text(v: f64) -> String {
    if (0.0..1e15).contains(&v) {
        thousands(v as u64)
    } else if v.is_finite() {
        format!("about {v:.1e}")
    } else {
        format!("more than {:e}", f64::MAX)
    }
}

/// `ip` + `i`, if that stays in the address space.
pub fn ip_plus(ip: std::net::IpAddr, i: u32) -> Option<std::net::IpAddr> {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(v4) => u32::from(v4).checked_add(i).map(|n| IpAddr::V4(n.into())),
        IpAddr::V6(v6) => u128::from(v6)
            .checked_add(u128::from(i))
            .map(|n| IpAddr::V6(n.into())),
    }
}
