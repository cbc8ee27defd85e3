//! Reading `/metrics` from the API server: the request (the protobuf exposition preferred, the
//! text one accepted), and the checks that the answer is metrics, whole.

use std::time::Instant;

use super::{Scrape, Selection};
use crate::access::Access;
use crate::client::Cluster;
use crate::error::Result;

/// A scrape with the time it was taken (for rates).
#[derive(Debug, Clone)]
pub struct TimedScrape {
    pub scrape: Scrape,
    /// When the request was sent (a second scrape `window` after it yields a `window` apart pair).
    pub requested: Instant,
    /// When the answer arrived (rates divide by the difference of these).
    pub taken: Instant,
    pub bytes: usize,
}

/// GETs `path` (normally `/metrics`) from the API server and keeps the selected families.
pub async fn fetch(cluster: &Cluster, path: &str, selection: &Selection) -> Result<TimedScrape> {
    let requested = Instant::now();
    let response =
        cluster.get_ok_accepting(path, Some(super::protobuf::ACCEPT), &Access::non_resource("get", path)).await?;
    let taken = Instant::now();
    let content_type = response.header("content-type");
    let scrape = if content_type.is_some_and(super::protobuf::is_protobuf) {
        let scrape = Scrape::parse_protobuf(&response.body, selection);
        if let Some((_, reason)) = &scrape.stats.first_error {
            return Err(crate::Error::invalid_data(
                format!("GET {path} on {} was cut short or garbled", cluster.server()),
                format!(
                    "{reason}, after {} bytes (truncated by a proxy or a connection that broke)",
                    response.body.len()
                ),
            ));
        }
        scrape
    } else {
        check_exposition(cluster.server(), path, content_type, &response.body)?;
        Scrape::parse(&response.body, selection)
    };
    Ok(TimedScrape { scrape, requested, taken, bytes: response.body.len() })
}

/// The answer must be the Prometheus text format, whole: an HTML page or JSON is another
/// service answering (a portal, a proxy), and text that ends mid-line was cut short (the
/// format ends every line with a newline).
fn check_exposition(server: &str, path: &str, content_type: Option<&str>, body: &[u8]) -> Result<()> {
    let kind = content_type.unwrap_or("").to_ascii_lowercase();
    if kind.contains("html") || kind.contains("json") {
        return Err(crate::Error::invalid_data(
            format!("GET {path} on {server} answered {kind}, not metrics"),
            "something other than the API server answered (a captive portal, a proxy, or a misrouted load balancer): check the kubeconfig's server address and the proxy settings",
        ));
    }
    if body.last().is_some_and(|b| *b != b'\n') {
        return Err(crate::Error::invalid_data(
            format!("GET {path} on {server} was cut short"),
            format!(
                "the metrics end mid-line after {} bytes (truncated by a proxy or a connection that broke)",
                body.len()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_exposition;

    #[test]
    fn whole_text_passes_and_cut_or_foreign_answers_do_not() {
        let ok = b"# TYPE x counter\nx 1\n";
        assert!(check_exposition("s", "/metrics", Some("text/plain; version=0.0.4"), ok).is_ok());
        assert!(check_exposition("s", "/metrics", None, b"").is_ok());
        let cut = check_exposition("s", "/metrics", Some("text/plain"), b"x 1\ny 2").unwrap_err();
        assert!(cut.to_string().contains("cut short"), "{cut}");
        let html = check_exposition("s", "/metrics", Some("text/html; charset=utf-8"), b"<html></html>\n").unwrap_err();
        assert!(html.to_string().contains("text/html"), "{html}");
    }
}
