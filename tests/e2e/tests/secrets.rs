//! The secrets sweep: marker strings planted as every kind of credential a kubeconfig carries
//! (token, token file, client key, exec plugins that succeed, fail, print garbage or hang,
//! basic-auth password, a password in the server URL, a proxy password) and as Secret data in
//! the cluster and in etcd; then every plugin command, in every output format, on the success
//! and the error paths, and the bundle tarball, are searched for them.

use std::io::Read;
use std::path::Path;

use cpkit_e2e::{describe, kubectl, plugin};
use testkit::apiserver::{Rule, User};
use testkit::{DemoCluster, Scenario};

const TOKEN: &str = "cpkitmarker-token-5e1f09";
const TOKEN_FILE: &str = "cpkitmarker-tokenfile-77aa01";
const EXEC_OK: &str = "cpkitmarker-execok-3c4d55";
const EXEC_FAIL: &str = "cpkitmarker-execfail-91be20";
const EXEC_BAD: &str = "cpkitmarker-execbad-0d7e66";
const BASIC: &str = "cpkitmarker-basicpw-4411af";
const URL_PASSWORD: &str = "cpkitmarker-urlpw-8c2d13";
const PROXY_PASSWORD: &str = "cpkitmarker-proxypw-6b9e02";
const SECRET_DATA: &str = "cpkitmarker-secretdata-2f8c47";

fn b64(s: &str) -> String {
    use std::io::Write;
    let mut out = Vec::new();
    {
        let mut enc = base64_writer(&mut out);
        enc.write_all(s.as_bytes()).unwrap();
    }
    String::from_utf8(out).unwrap()
}

/// Base64 without a crate: the e2e crate keeps its dependencies few.
fn base64_writer(out: &mut Vec<u8>) -> impl std::io::Write + '_ {
    struct W<'a>(&'a mut Vec<u8>, Vec<u8>);
    impl std::io::Write for W<'_> {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.1.extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl Drop for W<'_> {
        fn drop(&mut self) {
            const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
            for chunk in self.1.chunks(3) {
                let n = chunk.iter().enumerate().fold(0u32, |acc, (i, &x)| acc | (x as u32) << (16 - 8 * i));
                for i in 0..4 {
                    self.0.push(if i <= chunk.len() { T[(n >> (18 - 6 * i) & 63) as usize] } else { b'=' });
                }
            }
        }
    }
    W(out, Vec::new())
}

fn script(dir: &Path, name: &str, body: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700)).unwrap();
    p.display().to_string()
}

/// A kubeconfig with one context per kind of credential, all against `server`.
fn kubeconfig(dir: &Path, server: &str, ca_pem: &str, admin_cert: &str, admin_key: &str) -> std::path::PathBuf {
    std::fs::write(dir.join("token"), TOKEN_FILE).unwrap();
    let exec = |name: &str, command: String| serde_json::json!({"name": name, "user": {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": command, "interactiveMode": "Never"}}});
    let with_userinfo = server.replacen("https://", &format!("https://ops:{URL_PASSWORD}@"), 1);
    let users = vec![
        serde_json::json!({"name": "token", "user": {"token": TOKEN}}),
        serde_json::json!({"name": "token-file", "user": {"tokenFile": dir.join("token").display().to_string()}}),
        serde_json::json!({"name": "cert", "user": {"client-certificate-data": b64(admin_cert), "client-key-data": b64(admin_key)}}),
        exec(
            "exec-ok",
            script(
                dir,
                "ok.sh",
                &format!(
                    r#"echo '{{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{{"token":"{EXEC_OK}"}}}}'"#
                ),
            ),
        ),
        exec(
            "exec-fail",
            script(dir, "fail.sh", &format!("echo {EXEC_FAIL}; echo 'error: your session expired' >&2; exit 1")),
        ),
        exec("exec-bad", script(dir, "bad.sh", &format!("echo 'token: {EXEC_BAD}'; echo '{{ this is not json'"))),
        exec("exec-hang", script(dir, "hang.sh", "exec sleep 6011")),
        serde_json::json!({"name": "basic", "user": {"username": "ops", "password": BASIC}}),
    ];
    let mut contexts = Vec::new();
    for u in &users {
        let name = u["name"].as_str().unwrap();
        contexts.push(serde_json::json!({"name": name, "context": {"cluster": "sim", "user": name}}));
    }
    contexts.push(serde_json::json!({"name": "url-password", "context": {"cluster": "sim-userinfo", "user": "token"}}));
    contexts.push(serde_json::json!({"name": "proxied", "context": {"cluster": "sim-proxied", "user": "token"}}));
    contexts.push(serde_json::json!({"name": "unreachable", "context": {"cluster": "down", "user": "basic"}}));
    let ca = b64(ca_pem);
    let doc = serde_json::json!({
        "apiVersion": "v1", "kind": "Config", "current-context": "token",
        "clusters": [
            {"name": "sim", "cluster": {"server": server, "certificate-authority-data": ca}},
            {"name": "sim-userinfo", "cluster": {"server": with_userinfo, "certificate-authority-data": ca}},
            // A proxy nobody listens on: the error path must not show its password.
            {"name": "sim-proxied", "cluster": {"server": server, "certificate-authority-data": ca,
             "proxy-url": format!("http://ops:{PROXY_PASSWORD}@127.0.0.1:{}", testkit::net::dead_port().unwrap())}},
            {"name": "down", "cluster": {"server": format!("https://ops:{URL_PASSWORD}@127.0.0.1:1"), "certificate-authority-data": ca}},
        ],
        "users": users, "contexts": contexts,
    });
    let path = dir.join("kubeconfig");
    std::fs::write(&path, serde_yaml::to_string(&doc).unwrap()).unwrap();
    path
}

fn assert_clean(what: &str, text: &str, markers: &[&str]) {
    for m in markers {
        assert!(!text.contains(m), "{what} shows the planted secret {m}:\n{text}");
    }
}

fn tar_entries(path: &Path) -> Vec<(String, String)> {
    let file = std::fs::File::open(path).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = e.path().unwrap().display().to_string();
            let mut data = String::new();
            let _ = e.read_to_string(&mut data);
            (name, data)
        })
        .collect()
}

#[test]
fn no_planted_secret_reaches_any_output_record_or_bundle() {
    let c = DemoCluster::start(Scenario::HealthyHa).unwrap();
    let sim = &c.apiserver().sim;
    // The tokens the server accepts (the others are refused: error paths).
    for (name, token) in [("marker-token", TOKEN), ("marker-token-file", TOKEN_FILE), ("marker-exec", EXEC_OK)] {
        sim.users.write().unwrap().push(User {
            name: name.into(),
            groups: vec![],
            token: Some(token.into()),
            rules: vec![Rule::resources(&["get", "list"], &["*"], &["*"]), Rule::urls(&["get"], &["*"])],
        });
    }
    let dir = tempfile::tempdir().unwrap();
    let admin_key = c.admin_key_pem();
    let key_line = admin_key.lines().nth(1).unwrap().to_string();
    let admin_cert = c.apiserver().admin_cert().cert_pem.clone();
    let kubeconfig = kubeconfig(dir.path(), &c.apiserver().lb_url(), c.apiserver().ca_pem(), &admin_cert, &admin_key);
    // A Secret in the cluster.
    let secret = dir.path().join("secret.json");
    std::fs::write(
        &secret,
        serde_json::json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "kube-system"},
                           "data": {"password": b64(SECRET_DATA)}})
        .to_string(),
    )
    .unwrap();
    assert!(c.kubectl(&["create", "--validate=false", "-f", secret.to_str().unwrap()]).status.success());

    let markers: Vec<&str> = vec![
        TOKEN,
        TOKEN_FILE,
        EXEC_OK,
        EXEC_FAIL,
        EXEC_BAD,
        BASIC,
        URL_PASSWORD,
        PROXY_PASSWORD,
        SECRET_DATA,
        &key_line,
    ];
    let env = vec![
        ("KUBECONFIG".to_string(), kubeconfig.display().to_string()),
        ("KUBECACHEDIR".to_string(), dir.path().join("cache").display().to_string()),
    ];
    let contexts = [
        "token",
        "token-file",
        "cert",
        "exec-ok",
        "exec-fail",
        "exec-bad",
        "exec-hang",
        "basic",
        "url-password",
        "proxied",
        "unreachable",
    ];
    // Every read command of every plugin, in every output format.
    let mut commands: Vec<Vec<&str>> = Vec::new();
    let bases: &[&[&str]] = &[
        &["cphealth", "--sample", "0", "-v"],
        &["webhookguard", "--sample", "0"],
        &["webhookguard", "probe"],
        &["apftop", "--once", "--interval", "200ms"],
        &["apftop", "config"],
        &["apftop", "explain", "--as", "system:serviceaccount:kube-system:job-controller"],
        &["etcdsnap", "members"],
    ];
    for base in bases {
        for format in ["table", "wide", "json", "yaml"] {
            let mut c = base.to_vec();
            c.extend(["-o", format]);
            commands.push(c);
        }
    }
    commands.push(vec!["cphealth", "rbac"]);
    // Every (context, command) run from one queue on many threads: most runs of the failing
    // contexts wait on a timeout or a refusal, and one thread per context would wait out each
    // of its runs in turn.
    cpkit_e2e::path_with_plugins();
    let runs: Vec<(&str, &Vec<&str>)> =
        contexts.iter().flat_map(|context| commands.iter().map(move |command| (*context, command))).collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..16)
            .map(|_| {
                let (runs, next, env, markers) = (&runs, &next, &env, &markers);
                scope.spawn(move || {
                    while let Some((context, command)) =
                        runs.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
                    {
                        let mut args = (*command).clone();
                        args.extend(["--context", context, "--request-timeout", "3s"]);
                        let out = kubectl(&args, env);
                        assert_ne!(out.status.code(), Some(101), "{context} {command:?} panicked: {}", describe(&out));
                        let what = format!("kubectl {} --context {context}", command.join(" "));
                        assert_clean(&what, &describe(&out), markers);
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
    });
    let runs = runs.len();
    // Snapshots through the cluster: the output and the record (which names the server).
    let saves = dir.path().join("saves");
    for context in ["cert", "url-password", "exec-fail"] {
        let out = kubectl(
            &[
                "etcdsnap",
                "save",
                "--dir",
                saves.to_str().unwrap(),
                "-o",
                "json",
                "--context",
                context,
                "--request-timeout",
                "5s",
            ],
            &env,
        );
        assert_clean(&format!("etcdsnap save --context {context}"), &describe(&out), &markers);
    }
    let records: Vec<_> = std::fs::read_dir(&saves).into_iter().flatten().flatten().map(|e| e.path()).collect();
    assert!(records.iter().any(|p| p.extension().is_some_and(|e| e == "json")), "{records:?}");
    for record in records.iter().filter(|p| p.extension().is_some_and(|e| e == "json")) {
        assert_clean(&record.display().to_string(), &std::fs::read_to_string(record).unwrap(), &markers);
    }
    // Every context at once, as a report.
    let out = kubectl(&["cphealth", "--all-contexts", "-o", "json", "--sample", "0", "--request-timeout", "3s"], &env);
    assert_clean("cphealth --all-contexts -o json", &describe(&out), &markers);
    // The hanging exec plugin was stopped with each run.
    let left = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .filter(|c| String::from_utf8_lossy(c).contains("6011"))
        .count();
    assert_eq!(left, 0, "the hanging exec plugin outlived the plugins");
    // The bundle, as every credential kind that authenticates.
    for context in ["token", "cert", "exec-ok"] {
        let path = dir.path().join(format!("{context}.tar.gz"));
        let out =
            kubectl(&["cphealth", "bundle", "--context", context, "-f", path.to_str().unwrap(), "--sample", "0"], &env);
        assert!(out.status.success(), "{}", describe(&out));
        assert_clean("bundle output", &describe(&out), &markers);
        for (name, data) in tar_entries(&path) {
            assert_clean(&format!("bundle {context}: {name}"), &data, &markers);
        }
    }
    // The Secret's value in etcd: a snapshot's status and its record.
    let etcd = c.etcd().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut client = etcd.client().await.unwrap();
        client.put("/registry/secrets/kube-system/db2", SECRET_DATA, None).await.unwrap();
    });
    let snap = dir.path().join("s.db");
    let mut args = vec!["save".to_string(), snap.display().to_string()];
    args.extend(cpkit_e2e::etcd_direct_flags(etcd));
    let out = plugin("etcdsnap", &args.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    assert!(out.status.success(), "{}", describe(&out));
    for format in ["table", "json", "yaml"] {
        let out = plugin("etcdsnap", &["status", snap.to_str().unwrap(), "-o", format], &[]);
        assert_clean(&format!("etcdsnap status -o {format}"), &describe(&out), &markers);
    }
    assert_clean("the snapshot's record", &std::fs::read_to_string(dir.path().join("s.db.json")).unwrap(), &markers);
    assert!(runs >= 300, "{runs} runs");
}
