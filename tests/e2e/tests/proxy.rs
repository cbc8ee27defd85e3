//! SREs behind a corporate proxy: the kubeconfig's `proxy-url` (with a password) and
//! `HTTPS_PROXY` reach the API server through an HTTP CONNECT proxy, the password never shows,
//! and a proxy that refuses the credentials is named in the error.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use cpkit_e2e::{describe, kubectl, text};
use testkit::{DemoCluster, Scenario};

const PASSWORD: &str = "proxy-pw-7c1e55";

/// A CONNECT proxy on 127.0.0.1 that tunnels to loopback addresses only and records each
/// request line with its Proxy-Authorization header. With `required`, other credentials get 407.
fn connect_proxy(required: Option<String>) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let (log, required) = (log.clone(), required.clone());
            std::thread::spawn(move || tunnel(client, &log, required.as_deref()));
        }
    });
    (port, seen)
}

fn tunnel(mut client: TcpStream, log: &Mutex<Vec<String>>, required: Option<&str>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match client.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let line = head.lines().next().unwrap_or("").to_string();
    let auth = head
        .lines()
        .find_map(|l| l.strip_prefix("Proxy-Authorization: ").or_else(|| l.strip_prefix("proxy-authorization: ")))
        .unwrap_or("")
        .to_string();
    log.lock().unwrap().push(format!("{line} | {auth}"));
    let target = line.split(' ').nth(1).unwrap_or("").to_string();
    if required.is_some_and(|r| r != auth) {
        let _ = client.write_all(
            b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"corp\"\r\nContent-Length: 0\r\n\r\n",
        );
        return;
    }
    // Loopback only: the test never dials anything else.
    if !target.starts_with("127.") {
        let _ = client.write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
        return;
    }
    let Ok(server) = TcpStream::connect(&target) else {
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
        return;
    };
    let _ = client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
    let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut c2, &mut s2);
        let _ = s2.shutdown(std::net::Shutdown::Write);
    });
    let (mut s, mut c) = (server, client);
    let _ = std::io::copy(&mut s, &mut c);
    let _ = c.shutdown(std::net::Shutdown::Write);
}

fn basic(user_pass: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(user_pass))
}

/// The scenario's kubeconfig with `proxy-url` set on every cluster.
fn with_proxy(c: &DemoCluster, dir: &std::path::Path, proxy_url: &str) -> Vec<(String, String)> {
    let mut doc: serde_json::Value = serde_yaml::from_str(&std::fs::read_to_string(&c.kubeconfig).unwrap()).unwrap();
    for cluster in doc["clusters"].as_array_mut().unwrap() {
        cluster["cluster"]["proxy-url"] = proxy_url.into();
    }
    let path = dir.join(format!("config-{}", proxy_url.len()));
    std::fs::write(&path, serde_yaml::to_string(&doc).unwrap()).unwrap();
    vec![
        ("KUBECONFIG".into(), path.display().to_string()),
        ("KUBECACHEDIR".into(), dir.join("cache").display().to_string()),
    ]
}

#[test]
fn the_api_server_is_reached_through_an_http_proxy() {
    let c = DemoCluster::start(Scenario::HealthyHa).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (port, seen) = connect_proxy(Some(basic(&format!("ops:{PASSWORD}"))));

    // proxy-url with credentials.
    let env = with_proxy(&c, dir.path(), &format!("http://ops:{PASSWORD}@127.0.0.1:{port}"));
    for command in [&["cphealth", "--sample", "0", "--skip", "etcd"][..], &["webhookguard"], &["apftop", "--once"]] {
        let out = kubectl(command, &env);
        assert!(out.status.code().is_some_and(|c| c <= 1), "{command:?}: {}", describe(&out));
        assert!(!describe(&out).contains(PASSWORD), "{command:?} shows the proxy password: {}", describe(&out));
    }
    let tunnels = seen.lock().unwrap().clone();
    assert!(!tunnels.is_empty(), "nothing went through the proxy");
    assert!(
        tunnels.iter().all(|t| t.starts_with("CONNECT 127.") && t.ends_with(&basic(&format!("ops:{PASSWORD}")))),
        "{tunnels:?}"
    );

    // Wrong credentials: the proxy is named, the password is not.
    let env = with_proxy(&c, dir.path(), &format!("http://ops:wrong-{PASSWORD}@127.0.0.1:{port}"));
    let out = kubectl(&["webhookguard", "--request-timeout=3s"], &env);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(format!("{stdout}{stderr}").contains("through the HTTP proxy"), "{}", describe(&out));
    assert!(format!("{stdout}{stderr}").contains("407"), "{}", describe(&out));
    assert!(!describe(&out).contains(PASSWORD), "{}", describe(&out));

    // HTTPS_PROXY, as kubectl reads it, when the kubeconfig names no proxy.
    let (open_port, open_seen) = connect_proxy(None);
    let mut env = vec![
        ("KUBECONFIG".to_string(), c.kubeconfig.display().to_string()),
        ("HTTPS_PROXY".to_string(), format!("http://127.0.0.1:{open_port}")),
        ("NO_PROXY".to_string(), String::new()),
        ("no_proxy".to_string(), String::new()),
    ];
    env.push(("KUBECACHEDIR".into(), dir.path().join("cache2").display().to_string()));
    let out = kubectl(&["webhookguard"], &env);
    assert!(out.status.code().is_some_and(|c| c <= 1), "{}", describe(&out));
    assert!(!open_seen.lock().unwrap().is_empty(), "HTTPS_PROXY was not used");
}
