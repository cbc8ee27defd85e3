//! Snapshots in object storage: `ls` and `prune` of a prefix, and a snapshot object fetched for
//! `status`, `drill`, `restore` and `restore-plan` — downloaded into a private temp directory and
//! checked against its record before anything reads it.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use cpkit::error::{Error, ErrorKind, Result};
use cpkit::etcd::remote::Remote;
use futures::StreamExt;

use crate::files::{Entry, is_snapshot_name, sort_newest_first};
use crate::save::Sidecar;

/// Records are small; anything larger is not one.
const RECORD_LIMIT: usize = 1 << 20;

async fn record(remote: &Remote, name: &str) -> Result<Option<Sidecar>> {
    let Some(bytes) = remote.read_small(&format!("{name}.json"), RECORD_LIMIT).await? else { return Ok(None) };
    Ok(serde_json::from_slice(&bytes).ok())
}

/// The snapshots under a prefix, newest first (by the records' save time, else the object's).
pub async fn list(remote: &Remote) -> Result<Vec<Entry>> {
    let objects = remote.list().await?;
    let snapshots: Vec<_> = objects.into_iter().filter(|o| is_snapshot_name(&o.name)).collect();
    // The records are read 16 at a time: a bucket may hold thousands of snapshots.
    let records: Vec<_> =
        futures::stream::iter(snapshots.iter().map(|o| record(remote, &o.name))).buffered(16).collect().await;
    let mut out = Vec::new();
    for (object, sidecar) in snapshots.into_iter().zip(records) {
        let sidecar = sidecar?;
        // Retention goes by the save time the record holds, else by the object's.
        let saved = sidecar
            .as_ref()
            .and_then(|s| s.saved_at.parse::<jiff::Timestamp>().ok())
            .map(SystemTime::from)
            .unwrap_or(object.modified);
        out.push(Entry::new(PathBuf::from(remote.url_of(&object.name)), object.size, saved, sidecar.as_ref()));
    }
    sort_newest_first(&mut out);
    Ok(out)
}

/// What `prune` of a prefix deletes: retention applied per cluster (the records' clusterId),
/// by the records' save times; objects without a record are not this tool's and are kept
/// (a shared bucket may hold another cluster's or another tool's files — k3s-io/k3s#10292).
pub fn prune_plan(entries: &[Entry], keep: Option<usize>, older_than: Option<Duration>, now: SystemTime) -> Vec<Entry> {
    let mut doomed = Vec::new();
    for cluster in clusters(entries) {
        let group: Vec<Entry> = entries.iter().filter(|e| e.cluster.as_deref() == Some(cluster)).cloned().collect();
        doomed.extend(crate::files::prune_plan(&group, keep, older_than, now));
    }
    sort_newest_first(&mut doomed);
    doomed
}

/// The clusters the records name, each once.
pub fn clusters(entries: &[Entry]) -> Vec<&str> {
    let mut clusters: Vec<&str> = entries.iter().filter_map(|e| e.cluster.as_deref()).collect();
    clusters.sort();
    clusters.dedup();
    clusters
}

/// Deletes a snapshot object, then its record (a record without its object lists as nothing).
pub async fn delete(remote: &Remote, url: &str) -> Result<()> {
    let name = url.strip_prefix(remote.base()).unwrap_or(url);
    remote.delete(name).await?;
    remote.delete(&format!("{name}.json")).await
}

/// A snapshot object downloaded and checked; the temp directory goes when this is dropped.
pub struct Fetched {
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

/// Downloads the snapshot object at `url` (with its record) into a private temp directory and
/// checks it against the record: size, and the sha256 of the stored bytes (or of the data etcd
/// sent, for a plain one). Without a record it is used as it is (`status` still checks etcd's
/// digest in the file).
pub async fn fetch(url: &str, timeout: Duration) -> Result<Fetched> {
    let (remote, name) = Remote::open_object(url, timeout)?;
    let sidecar = record(&remote, &name).await?;
    let dir = tempfile::Builder::new()
        .prefix("etcdsnap-download-")
        .tempdir()
        .map_err(|e| Error::io("Cannot create a temp directory for the download", &e))?;
    let path = dir.path().join(&name);
    let mut file = cpkit::atomic_file::AtomicFile::create(&path, false)?;
    let (size, stored_sha) =
        tokio::time::timeout(timeout, remote.download(&name, &mut file)).await.map_err(|_| {
            Error::new(
                ErrorKind::Timeout,
                format!("The download of {url} did not finish within {}", cpkit::duration::human_duration(timeout)),
                "the store is slow or unreachable",
                "Retry, or raise --timeout.",
            )
        })??;
    file.commit()?;
    if let Some(s) = &sidecar {
        let damaged = |why: String| {
            Error::new(
                ErrorKind::InvalidData,
                format!("{url} does not match its record; it was not used"),
                why,
                "The object was changed or damaged in the store: use another snapshot (kubectl etcdsnap ls), and check the bucket's versioning for the original.",
            )
        };
        if size != s.file_size {
            return Err(damaged(format!("it is {size} bytes, its record says {}", s.file_size)));
        }
        match (&s.stored_sha256, &s.sha256) {
            (Some(expected), _) if *expected != stored_sha => {
                return Err(damaged(format!("sha256 {stored_sha}, its record says {expected}")));
            }
            (None, Some(expected)) => {
                // A plain snapshot: the data before etcd's 32-byte digest.
                let p = path.clone();
                let actual = tokio::task::spawn_blocking(move || cpkit::etcd::snapshot::check_digest(&p, true))
                    .await
                    .map_err(|_| Error::failed("Checking the download failed", "its thread ended abnormally", ""))??
                    .actual;
                if actual != *expected {
                    return Err(damaged(format!("sha256 of its data {actual}, its record says {expected}")));
                }
            }
            _ => {}
        }
        // Beside the copy, for the readers that consult the record (digest cut, save time).
        std::fs::write(crate::save::sidecar_path(&path), s.to_json()?)
            .map_err(|e| Error::io(format!("Cannot write into {}", dir.path().display()), &e))?;
    }
    Ok(Fetched { path, _dir: dir })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, cluster: Option<&str>, age_days: u64, verified: bool) -> Entry {
        Entry { cluster: cluster.map(str::to_string), ..crate::files::tests::entry(name, age_days, verified) }
    }

    #[test]
    fn retention_counts_per_cluster_and_leaves_unrecorded_objects() {
        let now = SystemTime::now();
        let e = vec![
            entry("a1", Some("aaa"), 0, true),
            entry("foreign", None, 1, false),
            entry("b1", Some("bbb"), 2, true),
            entry("a2", Some("aaa"), 3, true),
            entry("a3", Some("aaa"), 4, true),
            entry("b2", Some("bbb"), 5, true),
        ];
        let names = |v: Vec<Entry>| v.into_iter().map(|e| e.path.display().to_string()).collect::<Vec<_>>();
        // --keep 1: one per cluster survives; the object without a record is never touched.
        assert_eq!(names(prune_plan(&e, Some(1), None, now)), ["a2", "a3", "b2"]);
        // Everything is old: the newest verified of each cluster still stays.
        assert_eq!(names(prune_plan(&e, None, Some(Duration::from_secs(3600)), now)), ["a2", "a3", "b2"]);
    }
}
