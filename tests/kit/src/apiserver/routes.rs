//! Accepting connections and answering them in the apiserver's filter order: injected faults,
//! authentication, impersonation, APF, then the non-resource endpoints (health, /version,
//! /metrics, APF dumps) and the resource URLs (`rest`).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use http::{HeaderValue, Request};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::auth::{self, Attributes, Identity};
use super::authn::{self, non_resource_allowed};
use super::http::{
    GZIP_THRESHOLD, Query, Resp, gzipped, json_response, percent_decode, status, text_response, too_many_requests,
};
use super::registry;
use super::rest::resource_route;
use super::{Sim, health};

/// Accept loop of one replica; ends when `stop` turns true.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    sim: Arc<Sim>,
    replica: usize,
    mut stop: watch::Receiver<bool>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => return,
        };
        let Ok((tcp, _peer)) = accepted else { continue };
        // As Go's net package does for every connection: no Nagle delay on small writes.
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let sim = sim.clone();
        let mut stop_conn = stop.clone();
        tokio::spawn(async move {
            let Ok(tls_stream) = acceptor.accept(tcp).await else {
                return;
            };
            let cert_identity = tls_stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|certs| certs.first())
                .and_then(|c| auth::identity_from_cert(c));
            let service = hyper::service::service_fn(move |req| {
                let sim = sim.clone();
                let identity = cert_identity.clone();
                async move { handle(sim, replica, identity, req).await }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls_stream), service);
            tokio::select! {
                _ = conn => {}
                _ = stop_conn.changed() => {}
            }
        });
    }
}

async fn handle(
    sim: Arc<Sim>,
    replica: usize,
    cert_identity: Option<Identity>,
    req: Request<Incoming>,
) -> Result<Resp, std::io::Error> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let query = Query::parse(req.uri().query());
    let accepts_gzip = req
        .headers()
        .get_all(http::header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|e| e.trim().split(';').next() == Some("gzip")));
    let user_agent = req.headers().get("user-agent").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    sim.requests[replica].fetch_add(1, Ordering::Relaxed);
    if let Ok(mut log) = sim.request_log.lock() {
        if log.len() > 20_000 {
            log.drain(..10_000);
        }
        log.push((req.method().to_string(), path.clone(), user_agent));
    }

    // Injected faults.
    let fault = sim.faults.read().ok().and_then(|f| {
        f.iter().find(|f| path.starts_with(&f.path_prefix) && f.replica.is_none_or(|r| r == replica)).cloned()
    });
    if let Some(f) = fault {
        if let Some(d) = f.latency {
            tokio::time::sleep(d).await;
        }
        if f.reset {
            return Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "injected reset"));
        }
        if let Some(code) = f.status {
            let mut resp = match code {
                429 => too_many_requests(f.retry_after_seconds.unwrap_or(1)),
                503 => status(503, "ServiceUnavailable", "the server is currently unable to handle the request", None),
                500 => status(500, "InternalError", "Internal error occurred: etcdserver: request timed out", None),
                other => status(other, "InternalError", "injected failure", None),
            };
            if code == 429 {
                resp.headers_mut().insert("Retry-After", HeaderValue::from(f.retry_after_seconds.unwrap_or(1)));
            }
            return Ok(resp);
        }
    }

    let identity = match authn::authenticate(&sim, req.headers(), cert_identity) {
        Ok(id) => id,
        Err(refused) => return Ok(refused),
    };

    // APF runs after impersonation: a flow whose queues are full gets 429 with the server's
    // Retry-After (apiserver `pkg/server/filters/priority-and-fairness.go`, tooManyRequests).
    // The flow's headers are set on classification, before queuing: a 429 carries them too.
    let throttled = sim.throttled.read().is_ok_and(|t| t.iter().any(|(u, r)| *u == identity.user && *r == replica));
    let mut response =
        if throttled && !path.starts_with("/debug/") && !path.starts_with("/readyz") && !path.starts_with("/livez") {
            too_many_requests(1)
        } else {
            route(&sim, replica, &identity, req).await
        };
    if accepts_gzip
        && (path == "/metrics" || hyper::body::Body::size_hint(response.body()).exact().unwrap_or(0) >= GZIP_THRESHOLD)
    {
        response = gzipped(&sim, response).await;
    }
    let (fs_uid, pl_uid) = super::apf::response_uids(&sim, &identity, &method, &path, &query);
    if let (Ok(fs), Ok(pl)) = (HeaderValue::from_str(&fs_uid), HeaderValue::from_str(&pl_uid)) {
        response.headers_mut().insert("X-Kubernetes-PF-FlowSchema-UID", fs);
        response.headers_mut().insert("X-Kubernetes-PF-PriorityLevel-UID", pl);
    }
    if let Ok(date) = HeaderValue::from_str(&jiff::Timestamp::now().strftime("%a, %d %b %Y %H:%M:%S GMT").to_string()) {
        response.headers_mut().insert("Date", date);
    }
    Ok(response)
}

/// kube-apiserver's wait for a new etcd client to connect (`dialTimeout`).
const ETCD_DIAL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

async fn route(sim: &Arc<Sim>, replica: usize, identity: &Identity, req: Request<Incoming>) -> Resp {
    let path = req.uri().path().trim_end_matches('/').to_string();
    let path = if path.is_empty() { "/".to_string() } else { path };
    let query = Query::parse(req.uri().query());
    let method = req.method().clone();

    // Non-resource endpoints.
    for endpoint in ["livez", "readyz", "healthz"] {
        let prefix = format!("/{endpoint}");
        if path == prefix || path.starts_with(&format!("{prefix}/")) {
            if let Err(r) = non_resource_allowed(sim, identity, &path) {
                return r;
            }
            let models = sim.health.read().expect("health lock");
            let Some(model) = models.get(replica) else {
                return status(500, "InternalError", "no health model", None);
            };
            let checks = model.checks(endpoint);
            if path == prefix {
                let (code, body) = health::render(endpoint, checks, query.has("verbose"), &query.all("exclude"));
                return text_response(code, body);
            }
            let check = &path[prefix.len() + 1..];
            return match health::render_single(checks, check) {
                Some((code, body)) => text_response(code, body),
                None => text_response(404, "404 page not found\n".into()),
            };
        }
    }
    match path.as_str() {
        "/version" => {
            if let Err(r) = non_resource_allowed(sim, identity, "/version") {
                return r;
            }
            let v = &sim.config.version;
            return json_response(
                200,
                &json!({
                    "major": "1", "minor": v.minor.to_string(), "gitVersion": v.git_version,
                    "gitCommit": "60a317eadfcb839692a5551a17ee18c8ca2a4d4f", "gitTreeState": "clean",
                    "buildDate": "2025-04-23T13:00:31Z", "goVersion": "go1.24.2", "compiler": "gc", "platform": v.platform
                }),
            );
        }
        "/metrics" => {
            if let Err(r) = non_resource_allowed(sim, identity, "/metrics") {
                return r;
            }
            // kube-apiserver builds an etcd client for its storage-size metric on every scrape
            // and waits up to 20 s for it to connect (k8s.io/apiserver `pkg/storage/
            // storagebackend/factory/etcd3.go`: `dialTimeout`, `grpc.WithBlock`), so a replica
            // whose etcd is out of reach answers that late.
            let etcd_unreachable = sim
                .health
                .read()
                .map(|models| models.get(replica).is_some_and(health::HealthModel::etcd_unreachable))
                .unwrap_or(false);
            if etcd_unreachable {
                tokio::time::sleep(ETCD_DIAL_TIMEOUT).await;
            }
            let text = sim.metrics.render(sim, replica);
            let accept = req.headers().get(hyper::header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
            if super::exposition::wants_protobuf(accept) {
                return super::exposition::protobuf_response(&text);
            }
            let mut r = text_response(200, text);
            r.headers_mut()
                .insert("Content-Type", HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
            return r;
        }
        "/metrics/slis" => {
            if let Err(r) = non_resource_allowed(sim, identity, "/metrics/slis") {
                return r;
            }
            return text_response(200, sim.metrics.render_slis(sim, replica));
        }
        _ => {}
    }
    if let Some(dump) = path.strip_prefix("/debug/api_priority_and_fairness/") {
        if let Err(r) = non_resource_allowed(sim, identity, &path) {
            return r;
        }
        let apf = sim.apf.read().expect("apf lock").on_replica(replica, sim.metrics.replica_weight(replica));
        return match dump {
            "dump_priority_levels" => text_response(200, apf.dump_priority_levels(sim.uptime())),
            "dump_queues" => text_response(200, apf.dump_queues()),
            "dump_requests" => text_response(200, apf.dump_requests(query.get("includeRequestDetails") == Some("1"))),
            _ => text_response(404, "404 page not found\n".into()),
        };
    }
    if path == "/api" || path == "/apis" || path.starts_with("/api/") || path.starts_with("/apis/") {
        return resource_route(sim, identity, req, &path, &query, method).await;
    }
    if path.starts_with("/openapi") {
        return text_response(404, "404 page not found\n".into());
    }
    let attrs = Attributes { verb: method.as_str().to_lowercase(), path: Some(path.clone()), ..Default::default() };
    let users = sim.users.read().expect("users lock");
    if !auth::authorize(identity, &users, &attrs) {
        return json_response(403, &auth::forbidden_status(identity, &attrs));
    }
    text_response(404, "404 page not found\n".into())
}

/// The parts of a resource URL.
#[derive(Debug, Clone, Default)]
pub struct ResourcePath {
    pub group: String,
    pub version: String,
    pub namespace: String,
    pub resource: String,
    pub name: String,
    pub subresource: String,
}

/// Parses `/api/v1/...` and `/apis/<group>/<version>/...`. Returns (group, version, rest).
pub(super) fn split_group_version(path: &str) -> Option<(String, String, Vec<String>)> {
    let segs: Vec<String> = path.trim_start_matches('/').split('/').map(percent_decode).collect();
    match segs.first().map(String::as_str) {
        Some("api") => Some((String::new(), segs.get(1)?.clone(), segs[2..].to_vec())),
        Some("apis") => {
            Some((segs.get(1)?.clone(), segs.get(2)?.clone(), segs.get(3..).map(|s| s.to_vec()).unwrap_or_default()))
        }
        _ => None,
    }
}

pub fn parse_resource_path(path: &str) -> Option<ResourcePath> {
    let (group, version, rest) = split_group_version(path)?;
    if rest.is_empty() {
        return None;
    }
    let mut rp = ResourcePath { group, version, ..Default::default() };
    let namespaced_form = rest[0] == "namespaces"
        && rest.len() >= 3
        && registry::find(&rp.group, &rest[2]).is_some_and(|rt| rt.namespaced);
    let tail = if namespaced_form {
        rp.namespace = rest[1].clone();
        &rest[2..]
    } else {
        &rest[..]
    };
    rp.resource = tail.first()?.clone();
    rp.name = tail.get(1).cloned().unwrap_or_default();
    rp.subresource = tail.get(2).cloned().unwrap_or_default();
    Some(rp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_resource_paths() {
        let rp = parse_resource_path("/api/v1/namespaces/kube-system/pods/etcd-cp1/exec").unwrap();
        assert_eq!(
            (rp.namespace.as_str(), rp.resource.as_str(), rp.name.as_str(), rp.subresource.as_str()),
            ("kube-system", "pods", "etcd-cp1", "exec")
        );
        let rp = parse_resource_path("/api/v1/namespaces/kube-system").unwrap();
        assert_eq!((rp.resource.as_str(), rp.name.as_str()), ("namespaces", "kube-system"));
        let rp = parse_resource_path("/apis/coordination.k8s.io/v1/namespaces/kube-system/leases").unwrap();
        assert_eq!((rp.group.as_str(), rp.resource.as_str()), ("coordination.k8s.io", "leases"));
        let rp =
            parse_resource_path("/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/x").unwrap();
        assert_eq!((rp.namespace.as_str(), rp.name.as_str()), ("", "x"));
    }
}
