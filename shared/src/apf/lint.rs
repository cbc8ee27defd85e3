//! Lint of an APF configuration: schemas that can never match (shadowed by an earlier one, or
//! with rules that match nothing), schemas pointing at a missing level, and — with traffic
//! statistics — levels rejecting while they cannot borrow, and traffic falling through to
//! global-default or catch-all. Plus a FlowSchema that isolates a noisy client.

use serde::Serialize;
use serde_json::{Value, json};

use super::classify::{Requester, Target, explain, non_resource_url_matches};
use super::model::{FlowSchema, NonResourceRule, PolicyRule, PriorityLevel, ResourceRule, Subject, sort_schemas};
use super::stats::Stats;
use crate::exit::Status;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LintFinding {
    pub severity: Status,
    /// `Shadowed`, `MatchesNothing`, `MissingLevel`, `RejectingAtLimit`, `CatchAllTraffic`, ...
    pub kind: String,
    /// `flowschema/NAME` or `prioritylevelconfiguration/NAME`.
    pub object: String,
    pub message: String,
    pub fix: String,
}

fn all_or(list: &[String]) -> bool {
    list.len() == 1 && list[0] == "*"
}

/// Does list `a` (with the API's sole-`*` wildcard) cover every value `b` can match?
fn list_covers(a: &[String], b: &[String]) -> bool {
    all_or(a) || (!all_or(b) && b.iter().all(|x| a.contains(x)))
}

fn sa_user(user: &str) -> Option<(&str, &str)> {
    user.strip_prefix("system:serviceaccount:")?.split_once(':')
}

/// Does subject `a` match everyone subject `b` matches?
fn subject_covers(a: &Subject, b: &Subject) -> bool {
    if a == b {
        return true;
    }
    match (a, b) {
        (Subject::User(n) | Subject::Group(n), _) if n == "*" => true,
        (Subject::Group(g), b) if g == "system:authenticated" => match b {
            Subject::User(u) => u != "*" && u != "system:anonymous",
            Subject::Group(h) => h != "*" && h != "system:unauthenticated",
            Subject::ServiceAccount { .. } => true,
            Subject::Unknown(_) => true,
        },
        (Subject::Group(g), b) if g == "system:serviceaccounts" => match b {
            Subject::ServiceAccount { .. } => true,
            Subject::User(u) => sa_user(u).is_some(),
            Subject::Group(h) => h.starts_with("system:serviceaccounts:"),
            Subject::Unknown(_) => false,
        },
        (Subject::Group(g), b) if g.starts_with("system:serviceaccounts:") => {
            let ns = &g["system:serviceaccounts:".len()..];
            match b {
                Subject::ServiceAccount { namespace, .. } => namespace == ns,
                Subject::User(u) => sa_user(u).is_some_and(|(n, _)| n == ns),
                _ => false,
            }
        }
        (Subject::ServiceAccount { namespace, name }, b) => match b {
            Subject::ServiceAccount { namespace: n2, name: m2 } => namespace == n2 && (name == "*" || name == m2),
            Subject::User(u) => sa_user(u).is_some_and(|(n, m)| n == namespace && (name == "*" || name == m)),
            Subject::Group(g) => name == "*" && *g == format!("system:serviceaccounts:{namespace}"),
            Subject::Unknown(_) => false,
        },
        (Subject::User(u), Subject::ServiceAccount { namespace, name }) => {
            name != "*" && sa_user(u).is_some_and(|(n, m)| n == namespace && m == name)
        }
        _ => false,
    }
}

fn resource_rule_covers(a: &ResourceRule, b: &ResourceRule) -> bool {
    list_covers(&a.verbs, &b.verbs)
        && list_covers(&a.api_groups, &b.api_groups)
        && list_covers(&a.resources, &b.resources)
        && (!b.cluster_scope || a.cluster_scope)
        && (b.namespaces.is_empty() || list_covers(&a.namespaces, &b.namespaces))
}

fn url_covers(a: &str, b: &str) -> bool {
    if a == "*" || a == b {
        return true;
    }
    match b.strip_suffix('*') {
        // b is itself a prefix rule: a must be a prefix rule covering b's prefix.
        Some(b_prefix) => {
            let mut a_prefix = a.strip_suffix('*').unwrap_or(a).to_string();
            if !a_prefix.ends_with('/') {
                a_prefix.push('/');
            }
            b_prefix.starts_with(&a_prefix)
        }
        None => non_resource_url_matches(a, b),
    }
}

fn non_resource_rule_covers(a: &NonResourceRule, b: &NonResourceRule) -> bool {
    list_covers(&a.verbs, &b.verbs)
        && b.non_resource_urls.iter().all(|u| a.non_resource_urls.iter().any(|x| url_covers(x, u)))
}

fn rule_can_match(r: &PolicyRule) -> bool {
    !r.subjects.is_empty()
        && (r.resource_rules.iter().any(|rr| rr.cluster_scope || !rr.namespaces.is_empty())
            || !r.non_resource_rules.is_empty())
}

/// Is every request `b` can match already matched by one of `earlier`'s rules?
fn rule_covered(b: &PolicyRule, earlier: &[&PolicyRule]) -> bool {
    let b_resource: Vec<&ResourceRule> =
        b.resource_rules.iter().filter(|r| r.cluster_scope || !r.namespaces.is_empty()).collect();
    b.subjects.iter().all(|s| {
        // For this subject, every resource and non-resource rule must be covered by some
        // earlier rule whose subjects cover it.
        let candidates: Vec<&&PolicyRule> =
            earlier.iter().filter(|a| a.subjects.iter().any(|x| subject_covers(x, s))).collect();
        b_resource
            .iter()
            .all(|br| candidates.iter().any(|a| a.resource_rules.iter().any(|ar| resource_rule_covers(ar, br))))
            && b.non_resource_rules.iter().all(|bn| {
                candidates.iter().any(|a| a.non_resource_rules.iter().any(|an| non_resource_rule_covers(an, bn)))
            })
    })
}

pub fn lint(schemas: &[FlowSchema], levels: &[PriorityLevel], stats: Option<&Stats>) -> Vec<LintFinding> {
    let mut out = Vec::new();
    let mut ordered = schemas.to_vec();
    sort_schemas(&mut ordered);
    for (i, fs) in ordered.iter().enumerate() {
        let object = format!("flowschema/{}", fs.name);
        if !levels.is_empty() && !levels.iter().any(|l| l.name == fs.priority_level) {
            out.push(LintFinding {
                severity: Status::Warning,
                kind: "MissingLevel".into(),
                object: object.clone(),
                message: format!(
                    "points at priority level {:?}, which does not exist: the API server ignores this schema",
                    fs.priority_level
                ),
                fix: format!(
                    "Create PriorityLevelConfiguration {} or point the schema at an existing level.",
                    fs.priority_level
                ),
            });
        }
        let live: Vec<&PolicyRule> = fs.rules.iter().filter(|r| rule_can_match(r)).collect();
        if live.is_empty() {
            out.push(LintFinding {
                severity: Status::Warning,
                kind: "MatchesNothing".into(),
                object,
                message: "no rule can match: a resourceRule needs namespaces or clusterScope: true, and a rule needs subjects".into(),
                fix: "Add namespaces: [\"*\"] and/or clusterScope: true to its resourceRules.".into(),
            });
            continue;
        }
        if fs.name == "catch-all" || fs.name == "exempt" {
            continue;
        }
        let earlier: Vec<&PolicyRule> = ordered[..i].iter().flat_map(|e| e.rules.iter()).collect();
        if live.iter().all(|r| rule_covered(r, &earlier)) {
            let by: Vec<String> = ordered[..i]
                .iter()
                .filter(|e| e.rules.iter().any(|er| live.iter().any(|r| rule_covered(r, &[er]))))
                .map(|e| format!("{} ({})", e.name, e.precedence))
                .collect();
            let by_text = if by.is_empty() { "earlier schemas together".to_string() } else { by.join(", ") };
            out.push(LintFinding {
                severity: Status::Warning,
                kind: "Shadowed".into(),
                object,
                message: format!(
                    "precedence {} but every request it matches is taken first by {by_text}: it never serves anything",
                    fs.precedence
                ),
                fix: "Give it a matchingPrecedence lower than the schema that takes its requests.".into(),
            });
        }
    }
    if let Some(stats) = stats.filter(|s| s.rates_known) {
        let total: f64 = stats.levels.iter().map(|l| l.dispatched_per_second).sum();
        for l in &stats.levels {
            let rejected = l.rejected_total();
            let object = format!("prioritylevelconfiguration/{}", l.name);
            if rejected > 0.0 && l.name != "catch-all" {
                let config = levels.iter().find(|c| c.name == l.name);
                let at_limit = match (l.current_limit_seats, l.nominal_seats) {
                    (Some(c), Some(n)) => c <= n,
                    _ => true,
                };
                let reasons: Vec<String> = l
                    .rejected_per_second
                    .iter()
                    .filter(|(_, v)| **v > 0.0)
                    .map(|(k, v)| format!("{k} {v:.1}/s"))
                    .collect();
                let system = ["system", "node-high", "leader-election", "workload-high"].contains(&l.name.as_str());
                out.push(LintFinding {
                    severity: if system { Status::Critical } else { Status::Warning },
                    kind: "RejectingAtLimit".into(),
                    object,
                    message: format!(
                        "rejects {rejected:.1} requests/s ({}){}",
                        reasons.join(", "),
                        if at_limit { " and cannot borrow seats beyond its nominal limit right now" } else { "" }
                    ),
                    fix: match config {
                        Some(c) if c.nominal_concurrency_shares > 0 => format!(
                            "Find who floods it (apftop flows view); isolate that client with its own FlowSchema and level, or raise nominalConcurrencyShares (now {}).",
                            c.nominal_concurrency_shares
                        ),
                        _ => "Find who floods it (apftop flows view) and isolate that client with its own FlowSchema and level.".into(),
                    },
                });
            }
        }
        if let Some(c) = stats.levels.iter().find(|l| l.name == "catch-all")
            // A trickle at start-up is normal (requests before the configuration loads).
            && (c.dispatched_per_second + c.rejected_total()) >= 1.0
        {
            out.push(LintFinding {
                severity: Status::Warning,
                kind: "CatchAllTraffic".into(),
                object: "prioritylevelconfiguration/catch-all".into(),
                message: format!(
                    "{:.1} requests/s reach catch-all (no other schema matches them); it has 5 shares and rejects instead of queuing",
                    c.dispatched_per_second + c.rejected_total()
                ),
                fix: "A custom schema probably lost its rules, or global-default was changed; restore the default schemas.".into(),
            });
        }
        if let Some(g) = stats.levels.iter().find(|l| l.name == "global-default")
            && total > 10.0
            && g.dispatched_per_second / total > 0.5
        {
            out.push(LintFinding {
                severity: Status::Warning,
                kind: "GlobalDefaultTraffic".into(),
                object: "prioritylevelconfiguration/global-default".into(),
                message: format!(
                    "{:.0}% of the traffic ({:.1}/s) goes to global-default: people and unclassified clients share one level",
                    100.0 * g.dispatched_per_second / total,
                    g.dispatched_per_second
                ),
                fix: "Give the big clients (CI, dashboards, operators) their own FlowSchemas.".into(),
            });
        }
    }
    out
}

/// A PriorityLevelConfiguration and a FlowSchema that move `user` off the level it shares: the
/// schema's precedence is below the one serving the user now, its level small and queuing.
/// Returns the two documents, or None when the user is exempt (nothing to isolate).
pub fn isolation_suggestion(user: &str, verbs: &[String], schemas: &[FlowSchema]) -> Option<(Vec<Value>, String)> {
    let who = Requester::with_implied_groups(user, &[]);
    let probe = Target::Resource {
        verb: verbs.first().cloned().unwrap_or_else(|| "list".into()),
        group: String::new(),
        resource: "pods".into(),
        subresource: String::new(),
        namespace: String::new(),
    };
    let now = explain(schemas, &who, &probe);
    let current = now.flow_schema.as_deref().and_then(|n| schemas.iter().find(|s| s.name == n));
    if current.is_some_and(|c| c.priority_level == "exempt") {
        return None;
    }
    let precedence = current.map(|c| (c.precedence - 1).min(1000)).unwrap_or(1000).max(2);
    let short: String = user
        .rsplit(':')
        .next()
        .unwrap_or(user)
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
        .collect();
    let name = format!("isolate-{short}");
    let subject = match sa_user(user) {
        Some((ns, n)) => json!({"kind": "ServiceAccount", "serviceAccount": {"namespace": ns, "name": n}}),
        None => json!({"kind": "User", "user": {"name": user}}),
    };
    let mut verbs: Vec<String> = verbs.to_vec();
    verbs.sort();
    verbs.dedup();
    if verbs.is_empty() {
        verbs.push("*".into());
    }
    let level = json!({
        "apiVersion": "flowcontrol.apiserver.k8s.io/v1", "kind": "PriorityLevelConfiguration",
        "metadata": {"name": name},
        "spec": {"type": "Limited", "limited": {
            "nominalConcurrencyShares": 10, "lendablePercent": 0,
            "limitResponse": {"type": "Queue", "queuing": {"queues": 16, "handSize": 4, "queueLengthLimit": 50}}}}
    });
    let schema = json!({
        "apiVersion": "flowcontrol.apiserver.k8s.io/v1", "kind": "FlowSchema",
        "metadata": {"name": name},
        "spec": {
            "priorityLevelConfiguration": {"name": name},
            "matchingPrecedence": precedence,
            "distinguisherMethod": {"type": "ByUser"},
            "rules": [{
                "subjects": [subject],
                "resourceRules": [{"verbs": verbs, "apiGroups": ["*"], "resources": ["*"], "namespaces": ["*"], "clusterScope": true}]
            }]
        }
    });
    let why = format!(
        "{user} is served by {} now; the schema below (precedence {precedence}) takes its {} requests first and gives them a level of their own (10 shares, queuing), so they stop starving the others.",
        now.flow_schema.as_deref().unwrap_or("no schema"),
        if verbs == ["*"] { String::new() } else { verbs.join("/") }
    );
    Some((vec![level, schema], why))
}

#[cfg(test)]
mod tests {
    use super::super::defaults;
    use super::*;
    use crate::apf::stats::LevelStats;

    fn defaults_plus(extra: &[Value]) -> (Vec<FlowSchema>, Vec<PriorityLevel>) {
        (
            defaults::flow_schemas().iter().chain(extra).map(FlowSchema::from_value).collect(),
            defaults::priority_levels().iter().map(PriorityLevel::from_value).collect(),
        )
    }

    #[test]
    fn the_defaults_are_clean() {
        let (s, l) = defaults_plus(&[]);
        assert_eq!(lint(&s, &l, None), vec![]);
    }

    #[test]
    fn the_seeds_monitoring_schema_matches_nothing() {
        // The runbook's monitoring-low-priority example: resourceRules without namespaces or
        // clusterScope can match no request.
        let seed = json!({"metadata": {"name": "monitoring-low-priority"}, "spec": {
            "priorityLevelConfiguration": {"name": "catch-all"}, "matchingPrecedence": 8000,
            "rules": [{"subjects": [{"kind": "ServiceAccount", "serviceAccount": {"name": "prometheus", "namespace": "monitoring"}}],
                       "resourceRules": [{"verbs": ["list", "watch"], "apiGroups": ["*"], "resources": ["*"]}]}]}});
        let (s, l) = defaults_plus(&[seed]);
        let f = lint(&s, &l, None);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(
            (f[0].kind.as_str(), f[0].object.as_str()),
            ("MatchesNothing", "flowschema/monitoring-low-priority")
        );
    }

    #[test]
    fn shadowed_and_dangling_schemas() {
        let rules = json!([{"subjects": [{"kind": "ServiceAccount", "serviceAccount": {"name": "prometheus", "namespace": "monitoring"}}],
                            "resourceRules": [{"verbs": ["list"], "apiGroups": ["*"], "resources": ["*"], "namespaces": ["*"], "clusterScope": true}]}]);
        let late = json!({"metadata": {"name": "monitoring-late"}, "spec": {"priorityLevelConfiguration": {"name": "workload-low"}, "matchingPrecedence": 9500, "rules": rules}});
        let early = json!({"metadata": {"name": "monitoring-early"}, "spec": {"priorityLevelConfiguration": {"name": "monitoring"}, "matchingPrecedence": 1000, "rules": rules}});
        let (s, l) = defaults_plus(&[late, early]);
        let f = lint(&s, &l, None);
        let shadow = f.iter().find(|x| x.kind == "Shadowed").unwrap();
        assert_eq!(shadow.object, "flowschema/monitoring-late");
        assert!(shadow.message.contains("monitoring-early (1000)"), "{}", shadow.message);
        assert!(shadow.message.contains("service-accounts (9000)"), "{}", shadow.message);
        let missing = f.iter().find(|x| x.kind == "MissingLevel").unwrap();
        assert_eq!(missing.object, "flowschema/monitoring-early");
        assert!(
            !f.iter().any(|x| x.object == "flowschema/global-default"),
            "global-default also serves unauthenticated users"
        );
    }

    #[test]
    fn traffic_findings() {
        let (s, l) = defaults_plus(&[]);
        let level = |name: &str, dispatched: f64, rejected: f64| LevelStats {
            name: name.into(),
            nominal_seats: Some(245.0),
            current_limit_seats: Some(245.0),
            dispatched_per_second: dispatched,
            rejected_per_second: [("queue-full".to_string(), rejected)].into_iter().collect(),
            ..Default::default()
        };
        let stats = Stats {
            levels: vec![
                level("workload-low", 38.0, 27.0),
                level("catch-all", 1.5, 0.0),
                level("global-default", 5.0, 0.0),
            ],
            rates_known: true,
            ..Default::default()
        };
        let f = lint(&s, &l, Some(&stats));
        let r = f.iter().find(|x| x.kind == "RejectingAtLimit").unwrap();
        assert_eq!((r.object.as_str(), r.severity), ("prioritylevelconfiguration/workload-low", Status::Warning));
        assert!(
            r.message.starts_with("rejects 27.0 requests/s (queue-full 27.0/s) and cannot borrow"),
            "{}",
            r.message
        );
        assert!(r.fix.contains("nominalConcurrencyShares (now 100)"));
        assert!(f.iter().any(|x| x.kind == "CatchAllTraffic"));
        assert!(!f.iter().any(|x| x.kind == "GlobalDefaultTraffic"));
    }

    #[test]
    fn the_suggestion_isolates_the_noisy_client() {
        let (schemas, _) = defaults_plus(&[]);
        let user = "system:serviceaccount:monitoring:prometheus-k8s";
        let (docs, why) = isolation_suggestion(user, &["list".into(), "watch".into()], &schemas).unwrap();
        assert_eq!(docs[0]["kind"], "PriorityLevelConfiguration");
        assert_eq!(docs[1]["spec"]["matchingPrecedence"], 1000);
        assert!(why.contains("served by service-accounts now"), "{why}");
        // Applied, the suggestion does take the client's LISTs.
        let mut with = schemas.clone();
        with.push(FlowSchema::from_value(&docs[1]));
        let e = explain(
            &with,
            &Requester::with_implied_groups(user, &[]),
            &Target::Resource {
                verb: "list".into(),
                group: String::new(),
                resource: "pods".into(),
                subresource: String::new(),
                namespace: String::new(),
            },
        );
        assert_eq!(e.flow_schema.as_deref(), Some("isolate-prometheus-k8s"));
    }
}
