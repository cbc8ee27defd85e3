//! The judges of `kubectl cphealth`'s checks: each takes the facts its check gathered (parsed
//! answers, no I/O) and the time, and returns the verdict with its message, sub-checks, evidence
//! and fixes. The plugin gathers; these decide, and are tested table by table without a server.
//! (The etcd and load checks judge in `etcd::status` and `load`, etcd's certificates here;
//! replica liveness in `liveness`.)

pub mod aggregated_apis;
pub mod apiserver;
pub mod etcd_certificates;
pub mod health;
pub mod leader_election;
pub mod nodes;
pub mod replicas;
pub mod resources;
pub mod static_pods;
pub mod webhooks;

use crate::error::{Error, ErrorKind};

/// An error in a few words, for a message that lists several (the full paragraph is in the
/// sub-check).
pub fn short_error(e: &Error) -> String {
    match e.kind {
        ErrorKind::TlsExpired => "its serving certificate has expired".into(),
        ErrorKind::TlsUnknownAuthority => "certificate signed by unknown authority".into(),
        ErrorKind::ConnectionRefused => "connection refused".into(),
        ErrorKind::Timeout => "i/o timeout".into(),
        ErrorKind::Dns => "DNS lookup failed".into(),
        ErrorKind::Proxy => "the HTTP proxy refused the tunnel".into(),
        ErrorKind::Unauthorized => "401 Unauthorized".into(),
        // An answer with an error status: what failed and its code, then why.
        ErrorKind::Server | ErrorKind::TooManyRequests | ErrorKind::NotFound | ErrorKind::Conflict => {
            format!("{}: {}", e.what, e.why)
        }
        _ => e.why.clone(),
    }
}

/// A failed request in a MESSAGE cell: what failed and the short reason, without the paragraph
/// of explanation and fix (those are under -v and "What to do").
pub fn key_fact(e: &Error) -> String {
    let why = short_error(e);
    if e.what.contains(&why) { e.what.clone() } else { format!("{} ({why})", e.what) }
}

/// What to do about an API server's serving certificate, the same words wherever it is found (the
/// load balancer's answer, each replica's), so that the report prints the fix once.
pub(crate) const RENEW_CERTS_ACTION: &str = "Renew the control-plane certificates on every control-plane node, one node at a time, then restart the static pods.";

/// kubeadm's renewal of the control-plane certificates, one node at a time
/// (https://kubernetes.io/docs/tasks/administer-cluster/kubeadm/kubeadm-certs/).
pub(crate) const RENEW_CERTS: &[&str] = &[
    "kubeadm certs check-expiration                       # on each control-plane node",
    "cp -a /etc/kubernetes/pki /etc/kubernetes/pki.bak.$(date +%F)",
    "kubeadm certs renew all",
    "mv /etc/kubernetes/manifests/kube-apiserver.yaml /tmp/ && sleep 20 && mv /tmp/kube-apiserver.yaml /etc/kubernetes/manifests/   # and the other static pods",
    "# admin.conf is renewed too: take its new client certificate into your kubeconfig (never copy it over ~/.kube/config)",
];

#[cfg(test)]
pub(crate) mod testing {
    //! Facts as the gathering produces them, for the judges' tables.

    use std::time::Duration;

    use jiff::Timestamp;

    use crate::certs::CertInfo;
    use crate::client::RawResponse;
    use crate::error::{Error, ErrorKind};

    pub fn now() -> Timestamp {
        "2026-06-01T12:00:00Z".parse().expect("a valid timestamp")
    }

    /// A timestamp `secs` seconds from [`now`] (negative: in the past).
    pub fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(now().as_second() + secs).expect("in range")
    }

    pub const DAY: i64 = 86_400;

    pub fn cert(name: &str, expires_in_secs: i64) -> CertInfo {
        CertInfo {
            subject: format!("CN={name}"),
            common_name: Some(name.to_string()),
            issuer: "CN=kubernetes".into(),
            serial: "01".into(),
            not_before: at(-300 * DAY),
            not_after: at(expires_in_secs),
            dns_names: vec!["kubernetes.default.svc".into()],
            ip_addresses: vec!["127.0.0.1".into()],
            is_ca: false,
        }
    }

    pub fn answer(status: u16, body: &str) -> Result<RawResponse, Error> {
        Ok(RawResponse {
            status,
            headers: Default::default(),
            body: body.to_string().into(),
            elapsed: Duration::from_millis(3),
        })
    }

    pub fn error(kind: ErrorKind, what: &str, why: &str) -> Error {
        Error::new(kind, what, why, "")
    }

    pub fn forbidden(permission: &str) -> Error {
        let mut e = Error::new(ErrorKind::Forbidden, "403 Forbidden", format!("needs {permission}"), "");
        e.missing_permission = Some(permission.to_string());
        e
    }
}
