//! Failures to reach a server, classified from the error's source chain into what SREs know:
//! connection refused or reset, DNS, i/o timeout, x509 unknown authority, expired (with the
//! date), wrong name, a proxy's refusal.

use std::time::Duration;

use super::{Error, ErrorKind};
use crate::duration::{format_time, relative_time};

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
    // object_store reports its retry settings in every retried error ("after 3 retries,
    // max_retries: 3, retry_timeout: 10s"): a setting, not a timeout.
    let joined = messages.join(": ").to_lowercase().replace("retry_timeout", "retry limit");
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
                "Check the server address in your kubeconfig (`kubectl config view --minify`); on a control-plane node check `crictl ps -a --name kube-apiserver` and `ss -tlnp 'sport = :{}'`, and the load balancer in front of the API servers.",
                // The port dialled; `grep PORT` matched every line holding its digits.
                host.rsplit_once(':').map(|(_, p)| p).filter(|p| p.parse::<u16>().is_ok()).unwrap_or("443")
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
                timeout.map(|t| format!(" within {}", crate::duration::short_limit(t))).unwrap_or_default()
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
                    relative_time(t, jiff::Timestamp::now())
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

#[cfg(test)]
mod tests {
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

    #[test]
    fn a_retried_drop_is_a_drop_not_a_timeout() {
        // object_store 0.14's wording of a PUT retried after the store cut the connection.
        let dropped = std::io::Error::other(
            "Error performing PUT http://127.0.0.1:9000/backups/cut/x.db?partNumber=3 in 1.2s, after 3 retries, max_retries: 3, retry_timeout: 10s  - HTTP error: error sending request: connection closed before message completed",
        );
        assert_eq!(transport_cause(&dropped), TransportCause::ConnectionReset);
        let timed_out = std::io::Error::other(
            "Error performing PUT http://127.0.0.1:9000/b/x in 10s, after 1 retries, max_retries: 3, retry_timeout: 10s  - HTTP error: operation timed out",
        );
        assert_eq!(transport_cause(&timed_out), TransportCause::Timeout);
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
        assert!(text.contains("ss -tlnp 'sport = :1'"), "{text}");
        let e = transport_error("the API server", "https://api.example.com", TransportCause::ConnectionRefused, None);
        assert!(e.to_string().contains("ss -tlnp 'sport = :443'"), "{e}");
    }
}
