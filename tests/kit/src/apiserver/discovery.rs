//! Legacy discovery (`/api`, `/apis`, `/api/v1`, `/apis/<group>/<version>`), which kubectl falls
//! back to when the answer is not the aggregated format. Aggregated API groups (APIServices with a
//! service) are listed; their resource lists answer 503 while the APIService is unavailable.

use serde_json::{Value, json};

use super::registry::{self, RESOURCES, ResourceType};

pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions", "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]
    })
}

fn group_entry(name: &str, versions: &[&str]) -> Value {
    let vs: Vec<Value> =
        versions.iter().map(|v| json!({"groupVersion": registry::api_version(name, v), "version": v})).collect();
    json!({"name": name, "versions": vs, "preferredVersion": vs[0].clone()})
}

/// An aggregated group served through an APIService (e.g. metrics.k8s.io/v1beta1).
#[derive(Debug, Clone)]
pub struct AggregatedGroup {
    pub group: String,
    pub version: String,
    pub available: bool,
}

pub fn api_group_list(flowcontrol: registry::Flowcontrol, aggregated: &[AggregatedGroup]) -> Value {
    let mut groups: Vec<Value> = registry::groups(flowcontrol).into_iter().map(|(g, vs)| group_entry(g, &vs)).collect();
    for a in aggregated {
        groups.push(group_entry(&a.group, &[a.version.as_str()]));
    }
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub fn api_group(group: &str, flowcontrol: registry::Flowcontrol, aggregated: &[AggregatedGroup]) -> Option<Value> {
    if let Some((g, vs)) = registry::groups(flowcontrol).into_iter().find(|(g, _)| *g == group) {
        let mut v = group_entry(g, &vs);
        v["kind"] = json!("APIGroup");
        v["apiVersion"] = json!("v1");
        return Some(v);
    }
    aggregated.iter().find(|a| a.group == group).map(|a| {
        let mut v = group_entry(&a.group, &[a.version.as_str()]);
        v["kind"] = json!("APIGroup");
        v["apiVersion"] = json!("v1");
        v
    })
}

fn sub_kind(rt: &ResourceType, sub: &str) -> (&'static str, Vec<&'static str>) {
    match sub {
        "exec" => ("PodExecOptions", vec!["create", "get"]),
        "portforward" => ("PodPortForwardOptions", vec!["create", "get"]),
        "attach" => ("PodAttachOptions", vec!["create", "get"]),
        "log" => ("Pod", vec!["get"]),
        "proxy" => (
            if rt.resource == "nodes" { "NodeProxyOptions" } else { "ServiceProxyOptions" },
            vec!["create", "delete", "get", "patch", "update"],
        ),
        "scale" => ("Scale", vec!["get", "patch", "update"]),
        "token" => ("TokenRequest", vec!["create"]),
        _ => (rt.kind, vec!["get", "patch", "update"]),
    }
}

/// `APIResourceList` of a group/version, or `None` when it is not served.
pub fn resource_list(group: &str, version: &str, flowcontrol: registry::Flowcontrol) -> Option<Value> {
    if !flowcontrol.serves(group, version) {
        return None;
    }
    let types: Vec<&ResourceType> =
        RESOURCES.iter().filter(|r| r.group == group && r.versions.contains(&version)).collect();
    if types.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for rt in types {
        let mut entry = json!({
            "name": rt.resource, "singularName": rt.singular, "namespaced": rt.namespaced,
            "kind": rt.kind, "verbs": rt.verbs,
        });
        if !rt.short_names.is_empty() {
            entry["shortNames"] = json!(rt.short_names);
        }
        if !rt.categories.is_empty() {
            entry["categories"] = json!(rt.categories);
        }
        resources.push(entry);
        for sub in rt.subresources {
            let (kind, verbs) = sub_kind(rt, sub);
            resources.push(json!({
                "name": format!("{}/{sub}", rt.resource), "singularName": "", "namespaced": rt.namespaced,
                "kind": kind, "verbs": verbs
            }));
        }
    }
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": registry::api_version(group, version), "resources": resources}),
    )
}

/// The resource list of an available metrics.k8s.io.
pub fn metrics_resource_list(version: &str) -> Value {
    json!({
        "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": format!("metrics.k8s.io/{version}"),
        "resources": [
            {"name": "nodes", "singularName": "", "namespaced": false, "kind": "NodeMetrics", "verbs": ["get", "list"]},
            {"name": "pods", "singularName": "", "namespaced": true, "kind": "PodMetrics", "verbs": ["get", "list"]}
        ]
    })
}
