//! `kubectl cphealth`: the whole control plane checked at once.

// System calls belong in cpkit, where each unsafe block is justified.
#![forbid(unsafe_code)]

mod bundle;
mod checks;
mod context;
mod examples;
mod rbac;
mod render;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use cpkit::cli::{KubeArgs, OutputArgs, OutputFormat, Plugin};
use cpkit::error::Result;
use cpkit::exit::{FailOn, Status};
use cpkit::{Cluster, output};

use context::{CheckOptions, Ctx};
use render::HealthReport;

const PLUGIN: Plugin = Plugin { name: "cphealth", version: env!("CARGO_PKG_VERSION") };

/// Check the whole Kubernetes control plane at once: API servers and their replicas, health
/// endpoints, static pods, leader election, etcd, certificates, load and latency, aggregated
/// APIs, nodes, webhooks. Exit codes: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN, 64 usage.
#[derive(Parser)]
#[command(version, about, long_about = None, after_help = examples::ROOT)]
struct Cli {
    #[command(flatten)]
    kube: KubeArgs,
    #[command(flatten)]
    output: OutputArgs,
    #[command(flatten)]
    check: CheckArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Clone, clap::Args)]
struct CheckArgs {
    /// Show every sub-check (each readyz line, etcd member, pod, lease, replica) and every fix
    #[arg(short = 'v', long, global = true)]
    verbose: bool,

    /// Lowest verdict that makes the exit code non-zero
    #[arg(long, value_enum, default_value_t = FailOn::Warning)]
    fail_on: FailOn,

    /// Window between the two /metrics scrapes used for rates (0 = one scrape, no rates)
    #[arg(long, global = true, default_value = "2s", value_parser = cpkit::duration::duration_arg, value_name = "DURATION")]
    sample: Duration,

    /// Time budget of each check
    #[arg(long, global = true, default_value = "20s", value_parser = cpkit::duration::positive_duration_arg, value_name = "DURATION")]
    check_timeout: Duration,

    /// Run only these checks (comma-separated)
    #[arg(long, value_enum, value_delimiter = ',', value_name = "CHECKS")]
    only: Vec<checks::Check>,

    /// Skip these checks (comma-separated)
    #[arg(long, value_enum, value_delimiter = ',', value_name = "CHECKS")]
    skip: Vec<checks::Check>,

    /// Check these kubeconfig contexts concurrently, one summary row each
    #[arg(long, value_delimiter = ',', value_name = "CONTEXTS", conflicts_with = "all_contexts")]
    contexts: Vec<String>,

    /// Check every context of the kubeconfig
    #[arg(long)]
    all_contexts: bool,

    /// Re-run every --interval and show what changed (Ctrl-C to stop)
    #[arg(short = 'w', long)]
    watch: bool,

    /// Interval of --watch
    #[arg(long, default_value = "10s", value_parser = cpkit::duration::positive_duration_arg, value_name = "DURATION")]
    interval: Duration,

    /// etcd client URLs to check directly (e.g. from a control-plane node) instead of through the etcd pods
    #[arg(long, value_delimiter = ',', value_name = "URLS", help_heading = "etcd connection")]
    etcd_endpoints: Vec<String>,

    #[command(flatten)]
    replica: cpkit::cli::ReplicaArgs,

    #[command(flatten)]
    etcd_tls: cpkit::etcd::direct::EtcdTlsArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Print the minimal read-only ClusterRole that enables every check (and the optional etcd exec Role)
    #[command(after_help = examples::RBAC)]
    Rbac(RbacArgs),
    /// Collect a diagnostics bundle (tar.gz) without secrets
    #[command(after_help = examples::BUNDLE)]
    Bundle(bundle::BundleArgs),
}

#[derive(Debug, Clone, clap::Args)]
struct RbacArgs {
    /// Bind the roles to this user
    #[arg(long, value_name = "NAME", conflicts_with = "bind_group")]
    bind_user: Option<String>,
    /// Bind the roles to this group
    #[arg(long, value_name = "NAME")]
    bind_group: Option<String>,
    /// Do not contact the cluster (the etcd exec Role then lists no pod names)
    #[arg(long)]
    offline: bool,
}

fn main() {
    cpkit::cli::run_plugin::<Cli, _, _>(PLUGIN, run)
}

async fn run(cli: Cli) -> Result<i32> {
    match &cli.command {
        Some(Command::Rbac(args)) => return rbac_command(&cli, args).await,
        Some(Command::Bundle(args)) => return bundle_command(&cli, args).await,
        None => {}
    }
    if cli.check.all_contexts || !cli.check.contexts.is_empty() {
        return multi_context(&cli).await;
    }
    let cluster = Cluster::connect(&cli.kube, PLUGIN).await?;
    if cli.check.watch {
        return watch(&cli, &cluster).await;
    }
    let report = check_cluster(&cluster, &cli.check).await;
    print_report(&cli, &report)?;
    Ok(cli.check.fail_on.exit_code(report.verdict))
}

fn options(args: &CheckArgs) -> CheckOptions {
    CheckOptions {
        sample: args.sample,
        check_timeout: args.check_timeout,
        replica_timeout: args.replica.replica_timeout,
        etcd_endpoints: args.etcd_endpoints.clone(),
        etcd_tls: args.etcd_tls.clone(),
    }
}

/// Runs the selected checks concurrently and builds the report.
async fn check_cluster(cluster: &Cluster, args: &CheckArgs) -> HealthReport {
    check_with(&Ctx::new(cluster.clone(), options(args)), args).await
}

/// The checks over `ctx`, whose reads (the replica survey, the pods) stay for the caller.
async fn check_with(ctx: &Ctx, args: &CheckArgs) -> HealthReport {
    let cluster = &ctx.cluster;
    let started = Instant::now();
    let started_at = jiff::Timestamp::now();
    let selected: Vec<checks::Check> = checks::Check::ALL
        .iter()
        .copied()
        .filter(|c| args.only.is_empty() || args.only.contains(c))
        .filter(|c| !args.skip.contains(c))
        .collect();
    // The first /metrics scrape starts with everything else: the sample window overlaps the checks.
    let wants_load = selected.contains(&checks::Check::Load);
    let states = checks::ReplicaStates::new();
    let prefetch = async {
        if wants_load {
            ctx.first_scrapes().await;
        }
    };
    let run = async {
        let checks = selected.iter().map(|check| checks::run_one(*check, ctx, &states));
        let results = futures::future::join_all(checks).await;
        let version = ctx.version().await;
        let api_error = version.as_ref().err().cloned();
        (version, api_error, results)
    };
    // The prefetch only gives the load check a head start: once every check has finished (the
    // load check skipped when the server is unreachable), nothing waits for it.
    let prefetch = async {
        prefetch.await;
        std::future::pending::<()>().await;
    };
    let (version, api_error, results) = tokio::select! {
        out = run => out,
        _ = prefetch => unreachable!("pending never completes"),
    };
    let managed = if api_error.is_none() { ctx.managed().await.map(|p| p.name().to_string()) } else { None };
    let mut summary = BTreeMap::new();
    for r in &results {
        *summary.entry(r.status).or_insert(0) += 1;
    }
    HealthReport {
        context: cluster.info.context.clone(),
        server: cluster.server().to_string(),
        version: version.ok().map(|v| v.git_version),
        managed,
        verdict: cpkit::report::verdict(&results),
        started_at: started_at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        duration_seconds: (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
        summary,
        diagnosis: cpkit::diagnosis::diagnose(&results),
        checks: results,
    }
}

fn print_report(cli: &Cli, report: &HealthReport) -> Result<()> {
    cli.output.emit("HealthReport", report, || {
        render::text(report, cli.output.is_wide(), cli.output.no_headers, cli.check.verbose)
    })
}

async fn multi_context(cli: &Cli) -> Result<i32> {
    let contexts: Vec<String> = if cli.check.all_contexts {
        let loaded = cpkit::kubeconfig::load(cli.kube.kubeconfig.as_deref())?
            .ok_or_else(|| cpkit::kubeconfig::no_configuration("--all-contexts needs a kubeconfig"))?;
        loaded.context_names()
    } else {
        cli.check.contexts.clone()
    };
    let runs = contexts.iter().map(|ctx| async move {
        let args = cli.kube.with_context(ctx);
        match Cluster::connect(&args, PLUGIN).await {
            Ok(cluster) => Ok(check_cluster(&cluster, &cli.check).await),
            Err(e) => Err((ctx.clone(), e)),
        }
    });
    let reports = futures::future::join_all(runs).await;
    let worst =
        reports.iter().map(|r| r.as_ref().map(|x| x.verdict).unwrap_or(Status::Unknown)).max().unwrap_or(Status::Ok);
    match cli.output.output {
        OutputFormat::Json | OutputFormat::Yaml => {
            let items: Vec<serde_json::Value> = reports
                .iter()
                .map(|r| match r {
                    Ok(rep) => serde_json::to_value(rep).unwrap_or_default(),
                    Err((ctx, e)) => serde_json::json!({"context": ctx, "verdict": "UNKNOWN", "error": e.to_string()}),
                })
                .collect();
            output::print_document("HealthReportList", &serde_json::json!({"items": items}), cli.output.output)?;
        }
        _ => output::write_stdout(&render::multi(&reports, cli.output.is_wide(), cli.output.no_headers))?,
    }
    Ok(cli.check.fail_on.exit_code(worst))
}

async fn watch(cli: &Cli, cluster: &Cluster) -> Result<i32> {
    let mut previous: Option<HealthReport> = None;
    loop {
        let report = check_cluster(cluster, &cli.check).await;
        let stamp = jiff::Timestamp::now().strftime("%H:%M:%S").to_string();
        match cli.output.output {
            OutputFormat::Json | OutputFormat::Yaml => print_report(cli, &report)?,
            _ => {
                if cpkit::cli::stdout_is_terminal() {
                    output::write_stdout("\x1b[2J\x1b[H")?;
                }
                output::write_stdout(&format!(
                    "{}\n",
                    output::bold(&format!("every {} — {stamp}", cpkit::duration::human_duration(cli.check.interval)))
                ))?;
                print_report(cli, &report)?;
                if let Some(prev) = &previous {
                    let changes = render::changes(prev, &report);
                    let text = if changes.is_empty() {
                        "no change since the last round".to_string()
                    } else {
                        let width = output::text_width(cli.output.is_wide());
                        changes.iter().map(|c| output::wrap::paragraph("", c, 2, width)).collect::<String>()
                    };
                    output::write_stdout(&format!("\n{}\n{}\n", output::bold("Changed:"), text.trim_end()))?;
                }
            }
        }
        previous = Some(report);
        tokio::time::sleep(cli.check.interval).await;
    }
}

async fn rbac_command(cli: &Cli, args: &RbacArgs) -> Result<i32> {
    let subject = args.bind_user.as_deref().map(|u| ("User", u)).or(args.bind_group.as_deref().map(|g| ("Group", g)));
    let mut etcd_pods = Vec::new();
    if !args.offline
        && let Ok(cluster) = Cluster::connect(&cli.kube, PLUGIN).await
        && let Ok(pods) = cpkit::etcd::pods::find(&cluster).await
    {
        etcd_pods = pods.into_iter().map(|p| p.pod.name).collect();
    }
    output::write_stdout(&rbac::manifests(subject, &etcd_pods))?;
    Ok(0)
}

async fn bundle_command(cli: &Cli, args: &bundle::BundleArgs) -> Result<i32> {
    let cluster = Cluster::connect(&cli.kube, PLUGIN).await?;
    let ctx = Ctx::new(cluster.clone(), options(&cli.check));
    let report = check_with(&ctx, &cli.check).await;
    let report_value = serde_json::to_value(&report).unwrap_or_default();
    // The replicas as the checks surveyed them: not dialled a second time.
    let survey = ctx.survey().await.map(|s| (*s).clone()).unwrap_or_default();
    let path = bundle::run(&cluster, args, report_value, &survey).await?;
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    output::write_stdout(&format!(
        "wrote {} ({}), verdict {}\n",
        path.display(),
        output::human_bytes(size),
        report.verdict
    ))?;
    Ok(0)
}
