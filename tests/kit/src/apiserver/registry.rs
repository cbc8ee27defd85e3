//! The resource types the simulated API server serves, as discovery describes them.

/// One resource type (`pods`, `leases.coordination.k8s.io`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceType {
    pub group: &'static str,
    /// Served versions, preferred first.
    pub versions: &'static [&'static str],
    pub resource: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    pub subresources: &'static [&'static str],
    pub verbs: &'static [&'static str],
}

const RW: &[&str] = &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

macro_rules! rt {
    ($group:expr, $versions:expr, $resource:expr, $singular:expr, $kind:expr, $namespaced:expr, $short:expr, $cats:expr, $subs:expr, $verbs:expr) => {
        ResourceType {
            group: $group,
            versions: $versions,
            resource: $resource,
            singular: $singular,
            kind: $kind,
            namespaced: $namespaced,
            short_names: $short,
            categories: $cats,
            subresources: $subs,
            verbs: $verbs,
        }
    };
}

/// Every resource type served.
pub const RESOURCES: &[ResourceType] = &[
    rt!(
        "",
        &["v1"],
        "namespaces",
        "namespace",
        "Namespace",
        false,
        &["ns"],
        &[],
        &["status"],
        &["create", "delete", "get", "list", "patch", "update", "watch"]
    ),
    rt!("", &["v1"], "nodes", "node", "Node", false, &["no"], &[], &["status", "proxy"], RW),
    rt!(
        "",
        &["v1"],
        "pods",
        "pod",
        "Pod",
        true,
        &["po"],
        &["all"],
        &["exec", "portforward", "log", "status", "attach"],
        RW
    ),
    rt!("", &["v1"], "services", "service", "Service", true, &["svc"], &["all"], &["status", "proxy"], RW),
    rt!("", &["v1"], "endpoints", "endpoints", "Endpoints", true, &["ep"], &[], &[], RW),
    rt!("", &["v1"], "events", "event", "Event", true, &["ev"], &[], &[], RW),
    rt!("", &["v1"], "configmaps", "configmap", "ConfigMap", true, &["cm"], &[], &[], RW),
    rt!("", &["v1"], "secrets", "secret", "Secret", true, &[], &[], &[], RW),
    rt!("", &["v1"], "serviceaccounts", "serviceaccount", "ServiceAccount", true, &["sa"], &[], &["token"], RW),
    rt!(
        "apps",
        &["v1"],
        "deployments",
        "deployment",
        "Deployment",
        true,
        &["deploy"],
        &["all"],
        &["scale", "status"],
        RW
    ),
    rt!("apps", &["v1"], "daemonsets", "daemonset", "DaemonSet", true, &["ds"], &["all"], &["status"], RW),
    rt!("apps", &["v1"], "replicasets", "replicaset", "ReplicaSet", true, &["rs"], &["all"], &["scale", "status"], RW),
    rt!(
        "apps",
        &["v1"],
        "statefulsets",
        "statefulset",
        "StatefulSet",
        true,
        &["sts"],
        &["all"],
        &["scale", "status"],
        RW
    ),
    rt!("coordination.k8s.io", &["v1"], "leases", "lease", "Lease", true, &[], &[], &[], RW),
    rt!("discovery.k8s.io", &["v1"], "endpointslices", "endpointslice", "EndpointSlice", true, &[], &[], &[], RW),
    rt!(
        "policy",
        &["v1"],
        "poddisruptionbudgets",
        "poddisruptionbudget",
        "PodDisruptionBudget",
        true,
        &["pdb"],
        &[],
        &["status"],
        RW
    ),
    rt!(
        "admissionregistration.k8s.io",
        &["v1"],
        "validatingwebhookconfigurations",
        "validatingwebhookconfiguration",
        "ValidatingWebhookConfiguration",
        false,
        &[],
        &["api-extensions"],
        &[],
        RW
    ),
    rt!(
        "admissionregistration.k8s.io",
        &["v1"],
        "validatingadmissionpolicies",
        "validatingadmissionpolicy",
        "ValidatingAdmissionPolicy",
        false,
        &[],
        &["api-extensions"],
        &["status"],
        RW
    ),
    rt!(
        "admissionregistration.k8s.io",
        &["v1"],
        "validatingadmissionpolicybindings",
        "validatingadmissionpolicybinding",
        "ValidatingAdmissionPolicyBinding",
        false,
        &[],
        &["api-extensions"],
        &[],
        RW
    ),
    rt!(
        "admissionregistration.k8s.io",
        &["v1"],
        "mutatingadmissionpolicies",
        "mutatingadmissionpolicy",
        "MutatingAdmissionPolicy",
        false,
        &[],
        &["api-extensions"],
        &[],
        RW
    ),
    rt!(
        "admissionregistration.k8s.io",
        &["v1"],
        "mutatingadmissionpolicybindings",
        "mutatingadmissionpolicybinding",
        "MutatingAdmissionPolicyBinding",
        false,
        &[],
        &["api-extensions"],
        &[],
        RW
    ),
    rt!(
        "admissionregistration.k8s.io",
        &["v1"],
        "mutatingwebhookconfigurations",
        "mutatingwebhookconfiguration",
        "MutatingWebhookConfiguration",
        false,
        &[],
        &["api-extensions"],
        &[],
        RW
    ),
    rt!(
        "flowcontrol.apiserver.k8s.io",
        &["v1", "v1beta3"],
        "flowschemas",
        "flowschema",
        "FlowSchema",
        false,
        &[],
        &[],
        &["status"],
        RW
    ),
    rt!(
        "flowcontrol.apiserver.k8s.io",
        &["v1", "v1beta3"],
        "prioritylevelconfigurations",
        "prioritylevelconfiguration",
        "PriorityLevelConfiguration",
        false,
        &[],
        &[],
        &["status"],
        RW
    ),
    rt!(
        "apiregistration.k8s.io",
        &["v1"],
        "apiservices",
        "apiservice",
        "APIService",
        false,
        &[],
        &["api-extensions"],
        &["status"],
        RW
    ),
    rt!("rbac.authorization.k8s.io", &["v1"], "clusterroles", "clusterrole", "ClusterRole", false, &[], &[], &[], RW),
    rt!(
        "rbac.authorization.k8s.io",
        &["v1"],
        "clusterrolebindings",
        "clusterrolebinding",
        "ClusterRoleBinding",
        false,
        &[],
        &[],
        &[],
        RW
    ),
    rt!(
        "authorization.k8s.io",
        &["v1"],
        "selfsubjectaccessreviews",
        "selfsubjectaccessreview",
        "SelfSubjectAccessReview",
        false,
        &[],
        &[],
        &[],
        &["create"]
    ),
];

/// Finds a type by group and plural resource name.
pub fn find(group: &str, resource: &str) -> Option<&'static ResourceType> {
    RESOURCES.iter().find(|r| r.group == group && r.resource == resource)
}

/// The resource type of an `apiVersion` and kind.
pub fn find_kind(api_version: &str, kind: &str) -> Option<&'static ResourceType> {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    RESOURCES.iter().find(|r| r.group == group && r.kind == kind && r.versions.contains(&version))
}

/// The `apiVersion` string of a group/version.
pub fn api_version(group: &str, version: &str) -> String {
    if group.is_empty() { version.to_string() } else { format!("{group}/{version}") }
}

/// Which flowcontrol.apiserver.k8s.io versions a server serves (v1 since 1.29, v1beta3 from
/// 1.26 to 1.31).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flowcontrol {
    pub v1: bool,
    pub v1beta3: bool,
}

impl Flowcontrol {
    pub fn for_minor(minor: u32) -> Flowcontrol {
        Flowcontrol { v1: minor >= 29, v1beta3: (26..=31).contains(&minor) }
    }

    /// Is `version` of `group` served (always, for other groups)?
    pub fn serves(self, group: &str, version: &str) -> bool {
        group != "flowcontrol.apiserver.k8s.io"
            || match version {
                "v1" => self.v1,
                "v1beta3" => self.v1beta3,
                _ => false,
            }
    }
}

/// Groups with their versions, in discovery order.
pub fn groups(flowcontrol: Flowcontrol) -> Vec<(&'static str, Vec<&'static str>)> {
    let mut out: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for r in RESOURCES.iter().filter(|r| !r.group.is_empty()) {
        let versions: Vec<&'static str> =
            r.versions.iter().copied().filter(|v| flowcontrol.serves(r.group, v)).collect();
        match out.iter_mut().find(|(g, _)| *g == r.group) {
            Some((_, vs)) => {
                for v in versions {
                    if !vs.contains(&v) {
                        vs.push(v);
                    }
                }
            }
            None => out.push((r.group, versions)),
        }
    }
    out
}
