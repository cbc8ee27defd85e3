//! Check 4, `static-pods`: the control-plane static pods (kubeadm's mirror pods) of every
//! control-plane node, with their recent Warning events.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;

use crate::controlplane::{COMPONENTS, ComponentPod};
use crate::exit::Status;
use crate::report::{CheckResult, one_line};

/// A Warning event in kube-system.
#[derive(Debug, Clone, PartialEq)]
pub struct WarningEvent {
    /// The involved object's name.
    pub object: String,
    pub reason: String,
    pub count: i64,
    pub message: String,
    pub last_seen: Option<Timestamp>,
}

impl WarningEvent {
    /// Reads a core/v1 Event.
    pub fn from_event(e: &k8s_openapi::api::core::v1::Event) -> WarningEvent {
        WarningEvent {
            object: e.involved_object.name.clone().unwrap_or_default(),
            reason: e.reason.clone().unwrap_or_default(),
            count: e.count.map(i64::from).unwrap_or(1),
            message: e.message.clone().unwrap_or_default(),
            last_seen: e.last_timestamp.as_ref().map(|t| t.0).or(e.event_time.as_ref().map(|t| t.0)),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Facts<'a> {
    /// kube-system pods labelled tier=control-plane.
    pub pods: &'a [ComponentPod],
    /// The control-plane nodes (by role label; the pods' nodes when nodes cannot be listed).
    pub control_plane_nodes: Vec<String>,
    pub warning_events: Vec<WarningEvent>,
    /// The managed offering, when the control plane is one (its pods are not visible).
    pub managed: Option<&'static str>,
}

/// A restart within this window is recent enough to report.
const RECENT_SECS: i64 = 3600;

pub fn judge(f: &Facts, now: Timestamp) -> CheckResult {
    if f.pods.is_empty() {
        return match f.managed {
            Some(p) => CheckResult::skipped("static-pods", format!("not visible on a managed control plane ({p})")),
            None => CheckResult::skipped(
                "static-pods",
                "no control-plane pods (tier=control-plane) in kube-system: the control plane does not run as static pods here",
            ),
        };
    }
    let pods = f.pods;
    let stacked_etcd = pods.iter().any(|p| p.component == "etcd");
    let mut r = CheckResult::ok("static-pods", "");
    let mut problems = Vec::new();
    let mut ready_count = 0;
    let mut expected_total = 0;
    let mut failing_pods: Vec<&ComponentPod> = Vec::new();
    let mut missing_on: BTreeSet<&str> = BTreeSet::new();
    // (component, state word) → (pod, state): the same failure on every node reads as one.
    let mut not_ready: BTreeMap<(String, String), Vec<(String, String)>> = BTreeMap::new();
    for node in &f.control_plane_nodes {
        for component in COMPONENTS {
            if component == "etcd" && !stacked_etcd {
                continue;
            }
            expected_total += 1;
            // Another node's ready replica keeps the component served: a WARNING, not CRITICAL.
            let others_ready = pods.iter().any(|p| p.component == component && p.ready && &p.node != node);
            let degraded = if others_ready { Status::Warning } else { Status::Critical };
            let Some(pod) = pods.iter().find(|p| &p.node == node && p.component == component) else {
                r.raise(degraded);
                problems.push(format!("{component} missing on {node}"));
                r.sub(format!("{component}-{node}"), degraded, format!("no {component} mirror pod on {node}: the kubelet is down, the manifest is gone from /etc/kubernetes/manifests, or the API refuses the mirror pod (an admission webhook)"));
                missing_on.insert(node.as_str());
                continue;
            };
            let state = pod.state_text(now);
            if pod.ready {
                ready_count += 1;
                if pod.restarted_recently(now, RECENT_SECS) {
                    r.raise(Status::Warning);
                    problems.push(format!("{} restarted {} times (last {})", pod.name, pod.restarts, state));
                    r.sub(
                        pod.name.clone(),
                        Status::Warning,
                        format!("Ready but restarted recently: {} restarts, {state}", pod.restarts),
                    );
                } else {
                    r.sub(pod.name.clone(), Status::Ok, format!("Ready, {} restarts", pod.restarts));
                }
                continue;
            }
            r.raise(degraded);
            failing_pods.push(pod);
            not_ready
                .entry((pod.component.clone(), state.split(' ').next().unwrap_or("").to_string()))
                .or_default()
                .push((pod.name.clone(), state.clone()));
            r.sub(pod.name.clone(), degraded, format!("not Ready: {state}, {} restarts", pod.restarts));
            if pod.last_termination.as_ref().is_some_and(|t| t.reason == "OOMKilled") {
                r.fix(
                    format!("{} is OOM-killed: raise its memory limit in /etc/kubernetes/manifests/{}.yaml on {} (back the manifest up first), or find what inflates it (big LISTs, watch storms).", pod.name, pod.component, pod.node),
                    &[],
                    "medium: editing a static pod manifest restarts the pod",
                );
            }
        }
    }
    // Recent Warning events of these pods.
    let names: BTreeSet<&str> = pods.iter().map(|p| p.name.as_str()).collect();
    for e in &f.warning_events {
        if names.contains(e.object.as_str())
            && e.last_seen.is_some_and(|t| now.as_second() - t.as_second() < RECENT_SECS)
        {
            r.push_evidence(&format!("event {}", e.object), format!("{} ×{}: {}", e.reason, e.count, e.message));
        }
    }
    if problems.is_empty() && not_ready.is_empty() {
        let nodes = f.control_plane_nodes.len();
        r.message = format!(
            "{ready_count}/{expected_total} control-plane pods Ready on {nodes} node{}",
            if nodes == 1 { "" } else { "s" }
        );
        return r;
    }
    let mut parts: Vec<String> = not_ready
        .into_iter()
        .map(|((_, word), pods)| match pods.as_slice() {
            [(pod, state)] => format!("{pod} {state}"),
            _ => format!("{} {word}", pods.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>().join(", ")),
        })
        .collect();
    parts.append(&mut problems);
    r.message = one_line(&parts);
    if !missing_on.is_empty() {
        let nodes = missing_on.into_iter().collect::<Vec<&str>>().join(", ");
        r.fix(
            format!("On {nodes}: the kubelet's log says why it did not create the mirror pod (a refusing admission webhook is named there; see the webhooks check); check that the kubelet runs and the manifest is in /etc/kubernetes/manifests."),
            &[
                &format!("journalctl -u kubelet --since -30m | grep -i 'mirror pod'   # on {nodes}"),
                &format!("ls /etc/kubernetes/manifests   # on {nodes}"),
            ],
            "low: diagnosis",
        );
    }
    if !r.remediation.iter().any(|f| f.action.contains("OOM")) && !failing_pods.is_empty() {
        let mut nodes_of: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for p in &failing_pods {
            nodes_of.entry(p.component.as_str()).or_default().insert(p.node.as_str());
        }
        // Components failing on the same nodes share one "on …:" (not "on cp-3: …; on cp-3: …").
        let mut components_on: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for (component, nodes) in &nodes_of {
            components_on.entry(nodes.iter().copied().collect::<Vec<_>>().join(", ")).or_default().push(component);
        }
        let where_to_look: Vec<String> = components_on
            .iter()
            .map(|(nodes, components)| {
                let listings: Vec<String> = components.iter().map(|c| format!("`crictl ps -a --name {c}`")).collect();
                format!("on {nodes}: {}", listings.join(" and "))
            })
            .collect();
        let commands: Vec<String> = failing_pods
            .iter()
            .flat_map(|p| {
                [
                    format!("kubectl logs -n kube-system {} --previous --tail=100", p.name),
                    format!("kubectl describe pod -n kube-system {}", p.name),
                ]
            })
            .collect();
        r.fix(
            format!("Read why the container exits ({}, then `crictl logs` of the exited container); typical causes are expired certificates, a bad flag after an edit of /etc/kubernetes/manifests, or etcd being unreachable.", where_to_look.join("; ")),
            &commands.iter().map(String::as_str).collect::<Vec<_>>(),
            "low: diagnosis; fix one node at a time",
        );
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::testing::{at, now};
    use crate::controlplane::{Flags, Termination};

    /// (case, facts, ..., expected status, expected message)
    type Case = (&'static str, Vec<ComponentPod>, &'static [&'static str], Status, &'static str);

    fn pod(component: &str, node: &str, ready: bool) -> ComponentPod {
        ComponentPod {
            component: component.into(),
            name: format!("{component}-{node}"),
            namespace: "kube-system".into(),
            node: node.into(),
            phase: "Running".into(),
            ready,
            restarts: 0,
            waiting_reason: None,
            last_termination: None,
            host_ip: None,
            flags: Flags::default(),
            image: String::new(),
            container: component.into(),
        }
    }

    fn all(node: &str) -> Vec<ComponentPod> {
        COMPONENTS.iter().map(|c| pod(c, node, true)).collect()
    }

    fn crashing(component: &str, node: &str, reason: &str) -> ComponentPod {
        let mut p = pod(component, node, false);
        p.waiting_reason = Some("CrashLoopBackOff".into());
        p.restarts = 7;
        p.last_termination = Some(Termination { reason: reason.into(), exit_code: 1, finished_at: Some(at(-60)) });
        p
    }

    fn run(pods: Vec<ComponentPod>, nodes: &[&str]) -> CheckResult {
        let facts = Facts {
            pods: &pods,
            control_plane_nodes: nodes.iter().map(std::string::ToString::to_string).collect(),
            warning_events: Vec::new(),
            managed: None,
        };
        judge(&facts, now())
    }

    fn without(mut pods: Vec<ComponentPod>, name: &str) -> Vec<ComponentPod> {
        pods.retain(|p| p.name != name);
        pods
    }

    #[test]
    fn verdicts_by_what_is_missing_or_failing_where() {
        let three = || [all("cp-1"), all("cp-2"), all("cp-3")].concat();
        let cases: Vec<Case> = vec![
            ("all ready", three(), &["cp-1", "cp-2", "cp-3"], Status::Ok, "12/12 control-plane pods Ready on 3 nodes"),
            (
                "one apiserver crashing, others ready",
                [without(three(), "kube-apiserver-cp-2"), vec![crashing("kube-apiserver", "cp-2", "Error")]].concat(),
                &["cp-1", "cp-2", "cp-3"],
                Status::Warning,
                "kube-apiserver-cp-2 CrashLoopBackOff (last exit: Error, 60s ago)",
            ),
            (
                "the only scheduler crashing",
                [without(all("cp-1"), "kube-scheduler-cp-1"), vec![crashing("kube-scheduler", "cp-1", "Error")]]
                    .concat(),
                &["cp-1"],
                Status::Critical,
                "kube-scheduler-cp-1 CrashLoopBackOff",
            ),
            (
                "a mirror pod missing while others run",
                without(three(), "etcd-cp-3"),
                &["cp-1", "cp-2", "cp-3"],
                Status::Warning,
                "etcd missing on cp-3",
            ),
        ];
        for (case, pods, nodes, status, message) in cases {
            let r = run(pods, nodes);
            assert_eq!(r.status, status, "{case}: {}", r.message);
            assert!(r.message.starts_with(message), "{case}: {}", r.message);
        }
    }

    #[test]
    fn a_missing_mirror_pod_is_looked_for_on_its_node() {
        let three = [all("cp-1"), all("cp-2"), all("cp-3")].concat();
        let r = run(without(three, "etcd-cp-3"), &["cp-1", "cp-2", "cp-3"]);
        let fix = &r.remediation[0];
        assert!(fix.action.starts_with("On cp-3: "), "{fix:?}");
        assert!(fix.commands.iter().all(|c| c.ends_with("# on cp-3")), "{fix:?}");
    }

    #[test]
    fn the_same_failure_on_every_node_reads_as_one() {
        let pods: Vec<ComponentPod> = ["cp-1", "cp-2"]
            .iter()
            .flat_map(|n| {
                [without(all(n), &format!("kube-apiserver-{n}")), vec![crashing("kube-apiserver", n, "Error")]].concat()
            })
            .collect();
        let r = run(pods, &["cp-1", "cp-2"]);
        assert_eq!(r.status, Status::Critical);
        assert_eq!(r.message, "kube-apiserver-cp-1, kube-apiserver-cp-2 CrashLoopBackOff");
        assert!(
            r.remediation[0]
                .commands
                .contains(&"kubectl logs -n kube-system kube-apiserver-cp-2 --previous --tail=100".to_string())
        );
        // Where to look, each command once with its nodes.
        assert!(
            r.remediation[0].action.starts_with(
                "Read why the container exits (on cp-1, cp-2: `crictl ps -a --name kube-apiserver`, then `crictl logs`"
            ),
            "{}",
            r.remediation[0].action
        );
    }

    #[test]
    fn two_components_failing_on_one_node_name_it_once() {
        // The real apiserver-replica-down: cp-3's API server and, without it, its controller-manager.
        let pods = [
            all("cp-1"),
            without(without(all("cp-3"), "kube-apiserver-cp-3"), "kube-controller-manager-cp-3"),
            vec![crashing("kube-apiserver", "cp-3", "Error"), crashing("kube-controller-manager", "cp-3", "Error")],
        ]
        .concat();
        let r = run(pods, &["cp-1", "cp-3"]);
        let action = &r.remediation[0].action;
        assert!(
            action.starts_with("Read why the container exits (on cp-3: `crictl ps -a --name kube-apiserver` and `crictl ps -a --name kube-controller-manager`, then"),
            "{action}"
        );
    }

    #[test]
    fn a_missing_mirror_pod_says_where_to_read_why() {
        let r = run(without([all("cp-1"), all("cp-2")].concat(), "kube-scheduler-cp-2"), &["cp-1", "cp-2"]);
        assert_eq!(r.status, Status::Warning);
        assert_eq!(r.message, "kube-scheduler missing on cp-2");
        assert!(r.remediation[0].action.starts_with("On cp-2: the kubelet's log says why"), "{:?}", r.remediation);
        assert!(r.remediation[0].commands[0].starts_with("journalctl -u kubelet"));
    }

    #[test]
    fn an_oom_kill_gets_the_memory_fix_naming_the_manifest() {
        let pods = [without(all("cp-1"), "etcd-cp-1"), vec![crashing("etcd", "cp-1", "OOMKilled")]].concat();
        let r = run(pods, &["cp-1"]);
        assert_eq!(r.remediation.len(), 1);
        assert!(r.remediation[0].action.contains("/etc/kubernetes/manifests/etcd.yaml on cp-1"));
    }

    #[test]
    fn a_recent_restart_of_a_ready_pod_warns_and_events_are_evidence() {
        let mut pods = all("cp-1");
        pods[0].restarts = 2;
        pods[0].last_termination =
            Some(Termination { reason: "Error".into(), exit_code: 1, finished_at: Some(at(-600)) });
        let events = vec![
            WarningEvent {
                object: pods[0].name.clone(),
                reason: "BackOff".into(),
                count: 3,
                message: "Back-off restarting".into(),
                last_seen: Some(at(-300)),
            },
            WarningEvent {
                object: pods[0].name.clone(),
                reason: "Old".into(),
                count: 1,
                message: "yesterday".into(),
                last_seen: Some(at(-90_000)),
            },
        ];
        let facts =
            Facts { pods: &pods, control_plane_nodes: vec!["cp-1".into()], warning_events: events, managed: None };
        let r = judge(&facts, now());
        assert_eq!(r.status, Status::Warning);
        assert!(r.message.contains("restarted 2 times"), "{}", r.message);
        assert_eq!(r.evidence.len(), 1, "only the recent event: {:?}", r.evidence);
    }

    #[test]
    fn no_pods_is_skipped_and_says_why() {
        let managed = judge(
            &Facts { pods: &[], control_plane_nodes: vec![], warning_events: vec![], managed: Some("EKS") },
            now(),
        );
        assert_eq!(managed.status, Status::Skipped);
        assert!(managed.message.contains("managed control plane (EKS)"));
        let elsewhere =
            judge(&Facts { pods: &[], control_plane_nodes: vec![], warning_events: vec![], managed: None }, now());
        assert_eq!(elsewhere.status, Status::Skipped);
    }
}
