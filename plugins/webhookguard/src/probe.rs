//! `kubectl webhookguard probe`: server-side dry-run creates of harmless objects, timed, with the
//! webhook at fault named from the API server's error.

use std::time::{Duration, Instant};

use cpkit::Cluster;
use cpkit::access::Access;
use cpkit::error::{Error, Result};
use cpkit::exit::Status;
use cpkit::output::{Table, status_text};
use cpkit::webhooks::defuse::{Culprit, culprit};
use serde::Serialize;
use serde_json::{Value, json};

/// One dry-run create.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeResult {
    pub namespace: String,
    pub object: String,
    pub status: Status,
    pub http_status: u16,
    #[serde(serialize_with = "ms")]
    pub latency: Duration,
    pub message: String,
    pub webhook: Option<Culprit>,
}

fn ms<S: serde::Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1e6).round() / 1e3)
}

fn objects() -> Vec<(&'static str, &'static str, Value)> {
    let labels = json!({"app.kubernetes.io/name": "webhookguard-probe"});
    vec![
        (
            "pods",
            "Pod",
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "webhookguard-probe-", "labels": labels},
                   "spec": {"containers": [{"name": "probe", "image": "registry.k8s.io/pause:3.10"}]}}),
        ),
        (
            "configmaps",
            "ConfigMap",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "webhookguard-probe-", "labels": labels},
                   "data": {"probe": "true"}}),
        ),
    ]
}

/// Runs the probes in each namespace concurrently.
pub async fn run(cluster: &Cluster, namespaces: &[String]) -> Result<Vec<ProbeResult>> {
    let mut tasks = Vec::new();
    for ns in namespaces {
        for (resource, kind, body) in objects() {
            tasks.push(async move {
                let path = format!("/api/v1/namespaces/{ns}/{resource}?dryRun=All&fieldManager=kubectl-webhookguard");
                let request = http::Request::post(&path)
                    .header("Content-Type", "application/json")
                    .header("Accept", "application/json")
                    .body(serde_json::to_vec(&body).unwrap_or_default())
                    .map_err(|e| Error::usage(format!("Cannot build a request for {path}: {e}"), ""))?;
                let started = Instant::now();
                let response = cluster.send(request).await?;
                let latency = started.elapsed();
                let parsed: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
                let message = parsed["message"].as_str().unwrap_or("").to_string();
                let (status, webhook, text) = if response.is_success() {
                    (Status::Ok, None, "admitted (dry run)".to_string())
                } else if response.status == 403 {
                    let access = Access::resource("create", "", resource, Some(ns));
                    return Err(cpkit::error::http_error(
                        cluster.server(),
                        "dry-run create",
                        403,
                        &response.body,
                        None,
                        Some(&access),
                    ));
                } else {
                    match culprit(&message) {
                        Some(c) if c.call_failed => (Status::Critical, Some(c), message.clone()),
                        Some(c) => (Status::Warning, Some(c), message.clone()),
                        None => (Status::Critical, None, message.clone()),
                    }
                };
                Ok::<_, Error>(ProbeResult {
                    namespace: ns.clone(),
                    object: kind.to_string(),
                    status,
                    http_status: response.status,
                    latency,
                    message: text,
                    webhook,
                })
            });
        }
    }
    futures::future::join_all(tasks).await.into_iter().collect()
}

pub fn render(results: &[ProbeResult], wide: bool, no_headers: bool) -> String {
    let mut t = Table::new(&["namespace", "object", "result", "latency", "webhook", "message"]).wide_columns(&["http"]);
    for r in results {
        t.row([
            r.namespace.clone(),
            r.object.clone(),
            status_text(r.status),
            cpkit::duration::short_latency(r.latency),
            r.webhook.as_ref().map(|c| c.webhook.clone()).unwrap_or_else(|| "-".into()),
            match &r.webhook {
                Some(c) if c.call_failed => format!("call failed: {}", c.reason),
                Some(c) => format!("denied: {}", c.reason),
                None => r.message.clone(),
            },
            r.http_status.to_string(),
        ]);
    }
    t.render(wide, no_headers)
}
