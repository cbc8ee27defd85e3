//! `kubectl webhookguard`: finds the admission webhooks that can lock a cluster, and defuses them.

// System calls belong in cpkit, where each unsafe block is justified.
#![forbid(unsafe_code)]

mod disarm;
mod examples;
mod probe;
mod scan;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use cpkit::Cluster;
use cpkit::cli::{KubeArgs, OutputArgs, Plugin};
use cpkit::error::Result;
use cpkit::exit::{FailOn, Status};
use cpkit::output::wrap::{command, paragraph};
use cpkit::output::{self, bold, dim, status_text};
use cpkit::webhooks::ClusterFacts;
use cpkit::webhooks::defuse::{self, Mode};
use cpkit::webhooks::rearm;
use serde_json::json;

const PLUGIN: Plugin = Plugin { name: "webhookguard", version: env!("CARGO_PKG_VERSION") };

/// Find the admission webhooks that can lock a cluster (LOCKOUT, SELF-DEADLOCK, BACKEND DOWN, ...)
/// and defuse them safely. Without a subcommand: `scan`. Exit codes: 0 OK, 1 WARNING,
/// 2 CRITICAL, 3 UNKNOWN, 64 usage.
#[derive(Parser)]
#[command(version, about, long_about = None, args_conflicts_with_subcommands = true, after_help = examples::ROOT)]
struct Cli {
    #[command(flatten)]
    kube: KubeArgs,
    #[command(flatten)]
    output: OutputArgs,
    #[command(flatten)]
    scan: ScanArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Every webhook of every configuration, with findings and fixes (the default)
    #[command(after_help = examples::SCAN)]
    Scan(ScanArgs),
    /// Server-side dry-run creates of a pod and a configmap: admission latency, and the webhook at fault
    #[command(after_help = examples::PROBE)]
    Probe(ProbeArgs),
    /// The emergency lever: fail a configuration's webhooks open, exclude system namespaces, or delete it
    #[command(after_help = examples::DISARM)]
    Disarm(DisarmArgs),
    /// Re-apply a configuration saved by disarm
    #[command(after_help = examples::RESTORE)]
    Restore(RestoreArgs),
}

#[derive(Debug, Clone, clap::Args, Default)]
struct ScanArgs {
    /// Scan manifests instead of the cluster: files, directories or - for stdin (YAML streams, Lists, JSON)
    #[arg(short = 'f', long = "filename", value_name = "PATH", value_hint = clap::ValueHint::AnyPath)]
    filenames: Vec<PathBuf>,

    /// Accepted risks: a YAML list of {config, webhook, finding, reason}
    #[arg(long, value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    allowlist: Option<PathBuf>,

    /// Lowest verdict that makes the exit code non-zero
    #[arg(long, value_enum, default_value_t = FailOn::Warning)]
    fail_on: FailOn,

    /// Every summary whole (wrapped) instead of cut to one line
    #[arg(short = 'v', long)]
    verbose: bool,

    /// Window between the two /metrics scrapes used for admission rates (0 = one scrape)
    #[arg(long, default_value = "1s", value_parser = cpkit::duration::duration_arg, value_name = "DURATION")]
    sample: Duration,
}

#[derive(Debug, Clone, clap::Args)]
struct ProbeArgs {
    /// Namespaces to probe, comma-separated (default: -n, else default and kube-system)
    #[arg(long, value_delimiter = ',', value_name = "NAMESPACES")]
    namespaces: Vec<String>,
}

#[derive(Debug, Clone, clap::Args)]
struct DisarmArgs {
    /// The configuration: NAME, validatingwebhookconfiguration/NAME or mutatingwebhookconfiguration/NAME
    #[arg(value_name = "CONFIG")]
    config: String,

    /// Which kind of configuration, when the name exists as both
    #[arg(long, value_enum)]
    kind: Option<disarm::KindArg>,

    /// Only these webhooks of the configuration (repeat; default: all)
    #[arg(long = "webhook", value_name = "NAME")]
    webhooks: Vec<String>,

    /// What to do
    #[arg(long, value_enum)]
    mode: Mode,

    /// Apply the change (without it, only the plan is printed)
    #[arg(long)]
    yes: bool,

    /// Apply only if the configuration is still at this resourceVersion (the one the plan showed)
    #[arg(long, value_name = "RV")]
    resource_version: Option<String>,

    /// Where the backup goes (default: $XDG_STATE_HOME/kubectl-webhookguard/backups)
    #[arg(long, value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
    backup_dir: Option<PathBuf>,

    /// Also take the pause steps: scale each controller that would put the configuration back to
    /// 0 replicas before the change (only with --yes; the resume commands are printed with the undo)
    #[arg(long)]
    pause_rearmers: bool,

    /// After the change, watch the configuration this long for a controller putting it back (0: do not)
    #[arg(long, default_value = "5s", value_parser = cpkit::duration::duration_arg, value_name = "DURATION")]
    watch: std::time::Duration,
}

#[derive(Debug, Clone, clap::Args)]
struct RestoreArgs {
    /// A backup written by disarm: its path, or its file name in this context's backup directory
    #[arg(value_name = "BACKUP", value_hint = clap::ValueHint::FilePath)]
    backup: PathBuf,

    /// Apply (without it, only the plan is printed)
    #[arg(long)]
    yes: bool,

    /// Where the backup of the current state goes before it is replaced
    #[arg(long, value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
    backup_dir: Option<PathBuf>,

    /// Restore even when it would lock the cluster again (a backend that is still down)
    #[arg(long)]
    force: bool,
}

fn main() {
    cpkit::cli::run_plugin::<Cli, _, _>(PLUGIN, run)
}

async fn run(cli: Cli) -> Result<i32> {
    match &cli.command {
        Some(Command::Scan(args)) => scan_command(&cli, args).await,
        None => scan_command(&cli, &cli.scan).await,
        Some(Command::Probe(args)) => probe_command(&cli, args).await,
        Some(Command::Disarm(args)) => disarm_command(&cli, args).await,
        Some(Command::Restore(args)) => restore_command(&cli, args).await,
    }
}

async fn scan_command(cli: &Cli, args: &ScanArgs) -> Result<i32> {
    let allow = match &args.allowlist {
        Some(p) => scan::read_allowlist(p)?,
        None => Vec::new(),
    };
    let report = if args.filenames.is_empty() {
        let cluster = Cluster::connect(&cli.kube, PLUGIN).await?;
        let (configs, policies, facts, notes) = scan::live(&cluster, args.sample).await?;
        scan::report(format!("cluster {}", cluster.info.context), configs, policies, &facts, notes, &allow)
    } else {
        let (configs, policies, source) = scan::read_manifests(&args.filenames)?;
        let notes = vec![
            "offline: namespace labels, backend services and endpoints, and admission metrics are unknown; findings that depend on them say so".to_string(),
        ];
        let facts = ClusterFacts { now: Some(jiff::Timestamp::now()), ..ClusterFacts::offline() };
        scan::report(source, configs, policies, &facts, notes, &allow)
    };
    cli.output.emit("WebhookScan", &report, || scan::render(&report, &cli.output, args.verbose))?;
    Ok(args.fail_on.exit_code(report.verdict))
}

fn probe_namespaces(cli: &Cli, args: &[String]) -> Vec<String> {
    if !args.is_empty() {
        return args.to_vec();
    }
    match &cli.kube.namespace {
        Some(ns) => vec![ns.clone()],
        None => vec!["default".into(), "kube-system".into()],
    }
}

async fn probe_command(cli: &Cli, args: &ProbeArgs) -> Result<i32> {
    let cluster = Cluster::connect(&cli.kube, PLUGIN).await?;
    let results = probe::run(&cluster, &probe_namespaces(cli, &args.namespaces)).await?;
    let verdict = results.iter().map(|r| r.status).max().unwrap_or(Status::Ok);
    cli.output.emit("WebhookProbe", &json!({"verdict": verdict, "results": results}), || {
        probe::render(&results, cli.output.is_wide(), cli.output.no_headers)
    })?;
    Ok(verdict.exit_code())
}

/// The restore that undoes a change. A backup in the default directory is named by its file
/// name alone (restore finds it there), so the command fits a terminal line.
fn undo_command(cli: &Cli, context: &str, backup: &std::path::Path, custom_dir: bool) -> String {
    let file_name = backup.file_name().map(|n| n.to_string_lossy().to_string());
    let named = match file_name {
        Some(n) if !custom_dir => n,
        _ => backup.display().to_string(),
    };
    let mut cmd =
        format!("kubectl webhookguard restore {} --context {} --yes", shell_quote(&named), shell_quote(context));
    if let Some(k) = &cli.kube.kubeconfig {
        cmd.push_str(&format!(" --kubeconfig {}", shell_quote(&k.display().to_string())));
    }
    cmd
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=@".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// `Backup: <file> (in <dir>)`, the home directory shown as `~`, wrapped to the terminal.
fn backup_line(label: &str, backup: &std::path::Path, width: Option<usize>) -> String {
    let name = backup.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let dir = backup.parent().map(home_relative).unwrap_or_default();
    paragraph(&format!("{} ", bold(label)), &format!("{name} (in {dir})"), 2, width)
}

fn home_relative(path: &std::path::Path) -> String {
    match std::env::var_os("HOME").map(PathBuf::from) {
        Some(home) if !home.as_os_str().is_empty() => match path.strip_prefix(&home) {
            Ok(rest) => format!("~/{}", rest.display()),
            Err(_) => path.display().to_string(),
        },
        _ => path.display().to_string(),
    }
}

/// A backup path that does not exist yet (two disarms in the same second get `-2`, `-3`, ...).
fn fresh_backup_path(dir: &std::path::Path, context: &str, kind: cpkit::webhooks::ConfigKind, name: &str) -> PathBuf {
    let first = disarm::backup_path(dir, context, kind, name, jiff::Timestamp::now());
    let mut candidate = first.clone();
    let mut n = 2;
    while candidate.exists() {
        candidate = first.with_extension(format!("{n}.json"));
        n += 1;
    }
    candidate
}

async fn disarm_command(cli: &Cli, args: &DisarmArgs) -> Result<i32> {
    let (kind, name) = disarm::parse_target(&args.config, args.kind)?;
    let cluster = Cluster::connect(&cli.kube, PLUGIN).await?;
    let context = cluster.info.context.clone();
    let (kind, object) = disarm::read_config(&cluster, kind, &name).await?;
    let mut plan = defuse::plan(&object, args.mode, &args.webhooks)?;
    if let Some(rv) = &args.resource_version {
        // The server refuses the write if the object moved on from the version the user saw.
        plan.resource_version = rv.clone();
    }
    let uid = object["metadata"]["uid"].as_str().unwrap_or("").to_string();
    let target = format!("{}/{}", kind.kind().to_ascii_lowercase(), plan.config);
    let dir = args.backup_dir.clone().unwrap_or_else(disarm::default_backup_dir);
    let structured = cli.output.is_structured();
    let width = output::text_width(cli.output.is_wide());
    let mut text = String::new();
    text.push_str(&paragraph(
        &format!("{} ", bold("Plan:")),
        &format!("{target} on context {context}, conditioned on resourceVersion {}:", plan.resource_version),
        2,
        width,
    ));
    for c in &plan.changes {
        text.push_str(&paragraph("  - ", c, 4, width));
    }
    for w in &plan.warnings {
        text.push_str(&paragraph(&format!("  {} ", status_text(Status::Warning)), w, 4, width));
    }
    if plan.changes.is_empty() {
        text.push_str("Nothing to change.\n");
        return finish_disarm(cli, &text, json!({"plan": plan, "applied": false}), 0);
    }
    let rearmers = rearm::rearmers(&object);
    let pauses = disarm::pause_steps(&cluster, &rearmers).await;
    text.push_str(&rearmers_text(&rearmers, &pauses, width));
    if !args.yes {
        let note = format!("A backup of the configuration will be written to {} first.", home_relative(&dir));
        for line in paragraph("", &note, 0, width).lines() {
            text.push_str(&format!("{}\n", dim(line)));
        }
        if args.pause_rearmers && !pauses.is_empty() {
            text.push_str(&paragraph(
                "",
                "With --pause-rearmers and --yes, the pause steps above are taken first.",
                0,
                width,
            ));
        }
        text.push_str("Nothing changed. To apply exactly this plan:\n");
        let webhook_flags: String =
            args.webhooks.iter().flat_map(|w| ["--webhook ".to_string(), shell_quote(w), " ".into()]).collect();
        text.push_str(&command(
            "  ",
            &format!(
                "kubectl webhookguard disarm {target} --mode {} {webhook_flags}--resource-version {}{} --yes",
                mode_name(args.mode),
                plan.resource_version,
                if args.pause_rearmers { " --pause-rearmers" } else { "" }
            ),
            width,
        ));
        return finish_disarm(
            cli,
            &text,
            json!({"plan": plan, "applied": false, "rearmers": rearmers, "pauseSteps": pauses}),
            0,
        );
    }
    let backup = disarm::write_backup(&fresh_backup_path(&dir, &context, kind, &plan.config), &object)?;
    text.push_str(&backup_line("Backup:", &backup, width));
    // The controllers first: paused after the change, one could re-arm it in between.
    let mut paused: Vec<&disarm::PauseStep> = Vec::new();
    if args.pause_rearmers {
        for step in &pauses {
            if let Err(e) = disarm::pause(&cluster, step).await {
                if !structured {
                    output::write_stdout(&text)?;
                }
                return Err(e);
            }
            let d = &step.deployment;
            text.push_str(&paragraph(
                &format!("{} ", bold("Paused")),
                &format!(
                    "{}: deployment {}/{} scaled from {} to 0.",
                    step.who,
                    d.namespace,
                    d.name,
                    step.replicas.unwrap_or_default()
                ),
                2,
                width,
            ));
            paused.push(step);
        }
    }
    if let Err(e) = disarm::apply(&cluster, kind, &plan, &uid).await {
        if !structured {
            output::write_stdout(&text)?;
        }
        return Err(e);
    }
    let verified = disarm::verify_disarm(&cluster, kind, &plan).await.unwrap_or(false);
    text.push_str(&paragraph(
        &format!("{} ", bold("Disarmed")),
        &format!(
            "{target}: {} change{} applied{}.",
            plan.changes.len(),
            if plan.changes.len() == 1 { "" } else { "s" },
            if verified { ", read back and verified" } else { " (could not read it back to verify)" }
        ),
        2,
        width,
    ));
    // Watched even when the read-back differed: a controller may have been quicker.
    let rearmed =
        if !args.watch.is_zero() { disarm::watch_for_rearm(&cluster, kind, &plan, args.watch).await } else { None };
    if let Some(r) = &rearmed {
        let by = r.writer.as_deref().map(|w| format!(" (last written by {w:?})")).unwrap_or_default();
        text.push_str(&paragraph(
            &format!("{} ", status_text(Status::Critical)),
            &format!(
                "RE-ARMED after {:.1}s{by}: {}. Pause what puts it back (above), then disarm again.",
                r.after_seconds,
                r.what.join("; ")
            ),
            2,
            width,
        ));
    } else if verified && !args.watch.is_zero() {
        text.push_str(&format!(
            "Watched it for {}: it stayed disarmed.\n",
            cpkit::duration::human_duration(args.watch)
        ));
    }
    let probes = probe::run(&cluster, &probe_namespaces(cli, &[])).await;
    let probe_verdict = match &probes {
        Ok(results) => {
            text.push_str(&format!("\n{}\n{}", bold("Probe after the change:"), probe::render(results, false, false)));
            results.iter().map(|r| r.status).max().unwrap_or(Status::Ok)
        }
        Err(e) => {
            text.push_str(&paragraph("\nprobe after the change failed: ", &e.to_string(), 2, width));
            Status::Unknown
        }
    };
    let undo = undo_command(cli, &context, &backup, args.backup_dir.is_some());
    text.push_str(&format!("\n{}\n{}", bold("Undo:"), command("  ", &undo, width)));
    // Resumed after the restore: running, they would re-arm it anyway.
    let resumes: Vec<&str> = paused.iter().filter_map(|p| p.resume.as_deref()).collect();
    for resume in &resumes {
        text.push_str(&command("  ", resume, width));
    }
    let code = match (&rearmed, verified) {
        (Some(_), _) => Status::Critical.exit_code(),
        (None, false) => Status::Unknown.exit_code(),
        (None, true) => probe_verdict.exit_code(),
    };
    let probes = probes.unwrap_or_default();
    finish_disarm(
        cli,
        &text,
        json!({"plan": plan, "applied": true, "verified": verified, "backup": backup, "undo": undo, "probe": probes,
               "rearmers": rearmers, "pauseSteps": pauses, "paused": paused, "resume": resumes, "rearmed": rearmed}),
        code,
    )
}

/// Who puts the configuration back, and the separate step that pauses each controller.
fn rearmers_text(rearmers: &[rearm::Rearmer], pauses: &[disarm::PauseStep], width: Option<usize>) -> String {
    let mut text = String::new();
    for r in rearmers {
        let (label, consequence) = match r.undoes {
            rearm::Undoes::WithinSeconds => (status_text(Status::Warning), "will restore it within seconds"),
            rearm::Undoes::NextRelease => (status_text(Status::Warning), "puts it back at its next upgrade or sync"),
            rearm::Undoes::CaBundleOnly => (dim("note"), "rewrites its caBundle only, which does not undo this"),
        };
        text.push_str(&paragraph(
            &format!("  {label} "),
            &format!("{} {consequence} ({}).", r.who, r.evidence),
            4,
            width,
        ));
    }
    for p in pauses {
        text.push_str(&paragraph(
            "  ",
            &format!(
                "To keep it disarmed, pause {} first — a separate step, taken only with --pause-rearmers --yes:",
                p.who
            ),
            2,
            width,
        ));
        text.push_str(&command("    ", &p.pause, width));
        match (&p.resume, &p.unread) {
            (Some(resume), _) => {
                text.push_str(&paragraph(
                    "  ",
                    "and once the backend is healthy and the webhook restored, resume it:",
                    2,
                    width,
                ));
                text.push_str(&command("    ", resume, width));
            }
            (None, Some(why)) => {
                text.push_str(&paragraph(
                    "  ",
                    &format!("(its replica count could not be read to print the resume command: {why})"),
                    2,
                    width,
                ));
            }
            (None, None) => {}
        }
    }
    text
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Ignore => "ignore",
        Mode::ExcludeSystem => "exclude-system",
        Mode::Delete => "delete",
    }
}

fn finish_disarm(cli: &Cli, text: &str, doc: serde_json::Value, code: i32) -> Result<i32> {
    cli.output.emit("WebhookDisarm", &doc, || text.to_string())?;
    Ok(code)
}

async fn restore_command(cli: &Cli, args: &RestoreArgs) -> Result<i32> {
    let dir = args.backup_dir.clone().unwrap_or_else(disarm::default_backup_dir);
    let width = output::text_width(cli.output.is_wide());
    let cluster = Cluster::connect(&cli.kube, PLUGIN).await?;
    let context = cluster.info.context.clone();
    let backup_file = disarm::resolve_backup(&args.backup, &dir, &context);
    let (kind, backup) = disarm::read_backup(&backup_file)?;
    let name = backup["metadata"]["name"].as_str().unwrap_or("").to_string();
    let current = match disarm::read_config(&cluster, Some(kind), &name).await {
        Ok((_, v)) => Some(v),
        Err(e) if e.kind == cpkit::error::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let plan = disarm::plan_restore(kind, &backup, current.as_ref());
    let target = format!("{}/{name}", kind.kind().to_ascii_lowercase());
    let verb = if plan.action == "none" { "leave" } else { plan.action.as_str() };
    let file_name = backup_file.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let folder = backup_file.parent().map(home_relative).unwrap_or_default();
    let mut plan_text = format!("{verb} {target} on context {context} from {file_name} (in {folder})");
    match plan.action.as_str() {
        "none" => plan_text.push_str(": it already matches the backup. Nothing to do."),
        "create" => plan_text.push_str(": the configuration does not exist; it will be created as saved."),
        _ => plan_text.push_str(&format!(
            ": replace {} (conditioned on resourceVersion {}).",
            plan.differs.join(", "),
            plan.resource_version.as_deref().unwrap_or("?")
        )),
    }
    let mut text = paragraph(&format!("{} ", bold("Plan:")), &plan_text, 2, width);
    if plan.action == "none" {
        return finish_restore(cli, &text, json!({"plan": plan, "applied": false}), 0);
    }
    // What disarm checked, checked again: the restored webhooks against their backends now.
    let findings = restore_findings(&cluster, &backup, &backup_file).await?;
    let blockers = cpkit::webhooks::defuse::restore_blockers(&findings);
    let refused: Vec<serde_json::Value> =
        blockers.iter().map(|f| json!({"webhook": f.webhook, "summary": f.summary, "evidence": f.evidence})).collect();
    if !blockers.is_empty() {
        let heading = if args.force { status_text(Status::Warning) } else { bold("Refused:") };
        text.push_str(&paragraph(
            &format!("{heading} "),
            &format!(
                "restoring would lock the cluster again while {}:",
                if blockers.len() == 1 { "this backend is down" } else { "these backends are down" }
            ),
            2,
            width,
        ));
        for f in &blockers {
            text.push_str(&paragraph("  - ", &format!("{}: {}", f.webhook, f.summary), 4, width));
        }
        if !args.force {
            text.push_str(&paragraph(
                "",
                &format!(
                    "Nothing changed. Bring the backend back first (`kubectl webhookguard scan` shows when its endpoints are ready), or pass --force to restore {target} anyway."
                ),
                0,
                width,
            ));
            let doc = json!({"plan": plan, "applied": false, "refused": refused});
            return finish_restore(cli, &text, doc, Status::Critical.exit_code());
        }
    }
    if !args.yes {
        text.push_str("Nothing changed. Re-run with --yes to apply.\n");
        return finish_restore(cli, &text, json!({"plan": plan, "applied": false, "refused": refused}), 0);
    }
    let mut saved = None;
    if let Some(c) = &current {
        let path = disarm::write_backup(&fresh_backup_path(&dir, &context, kind, &name), c)?;
        text.push_str(&backup_line("Backup of the current state:", &path, width));
        saved = Some(path);
    }
    if let Err(e) = disarm::restore(&cluster, kind, &backup, current.as_ref()).await {
        if !cli.output.is_structured() {
            output::write_stdout(&text)?;
        }
        return Err(e);
    }
    let remaining = disarm::verify_restore(&cluster, kind, &backup).await?;
    let mut code = if remaining.is_empty() {
        text.push_str(&paragraph(
            &format!("{} ", bold("Restored")),
            &format!("{target}: read back, it matches the backup."),
            2,
            width,
        ));
        0
    } else {
        text.push_str(&paragraph(
            &format!("{} ", status_text(Status::Critical)),
            &format!("{target} was written, but reading it back still differs in {}.", remaining.join(", ")),
            2,
            width,
        ));
        Status::Critical.exit_code()
    };
    // As after a disarm: what the API server now admits.
    let probes = probe::run(&cluster, &probe_namespaces(cli, &[])).await;
    match &probes {
        Ok(results) => {
            text.push_str(&format!("\n{}\n{}", bold("Probe after the restore:"), probe::render(results, false, false)));
            code = code.max(results.iter().map(|r| r.status).max().unwrap_or(Status::Ok).exit_code());
        }
        Err(e) => text.push_str(&paragraph("\nprobe after the restore failed: ", &e.to_string(), 2, width)),
    }
    if let Some(p) = &saved {
        let undo = undo_command(cli, &context, p, args.backup_dir.is_some());
        text.push_str(&format!("\n{}\n{}", bold("Undo:"), command("  ", &undo, width)));
    }
    let probes = probes.unwrap_or_default();
    finish_restore(
        cli,
        &text,
        json!({"plan": plan, "applied": true, "matches": remaining.is_empty(), "differs": remaining, "backup": saved, "refused": refused, "forced": !refused.is_empty(), "probe": probes}),
        code,
    )
}

/// The analysis of the configuration in `backup` against the live cluster (its backends now).
async fn restore_findings(
    cluster: &Cluster,
    backup: &serde_json::Value,
    path: &std::path::Path,
) -> Result<Vec<cpkit::webhooks::Finding>> {
    let Some(config) = cpkit::webhooks::WebhookConfig::from_value(backup, &path.display().to_string())? else {
        return Ok(Vec::new());
    };
    let configs = [config];
    let (facts, _) = cpkit::webhooks::gather::read_facts(cluster, &configs).await;
    Ok(cpkit::webhooks::analyse(&configs, &facts))
}

fn finish_restore(cli: &Cli, text: &str, doc: serde_json::Value, code: i32) -> Result<i32> {
    cli.output.emit("WebhookRestore", &doc, || text.to_string())?;
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn scan_is_the_default_and_flags_work_without_the_subcommand() {
        let cli = Cli::try_parse_from(["kubectl-webhookguard", "-f", "a.yaml", "--fail-on", "critical"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.scan.filenames, [PathBuf::from("a.yaml")]);
        let cli = Cli::try_parse_from(["kubectl-webhookguard", "scan", "-f", "-", "-o", "json"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Scan(ref s)) if s.filenames == [PathBuf::from("-")]));
        assert!(Cli::try_parse_from(["kubectl-webhookguard", "disarm", "x"]).is_err(), "--mode is required");
    }

    #[test]
    fn undo_is_a_pasteable_command() {
        let cli = Cli::try_parse_from(["kubectl-webhookguard", "--kubeconfig", "/tmp/my config"]).unwrap();
        assert_eq!(
            undo_command(&cli, "prod", std::path::Path::new("/b/x.json"), true),
            "kubectl webhookguard restore /b/x.json --context prod --yes --kubeconfig '/tmp/my config'"
        );
        // In the default directory the file name is enough: restore looks there.
        assert_eq!(
            undo_command(&cli, "prod", std::path::Path::new("/b/prod/x.json"), false),
            "kubectl webhookguard restore x.json --context prod --yes --kubeconfig '/tmp/my config'"
        );
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
