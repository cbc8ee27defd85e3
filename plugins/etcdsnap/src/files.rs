//! Snapshots on disk: `status` of one file, `ls` of a directory, `prune` by retention.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cpkit::error::{Error, Result};
use cpkit::etcd::snapshot::{Semantics, SnapshotStatus};
use cpkit::etcd::stored::Opened;
use serde::Serialize;

use crate::save::{Sidecar, read_sidecar};

/// One snapshot file as `ls` shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    pub path: PathBuf,
    pub size: u64,
    #[serde(skip)]
    pub modified: std::time::SystemTime,
    pub modified_at: String,
    pub revision: Option<i64>,
    pub member: Option<String>,
    /// The record's cluster ID (retention in object storage counts per cluster).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// `verified` (sidecar matches the file), `changed` (it does not), `no record`.
    pub state: String,
}

impl Entry {
    /// A snapshot of `size` bytes at `path` (a file or an object URL), with its record if any:
    /// `verified` when the record says so and the size still matches.
    pub fn new(path: PathBuf, size: u64, modified: std::time::SystemTime, sidecar: Option<&Sidecar>) -> Entry {
        let state = match sidecar {
            Some(s) if s.verified && s.file_size == size => "verified",
            Some(_) => "changed",
            None => "no record",
        };
        let modified_at = jiff::Timestamp::try_from(modified)
            .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_default();
        Entry {
            path,
            size,
            modified,
            modified_at,
            revision: sidecar.map(|s| s.revision),
            member: sidecar.map(|s| s.member.clone()),
            cluster: sidecar.map(|s| s.cluster_id.clone()),
            state: state.to_string(),
        }
    }

    pub fn verified(&self) -> bool {
        self.state == "verified"
    }
}

/// Newest first; the same time by name, last first.
pub fn sort_newest_first(entries: &mut [Entry]) {
    entries.sort_by(|a, b| b.modified.cmp(&a.modified).then_with(|| b.path.cmp(&a.path)));
}

/// `*.db`, and `*.db.zst`, `*.db.age`, `*.db.zst.age` of compressed or encrypted saves.
pub fn is_snapshot_name(name: &str) -> bool {
    [".db", ".db.zst", ".db.age", ".db.zst.age"].iter().any(|s| name.ends_with(s))
}

fn is_snapshot(p: &Path) -> bool {
    is_snapshot_name(&p.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()) && p.is_file()
}

/// Snapshots of `dir`, newest first.
pub fn list(dir: &Path) -> Result<Vec<Entry>> {
    let read = std::fs::read_dir(dir).map_err(|e| Error::io(format!("Cannot list {}", dir.display()), &e))?;
    let mut out = Vec::new();
    for e in read.flatten() {
        let path = e.path();
        if !is_snapshot(&path) {
            continue;
        }
        let Ok(meta) = e.metadata() else { continue };
        let modified = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
        out.push(Entry::new(path.clone(), meta.len(), modified, read_sidecar(&path).as_ref()));
    }
    sort_newest_first(&mut out);
    Ok(out)
}

/// What `prune` would delete: beyond the `keep` newest, or older than `older_than` — never the
/// newest verified snapshot.
pub fn prune_plan(
    entries: &[Entry],
    keep: Option<usize>,
    older_than: Option<Duration>,
    now: std::time::SystemTime,
) -> Vec<Entry> {
    let newest_verified = entries.iter().position(Entry::verified);
    entries
        .iter()
        .enumerate()
        .filter(|(i, e)| {
            let by_count = keep.is_some_and(|k| *i >= k);
            let by_age = older_than.is_some_and(|d| now.duration_since(e.modified).unwrap_or_default() > d);
            (by_count || by_age) && Some(*i) != newest_verified
        })
        .map(|(_, e)| e.clone())
        .collect()
}

pub fn status_text(path: &Path, opened: &Opened, s: &SnapshotStatus) -> String {
    let mut t = String::new();
    let line = |t: &mut String, k: &str, v: String| t.push_str(&format!("{k:<22}{v}\n"));
    line(&mut t, "File:", path.display().to_string());
    if !opened.layers.is_empty() {
        line(&mut t, "Stored:", format!("{} (read through a decoded copy)", opened.stored_as()));
    }
    line(
        &mut t,
        "sha256:",
        match (&s.sha256.present, &s.sha256.valid) {
            _ if !s.sha256.checked => "not checked (--no-digest)".to_string(),
            (true, true) => format!("{} (matches etcd's digest)", s.sha256.actual),
            (true, false) => format!(
                "{} MISMATCH: etcd's digest is {}",
                s.sha256.actual,
                s.sha256.expected.clone().unwrap_or_default()
            ),
            (false, _) => {
                format!("{} (no digest trailer: a copied db file, restore needs --skip-hash-check)", s.sha256.actual)
            }
        },
    );
    line(&mut t, "Hash (etcdctl):", format!("{:x}", s.etcdctl.hash));
    line(&mut t, "Revision:", s.etcdctl.revision.to_string());
    let counted = match s.semantics {
        Semantics::V3_6 => "live user keys",
        Semantics::V3_4 | Semantics::V3_5 => "key/values of every bucket",
    };
    let how = if s.semantics_detected { "of the etcd that wrote it" } else { "as asked" };
    line(
        &mut t,
        "Total keys:",
        format!("{} ({counted}: etcd {} semantics, {how})", s.etcdctl.total_key, cpkit::cli::value_name(&s.semantics)),
    );
    if let Some(v) = &s.storage_version {
        line(&mut t, "Storage version:", v.clone());
    }
    line(
        &mut t,
        "Total size:",
        format!("{} ({} bytes)", cpkit::output::human_bytes(s.etcdctl.total_size), s.etcdctl.total_size),
    );
    line(&mut t, "Pages:", format!("{} in use, {} free", s.pages, s.free_pages));
    if let Some(i) = s.consistent_index {
        line(&mut t, "Consistent index:", i.to_string());
    }
    if let Some(term) = s.term {
        line(&mut t, "Term:", term.to_string());
    }
    line(
        &mut t,
        "Compaction:",
        format!(
            "scheduled {}, finished {}",
            s.scheduled_compact_revision.map(|r| r.to_string()).unwrap_or_else(|| "-".into()),
            s.finished_compact_revision.map(|r| r.to_string()).unwrap_or_else(|| "-".into())
        ),
    );
    if let Some(v) = &s.cluster_version {
        line(&mut t, "Cluster version:", v.clone());
    }
    let members: Vec<String> =
        s.members.iter().map(|m| format!("{} ({:x}) {}", m.name, m.id, m.peer_urls.join(","))).collect();
    line(&mut t, "Members:", if members.is_empty() { "-".into() } else { members.join("; ") });
    t.push_str(&format!(
        "\nLive objects this snapshot would bring back: {} (+{} keys outside /registry)\n",
        s.live_keys, s.other_live_keys
    ));
    let mut table = cpkit::output::Table::new(&["resource", "objects"]);
    for (r, n) in &s.inventory {
        table.row([r.clone(), n.to_string()]);
    }
    t.push_str(&table.render(false, false));
    t
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn entry(name: &str, age_days: u64, verified: bool) -> Entry {
        let now = std::time::SystemTime::now();
        Entry {
            path: PathBuf::from(name),
            size: 1,
            modified: now - Duration::from_secs(age_days * 86400),
            modified_at: String::new(),
            revision: None,
            member: None,
            cluster: None,
            state: if verified { "verified".into() } else { "no record".into() },
        }
    }

    #[test]
    fn retention_never_drops_the_newest_verified() {
        let now = std::time::SystemTime::now();
        let e = vec![entry("a", 0, false), entry("b", 1, true), entry("c", 8, true), entry("d", 9, false)];
        let names = |v: Vec<Entry>| v.into_iter().map(|e| e.path.display().to_string()).collect::<Vec<_>>();
        assert_eq!(names(prune_plan(&e, Some(1), None, now)), ["c", "d"], "b is the newest verified");
        assert_eq!(names(prune_plan(&e, None, Some(Duration::from_secs(7 * 86400)), now)), ["c", "d"]);
        let old = vec![entry("x", 30, true), entry("y", 40, true)];
        assert_eq!(names(prune_plan(&old, None, Some(Duration::from_secs(86400)), now)), ["y"], "x survives");
    }
}
