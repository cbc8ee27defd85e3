//! `members` (a live table), `defrag` (one member at a time, followers first, leader last, health
//! checked between) and `compact`.

use std::time::Duration;

use cpkit::Cluster;
use cpkit::error::{Error, ErrorKind, Result, TransportCause, transport_error};
use cpkit::etcd::direct::{EtcdTls, cluster_status, connect, etcd_error};
use cpkit::etcd::pods::{EtcdPod, etcdctl_with, status_via_exec};
use cpkit::etcd::status::{Alarm, ClusterStatus, MemberStatus};
use cpkit::output::{Table, human_bytes};

use crate::transport::RouteArgs;

/// Where the member operations go: exec in the pods, gRPC through one port-forward per member,
/// or direct gRPC.
pub enum Access {
    Exec { cluster: Box<Cluster>, pods: Vec<EtcdPod> },
    Tunnels { tunnels: Tunnels, tls: EtcdTls, quota: u64 },
    Direct { endpoints: Vec<String>, tls: EtcdTls },
}

/// A local tunnel to each member (member name → URL); the forwarders stop when this is dropped.
#[derive(Default)]
pub struct Tunnels {
    urls: Vec<(String, String)>,
    forwarders: Vec<tokio::task::JoinHandle<()>>,
}

impl Tunnels {
    fn url_of(&self, member: &str) -> Option<String> {
        self.urls.iter().find(|(n, _)| n == member).map(|(_, u)| u.clone())
    }

    /// One tunnel, for what any member answers (member list, compaction).
    fn any(&self) -> Vec<String> {
        self.urls.iter().map(|(_, u)| u.clone()).take(1).collect()
    }
}

impl Drop for Tunnels {
    fn drop(&mut self) {
        for f in &self.forwarders {
            f.abort();
        }
    }
}

pub async fn access(cluster: Option<&Cluster>, args: &RouteArgs) -> Result<Access> {
    if args.is_direct() {
        if args.endpoints.is_empty() {
            return Err(Error::usage("--via direct needs --endpoints", "e.g. --endpoints https://127.0.0.1:2379"));
        }
        return Ok(Access::Direct { endpoints: args.endpoints.clone(), tls: EtcdTls::load(&args.tls)? });
    }
    let cluster = cluster.ok_or_else(|| Error::usage("This needs a kubeconfig", "Use --via direct --endpoints ..."))?;
    let pods = crate::transport::find_pods(cluster).await?;
    if pods.is_empty() {
        return Err(crate::transport::pick_pod(&pods, None)
            .err()
            .unwrap_or_else(|| Error::failed("no etcd pods", "", "")));
    }
    match args.via {
        crate::transport::Via::PortForward => open_tunnels(cluster, &pods, args).await,
        // As --help says: port-forward when allowed (each member answers through its own
        // tunnel, in its own time), else etcdctl in a pod.
        crate::transport::Via::Auto => match open_tunnels(cluster, &pods, args).await {
            Ok(access) => Ok(access),
            Err(e) => {
                crate::transport::fall_back_note(&e, "using etcdctl in the pod instead");
                Ok(Access::Exec { cluster: Box::new(cluster.clone()), pods })
            }
        },
        _ => Ok(Access::Exec { cluster: Box::new(cluster.clone()), pods }),
    }
}

/// A port-forward to every running member and the client certificates, at once.
async fn open_tunnels(cluster: &Cluster, pods: &[EtcdPod], args: &RouteArgs) -> Result<Access> {
    let timeout = cluster.timeout().unwrap_or(Duration::from_secs(10));
    let first = crate::transport::pick_pod(pods, None)?;
    let running: Vec<&EtcdPod> = pods.iter().filter(|p| p.is_running()).collect();
    let (tls, opened) = tokio::join!(
        crate::save::tls_for(cluster, &first, &args.tls, timeout),
        futures::future::join_all(running.iter().map(|p| crate::transport::forward(cluster, p, timeout)))
    );
    let mut tunnels = Tunnels::default();
    let mut failure = None;
    for (pod, result) in running.iter().zip(opened) {
        match result {
            Ok((url, task)) => {
                tunnels.urls.push((pod.member.clone(), url));
                tunnels.forwarders.push(task);
            }
            Err(e) => failure = failure.or(Some(e)),
        }
    }
    // Returning early drops `tunnels`, which stops the ones already open.
    if let Some(e) = failure {
        return Err(e);
    }
    Ok(Access::Tunnels { tunnels, tls: tls?, quota: pods.iter().find_map(|p| p.quota_backend_bytes).unwrap_or(0) })
}

impl Access {
    pub async fn status(&self, timeout: Duration) -> Result<ClusterStatus> {
        let mut status = self.status_as_read(timeout).await?;
        // The quota is a flag of the members, not in their answers: read it from their pods.
        if status.quota_bytes == 0 {
            status.quota_bytes = match self {
                Access::Exec { pods, .. } => pods.iter().find_map(|p| p.quota_backend_bytes).unwrap_or(0),
                Access::Tunnels { quota, .. } => *quota,
                Access::Direct { .. } => 0,
            };
        }
        Ok(status)
    }

    async fn status_as_read(&self, timeout: Duration) -> Result<ClusterStatus> {
        match self {
            Access::Exec { cluster, pods } => {
                let pod = crate::transport::pick_pod(pods, None)?;
                status_via_exec(cluster, &pod, timeout, pods.len()).await
            }
            Access::Direct { endpoints, tls } => cluster_status(endpoints, tls, 0, timeout).await,
            Access::Tunnels { tunnels, tls, .. } => {
                // The member list through any tunnel, each member's status through its own.
                let source = "a port-forward to each member".to_string();
                cpkit::etcd::direct::cluster_status_through(&tunnels.any(), &tunnels.urls, tls, 0, timeout, source)
                    .await
            }
        }
    }

    fn pod_of(&self, m: &MemberStatus) -> Option<&EtcdPod> {
        match self {
            Access::Exec { pods, .. } => pods.iter().find(|p| p.member == m.name),
            Access::Direct { .. } | Access::Tunnels { .. } => None,
        }
    }

    async fn defrag_one(&self, m: &MemberStatus, timeout: Duration) -> Result<()> {
        match self {
            Access::Exec { cluster, .. } => {
                let pod = self.pod_of(m).ok_or_else(|| {
                    Error::new(
                        ErrorKind::NotFound,
                        format!("No pod for member {}", m.name),
                        "its static pod is not in kube-system",
                        "Defragment it with --via direct on its node.",
                    )
                })?;
                let t = format!("--command-timeout={}s", timeout.as_secs().max(5));
                let out = etcdctl_with(cluster, pod, &[&t, "defrag"], timeout).await?;
                if !out.success() {
                    return Err(Error::new(
                        ErrorKind::Failed,
                        format!("Defragmenting {} failed", m.name),
                        out.failure_reason(),
                        "The member keeps serving; look at its log before trying again.",
                    ));
                }
                Ok(())
            }
            Access::Direct { tls, .. } | Access::Tunnels { tls, .. } => {
                // Through the member's own tunnel (never its in-cluster address), or directly.
                let url = match self {
                    Access::Tunnels { tunnels, .. } => tunnels.url_of(&m.name).ok_or_else(|| {
                        Error::failed(
                            format!("Cannot reach etcd member {} through a port-forward", m.name),
                            "its pod is not running",
                            "Check the pod (kubectl -n kube-system get pods -l component=etcd) before going on.",
                        )
                    })?,
                    _ => m.endpoint.clone(),
                };
                let mut c = connect(std::slice::from_ref(&url), tls, timeout).await?;
                tokio::time::timeout(timeout, c.defragment())
                    .await
                    .map_err(|_| {
                        Error::failed(
                            format!("Defragmenting {} timed out", m.name),
                            "the member may still be defragmenting",
                            "Check it with kubectl etcdsnap members before going on.",
                        )
                    })?
                    .map_err(|e| etcd_error(&url, &e, Some(timeout)))?;
                Ok(())
            }
        }
    }

    /// Deactivates `alarms` (etcdctl alarm disarm: each alarm of each member).
    pub async fn disarm(&self, alarms: &[Alarm], timeout: Duration) -> Result<()> {
        match self {
            Access::Exec { cluster, pods } => {
                let pod = crate::transport::pick_pod(pods, None)?;
                let t = format!("--command-timeout={}s", timeout.as_secs().clamp(5, 60));
                let out = etcdctl_with(cluster, &pod, &[&t, "alarm", "disarm"], timeout).await?;
                if !out.success() {
                    return Err(Error::new(
                        ErrorKind::Failed,
                        "Disarming the alarms failed",
                        out.failure_reason(),
                        "Check the members with kubectl etcdsnap members.",
                    ));
                }
                Ok(())
            }
            Access::Direct { endpoints, tls } => disarm_at(endpoints, tls, alarms, timeout).await,
            Access::Tunnels { tunnels, tls, .. } => disarm_at(&tunnels.any(), tls, alarms, timeout).await,
        }
    }

    async fn compact(&self, revision: i64, timeout: Duration) -> Result<()> {
        match self {
            Access::Exec { cluster, pods } => {
                let pod = crate::transport::pick_pod(pods, None)?;
                let t = format!("--command-timeout={}s", timeout.as_secs().max(5));
                let rev = revision.to_string();
                let out = etcdctl_with(cluster, &pod, &[&t, "compaction", &rev, "--physical"], timeout).await?;
                if !out.success() {
                    return Err(Error::new(
                        ErrorKind::Failed,
                        "Compaction failed",
                        out.failure_reason(),
                        "Check the revision (it must not be older than the last compaction).",
                    ));
                }
                Ok(())
            }
            Access::Direct { endpoints, tls } => compact_at(endpoints, tls, revision, timeout).await,
            Access::Tunnels { tunnels, tls, .. } => compact_at(&tunnels.any(), tls, revision, timeout).await,
        }
    }
}

async fn disarm_at(endpoints: &[String], tls: &EtcdTls, alarms: &[Alarm], timeout: Duration) -> Result<()> {
    use etcd_client::{AlarmAction, AlarmOptions, AlarmType};
    let first = endpoints.first().cloned().unwrap_or_default();
    let mut c = connect(endpoints, tls, timeout).await?;
    for alarm in alarms {
        let kind = match alarm.alarm.as_str() {
            "NOSPACE" => AlarmType::Nospace,
            "CORRUPT" => AlarmType::Corrupt,
            _ => continue,
        };
        let mut options = AlarmOptions::new();
        options.with_member(alarm.member_id);
        tokio::time::timeout(timeout, c.alarm(AlarmAction::Deactivate, kind, Some(options)))
            .await
            .map_err(|_| transport_error("etcd", &first, TransportCause::Timeout, Some(timeout)))?
            .map_err(|e| etcd_error(&first, &e, Some(timeout)))?;
    }
    Ok(())
}

/// The alarms as a table: alarm, member, its ID.
pub fn alarms_table(s: &ClusterStatus, no_headers: bool) -> String {
    if s.alarms.is_empty() {
        return "No alarms.\n".to_string();
    }
    let mut t = Table::new(&["alarm", "member", "member id"]);
    for a in &s.alarms {
        t.row([a.alarm.clone(), s.member_name(a.member_id), format!("{:x}", a.member_id)]);
    }
    t.render(false, no_headers)
}

async fn compact_at(endpoints: &[String], tls: &EtcdTls, revision: i64, timeout: Duration) -> Result<()> {
    let first = endpoints.first().cloned().unwrap_or_default();
    let mut c = connect(endpoints, tls, timeout).await?;
    tokio::time::timeout(timeout, c.compact(revision, Some(etcd_client::CompactionOptions::new().with_physical())))
        .await
        .map_err(|_| transport_error("etcd", &first, TransportCause::Timeout, Some(timeout)))?
        .map_err(|e| etcd_error(&first, &e, Some(timeout)))?;
    Ok(())
}

pub fn members_table(s: &ClusterStatus, wide: bool, no_headers: bool) -> String {
    let leader = s.leader().map(|l| l.id);
    let mut t = Table::new(&[
        "member",
        "endpoint",
        "healthy",
        "leader",
        "version",
        "db size",
        "in use",
        "frag",
        "raft term",
        "raft index",
        "latency",
    ])
    .wide_columns(&["id", "error"])
    // Least needed in an incident first; -o wide has them all.
    .droppable(&["raft index", "raft term", "endpoint", "in use", "version", "latency"]);
    for m in &s.members {
        t.row([
            m.name.clone(),
            m.endpoint.clone(),
            if m.healthy { "true".into() } else { "false".into() },
            if Some(m.id) == leader { "*".into() } else { String::new() },
            m.version.clone().unwrap_or_else(|| "-".into()),
            m.db_size.map(human_bytes).unwrap_or_else(|| "-".into()),
            m.db_size_in_use.map(human_bytes).unwrap_or_else(|| "-".into()),
            m.fragmentation().map(|f| format!("{:.0}%", f * 100.0)).unwrap_or_else(|| "-".into()),
            m.raft_term.map(|v| v.to_string()).unwrap_or_else(|| "-".into()),
            m.raft_index.map(|v| v.to_string()).unwrap_or_else(|| "-".into()),
            m.latency.map(cpkit::duration::short_latency).unwrap_or_else(|| "-".into()),
            format!("{:x}", m.id),
            m.error.clone().unwrap_or_default(),
        ]);
    }
    let mut out = t.render(wide, no_headers);
    if !wide {
        // Why a member is down, which the narrow table has no room for.
        for m in s.members.iter().filter(|m| m.error.is_some()) {
            out.push_str(&format!("{}: {}\n", m.name, m.error.as_deref().unwrap_or_default()));
        }
    }
    if !s.alarms.is_empty() {
        out.push_str(&format!(
            "\nalarms: {}\n",
            s.alarms
                .iter()
                .map(|a| format!("{} on {}", a.alarm, s.member_name(a.member_id)))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    out
}

/// Followers first (largest reclaim first), the leader last.
pub fn defrag_order<'a>(s: &'a ClusterStatus, only: Option<&str>) -> Vec<&'a MemberStatus> {
    let leader = s.leader().map(|l| l.id);
    let live = s.live_data_bytes().unwrap_or(0);
    let mut v: Vec<&MemberStatus> =
        s.members.iter().filter(|m| only.is_none_or(|o| m.name == o || format!("{:x}", m.id) == o)).collect();
    v.sort_by_key(|m| (Some(m.id) == leader, std::cmp::Reverse(m.db_size.unwrap_or(0).saturating_sub(live))));
    v
}

/// Defragments `order` one at a time; after each, the member must be healthy again before the
/// next starts. Returns a line per member; stops at the first failure. `live` is the cluster's
/// live data (what a defragmented file holds).
pub async fn defrag(
    access: &Access,
    order: &[&MemberStatus],
    live: Option<u64>,
    timeout: Duration,
    log: &mut dyn FnMut(&str),
) -> Result<()> {
    for m in order {
        log(&format!(
            "defragmenting {} ({} → about {})…",
            m.name,
            m.db_size.map(human_bytes).unwrap_or_default(),
            m.db_size_in_use.into_iter().chain(live).min().map(human_bytes).unwrap_or_default()
        ));
        access.defrag_one(m, timeout).await?;
        // Health between members: the next one starts only if the cluster is whole again.
        let after = access.status(timeout.min(Duration::from_secs(5))).await?;
        let healthy = after.members.iter().find(|x| x.id == m.id).is_some_and(|x| x.healthy);
        let all = after.members.iter().all(|x| x.healthy);
        if !healthy || !all {
            return Err(Error::new(
                ErrorKind::Failed,
                format!("After defragmenting {}, the cluster is not healthy; stopping", m.name),
                after
                    .members
                    .iter()
                    .filter(|x| !x.healthy)
                    .map(|x| format!("{}: {}", x.name, x.error.clone().unwrap_or_default()))
                    .collect::<Vec<_>>()
                    .join("; "),
                "Check kubectl etcdsnap members; do not defragment more members until every one is healthy.",
            ));
        }
        let size = after.members.iter().find(|x| x.id == m.id).and_then(|x| x.db_size);
        log(&format!("  {} done: {} now, healthy", m.name, size.map(human_bytes).unwrap_or_default()));
    }
    Ok(())
}

pub async fn compact(access: &Access, revision: i64, timeout: Duration) -> Result<()> {
    access.compact(revision, timeout).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, id: u64, size: u64, used: u64) -> MemberStatus {
        MemberStatus {
            name: name.into(),
            id,
            db_size: Some(size),
            db_size_in_use: Some(used),
            leader_id: Some(2),
            healthy: true,
            ..Default::default()
        }
    }

    #[test]
    fn followers_first_leader_last() {
        let s = ClusterStatus {
            members: vec![member("a", 1, 100, 90), member("b", 2, 500, 100), member("c", 3, 300, 10)],
            ..Default::default()
        };
        let names: Vec<&str> = defrag_order(&s, None).iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["c", "a", "b"], "b leads; c reclaims the most");
        assert_eq!(defrag_order(&s, Some("a")).len(), 1);
    }
}
