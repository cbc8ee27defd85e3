//! The state of an etcd cluster (members, their status and health, alarms) from whichever
//! route reached it, and the verdict on it: quorum, leader, size against the quota, alarms,
//! fragmentation, versions, lag, latency.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::exit::Status;
use crate::output::human_bytes;
use crate::report::CheckResult;

/// etcd's default `--quota-backend-bytes`: 2 GiB.
pub const DEFAULT_QUOTA: u64 = 2 * 1024 * 1024 * 1024;

/// One member as seen by `member list`, `endpoint status` and `endpoint health`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberStatus {
    pub name: String,
    pub id: u64,
    pub endpoint: String,
    pub healthy: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub version: Option<String>,
    pub db_size: Option<u64>,
    pub db_size_in_use: Option<u64>,
    pub leader_id: Option<u64>,
    pub raft_term: Option<u64>,
    pub raft_index: Option<u64>,
    pub raft_applied_index: Option<u64>,
    pub revision: Option<i64>,
    #[serde(serialize_with = "opt_ms")]
    pub latency: Option<Duration>,
    pub is_learner: bool,
}

fn opt_ms<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_f64((d.as_secs_f64() * 1e6).round() / 1e3),
        None => s.serialize_none(),
    }
}

impl MemberStatus {
    pub fn is_leader(&self) -> bool {
        self.leader_id.is_some_and(|l| l == self.id && l != 0)
    }

    /// Share of the file not in use (what defragmentation would give back).
    pub fn fragmentation(&self) -> Option<f64> {
        match (self.db_size, self.db_size_in_use) {
            (Some(total), Some(used)) if total > 0 => Some(1.0 - used as f64 / total as f64),
            _ => None,
        }
    }
}

/// An etcd alarm (etcdserverpb.AlarmType).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Alarm {
    pub member_id: u64,
    /// `NOSPACE`, `CORRUPT`.
    pub alarm: String,
}

/// Everything gathered about one cluster.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    pub cluster_id: Option<u64>,
    pub members: Vec<MemberStatus>,
    pub alarms: Vec<Alarm>,
    /// `--quota-backend-bytes` (etcd's default when unset).
    pub quota_bytes: u64,
    /// How the status was obtained ("exec into kube-system/etcd-cp-1", "direct").
    pub source: String,
}

impl ClusterStatus {
    pub fn leader(&self) -> Option<&MemberStatus> {
        let leader_id = self.members.iter().filter(|m| m.healthy).find_map(|m| m.leader_id.filter(|l| *l != 0))?;
        self.members.iter().find(|m| m.id == leader_id)
    }

    pub fn member_name(&self, id: u64) -> String {
        self.members.iter().find(|m| m.id == id).map(|m| m.name.clone()).unwrap_or_else(|| format!("{id:x}"))
    }

    /// The live data, in bytes: the members' smallest size in use.
    pub fn live_data_bytes(&self) -> Option<u64> {
        live_data(self.members.iter())
    }
}

/// The smallest `dbSizeInUse` of `members`: each holds the same keyspace, and a larger figure
/// counts the pages a compaction freed that are released only at the member's next write
/// transaction (etcd `server/storage/backend/backend.go` computes the size in use from bbolt's
/// free pages when it commits), which NOSPACE refuses. Seen on etcd 3.6.16 after a compaction
/// under NOSPACE: 37.9 MiB in use, 30.4 MiB after defragmenting.
fn live_data<'m>(members: impl Iterator<Item = &'m MemberStatus>) -> Option<u64> {
    members.filter_map(|m| m.db_size_in_use).min()
}

// --- etcdctl JSON (what `etcdctl ... -w json` prints in 3.4/3.5) ---

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct MemberListJson {
    pub header: Option<HeaderJson>,
    pub members: Vec<MemberJson>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct HeaderJson {
    pub cluster_id: u64,
    pub member_id: u64,
    pub revision: i64,
    pub raft_term: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct MemberJson {
    #[serde(rename = "ID")]
    pub id: u64,
    pub name: String,
    #[serde(rename = "clientURLs")]
    pub client_urls: Vec<String>,
    #[serde(rename = "peerURLs")]
    pub peer_urls: Vec<String>,
    #[serde(rename = "isLearner")]
    pub is_learner: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointStatusJson {
    pub endpoint: String,
    pub status: StatusJson,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StatusJson {
    pub header: HeaderJson,
    pub version: String,
    pub db_size: u64,
    pub db_size_in_use: u64,
    pub leader: u64,
    pub raft_index: u64,
    pub raft_term: u64,
    pub raft_applied_index: u64,
    pub is_learner: bool,
    /// "etcdserver: no leader" and the active alarms ("memberID:123 alarm:NOSPACE ").
    pub errors: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub struct EndpointHealthJson {
    pub endpoint: String,
    pub health: bool,
    #[serde(default)]
    pub took: String,
    #[serde(default)]
    pub error: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AlarmListJson {
    pub alarms: Vec<AlarmJson>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AlarmJson {
    #[serde(rename = "memberID")]
    pub member_id: u64,
    pub alarm: u32,
}

/// etcdctl prints JSON after warnings on stderr; stdout may hold one JSON value.
fn json_part(text: &str) -> &str {
    let start = text.find(['[', '{']).unwrap_or(0);
    &text[start..]
}

/// etcdctl's `-w json` answer to `command`; an empty answer (no endpoint answered) is `T`'s default.
fn parse_json<T: serde::de::DeserializeOwned + Default>(text: &str, command: &str) -> Result<T, String> {
    let json = json_part(text);
    if json.trim().is_empty() {
        return Ok(T::default());
    }
    serde_json::from_str(json).map_err(|e| format!("unexpected `{command}` output: {e}"))
}

pub fn parse_member_list(text: &str) -> Result<MemberListJson, String> {
    serde_json::from_str(json_part(text)).map_err(|e| format!("unexpected `member list` output: {e}"))
}

pub fn parse_endpoint_status(text: &str) -> Result<Vec<EndpointStatusJson>, String> {
    parse_json(text, "endpoint status")
}

pub fn parse_endpoint_health(text: &str) -> Result<Vec<EndpointHealthJson>, String> {
    parse_json(text, "endpoint health")
}

/// The cluster's alarms as the members' statuses report them: each answering member lists every
/// active alarm in `errors` (etcd server/etcdserver/api/v3rpc/maintenance.go, `Status`; etcd 3.4
/// to 3.6), so they need no `etcdctl alarm list` of their own.
pub fn alarms_in_statuses(statuses: &[EndpointStatusJson]) -> AlarmListJson {
    let mut alarms: Vec<AlarmJson> = Vec::new();
    for error in statuses.iter().flat_map(|s| &s.status.errors) {
        let (mut member_id, mut alarm) = (None, None);
        // Protobuf's text form: fields apart by one or more spaces.
        for field in error.split_whitespace() {
            if let Some(id) = field.strip_prefix("memberID:") {
                member_id = id.parse().ok();
            } else if let Some(name) = field.strip_prefix("alarm:") {
                alarm = (1..=2).find(|code| alarm_name(*code) == name);
            }
        }
        if let (Some(member_id), Some(alarm)) = (member_id, alarm)
            && !alarms.iter().any(|a| a.member_id == member_id && a.alarm == alarm)
        {
            alarms.push(AlarmJson { member_id, alarm });
        }
    }
    AlarmListJson { alarms }
}

pub fn alarm_name(code: u32) -> String {
    match code {
        1 => "NOSPACE".into(),
        2 => "CORRUPT".into(),
        0 => "NONE".into(),
        n => format!("ALARM-{n}"),
    }
}

/// Go durations as etcdctl prints them (`10.266535ms`, `5.001074744s`).
pub fn parse_took(text: &str) -> Option<Duration> {
    crate::duration::parse_duration(text).ok()
}

/// A health check (a linearizable read through raft) slower than this says the member is slow:
/// etcd's own `--warning-apply-duration` default.
pub const SLOW_HEALTH_CHECK: Duration = Duration::from_millis(100);

/// One slow answer on a busy machine is not a slow member: with a second round of health
/// checks, each member keeps its faster answer.
pub fn keep_faster_health(first: &mut [EndpointHealthJson], second: &[EndpointHealthJson]) {
    for h in first.iter_mut() {
        let Some(again) = second.iter().find(|a| a.endpoint == h.endpoint && a.health) else { continue };
        if parse_took(&again.took) < parse_took(&h.took) || !h.health {
            h.took = again.took.clone();
            h.health = true;
            h.error = None;
        }
    }
}

/// Whether a round of health checks has a healthy member slower than [`SLOW_HEALTH_CHECK`].
pub fn any_slow_health(list: &[EndpointHealthJson]) -> bool {
    list.iter().any(|h| h.health && parse_took(&h.took).is_some_and(|t| t > SLOW_HEALTH_CHECK))
}

/// Lines of etcdctl's stderr that name a failed endpoint: "Failed to get the status of
/// endpoint https://... (context deadline exceeded)".
pub fn failed_endpoints(stderr: &str) -> Vec<(String, String)> {
    stderr
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("Failed to get the status of endpoint ")?;
            let (ep, reason) = rest.split_once(' ').unwrap_or((rest, ""));
            Some((ep.to_string(), reason.trim().trim_start_matches('(').trim_end_matches(')').to_string()))
        })
        .collect()
}

/// Combines etcdctl's four answers into a cluster status.
pub fn from_etcdctl(
    members: &MemberListJson,
    statuses: &[EndpointStatusJson],
    healths: &[EndpointHealthJson],
    alarms: &AlarmListJson,
    status_errors: &[(String, String)],
    quota_bytes: u64,
    source: &str,
) -> ClusterStatus {
    let mut out = ClusterStatus {
        cluster_id: members.header.as_ref().map(|h| h.cluster_id),
        members: Vec::new(),
        alarms: alarms.alarms.iter().map(|a| Alarm { member_id: a.member_id, alarm: alarm_name(a.alarm) }).collect(),
        quota_bytes,
        source: source.to_string(),
    };
    for m in &members.members {
        let endpoint = m.client_urls.first().cloned().unwrap_or_default();
        let status = statuses.iter().find(|s| s.status.header.member_id == m.id || m.client_urls.contains(&s.endpoint));
        let health = healths.iter().find(|h| m.client_urls.contains(&h.endpoint));
        let mut ms = MemberStatus {
            name: if m.name.is_empty() { format!("{:x} (unstarted)", m.id) } else { m.name.clone() },
            id: m.id,
            endpoint: endpoint.clone(),
            is_learner: m.is_learner,
            ..Default::default()
        };
        if let Some(s) = status {
            ms.version = Some(s.status.version.clone());
            ms.db_size = Some(s.status.db_size);
            ms.db_size_in_use = Some(s.status.db_size_in_use).filter(|v| *v > 0);
            ms.leader_id = Some(s.status.leader);
            ms.raft_term = Some(s.status.raft_term);
            ms.raft_index = Some(s.status.raft_index);
            ms.raft_applied_index = Some(s.status.raft_applied_index);
            ms.revision = Some(s.status.header.revision);
        }
        // etcdctl reports a member with an active alarm as unhealthy ("Active Alarm(s): NOSPACE"),
        // though it answers and counts for quorum; the alarm is judged on its own.
        ms.healthy = status.is_some() && health.is_none_or(|h| h.health || only_alarms(h));
        // A failed check's `took` is how long etcdctl waited before giving up, not a latency.
        ms.latency = health.filter(|h| h.health || only_alarms(h)).and_then(|h| parse_took(&h.took));
        // The alarm list etcdctl gives as a health error is the cluster's, not this member's:
        // the alarms are reported on their own, by the member that raised them.
        ms.error = health.filter(|h| !only_alarms(h)).and_then(|h| h.error.clone()).or_else(|| {
            let status_error = status_errors.iter().find(|(ep, _)| m.client_urls.contains(ep));
            status.is_none().then(|| status_error.map_or_else(|| "no status answer".into(), |(_, r)| r.clone()))
        });
        out.members.push(ms);
    }
    sort_by_name(&mut out.members);
    out
}

/// Members by name, as kubectl lists objects: etcd's member list and the probes give them by ID.
pub(crate) fn sort_by_name(members: &mut [MemberStatus]) {
    members.sort_by(|a, b| a.name.cmp(&b.name));
}

/// True when an endpoint is unhealthy only because of active alarms (etcdctl's `endpoint
/// health` reads the alarm list: etcd `etcdctl/ctlv3/command/ep_command.go`).
fn only_alarms(h: &EndpointHealthJson) -> bool {
    !h.health && h.error.as_deref().is_some_and(|e| e.trim_start().starts_with("Active Alarm(s):"))
}

/// Quorum of an n-member cluster.
pub fn quorum(n: usize) -> usize {
    n / 2 + 1
}

/// The quota in force: the members' `--quota-backend-bytes`, else etcd's default.
pub fn quota_of(s: &ClusterStatus) -> u64 {
    if s.quota_bytes > 0 { s.quota_bytes } else { DEFAULT_QUOTA }
}

/// Share of the quota the data in use may fill before compaction and defragmentation cannot
/// bring the database back under it with room to spare.
const DATA_FILLS_QUOTA: f64 = 0.9;

/// When the data itself (not the history or free pages) nearly fills the quota: compaction and
/// defragmentation cannot bring the database under it; the way out, with the numbers.
pub fn quota_shortfall(s: &ClusterStatus) -> Option<String> {
    let quota = quota_of(s);
    let in_use = s.live_data_bytes()?;
    (in_use as f64 >= quota as f64 * DATA_FILLS_QUOTA).then(|| {
        format!(
            "the data in use ({}) nearly fills the {} quota: compaction and defragmentation cannot bring the database under it. Delete what fills etcd (events, custom resources, Secrets of old Helm releases), or raise --quota-backend-bytes on every member, one at a time (etcd suggests at most 8 GiB)",
            human_bytes(in_use),
            human_bytes(quota)
        )
    })
}

/// Share of the quota a database file may fill for a disarm to hold: etcd refuses a write that
/// does not fit under the quota and raises NOSPACE again, so a file within 5% of it (a few
/// objects of ordinary size) is not worth disarming.
const DISARM_HEADROOM: f64 = 0.95;

/// Why disarming NOSPACE now would not last: a member's database file fills the quota (within
/// 5%), so etcd raises the alarm again at the next writes (etcd
/// `Documentation/op-guide/maintenance.md`, "Space quota": free space, then disarm). `None` when
/// there is no NOSPACE or disarming holds.
pub fn disarm_blocker(s: &ClusterStatus) -> Option<String> {
    if !s.alarms.iter().any(|a| a.alarm == "NOSPACE") {
        return None;
    }
    // A member whose size is unknown may be the full one: disarming blind is not judged safe.
    let unknown: Vec<&str> = s.members.iter().filter(|m| m.db_size.is_none()).map(|m| m.name.as_str()).collect();
    if !unknown.is_empty() {
        return Some(format!(
            "the database size of {} is unknown (its status did not answer), so whether etcd would raise NOSPACE again at the next writes cannot be told. Check it with `kubectl etcdsnap members`, then disarm again",
            unknown.join(", ")
        ));
    }
    let quota = quota_of(s);
    let full: Vec<String> = s
        .members
        .iter()
        .filter_map(|m| {
            m.db_size
                .filter(|d| *d as f64 >= quota as f64 * DISARM_HEADROOM)
                .map(|d| format!("{} ({})", m.name, human_bytes(d)))
        })
        .collect();
    if full.is_empty() {
        return None;
    }
    let way_out = quota_shortfall(s).unwrap_or_else(|| {
        "Free space first: `kubectl etcdsnap compact --yes`, then `kubectl etcdsnap defrag --all --yes`".into()
    });
    let (files, fill) = if full.len() == 1 { ("file", "fills") } else { ("files", "fill") };
    Some(format!(
        "the database {files} of {} {fill} the {} quota (less than 5% left), so etcd would raise NOSPACE again at the next writes. {way_out}",
        full.join(", "),
        human_bytes(quota)
    ))
}

/// The last step of every NOSPACE recovery.
const DISARM: &str = "kubectl etcdsnap alarm disarm   # shows the plan; again with --yes";

/// What frees a NOSPACE alarm, by the numbers: when the data in use nearly fills the quota,
/// compaction and defragmentation free nothing that matters, so the quota must grow (and what
/// fills it be found); otherwise compact at the current revision and defragment. Both end with
/// the alarm disarmed (etcd `Documentation/op-guide/maintenance.md`, "Space quota").
fn nospace_fix(r: &mut CheckResult, healthy: &[&&MemberStatus], quota: u64) {
    let in_use = live_data(healthy.iter().map(|m| **m));
    let size = healthy.iter().filter_map(|m| m.db_size).max();
    let revision = healthy.iter().filter_map(|m| m.revision).max();
    let risk = "medium: a member does not serve while it defragments; take a snapshot first (kubectl etcdsnap save)";
    match in_use {
        Some(used) if used as f64 >= quota as f64 * 0.9 => {
            // The suggested maximum is 8 GiB; double, capped there, at least one step up.
            let next = (quota.saturating_mul(2)).clamp(quota + (1 << 30), 8 << 30).max(quota + (1 << 30));
            r.fix(
                format!(
                    "The data in use ({}) nearly fills the {} quota: compaction and defragmentation cannot free enough. Raise --quota-backend-bytes on every member (one at a time, e.g. to {}), find what fills etcd (events, CRDs, Secrets of old Helm releases) and delete it, then disarm the alarm.",
                    human_bytes(used),
                    human_bytes(quota),
                    human_bytes(next)
                ),
                &[
                    &format!("# /etc/kubernetes/manifests/etcd.yaml on each node: --quota-backend-bytes={next}"),
                    DISARM,
                ],
                "medium: each member restarts; keep quorum by going one at a time; take a snapshot first (kubectl etcdsnap save)",
            );
        }
        _ => {
            let freed = match (size, in_use) {
                (Some(s), Some(u)) if s > u => format!(" (about {} can be freed)", human_bytes(s - u)),
                _ => String::new(),
            };
            let upto = revision.map(|rev| format!(" (up to revision {rev})")).unwrap_or_default();
            r.fix(
                format!("etcd refuses writes until space is freed and the alarm disarmed: compact old revisions{upto}, defragment one member at a time (followers first){freed}, then disarm."),
                &[
                    "kubectl etcdsnap compact        # shows the plan; again with --yes",
                    "kubectl etcdsnap defrag --all   # one member at a time, leader last",
                    DISARM,
                ],
                risk,
            );
        }
    }
}

/// The verdict on an etcd cluster.
pub fn judge(status: &ClusterStatus) -> CheckResult {
    let mut r = CheckResult::ok("etcd", "");
    let voting: Vec<&MemberStatus> = status.members.iter().filter(|m| !m.is_learner).collect();
    let n = voting.len();
    let healthy: Vec<&&MemberStatus> = voting.iter().filter(|m| m.healthy).collect();
    let q = quorum(n);
    let leader = status.leader();
    r.push_evidence("source", status.source.clone());
    r.push_evidence("members", format!("{} of {n} healthy (quorum {q})", healthy.len()));
    if let Some(id) = status.cluster_id {
        r.push_evidence("cluster ID", format!("{id:x}"));
    }
    let mut parts = Vec::new();

    for m in &status.members {
        let mut text = vec![m.endpoint.clone()];
        if m.is_leader() {
            text.push("leader".into());
        }
        if m.is_learner {
            text.push("learner".into());
        }
        if let Some(v) = &m.version {
            text.push(v.clone());
        }
        if let Some(size) = m.db_size {
            let used = m.db_size_in_use.map(|u| format!(" ({} in use)", human_bytes(u))).unwrap_or_default();
            text.push(format!("db {}{used}", human_bytes(size)));
        }
        if let (Some(t), Some(i)) = (m.raft_term, m.raft_index) {
            text.push(format!("term {t}, index {i}"));
        }
        if let Some(l) = m.latency {
            text.push(crate::duration::short_latency(l));
        }
        let (st, msg) = if m.healthy {
            let slow = m.latency.is_some_and(|l| l > SLOW_HEALTH_CHECK);
            if slow { (Status::Warning, format!("slow: {}", text.join(", "))) } else { (Status::Ok, text.join(", ")) }
        } else {
            (
                Status::Critical,
                format!("unreachable or unhealthy: {} ({})", m.endpoint, m.error.as_deref().unwrap_or("no answer")),
            )
        };
        r.sub(format!("member {}", m.name), st, msg);
    }

    // Quorum and availability.
    if n == 0 {
        r.status = Status::Unknown;
        r.message = "no etcd members listed".into();
        return r;
    }
    let down: Vec<&str> = voting.iter().filter(|m| !m.healthy).map(|m| m.name.as_str()).collect();
    if healthy.len() < q {
        r.raise(Status::Critical);
        parts.push(format!(
            "QUORUM LOST: {} of {n} members healthy (need {q}); down: {}",
            healthy.len(),
            down.join(", ")
        ));
        r.fix(
            "Bring the stopped members back (on each node: `crictl ps -a --name etcd`, then `crictl logs` of the exited container). If a majority is lost for good, restore EVERY member from the SAME snapshot — never one member alone: `kubectl etcdsnap ls` lists the snapshots, `kubectl etcdsnap restore-plan` writes the steps for one.",
            &["kubectl etcdsnap ls"],
            "very high: the API server cannot write until quorum returns; a wrong restore loses data",
        );
    } else if !down.is_empty() {
        r.raise(Status::Warning);
        let tolerance = healthy.len() - q;
        parts.push(format!(
            "member {} down, quorum kept ({} of {n} healthy; tolerates {tolerance} more failure{})",
            down.join(", "),
            healthy.len(),
            if tolerance == 1 { "" } else { "s" }
        ));
        let ids: Vec<String> = voting
            .iter()
            .filter(|m| !m.healthy)
            .map(|m| if m.id == 0 { m.name.clone() } else { format!("{:x}", m.id) })
            .collect();
        r.fix(
            format!(
                "Check {} on its node (`crictl ps -a --name etcd`, then `crictl logs` of the exited container; disk space, certificates). Do not restart or upgrade healthy members until it is back. If its data is lost, replace it: `etcdctl member remove {}`, clear its data dir, `etcdctl member add`, start it with --initial-cluster-state=existing.",
                down.join(", "),
                ids.join(" ")
            ),
            &[],
            "high: another member failure now loses quorum",
        );
    }
    if n.is_multiple_of(2) {
        r.raise(Status::Warning);
        parts.push(format!("{n} members: an even count tolerates no more failures than {}", n - 1));
        r.fix("Run an odd number of members (3 or 5).", &[], "medium: membership changes need care");
    }

    // Leader.
    let leaders: std::collections::BTreeSet<u64> =
        healthy.iter().filter_map(|m| m.leader_id.filter(|l| *l != 0)).collect();
    match (leader, leaders.len()) {
        (_, 0) if !healthy.is_empty() => {
            r.raise(Status::Critical);
            parts.push("no leader".into());
        }
        (_, k) if k > 1 => {
            r.raise(Status::Warning);
            parts.push(format!(
                "members disagree on the leader ({})",
                leaders.iter().map(|l| status.member_name(*l)).collect::<Vec<_>>().join(", ")
            ));
        }
        (Some(l), _) => r.push_evidence("leader", format!("{} (term {})", l.name, l.raft_term.unwrap_or(0))),
        _ => {}
    }

    // Alarms, one line per kind.
    let quota = if status.quota_bytes == 0 { DEFAULT_QUOTA } else { status.quota_bytes };
    let mut kinds: std::collections::BTreeMap<&str, Vec<String>> = std::collections::BTreeMap::new();
    for a in &status.alarms {
        kinds.entry(a.alarm.as_str()).or_default().push(status.member_name(a.member_id));
    }
    for (kind, members) in &kinds {
        r.raise(Status::Critical);
        let size = healthy.iter().filter_map(|m| m.db_size).max();
        let detail = match (*kind, size) {
            ("NOSPACE", Some(s)) => {
                format!(": etcd refuses writes (db {} of the {} quota)", human_bytes(s), human_bytes(quota))
            }
            ("NOSPACE", None) => ": etcd refuses writes".to_string(),
            _ => String::new(),
        };
        parts.push(format!("{kind} alarm raised by {}{detail}", members.join(", ")));
        if *kind == "NOSPACE" {
            nospace_fix(&mut r, &healthy, quota);
        } else {
            r.fix(
                "A CORRUPT alarm means members' data diverged: stop writes, find the odd member (`etcdctl endpoint hashkv --cluster`), replace it from the healthy ones.",
                &[],
                "very high",
            );
        }
    }

    // Size and fragmentation.
    if let Some(largest) = healthy.iter().filter_map(|m| m.db_size).max() {
        let pct = largest as f64 / quota as f64 * 100.0;
        r.push_evidence("db size", format!("{} of {} quota ({pct:.0}%)", human_bytes(largest), human_bytes(quota)));
        if pct > 80.0 && !status.alarms.iter().any(|a| a.alarm == "NOSPACE") {
            r.raise(Status::Warning);
            parts.push(format!("db {} is {pct:.0}% of the {} quota", human_bytes(largest), human_bytes(quota)));
            r.fix(
                "Find what grows (`kubectl etcdsnap status` on a snapshot lists objects per resource; events and leases are the usual suspects), compact and defragment, or raise --quota-backend-bytes (2 GiB default, 8 GiB suggested maximum).",
                &["kubectl etcdsnap defrag --all"],
                "medium: past the quota etcd raises NOSPACE and refuses all writes",
            );
        }
    }
    let frag: Vec<(&str, f64, u64)> = healthy
        .iter()
        .filter_map(|m| Some((m.name.as_str(), m.fragmentation()?, m.db_size? - m.db_size_in_use.unwrap_or(0))))
        .collect();
    if let Some((name, f, free)) = frag.iter().copied().max_by(|a, b| a.2.cmp(&b.2))
        && f > 0.5
        && free as f64 > quota as f64 * 0.1
    {
        r.raise(Status::Warning);
        parts.push(format!("{:.0}% of {name}'s db is free pages ({}): defragment", f * 100.0, human_bytes(free)));
        r.fix(
            "Defragment one member at a time, followers first and the leader last, checking health in between.",
            &["kubectl etcdsnap defrag --all"],
            "medium: a defragmenting member blocks reads and writes for the duration (seconds per GB)",
        );
    }

    // Versions and lag.
    let versions: std::collections::BTreeSet<&str> = healthy.iter().filter_map(|m| m.version.as_deref()).collect();
    if versions.len() > 1 {
        r.raise(Status::Warning);
        parts.push(format!(
            "mixed versions ({}): finish the upgrade",
            versions.iter().copied().collect::<Vec<_>>().join(", ")
        ));
    } else if let Some(v) = versions.iter().next() {
        r.push_evidence("version", v.to_string());
    }
    let applied: Vec<(&str, u64)> =
        healthy.iter().filter_map(|m| Some((m.name.as_str(), m.raft_applied_index?))).collect();
    if let (Some(max), Some((lagging, min))) =
        (applied.iter().map(|a| a.1).max(), applied.iter().min_by_key(|a| a.1).copied())
        && max - min > 5000
    {
        r.raise(Status::Warning);
        parts.push(format!("{lagging} lags {} raft entries behind", max - min));
    }
    if r.subchecks.iter().any(|s| s.status == Status::Warning && s.message.starts_with("slow")) {
        r.raise(Status::Warning);
        parts.push("slow members (health check > 100ms): check disk latency (etcd needs fast fsync)".into());
    }

    if parts.is_empty() {
        let leader_text = leader.map(|l| format!(", leader {}", l.name)).unwrap_or_default();
        let size = healthy
            .iter()
            .filter_map(|m| m.db_size)
            .max()
            .map(|s| format!(", db {} ({:.0}% of quota)", human_bytes(s), s as f64 / quota as f64 * 100.0))
            .unwrap_or_default();
        r.message = format!("{}/{n} members healthy{leader_text}{size}", healthy.len());
    } else {
        r.message = crate::report::one_line(&parts);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_round_of_health_checks_keeps_each_members_faster_answer() {
        let round = |took: [&str; 2]| -> Vec<EndpointHealthJson> {
            ["https://127.0.0.2:2379", "https://127.0.0.3:2379"]
                .iter()
                .zip(took)
                .map(|(e, t)| EndpointHealthJson { endpoint: e.to_string(), health: true, took: t.into(), error: None })
                .collect()
        };
        let mut first = round(["240.5ms", "4ms"]);
        assert!(any_slow_health(&first));
        keep_faster_health(&mut first, &round(["6.1ms", "180ms"]));
        assert_eq!(first.iter().map(|h| h.took.as_str()).collect::<Vec<_>>(), ["6.1ms", "4ms"]);
        assert!(!any_slow_health(&first), "a member slow twice would stay slow; this one was not");
        let mut slow = round(["240ms", "4ms"]);
        keep_faster_health(&mut slow, &round(["310ms", "5ms"]));
        assert!(any_slow_health(&slow), "slow in both rounds: a slow member");
    }

    const MEMBERS: &str = r#"{"header":{"cluster_id":10636043235793592181,"member_id":1184007597127642154,"raft_term":3},"members":[{"ID":1184007597127642154,"name":"cp-1","peerURLs":["https://127.0.0.2:35923"],"clientURLs":["https://127.0.0.2:41799"]},{"ID":1211875598812016075,"name":"cp-2","peerURLs":["https://127.0.0.3:43543"],"clientURLs":["https://127.0.0.3:33593"]},{"ID":13663359007286415756,"name":"cp-3","peerURLs":["https://127.0.0.4:39669"],"clientURLs":["https://127.0.0.4:42261"]}]}"#;
    // Real etcdctl 3.4 output with cp-3 down (captured from the test kit's etcd-member-down).
    const STATUS_TWO: &str = r#"[{"Endpoint":"https://127.0.0.2:41799","Status":{"header":{"cluster_id":10636043235793592181,"member_id":1184007597127642154,"revision":6,"raft_term":3},"version":"3.4.23","dbSize":262144,"leader":1211875598812016075,"raftIndex":17,"raftTerm":3,"raftAppliedIndex":17,"dbSizeInUse":262144}},{"Endpoint":"https://127.0.0.3:33593","Status":{"header":{"cluster_id":10636043235793592181,"member_id":1211875598812016075,"revision":6,"raft_term":3},"version":"3.4.23","dbSize":262144,"leader":1211875598812016075,"raftIndex":17,"raftTerm":3,"raftAppliedIndex":17,"dbSizeInUse":262144}}]"#;
    const HEALTH: &str = r#"[{"endpoint":"https://127.0.0.2:41799","health":true,"took":"5.764091ms"},{"endpoint":"https://127.0.0.3:33593","health":true,"took":"5.445465ms"},{"endpoint":"https://127.0.0.4:42261","health":false,"took":"5.001074744s","error":"context deadline exceeded"}]"#;
    const STDERR: &str = "{\"level\":\"warn\",\"msg\":\"retrying\"}\nFailed to get the status of endpoint https://127.0.0.4:42261 (context deadline exceeded)\n";

    fn parse_alarm_list(text: &str) -> Result<AlarmListJson, String> {
        parse_json(text, "alarm list")
    }

    #[test]
    fn the_alarms_come_with_the_statuses() {
        // `etcdctl endpoint status -w json` under NOSPACE: Debian's etcd 3.4.23 (the simulated
        // etcd-nospace) and etcd 3.6.16 (the real one), each member listing both alarms.
        let errors_34 =
            r#"["memberID:3542732785468986792 alarm:NOSPACE ","memberID:9056343489444415065 alarm:NOSPACE "]"#;
        let errors_36 =
            r#"["memberID:16558758182256318546 alarm:NOSPACE ","memberID:13148557906461751675 alarm:NOSPACE "]"#;
        for (errors, first, second) in [
            (errors_34, 3542732785468986792, 9056343489444415065),
            (errors_36, 16558758182256318546, 13148557906461751675),
        ] {
            let with_errors = STATUS_TWO.replace(r#""dbSizeInUse""#, &format!(r#""errors":{errors},"dbSizeInUse""#));
            let alarms = alarms_in_statuses(&parse_endpoint_status(&with_errors).unwrap()).alarms;
            let got: Vec<(u64, u32)> = alarms.iter().map(|a| (a.member_id, a.alarm)).collect();
            assert_eq!(got, [(first, 1), (second, 1)], "once each, in the order etcd lists them");
        }
        // No leader is an error, not an alarm; extra spaces (protobuf's text form) and CORRUPT read.
        let other = STATUS_TWO.replace(
            r#""dbSizeInUse""#,
            r#""errors":["etcdserver: no leader","memberID:7  alarm:CORRUPT"],"dbSizeInUse""#,
        );
        let alarms = alarms_in_statuses(&parse_endpoint_status(&other).unwrap()).alarms;
        assert_eq!(alarms.iter().map(|a| (a.member_id, a.alarm)).collect::<Vec<_>>(), [(7, 2)]);
        assert!(alarms_in_statuses(&parse_endpoint_status(STATUS_TWO).unwrap()).alarms.is_empty());
    }

    fn status(statuses: &str, health: &str, alarms: &str, quota: u64) -> ClusterStatus {
        from_etcdctl(
            &parse_member_list(MEMBERS).unwrap(),
            &parse_endpoint_status(statuses).unwrap(),
            &parse_endpoint_health(health).unwrap(),
            &parse_alarm_list(alarms).unwrap(),
            &failed_endpoints(STDERR),
            quota,
            "test",
        )
    }

    #[test]
    fn one_member_down_keeps_quorum_and_names_it() {
        let s = status(STATUS_TWO, HEALTH, "{}", 0);
        assert_eq!(s.members.len(), 3);
        assert!(!s.members[2].healthy);
        assert_eq!(s.members[2].error.as_deref(), Some("context deadline exceeded"));
        // Its 5 s is how long etcdctl waited, not how fast it answered.
        assert_eq!((s.members[0].latency, s.members[2].latency), (Some(Duration::from_nanos(5_764_091)), None));
        assert_eq!(s.leader().map(|l| l.name.as_str()), Some("cp-2"));
        let r = judge(&s);
        assert_eq!(r.status, Status::Warning);
        assert!(
            r.message.contains("member cp-3 down, quorum kept (2 of 3 healthy; tolerates 0 more failures)"),
            "{}",
            r.message
        );
        assert_eq!(r.subchecks.iter().find(|s| s.name == "member cp-3").unwrap().status, Status::Critical);
    }

    #[test]
    fn members_are_listed_by_name_whatever_their_ids() {
        // The real world's etcd 3.6 answered member list with cp-2 first (the lowest ID).
        let by_id = MEMBERS.replacen(r#""name":"cp-1""#, r#""name":"cp-9""#, 1);
        let s = from_etcdctl(
            &parse_member_list(&by_id).unwrap(),
            &parse_endpoint_status(STATUS_TWO).unwrap(),
            &parse_endpoint_health(HEALTH).unwrap(),
            &parse_alarm_list("{}").unwrap(),
            &[],
            0,
            "test",
        );
        let names: Vec<&str> = s.members.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["cp-2", "cp-3", "cp-9"]);
        assert_eq!(s.members[2].endpoint, "https://127.0.0.2:41799", "each member keeps its own facts");
    }

    #[test]
    fn quorum_lost_is_critical() {
        let one = r#"[{"Endpoint":"https://127.0.0.2:41799","Status":{"header":{"cluster_id":1,"member_id":1184007597127642154,"revision":6,"raft_term":3},"version":"3.4.23","dbSize":262144,"leader":0,"raftIndex":17,"raftTerm":3,"raftAppliedIndex":17,"dbSizeInUse":262144}}]"#;
        let r = judge(&status(one, "[]", "{}", 0));
        assert_eq!(r.status, Status::Critical);
        assert!(r.message.contains("QUORUM LOST: 1 of 3"), "{}", r.message);
    }

    #[test]
    fn nospace_alarm_is_critical_with_the_runbook_steps() {
        let three = STATUS_TWO.replace("]", r#",{"Endpoint":"https://127.0.0.4:42261","Status":{"header":{"cluster_id":1,"member_id":13663359007286415756,"revision":6,"raft_term":3},"version":"3.4.23","dbSize":262144,"leader":1211875598812016075,"raftIndex":17,"raftTerm":3,"raftAppliedIndex":17,"dbSizeInUse":262144}}]"#);
        let healthy = HEALTH.replace(
            r#""health":false,"took":"5.001074744s","error":"context deadline exceeded""#,
            r#""health":true,"took":"3ms""#,
        );
        let s = status(&three, &healthy, r#"{"alarms":[{"memberID":1211875598812016075,"alarm":1}]}"#, 0);
        let r = judge(&s);
        assert_eq!(r.status, Status::Critical);
        assert!(
            r.message.contains("NOSPACE alarm raised by cp-2: etcd refuses writes (db 256.0 KiB of the 2.0 GiB quota)"),
            "{}",
            r.message
        );
        assert!(r.remediation.iter().any(|f| f.commands.iter().any(|c| c.contains("alarm disarm"))));
    }

    #[test]
    fn the_live_data_is_the_smallest_size_in_use() {
        // The kit's real etcd-nospace (etcd 3.6.16, 40 MiB quota) right after `etcdsnap compact`:
        // two members still count the pages the compaction freed; defragmenting brought all three
        // to 30.4 MiB. The data does not fill the quota: compaction and defragmentation help.
        let mib = 1024 * 1024;
        let mut s = status(STATUS_TWO, HEALTH, r#"{"alarms":[{"memberID":1211875598812016075,"alarm":1}]}"#, 40 * mib);
        for (m, (size, in_use)) in
            s.members.iter_mut().zip([(44 * mib, 30 * mib), (40 * mib, 38 * mib), (40 * mib, 37 * mib)])
        {
            (m.healthy, m.db_size, m.db_size_in_use) = (true, Some(size), Some(in_use));
        }
        assert_eq!(s.live_data_bytes(), Some(30 * mib));
        assert_eq!(quota_shortfall(&s), None);
        let r = judge(&s);
        assert!(r.remediation[0].action.contains("compact old revisions"), "{}", r.remediation[0].action);
    }

    #[test]
    fn disarming_waits_until_the_database_is_under_its_quota() {
        let mib = 1024 * 1024;
        // (db size, in use, quota) → blocked, and what the way out says.
        let cases: [(u64, u64, u64, Option<&str>); 4] = [
            (40 * mib, 39 * mib, 40 * mib, Some("the data in use (39.0 MiB) nearly fills the 40.0 MiB quota")),
            (40 * mib, 4 * mib, 40 * mib, Some("Free space first: `kubectl etcdsnap compact --yes`")),
            (
                39 * mib,
                4 * mib,
                40 * mib,
                Some(
                    "of cp-1 (39.0 MiB), cp-2 (39.0 MiB), cp-3 (39.0 MiB) fill the 40.0 MiB quota (less than 5% left)",
                ),
            ),
            (8 * mib, 4 * mib, 40 * mib, None),
        ];
        for (size, in_use, quota, says) in cases {
            let mut s = status(STATUS_TWO, HEALTH, r#"{"alarms":[{"memberID":1211875598812016075,"alarm":1}]}"#, quota);
            for m in &mut s.members {
                m.db_size = Some(size);
                m.db_size_in_use = Some(in_use);
            }
            let blocker = disarm_blocker(&s);
            match says {
                Some(text) => {
                    let b = blocker.expect("blocked");
                    assert!(b.starts_with("the database files of"), "{b}");
                    assert!(b.contains(text), "{b}");
                }
                None => assert!(blocker.is_none(), "{blocker:?}"),
            }
        }
        // A member that did not answer may be the full one: refused, naming it.
        let mut s = status(STATUS_TWO, HEALTH, r#"{"alarms":[{"memberID":1211875598812016075,"alarm":1}]}"#, 40 * mib);
        for m in &mut s.members {
            m.db_size = Some(8 * mib);
        }
        s.members[1].db_size = None;
        let b = disarm_blocker(&s).expect("blocked while a size is unknown");
        assert!(b.contains(&format!("the database size of {} is unknown", s.members[1].name)), "{b}");
        // No NOSPACE alarm: nothing to block.
        assert!(disarm_blocker(&status(STATUS_TWO, HEALTH, "{}", 40 * mib)).is_none());
    }

    #[test]
    fn the_nospace_fix_follows_the_numbers() {
        let mib = 1024 * 1024;
        // (db size, in use, quota) → what the fix must say and run.
        let cases: [(u64, u64, u64, &str, &str); 2] = [
            // Fragmented: compaction and defrag free it; compact at the real revision.
            (
                64 * mib,
                12 * mib,
                64 * mib,
                "compact old revisions (up to revision 6), defragment one member at a time (followers first) (about 52.0 MiB can be freed)",
                "kubectl etcdsnap compact",
            ),
            // The data itself fills the quota: only a bigger quota helps.
            (
                64 * mib,
                62 * mib,
                64 * mib,
                "The data in use (62.0 MiB) nearly fills the 64.0 MiB quota: compaction and defragmentation cannot free enough",
                "--quota-backend-bytes=1140850688",
            ),
        ];
        for (size, in_use, quota, says, runs) in cases {
            let mut s = status(STATUS_TWO, HEALTH, r#"{"alarms":[{"memberID":1211875598812016075,"alarm":1}]}"#, quota);
            for m in &mut s.members {
                m.db_size = Some(size);
                m.db_size_in_use = Some(in_use);
            }
            let r = judge(&s);
            let fix = r.remediation.iter().find(|f| f.commands.iter().any(|c| c == DISARM)).unwrap();
            assert!(fix.action.contains(says), "{}", fix.action);
            assert!(fix.commands.iter().any(|c| c.contains(runs)), "{:?}", fix.commands);
            assert_eq!(fix.commands.last().map(String::as_str), Some(DISARM));
            assert!(!fix.commands.iter().any(|c| c.contains('<')), "no placeholder: {:?}", fix.commands);
        }
        // The member to replace is named by its real ID.
        let r = judge(&status(STATUS_TWO, HEALTH, "{}", 0));
        assert!(
            r.remediation[0].action.contains("etcdctl member remove bd9e00a023f0d18c"),
            "{}",
            r.remediation[0].action
        );
    }

    #[test]
    fn members_that_report_only_an_alarm_are_up() {
        // `etcdctl endpoint health --cluster -w json` of etcd 3.6.16 under NOSPACE, taken on the
        // kit's real control plane (scenario etcd-nospace): every member answers, all "unhealthy".
        let three = STATUS_TWO.replace("]", r#",{"Endpoint":"https://127.0.0.4:42261","Status":{"header":{"cluster_id":1,"member_id":13663359007286415756,"revision":6,"raft_term":3},"version":"3.6.16","dbSize":262144,"leader":1211875598812016075,"raftIndex":17,"raftTerm":3,"raftAppliedIndex":17,"dbSizeInUse":262144}}]"#);
        let health = r#"[{"endpoint":"https://127.0.0.2:41799","health":false,"took":"6.624493ms","error":"Active Alarm(s): NOSPACE "},{"endpoint":"https://127.0.0.3:33593","health":false,"took":"7.878744ms","error":"Active Alarm(s): NOSPACE "},{"endpoint":"https://127.0.0.4:42261","health":false,"took":"9.446676ms","error":"Active Alarm(s): NOSPACE "}]"#;
        let s = status(&three, health, r#"{"alarms":[{"memberID":1211875598812016075,"alarm":1}]}"#, 0);
        assert!(s.members.iter().all(|m| m.healthy && m.latency.is_some()), "{:?}", s.members);
        // Nor is it an error of each member: the one alarm was raised by cp-2 alone.
        assert!(s.members.iter().all(|m| m.error.is_none()), "{:?}", s.members);
        let r = judge(&s);
        assert_eq!(r.status, Status::Critical);
        assert!(!r.message.contains("QUORUM LOST"), "{}", r.message);
        assert!(r.message.contains("NOSPACE alarm raised by cp-2: etcd refuses writes"), "{}", r.message);
    }

    #[test]
    fn size_near_quota_and_fragmentation_warn() {
        let mut s = status(STATUS_TWO, HEALTH, "{}", 64 * 1024 * 1024);
        for m in &mut s.members {
            m.healthy = true;
            m.db_size = Some(56 * 1024 * 1024);
            m.db_size_in_use = Some(4 * 1024 * 1024);
            m.leader_id = Some(1211875598812016075);
            m.latency = Some(Duration::from_millis(3));
        }
        let r = judge(&s);
        assert_eq!(r.status, Status::Warning);
        assert!(r.message.contains("88% of the 64.0 MiB quota"), "{}", r.message);
        assert!(r.message.contains("free pages"), "{}", r.message);
        // A healthy, compact cluster is OK.
        for m in &mut s.members {
            m.db_size = Some(3 * 1024 * 1024);
            m.db_size_in_use = Some(2 * 1024 * 1024);
        }
        let ok = judge(&s);
        assert_eq!(ok.status, Status::Ok, "{}", ok.message);
        assert!(ok.message.starts_with("3/3 members healthy, leader cp-2"), "{}", ok.message);
    }

    #[test]
    fn took_durations() {
        assert_eq!(parse_took("10.266535ms").unwrap().as_micros(), 10266);
        assert_eq!(parse_took("5.001074744s").unwrap().as_millis(), 5001);
    }
}
