//! The Examples sections of `--help` (kubectl's style: a comment, then the command).

pub const ROOT: &str = "Examples:
  # The live view (tab switches views, q quits)
  kubectl apftop

  # One frame, for a ticket or a script
  kubectl apftop --once -o json

  # Each API server replica on its own
  kubectl apftop --per-replica";

pub const EXPLAIN: &str = "Examples:
  # Which FlowSchema and priority level serve this service account's LISTs of pods
  kubectl apftop explain --as system:serviceaccount:monitoring:prometheus \\
    --resource pods --verb list";

pub const CONFIG: &str = "Examples:
  # The configuration, its lint findings, and a FlowSchema that isolates the noisiest client
  kubectl apftop config";
