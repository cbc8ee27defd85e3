//! `kubectl etcdsnap` end to end against the real etcd of the test kit: every transport saves a
//! snapshot that the real restore tool of its etcd accepts (etcd 3.6's `etcdutl`, Debian 3.4's
//! `etcdctl`) and whose restored etcd serves every key; `status` equals `etcdctl snapshot
//! status`; faults never leave a file behind; the maintenance commands on a 3-member TLS
//! cluster. The cluster tests run in both worlds: the simulated API server over Debian's etcd
//! 3.4, and the real control plane over etcd 3.6; one runs the simulator over etcd 3.5.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use cpkit_e2e::{describe, etcdctl_status, in_both_worlds, kubectl, plugin, plugin_binary, start, text};
use serde_json::{Value, json};
use sha2::Digest;
use testkit::etcd::{ClientTls, EtcdCluster, EtcdOptions, EtcdRelease};
use testkit::etcd_data::{LoadSpec, load};
use testkit::fault_proxy::{Damage, FaultProxy};
use testkit::{DemoCluster, Scenario, World};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn tls_flags(tls: &ClientTls) -> Vec<String> {
    vec![
        format!("--etcd-cacert={}", tls.cacert.display()),
        format!("--etcd-cert={}", tls.cert.display()),
        format!("--etcd-key={}", tls.key.display()),
    ]
}

fn json_of(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", describe(out)))
}

/// Every key and value at `revision` (or the latest).
async fn all_keys(client: &mut etcd_client::Client, revision: Option<i64>) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut options = etcd_client::GetOptions::new().with_all_keys();
    if let Some(r) = revision {
        options = options.with_revision(r);
    }
    let resp = client.get("", Some(options)).await.unwrap();
    resp.kvs().iter().map(|kv| (kv.key().to_vec(), kv.value().to_vec())).collect()
}

/// Asserts two key sets are equal, describing a difference by key names, not bytes.
fn assert_same_keys(got: &BTreeMap<Vec<u8>, Vec<u8>>, want: &BTreeMap<Vec<u8>, Vec<u8>>, what: &str) {
    if got == want {
        return;
    }
    let name = |k: &Vec<u8>| String::from_utf8_lossy(k).into_owned();
    let missing: Vec<String> = want.keys().filter(|k| !got.contains_key(*k)).map(name).take(5).collect();
    let extra: Vec<String> = got.keys().filter(|k| !want.contains_key(*k)).map(name).take(5).collect();
    let changed: Vec<String> =
        want.iter().filter(|(k, v)| got.get(*k).is_some_and(|g| g != *v)).map(|(k, _)| name(k)).take(5).collect();
    panic!(
        "{what}: {} keys vs {} expected; missing {missing:?}; extra {extra:?}; different {changed:?}",
        got.len(),
        want.len()
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The etcd release a world runs.
fn release_of(world: World) -> EtcdRelease {
    match world {
        World::Sim => EtcdRelease::Debian,
        World::Real => EtcdRelease::V3_6,
    }
}

/// Restores `file` with the real restore tool of `release` (`etcdutl snapshot restore`, or
/// etcdctl's in 3.4; hash check on), starts that etcd on it, and returns every key it serves.
fn restore_and_read(file: &Path, release: EtcdRelease) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (client, peer) = (free_port(), free_port());
    let peer_url = format!("http://127.0.0.1:{peer}");
    let tool = release.etcdutl().unwrap_or_else(|| release.etcdctl().unwrap());
    let out = Command::new(tool)
        .args(["snapshot", "restore"])
        .arg(file)
        .args([
            "--name=r",
            &format!("--initial-cluster=r={peer_url}"),
            &format!("--initial-advertise-peer-urls={peer_url}"),
        ])
        .arg(format!("--data-dir={}", data.display()))
        .env("ETCDCTL_API", "3")
        .output()
        .unwrap();
    assert!(out.status.success(), "etcdctl snapshot restore: {}", describe(&out));
    let client_url = format!("http://127.0.0.1:{client}");
    let mut etcd = Command::new(release.server().unwrap())
        .args([
            "--name=r".to_string(),
            format!("--data-dir={}", data.display()),
            format!("--listen-client-urls={client_url}"),
            format!("--advertise-client-urls={client_url}"),
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
            format!("--initial-cluster=r={peer_url}"),
        ])
        .env("ETCD_UNSUPPORTED_ARCH", std::env::consts::ARCH)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let keys = rt().block_on(async {
        for _ in 0..100 {
            if let Ok(mut c) = etcd_client::Client::connect([client_url.as_str()], None).await
                && c.status().await.is_ok()
            {
                return all_keys(&mut c, None).await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("the restored etcd did not start");
    });
    let _ = etcd.kill();
    let _ = etcd.wait();
    keys
}

/// `snapshot status -w json` of the tool matching the etcd of `release`: etcdutl 3.6 (whose
/// totalKey counts live user keys, etcd PR #19344), Debian's etcdctl 3.4.
fn matching_tool_status(file: &Path, release: EtcdRelease) -> Value {
    let Some(etcdutl) = release.etcdutl() else { return etcdctl_status(file) };
    let out = Command::new(etcdutl).args(["snapshot", "status"]).arg(file).args(["-w", "json"]).output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `etcdsnap status` equals the matching tool by default, and etcdctl 3.4 with `--semantics 3.4`.
fn assert_status_semantics(file: &Path, world: World) {
    let release = release_of(world);
    let out = plugin("etcdsnap", &["status", file.to_str().unwrap(), "-o", "json"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let st = json_of(&out);
    assert_eq!(st["etcdctl"], matching_tool_status(file, release), "{world:?}");
    let expected = match world {
        World::Sim => "3.4",
        World::Real => "3.6",
    };
    assert_eq!((st["semantics"].as_str(), st["semanticsDetected"].as_bool()), (Some(expected), Some(true)));
    let out = plugin("etcdsnap", &["status", file.to_str().unwrap(), "--semantics", "3.4", "-o", "json"], &[]);
    let st = json_of(&out);
    assert_eq!(st["etcdctl"], etcdctl_status(file), "{world:?} as 3.4");
    assert_eq!(st["semanticsDetected"], false);
}

in_both_worlds! {
    fn every_transport_saves_a_snapshot_that_restores_every_key(world) {
        let c = start(world, Scenario::HealthyHa);
        let release = release_of(world);
        let etcd = c.etcd().unwrap();
        let env = c.env();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        let tls = tls_flags(&etcd.client_tls());

        // port-forward through the API server. The 3.5-style image of the simulator lets the
        // certificates be read through its shell; etcd 3.6's image has none, so there the user
        // brings copies of the files — and without them is told which.
        let mut args = vec!["etcdsnap", "save", "--via", "port-forward", "--dir", d, "-o", "json"];
        if world == World::Real {
            let out = kubectl(&args, &env);
            assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
            let (_, stderr) = text(&out);
            assert!(stderr.contains("healthcheck-client.key from node cp-") && stderr.contains("--etcd-cacert"), "{stderr}");
            args.extend(tls.iter().map(String::as_str));
        }
        let out = kubectl(&args, &env);
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
        let report = json_of(&out);
        let sidecar = &report["sidecar"];
        assert_eq!(sidecar["via"], "port-forward");
        assert_eq!(sidecar["verified"], true);
        let pf_file = dir.path().join(sidecar["file"].as_str().unwrap());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&pf_file).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(!std::fs::read_dir(dir.path()).unwrap().any(|e| e.unwrap().path().to_string_lossy().ends_with(".part")));
        let revision = sidecar["revision"].as_i64().unwrap();
        // The record's revision is the file's (a live cluster writes while the save starts).
        assert_eq!(revision, etcdctl_status(&pf_file)["revision"].as_i64().unwrap(), "{sidecar}");
        let expected = rt().block_on(async {
            let mut client = etcd.client().await.unwrap();
            all_keys(&mut client, Some(revision)).await
        });
        assert!(expected.len() > 100, "the scenario wrote Kubernetes objects");
        assert_same_keys(&restore_and_read(&pf_file, release), &expected, "port-forward snapshot restores every key and value");

        // status reads what etcdctl reads, and its inventory is what etcd held at that revision.
        assert_status_semantics(&pf_file, world);
        let out = plugin("etcdsnap", &["status", pf_file.to_str().unwrap(), "-o", "json"], &[]);
        let st = json_of(&out);
        // The recorded members by name, as `etcdsnap members` lists them.
        let names: Vec<&str> = st["members"].as_array().unwrap().iter().filter_map(|m| m["name"].as_str()).collect();
        assert_eq!(names, ["cp-1", "cp-2", "cp-3"], "{}", st["members"]);
        let mut inventory: BTreeMap<String, u64> = BTreeMap::new();
        for key in expected.keys() {
            if let Some(r) = testkit::etcd_data::resource_of(&String::from_utf8_lossy(key)) {
                *inventory.entry(r).or_default() += 1;
            }
        }
        for (resource, n) in &inventory {
            assert_eq!(st["inventory"][resource].as_u64(), Some(*n), "{resource}: {}", st["inventory"]);
        }
        assert_eq!(st["sha256"]["valid"], true);

        // direct, like etcdctl on a control-plane node.
        let direct_file = dir.path().join("direct.db");
        let mut args = vec!["save".to_string(), direct_file.display().to_string(), "--via".into(), "direct".into()];
        args.push(format!("--endpoints={}", etcd.members[0].local_client_url()));
        args.extend(tls.iter().cloned());
        let out = plugin("etcdsnap", &args.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
        let sidecar: Value = serde_json::from_slice(&std::fs::read(dir.path().join("direct.db.json")).unwrap()).unwrap();
        assert_eq!(sidecar["revision"], etcdctl_status(&direct_file)["revision"], "{sidecar}");
        let expected = rt().block_on(async {
            let mut client = etcd.client().await.unwrap();
            all_keys(&mut client, Some(sidecar["revision"].as_i64().unwrap())).await
        });
        assert_same_keys(&restore_and_read(&direct_file, release), &expected, "direct snapshot restores every key and value");

        // exec: etcdctl in the pod writes under the node's etcd data dir and checks it there
        // (with etcdutl on 3.6, whose etcdctl has no `snapshot status`).
        let out = kubectl(&["etcdsnap", "save", "--via", "exec", "--member", "cp-2", "-o", "json"], &env);
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
        let report = json_of(&out);
        assert_eq!(report["node"], "cp-2");
        let in_pod = report["sidecar"]["file"].as_str().unwrap().to_string();
        let node_root = &etcd.members[1].node_root;
        let data_dir = match world {
            World::Sim => "/var/lib/etcd".to_string(),
            World::Real => etcd.members[1].data_dir().display().to_string(),
        };
        assert!(in_pod.starts_with(&format!("{data_dir}/etcd-healthy-ha-cp-2-")), "{in_pod}");
        // The hash checked on the node is recorded as such, never as a sha256.
        assert!(report["sidecar"].get("sha256").is_none(), "{report}");
        let on_node =
            if Path::new(&in_pod).starts_with(node_root) { PathBuf::from(&in_pod) } else { node_root.join(in_pod.trim_start_matches('/')) };
        let etcdctl_hash = etcdctl_status(&on_node)["hash"].as_u64().unwrap();
        assert_eq!(report["sidecar"]["etcdctlHash"], format!("{etcdctl_hash:x}"), "{report}");
        let expected = rt().block_on(async {
            let mut client = etcd.client().await.unwrap();
            all_keys(&mut client, Some(report["sidecar"]["revision"].as_i64().unwrap())).await
        });
        assert_same_keys(&restore_and_read(&on_node, release), &expected, "exec snapshot restores every key and value");

        // Without --via, auto prefers port-forward and, where the image hides the certificates
        // (etcd 3.6), says so and saves through exec: on the node, not in --dir, so a WARNING.
        let out = kubectl(&["etcdsnap", "save", "--dir", d, "-o", "json"], &env);
        let (expected_via, expected_exit) = match world {
            World::Sim => ("port-forward", 0),
            World::Real => ("exec", 1),
        };
        assert_eq!(out.status.code(), Some(expected_exit), "{}", describe(&out));
        assert_eq!(json_of(&out)["sidecar"]["via"], expected_via, "{}", describe(&out));
        if world == World::Real {
            // The note says why, what is done instead and how to get the port-forward.
            let stderr = text(&out).1;
            for words in ["its image has no shell: etcd 3.6 images have none", "using exec in the pod instead", "pass --etcd-cacert, --etcd-cert and --etcd-key"] {
                assert!(stderr.contains(words), "{words}: {}", describe(&out));
            }
            let warning = json_of(&out)["warnings"][0].as_str().unwrap_or_default().to_string();
            assert!(warning.starts_with(&format!("not saved in {d}: ")), "{}", describe(&out));
            assert!(warning.contains("or pass --via exec to ask for this"), "{warning}");
        }
    }
}

in_both_worlds! {
    fn a_compressed_save_is_smaller_and_reads_as_the_snapshot_it_holds(world) {
        let c = start(world, Scenario::HealthyHa);
        let etcd = c.etcd().unwrap();
        let env = c.env();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        let tls = tls_flags(&etcd.client_tls());
        // A port-forward save into `d` with `extra` flags; its record.
        let save = |extra: &[&str]| {
            let mut args = vec!["etcdsnap", "save", "--via", "port-forward", "--dir", d, "-o", "json"];
            args.extend(extra);
            args.extend(tls.iter().map(String::as_str));
            let out = kubectl(&args, &env);
            assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
            json_of(&out)["sidecar"].clone()
        };
        let sidecar = save(&["--compress", "zstd"]);
        let name = sidecar["file"].as_str().unwrap();
        assert!(name.ends_with(".db.zst"), "{sidecar}");
        assert_eq!(sidecar["compression"], "zstd");
        let zst = dir.path().join(name);
        let stored = std::fs::read(&zst).unwrap();
        assert_eq!(&stored[..4], &[0x28, 0xB5, 0x2F, 0xFD], "a zstd frame");
        assert_eq!(sidecar["fileSize"].as_u64(), Some(stored.len() as u64), "{sidecar}");
        assert_eq!(sidecar["storedSha256"].as_str().unwrap(), hex::encode(sha2::Sha256::digest(&stored)));
        let db_size = sidecar["dbSize"].as_u64().unwrap();
        assert!((stored.len() as u64) < db_size / 2, "{} stored of {db_size}", stored.len());

        // The stored bytes decompress to what etcd sent: its digest, its revision.
        let plain = zstd::decode_all(&stored[..]).unwrap();
        assert_eq!(plain.len() as u64, db_size + 32);
        let plain_file = dir.path().join("decompressed.db");
        std::fs::write(&plain_file, &plain).unwrap();
        assert_eq!(hex::encode(sha2::Sha256::digest(&plain[..db_size as usize])), sidecar["sha256"].as_str().unwrap());
        let etcdctl = etcdctl_status(&plain_file);
        assert_eq!(sidecar["revision"], etcdctl["revision"], "the revision read from the passing pages: {sidecar}");

        // status reads the compressed file as the database it holds.
        let out = plugin("etcdsnap", &["status", zst.to_str().unwrap(), "-o", "json"], &[]);
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
        let st = json_of(&out);
        assert_eq!(st["etcdctl"], matching_tool_status(&plain_file, release_of(world)));
        assert_eq!(st["storedAs"], "zstd");
        assert_eq!(st["sha256"]["valid"], true);
        let out = plugin("etcdsnap", &["status", zst.to_str().unwrap()], &[]);
        assert!(text(&out).0.contains("zstd (read through a decoded copy)"), "{}", describe(&out));

        // ls lists it as verified; the restore plan decompresses once and copies that file.
        let out = plugin("etcdsnap", &["ls", d, "-o", "json"], &[]);
        let items = json_of(&out)["items"].clone();
        let entry = items.as_array().unwrap().iter().find(|e| e["path"].as_str().unwrap().ends_with(name)).cloned();
        assert_eq!(entry.as_ref().map(|e| e["state"].clone()), Some(json!("verified")), "{items}");
        // The directory also as `save` takes it (`ls --dir` was a usage error).
        let out = plugin("etcdsnap", &["ls", "--dir", d, "-o", "json"], &[]);
        assert_eq!(json_of(&out)["items"], items, "{}", describe(&out));
        let members = "cp-1=https://127.0.0.2:2380,cp-2=https://127.0.0.3:2380,cp-3=https://127.0.0.4:2380";
        let out = plugin("etcdsnap", &["restore-plan", zst.to_str().unwrap(), "--members", members], &[]);
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
        let plan = text(&out).0;
        let unpacked = zst.to_str().unwrap().trim_end_matches(".zst");
        assert!(plan.contains(&format!("zstd -d -k {} -o {unpacked}", zst.display())), "{plan}");
        assert!(plan.contains(&format!("scp {unpacked} cp-2:/tmp/etcd-restore.db")), "{plan}");

        // A drill restores it with the machine's etcd (Debian's 3.4): the simulator's etcd. The
        // real world's 3.6 snapshot restores too, but a drill by an older etcd says it proves less.
        let out = plugin("etcdsnap", &["drill", zst.to_str().unwrap(), "-o", "json"], &[]);
        let report = json_of(&out);
        assert_eq!(report["passed"], true, "{}", describe(&out));
        match world {
            World::Sim => assert_eq!((out.status.code(), report.get("warnings")), (Some(0), None), "{report}"),
            World::Real => {
                assert_eq!(out.status.code(), Some(1), "{report}");
                let warning = report["warnings"][0].as_str().unwrap_or_default();
                assert!(warning.contains("older than the etcd 3.6 that wrote the snapshot"), "{report}");
            }
        }

        // Damaged in storage: the zstd stream says so, and nothing is read from it.
        let mut damaged = stored.clone();
        let mid = damaged.len() / 2;
        damaged[mid] ^= 0xff;
        let bad = dir.path().join("damaged.db.zst");
        std::fs::write(&bad, &damaged).unwrap();
        let out = plugin("etcdsnap", &["status", bad.to_str().unwrap()], &[]);
        assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
        assert!(text(&out).1.contains("is not a usable etcd snapshot"), "{}", describe(&out));

        // exec cannot compress: etcdctl writes the file on the node.
        let out = kubectl(&["etcdsnap", "save", "--via", "exec", "--compress", "zstd"], &env);
        assert_eq!(out.status.code(), Some(64), "{}", describe(&out));
        assert!(text(&out).1.contains("--compress and --encrypt-to need the snapshot to stream through this machine"), "{}", describe(&out));

        // Compressed, then encrypted to two age recipients; read back with either identity.
        use age::secrecy::ExposeSecret;
        let ids: Vec<age::x25519::Identity> = (0..3).map(|_| age::x25519::Identity::generate()).collect();
        let id_files: Vec<PathBuf> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let f = dir.path().join(format!("id{i}.txt"));
                std::fs::write(&f, format!("# test key\n{}\n", id.to_string().expose_secret())).unwrap();
                f
            })
            .collect();
        let secrets: Vec<String> = ids.iter().map(|id| id.to_string().expose_secret().to_string()).collect();
        let no_secret = |out: &std::process::Output| {
            let (o, e) = text(out);
            assert!(secrets.iter().all(|k| !o.contains(k.as_str()) && !e.contains(k.as_str())), "a secret key in the output");
            assert!(!o.contains("AGE-SECRET-KEY") && !e.contains("AGE-SECRET-KEY"), "{}", describe(out));
        };
        let (r0, r1) = (ids[0].to_public().to_string(), ids[1].to_public().to_string());
        let sidecar = save(&["--compress", "zstd", "--encrypt-to", r0.as_str(), "--encrypt-to", r1.as_str()]);
        let name = sidecar["file"].as_str().unwrap();
        assert!(name.ends_with(".db.zst.age"), "{sidecar}");
        assert_eq!((sidecar["compression"].as_str(), sidecar["encryption"].as_str()), (Some("zstd"), Some("age")));
        assert_eq!(sidecar["recipients"], json!([r0, r1]));
        let sealed = dir.path().join(name);
        let stored = std::fs::read(&sealed).unwrap();
        assert!(stored.starts_with(b"age-encryption.org/v1\n"), "the age header");
        assert_eq!(sidecar["storedSha256"].as_str().unwrap(), hex::encode(sha2::Sha256::digest(&stored)));
        let sealed_arg = sealed.to_str().unwrap();
        let out = plugin("etcdsnap", &["status", sealed_arg], &[]);
        assert_eq!(out.status.code(), Some(64), "{}", describe(&out));
        assert!(text(&out).1.contains("is encrypted with age") && text(&out).1.contains("--identity"), "{}", describe(&out));
        for id in &id_files[..2] {
            let out = plugin("etcdsnap", &["status", sealed_arg, "--identity", id.to_str().unwrap(), "-o", "json"], &[]);
            assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
            no_secret(&out);
            let st = json_of(&out);
            assert_eq!(st["storedAs"], "age+zstd");
            assert_eq!(st["sha256"]["valid"], true);
            assert_eq!(st["etcdctl"]["revision"], sidecar["revision"]);
        }
        let out = plugin("etcdsnap", &["status", sealed_arg, "--identity", id_files[2].to_str().unwrap()], &[]);
        assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
        assert!(text(&out).1.contains("none of the given identities is one of its recipients"), "{}", describe(&out));
        no_secret(&out);
        let id1 = id_files[1].to_str().unwrap();
        let out = plugin("etcdsnap", &["restore-plan", sealed_arg, "--members", members, "--identity", id1], &[]);
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
        let unsealed = sealed_arg.trim_end_matches(".zst.age");
        assert!(text(&out).0.contains(&format!("age --decrypt -i {id1} {sealed_arg} | zstd -d -o {unsealed}")), "{}", describe(&out));
        if world == World::Sim {
            let out = plugin("etcdsnap", &["drill", sealed_arg, "--identity", id1, "-o", "json"], &[]);
            assert_eq!(json_of(&out)["passed"], true, "{}", describe(&out));
            no_secret(&out);
        }
        // Encrypted only, to the recipients of a file; ls lists both.
        let recipients = dir.path().join("recipients.txt");
        std::fs::write(&recipients, format!("# backup keys\n{r0}\n")).unwrap();
        let sidecar = save(&["--recipients-file", recipients.to_str().unwrap()]);
        let only_age = dir.path().join(sidecar["file"].as_str().unwrap());
        assert!(only_age.to_str().unwrap().ends_with(".db.age"), "{}", only_age.display());
        let out = plugin("etcdsnap", &["status", only_age.to_str().unwrap(), "--identity", id_files[0].to_str().unwrap(), "-o", "json"], &[]);
        assert_eq!(json_of(&out)["storedAs"], "age", "{}", describe(&out));
        let ls = json_of(&plugin("etcdsnap", &["ls", d, "-o", "json"], &[]));
        for f in [&sealed, &only_age] {
            let state = ls["items"].as_array().unwrap().iter().find(|e| e["path"] == f.to_str().unwrap()).map(|e| e["state"].clone());
            assert_eq!(state, Some(json!("verified")), "{}: {ls}", f.display());
        }
    }
}

/// `etcdsnap compact --yes` compacts up to the current revision: revision 1 is gone.
fn compact_and_check(etcd: &EtcdCluster, env: &[(String, String)]) {
    let out = kubectl(&["etcdsnap", "compact", "--yes"], env);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let err = rt().block_on(async {
        let mut client = etcd.client().await.unwrap();
        client.get("/registry", Some(etcd_client::GetOptions::new().with_revision(1))).await.err()
    });
    assert!(err.is_some_and(|e| e.to_string().contains("compacted")), "revision 1 was compacted");
}

/// The version an etcd binary says it is (`etcd --version`'s first line).
fn etcd_version_of(server: &Path) -> String {
    let out = Command::new(server).arg("--version").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines().find_map(|l| l.strip_prefix("etcd Version: ")).unwrap_or_default().trim().to_string()
}

/// etcd 3.5 (built from go.etcd.io/etcd v3.5 by dev/build-controlplane) under the simulated API
/// server, its pods' image with a shell as registry.k8s.io/etcd 3.5 has: exec, port-forward and
/// direct all save (locally and into S3); status equals etcdutl 3.5's; drills and a three-member
/// restore run with etcdutl 3.5, and the restored members serve every key at one revision,
/// raised by the bump.
#[test]
fn etcd_3_5_saves_through_every_transport_and_restores_three_members() {
    let release = EtcdRelease::V3_5;
    let c =
        DemoCluster::start_with(Scenario::HealthyHa, testkit::Options { etcd: Some(release), ..Default::default() })
            .unwrap();
    let etcd = c.etcd().unwrap();
    let env = c.env();
    let version = etcd_version_of(&release.server().unwrap());
    assert!(version.starts_with("3.5."), "{version}");
    // etcdsnap finds etcd and etcdutl on PATH for drill and restore: 3.5's first.
    let tools = testkit::binaries::controlplane_dir().join("etcd-3.5");
    let path = vec![("PATH".to_string(), format!("{}:{}", tools.display(), std::env::var("PATH").unwrap_or_default()))];
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();

    let out = kubectl(&["etcdsnap", "members", "-o", "json"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let members = json_of(&out);
    let versions: Vec<&str> =
        members["status"]["members"].as_array().unwrap().iter().filter_map(|m| m["version"].as_str()).collect();
    assert_eq!(versions, vec![version.as_str(); 3], "{members}");
    let out = kubectl(&["etcdsnap", "defrag", "--all", "--yes"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(text(&out).0.lines().filter(|l| l.starts_with("defragmenting ")).count(), 3, "{}", describe(&out));

    // exec: etcdctl 3.5 in the pod (its image has a shell) writes on the node.
    let out = kubectl(&["etcdsnap", "save", "--via", "exec", "--member", "cp-1", "-o", "json"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let in_pod = json_of(&out)["sidecar"]["file"].as_str().unwrap().to_string();
    let on_node = etcd.members[0].node_root.join(in_pod.trim_start_matches('/'));
    assert_eq!(matching_tool_status(&on_node, release)["revision"], json_of(&out)["sidecar"]["revision"]);

    // port-forward, compressed; direct, encrypted.
    let out =
        kubectl(&["etcdsnap", "save", "--via", "port-forward", "--dir", d, "--compress", "zstd", "-o", "json"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let sidecar = json_of(&out)["sidecar"].clone();
    assert_eq!(sidecar["etcdVersion"], version.as_str(), "{sidecar}");
    let zst = dir.path().join(sidecar["file"].as_str().unwrap());
    let revision = sidecar["revision"].as_i64().unwrap();
    let identity = age::x25519::Identity::generate();
    let id_file = dir.path().join("id.txt");
    {
        use age::secrecy::ExposeSecret;
        std::fs::write(&id_file, format!("{}\n", identity.to_string().expose_secret())).unwrap();
    }
    let sealed = dir.path().join("direct.db.age");
    let recipient = identity.to_public().to_string();
    let out = save_direct(
        &etcd.members[2].local_client_url(),
        Some(&etcd.client_tls()),
        &sealed,
        &["--encrypt-to", recipient.as_str()],
    );
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));

    // status: what etcdutl 3.5 says of the same database, with 3.5's semantics detected.
    let plain = dir.path().join("plain.db");
    std::fs::write(&plain, zstd::decode_all(&std::fs::read(&zst).unwrap()[..]).unwrap()).unwrap();
    let out = plugin("etcdsnap", &["status", zst.to_str().unwrap(), "-o", "json"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let st = json_of(&out);
    assert_eq!(st["etcdctl"], matching_tool_status(&plain, release));
    assert_eq!((st["semantics"].as_str(), st["semanticsDetected"].as_bool()), (Some("3.5"), Some(true)), "{st}");
    let id = id_file.to_str().unwrap();
    let out = plugin("etcdsnap", &["status", sealed.to_str().unwrap(), "--identity", id, "-o", "json"], &[]);
    assert_eq!(json_of(&out)["sha256"]["valid"], true, "{}", describe(&out));

    // drill: etcdutl 3.5 restores it with the bump, etcd 3.5 serves it.
    for (file, extra) in [(&zst, vec![]), (&sealed, vec!["--identity", id])] {
        let mut args = vec!["drill", file.to_str().unwrap(), "-o", "json"];
        args.extend(extra);
        let out = plugin("etcdsnap", &args, &path);
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
        let report = json_of(&out);
        assert_eq!(report["passed"], true, "{report}");
        // Bumped: etcdutl 3.5 has the flag (Debian's etcdctl 3.4.23 would have restored without).
        let revision_check = report["checks"].as_array().unwrap().iter().find(|c| c["name"] == "revision").cloned();
        assert!(revision_check.is_some_and(|c| c["detail"].as_str().unwrap().contains(" + bump ")), "{report}");
    }

    // Object storage: streamed into an S3 server, then drilled from there.
    let s3 = testkit::s3::S3Server::start().unwrap();
    let mut s3_env = s3.env();
    s3_env.extend(path.iter().cloned());
    let mut args = vec!["save".to_string(), "--via".into(), "direct".into()];
    args.push(format!("--endpoints={}", etcd.members[1].local_client_url()));
    args.extend(tls_flags(&etcd.client_tls()));
    args.extend(["--to", "s3://backups/v35/", "--compress", "zstd", "-o", "json"].map(String::from));
    let out = plugin("etcdsnap", &args.iter().map(String::as_str).collect::<Vec<_>>(), &s3_env);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let url = json_of(&out)["url"].as_str().unwrap().to_string();
    let out = plugin("etcdsnap", &["drill", &url, "-o", "json"], &s3_env);
    assert_eq!(json_of(&out)["passed"], true, "{}", describe(&out));

    // A three-member restore: one member without a bump of the user's is refused (the default
    // grows with the snapshot's age, and the members must agree); with the plan's bump each
    // member is restored, and the three serve every key at one revision past the snapshot's.
    let names = ["r1", "r2", "r3"];
    let ports: Vec<(u16, u16)> = names.iter().map(|_| (free_port(), free_port())).collect();
    let peer = |i: usize| format!("http://127.0.0.1:{}", ports[i].1);
    let client_url = |i: usize| format!("http://127.0.0.1:{}", ports[i].0);
    let initial = (0..3).map(|i| format!("{}={}", names[i], peer(i))).collect::<Vec<_>>().join(",");
    let out = plugin("etcdsnap", &["restore-plan", zst.to_str().unwrap(), "--members", &initial, "-o", "json"], &path);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let bump = json_of(&out)["bumpRevision"].as_u64().unwrap();
    assert!(bump >= 1_000_000_000, "{bump}");
    let data: Vec<PathBuf> = names.iter().map(|n| dir.path().join(format!("{n}.etcd"))).collect();
    let restore = |i: usize, extra: &[&str]| {
        let (data_dir, peer_url) = (data[i].to_str().unwrap().to_string(), peer(i));
        let mut args = vec!["restore", zst.to_str().unwrap(), "--data-dir", &data_dir, "--name", names[i]];
        args.extend(["--initial-cluster", &initial, "--initial-advertise-peer-urls", &peer_url, "--yes", "-o", "json"]);
        args.extend(extra);
        plugin("etcdsnap", &args, &path)
    };
    let out = restore(0, &[]);
    assert_eq!(out.status.code(), Some(64), "{}", describe(&out));
    assert!(text(&out).1.contains("Pass the same --bump-revision to every member's restore"), "{}", describe(&out));
    assert!(!data[0].exists(), "a refused restore writes nothing");
    let bump_arg = bump.to_string();
    for i in 0..3 {
        let out = restore(i, &["--bump-revision", &bump_arg]);
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
        assert_eq!(json_of(&out)["bumpRevision"], bump, "{}", describe(&out));
    }
    let _members: Vec<testkit::process::ChildGuard> = (0..3)
        .map(|i| {
            let mut cmd = Command::new(release.server().unwrap());
            cmd.args([
                format!("--name={}", names[i]),
                format!("--data-dir={}", data[i].display()),
                format!("--listen-client-urls={}", client_url(i)),
                format!("--advertise-client-urls={}", client_url(i)),
                format!("--listen-peer-urls={}", peer(i)),
                format!("--initial-advertise-peer-urls={}", peer(i)),
                format!("--initial-cluster={initial}"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
            testkit::process::ChildGuard::spawn(names[i], &mut cmd).unwrap()
        })
        .collect();
    let expected = rt().block_on(async { all_keys(&mut etcd.client().await.unwrap(), Some(revision)).await });
    let (keys, revisions) = rt().block_on(async {
        let mut revisions = Vec::new();
        let mut keys = BTreeMap::new();
        for (i, name) in names.iter().enumerate() {
            let url = client_url(i);
            let mut served = None;
            for _ in 0..150 {
                if let Ok(mut client) = etcd_client::Client::connect([url.as_str()], None).await
                    && let Ok(status) = client.status().await
                    && status.leader() != 0
                {
                    served = Some((client, status.header().map(|h| h.revision()).unwrap_or_default()));
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let (mut client, rev) = served.unwrap_or_else(|| panic!("restored member {name} did not serve"));
            revisions.push(rev);
            if i == 0 {
                keys = all_keys(&mut client, None).await;
            }
        }
        (keys, revisions)
    });
    assert_same_keys(&keys, &expected, "the restored three-member cluster serves every key and value");
    assert!(revisions.iter().all(|r| *r >= revision + bump as i64), "{revisions:?} against {revision} + {bump}");
    assert!(revisions.windows(2).all(|w| w[0] == w[1]), "the members agree on the revision: {revisions:?}");

    // compact, last: up to the current revision of the running 3.5 cluster.
    compact_and_check(etcd, &env);
}

fn single_member(plain: bool) -> EtcdCluster {
    let mut e = EtcdCluster::start(EtcdOptions { plain_client: plain, ..EtcdOptions::members(1) }).unwrap();
    e.wait_healthy(Duration::from_secs(20)).unwrap();
    e
}

fn save_direct(endpoint: &str, tls: Option<&ClientTls>, file: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "save".to_string(),
        file.display().to_string(),
        "--via".into(),
        "direct".into(),
        format!("--endpoints={endpoint}"),
    ];
    if let Some(t) = tls {
        args.extend(tls_flags(t));
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    plugin("etcdsnap", &args.iter().map(String::as_str).collect::<Vec<_>>(), &[])
}

/// Keys are counted by their bytes: 100,000 keys that share long prefixes (node names as a
/// large cluster has them, pods of one long-named namespace), where a 64-bit hash of the key
/// used to merge distinct keys (5,000 nodes were counted as 4,414 and `drill` failed a good
/// snapshot).
#[test]
fn status_and_drill_count_every_key_exactly() {
    let etcd = single_member(false);
    let tls = etcd.client_tls();
    let endpoint = etcd.members[0].local_client_url();
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let mut client = rt.block_on(etcd.client()).unwrap();
    let namespace = "platform-observability-and-telemetry-collectors-production-eu-west-1";
    rt.block_on(async {
        for batch in 0..(100_000 / 125) {
            let ops: Vec<etcd_client::TxnOp> = (0..125)
                .map(|k| {
                    let i = batch * 125 + k;
                    let key = if i % 2 == 0 {
                        format!("/registry/minions/node-{:06}", i / 2)
                    } else {
                        format!("/registry/pods/{namespace}/otel-collector-{:06}", i / 2)
                    };
                    etcd_client::TxnOp::put(key, b"k8s\0v".to_vec(), None)
                })
                .collect();
            client.txn(etcd_client::Txn::new().and_then(ops)).await.unwrap();
        }
    });
    let file = dir.path().join("many.db");
    let out = save_direct(&endpoint, Some(&tls), &file, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let st = json_of(&plugin("etcdsnap", &["status", file.to_str().unwrap(), "-o", "json"], &[]));
    assert_eq!(st["inventory"]["nodes"], 50_000, "{}", st["inventory"]);
    assert_eq!(st["inventory"]["pods"], 50_000, "{}", st["inventory"]);
    assert_eq!(st["liveKeys"], 100_000);
    let out = plugin("etcdsnap", &["drill", file.to_str().unwrap()], &[]);
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(stdout.contains("PASS keys"), "{stdout}");
}

/// A process's state letter from /proc (None when it is gone).
fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next())
}

/// The children of `parent` whose command line contains `needle`.
fn children_with(parent: u32, needle: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let ppid = stat.rsplit_once(") ").and_then(|(_, rest)| rest.split(' ').nth(1)?.parse::<u32>().ok());
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            ppid == Some(parent) && String::from_utf8_lossy(&cmdline).contains(needle)
        })
        .collect()
}

/// `drill` starts a throwaway etcd serving the restored data (Secrets included, no auth): any
/// signal that ends the plugin must end that etcd too and remove its directory.
#[test]
fn drill_leaves_no_etcd_and_no_files_behind_on_any_signal() {
    let etcd = single_member(false);
    let tls = etcd.client_tls();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.db");
    let rt = rt();
    let mut client = rt.block_on(etcd.client()).unwrap();
    rt.block_on(load(&client, &LoadSpec::default())).unwrap();
    rt.block_on(client.put("/registry/secrets/default/db", "s3cr3t", None)).unwrap();
    let out = save_direct(&etcd.members[0].local_client_url(), Some(&tls), &file, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    for signal in [libc::SIGTERM, libc::SIGHUP, libc::SIGINT] {
        let tmp = tempfile::tempdir().unwrap();
        let mut drill = Command::new(plugin_binary("etcdsnap"))
            .args(["drill", file.to_str().unwrap()])
            .env("TMPDIR", tmp.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let child = loop {
            if let Some(pid) = children_with(drill.id(), "--initial-cluster-token=etcdsnap-drill").first() {
                break *pid;
            }
            assert!(std::time::Instant::now() < deadline, "the drill's etcd never started");
            std::thread::sleep(Duration::from_millis(5));
        };
        // SAFETY: a signal to our own child.
        unsafe { libc::kill(drill.id() as libc::pid_t, signal) };
        let status = drill.wait().unwrap();
        let mut stderr = String::new();
        use std::io::Read;
        drill.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
        let expected = if signal == libc::SIGINT { 130 } else { 128 + signal };
        assert_eq!(status.code(), Some(expected), "signal {signal}: {stderr}");
        assert!(stderr.contains("interrupted by"), "{stderr}");
        let gone = (0..200).any(|_| {
            std::thread::sleep(Duration::from_millis(10));
            !matches!(process_state(child), Some(s) if s != 'Z' && s != 'X')
        });
        assert!(gone, "signal {signal}: the drill's etcd (pid {child}) still runs");
        let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().flatten().map(|e| e.path()).collect();
        assert!(left.is_empty(), "signal {signal}: left behind {left:?}");
    }
}

/// Ctrl-C during `status` of a multi-gigabyte file ends it at once: the walk and the hash run off
/// the async threads, so the signal is never waiting behind them. The file is a real snapshot
/// grown to 4 GiB (sparse: no disk used), so the sha256 of the whole file takes seconds.
#[test]
fn status_of_a_multi_gigabyte_file_stops_at_once_on_ctrl_c() {
    let etcd = single_member(false);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.db");
    let out = save_direct(&etcd.members[0].local_client_url(), Some(&etcd.client_tls()), &file, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    std::fs::OpenOptions::new().write(true).open(&file).unwrap().set_len(4 << 30).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut status = Command::new(plugin_binary("etcdsnap"))
        .args(["status", file.to_str().unwrap()])
        .env("TMPDIR", tmp.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(status.try_wait().unwrap().is_none(), "status ended before the signal: the file is too small to test this");
    let signalled = std::time::Instant::now();
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(status.id() as libc::pid_t, libc::SIGINT) };
    let code = status.wait().unwrap().code();
    let took = signalled.elapsed();
    let mut stderr = String::new();
    use std::io::Read;
    status.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert_eq!(code, Some(130), "{stderr}");
    assert!(stderr.contains("interrupted by SIGINT"), "{stderr}");
    assert!(took < Duration::from_secs(2), "ended {took:?} after Ctrl-C");
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().flatten().map(|e| e.path()).collect();
    assert!(left.is_empty(), "left behind {left:?}");
}

/// A snapshot is its pages plus etcd's 32-byte sha256: a file cut or grown by a few bytes is
/// damaged, never "a copied db file" that `restore-plan` would restore with --skip-hash-check.
#[test]
fn damaged_tails_are_corruption() {
    let etcd = single_member(false);
    let tls = etcd.client_tls();
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.db");
    let out = save_direct(&etcd.members[0].local_client_url(), Some(&tls), &good, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let bytes = std::fs::read(&good).unwrap();
    let record = std::fs::read(dir.path().join("good.db.json")).unwrap();
    let damaged = |name: &str, data: &[u8]| {
        let file = dir.path().join(name);
        std::fs::write(&file, data).unwrap();
        std::fs::write(dir.path().join(format!("{name}.json")), &record).unwrap();
        file
    };
    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
    for cut in [1usize, 16, 31, 32] {
        cases.push((format!("cut-{cut}.db"), bytes[..bytes.len() - cut].to_vec()));
    }
    for added in [1usize, 480] {
        let mut grown = bytes.clone();
        grown.extend(std::iter::repeat_n(0u8, added));
        cases.push((format!("grown-{added}.db"), grown));
    }
    for (name, data) in cases {
        let file = damaged(&name, &data);
        let out = plugin("etcdsnap", &["status", file.to_str().unwrap()], &[]);
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", describe(&out));
        assert!(stderr.contains("is not a usable etcd snapshot"), "{name}: {stderr}");
        let out =
            plugin("etcdsnap", &["restore-plan", file.to_str().unwrap(), "--members", "a=https://127.0.0.1:2380"], &[]);
        assert_ne!(out.status.code(), Some(0), "{name}: {}", describe(&out));
        assert!(!text(&out).0.contains("--skip-hash-check"), "{name}: {}", describe(&out));
    }
    // The intact file still reads, with its digest.
    let out = plugin("etcdsnap", &["status", good.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
}

#[test]
fn status_equals_etcdctl_on_several_shapes() {
    let etcd = single_member(false);
    let tls = etcd.client_tls();
    let endpoint = etcd.members[0].local_client_url();
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let client = rt.block_on(etcd.client()).unwrap();
    // The inventory must be the live keys per resource (nothing writes between save and read;
    // etcdctl's "revision" of a compacted file can be below the compaction, so read the latest).
    let live_now = || {
        let mut c = client.clone();
        let resp =
            rt.block_on(c.get("", Some(etcd_client::GetOptions::new().with_all_keys().with_keys_only()))).unwrap();
        let mut by: BTreeMap<String, usize> = BTreeMap::new();
        for k in resp.kvs().iter().map(|kv| kv.key()) {
            if let Some(r) = testkit::etcd_data::resource_of(&String::from_utf8_lossy(k)) {
                *by.entry(r).or_insert(0) += 1;
            }
        }
        by
    };
    let check = |name: &str| {
        let file = dir.path().join(name);
        let out = save_direct(&endpoint, Some(&tls), &file, &[]);
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
        let st = json_of(&plugin("etcdsnap", &["status", file.to_str().unwrap(), "-o", "json"], &[]));
        assert_eq!(st["etcdctl"], etcdctl_status(&file), "{name}");
        let got: BTreeMap<String, usize> = st["inventory"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_u64().unwrap() as usize))
            .collect();
        assert_eq!(got, live_now(), "{name}: inventory");
        (st, got)
    };
    // Empty, then Kubernetes-shaped data with updates and deletions: what the test wrote.
    check("empty.db");
    let inv = rt.block_on(load(&client, &LoadSpec::default())).unwrap();
    let (_, got) = check("deletions.db");
    assert_eq!(got, inv.live, "the inventory is what the test wrote");
    // Compacted: old revisions gone, free pages inside the file.
    rt.block_on(load(&client, &LoadSpec { compact: true, namespaces: 5, ..LoadSpec::default() })).unwrap();
    let (st, _) = check("compacted.db");
    assert!(
        st["finishedCompactRevision"].as_i64().unwrap() > 0 || st["scheduledCompactRevision"].as_i64().unwrap() > 0
    );
    // Bigger: ~24 MB of values.
    rt.block_on(load(&client, &LoadSpec::sized(24 << 20))).unwrap();
    let (st, _) = check("big.db");
    assert!(st["etcdctl"]["totalSize"].as_u64().unwrap() > 20 << 20);

    // A copied member/snap/db has no digest trailer: status still reads it, and says so.
    let raw = dir.path().join("raw.db");
    std::fs::copy(dir.path().join("deletions.db"), &raw).unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&raw).unwrap();
    let len = f.metadata().unwrap().len();
    f.set_len(len - 32).unwrap();
    let st = json_of(&plugin("etcdsnap", &["status", raw.to_str().unwrap(), "-o", "json"], &[]));
    assert_eq!(st["sha256"]["present"], false);
    // A damaged file: a precise error, exit 2.
    let bad = dir.path().join("bad.db");
    let mut bytes = std::fs::read(dir.path().join("deletions.db")).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&bad, &bytes).unwrap();
    let out = plugin("etcdsnap", &["status", bad.to_str().unwrap()], &[]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(stderr.contains("is not a usable etcd snapshot") && stderr.contains("truncated"), "{stderr}");
}

fn no_files_left(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect()
}

#[test]
fn faults_never_leave_a_file_behind() {
    let mut etcd = single_member(true);
    let rt = rt();
    let client = rt.block_on(etcd.client()).unwrap();
    rt.block_on(load(&client, &LoadSpec::sized(16 << 20))).unwrap();
    let plain: std::net::SocketAddr =
        format!("127.0.0.1:{}", etcd.members[0].plain_client_port.unwrap()).parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.db");

    // Sanity: through an undamaging proxy the save works (and the digest checks out).
    let ok = FaultProxy::start(plain, Damage::None).unwrap();
    let out = save_direct(&ok.url(), None, &file, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(!text(&out).1.contains("/s"), "no progress bar when stderr is not a terminal: {}", describe(&out));
    std::fs::remove_file(&file).unwrap();
    std::fs::remove_file(dir.path().join("s.db.json")).unwrap();

    // On a terminal (a pty from script(1)) a progress bar shows bytes, total and rate.
    let paced = FaultProxy::start(plain, Damage::Throttle(8 << 20)).unwrap();
    let command = format!(
        "{} save {} --via direct --endpoints={}",
        plugin_binary("etcdsnap").display(),
        file.display(),
        paced.url()
    );
    let out = Command::new("script").args(["-qefc", &command, "/dev/null"]).env("TERM", "xterm").output().unwrap();
    let (typescript, _) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(typescript.contains("MiB/") && typescript.contains("MiB/s"), "progress bar: {typescript}");
    std::fs::remove_file(&file).unwrap();
    std::fs::remove_file(dir.path().join("s.db.json")).unwrap();

    // The stream is cut mid-way.
    let cut = FaultProxy::start(plain, Damage::CutAfter(3 << 20)).unwrap();
    let out = save_direct(&cut.url(), None, &file, &[]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(stderr.contains("broke after") || stderr.contains("ended early"), "{stderr}");
    assert!(stderr.contains("no file was written"), "{stderr}");
    assert_eq!(no_files_left(dir.path()), Vec::<PathBuf>::new());

    // A byte flipped in transit: etcd's digest does not match.
    let flip = FaultProxy::start(plain, Damage::FlipInDataFrame(40)).unwrap();
    let out = save_direct(&flip.url(), None, &file, &[]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(stderr.contains("failed verification") && stderr.contains("does not match"), "{stderr}");
    assert_eq!(no_files_left(dir.path()), Vec::<PathBuf>::new());

    // Disk full, as a file-size limit of 1 MiB (ulimit -f).
    let mut cmd = Command::new(plugin_binary("etcdsnap"));
    cmd.args(["save", file.to_str().unwrap(), "--via", "direct", &format!("--endpoints={}", ok.url())]);
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            let limit = libc::rlimit { rlim_cur: 1 << 20, rlim_max: 1 << 20 };
            libc::setrlimit(libc::RLIMIT_FSIZE, &limit);
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(stderr.contains("No room to write"), "{stderr}");
    assert_eq!(no_files_left(dir.path()), Vec::<PathBuf>::new());

    // Ctrl-C while saving (slowed to 2 MB/s).
    let slow = FaultProxy::start(plain, Damage::Throttle(2 << 20)).unwrap();
    let slow_save = || {
        Command::new(plugin_binary("etcdsnap"))
            .args(["save", file.to_str().unwrap(), "--via", "direct", &format!("--endpoints={}", slow.url())])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let child = slow_save();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(no_files_left(dir.path()).iter().any(|p| p.to_string_lossy().ends_with(".part")), "saving is under way");
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", describe(&out));
    assert_eq!(no_files_left(dir.path()), Vec::<PathBuf>::new(), "the .part is removed on Ctrl-C");

    // The member dies while saving.
    let child = slow_save();
    std::thread::sleep(Duration::from_millis(1500));
    etcd.kill(0);
    let out = child.wait_with_output().unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(stderr.contains("no file was written"), "{stderr}");
    assert_eq!(no_files_left(dir.path()), Vec::<PathBuf>::new());
}

in_both_worlds! {
    fn nospace_stops_writes_not_snapshots(world) {
        // A NOSPACE alarm stops writes, not snapshots: the save works and members shows the alarm.
        let c = start(world, Scenario::EtcdNospace);
        let env = c.env();
        let dir = tempfile::tempdir().unwrap();
        let out = kubectl(&["etcdsnap", "save", "--dir", dir.path().to_str().unwrap()], &env);
        // The real world's etcd 3.6 saves through exec, on the node: a WARNING that says so.
        let expected = if world == World::Real { 1 } else { 0 };
        assert_eq!(out.status.code(), Some(expected), "{}", describe(&out));
        let out = kubectl(&["etcdsnap", "members"], &env);
        let (stdout, _) = text(&out);
        assert!(stdout.contains("alarms: NOSPACE"), "{}", describe(&out));
        assert_eq!(out.status.code(), Some(2));
    }
}

in_both_worlds! {
    fn a_dead_member_is_reported_down_and_the_others_as_they_are(world) {
        let c = start(world, Scenario::EtcdMemberDown);
        let env = c.env();
        let down = c.facts.down_etcd_member.clone().expect("the scenario names its dead member");
        // Every route gives partial results: the dead member down, the others with their numbers,
        // exit 1 as quorum holds (before: the exec route failed as a whole after 15 s and told
        // the user to raise a --timeout that members did not have).
        for via in ["auto", "exec"] {
            let out = kubectl(&["etcdsnap", "members", "--via", via, "--timeout", "3s", "-o", "json"], &env);
            assert_eq!(out.status.code(), Some(1), "--via {via}: {}", describe(&out));
            let doc = json_of(&out);
            let members = doc["status"]["members"].as_array().unwrap();
            assert_eq!(members.len(), 3, "--via {via}: {doc}");
            for m in members {
                let is_down = m["name"] == down.as_str();
                assert_eq!(m["healthy"], !is_down, "--via {via}: {m}");
                assert_eq!(m["dbSize"].is_u64(), !is_down, "--via {via}: {m}");
                // How long the dead one took to fail is not its latency.
                assert_eq!(m["latency"].is_f64(), !is_down, "--via {via}: {m}");
            }
        }
        // defrag, even its plan: the same table, refused while a member is down, exit by quorum.
        let out = kubectl(&["etcdsnap", "defrag", "--all"], &env);
        let (stdout, _) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
        assert!(stdout.contains(&format!("Refused: not defragmenting while {down} is down")), "{stdout}");
        // compact needs only quorum: its plan reads the live members.
        let out = kubectl(&["etcdsnap", "compact"], &env);
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
        assert!(text(&out).0.contains("compact the history up to revision"), "{}", describe(&out));
    }
}

in_both_worlds! {
    fn a_nospace_recovery_ends_with_the_alarm_disarmed(world) {
        let c = start(world, Scenario::EtcdNospace);
        let env = c.env();
        let run = |args: &[&str]| kubectl(args, &env);

        // alarm list: CRITICAL, the alarm and the member that raised it.
        let out = run(&["etcdsnap", "alarm", "list", "-o", "json"]);
        assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
        assert_eq!(json_of(&out)["alarms"][0]["alarm"], "NOSPACE");

        // Disarming now would not last: refused, with the numbers and the way out, which depends
        // on them: when the data itself nearly fills the quota, maintenance cannot help.
        let status = json_of(&run(&["etcdsnap", "members", "-o", "json"]))["status"].clone();
        let quota = status["quotaBytes"].as_u64().unwrap();
        // The live data: the smallest size in use (a larger one counts pages freed, not yet released).
        let in_use = status["members"].as_array().unwrap().iter().filter_map(|m| m["dbSizeInUse"].as_u64()).min().unwrap();
        let data_fills_quota = in_use as f64 >= quota as f64 * 0.9;
        let out = run(&["etcdsnap", "alarm", "disarm", "--yes"]);
        let (stdout, _) = text(&out);
        let sizes: Vec<String> = status["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| format!("{} {} in use {}", m["name"], m["dbSize"], m["dbSizeInUse"]))
            .collect();
        assert_eq!(out.status.code(), Some(2), "quota {quota}, members {sizes:?}: {}", describe(&out));
        assert!(stdout.contains("Refused: the database file"), "{stdout}");
        let way_out = if data_fills_quota { "nearly fills the" } else { "Free space first: `kubectl etcdsnap compact --yes`" };
        assert!(stdout.contains(way_out), "in use {in_use} of {quota}: {stdout}");
        assert_eq!(run(&["etcdsnap", "alarm", "list"]).status.code(), Some(2), "nothing changed");
        let out = run(&["etcdsnap", "defrag", "--all"]);
        let says = text(&out).0.contains("compaction and defragmentation cannot bring the database under it");
        assert_eq!(says, data_fills_quota, "in use {in_use} of {quota}: {}", describe(&out));
        // Right after a compaction, members still count the pages it freed (etcd 3.6.16: 37.9 MiB
        // in use on one, 30.4 MiB after defragmenting): the plan reads the live data, not them.
        let out = run(&["etcdsnap", "compact", "--yes"]);
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
        let out = run(&["etcdsnap", "defrag", "--all"]);
        let says = text(&out).0.contains("compaction and defragmentation cannot bring the database under it");
        assert_eq!(says, data_fills_quota, "compacted, in use {in_use} of {quota}: {}", describe(&out));

        // The operator deletes what filled etcd (deletes are allowed under NOSPACE)...
        let filler = match world {
            World::Sim => "/registry/events/default/filler.",
            World::Real => "/registry/configmaps/logs/",
        };
        rt().block_on(async {
            let mut client = c.etcd().unwrap().client().await.unwrap();
            let deleted =
                client.delete(filler, Some(etcd_client::DeleteOptions::new().with_prefix())).await.unwrap().deleted();
            assert!(deleted > 0, "the filler keys under {filler}");
        });
        // ...compacts, defragments every member, and disarms: the runbook's order.
        for step in [&["etcdsnap", "compact", "--yes"][..], &["etcdsnap", "defrag", "--all", "--yes"][..]] {
            let out = run(step);
            assert_eq!(out.status.code(), Some(0), "{step:?}: {}", describe(&out));
        }
        let out = run(&["etcdsnap", "alarm", "disarm"]);
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
        assert!(text(&out).0.contains("Re-run with --yes to disarm"), "{}", describe(&out));
        let out = run(&["etcdsnap", "alarm", "disarm", "--yes"]);
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
        assert!(text(&out).0.contains("Disarmed: read back, no alarm is active"), "{}", describe(&out));
        let out = run(&["etcdsnap", "alarm", "list"]);
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
        assert!(text(&out).0.contains("No alarms."));
        // etcd takes writes again (and so does the real API server; the simulator's store is its own).
        rt().block_on(async {
            let mut client = c.etcd().unwrap().client().await.unwrap();
            client.put("/registry/recovery-check", "ok", None).await.unwrap();
        });
        if world == World::Real {
            let out = c.kubectl(&["create", "configmap", "after-recovery", "-n", "default"]);
            assert!(out.status.success(), "{}", describe(&out));
        }
    }
}

/// On a managed control plane etcd is out of reach: said as such, with no advice to dial an
/// endpoint that does not exist (before: "Use --via direct --endpoints https://HOST:2379").
#[test]
fn managed_control_planes_say_etcd_is_out_of_reach() {
    let c = DemoCluster::start(Scenario::Managed).unwrap();
    for args in [&["etcdsnap", "members"][..], &["etcdsnap", "save", "--dir", "/nonexistent"][..]] {
        let out = kubectl(args, &c.env());
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", describe(&out));
        assert!(stderr.contains("etcd is not reachable on a managed control plane (EKS)"), "{stderr}");
        assert!(!stderr.contains("--via direct"), "{stderr}");
    }
}

/// The simulator emulating etcd 3.6's shell-less image over Debian's 3.4 (the real world runs
/// 3.6 itself: `every_transport_saves_a_snapshot_that_restores_every_key::real`).
#[test]
fn shell_less_images_in_the_simulator() {
    let dir = tempfile::tempdir().unwrap();
    let c = DemoCluster::start(Scenario::HealthyHa).unwrap();
    for name in ["etcd-cp-1", "etcd-cp-2", "etcd-cp-3"] {
        let mut rt = c.apiserver().sim.exec.pod("kube-system", name).unwrap();
        rt.image = testkit::apiserver::streaming::Image::Etcd36;
        c.apiserver().sim.exec.add_pod("kube-system", name, rt);
    }
    let out = kubectl(&["etcdsnap", "save", "--via", "port-forward", "--dir", dir.path().to_str().unwrap()], &c.env());
    let (_, stderr) = text(&out);
    assert_ne!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(stderr.contains("its image has no shell: etcd 3.6 images have none"), "{stderr}");
    assert!(stderr.contains("pass --etcd-cacert, --etcd-cert and --etcd-key"), "{stderr}");
    // Without --via, the save falls back to etcdctl in the pod and says why; the file is on the
    // node, not in --dir: a WARNING.
    let out = kubectl(&["etcdsnap", "save", "--dir", dir.path().to_str().unwrap(), "-o", "json"], &c.env());
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert_eq!(json_of(&out)["sidecar"]["via"], "exec", "{}", describe(&out));
    assert!(
        text(&out).1.contains("(its image has no shell: etcd 3.6 images have none); using exec in the pod instead."),
        "{}",
        describe(&out)
    );
    // With the files given, the port-forward save works.
    let tls = c.etcd().unwrap().client_tls();
    let mut args = vec![
        "etcdsnap".to_string(),
        "save".into(),
        "--via".into(),
        "port-forward".into(),
        "--dir".into(),
        dir.path().display().to_string(),
    ];
    args.extend(tls_flags(&tls));
    let out = kubectl(&args.iter().map(String::as_str).collect::<Vec<_>>(), &c.env());
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
}

in_both_worlds! {
    fn maintenance_on_a_three_member_tls_cluster(world) {
        let c = start(world, Scenario::HealthyHa);
        let env = c.env();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        // etcd 3.6's image has no shell: port-forwards there use copies of the certificate files.
        let tls = match world {
            World::Sim => vec![],
            World::Real => tls_flags(&c.etcd().unwrap().client_tls()),
        };
        let with_tls = |args: &[&str]| -> Vec<String> {
            args.iter().map(|a| a.to_string()).chain(tls.iter().cloned()).collect()
        };
        let run = |args: Vec<String>| kubectl(&args.iter().map(String::as_str).collect::<Vec<_>>(), &env);
        for name in ["a.db", "b.db", "c.db"] {
            let out = run(with_tls(&["etcdsnap", "save", &format!("{d}/{name}")]));
            assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
            std::thread::sleep(Duration::from_millis(1100));
        }
        // An unverified copy, oldest.
        std::fs::copy(format!("{d}/a.db"), format!("{d}/copied.db")).unwrap();
        let old = std::time::SystemTime::now() - Duration::from_secs(30 * 86400);
        std::fs::File::options().write(true).open(format!("{d}/copied.db")).unwrap().set_modified(old).unwrap();

        // ls: newest first, verified from the sidecars.
        let ls = json_of(&plugin("etcdsnap", &["ls", d, "-o", "json"], &[]));
        let names: Vec<String> = ls["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| Path::new(e["path"].as_str().unwrap()).file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["c.db", "b.db", "a.db", "copied.db"]);
        assert_eq!(ls["items"][0]["state"], "verified");
        assert_eq!(ls["items"][3]["state"], "no record");

        // prune: the plan first, then --yes; the newest verified is kept.
        let out = plugin("etcdsnap", &["prune", d, "--keep", "1"], &[]);
        assert!(text(&out).0.contains("would delete"), "{}", describe(&out));
        assert_eq!(std::fs::read_dir(d).unwrap().count(), 7, "nothing deleted without --yes");
        let out = plugin("etcdsnap", &["prune", d, "--older-than", "7d", "--yes"], &[]);
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
        assert!(!Path::new(&format!("{d}/copied.db")).exists());
        let out = plugin("etcdsnap", &["prune", d, "--keep", "1", "--yes"], &[]);
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
        let left: Vec<String> =
            std::fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert_eq!(left.len(), 2, "c.db and its record: {left:?}");
        let file = format!("{d}/c.db");

        // restore-plan from the live members.
        let out = kubectl(&["etcdsnap", "restore-plan", &file], &env);
        let (plan, _) = text(&out);
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
        let etcd = c.etcd().unwrap();
        for m in &etcd.members {
            assert!(plan.contains(&format!("--name {}", m.name)), "{plan}");
            assert!(plan.contains(&format!("{}={}", m.name, m.peer_url())), "{plan}");
        }
        // kubeadm sets no token; a restored cluster gets a new one, so old members cannot join it.
        assert!(plan.contains("--initial-cluster-token etcd-restore-"), "{plan}");
        assert!(plan.contains("Restore every member from the SAME file"));
        // The tool of the snapshot's etcd: 3.4 (the simulator's Debian etcd) has no etcdutl and
        // bumps from etcdctl 3.4.27 on; 3.6 restores with etcdutl. Both bump past every
        // revision possible since the snapshot (a fresh one: the documented 1000000000), and
        // every kubelet restarts once the API server is back.
        match world {
            World::Sim => {
                assert!(plan.contains("sudo ETCDCTL_API=3 etcdctl snapshot restore"), "{plan}");
                assert!(!plan.lines().any(|l| l.contains("etcdutl snapshot restore")), "{plan}");
                assert!(plan.contains("It needs etcdctl 3.4.27 or later"), "{plan}");
            }
            World::Real => {
                assert!(plan.contains("sudo etcdutl snapshot restore"), "{plan}");
                assert!(plan.contains("It needs etcdutl 3.6"), "{plan}");
            }
        }
        assert!(plan.contains("--bump-revision 1000000000 --mark-compacted"), "{plan}");
        assert!(plan.contains("sudo systemctl restart kubelet"), "{plan}");
        // Step numbers are unique, and what needs root says sudo.
        let numbers: Vec<&str> = plan
            .lines()
            .filter_map(|l| l.trim_start().strip_prefix("# ").and_then(|r| r.split_once(". ")).map(|(n, _)| n))
            .filter(|n| n.chars().all(|c| c.is_ascii_digit()))
            .collect();
        let unique: std::collections::BTreeSet<&&str> = numbers.iter().collect();
        assert_eq!(unique.len(), numbers.len(), "step numbers: {numbers:?}");
        for line in plan.lines().map(str::trim) {
            if ["mv /", "rm -rf", "etcdutl snapshot", "etcdctl snapshot restore", "crictl"].iter().any(|c| line.contains(c)) {
                assert!(line.starts_with("sudo ") || line.starts_with('#'), "needs root: {line}");
            }
        }

        // drill: restore, start, compare (with the etcd tools of the cluster's release).
        let out = plugin("etcdsnap", &["drill", &file], &env);
        let (stdout, _) = text(&out);
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
        assert!(stdout.contains("PASS revision") && stdout.contains("PASS keys"), "{stdout}");
        // With the restore's own flags where the tool has them: etcdutl 3.6 bumps, and the
        // restored etcd serves the bumped revision; Debian's etcdctl 3.4.23 cannot.
        let says = match world {
            World::Sim => "by etcdctl (it has no --bump-revision: not bumped)",
            World::Real => "+ bump 1000000000)",
        };
        assert!(stdout.contains(says), "{stdout}");

        // members: three, one leader.
        let m = json_of(&kubectl(&["etcdsnap", "members", "-o", "json"], &env));
        let members = m["status"]["members"].as_array().unwrap();
        assert_eq!(members.len(), 3);
        assert!(members.iter().all(|x| x["healthy"] == true));
        assert_eq!(m["verdict"], "OK");
        // The same through one port-forward per member.
        let pf = json_of(&run(with_tls(&["etcdsnap", "members", "--via", "port-forward", "-o", "json"])));
        assert_eq!(pf["status"]["source"], "a port-forward to each member");
        let pf_members = pf["status"]["members"].as_array().unwrap();
        assert_eq!(pf_members.len(), 3);
        assert!(pf_members.iter().all(|x| x["healthy"] == true && x["dbSize"].as_u64().unwrap() > 0), "{pf}");

        // defrag: plan without --yes, then followers first and the leader last.
        let out = kubectl(&["etcdsnap", "defrag", "--all"], &env);
        assert!(text(&out).0.contains("Nothing changed"), "{}", describe(&out));
        let out = kubectl(&["etcdsnap", "defrag", "--all", "--yes"], &env);
        let (stdout, _) = text(&out);
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
        let leader = rt().block_on(etcd.leader_index()).unwrap();
        let order: Vec<&str> =
            stdout.lines().filter_map(|l| l.strip_prefix("defragmenting ")).map(|l| l.split(' ').next().unwrap()).collect();
        assert_eq!(order.len(), 3, "{stdout}");
        assert_eq!(order[2], etcd.members[leader].name, "the leader goes last: {stdout}");
        // The same through port-forwards: each member is defragmented through its own tunnel.
        let out = run(with_tls(&["etcdsnap", "defrag", "--all", "--via", "port-forward", "--yes"]));
        let (stdout, _) = text(&out);
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
        assert_eq!(stdout.lines().filter(|l| l.starts_with("defragmenting ")).count(), 3, "{stdout}");

        // compact: up to the current revision; older revisions are gone.
        compact_and_check(etcd, &env);
    }
}

/// fuzz/corpus/snapshot/etcd-3.6.16-two-live-keys.db, saved from the kit's etcd 3.6.16.
fn two_key_snapshot() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/snapshot/etcd-3.6.16-two-live-keys.db");
    path.to_str().unwrap().to_string()
}

/// A drill with neither etcdutl nor etcdctl on PATH says so and how to get them, and exits
/// UNKNOWN (3) before it starts anything.
#[test]
fn a_drill_without_a_restore_tool_says_how_to_get_one() {
    let empty = tempfile::tempdir().unwrap();
    let out =
        plugin("etcdsnap", &["drill", &two_key_snapshot()], &[("PATH".into(), empty.path().display().to_string())]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert!(stderr.contains("Neither etcdutl nor etcdctl is installed"), "{stderr}");
    assert!(stderr.contains("apt install etcd-client"), "{stderr}");
}

/// etcdctl alone can restore, but a drill also needs etcd to serve the restored data: it names
/// the missing server and exits UNKNOWN (3).
#[test]
fn a_drill_without_an_etcd_server_names_it() {
    let only_etcdctl = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(which::which("etcdctl").unwrap(), only_etcdctl.path().join("etcdctl")).unwrap();
    let path = vec![("PATH".to_string(), only_etcdctl.path().display().to_string())];
    let out = plugin("etcdsnap", &["drill", &two_key_snapshot()], &path);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert!(stderr.contains("etcd is not installed"), "{stderr}");
    assert!(stderr.contains("apt install etcd-server"), "{stderr}");
}
