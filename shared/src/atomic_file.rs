//! Files that appear complete or not at all: written to `<name>.part` (mode 0600), fsynced,
//! renamed over the final name, the directory fsynced. Dropped before `commit` (an error, a
//! panic, Ctrl-C dropping the future), the partial file is removed.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A file being written.
#[derive(Debug)]
pub struct AtomicFile {
    final_path: PathBuf,
    part_path: PathBuf,
    file: Option<File>,
}

impl AtomicFile {
    /// Starts `<path>.part`. Refuses to replace an existing file unless `overwrite`.
    pub fn create(path: &Path, overwrite: bool) -> Result<AtomicFile> {
        if path.exists() && !overwrite {
            return Err(Error::new(
                crate::error::ErrorKind::Io,
                format!("{} already exists", path.display()),
                "refusing to overwrite it",
                "Choose another name, or pass --force to replace it.",
            ));
        }
        let mut part = path.as_os_str().to_owned();
        part.push(".part");
        let part_path = PathBuf::from(part);
        let mut options = OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let file =
            options.open(&part_path).map_err(|e| Error::io(format!("Cannot create {}", part_path.display()), &e))?;
        Ok(AtomicFile { final_path: path.to_path_buf(), part_path, file: Some(file) })
    }

    pub fn part_path(&self) -> &Path {
        &self.part_path
    }

    pub fn final_path(&self) -> &Path {
        &self.final_path
    }

    /// The open file, for writers that need `&mut File`.
    pub fn file(&mut self) -> &mut File {
        self.file.as_mut().expect("open until commit")
    }

    /// fsync, rename over the final name, fsync the directory.
    pub fn commit(mut self) -> Result<PathBuf> {
        let file = self.file.take().expect("open until commit");
        file.sync_all().map_err(|e| Error::io(format!("Cannot flush {} to disk", self.part_path.display()), &e))?;
        drop(file);
        std::fs::rename(&self.part_path, &self.final_path).map_err(|e| {
            Error::io(format!("Cannot rename {} to {}", self.part_path.display(), self.final_path.display()), &e)
        })?;
        if let Some(dir) = self.final_path.parent() {
            let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(self.final_path.clone())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file().write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file().flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.part_path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appears_only_when_committed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.db");
        let mut f = AtomicFile::create(&path, false).unwrap();
        f.write_all(b"data").unwrap();
        assert!(!path.exists());
        assert!(f.part_path().exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(f.part_path()).unwrap().permissions().mode() & 0o777, 0o600);
        }
        f.commit().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"data");
        assert!(!dir.path().join("out.db.part").exists());
        assert!(AtomicFile::create(&path, false).is_err(), "no overwrite without force");
        assert!(AtomicFile::create(&path, true).is_ok());
    }

    #[test]
    fn dropped_before_commit_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x");
        {
            let mut f = AtomicFile::create(&path, false).unwrap();
            f.write_all(b"half").unwrap();
        }
        assert!(!path.exists());
        assert!(!dir.path().join("x.part").exists());
    }
}
