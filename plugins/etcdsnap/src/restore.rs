//! `restore-plan` (the per-member commands of a full restore), `restore` (a local restore with
//! etcdutl, or etcdctl 3.4) and `drill` (restore into a temp dir, start a throwaway etcd, compare).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cpkit::error::{Error, ErrorKind, Result};
use cpkit::etcd::snapshot::SnapshotStatus;
use cpkit::etcd::stored::Encoding;
use serde::Serialize;

/// One member of the restored cluster.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanMember {
    pub name: String,
    pub peer_url: String,
    pub node: Option<String>,
    pub data_dir: String,
}

/// `name=url,name=url` of `--initial-cluster`.
pub fn parse_members(text: &str, data_dir: &str) -> Result<Vec<PlanMember>> {
    text.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|pair| {
            let (name, url) = pair.split_once('=').ok_or_else(|| {
                Error::usage(
                    format!("{pair:?} is not NAME=PEER_URL"),
                    "e.g. --members cp-1=https://10.0.0.1:2380,cp-2=https://10.0.0.2:2380",
                )
            })?;
            Ok(PlanMember {
                name: name.trim().into(),
                peer_url: url.trim().into(),
                node: None,
                data_dir: data_dir.into(),
            })
        })
        .collect()
}

/// The restore commands, member by member.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestorePlan {
    pub snapshot: String,
    pub revision: i64,
    /// What `--bump-revision` the restore commands carry (see [`safe_bump`]).
    pub bump_revision: u64,
    pub token: String,
    pub members: Vec<PlanMember>,
    pub warnings: Vec<String>,
    pub steps: Vec<String>,
}

/// True when the snapshot was taken from etcd 3.4 or older (its cluster version says so): those
/// releases ship no `etcdutl`, and their etcdctl bumps only from 3.4.27 on.
fn before_etcdutl(cluster_version: Option<&str>) -> bool {
    cluster_version.is_some_and(|v| {
        let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) < (3, 5)
    })
}

/// `x.db.zst`, `x.db.age`, `x.db.zst.age` → `x.db`; any other name gets `.db` added.
fn decompressed_name(file: &Path) -> PathBuf {
    let text = file.display().to_string();
    let stem = text.strip_suffix(".age").unwrap_or(&text);
    let stem = stem.strip_suffix(".zst").unwrap_or(stem);
    PathBuf::from(if stem.ends_with(".db") && stem != text { stem.to_string() } else { format!("{text}.db") })
}

/// How the snapshot a plan restores is stored, and the identity that decrypts it.
pub struct StoredFile {
    pub layers: Vec<Encoding>,
    pub identity: Option<PathBuf>,
}

pub fn plan(
    file: &Path,
    stored: &StoredFile,
    snapshot: &SnapshotStatus,
    members: &[PlanMember],
    token: &str,
    when: jiff::Timestamp,
    bump: u64,
) -> RestorePlan {
    // A path any user can scp to; the restore reads it as root.
    let remote = "/tmp/etcd-restore.db";
    let stamp = when.strftime("%Y%m%dT%H%M%SZ").to_string();
    let initial_cluster = members.iter().map(|m| format!("{}={}", m.name, m.peer_url)).collect::<Vec<_>>().join(",");
    let etcd34 = before_etcdutl(snapshot.cluster_version.as_deref());
    // etcdutl reads database files: a stored snapshot is decoded here, once, and the same
    // decoded file goes to every node.
    let check = format!("kubectl etcdsnap status {}", file.display());
    let (check, copied) = if stored.layers.is_empty() {
        (format!("# 1. On your machine: check the file (sha256, revision, objects).\n{check}"), file.to_path_buf())
    } else {
        let plain = decompressed_name(file);
        let identity =
            stored.identity.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "IDENTITY_FILE".into());
        let decode = match (stored.layers.contains(&Encoding::Age), stored.layers.contains(&Encoding::Zstd)) {
            (true, true) => format!("age --decrypt -i {identity} {} | zstd -d -o {}", file.display(), plain.display()),
            (true, false) => format!("age --decrypt -i {identity} -o {} {}", plain.display(), file.display()),
            _ => format!("zstd -d -k {} -o {}", file.display(), plain.display()),
        };
        let check =
            if stored.layers.contains(&Encoding::Age) { format!("{check} --identity {identity}") } else { check };
        (
            format!(
                "# 1. On your machine: check the file (sha256, revision, objects), then decode it.\n{check}\n{decode}"
            ),
            plain,
        )
    };
    let mut steps = vec![
        check,
        format!(
            "# 2. Copy the SAME file to every control-plane node.\n{}",
            members.iter().map(|m| format!("scp {} {}:{remote}", copied.display(), m.node.as_deref().unwrap_or(&m.name))).collect::<Vec<_>>().join("\n")
        ),
        "# 3. On EVERY control-plane node, stop the control plane (kubelet stops static pods whose manifests leave).\nsudo mkdir -p /etc/kubernetes/manifests.stopped && sudo mv /etc/kubernetes/manifests/*.yaml /etc/kubernetes/manifests.stopped/\n# wait until they are gone:\nsudo crictl ps | grep -E 'etcd|kube-apiserver' || echo stopped".to_string(),
    ];
    for m in members {
        let tool = if etcd34 {
            // etcd 3.4 ships no etcdutl: etcdctl restores (and bumps from 3.4.27 on).
            "sudo ETCDCTL_API=3 etcdctl snapshot restore".to_string()
        } else {
            "sudo etcdutl snapshot restore".to_string()
        };
        let bump = format!(" \\\n  --bump-revision {bump} --mark-compacted");
        steps.push(format!(
            "# {n}. On {node}: keep the old data, then restore member {name}.\nsudo mv {dir} {dir}.before-restore-{stamp}\n{tool} {remote} \\\n  --name {name} \\\n  --initial-cluster {initial_cluster} \\\n  --initial-cluster-token {token} \\\n  --initial-advertise-peer-urls {url} \\\n  --data-dir {dir}{bump}",
            n = steps.len() + 1,
            node = m.node.as_deref().unwrap_or(&m.name),
            name = m.name,
            url = m.peer_url,
            dir = m.data_dir,
        ));
    }
    steps.push(format!(
        "# {}. On EVERY node, only after all members are restored: start the control plane again.\nsudo mv /etc/kubernetes/manifests.stopped/*.yaml /etc/kubernetes/manifests/",
        steps.len() + 1
    ));
    steps.push(format!(
        "# {}. On EVERY node, workers too, once the API server answers: restart the kubelet, so that its watches re-list (kubernetes/website#24911; the control plane's own components restarted with their manifests).\nsudo systemctl restart kubelet",
        steps.len() + 1
    ));
    steps.push(format!("# {}. Verify.\nkubectl etcdsnap members\nkubectl cphealth", steps.len() + 1));
    steps.push(format!(
        "# Undo (before the control plane starts again, on each node): put the old data back.\nsudo rm -rf {dir} && sudo mv {dir}.before-restore-{stamp} {dir}",
        dir = members.first().map(|m| m.data_dir.as_str()).unwrap_or("/var/lib/etcd")
    ));
    let mut warnings = vec![
        "Restore every member from the SAME file: members restored from different snapshots diverge (kubernetes/kubeadm#2641).".to_string(),
        format!("All {} members must be restored before any starts: a lone member has no quorum.", members.len()),
    ];
    let needs = if etcd34 {
        "etcdctl 3.4.27 or later (etcd#16193); an older etcdctl refuses the flag: then drop both flags, and the cluster really goes back to that revision, so restart every watcher (operators, CNI, ingress controllers too) once the control plane is back"
    } else {
        "etcdutl 3.6, or a 3.5 etcdutl whose `snapshot restore --help` lists --bump-revision (the 3.5 backport, etcd#16165)"
    };
    warnings.push(format!(
        "The data goes back to revision {}; --bump-revision {bump} --mark-compacted raise it past every revision clients may have seen since (at most {} writes a second over the snapshot's age, twice over; never below the documented 1000000000), so that watchers re-list instead of missing changes. It needs {needs}.",
        snapshot.etcdctl.revision, MAX_WRITES_PER_SECOND
    ));
    if !snapshot.sha256.present {
        warnings.push(
            "This file has no sha256 trailer (a copied member/snap/db): add --skip-hash-check to the restore commands."
                .into(),
        );
    } else if !snapshot.sha256.valid {
        warnings.push("This file's sha256 does NOT match its trailer: do not restore it.".into());
    }
    RestorePlan {
        snapshot: file.display().to_string(),
        revision: snapshot.etcdctl.revision,
        bump_revision: bump,
        token: token.into(),
        members: members.to_vec(),
        warnings,
        steps,
    }
}

/// The restore tool found on PATH: etcdutl (3.5+), else etcdctl (3.4 restores too), and whether
/// it takes `--bump-revision` (etcdutl 3.6, etcdctl 3.4.27+ by etcd#16193; the 3.5 backport,
/// etcd#16165, is told by the tool's own help).
#[derive(Debug, Clone)]
pub struct RestoreTool {
    pub path: PathBuf,
    pub is_etcdutl: bool,
    pub bumps: bool,
}

impl RestoreTool {
    pub fn name(&self) -> &'static str {
        if self.is_etcdutl { "etcdutl" } else { "etcdctl" }
    }
}

pub async fn find_tool() -> Result<RestoreTool> {
    let (path, is_etcdutl) = match which::which("etcdutl") {
        Ok(p) => (p, true),
        Err(_) => match which::which("etcdctl") {
            Ok(p) => (p, false),
            Err(_) => {
                return Err(Error::new(
                    ErrorKind::ToolMissing,
                    "Neither etcdutl nor etcdctl is installed",
                    "restoring a snapshot needs etcd's own tool",
                    "Install etcd's release tools (etcdutl), or on Debian/Ubuntu: apt install etcd-client.",
                ));
            }
        },
    };
    let mut help = tokio::process::Command::new(&path);
    help.args(["snapshot", "restore", "--help"]).env("ETCDCTL_API", "3").stdin(std::process::Stdio::null());
    let bumps = match tokio::time::timeout(Duration::from_secs(10), cpkit::process::owned(&mut help).output()).await {
        Ok(Ok(out)) => [out.stdout, out.stderr].iter().any(|o| String::from_utf8_lossy(o).contains("--bump-revision")),
        _ => false,
    };
    Ok(RestoreTool { path, is_etcdutl, bumps })
}

/// Writes etcd could take in a second, at most: well above what a Kubernetes cluster's etcd
/// sustains (etcd's benchmarks top out near 50,000 small writes a second).
const MAX_WRITES_PER_SECOND: u64 = 50_000;
/// The bump etcd's and Kubernetes' restore docs use (etcd-io/website#818).
const DOCUMENTED_BUMP: u64 = 1_000_000_000;

/// How far to raise the revision on restore: beyond every revision a client may have seen since
/// the snapshot, so that watchers' resource versions are all below it (and, with
/// --mark-compacted, told to re-list). The cluster made at most MAX_WRITES_PER_SECOND revisions
/// a second from the snapshot until it went down, so twice that over the snapshot's age is
/// enough; never below the documented bump, whose cost is nothing (int64 revisions).
pub fn safe_bump(snapshot_age: Option<Duration>) -> u64 {
    let since = snapshot_age.map_or(0, |a| a.as_secs().saturating_add(1));
    since.saturating_mul(MAX_WRITES_PER_SECOND).saturating_mul(2).clamp(DOCUMENTED_BUMP, i64::MAX as u64 / 4)
}

/// The other members of `--initial-cluster` than `name`, when there are any.
pub fn other_members(initial_cluster: Option<&str>, name: &str) -> Option<Vec<String>> {
    let others: Vec<String> = initial_cluster?
        .split(',')
        .filter_map(|pair| pair.split_once('=').map(|(n, _)| n.trim().to_string()))
        .filter(|n| !n.is_empty() && n != name)
        .collect();
    (!others.is_empty()).then_some(others)
}

/// The default bump grows with the snapshot's age, so members restored one after another would
/// each get a different one, and members of one cluster must agree on its revision (etcd
/// compares their KV hashes by revision: server/etcdserver/corrupt.go). A restore of one member
/// of several therefore takes the bump from the user, the same on every member.
pub fn same_bump_needed(other_members: &[String], bump_now: u64) -> Error {
    Error::usage(
        format!(
            "this restores one member of a cluster with {} others ({}) and no --bump-revision",
            other_members.len(),
            other_members.join(", ")
        ),
        format!(
            "Every member must be raised by the same revision, and the default grows with the snapshot's age while you go from member to member. Pass the same --bump-revision to every member's restore: {bump_now} is enough now (kubectl etcdsnap restore-plan prints the commands with one), or --bump-revision 0 for none."
        ),
    )
}

/// The bump for `file` now (plan, restore and drill use the same).
pub fn default_bump(file: &Path) -> u64 {
    safe_bump(snapshot_age(file, jiff::Timestamp::now()))
}

/// The snapshot's age: from its record's save time, else the file's modification time.
fn snapshot_age(file: &Path, now: jiff::Timestamp) -> Option<Duration> {
    let saved = crate::save::read_sidecar(file)
        .and_then(|r| r.saved_at.parse::<jiff::Timestamp>().ok())
        .or_else(|| std::fs::metadata(file).ok()?.modified().ok().and_then(|m| jiff::Timestamp::try_from(m).ok()))?;
    Duration::try_from(now.duration_since(saved)).ok()
}

/// Arguments of a local restore.
#[derive(Debug, Clone)]
pub struct RestoreArgs {
    pub data_dir: PathBuf,
    pub name: String,
    pub initial_cluster: String,
    pub token: String,
    pub peer_url: String,
    pub bump_revision: Option<u64>,
    pub skip_hash_check: bool,
}

pub fn restore_command(tool: &RestoreTool, file: &Path, a: &RestoreArgs) -> Vec<String> {
    let mut v = vec![tool.path.display().to_string(), "snapshot".into(), "restore".into(), file.display().to_string()];
    v.push(format!("--name={}", a.name));
    v.push(format!("--initial-cluster={}", a.initial_cluster));
    v.push(format!("--initial-cluster-token={}", a.token));
    v.push(format!("--initial-advertise-peer-urls={}", a.peer_url));
    v.push(format!("--data-dir={}", a.data_dir.display()));
    if a.skip_hash_check {
        v.push("--skip-hash-check".into());
    }
    if tool.bumps
        && let Some(b) = a.bump_revision
    {
        v.push(format!("--bump-revision={b}"));
        v.push("--mark-compacted".into());
    }
    v
}

pub fn dir_is_empty(dir: &Path) -> bool {
    match std::fs::read_dir(dir) {
        Ok(mut r) => r.next().is_none(),
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    }
}

/// Runs the restore (after the caller showed the plan and got --yes), as a child the plugin owns:
/// a signal that ends the plugin stops it too.
pub async fn run_restore(tool: &RestoreTool, file: &Path, a: &RestoreArgs) -> Result<()> {
    if !dir_is_empty(&a.data_dir) {
        return Err(Error::usage(
            format!("{} is not empty", a.data_dir.display()),
            "Restore into a new or empty directory; move the old data away first (it is your way back).",
        ));
    }
    let cmd = restore_command(tool, file, a);
    let mut command = tokio::process::Command::new(&cmd[0]);
    command.args(&cmd[1..]).env("ETCDCTL_API", "3").stdin(std::process::Stdio::null());
    let out = cpkit::process::owned(&mut command)
        .output()
        .await
        .map_err(|e| Error::io(format!("Cannot run {}", cmd[0]), &e))?;
    if !out.status.success() {
        return Err(Error::new(
            ErrorKind::Failed,
            format!("{} snapshot restore failed", if tool.is_etcdutl { "etcdutl" } else { "etcdctl" }),
            String::from_utf8_lossy(&out.stderr).trim().lines().last().unwrap_or("").to_string(),
            "Check the flags and the file (kubectl etcdsnap status FILE).",
        ));
    }
    Ok(())
}

/// The outcome of a drill.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DrillReport {
    pub passed: bool,
    pub checks: Vec<DrillCheck>,
    /// Why a drill that passed proves less than a restore needs (an older etcd than the snapshot's).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    pub took_seconds: f64,
}

/// `3.6.0`, `v3.4.30` → (3, 6), (3, 4).
fn major_minor(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.trim().trim_start_matches('v').split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// The version `etcd --version` prints ("etcd Version: 3.4.30").
async fn etcd_version(etcd: &Path) -> Option<String> {
    let mut command = tokio::process::Command::new(etcd);
    command.arg("--version").stdin(std::process::Stdio::null());
    let out =
        tokio::time::timeout(Duration::from_secs(10), cpkit::process::owned(&mut command).output()).await.ok()?.ok()?;
    String::from_utf8_lossy(&out.stdout).lines().find_map(|l| l.strip_prefix("etcd Version: ")).map(str::to_string)
}

/// A drill run by an older etcd than the one that wrote the snapshot proves that version reads it,
/// not the one a restore of the cluster runs.
pub fn version_warning(drilled_with: Option<&str>, written_by: Option<&str>) -> Option<String> {
    let (drilled, written) = (drilled_with?, written_by?);
    let ((dm, dn), (wm, wn)) = (major_minor(drilled)?, major_minor(written)?);
    ((dm, dn) < (wm, wn)).then(|| {
        format!(
            "drilled with etcd {drilled}, older than the etcd {wm}.{wn} that wrote the snapshot; a restore runs {wm}.{wn}'s etcdutl and etcd: put them first on PATH to drill with them"
        )
    })
}

/// One step of a drill: restore, serves, revision, keys, kept.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DrillCheck {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

impl DrillCheck {
    fn new(name: &str, passed: bool, detail: impl Into<String>) -> DrillCheck {
        DrillCheck { name: name.into(), passed, detail: detail.into() }
    }
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| Error::io("Cannot find a free port on 127.0.0.1", &e))?;
    l.local_addr().map(|a| a.port()).map_err(|e| Error::io("Cannot find a free port", &e))
}

/// Restores into a temp dir, starts etcd on loopback, compares with `status`, stops it.
pub async fn drill(file: &Path, identity: Option<&Path>, keep: bool) -> Result<DrillReport> {
    let started = Instant::now();
    let (opened, expected) = crate::save::open_with_status(file, identity, true, None).await?;
    let tool = find_tool().await?;
    // The restore's own flags, where the tool has them: the drill tries what a restore runs.
    let bump = tool.bumps.then(|| default_bump(file));
    let etcd = which::which("etcd").map_err(|_| {
        Error::new(
            ErrorKind::ToolMissing,
            "etcd is not installed",
            "a drill starts a throwaway etcd on 127.0.0.1",
            "Install etcd (Debian/Ubuntu: apt install etcd-server).",
        )
    })?;
    let warnings: Vec<String> =
        version_warning(etcd_version(&etcd).await.as_deref(), expected.cluster_version.as_deref())
            .into_iter()
            .collect();
    let tmp = tempfile::Builder::new()
        .prefix("etcdsnap-drill-")
        .tempdir()
        .map_err(|e| Error::io("Cannot create a temp dir", &e))?;
    let data = tmp.path().join("data");
    let (client_port, peer_port) = (free_port()?, free_port()?);
    let peer = format!("http://127.0.0.1:{peer_port}");
    let args = RestoreArgs {
        data_dir: data.clone(),
        name: "drill".into(),
        initial_cluster: format!("drill={peer}"),
        token: "etcdsnap-drill".into(),
        peer_url: peer.clone(),
        bump_revision: bump,
        skip_hash_check: !expected.sha256.present,
    };
    let mut checks = Vec::new();
    let restored = run_restore(&tool, &opened.path, &args).await;
    checks.push(DrillCheck::new(
        "restore",
        restored.is_ok(),
        match (&restored, bump) {
            (Err(e), _) => e.to_string(),
            (Ok(()), Some(b)) => {
                format!("restored with hash check by {}, revision bumped by {b} and marked compacted", tool.name())
            }
            (Ok(()), None) => {
                format!("restored with hash check by {} (it has no --bump-revision: not bumped)", tool.name())
            }
        },
    ));
    if restored.is_err() {
        return Ok(DrillReport { passed: false, checks, warnings, took_seconds: started.elapsed().as_secs_f64() });
    }
    let client_url = format!("http://127.0.0.1:{client_port}");
    let log =
        std::fs::File::create(tmp.path().join("etcd.log")).map_err(|e| Error::io("Cannot create the etcd log", &e))?;
    // Owned: killed with the drill, whatever ends it (the restored data holds every Secret).
    let mut etcd_command = tokio::process::Command::new(&etcd);
    etcd_command
        .args([
            "--name=drill".to_string(),
            format!("--data-dir={}", data.display()),
            format!("--listen-client-urls={client_url}"),
            format!("--advertise-client-urls={client_url}"),
            format!("--listen-peer-urls={peer}"),
            format!("--initial-advertise-peer-urls={peer}"),
            format!("--initial-cluster=drill={peer}"),
            "--initial-cluster-token=etcdsnap-drill".into(),
        ])
        .env("ETCD_UNSUPPORTED_ARCH", std::env::consts::ARCH)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().map_err(|e| Error::io("Cannot create the etcd log", &e))?)
        .stderr(log);
    let mut child = cpkit::process::owned(&mut etcd_command).spawn().map_err(|e| Error::io("Cannot start etcd", &e))?;
    let result = async {
        let tls = cpkit::etcd::direct::EtcdTls { ca_pem: None, cert_pem: None, key_pem: None };
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut client = loop {
            if let Ok(mut c) =
                cpkit::etcd::direct::connect(std::slice::from_ref(&client_url), &tls, Duration::from_secs(2)).await
                && c.status().await.is_ok()
            {
                break c;
            }
            if Instant::now() > deadline {
                return Err(Error::failed(
                    "The restored etcd did not start within 30s",
                    "it did not answer on its client port",
                    "Run the drill with --keep and read etcd.log in the kept directory.",
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let st = client.status().await.map_err(|e| cpkit::etcd::direct::etcd_error(&client_url, &e, None))?;
        let revision = st.header().map(etcd_client::ResponseHeader::revision).unwrap_or(0);
        let keys = client
            .get("", Some(etcd_client::GetOptions::new().with_all_keys().with_count_only()))
            .await
            .map_err(|e| cpkit::etcd::direct::etcd_error(&client_url, &e, None))?
            .count() as u64;
        Ok::<_, Error>((revision, keys))
    }
    .await;
    let _ = child.kill().await;
    match result {
        Ok((revision, keys)) => {
            checks.push(DrillCheck::new("serves", true, format!("etcd answered on {client_url}")));
            let want = expected.etcdctl.revision.saturating_add(bump.unwrap_or(0) as i64);
            let detail = match bump {
                Some(b) => format!("{revision} (snapshot: {} + bump {b})", expected.etcdctl.revision),
                None => format!("{revision} (snapshot: {})", expected.etcdctl.revision),
            };
            checks.push(DrillCheck::new("revision", revision == want, detail));
            let want = expected.live_keys + expected.other_live_keys;
            checks.push(DrillCheck::new("keys", keys == want, format!("{keys} live keys (snapshot: {want})")));
        }
        Err(e) => checks.push(DrillCheck::new("serves", false, e.to_string())),
    }
    if keep {
        let kept = tmp.keep();
        checks.push(DrillCheck::new("kept", true, kept.display().to_string()));
    }
    let passed = checks.iter().all(|c| c.passed);
    Ok(DrillReport { passed, checks, warnings, took_seconds: (started.elapsed().as_secs_f64() * 10.0).round() / 10.0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_member_of_several_needs_the_bump_from_the_user() {
        let three = "cp-1=https://10.0.0.1:2380,cp-2=https://10.0.0.2:2380, cp-3=https://10.0.0.3:2380";
        assert_eq!(other_members(Some(three), "cp-2"), Some(vec!["cp-1".to_string(), "cp-3".to_string()]));
        assert_eq!(other_members(Some("cp-1=https://10.0.0.1:2380"), "cp-1"), None);
        assert_eq!(other_members(None, "default"), None);
        let e = same_bump_needed(&["cp-1".into(), "cp-3".into()], 1_000_000_000);
        assert_eq!(e.exit_code(), 64);
        assert!(e.to_string().contains("--bump-revision to every member's restore: 1000000000"), "{e}");
    }

    #[test]
    fn a_compressed_snapshot_is_decompressed_once_and_that_file_copied() {
        assert_eq!(decompressed_name(Path::new("/b/etcd-x.db.zst")), PathBuf::from("/b/etcd-x.db"));
        assert_eq!(decompressed_name(Path::new("backup.zst")), PathBuf::from("backup.zst.db"));
        assert_eq!(decompressed_name(Path::new("backup")), PathBuf::from("backup.db"));
        assert_eq!(decompressed_name(Path::new("x.db.zst.age")), PathBuf::from("x.db"));
        assert_eq!(decompressed_name(Path::new("x.db.age")), PathBuf::from("x.db"));
    }

    #[test]
    fn drill_checks_are_named_fields_in_json() {
        let report = DrillReport {
            passed: false,
            checks: vec![DrillCheck::new("keys", false, "41 live keys (snapshot: 42)")],
            warnings: Vec::new(),
            took_seconds: 1.5,
        };
        assert_eq!(
            serde_json::to_value(&report).unwrap()["checks"][0],
            serde_json::json!({"name": "keys", "passed": false, "detail": "41 live keys (snapshot: 42)"})
        );
    }

    #[test]
    fn a_drill_with_an_older_etcd_than_the_snapshots_is_said_to_be_one() {
        // The real control plane's etcd 3.6.16 snapshot, drilled with Debian's etcd 3.4.23 on PATH.
        let w = version_warning(Some("3.4.30"), Some("3.6.0")).expect("a warning");
        assert!(w.starts_with("drilled with etcd 3.4.30, older than the etcd 3.6 that wrote the snapshot"), "{w}");
        for (drilled, written) in [("3.6.16", "3.6.0"), ("3.5.21", "3.4.0"), ("3.6.0", "3.5.0")] {
            assert_eq!(version_warning(Some(drilled), Some(written)), None, "{drilled} drills {written}");
        }
        assert_eq!(version_warning(None, Some("3.6.0")), None, "unknown: nothing to say");
        assert_eq!(version_warning(Some("3.4.30"), None), None);
    }

    #[test]
    fn snapshots_of_etcd_3_4_are_restored_with_etcdctl() {
        assert!(before_etcdutl(Some("3.4.0")));
        assert!(!before_etcdutl(Some("3.5.0")));
        assert!(!before_etcdutl(Some("3.6.0")));
        assert!(!before_etcdutl(None), "unknown: the current tool, with the 3.4 alternative said");
    }

    #[test]
    fn members_and_commands() {
        let m = parse_members("a=https://10.0.0.1:2380, b=https://10.0.0.2:2380", "/var/lib/etcd").unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[1].name, "b");
        assert!(parse_members("nope", "/x").is_err());
        let tool = RestoreTool { path: "/usr/bin/etcdutl".into(), is_etcdutl: true, bumps: true };
        let a = RestoreArgs {
            data_dir: "/d".into(),
            name: "a".into(),
            initial_cluster: "a=https://10.0.0.1:2380".into(),
            token: "t".into(),
            peer_url: "https://10.0.0.1:2380".into(),
            bump_revision: Some(1000),
            skip_hash_check: false,
        };
        let c = restore_command(&tool, Path::new("s.db"), &a);
        assert!(c.contains(&"--bump-revision=1000".to_string()) && c.contains(&"--mark-compacted".to_string()));
        let old = RestoreTool { path: "/usr/bin/etcdctl".into(), is_etcdutl: false, bumps: false };
        assert!(
            !restore_command(&old, Path::new("s.db"), &a).iter().any(|x| x.starts_with("--bump")),
            "etcdctl before 3.4.27 has no bump"
        );
    }

    #[test]
    fn the_bump_outruns_every_write_possible_since_the_snapshot() {
        let hour = Duration::from_secs(3600);
        // Unknown age, or young: the documented bump.
        assert_eq!(safe_bump(None), 1_000_000_000);
        assert_eq!(safe_bump(Some(hour)), 1_000_000_000);
        // A day old: twice 50,000 writes a second for a day (and a second).
        assert_eq!(safe_bump(Some(24 * hour)), 2 * 50_000 * (24 * 3600 + 1));
        // Absurd ages stay far inside int64, revisions included.
        assert_eq!(safe_bump(Some(Duration::from_secs(u64::MAX))), i64::MAX as u64 / 4);
    }

    #[test]
    fn the_plan_bumps_and_restarts_every_kubelet() {
        let status = |cluster_version: &str| {
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/corpus/snapshot/etcd-3.6.16-two-live-keys.db");
            let mut st = cpkit::etcd::snapshot::status(Path::new(path), true, None).unwrap();
            st.cluster_version = Some(cluster_version.into());
            st
        };
        let members = parse_members("cp-1=https://10.0.0.1:2380,cp-2=https://10.0.0.2:2380", "/var/lib/etcd").unwrap();
        let when: jiff::Timestamp = "2026-12-02T10:00:00Z".parse().unwrap();
        let plain = StoredFile { layers: Vec::new(), identity: None };
        let p = plan(Path::new("s.db"), &plain, &status("3.6.0"), &members, "t", when, 8_640_100_000);
        assert_eq!(p.bump_revision, 8_640_100_000);
        let restores: Vec<&String> = p.steps.iter().filter(|s| s.contains("snapshot restore")).collect();
        assert_eq!(restores.len(), 2);
        assert!(restores.iter().all(|s| s.contains("sudo etcdutl snapshot restore")
            && s.contains("--bump-revision 8640100000 --mark-compacted")));
        let kubelets = p.steps.iter().position(|s| s.contains("sudo systemctl restart kubelet")).expect("kubelets");
        let started = p.steps.iter().position(|s| s.contains("start the control plane again")).unwrap();
        assert!(kubelets > started, "the kubelets restart once the API server is back");
        assert!(p.warnings.iter().any(|w| w.contains("It needs etcdutl 3.6")), "{:?}", p.warnings);
        // From etcd 3.4: etcdctl restores, and the plan names the release that bumps.
        let p = plan(Path::new("s.db"), &plain, &status("3.4.0"), &members, "t", when, 1_000_000_000);
        assert!(p.steps.iter().any(|s| s.contains("sudo ETCDCTL_API=3 etcdctl snapshot restore")));
        assert!(p.warnings.iter().any(|w| w.contains("etcdctl 3.4.27 or later")), "{:?}", p.warnings);
    }
}
