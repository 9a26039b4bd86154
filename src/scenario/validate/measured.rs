//! Measured traffic: the CSV files of `traffic.rate_profile` (`time,rate`
//! rows, as a metrics system exports them) and `traffic.replay`
//! (`start,destination,hold` rows, one per connection).
//!
//! Both files are read whole before the run, so a bad row is found before
//! anything is simulated. They are capped in bytes and in rows: a wrong
//! path (`/dev/zero`) or a year of per-second samples is refused, not
//! loaded. Each bad row is an error at the scenario key (so `load` adds the
//! scenario's line) whose message names the CSV file and the line, what was
//! found and what is allowed.
//!
//! A parser of its own rather than a CSV library: the rows are two or three
//! plain fields, and each field needs the scenario's own parsers (times,
//! destinations) and messages. Blank lines and `#` comments are skipped,
//! fields may be quoted, and the first row is a header when none of its
//! fields reads as a number or a duration.

use std::collections::HashMap;
use std::io::Read;
use std::net::SocketAddr;

use super::*;

/// Largest CSV file read, in bytes.
pub const MAX_CSV_BYTES: u64 = 64 << 20;

/// Most rows of a rate profile: a day of one-second samples, a year of
/// five-minute ones. The report reads the profile once per time-series
/// bin, so it stays small.
pub const MAX_PROFILE_ROWS: usize = 100_000;

/// Most rows of a replayed trace (24 bytes each in memory).
pub const MAX_REPLAY_ROWS: usize = 2_000_000;

/// Times from 1e9 s on (31 years; 2001 as a Unix timestamp) are refused:
/// such a file holds timestamps, not times from the run's start.
const MAX_TIME_S: f64 = 1e9;

/// The text of the CSV file `file` named at `key`.
fn read(key: &str, file: &str) -> R<String> {
    let fail = |what: String| err(key, format!("cannot read {}: {what}", quote(file)));
    let too_big = || {
        err(
            key,
            format!(
                "{} is larger than {} MiB; split the measurement or sample it more coarsely",
                quote(file),
                MAX_CSV_BYTES >> 20
            ),
        )
    };
    let f = match std::fs::File::open(file) {
        Ok(f) => f,
        Err(e) => {
            return fail(format!(
                "{e} (a path in a scenario is relative to the scenario file's directory)"
            ))
        }
    };
    if f.metadata()
        .is_ok_and(|m| m.is_file() && m.len() > MAX_CSV_BYTES)
    {
        return too_big();
    }
    let mut bytes = Vec::new();
    if let Err(e) = f.take(MAX_CSV_BYTES + 1).read_to_end(&mut bytes) {
        return fail(e.to_string());
    }
    if bytes.len() as u64 > MAX_CSV_BYTES {
        return too_big();
    }
    match String::from_utf8(bytes) {
        Ok(s) => Ok(s),
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            let line = e.as_bytes()[..at].iter().filter(|b| **b == b'\n').count() + 1;
            err(
                key,
                format!(
                    "{} line {line}: not valid UTF-8; expected CSV text",
                    quote(file)
                ),
            )
        }
    }
}

/// Call `row` with the line number and fields of each data row of `text`
/// (at most `max_rows`), each row having as many fields as `names`.
fn for_each_row<'t>(
    key: &str,
    file: &str,
    text: &'t str,
    names: &[&str],
    max_rows: usize,
    mut row: impl FnMut(usize, &[&'t str]) -> R<()>,
) -> R<usize> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut fields: Vec<&str> = Vec::with_capacity(names.len());
    let mut seen_first = false;
    let mut count = 0;
    for (i, raw_line) in text.lines().enumerate() {
        let line = raw_line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let n = i + 1;
        fields.clear();
        fields.extend(line.split(',').map(|f| {
            let f = f.trim();
            f.strip_prefix('"')
                .and_then(|f| f.strip_suffix('"'))
                .unwrap_or(f)
                .trim()
        }));
        if fields.len() != names.len() {
            return err(
                key,
                format!(
                    "{} line {n}: found {} field(s), {}; expected {}: {}",
                    quote(file),
                    fields.len(),
                    quote(line),
                    names.len(),
                    names.join(",")
                ),
            );
        }
        let first = !seen_first;
        seen_first = true;
        if first && !fields.iter().any(|f| is_value(f)) {
            continue; // a header
        }
        count += 1;
        if count > max_rows {
            return err(
                key,
                format!(
                    "{} has more than {max_rows} rows; at most {max_rows} are allowed",
                    quote(file)
                ),
            );
        }
        row(n, &fields)?;
    }
    if count == 0 {
        return err(
            key,
            format!(
                "{} has no rows; expected lines of {} (a header line is optional)",
                quote(file),
                names.join(",")
            ),
        );
    }
    Ok(count)
}

/// Whether a field reads as a number or a duration (a header's do not).
fn is_value(field: &str) -> bool {
    field.parse::<f64>().is_ok() || humantime::parse_duration(field).is_ok()
}

/// A time: seconds (`90`, `12.5`) or a duration (`"1m 30s"`), in ns.
fn time(field: &str) -> Result<u64, String> {
    const SHAPE: &str = "seconds (such as 90 or 12.5) or a duration (such as 1m30s or 250ms)";
    let ns = match field.parse::<f64>() {
        Ok(s) if s.is_finite() && (0.0..MAX_TIME_S).contains(&s) => (s * 1e9).round() as u64,
        Ok(s) if s.is_finite() && s >= MAX_TIME_S => {
            return Err(format!(
                "found {}, about {:.0} years: times are from the run's start, not timestamps (subtract the first row's time)",
                quote(field),
                s / 31_557_600.0
            ))
        }
        Ok(_) => return Err(format!("found {}; expected {SHAPE}, at least 0", quote(field))),
        Err(_) => match humantime::parse_duration(field) {
            Ok(d) => u64::try_from(d.as_nanos()).unwrap_or(u64::MAX),
            Err(_) => return Err(format!("found {}; expected {SHAPE}", quote(field))),
        },
    };
    if ns as f64 >= MAX_TIME_S * 1e9 {
        return Err(format!(
            "found {}, over 31 years; times are from the run's start, not timestamps",
            quote(field)
        ));
    }
    Ok(ns)
}

/// `traffic.rate_profile`: steps of the rate, each from its row's time to
/// the next row's (0 before the first), as `schedule` gives them.
pub(super) fn rate_profile(file: &str) -> R<RateProfile> {
    const KEY: &str = "traffic.rate_profile";
    let text = read(KEY, file)?;
    let at = |n: usize, what: &str, m: String| format!("{} line {n}: {what}: {m}", quote(file));
    let mut segments: Vec<RateSegment> = Vec::new();
    let mut last: Option<(u64, &str)> = None;
    for_each_row(
        KEY,
        file,
        &text,
        &["time", "rate"],
        MAX_PROFILE_ROWS,
        |n, f| {
            let t = time(f[0]).or_else(|m| err(KEY, at(n, "the time", m)))?;
            if let Some((prev, prev_text)) = last {
                if t <= prev {
                    return err(
                    KEY,
                    at(
                        n,
                        "the time",
                        format!(
                            "found {}, not after the previous row's {}; times must increase row by row",
                            quote(f[0]),
                            quote(prev_text)
                        ),
                    ),
                );
                }
            }
            last = Some((t, f[0]));
            let r = match f[1].parse::<f64>() {
                Ok(r) if r.is_finite() && (0.0..=MAX_RATE).contains(&r) => r,
                _ => {
                    return err(
                        KEY,
                        at(
                            n,
                            "the rate",
                            format!(
                                "found {}; expected connections per second from 0 to {}",
                                quote(f[1]),
                                num(MAX_RATE)
                            ),
                        ),
                    )
                }
            };
            segments.push(RateSegment {
                start_s: t as f64 / NS_PER_S as f64,
                from: r,
                slope: 0.0,
            });
            Ok(())
        },
    )?;
    if segments[0].start_s > 0.0 {
        segments.insert(
            0,
            RateSegment {
                start_s: 0.0,
                from: 0.0,
                slope: 0.0,
            },
        );
    }
    Ok(RateProfile { segments })
}

/// `traffic.replay`: the rows, with destinations as indices into `dests`.
pub(super) fn replay(file: &str, dests: &[Destination]) -> R<Replay> {
    const KEY: &str = "traffic.replay";
    let text = read(KEY, file)?;
    let at = |n: usize, what: &str, m: String| format!("{} line {n}: {what}: {m}", quote(file));
    // Each address once, the first destination that has it.
    let mut index: HashMap<&str, u32> = HashMap::with_capacity(dests.len());
    for (i, d) in dests.iter().enumerate() {
        index.entry(d.address.as_str()).or_insert(i as u32);
    }
    let example = dests.first().map_or(String::new(), |d| d.address.clone());
    let mut rows: Vec<ReplayRow> = Vec::new();
    let mut last: Option<(u64, &str)> = None;
    for_each_row(
        KEY,
        file,
        &text,
        &["start", "destination", "hold"],
        MAX_REPLAY_ROWS,
        |n, f| {
            let start = time(f[0]).or_else(|m| err(KEY, at(n, "the start", m)))?;
            if let Some((prev, prev_text)) = last {
                if start < prev {
                    return err(
                        KEY,
                        at(
                            n,
                            "the start",
                            format!(
                                "found {}, before the previous row's {}; rows must be in start order (sort the file by its first column)",
                                quote(f[0]),
                                quote(prev_text)
                            ),
                        ),
                    );
                }
            }
            last = Some((start, f[0]));
            let dest = destination(f[1], &index, dests.len(), &example)
                .or_else(|m| err(KEY, at(n, "the destination", m)))?;
            let hold_ns = time(f[2]).or_else(|m| err(KEY, at(n, "the hold", m)))?;
            rows.push(ReplayRow {
                start_ns: start,
                hold_ns,
                dest,
            });
            Ok(())
        },
    )?;
    rows.shrink_to_fit();
    Ok(Replay {
        file: file.to_string(),
        rows,
    })
}

/// A destination field: an index, or an `ip:port` of `[[destinations]]`.
fn destination(
    field: &str,
    index: &HashMap<&str, u32>,
    n: usize,
    example: &str,
) -> Result<u32, String> {
    let allowed = format!(
        "expected the ip:port of one of the scenario's [[destinations]] (such as \"{example}\") or its index, 0 to {}",
        n - 1
    );
    if let Ok(i) = field.parse::<u64>() {
        return match u32::try_from(i) {
            Ok(i) if (i as usize) < n => Ok(i),
            _ => Err(format!("found the index {}; {allowed}", quote(field))),
        };
    }
    let Ok(sa) = field.parse::<SocketAddr>() else {
        return Err(format!("found {}; {allowed}", quote(field)));
    };
    index.get(sa.to_string().as_str()).copied().ok_or_else(|| {
        format!(
            "found {}, which is not an address of the scenario's [[destinations]]; {allowed}",
            quote(field)
        )
    })
}
