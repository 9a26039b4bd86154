//! Ctrl-C, SIGTERM and SIGHUP: what the process does when it is told to stop.
//!
//! A process has one disposition per signal, so the handling lives here and
//! every command shares it. It knows two things:
//!
//! - the temporary files being written right now ([`create_temp`] registers
//!   one, [`discard`] and [`rename_all`] forget it). On a signal they are
//!   deleted, so a stopped `run --trace` leaves no `.trace.csv.PID.N.tmp` of
//!   hundreds of megabytes behind;
//! - whether the command asked to stop gracefully ([`stop_flag`]): `sweep`
//!   and `capacity` then get a flag set on the first signal, finish the runs in
//!   progress and write what finished. Every other command, and a second
//!   signal, ends the process at once with 128 + the signal's number
//!   (130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP).
//!
//! The `signal-hook` crate's [`Signals`](signal_hook::iterator::Signals)
//! does the async-signal-safe part: its low-level handler only records which
//! signal came and wakes a thread of ours, which receives the number and does
//! the rest as ordinary code. That thread may therefore take a mutex. The
//! registry's mutex is also held while temporary files are created and
//! renamed into place, so the thread never deletes a file that was just
//! committed, nor misses one that was just created; it exits still holding
//! it, so nothing new is created after the clean-up.
//!
//! Like the kernel's own pending signals, the same signal sent twice before
//! the thread wakes is seen once. Signal handling is Unix only: elsewhere
//! [`install`] does nothing and the platform's default applies.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once};

/// The number of SIGINT.
pub const SIGINT: i32 = signal_hook::consts::SIGINT;
/// The number of SIGTERM.
pub const SIGTERM: i32 = signal_hook::consts::SIGTERM;
/// The number of SIGHUP.
#[cfg(unix)]
const SIGHUP: i32 = signal_hook::consts::SIGHUP;

struct State {
    next_id: u64,
    temps: Vec<(u64, PathBuf)>,
    stop: Option<Arc<AtomicBool>>,
}

static STATE: Mutex<State> = Mutex::new(State {
    next_id: 0,
    temps: Vec::new(),
    stop: None,
});

static INSTALL: Once = Once::new();

/// The signal that stopped (or is stopping) the process, 0 if none yet.
static RECEIVED: AtomicI32 = AtomicI32::new(0);

fn state() -> MutexGuard<'static, State> {
    // A panic elsewhere while holding the lock leaves the list usable.
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Install the process's signal handler (once; later calls do nothing).
///
/// Called by the command-line front end only: a program using the library
/// keeps its own signal handling.
pub fn install() {
    INSTALL.call_once(|| {
        #[cfg(unix)]
        listen();
    });
}

/// Start the signal thread and wait until it has registered for the
/// signals, so none sent after [`install`] returns is missed.
///
/// The thread registers them itself: if it cannot be started, nothing is
/// registered and the defaults stay in force (signal-hook does not restore
/// them when its registration is dropped).
#[cfg(unix)]
fn listen() {
    use signal_hook::iterator::Signals;
    let (ready, registered) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("portsim-signals".into())
        .spawn(move || {
            let signals = Signals::new([SIGINT, SIGTERM, SIGHUP]);
            let _ = ready.send(());
            if let Ok(mut signals) = signals {
                for sig in signals.forever() {
                    on_signal(sig);
                }
            }
        });
    if spawned.is_ok() {
        // An error means the thread ended without a word: nothing to wait for.
        let _ = registered.recv();
    }
}

/// Ask for a graceful stop: the first signal sets the returned flag instead
/// of ending the process; a second one ends it as usual.
pub fn stop_flag() -> Arc<AtomicBool> {
    install();
    let flag = Arc::new(AtomicBool::new(false));
    state().stop = Some(flag.clone());
    flag
}

/// The number of the signal received, if any.
pub fn received() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// Act on signal `sig`, on the signal thread: set the stop flag the first
/// time in graceful mode, else remove the temporary files and exit.
#[cfg_attr(not(unix), allow(dead_code))]
fn on_signal(sig: i32) {
    let mut st = state();
    if let Some(stop) = &st.stop {
        if !stop.swap(true, Ordering::SeqCst) {
            RECEIVED.store(sig, Ordering::SeqCst);
            return;
        }
    }
    RECEIVED.store(sig, Ordering::SeqCst);
    let mut removed = Vec::new();
    for (_, path) in st.temps.drain(..) {
        if std::fs::remove_file(&path).is_ok() {
            removed.push(path.display().to_string());
        }
    }
    let name = signal_name(sig);
    // Not eprintln!: a closed stderr must not stop the exit below.
    let mut err = io::stderr();
    let _ = if removed.is_empty() {
        writeln!(err, "interrupted by {name}")
    } else {
        writeln!(
            err,
            "interrupted by {name}; removed unfinished output: {}",
            removed.join(", ")
        )
    };
    // Still holding the lock: no temporary file is created or renamed now.
    std::process::exit(128 + sig);
}

/// How a signal is named in the message on stderr.
#[cfg_attr(not(unix), allow(dead_code))]
fn signal_name(sig: i32) -> String {
    match sig {
        SIGINT => "SIGINT".to_string(),
        SIGTERM => "SIGTERM".to_string(),
        #[cfg(unix)]
        SIGHUP => "SIGHUP".to_string(),
        s => format!("signal {s}"),
    }
}

/// A temporary file on the registry: deleted on a signal until it is
/// renamed into place ([`rename_all`]) or discarded ([`discard`]).
#[derive(Debug)]
pub struct Temp {
    id: u64,
    path: PathBuf,
}

impl Temp {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Create a new, unique temporary file `DIR/.NAME.PID.N.tmp` beside `target`
/// and register it.
pub fn create_temp(dir: &Path, name: &str) -> io::Result<(File, Temp)> {
    let mut st = state();
    let id = st.next_id;
    st.next_id += 1;
    let path = dir.join(format!(".{name}.{}.{id}.tmp", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)?;
    st.temps.push((id, path.clone()));
    Ok((file, Temp { id, path }))
}

/// Delete a temporary file and forget it.
pub fn discard(temp: Temp) {
    let mut st = state();
    let _ = std::fs::remove_file(&temp.path);
    st.temps.retain(|(id, _)| *id != temp.id);
}

/// Rename every temporary file onto its target, as one step as far as
/// signals are concerned: a signal waits until all are in place.
///
/// On an error the files already renamed stay renamed (a rename does not
/// fail half-way on one file system); the rest are returned, still
/// registered, with the error and the target that failed.
#[allow(clippy::type_complexity)]
pub fn rename_all(
    pairs: Vec<(Temp, PathBuf)>,
) -> Result<(), (io::Error, PathBuf, Vec<(Temp, PathBuf)>)> {
    let mut st = state();
    let mut rest = pairs.into_iter();
    while let Some((temp, target)) = rest.next() {
        if let Err(e) = std::fs::rename(&temp.path, &target) {
            let mut left = vec![(temp, target.clone())];
            left.extend(rest);
            return Err((e, target, left));
        }
        st.temps.retain(|(id, _)| *id != temp.id);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temps_are_registered_until_discarded_or_renamed() {
        let dir = tempfile::tempdir().unwrap();
        let (_f, a) = create_temp(dir.path(), "a.csv").unwrap();
        let (_g, b) = create_temp(dir.path(), "a.csv").unwrap();
        // Two temporary files for one name in one process do not collide.
        assert_ne!(a.path(), b.path());
        let a_path = a.path().to_path_buf();
        let b_path = b.path().to_path_buf();
        let listed = |p: &Path| state().temps.iter().any(|(_, q)| q == p);
        assert!(listed(&a_path) && listed(&b_path));
        discard(a);
        assert!(!a_path.exists() && !listed(&a_path));
        rename_all(vec![(b, dir.path().join("a.csv"))]).unwrap();
        assert!(!b_path.exists() && !listed(&b_path));
        assert!(dir.path().join("a.csv").is_file());
    }

    #[test]
    fn signals_are_named_in_the_message() {
        assert_eq!(signal_name(SIGINT), "SIGINT");
        assert_eq!(signal_name(SIGTERM), "SIGTERM");
        #[cfg(unix)]
        assert_eq!(signal_name(SIGHUP), "SIGHUP");
        assert_eq!(signal_name(10), "signal 10");
    }

    #[cfg(unix)]
    #[test]
    fn signal_numbers_are_the_unix_ones() {
        // The exit codes 130, 143 and 129 that scripts rely on.
        assert_eq!((SIGINT, SIGTERM, SIGHUP), (2, 15, 1));
    }
}
