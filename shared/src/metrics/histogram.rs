//! Histograms and counters between scrapes: `histogram_quantile` as PromQL computes it, bucket
//! deltas, and rates with counter-reset handling.

use serde::Serialize;

/// One cumulative bucket: observations `<= le`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Bucket {
    pub le: f64,
    pub count: f64,
}

/// A (possibly aggregated) histogram: cumulative buckets sorted by `le`, plus `_sum`/`_count`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Histogram {
    pub buckets: Vec<Bucket>,
    pub sum: f64,
    pub count: f64,
}

impl Histogram {
    /// Adds a bucket sample, merging with an existing bucket of the same bound (used to sum
    /// histograms over labels, like `sum by (le)`).
    pub fn add_bucket(&mut self, le: f64, count: f64) {
        match self.buckets.binary_search_by(|b| b.le.total_cmp(&le)) {
            Ok(i) => self.buckets[i].count += count,
            Err(i) => self.buckets.insert(i, Bucket { le, count }),
        }
    }

    /// Merges another histogram into this one.
    pub fn merge(&mut self, other: &Histogram) {
        for b in &other.buckets {
            self.add_bucket(b.le, b.count);
        }
        self.sum += other.sum;
        self.count += other.count;
    }

    /// The `q` quantile (0..=1) of the observations, `None` when there are none.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        histogram_quantile(q, &self.buckets)
    }

    /// Observations made since `older` (same series, earlier scrape). A counter reset (any
    /// bucket or the count going down: the process restarted) means everything in `self` is new.
    pub fn delta_since(&self, older: &Histogram) -> Histogram {
        let reset = self.count < older.count
            || self.buckets.iter().any(|b| {
                older.buckets.iter().find(|o| o.le.total_cmp(&b.le).is_eq()).is_some_and(|o| b.count < o.count)
            });
        if reset {
            return self.clone();
        }
        let buckets = self
            .buckets
            .iter()
            .map(|b| {
                let before =
                    older.buckets.iter().find(|o| o.le.total_cmp(&b.le).is_eq()).map(|o| o.count).unwrap_or(0.0);
                Bucket { le: b.le, count: b.count - before }
            })
            .collect();
        Histogram { buckets, sum: self.sum - older.sum, count: self.count - older.count }
    }

    /// Observations certainly above `x`: those past the smallest bucket bound at or above it
    /// (a bound between buckets is rounded up, so this never overcounts).
    pub fn count_above(&self, x: f64) -> f64 {
        let at_or_below = self.buckets.iter().find(|b| b.le >= x).map_or(self.count, |b| b.count);
        (self.count - at_or_below).max(0.0)
    }
}

/// PromQL's `histogram_quantile` over cumulative buckets (promql/quantile.go `bucketQuantile`):
/// linear interpolation inside the bucket holding the rank; a rank in the `+Inf` bucket gives
/// the highest finite bound. `None` for no observations, no `+Inf` bucket, or fewer than two
/// buckets.
pub fn histogram_quantile(q: f64, buckets: &[Bucket]) -> Option<f64> {
    if q.is_nan() {
        return None;
    }
    if q < 0.0 {
        return Some(f64::NEG_INFINITY);
    }
    if q > 1.0 {
        return Some(f64::INFINITY);
    }
    let mut sorted: Vec<Bucket> = buckets.iter().copied().filter(|b| !b.le.is_nan()).collect();
    sorted.sort_by(|a, b| a.le.total_cmp(&b.le));
    // Coalesce equal bounds.
    let mut merged: Vec<Bucket> = Vec::with_capacity(sorted.len());
    for b in sorted {
        match merged.last_mut() {
            Some(last) if last.le == b.le => last.count += b.count,
            _ => merged.push(b),
        }
    }
    if merged.len() < 2 || merged.last().map(|b| b.le) != Some(f64::INFINITY) {
        return None;
    }
    // Scrapes are not atomic: make counts monotonic as Prometheus does.
    let mut max = f64::NEG_INFINITY;
    for b in &mut merged {
        if b.count < max {
            b.count = max;
        } else {
            max = b.count;
        }
    }
    let observations = merged[merged.len() - 1].count;
    if observations <= 0.0 || observations.is_nan() {
        return None;
    }
    let mut rank = q * observations;
    let b = merged.iter().position(|bucket| bucket.count >= rank).unwrap_or(merged.len() - 1);
    if b == merged.len() - 1 {
        return Some(merged[merged.len() - 2].le);
    }
    if b == 0 && merged[0].le <= 0.0 {
        return Some(merged[0].le);
    }
    let mut bucket_start = 0.0;
    let bucket_end = merged[b].le;
    let mut count = merged[b].count;
    if b > 0 {
        bucket_start = merged[b - 1].le;
        count -= merged[b - 1].count;
        rank -= merged[b - 1].count;
    }
    if count <= 0.0 {
        return Some(bucket_start);
    }
    Some(bucket_start + (bucket_end - bucket_start) * (rank / count))
}

/// Increase of a counter between two scrapes; a value that went down means the process
/// restarted and counted from zero, so the newer value is the increase.
pub fn counter_delta(newer: f64, older: f64) -> f64 {
    if newer < older { newer } else { newer - older }
}

/// Per-second rate of a counter over `seconds`, with reset handling.
pub fn counter_rate(newer: f64, older: f64, seconds: f64) -> f64 {
    if seconds <= 0.0 { 0.0 } else { counter_delta(newer, older) / seconds }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(buckets: &[(f64, f64)]) -> Vec<Bucket> {
        buckets.iter().map(|&(le, count)| Bucket { le, count }).collect()
    }

    #[test]
    fn count_above_rounds_a_line_between_bounds_up() {
        let hist = Histogram {
            buckets: h(&[(1.0, 90.0), (4.0, 95.0), (5.0, 97.0), (f64::INFINITY, 100.0)]),
            sum: 0.0,
            count: 100.0,
        };
        assert_eq!(hist.count_above(5.0), 3.0);
        assert_eq!(hist.count_above(4.5), 3.0, "only what is past 5 is surely past 4.5");
        assert_eq!(hist.count_above(0.5), 10.0);
        assert_eq!(hist.count_above(60.0), 0.0, "nothing is known past the last finite bound");
    }

    #[test]
    fn quantile_interpolates_like_promql() {
        // 100 observations: 50 <= 0.1, 90 <= 0.5, 100 <= 1.
        let b = h(&[(0.1, 50.0), (0.5, 90.0), (1.0, 100.0), (f64::INFINITY, 100.0)]);
        assert!((histogram_quantile(0.5, &b).unwrap() - 0.1).abs() < 1e-12);
        // rank 90 lands exactly at the end of the 0.5 bucket.
        assert!((histogram_quantile(0.9, &b).unwrap() - 0.5).abs() < 1e-12);
        // rank 99: 0.5 + 0.5 * (9/10)
        assert!((histogram_quantile(0.99, &b).unwrap() - 0.95).abs() < 1e-12);
        // rank 25 in the first bucket: 0 + 0.1 * 25/50
        assert!((histogram_quantile(0.25, &b).unwrap() - 0.05).abs() < 1e-12);
    }

    #[test]
    fn quantile_in_the_inf_bucket_returns_highest_finite_bound() {
        let b = h(&[(0.1, 10.0), (1.0, 20.0), (f64::INFINITY, 100.0)]);
        assert_eq!(histogram_quantile(0.99, &b), Some(1.0));
    }

    #[test]
    fn quantile_edge_cases() {
        assert_eq!(histogram_quantile(0.9, &h(&[(0.1, 0.0), (f64::INFINITY, 0.0)])), None, "no observations");
        assert_eq!(histogram_quantile(0.9, &h(&[(0.1, 5.0), (1.0, 5.0)])), None, "no +Inf bucket");
        assert_eq!(histogram_quantile(0.9, &h(&[(f64::INFINITY, 5.0)])), None, "one bucket");
        assert_eq!(histogram_quantile(f64::NAN, &h(&[(1.0, 1.0), (f64::INFINITY, 1.0)])), None);
        assert_eq!(histogram_quantile(-1.0, &h(&[(1.0, 1.0), (f64::INFINITY, 1.0)])), Some(f64::NEG_INFINITY));
        assert_eq!(histogram_quantile(2.0, &h(&[(1.0, 1.0), (f64::INFINITY, 1.0)])), Some(f64::INFINITY));
        // Unsorted input and non-monotonic counts are repaired.
        let b = h(&[(f64::INFINITY, 100.0), (1.0, 100.0), (0.5, 101.0), (0.1, 50.0)]);
        // Monotonic repair gives 0.1:50, 0.5:101, 1:101, +Inf:101; rank 50.5 falls just past 0.1.
        let q = histogram_quantile(0.5, &b).unwrap();
        assert!((q - (0.1 + 0.4 * (0.5 / 51.0))).abs() < 1e-12, "{q}");
    }

    #[test]
    fn deltas_between_scrapes_and_resets() {
        let older = Histogram { buckets: h(&[(0.1, 10.0), (1.0, 20.0), (f64::INFINITY, 20.0)]), sum: 5.0, count: 20.0 };
        let newer =
            Histogram { buckets: h(&[(0.1, 10.0), (1.0, 30.0), (f64::INFINITY, 40.0)]), sum: 40.0, count: 40.0 };
        let d = newer.delta_since(&older);
        assert_eq!(d.buckets.iter().map(|b| b.count).collect::<Vec<_>>(), vec![0.0, 10.0, 20.0]);
        assert_eq!(d.count, 20.0);
        assert_eq!(d.sum, 35.0);
        // Only the delta decides the quantile: every new observation is > 0.1.
        assert!(d.quantile(0.1).unwrap() > 0.1);
        assert_eq!(d.quantile(0.99), Some(1.0));
        // A restart: counts went down, so the newer histogram is all new.
        let restarted = Histogram { buckets: h(&[(0.1, 1.0), (1.0, 1.0), (f64::INFINITY, 1.0)]), sum: 0.0, count: 1.0 };
        assert_eq!(restarted.delta_since(&newer), restarted);
    }

    #[test]
    fn counter_rates_handle_resets() {
        assert_eq!(counter_delta(150.0, 100.0), 50.0);
        assert_eq!(counter_delta(30.0, 100.0), 30.0);
        assert_eq!(counter_rate(150.0, 100.0, 2.0), 25.0);
        assert_eq!(counter_rate(150.0, 100.0, 0.0), 0.0);
    }

    #[test]
    fn merging_sums_equal_bounds() {
        let mut a = Histogram::default();
        a.add_bucket(1.0, 2.0);
        a.add_bucket(f64::INFINITY, 3.0);
        a.merge(&Histogram { buckets: h(&[(0.5, 1.0), (1.0, 1.0), (f64::INFINITY, 1.0)]), ..Default::default() });
        assert_eq!(a.buckets.len(), 3);
        assert_eq!(a.buckets[1], Bucket { le: 1.0, count: 3.0 });
        assert_eq!(a.buckets[2].count, 4.0);
    }
}
