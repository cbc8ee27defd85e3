//! Inputs shared by the benchmarks: the real scrapes of `tests/fixtures/clusters/*/apiserver.metrics`
//! and a larger scrape built from their series.

use std::path::PathBuf;

pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

/// The four real API server scrapes (1.31–1.34), about 3.2 MB each.
pub fn real_scrapes() -> Vec<(String, Vec<u8>)> {
    (31..=34)
        .map(|minor| {
            let path = fixtures_dir().join(format!("clusters/k8s-1.{minor}/apiserver.metrics"));
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (format!("1.{minor}"), bytes)
        })
        .collect()
}

/// A scrape of at least `target` bytes: the newest real scrape (1.34) with every family's
/// series repeated under a distinct `shard` label — a bigger cluster's API server has more
/// resources and label values, not different metric names. Each family stays contiguous under
/// its HELP and TYPE lines, as the format requires.
pub fn large_scrape(target: usize) -> Vec<u8> {
    let (_, source) = real_scrapes().pop().expect("the 1.34 scrape");
    let copies = (target / source.len()).max(1);
    let text = String::from_utf8_lossy(&source);
    let mut out = Vec::with_capacity(source.len() * copies + (1 << 20));
    // Families: their comment lines, then their sample lines.
    let mut blocks: Vec<(Vec<&str>, Vec<&str>)> = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') {
            if blocks.last().is_none_or(|(_, samples)| !samples.is_empty()) {
                blocks.push((Vec::new(), Vec::new()));
            }
            if let Some(b) = blocks.last_mut() {
                b.0.push(line);
            }
        } else if let Some(b) = blocks.last_mut() {
            b.1.push(line);
        }
    }
    for (comments, samples) in &blocks {
        for c in comments {
            out.extend_from_slice(c.as_bytes());
            out.push(b'\n');
        }
        for copy in 0..copies {
            for line in samples {
                match line.find('{') {
                    Some(i) => {
                        out.extend_from_slice(&line.as_bytes()[..=i]);
                        out.extend_from_slice(format!("shard=\"{copy}\",").as_bytes());
                        out.extend_from_slice(&line.as_bytes()[i + 1..]);
                    }
                    None => match line.find(' ') {
                        Some(i) => {
                            out.extend_from_slice(&line.as_bytes()[..i]);
                            out.extend_from_slice(format!("{{shard=\"{copy}\"}}").as_bytes());
                            out.extend_from_slice(&line.as_bytes()[i..]);
                        }
                        None => out.extend_from_slice(line.as_bytes()),
                    },
                }
                out.push(b'\n');
            }
        }
    }
    out
}

/// Wall time, CPU time (user + system), peak RSS and exit status of one command.
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    pub wall: std::time::Duration,
    pub cpu: std::time::Duration,
    pub max_rss_kib: i64,
    pub code: Option<i32>,
}

/// Runs `cmd` to completion and reads its peak RSS from wait4's rusage.
pub fn measure(cmd: &mut std::process::Command) -> std::io::Result<Measured> {
    use std::os::unix::process::ExitStatusExt;
    let started = std::time::Instant::now();
    let child = cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn()?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waiting for our own child with valid out-pointers.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let wall = started.elapsed();
    let code = std::process::ExitStatus::from_raw(status).code();
    let tv = |t: libc::timeval| std::time::Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    let cpu = tv(usage.ru_utime) + tv(usage.ru_stime);
    Ok(Measured { wall, cpu, max_rss_kib: usage.ru_maxrss, code })
}

/// `ticks` of the kernel's clock (`USER_HZ`, proc(5)'s unit) as a duration.
fn clock_ticks(ticks: u64) -> std::time::Duration {
    // SAFETY: sysconf only reads a configuration value.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    std::time::Duration::from_millis(ticks * 1000 / per_second)
}

/// CPU time (user + system) a running process has used so far, from `/proc/PID/stat` (proc(5):
/// utime and stime, fields 14 and 15, in clock ticks); zero once it is gone.
pub fn process_cpu(pid: u32) -> std::time::Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return std::time::Duration::ZERO };
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    let fields: Vec<&str> = stat.rsplit_once(')').map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    clock_ticks([11, 12].iter().filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok())).sum())
}

/// CPU time every process of the machine has used since boot: /proc/stat's first line (proc(5)),
/// user + nice + system + irq + softirq + steal, in clock ticks.
pub fn machine_cpu() -> std::time::Duration {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> =
        stat.lines().next().unwrap_or("").split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
    clock_ticks([0, 1, 2, 5, 6, 7].iter().filter_map(|&i| fields.get(i)).sum())
}

/// CPU time used so far by the running processes whose command name (`/proc/PID/comm`) is `name`.
pub fn processes_cpu(name: &str) -> std::time::Duration {
    let Ok(entries) = std::fs::read_dir("/proc") else { return std::time::Duration::ZERO };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim_end() == name))
        .map(process_cpu)
        .sum()
}

/// The median of some durations.
pub fn median(mut v: Vec<std::time::Duration>) -> std::time::Duration {
    v.sort();
    v[v.len() / 2]
}

/// `target/release` (or debug) of the running benchmark binary.
pub fn bin_dir() -> std::path::PathBuf {
    std::env::current_exe().ok().and_then(|p| p.parent().map(|d| d.to_path_buf())).unwrap_or_default()
}

/// `n` webhook configurations as one multi-document YAML stream, made from the real manifests
/// of tests/fixtures/webhooks/ (renamed, with their selectors and rules varied per copy), the
/// shape of a big cluster's `kubectl get validatingwebhookconfigurations,mutatingwebhookconfigurations -o yaml`.
pub fn generated_webhook_configs(n: usize) -> String {
    let dir = fixtures_dir().join("webhooks");
    let mut sources = Vec::new();
    let mut files: Vec<_> =
        std::fs::read_dir(&dir).expect("fixtures/webhooks").filter_map(|e| e.ok()).map(|e| e.path()).collect();
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("fixture");
        for doc in cpkit::yaml::documents(&f.display().to_string(), &text).expect("fixture parses") {
            if doc["kind"].as_str().is_some_and(|k| k.ends_with("WebhookConfiguration")) {
                sources.push(doc);
            }
        }
    }
    let mut out = String::new();
    for i in 0..n {
        let mut doc = sources[i % sources.len()].clone();
        let name = format!("{}-{i}", doc["metadata"]["name"].as_str().unwrap_or("config"));
        doc["metadata"]["name"] = serde_json::Value::String(name);
        if let Some(webhooks) = doc["webhooks"].as_array_mut() {
            for (j, w) in webhooks.iter_mut().enumerate() {
                // Every third copy opts out kube-system, every fifth fails open.
                if (i + j) % 3 == 0 {
                    w["namespaceSelector"] = serde_json::json!({"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system", format!("team-{i}")]}]});
                }
                if (i + j) % 5 == 0 {
                    w["failurePolicy"] = serde_json::Value::String("Ignore".into());
                }
                // Every fourth has matchConditions (evaluated in CEL for every target).
                if (i + j) % 4 == 0 {
                    let conditions = [
                        ("not-system-users", "!request.userInfo.username.startsWith('system:')"),
                        ("not-kube-system", "request.namespace != 'kube-system'"),
                        ("not-nodes", "!('system:nodes' in request.userInfo.groups)"),
                        ("labelled", "has(object.metadata.labels) && 'app' in object.metadata.labels"),
                    ];
                    let (name, expression) = conditions[(i / 4) % conditions.len()];
                    w["matchConditions"] = serde_json::json!([{"name": name, "expression": expression}]);
                }
            }
        }
        out.push_str("---\n");
        out.push_str(&cpkit::yaml::to_string(&doc).expect("yaml"));
    }
    out
}
