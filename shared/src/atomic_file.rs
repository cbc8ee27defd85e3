//! Files that appear complete or not at all: written to `<name>.<random>.part`, created by this
//! process alone (`O_CREAT|O_EXCL|O_NOFOLLOW`: a `.part` or a symlink planted by someone else is
//! never opened, followed or reused) with mode 0600 whatever the umask, fsynced, renamed over
//! the final name, the directory fsynced. Dropped before `commit` (an error, a panic, a signal
//! dropping the future), the partial file is removed.

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
    /// Starts `<path>.<random>.part`, creating missing directories (0700). Refuses to replace an
    /// existing file unless `overwrite`.
    pub fn create(path: &Path, overwrite: bool) -> Result<AtomicFile> {
        if path.exists() && !overwrite {
            return Err(Error::new(
                crate::error::ErrorKind::Io,
                format!("{} already exists", path.display()),
                "refusing to overwrite it",
                "Choose another name, or pass --force to replace it.",
            ));
        }
        // A directory the suite creates holds snapshots, backups or bundles: 0700.
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            private_dir(dir)?;
        }
        let (file, part_path) = create_private(path, "part")?;
        Ok(AtomicFile { final_path: path.to_path_buf(), part_path, file: Some(file) })
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

/// Creates `<path>.<random>.<suffix>` exclusively, without following links, mode 0600.
pub fn create_private(path: &Path, suffix: &str) -> Result<(File, PathBuf)> {
    for _ in 0..8 {
        let mut name = path.as_os_str().to_owned();
        name.push(format!(".{:08x}.{suffix}", rand::random::<u32>()));
        let candidate = PathBuf::from(name);
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
        }
        match options.open(&candidate) {
            Ok(file) => {
                // The umask may have taken bits off; never more than 0600 either way.
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    file.set_permissions(std::fs::Permissions::from_mode(0o600))
                        .map_err(|e| Error::io(format!("Cannot restrict {}", candidate.display()), &e))?;
                }
                return Ok((file, candidate));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io(format!("Cannot create {}", candidate.display()), &e)),
        }
    }
    let e = std::io::Error::from(std::io::ErrorKind::AlreadyExists);
    Err(Error::io(format!("Cannot create a temporary file beside {} (8 random names taken)", path.display()), &e))
}

/// Creates `dir` (and its missing parents) with mode 0700 whatever the umask; an existing
/// directory is left as it is.
pub fn private_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(d) = at.filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        missing.push(d.to_path_buf());
        at = d.parent();
    }
    for d in missing.iter().rev() {
        match std::fs::create_dir(d) {
            Ok(()) => {
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700))
                        .map_err(|e| Error::io(format!("Cannot restrict {}", d.display()), &e))?;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io(format!("Cannot create {}", d.display()), &e)),
        }
    }
    Ok(())
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
        assert!(f.part_path.exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&f.part_path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        f.commit().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"data");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "only the final file");
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
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[cfg(unix)]
    #[test]
    fn a_planted_part_is_never_followed_or_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        // Another user plants the name the writer used to open: a symlink to a file of theirs
        // choosing, then a world-writable file.
        let path = dir.path().join("out.db");
        std::os::unix::fs::symlink(&victim, dir.path().join("out.db.part")).unwrap();
        let mut f = AtomicFile::create(&path, false).unwrap();
        f.write_all(b"snapshot").unwrap();
        f.commit().unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious", "the link's target is untouched");
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_file(), "the result is a file of ours, not the planted link");
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let other = dir.path().join("b.db");
        std::fs::write(dir.path().join("b.db.part"), b"theirs").unwrap();
        std::fs::set_permissions(dir.path().join("b.db.part"), std::fs::Permissions::from_mode(0o666)).unwrap();
        let mut f = AtomicFile::create(&other, false).unwrap();
        f.write_all(b"ours").unwrap();
        f.commit().unwrap();
        assert_eq!(std::fs::metadata(&other).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read(dir.path().join("b.db.part")).unwrap(), b"theirs", "not reused");
    }

    #[cfg(unix)]
    #[test]
    fn files_and_directories_are_private_whatever_the_umask() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        // SAFETY: umask is process-wide; this test restores it and creates only its own files.
        let old = unsafe { libc::umask(0o000) };
        let nested = dir.path().join("a/b/c");
        private_dir(&nested).unwrap();
        let mut f = AtomicFile::create(&nested.join("f"), false).unwrap();
        f.write_all(b"x").unwrap();
        let path = f.commit().unwrap();
        // SAFETY: restores the mask saved above.
        unsafe { libc::umask(old) };
        for d in ["a", "a/b", "a/b/c"] {
            assert_eq!(std::fs::metadata(dir.path().join(d)).unwrap().permissions().mode() & 0o777, 0o700, "{d}");
        }
        assert_eq!(std::fs::metadata(path).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
