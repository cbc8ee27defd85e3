//! Admission webhooks on create: the configured webhooks that match the object are called
//! (mutating, then validating) with a v1 AdmissionReview over HTTPS, verified with their
//! `caBundle`. Failures produce the API server's real error texts; `failurePolicy: Ignore`
//! fails open. Only loopback backends are ever dialled. ValidatingAdmissionPolicies are applied
//! as far as their configuration goes (a paramKind not served, params not found with
//! `parameterNotFoundAction: Deny`); their CEL validations are not evaluated.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use serde_json::{Value, json};

use super::Sim;
use super::auth::Identity;
use super::http::{Resp, status};
use super::registry::{self, ResourceType};
use super::store::LabelSelector;

/// Does one webhook's rules match this request? Rule resources are `resource[/subresource]`:
/// `*` matches every resource but no subresource, `*/*` everything, `pods/*` pods and all its
/// subresources (kubernetes `apiserver/pkg/admission/plugin/webhook/predicates/rules/rules.go`).
fn rules_match(webhook: &Value, rt: &ResourceType, subresource: &str, operation: &str, namespaced: bool) -> bool {
    let Some(rules) = webhook["rules"].as_array() else {
        return false;
    };
    rules.iter().any(|r| {
        let any = |key: &str, want: &str| {
            r[key].as_array().is_some_and(|vs| vs.iter().any(|v| v == "*" || v.as_str() == Some(want)))
        };
        let resources_ok = r["resources"].as_array().is_some_and(|vs| {
            vs.iter().any(|v| {
                let (res, sub) = v.as_str().unwrap_or("").split_once('/').unwrap_or((v.as_str().unwrap_or(""), ""));
                (res == "*" || res == rt.resource) && (sub == "*" || sub == subresource)
            })
        });
        let scope = r["scope"].as_str().unwrap_or("*");
        let scope_ok = scope == "*" || (scope == "Namespaced") == namespaced;
        any("operations", operation)
            && any("apiGroups", rt.group)
            && any("apiVersions", rt.versions[0])
            && resources_ok
            && scope_ok
    })
}

fn selector_matches(selector: &Value, labels: &Value) -> bool {
    if selector.is_null() || selector.as_object().is_some_and(|o| o.is_empty()) {
        return true;
    }
    if let Some(ml) = selector["matchLabels"].as_object() {
        for (k, v) in ml {
            if labels.get(k) != Some(v) {
                return false;
            }
        }
    }
    if let Some(exprs) = selector["matchExpressions"].as_array() {
        for e in exprs {
            let key = e["key"].as_str().unwrap_or("");
            let values: Vec<&str> =
                e["values"].as_array().map(|v| v.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
            let text = match e["operator"].as_str().unwrap_or("") {
                "In" => format!("{key} in ({})", values.join(",")),
                "NotIn" => format!("{key} notin ({})", values.join(",")),
                "Exists" => key.to_string(),
                "DoesNotExist" => format!("!{key}"),
                _ => return false,
            };
            if !LabelSelector::parse(&text).is_ok_and(|s| s.matches(labels)) {
                return false;
            }
        }
    }
    true
}

/// A ValidatingAdmissionPolicy binding that cannot be configured for this request fails it
/// with the policy's failurePolicy, whatever its validations and matchConditions (k8s.io/
/// apiserver `pkg/admission/plugin/policy/generic/policy_dispatcher.go`). Policies and bindings
/// themselves are never subject to policies.
fn policy_configuration_errors(
    store: &super::store::Store,
    rt: &ResourceType,
    subresource: &str,
    operation: &str,
    obj: &Value,
    namespace: &str,
    ns_labels: &Value,
) -> Option<(bool, String)> {
    if rt.group == "admissionregistration.k8s.io" && rt.resource.contains("admissionpolic") {
        return None;
    }
    let group = "admissionregistration.k8s.io";
    let mut policies = Vec::new();
    let mut bindings = Vec::new();
    for (kind, plural) in [("Mutating", "mutating"), ("Validating", "validating")] {
        for p in store.list(registry::find(group, &format!("{plural}admissionpolicies"))?, None) {
            policies.push((kind, p));
        }
        for b in store.list(registry::find(group, &format!("{plural}admissionpolicybindings"))?, None) {
            bindings.push((kind, b));
        }
    }
    let selects = |m: &Value, rules_required: bool| {
        let rules = &m["resourceRules"];
        let by_rules = rules.as_array().is_none_or(|r| r.is_empty()) && !rules_required
            || rules_match(&json!({"rules": rules}), rt, subresource, operation, rt.namespaced);
        let excluded =
            rules_match(&json!({"rules": m["excludeResourceRules"]}), rt, subresource, operation, rt.namespaced);
        by_rules
            && !excluded
            && (!rt.namespaced || selector_matches(&m["namespaceSelector"], ns_labels))
            && selector_matches(&m["objectSelector"], &obj["metadata"]["labels"])
    };
    for (policy_kind, binding) in &bindings {
        let spec = &binding["spec"];
        let Some((_, policy)) =
            policies.iter().find(|(k, p)| k == policy_kind && p["metadata"]["name"] == spec["policyName"])
        else {
            continue;
        };
        let pspec = &policy["spec"];
        if pspec["failurePolicy"] == "Ignore"
            || !selects(&pspec["matchConstraints"], true)
            || (spec["matchResources"].is_object() && !selects(&spec["matchResources"], false))
        {
            continue;
        }
        let (Some(kind), Some(param_ref)) = (pspec["paramKind"]["kind"].as_str(), spec["paramRef"].as_object()) else {
            continue;
        };
        let api_version = pspec["paramKind"]["apiVersion"].as_str().unwrap_or("v1");
        let error = match registry::find_kind(api_version, kind) {
            None => Some(format!("paramKind kind `{api_version}, Kind={kind}` not known")),
            Some(param_type) => {
                let ns = match param_ref.get("namespace").and_then(Value::as_str) {
                    Some(ns) => ns,
                    None if param_type.namespaced => namespace,
                    None => "",
                };
                let found = match param_ref.get("name").and_then(Value::as_str) {
                    Some(name) => store.get(param_type, ns, name).is_some(),
                    None => !store.list(param_type, (!ns.is_empty()).then_some(ns)).is_empty(),
                };
                let deny = param_ref.get("parameterNotFoundAction").and_then(Value::as_str) == Some("Deny");
                (!found && deny)
                    .then(|| "no params found for policy binding with `Deny` parameterNotFoundAction".into())
            }
        };
        if let Some(error) = error {
            // Worded as the real API server words each kind: the validating plugin names its
            // kind, the mutating one says "policy" (k8s.io/apiserver generic PolicyError).
            let (policy, binding) =
                (policy["metadata"]["name"].as_str().unwrap_or(""), binding["metadata"]["name"].as_str().unwrap_or(""));
            let validating = *policy_kind == "Validating";
            let who = if validating { "ValidatingAdmissionPolicy" } else { "policy" };
            return Some((
                kind == "Validating",
                format!(
                    "{who} '{policy}' with binding '{binding}' denied request: failed to configure binding: {error}"
                ),
            ));
        }
    }
    None
}

/// Why a webhook call failed, worded like the API server's dispatcher.
fn call_error(name: &str, url: &str, detail: &str) -> String {
    format!("failed calling webhook \"{name}\": failed to call webhook: Post \"{url}\": {detail}")
}

struct Target {
    url: String,
    dial: Result<SocketAddr, String>,
    server_name: String,
}

fn resolve(sim: &Sim, webhook: &Value, timeout_s: u64) -> Result<Target, String> {
    let cc = &webhook["clientConfig"];
    if let Some(url) = cc["url"].as_str() {
        let uri: http::Uri = url.parse().map_err(|_| format!("invalid URL {url}"))?;
        let host = uri.host().unwrap_or("").trim_matches(|c| c == '[' || c == ']').to_string();
        let port = uri.port_u16().unwrap_or(443);
        let dial = match host.parse::<IpAddr>() {
            Ok(ip) if ip.is_loopback() => Ok(SocketAddr::new(ip, port)),
            Ok(ip) => Err(format!("dial tcp {ip}:{port}: i/o timeout")),
            Err(_) if host == "localhost" => Ok(SocketAddr::from(([127, 0, 0, 1], port))),
            Err(_) => Err(format!("dial tcp: lookup {host}: no such host")),
        };
        return Ok(Target { url: format!("{url}?timeout={timeout_s}s"), dial, server_name: host });
    }
    let svc = &cc["service"];
    let ns = svc["namespace"].as_str().unwrap_or("default");
    let name = svc["name"].as_str().unwrap_or("");
    let port = svc["port"].as_u64().unwrap_or(443);
    let path = svc["path"].as_str().unwrap_or("");
    let host = format!("{name}.{ns}.svc");
    let url = format!("https://{host}:{port}{path}?timeout={timeout_s}s");
    let store = sim.store.read().expect("store lock");
    let svc_rt = registry::find("", "services").expect("services type");
    let Some(service) = store.get(svc_rt, ns, name) else {
        return Ok(Target { url, dial: Err(format!("service \"{name}\" not found")), server_name: host });
    };
    let cluster_ip = service["spec"]["clusterIP"].as_str().unwrap_or("").to_string();
    let target_port = service["spec"]["ports"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["port"].as_u64() == Some(port)).or(ps.first()))
        .map(|p| p["targetPort"].clone())
        .unwrap_or(json!(port));
    // The API server dials the ClusterIP; kube-proxy forwards to a ready endpoint, or rejects
    // the connection when there is none.
    let slices_rt = registry::find("discovery.k8s.io", "endpointslices").expect("endpointslices type");
    let mut dial = if cluster_ip.is_empty() || cluster_ip == "None" {
        Err(format!("no endpoints available for service \"{name}\""))
    } else {
        Err(format!("dial tcp {cluster_ip}:{port}: connect: connection refused"))
    };
    'slices: for slice in store.list(slices_rt, Some(ns)) {
        if slice["metadata"]["labels"]["kubernetes.io/service-name"].as_str() != Some(name) {
            continue;
        }
        let slice_port = slice["ports"]
            .as_array()
            .and_then(|ps| {
                ps.iter()
                    .find(|p| match &target_port {
                        Value::String(n) => p["name"].as_str() == Some(n.as_str()),
                        Value::Number(n) => p["port"].as_u64() == n.as_u64(),
                        _ => false,
                    })
                    .or(ps.first())
            })
            .and_then(|p| p["port"].as_u64());
        for ep in slice["endpoints"].as_array().cloned().unwrap_or_default() {
            if ep["conditions"]["ready"] == false {
                continue;
            }
            let Some(addr) = ep["addresses"].as_array().and_then(|a| a.first()).and_then(Value::as_str) else {
                continue;
            };
            let Some(p) = slice_port else { continue };
            dial = match addr.parse::<IpAddr>() {
                Ok(ip) if ip.is_loopback() => Ok(SocketAddr::new(ip, p as u16)),
                _ => Err(format!("dial tcp {addr}:{p}: i/o timeout")),
            };
            break 'slices;
        }
    }
    Ok(Target { url, dial, server_name: host })
}

async fn post_review(
    target: &Target,
    ca_bundle: Option<&str>,
    review: &Value,
    timeout: Duration,
) -> Result<Value, String> {
    let addr = target.dial.clone()?;
    let work = async {
        let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| {
            let detail = if e.kind() == std::io::ErrorKind::ConnectionRefused {
                "connect: connection refused".to_string()
            } else {
                e.to_string()
            };
            format!("dial tcp {addr}: {detail}")
        })?;
        let mut roots = rustls::RootCertStore::empty();
        if let Some(b64) = ca_bundle {
            use base64::Engine;
            let pem = base64::engine::general_purpose::STANDARD.decode(b64.trim()).unwrap_or_default();
            for der in CertificateDer::pem_slice_iter(&pem).flatten() {
                let _ = roots.add(der);
            }
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let name = ServerName::try_from(target.server_name.clone()).map_err(|e| e.to_string())?;
        let tls = connector.connect(name, tcp).await.map_err(|e| format!("tls: failed to verify certificate: {e}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let body = serde_json::to_vec(review).map_err(|e| e.to_string())?;
        let uri: http::Uri = target.url.parse().map_err(|_| "bad url".to_string())?;
        let req = http::Request::post(uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"))
            .header("Host", &target.server_name)
            .header("Content-Type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let bytes = resp.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
        serde_json::from_slice::<Value>(&bytes).map_err(|e| format!("failed to decode response: {e}"))
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(r) => r,
        Err(_) => Err("context deadline exceeded".into()),
    }
}

/// Runs the admission webhooks for a request (`CREATE`, or `CONNECT` of `pods/exec` and
/// `pods/portforward`). `Err` carries the API server's answer.
#[allow(clippy::too_many_arguments)]
pub async fn admit(
    sim: &Sim,
    rt: &ResourceType,
    subresource: &str,
    operation: &str,
    obj: &Value,
    namespace: &str,
    identity: &Identity,
    dry_run: bool,
) -> Result<(), Resp> {
    let (configs, ns_labels) = {
        let store = sim.store.read().expect("store lock");
        let mut configs = Vec::new();
        for (kind, resource) in
            [("admit", "mutatingwebhookconfigurations"), ("validating", "validatingwebhookconfigurations")]
        {
            if let Some(t) = registry::find("admissionregistration.k8s.io", resource) {
                for c in store.list(t, None) {
                    configs.push((kind, c));
                }
            }
        }
        let ns_labels = registry::find("", "namespaces")
            .and_then(|t| store.get(t, namespace, namespace))
            .map(|n| n["metadata"]["labels"].clone())
            .unwrap_or(json!({}));
        if let Some((validating, message)) =
            policy_configuration_errors(&store, rt, subresource, operation, obj, namespace, &ns_labels)
        {
            // As the real API server answers: a validating policy 422 Invalid with the message as
            // a cause, a mutating one 403 Forbidden.
            let name = obj["metadata"]["name"].as_str().unwrap_or("");
            return Err(if validating {
                status(
                    422,
                    "Invalid",
                    &format!("{} \"{name}\" is invalid: : {message}", rt.resource),
                    Some(json!({"name": name, "kind": rt.resource, "causes": [{"message": message, "field": ""}]})),
                )
            } else {
                status(403, "Forbidden", &message, None)
            });
        }
        (configs, ns_labels)
    };
    for (kind, config) in configs {
        for webhook in config["webhooks"].as_array().cloned().unwrap_or_default() {
            if !rules_match(&webhook, rt, subresource, operation, rt.namespaced) {
                continue;
            }
            if rt.namespaced && !selector_matches(&webhook["namespaceSelector"], &ns_labels) {
                continue;
            }
            if !selector_matches(&webhook["objectSelector"], &obj["metadata"]["labels"]) {
                continue;
            }
            if dry_run && !matches!(webhook["sideEffects"].as_str(), Some("None") | Some("NoneOnDryRun")) {
                return Err(status(
                    400,
                    "BadRequest",
                    &format!(
                        "admission webhook \"{}\" has sideEffects but the request is a dry run",
                        webhook["name"].as_str().unwrap_or("")
                    ),
                    None,
                ));
            }
            let name = webhook["name"].as_str().unwrap_or("").to_string();
            let timeout_s = webhook["timeoutSeconds"].as_u64().unwrap_or(10);
            let fail_closed = webhook["failurePolicy"].as_str().unwrap_or("Fail") == "Fail";
            let review = json!({
                "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                "request": {
                    "uid": super::store::new_uid(), "kind": {"group": rt.group, "version": rt.versions[0], "kind": rt.kind},
                    "resource": {"group": rt.group, "version": rt.versions[0], "resource": rt.resource},
                    "subResource": subresource,
                    "namespace": namespace, "operation": operation, "userInfo": {"username": identity.user, "groups": identity.groups},
                    "object": obj, "dryRun": dry_run
                }
            });
            let started = Instant::now();
            let outcome = match resolve(sim, &webhook, timeout_s) {
                Ok(target) => post_review(
                    &target,
                    webhook["clientConfig"]["caBundle"].as_str(),
                    &review,
                    Duration::from_secs(timeout_s),
                )
                .await
                .map_err(|detail| call_error(&name, &target.url, &detail)),
                Err(e) => Err(call_error(&name, "", &e)),
            };
            let elapsed = started.elapsed();
            match outcome {
                Ok(answer) => {
                    let allowed = answer["response"]["allowed"].as_bool().unwrap_or(false);
                    sim.metrics.record_webhook(
                        &name,
                        kind,
                        operation,
                        !allowed,
                        elapsed,
                        if allowed { None } else { Some("no_error") },
                    );
                    if !allowed {
                        let message = answer["response"]["status"]["message"].as_str().unwrap_or("");
                        let code = answer["response"]["status"]["code"].as_u64().unwrap_or(400) as u16;
                        return Err(status(
                            code,
                            "BadRequest",
                            &format!("admission webhook \"{name}\" denied the request: {message}"),
                            None,
                        ));
                    }
                }
                Err(message) => {
                    if fail_closed {
                        sim.metrics.record_webhook(
                            &name,
                            kind,
                            operation,
                            true,
                            elapsed,
                            Some("calling_webhook_error"),
                        );
                        return Err(status(
                            500,
                            "InternalError",
                            &format!("Internal error occurred: {message}"),
                            Some(json!({"causes": [{"message": message}]})),
                        ));
                    }
                    sim.metrics.record_fail_open(&name, kind);
                    sim.metrics.record_webhook(&name, kind, operation, false, elapsed, Some("calling_webhook_error"));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_and_rules() {
        let ns = json!({"kubernetes.io/metadata.name": "kube-system"});
        let excl = json!({"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system"]}]});
        assert!(!selector_matches(&excl, &ns));
        assert!(selector_matches(&excl, &json!({"kubernetes.io/metadata.name": "default"})));
        assert!(selector_matches(&json!({}), &ns));
        let pods = registry::find("", "pods").unwrap();
        let all =
            json!({"rules": [{"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"]}]});
        assert!(rules_match(&all, pods, "", "CREATE", true));
        let cm_only = json!({"rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"]}]});
        assert!(!rules_match(&cm_only, pods, "", "CREATE", true));
    }

    #[test]
    fn subresources_match_as_the_apiserver_matches_them() {
        let pods = registry::find("", "pods").unwrap();
        let rule = |res: &str| json!({"rules": [{"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": [res]}]});
        // `*` is every resource but none of their subresources; `*/*` is everything.
        assert!(!rules_match(&rule("*"), pods, "exec", "CONNECT", true));
        assert!(rules_match(&rule("*/*"), pods, "exec", "CONNECT", true));
        assert!(rules_match(&rule("*/*"), pods, "", "CREATE", true));
        assert!(rules_match(&rule("pods/*"), pods, "portforward", "CONNECT", true));
        // `pods/*` splits into ("pods", "*"), and "*" matches the empty subresource too.
        assert!(rules_match(&rule("pods/*"), pods, "", "CREATE", true));
        assert!(rules_match(&rule("pods/exec"), pods, "exec", "CONNECT", true));
        assert!(!rules_match(&rule("pods"), pods, "exec", "CONNECT", true));
    }
}
