//! Check 9, `nodes`: Ready nodes, control-plane nodes first; conditions that distributions add
//! are shown, not judged.

use crate::controlplane::NodeSummary;
use crate::exit::Status;
use crate::report::{CheckResult, one_line};

/// NotReady workers named in the message (every one is a sub-check, and in JSON).
const NAMED: usize = 3;

pub fn judge(summary: &NodeSummary) -> CheckResult {
    let mut r = CheckResult::ok("nodes", "");
    r.push_evidence(
        "kubelet versions",
        summary.kubelet_versions.iter().map(|(v, n)| format!("{v} ×{n}")).collect::<Vec<_>>().join(", "),
    );
    let mut parts = Vec::new();
    if !summary.control_plane_not_ready.is_empty() {
        r.raise(Status::Critical);
        parts.push(format!("control-plane node NotReady: {}", summary.control_plane_not_ready.join(", ")));
        for n in &summary.control_plane_not_ready {
            r.sub(n.clone(), Status::Critical, "control-plane node NotReady".to_string());
        }
    }
    if summary.workers_not_ready > 0 {
        r.raise(Status::Warning);
        let names: Vec<&str> = summary.workers_not_ready_names.iter().take(NAMED).map(|(n, _)| n.as_str()).collect();
        let more = summary.workers_not_ready.saturating_sub(names.len());
        parts.push(format!(
            "{} worker{} NotReady ({}{})",
            summary.workers_not_ready,
            if summary.workers_not_ready == 1 { "" } else { "s" },
            names.join(", "),
            if more > 0 { format!(", and {more} more") } else { String::new() }
        ));
        for (name, reason) in &summary.workers_not_ready_names {
            r.sub(name.clone(), Status::Warning, format!("NotReady: {reason}"));
        }
    }
    if !parts.is_empty() {
        let first: Vec<String> = summary
            .control_plane_not_ready
            .iter()
            .map(|n| n.split(' ').next().unwrap_or(n).to_string())
            .chain(summary.workers_not_ready_names.iter().map(|(n, _)| n.clone()))
            .take(NAMED)
            .collect();
        let commands: Vec<String> = first.iter().map(|n| format!("kubectl describe node {n}")).collect();
        r.fix(
            "Check the kubelet on those nodes (`systemctl status kubelet`, `journalctl -u kubelet`), their node leases, and the network to the API server.",
            &commands.iter().map(String::as_str).collect::<Vec<_>>(),
            "low: diagnosis",
        );
    }
    if !summary.other_conditions.is_empty() {
        r.push_evidence(
            "other conditions",
            summary.other_conditions.iter().map(|(c, n)| format!("{c} ×{n}")).collect::<Vec<_>>().join(", "),
        );
    }
    if summary.control_plane == 1 && parts.is_empty() {
        // Worth knowing, not a fault.
        r.raise(Status::Note);
        parts.push("a single control-plane node: no HA".into());
    }
    parts.push(format!("{}/{} Ready ({} control-plane)", summary.ready, summary.total, summary.control_plane));
    r.message = one_line(&parts);
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Node;

    fn node(name: &str, control_plane: bool, ready: &str, extra: &[(&str, &str)]) -> Node {
        let mut conditions = vec![
            serde_json::json!({"type": "Ready", "status": ready, "reason": if ready == "True" { "KubeletReady" } else { "NodeStatusUnknown" }}),
        ];
        conditions.extend(extra.iter().map(|(t, s)| serde_json::json!({"type": t, "status": s})));
        let labels = if control_plane {
            serde_json::json!({"node-role.kubernetes.io/control-plane": ""})
        } else {
            serde_json::json!({})
        };
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": labels},
            "status": {"conditions": conditions, "nodeInfo": {"kubeletVersion": "v1.33.1", "architecture": "amd64", "bootID": "", "containerRuntimeVersion": "", "kernelVersion": "", "kubeProxyVersion": "", "machineID": "", "operatingSystem": "linux", "osImage": "", "systemUUID": ""}}
        }))
        .expect("a valid node")
    }

    fn summary(nodes: &[Node]) -> NodeSummary {
        let mut s = NodeSummary::default();
        nodes.iter().for_each(|n| s.add(n));
        s
    }

    #[test]
    fn verdicts_by_which_nodes_are_not_ready() {
        let workers =
            |n: usize, ready: &str| (0..n).map(|i| node(&format!("w-{i}"), false, ready, &[])).collect::<Vec<_>>();
        let three_cp = || (1..=3).map(|i| node(&format!("cp-{i}"), true, "True", &[])).collect::<Vec<_>>();
        let cases: Vec<(&str, Vec<Node>, Status, &str)> = vec![
            ("all ready", [three_cp(), workers(5, "True")].concat(), Status::Ok, "8/8 Ready (3 control-plane)"),
            (
                "single control plane",
                vec![node("cp-1", true, "True", &[])],
                Status::Note,
                "a single control-plane node: no HA",
            ),
            (
                "five workers NotReady",
                [three_cp(), workers(5, "Unknown")].concat(),
                Status::Warning,
                "5 workers NotReady (w-0, w-1, w-2, and 2 more)",
            ),
            (
                "a control-plane node NotReady",
                vec![node("cp-1", true, "Unknown", &[]), node("cp-2", true, "True", &[])],
                Status::Critical,
                "control-plane node NotReady: cp-1 (NodeStatusUnknown)",
            ),
            (
                "a distribution's condition is read, not flagged",
                vec![
                    node("cp-1", true, "True", &[("EtcdIsVoter", "True")]),
                    node("cp-2", true, "True", &[("EtcdIsVoter", "False")]),
                ],
                Status::Ok,
                "2/2 Ready",
            ),
        ];
        for (case, nodes, status, message) in cases {
            let r = judge(&summary(&nodes));
            assert_eq!(r.status, status, "{case}: {}", r.message);
            assert!(r.message.starts_with(message), "{case}: {}", r.message);
        }
    }

    #[test]
    fn every_not_ready_worker_is_a_sub_check_and_the_fix_names_nodes() {
        let nodes: Vec<Node> = (0..7).map(|i| node(&format!("w-{i}"), false, "False", &[])).collect();
        let r = judge(&summary(&nodes));
        assert_eq!(r.subchecks.len(), 7);
        assert_eq!(r.remediation[0].commands[0], "kubectl describe node w-0");
        let other = judge(&summary(&[node("cp-1", true, "True", &[("EtcdIsVoter", "True")])]));
        assert!(other.evidence.iter().any(|e| e.value == "EtcdIsVoter=True ×1"), "{:?}", other.evidence);
    }
}
