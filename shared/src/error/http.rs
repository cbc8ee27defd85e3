//! A server's refusals: a non-2xx answer of the API server (its `Status` body) as one error
//! that says what to do — 401, 403 naming the permission, 404, 409, 429 with Retry-After, 5xx.

use std::time::Duration;

use super::{Error, ErrorKind};
use crate::access::Access;

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
    use super::*;

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
}
