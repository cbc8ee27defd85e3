//! Writing a snapshot from etcd's Maintenance.Snapshot stream (etcd `api/etcdserverpb/rpc.proto`,
//! `server/etcdserver/api/v3rpc/maintenance.go`): chunks are
//! written to `<file>.part` (0600) while their sha256 is computed; the stream's last message is
//! etcd's own sha256 of everything before it, checked before the file is fsynced and renamed.
//! A truncated stream, a digest mismatch, a write error, a timeout or Ctrl-C leave no file.
//! With zstd and/or age (compressed, then encrypted), the same bytes (digest included) go
//! through the encoders on their way to the file, and the stored bytes get a sha256 of their own; the revision is read from the pages as they
//! pass (`super::stream_index`), as the stored file is no longer a database.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::atomic_file::AtomicFile;
use crate::error::{Error, ErrorKind, Result, TransportCause, transport_error};

/// The result of a verified save.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Saved {
    pub path: PathBuf,
    /// Bytes of the database (without the trailer).
    pub db_size: u64,
    /// Bytes written, trailer included (what etcdctl writes too).
    pub file_size: u64,
    /// sha256 of the database, as etcd sent it and as computed here.
    pub sha256: String,
    /// The main revision of the data (its last key's), read from the pages as they passed.
    pub revision: Option<i64>,
    /// How the file is stored when not as etcd sent it, and the sha256 of the stored bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stored: Option<Stored>,
    #[serde(skip)]
    pub took: Duration,
}

/// A transformed file's encoding and the digest of its bytes.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stored {
    pub compression: Option<String>,
    pub encryption: Option<String>,
    pub sha256: String,
}

/// How the snapshot is compressed: not, or through zstd at a level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    #[default]
    None,
    Zstd(i32),
}

/// How the snapshot is written: compressed, then encrypted to age recipients (none: not).
#[derive(Clone, Default)]
pub struct Storing {
    pub compression: Compression,
    pub recipients: Vec<age::x25519::Recipient>,
}

impl Storing {
    pub fn is_plain(&self) -> bool {
        self.compression == Compression::None && self.recipients.is_empty()
    }
}

/// Counts and hashes the bytes on their way to the file.
struct HashingWriter<W: Write> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Where the snapshot goes: a file written atomically, or an object uploaded in parts.
pub enum Destination {
    File(AtomicFile),
    Object(super::remote::Upload),
}

impl Destination {
    /// The file's path or the object's URL, for messages.
    pub fn label(&self) -> String {
        match self {
            Destination::File(f) => f.final_path().display().to_string(),
            Destination::Object(u) => u.url().to_string(),
        }
    }
}

/// What the encoders write into: the file, or the buffer the upload takes its parts from.
enum Out {
    File(AtomicFile),
    Buffer(super::remote::SharedBuffer),
}

impl Write for Out {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Out::File(f) => f.write(buf),
            Out::Buffer(b) => b.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Out::File(f) => f.flush(),
            Out::Buffer(b) => b.flush(),
        }
    }
}

type Hashed = HashingWriter<Out>;

/// The encryption layer, over the hashed file.
enum Encrypting {
    Age(age::stream::StreamWriter<Hashed>),
    No(Hashed),
}

impl Write for Encrypting {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Encrypting::Age(w) => w.write(buf),
            Encrypting::No(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Encrypting::Age(w) => w.flush(),
            Encrypting::No(w) => w.flush(),
        }
    }
}

impl Encrypting {
    fn finish(self) -> std::io::Result<Hashed> {
        match self {
            Encrypting::Age(w) => w.finish(),
            Encrypting::No(w) => Ok(w),
        }
    }
}

/// libzstd worker threads: every core but the one receiving the stream, at least one, at most four.
fn compression_workers() -> u32 {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    u32::try_from(cores.saturating_sub(1).clamp(1, 4)).unwrap_or(1)
}

/// The file being written: directly, or compressed and/or encrypted (in that order).
enum Sink {
    Plain(Out),
    Zstd(zstd::Encoder<'static, Encrypting>),
    Raw(Encrypting),
}

impl Sink {
    fn new(file: Out, storing: &Storing) -> std::io::Result<Sink> {
        if storing.is_plain() {
            return Ok(Sink::Plain(file));
        }
        let hashed = HashingWriter { inner: file, hasher: Sha256::new(), written: 0 };
        let encrypting = if storing.recipients.is_empty() {
            Encrypting::No(hashed)
        } else {
            let recipients = storing.recipients.iter().map(|r| r as &dyn age::Recipient);
            let encryptor = age::Encryptor::with_recipients(recipients).map_err(std::io::Error::other)?;
            Encrypting::Age(encryptor.wrap_output(hashed)?)
        };
        Ok(match storing.compression {
            Compression::None => Sink::Raw(encrypting),
            Compression::Zstd(level) => {
                let mut encoder = zstd::Encoder::new(encrypting, level)?;
                // The frame's checksum: damage in storage fails the decompression itself.
                encoder.include_checksum(true)?;
                // Compression on worker threads of libzstd (ZSTDMT): the receiving thread only
                // hands over the bytes, so the stream from etcd is not slowed by the encoder.
                encoder.multithread(compression_workers())?;
                Sink::Zstd(encoder)
            }
        })
    }

    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::Plain(f) => f.write_all(bytes),
            Sink::Zstd(z) => z.write_all(bytes),
            Sink::Raw(e) => e.write_all(bytes),
        }
    }

    /// Ends the encoding: the file to commit, its size and the stored bytes' digest if encoded.
    fn finish(self, plain_size: u64) -> std::io::Result<(Out, u64, Option<Stored>)> {
        let (encrypting, compression) = match self {
            Sink::Plain(mut f) => {
                f.flush()?;
                return Ok((f, plain_size, None));
            }
            Sink::Zstd(z) => (z.finish()?, Some("zstd".to_string())),
            Sink::Raw(e) => (e, None),
        };
        let encryption = matches!(encrypting, Encrypting::Age(_)).then(|| "age".to_string());
        let mut h = encrypting.finish()?;
        h.flush()?;
        let stored = Stored { compression, encryption, sha256: hex::encode(h.hasher.finalize()) };
        Ok((h.inner, h.written, Some(stored)))
    }
}

/// How a stream of chunks ended.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Complete,
    Truncated { received: u64, expected: Option<u64> },
    Mismatch { sent: String, computed: String },
    BadDigest(usize),
}

/// Tracks the stream: data chunks count `remaining_bytes` down to 0, then one message carries
/// the digest.
#[derive(Default)]
struct StreamState {
    hasher: Sha256,
    received: u64,
    expected: Option<u64>,
    data_done: bool,
    digest: Option<Vec<u8>>,
}

impl StreamState {
    /// Takes one message; returns the bytes to write.
    fn feed<'a>(&mut self, remaining: u64, blob: &'a [u8]) -> std::result::Result<&'a [u8], Verdict> {
        if self.digest.is_some() {
            // Nothing may follow the digest.
            return Err(Verdict::BadDigest(blob.len()));
        }
        if self.data_done {
            self.digest = Some(blob.to_vec());
            return Ok(blob);
        }
        if self.expected.is_none() {
            self.expected = Some(remaining + blob.len() as u64);
        }
        self.hasher.update(blob);
        self.received += blob.len() as u64;
        if remaining == 0 {
            self.data_done = true;
        }
        Ok(blob)
    }

    fn finish(self) -> (Verdict, String) {
        let computed = hex::encode(self.hasher.finalize());
        let verdict = match (&self.digest, self.data_done) {
            (Some(d), true) if d.len() != 32 => Verdict::BadDigest(d.len()),
            (Some(d), true) => {
                let sent = hex::encode(d);
                if sent == computed {
                    Verdict::Complete
                } else {
                    Verdict::Mismatch { sent, computed: computed.clone() }
                }
            }
            _ => Verdict::Truncated { received: self.received, expected: self.expected },
        };
        (verdict, computed)
    }
}

fn verdict_error(endpoint: &str, v: Verdict) -> Error {
    match v {
        Verdict::Complete => Error::failed("internal", "complete stream reported as an error", ""),
        Verdict::Truncated { received, expected } => Error::new(
            ErrorKind::Failed,
            format!("The snapshot stream from {endpoint} ended early; no file was written"),
            match expected {
                Some(e) => format!(
                    "received {received} of {e} bytes and no sha256 digest (the member stopped or the connection dropped)"
                ),
                None => "the stream ended before any data".to_string(),
            },
            "Check the member (kubectl etcdsnap members) and save again, from another member if needed (--member).",
        ),
        Verdict::Mismatch { sent, computed } => Error::new(
            ErrorKind::InvalidData,
            format!("The snapshot from {endpoint} failed verification; no file was written"),
            format!("etcd's sha256 {sent} does not match the {computed} of the bytes received (corrupted in transit)"),
            "Save again; if it repeats, save from another member (--member) or with --via direct on a control-plane node.",
        ),
        Verdict::BadDigest(n) => Error::new(
            ErrorKind::InvalidData,
            format!("The snapshot stream from {endpoint} is malformed; no file was written"),
            format!("the message after the data held {n} bytes instead of a 32-byte sha256"),
            "Save again; report it if it repeats.",
        ),
    }
}

/// Streams a snapshot from `client` into `destination`, verifying it, within `timeout`.
/// `progress(received, total)` is called after every chunk. The file is renamed into place, or
/// the upload completed, only after etcd's digest matched.
pub async fn save(
    client: &mut etcd_client::Client,
    endpoint: &str,
    destination: Destination,
    timeout: Duration,
    storing: &Storing,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<Saved> {
    let started = Instant::now();
    let mut state = StreamState::default();
    let mut index = super::stream_index::StreamIndex::default();
    let label = destination.label();
    let io = |e: std::io::Error| {
        if matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EFBIG | libc::EDQUOT)) {
            Error::new(
                ErrorKind::Io,
                format!("No room to write {label} (disk full or file-size limit); the partial snapshot was removed"),
                e.to_string(),
                "Free space, or save to another directory (--dir).",
            )
        } else {
            Error::io(format!("Cannot write {label}"), &e)
        }
    };
    let (out, mut upload) = match destination {
        Destination::File(f) => (Out::File(f), None),
        Destination::Object(u) => (Out::Buffer(u.buffer()), Some(u)),
    };
    let mut file = Sink::new(out, storing).map_err(io)?;
    let run = async {
        let mut stream = client.snapshot().await.map_err(|e| super::direct::etcd_error(endpoint, &e, Some(timeout)))?;
        loop {
            let message = stream.message().await.map_err(|e| {
                // Say how far it got: the cause alone ("connection reset") hides that data was lost.
                let mut err = super::direct::etcd_error(endpoint, &e, Some(timeout));
                err.what = format!(
                    "The snapshot stream from {endpoint} broke after {} of {} bytes; no file was written",
                    state.received,
                    state.expected.map(|e| e.to_string()).unwrap_or_else(|| "?".into())
                );
                err
            })?;
            let Some(m) = message else { break };
            let bytes = match state.feed(m.remaining_bytes(), m.blob()) {
                Ok(b) => b,
                Err(v) => return Err(verdict_error(endpoint, v)),
            };
            if state.digest.is_none() {
                index.feed(bytes);
            }
            file.write_all(bytes).map_err(io)?;
            if let Some(u) = upload.as_mut() {
                u.send().await?;
            }
            progress(state.received, state.expected);
        }
        Ok::<_, Error>(())
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(transport_error("etcd", endpoint, TransportCause::Timeout, Some(timeout)).with_what(format!(
                "The snapshot from {endpoint} did not finish within {}; no file was written",
                crate::duration::human_duration(timeout)
            )));
        }
    }
    let received = state.received;
    let (verdict, computed) = state.finish();
    if verdict != Verdict::Complete {
        return Err(verdict_error(endpoint, verdict));
    }
    let (out, file_size, stored) = file.finish(received + 32).map_err(io)?;
    let path = match (out, upload) {
        (Out::File(f), _) => f.commit()?,
        (Out::Buffer(_), Some(u)) => {
            let url = u.url().to_string();
            tokio::time::timeout(timeout, u.finish()).await.map_err(|_| {
                Error::new(
                    ErrorKind::Timeout,
                    format!("The upload to {url} did not complete within {}", crate::duration::human_duration(timeout)),
                    "the store is slow or unreachable; the upload was aborted",
                    "Retry, or raise --timeout.",
                )
            })??;
            PathBuf::from(url)
        }
        (Out::Buffer(_), None) => return Err(Error::failed("internal", "an upload buffer without its upload", "")),
    };
    let revision = index.revision(received);
    Ok(Saved { path, db_size: received, file_size, sha256: computed, revision, stored, took: started.elapsed() })
}

/// Free bytes on the filesystem holding `dir`.
pub fn free_space(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs is plain data, for which all-zero bytes are a valid value.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid NUL-terminated path and out-pointer.
    let r = unsafe { libc::statvfs(c.as_ptr(), &mut s) };
    (r == 0).then(|| s.f_bavail as u64 * s.f_frsize as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(chunks: &[&[u8]], digest: Option<Vec<u8>>) -> (Verdict, Vec<u8>) {
        let total: usize = chunks.iter().map(|c| c.len()).sum();
        let mut sent = 0;
        let mut st = StreamState::default();
        let mut out = Vec::new();
        for c in chunks {
            sent += c.len();
            match st.feed((total - sent) as u64, c) {
                Ok(b) => out.extend_from_slice(b),
                Err(v) => return (v, out),
            }
        }
        if let Some(d) = digest {
            match st.feed(0, &d) {
                Ok(b) => out.extend_from_slice(b),
                Err(v) => return (v, out),
            }
        }
        (st.finish().0, out)
    }

    #[test]
    fn complete_truncated_and_corrupt_streams() {
        let a = vec![1u8; 100];
        let b = vec![2u8; 50];
        let digest = Sha256::digest([a.clone(), b.clone()].concat()).to_vec();
        let (v, out) = stream(&[&a, &b], Some(digest.clone()));
        assert_eq!(v, Verdict::Complete);
        assert_eq!(out.len(), 182, "data and trailer, like etcdctl writes");
        // Cut mid-way: the second chunk never came.
        let mut st = StreamState::default();
        st.feed(50, &a).unwrap();
        assert_eq!(st.finish().0, Verdict::Truncated { received: 100, expected: Some(150) });
        // All data, no digest.
        assert!(matches!(stream(&[&a, &b], None).0, Verdict::Truncated { received: 150, .. }));
        // A byte flipped in transit.
        let mut bad = b.clone();
        bad[7] ^= 0xff;
        assert!(matches!(stream(&[&a, &bad], Some(digest.clone())).0, Verdict::Mismatch { .. }));
        // A digest of the wrong size.
        assert_eq!(stream(&[&a, &b], Some(vec![0; 5])).0, Verdict::BadDigest(5));
        let e = verdict_error("https://127.0.0.1:2379", Verdict::Truncated { received: 100, expected: Some(150) });
        assert!(e.to_string().contains("received 100 of 150 bytes"), "{e}");
    }
}
