//! Reading webhook configurations and the facts their analysis needs from a cluster: namespace
//! labels, backend Services with their ready endpoints and nodes, PodDisruptionBudgets, and the
//! admission metrics. What cannot be read (missing permission) stays unknown, with a note.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::Resource;
use k8s_openapi::api::admissionregistration::v1::{MutatingWebhookConfiguration, ValidatingWebhookConfiguration};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Deserialize;
use serde_json::Value;

use super::analysis::{ClusterFacts, ServiceFacts, WebhookRuntime};
use super::model::{ClientConfig, WebhookConfig};
use crate::access::Access;
use crate::client::Cluster;
use crate::error::{ErrorKind, Result};
use crate::metrics::Scrape;
use crate::resources::Select;

/// The raw objects of both kinds, as the API returns them (for backups and patches).
pub async fn read_raw(cluster: &Cluster) -> Result<Vec<Value>> {
    let (validating, mutating) = tokio::join!(
        read_kind::<ValidatingWebhookConfiguration>(cluster),
        read_kind::<MutatingWebhookConfiguration>(cluster)
    );
    let mut out = validating?;
    out.extend(mutating?);
    Ok(out)
}

/// Every object of kind `K`, with the kind and apiVersion that list items do not carry.
async fn read_kind<K: Resource>(cluster: &Cluster) -> Result<Vec<Value>> {
    let items: Vec<Value> = cluster.list_as::<K, Value>(Select::all()).await?;
    Ok(items
        .into_iter()
        .map(|mut item| {
            item["kind"] = Value::String(K::KIND.into());
            item["apiVersion"] = Value::String(K::API_VERSION.into());
            item
        })
        .collect())
}

/// Both kinds, parsed.
pub async fn read_configs(cluster: &Cluster) -> Result<Vec<WebhookConfig>> {
    let raw = read_raw(cluster).await?;
    super::model::configs_from_documents(&raw, "cluster")
}

async fn service_facts(cluster: &Cluster, ns: &str, name: &str) -> Result<ServiceFacts> {
    let service_label = format!("kubernetes.io/service-name={name}");
    let (svc, slices, pdbs) = tokio::join!(
        cluster.get::<Service>(Some(ns), name),
        cluster.list::<EndpointSlice>(Select::namespace(ns).labels(&service_label)),
        cluster.list_as::<PodDisruptionBudget, Value>(Select::namespace(ns)),
    );
    let spec = match svc {
        Ok(s) => s.spec.unwrap_or_default(),
        Err(e) if e.kind == ErrorKind::NotFound => return Ok(ServiceFacts::default()),
        Err(e) => return Err(e),
    };
    let slices = slices?;
    let pdbs = pdbs.unwrap_or_default();
    let selector = spec.selector.unwrap_or_default();
    let mut facts = ServiceFacts {
        exists: true,
        cluster_ip: spec.cluster_ip,
        // targetPort defaults to the port (k8s.io/api core/v1 `ServicePort`).
        ports: (spec.ports.into_iter().flatten())
            .filter_map(|p| {
                let port = u16::try_from(p.port).ok()?;
                let target = match p.target_port {
                    Some(IntOrString::Int(n)) => n.to_string(),
                    Some(IntOrString::String(name)) => name,
                    None => port.to_string(),
                };
                Some((port, target))
            })
            .collect(),
        ..Default::default()
    };
    let mut seen = BTreeSet::new();
    for ep in slices.into_iter().flat_map(|slice| slice.endpoints) {
        if !seen.insert(ep.addresses.first().cloned().unwrap_or_default()) {
            continue;
        }
        if ep.conditions.and_then(|c| c.ready) == Some(false) {
            facts.not_ready_endpoints += 1;
        } else {
            facts.ready_endpoints += 1;
            facts.nodes.extend(ep.node_name);
        }
    }
    facts.has_pdb = !selector.is_empty()
        && pdbs.iter().any(|p| {
            super::model::Selector::deserialize(&p["spec"]["selector"]).unwrap_or_default().evaluate(&selector, true)
                == super::model::Tri::Yes
        });
    if !selector.is_empty() {
        // Unreadable (no permission) leaves the chain short, never the verdict wrong.
        let (workload, pods) = tokio::join!(workload_of(cluster, ns, &selector), pods_of(cluster, ns, &selector));
        facts.workload = workload;
        facts.pods = pods;
    }
    facts.selector = selector;
    Ok(facts)
}

/// The Deployment or StatefulSet in `ns` whose pod template carries every label of `selector`
/// (found even when it runs no pods).
async fn workload_of(
    cluster: &Cluster,
    ns: &str,
    selector: &BTreeMap<String, String>,
) -> Option<super::analysis::Workload> {
    let (deployments, statefulsets) = tokio::join!(
        cluster.list::<Deployment>(Select::namespace(ns)),
        cluster.list::<StatefulSet>(Select::namespace(ns))
    );
    // (kind, name, its pod template's labels, replicas, ready replicas)
    let deployments = deployments.into_iter().flatten().map(|d| {
        let (spec, status) = (d.spec.unwrap_or_default(), d.status.unwrap_or_default());
        ("deployment", d.metadata.name, spec.template.metadata, spec.replicas, status.ready_replicas)
    });
    let statefulsets = statefulsets.into_iter().flatten().map(|s| {
        let (spec, status) = (s.spec.unwrap_or_default(), s.status.unwrap_or_default());
        ("statefulset", s.metadata.name, spec.template.metadata, spec.replicas, status.ready_replicas)
    });
    deployments.chain(statefulsets).find_map(|(kind, name, template, replicas, ready)| {
        let labels = template.and_then(|m| m.labels).unwrap_or_default();
        selector.iter().all(|(k, v)| labels.get(k) == Some(v)).then(|| super::analysis::Workload {
            kind: kind.into(),
            name: name.unwrap_or_default(),
            replicas: replicas.unwrap_or(1).into(),
            ready_replicas: ready.unwrap_or(0).into(),
        })
    })
}

/// The pods `selector` matches, with what is wrong with them.
async fn pods_of(cluster: &Cluster, ns: &str, selector: &BTreeMap<String, String>) -> Vec<super::analysis::BackendPod> {
    let query = selector.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
    let Ok(pods) = cluster.list::<Pod>(Select::namespace(ns).labels(&query)).await else {
        return Vec::new();
    };
    pods.into_iter()
        .map(|p| {
            let (spec, status) = (p.spec.unwrap_or_default(), p.status.unwrap_or_default());
            let statuses = status.container_statuses.unwrap_or_default();
            let problem = statuses.iter().find_map(|c| {
                let waiting = c.state.as_ref().and_then(|s| s.waiting.as_ref()).and_then(|w| w.reason.clone());
                waiting.or_else(|| c.last_state.as_ref()?.terminated.as_ref()?.reason.clone())
            });
            super::analysis::BackendPod {
                name: p.metadata.name.unwrap_or_default(),
                ready: (status.conditions.into_iter().flatten()).any(|c| c.type_ == "Ready" && c.status == "True"),
                restarts: statuses.iter().map(|c| i64::from(c.restart_count)).sum(),
                node: spec.node_name,
                problem,
                named_ports: (spec.containers.into_iter().flat_map(|c| c.ports.unwrap_or_default()))
                    .filter_map(|port| Some((port.name?, u16::try_from(port.container_port).ok()?)))
                    .collect(),
            }
        })
        .collect()
}

/// Webhook latency and failures from two scrapes (or one: then only totals are known).
pub fn runtime_from_metrics(older: Option<&Scrape>, newer: &Scrape, seconds: f64) -> BTreeMap<String, WebhookRuntime> {
    let mut out: BTreeMap<String, WebhookRuntime> = BTreeMap::new();
    let per_second = |v: f64| if seconds > 0.0 { v / seconds } else { 0.0 };
    let latency = "apiserver_admission_webhook_admission_duration_seconds";
    let latencies = match older {
        Some(older) => newer.histogram_increase_by(older, latency, &["name"], &crate::metrics::any),
        None => newer.histograms_by(latency, &["name"], &crate::metrics::any),
    };
    for (k, h) in latencies {
        if h.count > 0.0 {
            out.entry(k.join("")).or_default().p99_seconds = h.quantile(0.99);
        }
    }
    if let Some(older) = older {
        for (k, v) in newer.increase_by(older, "apiserver_admission_webhook_rejection_count", &["name"], &|s| {
            s.label("error_type") == Some("calling_webhook_error")
        }) {
            out.entry(k.join("")).or_default().errors_per_second = per_second(v);
        }
        for (k, v) in
            newer.increase_by(older, "apiserver_admission_webhook_fail_open_count", &["name"], &crate::metrics::any)
        {
            out.entry(k.join("")).or_default().fail_open_per_second = per_second(v);
        }
    }
    out
}

/// Namespace labels and backend facts for `configs`. Returns the facts and notes on what could
/// not be read.
pub async fn read_facts(cluster: &Cluster, configs: &[WebhookConfig]) -> (ClusterFacts, Vec<String>) {
    let mut notes = Vec::new();
    let mut facts = ClusterFacts { now: Some(jiff::Timestamp::now()), ..Default::default() };
    let namespaces = cluster.list::<Namespace>(Select::all());
    let mut wanted: BTreeSet<(String, String)> = BTreeSet::new();
    for c in configs {
        for w in &c.webhooks {
            if let ClientConfig::Service { namespace, name, .. } = &w.client {
                wanted.insert((namespace.clone(), name.clone()));
            }
        }
    }
    let services = futures::future::join_all(
        wanted
            .iter()
            .map(|(ns, name)| async move { ((ns.clone(), name.clone()), service_facts(cluster, ns, name).await) }),
    );
    let (namespaces, services) = tokio::join!(namespaces, services);
    match namespaces {
        Ok(list) => {
            let labelled =
                list.into_iter().map(|n| (n.metadata.name.unwrap_or_default(), n.metadata.labels.unwrap_or_default()));
            facts.namespaces = Some(labelled.collect());
        }
        Err(e) => notes.push(format!("namespace labels unknown ({})", e.why)),
    }
    let mut map = BTreeMap::new();
    for (key, result) in services {
        match result {
            Ok(f) => {
                map.insert(key, f);
            }
            Err(e) => notes.push(format!("backend {}/{} unknown ({})", key.0, key.1, e.why)),
        }
    }
    let (tls, tls_notes) = super::backend_tls::probe_backends(cluster, configs, &map).await;
    facts.backend_tls = tls;
    notes.extend(tls_notes);
    facts.services = Some(map);
    (facts, notes)
}

/// Validating and MutatingAdmissionPolicies and their bindings (none of a kind the API does not
/// serve: Validating before 1.30, Mutating before 1.36 or with its feature gate off).
pub async fn read_policies(cluster: &Cluster) -> Result<super::policies::Policies> {
    let group = "admissionregistration.k8s.io";
    let read = |resource: &'static str, kind: &'static str| async move {
        let path = format!("/apis/{group}/v1/{resource}");
        match cluster.list_all::<Value>(&path, &Access::resource("list", group, resource, None)).await {
            Ok(items) => Ok(items
                .into_iter()
                .map(|mut item| {
                    item["kind"] = Value::String(kind.into());
                    item["apiVersion"] = Value::String(format!("{group}/v1"));
                    item
                })
                .collect::<Vec<_>>()),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    };
    let (policies, bindings, mutating, mutating_bindings) = tokio::join!(
        read("validatingadmissionpolicies", "ValidatingAdmissionPolicy"),
        read("validatingadmissionpolicybindings", "ValidatingAdmissionPolicyBinding"),
        read("mutatingadmissionpolicies", "MutatingAdmissionPolicy"),
        read("mutatingadmissionpolicybindings", "MutatingAdmissionPolicyBinding")
    );
    let mut docs = policies?;
    docs.extend(bindings?);
    docs.extend(mutating?);
    docs.extend(mutating_bindings?);
    super::policies::policies_from_documents(&docs, "cluster")
}

/// `k=v,k in (a,b),!k`: a label selector as a query parameter value.
fn selector_query(s: &super::model::Selector) -> String {
    let mut parts: Vec<String> = s.match_labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    for r in &s.match_expressions {
        parts.push(match r.operator.as_str() {
            "In" => format!("{} in ({})", r.key, r.values.join(",")),
            "NotIn" => format!("{} notin ({})", r.key, r.values.join(",")),
            "Exists" => r.key.clone(),
            _ => format!("!{}", r.key),
        });
    }
    let text = parts.join(",");
    crate::client::percent_encode(&text)
}

/// The namespaces whose params the healing requests read (a namespaced paramKind without
/// `paramRef.namespace` is read in the request's namespace).
fn target_namespaces() -> BTreeSet<&'static str> {
    super::requests::TARGETS.iter().filter_map(|t| t.object.namespace).collect()
}

/// Whether the paramKinds the bindings use are served, and whether their params exist where
/// the healing requests would read them. What cannot be read stays unknown, with a note.
pub async fn read_policy_facts(
    cluster: &Cluster,
    policies: &super::policies::Policies,
) -> (super::policy_analysis::PolicyFacts, Vec<String>) {
    use super::policy_analysis::{KindState, PolicyFacts, param_namespace};
    let mut facts = PolicyFacts::default();
    let mut notes = Vec::new();
    let uses: Vec<(&super::policies::PolicyBinding, &super::policies::ParamKind, &super::policies::ParamRef)> =
        policies
            .bindings
            .iter()
            .filter_map(|b| {
                let kind = policies.policy_of(b)?.param_kind.as_ref()?;
                Some((b, kind, b.param_ref.as_ref()?))
            })
            .collect();
    // Discovery, once per group version: which kinds are served, their resource and scope.
    let versions: BTreeSet<&str> = uses.iter().map(|(_, k, _)| k.api_version.as_str()).collect();
    let discovered = futures::future::join_all(versions.iter().map(|v| async move {
        let path = if *v == "v1" { "/api/v1".to_string() } else { format!("/apis/{v}") };
        (*v, cluster.get_json::<APIResourceList>(&path, &Access::non_resource("get", &path)).await)
    }))
    .await;
    let mut resources: BTreeMap<(String, String), String> = BTreeMap::new();
    for (version, answer) in discovered {
        let wanted = uses.iter().filter(|(_, k, _)| k.api_version == version).map(|(_, k, _)| k.kind.as_str());
        match answer {
            Ok(list) => {
                for kind in wanted.collect::<BTreeSet<_>>() {
                    let found = list.resources.iter().find(|r| r.kind == kind && !r.name.contains('/'));
                    let state = match found {
                        Some(r) => {
                            resources.insert((version.to_string(), kind.to_string()), r.name.clone());
                            KindState::Served { namespaced: r.namespaced }
                        }
                        None => KindState::NotServed,
                    };
                    facts.param_kinds.insert((version.to_string(), kind.to_string()), state);
                }
            }
            Err(e) if e.kind == ErrorKind::NotFound => {
                for kind in wanted {
                    facts.param_kinds.insert((version.to_string(), kind.to_string()), KindState::NotServed);
                }
            }
            Err(e) => notes.push(format!("paramKinds of {version} unknown ({})", e.why)),
        }
    }
    // The params, where the healing requests would read them.
    struct Lookup<'a> {
        binding: &'a str,
        api_version: &'a str,
        /// The namespace the analysis keys it by ("" when it does not depend on the request's).
        key_ns: String,
        group: &'a str,
        resource: &'a str,
        namespace: String,
        param_ref: &'a super::policies::ParamRef,
    }
    let mut lookups = Vec::new();
    for (binding, kind, param_ref) in &uses {
        if !param_ref.deny_when_missing {
            continue;
        }
        let Some(resource) = resources.get(&(kind.api_version.clone(), kind.kind.clone())) else { continue };
        let namespaced = facts.kind_is_namespaced(kind);
        let namespaces: Vec<&str> = if param_ref.namespace.is_some() || !namespaced {
            vec![""]
        } else {
            target_namespaces().into_iter().collect()
        };
        for key_ns in namespaces {
            lookups.push(Lookup {
                binding: &binding.name,
                api_version: &kind.api_version,
                key_ns: key_ns.to_string(),
                group: kind.group(),
                resource,
                namespace: param_namespace(param_ref, namespaced, key_ns).to_string(),
                param_ref,
            });
        }
    }
    let answers = futures::future::join_all(lookups.iter().map(|l| async move {
        let base = if l.api_version == "v1" { "/api/v1".to_string() } else { format!("/apis/{}", l.api_version) };
        let (resource, ns) = (l.resource, (!l.namespace.is_empty()).then_some(l.namespace.as_str()));
        let collection = match ns {
            Some(ns) => format!("{base}/namespaces/{ns}/{resource}"),
            None => format!("{base}/{resource}"),
        };
        match (&l.param_ref.name, &l.param_ref.selector) {
            (Some(name), _) => {
                let access = Access::resource("get", l.group, resource, ns);
                match cluster.get_json::<Value>(&format!("{collection}/{name}"), &access).await {
                    Ok(_) => Ok(true),
                    Err(e) if e.kind == ErrorKind::NotFound => Ok(false),
                    Err(e) => Err(e),
                }
            }
            (None, Some(selector)) => cluster
                .list_all::<Value>(
                    &format!("{collection}?labelSelector={}", selector_query(selector)),
                    &Access::resource("list", l.group, resource, ns),
                )
                .await
                .map(|items| !items.is_empty()),
            (None, None) => Ok(false),
        }
    }))
    .await;
    for (l, answer) in lookups.iter().zip(answers) {
        match answer {
            Ok(found) => {
                facts.params_found.insert((l.binding.to_string(), l.key_ns.clone()), found);
            }
            Err(e) => notes.push(format!("params of binding {} unknown ({})", l.binding, e.why)),
        }
    }
    (facts, notes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Selection;

    fn scrape(errors: f64, fail_open: f64, slow: f64) -> Scrape {
        let text = format!(
            "# TYPE apiserver_admission_webhook_rejection_count counter\n\
             apiserver_admission_webhook_rejection_count{{error_type=\"calling_webhook_error\",name=\"v.example.com\",operation=\"CREATE\",rejection_code=\"0\",type=\"validating\"}} {errors}\n\
             apiserver_admission_webhook_rejection_count{{error_type=\"no_error\",name=\"v.example.com\",operation=\"CREATE\",rejection_code=\"400\",type=\"validating\"}} 1000\n\
             # TYPE apiserver_admission_webhook_fail_open_count counter\n\
             apiserver_admission_webhook_fail_open_count{{name=\"m.example.com\",type=\"admit\"}} {fail_open}\n\
             # TYPE apiserver_admission_webhook_admission_duration_seconds histogram\n\
             apiserver_admission_webhook_admission_duration_seconds_bucket{{name=\"m.example.com\",operation=\"CREATE\",rejected=\"false\",type=\"admit\",le=\"0.1\"}} 100\n\
             apiserver_admission_webhook_admission_duration_seconds_bucket{{name=\"m.example.com\",operation=\"CREATE\",rejected=\"false\",type=\"admit\",le=\"2.5\"}} {}\n\
             apiserver_admission_webhook_admission_duration_seconds_bucket{{name=\"m.example.com\",operation=\"CREATE\",rejected=\"false\",type=\"admit\",le=\"+Inf\"}} {}\n\
             apiserver_admission_webhook_admission_duration_seconds_count{{name=\"m.example.com\",operation=\"CREATE\",rejected=\"false\",type=\"admit\"}} {}\n",
            100.0 + slow,
            100.0 + slow,
            100.0 + slow
        );
        Scrape::parse(text.as_bytes(), &Selection::all())
    }

    #[test]
    fn runtime_evidence_is_rates_between_scrapes() {
        let older = scrape(10.0, 0.0, 0.0);
        let newer = scrape(30.0, 4.0, 100.0);
        let r = runtime_from_metrics(Some(&older), &newer, 2.0);
        // Only calling_webhook_error counts as failed calls, not denials.
        assert_eq!(r["v.example.com"].errors_per_second, 10.0);
        assert_eq!(r["m.example.com"].fail_open_per_second, 2.0);
        // All 100 new observations fell between 0.1 and 2.5 s.
        let p99 = r["m.example.com"].p99_seconds.unwrap();
        assert!(p99 > 0.1 && p99 <= 2.5, "{p99}");
        // One scrape: totals only, no rates.
        let single = runtime_from_metrics(None, &newer, 0.0);
        assert!(!single.contains_key("v.example.com"));
        assert!(single["m.example.com"].p99_seconds.is_some());
    }
}
