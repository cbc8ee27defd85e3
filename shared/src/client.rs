//! A connection to one cluster, built from kubectl's flags: a `kube::Client` with retries off
//! (probes must see the server's real answer), a per-request timeout, and request helpers that
//! keep status, headers and body and turn failures into [`Error`]s that explain themselves.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request};
use http_body_util::BodyExt;
use kube::config::KubeConfigOptions;
use serde::de::DeserializeOwned;

use crate::access::Access;
use crate::cli::{KubeArgs, Plugin};
use crate::error::{Error, ErrorKind, Result, http_error, parse_retry_after, transport_cause, transport_error};
use crate::kubeconfig;

/// A non-streaming HTTP answer.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Time from sending the request to the end of the body.
    pub elapsed: Duration,
}

impl RawResponse {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// How a cluster connection was configured (for reports and for connecting to replicas).
#[derive(Debug, Clone)]
pub struct ClusterInfo {
    /// The kubeconfig context, or `in-cluster`.
    pub context: String,
    /// The server URL from the kubeconfig (often a load balancer).
    pub server: String,
    pub namespace: String,
    /// PEM of the kubeconfig user's client certificate, when it uses one (never the key).
    pub client_certificate_pem: Option<Vec<u8>>,
    pub user: Option<String>,
}

/// A connection to one cluster (or to one API server replica of it).
#[derive(Clone)]
pub struct Cluster {
    client: kube::Client,
    config: kube::Config,
    pub info: ClusterInfo,
    timeout: Option<Duration>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("info", &self.info).finish()
    }
}

impl Cluster {
    /// Connects using kubectl's flags and rules (see [`crate::kubeconfig`]); falls back to the
    /// in-cluster configuration when no kubeconfig exists.
    pub async fn connect(args: &KubeArgs, plugin: Plugin) -> Result<Cluster> {
        let loaded = kubeconfig::load(args.kubeconfig.as_deref())?;
        let (mut config, info) = match loaded {
            Some(loaded) => {
                let context = kubeconfig::check_names(
                    &loaded,
                    args.context.as_deref(),
                    args.cluster.as_deref(),
                    args.user.as_deref(),
                )?;
                let options = KubeConfigOptions {
                    context: args.context.clone(),
                    cluster: args.cluster.clone(),
                    user: args.user.clone(),
                };
                let mut kubeconfig = loaded.config;
                let credential = run_exec_plugin(&mut kubeconfig, &context, args).await?;
                let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &options).await.map_err(|e| {
                    Error::config(
                        format!("Cannot use context {context:?} of the kubeconfig"),
                        kubeconfig::error_chain(&e),
                        "Check the context's cluster and user entries (`kubectl config view --minify`).",
                    )
                })?;
                if let Some(c) = credential {
                    apply_credential(&mut config, c);
                }
                let client_certificate_pem = client_certificate_pem(&config);
                let info = ClusterInfo {
                    context,
                    server: display_url(&config.cluster_url),
                    namespace: config.default_namespace.clone(),
                    client_certificate_pem,
                    user: args.user.clone(),
                };
                (config, info)
            }
            None => {
                let config = kube::Config::incluster().map_err(|e| kubeconfig::no_configuration(&e.to_string()))?;
                let info = ClusterInfo {
                    context: "in-cluster".into(),
                    server: display_url(&config.cluster_url),
                    namespace: config.default_namespace.clone(),
                    client_certificate_pem: None,
                    user: None,
                };
                (config, info)
            }
        };
        apply_flags(&mut config, args, plugin);
        // Whatever this run prints, these never appear in it (see `redact::remember`).
        crate::redact::remember(secrets_of(&config));
        let mut info = info;
        info.namespace = config.default_namespace.clone();
        Cluster::from_config(config, info, args.timeout())
    }

    /// Builds the client. Retries are off: a health probe must see a 429 or 503 as it is.
    pub fn from_config(mut config: kube::Config, info: ClusterInfo, timeout: Option<Duration>) -> Result<Cluster> {
        config.default_retry = false;
        // No read timeout on the connection (hyper-timeout's): its timer also runs while a
        // pooled connection sits idle, and a new request's write does not reset it, so a request
        // sent on a connection idle for about that long failed with an i/o timeout at once.
        // Every request is bounded whole in `send`, every stream by its own timeout.
        config.read_timeout = None;
        let client = kube::Client::try_from(config.clone()).map_err(|e| {
            Error::config(
                "Cannot build a Kubernetes client from the kubeconfig",
                kubeconfig::error_chain(&e),
                "Check the certificate and key data of the kubeconfig's user and cluster.",
            )
        })?;
        Ok(Cluster { client, config, info, timeout })
    }

    /// The same credentials against another server address (an API server replica).
    pub fn for_server(&self, server_url: &str) -> Result<Cluster> {
        let mut config = self.config.clone();
        config.cluster_url = server_url
            .parse()
            .map_err(|_| Error::invalid_data(format!("Invalid server address {server_url:?}"), "not a URL"))?;
        let mut info = self.info.clone();
        info.server = server_url.trim_end_matches('/').to_string();
        Cluster::from_config(config, info, self.timeout)
    }

    pub fn kube(&self) -> &kube::Client {
        &self.client
    }

    pub fn config(&self) -> &kube::Config {
        &self.config
    }

    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    pub fn server(&self) -> &str {
        &self.info.server
    }

    /// The credentials of the kubeconfig user (token, password, client key, the passwords in
    /// the server and proxy URLs), for a [`crate::redact::Redactor`]: they must never reach
    /// output or bundles.
    pub fn secrets(&self) -> Vec<String> {
        secrets_of(&self.config)
    }

    /// Sends a request and reads the whole answer, whatever its status. Transport failures and
    /// timeouts become explained errors.
    pub async fn send(&self, request: Request<Vec<u8>>) -> Result<RawResponse> {
        let started = Instant::now();
        let fut = async {
            let response = self.client.send(request.map(kube::client::Body::from)).await?;
            let (parts, body) = response.into_parts();
            let bytes = body.collect().await?.to_bytes();
            Ok::<_, kube::Error>((parts, bytes))
        };
        let outcome = match self.timeout {
            Some(t) => tokio::time::timeout(t, fut).await.map_err(|_| {
                transport_error("the API server", self.server(), crate::error::TransportCause::Timeout, Some(t))
            })?,
            None => fut.await,
        };
        let (parts, body) = outcome.map_err(|e| self.classify(&e))?;
        Ok(RawResponse { status: parts.status.as_u16(), headers: parts.headers, body, elapsed: started.elapsed() })
    }

    /// Turns a kube error into an explained one.
    pub fn classify(&self, err: &kube::Error) -> Error {
        match err {
            kube::Error::Api(status) => {
                let body = serde_json::to_vec(status).unwrap_or_default();
                http_error(self.server(), "the request", status.code, &body, None, None)
            }
            kube::Error::Auth(e) => Error::new(
                ErrorKind::Unauthorized,
                "Cannot get credentials for the kubeconfig's user",
                kubeconfig::error_chain(e),
                "Check the user's exec plugin or token file (e.g. re-run your cloud CLI's login).",
            ),
            other => transport_error("the API server", self.server(), transport_cause(other), self.timeout),
        }
    }

    /// GET of a raw path (`/readyz?verbose`, `/metrics`, `/debug/...`): any status is returned.
    pub async fn get_raw(&self, path: &str) -> Result<RawResponse> {
        self.get_raw_accepting(path, None).await
    }

    async fn get_raw_accepting(&self, path: &str, accept: Option<&str>) -> Result<RawResponse> {
        let mut request = Request::get(path);
        if let Some(accept) = accept {
            request = request.header(http::header::ACCEPT, accept);
        }
        let request = request.body(Vec::new()).map_err(|e| bad_request(path, e))?;
        self.send(request).await
    }

    /// GET that must succeed; a non-2xx answer becomes an error naming `access`. A 429 with a
    /// short `Retry-After` is retried once (reads are idempotent).
    pub async fn get_ok(&self, path: &str, access: &Access) -> Result<RawResponse> {
        self.get_ok_accepting(path, None, access).await
    }

    /// [`Cluster::get_ok`] with an `Accept` header (the formats the caller reads, in order).
    pub async fn get_ok_accepting(&self, path: &str, accept: Option<&str>, access: &Access) -> Result<RawResponse> {
        let mut retried = false;
        loop {
            let response = self.get_raw_accepting(path, accept).await?;
            if response.is_success() {
                return Ok(response);
            }
            let retry_after = parse_retry_after(response.headers.get(http::header::RETRY_AFTER));
            if response.status == 429
                && !retried
                && let Some(wait) = retry_after
                && wait <= Duration::from_secs(3)
            {
                retried = true;
                tokio::time::sleep(wait).await;
                continue;
            }
            return Err(http_error(
                self.server(),
                &format!("GET {}", path.split('?').next().unwrap_or(path)),
                response.status,
                &response.body,
                retry_after,
                Some(access),
            ));
        }
    }

    /// GET and decode JSON.
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str, access: &Access) -> Result<T> {
        let response = self.get_ok(path, access).await?;
        decode_json(path, &response.body)
    }

    /// Sends a JSON body (POST/PUT/PATCH/DELETE) and decodes the answer.
    pub async fn send_json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
        access: &Access,
    ) -> Result<T> {
        let request = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(http::header::CONTENT_TYPE, content_type)
            .header(http::header::ACCEPT, "application/json")
            .body(body)
            .map_err(|e| bad_request(path, e))?;
        let response = self.send(request).await?;
        if !response.is_success() {
            return Err(http_error(
                self.server(),
                &format!("{method} {}", path.split('?').next().unwrap_or(path)),
                response.status,
                &response.body,
                parse_retry_after(response.headers.get(http::header::RETRY_AFTER)),
                Some(access),
            ));
        }
        decode_json(path, &response.body)
    }

    /// Lists a collection page by page (`limit`/`continue`), handing each item to `visit`, so
    /// memory stays constant however big the cluster is.
    pub async fn list_paged<T, F>(&self, path: &str, page_size: u32, access: &Access, mut visit: F) -> Result<()>
    where
        T: DeserializeOwned,
        F: FnMut(T),
    {
        let mut continue_token: Option<String> = None;
        loop {
            let sep = if path.contains('?') { '&' } else { '?' };
            let mut url = format!("{path}{sep}limit={page_size}");
            if let Some(token) = &continue_token {
                url.push_str("&continue=");
                url.push_str(&percent_encode(token));
            }
            let page: ListPage<T> = self.get_json(&url, access).await?;
            for item in page.items {
                visit(item);
            }
            match page.metadata.and_then(|m| m.continue_) {
                Some(token) if !token.is_empty() => continue_token = Some(token),
                _ => return Ok(()),
            }
        }
    }

    /// All items of a collection (for the small ones: control-plane pods, leases, webhooks).
    pub async fn list_all<T: DeserializeOwned>(&self, path: &str, access: &Access) -> Result<Vec<T>> {
        let mut items = Vec::new();
        self.list_paged(path, 500, access, |item| items.push(item)).await?;
        Ok(items)
    }
}

/// One page of a list answer.
#[derive(serde::Deserialize)]
pub(crate) struct ListPage<T> {
    #[serde(default = "Vec::new")]
    pub(crate) items: Vec<T>,
    metadata: Option<ListMetadata>,
}

#[derive(serde::Deserialize)]
struct ListMetadata {
    #[serde(rename = "continue")]
    continue_: Option<String>,
}

fn bad_request(path: &str, e: http::Error) -> Error {
    Error::usage(format!("Cannot build a request for {path:?}: {e}"), "")
}

pub fn decode_json<T: DeserializeOwned>(what: &str, body: &[u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| {
        let why = if body.trim_ascii_start().starts_with(b"<") {
            "an HTML page (text/html) came back instead of JSON: a captive portal, a proxy or a misrouted load balancer answered, not the API server".to_string()
        } else if e.is_eof() {
            format!("the JSON ends early after {} bytes ({e}): the answer was cut short", body.len())
        } else {
            format!("not the JSON expected: {e}")
        };
        Error::invalid_data(format!("Unexpected answer to {}", what.split('?').next().unwrap_or(what)), why)
    })
}

/// Percent-encodes a query value (continue tokens are base64 and may hold `=`, `+`, `/`).
pub fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The secrets a configuration carries.
fn secrets_of(config: &kube::Config) -> Vec<String> {
    use secrecy::ExposeSecret;
    let auth = &config.auth_info;
    let mut out = Vec::new();
    if let Some(t) = &auth.token {
        out.push(t.expose_secret().to_string());
    }
    if let Some(p) = &auth.password {
        out.push(p.expose_secret().to_string());
    }
    if let Some(k) = &auth.client_key_data {
        out.push(k.expose_secret().to_string());
    }
    if let Some(f) = &auth.token_file
        && let Ok(t) = crate::input::read_text(std::path::Path::new(f), 1 << 20)
    {
        out.push(t.trim().to_string());
    }
    for url in std::iter::once(&config.cluster_url).chain(config.proxy_url.as_ref()) {
        if let Some((user, password)) = userinfo(url) {
            out.push(password);
            out.push(format!("{user}:"));
        }
    }
    out
}

/// The `user:password` of a URL's authority, if it has one.
fn userinfo(url: &http::Uri) -> Option<(String, String)> {
    let authority = url.authority()?.as_str();
    let (info, _) = authority.rsplit_once('@')?;
    let (user, password) = info.split_once(':').unwrap_or((info, ""));
    Some((user.to_string(), password.to_string()))
}

/// A URL as shown to the user: without `user:password@` (an address to print, never a secret).
pub fn display_url(url: &http::Uri) -> String {
    let text = url.to_string();
    let shown = match url.authority().map(http::uri::Authority::as_str).and_then(|a| a.rsplit_once('@')) {
        Some((info, _)) => text.replacen(&format!("{info}@"), "", 1),
        None => text,
    };
    shown.trim_end_matches('/').to_string()
}

/// When the context's user has an exec credential plugin, runs it (bounded by the request
/// timeout, see [`crate::exec_credential`]) and takes it out of the kubeconfig, so that kube-rs
/// never runs it unbounded or quotes its output.
async fn run_exec_plugin(
    kubeconfig: &mut kube::config::Kubeconfig,
    context: &str,
    args: &KubeArgs,
) -> Result<Option<crate::exec_credential::Credential>> {
    let user_name = args.user.clone().or_else(|| {
        kubeconfig.contexts.iter().find(|c| c.name == context).and_then(|c| c.context.as_ref()?.user.clone())
    });
    let Some(user_name) = user_name else { return Ok(None) };
    let Some(named) = kubeconfig.auth_infos.iter_mut().find(|a| a.name == user_name) else { return Ok(None) };
    let Some(auth) = named.auth_info.as_mut() else { return Ok(None) };
    let Some(exec) = auth.exec.take() else { return Ok(None) };
    let timeout = args.timeout().unwrap_or(Duration::from_secs(30));
    crate::exec_credential::run(&exec, timeout).await.map(Some)
}

fn apply_credential(config: &mut kube::Config, c: crate::exec_credential::Credential) {
    use base64::Engine;
    if let Some(t) = c.token {
        config.auth_info.token = Some(t.into());
    }
    if let (Some(cert), Some(key)) = (c.client_certificate, c.client_key) {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
        config.auth_info.client_certificate_data = Some(b64(&cert));
        config.auth_info.client_key_data = Some(b64(&key).into());
    }
}

fn apply_flags(config: &mut kube::Config, args: &KubeArgs, plugin: Plugin) {
    if let Some(ns) = &args.namespace {
        config.default_namespace = ns.clone();
    }
    if let Some(user) = &args.as_user {
        config.auth_info.impersonate = Some(user.clone());
    }
    if !args.as_group.is_empty() {
        config.auth_info.impersonate_groups = Some(args.as_group.clone());
    }
    if args.insecure_skip_tls_verify {
        config.accept_invalid_certs = true;
        config.root_cert = None;
    }
    if let Some(name) = &args.tls_server_name {
        config.tls_server_name = Some(name.clone());
    }
    if let Some(t) = args.timeout() {
        config.connect_timeout = Some(t);
        config.write_timeout = Some(t);
    }
    if let Ok(value) = http::HeaderValue::from_str(&plugin.user_agent()) {
        config.headers.push((http::header::USER_AGENT, value));
    }
}

/// The user's client certificate (PEM) from the kube config, without the key.
fn client_certificate_pem(config: &kube::Config) -> Option<Vec<u8>> {
    use base64::Engine;
    let auth = &config.auth_info;
    if let Some(data) = &auth.client_certificate_data {
        return base64::engine::general_purpose::STANDARD.decode(data.trim()).ok();
    }
    auth.client_certificate.as_ref().and_then(|path| std::fs::read(path).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encodes_continue_tokens() {
        assert_eq!(percent_encode("eyJ2Ijo=+/x"), "eyJ2Ijo%3D%2B%2Fx");
    }

    /// A keep-alive HTTP/1.1 server on loopback that answers its first request at once and every
    /// later one after `delay`, on the same connection.
    async fn server_answering_later_requests_after(delay: Duration) -> std::net::SocketAddr {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let addr = listener.local_addr().expect("local address");
        tokio::spawn(async move {
            let Ok((mut socket, _)) = listener.accept().await else { return };
            let mut answered = 0;
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                buf.clear();
                if answered > 0 {
                    tokio::time::sleep(delay).await;
                }
                answered += 1;
                let answer = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok";
                if socket.write_all(answer).await.is_err() {
                    return;
                }
            }
        });
        addr
    }

    // The connection sits idle in the pool for most of the timeout; the next request on it takes
    // less than the timeout but ends after it has passed since the connection's last read. A
    // read timer that runs while idle failed that request.
    #[tokio::test]
    async fn a_request_on_a_connection_idle_for_most_of_the_timeout_succeeds() {
        let timeout = Duration::from_millis(1000);
        let addr = server_answering_later_requests_after(Duration::from_millis(400)).await;
        let mut config = kube::Config::new(format!("http://{addr}").parse().expect("a URL"));
        // As kube-rs and the kubectl flags set it before `from_config`.
        config.read_timeout = Some(timeout);
        let info = ClusterInfo {
            context: "test".into(),
            server: format!("http://{addr}"),
            namespace: "default".into(),
            client_certificate_pem: None,
            user: None,
        };
        let cluster = Cluster::from_config(config, info, Some(timeout)).expect("a client");
        let first = cluster.get_raw("/metrics").await.expect("the first request");
        assert_eq!(first.status, 200);
        tokio::time::sleep(Duration::from_millis(800)).await;
        let second = cluster.get_raw("/metrics").await.expect("the second request, 400 ms within a 1 s timeout");
        assert_eq!(second.status, 200);
        assert_eq!(&second.body[..], b"ok");
    }
}
