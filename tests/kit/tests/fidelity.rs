//! The simulator's fidelity, measured against the real control plane: both worlds are asked the
//! requests the plugins send (health bodies, /metrics, APF dumps, lists as JSON and Table,
//! error answers 401/403/404/409/422/429, a webhook's rejection), and each answer is reduced to
//! its status, content type and shape. Every difference must be explained below; the table is
//! `tests/kit/FIDELITY.md` (regenerate it with `CPKIT_WRITE_FIDELITY=1`).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use testkit::{DemoCluster, Scenario, World};

/// Who sends a request.
#[derive(Clone, Copy)]
enum Who {
    Admin,
    /// The rbac-limited scenario's user.
    Limited,
    BadToken,
    /// The admin impersonating the apf-overload flooder, on the replica its flood lands on.
    FlooderOnHotReplica,
}

impl Who {
    fn label(self) -> &'static str {
        match self {
            Who::Admin => "admin",
            Who::Limited => "limited user",
            Who::BadToken => "bad token",
            Who::FlooderOnHotReplica => "flooder, hot replica",
        }
    }
}

struct Probe {
    name: &'static str,
    scenario: Scenario,
    who: Who,
    method: &'static str,
    path: &'static str,
    accept: &'static str,
    body: Option<Value>,
}

const JSON: &str = "application/json";
const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";

fn probes() -> Vec<Probe> {
    let get = |name, scenario, path, accept| Probe {
        name,
        scenario,
        who: Who::Admin,
        method: "GET",
        path,
        accept,
        body: None,
    };
    let ha = Scenario::HealthyHa;
    let configmap =
        |name: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}});
    vec![
        get("version", ha, "/version", JSON),
        get("readyz verbose", ha, "/readyz?verbose", "*/*"),
        get("livez verbose", ha, "/livez?verbose", "*/*"),
        get("readyz single check", ha, "/readyz/etcd", "*/*"),
        get("metrics", ha, "/metrics", "text/plain"),
        get("APF priority levels", ha, "/debug/api_priority_and_fairness/dump_priority_levels", "*/*"),
        get("APF queues", ha, "/debug/api_priority_and_fairness/dump_queues", "*/*"),
        get("APF requests", ha, "/debug/api_priority_and_fairness/dump_requests?includeRequestDetails=1", "*/*"),
        get("control-plane pods", ha, "/api/v1/namespaces/kube-system/pods?labelSelector=tier%3Dcontrol-plane", JSON),
        get(
            "control-plane pods as Table",
            ha,
            "/api/v1/namespaces/kube-system/pods?labelSelector=tier%3Dcontrol-plane",
            TABLE,
        ),
        get("nodes, paged", ha, "/api/v1/nodes?limit=2", JSON),
        get("kube-system leases", ha, "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases", JSON),
        get(
            "kubernetes EndpointSlice",
            ha,
            "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3Dkubernetes",
            JSON,
        ),
        get(
            "webhook configurations",
            ha,
            "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations",
            JSON,
        ),
        get("APIServices", ha, "/apis/apiregistration.k8s.io/v1/apiservices", JSON),
        get("flow schemas", ha, "/apis/flowcontrol.apiserver.k8s.io/v1/flowschemas", JSON),
        Probe { name: "401 bad token", who: Who::BadToken, ..get("", ha, "/api/v1/namespaces", JSON) },
        Probe {
            name: "403 forbidden",
            who: Who::Limited,
            ..get("", Scenario::RbacLimited, "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases", JSON)
        },
        Probe {
            name: "403 non-resource URL",
            who: Who::Limited,
            ..get("", Scenario::RbacLimited, "/metrics", "text/plain")
        },
        get("404 not found", ha, "/api/v1/namespaces/kube-system/pods/no-such-pod", JSON),
        Probe {
            name: "409 already exists",
            method: "POST",
            body: Some(configmap("kube-root-ca.crt")),
            ..get("", ha, "/api/v1/namespaces/kube-system/configmaps?dryRun=All", JSON)
        },
        Probe {
            name: "422 invalid",
            method: "POST",
            body: Some(configmap("Not_A_Name")),
            ..get("", ha, "/api/v1/namespaces/default/configmaps?dryRun=All", JSON)
        },
        Probe {
            name: "429 flow rejected",
            who: Who::FlooderOnHotReplica,
            ..get("", Scenario::ApfOverload, "/api/v1/namespaces/monitoring/configmaps", JSON)
        },
        Probe {
            name: "webhook rejection",
            method: "POST",
            body: Some(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "probe"},
                              "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}})),
            ..get("", Scenario::WebhookLockout, "/api/v1/namespaces/kube-system/pods?dryRun=All", JSON)
        },
    ]
}

/// Why the two worlds answer differently, where they do. A difference without an entry fails
/// the test; an entry without a difference too.
fn explanations() -> BTreeMap<&'static str, &'static str> {
    BTreeMap::from([
        (
            "version",
            "The simulator serves a 1.33 /version (its data comes from 1.31–1.34 captures); the real one is 1.36.3 and adds emulationMajor/Minor and minCompatibilityMajor/Minor (since 1.31).",
        ),
        (
            "metrics",
            "client_golang ≥ 1.21 (kube-apiserver 1.36) adds `escaping=underscores` to the text format's content type; the simulator answers as 1.33 did. The plugins read the text format either way.",
        ),
        (
            "kubernetes EndpointSlice",
            "The real API server refuses loopback addresses in Endpoints/EndpointSlices (ValidateEndpointIP), so on loopback its lease reconciler cannot list the replicas; the simulator lists them as a real HA cluster does. The plugins also find replicas through the kube-apiserver mirror pods' --advertise-address.",
        ),
        (
            "webhook rejection",
            "The simulator dials the webhook Service's ClusterIP (refused); the real API server runs with --enable-aggregator-routing (no kube-proxy on loopback) and finds no endpoints. Both are texts real clusters produce.",
        ),
    ])
}

/// An answer reduced to what the plugins depend on.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    code: u16,
    content_type: String,
    shape: String,
}

/// A client acting as `who`; call inside the runtime that will use it.
async fn client_for(c: &DemoCluster, who: Who) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(&c.kubeconfig).expect("kubeconfig");
    let mut options = kube::config::KubeConfigOptions::default();
    match who {
        Who::Limited => options.context = c.facts.limited_context.clone(),
        Who::FlooderOnHotReplica => {
            let hot = c.facts.hot_replica.clone().expect("apf-overload names its hot replica");
            let index = c.facts.control_plane_nodes.iter().position(|n| *n == hot).expect("hot replica is a node");
            options.context = Some(c.scenario.name().to_string());
            options.cluster = Some(format!("{}-replica-{}", c.scenario.name(), index + 1));
        }
        Who::Admin | Who::BadToken => options.context = Some(c.scenario.name().to_string()),
    }
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &options).await.expect("config");
    config.default_retry = false;
    config.read_timeout = Some(Duration::from_secs(20));
    if matches!(who, Who::BadToken) {
        config.auth_info =
            kube::config::AuthInfo { token: Some("not-a-token-4f1c".to_string().into()), ..Default::default() };
    }
    if matches!(who, Who::FlooderOnHotReplica) {
        config.auth_info.impersonate = c.facts.flooding_user.clone();
        config.auth_info.impersonate_groups =
            Some(vec!["system:serviceaccounts".into(), "system:serviceaccounts:monitoring".into()]);
    }
    kube::Client::try_from(config).expect("client")
}

fn ask(c: &DemoCluster, p: &Probe) -> Seen {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let client = client_for(c, p.who).await;
        let body = p.body.as_ref().map(|b| serde_json::to_vec(b).unwrap()).unwrap_or_default();
        let request = http::Request::builder()
            .method(p.method)
            .uri(p.path)
            .header("accept", p.accept)
            .header("content-type", JSON)
            .body(kube::client::Body::from(body))
            .unwrap();
        // A flooded flow answers 429 at once; give the real one a few tries to land in a full queue.
        for attempt in 0..20 {
            let response = client
                .send(request_clone(&request, p))
                .await
                .unwrap_or_else(|e| panic!("{} ({} world): {e}", p.name, c.world.name()));
            let code = response.status().as_u16();
            let content_type =
                response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
            let bytes = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
            if matches!(p.who, Who::FlooderOnHotReplica) && code != 429 && attempt < 19 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            return Seen { code, content_type: normalise_content_type(&content_type), shape: shape(p, &bytes) };
        }
        unreachable!("the loop returns")
    })
}

fn request_clone(r: &http::Request<kube::client::Body>, p: &Probe) -> http::Request<kube::client::Body> {
    let body = p.body.as_ref().map(|b| serde_json::to_vec(b).unwrap()).unwrap_or_default();
    let mut out = http::Request::builder().method(r.method()).uri(r.uri());
    for (k, v) in r.headers() {
        out = out.header(k, v);
    }
    out.body(kube::client::Body::from(body)).unwrap()
}

fn normalise_content_type(ct: &str) -> String {
    ct.replace(' ', "")
}

/// The parts of an answer the plugins read, with values that vary per run left out.
fn shape(p: &Probe, bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    if let Ok(v) = serde_json::from_slice::<Value>(bytes) {
        let kind = v["kind"].as_str().unwrap_or("");
        if kind == "Status" {
            let message = v["message"].as_str().unwrap_or("");
            return format!("Status {} {}: {message}", v["code"], v["reason"].as_str().unwrap_or(""));
        }
        if kind == "Table" {
            let columns: Vec<&str> =
                v["columnDefinitions"].as_array().into_iter().flatten().filter_map(|c| c["name"].as_str()).collect();
            return format!(
                "Table columns [{}], rows {}",
                columns.join(", "),
                some(v["rows"].as_array().map(Vec::len))
            );
        }
        if let Some(items) = v["items"].as_array() {
            let continued = v["metadata"]["continue"].as_str().is_some_and(|c| !c.is_empty());
            let keys: Vec<String> = items.first().map(keys_of).unwrap_or_default();
            return format!(
                "{kind}, items {}{}, item keys [{}]",
                some(Some(items.len())),
                if continued { ", continue token" } else { "" },
                keys.join(", ")
            );
        }
        return format!("{} keys [{}]", if kind.is_empty() { "object" } else { kind }, keys_of(&v).join(", "));
    }
    if p.path.starts_with("/readyz?") || p.path.starts_with("/livez?") {
        let lines: Vec<&str> = text.lines().collect();
        let well_formed = lines[..lines.len().saturating_sub(1)]
            .iter()
            .all(|l| l.starts_with("[+]") && (l.ends_with(" ok") || l.ends_with(" excluded: ok")));
        return format!(
            "{} check lines{}, last line \"{}\"",
            if well_formed { "[+]<name> ok" } else { "malformed" },
            "",
            lines.last().unwrap_or(&"")
        );
    }
    if p.path == "/metrics" {
        let families = cpkit::load::selection();
        let scrape = cpkit::metrics::scrape::Scrape::parse(bytes, &families);
        let read: Vec<&str> = families.names().into_iter().filter(|f| scrape.has_family(f)).collect();
        return format!("the plugins' families present: {}", read.join(", "));
    }
    if p.path.starts_with("/debug/api_priority_and_fairness/") {
        let header: Vec<&str> = text.lines().next().unwrap_or("").split(',').map(str::trim).collect();
        return format!("columns: {}", header.join(", "));
    }
    format!("text \"{}\"", text.trim())
}

fn some(n: Option<usize>) -> &'static str {
    match n {
        Some(0) | None => "none",
        Some(_) => "some",
    }
}

fn keys_of(v: &Value) -> Vec<String> {
    let mut keys: Vec<String> = v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
    keys.sort();
    keys
}

fn cell(s: &Seen) -> String {
    format!("{} `{}`<br>{}", s.code, s.content_type, s.shape.replace('|', "\\|"))
}

#[test]
fn both_worlds_answer_the_plugins_requests_alike_or_for_a_stated_reason() {
    let probes = probes();
    let explanations = explanations();
    let mut scenarios: Vec<Scenario> = Vec::new();
    for p in &probes {
        if !scenarios.contains(&p.scenario) {
            scenarios.push(p.scenario);
        }
    }
    let mut answers: BTreeMap<(&str, &str), Seen> = BTreeMap::new();
    for scenario in scenarios {
        // On this thread: the kit's processes die with the thread that started them.
        let sim = DemoCluster::start_in(World::Sim, scenario).expect("simulator");
        let real = DemoCluster::start_in(World::Real, scenario).unwrap_or_else(|e| panic!("real control plane: {e}"));
        for p in probes.iter().filter(|p| p.scenario == scenario) {
            answers.insert((p.name, "sim"), ask(&sim, p));
            answers.insert((p.name, "real"), ask(&real, p));
        }
    }

    let mut rows = Vec::new();
    let mut unexplained = Vec::new();
    let mut used = Vec::new();
    for p in &probes {
        let (sim, real) = (&answers[&(p.name, "sim")], &answers[&(p.name, "real")]);
        // Codes and content types must agree unless explained; shapes too.
        let same = sim == real;
        let verdict = match (same, explanations.get(p.name)) {
            (true, None) => "same".to_string(),
            (true, Some(_)) => {
                unexplained.push(format!("{}: explained but no longer different", p.name));
                "same".to_string()
            }
            (false, Some(why)) => {
                used.push(p.name);
                format!("differs: {why}")
            }
            (false, None) => {
                unexplained.push(format!("{}:\n  sim:  {sim:?}\n  real: {real:?}", p.name));
                "differs (unexplained)".to_string()
            }
        };
        rows.push(format!(
            "| {} | `{} {}` as {} ({}) | {} | {} | {} |",
            p.name,
            p.method,
            p.path,
            p.who.label(),
            p.scenario.name(),
            cell(sim),
            cell(real),
            verdict
        ));
    }
    let table = format!(
        "# Fidelity of the simulated API server\n\n\
         Generated by `tests/kit/tests/fidelity.rs` (`CPKIT_WRITE_FIDELITY=1 cargo test -p cpkit-testkit --test fidelity`):\n\
         the requests the plugins send, asked of both worlds of the test kit — the simulator and the real control plane\n\
         (kube-apiserver {}, etcd 3.6, kwok) — each answer reduced to its status, content type and shape. Where they\n\
         differ, the reason is stated; the test fails on a difference without one.\n\n\
         | request | sent | simulator | real control plane | verdict |\n|---|---|---|---|---|\n{}\n",
        testkit::real::KUBERNETES_VERSION,
        rows.join("\n")
    );
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("FIDELITY.md");
    if std::env::var_os("CPKIT_WRITE_FIDELITY").is_some() {
        std::fs::write(&path, &table).unwrap();
    }
    assert!(unexplained.is_empty(), "differences without a reason:\n{}", unexplained.join("\n"));
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(committed, table, "tests/kit/FIDELITY.md is out of date: CPKIT_WRITE_FIDELITY=1 regenerates it");
}
