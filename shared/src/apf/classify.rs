//! Which FlowSchema a request matches, evaluated like the API server (apiserver
//! `pkg/util/flowcontrol/match.go`): schemas in precedence order, ties by name; a schema matches
//! when one rule has a matching subject and a matching resource (or non-resource) rule. A `*`
//! only counts as a wildcard when it is the list's only member (validation enforces it); a
//! resource rule names `resource/subresource`; a request without a namespace needs
//! `clusterScope`; a non-resource URL matches exactly, or as a prefix ending in `/`
//! (`/healthz` covers `/healthz/etcd`, `/healthz/*` does not cover `/healthz`).

use serde::Serialize;

use super::model::{FlowSchema, NonResourceRule, PolicyRule, ResourceRule, Subject, sort_schemas};

/// What a request is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum Target {
    Resource { verb: String, group: String, resource: String, subresource: String, namespace: String },
    NonResource { verb: String, path: String },
}

impl Target {
    pub fn describe(&self) -> String {
        match self {
            Target::Resource { verb, group, resource, subresource, namespace } => {
                let mut r = resource.clone();
                if !subresource.is_empty() {
                    r = format!("{r}/{subresource}");
                }
                if !group.is_empty() {
                    r = format!("{r}.{group}");
                }
                if namespace.is_empty() {
                    format!("{verb} {r} (cluster-wide)")
                } else {
                    format!("{verb} {r} in {namespace}")
                }
            }
            Target::NonResource { verb, path } => format!("{verb} {path}"),
        }
    }
}

/// The requesting user as the API server sees it after authentication.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Requester {
    pub user: String,
    pub groups: Vec<String>,
}

impl Requester {
    /// The user with the groups the API server adds: service accounts get
    /// `system:serviceaccounts` and `system:serviceaccounts:<ns>` (when no groups are given), and
    /// everyone but `system:anonymous` gets `system:authenticated` (anonymous gets
    /// `system:unauthenticated`).
    pub fn with_implied_groups(user: &str, groups: &[String]) -> Requester {
        let mut all: Vec<String> = groups.to_vec();
        if groups.is_empty()
            && let Some(rest) = user.strip_prefix("system:serviceaccount:")
            && let Some((ns, _)) = rest.split_once(':')
        {
            all.push("system:serviceaccounts".into());
            all.push(format!("system:serviceaccounts:{ns}"));
        }
        if user == "system:anonymous" {
            if !all.iter().any(|g| g == "system:unauthenticated") {
                all.push("system:unauthenticated".into());
            }
        } else if !all.iter().any(|g| g == "system:authenticated" || g == "system:unauthenticated") {
            all.push("system:authenticated".into());
        }
        Requester { user: user.to_string(), groups: all }
    }
}

fn contains(list: &[String], x: &str, wildcard: &str) -> bool {
    (list.len() == 1 && list[0] == wildcard) || list.iter().any(|y| y == x)
}

fn service_account_parts(user: &str) -> Option<(&str, &str)> {
    user.strip_prefix("system:serviceaccount:")?.split_once(':')
}

pub fn subject_matches(subject: &Subject, who: &Requester) -> bool {
    match subject {
        Subject::User(name) => name == "*" || *name == who.user,
        Subject::Group(name) => name == "*" || who.groups.iter().any(|g| g == name),
        Subject::ServiceAccount { namespace, name } => match service_account_parts(&who.user) {
            Some((ns, n)) => ns == namespace && (name == "*" || n == name),
            None => false,
        },
        Subject::Unknown(_) => false,
    }
}

/// Why a resource rule does not match, or None when it does.
fn resource_rule_mismatch(rule: &ResourceRule, target: &Target) -> Option<String> {
    let Target::Resource { verb, group, resource, subresource, namespace } = target else {
        return Some("a resource rule never matches a non-resource request".into());
    };
    let seek = if subresource.is_empty() { resource.clone() } else { format!("{resource}/{subresource}") };
    if !contains(&rule.verbs, verb, "*") {
        return Some(format!("verb {verb} not in {:?}", rule.verbs));
    }
    if !contains(&rule.resources, &seek, "*") {
        return Some(format!("resource {seek} not in {:?}", rule.resources));
    }
    if !contains(&rule.api_groups, group, "*") {
        return Some(format!("API group {group:?} not in {:?}", rule.api_groups));
    }
    if namespace.is_empty() {
        return (!rule.cluster_scope).then(|| "cluster-scoped request, rule has no clusterScope".to_string());
    }
    (!contains(&rule.namespaces, namespace, "*")).then(|| format!("namespace {namespace} not in {:?}", rule.namespaces))
}

pub fn non_resource_url_matches(rule_path: &str, path: &str) -> bool {
    if rule_path == "*" || rule_path == path {
        return true;
    }
    let mut prefix = rule_path.strip_suffix('*').unwrap_or(rule_path).to_string();
    if !prefix.ends_with('/') {
        prefix.push('/');
    }
    path.starts_with(&prefix)
}

fn non_resource_rule_mismatch(rule: &NonResourceRule, target: &Target) -> Option<String> {
    let Target::NonResource { verb, path } = target else {
        return Some("a non-resource rule never matches a resource request".into());
    };
    if !contains(&rule.verbs, verb, "*") {
        return Some(format!("verb {verb} not in {:?}", rule.verbs));
    }
    (!rule.non_resource_urls.iter().any(|u| non_resource_url_matches(u, path)))
        .then(|| format!("{path} not covered by {:?}", rule.non_resource_urls))
}

/// Why a policy rule does not match, or None when it does.
fn rule_mismatch(rule: &PolicyRule, who: &Requester, target: &Target) -> Option<String> {
    if !rule.subjects.iter().any(|s| subject_matches(s, who)) {
        return Some(format!(
            "subjects {} do not include {}",
            rule.subjects.iter().map(Subject::describe).collect::<Vec<_>>().join(", "),
            who.user
        ));
    }
    let reasons: Vec<String> = match target {
        Target::Resource { .. } => {
            rule.resource_rules.iter().filter_map(|r| resource_rule_mismatch(r, target)).collect()
        }
        Target::NonResource { .. } => {
            rule.non_resource_rules.iter().filter_map(|r| non_resource_rule_mismatch(r, target)).collect()
        }
    };
    let total = match target {
        Target::Resource { .. } => rule.resource_rules.len(),
        Target::NonResource { .. } => rule.non_resource_rules.len(),
    };
    if reasons.len() < total {
        return None;
    }
    Some(match (total, reasons.first()) {
        (0, _) => match target {
            Target::Resource { .. } => "the subject matches but the rule has no resourceRules".into(),
            Target::NonResource { .. } => "the subject matches but the rule has no nonResourceRules".into(),
        },
        (_, Some(first)) => format!("the subject matches, but {first}"),
        (_, None) => "no rule matches".into(),
    })
}

/// Does `schema` match? None when it does, else why not.
pub fn schema_mismatch(schema: &FlowSchema, who: &Requester, target: &Target) -> Option<String> {
    let mut reasons = Vec::new();
    for rule in &schema.rules {
        match rule_mismatch(rule, who, target) {
            None => return None,
            Some(r) => reasons.push(r),
        }
    }
    // The most informative reason: one where the subject matched.
    Some(
        reasons
            .iter()
            .find(|r| r.starts_with("the subject matches"))
            .or(reasons.first())
            .cloned()
            .unwrap_or_else(|| "it has no rules".into()),
    )
}

/// One schema as `explain` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Considered {
    pub flow_schema: String,
    pub precedence: i64,
    pub priority_level: String,
    pub matches: bool,
    /// Why it does not match (empty when it does).
    pub reason: String,
}

/// The answer of `explain`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    pub requester: Requester,
    pub target: Target,
    /// The schema that serves the request (None: nothing matches, the API server then uses
    /// its mandatory catch-all).
    pub flow_schema: Option<String>,
    pub flow_schema_uid: Option<String>,
    pub priority_level: Option<String>,
    /// The flow the request joins: its user (ByUser), namespace (ByNamespace), or "".
    pub flow: String,
    /// Every schema up to the match, in evaluation order, then the runners-up (later schemas
    /// that would match too).
    pub considered: Vec<Considered>,
    pub runners_up: Vec<String>,
}

pub fn explain(schemas: &[FlowSchema], who: &Requester, target: &Target) -> Explanation {
    let mut ordered = schemas.to_vec();
    sort_schemas(&mut ordered);
    let mut considered = Vec::new();
    let mut winner: Option<&FlowSchema> = None;
    let mut runners_up = Vec::new();
    for fs in &ordered {
        let mismatch = schema_mismatch(fs, who, target);
        if winner.is_some() {
            if mismatch.is_none() {
                runners_up.push(fs.name.clone());
                considered.push(Considered {
                    flow_schema: fs.name.clone(),
                    precedence: fs.precedence,
                    priority_level: fs.priority_level.clone(),
                    matches: true,
                    reason: String::new(),
                });
            }
            continue;
        }
        considered.push(Considered {
            flow_schema: fs.name.clone(),
            precedence: fs.precedence,
            priority_level: fs.priority_level.clone(),
            matches: mismatch.is_none(),
            reason: mismatch.clone().unwrap_or_default(),
        });
        if mismatch.is_none() {
            winner = Some(fs);
        }
    }
    let flow = match (winner.and_then(|w| w.distinguisher.as_deref()), target) {
        (Some("ByUser"), _) => who.user.clone(),
        (Some("ByNamespace"), Target::Resource { namespace, .. }) => namespace.clone(),
        _ => String::new(),
    };
    Explanation {
        requester: who.clone(),
        target: target.clone(),
        flow_schema: winner.map(|w| w.name.clone()),
        flow_schema_uid: winner.map(|w| w.uid.clone()).filter(|u| !u.is_empty()),
        priority_level: winner.map(|w| w.priority_level.clone()),
        flow,
        considered,
        runners_up,
    }
}

#[cfg(test)]
mod tests {
    use super::super::defaults;
    use super::*;
    use serde_json::json;

    fn schemas(extra: &[serde_json::Value]) -> Vec<FlowSchema> {
        defaults::flow_schemas().iter().chain(extra.iter()).map(FlowSchema::from_value).collect()
    }

    /// A request for `resource` or `resource/subresource`.
    fn res(verb: &str, group: &str, resource: &str, ns: &str) -> Target {
        let (resource, subresource) = resource.split_once('/').unwrap_or((resource, ""));
        Target::Resource {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            subresource: subresource.into(),
            namespace: ns.into(),
        }
    }

    fn who(user: &str, groups: &[&str]) -> Requester {
        Requester::with_implied_groups(user, &groups.iter().map(std::string::ToString::to_string).collect::<Vec<_>>())
    }

    fn custom(
        name: &str,
        precedence: i64,
        level: &str,
        subjects: serde_json::Value,
        rules: serde_json::Value,
    ) -> serde_json::Value {
        let mut rule = rules;
        rule["subjects"] = subjects;
        json!({"metadata": {"name": name, "uid": format!("uid-{name}")},
               "spec": {"matchingPrecedence": precedence, "priorityLevelConfiguration": {"name": level},
                        "distinguisherMethod": {"type": "ByUser"}, "rules": [rule]}})
    }

    /// The FlowSchema that `requester`'s `target` request is classified into.
    fn schema_of(all: &[FlowSchema], requester: &Requester, target: &Target) -> String {
        explain(all, requester, target).flow_schema.unwrap_or_default()
    }

    #[test]
    fn implied_groups() {
        assert_eq!(
            who("system:serviceaccount:monitoring:prometheus", &[]).groups,
            ["system:serviceaccounts", "system:serviceaccounts:monitoring", "system:authenticated"]
        );
        assert_eq!(who("alice", &["dev"]).groups, ["dev", "system:authenticated"]);
        assert_eq!(who("system:anonymous", &[]).groups, ["system:unauthenticated"]);
    }

    #[test]
    fn default_schemas_table() {
        let all = schemas(&[]);
        let (anonymous, kubelet) = (who("system:anonymous", &[]), who("system:node:cp-1", &["system:nodes"]));
        let url = |path: &str| Target::NonResource { verb: "get".into(), path: path.into() };
        let cases: Vec<(&str, Requester, Target, &str, &str)> = vec![
            (
                "masters are exempt",
                who("admin", &["system:masters"]),
                res("delete", "", "pods", "x"),
                "exempt",
                "exempt",
            ),
            ("anonymous health probes are exempt", anonymous.clone(), url("/readyz"), "probes", "exempt"),
            (
                "/healthz covers /healthz/etcd (prefix ending in /)",
                anonymous.clone(),
                url("/healthz/etcd"),
                "probes",
                "exempt",
            ),
            ("/readyzfoo is not under /readyz", anonymous, url("/readyzfoo"), "global-default", "global-default"),
            (
                "leader election of the scheduler",
                who("system:kube-scheduler", &[]),
                res("update", "coordination.k8s.io", "leases", "kube-system"),
                "system-leader-election",
                "leader-election",
            ),
            ("kubelet node status", kubelet.clone(), res("patch", "", "nodes", ""), "system-node-high", "node-high"),
            ("kubelet reads pods", kubelet, res("list", "", "pods", "default"), "system-nodes", "system"),
            (
                "controller-manager",
                who("system:kube-controller-manager", &[]),
                res("list", "apps", "deployments", "default"),
                "kube-controller-manager",
                "workload-high",
            ),
            (
                "kube-system service account",
                who("system:serviceaccount:kube-system:coredns", &[]),
                res("list", "", "endpoints", ""),
                "kube-system-service-accounts",
                "workload-high",
            ),
            (
                "another namespace's service account",
                who("system:serviceaccount:monitoring:prometheus-k8s", &[]),
                res("list", "", "pods", ""),
                "service-accounts",
                "workload-low",
            ),
            (
                "a person",
                who("alice", &["dev"]),
                res("get", "", "configmaps", "dev"),
                "global-default",
                "global-default",
            ),
        ];
        for (name, requester, target, fs, pl) in cases {
            let e = explain(&all, &requester, &target);
            assert_eq!(e.flow_schema.as_deref(), Some(fs), "{name}: {e:#?}");
            assert_eq!(e.priority_level.as_deref(), Some(pl), "{name}");
        }
    }

    #[test]
    fn custom_schemas_table() {
        let list_watch = json!({"resourceRules": [{"verbs": ["list", "watch"], "apiGroups": ["*"], "resources": ["*"], "namespaces": ["*"], "clusterScope": true}]});
        let prom =
            json!([{"kind": "ServiceAccount", "serviceAccount": {"namespace": "monitoring", "name": "prometheus"}}]);
        let sa = who("system:serviceaccount:monitoring:prometheus", &[]);
        // Precedence ties are broken by name: "a-monitoring" wins over "b-monitoring".
        let tie = schemas(&[
            custom("b-monitoring", 500, "workload-low", prom.clone(), list_watch.clone()),
            custom("a-monitoring", 500, "global-default", prom.clone(), list_watch.clone()),
        ]);
        let e = explain(&tie, &sa, &res("list", "", "pods", ""));
        assert_eq!(e.flow_schema.as_deref(), Some("a-monitoring"));
        assert_eq!(e.flow_schema_uid.as_deref(), Some("uid-a-monitoring"));
        assert_eq!(e.flow, "system:serviceaccount:monitoring:prometheus", "ByUser");
        assert!(e.runners_up.starts_with(&["b-monitoring".to_string()]), "{:?}", e.runners_up);
        assert!(e.runners_up.contains(&"service-accounts".to_string()));
        // ...but not for get: the rule lists list and watch only.
        let e = explain(&tie, &sa, &res("get", "", "pods", "x"));
        assert_eq!(e.flow_schema.as_deref(), Some("service-accounts"));
        let a = e.considered.iter().find(|c| c.flow_schema == "a-monitoring").unwrap();
        assert_eq!(a.reason, "the subject matches, but verb get not in [\"list\", \"watch\"]");

        // The seeds' example, as written: a schema after service-accounts (9000) is shadowed.
        let late = schemas(&[custom("monitoring-late", 9500, "workload-low", prom.clone(), list_watch.clone())]);
        let e = explain(&late, &sa, &res("list", "", "pods", ""));
        assert_eq!(e.flow_schema.as_deref(), Some("service-accounts"));
        assert!(e.runners_up.contains(&"monitoring-late".to_string()));

        // A resource rule without namespaces or clusterScope matches nothing.
        let no_scope = json!({"resourceRules": [{"verbs": ["list"], "apiGroups": ["*"], "resources": ["*"]}]});
        let s = schemas(&[custom("no-scope", 100, "workload-low", prom.clone(), no_scope)]);
        assert_eq!(schema_of(&s, &sa, &res("list", "", "pods", "x")), "service-accounts");
        let ns_only =
            json!({"resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"], "namespaces": ["*"]}]});
        let s = schemas(&[custom("ns-only", 100, "workload-low", prom.clone(), ns_only)]);
        assert_eq!(schema_of(&s, &sa, &res("list", "", "pods", "x")), "ns-only");
        assert_eq!(
            schema_of(&s, &sa, &res("list", "", "nodes", "")),
            "service-accounts",
            "cluster-scoped needs clusterScope"
        );

        // Group subjects, every-account wildcards, and subresources.
        let group_rule = json!({"resourceRules": [{"verbs": ["*"], "apiGroups": [""], "resources": ["pods/log"], "namespaces": ["*"]}]});
        let s = schemas(&[
            custom("ci-logs", 100, "workload-low", json!([{"kind": "Group", "group": {"name": "ci"}}]), group_rule),
            custom(
                "all-in-ci-cd",
                200,
                "global-default",
                json!([{"kind": "ServiceAccount", "serviceAccount": {"namespace": "ci-cd", "name": "*"}}]),
                json!({"resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"], "namespaces": ["*"], "clusterScope": true}]}),
            ),
        ]);
        let bob = who("bob", &["ci"]);
        assert_eq!(schema_of(&s, &bob, &res("get", "", "pods/log", "x")), "ci-logs");
        assert_eq!(schema_of(&s, &bob, &res("get", "", "pods", "x")), "global-default");
        let jenkins = who("system:serviceaccount:ci-cd:jenkins", &[]);
        assert_eq!(schema_of(&s, &jenkins, &res("create", "", "pods", "ci-cd")), "all-in-ci-cd");
        // "ci-cd-other" is not namespace "ci-cd" (the separator is checked).
        let other = who("system:serviceaccount:ci-cd-other:x", &[]);
        assert_eq!(schema_of(&s, &other, &res("create", "", "pods", "ci-cd")), "service-accounts");

        // Non-resource URL patterns.
        assert!(non_resource_url_matches("/metrics", "/metrics"));
        assert!(non_resource_url_matches("/metrics", "/metrics/slis"));
        assert!(non_resource_url_matches("/debug/*", "/debug/pprof"));
        assert!(!non_resource_url_matches("/debug/*", "/debug"));
        assert!(!non_resource_url_matches("/hea", "/healthz"));
        // A `*` among other values is not a wildcard.
        assert!(!contains(&["get".into(), "*".into()], "list", "*"));
    }

    #[test]
    fn karpenter_schemas_from_their_manifest() {
        // tests/fixtures/flowcontrol/karpenter-flowschemas-v1beta3.yaml (a Helm template: the
        // namespace is a placeholder, filled here as the chart would).
        let text = crate::test_files::text("tests/fixtures/flowcontrol/karpenter-flowschemas-v1beta3.yaml")
            .replace("${KARPENTER_NAMESPACE}", "kube-system");
        let docs = crate::yaml::documents("karpenter", &text).unwrap();
        let all = schemas(&docs);
        let karpenter = who("system:serviceaccount:kube-system:karpenter", &[]);
        // Installed in kube-system, the defaults win: system-leader-election (100) takes every
        // kube-system service account's leases, kube-system-service-accounts (900) the rest.
        let e = explain(&all, &karpenter, &res("update", "coordination.k8s.io", "leases", "kube-system"));
        assert_eq!(e.flow_schema.as_deref(), Some("system-leader-election"));
        assert_eq!(e.runners_up.first().map(String::as_str), Some("karpenter-leader-election"));
        let e = explain(&all, &karpenter, &res("list", "", "nodes", ""));
        assert_eq!(e.flow_schema.as_deref(), Some("kube-system-service-accounts"));
        assert_eq!(e.runners_up.first().map(String::as_str), Some("karpenter-workload"));
        // In its own namespace (not kube-system) the chart's schema does serve it.
        let text2 = text.replace("namespace: \"kube-system\"", "namespace: \"karpenter\"");
        let all = schemas(&crate::yaml::documents("karpenter", &text2).unwrap());
        let own = who("system:serviceaccount:karpenter:karpenter", &[]);
        let e = explain(&all, &own, &res("update", "coordination.k8s.io", "leases", "karpenter"));
        assert_eq!(
            (e.flow_schema.as_deref(), e.priority_level.as_deref()),
            (Some("karpenter-leader-election"), Some("leader-election"))
        );
        let e = explain(&all, &own, &res("list", "", "nodes", ""));
        assert_eq!(e.flow_schema.as_deref(), Some("karpenter-workload"));
        let e = explain(
            &all,
            &who("system:serviceaccount:karpenter:karpenter", &[]),
            &Target::NonResource { verb: "get".into(), path: "/version".into() },
        );
        assert_eq!(e.flow_schema.as_deref(), Some("karpenter-workload"), "nonResourceURLs *");
    }
}
