//! `portsim inspect`: what is using this host's ports now (or a saved
//! table's), who holds one port, how fast ports churn, and a scenario
//! measured from it. The library's [`crate::inspect`] does the reading and
//! the figures; this file parses flags, samples for `--watch` and prints.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::Exit;
use crate::error::InputError;
use crate::inspect::figures::{self, Inspection, Rules};
use crate::inspect::live::{self, Sysctls};
use crate::inspect::parse::{self, Format};
use crate::inspect::watch::{Watched, Watcher};
use crate::inspect::{render, Socket};
use crate::output::{write_atomic, Target};

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  portsim inspect
  portsim inspect --port 22
  portsim inspect --from scenarios/tables/ss-api-client.txt --range 40000-44999
  portsim inspect --from scenarios/tables/ss-api-client.txt --range 40000-44999 --write-scenario measured.toml")]
pub(crate) struct InspectArgs {
    /// Read a saved table (`ss -tanp`, `netstat -ano`, `netstat -an -p tcp`,
    /// `lsof -i -n -P`) instead of this host's /proc.
    #[arg(long, value_name = "FILE")]
    from: Option<PathBuf>,
    /// The saved table's format: ss, netstat-windows, netstat-bsd, lsof
    /// (detected from its header when absent).
    #[arg(long, value_name = "NAME", requires = "from")]
    format: Option<String>,
    /// The dynamic range, LO-HI. Default: this host's
    /// ip_local_port_range, or for a saved table its OS's default
    /// (Linux 32768-60999, Windows, macOS and FreeBSD 49152-65535).
    #[arg(long, value_name = "LO-HI")]
    range: Option<String>,
    /// Who holds local port N: process, state and peers of each socket.
    #[arg(long, value_name = "N", conflicts_with_all = ["watch", "write_scenario"])]
    port: Option<u16>,
    /// Sample the socket table for this long (e.g. 60s) and measure new
    /// connections per second and their holds, per destination.
    #[arg(long, value_name = "DURATION", conflicts_with = "from")]
    watch: Option<String>,
    /// Time between samples of --watch.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "1s",
        requires = "watch"
    )]
    interval: String,
    /// Write a scenario measured from this host (or table) to FILE, for
    /// `portsim run FILE`.
    #[arg(long, value_name = "FILE")]
    write_scenario: Option<PathBuf>,
    /// Print JSON instead of the summary.
    #[arg(long)]
    json: bool,
    /// Read the live tables under DIR instead of /proc (a copy of another
    /// host's /proc).
    #[arg(
        long,
        value_name = "DIR",
        default_value = "/proc",
        conflicts_with = "from"
    )]
    proc_root: PathBuf,
}

fn duration(flag: &str, text: &str) -> Result<Duration, InputError> {
    let d = humantime::parse_duration(text.trim()).map_err(|e| {
        InputError::usage(format!(
            "{flag} {text:?}: {e}; expected a duration such as \"60s\" or \"500ms\""
        ))
    })?;
    if d.is_zero() {
        return Err(InputError::usage(format!(
            "{flag} {text:?}: expected a positive duration"
        )));
    }
    Ok(d)
}

fn range(text: &str) -> Result<(u16, u16), InputError> {
    let bad = || {
        InputError::usage(format!(
            "--range {text:?}: expected LO-HI with 1 <= LO <= HI <= 65535, e.g. 32768-60999"
        ))
    };
    let (a, b) = text.split_once('-').ok_or_else(bad)?;
    let (a, b): (u16, u16) = (
        a.trim().parse().map_err(|_| bad())?,
        b.trim().parse().map_err(|_| bad())?,
    );
    if a == 0 || a > b {
        return Err(bad());
    }
    Ok((a, b))
}

/// The OS default range of a saved table's format.
fn default_range(format: Format) -> (u16, u16) {
    match format {
        Format::Ss => (32768, 60999),
        Format::NetstatWindows | Format::NetstatBsd | Format::Lsof => (49152, 65535),
    }
}

/// A table and the rules it lives under.
struct Table {
    /// What a measured scenario is named after when the host's name is
    /// not known (a saved table's file name).
    label: String,
    /// The OS preset a measured scenario uses.
    os: &'static str,
    sockets: Vec<Socket>,
    rules: Rules,
    source: String,
    sysctls: Option<Sysctls>,
    hostname: Option<String>,
}

fn read_live(args: &InspectArgs) -> Result<Table, InputError> {
    let root = &args.proc_root;
    if !root.join("net/tcp").exists() {
        return Err(InputError::usage(format!(
            "{}: no net/tcp here; inspect reads Linux's /proc (on another OS save `netstat -an` or `lsof -i -n -P` and use --from FILE)",
            root.display()
        )));
    }
    let host = live::read(root).map_err(|e| {
        InputError::usage(format!("{}:{}: {}", e.file.display(), e.line, e.message))
    })?;
    let (low, high) = match &args.range {
        Some(r) => range(r)?,
        None => host.sysctls.ip_local_port_range.unwrap_or((32768, 60999)),
    };
    Ok(Table {
        label: "host".into(),
        os: "linux",
        sockets: host.sockets,
        rules: Rules {
            low,
            high,
            reserved: host
                .sysctls
                .ip_local_reserved_ports
                .clone()
                .unwrap_or_default(),
            time_wait_s: 60.0,
        },
        source: format!("live {}", root.display()),
        sysctls: Some(host.sysctls),
        hostname: host.hostname,
    })
}

fn read_saved(args: &InspectArgs, path: &std::path::Path) -> Result<Table, InputError> {
    let format = match &args.format {
        None => None,
        Some(name) => Some(Format::from_name(name).ok_or_else(|| {
            InputError::usage(format!(
                "--format {name:?}: expected one of {}",
                Format::ALL.map(Format::name).join(", ")
            ))
        })?),
    };
    let text = read_table(path)?;
    let parsed = parse::parse(&text, format)
        .map_err(|e| InputError::usage(format!("{}:{}: {}", path.display(), e.line, e.message)))?;
    let (low, high) = match &args.range {
        Some(r) => range(r)?,
        None => default_range(parsed.format),
    };
    Ok(Table {
        label: path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("table")
            .to_string(),
        os: match parsed.format {
            Format::Ss => "linux",
            Format::NetstatWindows => "windows",
            Format::NetstatBsd | Format::Lsof => "macos",
        },
        sockets: parsed.sockets,
        rules: Rules {
            low,
            high,
            reserved: Vec::new(),
            // Windows and macOS hold TIME_WAIT 2 × MSL (120 s, 30 s) where
            // Linux holds 60 s; 60 s is a middle the quick estimate names.
            time_wait_s: match parsed.format {
                Format::NetstatWindows => 120.0,
                Format::NetstatBsd => 30.0,
                Format::Ss | Format::Lsof => 60.0,
            },
        },
        source: format!("{} ({})", path.display(), parsed.format.name()),
        sysctls: None,
        hostname: None,
    })
}

/// The largest saved table read: far above a host's sockets (16 million
/// at ~100 bytes a line), far below what would exhaust memory.
const MAX_TABLE_BYTES: u64 = 2 << 30;

/// A saved table's text, whatever its encoding (UTF-8, or UTF-16 as
/// PowerShell's `>` writes it).
fn read_table(path: &std::path::Path) -> Result<String, InputError> {
    use std::io::Read;
    let fail = |m: String| InputError::usage(format!("--from {}: {m}", path.display()));
    let file = std::fs::File::open(path).map_err(|e| fail(format!("cannot read it: {e}")))?;
    if file.metadata().is_ok_and(|m| m.is_dir()) {
        return Err(fail(
            "is a directory; expected a saved ss, netstat or lsof table".into(),
        ));
    }
    let mut bytes = Vec::new();
    file.take(MAX_TABLE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(format!("cannot read it: {e}")))?;
    if bytes.len() as u64 > MAX_TABLE_BYTES {
        return Err(fail(format!(
            "larger than {} GiB; a host's socket table is far smaller",
            MAX_TABLE_BYTES >> 30
        )));
    }
    Ok(parse::decode(&bytes))
}

pub(crate) fn exec(args: InspectArgs) -> anyhow::Result<Exit> {
    // Output paths first: a typo costs no watch.
    if let Some(p) = &args.write_scenario {
        Target::resolve(p).map_err(|e| e.usage("--write-scenario"))?;
    }
    let watch = args
        .watch
        .as_deref()
        .map(|w| duration("--watch", w))
        .transpose()?;
    let interval = duration("--interval", &args.interval)?;
    let read = |args: &InspectArgs| match &args.from {
        Some(path) => read_saved(args, path),
        None => read_live(args),
    };
    let mut table = read(&args)?;
    if let Some(port) = args.port {
        let view = figures::port(&table.sockets, &table.rules, port);
        if args.json {
            println!("{}", serde_json::to_string_pretty(&view)?);
        } else {
            print!("{}", render::port(&view));
        }
        return Ok(Exit::Done);
    }
    let watched = match watch {
        Some(total) => Some(watch_live(&args, &mut table, total, interval)?),
        None => None,
    };
    let mut inspection: Inspection =
        figures::inspect(&table.sockets, &table.rules, table.source.clone());
    inspection.hostname = table.hostname.clone();
    inspection.sysctls = table.sysctls.clone();
    if let Some(path) = &args.write_scenario {
        let when = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        let text = crate::inspect::scenario::write(
            &inspection,
            table.os,
            table.sysctls.as_ref(),
            watched.as_ref(),
            &when,
            &table.source,
            &table.label,
        )
        .map_err(|e| InputError::usage(format!("--write-scenario {}: {}", path.display(), e.0)))?;
        // What is written must load: a scenario portsim cannot run is not
        // written at all.
        crate::scenario::load_str(&text, path, &[]).map_err(|e| {
            anyhow::anyhow!("the measured scenario does not load ({e}); this is a defect")
        })?;
        write_atomic(path, text.as_bytes())?;
    }
    if args.json {
        // The inspection's fields, then `watch` (null without --watch).
        #[derive(serde::Serialize)]
        struct Out<'a> {
            #[serde(flatten)]
            inspection: &'a Inspection,
            watch: Option<&'a Watched>,
        }
        let out = Out {
            inspection: &inspection,
            watch: watched.as_ref(),
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print!("{}", render::inspection(&inspection, watched.as_ref()));
        if let Some(p) = &args.write_scenario {
            println!(
                "  scenario        written to {}: portsim run {} gives the headroom",
                p.display(),
                p.display()
            );
        }
    }
    Ok(Exit::Done)
}

/// Sample the live table every `interval` for `total`; the table left in
/// `table` is the last sample.
fn watch_live(
    args: &InspectArgs,
    table: &mut Table,
    total: Duration,
    interval: Duration,
) -> Result<Watched, InputError> {
    let mut w = Watcher::new();
    let start = Instant::now();
    let (low, high) = (table.rules.low, table.rules.high);
    let in_range = move |p: u16| (low..=high).contains(&p);
    w.add(0.0, &table.sockets, in_range);
    let mut k = 1u32;
    loop {
        let next = interval * k;
        if next > total {
            break;
        }
        if crate::interrupt::received().is_some() {
            break;
        }
        if let Some(sleep) = next.checked_sub(start.elapsed()) {
            std::thread::sleep(sleep);
        }
        let t = read_live(args)?;
        w.add(start.elapsed().as_secs_f64(), &t.sockets, in_range);
        *table = t;
        k += 1;
    }
    Ok(w.finish())
}
