//! `kubectl cphealth rbac`: the minimal read-only ClusterRole that enables every check, and the
//! optional (not read-only) Role for reading etcd through exec.

/// The read-only rules: (apiGroups, resources, verbs) and non-resource URLs.
pub const RESOURCE_RULES: &[(&[&str], &[&str], &[&str])] = &[
    (&[""], &["nodes", "namespaces", "pods", "services", "events"], &["get", "list"]),
    (&[""], &["pods/log"], &["get"]),
    (&["coordination.k8s.io"], &["leases"], &["get", "list"]),
    (&["discovery.k8s.io"], &["endpointslices"], &["get", "list"]),
    (&["apiregistration.k8s.io"], &["apiservices"], &["get", "list"]),
    (
        &["admissionregistration.k8s.io"],
        &[
            "validatingwebhookconfigurations",
            "mutatingwebhookconfigurations",
            "validatingadmissionpolicies",
            "validatingadmissionpolicybindings",
            "mutatingadmissionpolicies",
            "mutatingadmissionpolicybindings",
        ],
        &["get", "list"],
    ),
    (&["policy"], &["poddisruptionbudgets"], &["get", "list"]),
    (&["flowcontrol.apiserver.k8s.io"], &["flowschemas", "prioritylevelconfigurations"], &["get", "list"]),
];

pub const NON_RESOURCE_URLS: &[&str] = &[
    "/livez",
    "/livez/*",
    "/readyz",
    "/readyz/*",
    "/healthz",
    "/version",
    "/metrics",
    "/debug/api_priority_and_fairness/*",
];

fn list(items: &[&str]) -> String {
    format!("[{}]", items.iter().map(|i| format!("\"{i}\"")).collect::<Vec<_>>().join(", "))
}

/// The manifests, with the etcd pods' names when known (exec can be limited to them).
pub fn manifests(subject: Option<(&str, &str)>, etcd_pods: &[String]) -> String {
    let mut out = String::new();
    out.push_str("# Read-only access for every check of `kubectl cphealth` (and `bundle`), `kubectl apftop` and\n# `kubectl webhookguard scan`. No Secrets. (Verifying webhook backends' serving certificates\n# also needs create on pods/portforward in their namespaces, not granted here: without it that\n# part is said to be skipped.)\n");
    out.push_str("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: cpkit-cphealth-reader\nrules:\n");
    out.push_str(&format!("- nonResourceURLs: {}\n  verbs: [\"get\"]\n", list(NON_RESOURCE_URLS)));
    for (groups, resources, verbs) in RESOURCE_RULES {
        out.push_str(&format!(
            "- apiGroups: {}\n  resources: {}\n  verbs: {}\n",
            list(groups),
            list(resources),
            list(verbs)
        ));
    }
    let (kind, name) = subject.unwrap_or(("Group", "<your-group>"));
    out.push_str(&format!(
        "---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: cpkit-cphealth-reader\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: ClusterRole\n  name: cpkit-cphealth-reader\nsubjects:\n- apiGroup: rbac.authorization.k8s.io\n  kind: {kind}\n  name: {name}\n"
    ));
    // A WebSocket exec is a GET, authorized as `get`, and since 1.35 also as `create`
    // (AuthorizePodWebsocketUpgradeCreatePermission, kubernetes PR #134577, KEP-4006).
    out.push_str("---\n# Optional, NOT read-only: exec into the etcd pods lets the etcd check run etcdctl with the\n# pods' own certificates (members, quorum, alarms, size), and a port-forward to their client and\n# metrics ports lets it read each member's serving certificate and the resources check each\n# member's file descriptors and memory. Without it, the\n# etcd check reads etcd's size from the API server's metrics, or use --etcd-endpoints.\n");
    out.push_str("apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: cpkit-cphealth-etcd-exec\n  namespace: kube-system\nrules:\n- apiGroups: [\"\"]\n  resources: [\"pods/exec\", \"pods/portforward\"]\n  verbs: [\"get\", \"create\"]\n");
    if !etcd_pods.is_empty() {
        let names: Vec<&str> = etcd_pods.iter().map(String::as_str).collect();
        out.push_str(&format!("  resourceNames: {}\n", list(&names)));
    }
    out.push_str(&format!(
        "---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: cpkit-cphealth-etcd-exec\n  namespace: kube-system\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: Role\n  name: cpkit-cphealth-etcd-exec\nsubjects:\n- apiGroup: rbac.authorization.k8s.io\n  kind: {kind}\n  name: {name}\n"
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_are_valid_yaml_without_secrets() {
        let text = manifests(Some(("User", "oncall")), &["etcd-cp-1".into()]);
        let docs = cpkit::yaml::documents("rbac", &text).unwrap();
        assert_eq!(docs.len(), 4);
        assert_eq!(docs[0]["kind"], "ClusterRole");
        let rules = docs[0]["rules"].as_array().unwrap();
        assert!(
            rules.iter().all(|r| { !r["resources"].as_array().is_some_and(|rs| rs.iter().any(|x| x == "secrets")) })
        );
        assert!(
            rules.iter().all(|r| r["verbs"].as_array().unwrap().iter().all(|v| v == "get" || v == "list")),
            "read-only"
        );
        assert_eq!(docs[1]["subjects"][0]["name"], "oncall");
        assert_eq!(docs[2]["rules"][0]["resourceNames"][0], "etcd-cp-1");
    }
}
