//! What an output path names, decided before anything is written: a new or
//! regular file (replaced through a temporary file, links followed), a FIFO
//! or character device (written through), standard output (`-`), or
//! something refused (a directory, a block device, a socket); and which
//! file it is, so two outputs of one command are never the same file.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use super::{OutputError, Problem};
use crate::error::InputError;

/// How a path is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dest {
    /// Standard output (`-`).
    Stdout,
    /// Opened and written as it is: a FIFO or a character device.
    Through,
    /// A new or regular file, replaced by renaming a temporary file over this
    /// path (the end of any chain of symbolic links).
    Replace(PathBuf),
}

/// Which file a path is, to tell when two outputs would be the same file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// An existing file: device and inode.
    Existing(u64, u64),
    /// A file not yet there: its canonical directory and name.
    New(PathBuf),
    /// Standard output when it is not a file that can be told apart.
    Stdout,
}

/// A checked output path.
#[derive(Debug, Clone)]
pub struct Target {
    /// As given on the command line, for messages.
    pub path: PathBuf,
    pub dest: Dest,
    pub identity: Identity,
    /// A character device: writing to it twice overwrites nothing.
    pub device: bool,
}

/// Follow symbolic links one by one, to the path that is not a link (it may
/// not exist). Links under `/proc` that name no path (`pipe:[123]`) are
/// never reached: such targets are not regular files, so they are written
/// through by the kernel's own resolution instead.
fn follow_links(path: &Path) -> Result<PathBuf, OutputError> {
    let mut p = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let to = std::fs::read_link(&p).map_err(|e| OutputError::io(path, e))?;
                p = match p.parent() {
                    Some(dir) if to.is_relative() => dir.join(to),
                    _ => to,
                };
            }
            _ => return Ok(p),
        }
    }
    Err(OutputError::refused(
        path,
        "too many levels of symbolic links",
    ))
}

impl Target {
    /// Decide how `path` is written; `-` is standard output.
    pub fn resolve(path: &Path) -> Result<Target, OutputError> {
        if path.as_os_str() == "-" {
            return Ok(Target {
                path: path.to_path_buf(),
                dest: Dest::Stdout,
                identity: stdout_identity().unwrap_or(Identity::Stdout),
                device: false,
            });
        }
        let given = path.to_path_buf();
        match std::fs::metadata(path) {
            Ok(m) => {
                let ft = m.file_type();
                let identity = identity_of(&m);
                if ft.is_dir() {
                    return Err(OutputError::refused(
                        path,
                        "is a directory; expected a file path",
                    ));
                }
                if ft.is_file() {
                    let real = follow_links(path)?;
                    // The end of the chain must be this very file (a link
                    // under /proc to a deleted file is not).
                    let same = std::fs::symlink_metadata(&real)
                        .map(|r| identity_of(&r) == identity)
                        .unwrap_or(false);
                    if !same {
                        return Err(OutputError::refused(
                            path,
                            "cannot tell which file this link names; give the file's own path",
                        ));
                    }
                    return Ok(Target {
                        path: given,
                        dest: Dest::Replace(real),
                        identity,
                        device: false,
                    });
                }
                if let Some(what) = special_kind(&ft) {
                    return match what {
                        Special::Fifo => Ok(Target {
                            path: given,
                            dest: Dest::Through,
                            identity,
                            device: false,
                        }),
                        Special::CharDevice => Ok(Target {
                            path: given,
                            dest: Dest::Through,
                            identity,
                            device: true,
                        }),
                        Special::BlockDevice => Err(OutputError::refused(
                            path,
                            "is a block device; portsim writes regular files, FIFOs and character devices only",
                        )),
                        Special::Socket => Err(OutputError::refused(
                            path,
                            "is a socket; portsim writes regular files, FIFOs and character devices only",
                        )),
                    };
                }
                Err(OutputError::refused(
                    path,
                    "is not a regular file, FIFO or character device",
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // Not there, or a link to something not there: the file at the
                // end of the links is created.
                let real = follow_links(path)?;
                let name = match real.file_name() {
                    Some(n) => n.to_os_string(),
                    None => {
                        return Err(OutputError::refused(path, "expected a file path"));
                    }
                };
                let dir = parent_dir(&real);
                let canon = std::fs::canonicalize(&dir)
                    .map_err(|e| OutputError::new(path, Problem::Place(e)))?;
                if !canon.is_dir() {
                    return Err(OutputError::new(
                        path,
                        Problem::Place(io::Error::other(format!(
                            "{} is not a directory",
                            dir.display()
                        ))),
                    ));
                }
                Ok(Target {
                    path: given,
                    dest: Dest::Replace(real),
                    identity: Identity::New(canon.join(name)),
                    device: false,
                })
            }
            Err(e) => Err(OutputError::new(path, Problem::Place(e))),
        }
    }
}

/// The directory a file path is in (`.` for a bare name).
pub(super) fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

enum Special {
    Fifo,
    CharDevice,
    BlockDevice,
    Socket,
}

#[cfg(unix)]
fn special_kind(ft: &std::fs::FileType) -> Option<Special> {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_fifo() {
        Some(Special::Fifo)
    } else if ft.is_char_device() {
        Some(Special::CharDevice)
    } else if ft.is_block_device() {
        Some(Special::BlockDevice)
    } else if ft.is_socket() {
        Some(Special::Socket)
    } else {
        None
    }
}

#[cfg(not(unix))]
fn special_kind(_: &std::fs::FileType) -> Option<Special> {
    None
}

#[cfg(unix)]
fn identity_of(m: &std::fs::Metadata) -> Identity {
    use std::os::unix::fs::MetadataExt;
    Identity::Existing(m.dev(), m.ino())
}

#[cfg(not(unix))]
fn identity_of(m: &std::fs::Metadata) -> Identity {
    // Without inode numbers, size and time tell few files apart; the
    // path-based check on new files still applies.
    let t = m
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as u64);
    Identity::Existing(m.len(), t)
}

/// Standard output as a file, when it is a regular file or a pipe that
/// another output could also name (`> out.csv`, `/dev/stdout`).
#[cfg(unix)]
pub fn stdout_identity() -> Option<Identity> {
    use std::os::fd::AsFd;
    use std::os::unix::fs::FileTypeExt;
    let fd = io::stdout().as_fd().try_clone_to_owned().ok()?;
    let m = File::from(fd).metadata().ok()?;
    (m.is_file() || m.file_type().is_fifo()).then(|| identity_of(&m))
}

#[cfg(not(unix))]
pub fn stdout_identity() -> Option<Identity> {
    None
}

/// Refuse two outputs of one command that are the same file (through links,
/// `..` or hard links): one would overwrite the other. Each output is
/// `(flag, target)`; the message names both flags. Character devices
/// (`/dev/null`) may be named twice.
pub fn distinct(outputs: &[(String, Target)]) -> Result<(), InputError> {
    for (i, (flag_a, a)) in outputs.iter().enumerate() {
        for (flag_b, b) in &outputs[..i] {
            if a.identity == b.identity && !(a.device && b.device) {
                return Err(InputError::usage(format!(
                    "{flag_b} and {flag_a} are the same file ({}); give each output its own path",
                    a.path.display()
                )));
            }
        }
    }
    Ok(())
}
