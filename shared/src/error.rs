//! One error type for the suite: what failed, why it likely failed, and what to do, mapped to an
//! exit code. Transport and HTTP failures are classified into the symptoms SREs know from the
//! runbooks (connection refused, i/o timeout, x509 unknown authority or expired, 401, 403, 429, 5xx).

use std::time::Duration;

use serde::Serialize;

use crate::exit::{EXIT_CRITICAL, EXIT_INTERRUPTED, EXIT_UNKNOWN, EXIT_USAGE};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The kind of failure, used for exit codes and by callers that react to one kind (a 403 turns a
/// check into SKIPPED, a 404 into "not served").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    Usage,
    Config,
    ConnectionRefused,
    ConnectionReset,
    Dns,
    /// The HTTP proxy on the way refused the tunnel (407, 403, 502).
    Proxy,
    Timeout,
    TlsUnknownAuthority,
    TlsExpired,
    TlsNotYetValid,
    TlsBadName,
    Tls,
    Unauthorized,
    Forbidden,
    NotFound,
    NotServed,
    Conflict,
    TooManyRequests,
    Server,
    ToolMissing,
    Io,
    InvalidData,
    Interrupted,
    Failed,
}

impl ErrorKind {
    /// True for failures to reach or trust the server at all (as opposed to an answer from it).
    pub fn is_unreachable(self) -> bool {
        matches!(
            self,
            ErrorKind::ConnectionRefused
                | ErrorKind::ConnectionReset
                | ErrorKind::Dns
                | ErrorKind::Proxy
                | ErrorKind::Timeout
                | ErrorKind::TlsUnknownAuthority
                | ErrorKind::TlsExpired
                | ErrorKind::TlsNotYetValid
                | ErrorKind::TlsBadName
                | ErrorKind::Tls
        )
    }
}

/// A failure explained in one paragraph: `what: why. fix`.
#[derive(Debug, Clone, Serialize)]
pub struct Error {
    pub kind: ErrorKind,
    /// What failed, e.g. "Cannot connect to the API server at https://10.0.0.1:6443".
    pub what: String,
    /// Why it likely failed.
    pub why: String,
    /// What to do about it. May be empty.
    pub fix: String,
    /// HTTP status when the failure is an answer from a server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// `Retry-After` of a 429/503 answer.
    #[serde(skip)]
    pub retry_after: Option<Duration>,
    /// For a 403: the permission that was missing ("list on leases.coordination.k8s.io in kube-system").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing_permission: Option<String>,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.what)?;
        if !self.why.is_empty() {
            write!(f, ": {}", self.why.trim_end_matches('.'))?;
        }
        f.write_str(".")?;
        if !self.fix.is_empty() {
            write!(f, " {}", self.fix)?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

impl Error {
    /// The admission webhook that refused the request, when one did (exec and port-forward are
    /// admitted too, as CONNECT: a lockout webhook on `*/*` refuses them).
    #[cfg(feature = "webhooks")]
    pub fn refusing_webhook(&self) -> Option<String> {
        crate::webhooks::defuse::culprit(&format!("{} {}", self.what, self.why)).map(|c| c.webhook)
    }

    pub fn new(kind: ErrorKind, what: impl Into<String>, why: impl Into<String>, fix: impl Into<String>) -> Self {
        Error {
            kind,
            what: what.into(),
            why: why.into(),
            fix: fix.into(),
            http_status: None,
            retry_after: None,
            missing_permission: None,
        }
    }

    pub fn usage(what: impl Into<String>, fix: impl Into<String>) -> Self {
        Error::new(ErrorKind::Usage, what, "", fix)
    }

    pub fn config(what: impl Into<String>, why: impl Into<String>, fix: impl Into<String>) -> Self {
        Error::new(ErrorKind::Config, what, why, fix)
    }

    pub fn invalid_data(what: impl Into<String>, why: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidData, what, why, "")
    }

    pub fn failed(what: impl Into<String>, why: impl Into<String>, fix: impl Into<String>) -> Self {
        Error::new(ErrorKind::Failed, what, why, fix)
    }

    pub fn interrupted(what: impl Into<String>) -> Self {
        Error::new(ErrorKind::Interrupted, what, "interrupted by Ctrl-C", "")
    }

    /// An I/O failure on a local path.
    pub fn io(what: impl Into<String>, err: &std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        let fix = match err.kind() {
            K::NotFound => "Check the path.",
            K::PermissionDenied => "Check the file's permissions (or run as a user that may read it).",
            K::StorageFull => "Free space on that file system or choose another directory.",
            K::AlreadyExists => "Choose another name, or pass --force to replace it.",
            _ => "",
        };
        Error::new(ErrorKind::Io, what, err.to_string(), fix)
    }

    pub fn with_fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = fix.into();
        self
    }

    pub fn with_what(mut self, what: impl Into<String>) -> Self {
        self.what = what.into();
        self
    }

    /// The exit code: 64 for usage errors, 3 (UNKNOWN) when we could not tell the state because of
    /// configuration or permissions, 130 on Ctrl-C, 2 (CRITICAL) for everything that failed.
    pub fn exit_code(&self) -> i32 {
        match self.kind {
            ErrorKind::Usage => EXIT_USAGE,
            ErrorKind::Config | ErrorKind::Unauthorized | ErrorKind::Forbidden | ErrorKind::ToolMissing => EXIT_UNKNOWN,
            ErrorKind::Interrupted => EXIT_INTERRUPTED,
            _ => EXIT_CRITICAL,
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::io("I/O error", &e)
    }
}

/// What a request asked for, so that a 403 can name the missing permission.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Access {
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub subresource: Option<String>,
    pub namespace: Option<String>,
    /// Set for non-resource URLs such as `/metrics`.
    pub non_resource_url: Option<String>,
}

impl Access {
    pub fn resource(verb: &str, group: &str, resource: &str, namespace: Option<&str>) -> Self {
        Access {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            subresource: None,
            namespace: namespace.map(str::to_string),
            non_resource_url: None,
        }
    }

    pub fn non_resource(verb: &str, url: &str) -> Self {
        Access {
            verb: verb.into(),
            non_resource_url: Some(url.split('?').next().unwrap_or(url).to_string()),
            ..Default::default()
        }
    }

    pub fn with_subresource(mut self, sub: &str) -> Self {
        self.subresource = Some(sub.into());
        self
    }

    /// "list on pods in kube-system", "get on /metrics", "create on pods/exec in kube-system".
    pub fn describe(&self) -> String {
        if let Some(url) = &self.non_resource_url {
            return format!("{} on {url}", self.verb);
        }
        let mut res = self.resource.clone();
        if let Some(sub) = &self.subresource {
            res = format!("{res}/{sub}");
        }
        if !self.group.is_empty() {
            res = format!("{res}.{}", self.group);
        }
        match &self.namespace {
            Some(ns) => format!("{} on {res} in {ns}", self.verb),
            None => format!("{} on {res}", self.verb),
        }
    }

    /// The `kubectl auth can-i` command that confirms the permission.
    pub fn can_i(&self) -> String {
        if let Some(url) = &self.non_resource_url {
            return format!("kubectl auth can-i {} {url}", self.verb);
        }
        let mut res = self.resource.clone();
        if !self.group.is_empty() {
            res = format!("{res}.{}", self.group);
        }
        if let Some(sub) = &self.subresource {
            res = format!("{res} --subresource={sub}");
        }
        match &self.namespace {
            Some(ns) => format!("kubectl auth can-i {} {res} -n {ns}", self.verb),
            None => format!("kubectl auth can-i {} {res}", self.verb),
        }
    }
}

/// What the transport layer failed with, found by walking an error's source chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportCause {
    ConnectionRefused,
    ConnectionReset,
    Dns,
    Timeout,
    TlsUnknownAuthority,
    /// Expired, with the certificate's NotAfter when rustls reports it.
    TlsExpired(Option<jiff::Timestamp>),
    TlsNotYetValid(Option<jiff::Timestamp>),
    TlsBadName(String),
    Tls(String),
    /// The proxy's refusal, as the client library reports it.
    Proxy(String),
    Other(String),
}

/// Walks the `source()` chain (looking inside `io::Error`s, whose `source()` skips the wrapped
/// error) for the most specific transport failure.
pub fn transport_cause(err: &(dyn std::error::Error + 'static)) -> TransportCause {
    let mut messages = Vec::new();
    let mut stack: Vec<&(dyn std::error::Error + 'static)> = vec![err];
    let mut io_kind = None;
    while let Some(e) = stack.pop() {
        #[cfg(feature = "client")]
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return tls_cause(tls);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            io_kind.get_or_insert(io.kind());
            if let Some(inner) = io.get_ref() {
                stack.push(inner);
            }
        }
        #[cfg(feature = "client")]
        if e.is::<tokio::time::error::Elapsed>() {
            return TransportCause::Timeout;
        }
        messages.push(e.to_string());
        if let Some(src) = e.source() {
            stack.push(src);
        }
    }
    use std::io::ErrorKind as K;
    match io_kind {
        Some(K::ConnectionRefused) => return TransportCause::ConnectionRefused,
        Some(K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof) => {
            return TransportCause::ConnectionReset;
        }
        Some(K::TimedOut) => return TransportCause::Timeout,
        _ => {}
    }
    let joined = messages.join(": ").to_lowercase();
    if joined.contains("tunnel error") || joined.contains("proxy authorization") {
        return TransportCause::Proxy(messages.last().cloned().unwrap_or_default());
    }
    if joined.contains("connection refused") {
        TransportCause::ConnectionRefused
    } else if joined.contains("dns error")
        || joined.contains("failed to lookup address")
        || joined.contains("name or service not known")
        || joined.contains("no such host")
    {
        TransportCause::Dns
    } else if joined.contains("timed out") || joined.contains("deadline") || joined.contains("timeout") {
        TransportCause::Timeout
    } else if joined.contains("connection reset")
        || joined.contains("broken pipe")
        || joined.contains("connection closed")
        || joined.contains("incomplete message")
    {
        TransportCause::ConnectionReset
    } else {
        TransportCause::Other(messages.last().cloned().unwrap_or_default())
    }
}

#[cfg(feature = "client")]
fn unix_to_timestamp(t: rustls::pki_types::UnixTime) -> Option<jiff::Timestamp> {
    jiff::Timestamp::from_second(t.as_secs() as i64).ok()
}

#[cfg(feature = "client")]
fn tls_cause(err: &rustls::Error) -> TransportCause {
    use rustls::CertificateError as C;
    match err {
        rustls::Error::InvalidCertificate(c) => match c {
            C::UnknownIssuer | C::BadSignature => TransportCause::TlsUnknownAuthority,
            C::Expired => TransportCause::TlsExpired(None),
            C::ExpiredContext { not_after, .. } => TransportCause::TlsExpired(unix_to_timestamp(*not_after)),
            C::NotValidYet => TransportCause::TlsNotYetValid(None),
            C::NotValidYetContext { not_before, .. } => TransportCause::TlsNotYetValid(unix_to_timestamp(*not_before)),
            C::NotValidForName => TransportCause::TlsBadName(String::new()),
            C::NotValidForNameContext { presented, .. } => TransportCause::TlsBadName(presented.join(", ")),
            other => TransportCause::Tls(format!("{other:?}")),
        },
        other => TransportCause::Tls(other.to_string()),
    }
}

/// Formats a timestamp for messages: `2026-11-20 10:00 UTC`.
pub fn format_time(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M UTC").to_string()
}

/// "3d ago" / "in 12d", relative to now.
pub fn relative_time(t: jiff::Timestamp) -> String {
    let secs = t.as_second() - jiff::Timestamp::now().as_second();
    if secs < 0 {
        format!("{} ago", crate::duration::human_duration_signed(-secs))
    } else {
        format!("in {}", crate::duration::human_duration_signed(secs))
    }
}

/// A transport failure talking to `server` (the name says which server: "the API server",
/// "etcd member etcd-cp1").
pub fn transport_error(server_label: &str, url: &str, cause: TransportCause, timeout: Option<Duration>) -> Error {
    let host = url.trim_start_matches("https://").trim_start_matches("http://").split('/').next().unwrap_or(url);
    match cause {
        TransportCause::ConnectionRefused => Error::new(
            ErrorKind::ConnectionRefused,
            format!("Cannot connect to {server_label} at {url}"),
            "connection refused: nothing is listening at that address and port (the server is down or restarting, or the address is wrong)",
            format!(
                "Check the server address in your kubeconfig (`kubectl config view --minify`); on a control-plane node check `crictl ps -a --name kube-apiserver` and `ss -tlnp | grep {}`, and the load balancer in front of the API servers.",
                host.rsplit(':').next().unwrap_or("6443")
            ),
        ),
        TransportCause::ConnectionReset => Error::new(
            ErrorKind::ConnectionReset,
            format!("The connection to {server_label} at {url} was reset"),
            "connection reset by peer: the server or a load balancer/proxy in between closed the connection (server restarting, LB health checks failing, or a TLS-intercepting proxy)",
            "Retry; if it persists, check the load balancer's backends and the server's logs (`kubectl cphealth` checks every replica).",
        ),
        TransportCause::Dns => Error::new(
            ErrorKind::Dns,
            format!("Cannot resolve the host of {server_label} ({host})"),
            "DNS lookup failed",
            "Check the server name in your kubeconfig and your DNS or VPN connection; try the IP address instead.",
        ),
        TransportCause::Timeout => Error::new(
            ErrorKind::Timeout,
            format!(
                "No answer from {server_label} at {url}{}",
                timeout.map(|t| format!(" within {}", crate::duration::short_latency(t))).unwrap_or_default()
            ),
            "i/o timeout: the address is unreachable (VPN, firewall, security group, load balancer) or the server is overloaded",
            format!(
                "Check that you can reach it (`nc -vz {}`); if it is reachable but slow, raise --request-timeout and look at the load (`kubectl apftop`).",
                host.replace(':', " ")
            ),
        ),
        TransportCause::TlsUnknownAuthority => Error::new(
            ErrorKind::TlsUnknownAuthority,
            format!("TLS verification of {server_label} at {url} failed"),
            "x509: certificate signed by unknown authority: the server's certificate is not signed by the CA in your kubeconfig (wrong context, the cluster CA was rotated, or a proxy intercepts TLS)",
            "Use the right context, or refresh certificate-authority-data from the cluster's admin.conf (/etc/kubernetes/admin.conf on a control-plane node). --insecure-skip-tls-verify is for diagnosis only.",
        ),
        TransportCause::TlsExpired(not_after) => Error::new(
            ErrorKind::TlsExpired,
            format!("TLS verification of {server_label} at {url} failed"),
            match not_after {
                Some(t) => format!(
                    "x509: certificate has expired: the serving certificate (or a CA in its chain) expired on {} ({})",
                    format_time(t),
                    relative_time(t)
                ),
                None => "x509: certificate has expired or is not yet valid".to_string(),
            },
            "On each control-plane node run `kubeadm certs check-expiration`, back up /etc/kubernetes/pki, run `kubeadm certs renew all`, then restart the control-plane static pods (move their manifests out of /etc/kubernetes/manifests for 20s and back). Check the clock too (`date`, chrony).",
        ),
        TransportCause::TlsNotYetValid(not_before) => Error::new(
            ErrorKind::TlsNotYetValid,
            format!("TLS verification of {server_label} at {url} failed"),
            match not_before {
                Some(t) => format!("x509: certificate is not yet valid: it is valid from {}", format_time(t)),
                None => "x509: certificate is not yet valid".to_string(),
            },
            "The clock of this machine or of the server is wrong: check `date` here and on the control-plane nodes (chrony/ntp).",
        ),
        TransportCause::TlsBadName(presented) => Error::new(
            ErrorKind::TlsBadName,
            format!("TLS verification of {server_label} at {url} failed"),
            if presented.is_empty() {
                format!("x509: certificate is not valid for {host}")
            } else {
                format!("x509: certificate is valid for {presented}, not {host}")
            },
            "Connect through a name the certificate lists, pass --tls-server-name, or add the address to the certificate's SANs (kubeadm: apiServer.certSANs, then renew the apiserver certificate).",
        ),
        TransportCause::Tls(msg) => Error::new(
            ErrorKind::Tls,
            format!("TLS handshake with {server_label} at {url} failed"),
            msg,
            "Check that the address speaks HTTPS and that your kubeconfig's certificates are valid.",
        ),
        TransportCause::Proxy(msg) => {
            let why = if msg.to_lowercase().contains("authorization") {
                "the HTTP proxy asks for credentials it did not get or did not accept (407 Proxy Authentication Required)".to_string()
            } else {
                format!("the HTTP proxy refused the tunnel: {msg}")
            };
            Error::new(
                ErrorKind::Proxy,
                format!("Cannot reach {server_label} at {url} through the HTTP proxy"),
                why,
                "Check the proxy in the kubeconfig's cluster (`proxy-url`, shown without its password by `kubectl config view --minify`) or HTTPS_PROXY and NO_PROXY: its user and password, and whether it allows CONNECT to this address.",
            )
        }
        TransportCause::Other(msg) => {
            Error::new(ErrorKind::Failed, format!("Request to {server_label} at {url} failed"), msg, "")
        }
    }
}

/// A Kubernetes `Status` body, as far as messages need it.
#[derive(Debug, Default, serde::Deserialize)]
pub struct StatusBody {
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub code: u16,
}

/// An error for a non-2xx HTTP answer of the API server.
pub fn http_error(
    server_url: &str,
    request: &str,
    status: u16,
    body: &[u8],
    retry_after: Option<Duration>,
    access: Option<&Access>,
) -> Error {
    let parsed: StatusBody = serde_json::from_slice(body).unwrap_or_default();
    let server_message = if parsed.message.is_empty() {
        let text = String::from_utf8_lossy(body);
        let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_string();
        if first.len() > 300 { format!("{}…", &first[..first.floor_char_boundary(300)]) } else { first }
    } else {
        parsed.message.clone()
    };
    let mut err = match status {
        401 => Error::new(
            ErrorKind::Unauthorized,
            format!("The API server at {server_url} rejected your credentials (401 Unauthorized)"),
            "the token has expired or was revoked, or the client certificate has expired or is not signed by the cluster's CA",
            "Refresh your credentials (your cloud CLI's login, or a fresh kubeconfig from the cluster admin; with kubeadm: `kubeadm certs renew admin.conf` on a control-plane node).",
        ),
        403 => {
            let need = access.map(Access::describe).unwrap_or_else(|| request.to_string());
            Error::new(
                ErrorKind::Forbidden,
                format!("Permission denied for {request} (403 Forbidden)"),
                if server_message.is_empty() {
                    format!("your user lacks {need}")
                } else {
                    format!("{server_message} — your user lacks {need}")
                },
                match access {
                    Some(a) => format!(
                        "Ask for a Role or ClusterRole that grants {need} (check with `{}`; `kubectl cphealth rbac` prints a read-only ClusterRole for this suite).",
                        a.can_i()
                    ),
                    None => "Ask your cluster admin for the permission.".to_string(),
                },
            )
        }
        404 => Error::new(
            ErrorKind::NotFound,
            format!("{request}: not found (404)"),
            if server_message.is_empty() {
                "the object or API does not exist".to_string()
            } else {
                server_message.clone()
            },
            "Check the name and namespace; if the path names an API group, this cluster may not serve it.",
        ),
        409 => Error::new(
            ErrorKind::Conflict,
            format!("{request}: conflict (409)"),
            server_message.clone(),
            "Someone changed the object since it was read; read it again and re-check before retrying.",
        ),
        429 => Error::new(
            ErrorKind::TooManyRequests,
            format!("The API server is throttling {request} (429 Too Many Requests)"),
            format!(
                "API Priority and Fairness rejected it (queue full or wait time-out in its priority level){}",
                retry_after.map(|d| format!("; the server asks to retry after {}s", d.as_secs())).unwrap_or_default()
            ),
            "Retry later; find the flooding client with `kubectl apftop`.",
        ),
        500..=599 => Error::new(
            ErrorKind::Server,
            format!("The API server failed {request} ({status}{})", reason_suffix(&parsed.reason)),
            if server_message.is_empty() { "no details in the answer".to_string() } else { server_message.clone() },
            "Often etcd trouble (`etcdserver: request timed out`), an aggregated API or webhook that is down, or an overloaded server: run `kubectl cphealth`.",
        ),
        _ => Error::new(ErrorKind::Failed, format!("{request} failed with HTTP {status}"), server_message.clone(), ""),
    };
    err.http_status = Some(status);
    err.retry_after = retry_after;
    if status == 403 {
        err.missing_permission = access.map(Access::describe);
    }
    err
}

fn reason_suffix(reason: &str) -> String {
    if reason.is_empty() { String::new() } else { format!(" {reason}") }
}

/// Parses a `Retry-After` header given in seconds (the only form the API server sends).
pub fn parse_retry_after(value: Option<&http::HeaderValue>) -> Option<Duration> {
    value?.to_str().ok()?.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {

    #[cfg(feature = "webhooks")]
    #[test]
    fn names_the_webhook_that_refused_a_request() {
        // What kube-apiserver v1.36.3 answered to an exec under the kit's webhook-lockout.
        let e = Error::new(
            ErrorKind::Server,
            "The API server failed exec in pod kube-system/etcd-cp-3 (500 InternalError)",
            "Internal error occurred: failed calling webhook \"validate.pod.com\": failed to call webhook: Post \"https://pod-validator.default.svc:443/validate?timeout=10s\": no endpoints available for service \"pod-validator\"",
            "",
        );
        assert_eq!(e.refusing_webhook().as_deref(), Some("validate.pod.com"));
        assert_eq!(Error::new(ErrorKind::Timeout, "x", "i/o timeout", "").refusing_webhook(), None);
    }

    use super::*;

    #[test]
    fn classifies_io_errors_inside_other_errors() {
        #[derive(Debug)]
        struct Wrapper(std::io::Error);
        impl std::fmt::Display for Wrapper {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("client error (Connect)")
            }
        }
        impl std::error::Error for Wrapper {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let refused = Wrapper(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused"));
        assert_eq!(transport_cause(&refused), TransportCause::ConnectionRefused);
        let timeout = Wrapper(std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out"));
        assert_eq!(transport_cause(&timeout), TransportCause::Timeout);
        let dns = std::io::Error::other("dns error: failed to lookup address information: Name or service not known");
        assert_eq!(transport_cause(&dns), TransportCause::Dns);
    }

    #[cfg(feature = "client")]
    #[test]
    fn finds_rustls_errors_wrapped_in_io_errors() {
        let expired = rustls::Error::InvalidCertificate(rustls::CertificateError::ExpiredContext {
            time: rustls::pki_types::UnixTime::since_unix_epoch(Duration::from_secs(1_800_000_000)),
            not_after: rustls::pki_types::UnixTime::since_unix_epoch(Duration::from_secs(1_700_000_000)),
        });
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, expired);
        match transport_cause(&io) {
            TransportCause::TlsExpired(Some(t)) => assert_eq!(t.as_second(), 1_700_000_000),
            other => panic!("unexpected {other:?}"),
        }
        let unknown = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        assert_eq!(transport_cause(&unknown), TransportCause::TlsUnknownAuthority);
    }

    #[test]
    fn expired_certificate_message_names_the_date() {
        let t = jiff::Timestamp::from_second(1_700_000_000).unwrap();
        let e = transport_error("the API server", "https://127.0.0.1:6443", TransportCause::TlsExpired(Some(t)), None);
        let text = e.to_string();
        assert!(text.contains("certificate has expired"), "{text}");
        assert!(text.contains("2023-11-14 22:13 UTC"), "{text}");
        assert!(text.contains("kubeadm certs renew"), "{text}");
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn connection_refused_is_one_paragraph_with_a_fix() {
        let e = transport_error("the API server", "https://127.0.0.1:1", TransportCause::ConnectionRefused, None);
        let text = e.to_string();
        assert!(!text.contains('\n'));
        assert!(text.starts_with("Cannot connect to the API server at https://127.0.0.1:1: connection refused"));
        assert!(text.contains("ss -tlnp | grep 1"), "{text}");
    }

    #[test]
    fn forbidden_names_verb_and_resource() {
        let body = br#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"leases.coordination.k8s.io is forbidden: User \"viewer\" cannot list resource \"leases\" in API group \"coordination.k8s.io\" in the namespace \"kube-system\"","reason":"Forbidden","code":403}"#;
        let access = Access::resource("list", "coordination.k8s.io", "leases", Some("kube-system"));
        let e = http_error("https://x", "list leases", 403, body, None, Some(&access));
        assert_eq!(e.kind, ErrorKind::Forbidden);
        let text = e.to_string();
        assert!(text.contains("lacks list on leases.coordination.k8s.io in kube-system"), "{text}");
        assert!(text.contains("kubectl auth can-i list leases.coordination.k8s.io -n kube-system"), "{text}");
        assert_eq!(e.exit_code(), 3);
    }

    #[test]
    fn too_many_requests_reports_retry_after() {
        let hv = http::HeaderValue::from_static("7");
        let retry = parse_retry_after(Some(&hv));
        assert_eq!(retry, Some(Duration::from_secs(7)));
        let e =
            http_error("https://x", "GET /metrics", 429, b"Too many requests, please try again later.\n", retry, None);
        assert_eq!(e.kind, ErrorKind::TooManyRequests);
        assert!(e.to_string().contains("retry after 7s"));
        assert!(e.to_string().contains("kubectl apftop"));
    }

    #[test]
    fn server_errors_and_unauthorized() {
        let e = http_error(
            "https://x",
            "GET /api/v1/nodes",
            500,
            br#"{"message":"etcdserver: request timed out","reason":"InternalError","code":500}"#,
            None,
            None,
        );
        assert_eq!(e.kind, ErrorKind::Server);
        assert!(e.to_string().contains("etcdserver: request timed out"));
        assert!(e.to_string().contains("(500 InternalError)"));
        let e = http_error("https://x", "GET /version", 401, br#"{"message":"Unauthorized","code":401}"#, None, None);
        assert_eq!(e.kind, ErrorKind::Unauthorized);
        assert_eq!(e.exit_code(), 3);
    }

    #[test]
    fn access_descriptions() {
        assert_eq!(Access::non_resource("get", "/metrics?x=1").describe(), "get on /metrics");
        let exec = Access::resource("create", "", "pods", Some("kube-system")).with_subresource("exec");
        assert_eq!(exec.describe(), "create on pods/exec in kube-system");
        assert_eq!(exec.can_i(), "kubectl auth can-i create pods --subresource=exec -n kube-system");
    }
}
