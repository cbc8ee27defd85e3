//! The REST semantics of the real API server: discovery, get/list/create/update/delete with
//! resourceVersion preconditions, selectors, pagination, dry-run, Tables, its error Statuses.

use std::sync::Arc;

use base64::Engine;
use http::{Method, Request};
use hyper::body::Incoming;
use serde_json::{Value, json};

use super::auth::{self, Attributes, Identity};
use super::http::{Query, Resp, json_response, read_body, read_object, status, text_response};
use super::patch::patch;
use super::registry::{self, ResourceType};
use super::routes::{ResourcePath, parse_resource_path, split_group_version};
use super::store::{FieldSelector, LabelSelector, StoreError};
use super::{Sim, discovery, tables};

/// The API server's validation of `metadata.name` as a DNS subdomain (apimachinery
/// `pkg/util/validation`, `IsDNS1123Subdomain`): 422 with the field error, in its words.
pub(super) fn invalid_name(rt: &ResourceType, obj: &Value) -> Option<Resp> {
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

pub(super) fn not_found(rt: &ResourceType, name: &str) -> Resp {
    let qualified = if rt.group.is_empty() { rt.resource.to_string() } else { format!("{}.{}", rt.resource, rt.group) };
    let mut details = json!({"name": name, "kind": rt.resource});
    if !rt.group.is_empty() {
        details["group"] = json!(rt.group);
    }
    status(404, "NotFound", &format!("{qualified} \"{name}\" not found"), Some(details))
}

pub(super) fn conflict(rt: &ResourceType, name: &str) -> Resp {
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

pub(super) fn store_error(rt: &ResourceType, name: &str, e: StoreError) -> Resp {
    match e {
        StoreError::NotFound => not_found(rt, name),
        StoreError::Conflict => conflict(rt, name),
        StoreError::AlreadyExists => already_exists(rt, name),
    }
}

/// Serves an object in the requested version (flowcontrol v1beta3 differs only in apiVersion).
pub(super) fn in_version(mut obj: Value, rt: &ResourceType, version: &str) -> Value {
    obj["apiVersion"] = json!(registry::api_version(rt.group, version));
    obj
}

pub(super) async fn resource_route(
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
            let mut obj = match read_object(req).await {
                Ok(obj) => obj,
                Err(r) => return r,
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
            let mut obj = match read_object(req).await {
                Ok(obj) => obj,
                Err(r) => return r,
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

/// The `scale` subresource of a workload: an autoscaling/v1 Scale (kubectl scale decodes it as one).
pub(super) fn scale_view(obj: &Value) -> Value {
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

/// The request's verb as the apiserver's RequestInfo names it (RBAC and APF match on it).
pub(super) fn verb_of(method: &Method, rp: &ResourcePath, query: &Query) -> &'static str {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip() {
        assert_eq!(decode_continue(&encode_continue(42, 500)), Some(500));
    }
}
