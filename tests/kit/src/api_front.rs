//! An HTTPS front for an API server of either world that injects the faults a client must
//! survive: connections reset before or during the answer, answers that never come or trickle,
//! error statuses (401, 403, 404, 409, 429 with Retry-After, 500, 503), truncated or malformed
//! JSON, an HTML page instead of JSON, and expired or foreign-CA serving certificates. Requests
//! no rule matches are forwarded, as the admin, to the real server (upgrades such as exec and
//! port-forward included), so a fault can hit one path while everything else works.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::pki::{Ca, KeyedCert, Validity};

/// What the front does to a request a rule matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Closes the connection with a reset as soon as the request is read.
    Reset,
    /// Forwards, then sends the head and half the body, and resets.
    ResetMidBody,
    /// Reads the request and never answers.
    NeverAnswer,
    /// Forwards, then sends the body at this many bytes per second.
    SlowBody(u64),
    /// Answers this status with a `Status` body (and `Retry-After` when given).
    Status { code: u16, retry_after: Option<u32> },
    /// Forwards, then sends the first half of the body (with a matching Content-Length).
    TruncatedJson,
    /// Answers 200 with a JSON content type and a body that is not JSON.
    MalformedJson,
    /// Answers 200 with an HTML page (a captive portal, a misrouted ingress).
    WrongContentType,
}

/// A fault for the requests whose method (any, when None) and path prefix match.
#[derive(Debug, Clone)]
pub struct Rule {
    pub method: Option<String>,
    pub path_prefix: String,
    pub fault: Fault,
}

impl Rule {
    /// Every request.
    pub fn all(fault: Fault) -> Rule {
        Rule { method: None, path_prefix: "/".into(), fault }
    }

    /// Requests whose path starts with `prefix`.
    pub fn path(prefix: &str, fault: Fault) -> Rule {
        Rule { method: None, path_prefix: prefix.into(), fault }
    }

    /// `method` requests whose path starts with `prefix`.
    pub fn method(method: &str, prefix: &str, fault: Fault) -> Rule {
        Rule { method: Some(method.into()), path_prefix: prefix.into(), fault }
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        self.method.as_deref().is_none_or(|m| m.eq_ignore_ascii_case(method)) && path.starts_with(&self.path_prefix)
    }
}

/// The certificate the front serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// Signed by the CA the front's kubeconfig trusts.
    Trusted,
    /// Signed by that CA, expired three days ago.
    Expired,
    /// Signed by another CA.
    ForeignCa,
}

/// Where the front forwards to: the API server and the admin's credentials.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// `https://127.0.0.1:<port>`.
    pub url: String,
    pub ca_pem: String,
    pub admin: KeyedCert,
}

pub struct ApiFront {
    pub addr: SocketAddr,
    /// The CA the front's kubeconfig trusts.
    pub ca: Ca,
    rules: Arc<Mutex<Vec<Rule>>>,
    seen: Arc<Mutex<Vec<String>>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for ApiFront {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiFront").field("addr", &self.addr).finish_non_exhaustive()
    }
}

fn io_err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

struct Shared {
    rules: Arc<Mutex<Vec<Rule>>>,
    seen: Arc<Mutex<Vec<String>>>,
    upstream_addr: String,
    upstream_tls: tokio_rustls::TlsConnector,
}

impl ApiFront {
    /// Starts a front on 127.0.0.1 for `upstream`, serving `identity`.
    pub fn start(upstream: Upstream, identity: Identity) -> std::io::Result<ApiFront> {
        let ca = Ca::new("cpkit-front-ca");
        let spec = crate::pki::server_spec("cpkit-front", &[], &[]);
        let serving = match identity {
            Identity::Trusted => ca.issue(&spec, Validity::days(365)),
            Identity::Expired => ca.issue(&spec, Validity::expiring_in(400, jiff::SignedDuration::from_hours(-72))),
            Identity::ForeignCa => Ca::new("someone-elses-ca").issue(&spec, Validity::days(365)),
        };
        let server_config = server_tls(&serving)?;
        let upstream_tls = client_tls(&upstream)?;
        let uri: http::Uri = upstream.url.parse().map_err(io_err)?;
        let upstream_addr = format!("{}:{}", uri.host().unwrap_or("127.0.0.1"), uri.port_u16().unwrap_or(443));
        let rules = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let shared = Arc::new(Shared {
            rules: rules.clone(),
            seen: seen.clone(),
            upstream_addr,
            upstream_tls: tokio_rustls::TlsConnector::from(upstream_tls),
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("api-front")
            .enable_all()
            .build()?;
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let acceptor = tokio_rustls::TlsAcceptor::from(server_config);
        runtime.spawn(async move {
            let Ok(listener) = TcpListener::from_std(std_listener) else { return };
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, shared) = (acceptor.clone(), shared.clone());
                tokio::spawn(async move {
                    let raw = tcp.into_std().ok();
                    let Some(raw) = raw else { return };
                    let for_reset = raw.try_clone().ok();
                    let Ok(tcp) = TcpStream::from_std(raw) else { return };
                    if let Ok(tls) = acceptor.accept(tcp).await {
                        serve(tls, for_reset, &shared).await;
                    }
                });
            }
        });
        Ok(ApiFront { addr, ca, rules, seen, runtime: Some(runtime) })
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Replaces the rules (the first match wins; no match forwards).
    pub fn set_rules(&self, rules: Vec<Rule>) {
        *self.rules.lock().expect("rules lock") = rules;
    }

    /// `METHOD /path?query` of every request received, oldest first.
    pub fn requests(&self) -> Vec<String> {
        self.seen.lock().expect("seen lock").clone()
    }

    /// Writes a kubeconfig (context `front`) that trusts the front's CA and sends a token the
    /// front ignores (it forwards as the admin).
    pub fn write_kubeconfig(&self, dir: &Path) -> std::io::Result<PathBuf> {
        use base64::Engine;
        let ca = base64::engine::general_purpose::STANDARD.encode(&self.ca.cert.cert_pem);
        let doc = format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: front\nclusters:\n- name: front\n  cluster:\n    server: {}\n    certificate-authority-data: {ca}\nusers:\n- name: front\n  user:\n    token: front-token\ncontexts:\n- name: front\n  context: {{cluster: front, user: front}}\n",
            self.url()
        );
        std::fs::create_dir_all(dir)?;
        let path = dir.join("front.kubeconfig");
        std::fs::write(&path, doc)?;
        Ok(path)
    }
}

impl Drop for ApiFront {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

fn server_tls(serving: &KeyedCert) -> std::io::Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key = PrivateKeyDer::from_pem_slice(serving.key_pem.as_bytes()).map_err(io_err)?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io_err)?
        .with_no_client_auth()
        .with_single_cert(vec![CertificateDer::from(serving.cert_der.clone())], key)
        .map_err(io_err)?;
    // HTTP/1.1 only: one request at a time per connection keeps the faults per request.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn client_tls(upstream: &Upstream) -> std::io::Result<Arc<rustls::ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for der in CertificateDer::pem_slice_iter(upstream.ca_pem.as_bytes()).flatten() {
        roots.add(der).map_err(io_err)?;
    }
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(upstream.admin.cert_pem.as_bytes()).flatten().collect();
    let key = PrivateKeyDer::from_pem_slice(upstream.admin.key_pem.as_bytes()).map_err(io_err)?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io_err)?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(io_err)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A parsed request or response head and the bytes read past it.
struct Head {
    first_line: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Reads up to the blank line ending a head; `buf` keeps what came after it.
async fn read_head<R: AsyncRead + Unpin>(r: &mut R, buf: &mut Vec<u8>) -> Option<Head> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let text = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.drain(..end + 4);
            let mut lines = text.split("\r\n");
            let first_line = lines.next()?.to_string();
            let headers = lines
                .filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_string(), v.trim().to_string())))
                .collect();
            return Some(Head { first_line, headers });
        }
        if buf.len() > 1 << 20 {
            return None;
        }
        let mut chunk = [0u8; 16 * 1024];
        let n = r.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Reads a body of `len` bytes, starting with what `buf` already holds.
async fn read_exact_body<R: AsyncRead + Unpin>(r: &mut R, buf: &mut Vec<u8>, len: usize) -> Option<Vec<u8>> {
    while buf.len() < len {
        let mut chunk = [0u8; 16 * 1024];
        let n = r.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(buf.drain(..len).collect())
}

/// Decodes a chunked body (trailers ignored).
fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16).unwrap_or(0);
        data = &data[line_end + 2..];
        if size == 0 || data.len() < size {
            break;
        }
        out.extend_from_slice(&data[..size]);
        data = data.get(size + 2..).unwrap_or(&[]);
    }
    out
}

fn status_text(code: u16) -> &'static str {
    match code {
        200 => "OK",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// The `Status` body the API server sends with an error code.
fn status_body(code: u16, method: &str, path: &str) -> String {
    let (reason, message) = match code {
        401 => ("Unauthorized", "Unauthorized".to_string()),
        403 => (
            "Forbidden",
            format!("{path} is forbidden: User \"front\" cannot {} path \"{path}\"", method.to_lowercase()),
        ),
        404 => ("NotFound", "the server could not find the requested resource".to_string()),
        409 => (
            "Conflict",
            "Operation cannot be fulfilled: the object has been modified; please apply your changes to the latest version and try again"
                .to_string(),
        ),
        429 => ("TooManyRequests", "Too many requests, please try again later.".to_string()),
        503 => ("ServiceUnavailable", "the server is currently unable to handle the request".to_string()),
        _ => ("InternalError", "Internal error occurred: injected by the test front".to_string()),
    };
    serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                       "message": message, "reason": reason, "code": code})
    .to_string()
}

fn response(code: u16, content_type: &str, extra: &[(String, String)], body_len: usize) -> Vec<u8> {
    let mut head = format!("HTTP/1.1 {code} {}\r\nContent-Type: {content_type}\r\n", status_text(code));
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {body_len}\r\n\r\n"));
    head.into_bytes()
}

/// Ends the connection with a TCP reset (SO_LINGER 0).
fn reset(raw: &Option<std::net::TcpStream>) {
    if let Some(s) = raw {
        let linger = libc::linger { l_onoff: 1, l_linger: 0 };
        use std::os::fd::AsRawFd;
        // SAFETY: setting a socket option on a descriptor we own, with a valid struct.
        unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                &linger as *const libc::linger as *const libc::c_void,
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            );
        }
        let _ = s.shutdown(std::net::Shutdown::Both);
    }
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(mut client: S, raw: Option<std::net::TcpStream>, shared: &Shared) {
    let mut buf = Vec::new();
    loop {
        let Some(head) = read_head(&mut client, &mut buf).await else { return };
        let mut parts = head.first_line.split(' ');
        let method = parts.next().unwrap_or("GET").to_string();
        let target = parts.next().unwrap_or("/").to_string();
        let path = target.split('?').next().unwrap_or("/").to_string();
        let len = head.header("content-length").and_then(|v| v.parse::<usize>().ok()).unwrap_or(0);
        let Some(body) = read_exact_body(&mut client, &mut buf, len).await else { return };
        shared.seen.lock().expect("seen lock").push(format!("{method} {target}"));
        let fault = shared
            .rules
            .lock()
            .expect("rules lock")
            .iter()
            .find(|r| r.matches(&method, &path))
            .map(|r| r.fault.clone());
        match fault {
            Some(Fault::Reset) => return reset(&raw),
            Some(Fault::NeverAnswer) => {
                // Holds the connection until the client gives up.
                let mut sink = [0u8; 1024];
                while matches!(client.read(&mut sink).await, Ok(n) if n > 0) {}
                return;
            }
            Some(Fault::Status { code, retry_after }) => {
                let body = status_body(code, &method, &path);
                let extra: Vec<(String, String)> =
                    retry_after.map(|s| ("Retry-After".to_string(), s.to_string())).into_iter().collect();
                let mut out = response(code, "application/json", &extra, body.len());
                out.extend_from_slice(body.as_bytes());
                if client.write_all(&out).await.is_err() {
                    return;
                }
                continue;
            }
            Some(Fault::MalformedJson) => {
                let body = b"{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"items\":[{\"metadata\":";
                let mut out = response(200, "application/json", &[], body.len());
                out.extend_from_slice(body);
                if client.write_all(&out).await.is_err() {
                    return;
                }
                continue;
            }
            Some(Fault::WrongContentType) => {
                let body = b"<html><head><title>Sign in to the corporate network</title></head><body>Please log in.</body></html>";
                let mut out = response(200, "text/html; charset=utf-8", &[], body.len());
                out.extend_from_slice(body);
                if client.write_all(&out).await.is_err() {
                    return;
                }
                continue;
            }
            _ => {}
        }
        // Forwarded: one upstream connection per request.
        let Ok(tcp) = TcpStream::connect(&shared.upstream_addr).await else { return reset(&raw) };
        let Ok(name) = ServerName::try_from("127.0.0.1") else { return };
        let Ok(mut up) = shared.upstream_tls.connect(name.to_owned(), tcp).await else { return reset(&raw) };
        let upgrade = head.header("upgrade").is_some();
        let mut request = format!("{}\r\n", head.first_line);
        for (k, v) in &head.headers {
            let skip = ["authorization", "host", "accept-encoding", "content-length"];
            let hop = !upgrade && k.eq_ignore_ascii_case("connection");
            if !skip.iter().any(|s| k.eq_ignore_ascii_case(s)) && !hop {
                request.push_str(&format!("{k}: {v}\r\n"));
            }
        }
        request.push_str(&format!("Host: {}\r\nAccept-Encoding: identity\r\n", shared.upstream_addr));
        if !upgrade {
            request.push_str("Connection: close\r\n");
        }
        if len > 0 || method == "POST" || method == "PUT" || method == "PATCH" {
            request.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        request.push_str("\r\n");
        if up.write_all(request.as_bytes()).await.is_err() || up.write_all(&body).await.is_err() {
            return;
        }
        if upgrade {
            // exec, attach, port-forward: both directions as they come.
            if !buf.is_empty() && up.write_all(&buf).await.is_err() {
                return;
            }
            let _ = tokio::io::copy_bidirectional(&mut client, &mut up).await;
            return;
        }
        let mut answer = Vec::new();
        if up.read_to_end(&mut answer).await.is_err() && answer.is_empty() {
            return reset(&raw);
        }
        let mut rest = answer;
        let Some(resp_head) = read_head(&mut &b""[..], &mut rest).await else { return reset(&raw) };
        let body = if resp_head.header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            dechunk(&rest)
        } else {
            rest
        };
        let code: u16 = resp_head.first_line.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(502);
        let kept: Vec<(String, String)> = resp_head
            .headers
            .iter()
            .filter(|(k, _)| {
                !["content-length", "transfer-encoding", "connection", "content-type"]
                    .iter()
                    .any(|s| k.eq_ignore_ascii_case(s))
            })
            .cloned()
            .collect();
        let content_type = resp_head.header("content-type").unwrap_or("application/json").to_string();
        let (sent, announced) = match &fault {
            Some(Fault::TruncatedJson) => {
                // Cut mid-line, as a broken transfer does: a cut that happened to fall just after
                // a newline would hand over whole lines of text, which nothing can tell from an end.
                let mut cut = body.len() / 2;
                while cut > 1 && body[cut - 1] == b'\n' {
                    cut -= 1;
                }
                (body[..cut].to_vec(), cut)
            }
            _ => (body.clone(), body.len()),
        };
        let head_bytes = response(code, &content_type, &kept, announced);
        if client.write_all(&head_bytes).await.is_err() {
            return;
        }
        match &fault {
            Some(Fault::ResetMidBody) => {
                let _ = client.write_all(&sent[..sent.len() / 2]).await;
                let _ = client.flush().await;
                tokio::time::sleep(Duration::from_millis(50)).await;
                return reset(&raw);
            }
            Some(Fault::SlowBody(rate)) => {
                let step = (*rate as usize / 10).max(1);
                for piece in sent.chunks(step) {
                    if client.write_all(piece).await.is_err() || client.flush().await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            _ => {
                if client.write_all(&sent).await.is_err() {
                    return;
                }
            }
        }
        if client.flush().await.is_err() {
            return;
        }
    }
}
