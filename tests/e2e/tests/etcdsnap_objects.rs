//! `kubectl etcdsnap` with object storage, end to end: a real etcd (Debian's 3.4, direct
//! transport) saved into an S3 server on loopback (moto's server mode with authentication on,
//! `testkit::s3`), then listed, read, drilled and pruned through the same URLs; the store is
//! inspected with boto3, not with the product's client. Faults: a wrong credential, an object
//! changed in the store, Ctrl-C during an upload, the store dying mid-upload or filling up.
//! `az://` against Azurite, the Azure Blob emulator (`testkit::azure`).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cpkit_e2e::{describe, etcdctl_status, plugin, plugin_binary, text};
use serde_json::Value;
use sha2::Digest;
use testkit::etcd::{EtcdCluster, EtcdOptions};
use testkit::etcd_data::{LoadSpec, load};
use testkit::fault_proxy::{Damage, FaultProxy};
use testkit::s3::{S3Server, Serving};
use testkit::store_front::StoreFront;

fn json_of(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", describe(out)))
}

/// One member with `size` bytes of data, its plain (no TLS) client URL, and a runtime kept with it.
fn etcd_with_data(size: u64) -> (EtcdCluster, String) {
    let mut etcd = EtcdCluster::start(EtcdOptions { plain_client: true, ..EtcdOptions::members(1) }).unwrap();
    etcd.wait_healthy(Duration::from_secs(20)).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let client = rt.block_on(etcd.client()).unwrap();
    rt.block_on(load(&client, &LoadSpec::sized(size))).unwrap();
    let url = format!("http://127.0.0.1:{}", etcd.members[0].plain_client_port.unwrap());
    (etcd, url)
}

fn save_args(endpoint: &str, to: &str, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["save", "--via", "direct", &format!("--endpoints={endpoint}"), "--to", to]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn etcdsnap(args: &[&str], env: &[(String, String)]) -> std::process::Output {
    plugin("etcdsnap", args, env)
}

/// Keys of the bucket under `prefix`.
fn keys_under(s3: &S3Server, prefix: &str) -> Vec<String> {
    let mut keys: Vec<String> =
        s3.objects().unwrap().into_iter().map(|(k, _)| k).filter(|k| k.starts_with(prefix)).collect();
    keys.sort();
    keys
}

#[test]
fn snapshots_in_s3_are_saved_listed_read_drilled_and_pruned() {
    let s3 = S3Server::start().unwrap();
    let env = s3.env();
    // 20 MiB: the plain save is uploaded in three parts (8 MiB each).
    let (_etcd, endpoint) = etcd_with_data(20 << 20);
    let prefix = "s3://backups/prod/";

    let save = |extra: &[&str]| {
        let args = save_args(&endpoint, prefix, extra);
        let out = etcdsnap(&args.iter().map(String::as_str).collect::<Vec<_>>(), &env);
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
        json_of(&out)
    };
    let first = save(&["-o", "json"]);
    let url = first["url"].as_str().unwrap().to_string();
    let name = first["sidecar"]["file"].as_str().unwrap().to_string();
    assert_eq!(url, format!("{prefix}{name}"));
    assert_eq!(keys_under(&s3, "prod/"), [format!("prod/{name}"), format!("prod/{name}.json")]);

    // The object is etcd's snapshot: its data matches etcd's digest, etcdctl reads its revision.
    let object = s3.get(&format!("prod/{name}")).unwrap();
    let db_size = first["sidecar"]["dbSize"].as_u64().unwrap() as usize;
    assert_eq!(object.len(), db_size + 32);
    assert_eq!(hex::encode(sha2::Sha256::digest(&object[..db_size])), first["sidecar"]["sha256"].as_str().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy.db");
    std::fs::write(&copy, &object).unwrap();
    assert_eq!(etcdctl_status(&copy)["revision"], first["sidecar"]["revision"]);
    let record: Value = serde_json::from_slice(&s3.get(&format!("prod/{name}.json")).unwrap()).unwrap();
    assert_eq!(record, first["sidecar"], "the record beside it is the one printed");

    // The text report names the object and its record.
    std::thread::sleep(Duration::from_millis(1100)); // the default names carry the second
    let args = save_args(&endpoint, prefix, &["--compress", "zstd"]);
    let out = etcdsnap(&args.iter().map(String::as_str).collect::<Vec<_>>(), &env);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let (stdout, _) = text(&out);
    assert!(stdout.contains(&format!("Saved {prefix}")) && stdout.contains(".db.zst.json"), "{stdout}");
    let zst_name = keys_under(&s3, "prod/").into_iter().find(|k| k.ends_with(".db.zst")).unwrap();
    let zst_url = format!("s3://backups/{zst_name}");

    // ls: both, newest first, verified against their records.
    let ls = json_of(&etcdsnap(&["ls", prefix, "-o", "json"], &env));
    let items = ls["items"].as_array().unwrap();
    let paths: Vec<&str> = items.iter().map(|i| i["path"].as_str().unwrap()).collect();
    assert_eq!(paths, [zst_url.as_str(), url.as_str()], "{ls}");
    assert!(items.iter().all(|i| i["state"] == "verified"), "{ls}");

    // status and drill read the objects (downloaded and checked first).
    let out = etcdsnap(&["status", &zst_url, "-o", "json"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let st = json_of(&out);
    assert_eq!(st["storedAs"], "zstd");
    assert_eq!(st["sha256"]["valid"], true);
    let out = etcdsnap(&["drill", &url], &env);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(text(&out).0.contains("PASS"), "{}", describe(&out));

    // prune keeps the newest verified snapshot of the cluster and never touches an object
    // without a record (another tool's, another cluster's) even when it matches the names.
    s3.put("prod/etcd-other-tool.db", b"not ours").unwrap();
    let out = etcdsnap(&["prune", prefix, "--keep", "1"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let (plan, _) = text(&out);
    assert!(plan.contains(&format!("would delete {url}")), "{plan}");
    assert!(!plan.contains("would delete s3://backups/prod/etcd-other-tool.db"), "{plan}");
    assert!(plan.contains("without a record"), "{plan}");
    assert_eq!(keys_under(&s3, "prod/").len(), 5, "nothing deleted without --yes");
    let out = etcdsnap(&["prune", prefix, "--keep", "1", "--yes"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let mut left = vec!["prod/etcd-other-tool.db".to_string(), zst_name.clone(), format!("{zst_name}.json")];
    left.sort();
    assert_eq!(keys_under(&s3, "prod/"), left);

    // An object changed in the store (same size, one byte) is refused before anything reads it.
    let mut damaged = s3.get(&zst_name).unwrap();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x55;
    s3.put(&zst_name, &damaged).unwrap();
    for cmd in ["status", "drill"] {
        let out = etcdsnap(&[cmd, &zst_url], &env);
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{cmd}: {}", describe(&out));
        assert!(stderr.contains("does not match its record") && stderr.contains("sha256"), "{cmd}: {stderr}");
    }

    // A wrong secret: a clear refusal, and no secret in the output.
    let mut wrong = env.clone();
    for (k, v) in wrong.iter_mut() {
        if k == "AWS_SECRET_ACCESS_KEY" {
            *v = "wrong-secret-value-0123456789".into();
        }
    }
    let out = etcdsnap(&["ls", prefix], &wrong);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert!(stderr.contains("rejected the credentials"), "{stderr}");
    for secret in ["wrong-secret-value-0123456789", s3.secret_key.as_str()] {
        assert!(!stdout.contains(secret) && !stderr.contains(secret), "a secret leaked: {}", describe(&out));
    }
    // Credentials in the URL are refused, not used.
    let out = etcdsnap(&["ls", "s3://AKIAEXAMPLE:topsecret@backups/prod/"], &env);
    assert_eq!(out.status.code(), Some(64), "{}", describe(&out));
    assert!(!text(&out).1.contains("topsecret"), "{}", describe(&out));

    assert_eq!(s3.unfinished_uploads().unwrap(), Vec::<String>::new(), "every upload completed or aborted");

    // file:// is the same store interface on a local directory.
    let local = format!("file://{}/fs/", dir.path().display());
    let args = save_args(&endpoint, &local, &["--compress", "zstd"]);
    let out = etcdsnap(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let ls = json_of(&etcdsnap(&["ls", &local, "-o", "json"], &[]));
    assert_eq!(ls["items"].as_array().map(|i| i.len()), Some(1), "{ls}");
    assert_eq!(ls["items"][0]["state"], "verified", "{ls}");
    let out = etcdsnap(&["status", ls["items"][0]["path"].as_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
}

/// `az://` against Azurite (`testkit::azure`): a save of 20 MiB (three blocks of 8 MiB, then the
/// block list), zstd beside it, both listed as verified, read, drilled and pruned; the container
/// is listed with the Blob REST API, not with the product's client.
#[test]
fn snapshots_in_azure_blob_storage_are_saved_listed_read_drilled_and_pruned() {
    let azure = testkit::azure::AzureServer::start().unwrap();
    let env = azure.env();
    let (_etcd, endpoint) = etcd_with_data(20 << 20);
    let prefix = "az://backups/prod/";
    let save = |extra: &[&str]| {
        let args = save_args(&endpoint, prefix, extra);
        let out = etcdsnap(&args.iter().map(String::as_str).collect::<Vec<_>>(), &env);
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
        json_of(&out)
    };
    let plain = save(&["-o", "json"]);
    std::thread::sleep(Duration::from_millis(1100)); // the default names carry the second
    let zst = save(&["--compress", "zstd", "-o", "json"]);
    let (plain_url, zst_url) = (plain["url"].as_str().unwrap(), zst["url"].as_str().unwrap());
    // Straight to etcd, the default name carries etcd's cluster ID (no kubeconfig context).
    let cluster = plain["sidecar"]["clusterId"].as_str().unwrap_or_default();
    assert!(!cluster.is_empty() && plain_url.starts_with(&format!("{prefix}etcd-{cluster}-")), "{plain}");
    let blobs = azure.blobs().unwrap();
    let size_of = |url: &str| {
        let name = url.trim_start_matches("az://backups/");
        blobs.iter().find(|(n, _)| n == name).map(|(_, size)| *size)
    };
    assert_eq!(size_of(plain_url), plain["sidecar"]["dbSize"].as_u64().map(|s| s + 32), "{blobs:?}");
    assert_eq!(size_of(zst_url), zst["sidecar"]["fileSize"].as_u64(), "{blobs:?}");
    assert_eq!(blobs.len(), 4, "two snapshots and their records: {blobs:?}");

    let ls = json_of(&etcdsnap(&["ls", prefix, "-o", "json"], &env));
    let items = ls["items"].as_array().unwrap();
    assert_eq!(items.iter().map(|i| i["path"].as_str().unwrap()).collect::<Vec<_>>(), [zst_url, plain_url], "{ls}");
    assert!(items.iter().all(|i| i["state"] == "verified"), "{ls}");
    let out = etcdsnap(&["status", zst_url, "-o", "json"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(json_of(&out)["etcdctl"]["revision"], zst["sidecar"]["revision"]);
    let out = etcdsnap(&["drill", plain_url, "-o", "json"], &env);
    assert_eq!(json_of(&out)["passed"], true, "{}", describe(&out));

    let out = etcdsnap(&["prune", prefix, "--keep", "1", "--yes"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let mut left: Vec<String> = azure.blobs().unwrap().into_iter().map(|(n, _)| n).collect();
    left.sort();
    let zst_name = zst_url.trim_start_matches("az://backups/").to_string();
    assert_eq!(left, [zst_name.clone(), format!("{zst_name}.json")], "the newest verified snapshot stays");
}

/// A store serving HTTPS with a certificate of a private CA (an on-premises MinIO or Ceph):
/// without that CA a save is refused as x509 names it, with the way to trust it, and leaves
/// nothing; with AWS_CA_BUNDLE (the AWS CLI's variable) or the config file's ca_bundle it
/// saves, lists and reads; a bundle
/// that holds no certificate is named as such.
#[test]
fn a_store_with_a_private_ca_is_trusted_through_aws_ca_bundle() {
    let s3 = S3Server::start_serving(Serving::Https).unwrap();
    assert!(s3.endpoint.starts_with("https://"), "{}", s3.endpoint);
    let (_etcd, endpoint) = etcd_with_data(1 << 20);
    let prefix = "s3://backups/tls/";
    let args = save_args(&endpoint, prefix, &["-o", "json"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    // Empty, not only left out: a machine may set AWS_CA_BUNDLE to its system bundle.
    let untrusted: Vec<(String, String)> =
        s3.env().into_iter().map(|(k, v)| if k == "AWS_CA_BUNDLE" { (k, String::new()) } else { (k, v) }).collect();
    let out = etcdsnap(&args, &untrusted);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(stderr.contains("unknown authority") && stderr.contains("AWS_CA_BUNDLE"), "{stderr}");
    assert_eq!(keys_under(&s3, "tls/"), Vec::<String>::new(), "a refused save leaves no object");

    let not_pem = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(not_pem.path(), "not a certificate\n").unwrap();
    let mut wrong_bundle = untrusted.clone();
    wrong_bundle.retain(|(k, _)| k != "AWS_CA_BUNDLE");
    wrong_bundle.push(("AWS_CA_BUNDLE".into(), not_pem.path().display().to_string()));
    let out = etcdsnap(&args, &wrong_bundle);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert!(stderr.contains("Cannot use the CA bundle") && stderr.contains("no PEM certificate"), "{stderr}");

    let env = s3.env();
    let out = etcdsnap(&args, &env);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let saved = json_of(&out);
    let name = saved["sidecar"]["file"].as_str().unwrap().to_string();
    assert_eq!(keys_under(&s3, "tls/"), [format!("tls/{name}"), format!("tls/{name}.json")]);
    // The same CA and the endpoint named by the AWS config file's profile, as the AWS CLI reads them.
    let config = tempfile::NamedTempFile::new().unwrap();
    let ca = s3.ca_bundle.as_ref().unwrap().display().to_string();
    let profile = format!("[profile backup]\nca_bundle = {ca}\nendpoint_url = {}\n", s3.endpoint);
    std::fs::write(config.path(), profile).unwrap();
    let mut from_config = untrusted.clone();
    from_config.retain(|(k, _)| k != "AWS_ENDPOINT_URL");
    from_config.push(("AWS_CONFIG_FILE".into(), config.path().display().to_string()));
    from_config.push(("AWS_PROFILE".into(), "backup".into()));
    let ls = json_of(&etcdsnap(&["ls", prefix, "-o", "json"], &from_config));
    assert_eq!(ls["items"][0]["state"], "verified", "{ls}");
    let out = etcdsnap(&["status", saved["url"].as_str().unwrap(), "-o", "json"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(json_of(&out)["sha256"]["valid"], true);
    assert_eq!(s3.unfinished_uploads().unwrap(), Vec::<String>::new());
}

fn spawn_save(args: &[String], env: &[(String, String)]) -> Child {
    Command::new(plugin_binary("etcdsnap"))
        .args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn an_interrupted_or_cut_upload_leaves_no_object_and_no_record() {
    let mut s3 = S3Server::start().unwrap();
    let env = s3.env();
    let (_etcd, endpoint) = etcd_with_data(20 << 20);
    let upstream: std::net::SocketAddr = endpoint.trim_start_matches("http://").parse().unwrap();

    // Ctrl-C while uploading (etcd slowed to 2 MiB/s): the multipart upload is aborted.
    let slow = FaultProxy::start(upstream, Damage::Throttle(2 << 20)).unwrap();
    let child = spawn_save(&save_args(&slow.url(), "s3://backups/interrupted/", &[]), &env);
    let deadline = Instant::now() + Duration::from_secs(20);
    while s3.unfinished_uploads().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the upload never started");
        std::thread::sleep(Duration::from_millis(200));
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", describe(&out));
    assert_eq!(s3.unfinished_uploads().unwrap(), Vec::<String>::new(), "the upload was aborted at the store");
    assert_eq!(keys_under(&s3, "interrupted/"), Vec::<String>::new());

    // The store dies after 10 MiB: the save fails, saying so; no object, no record.
    let dying = FaultProxy::start(
        s3.endpoint.trim_start_matches("http://").parse().unwrap(),
        Damage::DropAfterUpload(10 << 20),
    )
    .unwrap();
    let out = etcdsnap(
        &save_args(&endpoint, "s3://backups/cut/", &[]).iter().map(String::as_str).collect::<Vec<_>>(),
        &s3.env_with_endpoint(&dying.url()),
    );
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(stderr.contains("upload of s3://backups/cut/etcd-"), "{stderr}");
    assert!(
        stderr.contains("the connection to the store dropped") && stderr.contains("AbortIncompleteMultipartUpload"),
        "{stderr}"
    );
    assert_eq!(keys_under(&s3, "cut/"), Vec::<String>::new(), "no object and no record");

    // The store fills up after the first part (MinIO answers 507 XMinioStorageFull): the save
    // fails saying so and how to make room; the upload is aborted, no object, no record.
    let full = StoreFront::start(s3.endpoint.trim_start_matches("http://").parse().unwrap(), 9 << 20).unwrap();
    let out = etcdsnap(
        &save_args(&endpoint, "s3://backups/full/", &[]).iter().map(String::as_str).collect::<Vec<_>>(),
        &s3.env_with_endpoint(&full.url()),
    );
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(full.refused() > 0, "the store refused a part: {}", describe(&out));
    assert!(
        stderr.contains("upload of s3://backups/full/etcd-") && stderr.contains("(no object was created)"),
        "{stderr}"
    );
    assert!(stderr.contains("the store is full or over its quota (XMinioStorageFull)"), "{stderr}");
    assert!(stderr.contains("kubectl etcdsnap prune s3://backups/full/ --keep"), "names the prefix to prune: {stderr}");
    // (The cut upload above stays unfinished: the store was gone when it was to be aborted.)
    let unfinished: Vec<String> =
        s3.unfinished_uploads().unwrap().into_iter().filter(|k| k.starts_with("full/")).collect();
    assert_eq!(unfinished, Vec::<String>::new(), "the upload was aborted at the store: {}", describe(&out));
    assert_eq!(keys_under(&s3, "full/"), Vec::<String>::new(), "no object and no record");

    // The store is gone before the save starts: refused before etcd streams anything.
    s3.kill();
    let out =
        etcdsnap(&save_args(&endpoint, "s3://backups/gone/", &[]).iter().map(String::as_str).collect::<Vec<_>>(), &env);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(stderr.contains("connection refused"), "{stderr}");
}

/// Every key and value an etcd serves (read in pages: one answer holds at most 4 MiB), and its
/// revision.
async fn keys_and_revision(client_url: &str) -> Option<(std::collections::BTreeMap<Vec<u8>, Vec<u8>>, i64)> {
    let mut c = etcd_client::Client::connect([client_url], None).await.ok()?;
    let mut keys = std::collections::BTreeMap::new();
    let mut from = vec![0u8];
    let mut revision = None;
    loop {
        let mut options = etcd_client::GetOptions::new().with_from_key().with_limit(50);
        if let Some(r) = revision {
            options = options.with_revision(r);
        }
        let resp = c.get(from.clone(), Some(options)).await.ok()?;
        let r = *revision.get_or_insert(resp.header()?.revision());
        for kv in resp.kvs() {
            keys.insert(kv.key().to_vec(), kv.value().to_vec());
        }
        match resp.kvs().last() {
            Some(last) if resp.more() => {
                from = last.key().to_vec();
                from.push(0);
            }
            _ => return Some((keys, r)),
        }
    }
}

/// The matrix's last row: a snapshot of etcd 3.6 saved into S3 is restored, from its URL, into a
/// three-member cluster by `etcdsnap restore` with etcdutl 3.6 (built from go.etcd.io/etcd); the
/// three members serve every key, at a revision raised past the snapshot's by the bump.
#[test]
fn a_three_member_cluster_restored_from_s3_serves_every_key_past_the_bump() {
    use testkit::etcd::EtcdRelease;
    let s3 = S3Server::start().unwrap();
    let env = s3.env();
    let mut etcd =
        EtcdCluster::start(EtcdOptions { plain_client: true, release: EtcdRelease::V3_6, ..EtcdOptions::members(1) })
            .unwrap();
    etcd.wait_healthy(Duration::from_secs(20)).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let client = rt.block_on(etcd.client()).unwrap();
    rt.block_on(load(&client, &LoadSpec::sized(4 << 20))).unwrap();
    let endpoint = format!("http://127.0.0.1:{}", etcd.members[0].plain_client_port.unwrap());
    let (want, _) = rt.block_on(keys_and_revision(&endpoint)).unwrap();
    let args = save_args(&endpoint, "s3://backups/three/", &["--compress", "zstd", "-o", "json"]);
    let out = etcdsnap(&args.iter().map(String::as_str).collect::<Vec<_>>(), &env);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let saved = json_of(&out);
    let url = saved["url"].as_str().unwrap().to_string();
    let snapshot_revision = saved["sidecar"]["revision"].as_i64().unwrap();
    drop(etcd);

    // etcdutl 3.6 first on PATH: the tool `restore` picks, and it has --bump-revision.
    let etcdutl = EtcdRelease::V3_6.etcdutl().expect("etcdutl 3.6 is built by dev/build-controlplane");
    let path = format!("{}:{}", etcdutl.parent().unwrap().display(), std::env::var("PATH").unwrap_or_default());
    let mut env_with_tool = env.clone();
    env_with_tool.push(("PATH".into(), path));
    let port = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let members: Vec<(String, u16, u16)> = ["a", "b", "c"].iter().map(|n| (n.to_string(), port(), port())).collect();
    let initial = members.iter().map(|(n, _, p)| format!("{n}=http://127.0.0.1:{p}")).collect::<Vec<_>>().join(",");
    let root = tempfile::tempdir().unwrap();
    let mut servers = Vec::new();
    for (name, client_port, peer_port) in &members {
        let data = root.path().join(name);
        let peer = format!("http://127.0.0.1:{peer_port}");
        let out = etcdsnap(
            &[
                "restore",
                &url,
                "--data-dir",
                data.to_str().unwrap(),
                "--name",
                name,
                "--initial-cluster",
                &initial,
                "--initial-advertise-peer-urls",
                &peer,
                "--initial-cluster-token",
                "restored",
                // One member of three: the same bump on each, given (the default grows with time).
                "--bump-revision",
                "1000000000",
                "--yes",
            ],
            &env_with_tool,
        );
        assert_eq!(out.status.code(), Some(0), "{name}: {}", describe(&out));
        assert!(text(&out).0.contains("raised by 1000000000"), "{name}: the bump was applied: {}", describe(&out));
        let client = format!("http://127.0.0.1:{client_port}");
        servers.push(
            testkit::process::ChildGuard::spawn(
                name,
                Command::new(EtcdRelease::V3_6.server().unwrap())
                    .args([
                        format!("--name={name}"),
                        format!("--data-dir={}", data.display()),
                        format!("--listen-client-urls={client}"),
                        format!("--advertise-client-urls={client}"),
                        format!("--listen-peer-urls={peer}"),
                        format!("--initial-advertise-peer-urls={peer}"),
                        format!("--initial-cluster={initial}"),
                        "--initial-cluster-token=restored".into(),
                    ])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null()),
            )
            .unwrap(),
        );
    }
    for (name, client_port, _) in &members {
        let client = format!("http://127.0.0.1:{client_port}");
        let deadline = Instant::now() + Duration::from_secs(60);
        let (got, revision) = loop {
            if let Some(r) = rt.block_on(keys_and_revision(&client)) {
                break r;
            }
            assert!(Instant::now() < deadline, "member {name} did not serve within 60 s");
            std::thread::sleep(Duration::from_millis(300));
        };
        assert!(got == want, "member {name} serves {} keys, the snapshot held {}", got.len(), want.len());
        assert!(
            revision >= snapshot_revision + 1_000_000_000,
            "member {name}: revision {revision} is not past the snapshot's {snapshot_revision} by the bump"
        );
    }
}
