//! The load balancer in front of the API server replicas: a TCP proxy (like HAProxy in TCP mode
//! with kubeadm's `controlPlaneEndpoint`) that sends each connection to the next replica that
//! accepts it. TLS passes through, so clients see the replica's own certificate.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

pub async fn run(listener: TcpListener, backends: Vec<SocketAddr>) {
    let next = Arc::new(AtomicUsize::new(0));
    let backends = Arc::new(backends);
    loop {
        let Ok((mut client, _)) = listener.accept().await else {
            continue;
        };
        let next = next.clone();
        let backends = backends.clone();
        tokio::spawn(async move {
            let start = next.fetch_add(1, Ordering::Relaxed);
            for k in 0..backends.len() {
                let addr = backends[(start + k) % backends.len()];
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
