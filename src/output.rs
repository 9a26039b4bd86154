//! Writing files so a reader never sees half of one.
//!
//! Each file is written to a temporary name in its target directory and
//! renamed into place once complete. Targets are checked before a run starts,
//! so a bad path fails in a millisecond rather than after an hour's run.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::InputError;

/// A file being written; it appears under its name only on `commit`.
pub struct PendingFile {
    tmp: PathBuf,
    target: PathBuf,
    w: Option<BufWriter<File>>,
}

impl PendingFile {
    pub fn create(target: &Path) -> Result<PendingFile, InputError> {
        let dir = match target.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if target.is_dir() {
            return Err(InputError::usage(format!(
                "{}: is a directory; expected a file path",
                target.display()
            )));
        }
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "output".into());
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let f = File::create(&tmp).map_err(|e| {
            InputError::usage(format!("{}: cannot write here: {e}", target.display()))
        })?;
        Ok(PendingFile {
            tmp,
            target: target.to_path_buf(),
            w: Some(BufWriter::with_capacity(1 << 16, f)),
        })
    }

    /// Flush and rename into place.
    pub fn commit(mut self) -> std::io::Result<()> {
        let mut w = self.w.take().expect("not yet committed");
        w.flush()?;
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&self.tmp, &self.target)
    }
}

impl Write for PendingFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.w.as_mut().expect("not yet committed").write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.w.as_mut().expect("not yet committed").flush()
    }
}

impl Drop for PendingFile {
    fn drop(&mut self) {
        if self.w.is_some() {
            self.w = None;
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Make sure `dir` exists (creating it) and is writable, before a run.
pub fn prepare_dir(dir: &Path) -> Result<(), InputError> {
    if dir.exists() && !dir.is_dir() {
        return Err(InputError::usage(format!(
            "--out {}: exists and is not a directory",
            dir.display()
        )));
    }
    std::fs::create_dir_all(dir).map_err(|e| {
        InputError::usage(format!(
            "--out {}: cannot create the directory: {e}",
            dir.display()
        ))
    })?;
    // Probe that it is writable.
    let probe = PendingFile::create(&dir.join(".portsim-write-check"))?;
    drop(probe);
    Ok(())
}

/// Write a whole file atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = PendingFile::create(path).map_err(|e| std::io::Error::other(e.to_string()))?;
    f.write_all(bytes)?;
    f.commit()
}
