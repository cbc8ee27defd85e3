//! The Examples sections of `--help` (kubectl's style: a comment, then the command).

pub const ROOT: &str = "Examples:
  # Check the whole control plane of the current context
  kubectl cphealth

  # Every sub-check, fixes and the diagnosis in full
  kubectl cphealth -v

  # Only some checks; JSON for scripts (exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN)
  kubectl cphealth --only etcd,load -o json

  # Watch it while you fix something
  kubectl cphealth --watch --interval 10s";

pub const RBAC: &str = "Examples:
  # The read-only ClusterRole and binding for a group, ready to apply
  kubectl cphealth rbac --bind-group oncall | kubectl apply -f -";

pub const BUNDLE: &str = "Examples:
  # Everything support needs, without Secrets, keys or tokens
  kubectl cphealth bundle -f diag.tar.gz";
