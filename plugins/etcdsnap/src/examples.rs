//! The Examples sections of `--help` (kubectl's style: a comment, then the command).

pub const ROOT: &str = "Examples:
  # A verified snapshot through the kubeconfig
  kubectl etcdsnap save --dir ./snapshots

  # Every member: health, leader, size, alarms
  kubectl etcdsnap members";

pub const SAVE: &str = "Examples:
  # Through a port-forward to a follower (the default), into a directory
  kubectl etcdsnap save --dir ./snapshots

  # On a control-plane node, without a kubeconfig
  kubectl etcdsnap save --via direct --endpoints https://127.0.0.1:2379 \\
    --etcd-cacert /etc/kubernetes/pki/etcd/ca.crt \\
    --etcd-cert /etc/kubernetes/pki/etcd/healthcheck-client.crt \\
    --etcd-key /etc/kubernetes/pki/etcd/healthcheck-client.key

  # Straight into S3, compressed (credentials from AWS_* or ~/.aws; AWS_ENDPOINT_URL for MinIO and others)
  kubectl etcdsnap save --compress zstd --to s3://backups/prod-eu/

  # A store whose certificate comes from a private CA (read as the AWS CLI reads it)
  AWS_CA_BUNDLE=/etc/pki/minio-ca.pem kubectl etcdsnap save --to s3://backups/prod-eu/";

pub const STATUS: &str = "Examples:
  # Integrity, revision, keys and objects per resource of a snapshot file
  kubectl etcdsnap status ./snapshots/etcd-snapshot.db

  # A snapshot in object storage (downloaded and checked against its record first)
  kubectl etcdsnap status s3://backups/prod-eu/etcd-prod-eu-cp-1-20261123T100000Z.db.zst";

pub const LS: &str = "Examples:
  # The snapshots of a directory, newest first, with their state
  kubectl etcdsnap ls ./snapshots
  kubectl etcdsnap ls s3://backups/prod-eu/";

pub const PRUNE: &str = "Examples:
  # Keep the 7 newest (the plan first, then --yes)
  kubectl etcdsnap prune ./snapshots --keep 7
  kubectl etcdsnap prune ./snapshots --keep 7 --yes

  # In object storage, per cluster by the records (objects without one are never touched)
  kubectl etcdsnap prune s3://backups/ --keep 7 --older-than 30d --yes";

pub const RESTORE_PLAN: &str = "Examples:
  # The exact commands to restore every member from one file
  kubectl etcdsnap restore-plan ./snapshots/etcd-snapshot.db";

pub const RESTORE: &str = "Examples:
  # Restore into a new local data directory (the plan first, then --yes)
  kubectl etcdsnap restore ./snapshots/etcd-snapshot.db --data-dir /tmp/etcd-restored --yes";

pub const DRILL: &str = "Examples:
  # Prove a snapshot restores: a throwaway etcd serves what status says
  kubectl etcdsnap drill ./snapshots/etcd-snapshot.db";

pub const MEMBERS: &str = "Examples:
  # Health, leader, sizes and alarms of every member; each has 3s to answer
  kubectl etcdsnap members --timeout 3s";

pub const DEFRAG: &str = "Examples:
  # Every member, followers first, the leader last (the plan first, then --yes)
  kubectl etcdsnap defrag --all
  kubectl etcdsnap defrag --all --yes";

pub const COMPACT: &str = "Examples:
  # Compact up to the current revision, then defragment
  kubectl etcdsnap compact --yes && kubectl etcdsnap defrag --all --yes";

pub const ALARM: &str = "Examples:
  # The alarms, then disarm them once the space is free
  kubectl etcdsnap alarm list
  kubectl etcdsnap alarm disarm --yes";

pub const ALARM_LIST: &str = "Examples:
  # NOSPACE or CORRUPT, with the member that raised it
  kubectl etcdsnap alarm list";

pub const ALARM_DISARM: &str = "Examples:
  # The last step of a NOSPACE recovery, after compact and defrag
  kubectl etcdsnap alarm disarm --yes";
