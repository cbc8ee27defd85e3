//! Check 8, `aggregated-apis`: APIServices served by a backend (not the API server itself)
//! that are not Available, or that read Available but do not answer discovery.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;

use crate::duration::{short_latency, short_limit};
use crate::exit::Status;
use crate::report::{CheckResult, one_line};

/// The `Available` condition.
#[derive(Debug, Clone, PartialEq)]
pub struct Availability {
    pub available: bool,
    pub reason: String,
    pub message: String,
    pub since: Option<Timestamp>,
}

/// What `GET /apis/<group>/<version>` (the discovery request every client makes) gave.
#[derive(Debug, Clone, PartialEq)]
pub enum Discovery {
    Answered {
        status: u16,
        took: Duration,
    },
    Failed(String),
    /// No answer within the probe's budget.
    Silent,
}

/// An aggregated API: an APIService with a backend service.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregatedApi {
    pub name: String,
    pub group: String,
    pub version: String,
    pub service_namespace: String,
    pub service_name: String,
    pub availability: Option<Availability>,
}

impl AggregatedApi {
    /// Reads an APIService; `None` for one the API server serves itself (no service).
    pub fn from_api_service(a: &APIService) -> Option<AggregatedApi> {
        let spec = a.spec.as_ref()?;
        let service = spec.service.as_ref()?;
        let availability = a
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Available"))
            .map(|c| Availability {
                available: c.status == "True",
                reason: c.reason.clone().unwrap_or_default(),
                message: c.message.clone().unwrap_or_default(),
                since: c.last_transition_time.as_ref().map(|t| t.0),
            });
        Some(AggregatedApi {
            name: a.metadata.name.clone().unwrap_or_default(),
            group: spec.group.clone().unwrap_or_default(),
            version: spec.version.clone().unwrap_or_default(),
            service_namespace: service.namespace.clone().unwrap_or_default(),
            service_name: service.name.clone().unwrap_or_default(),
            availability,
        })
    }

    /// The discovery path clients ask.
    pub fn discovery_path(&self) -> String {
        format!("/apis/{}/{}", self.group, self.version)
    }
}

#[derive(Debug, Clone)]
pub struct Facts {
    pub apis: Vec<(AggregatedApi, Discovery)>,
    /// The discovery probe's budget (said in the message when one is silent).
    pub probe_timeout: Duration,
}

pub fn judge(f: &Facts, now: Timestamp) -> CheckResult {
    let mut r = CheckResult::ok("aggregated-apis", "");
    let mut down = Vec::new();
    let mut slow = Vec::new();
    let mut fixes: Vec<String> = Vec::new();
    for (api, discovery) in &f.apis {
        let (name, namespace, service) = (&api.name, &api.service_namespace, &api.service_name);
        let svc = format!("{namespace}/{service}");
        let path = api.discovery_path();
        let answered = match discovery {
            Discovery::Silent => format!("GET {path} did not answer within {}", short_limit(f.probe_timeout)),
            Discovery::Failed(why) => format!("GET {path} failed: {why}"),
            Discovery::Answered { status, took } => format!("GET {path} answered {status} in {}", short_latency(*took)),
        };
        let answers_ok = matches!(discovery, Discovery::Answered { status, .. } if (200..300).contains(status));
        // Permission to read the group is not the API's health.
        let not_allowed = matches!(discovery, Discovery::Answered { status: 401 | 403, .. });
        let endpoints = format!("kubectl get endpointslices -n {namespace} -l kubernetes.io/service-name={service}");
        match &api.availability {
            Some(a) if a.available && (answers_ok || not_allowed) => {
                r.sub(name, Status::Ok, format!("Available ({svc}); {answered}"));
            }
            Some(a) if a.available => {
                r.sub(name, Status::Warning, format!("Available ({svc}), but {answered}"));
                slow.push(format!("{name} ({svc}) reads Available but {answered}"));
                fixes.push(endpoints);
            }
            cond => {
                let cond = cond.as_ref();
                let reason = cond
                    .map(|c| format!("{}: {}", c.reason, c.message))
                    .unwrap_or_else(|| "no Available condition".into());
                let since = cond
                    .and_then(|c| c.since)
                    .map(|t| format!(" for {}", crate::duration::age(t, now)))
                    .unwrap_or_default();
                r.sub(name, Status::Critical, format!("NOT Available{since} ({svc}): {reason}; {answered}"));
                let why = reason.split(':').next().unwrap_or(&reason);
                down.push(format!("{name} ({svc}) unavailable{since}: {why}"));
                fixes.push(endpoints);
                fixes.push(format!("kubectl get apiservice {name} -o yaml"));
                fixes.push(format!("kubectl delete apiservice {name}   # only if nothing needs this API"));
            }
        }
    }
    let total = f.apis.len();
    if down.is_empty() && slow.is_empty() {
        r.message = match total {
            0 => "no aggregated APIs".into(),
            1 => "1 aggregated API available".into(),
            n => format!("{n} aggregated APIs available"),
        };
        return r;
    }
    r.raise(if down.is_empty() { Status::Warning } else { Status::Critical });
    down.extend(slow);
    r.message = one_line(&down);
    let commands: Vec<&str> = fixes.iter().map(String::as_str).collect();
    r.fix(
        "An aggregated API that is unavailable or does not answer slows discovery for every client (kubectl waits on it) and breaks what uses it (HPA for metrics.k8s.io). Fix its backend pods behind the service, or delete the APIService if nothing needs it.",
        &commands,
        "medium: deleting an APIService removes that API until it is re-registered",
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::testing::{at, now};

    /// (case, facts, ..., expected status, expected message)
    type Case = (&'static str, Vec<(AggregatedApi, Discovery)>, Status, &'static str);

    fn api(name: &str, available: Option<bool>) -> AggregatedApi {
        let (version, group) = name.split_once('.').unwrap_or((name, ""));
        AggregatedApi {
            name: name.into(),
            group: group.into(),
            version: version.into(),
            service_namespace: "kube-system".into(),
            service_name: "metrics-server".into(),
            availability: available.map(|available| Availability {
                available,
                reason: if available { "Passed".into() } else { "FailedDiscoveryCheck".into() },
                message: if available { "all checks passed".into() } else { "failing or missing response".into() },
                since: Some(at(-600)),
            }),
        }
    }

    fn answered(status: u16) -> Discovery {
        Discovery::Answered { status, took: Duration::from_millis(5) }
    }

    fn run(apis: Vec<(AggregatedApi, Discovery)>) -> CheckResult {
        judge(&Facts { apis, probe_timeout: Duration::from_secs(3) }, now())
    }

    #[test]
    fn verdicts_by_availability_and_discovery() {
        let metrics = "v1beta1.metrics.k8s.io";
        let cases: Vec<Case> = vec![
            ("none", vec![], Status::Ok, "no aggregated APIs"),
            (
                "available and answering",
                vec![(api(metrics, Some(true)), answered(200))],
                Status::Ok,
                "1 aggregated API available",
            ),
            (
                "forbidden discovery is not ill health",
                vec![(api(metrics, Some(true)), answered(403))],
                Status::Ok,
                "1 aggregated API available",
            ),
            (
                "available but silent",
                vec![(api(metrics, Some(true)), Discovery::Silent)],
                Status::Warning,
                "v1beta1.metrics.k8s.io (kube-system/metrics-server) reads Available but GET /apis/metrics.k8s.io/v1beta1 did not answer within 3s",
            ),
            (
                "not available",
                vec![(api(metrics, Some(false)), answered(503))],
                Status::Critical,
                "v1beta1.metrics.k8s.io (kube-system/metrics-server) unavailable for 10m: FailedDiscoveryCheck",
            ),
            (
                "no condition yet",
                vec![(api(metrics, None), Discovery::Failed("503".into()))],
                Status::Critical,
                "v1beta1.metrics.k8s.io (kube-system/metrics-server) unavailable: no Available condition",
            ),
        ];
        for (case, apis, status, message) in cases {
            let r = run(apis);
            assert_eq!(r.status, status, "{case}: {}", r.message);
            assert_eq!(r.message, message, "{case}");
        }
    }

    #[test]
    fn the_fix_names_the_apiservice_and_its_service() {
        let r = run(vec![(api("v1beta1.metrics.k8s.io", Some(false)), answered(503))]);
        assert_eq!(
            r.remediation[0].commands,
            [
                "kubectl get endpointslices -n kube-system -l kubernetes.io/service-name=metrics-server",
                "kubectl get apiservice v1beta1.metrics.k8s.io -o yaml",
                "kubectl delete apiservice v1beta1.metrics.k8s.io   # only if nothing needs this API",
            ]
        );
    }

    #[test]
    fn reads_the_typed_apiservice() {
        let a: APIService = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "v1beta1.metrics.k8s.io"},
            "spec": {"group": "metrics.k8s.io", "version": "v1beta1", "groupPriorityMinimum": 100, "versionPriority": 100,
                     "service": {"namespace": "kube-system", "name": "metrics-server", "port": 443}},
            "status": {"conditions": [{"type": "Available", "status": "False", "reason": "MissingEndpoints", "message": "no endpoints", "lastTransitionTime": "2026-06-01T11:00:00Z"}]}
        }))
        .expect("a valid APIService");
        let read = AggregatedApi::from_api_service(&a).expect("has a service");
        assert_eq!(read.discovery_path(), "/apis/metrics.k8s.io/v1beta1");
        assert_eq!(read.availability.as_ref().map(|c| c.available), Some(false));
        let local: APIService = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "v1.apps"}, "spec": {"group": "apps", "version": "v1", "groupPriorityMinimum": 17800, "versionPriority": 15}
        }))
        .expect("a valid APIService");
        assert!(AggregatedApi::from_api_service(&local).is_none());
    }
}
