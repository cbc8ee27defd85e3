//! Prometheus metrics: the text-format parser (`text`), owned selections with PromQL-like
//! aggregations (`scrape`), and histogram/counter arithmetic between scrapes (`histogram`).

pub mod histogram;
pub mod scrape;
pub mod text;

pub use histogram::{Bucket, Histogram, counter_delta, counter_rate, histogram_quantile};
pub use scrape::{Family, Scrape, Selection, Series, any};
pub use text::{Event, Labels, MetricType, ParseStats, Sample, StreamParser, parse, parse_line};

use std::time::Instant;

use crate::client::Cluster;
use crate::error::{Access, Result};

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
    let response = cluster.get_ok(path, &Access::non_resource("get", path)).await?;
    let taken = Instant::now();
    let scrape = Scrape::parse(&response.body, selection);
    Ok(TimedScrape { scrape, requested, taken, bytes: response.body.len() })
}
