//! `kubectl cphealth bundle`: the runbooks' diagnostics collection, done safely. One tar.gz with
//! cluster info, nodes, control-plane pod specs and their last log lines (the previous instance's
//! too, after a restart), kube-system events, readyz/livez, each API server replica's /metrics,
//! webhook and APF configurations, etcd status and the cphealth report. Never: Secrets (not even
//! read), tokens, private keys, env values.

use std::io::Write;
use std::path::PathBuf;

use cpkit::Cluster;
use cpkit::access::Access;
use cpkit::atomic_file::AtomicFile;
use cpkit::error::{Error, Result};
use cpkit::redact::{Redactor, sanitize_pod};
use cpkit::replicas::Survey;
use cpkit::resources::Select;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use k8s_openapi::api::flowcontrol::v1::{FlowSchema, PriorityLevelConfiguration};
use serde_json::{Value, json};

/// `bundle` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct BundleArgs {
    /// Output file (default: cphealth-bundle-<context>-<UTC time>.tar.gz)
    #[allow(rustdoc::invalid_html_tags, reason = "clap's help text")]
    #[arg(short = 'f', long = "file", value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub file: Option<PathBuf>,

    /// Log lines per control-plane container
    #[arg(long, default_value_t = 200, value_name = "N")]
    pub tail: usize,

    /// Replace an existing file
    #[arg(long)]
    pub force: bool,
}

struct Bundle {
    root: String,
    entries: Vec<(String, Vec<u8>)>,
    redactor: Redactor,
    skipped: Vec<String>,
}

impl Bundle {
    fn add_text(&mut self, name: &str, text: &str) {
        self.entries.push((format!("{}/{name}", self.root), self.redactor.text(text).into_bytes()));
    }

    fn add_json(&mut self, name: &str, mut value: Value) {
        self.redactor.value(&mut value);
        let text = serde_json::to_string_pretty(&value).unwrap_or_default();
        self.entries.push((format!("{}/{name}", self.root), text.into_bytes()));
    }

    fn note(&mut self, what: &str, e: &Error) {
        self.skipped.push(format!("{what}: {e}"));
    }
}

fn progress(step: usize, total: usize, what: &str) {
    if cpkit::cli::stderr_is_terminal() {
        eprint!("\r\x1b[2Kcollecting {what} ({step}/{total})");
    }
}

/// Collects the bundle and writes it atomically; returns the path.
pub async fn run(cluster: &Cluster, args: &BundleArgs, report: Value, survey: &Survey) -> Result<PathBuf> {
    let stamp = jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ").to_string();
    let safe_ctx: String = cluster
        .info
        .context
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
        .collect();
    let root = format!("cphealth-bundle-{safe_ctx}-{stamp}");
    let path = args.file.clone().unwrap_or_else(|| PathBuf::from(format!("{root}.tar.gz")));
    // Create the output first: a bad path fails before minutes of collection.
    let out = AtomicFile::create(&path, args.force)?;
    let mut b = Bundle { root, entries: Vec::new(), redactor: Redactor::new(cluster.secrets()), skipped: Vec::new() };
    let steps = 9;

    progress(1, steps, "cluster info and report");
    b.add_json(
        "cluster.json",
        json!({"context": cluster.info.context, "server": cluster.server(), "collectedAt": stamp}),
    );
    b.add_json("report.json", report);

    progress(2, steps, "health endpoints");
    for endpoint in ["readyz", "livez"] {
        match cluster.get_raw(&format!("/{endpoint}?verbose")).await {
            Ok(r) => b.add_text(&format!("{endpoint}.txt"), &format!("HTTP {}\n{}", r.status, r.text())),
            Err(e) => b.note(endpoint, &e),
        }
    }

    progress(3, steps, "nodes");
    let mut nodes = Vec::new();
    match cluster.list_each::<Node, Value, _>(Select::all(), 500, |n| nodes.push(n)).await {
        Ok(()) => b.add_json("nodes.json", Value::Array(nodes)),
        Err(e) => b.note("nodes", &e),
    }

    progress(4, steps, "control-plane pods");
    let pods: Vec<Value> =
        match cluster.list_as::<Pod, Value>(Select::namespace("kube-system").labels("tier=control-plane")).await {
            Ok(p) => p,
            Err(e) => {
                b.note("control-plane pods", &e);
                Vec::new()
            }
        };
    let mut sanitized = pods.clone();
    sanitized.iter_mut().for_each(sanitize_pod);
    b.add_json("kube-system/control-plane-pods.json", Value::Array(sanitized));

    progress(5, steps, "logs");
    for p in &pods {
        let name = p["metadata"]["name"].as_str().unwrap_or("");
        for c in p["spec"]["containers"].as_array().cloned().unwrap_or_default() {
            let container = c["name"].as_str().unwrap_or("");
            // A container that restarted: why the last one ended is in the previous instance's log.
            let restarted =
                p["status"]["containerStatuses"].as_array().into_iter().flatten().any(|s| {
                    s["name"].as_str() == Some(container) && s["restartCount"].as_i64().is_some_and(|n| n > 0)
                });
            for (previous, file) in [(false, "log"), (true, "previous.log")] {
                if previous && !restarted {
                    continue;
                }
                let url = format!(
                    "/api/v1/namespaces/kube-system/pods/{name}/log?container={container}&tailLines={}{}",
                    args.tail,
                    if previous { "&previous=true" } else { "" }
                );
                let access = Access::resource("get", "", "pods", Some("kube-system")).with_subresource("log");
                match cluster.get_ok(&url, &access).await {
                    Ok(r) => b.add_text(&format!("logs/{name}_{container}.{file}"), &r.text()),
                    Err(e) => b.note(&format!("{} of {name}", if previous { "previous logs" } else { "logs" }), &e),
                }
            }
        }
    }

    progress(6, steps, "events");
    match cluster.list_as::<Event, Value>(Select::namespace("kube-system")).await {
        Ok(ev) => b.add_json("kube-system/events.json", Value::Array(ev)),
        Err(e) => b.note("events", &e),
    }

    progress(7, steps, "metrics");
    // Each replica's own counters (the one in trouble is rarely the one the load balancer picks);
    // through the configured server when no replica can be dialled from here.
    let targets = survey.targets(cluster);
    let scrapes = futures::future::join_all(targets.iter().map(|replica| async move {
        let client = cpkit::replicas::client_for(cluster, replica)?;
        client.get_ok("/metrics", &Access::non_resource("get", "/metrics")).await
    }))
    .await;
    for (replica, why) in survey.down() {
        b.skipped.push(format!("metrics of {}: it is down ({why})", replica.name));
    }
    for (replica, scrape) in targets.iter().zip(scrapes) {
        let file = if replica.url == cluster.server() { "apiserver".to_string() } else { replica.name.clone() };
        match scrape {
            Ok(r) => b.add_text(&format!("metrics/{file}.metrics"), &r.text()),
            Err(e) => b.note(&format!("metrics of {}", replica.name), &e),
        }
    }

    progress(8, steps, "webhooks and APF");
    match cpkit::webhooks::gather::read_raw(cluster).await {
        Ok(w) => b.add_json("webhooks.json", Value::Array(w)),
        Err(e) => b.note("webhooks", &e),
    }
    let (flow_schemas, levels) = tokio::join!(
        cluster.list_as::<FlowSchema, Value>(Select::all()),
        cluster.list_as::<PriorityLevelConfiguration, Value>(Select::all())
    );
    for (res, answer) in [("flowschemas", flow_schemas), ("prioritylevelconfigurations", levels)] {
        match answer {
            Ok(items) => b.add_json(&format!("apf/{res}.json"), Value::Array(items)),
            Err(e) => b.note(res, &e),
        }
    }

    progress(9, steps, "etcd");
    match cpkit::etcd::pods::find(cluster).await {
        Ok(etcd) if !etcd.is_empty() => {
            let running = etcd.iter().find(|p| p.is_running()).unwrap_or(&etcd[0]);
            match cpkit::etcd::pods::status_via_exec(cluster, running, std::time::Duration::from_secs(5), etcd.len())
                .await
            {
                Ok(s) => b.add_json("etcd/status.json", serde_json::to_value(&s).unwrap_or_default()),
                Err(e) => b.note("etcd status", &e),
            }
        }
        Ok(_) => b.skipped.push("etcd: no etcd pods visible".into()),
        Err(e) => b.note("etcd", &e),
    }
    if cpkit::cli::stderr_is_terminal() {
        eprint!("\r\x1b[2K");
    }

    let readme = format!(
        "cphealth bundle of context {} ({})\ncollected {stamp} by kubectl-cphealth {}\n\nNot included, by design: Secrets, kubeconfig credentials, private keys, env values of pods.\n\nCould not collect:\n{}\n",
        cluster.info.context,
        cluster.server(),
        env!("CARGO_PKG_VERSION"),
        if b.skipped.is_empty() {
            "  (nothing)".to_string()
        } else {
            b.skipped.iter().map(|s| format!("  - {s}")).collect::<Vec<_>>().join("\n")
        }
    );
    b.add_text("README.txt", &readme);
    write_archive(out, &b.entries)
}

fn write_archive(mut out: AtomicFile, entries: &[(String, Vec<u8>)]) -> Result<PathBuf> {
    let io = |e: std::io::Error| Error::io("Cannot write the bundle", &e);
    {
        let gz = flate2::write::GzEncoder::new(&mut out, flate2::Compression::default());
        let mut tar = tar::Builder::new(gz);
        let mtime = jiff::Timestamp::now().as_second().max(0) as u64;
        for (name, data) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o600);
            header.set_mtime(mtime);
            header.set_cksum();
            tar.append_data(&mut header, name, data.as_slice()).map_err(io)?;
        }
        let gz = tar.into_inner().map_err(io)?;
        gz.finish().map_err(io)?;
    }
    out.flush().map_err(io)?;
    out.commit()
}
