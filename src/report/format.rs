//! How the report's numbers read in text: amounts, durations, shares.
//!
//! One place for them, below every text the report renders (the summary,
//! the request lines of [`super::client`], the charts and the page), so a
//! figure reads the same wherever it appears.

pub use crate::util::thousands;

/// A non-negative measured amount as the summary prints it: one decimal
/// below 100 ("16.4"), whole and with thousands separators above ("15,592").
pub fn amount(x: f64) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    if x.abs() < 100.0 {
        let s = format!("{x:.1}");
        s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
    } else {
        thousands(x.round() as u64)
    }
}

/// Seconds as a short human duration: "54.5 s", "1.2 ms", "2 h 5 min".
pub fn human_s(s: f64) -> String {
    if s >= 7200.0 {
        format!(
            "{:.0} h {:.0} min",
            (s / 3600.0).floor(),
            (s % 3600.0) / 60.0
        )
    } else if s >= 120.0 {
        format!("{:.1} min", s / 60.0)
    } else if s >= 1.0 {
        format!("{} s", trim(s, 1))
    } else if s >= 1e-3 {
        format!("{} ms", trim(s * 1e3, 1))
    } else {
        format!("{} µs", trim(s * 1e6, 1))
    }
}

/// A measured time as the summary prints it: like [`human_s`], but seconds
/// always with their tenth ("14.0 s" beside "54.2 s"), so figures measured
/// to the same precision read alike; settings keep [`human_s`] ("60 s").
pub fn measured_s(s: f64) -> String {
    if (1.0..120.0).contains(&s) {
        format!("{s:.1} s")
    } else {
        human_s(s)
    }
}

/// `v` with `decimals` decimals, without a trailing ".0".
pub fn trim(v: f64, decimals: usize) -> String {
    let s = format!("{v:.decimals$}");
    s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
}

/// Percent with enough digits to show small ratios: 10.5 %, 0.012 %.
pub fn percent(ratio: f64) -> String {
    let p = ratio * 100.0;
    if p == 0.0 {
        "0 %".into()
    } else if p >= 1.0 {
        format!("{p:.1} %")
    } else if p >= 0.01 {
        format!("{p:.3} %")
    } else if p >= 1e-12 {
        format!("{p:.2e} %")
    } else {
        // Below any rate a run could measure (Erlang B far from capacity).
        "< 1e-12 %".into()
    }
}
