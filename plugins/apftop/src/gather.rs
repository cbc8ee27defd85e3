//! Sampling every API server replica: `/metrics` (flowcontrol families) and `dump_requests`,
//! concurrently, each with the request timeout. Rates come from the previous sample of the same
//! replica; a replica that fails is reported as such and the others keep refreshing.

use std::time::{Duration, Instant};

use cpkit::Cluster;
use cpkit::Result;
use cpkit::access::Access;
use cpkit::apf::dump::{RequestDump, parse_requests};
use cpkit::apf::flows::{FlowGroup, QueueAttribution, attribute_queues, group, without_observers};
use cpkit::apf::stats::{Stats, aggregate, mark_hottest, replica_stats, selection};
use cpkit::error::{Error, ErrorKind};
use cpkit::metrics::TimedScrape;
use cpkit::replicas::{Replica, client_for};
use serde::Serialize;

const DUMP_REQUESTS: &str = "/debug/api_priority_and_fairness/dump_requests?includeRequestDetails=1";

/// How one replica answered this round.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaStatus {
    pub name: String,
    pub url: String,
    pub ok: bool,
    /// Why it failed (one sentence), or why its flows are unknown.
    pub error: Option<String>,
    #[serde(skip)]
    pub stats: Stats,
    /// The metrics error itself (to fail fast when no replica can be reached at all).
    #[serde(skip)]
    pub failure: Option<Error>,
}

/// One refresh.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    pub context: String,
    pub taken_at: String,
    /// Seconds since the previous sample (0 for the first: no rates yet).
    pub window_seconds: f64,
    pub replicas: Vec<ReplicaStatus>,
    /// All replicas that answered, summed.
    pub total: Stats,
    pub flows: Vec<FlowGroup>,
    /// apftop's (or another observer's) own requests left out of the flows.
    pub observer_requests: usize,
    /// Levels whose queue the flows do not fully explain.
    pub queue_attribution: Vec<QueueAttribution>,
    pub notes: Vec<String>,
}

impl Snapshot {
    pub fn replicas_ok(&self) -> usize {
        self.replicas.iter().filter(|r| r.ok).count()
    }
}

struct Target {
    replica: Replica,
    client: Result<Cluster, Error>,
    previous: Option<TimedScrape>,
}

/// Keeps the previous scrape of every replica between refreshes.
pub struct Sampler {
    context: String,
    targets: Vec<Target>,
    notes: Vec<String>,
    /// Replicas down by what the API says (stale identity lease, static pod not running): shown,
    /// not dialled again.
    down: Vec<(Replica, String)>,
    /// Set once dump_requests is refused: not asked again.
    dumps_forbidden: bool,
}

impl Sampler {
    pub async fn new(cluster: &Cluster, replica_timeout: std::time::Duration) -> Result<Sampler> {
        let survey = cpkit::replicas::discover(cluster, replica_timeout).await?;
        let targets = survey
            .targets(cluster)
            .into_iter()
            .map(|replica| Target { client: client_for(cluster, &replica), replica, previous: None })
            .collect();
        Ok(Sampler {
            context: cluster.info.context.clone(),
            targets,
            notes: survey.read_through.clone().into_iter().collect(),
            down: survey.down(),
            dumps_forbidden: false,
        })
    }

    pub async fn sample(&mut self, with_flows: bool) -> Snapshot {
        let ask_dumps = with_flows && !self.dumps_forbidden;
        // A replica far behind the others (beside a dead etcd member, kube-apiserver answers
        // /metrics after 20 s) is cut off, not waited for to the request timeout.
        let stragglers = cpkit::stragglers::Stragglers::new();
        let stragglers = &stragglers;
        let rounds = self.targets.iter().map(|t| async move {
            let client = match &t.client {
                Ok(c) => c,
                Err(e) => return (Err(e.clone()), None),
            };
            let wanted = selection();
            let what = format!("GET /metrics on {}", t.replica.name);
            let metrics = stragglers.bounded(&what, cpkit::metrics::fetch(client, "/metrics", &wanted));
            let dumps = async {
                if !ask_dumps {
                    return None;
                }
                Some(
                    client
                        .get_ok(
                            DUMP_REQUESTS,
                            &Access::non_resource("get", "/debug/api_priority_and_fairness/dump_requests"),
                        )
                        .await,
                )
            };
            tokio::join!(metrics, dumps)
        });
        let results = futures::future::join_all(rounds).await;
        let mut replicas = Vec::new();
        let mut requests: Vec<(String, RequestDump)> = Vec::new();
        let mut window: f64 = 0.0;
        let mut notes = self.notes.clone();
        for (target, (metrics, dumps)) in self.targets.iter_mut().zip(results) {
            let mut status = ReplicaStatus {
                name: target.replica.name.clone(),
                url: target.replica.url.clone(),
                ok: false,
                error: None,
                stats: Stats::default(),
                failure: None,
            };
            match metrics {
                Ok(scrape) => {
                    let (older, secs) = match &target.previous {
                        Some(p) => (Some(&p.scrape), scrape.taken.duration_since(p.taken).as_secs_f64()),
                        None => (None, 0.0),
                    };
                    status.stats = replica_stats(older, &scrape.scrape, secs);
                    status.ok = true;
                    window = window.max(secs);
                    target.previous = Some(scrape);
                }
                Err(e) => {
                    status.error = Some(one_line(&e));
                    status.failure = Some(e);
                    // A replica that comes back starts a new window.
                    target.previous = None;
                }
            }
            match dumps {
                Some(Ok(response)) => {
                    let text = String::from_utf8_lossy(&response.body);
                    requests.extend(parse_requests(&text).into_iter().map(|r| (target.replica.name.clone(), r)));
                }
                Some(Err(e)) if e.kind == ErrorKind::Forbidden => {
                    self.dumps_forbidden = true;
                    let note = format!(
                        "flows unknown: {} (needs get on nonResourceURL /debug/api_priority_and_fairness/*); showing metrics only",
                        e.what
                    );
                    if !self.notes.contains(&note) {
                        self.notes.push(note.clone());
                        notes.push(note);
                    }
                }
                Some(Err(e)) if status.ok => status.error = Some(format!("flows unknown: {}", one_line(&e))),
                _ => {}
            }
            replicas.push(status);
        }
        for (replica, why) in &self.down {
            replicas.push(ReplicaStatus {
                name: replica.name.clone(),
                url: replica.url.clone(),
                ok: false,
                error: Some(format!("down: {why}")),
                stats: Stats::default(),
                failure: None,
            });
        }
        let mut total = aggregate(replicas.iter().filter(|r| r.ok).map(|r| &r.stats));
        let serving: Vec<(&str, &Stats)> =
            replicas.iter().filter(|r| r.ok).map(|r| (r.name.as_str(), &r.stats)).collect();
        if serving.len() > 1 {
            mark_hottest(&mut total, &serving);
        }
        let (requests, observer_requests) = without_observers(requests);
        // Only when the dumps were read: otherwise nothing is attributed and a note says why.
        let queue_attribution =
            if ask_dumps && !self.dumps_forbidden { attribute_queues(&total.levels, &requests) } else { Vec::new() };
        Snapshot {
            context: self.context.clone(),
            taken_at: jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
            window_seconds: (window * 1000.0).round() / 1000.0,
            replicas,
            total,
            flows: group(&requests, jiff::Timestamp::now()),
            observer_requests,
            queue_attribution,
            notes,
        }
    }

    /// Two samples `interval` apart: the second has rates.
    pub async fn sample_pair(&mut self, interval: Duration, with_flows: bool) -> Snapshot {
        let first = Instant::now();
        let opening = self.sample(false).await;
        // No replica could be reached: the second round would only wait as long again.
        let unreachable = |r: &ReplicaStatus| r.failure.as_ref().is_some_and(|e| e.kind.is_unreachable());
        if !opening.replicas.is_empty() && opening.replicas.iter().all(unreachable) {
            return opening;
        }
        tokio::time::sleep(interval.saturating_sub(first.elapsed())).await;
        self.sample(with_flows).await
    }
}

fn one_line(e: &Error) -> String {
    let text = e.to_string();
    text.lines().next().unwrap_or("").to_string()
}
