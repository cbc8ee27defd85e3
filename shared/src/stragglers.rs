//! Reads sent to every replica at once, where one replica far behind the others is cut off
//! instead of holding the whole answer to the request timeout. The case that needs it:
//! kube-apiserver builds an etcd client for its storage-size metric on every `/metrics` request
//! and waits up to 20 s for it to connect (k8s.io/apiserver `pkg/storage/storagebackend/factory/
//! etcd3.go`: `dialTimeout`, `grpc.WithBlock`), so the replica beside a dead etcd member answers
//! `/metrics` 20 s late while the others answer in a tenth of a second.

use std::future::Future;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::duration::short_latency;
use crate::error::{Error, ErrorKind, Result};

/// The least a straggler is waited for after the first answer.
const MIN_GRACE: Duration = Duration::from_secs(3);

/// How long after the first answer (which took `first`) the others still get: three times as
/// long, at least `least` — a busy replica is slower, not an order of magnitude slower.
pub fn grace(first: Duration, least: Duration) -> Duration {
    (first * 3).max(least)
}

/// One round of reads to several replicas, started together.
pub struct Stragglers {
    started: Instant,
    least_grace: Duration,
    /// How long the first successful read took, once one has.
    first: watch::Sender<Option<Duration>>,
}

impl Default for Stragglers {
    fn default() -> Self {
        Stragglers::new()
    }
}

impl Stragglers {
    pub fn new() -> Stragglers {
        Stragglers::with_least_grace(MIN_GRACE)
    }

    fn with_least_grace(least_grace: Duration) -> Stragglers {
        Stragglers { started: Instant::now(), least_grace, first: watch::Sender::new(None) }
    }

    /// Runs `read`; once another read of the round has succeeded, this one has [`grace`] more
    /// before it is cut off with a timeout that says so. `what` names the read in that error.
    pub async fn bounded<T>(&self, what: &str, read: impl Future<Output = Result<T>>) -> Result<T> {
        let mut first = self.first.subscribe();
        let cut_off = async {
            let first = loop {
                if let Some(took) = *first.borrow_and_update() {
                    break took;
                }
                if first.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            };
            tokio::time::sleep_until((self.started + first + grace(first, self.least_grace)).into()).await;
            first
        };
        tokio::select! {
            result = read => {
                if result.is_ok() {
                    let took = self.started.elapsed();
                    self.first.send_if_modified(|f| {
                        let first = f.is_none();
                        if first {
                            *f = Some(took);
                        }
                        first
                    });
                }
                result
            }
            first = cut_off => Err(Error::new(
                ErrorKind::Timeout,
                what.to_string(),
                format!(
                    "no answer {} after another replica answered (in {}); a kube-apiserver that cannot reach its etcd answers /metrics only after a 20s dial timeout",
                    short_latency(grace(first, self.least_grace)),
                    short_latency(first)
                ),
                "See the replica's readyz (kubectl get --raw '/readyz?verbose' on it) and its etcd member.",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grace_is_three_times_the_first_answer_and_at_least_the_least() {
        for (first_ms, grace_ms) in [(0, 3000), (100, 3000), (1000, 3000), (1500, 4500), (4000, 12_000)] {
            assert_eq!(
                grace(Duration::from_millis(first_ms), MIN_GRACE),
                Duration::from_millis(grace_ms),
                "{first_ms}"
            );
        }
    }

    async fn answer_after(ms: u64, ok: bool) -> Result<u64> {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        if ok { Ok(ms) } else { Err(Error::failed("read", "refused", "")) }
    }

    #[tokio::test]
    async fn a_straggler_is_cut_off_after_the_grace_and_the_others_are_kept() {
        let round = Stragglers::with_least_grace(Duration::from_millis(300));
        let (fast, slower, straggler) = tokio::join!(
            round.bounded("GET /metrics on cp-1", answer_after(20, true)),
            round.bounded("GET /metrics on cp-2", answer_after(200, true)),
            round.bounded("GET /metrics on cp-3", answer_after(20_000, true)),
        );
        assert_eq!(fast.unwrap(), 20);
        assert_eq!(slower.unwrap(), 200, "within the grace of the first answer");
        let e = straggler.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Timeout);
        assert_eq!(e.what, "GET /metrics on cp-3");
        assert!(e.why.starts_with("no answer 300ms after another replica answered (in 2"), "{}", e.why);
        assert!(round.started.elapsed() < Duration::from_secs(5), "{:?}", round.started.elapsed());
    }

    #[tokio::test]
    async fn failures_do_not_start_the_clock_and_a_lone_read_is_never_cut() {
        let round = Stragglers::with_least_grace(Duration::from_millis(100));
        let (refused, slow) =
            tokio::join!(round.bounded("a", answer_after(10, false)), round.bounded("b", answer_after(400, true)));
        assert!(refused.is_err());
        assert_eq!(slow.unwrap(), 400, "a failure is not an answer to measure the others by");
        let lone = Stragglers::with_least_grace(Duration::from_millis(100));
        assert_eq!(lone.bounded("c", answer_after(400, true)).await.unwrap(), 400);
    }
}
