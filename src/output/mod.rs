//! Writing output files so a reader never sees half of one, and nothing but a
//! regular file is ever replaced.
//!
//! What a path names decides how it is written ([`Target`]):
//!
//! - a path that does not exist yet, or a regular file: written to a
//!   temporary name in the same directory and renamed over it once complete;
//! - a symbolic link: followed; the file it points to is written as above and
//!   the link stays a link;
//! - a FIFO or a character device (`/dev/null`, `/dev/stdout`, a terminal):
//!   opened and written through, since renaming a file over it would replace
//!   the device or pipe with a plain file;
//! - `-`: standard output, where the command allows it;
//! - a directory, a block device or a socket: refused.
//!
//! Temporary files are registered with [`crate::interrupt`], so a signal
//! deletes them, and are deleted when anything fails. The files of one
//! command are written as a set ([`OutputSet`]): every one is rendered and
//! written to its temporary name first, and only then are they renamed into
//! place, so a full disk leaves the directory as it was.
//!
//! Paths are checked before a run starts ([`Target::resolve`],
//! [`prepare_dir`], [`distinct`]), so a bad path fails in a millisecond
//! rather than after an hour's run. Every error names the path.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::InputError;
use crate::interrupt::{self, Temp};

mod target;
use target::parent_dir;
pub use target::{distinct, stdout_identity, Dest, Identity, Target};

/// A path that cannot be written, and why. Displays as `PATH: why`.
#[derive(Debug, thiserror::Error)]
#[error("{}: {problem}", .path.display())]
pub struct OutputError {
    pub path: PathBuf,
    pub problem: Problem,
}

#[derive(Debug, thiserror::Error)]
pub enum Problem {
    /// The path names something portsim will not write to.
    #[error("{0}")]
    Refused(String),
    /// The path's directory cannot be used.
    #[error("cannot write here: {0}")]
    Place(io::Error),
    /// Writing failed (disk full, permissions, a closed pipe).
    #[error("{0}")]
    Io(io::Error),
}

impl OutputError {
    fn new(path: &Path, problem: Problem) -> OutputError {
        OutputError {
            path: path.to_path_buf(),
            problem,
        }
    }
    fn io(path: &Path, e: io::Error) -> OutputError {
        OutputError::new(path, Problem::Io(e))
    }
    fn refused(path: &Path, why: impl Into<String>) -> OutputError {
        OutputError::new(path, Problem::Refused(why.into()))
    }

    /// As a bad command line (exit code 2), for errors found before a run:
    /// `--trace PATH: why`.
    pub fn usage(self, flag: &str) -> InputError {
        InputError::usage(format!("{flag} {self}"))
    }
}

/// The writer behind a [`PendingFile`]; `Box` so tests can inject failures.
type Sink = Box<dyn Write + Send>;

enum How {
    /// A temporary file to rename onto `target`; `file` is kept to sync it.
    Replace {
        temp: Temp,
        target: PathBuf,
        file: File,
    },
    Through,
    Stdout,
}

/// A file being written; it appears under its name only on `commit`.
/// Dropped uncommitted, its temporary file is deleted.
pub struct PendingFile {
    path: PathBuf,
    how: Option<How>,
    w: Option<BufWriter<Sink>>,
}

/// Standard output that takes a closed pipe (`| head`) as the reader having
/// had enough: the rest is discarded, not an error.
struct StdoutSink {
    closed: bool,
}

impl Write for StdoutSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.closed {
            return Ok(buf.len());
        }
        match io::stdout().lock().write_all(buf) {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(buf.len())
            }
            Err(e) => Err(e),
            Ok(()) => Ok(buf.len()),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match io::stdout().lock().flush() {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(())
            }
            r => r,
        }
    }
}

impl PendingFile {
    /// Start writing `path` as its [`Target`] says.
    pub fn create(path: &Path) -> Result<PendingFile, OutputError> {
        let target = Target::resolve(path)?;
        PendingFile::open(&target)
    }

    /// Start writing a checked target.
    pub fn open(target: &Target) -> Result<PendingFile, OutputError> {
        let path = &target.path;
        let (how, sink): (How, Sink) = match &target.dest {
            Dest::Stdout => (How::Stdout, Box::new(StdoutSink { closed: false })),
            Dest::Through => {
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(|e| OutputError::new(path, Problem::Place(e)))?;
                (How::Through, Box::new(f))
            }
            Dest::Replace(real) => {
                let dir = parent_dir(real);
                let name = real
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "output".into());
                let (file, temp) = interrupt::create_temp(&dir, &name)
                    .map_err(|e| OutputError::new(path, Problem::Place(e)))?;
                // A replaced file keeps its permissions.
                if let Ok(m) = std::fs::metadata(real) {
                    let _ = file.set_permissions(m.permissions());
                }
                let w = file.try_clone().map_err(|e| OutputError::io(path, e));
                let w = match w {
                    Ok(w) => w,
                    Err(e) => {
                        interrupt::discard(temp);
                        return Err(e);
                    }
                };
                (
                    How::Replace {
                        temp,
                        target: real.clone(),
                        file,
                    },
                    Box::new(w),
                )
            }
        };
        Ok(PendingFile {
            path: path.clone(),
            how: Some(how),
            w: Some(BufWriter::with_capacity(1 << 16, sink)),
        })
    }

    /// The path as given, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// An error of this file, naming it.
    pub fn error(&self, e: io::Error) -> OutputError {
        OutputError::io(&self.path, e)
    }

    /// Wrap the writer (tests inject failures this way). What is buffered
    /// goes through the wrapped writer too.
    fn wrap(&mut self, f: &mut dyn FnMut(&Path, Sink) -> Sink) -> Result<(), OutputError> {
        if let Some(w) = self.w.take() {
            let (inner, buffered) = w.into_parts();
            let mut w = BufWriter::with_capacity(1 << 16, f(&self.path, inner));
            // A panic while writing lost the buffer; the file cannot be whole.
            let buffered = buffered.map_err(|_| {
                OutputError::io(&self.path, io::Error::other("a write was interrupted"))
            })?;
            w.write_all(&buffered).map_err(|e| self.error(e))?;
            self.w = Some(w);
        }
        Ok(())
    }

    /// Flush everything to the file (and the disk), without renaming.
    fn finish_writing(&mut self) -> Result<(), OutputError> {
        let w = self.w.as_mut().expect("not yet committed");
        w.flush().map_err(|e| OutputError::io(&self.path, e))?;
        if let Some(How::Replace { file, .. }) = &self.how {
            file.sync_all()
                .map_err(|e| OutputError::io(&self.path, e))?;
        }
        Ok(())
    }

    /// Flush and put the file in place.
    pub fn commit(mut self) -> Result<(), OutputError> {
        self.finish_writing()?;
        self.w = None;
        if let Some(How::Replace { temp, target, .. }) = self.how.take() {
            interrupt::rename_all(vec![(temp, target)]).map_err(|(e, _, left)| {
                for (t, _) in left {
                    interrupt::discard(t);
                }
                OutputError::io(&self.path, e)
            })?;
        }
        Ok(())
    }
}

impl Write for PendingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.w.as_mut().expect("not yet committed").write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.w.as_mut().expect("not yet committed").flush()
    }
}

impl Drop for PendingFile {
    fn drop(&mut self) {
        // Close the file before deleting it; what is buffered is dropped.
        if let Some(w) = self.w.take() {
            let _ = w.into_parts();
        }
        if let Some(How::Replace { temp, .. }) = self.how.take() {
            interrupt::discard(temp);
        }
    }
}

/// Make sure `dir` exists (creating it) and is writable, before a run.
/// Errors name the flag `--out`.
pub fn prepare_dir(dir: &Path) -> Result<(), InputError> {
    let flag = format!("--out {}", dir.display());
    if dir.as_os_str() == "-" {
        return Err(InputError::usage(format!(
            "{flag}: expected a directory; `-` (standard output) is only for --trace"
        )));
    }
    if dir.exists() && !dir.is_dir() {
        return Err(InputError::usage(format!(
            "{flag}: exists and is not a directory"
        )));
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| InputError::usage(format!("{flag}: cannot create the directory: {e}")))?;
    // Probe that it is writable.
    let (_, temp) = interrupt::create_temp(dir, "portsim-write-check")
        .map_err(|e| InputError::usage(format!("{flag}: cannot write here: {e}")))?;
    interrupt::discard(temp);
    Ok(())
}

/// Check the files `--out DIR` will write, before a run: each must be
/// writable as its [`Target`] says. Returns them as `("--out DIR", target)`
/// for [`distinct`].
pub fn check_files(dir: &Path, names: &[String]) -> Result<Vec<(String, Target)>, InputError> {
    let flag = format!("--out {}", dir.display());
    names
        .iter()
        .map(|n| {
            Target::resolve(&dir.join(n))
                .map(|t| (flag.clone(), t))
                .map_err(|e| InputError::usage(format!("{flag}: {e}")))
        })
        .collect()
}

/// The files of one command, written all or nothing: each is written to a
/// temporary name first (files to write through, after those), and only when
/// all were written are they renamed into place. On an error every
/// temporary file is deleted and no file has been replaced.
#[derive(Default)]
pub struct OutputSet {
    items: Vec<Item>,
}

enum Item {
    Bytes(PathBuf, Vec<u8>),
    Open(PendingFile),
}

impl OutputSet {
    pub fn new() -> OutputSet {
        OutputSet::default()
    }

    /// Add a file with its whole content.
    pub fn add(&mut self, path: PathBuf, bytes: Vec<u8>) {
        self.items.push(Item::Bytes(path, bytes));
    }

    /// Add a file already written (e.g. a trace), to put in place with the set.
    pub fn add_open(&mut self, file: PendingFile) {
        self.items.push(Item::Open(file));
    }

    /// Write every file and put them in place.
    pub fn commit(self) -> Result<(), OutputError> {
        self.commit_with(&mut |_, w| w)
    }

    /// [`commit`](Self::commit), with each writer passed through `wrap`
    /// first (tests inject failing writers).
    fn commit_with(self, wrap: &mut dyn FnMut(&Path, Sink) -> Sink) -> Result<(), OutputError> {
        // Everything that renames: temporary files first.
        let mut staged: Vec<PendingFile> = Vec::new();
        let mut through: Vec<(Target, Vec<u8>)> = Vec::new();
        let mut open_through: Vec<PendingFile> = Vec::new();
        for item in self.items {
            match item {
                Item::Bytes(path, bytes) => {
                    let target = Target::resolve(&path)?;
                    if let Dest::Replace(_) = target.dest {
                        let mut f = PendingFile::open(&target)?;
                        f.wrap(wrap)?;
                        f.write_all(&bytes).map_err(|e| f.error(e))?;
                        f.finish_writing()?;
                        staged.push(f);
                    } else {
                        through.push((target, bytes));
                    }
                }
                Item::Open(mut f) => {
                    f.wrap(wrap)?;
                    f.finish_writing()?;
                    match f.how {
                        Some(How::Replace { .. }) => staged.push(f),
                        _ => open_through.push(f),
                    }
                }
            }
        }
        // Then the pipes and devices, which cannot be taken back.
        for f in open_through {
            f.commit()?;
        }
        for (target, bytes) in through {
            let mut f = PendingFile::open(&target)?;
            f.wrap(wrap)?;
            f.write_all(&bytes).map_err(|e| f.error(e))?;
            f.commit()?;
        }
        // All written: rename them into place together.
        let mut pairs = Vec::new();
        let mut names = Vec::new();
        for mut f in staged {
            f.w = None;
            if let Some(How::Replace { temp, target, .. }) = f.how.take() {
                names.push((target.clone(), f.path.clone()));
                pairs.push((temp, target));
            }
        }
        interrupt::rename_all(pairs).map_err(|(e, failed, left)| {
            for (t, _) in left {
                interrupt::discard(t);
            }
            let shown = names
                .iter()
                .find(|(t, _)| *t == failed)
                .map_or(failed.clone(), |(_, p)| p.clone());
            OutputError::io(&shown, e)
        })
    }
}

/// Write one whole file: atomically, or through if it is a pipe or device.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), OutputError> {
    let mut set = OutputSet::new();
    set.add(path.to_path_buf(), bytes.to_vec());
    set.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Accepts `room` bytes, then fails as a full disk does.
    struct Full {
        room: usize,
    }

    impl Write for Full {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::Error::from_raw_os_error(28));
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_failing_file_leaves_the_set_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("a.json"), "old a").unwrap();
        let mut set = OutputSet::new();
        set.add(d.join("a.json"), b"new a".to_vec());
        set.add(d.join("b.csv"), vec![b'x'; 100_000]);
        set.add(d.join("c.svg"), b"new c".to_vec());
        let err = set
            .commit_with(&mut |p, w| {
                if p.ends_with("b.csv") {
                    Box::new(Full { room: 1000 })
                } else {
                    w
                }
            })
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{}: No space left on device (os error 28)",
                d.join("b.csv").display()
            )
        );
        // The old file untouched, no new file, no temporary file.
        assert_eq!(names(d), vec!["a.json"]);
        assert_eq!(std::fs::read_to_string(d.join("a.json")).unwrap(), "old a");
    }

    #[test]
    fn a_set_is_written_whole() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("a.json"), "old a").unwrap();
        let mut set = OutputSet::new();
        set.add(d.join("a.json"), b"new a".to_vec());
        set.add(d.join("b.csv"), b"new b".to_vec());
        set.commit().unwrap();
        assert_eq!(names(d), vec!["a.json", "b.csv"]);
        assert_eq!(std::fs::read_to_string(d.join("a.json")).unwrap(), "new a");
        assert_eq!(std::fs::read_to_string(d.join("b.csv")).unwrap(), "new b");
    }

    #[cfg(unix)]
    #[test]
    fn links_are_followed_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("real")).unwrap();
        std::fs::write(d.join("real/t.csv"), "old").unwrap();
        std::os::unix::fs::symlink("real/t.csv", d.join("link.csv")).unwrap();
        // A dangling link: the file it names is created.
        std::os::unix::fs::symlink("real/new.csv", d.join("dangling.csv")).unwrap();
        write_atomic(&d.join("link.csv"), b"new").unwrap();
        write_atomic(&d.join("dangling.csv"), b"made").unwrap();
        for l in ["link.csv", "dangling.csv"] {
            let m = std::fs::symlink_metadata(d.join(l)).unwrap();
            assert!(m.file_type().is_symlink(), "{l}");
        }
        assert_eq!(
            std::fs::read_to_string(d.join("real/t.csv")).unwrap(),
            "new"
        );
        assert_eq!(
            std::fs::read_to_string(d.join("real/new.csv")).unwrap(),
            "made"
        );
        assert_eq!(names(&d.join("real")), vec!["new.csv", "t.csv"]);
    }

    #[cfg(unix)]
    #[test]
    fn the_same_file_twice_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("out")).unwrap();
        std::os::unix::fs::symlink("out/report.json", d.join("r.json")).unwrap();
        let t = |p: &str| Target::resolve(&d.join(p)).unwrap();
        // Not there yet, through a link and through `..`.
        let outs = vec![
            ("--out out".to_string(), t("out/report.json")),
            ("--trace".to_string(), t("out/../r.json")),
        ];
        let e = distinct(&outs).unwrap_err().to_string();
        assert!(
            e.starts_with("--out out and --trace are the same file"),
            "{e}"
        );
        // Existing, through a hard link.
        std::fs::write(d.join("out/report.json"), "x").unwrap();
        std::fs::hard_link(d.join("out/report.json"), d.join("hard")).unwrap();
        let outs = vec![
            ("--out out".to_string(), t("out/report.json")),
            ("--trace".to_string(), t("hard")),
        ];
        assert!(distinct(&outs).is_err());
        // Different files, and /dev/null twice, are fine.
        let outs = vec![
            ("--out out".to_string(), t("out/report.json")),
            ("--trace".to_string(), t("out/trace.csv")),
            (
                "a".to_string(),
                Target::resolve(Path::new("/dev/null")).unwrap(),
            ),
            (
                "b".to_string(),
                Target::resolve(Path::new("/dev/null")).unwrap(),
            ),
        ];
        distinct(&outs).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn what_is_refused_and_what_is_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let e = Target::resolve(dir.path()).unwrap_err().to_string();
        assert!(e.ends_with(": is a directory; expected a file path"), "{e}");
        let e = Target::resolve(&dir.path().join("no/such/t.csv"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no/such/t.csv: cannot write here: "), "{e}");
        let null = Target::resolve(Path::new("/dev/null")).unwrap();
        assert_eq!(null.dest, Dest::Through);
        assert_eq!(Target::resolve(Path::new("-")).unwrap().dest, Dest::Stdout);
    }

    #[cfg(unix)]
    #[test]
    fn writing_to_a_full_device_names_it() {
        // A copy of /dev/full where one can be made, so that a regression
        // replaces the copy; without root the real one cannot be replaced.
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("full");
        let made = std::process::Command::new("mknod")
            .arg(&copy)
            .args(["c", "1", "7"])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        let full = if made && std::fs::OpenOptions::new().write(true).open(&copy).is_ok() {
            copy
        } else {
            PathBuf::from("/dev/full")
        };
        let e = write_atomic(&full, b"x").unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("{}: No space left on device (os error 28)", full.display())
        );
        assert_eq!(Target::resolve(&full).unwrap().dest, Dest::Through);
    }
}
