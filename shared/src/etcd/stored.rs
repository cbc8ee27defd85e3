//! Snapshots as they are stored: as etcd sent them, or compressed with zstd, recognised by their
//! first bytes (never their name). A compressed one is decompressed into a private temp
//! directory for the tools that need a database file (the walk, etcdutl); the directory goes
//! when the opened snapshot is dropped, also when a signal ends the command.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{Error, ErrorKind, Result};

/// zstd frame magic (RFC 8878, 3.1.1).
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];
/// The first line of an age file (age-encryption.org/v1 format).
const AGE_HEADER: &[u8] = b"age-encryption.org/v1\n";

/// How a snapshot file is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Plain,
    Zstd,
    Age,
}

impl Encoding {
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Plain => "plain",
            Encoding::Zstd => "zstd",
            Encoding::Age => "age",
        }
    }

    /// The encoding told by a file's first bytes.
    pub fn of_header(head: &[u8]) -> Encoding {
        if head.starts_with(&ZSTD_MAGIC) {
            Encoding::Zstd
        } else if head.starts_with(AGE_HEADER) {
            Encoding::Age
        } else {
            Encoding::Plain
        }
    }

    pub fn of_file(path: &Path) -> Result<Encoding> {
        let mut head = [0u8; 32];
        let mut f = std::fs::File::open(path).map_err(|e| Error::io(format!("Cannot open {}", path.display()), &e))?;
        let mut n = 0;
        while n < head.len() {
            match f.read(&mut head[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io(format!("Cannot read {}", path.display()), &e)),
            }
        }
        Ok(Encoding::of_header(&head[..n]))
    }
}

/// A snapshot ready to be read as a database file.
pub struct Opened {
    /// The database file (the stored one, or its decompressed copy).
    pub path: PathBuf,
    pub encoding: Encoding,
    _temp: Option<tempfile::TempDir>,
}

/// Opens `path` as a database file, decompressing a zstd one into a temp directory (TMPDIR).
pub async fn open(path: &Path) -> Result<Opened> {
    match Encoding::of_file(path)? {
        Encoding::Plain => Ok(Opened { path: path.to_path_buf(), encoding: Encoding::Plain, _temp: None }),
        Encoding::Age => Err(Error::new(
            ErrorKind::InvalidData,
            format!("{} is encrypted with age", path.display()),
            "its first line is the age header; etcdsnap reads plain and zstd snapshots",
            format!("Decrypt it with your identity first: age --decrypt -i KEY_FILE -o snapshot.db {}", path.display()),
        )),
        Encoding::Zstd => {
            let temp = tempfile::Builder::new()
                .prefix("etcdsnap-")
                .tempdir()
                .map_err(|e| Error::io("Cannot create a temp directory for the decompressed snapshot", &e))?;
            let plain = temp.path().join("snapshot.db");
            let (from, to) = (path.to_path_buf(), plain.clone());
            // Off the async threads; the temp directory stays owned here, so a signal that drops
            // this future removes it even while the copy runs.
            tokio::task::spawn_blocking(move || decompress(&from, &to))
                .await
                .map_err(|_| Error::failed("Decompressing the snapshot failed", "its thread ended abnormally", ""))??;
            Ok(Opened { path: plain, encoding: Encoding::Zstd, _temp: Some(temp) })
        }
    }
}

fn decompress(from: &Path, to: &Path) -> Result<()> {
    let input = std::fs::File::open(from).map_err(|e| Error::io(format!("Cannot open {}", from.display()), &e))?;
    let mut output = std::fs::File::create(to).map_err(|e| Error::io(format!("Cannot create {}", to.display()), &e))?;
    let mut decoder =
        zstd::Decoder::new(input).map_err(|e| Error::io(format!("Cannot read {}", from.display()), &e))?;
    std::io::copy(&mut decoder, &mut output).map_err(|e| {
        // The system's errors (reading the file, filling TMPDIR) carry an errno; the decoder's
        // (bad checksum, cut frame) do not.
        if e.raw_os_error().is_none() {
            Error::new(
                ErrorKind::InvalidData,
                format!("{} is not a usable etcd snapshot", from.display()),
                format!("its zstd stream is damaged: {e}"),
                "Take a new snapshot (kubectl etcdsnap save); keep this file for analysis.",
            )
        } else {
            Error::io(format!("Cannot decompress {} into {}", from.display(), to.display()), &e)
        }
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_are_told_by_their_first_bytes() {
        let zst = zstd::encode_all(&b"etcd"[..], 3).unwrap();
        assert_eq!(Encoding::of_header(&zst), Encoding::Zstd);
        assert_eq!(Encoding::of_header(b"age-encryption.org/v1\n-> X25519 abc\n"), Encoding::Age);
        // A bbolt file starts with page 0's header; a short or empty file is plain (and fails later).
        assert_eq!(Encoding::of_header(&[0u8; 32]), Encoding::Plain);
        assert_eq!(Encoding::of_header(b""), Encoding::Plain);
    }

    #[tokio::test]
    async fn a_compressed_snapshot_opens_as_its_database_and_a_damaged_one_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let plain =
            std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus/snapshot/etcd-3.6.16-two-live-keys.db"))
                .unwrap();
        let zst = dir.path().join("s.db.zst");
        let compressed = zstd::encode_all(&plain[..], 3).unwrap();
        std::fs::write(&zst, &compressed).unwrap();
        let opened = open(&zst).await.unwrap();
        assert_eq!(opened.encoding, Encoding::Zstd);
        assert_eq!(std::fs::read(&opened.path).unwrap(), plain);
        let temp = opened.path.clone();
        drop(opened);
        assert!(!temp.exists(), "the decompressed copy goes with the opened snapshot");

        let mut damaged = compressed.clone();
        let mid = damaged.len() / 2;
        damaged[mid] ^= 0xff;
        damaged.truncate(damaged.len() - 3);
        std::fs::write(&zst, &damaged).unwrap();
        let e = open(&zst).await.err().expect("damaged");
        assert!(e.to_string().contains("is not a usable etcd snapshot"), "{e}");
    }
}
