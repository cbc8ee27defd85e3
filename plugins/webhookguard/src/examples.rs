//! The Examples sections of `--help` (kubectl's style: a comment, then the command).

pub const ROOT: &str = "Examples:
  # Every webhook that can lock the cluster, with its fix
  kubectl webhookguard

  # Manifests in CI, before they reach a cluster
  kubectl webhookguard scan -f manifests/ --fail-on critical";

pub const SCAN: &str = "Examples:
  # The live cluster
  kubectl webhookguard scan

  # Manifests, accepting known risks listed in a file
  kubectl webhookguard scan -f manifests/ --allowlist accepted.yaml";

pub const PROBE: &str = "Examples:
  # Can pods and configmaps be created in default and kube-system? Which webhook says no?
  kubectl webhookguard probe";

pub const DISARM: &str = "Examples:
  # The plan: what would change (nothing changes)
  kubectl webhookguard disarm pod-validator --mode ignore

  # Fail it open: backup, change, watch 5s for a controller putting it back, probe, undo
  kubectl webhookguard disarm validatingwebhookconfiguration/pod-validator --mode ignore --yes

  # Kyverno re-arms its configurations within seconds: pause it first (its Deployment
  # scaled to 0; the resume command is printed with the undo), then disarm and watch longer
  kubectl webhookguard disarm kyverno-resource-validating-webhook-cfg --mode ignore \\
    --pause-rearmers --yes --watch 10s";

pub const RESTORE: &str = "Examples:
  # Put the saved configuration back (refused while its backend is still down): the undo
  # disarm printed names the backup by its file name, found in this context's backup directory
  kubectl webhookguard restore pod-validator.validating.20261202T005301Z.json --yes
  # Or by its path
  kubectl webhookguard restore ~/.local/state/kubectl-webhookguard/backups/prod/FILE.json --yes";
