//! Accepting connections and answering requests: faults, authentication, impersonation,
//! authorization, then the REST semantics of the real API server (get/list/create/update/patch/
//! delete with resourceVersion preconditions, selectors, pagination, dry-run, Tables).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use base64::Engine;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::auth::{self, Attributes, Identity};
use super::registry::{self, ResourceType};
use super::store::{FieldSelector, LabelSelector, StoreError};
use super::{Sim, discovery, health, tables};

pub type Resp = Response<Full<Bytes>>;

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

/// A JSON answer.
pub fn json_response(code: u16, body: &Value) -> Resp {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    Response::builder()
        .status(code)
        .header("Content-Type", "application/json")
        .body(Full::new(Bytes::from(bytes)))
        .expect("valid response")
}

/// The API server's validation of `metadata.name` as a DNS subdomain (apimachinery
/// `pkg/util/validation`, `IsDNS1123Subdomain`): 422 with the field error, in its words.
fn invalid_name(rt: &ResourceType, obj: &Value) -> Option<Resp> {
    let name = obj["metadata"]["name"].as_str().filter(|n| !n.is_empty())?;
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.len() <= 253 && name.split('.').all(label_ok) {
        return None;
    }
    let field = format!(
        "metadata.name: Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
    );
    let kind = rt.kind;
    Some(status(
        422,
        "Invalid",
        &format!("{kind} \"{name}\" is invalid: {field}"),
        Some(
            json!({"name": name, "kind": kind, "causes": [{"reason": "FieldValueInvalid", "message": field.trim_start_matches("metadata.name: "), "field": "metadata.name"}]}),
        ),
    ))
}

/// API Priority and Fairness's rejection: plain text, not a Status, with Retry-After
/// (apiserver `pkg/server/filters/priority-and-fairness.go` → `tooManyRequests`, `http.Error`).
pub fn too_many_requests(retry_after_seconds: u64) -> Resp {
    let mut resp = text_response(429, "Too many requests, please try again later.\n".into());
    resp.headers_mut().insert("Retry-After", HeaderValue::from(retry_after_seconds));
    resp
}

pub fn text_response(code: u16, body: String) -> Resp {
    Response::builder()
        .status(code)
        .header("Content-Type", "text/plain; charset=utf-8")
        .header("X-Content-Type-Options", "nosniff")
        .body(Full::new(Bytes::from(body)))
        .expect("valid response")
}

/// A `Status` failure.
pub fn status(code: u16, reason: &str, message: &str, details: Option<Value>) -> Resp {
    let mut body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code});
    if let Some(d) = details {
        body["details"] = d;
    }
    json_response(code, &body)
}

fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                    out.push(b);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parsed query parameters (several values per key kept in order).
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(q: Option<&str>) -> Query {
        Query(q.map(query_pairs).unwrap_or_default())
    }
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
    pub fn all(&self, key: &str) -> Vec<String> {
        self.0.iter().filter(|(k, _)| k == key).map(|(_, v)| v.clone()).collect()
    }
    pub fn has(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k == key)
    }
}

async fn handle(
    sim: Arc<Sim>,
    replica: usize,
    cert_identity: Option<Identity>,
    req: Request<Incoming>,
) -> Result<Resp, std::io::Error> {
    let path = req.uri().path().to_string();
    let method_text = req.method().to_string();
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

    // Authentication.
    let identity = match req.headers().get("authorization").and_then(|v| v.to_str().ok()) {
        Some(value) if value.starts_with("Bearer ") => {
            let token = value.trim_start_matches("Bearer ").trim();
            let users = sim.users.read().expect("users lock");
            match users.iter().find(|u| u.token.as_deref() == Some(token)) {
                Some(u) => Identity {
                    user: u.name.clone(),
                    groups: {
                        let mut g = u.groups.clone();
                        g.push("system:authenticated".into());
                        g
                    },
                },
                None => return Ok(json_response(401, &auth::unauthorized_status())),
            }
        }
        _ => match cert_identity {
            Some(mut id) => {
                id.groups.push("system:authenticated".into());
                id
            }
            None => Identity::anonymous(),
        },
    };

    // Impersonation (--as / --as-group), as the apiserver's filter does it.
    let identity = match req.headers().get("impersonate-user").and_then(|v| v.to_str().ok()) {
        Some(as_user) => {
            let groups: Vec<String> = req
                .headers()
                .get_all("impersonate-group")
                .iter()
                .filter_map(|v| v.to_str().ok().map(str::to_string))
                .collect();
            match impersonated(&sim, &identity, as_user, groups) {
                Ok(id) => id,
                Err(forbidden) => return Ok(forbidden),
            }
        }
        None => identity,
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
    let (fs_uid, pl_uid) = super::apf::response_uids(&sim, &identity, &method_text, &path);
    if let (Ok(fs), Ok(pl)) = (HeaderValue::from_str(&fs_uid), HeaderValue::from_str(&pl_uid)) {
        response.headers_mut().insert("X-Kubernetes-PF-FlowSchema-UID", fs);
        response.headers_mut().insert("X-Kubernetes-PF-PriorityLevel-UID", pl);
    }
    if let Ok(date) = HeaderValue::from_str(&jiff::Timestamp::now().strftime("%a, %d %b %Y %H:%M:%S GMT").to_string()) {
        response.headers_mut().insert("Date", date);
    }
    Ok(response)
}

/// API answers from this size on are compressed when the client accepts gzip, as the
/// apiserver's APIResponseCompression does; /metrics always is (promhttp's default).
const GZIP_THRESHOLD: u64 = 128 * 1024;

async fn gzipped(sim: &Sim, response: Resp) -> Resp {
    use std::io::Write;
    if response.status() == http::StatusCode::SWITCHING_PROTOCOLS
        || response.headers().contains_key(http::header::CONTENT_ENCODING)
    {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(collected) = body.collect().await;
    let plain = collected.to_bytes();
    let mut encoder = flate2::write::GzEncoder::new(Vec::with_capacity(plain.len() / 8), flate2::Compression::fast());
    let compressed = match encoder.write_all(&plain).and_then(|_| encoder.finish()) {
        Ok(c) => c,
        Err(_) => return Response::from_parts(parts, Full::new(plain)),
    };
    sim.gzipped.fetch_add(1, Ordering::Relaxed);
    parts.headers.insert(http::header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    parts.headers.remove(http::header::CONTENT_LENGTH);
    parts.headers.append(http::header::VARY, HeaderValue::from_static("Accept-Encoding"));
    Response::from_parts(parts, Full::new(Bytes::from(compressed)))
}

/// The identity a request acts as: each impersonated thing must be allowed (`impersonate` on
/// users, serviceaccounts or groups); the user's own groups are never looked up — a service
/// account gets its fixed groups when none are given, everyone but system:anonymous gets
/// system:authenticated.
#[allow(clippy::result_large_err, reason = "the error is the response to send")]
fn impersonated(sim: &Sim, requestor: &Identity, as_user: &str, groups: Vec<String>) -> Result<Identity, Resp> {
    let users = sim.users.read().expect("users lock").clone();
    let service_account = as_user
        .strip_prefix("system:serviceaccount:")
        .and_then(|rest| rest.split_once(':'))
        .map(|(ns, name)| (ns.to_string(), name.to_string()));
    let mut checks = vec![match &service_account {
        Some((ns, name)) => Attributes {
            verb: "impersonate".into(),
            resource: "serviceaccounts".into(),
            namespace: ns.clone(),
            name: name.clone(),
            ..Default::default()
        },
        None => Attributes {
            verb: "impersonate".into(),
            resource: "users".into(),
            name: as_user.into(),
            ..Default::default()
        },
    }];
    checks.extend(groups.iter().map(|g| Attributes {
        verb: "impersonate".into(),
        resource: "groups".into(),
        name: g.clone(),
        ..Default::default()
    }));
    if let Some(denied) = checks.iter().find(|attrs| !auth::authorize(requestor, &users, attrs)) {
        return Err(json_response(403, &auth::forbidden_status(requestor, denied)));
    }
    let mut groups = groups;
    if groups.is_empty()
        && let Some((ns, _)) = &service_account
    {
        groups = vec!["system:serviceaccounts".into(), format!("system:serviceaccounts:{ns}")];
    }
    if as_user != "system:anonymous"
        && !groups.iter().any(|g| g == "system:authenticated" || g == "system:unauthenticated")
    {
        groups.push("system:authenticated".into());
    }
    Ok(Identity { user: as_user.to_string(), groups })
}

#[allow(clippy::result_large_err, reason = "the error is the response to send")]
fn non_resource_allowed(sim: &Sim, identity: &Identity, path: &str) -> Result<(), Resp> {
    let users = sim.users.read().expect("users lock");
    let attrs = Attributes { verb: "get".into(), path: Some(path.to_string()), ..Default::default() };
    if auth::authorize(identity, &users, &attrs) {
        Ok(())
    } else {
        Err(json_response(403, &auth::forbidden_status(identity, &attrs)))
    }
}

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
            let text = sim.metrics.render(sim, replica);
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
fn split_group_version(path: &str) -> Option<(String, String, Vec<String>)> {
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

fn aggregated_groups(sim: &Sim) -> Vec<discovery::AggregatedGroup> {
    let store = sim.store.read().expect("store lock");
    let Some(rt) = registry::find("apiregistration.k8s.io", "apiservices") else {
        return vec![];
    };
    store
        .list(rt, None)
        .into_iter()
        .filter(|a| !a["spec"]["service"].is_null())
        .map(|a| discovery::AggregatedGroup {
            group: a["spec"]["group"].as_str().unwrap_or("").to_string(),
            version: a["spec"]["version"].as_str().unwrap_or("").to_string(),
            available: a["status"]["conditions"]
                .as_array()
                .and_then(|c| c.iter().find(|x| x["type"] == "Available"))
                .is_some_and(|c| c["status"] == "True"),
        })
        .collect()
}

fn not_found(rt: &ResourceType, name: &str) -> Resp {
    let qualified = if rt.group.is_empty() { rt.resource.to_string() } else { format!("{}.{}", rt.resource, rt.group) };
    let mut details = json!({"name": name, "kind": rt.resource});
    if !rt.group.is_empty() {
        details["group"] = json!(rt.group);
    }
    status(404, "NotFound", &format!("{qualified} \"{name}\" not found"), Some(details))
}

fn conflict(rt: &ResourceType, name: &str) -> Resp {
    let qualified = if rt.group.is_empty() { rt.resource.to_string() } else { format!("{}.{}", rt.resource, rt.group) };
    status(
        409,
        "Conflict",
        &format!(
            "Operation cannot be fulfilled on {qualified} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
        ),
        Some(json!({"name": name, "group": rt.group, "kind": rt.resource})),
    )
}

fn already_exists(rt: &ResourceType, name: &str) -> Resp {
    let qualified = if rt.group.is_empty() { rt.resource.to_string() } else { format!("{}.{}", rt.resource, rt.group) };
    status(
        409,
        "AlreadyExists",
        &format!("{qualified} \"{name}\" already exists"),
        Some(json!({"name": name, "group": rt.group, "kind": rt.resource})),
    )
}

fn store_error(rt: &ResourceType, name: &str, e: StoreError) -> Resp {
    match e {
        StoreError::NotFound => not_found(rt, name),
        StoreError::Conflict => conflict(rt, name),
        StoreError::AlreadyExists => already_exists(rt, name),
    }
}

/// Serves an object in the requested version (flowcontrol v1beta3 differs only in apiVersion).
fn in_version(mut obj: Value, rt: &ResourceType, version: &str) -> Value {
    obj["apiVersion"] = json!(registry::api_version(rt.group, version));
    obj
}

#[allow(clippy::result_large_err, reason = "the error is the response to send")]
async fn read_body(req: Request<Incoming>) -> Result<Bytes, Resp> {
    match req.into_body().collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(e) => Err(status(400, "BadRequest", &format!("cannot read body: {e}"), None)),
    }
}

fn verb_of(method: &Method, rp: &ResourcePath, query: &Query) -> &'static str {
    match (method.as_str(), rp.name.is_empty()) {
        ("GET", true) => {
            if query.get("watch").is_some_and(|w| w == "true" || w == "1") {
                "watch"
            } else {
                "list"
            }
        }
        ("GET", false) => "get",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "deletecollection",
        ("DELETE", false) => "delete",
        _ => "get",
    }
}

async fn resource_route(
    sim: &Arc<Sim>,
    identity: &Identity,
    req: Request<Incoming>,
    path: &str,
    query: &Query,
    method: Method,
) -> Resp {
    let flowcontrol = sim.config.flowcontrol;
    // Discovery.
    match path {
        "/api" => {
            return json_response(
                200,
                &discovery::api_versions(&format!("{}:{}", sim.config.replicas[0].ip, sim.port)),
            );
        }
        "/apis" => {
            return json_response(200, &discovery::api_group_list(flowcontrol, &aggregated_groups(sim)));
        }
        _ => {}
    }
    if let Some((group, version, rest)) = split_group_version(path) {
        if rest.is_empty() {
            if let Some(list) = discovery::resource_list(&group, &version, flowcontrol) {
                return json_response(200, &list);
            }
            if let Some(agg) = aggregated_groups(sim).into_iter().find(|a| a.group == group && a.version == version) {
                return if agg.available {
                    json_response(200, &discovery::metrics_resource_list(&version))
                } else {
                    status(503, "ServiceUnavailable", "the server is currently unable to handle the request", None)
                };
            }
            return text_response(404, "404 page not found\n".into());
        }
    } else if let Some(group) = path.strip_prefix("/apis/")
        && !group.contains('/')
    {
        return match discovery::api_group(group, flowcontrol, &aggregated_groups(sim)) {
            Some(g) => json_response(200, &g),
            None => text_response(404, "404 page not found\n".into()),
        };
    }

    let Some(rp) = parse_resource_path(path) else {
        return text_response(404, "404 page not found\n".into());
    };
    // Aggregated APIs.
    if let Some(agg) = aggregated_groups(sim).into_iter().find(|a| a.group == rp.group) {
        if !agg.available {
            return status(503, "ServiceUnavailable", "the server is currently unable to handle the request", None);
        }
        return json_response(
            200,
            &json!({"kind": format!("{}List", if rp.resource == "nodes" { "NodeMetrics" } else { "PodMetrics" }), "apiVersion": format!("{}/{}", rp.group, rp.version), "metadata": {}, "items": []}),
        );
    }
    let Some(rt) = registry::find(&rp.group, &rp.resource) else {
        return text_response(404, "404 page not found\n".into());
    };
    let version_served = rt.versions.contains(&rp.version.as_str()) && flowcontrol.serves(rt.group, &rp.version);
    if !version_served {
        return text_response(404, "404 page not found\n".into());
    }
    let verb = verb_of(&method, &rp, query);
    let attrs = Attributes {
        verb: verb.into(),
        group: rp.group.clone(),
        resource: rp.resource.clone(),
        subresource: rp.subresource.clone(),
        namespace: rp.namespace.clone(),
        name: rp.name.clone(),
        path: None,
    };
    {
        let users = sim.users.read().expect("users lock");
        // Streaming subresources are authorized as `create` (what RBAC rules grant for exec).
        let mut check = attrs.clone();
        if matches!(rp.subresource.as_str(), "exec" | "portforward" | "attach") {
            check.verb = "create".into();
        }
        if !auth::authorize(identity, &users, &check) {
            return json_response(403, &auth::forbidden_status(identity, &check));
        }
    }

    let dry_run = query.get("dryRun") == Some("All");
    match (verb, rp.subresource.as_str()) {
        (_, "exec") | (_, "portforward") | (_, "attach") => {
            // Connecting to a pod is admitted like a write (operation CONNECT on the
            // subresource): a webhook on `*/*` can refuse exec and port-forward too.
            let kind = match rp.subresource.as_str() {
                "exec" => "PodExecOptions",
                "portforward" => "PodPortForwardOptions",
                _ => "PodAttachOptions",
            };
            let options = json!({"apiVersion": "v1", "kind": kind});
            if let Err(resp) =
                super::admission::admit(sim, rt, &rp.subresource, "CONNECT", &options, &rp.namespace, identity, false)
                    .await
            {
                return resp;
            }
            super::streaming::handle(sim.clone(), rt, &rp, query, req).await
        }
        ("get", "log") => {
            let store = sim.store.read().expect("store lock");
            if store.get(rt, &rp.namespace, &rp.name).is_none() {
                return not_found(rt, &rp.name);
            }
            let lines = query.get("tailLines").and_then(|t| t.parse::<usize>().ok());
            text_response(200, sim.exec.logs(&rp.namespace, &rp.name, lines))
        }
        ("get", _) => {
            let store = sim.store.read().expect("store lock");
            match store.get(rt, &rp.namespace, &rp.name) {
                Some(obj) if rp.subresource == "scale" => json_response(200, &scale_view(&obj)),
                Some(obj) => json_response(200, &in_version(obj, rt, &rp.version)),
                None => not_found(rt, &rp.name),
            }
        }
        ("list", _) => {
            list(sim, rt, &rp, query, req.headers().get("accept").and_then(|v| v.to_str().ok()).unwrap_or(""))
        }
        ("watch", _) => status(405, "MethodNotAllowed", "watch is not supported by the simulated API server", None),
        ("create", _) => {
            let body = match read_body(req).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            let Ok(mut obj) = serde_json::from_slice::<Value>(&body) else {
                return status(400, "BadRequest", "the body of the request was in an unknown format", None);
            };
            if rt.resource == "selfsubjectaccessreviews" {
                return self_subject_access_review(sim, identity, obj);
            }
            if rt.namespaced {
                obj["metadata"]["namespace"] = json!(rp.namespace);
            }
            obj["apiVersion"] = json!(registry::api_version(rt.group, rt.versions[0]));
            if let Some(resp) = invalid_name(rt, &obj) {
                return resp;
            }
            if let Err(resp) =
                super::admission::admit(sim, rt, "", "CREATE", &obj, &rp.namespace, identity, dry_run).await
            {
                return resp;
            }
            let mut store = sim.store.write().expect("store lock");
            let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
            match store.create(rt, obj, dry_run) {
                Ok(created) => json_response(201, &in_version(created, rt, &rp.version)),
                Err(e) => store_error(rt, &name, e),
            }
        }
        ("update", _) => {
            let body = match read_body(req).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            let Ok(mut obj) = serde_json::from_slice::<Value>(&body) else {
                return status(400, "BadRequest", "the body of the request was in an unknown format", None);
            };
            if rt.namespaced {
                obj["metadata"]["namespace"] = json!(rp.namespace);
            }
            obj["apiVersion"] = json!(registry::api_version(rt.group, rt.versions[0]));
            let mut store = sim.store.write().expect("store lock");
            match store.update(rt, obj, dry_run) {
                Ok(updated) => json_response(200, &in_version(updated, rt, &rp.version)),
                Err(e) => store_error(rt, &rp.name, e),
            }
        }
        ("patch", _) => {
            let content_type =
                req.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
            let body = match read_body(req).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            patch(sim, rt, &rp, &content_type, &body, dry_run)
        }
        ("delete", _) => {
            let body = match read_body(req).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            let options: Value = serde_json::from_slice(&body).unwrap_or(json!({}));
            let precondition = options["preconditions"]["resourceVersion"].as_str().map(str::to_string);
            let mut store = sim.store.write().expect("store lock");
            match store.delete(rt, &rp.namespace, &rp.name, precondition.as_deref(), dry_run) {
                Ok(obj) => json_response(200, &in_version(obj, rt, &rp.version)),
                Err(e) => store_error(rt, &rp.name, e),
            }
        }
        _ => status(405, "MethodNotAllowed", "the server does not allow this method on the requested resource", None),
    }
}

fn self_subject_access_review(sim: &Sim, identity: &Identity, mut review: Value) -> Resp {
    let spec = &review["spec"];
    let attrs = if let Some(n) = spec["nonResourceAttributes"].as_object() {
        Attributes {
            verb: n.get("verb").and_then(Value::as_str).unwrap_or("").into(),
            path: Some(n.get("path").and_then(Value::as_str).unwrap_or("").into()),
            ..Default::default()
        }
    } else {
        let r = &spec["resourceAttributes"];
        let s = |k: &str| r[k].as_str().unwrap_or("").to_string();
        Attributes {
            verb: s("verb"),
            group: s("group"),
            resource: s("resource"),
            subresource: s("subresource"),
            namespace: s("namespace"),
            name: s("name"),
            path: None,
        }
    };
    let users = sim.users.read().expect("users lock");
    let allowed = auth::authorize(identity, &users, &attrs);
    review["status"] = json!({"allowed": allowed});
    review["metadata"] = json!({"creationTimestamp": null});
    json_response(201, &review)
}

fn encode_continue(rv: u64, offset: usize) -> String {
    base64::engine::general_purpose::STANDARD
        .encode(format!("{{\"v\":\"meta.k8s.io/v1\",\"rv\":{rv},\"start\":\"{offset}\"}}"))
}

fn decode_continue(token: &str) -> Option<usize> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(token).ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    v["start"].as_str()?.parse().ok()
}

fn list(sim: &Sim, rt: &ResourceType, rp: &ResourcePath, query: &Query, accept: &str) -> Resp {
    let label = match query.get("labelSelector").map(LabelSelector::parse).transpose() {
        Ok(s) => s,
        Err(e) => {
            return status(400, "BadRequest", &format!("unable to parse requirement: {e}"), None);
        }
    };
    let field = match query.get("fieldSelector").map(FieldSelector::parse).transpose() {
        Ok(s) => s,
        Err(e) => return status(400, "BadRequest", &e, None),
    };
    let limit = query.get("limit").and_then(|l| l.parse::<usize>().ok()).filter(|l| *l > 0);
    let start = match query.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => match decode_continue(token) {
            Some(o) => o,
            None => {
                return status(400, "BadRequest", "continue key is not valid: illegal base64 data", None);
            }
        },
        None => 0,
    };
    let store = sim.store.read().expect("store lock");
    let rv = store.resource_version();
    let namespace = if rp.namespace.is_empty() { None } else { Some(rp.namespace.as_str()) };
    let mut items = Vec::new();
    let mut index = 0usize;
    let mut more = false;
    store.for_each(rt, namespace, |obj| {
        let matches = label.as_ref().is_none_or(|s| s.matches(&obj["metadata"]["labels"]))
            && field.as_ref().is_none_or(|f| f.matches(&obj));
        if !matches {
            return true;
        }
        if index >= start {
            if limit.is_some_and(|l| items.len() >= l) {
                more = true;
                return false;
            }
            items.push(in_version(obj, rt, &rp.version));
        }
        index += 1;
        true
    });
    let next = more.then(|| encode_continue(rv, start + items.len()));
    if tables::wants_table(accept) {
        return json_response(200, &tables::table(rt, &items, &rv.to_string(), next.as_deref()));
    }
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if let Some(n) = &next {
        metadata["continue"] = json!(n);
    }
    // The items of a list carry neither apiVersion nor kind: the list says them once.
    for item in &mut items {
        if let Some(o) = item.as_object_mut() {
            o.remove("apiVersion");
            o.remove("kind");
        }
    }
    json_response(
        200,
        &json!({
            "kind": format!("{}List", rt.kind), "apiVersion": registry::api_version(rt.group, &rp.version),
            "metadata": metadata, "items": items
        }),
    )
}

/// RFC 7386 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            let t = target.as_object_mut().expect("object");
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// Strategic merge patch, as far as the kit needs it: a merge patch whose lists of named
/// objects (webhooks, containers) merge by `name`.
pub fn strategic_merge(target: &mut Value, patch: &Value) {
    match (target.as_object_mut(), patch) {
        (Some(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                    continue;
                }
                let entry = t.entry(k.clone()).or_insert(Value::Null);
                match (entry.as_array_mut(), v.as_array()) {
                    (Some(existing), Some(items)) if items.iter().all(|i| i.get("name").is_some()) => {
                        for item in items {
                            match existing.iter_mut().find(|e| e.get("name") == item.get("name")) {
                                Some(e) => strategic_merge(e, item),
                                None => existing.push(item.clone()),
                            }
                        }
                    }
                    _ => strategic_merge(entry, v),
                }
            }
        }
        (_, other) => *target = other.clone(),
    }
}

/// RFC 6902 JSON patch (add, remove, replace, test, copy, move).
pub fn json_patch(target: &mut Value, ops: &Value) -> Result<(), String> {
    let ops = ops.as_array().ok_or("a JSON patch must be an array")?;
    for op in ops {
        let kind = op["op"].as_str().ok_or("op missing")?;
        let path = op["path"].as_str().ok_or("path missing")?;
        match kind {
            "test" => {
                if target.pointer(path) != Some(&op["value"]) {
                    return Err(format!("the test at {path} failed"));
                }
            }
            "remove" => {
                remove_at(target, path)?;
            }
            "replace" => {
                let slot = target.pointer_mut(path).ok_or_else(|| format!("path {path} does not exist"))?;
                *slot = op["value"].clone();
            }
            "add" => add_at(target, path, op["value"].clone())?,
            "copy" | "move" => {
                let from = op["from"].as_str().ok_or("from missing")?;
                let value = target.pointer(from).cloned().ok_or_else(|| format!("path {from} does not exist"))?;
                if kind == "move" {
                    remove_at(target, from)?;
                }
                add_at(target, path, value)?;
            }
            other => return Err(format!("unknown op {other}")),
        }
    }
    Ok(())
}

fn split_pointer(path: &str) -> Result<(&str, String), String> {
    let idx = path.rfind('/').ok_or_else(|| format!("invalid path {path}"))?;
    Ok((&path[..idx], path[idx + 1..].replace("~1", "/").replace("~0", "~")))
}

fn remove_at(target: &mut Value, path: &str) -> Result<Value, String> {
    let (parent, last) = split_pointer(path)?;
    let p = target.pointer_mut(parent).ok_or_else(|| format!("path {parent} does not exist"))?;
    match p {
        Value::Object(m) => m.remove(&last).ok_or_else(|| format!("path {path} does not exist")),
        Value::Array(a) => {
            let i: usize = last.parse().map_err(|_| format!("bad index in {path}"))?;
            if i < a.len() { Ok(a.remove(i)) } else { Err(format!("index out of range in {path}")) }
        }
        _ => Err(format!("path {parent} is not a container")),
    }
}

fn add_at(target: &mut Value, path: &str, value: Value) -> Result<(), String> {
    if path.is_empty() {
        *target = value;
        return Ok(());
    }
    let (parent, last) = split_pointer(path)?;
    let p = target.pointer_mut(parent).ok_or_else(|| format!("path {parent} does not exist"))?;
    match p {
        Value::Object(m) => {
            m.insert(last, value);
            Ok(())
        }
        Value::Array(a) => {
            if last == "-" {
                a.push(value);
            } else {
                let i: usize = last.parse().map_err(|_| format!("bad index in {path}"))?;
                if i > a.len() {
                    return Err(format!("index out of range in {path}"));
                }
                a.insert(i, value);
            }
            Ok(())
        }
        _ => Err(format!("path {parent} is not a container")),
    }
}

/// The `scale` subresource of a workload: an autoscaling/v1 Scale (kubectl scale decodes it as one).
fn scale_view(obj: &Value) -> Value {
    let m = &obj["metadata"];
    let selector = obj["spec"]["selector"]["matchLabels"]
        .as_object()
        .map(|l| l.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))).collect::<Vec<_>>().join(","))
        .unwrap_or_default();
    json!({
        "apiVersion": "autoscaling/v1", "kind": "Scale",
        "metadata": {"name": m["name"], "namespace": m["namespace"], "uid": m["uid"],
                     "resourceVersion": m["resourceVersion"], "creationTimestamp": m["creationTimestamp"]},
        "spec": {"replicas": obj["spec"]["replicas"].as_i64().unwrap_or(1)},
        "status": {"replicas": obj["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector},
    })
}

fn patch(sim: &Sim, rt: &ResourceType, rp: &ResourcePath, content_type: &str, body: &[u8], dry_run: bool) -> Resp {
    let Ok(patch_doc) = serde_json::from_slice::<Value>(body) else {
        return status(400, "BadRequest", "the body of the request was in an unknown format", None);
    };
    let mut store = sim.store.write().expect("store lock");
    let Some(current) = store.get(rt, &rp.namespace, &rp.name) else {
        return not_found(rt, &rp.name);
    };
    // The scale subresource is patched as an autoscaling/v1 Scale; only its replicas are kept.
    let scale = rp.subresource == "scale";
    let mut updated = if scale { scale_view(&current) } else { current.clone() };
    if content_type.starts_with("application/json-patch+json") {
        if let Err(e) = json_patch(&mut updated, &patch_doc) {
            // A failed `test` op on resourceVersion is a conflict, like the apiserver reports it.
            if e.contains("test") {
                return status(
                    422,
                    "Invalid",
                    &format!("the server rejected our request due to an error in our request: {e}"),
                    None,
                );
            }
            return status(422, "Invalid", &e, None);
        }
    } else {
        // A resourceVersion in a merge patch is a precondition.
        if let Some(want) = patch_doc["metadata"]["resourceVersion"].as_str()
            && current["metadata"]["resourceVersion"].as_str() != Some(want)
        {
            return conflict(rt, &rp.name);
        }
        if content_type.starts_with("application/strategic-merge-patch+json") {
            strategic_merge(&mut updated, &patch_doc);
        } else if content_type.starts_with("application/merge-patch+json") {
            merge_patch(&mut updated, &patch_doc);
        } else if content_type.starts_with("application/apply-patch") {
            return status(
                415,
                "UnsupportedMediaType",
                "server-side apply is not supported by the simulated API server",
                None,
            );
        } else {
            return status(
                415,
                "UnsupportedMediaType",
                &format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got {content_type:?})"
                ),
                None,
            );
        }
    }
    if scale {
        let replicas = updated["spec"]["replicas"].clone();
        updated = current.clone();
        updated["spec"]["replicas"] = replicas;
    }
    updated["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
    match store.update(rt, updated, dry_run) {
        Ok(obj) if scale => json_response(200, &scale_view(&obj)),
        Ok(obj) => json_response(200, &in_version(obj, rt, &rp.version)),
        Err(e) => store_error(rt, &rp.name, e),
    }
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

    #[test]
    fn patches() {
        let mut v = json!({"a": {"b": 1, "c": 2}, "list": [{"name": "x", "v": 1}]});
        merge_patch(&mut v, &json!({"a": {"b": null, "d": 3}}));
        assert_eq!(v["a"], json!({"c": 2, "d": 3}));
        strategic_merge(&mut v, &json!({"list": [{"name": "x", "v": 2}, {"name": "y"}]}));
        assert_eq!(v["list"], json!([{"name": "x", "v": 2}, {"name": "y"}]));
        json_patch(&mut v, &json!([{"op": "test", "path": "/a/c", "value": 2}, {"op": "replace", "path": "/list/0/v", "value": 9}, {"op": "add", "path": "/list/-", "value": 1}])).unwrap();
        assert_eq!(v["list"][0]["v"], 9);
        assert_eq!(v["list"][2], 1);
        assert!(json_patch(&mut v, &json!([{"op": "test", "path": "/a/c", "value": 3}])).is_err());
    }

    #[test]
    fn continue_tokens_round_trip() {
        assert_eq!(decode_continue(&encode_continue(42, 500)), Some(500));
        assert_eq!(percent_decode("a%3Db%2Bc+d"), "a=b+c d");
    }
}
