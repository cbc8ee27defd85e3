//! FlowSchemas and PriorityLevelConfigurations read from any served version (v1, v1beta3,
//! v1beta2): the fields that matter for classification and capacity, with the versions'
//! differences (v1beta2 `assuredConcurrencyShares`, v1beta3 shares defaulting) folded in.

use serde::Serialize;
use serde_json::Value;

/// Who a rule applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "name")]
pub enum Subject {
    User(String),
    Group(String),
    /// `system:serviceaccount:<namespace>:<name>`; name `*` is every account of the namespace.
    ServiceAccount {
        namespace: String,
        name: String,
    },
    /// An unknown kind: matches nothing.
    Unknown(String),
}

impl Subject {
    fn from_value(v: &Value) -> Subject {
        let s = |path: &[&str]| {
            let mut cur = v;
            for p in path {
                cur = &cur[*p];
            }
            cur.as_str().unwrap_or("").to_string()
        };
        match v["kind"].as_str().unwrap_or("") {
            "User" => Subject::User(s(&["user", "name"])),
            "Group" => Subject::Group(s(&["group", "name"])),
            "ServiceAccount" => Subject::ServiceAccount {
                namespace: s(&["serviceAccount", "namespace"]),
                name: s(&["serviceAccount", "name"]),
            },
            other => Subject::Unknown(other.to_string()),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Subject::User(n) => format!("user {n}"),
            Subject::Group(n) => format!("group {n}"),
            Subject::ServiceAccount { namespace, name } if name == "*" => {
                format!("every service account in {namespace}")
            }
            Subject::ServiceAccount { namespace, name } => format!("service account {namespace}/{name}"),
            Subject::Unknown(k) => format!("unknown subject kind {k:?}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ResourceRule {
    pub verbs: Vec<String>,
    pub api_groups: Vec<String>,
    pub resources: Vec<String>,
    pub cluster_scope: bool,
    pub namespaces: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct NonResourceRule {
    pub verbs: Vec<String>,
    pub non_resource_urls: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRule {
    pub subjects: Vec<Subject>,
    pub resource_rules: Vec<ResourceRule>,
    pub non_resource_rules: Vec<NonResourceRule>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FlowSchema {
    pub name: String,
    pub uid: String,
    pub precedence: i64,
    pub priority_level: String,
    /// `ByUser`, `ByNamespace`, or None (one flow for everything).
    pub distinguisher: Option<String>,
    pub rules: Vec<PolicyRule>,
    /// The apiserver keeps this schema as in its defaults (`apf.kubernetes.io/autoupdate-spec: "true"`).
    pub auto_update: bool,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect()).unwrap_or_default()
}

impl FlowSchema {
    pub fn from_value(v: &Value) -> FlowSchema {
        let spec = &v["spec"];
        let rules = spec["rules"]
            .as_array()
            .map(|rules| {
                rules
                    .iter()
                    .map(|r| PolicyRule {
                        subjects: r["subjects"]
                            .as_array()
                            .map(|s| s.iter().map(Subject::from_value).collect())
                            .unwrap_or_default(),
                        resource_rules: r["resourceRules"]
                            .as_array()
                            .map(|rs| {
                                rs.iter()
                                    .map(|rr| ResourceRule {
                                        verbs: strings(&rr["verbs"]),
                                        api_groups: strings(&rr["apiGroups"]),
                                        resources: strings(&rr["resources"]),
                                        cluster_scope: rr["clusterScope"].as_bool().unwrap_or(false),
                                        namespaces: strings(&rr["namespaces"]),
                                    })
                                    .collect()
                            })
                            .unwrap_or_default(),
                        non_resource_rules: r["nonResourceRules"]
                            .as_array()
                            .map(|rs| {
                                rs.iter()
                                    .map(|nr| NonResourceRule {
                                        verbs: strings(&nr["verbs"]),
                                        non_resource_urls: strings(&nr["nonResourceURLs"]),
                                    })
                                    .collect()
                            })
                            .unwrap_or_default(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        FlowSchema {
            name: v["metadata"]["name"].as_str().unwrap_or("").to_string(),
            uid: v["metadata"]["uid"].as_str().unwrap_or("").to_string(),
            // The API defaults matchingPrecedence to 1000.
            precedence: spec["matchingPrecedence"].as_i64().unwrap_or(1000),
            priority_level: spec["priorityLevelConfiguration"]["name"].as_str().unwrap_or("").to_string(),
            distinguisher: spec["distinguisherMethod"]["type"].as_str().map(str::to_string),
            rules,
            auto_update: v["metadata"]["annotations"]["apf.kubernetes.io/autoupdate-spec"] == "true",
        }
    }
}

/// The order the API server evaluates schemas in: precedence, then name.
pub fn sort_schemas(schemas: &mut [FlowSchema]) {
    schemas.sort_by(|a, b| a.precedence.cmp(&b.precedence).then_with(|| a.name.cmp(&b.name)));
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PriorityLevel {
    pub name: String,
    pub uid: String,
    pub exempt: bool,
    pub nominal_concurrency_shares: i64,
    pub lendable_percent: i64,
    pub borrowing_limit_percent: Option<i64>,
    /// `Queue` or `Reject`.
    pub limit_response: String,
    pub queues: i64,
    pub hand_size: i64,
    pub queue_length_limit: i64,
}

impl PriorityLevel {
    pub fn from_value(v: &Value) -> PriorityLevel {
        let spec = &v["spec"];
        let exempt = spec["type"] == "Exempt";
        let body = if exempt { &spec["exempt"] } else { &spec["limited"] };
        // v1beta2 calls the shares assuredConcurrencyShares; both default to 30 when unset.
        let shares = body["nominalConcurrencyShares"]
            .as_i64()
            .or_else(|| body["assuredConcurrencyShares"].as_i64())
            .unwrap_or(if exempt { 0 } else { 30 });
        let lr = &body["limitResponse"];
        PriorityLevel {
            name: v["metadata"]["name"].as_str().unwrap_or("").to_string(),
            uid: v["metadata"]["uid"].as_str().unwrap_or("").to_string(),
            exempt,
            nominal_concurrency_shares: shares,
            lendable_percent: body["lendablePercent"].as_i64().unwrap_or(0),
            borrowing_limit_percent: body["borrowingLimitPercent"].as_i64(),
            limit_response: if exempt { "-".into() } else { lr["type"].as_str().unwrap_or("Reject").to_string() },
            queues: lr["queuing"]["queues"].as_i64().unwrap_or(0),
            hand_size: lr["queuing"]["handSize"].as_i64().unwrap_or(0),
            queue_length_limit: lr["queuing"]["queueLengthLimit"].as_i64().unwrap_or(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_parse_with_their_numbers() {
        let levels: Vec<PriorityLevel> =
            super::super::defaults::priority_levels().iter().map(PriorityLevel::from_value).collect();
        let low = levels.iter().find(|l| l.name == "workload-low").unwrap();
        assert_eq!(
            (low.nominal_concurrency_shares, low.lendable_percent, low.queues, low.hand_size, low.queue_length_limit),
            (100, 90, 128, 6, 50)
        );
        let catch_all = levels.iter().find(|l| l.name == "catch-all").unwrap();
        assert_eq!((catch_all.limit_response.as_str(), catch_all.nominal_concurrency_shares), ("Reject", 5));
        assert!(levels.iter().find(|l| l.name == "exempt").unwrap().exempt);
        let mut schemas: Vec<FlowSchema> =
            super::super::defaults::flow_schemas().iter().map(FlowSchema::from_value).collect();
        sort_schemas(&mut schemas);
        assert_eq!(schemas.first().unwrap().name, "exempt");
        assert_eq!(schemas.last().unwrap().name, "catch-all");
    }

    #[test]
    fn older_versions() {
        let v1beta2 = json!({"metadata": {"name": "x"}, "spec": {"type": "Limited", "limited": {"assuredConcurrencyShares": 7, "limitResponse": {"type": "Queue", "queuing": {"queues": 4, "handSize": 2, "queueLengthLimit": 10}}}}});
        let l = PriorityLevel::from_value(&v1beta2);
        assert_eq!((l.nominal_concurrency_shares, l.limit_response.as_str(), l.queues), (7, "Queue", 4));
        let unset = json!({"metadata": {"name": "y"}, "spec": {"type": "Limited", "limited": {}}});
        assert_eq!(PriorityLevel::from_value(&unset).nominal_concurrency_shares, 30);
        let fs = FlowSchema::from_value(
            &json!({"metadata": {"name": "f"}, "spec": {"priorityLevelConfiguration": {"name": "p"}}}),
        );
        assert_eq!((fs.precedence, fs.rules.len()), (1000, 0));
    }
}
