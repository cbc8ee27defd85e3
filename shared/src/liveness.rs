//! Is an API server replica alive? What the API says decides: its identity lease, its place in
//! the `kubernetes` EndpointSlice, its static pod. Dialling its address from this machine is
//! extra evidence, never the verdict: through a bastion, an access proxy or a private endpoint
//! (EKS lists private ENI addresses) a healthy replica cannot be dialled from a laptop.
//!
//! Identity leases (KEP-1965, on by default since 1.26; kubernetes
//! `pkg/controlplane/apiserver/options`, `pkg/controlplane/controller/apiserverleasegc`):
//! `kube-system/apiserver-<hash>`, labels `apiserver.kubernetes.io/identity=kube-apiserver` and
//! `kubernetes.io/hostname=<node>`, renewed every 10 s and garbage-collected an hour after the
//! last renewal (`IdentityLeaseRenewIntervalSeconds`, `IdentityLeaseDurationSeconds`: built-in
//! defaults, no flags).

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;

use crate::duration::human_duration;

/// kube-apiserver's identity lease renewal interval.
pub const DEFAULT_RENEW_INTERVAL: Duration = Duration::from_secs(10);

/// One replica's identity lease.
#[derive(Debug, Clone, PartialEq)]
pub struct IdentityLease {
    pub name: String,
    /// `kubernetes.io/hostname` (the node name on kubeadm clusters).
    pub host: String,
    pub renew_time: Option<Timestamp>,
}

impl IdentityLease {
    pub fn from_lease(lease: &Lease) -> Option<IdentityLease> {
        let labels = lease.metadata.labels.as_ref()?;
        if labels.get("apiserver.kubernetes.io/identity").map(String::as_str) != Some("kube-apiserver") {
            return None;
        }
        Some(IdentityLease {
            name: lease.metadata.name.clone().unwrap_or_default(),
            host: labels.get("kubernetes.io/hostname").cloned().unwrap_or_default(),
            renew_time: lease.spec.as_ref().and_then(|s| s.renew_time.as_ref()).map(|t| t.0),
        })
    }
}

/// How long without a renewal makes an identity lease stale: three missed renewals, and never
/// less than one renewal plus 10 s (clock skew, a slow etcd write).
pub fn stale_after(renew_interval: Duration) -> Duration {
    (renew_interval * 3).max(renew_interval + Duration::from_secs(10))
}

/// What the identity leases say about one replica.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LeaseFact {
    /// Renewed `age` ago, within [`stale_after`].
    Fresh(Duration),
    /// Last renewed `age` ago: the replica stopped renewing it.
    Stale(Duration),
    /// The leases were read and none is this replica's.
    Missing,
    /// The leases could not be read (permission, feature off) or the replica's host is unknown.
    Unread,
}

/// The lease fact of the replica on `host`, from the leases read (`None`: not readable).
pub fn lease_fact(leases: Option<&[IdentityLease]>, host: &str, now: Timestamp, renew_interval: Duration) -> LeaseFact {
    let Some(leases) = leases else { return LeaseFact::Unread };
    if leases.is_empty() {
        // No lease at all: the feature is off (or the GC ran on every one); says nothing.
        return LeaseFact::Unread;
    }
    let Some(lease) = leases.iter().find(|l| l.host == host) else { return LeaseFact::Missing };
    let Some(renewed) = lease.renew_time else { return LeaseFact::Missing };
    let age = Duration::try_from(now.duration_since(renewed)).unwrap_or(Duration::ZERO);
    if age > stale_after(renew_interval) { LeaseFact::Stale(age) } else { LeaseFact::Fresh(age) }
}

/// What the replica's static pod shows.
#[derive(Debug, Clone, PartialEq)]
pub enum PodFact {
    Running,
    /// Not running, with why (`CrashLoopBackOff`, `Failed`).
    NotRunning(String),
    /// No pod seen (managed clusters, no permission, not a static-pod install).
    Unknown,
}

/// What dialling the replica's own address from this machine gave.
#[derive(Debug, Clone, PartialEq)]
pub enum Reach {
    /// The TLS handshake completed with the kubeconfig's trust.
    Answered,
    /// Something answers there but with a certificate the kubeconfig's CA does not verify: the
    /// configured server is a proxy with its own CA.
    OtherCa(String),
    /// Connection refused: the host is reachable, nothing listens on the port.
    Refused,
    /// No answer within the replica timeout, no route, DNS: not reachable from here.
    NotReachable(String),
}

/// Everything known about one replica, for [`judge`].
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaFacts {
    pub name: String,
    /// `host:port` dialled.
    pub address: String,
    pub in_endpoints: bool,
    /// The `kubernetes` EndpointSlice lists some replica: the API servers maintain it, so a
    /// replica missing from it was dropped. (It lists none where the addresses are not valid
    /// endpoints, e.g. loopback.)
    pub endpoints_maintained: bool,
    pub lease: LeaseFact,
    pub pod: PodFact,
    pub reach: Reach,
}

/// The verdict on one replica.
#[derive(Debug, Clone, PartialEq)]
pub enum Liveness {
    /// Answers here: read it directly.
    Reachable,
    /// Alive by what the API says, not reachable from this machine: a NOTE, never a fault.
    AliveUnreachable(String),
    /// Down: the key fact in a few words (`identity lease renewed 2m ago`), and the evidence.
    Down { cause: String, detail: String },
}

fn address_note(f: &ReplicaFacts) -> String {
    match &f.reach {
        Reach::Refused => format!("its address {} refuses connections from this machine", f.address),
        Reach::NotReachable(why) => format!("its address {} is not reachable from this machine ({why})", f.address),
        Reach::OtherCa(_) | Reach::Answered => format!("its address {}", f.address),
    }
}

/// Alive or down, from the API's view first and the dial second.
pub fn judge(f: &ReplicaFacts) -> Liveness {
    if f.reach == Reach::Answered {
        return Liveness::Reachable;
    }
    let down = |cause: String, detail: String| Liveness::Down { cause, detail };
    // Evidence of death, strongest first.
    if let PodFact::NotRunning(why) = &f.pod {
        return down(format!("static pod {why}"), format!("its static pod is {why}; {}", address_note(f)));
    }
    if let LeaseFact::Stale(age) = f.lease {
        let age = human_duration(age);
        return down(
            format!("identity lease renewed {age} ago"),
            format!("its identity lease was last renewed {age} ago; {}", address_note(f)),
        );
    }
    if !f.in_endpoints && f.endpoints_maintained {
        return down(
            "left the kubernetes EndpointSlice".into(),
            format!(
                "it left the kubernetes EndpointSlice (the API servers drop a replica whose lease expired); {}",
                address_note(f)
            ),
        );
    }
    match f.lease {
        LeaseFact::Fresh(age) => Liveness::AliveUnreachable(format!(
            "alive by its identity lease, renewed {} ago; {}",
            human_duration(age),
            address_note(f)
        )),
        // No lease of its own while others have theirs: it has not renewed for an hour.
        LeaseFact::Missing => {
            down("no identity lease".into(), format!("it has no identity lease; {}", address_note(f)))
        }
        // (A stale lease returned above.)
        LeaseFact::Stale(_) | LeaseFact::Unread => match &f.reach {
            // Nothing but the dial to go by: a refused connection is a process that is not there.
            Reach::Refused => down("connection refused".into(), address_note(f)),
            _ => Liveness::AliveUnreachable(format!(
                "listed in the kubernetes EndpointSlice (live replicas only); {}",
                address_note(f)
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(lease: LeaseFact, pod: PodFact, reach: Reach, in_endpoints: bool) -> ReplicaFacts {
        ReplicaFacts {
            name: "cp-3".into(),
            address: "10.0.3.12:443".into(),
            in_endpoints,
            endpoints_maintained: true,
            lease,
            pod,
            reach,
        }
    }

    const FRESH: LeaseFact = LeaseFact::Fresh(Duration::from_secs(4));
    const STALE: LeaseFact = LeaseFact::Stale(Duration::from_secs(300));

    fn timeout() -> Reach {
        Reach::NotReachable("no answer within 2s".into())
    }

    #[test]
    fn liveness_table() {
        use Liveness::*;
        type Expectation = fn(&Liveness) -> bool;
        let cases: Vec<(&str, ReplicaFacts, Expectation)> = vec![
            ("answers here", facts(STALE, PodFact::Unknown, Reach::Answered, false), |l| *l == Reachable),
            (
                "fresh lease, black-holed address",
                facts(FRESH, PodFact::Running, timeout(), true),
                |l| matches!(l, AliveUnreachable(m) if m == "alive by its identity lease, renewed 4s ago; its address 10.0.3.12:443 is not reachable from this machine (no answer within 2s)"),
            ),
            (
                "stale lease, black-holed address",
                facts(STALE, PodFact::Unknown, timeout(), true),
                |l| matches!(l, Down { cause, detail } if cause == "identity lease renewed 5m ago" && detail.starts_with("its identity lease was last renewed 5m ago")),
            ),
            (
                "crash-looping pod, fresh lease",
                facts(FRESH, PodFact::NotRunning("CrashLoopBackOff".into()), Reach::Refused, true),
                |l| matches!(l, Down { cause, .. } if cause == "static pod CrashLoopBackOff"),
            ),
            (
                "out of the EndpointSlice",
                facts(LeaseFact::Unread, PodFact::Running, timeout(), false),
                |l| matches!(l, Down { detail, .. } if detail.starts_with("it left the kubernetes EndpointSlice")),
            ),
            (
                "no lease of its own",
                facts(LeaseFact::Missing, PodFact::Unknown, timeout(), true),
                |l| matches!(l, Down { cause, .. } if cause == "no identity lease"),
            ),
            (
                "no lease readable, refused",
                facts(LeaseFact::Unread, PodFact::Unknown, Reach::Refused, true),
                |l| matches!(l, Down { cause, detail } if cause == "connection refused" && detail.contains("refuses connections")),
            ),
            (
                "no lease readable, timeout, in endpoints",
                facts(LeaseFact::Unread, PodFact::Unknown, timeout(), true),
                |l| matches!(l, AliveUnreachable(m) if m.starts_with("listed in the kubernetes EndpointSlice")),
            ),
            ("fresh lease, refused (firewall reject)", facts(FRESH, PodFact::Unknown, Reach::Refused, true), |l| {
                matches!(l, AliveUnreachable(_))
            }),
        ];
        for (name, f, expected) in cases {
            let got = judge(&f);
            assert!(expected(&got), "{name}: {got:?}");
        }
    }

    #[test]
    fn lease_facts_from_renew_times() {
        let now: Timestamp = "2026-12-01T12:00:00Z".parse().unwrap();
        let lease = |host: &str, secs: i64| IdentityLease {
            name: format!("apiserver-{host}"),
            host: host.into(),
            renew_time: Some(now - jiff::SignedDuration::from_secs(secs)),
        };
        let leases = vec![lease("cp-1", 4), lease("cp-2", 31), lease("cp-3", 29)];
        let i = DEFAULT_RENEW_INTERVAL;
        assert_eq!(lease_fact(Some(&leases), "cp-1", now, i), LeaseFact::Fresh(Duration::from_secs(4)));
        assert_eq!(lease_fact(Some(&leases), "cp-2", now, i), LeaseFact::Stale(Duration::from_secs(31)));
        assert_eq!(lease_fact(Some(&leases), "cp-3", now, i), LeaseFact::Fresh(Duration::from_secs(29)));
        assert_eq!(lease_fact(Some(&leases), "cp-9", now, i), LeaseFact::Missing);
        assert_eq!(lease_fact(None, "cp-1", now, i), LeaseFact::Unread);
        assert_eq!(lease_fact(Some(&[]), "cp-1", now, i), LeaseFact::Unread);
        // A kit that renews every 2 s goes stale after 12 s.
        assert_eq!(stale_after(Duration::from_secs(2)), Duration::from_secs(12));
        assert_eq!(stale_after(i), Duration::from_secs(30));
    }

    #[test]
    fn identity_leases_are_recognised_by_their_label() {
        let lease: Lease = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "apiserver-abc", "namespace": "kube-system",
                         "labels": {"apiserver.kubernetes.io/identity": "kube-apiserver", "kubernetes.io/hostname": "cp-2"}},
            "spec": {"holderIdentity": "apiserver-abc_1", "leaseDurationSeconds": 3600, "renewTime": "2026-12-01T11:59:56.000000Z"}
        }))
        .unwrap();
        let parsed = IdentityLease::from_lease(&lease).unwrap();
        assert_eq!(parsed.host, "cp-2");
        assert!(parsed.renew_time.is_some());
        let leader: Lease =
            serde_json::from_value(serde_json::json!({"metadata": {"name": "kube-scheduler"}, "spec": {}})).unwrap();
        assert!(IdentityLease::from_lease(&leader).is_none());
    }
}
