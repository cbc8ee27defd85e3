//! The runbook coverage map: every command and remediation step of the seed runbooks
//! (`tests/fixtures/seeds/`), each with the suite command that does it, or why not from a laptop,
//! or why not yet. `tests/runbook_coverage.rs` renders `docs/RUNBOOK-COVERAGE.md` from this and
//! runs every suite command named here against the demo cluster.

/// The seed documents, in the order of the map.
pub const DOCUMENTS: [&str; 5] = [
    "apiserver-troubleshooting.md",
    "apiserver-troubleshooting-extended.decoded.md",
    "control-plane-troubleshooting.md",
    "ha-dr-troubleshooting.md",
    "ha-recovery-strategy.md",
];

/// One step of a seed: a command line of a code block (continuations and heredoc bodies
/// joined), or one Kubernetes object of a YAML block.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub document: &'static str,
    /// The heading the step is under.
    pub section: String,
    pub line: usize,
    /// The comment or heading that says what the step is for.
    pub purpose: String,
    pub command: String,
}

/// Programs whose invocation is a step (in blocks not marked `bash`, only these count: the
/// others hold trees, outputs and YAML).
const PROGRAMS: &[&str] = &[
    "kubectl",
    "etcdctl",
    "etcdutl",
    "curl",
    "systemctl",
    "journalctl",
    "crictl",
    "docker",
    "ss",
    "netstat",
    "iptables",
    "firewall-cmd",
    "ufw",
    "openssl",
    "kubeadm",
    "cat",
    "ls",
    "cp",
    "mv",
    "rm",
    "mkdir",
    "chmod",
    "ps",
    "pgrep",
    "top",
    "free",
    "df",
    "du",
    "vmstat",
    "ping",
    "nc",
    "ssh",
    "ip",
    "find",
    "tar",
    "vim",
    "python3",
    "kube-apiserver",
    "fio",
    "time",
    "grep",
];

/// Shell syntax and script plumbing, never a step.
const NOT_STEPS: &[&str] = &[
    "do",
    "done",
    "then",
    "fi",
    "else",
    "elif",
    "esac",
    "{",
    "}",
    "echo",
    "printf",
    "set",
    "local",
    "return",
    "exit",
    "break",
    "continue",
    "sleep",
    "wait",
    "read",
    "shift",
    "case",
    ";;",
    "function",
    "trap",
    "export",
    "log",
    "send_alert",
    "main",
    "print",
];

fn is_assignment(word: &str) -> bool {
    match word.split_once('=') {
        Some((name, _)) => {
            !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit())
        }
        None => false,
    }
}

/// The command a line runs: `if ! curl ...; then` → `curl ...`, `X=$(kubectl ...)` →
/// `kubectl ...`, `sudo`/`VAR=value` prefixes kept. `None` for syntax and plumbing.
fn command_of(line: &str) -> Option<String> {
    let mut s = line.trim();
    for prefix in ["if ! ", "if ", "elif ", "while ", "until "] {
        if let Some(rest) = s.strip_prefix(prefix) {
            s = rest.trim();
        }
    }
    for suffix in ["; then", "; do"] {
        if let Some(rest) = s.strip_suffix(suffix) {
            s = rest.trim();
        }
    }
    let s = s.trim_start_matches('!').trim();
    let inner = match s.split_once("=$(") {
        Some((name, rest)) if is_assignment(&format!("{name}=")) && !name.contains(' ') => {
            rest.strip_suffix(')').unwrap_or(rest).trim().to_string()
        }
        _ => s.to_string(),
    };
    let program = inner
        .split_whitespace()
        .find(|w| !is_assignment(w) && *w != "sudo")
        .map(|w| w.split(['(', ';']).next().unwrap_or(w))?;
    if NOT_STEPS.contains(&program) || program.ends_with("()") || inner.ends_with("() {") {
        return None;
    }
    PROGRAMS.contains(&program).then_some(inner)
}

/// The steps of one seed document.
pub fn extract(document: &'static str, text: &str) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let mut section = String::new();
    let mut purpose = String::new();
    let mut in_block = false;
    let mut block_indent = 0;
    let mut continued = false;
    let mut heredoc: Option<String> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim();
        if trimmed.starts_with("```") {
            in_block = !in_block;
            purpose.clear();
            block_indent = usize::MAX;
            continued = false;
            heredoc = None;
            continue;
        }
        if !in_block {
            if let Some(heading) = trimmed.strip_prefix('#').filter(|_| raw.starts_with('#')) {
                section = heading.trim_start_matches('#').trim().to_string();
                purpose.clear();
            }
            continue;
        }
        if !trimmed.is_empty() && block_indent == usize::MAX {
            block_indent = raw.len() - raw.trim_start().len();
        }
        if let Some(end) = &heredoc {
            if let Some(step) = steps.last_mut() {
                step.command.push('\n');
                step.command.push_str(raw);
            }
            if trimmed == end {
                heredoc = None;
            }
            continue;
        }
        if continued {
            if let Some(step) = steps.last_mut() {
                step.command = format!("{} {trimmed}", step.command.trim_end_matches('\\').trim_end());
            }
            continued = trimmed.ends_with('\\');
            continue;
        }
        if trimmed.is_empty() {
            continue;
        }
        if let Some(comment) = trimmed.strip_prefix('#') {
            if !comment.starts_with('!') {
                purpose = comment.trim().to_string();
            }
            continue;
        }
        // A Kubernetes object of a YAML block is one step: applying it.
        if let Some(kind) = trimmed.strip_prefix("kind: ")
            && raw.len() - raw.trim_start().len() == block_indent
        {
            steps.push(Step {
                document,
                section: section.clone(),
                line,
                purpose: purpose.clone(),
                command: format!("(YAML) kind: {kind}"),
            });
            continue;
        }
        let Some(command) = command_of(trimmed) else { continue };
        continued = command.ends_with('\\');
        heredoc = heredoc_end(&command);
        steps.push(Step { document, section: section.clone(), line, purpose: purpose.clone(), command });
    }
    steps
}

fn heredoc_end(command: &str) -> Option<String> {
    let (_, rest) = command.split_once("<<")?;
    let word = rest.trim_start().trim_start_matches('-').trim_start();
    let word: String =
        word.trim_start_matches(['\'', '"']).chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
    (!word.is_empty()).then_some(word)
}

/// What the suite does about a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coverage {
    /// The suite command that does it from a laptop (placeholders in capitals: FILE, NAME, DIR).
    Suite(&'static str),
    /// It needs a shell on a node (or the load balancer's host), with why.
    NotFromLaptop(&'static str),
    /// Not done by the suite, with why.
    NotDone(&'static str),
    /// The seed is wrong here: the upstream fact, and what the suite does instead.
    SeedWrong { fact: &'static str, instead: &'static str },
}

/// A rule: every needle (lowercase) appears in the step, none of `unless` does.
struct Rule {
    all: &'static [&'static str],
    unless: &'static [&'static str],
    coverage: Coverage,
}

const fn rule(all: &'static [&'static str], coverage: Coverage) -> Rule {
    Rule { all, unless: &[], coverage }
}

const fn rule_unless(all: &'static [&'static str], unless: &'static [&'static str], coverage: Coverage) -> Rule {
    Rule { all, unless, coverage }
}

use Coverage::{NotDone, NotFromLaptop, SeedWrong, Suite};

const NODE_LOGS: Coverage = NotFromLaptop(
    "the node's journal and the container runtime's logs; from a laptop, `kubectl cphealth bundle` collects the control-plane pods' last log lines",
);
const NODE_PROCESS: Coverage = NotFromLaptop(
    "process state on the node; from a laptop the control-plane pods' state is `kubectl cphealth --only static-pods`",
);
const NODE_NETWORK: Coverage = NotFromLaptop(
    "sockets, routes and firewall rules of the node; from a laptop cphealth dials every replica and names what fails (refused, timeout, TLS)",
);
const NODE_FILES: Coverage = NotFromLaptop(
    "files on the node; the mirror pods carry the static pod manifests, and cphealth reads the flags it judges from them (inflight limits, etcd quota, leader election)",
);
const NODE_HOST: Coverage = NotFromLaptop("the node's own CPU, memory and disks: a shell on the node or node_exporter");
const LOAD_BALANCER: Coverage = NotFromLaptop(
    "the load balancer's host; from a laptop `kubectl cphealth --only replicas` compares each replica with what the load balancer answers",
);
const KUBEADM: Coverage = NotFromLaptop(
    "kubeadm acts on the node's files and certificates; cphealth prints the kubeadm sequence as its fix when certificates expire",
);
const RESTART_STATIC_POD: Coverage = NotFromLaptop(
    "a static pod restarts when its manifest leaves /etc/kubernetes/manifests and comes back (on the node); cphealth's fixes say so",
);

/// Seed errors first: a wrong command must not be mapped as if it worked.
const RULES: &[Rule] = &[
    rule(
        &["componentstatuses"],
        SeedWrong {
            fact: "componentstatuses is deprecated since 1.19 and only ever saw components on the API server's host ([kubernetes#93570](https://github.com/kubernetes/kubernetes/pull/93570))",
            instead: "kubectl cphealth",
        },
    ),
    rule_unless(
        &["get cs"],
        &["get csr"],
        SeedWrong {
            fact: "componentstatuses is deprecated since 1.19 and only ever saw components on the API server's host ([kubernetes#93570](https://github.com/kubernetes/kubernetes/pull/93570))",
            instead: "kubectl cphealth",
        },
    ),
    rule(
        &["rollout restart", "kube-apiserver"],
        SeedWrong {
            fact: "kubeadm runs kube-apiserver, kube-controller-manager and kube-scheduler as static pods, not Deployments: the command fails with NotFound ([kubeadm implementation details](https://kubernetes.io/docs/reference/setup-tools/kubeadm/implementation-details/))",
            instead: "move the manifest out of /etc/kubernetes/manifests and back, one node at a time (cphealth's certificate fix)",
        },
    ),
    rule(
        &["delete pod", "component="],
        SeedWrong {
            fact: "deleting a mirror pod does not restart its static pod: the kubelet only recreates the mirror ([Create static Pods](https://kubernetes.io/docs/tasks/configure-pod-container/static-pod/))",
            instead: "move the manifest out of /etc/kubernetes/manifests and back on that node",
        },
    ),
    rule(
        &["/etc/kubernetes/admin.conf", ".kube/config", "cp "],
        SeedWrong {
            fact: "copying admin.conf over ~/.kube/config replaces every other context of the user's kubeconfig ([kubeconfig files](https://kubernetes.io/docs/concepts/configuration/organize-cluster-access-kubeconfig/))",
            instead: "cphealth's expiry fix: take the renewed client certificate into your kubeconfig's user (`kubectl config set-credentials --embed-certs`)",
        },
    ),
    rule(
        &["kubeadm kubeconfig user", "--client-name="],
        SeedWrong {
            fact: "`kubeadm certs renew all` already renews admin.conf, controller-manager.conf and scheduler.conf; a kubeconfig for client name kube-controller-manager or kube-scheduler (not system:kube-…) is a user RBAC does not know ([Certificate Management with kubeadm](https://kubernetes.io/docs/tasks/administer-cluster/kubeadm/kubeadm-certs/))",
            instead: "kubeadm certs renew all on each control-plane node (cphealth's fix)",
        },
    ),
    rule(
        &["get endpoints kube-controller-manager"],
        SeedWrong {
            fact: "kube-controller-manager and kube-scheduler elect their leader through Leases since 1.20 ([kubernetes#94603](https://github.com/kubernetes/kubernetes/pull/94603)): the Endpoints object no longer names the leader",
            instead: "kubectl cphealth --only leader-election",
        },
    ),
    rule(
        &["get endpoints kube-scheduler"],
        SeedWrong {
            fact: "kube-controller-manager and kube-scheduler elect their leader through Leases since 1.20 ([kubernetes#94603](https://github.com/kubernetes/kubernetes/pull/94603)): the Endpoints object no longer names the leader",
            instead: "kubectl cphealth --only leader-election",
        },
    ),
    rule(
        &["flowcontrol.apiserver.k8s.io/v1beta3"],
        SeedWrong {
            fact: "flowcontrol.apiserver.k8s.io/v1beta3 is not served since 1.32 ([Deprecated API Migration Guide](https://kubernetes.io/docs/reference/using-api/deprecation-guide/#v1-32)); v1 is served since 1.29",
            instead: "kubectl apftop config (prints a v1 FlowSchema that isolates the noisy client)",
        },
    ),
    rule_unless(
        &["etcdctl", "--initial-advertise-peer-urls"],
        &["snapshot restore"],
        SeedWrong {
            fact: "etcdctl has no --name/--initial-* flags outside `snapshot restore`: those are etcd's own ([etcdctl README](https://github.com/etcd-io/etcd/blob/main/etcdctl/README.md))",
            instead: "kubectl etcdsnap restore-plan FILE",
        },
    ),
    rule(
        &["etcdctl", "/registry/admissionregistration"],
        SeedWrong {
            fact: "webhooks are never called for webhook configurations, so `kubectl delete` or `patch` of a configuration works through the API even during a lockout ([Dynamic Admission Control](https://kubernetes.io/docs/reference/access-authn-authz/extensible-admission-controllers/)); editing etcd behind the API server is never needed for it",
            instead: "kubectl webhookguard disarm NAME --mode ignore",
        },
    ),
    rule(
        &["kubeadm alpha certs"],
        SeedWrong {
            fact: "`kubeadm alpha certs` became `kubeadm certs` in 1.20; the alpha form was deprecated then and is gone from current kubeadm ([kubeadm certs](https://kubernetes.io/docs/reference/setup-tools/kubeadm/kubeadm-certs/))",
            instead: "kubeadm certs renew all on each control-plane node (cphealth's fix)",
        },
    ),
    rule(
        &["kind: cronjob", "etcdctl compact"],
        NotDone(
            "scheduled compaction is redundant: kube-apiserver compacts etcd every 5 minutes ([--etcd-compaction-interval](https://kubernetes.io/docs/reference/command-line-tools-reference/kube-apiserver/)); defragment on demand with `kubectl etcdsnap defrag --all`",
        ),
    ),
    rule(
        &["describe pod <pending"],
        NotDone(
            "why a workload pod is Pending is `kubectl describe`'s job; cphealth checks that the scheduler runs and holds its lease",
        ),
    ),
    rule(&["calico"], NotDone("CNI pods are outside the control plane the suite checks")),
    rule(
        &["certificate-authority-data"],
        NotDone(
            "the kubeconfig CA's own expiry is not reported yet; cphealth verifies the serving chain against it and reports the client certificate",
        ),
    ),
    rule(&["time kubectl get"], Suite("kubectl cphealth --only load")),
    rule(
        &["cp -r /etc/kubernetes", "$log_dir"],
        SeedWrong {
            fact: "copies the private keys of /etc/kubernetes/pki and the credentials of admin.conf into a diagnostics archive that gets shared ([PKI certificates](https://kubernetes.io/docs/setup/best-practices/certificates/))",
            instead: "kubectl cphealth bundle -f FILE (no Secrets, keys or tokens; control-plane pod specs with env values stripped)",
        },
    ),
    rule(&["kubectl logs", "flannel"], NotDone("CNI pods are outside the control plane the suite checks")),
    rule(
        &["kubectl logs", "kube-proxy"],
        NotDone("kube-proxy runs on every node, outside the control plane the suite checks"),
    ),
    rule(
        &["kubectl apply", "prometheusrule"],
        NotDone(
            "alerting rules are Prometheus's: `kubectl cphealth -o json` exits 0/1/2 for any scheduler or alerting wrapper",
        ),
    ),
    rule(&["kubectl apply -f deployment.yaml"], Suite("kubectl webhookguard probe")),
    rule(
        &["scale deploy"],
        NotDone(
            "scaling a client down is its owner's call; `kubectl apftop` names the client, `kubectl apftop config` prints a FlowSchema that isolates it",
        ),
    ),
    rule(
        &["set resources deployment"],
        NotDone(
            "repairing a webhook's backend is its owner's job; `kubectl webhookguard scan` shows when its endpoints are ready again",
        ),
    ),
    rule(
        &["rollout status deployment"],
        NotDone(
            "repairing a webhook's backend is its owner's job; `kubectl webhookguard scan` shows when its endpoints are ready again",
        ),
    ),
    rule(&[":2379/health"], Suite("kubectl etcdsnap members")),
    rule(&["get deployments -n kube-system"], Suite("kubectl cphealth --only static-pods")),
    rule(&["get pod ", "-n kube-system"], Suite("kubectl cphealth --only static-pods")),
    // Health endpoints.
    rule(&["/healthz"], Suite("kubectl cphealth --only health")),
    rule(&["/livez"], Suite("kubectl cphealth --only health")),
    rule(&["/readyz"], Suite("kubectl cphealth --only health")),
    rule(&["nginx_status"], LOAD_BALANCER),
    // /metrics.
    rule(&["/metrics", "apiserver_flowcontrol"], Suite("kubectl apftop")),
    rule(&["/metrics", "go_goroutines"], Suite("kubectl cphealth --only resources")),
    rule(&["/metrics", "process_"], Suite("kubectl cphealth --only resources")),
    rule(&["/metrics"], Suite("kubectl cphealth --only load")),
    rule(&["/debug/api_priority_and_fairness"], Suite("kubectl apftop")),
    rule(&["get flowschema"], Suite("kubectl apftop config")),
    rule(&["get prioritylevelconfiguration"], Suite("kubectl apftop config")),
    rule(&["kind: flowschema"], Suite("kubectl apftop config")),
    rule(&["kind: prioritylevelconfiguration"], Suite("kubectl apftop config")),
    rule(
        &["audit.log"],
        NotFromLaptop(
            "the audit log is a file on the node; from a laptop `kubectl apftop` names the clients that load each priority level",
        ),
    ),
    // Resources of the API server process.
    rule(&["/proc/$(pgrep kube-apiserver)/limits"], Suite("kubectl cphealth --only resources")),
    rule(&["/proc/$(pgrep kube-apiserver)/fd"], Suite("kubectl cphealth --only resources")),
    rule(&["top -p $(pgrep kube-apiserver)"], Suite("kubectl cphealth --only resources")),
    rule(
        &["limitnofile"],
        NotFromLaptop(
            "raising the open-files limit is a node-side change; `kubectl cphealth --only resources` says when it is needed, on which replica, and how",
        ),
    ),
    rule(
        &["kubectl top node"],
        NotDone(
            "node usage needs metrics-server and is outside the control plane; cphealth reads the control-plane processes (`--only resources`)",
        ),
    ),
    rule(&["kubectl top pod"], Suite("kubectl cphealth --only resources")),
    // etcd.
    rule(&["snapshot save"], Suite("kubectl etcdsnap save --dir DIR")),
    rule(&["etcd-backup.sh"], Suite("kubectl etcdsnap save --dir DIR")),
    rule(&["snapshot status"], Suite("kubectl etcdsnap status FILE")),
    rule(&["snapshot restore"], Suite("kubectl etcdsnap restore-plan FILE")),
    rule(&["etcdctl", "defrag"], Suite("kubectl etcdsnap defrag --all")),
    rule(&["etcdctl", "compact"], Suite("kubectl etcdsnap compact")),
    rule(&["etcdctl", "alarm disarm"], Suite("kubectl etcdsnap alarm disarm")),
    rule(&["etcdctl", "alarm"], Suite("kubectl etcdsnap alarm list")),
    rule(
        &["etcdctl", "member remove"],
        NotDone(
            "membership changes are not automated: `kubectl etcdsnap members` names the member ID, `restore-plan` the per-member commands",
        ),
    ),
    rule(
        &["etcdctl", "member add"],
        NotDone(
            "membership changes are not automated: `kubectl etcdsnap members` names the member ID, `restore-plan` the per-member commands",
        ),
    ),
    rule(&["etcdctl", "member list"], Suite("kubectl etcdsnap members")),
    rule(&["etcdctl", "endpoint"], Suite("kubectl etcdsnap members")),
    rule(&["etcd_mvcc_db"], Suite("kubectl etcdsnap members")),
    rule(&["fio"], NotFromLaptop("disk benchmarks run on the node's disk")),
    rule(&["time etcdctl"], Suite("kubectl etcdsnap members")),
    rule(&["/var/lib/etcd"], NODE_FILES),
    rule(&["/backup/etcd"], Suite("kubectl etcdsnap ls DIR")),
    rule(&["-name \"etcd-snapshot-*.db\""], Suite("kubectl etcdsnap prune --older-than 7d DIR")),
    rule(&["$backup_dir"], Suite("kubectl etcdsnap save --dir DIR")),
    rule(
        &["kind: cronjob"],
        NotDone(
            "scheduling: run `kubectl etcdsnap save` from a CronJob or a systemd timer; no manifest is shipped yet",
        ),
    ),
    // Certificates.
    rule(&["openssl s_client"], Suite("kubectl cphealth --only apiserver,replicas")),
    rule(&["openssl x509", "etcd"], Suite("kubectl cphealth --only etcd")),
    rule(&["openssl x509", "apiserver.crt"], Suite("kubectl cphealth --only apiserver,replicas")),
    rule(
        &["openssl req"],
        NotDone(
            "simulating an expired certificate on a node; the test kit does it (`democluster --scenario certs-expired`)",
        ),
    ),
    rule(
        &["openssl x509"],
        NotFromLaptop(
            "certificate files on the node; from a laptop cphealth reads every certificate it can reach (each replica's serving certificate, etcd's through the etcd pod, your client certificate)",
        ),
    ),
    rule(
        &["kubeadm certs check-expiration"],
        NotFromLaptop(
            "reads /etc/kubernetes/pki on the node; from a laptop `kubectl cphealth --only apiserver,replicas,etcd` checks the serving, etcd and client certificates",
        ),
    ),
    rule(&["kubeadm"], KUBEADM),
    rule(&["kind: kubeletconfiguration"], NotFromLaptop("the kubelet's configuration file on each node")),
    // Webhooks and admission.
    rule(&["delete validatingwebhookconfiguration"], Suite("kubectl webhookguard disarm NAME --mode delete")),
    rule(&["delete mutatingwebhookconfiguration"], Suite("kubectl webhookguard disarm NAME --mode delete")),
    rule(&["patch validatingwebhookconfiguration"], Suite("kubectl webhookguard disarm NAME --mode ignore")),
    rule(&["patch mutatingwebhookconfiguration"], Suite("kubectl webhookguard disarm NAME --mode ignore")),
    rule(&["webhookconfiguration"], Suite("kubectl webhookguard scan")),
    rule(&["apiservice"], Suite("kubectl cphealth --only aggregated-apis")),
    rule(&["kubectl get --raw /apis"], Suite("kubectl cphealth --only aggregated-apis")),
    rule(&["api-resources"], Suite("kubectl cphealth --only aggregated-apis")),
    rule(&["auth can-i"], Suite("kubectl cphealth rbac")),
    // Control-plane objects.
    rule(&["get lease"], Suite("kubectl cphealth --only leader-election")),
    rule(&["get endpoints kubernetes"], Suite("kubectl cphealth --only replicas")),
    rule(&["kubectl --server="], Suite("kubectl cphealth --only replicas")),
    rule(&["cluster-info"], Suite("kubectl cphealth --only apiserver")),
    rule(&["kubectl logs"], Suite("kubectl cphealth bundle -f FILE")),
    rule(&["k8s-diagnostics"], Suite("kubectl cphealth bundle -f FILE")),
    rule_unless(&["get pods", "kube-system"], &["app=flannel"], Suite("kubectl cphealth --only static-pods")),
    rule(&["get pod", "kube-apiserver"], Suite("kubectl cphealth --only static-pods")),
    rule(&["describe pod"], Suite("kubectl cphealth --only static-pods")),
    rule(
        &["get events", "--all-namespaces"],
        NotDone("the bundle keeps kube-system's events; other namespaces' events are `kubectl get events -A`"),
    ),
    rule(
        &["get events -a"],
        NotDone("the bundle keeps kube-system's events; other namespaces' events are `kubectl get events -A`"),
    ),
    rule(&["get events"], Suite("kubectl cphealth bundle -f FILE")),
    rule(&["app=flannel"], NotDone("CNI pods are outside the control plane the suite checks")),
    rule(
        &["get pods -a"],
        NotDone("workload pods are outside the control plane the suite checks: `kubectl get pods -A`"),
    ),
    rule(
        &["get pods --all-namespaces"],
        NotDone("workload pods are outside the control plane the suite checks: `kubectl get pods -A`"),
    ),
    rule(&["get nodes"], Suite("kubectl cphealth --only nodes")),
    rule(&["describe node"], Suite("kubectl cphealth --only nodes")),
    rule(
        &["kubectl get pods"],
        NotDone("workload pods are outside the control plane the suite checks: `kubectl get pods -A`"),
    ),
    rule(&["kubectl get svc"], NotDone("services are outside the control plane the suite checks")),
    rule(&["kubectl", "$log_dir"], Suite("kubectl cphealth bundle -f FILE")),
    rule(&["mkdir -p $log_dir"], Suite("kubectl cphealth bundle -f FILE")),
    rule(&["kubectl delete pod"], NotDone("restarting pods is kubectl's own; the suite does not delete pods")),
    rule(
        &["kubectl cordon"],
        NotDone("node lifecycle is kubectl's own (cordon, drain, delete); the suite does not change nodes"),
    ),
    rule(
        &["kubectl drain"],
        NotDone("node lifecycle is kubectl's own (cordon, drain, delete); the suite does not change nodes"),
    ),
    rule(
        &["kubectl delete node"],
        NotDone("node lifecycle is kubectl's own (cordon, drain, delete); the suite does not change nodes"),
    ),
    rule(&["kubectl run"], NotDone("in-cluster DNS and pod networking are outside the control plane the suite checks")),
    rule(
        &["kubectl create clusterrolebinding"],
        NotDone("kubelet certificate rotation RBAC is node bootstrap, outside the suite"),
    ),
    rule(&["kubectl get pods"], NotDone("workload pods are outside the control plane the suite checks")),
    rule(&["(yaml) kind: poddisruptionbudget"], NotDone("workload availability settings are outside the suite")),
    rule(&["(yaml) kind: pod"], NODE_FILES),
    rule(
        &["(yaml) kind: prometheusrule"],
        NotDone(
            "alerting rules are Prometheus's: `kubectl cphealth -o json` exits 0/1/2 for any scheduler or alerting wrapper",
        ),
    ),
    rule(&["(yaml) kind:"], NotDone("a manifest for a workload or add-on, outside the control plane the suite checks")),
    // Node-side only.
    rule(&["journalctl"], NODE_LOGS),
    rule(&["crictl logs"], NODE_LOGS),
    rule(&["crictl"], NODE_PROCESS),
    rule(&["systemctl", "haproxy"], LOAD_BALANCER),
    rule(&["systemctl", "keepalived"], LOAD_BALANCER),
    rule(&["/etc/haproxy"], LOAD_BALANCER),
    rule(&["ip addr show"], LOAD_BALANCER),
    rule(
        &["systemctl"],
        NotFromLaptop("systemd units on the node (kubelet, container runtime, etcd or API server run by systemd)"),
    ),
    rule(&["ps aux"], NODE_PROCESS),
    rule(&["pgrep"], NODE_PROCESS),
    rule(&["ss -"], NODE_NETWORK),
    rule(&["netstat"], NODE_NETWORK),
    rule(&["iptables"], NODE_NETWORK),
    rule(&["firewall-cmd"], NODE_NETWORK),
    rule(&["ufw"], NODE_NETWORK),
    rule(&["ip "], NODE_NETWORK),
    rule(&["ping"], NODE_NETWORK),
    rule(&["nc -zv"], NODE_NETWORK),
    rule(
        &["curl -x post"],
        NotDone("chat alerts are the caller's; `kubectl cphealth -o json` gives the verdict to send"),
    ),
    rule(&["mv ", "/etc/kubernetes/manifests"], RESTART_STATIC_POD),
    rule(&["kube-apiserver --help"], NotFromLaptop("the kube-apiserver binary of the node's version")),
    rule(&["/etc/kubernetes"], NODE_FILES),
    rule(&["/etc/cni"], NODE_FILES),
    rule(&["/var/lib/kubelet"], NODE_FILES),
    rule(&["/etc/systemd"], NODE_FILES),
    rule(&["/usr/local/bin"], NODE_FILES),
    rule(&["free"], NODE_HOST),
    rule(&["df "], NODE_HOST),
    rule(&["df -h"], NODE_HOST),
    rule(&["vmstat"], NODE_HOST),
    rule(&["top"], NODE_HOST),
    rule(&["du "], NODE_HOST),
    rule(&["ssh"], NotFromLaptop("runs on the node through ssh")),
    rule(&["mkdir -p"], NODE_FILES),
];

/// The coverage of a step; `None` when no rule knows it (the test fails on those).
pub fn classify(command: &str) -> Option<Coverage> {
    let text = command.to_lowercase();
    RULES
        .iter()
        .find(|r| r.all.iter().all(|n| text.contains(n)) && !r.unless.iter().any(|n| text.contains(n)))
        .map(|r| r.coverage)
}

/// The suite commands the map names (distinct, in order of first use).
pub fn suite_commands(steps: &[Step]) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for step in steps {
        let command = match classify(&step.command) {
            Some(Suite(c)) => c,
            Some(SeedWrong { instead, .. }) if instead.starts_with("kubectl ") => {
                instead.split(" (").next().unwrap_or(instead)
            }
            _ => continue,
        };
        if !out.contains(&command) {
            out.push(command);
        }
    }
    out
}

fn one_line(command: &str) -> String {
    let first = command.lines().next().unwrap_or("");
    let mut text = first.replace('|', "\\|");
    if command.contains('\n') {
        text.push_str(" … (heredoc)");
    }
    const WIDTH: usize = 110;
    if text.chars().count() > WIDTH {
        text = text.chars().take(WIDTH - 1).collect::<String>() + "…";
    }
    text
}

/// The Markdown map.
pub fn render(documents: &[(&'static str, Vec<Step>)]) -> String {
    let mut out = String::new();
    out.push_str("# Runbook coverage\n\n");
    out.push_str(
        "Every command and remediation step of the seed runbooks (`tests/fixtures/seeds/`, copies of the \
team's runbooks), with what the suite does about it. Generated and checked by \
`tests/e2e/tests/runbook_coverage.rs` (`UPDATE_RUNBOOK_COVERAGE=1 cargo test -p cpkit-e2e --test \
runbook_coverage` rewrites it); the same test runs every suite command named here against the demo \
cluster. A step is a command line of a code block (continuations and heredocs joined) or a \
Kubernetes object of a YAML block; shell syntax, `echo` and script plumbing are not steps.\n\n",
    );
    out.push_str(
        "Columns: **where** is the section and line in the seed; **suite** is the exact invocation \
(placeholders in capitals), or `not from a laptop` with the reason, or `not done` with the reason, or \
`seed wrong` with the upstream fact and what the suite does instead.\n\n",
    );
    let mut totals = (0usize, 0usize, 0usize, 0usize, 0usize);
    out.push_str("## Summary\n\n| document | steps | suite, from a laptop | not from a laptop | not done | seed wrong |\n|---|---:|---:|---:|---:|---:|\n");
    for (document, steps) in documents {
        let mut counts = (steps.len(), 0, 0, 0, 0);
        for s in steps {
            match classify(&s.command) {
                Some(Suite(_)) => counts.1 += 1,
                Some(NotFromLaptop(_)) => counts.2 += 1,
                Some(NotDone(_)) | None => counts.3 += 1,
                Some(SeedWrong { .. }) => counts.4 += 1,
            }
        }
        out.push_str(&format!(
            "| {document} | {} | {} | {} | {} | {} |\n",
            counts.0, counts.1, counts.2, counts.3, counts.4
        ));
        totals =
            (totals.0 + counts.0, totals.1 + counts.1, totals.2 + counts.2, totals.3 + counts.3, totals.4 + counts.4);
    }
    out.push_str(&format!(
        "| **all** | **{}** | **{}** | **{}** | **{}** | **{}** |\n\n",
        totals.0, totals.1, totals.2, totals.3, totals.4
    ));
    let laptop = totals.0 - totals.2;
    out.push_str(&format!(
        "The suite does {} of the {} steps ({:.0}%) from a laptop, each in one command; {} need a shell on a \
node; of the {laptop} steps a laptop could do, it does {:.0}%.\n\n",
        totals.1,
        totals.0,
        100.0 * totals.1 as f64 / totals.0.max(1) as f64,
        totals.2,
        100.0 * totals.1 as f64 / laptop.max(1) as f64
    ));
    out.push_str("## Suite commands used\n\n");
    let all: Vec<Step> = documents.iter().flat_map(|(_, s)| s.iter().cloned()).collect();
    for c in suite_commands(&all) {
        out.push_str(&format!("- `{c}`\n"));
    }
    out.push('\n');
    for (document, steps) in documents {
        out.push_str(&format!("## {document}\n\n| where | for | seed command | suite |\n|---|---|---|---|\n"));
        for s in steps {
            let coverage = match classify(&s.command) {
                Some(Suite(c)) => format!("`{c}`"),
                Some(NotFromLaptop(why)) => format!("not from a laptop: {why}"),
                Some(NotDone(why)) => format!("not done: {why}"),
                Some(SeedWrong { fact, instead }) => format!("**seed wrong**: {fact}. Instead: {instead}"),
                None => "UNCLASSIFIED".to_string(),
            };
            let section: String = s.section.chars().take(40).collect();
            out.push_str(&format!(
                "| {} L{} | {} | `{}` | {} |\n",
                section.replace('|', "\\|"),
                s.line,
                s.purpose.replace('|', "\\|"),
                one_line(&s.command).replace('`', "'"),
                coverage.replace('|', "\\|")
            ));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_commands_joining_continuations_and_heredocs() {
        let text = "# 2.3 Step\n```bash\n# check health\ncurl -k https://127.0.0.1:6443/readyz\nETCDCTL_API=3 etcdctl \\\n  --endpoints=x \\\n  endpoint health\ncat > /etc/x.conf << EOF\n[Service]\nLimitNOFILE=65536\nEOF\necho done\nfor n in a b; do\n  ssh $n \"systemctl restart kubelet\"\ndone\nX=$(kubectl get nodes --no-headers)\n```\n```\n├─► tree\nkubectl get nodes\n```\n```yaml\napiVersion: v1\nkind: Pod\nmetadata:\n  name: x\n```\n";
        let steps = extract("doc.md", text);
        let commands: Vec<&str> = steps.iter().map(|s| s.command.as_str()).collect();
        assert_eq!(
            commands,
            [
                "curl -k https://127.0.0.1:6443/readyz",
                "ETCDCTL_API=3 etcdctl --endpoints=x endpoint health",
                "cat > /etc/x.conf << EOF\n[Service]\nLimitNOFILE=65536\nEOF",
                "ssh $n \"systemctl restart kubelet\"",
                "kubectl get nodes --no-headers",
                "kubectl get nodes",
                "(YAML) kind: Pod",
            ]
        );
        assert_eq!(steps[0].purpose, "check health");
        assert_eq!(steps[0].section, "2.3 Step");
        assert_eq!(steps[0].line, 4);
    }

    #[test]
    fn seed_errors_win_over_the_command_they_resemble() {
        assert!(matches!(classify("kubectl get cs"), Some(SeedWrong { .. })));
        assert!(matches!(
            classify("kubectl get endpoints kube-scheduler -n kube-system -o yaml"),
            Some(SeedWrong { .. })
        ));
        assert_eq!(
            classify("kubectl get lease -n kube-system"),
            Some(Suite("kubectl cphealth --only leader-election"))
        );
        assert_eq!(
            classify("curl -k https://127.0.0.1:6443/metrics | grep go_goroutines"),
            Some(Suite("kubectl cphealth --only resources"))
        );
        assert_eq!(classify("journalctl -u kube-apiserver -f"), Some(NODE_LOGS));
        assert_eq!(classify("an unknown tool"), None);
    }
}
