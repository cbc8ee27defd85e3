//! What several checks read (version, control-plane pods, replicas, scrapes), fetched once and
//! shared: every check awaits the same future instead of sending the same request again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cpkit::Cluster;
use cpkit::controlplane::{ComponentPod, Provider, detect_provider};
use cpkit::error::Error;
use cpkit::metrics::{Scrape, TimedScrape};
use cpkit::resources::Select;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use k8s_openapi::api::core::v1::Node;
use tokio::sync::OnceCell;

/// Options every check may look at.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Window between the two /metrics scrapes (0 = one scrape, no rates).
    pub sample: Duration,
    /// Budget of one check.
    pub check_timeout: Duration,
    /// Budget of a direct dial to a replica (connect and TLS handshake).
    pub replica_timeout: Duration,
    pub etcd_endpoints: Vec<String>,
    pub etcd_tls: cpkit::etcd::direct::EtcdTlsArgs,
}

pub use cpkit::replicas::{Replica, Survey};

pub use cpkit::checks::apiserver::VersionInfo;

/// The first /metrics scrape of every target.
pub type FirstScrapes = Arc<Vec<(Replica, Result<TimedScrape, Error>)>>;

/// One target's first scrape, started once and awaited by whoever needs it.
type FirstScrape = Shared<BoxFuture<'static, Result<TimedScrape, Error>>>;

/// Two scrapes of every target `sample` apart: (older, newer, seconds between them).
pub type ScrapePairs = Arc<Vec<(Replica, Result<(Scrape, Scrape, f64), Error>)>>;

pub struct Ctx {
    pub cluster: Cluster,
    pub options: CheckOptions,
    version: OnceCell<Result<VersionInfo, Error>>,
    control_plane_pods: OnceCell<Result<Arc<Vec<ComponentPod>>, Error>>,
    node_sample: OnceCell<Result<Arc<Vec<Node>>, Error>>,
    survey: OnceCell<Result<Arc<Survey>, Error>>,
    first_scrapes: OnceCell<Arc<Vec<(Replica, FirstScrape)>>>,
    scrape_pairs: OnceCell<ScrapePairs>,
}

fn parse_http_date(text: &str) -> Option<jiff::Timestamp> {
    jiff::fmt::rfc2822::parse(text).ok().map(|z| z.timestamp())
}

impl Ctx {
    pub fn new(cluster: Cluster, options: CheckOptions) -> Ctx {
        Ctx {
            cluster,
            options,
            version: OnceCell::new(),
            control_plane_pods: OnceCell::new(),
            node_sample: OnceCell::new(),
            survey: OnceCell::new(),
            first_scrapes: OnceCell::new(),
            scrape_pairs: OnceCell::new(),
        }
    }

    pub async fn version(&self) -> Result<VersionInfo, Error> {
        self.version
            .get_or_init(|| async {
                let started = Instant::now();
                let (v, r) = self.cluster.version_answer().await?;
                let round_trip = started.elapsed();
                let clock_skew = r.header("date").and_then(parse_http_date).map(|server| {
                    let local_at_answer =
                        jiff::Timestamp::now() - jiff::SignedDuration::try_from(round_trip / 2).unwrap_or_default();
                    server.as_second() - local_at_answer.as_second()
                });
                Ok(VersionInfo {
                    git_version: if v.git_version.is_empty() { "unknown".into() } else { v.git_version },
                    round_trip,
                    clock_skew,
                })
            })
            .await
            .clone()
    }

    /// kube-system pods labelled tier=control-plane (kubeadm's static pods).
    pub async fn control_plane_pods(&self) -> Result<Arc<Vec<ComponentPod>>, Error> {
        self.control_plane_pods
            .get_or_init(|| async { Ok(Arc::new(cpkit::replicas::read_control_plane_pods(&self.cluster).await?)) })
            .await
            .clone()
    }

    /// A few nodes (for the managed-provider hints).
    pub async fn node_sample(&self) -> Result<Arc<Vec<Node>>, Error> {
        self.node_sample
            .get_or_init(|| async { Ok(Arc::new(self.cluster.first::<Node>(Select::all(), 5).await?)) })
            .await
            .clone()
    }

    /// The managed offering, when the control plane is one (none of its pods visible and a
    /// provider's marks on the version or nodes).
    pub async fn managed(&self) -> Option<Provider> {
        let (version, pods, nodes) = tokio::join!(self.version(), self.control_plane_pods(), self.node_sample());
        let pods_visible = pods.as_ref().map(|p| !p.is_empty()).unwrap_or(false);
        if pods_visible {
            return None;
        }
        let label_keys: Vec<String> = nodes
            .as_ref()
            .map(|ns| ns.iter().flat_map(|n| n.metadata.labels.clone().unwrap_or_default().into_keys()).collect())
            .unwrap_or_default();
        detect_provider(version.as_ref().map(|v| v.git_version.as_str()).unwrap_or(""), &label_keys)
    }

    /// Every API server replica judged alive or down (identity leases, the `kubernetes`
    /// EndpointSlice, the kube-apiserver pods, one dial each).
    pub async fn survey(&self) -> Result<Arc<Survey>, Error> {
        self.survey
            .get_or_init(|| async {
                // Read alongside the EndpointSlice and the leases: one round trip, not two.
                let apiservers = async {
                    self.control_plane_pods()
                        .await
                        .map(|p| p.iter().filter(|c| c.component == "kube-apiserver").cloned().collect())
                        .unwrap_or_default()
                };
                Ok(Arc::new(cpkit::replicas::survey(&self.cluster, apiservers, self.options.replica_timeout).await?))
            })
            .await
            .clone()
    }

    /// Where per-replica reads (health, /metrics) go: each reachable replica (APF and counters
    /// are per replica), else the configured server.
    pub async fn read_targets(&self) -> Vec<Replica> {
        // Both are needed; asked together they cost one round trip, not two.
        let (managed, survey) = tokio::join!(self.managed(), self.survey());
        match survey {
            Ok(s) if managed.is_none() => s.targets(&self.cluster),
            _ => vec![cpkit::replicas::configured_server(&self.cluster)],
        }
    }

    /// Why per-replica reads go through the configured server, when they do.
    pub async fn read_through(&self) -> Option<String> {
        if self.managed().await.is_some() {
            return None;
        }
        self.survey().await.ok().and_then(|s| s.read_through.clone())
    }

    /// Every target's first scrape, started once (as early as possible); each can be awaited on
    /// its own, so a replica that answers slowly holds up nobody else's window.
    async fn first_scrape_futures(&self) -> Arc<Vec<(Replica, FirstScrape)>> {
        self.first_scrapes
            .get_or_init(|| async {
                let targets = self.read_targets().await;
                // A replica far behind the others (beside a dead etcd member, kube-apiserver
                // answers /metrics after 20 s) is cut off, not waited for to the request timeout.
                let round = Arc::new(cpkit::stragglers::Stragglers::new());
                let futures = targets.into_iter().map(|target| {
                    let round = round.clone();
                    let cluster = self.cluster.clone();
                    let replica = target.clone();
                    let first = async move {
                        let what = format!("GET /metrics on {}", replica.name);
                        round.bounded(&what, scrape(cluster, replica)).await
                    };
                    (target, first.boxed().shared())
                });
                Arc::new(futures.collect())
            })
            .await
            .clone()
    }

    /// The first scrape of every target.
    pub async fn first_scrapes(&self) -> FirstScrapes {
        let firsts = self.first_scrape_futures().await;
        let results = futures::future::join_all(firsts.iter().map(|(_, first)| first.clone())).await;
        Arc::new(firsts.iter().map(|(replica, _)| replica.clone()).zip(results).collect())
    }

    /// Pairs of scrapes `sample` apart (taken once; the load and resources checks share them).
    pub async fn scrape_pairs(&self) -> ScrapePairs {
        self.scrape_pairs.get_or_init(|| async { Arc::new(self.take_scrape_pairs().await) }).await.clone()
    }

    async fn take_scrape_pairs(&self) -> Vec<(Replica, Result<(Scrape, Scrape, f64), Error>)> {
        let firsts = self.first_scrape_futures().await;
        futures::future::join_all(firsts.iter().map(|(replica, first)| async move {
            match first.clone().await {
                Err(e) => (replica.clone(), Err(e)),
                // One scrape: quantiles since the server started, no rates.
                Ok(older) if self.options.sample.is_zero() => {
                    (replica.clone(), Ok((Scrape::default(), older.scrape, 0.0)))
                }
                Ok(older) => {
                    // Its second request goes out `sample` after its first did: both take about
                    // as long, so the answers arrive about `sample` apart (rates use the actual
                    // difference), whatever the other replicas take.
                    tokio::time::sleep(self.options.sample.saturating_sub(older.requested.elapsed())).await;
                    match scrape(self.cluster.clone(), replica.clone()).await {
                        Ok(newer) => {
                            let secs = newer.taken.duration_since(older.taken).as_secs_f64();
                            (replica.clone(), Ok((older.scrape, newer.scrape, secs)))
                        }
                        Err(e) => (replica.clone(), Err(e)),
                    }
                }
            }
        }))
        .await
    }
}

/// One /metrics scrape of `replica` (owned arguments: the first scrapes outlive the borrow).
async fn scrape(cluster: Cluster, replica: Replica) -> Result<TimedScrape, Error> {
    let client = cpkit::replicas::client_for(&cluster, &replica)?;
    cpkit::metrics::fetch(&client, "/metrics", &cpkit::load::selection()).await
}
