//! Talking to etcd directly with the gRPC client (etcd-client): from a control-plane node or a
//! bastion with `--endpoints` and certificate flags like etcdctl's, or through a tunnel.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};

use super::status::{Alarm, ClusterStatus, MemberStatus, alarm_name};
use crate::error::{Error, ErrorKind, Result, TransportCause, transport_error};

/// etcdctl-style TLS flags.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct EtcdTlsArgs {
    /// CA certificate of etcd (like etcdctl --cacert)
    #[arg(long = "etcd-cacert", alias = "cacert", value_name = "FILE", help_heading = "etcd connection")]
    pub cacert: Option<PathBuf>,
    /// Client certificate for etcd (like etcdctl --cert)
    #[arg(long = "etcd-cert", alias = "cert", value_name = "FILE", help_heading = "etcd connection")]
    pub cert: Option<PathBuf>,
    /// Client key for etcd (like etcdctl --key)
    #[arg(long = "etcd-key", alias = "key", value_name = "FILE", help_heading = "etcd connection")]
    pub key: Option<PathBuf>,
}

impl EtcdTlsArgs {
    pub fn is_set(&self) -> bool {
        self.cacert.is_some() || self.cert.is_some() || self.key.is_some()
    }
}

/// TLS material, loaded.
#[derive(Clone)]
pub struct EtcdTls {
    pub ca_pem: Option<Vec<u8>>,
    pub cert_pem: Option<Vec<u8>>,
    pub key_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for EtcdTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EtcdTls { .. }")
    }
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(format!("Cannot read the etcd {what} {}", path.display()), &e))
}

impl EtcdTls {
    pub fn load(args: &EtcdTlsArgs) -> Result<EtcdTls> {
        if args.cert.is_some() != args.key.is_some() {
            return Err(Error::usage(
                "--etcd-cert and --etcd-key go together",
                "Pass both (kubeadm: /etc/kubernetes/pki/etcd/healthcheck-client.crt and .key).",
            ));
        }
        Ok(EtcdTls {
            ca_pem: args.cacert.as_deref().map(|p| read(p, "CA certificate")).transpose()?,
            cert_pem: args.cert.as_deref().map(|p| read(p, "client certificate")).transpose()?,
            key_pem: args.key.as_deref().map(|p| read(p, "client key")).transpose()?,
        })
    }

    pub fn options(&self) -> TlsOptions {
        let mut tls = TlsOptions::new();
        if let Some(ca) = &self.ca_pem {
            tls = tls.ca_certificate(Certificate::from_pem(ca.clone()));
        }
        if let (Some(c), Some(k)) = (&self.cert_pem, &self.key_pem) {
            tls = tls.identity(Identity::from_pem(c.clone(), k.clone()));
        }
        tls
    }
}

/// Explains an etcd client failure.
pub fn etcd_error(endpoint: &str, err: &etcd_client::Error, timeout: Option<Duration>) -> Error {
    let text = crate::kubeconfig::error_chain(err);
    let lower = text.to_lowercase();
    if lower.contains("database space exceeded") {
        return Error::new(
            ErrorKind::Failed,
            format!("etcd at {endpoint} refuses writes"),
            "mvcc: database space exceeded (NOSPACE alarm)",
            "Compact (kubectl etcdsnap compact), defragment (kubectl etcdsnap defrag --all) and disarm the alarm (kubectl etcdsnap alarm disarm).",
        );
    }
    if lower.contains("permission denied") || lower.contains("authentication") {
        return Error::new(
            ErrorKind::Unauthorized,
            format!("etcd at {endpoint} rejected the client"),
            text,
            "Check --etcd-cert/--etcd-key.",
        );
    }
    if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake") {
        let cause = if lower.contains("unknown") || lower.contains("issuer") {
            TransportCause::TlsUnknownAuthority
        } else if lower.contains("expired") {
            TransportCause::TlsExpired(None)
        } else {
            TransportCause::Tls(text)
        };
        return transport_error("etcd", endpoint, cause, timeout);
    }
    let cause = match crate::error::transport_cause(err) {
        TransportCause::Other(_) if lower.contains("deadline") || lower.contains("timed out") => {
            TransportCause::Timeout
        }
        TransportCause::Other(_) if lower.contains("refused") => TransportCause::ConnectionRefused,
        c => c,
    };
    let mut e = transport_error("etcd", endpoint, cause, timeout);
    if e.kind == ErrorKind::Failed {
        e.why = text;
    }
    e
}

/// Connects to `endpoints` (https://host:port) with `tls`.
pub async fn connect(endpoints: &[String], tls: &EtcdTls, timeout: Duration) -> Result<Client> {
    let mut options = ConnectOptions::new()
        .with_connect_timeout(timeout)
        .with_timeout(timeout)
        .with_keep_alive(Duration::from_secs(10), timeout);
    if endpoints.iter().any(|e| e.starts_with("https://")) {
        options = options.with_tls(tls.options());
    }
    let first = endpoints.first().cloned().unwrap_or_default();
    tokio::time::timeout(timeout, Client::connect(endpoints, Some(options)))
        .await
        .map_err(|_| transport_error("etcd", &first, TransportCause::Timeout, Some(timeout)))?
        .map_err(|e| etcd_error(&first, &e, Some(timeout)))
}

/// Status of every member through direct connections (one client per member).
pub async fn cluster_status(
    endpoints: &[String],
    tls: &EtcdTls,
    quota_bytes: u64,
    timeout: Duration,
) -> Result<ClusterStatus> {
    let source = format!("direct ({})", endpoints.join(","));
    cluster_status_through(endpoints, &[], tls, quota_bytes, timeout, source).await
}

/// Status of every member; `dial` maps a member name to the URL to reach it by (a local tunnel)
/// instead of its advertised client URL.
pub async fn cluster_status_through(
    endpoints: &[String],
    dial: &[(String, String)],
    tls: &EtcdTls,
    quota_bytes: u64,
    timeout: Duration,
    source: String,
) -> Result<ClusterStatus> {
    let mut client = connect(endpoints, tls, timeout).await?;
    let first = endpoints.first().cloned().unwrap_or_default();
    let list = tokio::time::timeout(timeout, client.member_list())
        .await
        .map_err(|_| transport_error("etcd", &first, TransportCause::Timeout, Some(timeout)))?
        .map_err(|e| etcd_error(&first, &e, Some(timeout)))?;
    let alarms =
        tokio::time::timeout(timeout, client.alarm(etcd_client::AlarmAction::Get, etcd_client::AlarmType::None, None))
            .await
            .ok()
            .and_then(std::result::Result::ok)
            .map(|a| {
                a.alarms()
                    .iter()
                    .map(|m| Alarm { member_id: m.member_id(), alarm: alarm_name(m.alarm() as u32) })
                    .collect()
            })
            .unwrap_or_default();
    let cluster_id = list.header().map(etcd_client::ResponseHeader::cluster_id);
    let probes = list.members().iter().map(|m| {
        let tls = tls.clone();
        let name = m.name().to_string();
        let id = m.id();
        let advertised = m.client_urls().first().cloned().unwrap_or_default();
        // With tunnels, a member without one is reported, never dialled at its (in-cluster) address.
        let url = match dial.iter().find(|(n, _)| *n == name) {
            Some((_, u)) => Some(u.clone()),
            None if dial.is_empty() => Some(advertised.clone()),
            None => None,
        };
        let learner = m.is_learner();
        async move {
            let mut ms = MemberStatus { name, id, endpoint: advertised, is_learner: learner, ..Default::default() };
            let Some(url) = url else {
                ms.error = Some("no running pod of this member to port-forward to".into());
                return ms;
            };
            let result = async {
                let mut c = connect(std::slice::from_ref(&url), &tls, timeout).await?;
                let s = tokio::time::timeout(timeout, c.status())
                    .await
                    .map_err(|_| transport_error("etcd", &url, TransportCause::Timeout, Some(timeout)))?
                    .map_err(|e| etcd_error(&url, &e, Some(timeout)))?;
                // A linearizable read, as `etcdctl endpoint health`; a slow one is asked again
                // (one slow answer on a busy machine is not a slow member), the fastest kept.
                let mut fastest = Duration::MAX;
                for _ in 0..3 {
                    let probe_started = Instant::now();
                    tokio::time::timeout(timeout, c.get("health", None))
                        .await
                        .map_err(|_| transport_error("etcd", &url, TransportCause::Timeout, Some(timeout)))?
                        .map_err(|e| etcd_error(&url, &e, Some(timeout)))?;
                    fastest = fastest.min(probe_started.elapsed());
                    if fastest <= super::status::SLOW_HEALTH_CHECK {
                        break;
                    }
                }
                Ok::<_, Error>((s, fastest))
            }
            .await;
            match result {
                Ok((s, latency)) => {
                    ms.healthy = true;
                    ms.version = Some(s.version().to_string());
                    ms.db_size = Some(s.db_size() as u64);
                    ms.db_size_in_use = Some(s.raft_used_db_size() as u64).filter(|v| *v > 0);
                    ms.leader_id = Some(s.leader());
                    ms.raft_term = Some(s.raft_term());
                    ms.raft_index = Some(s.raft_index());
                    ms.raft_applied_index = Some(s.raft_index());
                    ms.revision = s.header().map(etcd_client::ResponseHeader::revision);
                    ms.latency = Some(latency);
                }
                // How long it took to fail is not a latency (the error says what happened).
                Err(e) => ms.error = Some(e.why.clone()),
            }
            ms
        }
    });
    let mut members = futures::future::join_all(probes).await;
    super::status::sort_by_name(&mut members);
    Ok(ClusterStatus { cluster_id, members, alarms, quota_bytes, source })
}
