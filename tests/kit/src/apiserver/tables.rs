//! Server-side printing: `meta.k8s.io/v1 Table` answers for kubectl, with the columns of
//! kubernetes' `pkg/printers/internalversion/printers.go` (priority 1 = `-o wide`).

use serde_json::{Value, json};

use super::registry::ResourceType;

fn col(name: &str, ty: &str, priority: u8, description: &str) -> Value {
    let format = if name == "Name" { "name" } else { "" };
    json!({"name": name, "type": ty, "format": format, "description": description, "priority": priority})
}

/// kubectl's AGE of an object.
pub fn age_of(obj: &Value) -> String {
    let ts = obj["metadata"]["creationTimestamp"].as_str().and_then(|s| s.parse::<jiff::Timestamp>().ok());
    match ts {
        Some(t) => cpkit::duration::age(t, jiff::Timestamp::now()),
        None => "<unknown>".into(),
    }
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn or_none(text: String) -> String {
    if text.is_empty() { "<none>".into() } else { text }
}

fn columns_and_cells(rt: &ResourceType, obj: &Value) -> (Vec<Value>, Vec<Value>) {
    let name = s(&obj["metadata"]["name"]);
    let age = age_of(obj);
    match rt.resource {
        "nodes" => {
            let conditions = obj["status"]["conditions"].as_array().cloned().unwrap_or_default();
            let ready = conditions.iter().find(|c| c["type"] == "Ready");
            let mut status = match ready.map(|c| s(&c["status"])) {
                Some(x) if x == "True" => "Ready".to_string(),
                Some(_) => "NotReady".to_string(),
                None => "Unknown".to_string(),
            };
            if obj["spec"]["unschedulable"].as_bool() == Some(true) {
                status.push_str(",SchedulingDisabled");
            }
            let labels = obj["metadata"]["labels"].as_object().cloned().unwrap_or_default();
            let mut roles: Vec<String> =
                labels.keys().filter_map(|k| k.strip_prefix("node-role.kubernetes.io/").map(str::to_string)).collect();
            roles.sort();
            let addr = |t: &str| {
                obj["status"]["addresses"]
                    .as_array()
                    .and_then(|a| a.iter().find(|x| x["type"] == t))
                    .map(|x| s(&x["address"]))
                    .unwrap_or_else(|| "<none>".into())
            };
            let info = &obj["status"]["nodeInfo"];
            (
                vec![
                    col("Name", "string", 0, "Name must be unique within a namespace."),
                    col("Status", "string", 0, "The status of the node"),
                    col("Roles", "string", 0, "The roles of the node"),
                    col(
                        "Age",
                        "string",
                        0,
                        "CreationTimestamp is a timestamp representing the server time when this object was created.",
                    ),
                    col("Version", "string", 0, "Kubelet Version reported by the node."),
                    col("Internal-IP", "string", 1, "List of addresses reachable to the node."),
                    col("External-IP", "string", 1, "List of addresses reachable to the node."),
                    col(
                        "OS-Image",
                        "string",
                        1,
                        "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).",
                    ),
                    col(
                        "Kernel-Version",
                        "string",
                        1,
                        "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).",
                    ),
                    col(
                        "Container-Runtime",
                        "string",
                        1,
                        "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).",
                    ),
                ],
                vec![
                    json!(name),
                    json!(status),
                    json!(or_none(roles.join(","))),
                    json!(age),
                    json!(s(&info["kubeletVersion"])),
                    json!(addr("InternalIP")),
                    json!(addr("ExternalIP")),
                    json!(s(&info["osImage"])),
                    json!(s(&info["kernelVersion"])),
                    json!(s(&info["containerRuntimeVersion"])),
                ],
            )
        }
        "pods" => {
            let (ready, status, restarts) = pod_summary(obj);
            (
                vec![
                    col("Name", "string", 0, "Name must be unique within a namespace."),
                    col("Ready", "string", 0, "The aggregate readiness state of this pod for accepting traffic."),
                    col("Status", "string", 0, "The aggregate status of the containers in this pod."),
                    col(
                        "Restarts",
                        "string",
                        0,
                        "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
                    ),
                    col(
                        "Age",
                        "string",
                        0,
                        "CreationTimestamp is a timestamp representing the server time when this object was created.",
                    ),
                    col(
                        "IP",
                        "string",
                        1,
                        "IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.",
                    ),
                    col("Node", "string", 1, "NodeName is a request to schedule this pod onto a specific node."),
                    col(
                        "Nominated Node",
                        "string",
                        1,
                        "nominatedNodeName is set only when this pod preempts other pods on the node.",
                    ),
                    col(
                        "Readiness Gates",
                        "string",
                        1,
                        "If specified, all readiness gates will be evaluated for pod readiness.",
                    ),
                ],
                vec![
                    json!(name),
                    json!(ready),
                    json!(status),
                    json!(restarts),
                    json!(age),
                    json!(or_none(s(&obj["status"]["podIP"]))),
                    json!(or_none(s(&obj["spec"]["nodeName"]))),
                    json!("<none>"),
                    json!("<none>"),
                ],
            )
        }
        "leases" => (
            vec![
                col("Name", "string", 0, "Name must be unique within a namespace."),
                col("Holder", "string", 0, "holderIdentity contains the identity of the holder of a current lease."),
                col(
                    "Age",
                    "string",
                    0,
                    "CreationTimestamp is a timestamp representing the server time when this object was created.",
                ),
            ],
            vec![json!(name), json!(s(&obj["spec"]["holderIdentity"])), json!(age)],
        ),
        "flowschemas" => (
            vec![
                col("Name", "string", 0, "Name must be unique within a namespace."),
                col("PriorityLevel", "string", 0, "The name of the priority level."),
                col("MatchingPrecedence", "string", 0, "Matching precedence."),
                col("DistinguisherMethod", "string", 0, "The distinguisher method."),
                col(
                    "Age",
                    "string",
                    0,
                    "CreationTimestamp is a timestamp representing the server time when this object was created.",
                ),
                col("MissingPL", "string", 0, "Whether the priority level is missing."),
            ],
            vec![
                json!(name),
                json!(s(&obj["spec"]["priorityLevelConfiguration"]["name"])),
                json!(obj["spec"]["matchingPrecedence"].as_i64().unwrap_or(0).to_string()),
                json!(or_none(s(&obj["spec"]["distinguisherMethod"]["type"]))),
                json!(age),
                json!(
                    obj["status"]["conditions"]
                        .as_array()
                        .and_then(|c| c.iter().find(|x| x["type"] == "Dangling"))
                        .map(|x| s(&x["status"]))
                        .unwrap_or_else(|| "?".into())
                ),
            ],
        ),
        "prioritylevelconfigurations" => {
            let limited = &obj["spec"]["limited"];
            let queuing = &limited["limitResponse"]["queuing"];
            let opt = |v: &Value| {
                if v.is_null() { "<none>".to_string() } else { s(v) }
            };
            (
                vec![
                    col("Name", "string", 0, "Name must be unique within a namespace."),
                    col("Type", "string", 0, "The type of the priority level."),
                    col("NominalConcurrencyShares", "string", 0, "Nominal concurrency shares."),
                    col("Queues", "string", 0, "Number of queues."),
                    col("HandSize", "string", 0, "Hand size."),
                    col("QueueLengthLimit", "string", 0, "Queue length limit."),
                    col(
                        "Age",
                        "string",
                        0,
                        "CreationTimestamp is a timestamp representing the server time when this object was created.",
                    ),
                ],
                vec![
                    json!(name),
                    json!(s(&obj["spec"]["type"])),
                    json!(opt(&limited["nominalConcurrencyShares"])),
                    json!(opt(&queuing["queues"])),
                    json!(opt(&queuing["handSize"])),
                    json!(opt(&queuing["queueLengthLimit"])),
                    json!(age),
                ],
            )
        }
        "validatingwebhookconfigurations" | "mutatingwebhookconfigurations" => (
            vec![
                col("Name", "string", 0, "Name must be unique within a namespace."),
                col(
                    "Webhooks",
                    "integer",
                    0,
                    "Webhooks indicates the number of webhooks registered in this configuration.",
                ),
                col(
                    "Age",
                    "string",
                    0,
                    "CreationTimestamp is a timestamp representing the server time when this object was created.",
                ),
            ],
            vec![json!(name), json!(obj["webhooks"].as_array().map(|w| w.len()).unwrap_or(0)), json!(age)],
        ),
        "namespaces" => (
            vec![
                col("Name", "string", 0, "Name must be unique within a namespace."),
                col("Status", "string", 0, "The status of the namespace"),
                col(
                    "Age",
                    "string",
                    0,
                    "CreationTimestamp is a timestamp representing the server time when this object was created.",
                ),
            ],
            vec![json!(name), json!(s(&obj["status"]["phase"])), json!(age)],
        ),
        "apiservices" => {
            let available = obj["status"]["conditions"]
                .as_array()
                .and_then(|c| c.iter().find(|x| x["type"] == "Available"))
                .map(|c| {
                    if c["status"] == "True" {
                        "True".to_string()
                    } else {
                        format!("{} ({})", s(&c["status"]), s(&c["reason"]))
                    }
                })
                .unwrap_or_else(|| "Unknown".into());
            let service = if obj["spec"]["service"].is_null() {
                "Local".to_string()
            } else {
                format!("{}/{}", s(&obj["spec"]["service"]["namespace"]), s(&obj["spec"]["service"]["name"]))
            };
            (
                vec![
                    col("Name", "string", 0, "Name must be unique within a namespace."),
                    col("Service", "string", 0, "The reference to the service that hosts this API endpoint."),
                    col("Available", "string", 0, "Whether this service is available."),
                    col(
                        "Age",
                        "string",
                        0,
                        "CreationTimestamp is a timestamp representing the server time when this object was created.",
                    ),
                ],
                vec![json!(name), json!(service), json!(available), json!(age)],
            )
        }
        "services" => {
            let ports: Vec<String> = obj["spec"]["ports"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .map(|p| {
                            let node_port = p["nodePort"].as_i64().map(|n| format!(":{n}")).unwrap_or_default();
                            format!("{}{}/{}", p["port"], node_port, s(&p["protocol"]))
                        })
                        .collect()
                })
                .unwrap_or_default();
            (
                vec![
                    col("Name", "string", 0, "Name must be unique within a namespace."),
                    col("Type", "string", 0, "type determines how the Service is exposed."),
                    col("Cluster-IP", "string", 0, "clusterIP is the IP address of the service."),
                    col(
                        "External-IP",
                        "string",
                        0,
                        "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.",
                    ),
                    col("Port(s)", "string", 0, "The list of ports that are exposed by this service."),
                    col(
                        "Age",
                        "string",
                        0,
                        "CreationTimestamp is a timestamp representing the server time when this object was created.",
                    ),
                    col(
                        "Selector",
                        "string",
                        1,
                        "Route service traffic to pods with label keys and values matching this selector.",
                    ),
                ],
                vec![
                    json!(name),
                    json!(s(&obj["spec"]["type"])),
                    json!(or_none(s(&obj["spec"]["clusterIP"]))),
                    json!("<none>"),
                    json!(or_none(ports.join(","))),
                    json!(age),
                    json!(or_none(
                        obj["spec"]["selector"]
                            .as_object()
                            .map(|m| m.iter().map(|(k, v)| format!("{k}={}", s(v))).collect::<Vec<_>>().join(","))
                            .unwrap_or_default()
                    )),
                ],
            )
        }
        "events" => (
            vec![
                col("Last Seen", "string", 0, "Time of the last occurrence."),
                col("Type", "string", 0, "Type of this event (Normal, Warning)."),
                col("Reason", "string", 0, "This should be a short, machine understandable string."),
                col("Object", "string", 0, "The object that this event is about."),
                col("Message", "string", 0, "A human-readable description of the status of this operation."),
            ],
            vec![
                json!(
                    obj["lastTimestamp"]
                        .as_str()
                        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                        .map(|t| cpkit::duration::age(t, jiff::Timestamp::now()))
                        .unwrap_or_else(|| age.clone())
                ),
                json!(s(&obj["type"])),
                json!(s(&obj["reason"])),
                json!(format!(
                    "{}/{}",
                    s(&obj["involvedObject"]["kind"]).to_lowercase(),
                    s(&obj["involvedObject"]["name"])
                )),
                json!(s(&obj["message"])),
            ],
        ),
        "configmaps" => (
            vec![
                col("Name", "string", 0, "Name must be unique within a namespace."),
                col("Data", "string", 0, "Number of data entries."),
                col(
                    "Age",
                    "string",
                    0,
                    "CreationTimestamp is a timestamp representing the server time when this object was created.",
                ),
            ],
            vec![json!(name), json!(obj["data"].as_object().map(|d| d.len()).unwrap_or(0).to_string()), json!(age)],
        ),
        _ => (
            vec![
                col("Name", "string", 0, "Name must be unique within a namespace."),
                col(
                    "Age",
                    "string",
                    0,
                    "CreationTimestamp is a timestamp representing the server time when this object was created.",
                ),
            ],
            vec![json!(name), json!(age)],
        ),
    }
}

/// READY, STATUS and RESTARTS of a pod, computed like kubectl's printPod.
pub fn pod_summary(pod: &Value) -> (String, String, String) {
    let containers = pod["spec"]["containers"].as_array().map(|c| c.len()).unwrap_or(0);
    let statuses = pod["status"]["containerStatuses"].as_array().cloned().unwrap_or_default();
    let mut ready = 0;
    let mut restarts = 0;
    let mut reason = s(&pod["status"]["reason"]);
    if reason.is_empty() {
        reason = s(&pod["status"]["phase"]);
    }
    let mut last_restart: Option<jiff::Timestamp> = None;
    for st in statuses.iter().rev() {
        restarts += st["restartCount"].as_i64().unwrap_or(0);
        if let Some(t) =
            st["lastState"]["terminated"]["finishedAt"].as_str().and_then(|t| t.parse::<jiff::Timestamp>().ok())
            && last_restart.is_none_or(|l| t > l)
        {
            last_restart = Some(t);
        }
        let waiting = s(&st["state"]["waiting"]["reason"]);
        let terminated = s(&st["state"]["terminated"]["reason"]);
        if !waiting.is_empty() {
            reason = waiting;
        } else if !terminated.is_empty() {
            reason = terminated;
        } else if st["ready"].as_bool() == Some(true) && !st["state"]["running"].is_null() {
            ready += 1;
        }
    }
    if !pod["metadata"]["deletionTimestamp"].is_null() {
        reason = "Terminating".into();
    }
    let restarts_text = match last_restart {
        Some(t) if restarts > 0 => format!("{restarts} ({} ago)", cpkit::duration::age(t, jiff::Timestamp::now())),
        _ => restarts.to_string(),
    };
    (format!("{ready}/{containers}"), reason, restarts_text)
}

/// A Table for a list of objects (rows carry PartialObjectMetadata, like the default
/// `includeObject=Metadata`).
pub fn table(rt: &ResourceType, items: &[Value], resource_version: &str, continue_token: Option<&str>) -> Value {
    let mut columns = Vec::new();
    let mut rows = Vec::new();
    for obj in items {
        let (cols, cells) = columns_and_cells(rt, obj);
        if columns.is_empty() {
            columns = cols;
        }
        rows.push(json!({
            "cells": cells,
            "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"].clone()}
        }));
    }
    if columns.is_empty() {
        columns = columns_and_cells(rt, &json!({"metadata": {}})).0;
    }
    let mut metadata = json!({"resourceVersion": resource_version});
    if let Some(c) = continue_token {
        metadata["continue"] = json!(c);
    }
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata, "columnDefinitions": columns, "rows": rows})
}

/// True when the Accept header asks for a Table.
pub fn wants_table(accept: &str) -> bool {
    accept.contains("as=Table")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_status_like_kubectl() {
        let pod = json!({
            "spec": {"containers": [{"name": "c"}]},
            "status": {"phase": "Running", "containerStatuses": [{
                "ready": false, "restartCount": 7,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                "lastState": {"terminated": {"reason": "OOMKilled", "finishedAt": "2020-01-01T00:00:00Z"}}
            }]}
        });
        let (ready, status, restarts) = pod_summary(&pod);
        assert_eq!(ready, "0/1");
        assert_eq!(status, "CrashLoopBackOff");
        assert!(restarts.starts_with("7 ("), "{restarts}");
    }
}
