//! Check 1, `apiserver`: reachability, version, round trip, serving and client certificates,
//! clock skew.

use std::time::Duration;

use jiff::Timestamp;

use crate::certs::{CertInfo, TlsProbe, describe_expiry, describe_expiry_short, expiry_status};
use crate::duration::short_latency;
use crate::error::{Error, ErrorKind};
use crate::exit::Status;
use crate::report::{CheckResult, one_line};

use super::{RENEW_CERTS, RENEW_CERTS_ACTION};

/// The answer to GET /version, with what the round trip showed.
#[derive(Debug, Clone)]
pub struct VersionInfo {
    pub git_version: String,
    pub round_trip: Duration,
    /// Server clock minus local clock, from the Date header (seconds).
    pub clock_skew: Option<i64>,
}

/// What the check read.
#[derive(Debug, Clone)]
pub struct Facts {
    /// The configured server.
    pub server: String,
    pub version: Result<VersionInfo, Error>,
    /// The serving certificate chain, as a TLS handshake saw it.
    pub serving: Result<TlsProbe, Error>,
    /// The kubeconfig's client certificate, when the user authenticates with one.
    pub client_certificate: Option<Result<CertInfo, Error>>,
}

/// Clock skew beyond which certificates, tokens and leases misbehave: kubeadm's preflight
/// warns, and leases (renewed every 10 s, stale after 15–40 s) mis-read ages.
const SKEW_WARNING_SECS: i64 = 10;
const SKEW_CRITICAL_SECS: i64 = 60;

pub fn judge(f: &Facts, now: Timestamp) -> CheckResult {
    let mut r = CheckResult::ok("apiserver", "");
    r.push_evidence("server", f.server.clone());
    // Problems lead the message; "answers in" and the healthy facts fill it when there are none.
    let mut notes = Vec::new();
    let mut answers = None;
    match &f.version {
        Ok(v) => {
            r.push_evidence("version", v.git_version.clone());
            r.push_evidence("round trip", short_latency(v.round_trip));
            answers = Some(format!("{} answers in {}", v.git_version, short_latency(v.round_trip)));
        }
        // Unreachable or failing is the API server's state; refused credentials or a missing
        // permission are this user's, and say nothing about the server.
        Err(e) => {
            r.status = match e.kind {
                ErrorKind::Unauthorized | ErrorKind::Forbidden => Status::Unknown,
                _ => Status::Critical,
            };
            // The whole paragraph is a sub-check; the message leads with the key fact.
            r.sub("request", r.status, e.to_string());
            notes.push(super::key_fact(e));
        }
    }
    judge_serving(f, now, &mut r, &mut notes);
    if let Some(client) = &f.client_certificate {
        judge_client_certificate(client, now, &mut r, &mut notes);
    }
    if let Ok(v) = &f.version
        && let Some(skew) = v.clock_skew
    {
        let abs = skew.abs();
        let status = Status::grade(abs > SKEW_CRITICAL_SECS, abs > SKEW_WARNING_SECS);
        r.sub(
            "clock skew",
            status,
            format!("server clock {} this machine's by {abs}s", if skew >= 0 { "ahead of" } else { "behind" }),
        );
        r.push_evidence("clock skew", format!("{skew}s"));
        if status != Status::Ok {
            r.raise(status);
            notes.push(format!("clocks differ by {abs}s"));
            r.fix("Synchronise clocks (chrony/ntpd) on this machine and the control-plane nodes: certificates, tokens and leases depend on them.", &["timedatectl status", "chronyc tracking"], "low");
        }
    }
    if r.status == Status::Ok {
        notes.extend(answers.take());
        let cert = f
            .serving
            .as_ref()
            .ok()
            .and_then(|p| p.leaf())
            .map(|l| format!("serving certificate {}", describe_expiry(l.not_after, now)));
        notes.extend(cert);
        if let Ok(v) = &f.version
            && v.clock_skew.is_some_and(|s| s.abs() <= SKEW_WARNING_SECS)
        {
            notes.push("clocks in sync".into());
        }
    }
    if r.remediation.is_empty()
        && let Err(e) = &f.version
        && !e.fix.is_empty()
    {
        r.fix(e.fix.clone(), &[], "low: diagnosis only");
    }
    // "answers in" only when nothing else is to be said (it is in the evidence).
    if notes.is_empty() {
        notes.extend(answers);
    }
    r.message = one_line(&notes);
    r
}

fn judge_serving(f: &Facts, now: Timestamp, r: &mut CheckResult, notes: &mut Vec<String>) {
    let probe = match &f.serving {
        Ok(p) => p,
        Err(e) if f.version.is_ok() => return r.sub("serving certificate", Status::Unknown, e.to_string()),
        // The request's error already says why nothing was read.
        Err(_) => return,
    };
    if let Some(leaf) = probe.leaf() {
        let status = expiry_status(leaf.not_after, now);
        let expiry = describe_expiry(leaf.not_after, now);
        r.sub(
            "serving certificate",
            status,
            format!(
                "serving certificate {} (issuer {}, SANs {}) {expiry}",
                leaf.name(),
                leaf.issuer,
                leaf.sans().join(", ")
            ),
        );
        r.push_evidence("serving certificate", format!("{} {expiry}", leaf.name()));
        if status != Status::Ok {
            r.raise(status);
            notes.insert(0, format!("serving certificate {} {expiry}", leaf.name()));
            r.fix(
                RENEW_CERTS_ACTION,
                RENEW_CERTS,
                "high: each API server restarts; clients using the old admin.conf keep working only until it expires",
            );
        }
    }
    match &probe.verification_error {
        // An expired chain is the expiry above, said once.
        Some(err) if err.contains("expired") => {}
        Some(err) => {
            r.raise(Status::Critical);
            r.sub("certificate verification", Status::Critical, err.clone());
            // A request that failed the same verification already said so.
            if !f.version.as_ref().is_err_and(|e| e.kind.is_tls()) {
                notes.push(format!("TLS verification fails: {err}"));
            }
            r.fix(
                "Use the right context, or refresh certificate-authority-data from /etc/kubernetes/admin.conf on a control-plane node.",
                &["kubectl config view --minify --raw"],
                "low",
            );
        }
        None if probe.verification_skipped => {
            r.sub("certificate verification", Status::Warning, "not verified: --insecure-skip-tls-verify".to_string());
        }
        None => r.sub("certificate verification", Status::Ok, "chain verifies against the kubeconfig's CA".to_string()),
    }
}

fn judge_client_certificate(
    client: &Result<CertInfo, Error>,
    now: Timestamp,
    r: &mut CheckResult,
    notes: &mut Vec<String>,
) {
    let leaf = match client {
        Ok(leaf) => leaf,
        Err(e) => return r.sub("client certificate", Status::Unknown, e.to_string()),
    };
    let status = expiry_status(leaf.not_after, now);
    let expiry = describe_expiry(leaf.not_after, now);
    r.sub("client certificate", status, format!("kubeconfig client certificate {} {expiry}", leaf.name()));
    r.push_evidence("client certificate", format!("{} {expiry}", leaf.name()));
    if status == Status::Ok {
        return;
    }
    r.raise(status);
    notes.push(format!("client certificate {}: {}", leaf.name(), describe_expiry_short(leaf.not_after, now)));
    let user = leaf.name();
    let (how, command) = if user == "kubernetes-admin" {
        (
            "renew admin.conf on a control-plane node (`kubeadm certs renew all` renews it too), then take its client certificate into your kubeconfig's user (not a copy over ~/.kube/config: your other contexts stay)".to_string(),
            "kubeadm certs renew admin.conf   # on a control-plane node".to_string(),
        )
    } else {
        (
            format!(
                "issue a new one for {user} on a control-plane node, then set it on your kubeconfig's user (`kubectl config set-credentials --client-certificate --client-key --embed-certs`)"
            ),
            format!("kubeadm kubeconfig user --client-name={user} > {user}.conf   # on a control-plane node"),
        )
    };
    r.fix(format!("Get a fresh client certificate: {how}."), &[command.as_str()], "low: only your credentials change");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::testing::{DAY, cert, now};

    fn probe(leaf_expires_in: i64) -> TlsProbe {
        TlsProbe {
            chain: vec![cert("kube-apiserver", leaf_expires_in)],
            verification_error: None,
            verification_skipped: false,
            handshake_time: Duration::from_millis(2),
            connected_to: "127.0.0.1:6443".into(),
        }
    }

    fn healthy() -> Facts {
        Facts {
            server: "https://127.0.0.1:6443".into(),
            version: Ok(VersionInfo {
                git_version: "v1.33.1".into(),
                round_trip: Duration::from_millis(4),
                clock_skew: Some(1),
            }),
            serving: Ok(probe(200 * DAY)),
            client_certificate: Some(Ok(cert("kubernetes-admin", 200 * DAY))),
        }
    }

    #[test]
    fn a_healthy_server_leads_with_its_version_and_round_trip() {
        let r = judge(&healthy(), now());
        assert_eq!(r.status, Status::Ok);
        assert!(r.message.starts_with("v1.33.1 answers in"), "{}", r.message);
        assert!(r.message.contains("clocks in sync"), "{}", r.message);
        assert!(r.remediation.is_empty());
    }

    #[test]
    fn severity_follows_the_problem_table() {
        type Edit = fn(&mut Facts);
        let cases: &[(&str, Edit, Status, &str)] = &[
            (
                "serving cert in 20 days",
                |f| f.serving = Ok(probe(20 * DAY)),
                Status::Warning,
                "serving certificate kube-apiserver",
            ),
            (
                "serving cert in 3 days",
                |f| f.serving = Ok(probe(3 * DAY)),
                Status::Critical,
                "serving certificate kube-apiserver",
            ),
            (
                "serving cert expired",
                |f| f.serving = Ok(probe(-DAY)),
                Status::Critical,
                "serving certificate kube-apiserver",
            ),
            (
                "client cert expires in 10 days",
                |f| f.client_certificate = Some(Ok(cert("jane", 10 * DAY))),
                Status::Warning,
                "client certificate jane",
            ),
            ("skew 30 s", |f| set_skew(f, 30), Status::Warning, "clocks differ by 30s"),
            ("skew -90 s", |f| set_skew(f, -90), Status::Critical, "clocks differ by 90s"),
            (
                "unknown authority",
                |f| {
                    if let Ok(p) = &mut f.serving {
                        p.verification_error = Some("certificate signed by unknown authority".into());
                    }
                },
                Status::Critical,
                "TLS verification fails",
            ),
            (
                "connection refused",
                |f| {
                    f.version = Err(Error::new(
                        ErrorKind::ConnectionRefused,
                        "Cannot connect to the API server",
                        "connection refused",
                        "Check the server address",
                    ));
                },
                Status::Critical,
                "Cannot connect to the API server",
            ),
            (
                "401: the user's problem, not the server's",
                |f| {
                    f.version = Err(Error::new(
                        ErrorKind::Unauthorized,
                        "401 Unauthorized",
                        "credentials refused",
                        "Log in again",
                    ));
                },
                Status::Unknown,
                "401 Unauthorized",
            ),
        ];
        for (case, edit, status, leads) in cases {
            let mut f = healthy();
            edit(&mut f);
            let r = judge(&f, now());
            assert_eq!(r.status, *status, "{case}: {}", r.message);
            assert!(r.message.starts_with(leads), "{case}: {}", r.message);
            assert!(!r.remediation.is_empty(), "{case}: a problem comes with a fix");
        }
    }

    #[test]
    fn a_failed_request_is_its_key_fact_once() {
        // A kubeconfig with another cluster's CA: the request fails verification and so does the
        // handshake probe. The message says it once, without the paragraph (that is under -v).
        let mut f = healthy();
        f.version = Err(Error::new(
            ErrorKind::TlsUnknownAuthority,
            "TLS verification of the API server at https://127.0.0.1:6443 failed",
            "x509: certificate signed by unknown authority: the server's certificate is not signed by the CA in your kubeconfig",
            "Use the right context, or refresh certificate-authority-data.",
        ));
        if let Ok(p) = &mut f.serving {
            p.verification_error = Some("invalid peer certificate: BadSignature".into());
        }
        let r = judge(&f, now());
        assert_eq!(r.status, Status::Critical);
        assert_eq!(
            r.message,
            "TLS verification of the API server at https://127.0.0.1:6443 failed (certificate signed by unknown authority)"
        );
        let request = r.subchecks.iter().find(|s| s.name == "request").expect("the request sub-check");
        assert!(request.message.ends_with("Use the right context, or refresh certificate-authority-data."));
    }

    fn set_skew(f: &mut Facts, skew: i64) {
        if let Ok(v) = &mut f.version {
            v.clock_skew = Some(skew);
        }
    }

    #[test]
    fn an_insecure_kubeconfig_is_a_sub_check_warning_not_the_verdict() {
        let mut f = healthy();
        if let Ok(p) = &mut f.serving {
            p.verification_skipped = true;
        }
        let r = judge(&f, now());
        assert_eq!(r.status, Status::Ok);
        assert!(r.subchecks.iter().any(|s| s.status == Status::Warning && s.message.contains("insecure")));
    }

    #[test]
    fn an_admin_certificate_is_renewed_with_kubeadm_never_copied_over_the_kubeconfig() {
        let mut f = healthy();
        f.client_certificate = Some(Ok(cert("kubernetes-admin", -DAY)));
        let r = judge(&f, now());
        assert_eq!(r.status, Status::Critical);
        let fix = &r.remediation[0];
        assert_eq!(fix.commands, ["kubeadm certs renew admin.conf   # on a control-plane node"]);
        assert!(!fix.commands.iter().any(|c| c.starts_with("cp ")));
        // The API server's renewal (`kubeadm certs renew all`) renews admin.conf too: said, so
        // that nobody renews it twice.
        assert!(fix.action.contains("(`kubeadm certs renew all` renews it too)"), "{}", fix.action);
    }
}
