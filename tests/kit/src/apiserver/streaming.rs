//! `pods/exec` and `pods/portforward` over WebSocket, as the API server proxies them to the
//! kubelet: the channel protocol (`v5.channel.k8s.io` / `v4.channel.k8s.io`; one byte of channel
//! number per message, exit status as a JSON `Status` on channel 3).
//!
//! A command "runs in the container" by running on this machine with the container's view: the
//! image's binaries only (the kubeadm etcd image has `sh`, `etcd`, `etcdctl` and no `tar`, `cat`
//! or `etcdutl`), and the node's host paths (`/etc/kubernetes/...`, `/var/lib/etcd`) mapped to
//! the kit's node directories. Port-forwards to hostNetwork pods reach the node's loopback,
//! which is this machine's.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, frame::coding::CloseCode};

use super::Sim;
use super::http::{Query, Resp, status};
use super::registry::ResourceType;
use super::routes::ResourcePath;

/// The executables an image has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Image {
    /// registry.k8s.io/etcd 3.5.x: distroless plus a static bash as /bin/sh, etcd, etcdctl.
    Etcd35,
    /// registry.k8s.io/etcd 3.6.x: no shell at all.
    Etcd36,
    /// Other control-plane images (kube-apiserver, ...): distroless, the component only.
    Distroless,
    /// A general-purpose image (busybox-like).
    Shell,
}

impl Image {
    fn binaries(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Image::Etcd35 => &[("sh", "bash"), ("etcd", "etcd"), ("etcdctl", "etcdctl")],
            Image::Etcd36 => &[("etcd", "etcd"), ("etcdctl", "etcdctl")],
            Image::Distroless => &[],
            Image::Shell => &[("sh", "bash"), ("cat", "cat"), ("tar", "tar"), ("ls", "ls"), ("echo", "echo")],
        }
    }

    fn name(self) -> &'static str {
        match self {
            Image::Etcd35 => "etcd35",
            Image::Etcd36 => "etcd36",
            Image::Distroless => "distroless",
            Image::Shell => "shell",
        }
    }
}

/// What the kit knows of one pod's runtime.
#[derive(Debug, Clone)]
pub struct PodRuntime {
    pub image: Image,
    /// The node's file-system root for host paths (None: no host paths mounted).
    pub node_root: Option<PathBuf>,
    pub logs: String,
    /// False while the container is not running (exec is refused).
    pub running: bool,
    pub container: String,
    pub uid: String,
}

/// Pods' runtimes and the sandbox PATH directories per image.
pub struct ExecEnv {
    pub pods: RwLock<HashMap<(String, String), PodRuntime>>,
    sandbox: tempfile::TempDir,
}

impl ExecEnv {
    pub fn new() -> std::io::Result<ExecEnv> {
        let sandbox = tempfile::Builder::new().prefix("cpkit-images-").tempdir()?;
        for image in [Image::Etcd35, Image::Etcd36, Image::Distroless, Image::Shell] {
            let bin = sandbox.path().join(image.name()).join("bin");
            std::fs::create_dir_all(&bin)?;
            for (name, host) in image.binaries() {
                if let Ok(target) = which::which(host) {
                    std::os::unix::fs::symlink(target, bin.join(name))?;
                }
            }
        }
        Ok(ExecEnv { pods: RwLock::new(HashMap::new()), sandbox })
    }

    /// Puts `target` in `image` as `name` (another etcd release's etcd and etcdctl, say).
    pub fn provide(&self, image: Image, name: &str, target: &std::path::Path) -> std::io::Result<()> {
        let link = self.bin_dir(image).join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(target, link)
    }

    pub fn add_pod(&self, namespace: &str, name: &str, runtime: PodRuntime) {
        self.pods.write().expect("pods lock").insert((namespace.into(), name.into()), runtime);
    }

    pub fn pod(&self, namespace: &str, name: &str) -> Option<PodRuntime> {
        self.pods.read().expect("pods lock").get(&(namespace.to_string(), name.to_string())).cloned()
    }

    fn bin_dir(&self, image: Image) -> PathBuf {
        self.sandbox.path().join(image.name()).join("bin")
    }

    /// The container's logs, last `tail` lines.
    pub fn logs(&self, namespace: &str, name: &str, tail: Option<usize>) -> String {
        let text = self.pod(namespace, name).map(|p| p.logs).unwrap_or_default();
        match tail {
            Some(n) => {
                let lines: Vec<&str> = text.lines().collect();
                let mut out = lines[lines.len().saturating_sub(n)..].join("\n");
                if !out.is_empty() {
                    out.push('\n');
                }
                out
            }
            None => text,
        }
    }
}

const HOST_PREFIXES: [&str; 3] = ["/etc/kubernetes/", "/var/lib/etcd", "/var/lib/minikube/"];

/// Rewrites host paths in `text` to the node's directory (at path starts only).
pub fn map_host_paths(text: &str, node_root: &Path) -> String {
    let root = node_root.display().to_string();
    let mut out = String::with_capacity(text.len() + 64);
    let mut i = 0;
    let bytes = text.as_bytes();
    while i < text.len() {
        let at_start =
            i == 0 || matches!(bytes[i - 1], b' ' | b'=' | b'"' | b'\'' | b'(' | b',' | b':' | b'<' | b'\t' | b'\n');
        if at_start && let Some(prefix) = HOST_PREFIXES.iter().find(|p| text[i..].starts_with(*p)) {
            out.push_str(&root);
            out.push_str(prefix);
            i += prefix.len();
            continue;
        }
        let ch = text[i..].chars().next().expect("in bounds");
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

fn choose_protocol(req: &Request<Incoming>, supported: &[&str]) -> Option<String> {
    let offered: Vec<String> = req
        .headers()
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|p| p.trim().to_string()))
        .collect();
    supported.iter().find(|s| offered.iter().any(|o| o == *s)).map(|s| s.to_string())
}

fn upgrade_response(req: &Request<Incoming>, protocol: &str) -> Option<Resp> {
    let key = req.headers().get("sec-websocket-key")?;
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    Response::builder()
        .status(101)
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Accept", accept)
        .header("Sec-WebSocket-Protocol", protocol)
        .body(Full::new(Bytes::new()))
        .ok()
}

fn is_websocket(req: &Request<Incoming>) -> bool {
    req.headers().get("upgrade").and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Entry point for `pods/<name>/exec|portforward|attach`.
pub async fn handle(
    sim: Arc<Sim>,
    rt: &ResourceType,
    rp: &ResourcePath,
    query: &Query,
    mut req: Request<Incoming>,
) -> Resp {
    let pod_obj = sim.store.read().expect("store lock").get(rt, &rp.namespace, &rp.name);
    let Some(pod_obj) = pod_obj else {
        return status(
            404,
            "NotFound",
            &format!("pods \"{}\" not found", rp.name),
            Some(json!({"name": rp.name, "kind": "pods"})),
        );
    };
    if !is_websocket(&req) {
        return status(400, "BadRequest", "Upgrade request required", None);
    }
    if rp.subresource == "attach" {
        return status(400, "BadRequest", "attach is not supported by the simulated API server", None);
    }
    let runtime = sim.exec.pod(&rp.namespace, &rp.name);
    let Some(runtime) = runtime else {
        return status(400, "BadRequest", &format!("pod {} does not have a host assigned", rp.name), None);
    };
    if pod_obj["status"]["phase"] != "Running" || !runtime.running {
        return status(
            400,
            "BadRequest",
            &format!("unable to upgrade connection: container not found (\"{}\")", runtime.container),
            None,
        );
    }
    if rp.subresource == "portforward" {
        let ports: Vec<u16> = query
            .all("ports")
            .iter()
            .flat_map(|p| p.split(',').map(str::to_string).collect::<Vec<_>>())
            .filter_map(|p| p.trim().parse().ok())
            .collect();
        if ports.is_empty() {
            return status(400, "BadRequest", "query parameter \"port\" is required", None);
        }
        // The kubelet's WebSocket port-forward speaks v4 (no v5 close signals).
        let Some(protocol) = choose_protocol(&req, &["v4.channel.k8s.io"]) else {
            return status(
                400,
                "BadRequest",
                "no supported WebSocket subprotocol offered (want v4.channel.k8s.io)",
                None,
            );
        };
        let Some(resp) = upgrade_response(&req, &protocol) else {
            return status(400, "BadRequest", "missing Sec-WebSocket-Key", None);
        };
        let upgrade = hyper::upgrade::on(&mut req);
        let uid = runtime.uid.clone();
        tokio::spawn(async move {
            if let Ok(upgraded) = upgrade.await {
                let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
                portforward_session(ws, ports, uid).await;
            }
        });
        return resp;
    }
    let command: Vec<String> = query.all("command");
    if command.is_empty() {
        return status(400, "BadRequest", "you must specify at least 1 command", None);
    }
    let Some(protocol) = choose_protocol(&req, &["v5.channel.k8s.io", "v4.channel.k8s.io"]) else {
        return status(
            400,
            "BadRequest",
            "no supported WebSocket subprotocol offered (want v5.channel.k8s.io or v4.channel.k8s.io)",
            None,
        );
    };
    let Some(resp) = upgrade_response(&req, &protocol) else {
        return status(400, "BadRequest", "missing Sec-WebSocket-Key", None);
    };
    let want_stdin = matches!(query.get("stdin"), Some("true") | Some("1"));
    let bin_dir = sim.exec.bin_dir(runtime.image);
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        if let Ok(upgraded) = upgrade.await {
            let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
            exec_session(ws, command, runtime, bin_dir, want_stdin, protocol == "v5.channel.k8s.io").await;
        }
    });
    resp
}

fn status_message(code: i32, command: &[String]) -> String {
    if code == 0 {
        return json!({"metadata": {}, "status": "Success"}).to_string();
    }
    json!({
        "metadata": {}, "status": "Failure",
        "message": format!("command terminated with non-zero exit code: error executing command [{}], exit code {code}", command.join(" ")),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]}
    })
    .to_string()
}

/// A normal closure (1000): client-go treats anything else as an error.
fn normal_close() -> Message {
    Message::Close(Some(CloseFrame { code: CloseCode::Normal, reason: "".into() }))
}

fn frame(channel: u8, data: &[u8]) -> Message {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(channel);
    v.extend_from_slice(data);
    Message::Binary(v.into())
}

async fn exec_session<S>(
    ws: WebSocketStream<S>,
    command: Vec<String>,
    runtime: PodRuntime,
    bin_dir: PathBuf,
    want_stdin: bool,
    v5: bool,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut source) = ws.split();
    let program = Path::new(&command[0]).file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    let resolved = bin_dir.join(&program);
    if !resolved.exists() {
        let failure = json!({
            "metadata": {}, "status": "Failure",
            "message": format!("Internal error occurred: error executing command in container: failed to exec in container: failed to start exec \"4f2d\": OCI runtime exec failed: exec failed: unable to start container process: exec: \"{}\": executable file not found in $PATH: unknown", command[0]),
            "reason": "InternalError", "code": 500
        });
        let _ = sink.send(frame(3, failure.to_string().as_bytes())).await;
        let _ = sink.send(normal_close()).await;
        let _ = sink.close().await;
        return;
    }
    let args: Vec<String> = command[1..]
        .iter()
        .map(|a| match &runtime.node_root {
            Some(root) => map_host_paths(a, root),
            None => a.clone(),
        })
        .collect();
    let mut cmd = tokio::process::Command::new(&resolved);
    cmd.args(&args)
        .env_clear()
        .env("PATH", &bin_dir)
        .env("HOME", "/root")
        .current_dir(runtime.node_root.clone().unwrap_or_else(|| PathBuf::from("/")))
        .stdin(if want_stdin { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // bash started as `sh` behaves like the image's /bin/sh.
    if program == "sh" {
        cmd.arg0("sh");
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let failure = json!({"metadata": {}, "status": "Failure", "message": format!("failed to start: {e}"), "reason": "InternalError", "code": 500});
            let _ = sink.send(frame(3, failure.to_string().as_bytes())).await;
            let _ = sink.send(normal_close()).await;
            let _ = sink.close().await;
            return;
        }
    };
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let mut stdin = child.stdin.take();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Message>(64);
    let out_tx = tx.clone();
    let out_task = tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        while let Ok(n) = stdout.read(&mut buf).await {
            if n == 0 || out_tx.send(frame(1, &buf[..n])).await.is_err() {
                break;
            }
        }
    });
    let err_tx = tx.clone();
    let err_task = tokio::spawn(async move {
        let mut buf = vec![0u8; 8 * 1024];
        while let Ok(n) = stderr.read(&mut buf).await {
            if n == 0 || err_tx.send(frame(2, &buf[..n])).await.is_err() {
                break;
            }
        }
    });
    drop(tx);
    let writer = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            if sink.send(m).await.is_err() {
                break;
            }
        }
        sink
    });
    let reader = tokio::spawn(async move {
        while let Some(Ok(msg)) = source.next().await {
            match msg {
                Message::Binary(data) if !data.is_empty() => match data[0] {
                    0 => {
                        if let Some(s) = stdin.as_mut()
                            && s.write_all(&data[1..]).await.is_err()
                        {
                            stdin = None;
                        }
                    }
                    255 if v5 && data.get(1) == Some(&0) => stdin = None,
                    _ => {}
                },
                Message::Close(_) => break,
                _ => {}
            }
        }
    });
    let exit = child.wait().await.ok().and_then(|s| s.code()).unwrap_or(137);
    let _ = out_task.await;
    let _ = err_task.await;
    if let Ok(mut sink) = writer.await {
        let _ = sink.send(frame(3, status_message(exit, &command).as_bytes())).await;
        let _ = sink.send(normal_close()).await;
        let _ = sink.close().await;
    }
    reader.abort();
}

async fn portforward_session<S>(ws: WebSocketStream<S>, ports: Vec<u16>, uid: String)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut source) = ws.split();
    // Announce every port on its data and error channel (2 bytes, little-endian).
    for (i, port) in ports.iter().enumerate() {
        let le = port.to_le_bytes();
        if sink.send(frame((2 * i) as u8, &le)).await.is_err()
            || sink.send(frame((2 * i + 1) as u8, &le)).await.is_err()
        {
            return;
        }
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Message>(64);
    let mut writers: HashMap<u8, tokio::net::tcp::OwnedWriteHalf> = HashMap::new();
    for (i, port) in ports.iter().enumerate() {
        let data_ch = (2 * i) as u8;
        // hostNetwork pods (etcd): the pod's localhost is the node's, i.e. this machine's loopback.
        match tokio::net::TcpStream::connect(("127.0.0.1", *port)).await {
            Ok(stream) => {
                let (mut r, w) = stream.into_split();
                writers.insert(data_ch, w);
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 32 * 1024];
                    loop {
                        match r.read(&mut buf).await {
                            Ok(0) | Err(_) => {
                                let _ = tx.send(normal_close()).await;
                                break;
                            }
                            Ok(n) => {
                                if tx.send(frame(data_ch, &buf[..n])).await.is_err() {
                                    break;
                                }
                            }
                        }
                    }
                });
            }
            Err(e) => {
                let msg = format!(
                    "error forwarding port {port} to pod {uid}, uid : failed to execute portforward in network namespace \"host\": failed to connect to localhost:{port} inside namespace \"{uid}\", IPv4: dial tcp4 127.0.0.1:{port}: connect: {} ",
                    if e.kind() == std::io::ErrorKind::ConnectionRefused {
                        "connection refused".to_string()
                    } else {
                        e.to_string()
                    }
                );
                let _ = tx.send(frame(data_ch + 1, msg.as_bytes())).await;
                let _ = tx.send(normal_close()).await;
            }
        }
    }
    drop(tx);
    let writer = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            let close = matches!(m, Message::Close(_));
            if sink.send(m).await.is_err() || close {
                break;
            }
        }
        let _ = sink.send(normal_close()).await;
        let _ = sink.close().await;
    });
    let mut seen_first: HashMap<u8, bool> = HashMap::new();
    while let Some(Ok(msg)) = source.next().await {
        match msg {
            Message::Binary(data) if !data.is_empty() => {
                let ch = data[0];
                // Clients may repeat the port header as their first frame on a channel.
                let first = !seen_first.contains_key(&ch);
                seen_first.insert(ch, true);
                let payload = &data[1..];
                if first && payload.len() == 2 && ports.iter().any(|p| p.to_le_bytes() == payload[..2]) {
                    continue;
                }
                if let Some(w) = writers.get_mut(&ch)
                    && w.write_all(payload).await.is_err()
                {
                    break;
                }
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
    for (_, mut w) in writers {
        let _ = w.shutdown().await;
    }
    writer.abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_host_paths_at_path_starts() {
        let root = Path::new("/tmp/kit/nodes/cp1");
        assert_eq!(
            map_host_paths("--cacert=/etc/kubernetes/pki/etcd/ca.crt", root),
            "--cacert=/tmp/kit/nodes/cp1/etc/kubernetes/pki/etcd/ca.crt"
        );
        assert_eq!(
            map_host_paths("echo \"$(</var/lib/etcd/x)\"", root),
            "echo \"$(</tmp/kit/nodes/cp1/var/lib/etcd/x)\""
        );
        assert_eq!(map_host_paths("/opt/etc/kubernetes/x", root), "/opt/etc/kubernetes/x");
    }
}
