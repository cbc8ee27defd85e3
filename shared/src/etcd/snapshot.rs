//! What an etcd snapshot file holds, read offline (etcd `etcdutl/snapshot/v3_snapshot.go`): the
//! numbers of `snapshot status` (CRC-32C hash over every bucket, revision, total keys, total
//! size; in the semantics of the etcd that wrote the file, see [`Semantics`]), the sha256 trailer
//! etcd appends, consistent index, term, compaction revisions, the members, and the live
//! Kubernetes objects per resource.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::bbolt::{Db, FormatError, Item};
use crate::error::{Error, ErrorKind, Result};

/// Exactly what `snapshot status -w json` prints: `etcdctl` 3.4, `etcdutl` 3.5 and 3.6.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EtcdctlStatus {
    pub hash: u32,
    pub revision: i64,
    pub total_key: u64,
    pub total_size: u64,
    /// 3.6 only: the storage version the file records (`meta/storageVersion`), "" without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// Whose `snapshot status` the numbers follow. Up to 3.5, `totalKey` counts the key/values of
/// every bucket (etcd's own bookkeeping included); etcdutl 3.6 counts the user keys alive at the
/// snapshot's revision and adds `version` (etcd PR #19344, `etcdutl/snapshot/v3_snapshot.go`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
pub enum Semantics {
    #[value(name = "3.4")]
    #[serde(rename = "3.4")]
    V3_4,
    #[value(name = "3.5")]
    #[serde(rename = "3.5")]
    V3_5,
    #[value(name = "3.6")]
    #[serde(rename = "3.6")]
    V3_6,
}

impl Semantics {
    /// Those of the etcd that wrote the file: 3.6 records a storage version, older ones do not;
    /// between 3.4 and 3.5, the cluster version the file records (the numbers are the same).
    pub fn detect(storage_version: Option<&str>, cluster_version: Option<&str>) -> Semantics {
        if storage_version.is_some() {
            return Semantics::V3_6;
        }
        match cluster_version.and_then(|v| v.split('.').nth(1)) {
            Some("4") => Semantics::V3_4,
            _ => Semantics::V3_5,
        }
    }
}

/// The sha256 trailer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Digest32 {
    /// False when the check was skipped (`--no-digest`): then `valid` and `actual` say nothing.
    pub checked: bool,
    /// True when the file ends with the 32-byte digest etcd sends (see [`trailer_present`]).
    pub present: bool,
    /// True when it matches the sha256 of everything before it.
    pub valid: bool,
    pub expected: Option<String>,
    pub actual: String,
}

/// A member as the snapshot records it (bucket `members`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordedMember {
    #[serde(default)]
    pub id: u64,
    #[serde(default)]
    pub name: String,
    #[serde(default, rename(deserialize = "peerURLs"))]
    pub peer_urls: Vec<String>,
    #[serde(default, rename(deserialize = "clientURLs"))]
    pub client_urls: Vec<String>,
}

/// Everything `etcdsnap status` reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotStatus {
    pub etcdctl: EtcdctlStatus,
    /// Whose `snapshot status` `etcdctl` follows, and whether it was detected or asked for.
    pub semantics: Semantics,
    pub semantics_detected: bool,
    /// The storage version the file records (written by etcd 3.6 and later).
    pub storage_version: Option<String>,
    pub file_size: u64,
    pub sha256: Digest32,
    pub consistent_index: Option<u64>,
    pub term: Option<u64>,
    pub scheduled_compact_revision: Option<i64>,
    pub finished_compact_revision: Option<i64>,
    pub cluster_version: Option<String>,
    pub members: Vec<RecordedMember>,
    /// Live keys per resource (`pods`, `deployments`, `cert-manager.io/certificates`).
    pub inventory: BTreeMap<String, u64>,
    pub live_keys: u64,
    /// Keys outside `/registry/`.
    pub other_live_keys: u64,
    pub pages: u64,
    pub free_pages: u64,
}

/// The resource of a `/registry/...` key (group-qualified for `/registry/<group>/<resource>/`),
/// named as kubectl names it where the apiserver's storage prefix differs (nodes live under
/// `minions`, services and endpoints share `services/`).
pub fn resource_of(key: &[u8]) -> Option<String> {
    let rest = key.strip_prefix(b"/registry/")?;
    let mut parts = rest.split(|b| *b == b'/');
    let first = std::str::from_utf8(parts.next()?).ok()?;
    if first.contains('.') {
        let second = std::str::from_utf8(parts.next()?).ok()?;
        return Some(format!("{first}/{second}"));
    }
    let name = match first {
        "minions" => "nodes",
        "controllers" => "replicationcontrollers",
        "ingress" => "ingresses",
        "services" => match parts.next() {
            Some(b"specs") => "services",
            Some(b"endpoints") => "endpoints",
            _ => "services",
        },
        other => other,
    };
    Some(name.to_string())
}

/// Field 1 (`key`) of an mvccpb.KeyValue.
fn kv_key(value: &[u8]) -> Option<&[u8]> {
    let mut i = 0;
    while i < value.len() {
        let (tag, n) = varint(&value[i..])?;
        i += n;
        match tag & 7 {
            0 => {
                let (_, n) = varint(&value[i..])?;
                i += n;
            }
            2 => {
                let (len, n) = varint(&value[i..])?;
                i += n;
                let end = i.checked_add(len as usize)?;
                let bytes = value.get(i..end)?;
                if tag >> 3 == 1 {
                    return Some(bytes);
                }
                i = end;
            }
            1 => i += 8,
            5 => i += 4,
            _ => return None,
        }
    }
    None
}

fn varint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, &byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

fn be_u64(b: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(..8)?.try_into().ok()?))
}

fn corrupt(path: &Path, e: &FormatError) -> Error {
    Error::new(
        ErrorKind::InvalidData,
        format!("{} is not a usable etcd snapshot", path.display()),
        e.0.clone(),
        "Take a new snapshot (kubectl etcdsnap save); keep this file for analysis.",
    )
}

/// Whether a file of `size` bytes ends with etcd's sha256 trailer, from its database's pages: a
/// snapshot is exactly the pages in use (`tx.WriteTo` writes `tx.Size()` bytes) plus the 32-byte
/// digest etcd appends; a database file copied from a member is whole pages (it may have grown
/// past the pages in use). Any other size means bytes were cut or appended.
pub fn trailer_present(size: u64, meta: &crate::etcd::bbolt::Meta) -> std::result::Result<bool, String> {
    let page = u64::from(meta.page_size);
    let in_use = meta.pgid.saturating_mul(page);
    if size == in_use + 32 {
        return Ok(true);
    }
    if size >= in_use && (size - in_use).is_multiple_of(page) {
        return Ok(false);
    }
    Err(format!(
        "the file is {size} bytes: neither whole {page}-byte pages ({in_use} bytes in use) nor those plus etcd's 32-byte sha256 trailer, so bytes were cut off or appended"
    ))
}

/// sha256 of the file minus its last 32 bytes, compared with them (`present`: the file has the
/// trailer, see [`trailer_present`]).
pub fn check_digest(path: &Path, present: bool) -> Result<Digest32> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(format!("Cannot open {}", path.display()), &e))?;
    let size = file.metadata().map_err(|e| Error::io(format!("Cannot read {}", path.display()), &e))?.len();
    let body = if present { size.saturating_sub(32) } else { size };
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut left = body;
    while left > 0 {
        let n = (left as usize).min(buf.len());
        file.read_exact(&mut buf[..n]).map_err(|e| read_error(path, size, &e))?;
        hasher.update(&buf[..n]);
        left -= n as u64;
    }
    let actual = hex::encode(hasher.finalize());
    let expected = if present {
        let mut tail = [0u8; 32];
        file.read_exact(&mut tail).map_err(|e| read_error(path, size, &e))?;
        Some(hex::encode(tail))
    } else {
        None
    };
    Ok(Digest32 { checked: true, present, valid: expected.as_deref() == Some(actual.as_str()), expected, actual })
}

/// A read that failed; a file that ends early shrank while it was read (a copy still being
/// written, or a snapshot replaced under us).
fn read_error(path: &Path, size: u64, e: &std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        return corrupt(
            path,
            &FormatError(format!("the file ended before its {size} bytes were read (did it shrink while being read?)")),
        );
    }
    Error::io(format!("Cannot read {}", path.display()), e)
}

/// Reads a snapshot: structure check, the etcdctl numbers, metadata and inventory; with
/// `verify_digest`, also the sha256 trailer (on a second thread, while the tree is walked).
pub fn status(path: &Path, verify_digest: bool, semantics: Option<Semantics>) -> Result<SnapshotStatus> {
    // A regular file, checked without blocking: a FIFO or /dev/zero is refused, not read.
    drop(crate::input::open_regular(path)?);
    let db = Db::open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::InvalidData {
            corrupt(path, &FormatError(e.to_string()))
        } else {
            Error::io(format!("Cannot open {}", path.display()), &e)
        }
    })?;
    let present = trailer_present(db.file_size, &db.meta).map_err(|e| corrupt(path, &FormatError(e)))?;
    let digest_path = path.to_path_buf();
    let digest = std::thread::spawn(move || {
        if verify_digest {
            check_digest(&digest_path, present)
        } else {
            Ok(Digest32 { checked: false, present, valid: false, expected: None, actual: String::new() })
        }
    });
    let mut crc = 0u32;
    let mut revision = 0i64;
    let mut total_key = 0u64;
    let mut meta: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    let mut members = Vec::new();
    let mut cluster_version = None;
    // Live keys: the user key itself → (resource, alive), so that two keys are one only when
    // their bytes are (a hash alone merged distinct keys). Memory grows with the distinct keys,
    // not with the file; repeated keys (every update of an object) allocate nothing.
    let mut resources: Vec<String> = Vec::new();
    let mut live: HashMap<Box<[u8]>, (u32, bool), std::hash::BuildHasherDefault<crate::metrics::scrape::FxHasher>> =
        HashMap::default();
    let stats = db
        .walk(&mut |bucket: &[u8], item: Option<&Item<'_>>| {
            let Some(item) = item else {
                crc = crc32c::crc32c_append(crc, bucket);
                return Ok(());
            };
            crc = crc32c::crc32c_append(crc, item.key);
            // A nested bucket has no value in ForEach (nil).
            if !item.is_bucket {
                crc = crc32c::crc32c_append(crc, item.value);
            }
            total_key += 1;
            match bucket {
                b"key" => {
                    revision = be_u64(item.key).map(|r| r as i64).unwrap_or(revision);
                    let tombstone = item.key.len() == 18 && item.key[17] == b't';
                    if let Some(user_key) = kv_key(item.value) {
                        if let Some(entry) = live.get_mut(user_key) {
                            entry.1 = !tombstone;
                        } else {
                            let resource = resource_of(user_key).unwrap_or_default();
                            let index = match resources.iter().position(|r| *r == resource) {
                                Some(i) => i,
                                None => {
                                    resources.push(resource);
                                    resources.len() - 1
                                }
                            } as u32;
                            live.insert(user_key.into(), (index, !tombstone));
                        }
                    }
                }
                b"meta" => {
                    meta.insert(item.key.to_vec(), item.value.to_vec());
                }
                b"members" => {
                    if let Ok(m) = serde_json::from_slice::<RecordedMember>(item.value) {
                        members.push(m);
                    }
                }
                b"cluster" if item.key == b"clusterVersion" => {
                    cluster_version = Some(String::from_utf8_lossy(item.value).into_owned());
                }
                _ => {}
            }
            Ok(())
        })
        .map_err(|e| corrupt(path, &e))?;
    let digest = digest.join().map_err(|_| Error::failed("The sha256 thread failed", "it panicked", ""))??;
    // By name, as `etcdsnap members` lists them (the bucket keeps them by ID).
    members.sort_by(|a, b| a.name.cmp(&b.name));
    let mut inventory: BTreeMap<String, u64> = BTreeMap::new();
    let mut live_keys = 0;
    let mut other = 0;
    for (index, alive) in live.values() {
        if !alive {
            continue;
        }
        let r = &resources[*index as usize];
        if r.is_empty() {
            other += 1;
        } else {
            *inventory.entry(r.clone()).or_insert(0) += 1;
            live_keys += 1;
        }
    }
    let rev_of = |k: &[u8]| meta.get(k).and_then(|v| be_u64(v)).map(|r| r as i64);
    // etcd keeps it only when it parses as a semantic version (`ReadStorageVersionFromSnapshot`).
    let storage_version = meta
        .get(b"storageVersion".as_slice())
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .filter(|v| is_semver(v));
    let detected = Semantics::detect(storage_version.as_deref(), cluster_version.as_deref());
    let used = semantics.unwrap_or(detected);
    let (total_key, version) = match used {
        Semantics::V3_4 | Semantics::V3_5 => (total_key, None),
        Semantics::V3_6 => (live_keys + other, Some(storage_version.clone().unwrap_or_default())),
    };
    Ok(SnapshotStatus {
        etcdctl: EtcdctlStatus { hash: crc, revision, total_key, total_size: db.total_size(), version },
        semantics: used,
        semantics_detected: semantics.is_none(),
        storage_version,
        file_size: db.file_size,
        sha256: digest,
        consistent_index: meta.get(b"consistent_index".as_slice()).and_then(|v| be_u64(v)),
        term: meta.get(b"term".as_slice()).and_then(|v| be_u64(v)),
        scheduled_compact_revision: rev_of(b"scheduledCompactRev"),
        finished_compact_revision: rev_of(b"finishedCompactRev"),
        cluster_version,
        members,
        inventory,
        live_keys,
        other_live_keys: other,
        pages: stats.pages_reached,
        free_pages: stats.free_pages,
    })
}

/// `MAJOR.MINOR.PATCH` with an optional pre-release or build suffix.
fn is_semver(v: &str) -> bool {
    let core = v.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3 && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semantics_follow_the_etcd_that_wrote_the_file() {
        assert_eq!(Semantics::detect(Some("3.6.0"), Some("3.6.0")), Semantics::V3_6);
        assert_eq!(Semantics::detect(None, Some("3.5.0")), Semantics::V3_5);
        assert_eq!(Semantics::detect(None, Some("3.4.0")), Semantics::V3_4);
        assert_eq!(Semantics::detect(None, None), Semantics::V3_5);
        assert!(is_semver("3.6.0") && is_semver("3.6.0-alpha.0") && !is_semver("3.6") && !is_semver("x.y.z"));
    }

    #[test]
    fn keys_and_resources() {
        assert_eq!(resource_of(b"/registry/pods/default/x"), Some("pods".into()));
        assert_eq!(
            resource_of(b"/registry/cert-manager.io/certificates/ns/x"),
            Some("cert-manager.io/certificates".into())
        );
        assert_eq!(resource_of(b"/other"), None);
        // Storage prefixes that are not the resource's name.
        assert_eq!(resource_of(b"/registry/minions/cp-1"), Some("nodes".into()));
        assert_eq!(resource_of(b"/registry/services/specs/default/kubernetes"), Some("services".into()));
        assert_eq!(resource_of(b"/registry/services/endpoints/default/kubernetes"), Some("endpoints".into()));
        assert_eq!(resource_of(b"/registry/controllers/default/rc"), Some("replicationcontrollers".into()));
        assert_eq!(resource_of(b"/registry/ingress/default/web"), Some("ingresses".into()));
        // mvccpb.KeyValue{key: "ab", create_revision: 5, value: "v"}
        let kv = [0x0a, 2, b'a', b'b', 0x10, 5, 0x2a, 1, b'v'];
        assert_eq!(kv_key(&kv), Some(&b"ab"[..]));
        assert_eq!(kv_key(&[0x10, 5]), None);
        assert_eq!(kv_key(&[0x0a, 200]), None, "truncated: no panic");
    }

    #[test]
    fn digest_of_a_file_with_a_trailer() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.db");
        let body = vec![1u8; 4096];
        let mut data = body.clone();
        data.extend_from_slice(&Sha256::digest(&body));
        std::fs::write(&p, &data).unwrap();
        let d = check_digest(&p, true).unwrap();
        assert!(d.present && d.valid);
        data[100] ^= 1;
        std::fs::write(&p, &data).unwrap();
        let d = check_digest(&p, true).unwrap();
        assert!(d.present && !d.valid);
    }

    #[test]
    fn only_whole_pages_or_pages_and_the_digest_are_intact() {
        let meta = crate::etcd::bbolt::Meta { page_size: 4096, root: 3, freelist: 2, pgid: 10, txid: 5 };
        let pages = 10 * 4096;
        assert_eq!(trailer_present(pages + 32, &meta), Ok(true), "a snapshot");
        assert_eq!(trailer_present(pages, &meta), Ok(false), "a copied database file");
        assert_eq!(trailer_present(pages + 3 * 4096, &meta), Ok(false), "one that grew past its pages");
        // Cut or grown tails: what `status` used to read as "a copied db file".
        for cut in 1..32 {
            assert!(trailer_present(pages + 32 - cut, &meta).is_err(), "cut {cut}");
        }
        for added in 1..=480 {
            assert!(trailer_present(pages + 32 + added, &meta).is_err(), "appended {added}");
        }
        assert!(trailer_present(pages - 1, &meta).is_err());
    }
}
