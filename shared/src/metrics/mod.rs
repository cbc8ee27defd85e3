//! Prometheus metrics: the text-format parser (`text`), the protobuf exposition (`protobuf`),
//! owned selections with PromQL-like aggregations (`scrape`), and histogram/counter arithmetic
//! between scrapes (`histogram`).

#[cfg(feature = "client")]
mod fetch;
pub mod histogram;
pub mod protobuf;
pub mod scrape;
pub mod text;

#[cfg(feature = "client")]
pub use fetch::{TimedScrape, fetch};
pub use histogram::{Bucket, Histogram, counter_delta, counter_rate, histogram_quantile};
pub use scrape::{Family, Scrape, Selection, Series, any};
pub use text::{Event, Labels, MetricType, ParseStats, Sample, StreamParser, parse, parse_line};
