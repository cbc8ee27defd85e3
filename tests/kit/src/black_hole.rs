//! Addresses that accept TCP connections and never answer: API server replica addresses that are
//! not reachable from this machine (a firewall that swallows packets, a private address behind a
//! bastion). Each cluster claims its own addresses in 127.0.250.0/24 on the API server's port.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::net::PortClaim;

pub struct BlackHole {
    pub ips: Vec<Ipv4Addr>,
    pub port: u16,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
    _claim: PortClaim,
}

impl BlackHole {
    /// `count` addresses listening on `port` that never answer.
    pub fn start(count: usize, port: u16) -> std::io::Result<BlackHole> {
        let span = count.max(1);
        for group in 0..(250 / span) {
            let ips: Vec<Ipv4Addr> =
                (0..count).map(|i| Ipv4Addr::new(127, 0, 250, (1 + group * span + i) as u8)).collect();
            let Some(claim) = crate::net::claim_standard(&ips, port) else { continue };
            let stop = Arc::new(AtomicBool::new(false));
            let mut threads = Vec::new();
            for ip in &ips {
                let listener = TcpListener::bind(SocketAddr::from((*ip, port)))?;
                listener.set_nonblocking(true)?;
                let stop = stop.clone();
                threads.push(std::thread::spawn(move || swallow(listener, &stop)));
            }
            return Ok(BlackHole { ips, port, stop, threads, _claim: claim });
        }
        Err(std::io::Error::new(std::io::ErrorKind::AddrInUse, format!("no free black-hole addresses for port {port}")))
    }
}

/// Accepts and holds every connection without reading or writing.
fn swallow(listener: TcpListener, stop: &AtomicBool) {
    let mut held: Vec<TcpStream> = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => held.push(stream),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
