//! The etcd check's certificates: what each member serves on its client port. A member whose
//! certificate expires stops taking the API servers' connections, and a quorum of them takes the
//! cluster down (kubeadm renews them only on upgrades:
//! <https://kubernetes.io/docs/tasks/administer-cluster/kubeadm/kubeadm-certs/>).

use jiff::Timestamp;

use crate::certs::{CertInfo, describe_expiry, describe_expiry_short, expiry_status};
use crate::exit::Status;
use crate::report::CheckResult;

/// One member's serving certificate, or why it was not read.
#[derive(Debug, Clone)]
pub struct MemberCertificate {
    pub member: String,
    /// The node of its pod, where the certificate is renewed.
    pub node: String,
    pub port: Option<u16>,
    pub served: Result<CertInfo, String>,
}

/// A sub-check per member; certificates under 30 days raise the check (CRITICAL under 7 days or
/// expired) and lead its message with the earliest expiry, with one fix naming their nodes. An unread certificate is SKIPPED: it says nothing of the members' health.
pub fn judge(r: &mut CheckResult, certificates: &[MemberCertificate], now: Timestamp) {
    let mut expiring: Vec<(&MemberCertificate, Timestamp)> = Vec::new();
    for c in certificates {
        let name = format!("certificate {}", c.member);
        let port = c.port.map(|p| format!(" on port {p}")).unwrap_or_default();
        match &c.served {
            Ok(cert) => {
                let status = expiry_status(cert.not_after, now);
                r.sub(name, status, format!("served{port}: {} {}", cert.name(), describe_expiry(cert.not_after, now)));
                if status != Status::Ok {
                    r.raise(status);
                    expiring.push((c, cert.not_after));
                }
            }
            Err(why) => r.sub(name, Status::Skipped, format!("not read{port}: {why}")),
        }
    }
    let Some(earliest) = expiring.iter().map(|(_, t)| *t).min() else { return };
    // Short, to keep the message on one line: the dates are in the sub-checks, the nodes in the fix.
    let whose = if expiring.len() == certificates.len() && certificates.len() > 1 {
        format!("etcd server certificates of all {} members", certificates.len())
    } else {
        let members: Vec<&str> = expiring.iter().map(|(c, _)| c.member.as_str()).collect();
        format!("etcd server certificate of {}", members.join(", "))
    };
    r.message = format!("{whose}: {}; {}", describe_expiry_short(earliest, now), r.message);
    let commands: Vec<String> = expiring
        .iter()
        .map(|(c, _)| format!("kubeadm certs renew etcd-server etcd-peer etcd-healthcheck-client   # on {}", c.node))
        .collect();
    let nodes: Vec<&str> = expiring.iter().map(|(c, _)| c.node.as_str()).collect();
    r.fix(
        format!(
            "Renew the etcd certificates on {}, one node at a time (`kubeadm certs renew all` renews them too, with the API server's), then restart that node's etcd static pod (move /etc/kubernetes/manifests/etcd.yaml out and back).",
            nodes.join(", ")
        ),
        &commands.iter().map(String::as_str).collect::<Vec<_>>(),
        "high: one member at a time; quorum must hold",
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(days_left: i64, now: Timestamp) -> CertInfo {
        CertInfo {
            subject: "CN=cp-1".into(),
            common_name: Some("cp-1".into()),
            issuer: "CN=etcd-ca".into(),
            serial: "01".into(),
            not_before: now - jiff::SignedDuration::from_hours(24 * 300),
            not_after: now + jiff::SignedDuration::from_hours(24 * days_left),
            dns_names: vec!["cp-1".into(), "localhost".into()],
            ip_addresses: vec!["127.0.0.1".into()],
            is_ca: false,
        }
    }

    fn member(name: &str, served: Result<CertInfo, String>) -> MemberCertificate {
        MemberCertificate { member: name.into(), node: format!("node-{name}"), port: Some(2379), served }
    }

    #[test]
    fn expiry_raises_the_check_and_leads_its_message() {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let cases: Vec<(&str, Vec<MemberCertificate>, Status, Option<&str>)> = vec![
            (
                "all a year away",
                vec![member("cp-1", Ok(cert(365, now))), member("cp-2", Ok(cert(300, now)))],
                Status::Ok,
                None,
            ),
            (
                "two under 30 days: named under the earliest",
                vec![
                    member("cp-1", Ok(cert(20, now))),
                    member("cp-2", Ok(cert(365, now))),
                    member("cp-3", Ok(cert(18, now))),
                ],
                Status::Warning,
                Some("etcd server certificate of cp-1, cp-3: 18d left"),
            ),
            (
                "one expired",
                vec![member("cp-1", Ok(cert(-3, now)))],
                Status::Critical,
                Some("etcd server certificate of cp-1: expired 3d ago"),
            ),
            (
                "every member's",
                vec![member("cp-1", Ok(cert(20, now))), member("cp-3", Ok(cert(5, now)))],
                Status::Critical,
                Some("etcd server certificates of all 2 members: 5d left"),
            ),
            ("unread: skipped, not raised", vec![member("cp-1", Err("forbidden".into()))], Status::Ok, None),
        ];
        for (name, certificates, status, lead) in cases {
            let mut r = CheckResult::new("etcd", Status::Ok, "3/3 members healthy");
            judge(&mut r, &certificates, now);
            assert_eq!(r.status, status, "{name}");
            assert_eq!(r.subchecks.len(), certificates.len(), "{name}");
            match lead {
                Some(lead) => {
                    assert!(r.message.starts_with(lead), "{name}: {}", r.message);
                    assert!(r.message.ends_with("; 3/3 members healthy"), "{name}: {}", r.message);
                    let fix = &r.remediation[0];
                    assert!(fix.action.contains("node-cp-1"), "{name}: {fix:?}");
                    assert!(fix.action.contains("`kubeadm certs renew all` renews them too"), "{name}: {fix:?}");
                    assert_eq!(
                        fix.commands.len(),
                        certificates.iter().filter(|c| c.member != "cp-2").count(),
                        "{name}"
                    );
                }
                None => {
                    assert_eq!(r.message, "3/3 members healthy", "{name}");
                    assert!(r.remediation.is_empty(), "{name}");
                }
            }
        }
    }

    #[test]
    fn sub_checks_say_what_was_served_or_why_it_was_not_read() {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let mut r = CheckResult::new("etcd", Status::Ok, "ok");
        judge(&mut r, &[member("cp-1", Ok(cert(100, now))), member("cp-2", Err("port-forward refused".into()))], now);
        assert_eq!(r.subchecks[0].name, "certificate cp-1");
        assert!(r.subchecks[0].message.starts_with("served on port 2379: cp-1 expires"), "{}", r.subchecks[0].message);
        assert_eq!(r.subchecks[1].status, Status::Skipped);
        assert_eq!(r.subchecks[1].message, "not read on port 2379: port-forward refused");
    }
}
