//! Authentication (client certificates signed by the cluster CA, bearer tokens, anonymous) and
//! a small RBAC-like authorizer, with the API server's 401/403 texts.

use serde_json::json;

/// Who is making a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub groups: Vec<String>,
}

impl Identity {
    pub fn anonymous() -> Identity {
        Identity { user: "system:anonymous".into(), groups: vec!["system:unauthenticated".into()] }
    }

    pub fn is_admin(&self) -> bool {
        self.groups.iter().any(|g| g == "system:masters")
    }
}

/// One allow rule, RBAC style. Empty `namespaces` means every namespace.
#[derive(Debug, Clone, Default)]
pub struct Rule {
    pub verbs: Vec<String>,
    pub api_groups: Vec<String>,
    /// `pods`, `pods/exec`, `*`.
    pub resources: Vec<String>,
    pub namespaces: Vec<String>,
    pub non_resource_urls: Vec<String>,
}

fn list(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

impl Rule {
    pub fn resources(verbs: &[&str], groups: &[&str], resources: &[&str]) -> Rule {
        Rule { verbs: list(verbs), api_groups: list(groups), resources: list(resources), ..Default::default() }
    }

    pub fn in_namespaces(mut self, namespaces: &[&str]) -> Rule {
        self.namespaces = list(namespaces);
        self
    }

    pub fn urls(verbs: &[&str], urls: &[&str]) -> Rule {
        Rule { verbs: list(verbs), non_resource_urls: list(urls), ..Default::default() }
    }
}

/// A user known to the server.
#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
    /// Bearer token, for token users.
    pub token: Option<String>,
    pub rules: Vec<Rule>,
}

/// What a request wants to do.
#[derive(Debug, Clone, Default)]
pub struct Attributes {
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
    /// Set for non-resource requests (`/metrics`).
    pub path: Option<String>,
}

fn matches(patterns: &[String], value: &str) -> bool {
    patterns.iter().any(|p| p == "*" || p == value)
}

fn url_matches(patterns: &[String], path: &str) -> bool {
    patterns.iter().any(|p| p == "*" || p == path || p.strip_suffix('*').is_some_and(|prefix| path.starts_with(prefix)))
}

/// Paths every identity (also anonymous) may GET, as `system:public-info-viewer` allows.
const PUBLIC_PATHS: &[&str] = &["/healthz", "/livez", "/readyz", "/version", "/version/"];

/// Decides `attrs` for `identity`, given the user table.
pub fn authorize(identity: &Identity, users: &[User], attrs: &Attributes) -> bool {
    if identity.is_admin() {
        return true;
    }
    if let Some(path) = &attrs.path
        && attrs.verb == "get"
        && (PUBLIC_PATHS.contains(&path.as_str())
            || path.starts_with("/livez/")
            || path.starts_with("/readyz/")
            || path.starts_with("/healthz/"))
    {
        return true;
    }
    // Discovery is allowed to every authenticated user (system:discovery).
    if let Some(path) = &attrs.path
        && identity.user != "system:anonymous"
        && attrs.verb == "get"
        && (path == "/api"
            || path == "/apis"
            || path.starts_with("/api/")
            || path.starts_with("/apis/")
            || path.starts_with("/openapi"))
    {
        return true;
    }
    // Everyone may ask what they may do (kubectl auth can-i).
    if attrs.resource == "selfsubjectaccessreviews" && attrs.verb == "create" {
        return true;
    }
    let Some(user) = users.iter().find(|u| u.name == identity.user) else {
        return false;
    };
    user.rules.iter().any(|r| rule_allows(r, attrs))
}

fn rule_allows(rule: &Rule, attrs: &Attributes) -> bool {
    if !matches(&rule.verbs, &attrs.verb) {
        return false;
    }
    if let Some(path) = &attrs.path {
        return url_matches(&rule.non_resource_urls, path);
    }
    if !matches(&rule.api_groups, &attrs.group) {
        return false;
    }
    let full = if attrs.subresource.is_empty() {
        attrs.resource.clone()
    } else {
        format!("{}/{}", attrs.resource, attrs.subresource)
    };
    let resource_ok = rule.resources.iter().any(|r| {
        r == "*"
            || *r == full
            || (attrs.subresource.is_empty() && *r == attrs.resource)
            || r.strip_prefix("*/") == Some(attrs.subresource.as_str())
    });
    if !resource_ok {
        return false;
    }
    rule.namespaces.is_empty() || matches(&rule.namespaces, &attrs.namespace)
}

/// The 403 body, worded like the API server's RBAC authorizer.
pub fn forbidden_status(identity: &Identity, attrs: &Attributes) -> serde_json::Value {
    let message = if let Some(path) = &attrs.path {
        format!("forbidden: User \"{}\" cannot {} path \"{path}\"", identity.user, attrs.verb)
    } else {
        let resource_group =
            if attrs.group.is_empty() { attrs.resource.clone() } else { format!("{}.{}", attrs.resource, attrs.group) };
        let subject =
            if attrs.name.is_empty() { resource_group.clone() } else { format!("{resource_group} \"{}\"", attrs.name) };
        let full = if attrs.subresource.is_empty() {
            attrs.resource.clone()
        } else {
            format!("{}/{}", attrs.resource, attrs.subresource)
        };
        let scope = if attrs.namespace.is_empty() {
            "at the cluster scope".to_string()
        } else {
            format!("in the namespace \"{}\"", attrs.namespace)
        };
        format!(
            "{subject} is forbidden: User \"{}\" cannot {} resource \"{full}\" in API group \"{}\" {scope}",
            identity.user, attrs.verb, attrs.group
        )
    };
    let mut details = json!({});
    if !attrs.name.is_empty() {
        details["name"] = json!(attrs.name);
    }
    if !attrs.resource.is_empty() {
        details["kind"] = json!(attrs.resource);
        if !attrs.group.is_empty() {
            details["group"] = json!(attrs.group);
        }
    }
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": "Forbidden", "details": details, "code": 403
    })
}

pub fn unauthorized_status() -> serde_json::Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "Unauthorized", "reason": "Unauthorized", "code": 401})
}

/// Identity from a client certificate: CN is the user, O the groups.
pub fn identity_from_cert(der: &[u8]) -> Option<Identity> {
    use x509_parser::prelude::*;
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let user = cert.subject().iter_common_name().next()?.as_str().ok()?.to_string();
    let groups = cert.subject().iter_organization().filter_map(|o| o.as_str().ok().map(str::to_string)).collect();
    Some(Identity { user, groups })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn viewer() -> Vec<User> {
        vec![User {
            name: "viewer".into(),
            groups: vec![],
            token: Some("t".into()),
            rules: vec![
                Rule::resources(&["get", "list"], &[""], &["pods", "nodes"]),
                Rule::resources(&["create"], &[""], &["pods/exec"]).in_namespaces(&["kube-system"]),
                Rule::urls(&["get"], &["/metrics", "/debug/api_priority_and_fairness/*"]),
            ],
        }]
    }

    fn id() -> Identity {
        Identity { user: "viewer".into(), groups: vec![] }
    }

    fn attrs(verb: &str, group: &str, resource: &str, sub: &str, ns: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            subresource: sub.into(),
            namespace: ns.into(),
            ..Default::default()
        }
    }

    #[test]
    fn rules_decide() {
        let users = viewer();
        assert!(authorize(&id(), &users, &attrs("list", "", "pods", "", "kube-system")));
        assert!(!authorize(&id(), &users, &attrs("list", "coordination.k8s.io", "leases", "", "kube-system")));
        assert!(
            !authorize(&id(), &users, &attrs("get", "", "pods", "exec", "kube-system")),
            "pods does not grant pods/exec"
        );
        assert!(authorize(&id(), &users, &attrs("create", "", "pods", "exec", "kube-system")));
        assert!(!authorize(&id(), &users, &attrs("create", "", "pods", "exec", "default")));
        let url = |p: &str| Attributes { verb: "get".into(), path: Some(p.into()), ..Default::default() };
        assert!(authorize(&id(), &users, &url("/metrics")));
        assert!(authorize(&id(), &users, &url("/debug/api_priority_and_fairness/dump_queues")));
        assert!(authorize(&Identity::anonymous(), &users, &url("/readyz")));
        assert!(!authorize(&Identity::anonymous(), &users, &url("/metrics")));
        let admin = Identity { user: "kubernetes-admin".into(), groups: vec!["system:masters".into()] };
        assert!(authorize(&admin, &[], &attrs("delete", "x", "y", "", "")));
    }

    #[test]
    fn forbidden_messages_match_the_apiserver() {
        let a = attrs("list", "coordination.k8s.io", "leases", "", "kube-system");
        assert_eq!(
            forbidden_status(&id(), &a)["message"],
            "leases.coordination.k8s.io is forbidden: User \"viewer\" cannot list resource \"leases\" in API group \"coordination.k8s.io\" in the namespace \"kube-system\""
        );
        let mut e = attrs("create", "", "pods", "exec", "kube-system");
        e.name = "etcd-cp1".into();
        assert_eq!(
            forbidden_status(&id(), &e)["message"],
            "pods \"etcd-cp1\" is forbidden: User \"viewer\" cannot create resource \"pods/exec\" in API group \"\" in the namespace \"kube-system\""
        );
        let n = attrs("list", "", "nodes", "", "");
        assert!(forbidden_status(&id(), &n)["message"].as_str().unwrap().ends_with("at the cluster scope"));
        let u = Attributes { verb: "get".into(), path: Some("/metrics".into()), ..Default::default() };
        assert_eq!(forbidden_status(&id(), &u)["message"], "forbidden: User \"viewer\" cannot get path \"/metrics\"");
    }
}
