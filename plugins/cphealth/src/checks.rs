//! The checks: each reads what it needs through the shared context, judges with the cpkit
//! analyses, and never stops the others (its own timeout; a missing permission is SKIPPED).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cpkit::checks::aggregated_apis::Discovery;
use cpkit::checks::resources::{ProcessKind, ProcessMetrics, ReplicaResources};
use cpkit::checks::{self, short_error};
use cpkit::controlplane::{LeaseInfo, NodeSummary};
use cpkit::duration::short_limit;
use cpkit::error::{Error, ErrorKind};
use cpkit::exit::Status;
use cpkit::report::CheckResult;
use cpkit::resources::Select;
use cpkit::{Cluster, RawResponse};
use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Node};
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
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
    Resources,
    AggregatedApis,
    Nodes,
    Webhooks,
}

impl Check {
    pub const ALL: [Check; 11] = [
        Check::Apiserver,
        Check::Health,
        Check::Replicas,
        Check::StaticPods,
        Check::LeaderElection,
        Check::Etcd,
        Check::Load,
        Check::Resources,
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
            Check::Resources => "resources",
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
                            let (readyz, livez, version, tls) = tokio::join!(
                                c.get_raw("/readyz?verbose"),
                                c.get_raw("/livez?verbose"),
                                c.version(),
                                async {
                                    // The survey's dial already holds the replica's certificates.
                                    match known_tls {
                                        Some(probe) => Ok(probe),
                                        None => cpkit::certs::probe_tls(c.config(), &replica.url, timeout).await,
                                    }
                                }
                            );
                            let version =
                                version.map(|v| if v.git_version.is_empty() { "?".into() } else { v.git_version });
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
            format!("the API server is unreachable ({})", short_error(e))
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
            Check::Resources => resources(ctx).await,
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
                short_limit(ctx.options.check_timeout)
            ),
        ),
    };
    result.with_duration(started.elapsed())
}

/// Check 1: reachability, version, round trip, serving and client certificates, clock skew.
async fn apiserver(ctx: &Ctx) -> CheckResult {
    let timeout = ctx.cluster.timeout().unwrap_or(Duration::from_secs(10));
    let server = ctx.cluster.server().to_string();
    let (version, serving) =
        tokio::join!(ctx.version(), cpkit::certs::probe_tls(ctx.cluster.config(), &server, timeout));
    let client_certificate = ctx.cluster.info.client_certificate_pem.as_ref().map(|pem| {
        cpkit::certs::parse_pem_bundle(pem).and_then(|certs| {
            certs
                .into_iter()
                .next()
                .ok_or_else(|| Error::invalid_data("The kubeconfig's client certificate", "no certificate in it"))
        })
    });
    checks::apiserver::judge(
        &checks::apiserver::Facts { server, version, serving, client_certificate },
        Timestamp::now(),
    )
}

/// Check 2: `/livez?verbose` and `/readyz?verbose` of every replica.
async fn health(ctx: &Ctx, states: &ReplicaStates) -> CheckResult {
    let (states, read_through) = tokio::join!(states.get(ctx), ctx.read_through());
    let replicas = states
        .iter()
        .map(|s| checks::health::ReplicaHealth {
            name: s.replica.name.clone(),
            url: s.replica.url.clone(),
            pod: s.replica.pod.clone(),
            livez: s.livez.clone(),
            readyz: s.readyz.clone(),
        })
        .collect();
    checks::health::judge(&checks::health::Facts { replicas, read_through })
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
    let (states, version) = tokio::join!(states.get(ctx), ctx.version());
    let answers = states
        .iter()
        .map(|s| {
            let answer = checks::replicas::ReplicaAnswer {
                version: s.version.clone(),
                ready: s.readyz.as_ref().is_ok_and(|x| x.status == 200),
                serving_certificate: s.tls.as_ref().ok().and_then(|p| p.leaf().cloned()),
            };
            (s.replica.url.clone(), answer)
        })
        .collect();
    let facts = checks::replicas::Facts { survey: &survey, answers, load_balancer_answers: version.is_ok() };
    checks::replicas::judge(&facts, Timestamp::now())
}

/// Check 4: the control-plane static pods of every control-plane node.
async fn static_pods(ctx: &Ctx) -> CheckResult {
    // Pods, control-plane nodes and Warning events at once.
    let (pods, cp_node_list, events, managed) = tokio::join!(
        ctx.control_plane_pods(),
        ctx.cluster.list::<Node>(Select::all().labels("node-role.kubernetes.io/control-plane")),
        ctx.cluster.list::<Event>(Select::namespace("kube-system").fields("type=Warning")),
        ctx.managed()
    );
    let pods = match pods {
        Ok(p) => p,
        Err(e) => return CheckResult::from_error("static-pods", &e),
    };
    let control_plane_nodes = match cp_node_list {
        Ok(nodes) => nodes.iter().filter_map(|n| n.metadata.name.clone()).collect(),
        // Without the nodes, the pods say where the control plane runs.
        Err(_) => pods.iter().map(|p| p.node.clone()).collect::<BTreeSet<_>>().into_iter().collect(),
    };
    let warning_events = events
        .map(|events| events.iter().map(checks::static_pods::WarningEvent::from_event).collect())
        .unwrap_or_default();
    let facts = checks::static_pods::Facts {
        pods: &pods,
        control_plane_nodes,
        warning_events,
        managed: managed.map(cpkit::controlplane::Provider::name),
    };
    checks::static_pods::judge(&facts, Timestamp::now())
}

/// Check 5: the controller-manager and scheduler leader leases.
async fn leader_election(ctx: &Ctx) -> CheckResult {
    let reads = futures::future::join_all(checks::leader_election::ELECTED.iter().map(|name| async move {
        let lease = ctx.cluster.get::<Lease>(Some("kube-system"), name).await.map(|l| LeaseInfo::from_lease(&l));
        (name.to_string(), lease)
    }));
    let (leases, pods) = tokio::join!(reads, ctx.control_plane_pods());
    let election_disabled = pods
        .map(|ps| {
            ps.iter().filter(|p| p.flags.bool("leader-elect") == Some(false)).map(|p| p.component.clone()).collect()
        })
        .unwrap_or_default();
    checks::leader_election::judge(&checks::leader_election::Facts { leases, election_disabled }, Timestamp::now())
}

/// How long one call to an etcd member (an exec, a port-forward, a direct request) may take:
/// --request-timeout, kept between 3 s (a loaded node still answers) and 8 s (a member silent
/// that long is down, and the report must not wait on it).
fn etcd_call_timeout(ctx: &Ctx) -> Duration {
    ctx.cluster.timeout().unwrap_or(Duration::from_secs(3)).clamp(Duration::from_secs(3), Duration::from_secs(8))
}

/// Check 6: etcd, through the etcd pods (exec), directly, or from the API server's metrics.
async fn etcd(ctx: &Ctx) -> CheckResult {
    let timeout = etcd_call_timeout(ctx);
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
    // member's served certificate (a TLS handshake through a port-forward), at once.
    let status_fut = async {
        let mut last_error = None;
        for pod in pods.iter().filter(|p| p.is_running()).chain(pods.iter().filter(|p| !p.is_running())) {
            match cpkit::etcd::pods::status_via_exec(&ctx.cluster, pod, timeout.min(Duration::from_secs(5)), pods.len())
                .await
            {
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
    let certificates_fut = futures::future::join_all(pods.iter().filter(|p| p.is_running()).map(|p| async move {
        cpkit::checks::etcd_certificates::MemberCertificate {
            member: p.member.clone(),
            node: p.pod.node.clone(),
            port: p.client_port,
            served: cpkit::etcd::pods::serving_certificate(&ctx.cluster, p, timeout).await.map_err(|e| e.why),
        }
    }));
    let (status, certificates) = tokio::join!(status_fut, certificates_fut);
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
    cpkit::checks::etcd_certificates::judge(&mut r, &certificates, Timestamp::now());
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
    for (replica, pair) in pairs.iter() {
        match pair {
            Ok((older, newer, secs)) => windows.push(cpkit::load::Window {
                replica: replica.name.clone(),
                older,
                newer,
                seconds: *secs,
                limits: limits_by_node.get(&replica.name).copied().unwrap_or_default(),
            }),
            Err(e) if e.kind == ErrorKind::Forbidden => forbidden = Some(e.clone()),
            Err(e) => notes.push(format!("{}: {}", replica.name, short_error(e))),
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
    r
}

/// Check 7b: file descriptors, memory, CPU and goroutines of every API server replica (from the
/// load check's scrapes) and every etcd member (its own /metrics through a port-forward).
async fn resources(ctx: &Ctx) -> CheckResult {
    let (pairs, read_through, pods, (members, member_notes)) =
        tokio::join!(ctx.scrape_pairs(), ctx.read_through(), ctx.control_plane_pods(), etcd_processes(ctx));
    let mut facts = checks::resources::Facts { read_through, ..Default::default() };
    let mut forbidden = None;
    for (replica, pair) in pairs.iter() {
        match pair {
            Ok((older, newer, seconds)) => {
                let pod = replica.pod.clone().or_else(|| {
                    let pods = pods.as_ref().ok()?;
                    pods.iter()
                        .find(|p| p.component == "kube-apiserver" && p.node == replica.name)
                        .map(|p| p.name.clone())
                });
                facts.replicas.push(ReplicaResources {
                    kind: ProcessKind::ApiServer,
                    name: replica.name.clone(),
                    pod,
                    newer: ProcessMetrics::read(newer),
                    // One scrape (--sample 0): no trend, no rate.
                    older: (*seconds > 0.0).then(|| ProcessMetrics::read(older)),
                    seconds: *seconds,
                });
            }
            Err(e) if e.kind == ErrorKind::Forbidden => forbidden = Some(e.clone()),
            Err(e) => facts.unread.push(format!("{}: {}", replica.name, short_error(e))),
        }
    }
    if facts.replicas.is_empty()
        && let Some(e) = forbidden
    {
        return CheckResult::from_error("resources", &e);
    }
    facts.replicas.extend(members);
    facts.unread.extend(member_notes);
    checks::resources::judge(&facts)
}

/// Every running etcd member's process metrics, two scrapes `--sample` apart, through a
/// port-forward to its pod's metrics port; with why members were not read.
async fn etcd_processes(ctx: &Ctx) -> (Vec<ReplicaResources>, Vec<String>) {
    if !ctx.options.etcd_endpoints.is_empty() {
        return (
            vec![],
            vec!["etcd members: not read with --etcd-endpoints (their /metrics is read through the etcd pods)".into()],
        );
    }
    if ctx.managed().await.is_some() {
        return (vec![], vec![]);
    }
    let pods = match cpkit::etcd::pods::find(&ctx.cluster).await {
        Ok(p) => p,
        Err(e) => return (vec![], vec![format!("etcd members: {}", short_error(&e))]),
    };
    let selection = cpkit::metrics::Selection::families(&checks::resources::FAMILIES);
    let timeout = etcd_call_timeout(ctx);
    let sample = ctx.options.sample;
    let reads =
        futures::future::join_all(pods.iter().filter(|p| p.is_running() && p.metrics_port.is_some()).map(|pod| {
            let selection = &selection;
            async move {
                let started = Instant::now();
                let older = cpkit::etcd::pods::metrics(&ctx.cluster, pod, selection, timeout).await?;
                if sample.is_zero() {
                    return Ok((pod, None, older, 0.0));
                }
                let taken = Instant::now();
                tokio::time::sleep(sample.saturating_sub(started.elapsed())).await;
                let newer = cpkit::etcd::pods::metrics(&ctx.cluster, pod, selection, timeout).await?;
                Ok::<_, Error>((pod, Some(older), newer, taken.elapsed().as_secs_f64()))
            }
        }))
        .await;
    let mut members = Vec::new();
    let mut notes = Vec::new();
    for read in reads {
        match read {
            Ok((pod, older, newer, seconds)) => members.push(ReplicaResources {
                kind: ProcessKind::Etcd,
                name: pod.member.clone(),
                pod: Some(pod.pod.name.clone()),
                newer: ProcessMetrics::read(&newer),
                older: older.as_ref().map(ProcessMetrics::read),
                seconds,
            }),
            Err(e) => notes.push(format!("etcd: {}", short_error(&e))),
        }
    }
    (members, notes)
}

/// Check 8: aggregated APIs (APIServices with a service) that are not Available.
async fn aggregated_apis(ctx: &Ctx) -> CheckResult {
    let items = match ctx.cluster.list::<APIService>(Select::all()).await {
        Ok(i) => i,
        Err(e) => return CheckResult::from_error("aggregated-apis", &e),
    };
    // Each aggregated API is asked for its discovery document, as kubectl does: an API that
    // reads Available but hangs stalls every client's discovery, and the availability
    // controller only notices on its next round.
    let probe_timeout = ctx.cluster.timeout().unwrap_or(Duration::from_secs(3)).min(Duration::from_secs(3));
    let apis = futures::future::join_all(
        items.iter().filter_map(checks::aggregated_apis::AggregatedApi::from_api_service).map(|api| async move {
            let started = Instant::now();
            let answer = tokio::time::timeout(probe_timeout, ctx.cluster.get_raw(&api.discovery_path())).await;
            let discovery = match answer {
                Err(_) => Discovery::Silent,
                Ok(Err(e)) if e.kind == ErrorKind::Timeout => Discovery::Silent,
                Ok(Err(e)) => Discovery::Failed(e.why),
                Ok(Ok(resp)) => Discovery::Answered { status: resp.status, took: started.elapsed() },
            };
            (api, discovery)
        }),
    )
    .await;
    checks::aggregated_apis::judge(&checks::aggregated_apis::Facts { apis, probe_timeout }, Timestamp::now())
}

/// Check 9: nodes, read page by page.
async fn nodes(ctx: &Ctx) -> CheckResult {
    let mut summary = NodeSummary::default();
    match ctx.cluster.list_each::<Node, Node, _>(Select::all(), 500, |n| summary.add(&n)).await {
        Ok(_) => checks::nodes::judge(&summary),
        Err(e) => CheckResult::from_error("nodes", &e),
    }
}

/// Check 10: webhooks that can lock the cluster (the webhookguard analysis).
async fn webhooks(ctx: &Ctx) -> CheckResult {
    // Admission policies fail like webhooks when their binding cannot be configured.
    let (configs, policies) = tokio::join!(
        cpkit::webhooks::gather::read_configs(&ctx.cluster),
        cpkit::webhooks::gather::read_policies(&ctx.cluster)
    );
    let configs = match configs {
        Ok(c) => c,
        Err(e) => return CheckResult::from_error("webhooks", &e),
    };
    let (policies, unread_policies) = match policies {
        Ok(p) => (p, vec![]),
        Err(e) => (cpkit::webhooks::Policies::default(), vec![format!("admission policies ({})", e.why)]),
    };
    let ((mut facts, mut unread), (policy_facts, policy_notes)) = tokio::join!(
        cpkit::webhooks::gather::read_facts(&ctx.cluster, &configs),
        cpkit::webhooks::gather::read_policy_facts(&ctx.cluster, &policies)
    );
    facts.policies = policy_facts;
    unread.extend(unread_policies.into_iter().chain(policy_notes));
    let mut findings = cpkit::webhooks::analyse(&configs, &facts);
    findings.extend(cpkit::webhooks::analyse_policies(&policies, &facts));
    // Worst first, as the judge words them.
    findings.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.kind.cmp(&b.kind)));
    let webhook_count = configs.iter().map(|c| c.webhooks.len()).sum();
    checks::webhooks::judge(&checks::webhooks::Facts { webhook_count, findings: &findings, unread: &unread })
}
