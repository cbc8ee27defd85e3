//! Reading what users point the plugins at (manifests, snapshots, allowlists, kubeconfigs):
//! regular files only — a FIFO, a device such as /dev/zero or a socket is refused, and opened
//! without blocking so a FIFO cannot hang the plugin — read with a size limit, and directories
//! walked once each, however their symlinks loop.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{Error, ErrorKind, Result};

/// The most a manifest, allowlist or kubeconfig may hold (real ones are kilobytes).
pub const TEXT_LIMIT: u64 = 32 << 20;

fn kind_of(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// Opens `path` for reading when it is a regular file (following symlinks), without blocking on
/// a FIFO.
pub fn open_regular(path: &Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| Error::io(format!("Cannot open {}", path.display()), &e))?;
    let meta = file.metadata().map_err(|e| Error::io(format!("Cannot read {}", path.display()), &e))?;
    if !meta.file_type().is_file() {
        return Err(Error::new(
            ErrorKind::Usage,
            format!("{} is {}", path.display(), kind_of(&meta)),
            "only regular files are read",
            "Give a file (or `-` to read standard input).",
        ));
    }
    Ok(file)
}

/// Reads at most `limit` bytes of `reader`; more is an error naming `what`.
pub fn read_bounded(reader: impl Read, limit: u64, what: &str) -> Result<Vec<u8>> {
    let mut data = Vec::new();
    reader.take(limit + 1).read_to_end(&mut data).map_err(|e| Error::io(format!("Cannot read {what}"), &e))?;
    if data.len() as u64 > limit {
        return Err(Error::new(
            ErrorKind::InvalidData,
            format!("{what} is larger than {}", crate::output::human_bytes(limit)),
            "inputs of this kind are kilobytes",
            "Check that this is the file you meant.",
        ));
    }
    Ok(data)
}

/// The text of a regular file, bounded by `limit`.
pub fn read_text(path: &Path, limit: u64) -> Result<String> {
    let file = open_regular(path)?;
    let bytes = read_bounded(file, limit, &path.display().to_string())?;
    String::from_utf8(bytes)
        .map_err(|_| Error::invalid_data(format!("Cannot read {}", path.display()), "it is not UTF-8 text"))
}

/// Standard input, bounded by `limit`.
pub fn read_stdin(limit: u64) -> Result<String> {
    let bytes = read_bounded(std::io::stdin().lock(), limit, "standard input")?;
    String::from_utf8(bytes).map_err(|_| Error::invalid_data("Cannot read standard input", "it is not UTF-8 text"))
}

/// The files under `root` (itself when it is a file) whose extension is one of `extensions`, in
/// sorted order. Each directory is entered once, by its device and inode, so symlinks that
/// loop back (`a/up -> ..`) end the walk instead of repeating it; entries that are neither
/// directories nor regular files are skipped.
pub fn walk_files(root: &Path, extensions: &[&str]) -> Result<Vec<PathBuf>> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(root).map_err(|e| Error::io(format!("Cannot read {}", root.display()), &e))?;
    if !meta.is_dir() {
        return Ok(vec![root.to_path_buf()]);
    }
    let mut seen: HashSet<(u64, u64)> = HashSet::new();
    let mut out = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(meta) = std::fs::metadata(&dir) else { continue };
        if !seen.insert((meta.dev(), meta.ino())) {
            continue;
        }
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(|e| Error::io(format!("Cannot list {}", dir.display()), &e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        let mut subdirs = Vec::new();
        for e in entries {
            let Ok(m) = std::fs::metadata(&e) else { continue };
            if m.is_dir() {
                subdirs.push(e);
            } else if m.is_file() && e.extension().and_then(|x| x.to_str()).is_some_and(|x| extensions.contains(&x)) {
                out.push(e);
            }
        }
        // Depth first, in name order.
        pending.extend(subdirs.into_iter().rev());
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifos_devices_and_directories_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe.yaml");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: creating a FIFO at a path of our temp dir.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = open_regular(&fifo).unwrap_err();
        assert!(e.what.ends_with("is a FIFO"), "{e:?}");
        assert_eq!(e.exit_code(), crate::exit::EXIT_USAGE);
        assert!(open_regular(Path::new("/dev/zero")).unwrap_err().what.ends_with("is a device"));
        assert!(open_regular(dir.path()).unwrap_err().what.ends_with("is a directory"));
    }

    #[test]
    fn reads_are_bounded() {
        let e = read_bounded(std::io::repeat(b'x'), 1024, "the input").unwrap_err();
        assert!(e.what.contains("larger than"), "{e:?}");
        assert_eq!(read_bounded(&b"abc"[..], 3, "x").unwrap(), b"abc");
    }

    #[test]
    fn looping_symlinks_are_walked_once() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::create_dir_all(a.join("b")).unwrap();
        std::fs::write(a.join("one.yaml"), "x: 1").unwrap();
        std::fs::write(a.join("b/two.yml"), "x: 2").unwrap();
        std::fs::write(a.join("b/skip.txt"), "").unwrap();
        std::os::unix::fs::symlink("..", a.join("b/up")).unwrap();
        std::os::unix::fs::symlink(".", a.join("self")).unwrap();
        let files = walk_files(&a, &["yaml", "yml", "json"]).unwrap();
        assert_eq!(files, vec![a.join("b/two.yml"), a.join("one.yaml")]);
    }
}
