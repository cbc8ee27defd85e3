//! Check `resources`: the seeds' step "检查资源使用" (resource usage: file descriptors near their
//! limit, memory and its trend, CPU, goroutines) read from each API server's own `/metrics`
//! (`process_*` and `go_goroutines`, exported by every Go component), from the laptop instead of
//! `top` and `/proc/<pid>/limits` on the node.

use crate::exit::Status;
use crate::metrics::{Scrape, any};
use crate::output::human_bytes;
use crate::report::{CheckResult, one_line};

/// The families this check reads (added to the load check's scrape selection).
pub const FAMILIES: [&str; 5] = [
    "process_open_fds",
    "process_max_fds",
    "process_resident_memory_bytes",
    "process_cpu_seconds_total",
    "go_goroutines",
];

/// Open file descriptors as a share of the limit. The seeds' tree ends "文件描述符耗尽 → 调整
/// ulimit"; at 80% there is time to act, at 95% a watch storm (one fd per watch connection, seeds
/// §2.1.4) is minutes from `accept: too many open files`.
pub const FDS_WARNING: f64 = 0.80;
pub const FDS_CRITICAL: f64 = 0.95;

/// One process's `process_*` gauges and counters.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessMetrics {
    pub open_fds: Option<f64>,
    pub max_fds: Option<f64>,
    pub resident_bytes: Option<f64>,
    pub cpu_seconds: Option<f64>,
    pub goroutines: Option<f64>,
}

impl ProcessMetrics {
    pub fn read(scrape: &Scrape) -> ProcessMetrics {
        let one = |name: &str| scrape.sum(name, &any);
        ProcessMetrics {
            open_fds: one("process_open_fds"),
            max_fds: one("process_max_fds"),
            resident_bytes: one("process_resident_memory_bytes"),
            cpu_seconds: one("process_cpu_seconds_total"),
            goroutines: one("go_goroutines"),
        }
    }

    fn fd_share(&self) -> Option<f64> {
        match (self.open_fds, self.max_fds) {
            (Some(open), Some(max)) if max > 0.0 => Some(open / max),
            _ => None,
        }
    }
}

/// Which control-plane process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessKind {
    ApiServer,
    Etcd,
}

/// One process (an API server replica or an etcd member), at the end of the window and (with a
/// window) at its start.
#[derive(Debug, Clone)]
pub struct ReplicaResources {
    pub kind: ProcessKind,
    /// The replica's node, or the etcd member's name.
    pub name: String,
    /// Its pod, when known.
    pub pod: Option<String>,
    pub newer: ProcessMetrics,
    pub older: Option<ProcessMetrics>,
    /// Seconds between the two scrapes.
    pub seconds: f64,
}

impl ReplicaResources {
    /// How messages name it: `cp-2`, `etcd cp-2`.
    fn label(&self) -> String {
        match self.kind {
            ProcessKind::ApiServer => self.name.clone(),
            ProcessKind::Etcd => format!("etcd {}", self.name),
        }
    }

    fn sub_check(&self) -> String {
        match self.kind {
            ProcessKind::ApiServer => format!("replica {}", self.name),
            ProcessKind::Etcd => format!("member {}", self.name),
        }
    }

    /// CPU in cores over the window.
    fn cpu_cores(&self) -> Option<f64> {
        let older = self.older?.cpu_seconds?;
        let newer = self.newer.cpu_seconds?;
        (self.seconds > 0.0 && newer >= older).then(|| (newer - older) / self.seconds)
    }

    /// Resident memory growth over the window, in bytes.
    fn rss_growth(&self) -> Option<f64> {
        Some(self.newer.resident_bytes? - self.older?.resident_bytes?)
    }
}

#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub replicas: Vec<ReplicaResources>,
    /// Replicas whose /metrics could not be read, with why.
    pub unread: Vec<String>,
    /// Why the reads went through the configured server (one replica's view), when they did.
    pub read_through: Option<String>,
}

fn count(n: f64) -> String {
    let n = n.round() as u64;
    // Thousands separated, as `ls | wc -l` users compare them with limits like 1,048,576.
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn judge(f: &Facts) -> CheckResult {
    if f.replicas.is_empty() {
        return CheckResult::new(
            "resources",
            Status::Unknown,
            format!("no /metrics scrape succeeded: {}", f.unread.join("; ")),
        );
    }
    let mut r = CheckResult::ok("resources", "");
    let mut problems = Vec::new();
    let mut short_on_fds = Vec::new();
    for x in &f.replicas {
        let m = &x.newer;
        let mut facts = Vec::new();
        let mut status = Status::Ok;
        if let (Some(share), Some(open), Some(max)) = (m.fd_share(), m.open_fds, m.max_fds) {
            status = Status::grade(share >= FDS_CRITICAL, share >= FDS_WARNING);
            let text = format!("{} of {} file descriptors open ({:.0}%)", count(open), count(max), share * 100.0);
            if status != Status::Ok {
                problems.push((status, format!("{}: {text}", x.label())));
                short_on_fds.push(x);
            }
            facts.push(text);
        }
        if let Some(rss) = m.resident_bytes {
            let growth = x
                .rss_growth()
                .filter(|g| g.abs() >= 1024.0 * 1024.0)
                .map(|g| {
                    format!(
                        " ({}{} in {:.0}s)",
                        if g >= 0.0 { "+" } else { "-" },
                        human_bytes(g.abs() as u64),
                        x.seconds
                    )
                })
                .unwrap_or_default();
            facts.push(format!("RSS {}{growth}", human_bytes(rss as u64)));
        }
        if let Some(cores) = x.cpu_cores() {
            facts.push(format!("CPU {cores:.2} cores"));
        }
        if let Some(g) = m.goroutines {
            facts.push(format!("{} goroutines", count(g)));
        }
        r.raise(status);
        let text = if facts.is_empty() { "no process metrics exported".to_string() } else { facts.join(", ") };
        r.sub(x.sub_check(), status, text);
    }
    // The largest of a measure over every process (None when none exports it).
    let most = |measure: fn(&ProcessMetrics) -> Option<f64>| {
        f.replicas.iter().filter_map(|x| measure(&x.newer)).max_by(f64::total_cmp)
    };
    let fd_max = most(ProcessMetrics::fd_share);
    let rss_max = most(|m| m.resident_bytes);
    let goroutines_max = most(|m| m.goroutines);
    for u in &f.unread {
        r.push_evidence("not scraped", u.clone());
    }
    if let Some(why) = &f.read_through {
        r.push_evidence("read through", why.clone());
    }
    if problems.is_empty() {
        let mut parts = Vec::new();
        if let Some(s) = fd_max {
            parts.push(format!("file descriptors at most {:.0}% of their limit", s * 100.0));
        }
        if let Some(b) = rss_max {
            parts.push(format!("RSS at most {}", human_bytes(b as u64)));
        }
        if let Some(g) = goroutines_max {
            parts.push(format!("at most {} goroutines", count(g)));
        }
        let count = |kind: ProcessKind| f.replicas.iter().filter(|x| x.kind == kind).count();
        let mut whose = vec![match count(ProcessKind::ApiServer) {
            1 => "1 replica".to_string(),
            n => format!("{n} replicas"),
        }];
        match count(ProcessKind::Etcd) {
            0 => {}
            1 => whose.push("1 etcd member".into()),
            n => whose.push(format!("{n} etcd members")),
        }
        r.message = if parts.is_empty() {
            "no process metrics exported".into()
        } else {
            format!("{}: {}", whose.join(", "), parts.join(", "))
        };
        if f.read_through.is_some() {
            r.message.push_str(" (one replica's view)");
        }
        return r;
    }
    problems.sort_by_key(|p| std::cmp::Reverse(p.0));
    r.message = one_line(&problems.into_iter().map(|(_, t)| t).collect::<Vec<_>>());
    for kind in [ProcessKind::ApiServer, ProcessKind::Etcd] {
        let short: Vec<&ReplicaResources> = short_on_fds.iter().copied().filter(|x| x.kind == kind).collect();
        if !short.is_empty() {
            fd_fix(&mut r, kind, &short);
        }
    }
    r
}

/// The node-side fix of a process short of file descriptors, naming its pods and nodes.
fn fd_fix(r: &mut CheckResult, kind: ProcessKind, short: &[&ReplicaResources]) {
    let (program, selector) = match kind {
        ProcessKind::ApiServer => ("kube-apiserver", "component=kube-apiserver"),
        ProcessKind::Etcd => ("etcd", "component=etcd"),
    };
    let logs: Vec<String> = short
        .iter()
        .map(|x| match &x.pod {
            Some(pod) => format!("kubectl logs -n kube-system {pod} --tail=2000 | grep -ci 'too many open files'"),
            None => format!("kubectl logs -n kube-system -l {selector} --tail=2000 | grep -ci 'too many open files'"),
        })
        .collect();
    let names: Vec<&str> = short.iter().map(|x| x.name.as_str()).collect();
    let on = names.join(", ");
    let limits = format!("grep 'open files' /proc/$(pgrep -o {program})/limits   # on {on}");
    let raise = format!(
        "systemctl edit containerd   # on {on}: [Service] LimitNOFILE=1048576, then systemctl restart containerd"
    );
    // The kubelet starts the stopped container again, under the runtime's new limit.
    let restart = format!("crictl stop $(crictl ps -q --name {program})   # on {on}, then check the limit again");
    let mut commands: Vec<&str> = logs.iter().map(String::as_str).collect();
    commands.extend([limits.as_str(), raise.as_str(), restart.as_str()]);
    let holders = match kind {
        ProcessKind::ApiServer => "watch connections: `kubectl apftop`",
        ProcessKind::Etcd => "client connections: every API server holds some, and so do watches",
    };
    r.fix(
        format!(
            "Raise the open-files limit of {program} on {}: a static pod inherits it from the container runtime (containerd's systemd unit, LimitNOFILE; containerd 2.0 dropped its own setting, leaving systemd's 1024:524288), a process run by systemd from its unit (a drop-in with LimitNOFILE=65536 or more). Then restart {program}{} so that it takes the new limit, and look for what holds the descriptors ({holders}).",
            names.join(", "),
            if names.len() > 1 { ", one node at a time" } else { "" }
        ),
        &commands,
        "medium: restarting containerd leaves the containers running; the restarted process is out for seconds (one node at a time keeps the others serving)",
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(open: f64, max: f64, rss_mib: f64, cpu: f64, goroutines: f64) -> ProcessMetrics {
        ProcessMetrics {
            open_fds: Some(open),
            max_fds: Some(max),
            resident_bytes: Some(rss_mib * 1024.0 * 1024.0),
            cpu_seconds: Some(cpu),
            goroutines: Some(goroutines),
        }
    }

    fn replica(name: &str, newer: ProcessMetrics, older: Option<ProcessMetrics>) -> ReplicaResources {
        ReplicaResources {
            kind: ProcessKind::ApiServer,
            name: name.into(),
            pod: Some(format!("kube-apiserver-{name}")),
            newer,
            older,
            seconds: 2.0,
        }
    }

    fn member(name: &str, newer: ProcessMetrics) -> ReplicaResources {
        ReplicaResources {
            kind: ProcessKind::Etcd,
            name: name.into(),
            pod: Some(format!("etcd-{name}")),
            newer,
            older: None,
            seconds: 0.0,
        }
    }

    fn run(replicas: Vec<ReplicaResources>) -> CheckResult {
        judge(&Facts { replicas, ..Default::default() })
    }

    #[test]
    fn verdicts_by_file_descriptor_share() {
        let healthy = || process(90.0, 1_048_576.0, 307.0, 9.9, 2084.0);
        let cases: Vec<(&str, f64, f64, Status, &str)> = vec![
            ("plenty left", 90.0, 1_048_576.0, Status::Ok, ""),
            ("79%", 809.0, 1024.0, Status::Ok, ""),
            ("80%", 820.0, 1024.0, Status::Warning, "cp-2: 820 of 1,024 file descriptors open (80%)"),
            ("97%", 63_900.0, 65_536.0, Status::Critical, "cp-2: 63,900 of 65,536 file descriptors open (98%)"),
        ];
        for (case, open, max, status, message) in cases {
            let r = run(vec![
                replica("cp-1", healthy(), None),
                replica("cp-2", ProcessMetrics { open_fds: Some(open), max_fds: Some(max), ..healthy() }, None),
            ]);
            assert_eq!(r.status, status, "{case}: {}", r.message);
            if status == Status::Ok {
                assert!(r.message.starts_with("2 replicas: file descriptors at most"), "{case}: {}", r.message);
                assert!(r.remediation.is_empty());
            } else {
                assert_eq!(r.message, message, "{case}");
                let fix = &r.remediation[0];
                assert!(fix.action.contains("on cp-2"), "{case}: {}", fix.action);
                assert!(fix.commands[0].starts_with("kubectl logs -n kube-system kube-apiserver-cp-2"), "{case}");
                assert!(fix.commands.iter().any(|c| c.contains("LimitNOFILE")), "{case}");
                assert!(fix.action.contains("Then restart kube-apiserver so that it takes the new limit"), "{case}");
                assert_eq!(
                    fix.commands.last().map(String::as_str),
                    Some("crictl stop $(crictl ps -q --name kube-apiserver)   # on cp-2, then check the limit again")
                );
            }
        }
    }

    #[test]
    fn a_window_gives_cpu_and_the_memory_trend() {
        let older = process(90.0, 1_048_576.0, 300.0, 10.0, 2000.0);
        let newer = process(92.0, 1_048_576.0, 340.0, 10.5, 2100.0);
        let r = run(vec![replica("cp-1", newer, Some(older))]);
        assert_eq!(r.status, Status::Ok);
        let sub = &r.subchecks[0].message;
        assert!(sub.contains("RSS 340.0 MiB (+40.0 MiB in 2s)"), "{sub}");
        assert!(sub.contains("CPU 0.25 cores"), "{sub}");
        assert!(sub.contains("2,100 goroutines"), "{sub}");
        assert_eq!(
            r.message,
            "1 replica: file descriptors at most 0% of their limit, RSS at most 340.0 MiB, at most 2,100 goroutines"
        );
    }

    #[test]
    fn etcd_members_are_judged_alike_with_their_own_fix() {
        let healthy = || process(90.0, 1_048_576.0, 307.0, 9.9, 2084.0);
        let r = run(vec![
            replica("cp-1", healthy(), None),
            member("cp-1", process(120.0, 1_048_576.0, 80.0, 3.0, 200.0)),
            member("cp-2", process(1000.0, 1024.0, 80.0, 3.0, 200.0)),
        ]);
        assert_eq!(r.status, Status::Critical);
        assert_eq!(r.message, "etcd cp-2: 1,000 of 1,024 file descriptors open (98%)");
        assert_eq!(r.remediation.len(), 1);
        assert!(r.remediation[0].action.starts_with("Raise the open-files limit of etcd on cp-2"));
        assert!(r.remediation[0].commands[0].starts_with("kubectl logs -n kube-system etcd-cp-2"));
        assert!(r.subchecks.iter().any(|s| s.name == "member cp-2" && s.status == Status::Critical));
        let ok = run(vec![replica("cp-1", healthy(), None), member("cp-1", healthy())]);
        assert!(ok.message.starts_with("1 replica, 1 etcd member: file descriptors at most"), "{}", ok.message);
    }

    #[test]
    fn nothing_scraped_is_unknown_never_ok() {
        let r = judge(&Facts { unread: vec!["cp-1: i/o timeout".into()], ..Default::default() });
        assert_eq!(r.status, Status::Unknown);
        assert!(r.message.contains("cp-1: i/o timeout"));
    }

    #[test]
    fn reads_the_process_metrics_of_a_real_capture() {
        // tests/fixtures/clusters/k8s-1.33/apiserver.metrics: a real kube-apiserver's /metrics.
        let text = crate::test_files::bytes("tests/fixtures/clusters/k8s-1.33/apiserver.metrics");
        let scrape = Scrape::parse(&text, &crate::metrics::Selection::families(&FAMILIES));
        let m = ProcessMetrics::read(&scrape);
        assert_eq!(m.open_fds, Some(90.0));
        assert_eq!(m.max_fds, Some(1_048_576.0));
        assert_eq!(m.goroutines, Some(2084.0));
        assert!(m.resident_bytes.is_some() && m.cpu_seconds.is_some());
    }
}
