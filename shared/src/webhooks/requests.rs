//! The requests a cluster makes to heal itself, as admission sees them: the AdmissionRequest
//! (`k8s.io/api/admission/v1/types.go`) and the object the API server hands to match conditions
//! and selectors. Each target of the analysis has the real writers of its objects — the kubelet
//! creating a mirror pod, kube-controller-manager renewing its lease — with the identities and
//! labels kubeadm clusters give them, so a condition on the user or a label is evaluated, not
//! guessed.

use serde_json::{Value, json};

/// A user as the authenticator reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    pub username: &'static str,
    pub groups: &'static [&'static str],
}

pub const KUBELET: Identity =
    Identity { username: "system:node:cp-1", groups: &["system:nodes", "system:authenticated"] };
pub const CONTROLLER_MANAGER: Identity =
    Identity { username: "system:kube-controller-manager", groups: &["system:authenticated"] };
pub const SCHEDULER: Identity = Identity { username: "system:kube-scheduler", groups: &["system:authenticated"] };
/// kubeadm's admin.conf since 1.29 (`kubeadm:cluster-admins`, bound to cluster-admin).
pub const CLUSTER_ADMIN: Identity =
    Identity { username: "kubernetes-admin", groups: &["kubeadm:cluster-admins", "system:authenticated"] };
const SERVICE_ACCOUNT_GROUPS: &[&str] =
    &["system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"];
/// kube-controller-manager with `--use-service-account-credentials` (kubeadm's default) acts as
/// one service account per controller.
pub const REPLICASET_CONTROLLER: Identity =
    Identity { username: "system:serviceaccount:kube-system:replicaset-controller", groups: SERVICE_ACCOUNT_GROUPS };
pub const DAEMONSET_CONTROLLER: Identity =
    Identity { username: "system:serviceaccount:kube-system:daemon-set-controller", groups: SERVICE_ACCOUNT_GROUPS };
pub const CLUSTERROLE_AGGREGATOR: Identity = Identity {
    username: "system:serviceaccount:kube-system:clusterrole-aggregation-controller",
    groups: SERVICE_ACCOUNT_GROUPS,
};
pub const METRICS_SERVER: Identity =
    Identity { username: "system:serviceaccount:kube-system:metrics-server", groups: SERVICE_ACCOUNT_GROUPS };

/// One write the cluster needs, by whom, on which object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealingRequest {
    /// For messages: "the kubelet creating the mirror pod kube-apiserver-cp-1".
    pub what: &'static str,
    pub operation: &'static str,
    pub name: &'static str,
    pub identity: Identity,
    pub labels: &'static [(&'static str, &'static str)],
}

pub const fn request(
    what: &'static str,
    operation: &'static str,
    name: &'static str,
    identity: Identity,
    labels: &'static [(&'static str, &'static str)],
) -> HealingRequest {
    HealingRequest { what, operation, name, identity, labels }
}

/// The resource a request writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resource<'a> {
    pub group: &'a str,
    pub version: &'a str,
    pub kind: &'a str,
    pub resource: &'a str,
    pub subresource: &'a str,
    pub namespace: Option<&'a str>,
}

/// What the API server evaluates selectors and conditions on.
#[derive(Debug, Clone, PartialEq)]
pub struct AdmissionInput {
    pub request: Value,
    pub object: Value,
    pub old_object: Value,
}

impl HealingRequest {
    /// The AdmissionRequest, object and oldObject (null on CREATE). Fields the API server omits
    /// when empty are omitted here too (a cluster-scoped request has no `namespace`), so a
    /// condition that reads them errors as it would there.
    pub fn admission(&self, target: &Resource) -> AdmissionInput {
        let api_version = if target.group.is_empty() {
            target.version.to_string()
        } else {
            format!("{}/{}", target.group, target.version)
        };
        let gvk = json!({"group": target.group, "version": target.version, "kind": target.kind});
        let gvr = json!({"group": target.group, "version": target.version, "resource": target.resource});
        let mut request = json!({
            "uid": "00000000-0000-0000-0000-000000000000",
            "kind": gvk, "requestKind": gvk,
            "resource": gvr, "requestResource": gvr,
            "name": self.name,
            "operation": self.operation,
            "userInfo": {"username": self.identity.username, "groups": self.identity.groups},
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1",
                        "kind": if self.operation == "CREATE" { "CreateOptions" } else { "UpdateOptions" }},
        });
        if !target.subresource.is_empty() {
            request["subResource"] = json!(target.subresource);
            request["requestSubResource"] = json!(target.subresource);
        }
        let mut metadata = json!({"name": self.name});
        if let Some(ns) = target.namespace {
            request["namespace"] = json!(ns);
            metadata["namespace"] = json!(ns);
        }
        if !self.labels.is_empty() {
            metadata["labels"] = self.labels.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
        }
        let object = json!({"apiVersion": api_version, "kind": target.kind, "metadata": metadata});
        let old_object = if self.operation == "CREATE" { Value::Null } else { object.clone() };
        AdmissionInput { request, object, old_object }
    }

    /// The object's labels, for objectSelector.
    pub fn label_map(&self) -> std::collections::BTreeMap<String, String> {
        self.labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }
}

/// Something the cluster needs in order to heal, and the requests that write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub object: Resource<'static>,
    pub label: &'static str,
    pub why: &'static str,
    pub critical: bool,
    pub requests: &'static [HealingRequest],
}

const fn object(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    resource: &'static str,
    subresource: &'static str,
    namespace: Option<&'static str>,
) -> Resource<'static> {
    Resource { group, version, kind, resource, subresource, namespace }
}

/// A kubeadm control-plane node's labels: the kubelet's own (kubernetes `pkg/kubelet/
/// kubelet_node_status.go`) and kubeadm's (`cmd/kubeadm/app/constants`).
const NODE_LABELS: &[(&str, &str)] = &[
    ("beta.kubernetes.io/arch", "amd64"),
    ("beta.kubernetes.io/os", "linux"),
    ("kubernetes.io/arch", "amd64"),
    ("kubernetes.io/hostname", "cp-1"),
    ("kubernetes.io/os", "linux"),
    ("node-role.kubernetes.io/control-plane", ""),
    ("node.kubernetes.io/exclude-from-external-load-balancers", ""),
];

/// The API server's bootstrap RBAC objects carry `kubernetes.io/bootstrapping: rbac-defaults`
/// (kubernetes `plugin/pkg/auth/authorizer/rbac/bootstrappolicy`).
const RBAC_REPAIR: &[HealingRequest] = &[request(
    "an administrator (kubeadm's admin.conf) repairing RBAC",
    "UPDATE",
    "cluster-admin",
    CLUSTER_ADMIN,
    &[("kubernetes.io/bootstrapping", "rbac-defaults")],
)];

/// Leader election on a legacy lock object (`configmapsleases`, `endpointsleases`).
const LOCK_RENEWAL: &[HealingRequest] = &[request(
    "kube-controller-manager renewing its leader lock",
    "UPDATE",
    "kube-controller-manager",
    CONTROLLER_MANAGER,
    &[],
)];

/// The objects whose writes must not depend on a webhook's backend.
pub const TARGETS: &[Target] = &[
    Target {
        object: object("", "v1", "Pod", "pods", "", Some("kube-system")),
        label: "pods in kube-system",
        why: "kube-system pods (CoreDNS, CNI, kube-proxy, control-plane mirror pods) cannot be created",
        critical: true,
        requests: &[
            request(
                "the kubelet creating the mirror pod kube-system/kube-apiserver-cp-1",
                "CREATE",
                "kube-apiserver-cp-1",
                KUBELET,
                &[("component", "kube-apiserver"), ("tier", "control-plane")],
            ),
            request(
                "the replicaset controller creating a CoreDNS pod",
                "CREATE",
                "coredns-7db6d8ff4d-x2x5k",
                REPLICASET_CONTROLLER,
                &[("k8s-app", "kube-dns"), ("pod-template-hash", "7db6d8ff4d")],
            ),
            request(
                "the daemonset controller creating a kube-proxy pod",
                "CREATE",
                "kube-proxy-8xk2p",
                DAEMONSET_CONTROLLER,
                &[
                    ("k8s-app", "kube-proxy"),
                    ("controller-revision-hash", "6d4b9b5b9c"),
                    ("pod-template-generation", "1"),
                ],
            ),
        ],
    },
    Target {
        object: object("coordination.k8s.io", "v1", "Lease", "leases", "", Some("kube-system")),
        label: "leases in kube-system",
        why: "the controller-manager and scheduler cannot renew their leader leases",
        critical: true,
        requests: &[
            request(
                "kube-controller-manager renewing its leader lease",
                "UPDATE",
                "kube-controller-manager",
                CONTROLLER_MANAGER,
                &[],
            ),
            request("kube-scheduler renewing its leader lease", "UPDATE", "kube-scheduler", SCHEDULER, &[]),
        ],
    },
    Target {
        object: object("coordination.k8s.io", "v1", "Lease", "leases", "", Some("kube-node-lease")),
        label: "leases in kube-node-lease",
        why: "kubelets cannot renew their node leases, so nodes turn NotReady",
        critical: true,
        requests: &[request("the kubelet renewing its node lease", "UPDATE", "cp-1", KUBELET, &[])],
    },
    Target {
        object: object("", "v1", "Node", "nodes", "", None),
        label: "nodes",
        why: "kubelets cannot register or update their Node objects",
        critical: true,
        requests: &[
            request("the kubelet registering its Node", "CREATE", "cp-1", KUBELET, NODE_LABELS),
            request("the kubelet updating its Node's labels and annotations", "UPDATE", "cp-1", KUBELET, NODE_LABELS),
        ],
    },
    Target {
        object: object("", "v1", "Node", "nodes", "status", None),
        label: "nodes/status",
        why: "kubelets cannot report node status",
        critical: true,
        requests: &[request("the kubelet updating its node status", "UPDATE", "cp-1", KUBELET, NODE_LABELS)],
    },
    Target {
        object: object("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", "", None),
        label: "RBAC (clusterroles)",
        why: "RBAC cannot be changed or repaired",
        critical: true,
        requests: &[
            request(
                "an administrator (kubeadm's admin.conf) repairing a ClusterRole",
                "UPDATE",
                "cluster-admin",
                CLUSTER_ADMIN,
                &[("kubernetes.io/bootstrapping", "rbac-defaults")],
            ),
            request(
                "the clusterrole aggregation controller updating the admin role",
                "UPDATE",
                "admin",
                CLUSTERROLE_AGGREGATOR,
                &[("kubernetes.io/bootstrapping", "rbac-defaults")],
            ),
        ],
    },
    Target {
        object: object("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", "", None),
        label: "RBAC (clusterrolebindings)",
        why: "RBAC cannot be changed or repaired",
        critical: true,
        requests: RBAC_REPAIR,
    },
    Target {
        object: object("rbac.authorization.k8s.io", "v1", "Role", "roles", "", Some("kube-system")),
        label: "RBAC (roles in kube-system)",
        why: "RBAC cannot be changed or repaired",
        critical: true,
        requests: RBAC_REPAIR,
    },
    Target {
        object: object("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", "", Some("kube-system")),
        label: "RBAC (rolebindings in kube-system)",
        why: "RBAC cannot be changed or repaired",
        critical: true,
        requests: RBAC_REPAIR,
    },
    Target {
        object: object(
            "certificates.k8s.io",
            "v1",
            "CertificateSigningRequest",
            "certificatesigningrequests",
            "",
            None,
        ),
        label: "CertificateSigningRequests",
        why: "kubelets cannot renew their client certificates",
        critical: true,
        requests: &[request("the kubelet renewing its client certificate", "CREATE", "csr-7hx2k", KUBELET, &[])],
    },
    Target {
        object: object("authentication.k8s.io", "v1", "TokenReview", "tokenreviews", "", None),
        label: "TokenReviews",
        why: "token authentication through the API fails",
        critical: true,
        requests: &[request("metrics-server reviewing a bearer token", "CREATE", "", METRICS_SERVER, &[])],
    },
    Target {
        object: object("authorization.k8s.io", "v1", "SubjectAccessReview", "subjectaccessreviews", "", None),
        label: "SubjectAccessReviews",
        why: "authorization checks through the API fail",
        critical: true,
        requests: &[request("metrics-server checking a caller's access", "CREATE", "", METRICS_SERVER, &[])],
    },
    // Lock objects of leader election before 1.24 (`endpointsleases`, `configmapsleases`),
    // still written by clusters that kept the old lock type.
    Target {
        object: object("", "v1", "ConfigMap", "configmaps", "", Some("kube-system")),
        label: "configmaps in kube-system",
        why: "leader election with a configmap lock cannot renew",
        critical: false,
        requests: LOCK_RENEWAL,
    },
    Target {
        object: object("", "v1", "Endpoints", "endpoints", "", Some("kube-system")),
        label: "endpoints in kube-system",
        why: "leader election with an endpoints lock cannot renew",
        critical: false,
        requests: LOCK_RENEWAL,
    },
    Target {
        object: object("", "v1", "Namespace", "namespaces", "", None),
        label: "namespaces",
        why: "namespaces cannot be created or changed while it is down",
        critical: false,
        requests: &[request(
            "an administrator creating a namespace",
            "CREATE",
            "team-a",
            CLUSTER_ADMIN,
            &[("kubernetes.io/metadata.name", "team-a")],
        )],
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_look_like_the_api_servers() {
        let pods = Resource {
            group: "",
            version: "v1",
            kind: "Pod",
            resource: "pods",
            subresource: "",
            namespace: Some("kube-system"),
        };
        let mirror = request(
            "the kubelet creating a mirror pod",
            "CREATE",
            "kube-apiserver-cp-1",
            KUBELET,
            &[("component", "kube-apiserver")],
        );
        let input = mirror.admission(&pods);
        assert_eq!(input.request["namespace"], "kube-system");
        assert_eq!(input.request["userInfo"]["groups"][0], "system:nodes");
        assert_eq!(input.object["apiVersion"], "v1");
        assert_eq!(input.object["metadata"]["labels"]["component"], "kube-apiserver");
        assert!(input.old_object.is_null(), "CREATE has no oldObject");
        assert!(input.request.get("subResource").is_none());

        let status = Resource {
            group: "",
            version: "v1",
            kind: "Node",
            resource: "nodes",
            subresource: "status",
            namespace: None,
        };
        let update = request("the kubelet updating its node status", "UPDATE", "cp-1", KUBELET, &[]);
        let input = update.admission(&status);
        assert!(input.request.get("namespace").is_none(), "cluster-scoped requests have no namespace");
        assert_eq!(input.request["subResource"], "status");
        assert_eq!(input.old_object, input.object);
    }
}
