//! Severity rules shared by every plugin, so that the same state gets the same verdict in
//! cphealth, apftop and webhookguard.

use crate::exit::Status;

/// Priority levels whose rejections hurt the cluster itself (controllers, nodes, leader
/// election); upstream's suggested configuration, kubernetes
/// `staging/src/k8s.io/apiserver/pkg/apis/flowcontrol/bootstrap/default.go`.
pub const SYSTEM_PRIORITY_LEVELS: [&str; 5] = ["exempt", "system", "node-high", "leader-election", "workload-high"];

/// APF rejecting requests of `level`: CRITICAL when the cluster's own traffic is refused,
/// WARNING when a workload's is (its clients retry; the control plane itself is fine).
pub fn apf_rejection(level: &str) -> Status {
    if SYSTEM_PRIORITY_LEVELS.contains(&level) { Status::Critical } else { Status::Warning }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejections_weigh_by_whose_traffic_is_refused() {
        assert_eq!(apf_rejection("leader-election"), Status::Critical);
        assert_eq!(apf_rejection("node-high"), Status::Critical);
        assert_eq!(apf_rejection("workload-low"), Status::Warning);
        assert_eq!(apf_rejection("global-default"), Status::Warning);
        assert_eq!(apf_rejection("my-team-pl"), Status::Warning);
    }
}
