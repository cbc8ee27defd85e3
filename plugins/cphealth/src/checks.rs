//! The checks: each reads what it needs through the shared context, judges with the cpkit
//! analyses, and never stops the others (its own timeout; a missing permission is SKIPPED).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cpkit::certs::{describe_expiry, describe_expiry_short, expiry_status};
use cpkit::controlplane::{COMPONENTS, ComponentPod, LeaseInfo, NodeSummary, judge_lease};
use cpkit::duration::short_latency;
use cpkit::error::{Access, Error, ErrorKind};
use cpkit::exit::Status;
use cpkit::health::{CheckState, explain_check};
use cpkit::liveness::Liveness;
use cpkit::report::{CheckResult, one_line};
use cpkit::{Cluster, RawResponse};
use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use serde_json::Value;
use tokio::sync::OnceCell;

use crate::context::{Ctx, Replica};

/// The checks, in report order. `--only`/`--skip` take these names (validated, suggested and
/// completed by clap).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Check {
    Apiserver,
    Health,
    Replicas,
    StaticPods,
    LeaderElection,
    Etcd,
    Load,
    AggregatedApis,
    Nodes,
    Webhooks,
}

impl Check {
    pub const ALL: [Check; 10] = [
        Check::Apiserver,
        Check::Health,
        Check::Replicas,
        Check::StaticPods,
        Check::LeaderElection,
        Check::Etcd,
        Check::Load,
        Check::AggregatedApis,
        Check::Nodes,
        Check::Webhooks,
    ];

    /// The name in reports and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Check::Apiserver => "apiserver",
            Check::Health => "health",
            Check::Replicas => "replicas",
            Check::StaticPods => "static-pods",
            Check::LeaderElection => "leader-election",
            Check::Etcd => "etcd",
            Check::Load => "load",
            Check::AggregatedApis => "aggregated-apis",
            Check::Nodes => "nodes",
            Check::Webhooks => "webhooks",
        }
    }
}

/// What one replica answered.
#[derive(Debug, Clone)]
pub struct ReplicaState {
    pub replica: Replica,
    pub readyz: Result<RawResponse, Error>,
    pub livez: Result<RawResponse, Error>,
    pub version: Result<String, Error>,
    pub tls: Result<cpkit::certs::TlsProbe, Error>,
}

/// Replica states, fetched once for the health and replicas checks.
pub struct ReplicaStates(OnceCell<Arc<Vec<ReplicaState>>>);

impl ReplicaStates {
    pub fn new() -> Self {
        ReplicaStates(OnceCell::new())
    }

    async fn get(&self, ctx: &Ctx) -> Arc<Vec<ReplicaState>> {
        self.0
            .get_or_init(|| async {
                let targets = ctx.read_targets().await;
                let survey = ctx.survey().await.ok();
                let timeout = ctx.cluster.timeout().unwrap_or(Duration::from_secs(10));
                let states = futures::future::join_all(targets.into_iter().map(|replica| async {
                    let known_tls = survey
                        .as_ref()
                        .and_then(|s| s.replicas.iter().find(|r| r.replica.url == replica.url))
                        .and_then(|r| r.tls.clone());
                    let cluster: Result<Cluster, Error> = if replica.url == ctx.cluster.server() {
                        Ok(ctx.cluster.clone())
                    } else {
                        ctx.cluster.for_server(&replica.url)
                    };
                    match cluster {
                        Err(e) => ReplicaState {
                            replica,
                            readyz: Err(e.clone()),
                            livez: Err(e.clone()),
                            version: Err(e.clone()),
                            tls: Err(e),
                        },
                        Ok(c) => {
                            let version_access = Access::non_resource("get", "/version");
                            let (readyz, livez, version, tls) = tokio::join!(
                                c.get_raw("/readyz?verbose"),
                                c.get_raw("/livez?verbose"),
                                c.get_json::<Value>("/version", &version_access),
                                async {
                                    // The survey's dial already holds the replica's certificates.
                                    match known_tls {
                                        Some(probe) => Ok(probe),
                                        None => cpkit::certs::probe_tls(c.config(), &replica.url, timeout).await,
                                    }
                                }
                            );
                            let version = version.map(|v| v["gitVersion"].as_str().unwrap_or("?").to_string());
                            ReplicaState { replica, readyz, livez, version, tls }
                        }
                    }
                }))
                .await;
                Arc::new(states)
            })
            .await
            .clone()
    }
}

/// Runs one check with its budget and records its duration.
pub async fn run_one(check: Check, ctx: &Ctx, states: &ReplicaStates) -> CheckResult {
    let name = check.name();
    let started = Instant::now();
    // Every check starts at once and waits for the same /version answer (one request): a check
    // whose data is already on its way (the /metrics scrapes) loses no time to it. The apiserver
    // check probes TLS while that answer is on its way: waiting first would double the time a
    // silent server costs.
    // Unreachable, or the credentials are refused: nothing else can work. An error answer
    // (403 on /version, 500, 429) leaves the other checks to try their own requests.
    if check != Check::Apiserver
        && (check != Check::Etcd || ctx.options.etcd_endpoints.is_empty())
        && let Err(e) = &ctx.version().await
        && (e.kind.is_unreachable() || e.kind == ErrorKind::Unauthorized)
    {
        let why = if e.kind == ErrorKind::Unauthorized {
            "the API server rejects the credentials (401 Unauthorized)".to_string()
        } else {
            format!("the API server is unreachable ({})", short_kind(e))
        };
        return CheckResult::skipped(name, format!("not run: {why}")).with_duration(started.elapsed());
    }
    let fut = async {
        match check {
            Check::Apiserver => apiserver(ctx).await,
            Check::Health => health(ctx, states).await,
            Check::Replicas => replicas(ctx, states).await,
            Check::StaticPods => static_pods(ctx).await,
            Check::LeaderElection => leader_election(ctx).await,
            Check::Etcd => etcd(ctx).await,
            Check::Load => load(ctx, states).await,
            Check::AggregatedApis => aggregated_apis(ctx).await,
            Check::Nodes => nodes(ctx).await,
            Check::Webhooks => webhooks(ctx).await,
        }
    };
    let result = match tokio::time::timeout(ctx.options.check_timeout, fut).await {
        Ok(r) => r,
        Err(_) => CheckResult::new(
            name,
            Status::Unknown,
            format!(
                "did not finish within {} (the API server or etcd is slow; raise --check-timeout)",
                short_latency(ctx.options.check_timeout)
            ),
        ),
    };
    result.with_duration(started.elapsed())
}

fn short_kind(e: &Error) -> String {
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

const RENEW_CERTS: &[&str] = &[
    "kubeadm certs check-expiration                       # on each control-plane node",
    "cp -a /etc/kubernetes/pki /etc/kubernetes/pki.bak.$(date +%F)",
    "kubeadm certs renew all",
    "mv /etc/kubernetes/manifests/kube-apiserver.yaml /tmp/ && sleep 20 && mv /tmp/kube-apiserver.yaml /etc/kubernetes/manifests/   # and the other static pods",
    "# admin.conf is renewed too: take its new client certificate into your kubeconfig (never copy it over ~/.kube/config)",
];

/// Check 1: reachability, version, round trip, serving and client certificates, clock skew.
async fn apiserver(ctx: &Ctx) -> CheckResult {
    let timeout = ctx.cluster.timeout().unwrap_or(Duration::from_secs(10));
    let server = ctx.cluster.server().to_string();
    let (version, probe) = tokio::join!(ctx.version(), cpkit::certs::probe_tls(ctx.cluster.config(), &server, timeout));
    let now = Timestamp::now();
    let mut r = CheckResult::ok("apiserver", "");
    r.push_evidence("server", server.clone());
    // Problems lead the message; "answers in" and the healthy facts fill it when there are none.
    let mut notes = Vec::new();
    let mut answers = None;
    match &version {
        Ok(v) => {
            r.push_evidence("version", v.git_version.clone());
            r.push_evidence("round trip", short_latency(v.round_trip));
            answers = Some(format!("{} answers in {}", v.git_version, short_latency(v.round_trip)));
        }
        // Unreachable or failing is the API server's state; refused credentials or a missing
        // permission are this user's, and say nothing about the server.
        Err(e) => {
            r.status = match e.kind {
                ErrorKind::Unauthorized => Status::Unknown,
                ErrorKind::Forbidden => Status::Unknown,
                _ => Status::Critical,
            };
            // The whole paragraph is a sub-check; the message leads with the key fact.
            r.sub("request", r.status, e.to_string());
            notes.push(e.to_string());
        }
    }
    match &probe {
        Ok(p) => {
            if let Some(leaf) = p.leaf() {
                let status = expiry_status(leaf.not_after, now);
                let text = format!(
                    "serving certificate {} (issuer {}, SANs {}) {}",
                    leaf.name(),
                    leaf.issuer,
                    leaf.sans().join(", "),
                    describe_expiry(leaf.not_after, now)
                );
                r.sub("serving certificate", status, text.clone());
                r.push_evidence(
                    "serving certificate",
                    format!("{} {}", leaf.name(), describe_expiry(leaf.not_after, now)),
                );
                if status != Status::Ok {
                    r.raise(status);
                    notes.insert(
                        0,
                        format!("serving certificate {} {}", leaf.name(), describe_expiry(leaf.not_after, now)),
                    );
                    r.fix(
                        "Renew the control-plane certificates on every control-plane node, one node at a time, then restart the static pods.",
                        RENEW_CERTS,
                        "high: each API server restarts; clients using the old admin.conf keep working only until it expires",
                    );
                }
            }
            if let Some(err) = &p.verification_error {
                let expired = err.contains("expired");
                if !expired {
                    r.raise(Status::Critical);
                    r.sub("certificate verification", Status::Critical, err.clone());
                    notes.push(format!("TLS verification fails: {err}"));
                    r.fix(
                        "Use the right context, or refresh certificate-authority-data from /etc/kubernetes/admin.conf on a control-plane node.",
                        &["kubectl config view --minify --raw"],
                        "low",
                    );
                }
            } else if !p.verification_skipped {
                r.sub("certificate verification", Status::Ok, "chain verifies against the kubeconfig's CA".to_string());
            } else {
                r.sub(
                    "certificate verification",
                    Status::Warning,
                    "not verified: --insecure-skip-tls-verify".to_string(),
                );
            }
        }
        Err(e) if version.is_ok() => r.sub("serving certificate", Status::Unknown, e.to_string()),
        Err(_) => {}
    }
    if let Some(pem) = &ctx.cluster.info.client_certificate_pem {
        match cpkit::certs::parse_pem_bundle(pem) {
            Ok(certs) => {
                let leaf = &certs[0];
                let status = expiry_status(leaf.not_after, now);
                r.sub(
                    "client certificate",
                    status,
                    format!("kubeconfig client certificate {} {}", leaf.name(), describe_expiry(leaf.not_after, now)),
                );
                r.push_evidence(
                    "client certificate",
                    format!("{} {}", leaf.name(), describe_expiry(leaf.not_after, now)),
                );
                if status != Status::Ok {
                    r.raise(status);
                    notes.push(format!(
                        "client certificate {}: {}",
                        leaf.name(),
                        describe_expiry_short(leaf.not_after, now)
                    ));
                    let user = leaf.name();
                    let (how, command) = if user == "kubernetes-admin" {
                        (
                            "renew admin.conf on a control-plane node, then take its client certificate into your kubeconfig's user (not a copy over ~/.kube/config: your other contexts stay)".to_string(),
                            "kubeadm certs renew admin.conf   # on a control-plane node".to_string(),
                        )
                    } else {
                        (
                            format!(
                                "issue a new one for {user} on a control-plane node, then set it on your kubeconfig's user (`kubectl config set-credentials --client-certificate --client-key --embed-certs`)"
                            ),
                            format!(
                                "kubeadm kubeconfig user --client-name={user} > {user}.conf   # on a control-plane node"
                            ),
                        )
                    };
                    r.fix(
                        format!("Get a fresh client certificate: {how}."),
                        &[command.as_str()],
                        "low: only your credentials change",
                    );
                }
            }
            Err(e) => r.sub("client certificate", Status::Unknown, e.to_string()),
        }
    }
    if let Ok(v) = &version
        && let Some(skew) = v.clock_skew
    {
        let abs = skew.abs();
        let status = if abs > 60 {
            Status::Critical
        } else if abs > 10 {
            Status::Warning
        } else {
            Status::Ok
        };
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
        let cert = probe
            .as_ref()
            .ok()
            .and_then(|p| p.leaf())
            .map(|l| format!("serving certificate {}", describe_expiry(l.not_after, now)));
        notes.extend(cert);
        if let Ok(v) = &version
            && v.clock_skew.is_some_and(|s| s.abs() <= 10)
        {
            notes.push("clocks in sync".into());
        }
    }
    if r.status != Status::Ok
        && version.is_err()
        && r.remediation.is_empty()
        && let Err(e) = &version
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

fn replica_label(s: &ReplicaState) -> String {
    if s.replica.name == s.replica.url || s.replica.name == "api" {
        s.replica.url.clone()
    } else {
        format!("{} ({})", s.replica.name, s.replica.url)
    }
}

/// Check 2: `/livez?verbose` and `/readyz?verbose` of every replica.
async fn health(ctx: &Ctx, states: &ReplicaStates) -> CheckResult {
    let states = states.get(ctx).await;
    let mut r = CheckResult::ok("health", "");
    let read_through = ctx.read_through().await;
    if let Some(why) = &read_through {
        r.push_evidence("replicas", why.clone());
    }
    let mut failing: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut answered = 0;
    let mut totals = (0usize, 0usize, 0usize, 0usize);
    for s in states.iter() {
        let label = replica_label(s);
        let mut replica_ok = true;
        for (endpoint, resp) in [("livez", &s.livez), ("readyz", &s.readyz)] {
            match resp {
                Err(e) if e.kind == ErrorKind::Forbidden => {
                    r.sub(format!("{endpoint} {}", s.replica.name), Status::Skipped, e.to_string());
                }
                Ok(resp) if resp.status == 401 || resp.status == 403 => {
                    r.sub(
                        format!("{endpoint} {}", s.replica.name),
                        Status::Skipped,
                        format!("{label}: not permitted (HTTP {}): needs get on /{endpoint}", resp.status),
                    );
                }
                Err(e) => {
                    replica_ok = false;
                    r.sub(
                        format!("{endpoint} {}", s.replica.name),
                        Status::Unknown,
                        format!("{label} did not answer: {}", short_kind(e)),
                    );
                }
                Ok(resp) => {
                    let body = cpkit::health::parse(&resp.text());
                    let ok = body.count(CheckState::Ok) + body.count(CheckState::Excluded);
                    let total = body.checks.len();
                    if endpoint == "livez" {
                        totals.0 += ok;
                        totals.1 += total;
                    } else {
                        totals.2 += ok;
                        totals.3 += total;
                    }
                    for line in body.failed() {
                        failing.entry(format!("{endpoint}/{}", line.name)).or_default().push(s.replica.name.clone());
                        r.sub(
                            format!("{endpoint} {} [-]{}", s.replica.name, line.name),
                            Status::Critical,
                            format!("{label}: {} — {}", line.name, explain_check(&line.name)),
                        );
                    }
                    if resp.status != 200 && body.failed().next().is_none() {
                        failing
                            .entry(format!("{endpoint} (HTTP {})", resp.status))
                            .or_default()
                            .push(s.replica.name.clone());
                        r.sub(
                            format!("{endpoint} {}", s.replica.name),
                            Status::Critical,
                            format!(
                                "{label} answered HTTP {}: {}",
                                resp.status,
                                cpkit::output::truncate(resp.text().trim(), 200)
                            ),
                        );
                    } else if body.failed().next().is_none() {
                        r.sub(
                            format!("{endpoint} {}", s.replica.name),
                            Status::Ok,
                            format!("{label}: {ok}/{total} checks pass"),
                        );
                    }
                }
            }
        }
        if replica_ok {
            answered += 1;
        }
    }
    let refused = |r: &Result<RawResponse, Error>| match r {
        Err(e) => e.kind == ErrorKind::Forbidden,
        Ok(resp) => resp.status == 401 || resp.status == 403,
    };
    if states.iter().all(|s| refused(&s.readyz)) {
        return CheckResult::not_permitted("health", "get on /readyz and /livez");
    }
    if failing.is_empty() {
        // A check that evaluated nothing never reads "0/0 pass".
        if answered == 0 {
            r.status = Status::Unknown;
            let errors: Vec<&str> = r.subchecks.iter().map(|s| s.message.as_str()).collect();
            r.message = format!("no replica answered /livez or /readyz: {}", errors.join("; "));
            return r;
        }
        let per = answered;
        let counted = |ok: usize, total: usize| {
            if total == 0 { "answers ok".to_string() } else { format!("{ok}/{total} checks pass") }
        };
        r.message = if answered > 1 {
            format!(
                "livez ({} checks) and readyz ({} checks) pass on each of {answered} replicas",
                totals.1 / per,
                totals.3 / per
            )
        } else {
            format!("livez {}, readyz {}", counted(totals.0, totals.1), counted(totals.2, totals.3))
        };
        if read_through.is_some() {
            r.message.push_str(" (one replica's view, through the configured server)");
        }
        return r;
    }
    let mut parts = Vec::new();
    for (check, replicas) in &failing {
        let all = replicas.len() >= answered.max(1);
        r.raise(if all { Status::Critical } else { Status::Warning });
        parts.push(format!(
            "{check} fails on {}",
            if all && answered > 1 { "every replica".to_string() } else { replicas.join(", ") }
        ));
    }
    r.message = parts.join("; ");
    let names: BTreeSet<&str> = failing.keys().map(|k| k.split_once('/').map(|(_, n)| n).unwrap_or(k)).collect();
    if names.iter().any(|n| n.starts_with("etcd")) {
        r.fix("The API server cannot reach etcd: see the etcd check; on the node, check the API server's --etcd-servers and etcd certificates.", &["crictl logs $(crictl ps -q --name kube-apiserver) 2>&1 | grep -i etcd | tail   # on that node"], "low: diagnosis");
    } else {
        let failing_replicas: BTreeSet<&String> = failing.values().flatten().collect();
        let logs: Vec<String> = states
            .iter()
            .filter(|s| failing_replicas.contains(&s.replica.name))
            .map(|s| match &s.replica.pod {
                Some(pod) => format!("kubectl logs -n kube-system {pod} --tail=200"),
                None => {
                    format!("kubectl logs -n kube-system -l component=kube-apiserver --tail=200   # {}", s.replica.url)
                }
            })
            .collect();
        r.fix(
            "Read the failing API server's log for the failing check; a stuck start-up hook usually clears after a restart of that replica (one replica at a time).",
            &logs.iter().map(String::as_str).collect::<Vec<_>>(),
            "medium: restarting a replica drops its connections",
        );
    }
    r
}

/// Check 3: every replica, alive or down by what the API says (identity lease, EndpointSlice,
/// static pod), with its version and certificate when it can be dialled from here.
async fn replicas(ctx: &Ctx, states: &ReplicaStates) -> CheckResult {
    if let Some(p) = ctx.managed().await {
        return CheckResult::skipped(
            "replicas",
            format!(
                "not visible on a managed control plane ({}): its API server replicas are not reachable one by one",
                p.name()
            ),
        );
    }
    let survey = match ctx.survey().await {
        Ok(s) => s,
        Err(e) => return CheckResult::from_error("replicas", &e),
    };
    if let Some(e) = &survey.listing_error {
        return CheckResult::from_error("replicas", e);
    }
    if survey.replicas.is_empty() {
        return CheckResult::skipped("replicas", survey.read_through.clone().unwrap_or_default());
    }
    if survey.replicas.iter().any(|r| matches!(r.facts.reach, cpkit::liveness::Reach::OtherCa(_))) {
        return CheckResult::skipped(
            "replicas",
            format!("not visible one by one: {}", survey.read_through.clone().unwrap_or_default()),
        );
    }
    let states = states.get(ctx).await;
    let now = Timestamp::now();
    let lb_ok = ctx.version().await.is_ok();
    let mut r = CheckResult::ok("replicas", "");
    let mut down = Vec::new();
    let mut down_pods = Vec::new();
    let mut unreachable = Vec::new();
    let mut not_ready = Vec::new();
    let mut cert_issues: Vec<(String, String)> = Vec::new();
    let mut versions: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for surveyed in &survey.replicas {
        let name = &surveyed.replica.name;
        let label = format!("{name} ({})", surveyed.replica.url);
        let state = states.iter().find(|s| s.replica.url == surveyed.replica.url);
        match (&surveyed.liveness, state) {
            (Liveness::Down { cause, detail }, _) => {
                down.push(format!("{name} ({cause})"));
                down_pods.push(surveyed.replica.pod.clone().unwrap_or_else(|| format!("kube-apiserver-{name}")));
                r.sub(format!("replica {name}"), Status::Warning, format!("{label} is down: {detail}"));
            }
            (Liveness::AliveUnreachable(why), _) => {
                unreachable.push(name.clone());
                r.sub(format!("replica {name}"), Status::Note, format!("{label}: {why}"));
            }
            (Liveness::Reachable, Some(s)) => match &s.version {
                Ok(v) => {
                    versions.entry(v.clone()).or_default().push(name.clone());
                    let ready = s.readyz.as_ref().map(|x| x.status == 200).unwrap_or(false);
                    if !ready {
                        not_ready.push(name.clone());
                    }
                    let cert = match &s.tls {
                        Ok(p) => p.leaf().map(|l| {
                            let st = expiry_status(l.not_after, now);
                            if st != Status::Ok {
                                r.raise(st);
                                cert_issues.push((name.clone(), describe_expiry(l.not_after, now)));
                            }
                            format!(", certificate {}", describe_expiry(l.not_after, now))
                        }),
                        Err(_) => None,
                    };
                    let note = if s.replica.in_endpoints { "" } else { " (not in the kubernetes EndpointSlice)" };
                    r.sub(
                        format!("replica {name}"),
                        if ready { Status::Ok } else { Status::Warning },
                        format!(
                            "{label}: {v}, {}{}{note}",
                            if ready { "ready" } else { "NOT ready" },
                            cert.unwrap_or_default()
                        ),
                    );
                }
                Err(e) => {
                    down.push(format!("{name} ({})", short_kind(e)));
                    down_pods.push(surveyed.replica.pod.clone().unwrap_or_else(|| format!("kube-apiserver-{name}")));
                    r.sub(
                        format!("replica {name}"),
                        Status::Warning,
                        format!("{label} does not answer: {}", short_kind(e)),
                    );
                }
            },
            (Liveness::Reachable, None) => {
                r.sub(format!("replica {name}"), Status::Ok, format!("{label}: reachable"));
            }
        }
    }
    let total = survey.replicas.len();
    let mut parts = Vec::new();
    if !down.is_empty() {
        r.raise(if lb_ok && down.len() < total { Status::Warning } else { Status::Critical });
        parts.push(format!(
            "replica {} down while {}",
            down.join(", "),
            if lb_ok { "the load balancer answers" } else { "the load balancer does not answer either" }
        ));
        let logs: Vec<String> =
            down_pods.iter().map(|p| format!("kubectl logs -n kube-system {p} --previous --tail=100")).collect();
        r.fix(
            "On that node: `crictl ps -a --name kube-apiserver` and `crictl logs` of the exited container (certificates, etcd reachability, OOM); check the load balancer's health checks so it stops sending traffic there.",
            &logs.iter().map(String::as_str).collect::<Vec<_>>(),
            "medium: fix one replica at a time; the others carry the load meanwhile",
        );
    }
    if !not_ready.is_empty() {
        r.raise(Status::Warning);
        parts.push(format!("replica {} answers but is not ready (see health)", not_ready.join(", ")));
    }
    if !cert_issues.is_empty() {
        // One line per expiry: the replicas share their certificates' dates more often than not.
        let mut by_expiry: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (name, expiry) in &cert_issues {
            by_expiry.entry(expiry.as_str()).or_default().push(name.as_str());
        }
        for (expiry, names) in by_expiry {
            parts.push(format!("serving certificate of {} {expiry}", names.join(", ")));
        }
        r.fix(
            "Renew the serving certificate on each of those control-plane nodes, one at a time.",
            RENEW_CERTS,
            "high: each API server restarts",
        );
    }
    if versions.len() > 1 {
        r.raise(Status::Warning);
        parts.push(format!(
            "version skew: {}",
            versions.iter().map(|(v, names)| format!("{v} on {}", names.join(","))).collect::<Vec<_>>().join(", ")
        ));
    }
    if !unreachable.is_empty() {
        r.raise(Status::Note);
        let basis = if survey.leases_read { "their identity leases" } else { "the kubernetes EndpointSlice" };
        parts.push(format!(
            "{} alive by {basis}, not reachable from here: health and load read through the configured server",
            unreachable.join(", ")
        ));
    }
    r.push_evidence(
        "replicas",
        survey.replicas.iter().map(|x| format!("{} {}", x.replica.name, x.replica.url)).collect::<Vec<_>>().join(", "),
    );
    if let Some(why) = &survey.read_through {
        r.push_evidence("read through", why.clone());
    }
    if parts.is_empty() {
        let v = versions.keys().next().cloned().unwrap_or_default();
        if total == 1 {
            r.raise(Status::Note);
            r.message = format!("1 replica ({v}, ready): no HA");
        } else {
            r.message = format!("{total} replicas answer and are ready ({v})");
        }
    } else {
        r.message = one_line(&parts);
    }
    r
}

/// Check 4: the control-plane static pods of every control-plane node.
async fn static_pods(ctx: &Ctx) -> CheckResult {
    // Pods, control-plane nodes and Warning events at once.
    let (nodes_access, events_access) =
        (Access::resource("list", "", "nodes", None), Access::resource("list", "", "events", Some("kube-system")));
    let (pods, cp_node_list, events) = tokio::join!(
        ctx.control_plane_pods(),
        ctx.cluster
            .list_all::<Node>("/api/v1/nodes?labelSelector=node-role.kubernetes.io%2Fcontrol-plane", &nodes_access),
        ctx.cluster
            .list_all::<Value>("/api/v1/namespaces/kube-system/events?fieldSelector=type%3DWarning", &events_access)
    );
    let pods = match pods {
        Ok(p) => p,
        Err(e) => return CheckResult::from_error("static-pods", &e),
    };
    if pods.is_empty() {
        return match ctx.managed().await {
            Some(p) => {
                CheckResult::skipped("static-pods", format!("not visible on a managed control plane ({})", p.name()))
            }
            None => CheckResult::skipped(
                "static-pods",
                "no control-plane pods (tier=control-plane) in kube-system: the control plane does not run as static pods here",
            ),
        };
    }
    let cp_nodes: Vec<String> = match cp_node_list {
        Ok(nodes) => nodes.iter().filter_map(|n| n.metadata.name.clone()).collect(),
        Err(_) => pods.iter().map(|p| p.node.clone()).collect::<BTreeSet<_>>().into_iter().collect(),
    };
    let now = Timestamp::now();
    let stacked_etcd = pods.iter().any(|p| p.component == "etcd");
    let mut r = CheckResult::ok("static-pods", "");
    let mut problems = Vec::new();
    let mut ready_count = 0;
    let mut expected_total = 0;
    let mut failing_pods: Vec<(String, String, String)> = Vec::new();
    // (component, state word) → (pod, state): the same failure on every node reads as one.
    let mut not_ready: BTreeMap<(String, String), Vec<(String, String)>> = BTreeMap::new();
    for node in &cp_nodes {
        for component in COMPONENTS {
            if component == "etcd" && !stacked_etcd {
                continue;
            }
            expected_total += 1;
            let found: Vec<&ComponentPod> =
                pods.iter().filter(|p| &p.node == node && p.component == component).collect();
            let others_ready = pods.iter().filter(|p| p.component == component && p.ready && &p.node != node).count();
            let Some(pod) = found.first() else {
                let st = if others_ready > 0 { Status::Warning } else { Status::Critical };
                r.raise(st);
                problems.push(format!("{component} missing on {node}"));
                r.sub(format!("{component}-{node}"), st, format!("no {component} mirror pod on {node}: kubelet down, or the manifest is gone from /etc/kubernetes/manifests"));
                continue;
            };
            let state = pod.state_text(now);
            if pod.ready {
                ready_count += 1;
                if pod.restarted_recently(now, 3600) {
                    r.raise(Status::Warning);
                    problems.push(format!("{} restarted {} times (last {})", pod.name, pod.restarts, state));
                    r.sub(
                        pod.name.clone(),
                        Status::Warning,
                        format!("Ready but restarted recently: {} restarts, {state}", pod.restarts),
                    );
                } else {
                    r.sub(pod.name.clone(), Status::Ok, format!("Ready, {} restarts", pod.restarts));
                }
            } else {
                let st = if others_ready > 0 { Status::Warning } else { Status::Critical };
                r.raise(st);
                failing_pods.push((pod.name.clone(), pod.component.clone(), pod.node.clone()));
                not_ready
                    .entry((pod.component.clone(), state.split(' ').next().unwrap_or("").to_string()))
                    .or_default()
                    .push((pod.name.clone(), state.clone()));
                r.sub(pod.name.clone(), st, format!("not Ready: {state}, {} restarts", pod.restarts));
                if pod.last_termination.as_ref().is_some_and(|t| t.reason == "OOMKilled") {
                    r.fix(
                        format!("{} is OOM-killed: raise its memory limit in /etc/kubernetes/manifests/{}.yaml on {} (back the manifest up first), or find what inflates it (big LISTs, watch storms).", pod.name, pod.component, pod.node),
                        &[],
                        "medium: editing a static pod manifest restarts the pod",
                    );
                }
            }
        }
    }
    // Recent Warning events of these pods.
    if let Ok(events) = events {
        let names: BTreeSet<&str> = pods.iter().map(|p| p.name.as_str()).collect();
        for e in events {
            let obj = e["involvedObject"]["name"].as_str().unwrap_or("");
            let when =
                e["lastTimestamp"].as_str().or(e["eventTime"].as_str()).and_then(|t| t.parse::<Timestamp>().ok());
            if names.contains(obj) && when.is_some_and(|t| now.as_second() - t.as_second() < 3600) {
                r.push_evidence(
                    &format!("event {obj}"),
                    format!(
                        "{} ×{}: {}",
                        e["reason"].as_str().unwrap_or(""),
                        e["count"].as_i64().unwrap_or(1),
                        e["message"].as_str().unwrap_or("")
                    ),
                );
            }
        }
    }
    if problems.is_empty() && not_ready.is_empty() {
        r.message = format!(
            "{ready_count}/{expected_total} control-plane pods Ready on {} node{}",
            cp_nodes.len(),
            if cp_nodes.len() == 1 { "" } else { "s" }
        );
    } else {
        let grouped = not_ready.into_iter().map(|((_, word), pods)| match pods.as_slice() {
            [(pod, state)] => format!("{pod} {state}"),
            _ => format!("{} {word}", pods.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>().join(", ")),
        });
        let mut parts: Vec<String> = grouped.collect();
        parts.append(&mut problems);
        r.message = one_line(&parts);
        if !r.remediation.iter().any(|f| f.action.contains("OOM")) && !failing_pods.is_empty() {
            let on_nodes: Vec<String> = failing_pods
                .iter()
                .map(|(_, component, node)| format!("`crictl ps -a --name {component}` on {node}"))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            let commands: Vec<String> = failing_pods
                .iter()
                .flat_map(|(pod, _, _)| {
                    [
                        format!("kubectl logs -n kube-system {pod} --previous --tail=100"),
                        format!("kubectl describe pod -n kube-system {pod}"),
                    ]
                })
                .collect();
            r.fix(
                format!("Read why the container exits ({}, then `crictl logs` of the exited container); typical causes are expired certificates, a bad flag after an edit of /etc/kubernetes/manifests, or etcd being unreachable.", on_nodes.join(", ")),
                &commands.iter().map(String::as_str).collect::<Vec<_>>(),
                "low: diagnosis; fix one node at a time",
            );
        }
    }
    r
}

/// Check 5: the controller-manager and scheduler leader leases.
async fn leader_election(ctx: &Ctx) -> CheckResult {
    let now = Timestamp::now();
    let mut r = CheckResult::ok("leader-election", "");
    let mut parts = Vec::new();
    let pods = ctx.control_plane_pods().await.ok();
    let mut skipped_reasons = Vec::new();
    for name in ["kube-controller-manager", "kube-scheduler"] {
        let path = format!("/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/{name}");
        match ctx
            .cluster
            .get_json::<Lease>(&path, &Access::resource("get", "coordination.k8s.io", "leases", Some("kube-system")))
            .await
        {
            Ok(lease) => {
                let info = LeaseInfo::from_lease(&lease);
                let (st, text) = judge_lease(&info, now);
                r.raise(st);
                r.sub(name, st, text.clone());
                if let Some(h) = info.holder_node() {
                    r.push_evidence(
                        name,
                        format!(
                            "{h}, renewed {}",
                            info.renew_age(now).map(cpkit::duration::human_duration_signed).unwrap_or_default()
                        ),
                    );
                }
                parts.push((st, text));
                if st == Status::Critical {
                    r.fix(
                        format!("No active {name}: check its pods (`kubectl get pods -n kube-system -l component={name}`) and logs; they must reach the API server and renew the lease every few seconds."),
                        &[&format!("kubectl logs -n kube-system -l component={name} --tail=50")],
                        "medium: while no leader runs, nothing is scheduled or reconciled",
                    );
                }
            }
            Err(e) if e.kind == ErrorKind::NotFound => {
                let disabled = pods.as_ref().is_some_and(|ps| {
                    ps.iter().any(|p| p.component == name && p.flags.bool("leader-elect") == Some(false))
                });
                if disabled {
                    r.sub(
                        name,
                        Status::Skipped,
                        "leader election disabled (--leader-elect=false: a single instance)".to_string(),
                    );
                    parts.push((Status::Ok, format!("{name}: leader election disabled")));
                } else {
                    r.raise(Status::Warning);
                    r.sub(name, Status::Warning, format!("no lease kube-system/{name}"));
                    parts.push((Status::Warning, format!("{name}: no lease")));
                }
            }
            Err(e) if e.kind == ErrorKind::Forbidden => skipped_reasons.push(e.why.clone()),
            Err(e) => {
                r.raise(Status::Unknown);
                parts.push((Status::Unknown, format!("{name}: {e}")));
            }
        }
    }
    if !skipped_reasons.is_empty() && parts.is_empty() {
        return CheckResult::not_permitted("leader-election", "get on leases.coordination.k8s.io in kube-system");
    }
    // The problems lead; healthy leases are in the sub-checks.
    parts.sort_by_key(|p| std::cmp::Reverse(p.0));
    let problems: Vec<String> = parts.iter().filter(|(st, _)| *st > Status::Note).map(|(_, t)| t.clone()).collect();
    let all: Vec<String> = parts.into_iter().map(|(_, t)| t).collect();
    r.message = one_line(if problems.is_empty() { &all } else { &problems });
    r
}

/// Check 6: etcd, through the etcd pods (exec), directly, or from the API server's metrics.
async fn etcd(ctx: &Ctx) -> CheckResult {
    let timeout =
        Duration::from_secs(3).max(ctx.cluster.timeout().unwrap_or(Duration::from_secs(3)).min(Duration::from_secs(8)));
    if !ctx.options.etcd_endpoints.is_empty() {
        let tls = match cpkit::etcd::direct::EtcdTls::load(&ctx.options.etcd_tls) {
            Ok(t) => t,
            Err(e) => return CheckResult::new("etcd", Status::Unknown, e.to_string()),
        };
        return match cpkit::etcd::direct::cluster_status(&ctx.options.etcd_endpoints, &tls, 0, timeout).await {
            Ok(status) => cpkit::etcd::status::judge(&status),
            Err(e) => {
                let mut r = CheckResult::new("etcd", Status::Critical, e.to_string());
                r.fix(e.fix.clone(), &[], "low: diagnosis");
                r
            }
        };
    }
    if let Some(p) = ctx.managed().await {
        return CheckResult::skipped(
            "etcd",
            format!("not visible on a managed control plane ({}): the provider runs etcd", p.name()),
        );
    }
    let pods = match cpkit::etcd::pods::find(&ctx.cluster).await {
        Ok(p) => p,
        Err(e) if e.kind == ErrorKind::Forbidden => {
            return metrics_fallback(
                ctx,
                "not permitted: needs list on pods in kube-system",
                Some("list on pods in kube-system"),
            )
            .await;
        }
        Err(e) => return CheckResult::from_error("etcd", &e),
    };
    if pods.is_empty() {
        return metrics_fallback(
            ctx,
            "no etcd pods in kube-system (external etcd? pass --etcd-endpoints with certificates)",
            None,
        )
        .await;
    }
    let quota = pods.iter().find_map(|p| p.quota_backend_bytes).unwrap_or(0);
    // The status (through the running members, one after another until one answers) and every
    // member's certificate (through its pod's shell), at once.
    let status_fut = async {
        let mut last_error = None;
        for pod in pods.iter().filter(|p| p.is_running()).chain(pods.iter().filter(|p| !p.is_running())) {
            match cpkit::etcd::pods::status_via_exec(&ctx.cluster, pod, timeout).await {
                Ok(mut s) => {
                    if s.quota_bytes == 0 {
                        s.quota_bytes = quota;
                    }
                    return Ok(s);
                }
                // Refused for every pod alike: no use asking the next one.
                Err(e) if e.kind == ErrorKind::Forbidden || e.refusing_webhook().is_some() => return Err(e),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| Error::failed("No etcd pod answered", "", "")))
    };
    let reads_fut = futures::future::join_all(
        pods.iter().filter(|p| p.is_running()).filter_map(|p| p.cert_file.clone().map(|c| (p, c))).map(
            |(p, path)| async move {
                (p.member.clone(), path.clone(), cpkit::etcd::pods::read_file(&ctx.cluster, p, &path, timeout).await)
            },
        ),
    );
    let (status, reads) = tokio::join!(status_fut, reads_fut);
    let status = match status {
        Ok(s) => s,
        Err(e) if e.kind == ErrorKind::Forbidden => {
            return metrics_fallback(
                ctx,
                "not permitted: needs get and create on pods/exec in kube-system",
                Some("get and create on pods/exec in kube-system"),
            )
            .await;
        }
        Err(e) if e.refusing_webhook().is_some() => {
            let webhook = e.refusing_webhook().unwrap_or_default();
            let mut r = metrics_fallback(
                ctx,
                &format!("exec into the etcd pods is refused by admission webhook {webhook}"),
                None,
            )
            .await;
            // What etcd itself says is unknown: the API server's view is not the members' health.
            r.raise(Status::Unknown);
            r.remediation.clear();
            r.fix(
                format!("The webhook {webhook} refuses exec into pods; once it is defused (see the webhooks check), this check reads etcd again."),
                &[],
                "low: diagnosis",
            );
            return r;
        }
        Err(e) => {
            let mut r =
                CheckResult::new("etcd", Status::Critical, format!("no etcd member answered through exec: {e}"));
            r.fix(
                "Check the etcd pods on their nodes: `crictl ps -a --name etcd`, then `crictl logs` of the exited container.",
                &[],
                "low: diagnosis",
            );
            return r;
        }
    };
    let mut r = cpkit::etcd::status::judge(&status);
    let now = Timestamp::now();
    for (member, path, text) in reads {
        match text.map(|t| cpkit::certs::parse_pem_bundle(t.as_bytes())) {
            Ok(Ok(certs)) => {
                let leaf = &certs[0];
                let st = expiry_status(leaf.not_after, now);
                r.sub(format!("certificate {member}"), st, format!("{path}: {}", describe_expiry(leaf.not_after, now)));
                if st != Status::Ok {
                    r.raise(st);
                    r.message.push_str(&format!(
                        "; etcd server certificate of {member} {}",
                        describe_expiry(leaf.not_after, now)
                    ));
                    r.fix("Renew the etcd certificates on that node (`kubeadm certs renew etcd-server etcd-peer etcd-healthcheck-client`), then restart its etcd static pod.", &[], "high: one member at a time; quorum must hold");
                }
            }
            Ok(Err(e)) => r.sub(format!("certificate {member}"), Status::Unknown, e.to_string()),
            Err(e) => r.sub(
                format!("certificate {member}"),
                Status::Skipped,
                format!("not readable through the pod: {}", e.why),
            ),
        }
    }
    r
}

/// etcd as the API server sees it, when etcd itself cannot be reached.
async fn metrics_fallback(ctx: &Ctx, why: &str, missing_permission: Option<&str>) -> CheckResult {
    let scrapes = ctx.first_scrapes().await;
    let size = scrapes.iter().filter_map(|(_, s)| s.as_ref().ok()).find_map(|s| {
        ["apiserver_storage_size_bytes", "apiserver_storage_db_total_size_in_bytes", "etcd_db_total_size_in_bytes"]
            .iter()
            .find_map(|f| s.scrape.max_by(f, &[], &cpkit::metrics::any).values().next().copied())
    });
    let mut r = match missing_permission {
        Some(p) => CheckResult::not_permitted("etcd", p),
        // External etcd: its size through the API server is what can be checked.
        None => CheckResult::new("etcd", Status::Ok, ""),
    };
    match size {
        Some(bytes) => {
            // The API server's view: the size, not the members' health.
            let pct = bytes / cpkit::etcd::status::DEFAULT_QUOTA as f64 * 100.0;
            if pct > 80.0 {
                r.raise(Status::Warning);
            }
            r.message = format!("{why}; metrics: db {} ({pct:.0}% of 2 GiB)", cpkit::output::human_bytes(bytes as u64));
        }
        None => {
            r.raise(Status::Unknown);
            r.message = format!("{why}; /metrics is not readable either");
        }
    }
    r.fix(
        "Or check etcd directly from a control-plane node: pass --etcd-endpoints with --etcd-cacert/--etcd-cert/--etcd-key.",
        &[],
        "low: read-only",
    );
    r
}

/// Check 7: load and latency from two scrapes of every replica.
async fn load(ctx: &Ctx, states: &ReplicaStates) -> CheckResult {
    let (pairs, states) = tokio::join!(ctx.scrape_pairs(), states.get(ctx));
    // A replica that fails /readyz is out of the load balancer's rotation and already reported
    // by the health check: its slow or failing requests (stacked etcd: its local member is
    // down) are its own, not what the cluster's clients see.
    let not_ready: BTreeSet<String> = states
        .iter()
        .filter(|s| match &s.readyz {
            Ok(resp) => resp.status >= 500,
            Err(e) => e.kind.is_unreachable(),
        })
        .map(|s| s.replica.name.clone())
        .collect();
    let mut windows = Vec::new();
    let mut notes = Vec::new();
    let mut forbidden = None;
    let limits_by_node: BTreeMap<String, cpkit::load::InflightLimits> = ctx
        .control_plane_pods()
        .await
        .map(|pods| {
            pods.iter()
                .filter(|p| p.component == "kube-apiserver")
                .map(|p| {
                    let ro = p.flags.get("max-requests-inflight").and_then(|v| v.parse().ok());
                    let m = p.flags.get("max-mutating-requests-inflight").and_then(|v| v.parse().ok());
                    (
                        p.node.clone(),
                        cpkit::load::InflightLimits {
                            read_only: ro.unwrap_or(400.0),
                            mutating: m.unwrap_or(200.0),
                            from_flags: ro.is_some() || m.is_some(),
                        },
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    for (replica, pair) in &pairs {
        match pair {
            Ok((older, newer, secs)) => windows.push(cpkit::load::Window {
                replica: replica.name.clone(),
                older,
                newer,
                seconds: *secs,
                limits: limits_by_node.get(&replica.name).copied().unwrap_or_default(),
            }),
            Err(e) if e.kind == ErrorKind::Forbidden => forbidden = Some(e.clone()),
            Err(e) => notes.push(format!("{}: {}", replica.name, short_kind(e))),
        }
    }
    if windows.is_empty() {
        return match forbidden {
            Some(e) => CheckResult::from_error("load", &e),
            None => {
                CheckResult::new("load", Status::Unknown, format!("no /metrics scrape succeeded: {}", notes.join("; ")))
            }
        };
    }
    let serving_count = windows.iter().filter(|w| !not_ready.contains(&w.replica)).count();
    let (serving, unready): (Vec<_>, Vec<_>) =
        windows.into_iter().partition(|w| serving_count == 0 || !not_ready.contains(&w.replica));
    let summary = cpkit::load::summarise(&serving);
    let mut r = cpkit::load::judge(&summary);
    if !unready.is_empty() {
        let names: Vec<&str> = unready.iter().map(|w| w.replica.as_str()).collect();
        let theirs = cpkit::load::judge(&cpkit::load::summarise(&unready));
        let label = format!("not ready: {}", names.join(", "));
        if theirs.status > Status::Ok {
            r.sub(
                label,
                Status::Warning,
                format!("{} (failing /readyz, out of rotation; see health): {}", names.join(", "), theirs.message),
            );
            let slow = format!("{} (not ready) is slow: {}", names.join(", "), theirs.message);
            r.message = if r.status == Status::Ok {
                format!("{slow}; the serving replicas: {}", r.message)
            } else {
                format!("{}; {slow}", r.message)
            };
            r.raise(Status::Warning);
        } else {
            r.sub(label, Status::Ok, format!("{} not ready; its requests look normal", names.join(", ")));
        }
    }
    if !notes.is_empty() {
        r.push_evidence("not scraped", notes.join("; "));
    }
    if let Some(why) = ctx.read_through().await {
        r.message.push_str(" (one replica's view)");
        r.push_evidence("read through", why);
    }
    if ctx.options.sample.is_zero() {
        r.push_evidence(
            "window",
            "one scrape (--sample 0): latencies since the API servers started, no rates".to_string(),
        );
    }
    r
}

/// Check 8: aggregated APIs (APIServices with a service) that are not Available.
async fn aggregated_apis(ctx: &Ctx) -> CheckResult {
    let items = match ctx
        .cluster
        .list_all::<Value>(
            "/apis/apiregistration.k8s.io/v1/apiservices",
            &Access::resource("list", "apiregistration.k8s.io", "apiservices", None),
        )
        .await
    {
        Ok(i) => i,
        Err(e) => return CheckResult::from_error("aggregated-apis", &e),
    };
    let mut r = CheckResult::ok("aggregated-apis", "");
    let served: Vec<&Value> = items.iter().filter(|a| !a["spec"]["service"].is_null()).collect();
    // Each aggregated API is asked for its discovery document, as kubectl does: an API that
    // reads Available but hangs stalls every client's discovery, and the availability
    // controller only notices on its next round.
    let probe_timeout = ctx.cluster.timeout().unwrap_or(Duration::from_secs(3)).min(Duration::from_secs(3));
    let probes = futures::future::join_all(served.iter().map(|a| {
        let path = format!(
            "/apis/{}/{}",
            a["spec"]["group"].as_str().unwrap_or(""),
            a["spec"]["version"].as_str().unwrap_or("")
        );
        async move {
            let started = Instant::now();
            let answer = tokio::time::timeout(probe_timeout, ctx.cluster.get_raw(&path)).await;
            (path, answer.ok(), started.elapsed())
        }
    }))
    .await;
    let mut down = Vec::new();
    let mut slow = Vec::new();
    let mut fixes: Vec<String> = Vec::new();
    for (a, (path, answer, took)) in served.iter().zip(probes) {
        let name = a["metadata"]["name"].as_str().unwrap_or("");
        let (namespace, service) = (
            a["spec"]["service"]["namespace"].as_str().unwrap_or(""),
            a["spec"]["service"]["name"].as_str().unwrap_or(""),
        );
        let svc = format!("{namespace}/{service}");
        let answer = answer.filter(|a| !matches!(a, Err(e) if e.kind == ErrorKind::Timeout));
        let answered = match &answer {
            None => format!("GET {path} did not answer within {}", short_latency(probe_timeout)),
            Some(Err(e)) => format!("GET {path} failed: {}", e.why),
            Some(Ok(resp)) => format!("GET {path} answered {} in {}", resp.status, short_latency(took)),
        };
        let answers_ok = matches!(&answer, Some(Ok(resp)) if resp.is_success());
        // Permission to read the group is not the API's health.
        let not_allowed = matches!(&answer, Some(Ok(resp)) if resp.status == 401 || resp.status == 403);
        let cond = a["status"]["conditions"].as_array().and_then(|c| c.iter().find(|c| c["type"] == "Available"));
        let available = cond.is_some_and(|c| c["status"] == "True");
        if available && (answers_ok || not_allowed) {
            r.sub(name, Status::Ok, format!("Available ({svc}); {answered}"));
        } else if available {
            r.sub(name, Status::Warning, format!("Available ({svc}), but {answered}"));
            slow.push(format!("{name} ({svc}) reads Available but {answered}"));
            fixes.push(format!("kubectl get endpointslices -n {namespace} -l kubernetes.io/service-name={service}"));
        } else {
            let reason = cond
                .map(|c| format!("{}: {}", c["reason"].as_str().unwrap_or(""), c["message"].as_str().unwrap_or("")))
                .unwrap_or_else(|| "no Available condition".into());
            let since = cond
                .and_then(|c| c["lastTransitionTime"].as_str())
                .and_then(|t| t.parse::<Timestamp>().ok())
                .map(|t| format!(" for {}", cpkit::duration::age(t, Timestamp::now())))
                .unwrap_or_default();
            r.sub(name, Status::Critical, format!("NOT Available{since} ({svc}): {reason}; {answered}"));
            let why = reason.split(':').next().unwrap_or(&reason).to_string();
            down.push(format!("{name} ({svc}) unavailable{since}: {why}"));
            fixes.push(format!("kubectl get endpointslices -n {namespace} -l kubernetes.io/service-name={service}"));
            fixes.push(format!("kubectl get apiservice {name} -o yaml"));
            fixes.push(format!("kubectl delete apiservice {name}   # only if nothing needs this API"));
        }
    }
    let total = served.len();
    if down.is_empty() && slow.is_empty() {
        r.message = if total == 0 {
            "no aggregated APIs".into()
        } else {
            format!("{total} aggregated API{} available", if total == 1 { "" } else { "s" })
        };
    } else {
        r.raise(if down.is_empty() { Status::Warning } else { Status::Critical });
        down.extend(slow);
        r.message = one_line(&down);
        let commands: Vec<&str> = fixes.iter().map(String::as_str).collect();
        r.fix(
            "An aggregated API that is unavailable or does not answer slows discovery for every client (kubectl waits on it) and breaks what uses it (HPA for metrics.k8s.io). Fix its backend pods behind the service, or delete the APIService if nothing needs it.",
            &commands,
            "medium: deleting an APIService removes that API until it is re-registered",
        );
    }
    r
}

/// Check 9: nodes, read page by page.
async fn nodes(ctx: &Ctx) -> CheckResult {
    let mut summary = NodeSummary::default();
    if let Err(e) = ctx
        .cluster
        .list_paged::<Node, _>("/api/v1/nodes", 500, &Access::resource("list", "", "nodes", None), |n| summary.add(&n))
        .await
    {
        return CheckResult::from_error("nodes", &e);
    }
    let mut r = CheckResult::ok("nodes", "");
    r.push_evidence(
        "kubelet versions",
        summary.kubelet_versions.iter().map(|(v, n)| format!("{v} ×{n}")).collect::<Vec<_>>().join(", "),
    );
    let mut parts = Vec::new();
    if !summary.control_plane_not_ready.is_empty() {
        r.raise(Status::Critical);
        parts.push(format!("control-plane node NotReady: {}", summary.control_plane_not_ready.join(", ")));
        for n in &summary.control_plane_not_ready {
            r.sub(n.clone(), Status::Critical, "control-plane node NotReady".to_string());
        }
    }
    if summary.workers_not_ready > 0 {
        r.raise(Status::Warning);
        // The message names a few; every one is a sub-check (JSON has the full list).
        const NAMED: usize = 3;
        let names: Vec<&str> = summary.workers_not_ready_names.iter().take(NAMED).map(|(n, _)| n.as_str()).collect();
        let more = summary.workers_not_ready.saturating_sub(names.len());
        parts.push(format!(
            "{} worker{} NotReady ({}{})",
            summary.workers_not_ready,
            if summary.workers_not_ready == 1 { "" } else { "s" },
            names.join(", "),
            if more > 0 { format!(", and {more} more") } else { String::new() }
        ));
        for (name, reason) in &summary.workers_not_ready_names {
            r.sub(name.clone(), Status::Warning, format!("NotReady: {reason}"));
        }
    }
    if !parts.is_empty() {
        let first: Vec<String> = summary
            .control_plane_not_ready
            .iter()
            .map(|n| n.split(' ').next().unwrap_or(n).to_string())
            .chain(summary.workers_not_ready_names.iter().map(|(n, _)| n.clone()))
            .take(3)
            .collect();
        let commands: Vec<String> = first.iter().map(|n| format!("kubectl describe node {n}")).collect();
        r.fix(
            "Check the kubelet on those nodes (`systemctl status kubelet`, `journalctl -u kubelet`), their node leases, and the network to the API server.",
            &commands.iter().map(String::as_str).collect::<Vec<_>>(),
            "low: diagnosis",
        );
    }
    if !summary.other_conditions.is_empty() {
        r.push_evidence(
            "other conditions",
            summary.other_conditions.iter().map(|(c, n)| format!("{c} ×{n}")).collect::<Vec<_>>().join(", "),
        );
    }
    if summary.control_plane == 1 && parts.is_empty() {
        // Worth knowing, not a fault.
        r.raise(Status::Note);
        parts.push("a single control-plane node: no HA".into());
    }
    let base = format!("{}/{} Ready ({} control-plane)", summary.ready, summary.total, summary.control_plane);
    parts.push(base);
    r.message = one_line(&parts);
    r
}

/// Check 10: webhooks that can lock the cluster (the webhookguard analysis).
async fn webhooks(ctx: &Ctx) -> CheckResult {
    let configs = match cpkit::webhooks::gather::read_configs(&ctx.cluster).await {
        Ok(c) => c,
        Err(e) => return CheckResult::from_error("webhooks", &e),
    };
    let (facts, notes) = cpkit::webhooks::gather::read_facts(&ctx.cluster, &configs).await;
    let findings = cpkit::webhooks::analyse(&configs, &facts);
    let count: usize = configs.iter().map(|c| c.webhooks.len()).sum();
    let mut r = CheckResult::ok("webhooks", "");
    use cpkit::webhooks::FindingKind as K;
    let mut parts = Vec::new();
    let down: BTreeSet<(String, String)> =
        findings.iter().filter(|f| f.kind == K::BackendDown).map(|f| (f.config.clone(), f.webhook.clone())).collect();
    for f in &findings {
        if matches!(f.kind, K::Lockout | K::SelfDeadlock) && down.contains(&(f.config.clone(), f.webhook.clone())) {
            continue;
        }
        let status = match (f.kind, f.severity) {
            (K::BackendDown, s) => s,
            (K::Lockout, Status::Critical) => Status::Warning,
            (K::SelfDeadlock, _) => Status::Warning,
            (K::CaBundle, Status::Critical) => Status::Critical,
            (K::Runtime, s) => s,
            _ => continue,
        };
        r.raise(status);
        let text = match f.kind {
            K::Lockout => {
                format!("{} ({}) would lock the cluster if its backend died: {}", f.webhook, f.config, f.summary)
            }
            _ => format!("{} ({}): {}", f.webhook, f.config, f.summary),
        };
        // The message leads with the key fact; the whole finding is the sub-check.
        let short = match (f.kind, &f.blast_radius) {
            (K::BackendDown, Some(radius)) => format!("{}: backend down, {radius}", f.webhook),
            (K::BackendDown, None) => {
                format!("{} ({}): {}", f.webhook, f.config, f.summary.split(", and ").next().unwrap_or(&f.summary))
            }
            (K::Lockout, _) => format!("{} ({}) would lock the cluster if its backend died", f.webhook, f.config),
            _ => text.clone(),
        };
        r.sub(format!("{} {}", f.kind.label(), f.webhook), status, text);
        parts.push(short);
        if let Some(fix) = &f.fix
            && status != Status::Ok
        {
            r.fix(fix.description.clone(), &[fix.command.as_str()], "low: webhook configurations are never sent to webhooks, so this works even during a lockout; `kubectl webhookguard restore` undoes it");
        }
    }
    for n in notes {
        r.push_evidence("unknown", n);
    }
    if parts.is_empty() {
        r.message = format!("{count} webhook{}, none can lock the cluster", if count == 1 { "" } else { "s" });
    } else {
        // One line: the worst finding (findings come worst first); every one is a sub-check.
        r.message = one_line(&parts);
        r.fix("See every finding with its fix", &["kubectl webhookguard scan"], "low: read-only");
    }
    r
}
