//! The load balancer in front of the API server replicas: a TCP proxy (like HAProxy in TCP mode
//! with kubeadm's `controlPlaneEndpoint`) that sends each connection to the next replica that
//! accepts it. TLS passes through, so clients see the replica's own certificate. The real world's
//! balancer also checks each replica's `/readyz` (kubeadm's `ha-considerations.md` HAProxy
//! config: `option httpchk GET /readyz`, `http-check expect status 200`).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

/// Which backends passed their last health check.
pub type Readiness = Arc<Mutex<Vec<Arc<AtomicBool>>>>;

/// Checks every backend's `/readyz` each second (anonymous, over TLS without verification, as
/// HAProxy's `check-ssl verify none`).
pub fn readyz_checker(rt: &tokio::runtime::Runtime, backends: Vec<SocketAddr>) -> Readiness {
    let flags: Vec<Arc<AtomicBool>> = backends.iter().map(|_| Arc::new(AtomicBool::new(true))).collect();
    for (addr, flag) in backends.into_iter().zip(flags.iter().cloned()) {
        rt.spawn(async move {
            let mut config = kube::Config::new(format!("https://{addr}").parse().expect("a socket address is a URI"));
            config.accept_invalid_certs = true;
            config.connect_timeout = Some(Duration::from_secs(1));
            config.read_timeout = Some(Duration::from_secs(2));
            let Ok(client) = kube::Client::try_from(config) else { return };
            loop {
                let request =
                    http::Request::get("/readyz").body(Vec::<u8>::new()).map(|r| r.map(kube::client::Body::from));
                let ok = match request {
                    Ok(r) => matches!(client.send(r).await, Ok(resp) if resp.status() == 200),
                    Err(_) => false,
                };
                flag.store(ok, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }
    Arc::new(Mutex::new(flags))
}

/// Like `run`, preferring backends whose health check passed (all of them when none did).
pub async fn run_checked(listener: TcpListener, backends: Vec<SocketAddr>, ready: Readiness) {
    serve(listener, backends, Some(ready)).await
}

pub async fn run(listener: TcpListener, backends: Vec<SocketAddr>) {
    serve(listener, backends, None).await
}

async fn serve(listener: TcpListener, backends: Vec<SocketAddr>, ready: Option<Readiness>) {
    let next = Arc::new(AtomicUsize::new(0));
    let backends = Arc::new(backends);
    loop {
        let Ok((mut client, _)) = listener.accept().await else {
            continue;
        };
        let next = next.clone();
        let backends = backends.clone();
        let healthy: Vec<bool> = match &ready {
            Some(r) => r.lock().map(|f| f.iter().map(|b| b.load(Ordering::Relaxed)).collect()).unwrap_or_default(),
            None => vec![],
        };
        tokio::spawn(async move {
            let start = next.fetch_add(1, Ordering::Relaxed);
            let any_healthy = healthy.iter().any(|h| *h);
            for k in 0..backends.len() {
                let i = (start + k) % backends.len();
                if any_healthy && !healthy.get(i).copied().unwrap_or(true) {
                    continue;
                }
                let addr = backends[i];
                let attempt = tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(addr)).await;
                if let Ok(Ok(mut upstream)) = attempt {
                    let _ = client.set_nodelay(true);
                    let _ = upstream.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    return;
                }
            }
            // No replica up: close, as an LB with no healthy backend does.
        });
    }
}
