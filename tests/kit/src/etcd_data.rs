//! Kubernetes-shaped data in etcd: the keys the kube-apiserver writes (`/registry/<resource>/...`,
//! nodes under `/registry/minions`), values with the storage envelope's `k8s\0` prefix, many
//! revisions and deletions — quickly, in concurrent transactions.

use std::collections::BTreeMap;

use etcd_client::{Client, Txn, TxnOp};
use futures::StreamExt;

/// What to write.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub namespaces: usize,
    pub pods_per_namespace: usize,
    pub deployments_per_namespace: usize,
    pub configmaps_per_namespace: usize,
    pub events_per_namespace: usize,
    pub nodes: usize,
    /// Extra updates of every pod (each one is a new revision).
    pub pod_updates: usize,
    /// Delete every n-th pod after writing (0 = none).
    pub delete_every: usize,
    /// Size of each value in bytes.
    pub value_size: usize,
    /// Compact to the latest revision at the end (old revisions become free pages).
    pub compact: bool,
    /// What fills each value after its envelope.
    pub filler: Filler,
}

/// What fills a value after its envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Filler {
    /// Pseudo-random letters (sizes are what most tests care about; compresses ~1.7x at best).
    #[default]
    Letters,
    /// Real pods, the captures' `pods.yaml` (Kubernetes 1.31–1.34) as JSON, with the tokens that
    /// differ between a cluster's objects (runs of hex digits and numbers: uids, hashes, addresses,
    /// times) redrawn per object: Kubernetes-shaped data for compression measurements. JSON is
    /// how custom resources are stored; built-in types are stored as protobuf, with shorter
    /// field names.
    Pods,
}

impl Default for LoadSpec {
    fn default() -> Self {
        LoadSpec {
            namespaces: 3,
            pods_per_namespace: 20,
            deployments_per_namespace: 4,
            configmaps_per_namespace: 2,
            events_per_namespace: 10,
            nodes: 3,
            pod_updates: 2,
            delete_every: 5,
            value_size: 800,
            compact: false,
            filler: Filler::Letters,
        }
    }
}

impl LoadSpec {
    /// About `bytes` of live data (for benchmarks: ≥ 1 GiB).
    pub fn sized(bytes: u64) -> LoadSpec {
        let value_size = 16 * 1024;
        let pods = (bytes / value_size as u64).max(1) as usize;
        LoadSpec {
            namespaces: 50,
            pods_per_namespace: pods.div_ceil(50),
            deployments_per_namespace: 2,
            configmaps_per_namespace: 1,
            events_per_namespace: 2,
            nodes: 10,
            pod_updates: 0,
            delete_every: 0,
            value_size,
            compact: false,
            filler: Filler::Letters,
        }
    }
}

/// What the store holds afterwards.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    /// Live keys per resource (`pods`, `deployments`, `nodes`, `apiregistration.k8s.io/apiservices`).
    pub live: BTreeMap<String, usize>,
    pub live_keys: usize,
    pub revision: i64,
}

/// The resource of a `/registry/...` key (with its group when it has one).
pub fn resource_of(key: &str) -> Option<String> {
    let rest = key.strip_prefix("/registry/")?;
    let mut parts = rest.split('/');
    let first = parts.next()?;
    if first.contains('.') {
        let second = parts.next()?;
        Some(format!("{first}/{second}"))
    } else if first == "minions" {
        // Where the apiserver stores nodes (and where this loader writes them).
        Some("nodes".to_string())
    } else if first == "services" {
        // Services under services/specs, Endpoints under services/endpoints (kubernetes
        // `pkg/registry/core/{service,endpoint}/storage`).
        match parts.next()? {
            "endpoints" => Some("endpoints".to_string()),
            _ => Some("services".to_string()),
        }
    } else {
        Some(first.to_string())
    }
}

/// A value shaped like the apiserver's protobuf storage: magic `k8s\0`, then a TypeMeta-ish
/// envelope, padded to `size` bytes.
pub fn object_value(kind: &str, api_version: &str, name: &str, generation: usize, size: usize) -> Vec<u8> {
    object_value_filled(Filler::Letters, kind, api_version, name, generation, size)
}

/// [`object_value`] with the given filler.
pub fn object_value_filled(
    filler: Filler,
    kind: &str,
    api_version: &str,
    name: &str,
    generation: usize,
    size: usize,
) -> Vec<u8> {
    let mut v = b"k8s\0".to_vec();
    v.push(0x0a);
    let type_meta =
        [&[0x0a, api_version.len() as u8][..], api_version.as_bytes(), &[0x12, kind.len() as u8], kind.as_bytes()]
            .concat();
    v.push(type_meta.len() as u8);
    v.extend_from_slice(&type_meta);
    v.push(0x12);
    let body = format!("{{\"name\":\"{name}\",\"generation\":{generation}}}");
    v.push(body.len().min(127) as u8);
    v.extend_from_slice(&body.as_bytes()[..body.len().min(127)]);
    let mut seed = name.bytes().fold(generation as u64 + 1, |h, b| h.wrapping_mul(31).wrapping_add(b as u64));
    if filler == Filler::Pods {
        fill_with_pods(&mut v, size, &mut seed);
    }
    while v.len() < size {
        v.push(b'a' + (xorshift(&mut seed) % 26) as u8);
    }
    v
}

fn xorshift(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

/// The captures' pods as compact JSON, read once.
fn capture_pods() -> &'static [Vec<u8>] {
    static PODS: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    PODS.get_or_init(|| {
        (31..=34)
            .filter_map(|minor| crate::fixtures::read(&format!("clusters/k8s-1.{minor}/pods.yaml")).ok())
            .filter_map(|text| {
                serde_yaml::from_str::<serde_json::Value>(&crate::fixtures::rewrite_addresses(&text)).ok()
            })
            .flat_map(|list| list["items"].as_array().cloned().unwrap_or_default())
            .filter_map(|pod| serde_json::to_vec(&pod).ok())
            .collect()
    })
}

/// Appends captured pods to `v` up to `size`, each token that tells objects apart redrawn: a run
/// of 8 or more hex digits (uids, hashes, container IDs) as other hex digits, a run of 2 or more
/// decimal digits (addresses, times, resource versions) as other digits.
fn fill_with_pods(v: &mut Vec<u8>, size: usize, seed: &mut u64) {
    let pods = capture_pods();
    if pods.is_empty() || v.len() >= size {
        return;
    }
    while v.len() < size {
        let pod = &pods[(xorshift(seed) % pods.len() as u64) as usize];
        let mut i = 0;
        while i < pod.len() && v.len() < size {
            let run = pod[i..].iter().take_while(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()).count();
            let digits = pod[i..].iter().take_while(|b| b.is_ascii_digit()).count();
            if run >= 8 {
                v.extend((0..run).map(|_| b"0123456789abcdef"[(xorshift(seed) % 16) as usize]));
                i += run;
            } else if digits >= 2 {
                v.extend((0..digits).map(|_| b'0' + (xorshift(seed) % 10) as u8));
                i += digits;
            } else {
                let step = run.max(digits).max(1);
                v.extend_from_slice(&pod[i..i + step]);
                i += step;
            }
        }
    }
    v.truncate(size);
}

fn planned_writes(spec: &LoadSpec) -> Vec<(String, Vec<u8>)> {
    let object_value = |kind: &str, api_version: &str, name: &str, generation: usize, size: usize| {
        object_value_filled(spec.filler, kind, api_version, name, generation, size)
    };
    let mut out = Vec::new();
    let size = spec.value_size;
    for n in 0..spec.nodes {
        let node = format!("node-{n:04}");
        out.push((format!("/registry/minions/{node}"), object_value("Node", "v1", &node, 0, size)));
        out.push((
            format!("/registry/leases/kube-node-lease/{node}"),
            object_value("Lease", "coordination.k8s.io/v1", &node, 0, 200.min(size)),
        ));
    }
    for ns in 0..spec.namespaces {
        let ns_name = format!("team-{ns:03}");
        out.push((
            format!("/registry/namespaces/{ns_name}"),
            object_value("Namespace", "v1", &ns_name, 0, 300.min(size)),
        ));
        for d in 0..spec.deployments_per_namespace {
            let name = format!("app-{d:03}");
            out.push((
                format!("/registry/deployments/{ns_name}/{name}"),
                object_value("Deployment", "apps/v1", &name, 0, size),
            ));
        }
        for c in 0..spec.configmaps_per_namespace {
            let name = format!("config-{c:03}");
            out.push((
                format!("/registry/configmaps/{ns_name}/{name}"),
                object_value("ConfigMap", "v1", &name, 0, size),
            ));
        }
        for e in 0..spec.events_per_namespace {
            let name = format!("app-{e:03}.{:x}", 0x17a0_0000_0000u64 + e as u64);
            out.push((
                format!("/registry/events/{ns_name}/{name}"),
                object_value("Event", "v1", &name, 0, 400.min(size)),
            ));
        }
        for p in 0..spec.pods_per_namespace {
            let name = format!("app-{:03}-{p:05}", p % spec.deployments_per_namespace.max(1));
            out.push((format!("/registry/pods/{ns_name}/{name}"), object_value("Pod", "v1", &name, 0, size)));
        }
    }
    out.push((
        "/registry/apiregistration.k8s.io/apiservices/v1.apps".to_string(),
        object_value("APIService", "apiregistration.k8s.io/v1", "v1.apps", 0, 300),
    ));
    out
}

/// Runs puts in transactions of at most 100 operations and ~1 MiB (etcd refuses requests over
/// 1.5 MiB by default), `concurrency` at a time.
async fn run_batches(client: &Client, ops: Vec<(usize, TxnOp)>, concurrency: usize) -> Result<(), etcd_client::Error> {
    let mut batches: Vec<Vec<TxnOp>> = Vec::new();
    let mut current = Vec::new();
    let mut bytes = 0;
    for (size, op) in ops {
        if !current.is_empty() && (current.len() >= 100 || bytes + size > 1024 * 1024) {
            batches.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += size;
        current.push(op);
    }
    if !current.is_empty() {
        batches.push(current);
    }
    let results: Vec<Result<(), etcd_client::Error>> = futures::stream::iter(batches)
        .map(|batch| {
            let mut c = client.clone();
            async move {
                let txn = Txn::new().and_then(batch);
                c.txn(txn).await.map(|_| ())
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    results.into_iter().collect()
}

/// Writes the data of `spec`; returns what is live afterwards.
pub async fn load(client: &Client, spec: &LoadSpec) -> Result<Inventory, etcd_client::Error> {
    let writes = planned_writes(spec);
    let ops: Vec<(usize, TxnOp)> =
        writes.iter().map(|(k, v)| (k.len() + v.len(), TxnOp::put(k.clone(), v.clone(), None))).collect();
    run_batches(client, ops, 8).await?;
    let pods: Vec<&(String, Vec<u8>)> = writes.iter().filter(|(k, _)| k.starts_with("/registry/pods/")).collect();
    for generation in 1..=spec.pod_updates {
        let ops = pods
            .iter()
            .map(|(k, _)| {
                (
                    k.len() + spec.value_size,
                    TxnOp::put(
                        k.clone(),
                        object_value_filled(spec.filler, "Pod", "v1", k, generation, spec.value_size),
                        None,
                    ),
                )
            })
            .collect();
        run_batches(client, ops, 8).await?;
    }
    let mut deleted = std::collections::HashSet::new();
    if spec.delete_every > 0 {
        let ops: Vec<(usize, TxnOp)> = pods
            .iter()
            .enumerate()
            .filter(|(i, _)| i % spec.delete_every == 0)
            .map(|(_, (k, _))| {
                deleted.insert(k.clone());
                (k.len(), TxnOp::delete(k.clone(), None))
            })
            .collect();
        run_batches(client, ops, 8).await?;
    }
    let mut c = client.clone();
    let status = c.status().await?;
    let revision = status.header().map(|h| h.revision()).unwrap_or(0);
    if spec.compact && revision > 0 {
        c.compact(revision, None).await?;
    }
    let mut inventory = Inventory { revision, ..Default::default() };
    for (k, _) in &writes {
        if deleted.contains(k) {
            continue;
        }
        if let Some(r) = resource_of(k) {
            *inventory.live.entry(r).or_insert(0) += 1;
            inventory.live_keys += 1;
        }
    }
    Ok(inventory)
}

/// Fills the backend until etcd refuses writes with NOSPACE (`mvcc: database space exceeded`),
/// like a cluster whose events pile up. Returns the number of values written.
///
/// etcd raises the alarm at the first write whose cost would carry a member's database over
/// `quota` (server `storage/quota.go`, `Available`, checked on every member as it applies), so the
/// largest file ends within one write of it: batches of `value_size` values far from it, single
/// 16 KiB values over the last quarter (at least 2 MiB). The size watched is the largest of
/// `members` (one client per member): bbolt allocates pages per member, so files differ by a
/// megabyte or two, and a batch sized by a smaller one left the largest at 91% of a 12 MiB quota.
/// `quota` 0 is etcd's default, 2 GiB.
pub async fn fill_until_nospace(
    client: &Client,
    members: &[Client],
    value_size: usize,
    quota: u64,
) -> Result<usize, etcd_client::Error> {
    let quota = if quota == 0 { 2 << 30 } else { quota }; // etcd's default
    let near = (quota / 4).max(2 * 1024 * 1024);
    let mut written = 0;
    let mut c = client.clone();
    loop {
        let size = largest_db_size(members).await?;
        let (count, each) = if size + near >= quota { (1, 16 * 1024) } else { (16, value_size) };
        let ops: Vec<TxnOp> = (0..count)
            .map(|k| {
                let key = format!("/registry/events/default/filler.{:08}", written + k);
                let value = object_value("Event", "v1", &key, 0, each);
                TxnOp::put(key, value, None)
            })
            .collect();
        match c.txn(Txn::new().and_then(ops)).await {
            Ok(_) => written += count,
            Err(e) if e.to_string().contains("database space exceeded") => return Ok(written),
            Err(e) => return Err(e),
        }
        if written > 1_000_000 {
            return Ok(written);
        }
    }
}

/// The largest database file among the members, each asked through its own client.
async fn largest_db_size(members: &[Client]) -> Result<u64, etcd_client::Error> {
    let mut largest = 0;
    for member in members {
        let size = member.clone().status().await?.db_size();
        largest = largest.max(u64::try_from(size).unwrap_or(0));
    }
    Ok(largest)
}

/// Rewrites every pod with a small value and compacts: the database file keeps its size while
/// little of it is in use (the fragmentation `defrag` reclaims).
pub async fn shrink_pods(client: &Client) -> Result<(), etcd_client::Error> {
    let mut c = client.clone();
    let keys = c.get("/registry/pods/", Some(etcd_client::GetOptions::new().with_prefix().with_keys_only())).await?;
    let ops: Vec<(usize, TxnOp)> = keys
        .kvs()
        .iter()
        .map(|kv| {
            let key = kv.key().to_vec();
            let name = String::from_utf8_lossy(&key).into_owned();
            (key.len() + 300, TxnOp::put(key, object_value("Pod", "v1", &name, 1, 300), None))
        })
        .collect();
    run_batches(client, ops, 8).await?;
    let status = c.status().await?;
    let revision = status.header().map(|h| h.revision()).unwrap_or(0);
    if revision > 0 {
        c.compact(revision, Some(etcd_client::CompactionOptions::new().with_physical())).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_of_registry_keys() {
        assert_eq!(resource_of("/registry/pods/ns/name").as_deref(), Some("pods"));
        assert_eq!(resource_of("/registry/minions/n1").as_deref(), Some("nodes"));
        assert_eq!(
            resource_of("/registry/apiregistration.k8s.io/apiservices/v1.apps").as_deref(),
            Some("apiregistration.k8s.io/apiservices")
        );
        assert_eq!(resource_of("/registry/services/specs/default/kubernetes").as_deref(), Some("services"));
        assert_eq!(resource_of("/registry/services/endpoints/default/kubernetes").as_deref(), Some("endpoints"));
        assert_eq!(resource_of("/other/x"), None);
    }

    #[test]
    fn values_look_like_storage_envelopes() {
        let v = object_value("Pod", "v1", "x", 0, 500);
        assert!(v.starts_with(b"k8s\0"));
        assert_eq!(v.len(), 500);
    }

    /// Reads tests/fixtures/clusters/k8s-1.3{1..4}/pods.yaml.
    #[test]
    fn pod_filled_values_are_captured_pods_with_their_own_uids() {
        let a = object_value_filled(Filler::Pods, "Pod", "v1", "web-1", 0, 16 * 1024);
        let b = object_value_filled(Filler::Pods, "Pod", "v1", "web-2", 0, 16 * 1024);
        assert_eq!((a.len(), b.len()), (16 * 1024, 16 * 1024));
        assert!(a.starts_with(b"k8s\0"));
        let text = String::from_utf8_lossy(&a);
        assert!(text.contains("\"kind\":\"Pod\"") && text.contains("\"containers\""), "{}", &text[..300]);
        assert_eq!(a, object_value_filled(Filler::Pods, "Pod", "v1", "web-1", 0, 16 * 1024), "deterministic");
        // The same capture pod drawn for two objects differs in its uid.
        let uids = |v: &[u8]| -> Vec<String> {
            let t = String::from_utf8_lossy(v);
            t.match_indices("\"uid\":\"").map(|(i, m)| t[i + m.len()..].chars().take(36).collect()).collect()
        };
        let (ua, ub) = (uids(&a), uids(&b));
        assert!(!ua.is_empty() && ua.iter().all(|u| !ub.contains(u)), "{ua:?} / {ub:?}");
        // Shorter than the envelope: left as it is, as with letters.
        assert_eq!(
            object_value_filled(Filler::Pods, "Pod", "v1", "x", 0, 3).len(),
            object_value("Pod", "v1", "x", 0, 3).len()
        );
    }
}
