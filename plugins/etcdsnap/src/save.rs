//! `save`: a verified snapshot on this machine (port-forward, direct) or on the member's node
//! (exec), with a sidecar `<file>.json` describing it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cpkit::Cluster;
use cpkit::atomic_file::AtomicFile;
use cpkit::error::{Error, ErrorKind, Result};
use cpkit::etcd::direct::{EtcdTls, EtcdTlsArgs, etcd_error};
use cpkit::etcd::pods::{EtcdPod, read_file};
use cpkit::etcd::remote::Remote;
use cpkit::etcd::save::{Compression, Destination, Saved, Storing, free_space, save};
use cpkit::etcd::stored::Opened;
use serde::{Deserialize, Serialize};

use crate::transport::{Route, Via};

/// What `<file>.json` records.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Sidecar {
    pub file: String,
    pub cluster_id: String,
    pub member: String,
    pub member_id: String,
    pub endpoint: String,
    pub via: String,
    pub revision: i64,
    pub etcd_version: String,
    pub kubernetes_version: Option<String>,
    pub db_size: u64,
    pub file_size: u64,
    /// sha256 of the snapshot's data, checked against etcd's digest (saves that stream the
    /// file here), compressed or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// How the file is stored when not as etcd sent it (`zstd`); `fileSize` is then the stored
    /// size and `storedSha256` the digest of the stored bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<String>,
    /// `age` when encrypted (after compression), to `recipients` (public keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_sha256: Option<String>,
    /// The hash `etcdctl snapshot status` prints (exec saves, checked by etcdctl on the node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcdctl_hash: Option<String>,
    pub verified: bool,
    pub saved_at: String,
    pub tool: String,
}

impl Sidecar {
    /// The record as it is written beside a snapshot: pretty JSON and a newline.
    pub fn to_json(&self) -> Result<Vec<u8>> {
        let mut text = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::invalid_data("Cannot encode the sidecar", e.to_string()))?;
        text.push(b'\n');
        Ok(text)
    }
}

pub fn sidecar_path(file: &Path) -> PathBuf {
    let mut p = file.as_os_str().to_owned();
    p.push(".json");
    PathBuf::from(p)
}

pub fn read_sidecar(file: &Path) -> Option<Sidecar> {
    let text = cpkit::input::read_text(&sidecar_path(file), 1 << 20).ok()?;
    serde_json::from_str(&text).ok()
}

/// A snapshot's status with its save's record as a witness: a file whose record holds the
/// sha256 etcd sent must still end with it (cut by exactly 32 bytes, it reads as whole pages,
/// like a database file copied from a member). The walk runs off the async threads, so a
/// signal is handled at once.
/// The file is opened as a database first (decoded when stored compressed or encrypted, with
/// `identity`); the opened copy lives as long as the returned `Opened`.
pub async fn open_with_status(
    file: &Path,
    identity: Option<&Path>,
    verify_digest: bool,
    semantics: Option<cpkit::etcd::snapshot::Semantics>,
) -> Result<(Opened, cpkit::etcd::snapshot::SnapshotStatus)> {
    let opened = cpkit::etcd::stored::open(file, identity).await?;
    let path = opened.path.clone();
    let st = tokio::task::spawn_blocking(move || cpkit::etcd::snapshot::status(&path, verify_digest, semantics))
        .await
        .map_err(|_| Error::failed("Reading the snapshot failed", "its thread ended abnormally", ""))??;
    if !st.sha256.present && read_sidecar(file).is_some_and(|r| r.sha256.is_some()) {
        return Err(Error::new(
            ErrorKind::InvalidData,
            format!("{} is not a usable etcd snapshot", file.display()),
            format!(
                "its record {} says it ended with etcd's sha256 when it was saved, and it no longer does: its last 32 bytes were cut off",
                sidecar_path(file).display()
            ),
            "Take a new snapshot (kubectl etcdsnap save); keep this file for analysis.",
        ));
    }
    Ok((opened, st))
}

fn write_sidecar(file: &Path, sidecar: &Sidecar, overwrite: bool) -> Result<()> {
    let path = sidecar_path(file);
    let mut f = AtomicFile::create(&path, overwrite)?;
    let text = sidecar.to_json()?;
    std::io::Write::write_all(&mut f, &text).map_err(|e| Error::io(format!("Cannot write {}", path.display()), &e))?;
    f.commit()?;
    Ok(())
}

/// Uploads the record of a verified snapshot object; if that fails, the snapshot goes too (an
/// object without its record would be neither verified nor pruned by its metadata).
async fn put_remote_sidecar(remote: &Remote, sidecar: &Sidecar) -> Result<()> {
    if let Err(e) = remote.put_small(&format!("{}.json", sidecar.file), sidecar.to_json()?).await {
        let removed = remote.delete(&sidecar.file).await.is_ok();
        return Err(e.with_what(format!(
            "Cannot upload the record of {}; the snapshot object was {}",
            remote.url_of(&sidecar.file),
            if removed { "deleted" } else { "left in place (delete it by hand)" }
        )));
    }
    Ok(())
}

/// The object name a FILE argument gives with --to: a plain name, no directories.
fn object_name(file: &Path) -> Result<String> {
    let name = file.to_string_lossy();
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(Error::usage(
            format!("{name:?} is not an object name"),
            "With --to, FILE is the object's name under the URL's prefix (no slashes); put directories in the URL.",
        ));
    }
    Ok(name.into_owned())
}

/// `etcd-<cluster>-<member>-<UTC timestamp>.db`.
pub fn default_name(cluster: &str, member: &str, when: jiff::Timestamp) -> String {
    let safe = |s: &str| {
        s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '-' }).collect::<String>()
    };
    format!("etcd-{}-{}-{}.db", safe(cluster), safe(member), when.strftime("%Y%m%dT%H%M%SZ"))
}

#[derive(Debug, Clone, clap::Args)]
pub struct SaveArgs {
    /// Where to write the snapshot (default: --dir/etcd-<cluster>-<member>-<UTC time>.db)
    #[allow(rustdoc::invalid_html_tags, reason = "clap's help text")]
    #[arg(value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub file: Option<PathBuf>,

    /// Directory for the default file name
    #[arg(long, value_name = "DIR", default_value = ".", value_hint = clap::ValueHint::DirPath)]
    pub dir: PathBuf,

    /// Upload to object storage instead: s3://BUCKET/PREFIX/, gs://, az://CONTAINER/PREFIX/ or
    /// file:///DIR/ (streamed as it arrives, the record beside it once verified). Credentials
    /// come from the environment and profiles (AWS_*, ~/.aws; GOOGLE_*; AZURE_*), never flags
    #[arg(long, value_name = "URL", conflicts_with = "dir")]
    pub to: Option<String>,

    /// Replace an existing file
    #[arg(long)]
    pub force: bool,

    /// Compress the snapshot as it arrives (zstd; the default name then ends in .db.zst).
    /// status, drill and restore read it as it is
    #[arg(long, value_name = "ALGORITHM", value_parser = ["zstd"])]
    pub compress: Option<String>,

    /// zstd level: 1 (fastest) to 19 (smallest)
    #[arg(long, value_name = "LEVEL", default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=19), requires = "compress")]
    pub compress_level: i32,

    /// Encrypt the snapshot (after compressing it) to this age recipient (age1...); repeatable.
    /// Reading it back needs --identity
    #[arg(long, value_name = "RECIPIENT")]
    pub encrypt_to: Vec<String>,

    /// A file of age recipients, one per line (# comments), as age -R reads them
    #[arg(long, value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub recipients_file: Option<PathBuf>,

    /// Time limit of the whole save
    #[arg(long, default_value = "10m", value_parser = cpkit::duration::positive_duration_arg, value_name = "DURATION")]
    pub timeout: Duration,

    #[command(flatten)]
    pub route: crate::transport::RouteArgs,
}

/// The outcome, for text or -o json.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SaveReport {
    pub sidecar: Sidecar,
    /// For exec: the node that holds the file.
    pub node: Option<String>,
    /// For --to: the snapshot object's URL (its record is `<url>.json`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// What did not go as asked (the file is on a node, not where the command said): exit 1.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Certificates for a tunnel: the flags, else the pod's own files read through its shell.
pub async fn tls_for(cluster: &Cluster, pod: &EtcdPod, args: &EtcdTlsArgs, timeout: Duration) -> Result<EtcdTls> {
    if args.is_set() {
        return EtcdTls::load(args);
    }
    let dir_of = |f: &str| Path::new(f).parent().map(|p| p.display().to_string()).unwrap_or_default();
    let ca = pod.trusted_ca_file.clone().unwrap_or_else(|| "/etc/kubernetes/pki/etcd/ca.crt".into());
    let server_cert = pod.cert_file.clone().unwrap_or_else(|| "/etc/kubernetes/pki/etcd/server.crt".into());
    let server_key = pod.key_file.clone().unwrap_or_else(|| "/etc/kubernetes/pki/etcd/server.key".into());
    let dir = dir_of(&server_cert);
    let pki_dir = dir.as_str();
    let read = |path: String| async move {
        let dir = pki_dir;
        read_file(cluster, pod, &path, timeout).await.map(|t| (path, t)).map_err(|e| {
            // etcd 3.6 images have no shell: the files can only come from the node.
            Error::new(
                e.kind,
                format!("Cannot read etcd's client certificates through pod {}", pod.pod.name),
                e.why,
                format!(
                    "For a port-forward, copy {dir}/ca.crt, healthcheck-client.crt and healthcheck-client.key from node {} and pass --etcd-cacert, --etcd-cert and --etcd-key; --via exec runs etcdctl in the pod with its own certificates.",
                    pod.pod.node
                ),
            )
        })
    };
    // kubeadm's healthcheck client certificate is meant for clients; the server's also works.
    let (cert, key) = match tokio::join!(
        read(format!("{dir}/healthcheck-client.crt")),
        read(format!("{dir}/healthcheck-client.key"))
    ) {
        (Ok((_, c)), Ok((_, k))) if c.contains("BEGIN") && k.contains("PRIVATE KEY") => (c, k),
        _ => {
            let (c, k) = tokio::join!(read(server_cert.clone()), read(server_key.clone()));
            (c?.1, k?.1)
        }
    };
    let ca = read(ca).await?.1;
    if !ca.contains("BEGIN CERTIFICATE") || !cert.contains("BEGIN CERTIFICATE") {
        return Err(Error::new(
            ErrorKind::Failed,
            format!("Cannot read etcd's client certificates from {}", pod.pod.name),
            "the files read through the pod's shell are not PEM certificates",
            format!(
                "Copy {dir}/ca.crt, healthcheck-client.crt and healthcheck-client.key from node {} and pass --etcd-cacert, --etcd-cert, --etcd-key.",
                pod.pod.node
            ),
        ));
    }
    Ok(EtcdTls { ca_pem: Some(ca.into_bytes()), cert_pem: Some(cert.into_bytes()), key_pem: Some(key.into_bytes()) })
}

/// A progress bar on a terminal, nothing otherwise.
fn progress_bar(show: bool) -> Option<indicatif::ProgressBar> {
    if !show {
        return None;
    }
    let bar = indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} {bytes}/{total_bytes} {binary_bytes_per_sec} {wide_bar} {eta}",
    ) {
        bar.set_style(style);
    }
    Some(bar)
}

/// Refuses to start a save that cannot fit: the database, 5% for growth while streaming, 1 MiB.
fn check_room(dir: &Path, db_size: u64, free: u64) -> Result<()> {
    if free >= db_size + db_size / 20 + (1 << 20) {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::Io,
        format!("Not enough space in {} for the snapshot", dir.display()),
        format!(
            "the database is {} and {} is free",
            cpkit::output::human_bytes(db_size),
            cpkit::output::human_bytes(free)
        ),
        "Free space or choose another directory (--dir).",
    ))
}

impl SaveArgs {
    fn compression(&self) -> Compression {
        match self.compress {
            Some(_) => Compression::Zstd(self.compress_level),
            None => Compression::None,
        }
    }

    /// The recipients of --encrypt-to and --recipients-file, parsed.
    fn recipients(&self) -> Result<Vec<age::x25519::Recipient>> {
        let mut texts: Vec<(String, String)> =
            self.encrypt_to.iter().map(|r| (r.clone(), "--encrypt-to".into())).collect();
        if let Some(file) = &self.recipients_file {
            let text = cpkit::input::read_text(file, 1 << 20)?;
            texts.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(|l| (l.to_string(), file.display().to_string())),
            );
        }
        texts
            .iter()
            .map(|(text, from)| {
                text.parse::<age::x25519::Recipient>().map_err(|e| {
                    Error::usage(
                        format!("{text:?} (from {from}) is not an age recipient: {e}"),
                        "Give X25519 recipients as age-keygen prints them (age1...).",
                    )
                })
            })
            .collect()
    }
}

pub async fn run(cluster: Option<&Cluster>, args: &SaveArgs, show_progress: bool) -> Result<SaveReport> {
    let route = crate::transport::resolve(cluster, &args.route, args.timeout.min(Duration::from_secs(30))).await?;
    let storing = Storing { compression: args.compression(), recipients: args.recipients()? };
    if route.via == Via::Exec && !storing.is_plain() {
        return Err(Error::usage(
            "--compress and --encrypt-to need the snapshot to stream through this machine",
            "with --via exec, etcdctl writes it on the node as etcd sends it. Save with --via port-forward or --via direct, or compress/encrypt the file on the node.",
        ));
    }
    if route.via == Via::Exec && args.to.is_some() {
        return Err(Error::usage(
            "--to needs the snapshot to stream through this machine",
            "with --via exec, etcdctl writes it on the node. Save with --via port-forward or --via direct.",
        ));
    }
    if route.via == Via::Exec {
        let cluster = cluster.ok_or_else(|| Error::usage("--via exec needs the cluster", ""))?;
        let mut report = save_by_exec(cluster, &route, args).await?;
        if args.route.via == Via::Auto
            && let Some(node) = report.node.clone()
        {
            // Asked for a file here, got one on a node: a backup still, but not where a script
            // that runs this will look for it.
            let asked = args.file.as_ref().unwrap_or(&args.dir).display().to_string();
            report.warnings.push(format!(
                "not saved in {asked}: the port-forward route was not available (see the note above), so etcdctl saved it in the pod, on node {node}; copy it from there, or pass --via exec to ask for this"
            ));
        }
        return Ok(report);
    }
    let mut client = route.client(args.timeout).await?;
    let status = client.status().await.map_err(|e| etcd_error(&route.endpoint, &e, Some(args.timeout)))?;
    let member_id = status.header().map(etcd_client::ResponseHeader::member_id).unwrap_or(0);
    let cluster_id = status.header().map(etcd_client::ResponseHeader::cluster_id).unwrap_or(0);
    let revision = status.header().map(etcd_client::ResponseHeader::revision).unwrap_or(0);
    let db_size = status.db_size() as u64;
    let member = if route.member.is_empty() { format!("{member_id:x}") } else { route.member.clone() };
    // Straight to etcd there is no kubeconfig context to name the cluster: etcd's cluster ID does.
    let cluster_part =
        if route.cluster_name.is_empty() { format!("{cluster_id:x}") } else { route.cluster_name.clone() };
    let default_file = || {
        let mut name = default_name(&cluster_part, &member, jiff::Timestamp::now());
        if storing.compression != Compression::None {
            name.push_str(".zst");
        }
        if !storing.recipients.is_empty() {
            name.push_str(".age");
        }
        name
    };
    let (destination, remote) = match &args.to {
        Some(url) => {
            let remote = Remote::open_for_upload(url, args.timeout)?;
            let name = match &args.file {
                Some(f) => object_name(f)?,
                None => default_file(),
            };
            // Starting the upload checks the credentials before etcd streams anything.
            (Destination::Object(remote.upload(&name, args.force).await?), Some(remote))
        }
        None => {
            let target = args.file.clone().unwrap_or_else(|| args.dir.join(default_file()));
            let dir = target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            if let Some(free) = free_space(dir) {
                // Kubernetes data compresses 3-10x; if it fills the disk anyway, the partial file goes.
                let needed = if storing.compression == Compression::None { db_size } else { db_size / 3 };
                check_room(dir, needed, free)?;
            }
            (Destination::File(AtomicFile::create(&target, args.force)?), None)
        }
    };
    let bar = progress_bar(show_progress);
    if let Some(b) = &bar {
        b.set_length(db_size);
    }
    let saved: Saved =
        save(&mut client, &route.endpoint, destination, args.timeout, &storing, &mut |received, total| {
            if let Some(b) = &bar {
                if let Some(t) = total {
                    b.set_length(t);
                }
                b.set_position(received);
            }
        })
        .await
        .inspect_err(|_| {
            if let Some(b) = &bar {
                b.abandon();
            }
        })?;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    // The revision of the data in the file, read from its pages as they passed: a live cluster
    // writes between the status answer and the start of the stream (the real control plane
    // renews leases every second).
    let revision = saved.revision.unwrap_or(revision);
    let sidecar = Sidecar {
        file: saved.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        cluster_id: format!("{cluster_id:x}"),
        member,
        member_id: format!("{member_id:x}"),
        endpoint: route.endpoint_label.clone(),
        via: route.via.name().clone(),
        revision,
        etcd_version: status.version().to_string(),
        kubernetes_version: route.kubernetes_version.clone(),
        db_size: saved.db_size,
        file_size: saved.file_size,
        sha256: Some(saved.sha256.clone()),
        compression: saved.stored.as_ref().and_then(|s| s.compression.clone()),
        encryption: saved.stored.as_ref().and_then(|s| s.encryption.clone()),
        recipients: storing.recipients.iter().map(std::string::ToString::to_string).collect(),
        stored_sha256: saved.stored.as_ref().map(|s| s.sha256.clone()),
        etcdctl_hash: None,
        verified: true,
        saved_at: jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        tool: format!("kubectl-etcdsnap {}", env!("CARGO_PKG_VERSION")),
    };
    let url = match &remote {
        Some(remote) => {
            put_remote_sidecar(remote, &sidecar).await?;
            Some(remote.url_of(&sidecar.file))
        }
        None => {
            write_sidecar(&saved.path, &sidecar, args.force)?;
            None
        }
    };
    route.close();
    Ok(SaveReport { sidecar, node: None, url, warnings: Vec::new() })
}

async fn save_by_exec(cluster: &Cluster, route: &Route, args: &SaveArgs) -> Result<SaveReport> {
    let pod = route.pod.as_ref().ok_or_else(|| Error::usage("--via exec needs an etcd pod", ""))?;
    let data_dir = pod.data_dir.clone().unwrap_or_else(|| "/var/lib/etcd".into());
    let name = match &args.file {
        Some(f) if f.is_absolute() => f.display().to_string(),
        Some(f) => format!("{data_dir}/{}", f.display()),
        None => format!("{data_dir}/{}", default_name(&route.cluster_name, &pod.member, jiff::Timestamp::now())),
    };
    let secs = args.timeout.as_secs().max(5).to_string();
    let command_timeout = format!("--command-timeout={secs}s");
    let out =
        cpkit::etcd::pods::etcdctl_with(cluster, pod, &[&command_timeout, "snapshot", "save", &name], args.timeout)
            .await?;
    if !out.success() {
        return Err(Error::new(
            ErrorKind::Failed,
            format!("etcdctl snapshot save failed in {}", pod.pod.name),
            out.failure_reason(),
            "Check the member (kubectl etcdsnap members) and the free space of the node's etcd data directory.",
        ));
    }
    // etcdctl checks snapshots up to 3.5; 3.6 moved `snapshot status` to etcdutl (and its image
    // ships etcdutl). etcdctl 3.6 answers the removed command with its help and exit code 0, so
    // what tells is whether the answer is the JSON status.
    let parses = |out: &cpkit::stream::ExecOutput| {
        serde_json::from_str::<cpkit::etcd::snapshot::EtcdctlStatus>(out.stdout_text().trim()).is_ok()
    };
    let mut status = cpkit::etcd::pods::etcdctl_with(
        cluster,
        pod,
        &["snapshot", "status", &name, "-w", "json"],
        Duration::from_secs(60),
    )
    .await?;
    if !parses(&status) {
        let etcdutl =
            vec!["etcdutl".to_string(), "snapshot".into(), "status".into(), name.clone(), "-w".into(), "json".into()];
        let by_etcdutl = cpkit::stream::exec(
            cluster,
            &pod.pod.namespace,
            &pod.pod.name,
            Some(&pod.pod.container),
            &etcdutl,
            Duration::from_secs(60),
        )
        .await;
        if let Ok(out) = by_etcdutl
            && parses(&out)
        {
            status = out;
        }
    }
    let parsed: cpkit::etcd::snapshot::EtcdctlStatus =
        serde_json::from_str(status.stdout_text().trim()).map_err(|e| {
            Error::new(
                ErrorKind::InvalidData,
                format!("The snapshot written on node {} did not pass `snapshot status`", pod.pod.node),
                format!("{e}; etcdctl said: {}", status.failure_reason()),
                format!("Delete {name} on the node and save again."),
            )
        })?;
    let sidecar = Sidecar {
        file: name.clone(),
        cluster_id: String::new(),
        member: pod.member.clone(),
        member_id: String::new(),
        endpoint: format!("kube-system/{} (exec)", pod.pod.name),
        via: "exec".into(),
        revision: parsed.revision,
        etcd_version: String::new(),
        kubernetes_version: route.kubernetes_version.clone(),
        db_size: parsed.total_size,
        file_size: parsed.total_size,
        sha256: None,
        compression: None,
        encryption: None,
        recipients: Vec::new(),
        stored_sha256: None,
        etcdctl_hash: Some(format!("{:x}", parsed.hash)),
        verified: true,
        saved_at: jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        tool: format!("kubectl-etcdsnap {}", env!("CARGO_PKG_VERSION")),
    };
    Ok(SaveReport { sidecar, node: Some(pod.pod.node.clone()), url: None, warnings: Vec::new() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_sidecars() {
        let when: jiff::Timestamp = "2026-11-23T10:00:00Z".parse().unwrap();
        assert_eq!(default_name("prod/eu", "cp-1", when), "etcd-prod-eu-cp-1-20261123T100000Z.db");
        assert_eq!(sidecar_path(Path::new("/b/x.db")), PathBuf::from("/b/x.db.json"));
    }

    #[test]
    fn a_save_that_cannot_fit_is_refused_before_it_starts() {
        let gib = 1u64 << 30;
        assert!(check_room(Path::new("/backup"), gib, 2 * gib).is_ok());
        let err = check_room(Path::new("/backup"), gib, gib).unwrap_err();
        assert_eq!(err.what, "Not enough space in /backup for the snapshot");
        assert_eq!(err.why, "the database is 1.0 GiB and 1.0 GiB is free");
        assert!(err.fix.contains("--dir"));
        // An empty database still needs its margin.
        assert!(check_room(Path::new("."), 0, 1 << 19).is_err());
    }
}
