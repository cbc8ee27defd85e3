//! Snapshots as they are stored: as etcd sent them, compressed with zstd, encrypted with age
//! (compressed first), each layer recognised by its first bytes (never the name). A stored one
//! is decoded into a private temp directory for the tools that need a database file (the walk,
//! etcdutl); the directory goes when the opened snapshot is dropped, also when a signal ends the
//! command.

use std::io::{BufRead, Read};
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
        // A regular file, checked without blocking: a FIFO or a device is refused, not read.
        let mut f = crate::input::open_regular(path)?;
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
    /// The database file (the stored one, or its decoded copy).
    pub path: PathBuf,
    /// How it was stored, outermost first (`[Age, Zstd]` for compressed, then encrypted);
    /// empty when stored as etcd sent it.
    pub layers: Vec<Encoding>,
    _temp: Option<tempfile::TempDir>,
}

impl Opened {
    /// `plain`, `zstd`, `age+zstd`.
    pub fn stored_as(&self) -> String {
        if self.layers.is_empty() {
            return "plain".into();
        }
        self.layers.iter().map(|l| l.name()).collect::<Vec<_>>().join("+")
    }

    pub fn is(&self, layer: Encoding) -> bool {
        self.layers.contains(&layer)
    }
}

/// Opens `path` as a database file: a zstd or age one (compressed, then encrypted, in that
/// order) is decoded into a temp directory (TMPDIR); an encrypted one needs `identity`, an age
/// identity file.
pub async fn open(path: &Path, identity: Option<&Path>) -> Result<Opened> {
    let outer = Encoding::of_file(path)?;
    if outer == Encoding::Plain {
        return Ok(Opened { path: path.to_path_buf(), layers: Vec::new(), _temp: None });
    }
    if outer == Encoding::Age && identity.is_none() {
        return Err(Error::usage(
            format!("{} is encrypted with age", path.display()),
            "Pass --identity FILE, an age identity file holding a key it was encrypted to.",
        ));
    }
    let temp = tempfile::Builder::new()
        .prefix("etcdsnap-")
        .tempdir()
        .map_err(|e| Error::io("Cannot create a temp directory for the decoded snapshot", &e))?;
    let plain = temp.path().join("snapshot.db");
    let (from, to, identity) = (path.to_path_buf(), plain.clone(), identity.map(Path::to_path_buf));
    // Off the async threads; the temp directory stays owned here, so a signal that drops this
    // future removes it even while the copy runs.
    let layers = tokio::task::spawn_blocking(move || decode(&from, &to, identity.as_deref()))
        .await
        .map_err(|_| Error::failed("Decoding the snapshot failed", "its thread ended abnormally", ""))??;
    Ok(Opened { path: plain, layers, _temp: Some(temp) })
}

fn load_identities(file: &Path) -> Result<Vec<Box<dyn age::Identity>>> {
    let read = |e: std::io::Error| {
        Error::new(
            ErrorKind::Config,
            format!("Cannot read the age identity file {}", file.display()),
            e.to_string(),
            "Pass the file age-keygen wrote (lines starting with AGE-SECRET-KEY-).",
        )
    };
    let parsed = age::IdentityFile::from_file(file.display().to_string()).map_err(read)?;
    let identities = parsed.into_identities().map_err(|e| read(std::io::Error::other(e.to_string())))?;
    if identities.is_empty() {
        return Err(read(std::io::Error::other("it holds no identity")));
    }
    Ok(identities)
}

/// Decodes `from` into `to` through its layers; returns them, outermost first.
fn decode(from: &Path, to: &Path, identity: Option<&Path>) -> Result<Vec<Encoding>> {
    let input = crate::input::open_regular(from)?;
    let mut input: Box<dyn std::io::BufRead> = Box::new(std::io::BufReader::new(input));
    let mut layers = Vec::new();
    loop {
        let head = input.fill_buf().map_err(|e| decode_error(from, &e))?;
        let layer = Encoding::of_header(head);
        input = match layer {
            Encoding::Plain => break,
            Encoding::Age if layers.is_empty() => {
                let identity = identity.ok_or_else(|| {
                    Error::usage(format!("{} is encrypted with age", from.display()), "Pass --identity FILE.")
                })?;
                let identities = load_identities(identity)?;
                let decryptor = age::Decryptor::new_buffered(input).map_err(|e| damaged(from, &e.to_string()))?;
                let reader =
                    decryptor.decrypt(identities.iter().map(std::convert::AsRef::as_ref)).map_err(|e| match e {
                        age::DecryptError::NoMatchingKeys => Error::new(
                            ErrorKind::Config,
                            format!("Cannot decrypt {}", from.display()),
                            "none of the given identities is one of its recipients",
                            "Pass the identity file of a key it was encrypted to (--identity).",
                        ),
                        other => damaged(from, &other.to_string()),
                    })?;
                Box::new(std::io::BufReader::new(reader))
            }
            Encoding::Zstd if !layers.contains(&Encoding::Zstd) => {
                let decoder = zstd::Decoder::with_buffer(input)
                    .map_err(|e| Error::io(format!("Cannot read {}", from.display()), &e))?;
                Box::new(std::io::BufReader::new(decoder))
            }
            // Encrypted inside compressed, or twice the same: not what a save writes.
            _ => return Err(damaged(from, "its layers are not compressed-then-encrypted")),
        };
        layers.push(layer);
    }
    let mut output = std::fs::File::create(to).map_err(|e| Error::io(format!("Cannot create {}", to.display()), &e))?;
    std::io::copy(&mut input, &mut output).map_err(|e| decode_error(from, &e))?;
    Ok(layers)
}

/// The system's errors (reading the file, filling TMPDIR) carry an errno; the decoders' (bad
/// checksum, cut frame, failed authentication) do not: those mean a damaged file.
fn decode_error(from: &Path, e: &std::io::Error) -> Error {
    if e.raw_os_error().is_none() {
        damaged(from, &e.to_string())
    } else {
        Error::io(format!("Cannot decode {}", from.display()), e)
    }
}

fn damaged(file: &Path, why: &str) -> Error {
    Error::new(
        ErrorKind::InvalidData,
        format!("{} is not a usable etcd snapshot", file.display()),
        format!("its stored form is damaged: {why}"),
        "Take a new snapshot (kubectl etcdsnap save); keep this file for analysis.",
    )
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
        let plain = crate::test_files::bytes("fuzz/corpus/snapshot/etcd-3.6.16-two-live-keys.db");
        let zst = dir.path().join("s.db.zst");
        let compressed = zstd::encode_all(&plain[..], 3).unwrap();
        std::fs::write(&zst, &compressed).unwrap();
        let opened = open(&zst, None).await.unwrap();
        assert_eq!(opened.layers, [Encoding::Zstd]);
        assert_eq!(std::fs::read(&opened.path).unwrap(), plain);
        let temp = opened.path.clone();
        drop(opened);
        assert!(!temp.exists(), "the decompressed copy goes with the opened snapshot");

        let mut damaged = compressed.clone();
        let mid = damaged.len() / 2;
        damaged[mid] ^= 0xff;
        damaged.truncate(damaged.len() - 3);
        std::fs::write(&zst, &damaged).unwrap();
        let e = open(&zst, None).await.err().expect("damaged");
        assert!(e.to_string().contains("is not a usable etcd snapshot"), "{e}");
    }
}
