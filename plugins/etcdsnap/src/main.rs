//! `kubectl etcdsnap`: etcd snapshots that are verified and restorable, and the maintenance
//! around them.

// System calls belong in cpkit, where each unsafe block is justified.
#![forbid(unsafe_code)]

mod examples;
mod files;
mod members;
mod objects;
mod restore;
mod save;
mod transport;

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, Subcommand};
use cpkit::Cluster;
use cpkit::cli::{KubeArgs, OutputArgs, Plugin};
use cpkit::error::{Error, Result};
use cpkit::exit::Status;
use cpkit::output::{self, Table, bold, dim, human_bytes, status_text};
use serde_json::json;

use transport::RouteArgs;

const PLUGIN: Plugin = Plugin { name: "etcdsnap", version: env!("CARGO_PKG_VERSION") };

/// etcd snapshots you can trust: saved and verified in transit (port-forward, exec or direct),
/// inspected offline, listed, pruned, restored and drilled; plus member status, defrag and
/// compaction one member at a time. Exit codes: 0 OK, 1 WARNING, 2 CRITICAL/failed, 3 UNKNOWN,
/// 64 usage, 130 interrupted.
#[derive(Parser)]
#[command(version, about, long_about = None, after_help = examples::ROOT)]
struct Cli {
    #[command(flatten)]
    kube: KubeArgs,
    #[command(flatten)]
    output: OutputArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Save a verified snapshot (sha256 checked in transit, written atomically, with a .json record)
    #[command(after_help = examples::SAVE)]
    Save(save::SaveArgs),
    /// Inspect a snapshot file offline: integrity, etcdctl's numbers, members, objects inside
    #[command(after_help = examples::STATUS)]
    Status {
        #[arg(value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
        file: PathBuf,
        /// Skip the sha256 check of the whole file (then it checks what etcdctl snapshot status checks)
        #[arg(long)]
        no_digest: bool,
        /// Count as this etcd's `snapshot status` does (default: the etcd that wrote the file;
        /// 3.6 counts live user keys as totalKey, older ones every key of every bucket)
        #[arg(long, value_name = "VERSION")]
        semantics: Option<cpkit::etcd::snapshot::Semantics>,
        /// age identity file, for a snapshot saved with --encrypt-to
        #[arg(long, value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
        identity: Option<PathBuf>,
    },
    /// List the snapshots of a directory, newest first
    #[command(after_help = examples::LS)]
    Ls {
        #[command(flatten)]
        dir: SnapshotDir,
    },
    /// Delete old snapshots by count or age (never the newest verified one)
    #[command(after_help = examples::PRUNE)]
    Prune(PruneArgs),
    /// The exact per-member commands of a full restore from FILE
    #[command(after_help = examples::RESTORE_PLAN)]
    RestorePlan(RestorePlanArgs),
    /// Restore FILE into an empty local data directory with etcdutl (or etcdctl 3.4)
    #[command(after_help = examples::RESTORE)]
    Restore(RestoreCmdArgs),
    /// Restore FILE into a temp dir, start a throwaway etcd (the first on PATH), check it serves what status says
    #[command(after_help = examples::DRILL)]
    Drill {
        #[arg(value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
        file: PathBuf,
        /// Keep the temp dir (its path is printed)
        #[arg(long)]
        keep: bool,
        /// age identity file, for a snapshot saved with --encrypt-to
        #[arg(long, value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
        identity: Option<PathBuf>,
    },
    /// Every member: health, leader, version, db size and use, raft term and index, alarms
    #[command(after_help = examples::MEMBERS)]
    Members(MembersArgs),
    /// Defragment members one at a time, followers first, the leader last
    #[command(after_help = examples::DEFRAG)]
    Defrag(DefragArgs),
    /// Compact the key history up to a revision (irreversible)
    #[command(after_help = examples::COMPACT)]
    Compact(CompactArgs),
    /// etcd's alarms: list them, or disarm them once the space is free (a NOSPACE recovery's last step)
    #[command(after_help = examples::ALARM)]
    Alarm {
        #[command(subcommand)]
        action: AlarmCommand,
    },
}

/// Where snapshots are kept: a directory or an object-storage URL, given as DIR or, as `save`
/// takes it, as --dir.
#[derive(Debug, Clone, clap::Args)]
struct SnapshotDir {
    /// A directory, or an object-storage prefix (s3://, gs://, az://, file://); default: the current directory
    #[arg(value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
    dir: Option<PathBuf>,
    /// DIR, given as `save --dir` takes it
    #[arg(long = "dir", id = "dir_flag", value_name = "DIR", conflicts_with = "dir", value_hint = clap::ValueHint::DirPath)]
    dir_flag: Option<PathBuf>,
}

impl SnapshotDir {
    fn path(&self) -> PathBuf {
        self.dir.clone().or_else(|| self.dir_flag.clone()).unwrap_or_else(|| PathBuf::from("."))
    }
}

#[derive(Debug, Clone, clap::Args)]
struct PruneArgs {
    #[command(flatten)]
    dir: SnapshotDir,
    /// Keep the N newest snapshots
    #[arg(long, value_name = "N", required_unless_present = "older_than")]
    keep: Option<usize>,
    /// Delete snapshots older than this (e.g. 7d)
    #[arg(long, value_name = "AGE", value_parser = cpkit::duration::positive_duration_arg)]
    older_than: Option<Duration>,
    /// Only print what would be deleted
    #[arg(long, conflicts_with = "yes")]
    dry_run: bool,
    /// Delete (without it, only the plan is printed)
    #[arg(long)]
    yes: bool,
}

#[derive(Debug, Clone, clap::Args)]
struct RestorePlanArgs {
    #[arg(value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    file: PathBuf,
    /// The members as NAME=PEER_URL,... (default: read from the cluster's etcd pods)
    #[arg(long, value_name = "MEMBERS")]
    members: Option<String>,
    /// The data directory on the nodes
    #[arg(long, value_name = "DIR")]
    data_dir: Option<String>,
    /// --initial-cluster-token of the restored cluster
    #[arg(long, value_name = "TOKEN")]
    token: Option<String>,
    /// --bump-revision of the restore commands (default: past every revision possible since
    /// the snapshot, at least 1000000000)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    bump_revision: Option<u64>,
    /// age identity file, for a snapshot saved with --encrypt-to
    #[arg(long, value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    identity: Option<PathBuf>,
}

#[derive(Debug, Clone, clap::Args)]
struct RestoreCmdArgs {
    #[arg(value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    file: PathBuf,
    /// An empty or new directory to restore into
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
    /// The member's name
    #[arg(long, default_value = "default")]
    name: String,
    /// NAME=PEER_URL,... of the restored cluster (default: this member alone)
    #[arg(long, value_name = "MEMBERS")]
    initial_cluster: Option<String>,
    /// This member's peer URL
    #[arg(long, default_value = "http://127.0.0.1:2380")]
    initial_advertise_peer_urls: String,
    #[arg(long, default_value = "etcd-cluster")]
    initial_cluster_token: String,
    /// Raise the revision by this much and mark it compacted, so watchers re-list (default, where
    /// the tool has the flag: past every revision possible since the snapshot; 0: do not). One
    /// member of several (--initial-cluster names others) needs it given: the same N on each
    #[arg(long, value_name = "N")]
    bump_revision: Option<u64>,
    /// age identity file, for a snapshot saved with --encrypt-to
    #[arg(long, value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    identity: Option<PathBuf>,
    /// Restore a file without the sha256 trailer (a copied member/snap/db)
    #[arg(long)]
    skip_hash_check: bool,
    /// Run it (without it, only the plan is printed)
    #[arg(long)]
    yes: bool,
}

#[derive(Debug, Clone, clap::Args)]
struct MembersArgs {
    /// Time each member has to answer (a member that does not is reported down, the others as they are)
    #[arg(long, default_value = "5s", value_parser = cpkit::duration::positive_duration_arg, value_name = "DURATION")]
    timeout: Duration,
    #[command(flatten)]
    route: RouteArgs,
}

/// The time each member has to answer a status read during maintenance: bounded, so that a dead
/// member costs seconds, not the step's whole budget.
fn per_member(step: Duration) -> Duration {
    step.min(Duration::from_secs(5))
}

/// What every cluster-changing maintenance command takes.
#[derive(Debug, Clone, clap::Args)]
struct MaintenanceArgs {
    /// Run it (without it, only the plan is printed)
    #[arg(long)]
    yes: bool,
    /// Time limit of each step
    #[arg(long, default_value = "5m", value_parser = cpkit::duration::positive_duration_arg, value_name = "DURATION")]
    timeout: Duration,
    #[command(flatten)]
    route: RouteArgs,
}

#[derive(Debug, Clone, clap::Args)]
struct DefragArgs {
    /// Every member (followers first, the leader last); or name one with --member
    #[arg(long, conflicts_with = "member")]
    all: bool,
    #[command(flatten)]
    run: MaintenanceArgs,
}

#[derive(Debug, Clone, clap::Subcommand)]
enum AlarmCommand {
    /// Every active alarm (NOSPACE, CORRUPT) with the member that raised it
    #[command(after_help = examples::ALARM_LIST)]
    List(MembersArgs),
    /// Disarm every alarm; NOSPACE only once each member's database is under the quota
    #[command(after_help = examples::ALARM_DISARM)]
    Disarm(AlarmDisarmArgs),
}

#[derive(Debug, Clone, clap::Args)]
struct AlarmDisarmArgs {
    /// Disarm even when etcd would raise NOSPACE again at the next write
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    run: MaintenanceArgs,
}

#[derive(Debug, Clone, clap::Args)]
struct CompactArgs {
    /// Compact up to this revision (default: the current one)
    #[arg(long, value_name = "R")]
    revision: Option<i64>,
    #[command(flatten)]
    run: MaintenanceArgs,
}

fn main() {
    cpkit::cli::run_plugin::<Cli, _, _>(PLUGIN, run)
}

/// Connects only when a kubeconfig route is needed (direct and offline commands work without one).
async fn kube(cli: &Cli, route: &RouteArgs) -> Result<Option<Cluster>> {
    if route.is_direct() {
        return Ok(None);
    }
    Cluster::connect(&cli.kube, PLUGIN).await.map(Some)
}

/// Prose for the terminal: wrapped to its width (commands split so they still paste).
fn say(cli: &Cli, text: &str) -> Result<()> {
    output::write_stdout(&cli.output.fit_prose(text))
}

fn emit(cli: &Cli, kind: &str, doc: serde_json::Value, text: impl FnOnce() -> String) -> Result<()> {
    // Tables fit already; prose and commands are wrapped to the terminal here.
    cli.output.emit(kind, &doc, || cli.output.fit_prose(&text()))
}

async fn run(cli: Cli) -> Result<i32> {
    match &cli.command {
        Command::Save(args) => {
            let cluster = kube(&cli, &args.route).await?;
            let show = !cli.output.is_structured() && cpkit::cli::stderr_is_terminal();
            let report = save::run(cluster.as_ref(), args, show).await?;
            let s = &report.sidecar;
            let warned = report.warnings.iter().fold(String::new(), |mut out, w| {
                out.push_str(&format!("{} {w}\n", status_text(Status::Warning)));
                out
            });
            emit(&cli, "EtcdSnapshot", serde_json::to_value(&report).unwrap_or_default(), || match &report.node {
                Some(node) => format!(
                    "{warned}Saved and checked with `snapshot status` on node {node}: {} ({}, revision {}, hash {})\nCopy it from the node (e.g. scp {node}:{} .); kubectl cp cannot copy out of the etcd image.\n",
                    s.file,
                    human_bytes(s.db_size),
                    s.revision,
                    s.etcdctl_hash.as_deref().unwrap_or("-"),
                    s.file
                ),
                None => {
                    let how: Vec<String> = [
                        s.compression.as_ref().map(|c| format!("{c}-compressed")),
                        s.encryption.as_ref().map(|e| format!("{e}-encrypted to {}", s.recipients.join(", "))),
                    ]
                    .into_iter()
                    .flatten()
                    .collect();
                    let stored = if how.is_empty() {
                        String::new()
                    } else {
                        format!(
                            "\nstored {}: {} ({:.1}x smaller), sha256 of the stored bytes {}",
                            how.join(", then "),
                            human_bytes(s.file_size),
                            s.db_size as f64 / s.file_size.max(1) as f64,
                            s.stored_sha256.as_deref().unwrap_or("-")
                        )
                    };
                    let saved = report.url.as_deref().unwrap_or(&s.file);
                    format!(
                        "Saved {saved} ({}, revision {}, member {}, via {})\nsha256 {} verified against etcd's digest{stored}; record in {saved}.json\n",
                        human_bytes(s.db_size),
                        s.revision,
                        s.member,
                        s.via,
                        s.sha256.as_deref().unwrap_or("-"),
                    )
                }
            })?;
            Ok(if report.warnings.is_empty() { 0 } else { Status::Warning.exit_code() })
        }
        Command::Status { file, no_digest, semantics, identity } => {
            let (local, _download) = local_snapshot(file).await?;
            let (opened, st) = save::open_with_status(&local, identity.as_deref(), !no_digest, *semantics).await?;
            let ok = !st.sha256.checked || !st.sha256.present || st.sha256.valid;
            let mut doc = serde_json::to_value(&st).unwrap_or_default();
            doc["storedAs"] = json!(opened.stored_as());
            emit(&cli, "EtcdSnapshotStatus", doc, || files::status_text(file, &opened, &st))?;
            Ok(if ok { 0 } else { Status::Critical.exit_code() })
        }
        Command::Ls { dir } => {
            let dir = &dir.path();
            let entries = match object_prefix(dir)? {
                Some(remote) => objects::list(&remote).await?,
                None => files::list(dir)?,
            };
            emit(&cli, "EtcdSnapshotList", json!({"items": entries}), || {
                let mut t = Table::new(&["name", "age", "size", "revision", "member", "state"]);
                let now = jiff::Timestamp::now();
                for e in &entries {
                    let age =
                        jiff::Timestamp::try_from(e.modified).map(|m| cpkit::duration::age(m, now)).unwrap_or_default();
                    t.row([
                        file_name(&e.path),
                        age,
                        human_bytes(e.size),
                        e.revision.map(|r| r.to_string()).unwrap_or_else(|| "-".into()),
                        e.member.clone().unwrap_or_else(|| "-".into()),
                        e.state.clone(),
                    ]);
                }
                if t.is_empty() {
                    format!("No snapshots (*.db) in {}\n", dir.display())
                } else {
                    t.render(cli.output.is_wide(), cli.output.no_headers)
                }
            })?;
            Ok(0)
        }
        Command::Prune(args) => prune(&cli, args).await,
        Command::RestorePlan(args) => restore_plan(&cli, args).await,
        Command::Restore(args) => restore_cmd(&cli, args).await,
        Command::Drill { file, keep, identity } => {
            let (local, _download) = local_snapshot(file).await?;
            let report = restore::drill(&local, identity.as_deref(), *keep).await?;
            let verdict = match (report.passed, report.warnings.is_empty()) {
                (false, _) => Status::Critical,
                (true, false) => Status::Warning,
                (true, true) => Status::Ok,
            };
            emit(&cli, "EtcdRestoreDrill", serde_json::to_value(&report).unwrap_or_default(), || {
                let mut t = format!(
                    "{} restore drill of {} ({:.1}s)\n",
                    status_text(verdict),
                    file.display(),
                    report.took_seconds
                );
                for c in &report.checks {
                    t.push_str(&format!("  {} {}: {}\n", if c.passed { "PASS" } else { "FAIL" }, c.name, c.detail));
                }
                for w in &report.warnings {
                    t.push_str(&format!("  WARN {w}\n"));
                }
                t
            })?;
            Ok(verdict.exit_code())
        }
        Command::Members(args) => {
            let cluster = kube(&cli, &args.route).await?;
            let access = members::access(cluster.as_ref(), &args.route).await?;
            let st = access.status(args.timeout).await?;
            let verdict = cpkit::etcd::status::judge(&st).status;
            emit(&cli, "EtcdMembers", json!({"verdict": verdict, "status": st}), || {
                members::members_table(&st, cli.output.is_wide(), cli.output.no_headers)
            })?;
            Ok(verdict.exit_code())
        }
        Command::Defrag(args) => defrag(&cli, args).await,
        Command::Compact(args) => compact(&cli, args).await,
        Command::Alarm { action: AlarmCommand::List(args) } => {
            let cluster = kube(&cli, &args.route).await?;
            let access = members::access(cluster.as_ref(), &args.route).await?;
            let st = access.status(args.timeout).await?;
            // An alarm is CRITICAL: NOSPACE refuses every write, CORRUPT means diverged data.
            let verdict = if st.alarms.is_empty() { Status::Ok } else { Status::Critical };
            emit(
                &cli,
                "EtcdAlarms",
                json!({"verdict": verdict, "alarms": st.alarms, "quotaBytes": st.quota_bytes}),
                || members::alarms_table(&st, cli.output.no_headers),
            )?;
            Ok(verdict.exit_code())
        }
        Command::Alarm { action: AlarmCommand::Disarm(args) } => disarm_alarms(&cli, args).await,
    }
}

async fn disarm_alarms(cli: &Cli, args: &AlarmDisarmArgs) -> Result<i32> {
    let cluster = kube(cli, &args.run.route).await?;
    let access = members::access(cluster.as_ref(), &args.run.route).await?;
    let st = access.status(per_member(args.run.timeout)).await?;
    if st.alarms.is_empty() {
        emit(cli, "EtcdAlarmDisarm", json!({"alarms": [], "applied": false}), || {
            "No alarms: nothing to disarm.\n".into()
        })?;
        return Ok(0);
    }
    let mut text = format!("{} disarm {} alarm(s):\n", bold("Plan:"), st.alarms.len());
    for a in &st.alarms {
        text.push_str(&format!("  - {} on {} ({:x})\n", a.alarm, st.member_name(a.member_id), a.member_id));
    }
    let blocker = cpkit::etcd::status::disarm_blocker(&st);
    if let Some(why) = &blocker {
        let heading = if args.force { status_text(Status::Warning) } else { bold("Refused:") };
        text.push_str(&format!("{heading} {why}.\n"));
        if !args.force {
            text.push_str("Nothing changed (--force disarms anyway; etcd then raises it again at the next write).\n");
            emit(cli, "EtcdAlarmDisarm", json!({"alarms": st.alarms, "applied": false, "refused": why}), || text)?;
            return Ok(Status::Critical.exit_code());
        }
    }
    if !args.run.yes {
        text.push_str("Nothing changed. Re-run with --yes to disarm.\n");
        emit(cli, "EtcdAlarmDisarm", json!({"alarms": st.alarms, "applied": false}), || text)?;
        return Ok(0);
    }
    access.disarm(&st.alarms, args.run.timeout).await?;
    // Read back: the alarm list again.
    let after = access.status(per_member(args.run.timeout)).await?;
    let code = if after.alarms.is_empty() {
        text.push_str(&format!("{} read back, no alarm is active; etcd accepts writes again.\n", bold("Disarmed:")));
        text.push_str("No undo needed: etcd raises NOSPACE again by itself if the database reaches its quota.\n");
        0
    } else {
        text.push_str(&format!(
            "{} still active after the disarm: {} (etcd raised it again: the database is not under its quota).\n",
            status_text(Status::Critical),
            after
                .alarms
                .iter()
                .map(|a| format!("{} on {}", a.alarm, after.member_name(a.member_id)))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        Status::Critical.exit_code()
    };
    emit(cli, "EtcdAlarmDisarm", json!({"alarms": st.alarms, "applied": true, "remaining": after.alarms}), || text)?;
    Ok(code)
}

/// How long a download or a listing of object storage may take.
const STORE_TIMEOUT: Duration = Duration::from_secs(600);

/// The store and prefix of an object-storage URL given where a directory is expected.
fn object_prefix(dir: &Path) -> Result<Option<cpkit::etcd::remote::Remote>> {
    match dir.to_str().filter(|d| cpkit::etcd::remote::is_url(d)) {
        Some(url) => Ok(Some(cpkit::etcd::remote::Remote::open(url, STORE_TIMEOUT)?)),
        None => Ok(None),
    }
}

/// The local file of a snapshot argument: itself, or the download of an object URL (checked
/// against its record), which lives as long as the returned guard.
async fn local_snapshot(file: &Path) -> Result<(PathBuf, Option<objects::Fetched>)> {
    match file.to_str().filter(|f| cpkit::etcd::remote::is_url(f)) {
        Some(url) => {
            let fetched = objects::fetch(url, STORE_TIMEOUT).await?;
            Ok((fetched.path.clone(), Some(fetched)))
        }
        None => Ok((file.to_path_buf(), None)),
    }
}

/// The last part of a path or an object URL.
fn file_name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

async fn prune(cli: &Cli, args: &PruneArgs) -> Result<i32> {
    let dir = args.dir.path();
    let remote = object_prefix(&dir)?;
    let now = std::time::SystemTime::now();
    let (entries, doomed) = match &remote {
        Some(r) => {
            let entries = objects::list(r).await?;
            let doomed = objects::prune_plan(&entries, args.keep, args.older_than, now);
            (entries, doomed)
        }
        None => {
            let entries = files::list(&dir)?;
            let doomed = files::prune_plan(&entries, args.keep, args.older_than, now);
            (entries, doomed)
        }
    };
    let apply = args.yes && !args.dry_run;
    let mut deleted = Vec::new();
    if apply {
        for e in &doomed {
            match &remote {
                Some(r) => objects::delete(r, &e.path.display().to_string()).await?,
                None => {
                    std::fs::remove_file(&e.path)
                        .map_err(|err| Error::io(format!("Cannot delete {}", e.path.display()), &err))?;
                    let _ = std::fs::remove_file(save::sidecar_path(&e.path));
                }
            }
            deleted.push(e.path.clone());
        }
    }
    let kept = entries.len() - deleted.len();
    emit(
        cli,
        "EtcdSnapshotPrune",
        json!({"plan": doomed.iter().map(|e| &e.path).collect::<Vec<_>>(), "deleted": deleted}),
        || {
            let mut t = String::new();
            if doomed.is_empty() {
                t.push_str("Nothing to prune.\n");
            }
            for e in &doomed {
                t.push_str(&format!(
                    "{} {} ({}, {})\n",
                    if apply { "deleted" } else { "would delete" },
                    e.path.display(),
                    human_bytes(e.size),
                    e.modified_at
                ));
            }
            if remote.is_some() {
                for c in objects::clusters(&entries) {
                    if let Some(newest) = entries.iter().find(|e| e.verified() && e.cluster.as_deref() == Some(c)) {
                        t.push_str(&format!(
                            "{}\n",
                            dim(&format!(
                                "kept: {}, the newest verified snapshot of cluster {c}, is never pruned",
                                newest.path.display()
                            ))
                        ));
                    }
                }
                let foreign = entries.iter().filter(|e| e.cluster.is_none()).count();
                if foreign > 0 {
                    t.push_str(&format!(
                        "{}\n",
                        dim(&format!(
                            "kept: {foreign} object(s) without a record (not saved by etcdsnap) are never pruned"
                        ))
                    ));
                }
            } else if let Some(newest) = entries.iter().find(|e| e.verified()) {
                t.push_str(&format!(
                    "{}\n",
                    dim(&format!("kept: the newest verified snapshot {} is never pruned", newest.path.display()))
                ));
            }
            if !apply && !doomed.is_empty() {
                t.push_str("Nothing deleted. Re-run with --yes to delete (permanently).\n");
            } else if apply {
                t.push_str(&format!("{kept} snapshot(s) remain.\n"));
            }
            t
        },
    )?;
    Ok(0)
}

async fn restore_plan(cli: &Cli, args: &RestorePlanArgs) -> Result<i32> {
    if args.file.to_str().is_some_and(cpkit::etcd::remote::is_url) {
        return Err(Error::usage(
            format!("restore-plan needs the snapshot as a local file, not {}", args.file.display()),
            "The plan copies the file to every control-plane node: download it first (aws s3 cp, gcloud storage cp, az storage blob download), check it with `kubectl etcdsnap status FILE`, then plan from FILE.",
        ));
    }
    let (opened, snapshot) = save::open_with_status(&args.file, args.identity.as_deref(), true, None).await?;
    let data_dir = args.data_dir.clone();
    let (members, token) = match &args.members {
        Some(m) => (restore::parse_members(m, data_dir.as_deref().unwrap_or("/var/lib/etcd"))?, args.token.clone()),
        None => {
            let cluster = Cluster::connect(&cli.kube, PLUGIN).await?;
            let pods = transport::find_pods(&cluster).await?;
            if pods.is_empty() {
                return Err(Error::usage(
                    "No etcd pods to read the members from",
                    "Give them with --members NAME=PEER_URL,...",
                ));
            }
            let token = pods.iter().find_map(|p| p.initial_cluster_token.clone());
            let members = pods
                .iter()
                .map(|p| restore::PlanMember {
                    name: p.member.clone(),
                    peer_url: p.initial_advertise_peer_urls.first().cloned().unwrap_or_default(),
                    node: Some(p.pod.node.clone()),
                    data_dir: data_dir.clone().or_else(|| p.data_dir.clone()).unwrap_or_else(|| "/var/lib/etcd".into()),
                })
                .collect();
            (members, args.token.clone().or(token))
        }
    };
    let token = token.unwrap_or_else(|| format!("etcd-restore-{}", jiff::Timestamp::now().strftime("%Y%m%d%H%M")));
    let now = jiff::Timestamp::now();
    let bump = args.bump_revision.unwrap_or_else(|| restore::default_bump(&args.file));
    let stored = restore::StoredFile { layers: opened.layers.clone(), identity: args.identity.clone() };
    let plan = restore::plan(&args.file, &stored, &snapshot, &members, &token, now, bump);
    emit(cli, "EtcdRestorePlan", serde_json::to_value(&plan).unwrap_or_default(), || {
        let mut t = format!(
            "{} restore {} (revision {}) onto {} member(s)\n\n",
            bold("Plan:"),
            plan.snapshot,
            plan.revision,
            plan.members.len()
        );
        for w in &plan.warnings {
            t.push_str(&format!("{} {w}\n", status_text(Status::Warning)));
        }
        t.push('\n');
        let width = output::text_width(cli.output.is_wide());
        for s in &plan.steps {
            t.push_str(&output::wrap::fit_script(&format!("{s}\n"), width));
            t.push('\n');
        }
        t
    })?;
    Ok(0)
}

async fn restore_cmd(cli: &Cli, args: &RestoreCmdArgs) -> Result<i32> {
    let (local, _download) = local_snapshot(&args.file).await?;
    let args = &RestoreCmdArgs { file: local, ..args.clone() };
    let (opened, snapshot) = save::open_with_status(&args.file, args.identity.as_deref(), true, None).await?;
    if snapshot.sha256.present && !snapshot.sha256.valid {
        return Err(Error::new(
            cpkit::error::ErrorKind::InvalidData,
            format!("{} fails its sha256 check; not restoring it", args.file.display()),
            "the file changed since etcd sent it",
            "Use another snapshot (kubectl etcdsnap ls).",
        ));
    }
    if !snapshot.sha256.present && !args.skip_hash_check {
        return Err(Error::usage(
            format!("{} has no sha256 trailer", args.file.display()),
            "It is a copied db file; pass --skip-hash-check to restore it anyway.",
        ));
    }
    let tool = restore::find_tool().await?;
    // Bump by default where the tool can; asked for explicitly where it cannot, refuse rather
    // than restore without it.
    let bump_revision = match args.bump_revision {
        Some(_) if !tool.bumps => {
            return Err(Error::usage(
                format!("{} ({}) has no --bump-revision", tool.name(), tool.path.display()),
                "It came in etcdutl 3.6 and etcdctl 3.4.27 (and some 3.5 etcdutl builds): put one first on PATH, or leave --bump-revision out and restart every watcher after the restore.",
            ));
        }
        Some(0) => None,
        Some(n) => Some(n),
        None if tool.bumps => {
            let bump = restore::default_bump(&args.file);
            if let Some(members) = restore::other_members(args.initial_cluster.as_deref(), &args.name) {
                return Err(restore::same_bump_needed(&members, bump));
            }
            Some(bump)
        }
        None => None,
    };
    let a = restore::RestoreArgs {
        data_dir: args.data_dir.clone(),
        name: args.name.clone(),
        initial_cluster: args
            .initial_cluster
            .clone()
            .unwrap_or_else(|| format!("{}={}", args.name, args.initial_advertise_peer_urls)),
        token: args.initial_cluster_token.clone(),
        peer_url: args.initial_advertise_peer_urls.clone(),
        bump_revision,
        skip_hash_check: args.skip_hash_check,
    };
    if !restore::dir_is_empty(&args.data_dir) {
        return Err(Error::usage(
            format!("{} is not empty", args.data_dir.display()),
            "Restore into a new or empty directory; move the old data away first.",
        ));
    }
    // A compressed file is restored from its decompressed copy, which lives as long as this command.
    let command = restore::restore_command(&tool, &opened.path, &a).join(" ");
    if !args.yes {
        say(
            cli,
            &format!(
                "{} restore revision {} ({} objects) into {}\n  $ {command}\nNothing changed. Re-run with --yes to restore.\n",
                bold("Plan:"),
                snapshot.etcdctl.revision,
                snapshot.live_keys,
                args.data_dir.display()
            ),
        )?;
        return Ok(0);
    }
    restore::run_restore(&tool, &opened.path, &a).await?;
    emit(
        cli,
        "EtcdRestore",
        json!({"dataDir": args.data_dir, "revision": snapshot.etcdctl.revision, "bumpRevision": bump_revision, "command": command}),
        || {
            let bumped = match bump_revision {
                Some(b) => format!(
                    ", raised by {b} to {} and marked compacted: watchers re-list",
                    snapshot.etcdctl.revision.saturating_add(b as i64)
                ),
                None => format!(
                    " without a bump ({} has no --bump-revision): restart every watcher (kube-apiserver, controllers, kubelets) once etcd runs on it",
                    tool.name()
                ),
            };
            format!(
                "Restored revision {} into {}{bumped}.\nUndo: rm -rf {}\n",
                snapshot.etcdctl.revision,
                args.data_dir.display(),
                args.data_dir.display()
            )
        },
    )?;
    Ok(0)
}

async fn defrag(cli: &Cli, args: &DefragArgs) -> Result<i32> {
    if args.run.route.member.is_none() && !args.all {
        return Err(Error::usage("Say which members", "Pass --member NAME or --all."));
    }
    let cluster = kube(cli, &args.run.route).await?;
    let access = members::access(cluster.as_ref(), &args.run.route).await?;
    let st = access.status(per_member(args.run.timeout)).await?;
    let order = members::defrag_order(&st, args.run.route.member.as_deref());
    if order.is_empty() {
        return Err(Error::usage(
            format!("No member {:?}", args.run.route.member.clone().unwrap_or_default()),
            "See kubectl etcdsnap members.",
        ));
    }
    let down: Vec<&cpkit::etcd::status::MemberStatus> = st.members.iter().filter(|m| !m.healthy).collect();
    if !down.is_empty() {
        // The others as they are, the dead one as down; the verdict by quorum.
        let verdict = cpkit::etcd::status::judge(&st).status;
        let mut text = members::members_table(&st, cli.output.is_wide(), cli.output.no_headers);
        for m in &down {
            text.push_str(&format!(
                "\n{} not defragmenting while {} is down ({}): each member blocks while it defragments, and with one already down quorum could be lost. Bring {} back first.\n",
                bold("Refused:"),
                m.name,
                m.error.clone().unwrap_or_else(|| "it does not answer".into()),
                m.name
            ));
        }
        emit(cli, "EtcdDefrag", json!({"verdict": verdict, "status": st, "applied": false}), || text)?;
        return Ok(verdict.exit_code().max(Status::Warning.exit_code()));
    }
    let mut text = format!("{} defragment {} member(s), one at a time:\n", bold("Plan:"), order.len());
    for m in &order {
        text.push_str(&format!(
            "  {}{}: {} in the file, {} in use\n",
            m.name,
            if m.is_leader() { " (leader, last)" } else { "" },
            m.db_size.map(human_bytes).unwrap_or_default(),
            m.db_size_in_use.map(human_bytes).unwrap_or_default()
        ));
    }
    text.push_str(
        "Each member blocks reads and writes while it defragments; the cluster stays available through the others.\n",
    );
    if let Some(why) = cpkit::etcd::status::quota_shortfall(&st) {
        text.push_str(&format!("{} {why}.\n", status_text(Status::Warning)));
    }
    if !args.run.yes {
        text.push_str("Nothing changed. Re-run with --yes to defragment.\n");
        say(cli, &text)?;
        return Ok(0);
    }
    say(cli, &text)?;
    members::defrag(&access, &order, st.live_data_bytes(), args.run.timeout, &mut |line| {
        let _ = say(cli, &format!("{line}\n"));
    })
    .await?;
    Ok(0)
}

async fn compact(cli: &Cli, args: &CompactArgs) -> Result<i32> {
    let cluster = kube(cli, &args.run.route).await?;
    let access = members::access(cluster.as_ref(), &args.run.route).await?;
    let st = access.status(per_member(args.run.timeout)).await?;
    let current = st.members.iter().filter_map(|m| m.revision).max().unwrap_or(0);
    let revision = args.revision.unwrap_or(current);
    if revision <= 0 || revision > current {
        return Err(Error::usage(
            format!("Revision {revision} is not between 1 and the current {current}"),
            "Omit --revision to compact up to the current revision.",
        ));
    }
    let mut text = format!(
        "{} compact the history up to revision {revision} (current {current}).\nIrreversible: older revisions are gone, and watchers behind them must re-list. A snapshot taken before keeps them (kubectl etcdsnap save).\nAfterwards, kubectl etcdsnap defrag --all gives the space back to the file system.\n",
        bold("Plan:")
    );
    if let Some(why) = cpkit::etcd::status::quota_shortfall(&st) {
        text.push_str(&format!("{} {why}.\n", status_text(Status::Warning)));
    }
    if !args.run.yes {
        say(cli, &format!("{text}Nothing changed. Re-run with --yes to compact.\n"))?;
        return Ok(0);
    }
    members::compact(&access, revision, args.run.timeout).await?;
    say(cli, &format!("{text}Compacted up to revision {revision}.\n"))?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }
}
