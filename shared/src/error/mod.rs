//! One error type for the suite: what failed, why it likely failed, and what to do, mapped to an
//! exit code. Transport and HTTP failures are classified into the symptoms SREs know from the
//! runbooks (connection refused, i/o timeout, x509 unknown authority or expired, 401, 403, 429, 5xx):
//! `transport` for failures to reach a server, `http` for a server's refusals.

mod http;
mod transport;

pub use http::{StatusBody, http_error, parse_retry_after};
pub use transport::{TransportCause, transport_cause, transport_error};

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

    /// True for a TLS handshake or verification failure.
    pub fn is_tls(self) -> bool {
        matches!(
            self,
            ErrorKind::TlsUnknownAuthority
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

#[cfg(all(test, feature = "webhooks"))]
mod tests {
    use super::*;

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
}
