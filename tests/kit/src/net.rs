//! Loopback addresses and free ports. Everything the kit serves or dials is in 127.0.0.0/8: the
//! whole block routes to `lo` on Linux, so each simulated node gets its own address.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};

/// The address of control-plane node `index` (0-based): 127.0.0.2, 127.0.0.3, ...
pub fn control_plane_ip(index: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 2 + index as u8)
}

/// The address of worker node `index`: 127.0.1.x, 127.0.2.x, ... (up to 64k workers).
pub fn worker_ip(index: usize) -> Ipv4Addr {
    let n = index + 1;
    Ipv4Addr::new(127, 0, 1 + (n / 250) as u8, 1 + (n % 250) as u8)
}

/// True for 127.0.0.0/8; the kit refuses to dial anything else.
pub fn is_loopback(ip: std::net::IpAddr) -> bool {
    ip.is_loopback()
}

/// A port that is free on every address in `ips` at the time of the call.
pub fn free_port_on(ips: &[Ipv4Addr]) -> std::io::Result<u16> {
    for _ in 0..200 {
        let first = TcpListener::bind(SocketAddr::from((ips[0], 0)))?;
        let port = first.local_addr()?.port();
        let rest: Result<Vec<_>, _> =
            ips[1..].iter().map(|ip| TcpListener::bind(SocketAddr::from((*ip, port)))).collect();
        if rest.is_ok() {
            return Ok(port);
        }
    }
    Err(std::io::Error::new(std::io::ErrorKind::AddrInUse, "no common free port found"))
}

/// A claim on a well-known port (2379, 6443, ...) on some addresses, held by one cluster of the
/// machine at a time: an exclusive `flock` on a file per address and port, which the kernel
/// releases when the holder exits, however it exits. Parallel tests then never race for them.
#[derive(Debug)]
pub struct PortClaim {
    _locks: Vec<std::fs::File>,
}

/// Claims `port` on every address of `ips` when no other cluster holds it and it is free.
pub fn claim_standard(ips: &[Ipv4Addr], port: u16) -> Option<PortClaim> {
    use std::os::unix::io::AsRawFd;
    // Beside the control-plane cache, not in /tmp: the lock files stay for reuse (removing a
    // lock file others may hold open would let two clusters claim the same port).
    let dir = crate::binaries::cache_root().join("port-claims");
    std::fs::create_dir_all(&dir).ok()?;
    let mut locks = Vec::new();
    for ip in ips {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(format!("{ip}-{port}.lock")))
            .ok()?;
        // SAFETY: flock on a descriptor this function owns.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return None;
        }
        locks.push(file);
    }
    is_free_on(ips, port).then_some(PortClaim { _locks: locks })
}

/// True when `port` can be bound on every address in `ips` right now.
pub fn is_free_on(ips: &[Ipv4Addr], port: u16) -> bool {
    let held: Result<Vec<_>, _> = ips.iter().map(|ip| TcpListener::bind(SocketAddr::from((*ip, port)))).collect();
    held.is_ok()
}

/// A free port on 127.0.0.1.
pub fn free_port() -> std::io::Result<u16> {
    free_port_on(&[Ipv4Addr::LOCALHOST])
}

/// Waits until something accepts connections on `addr` (a server the kit started), at most `limit`.
pub fn wait_listening(addr: SocketAddr, limit: std::time::Duration, what: &str) -> std::io::Result<()> {
    let deadline = std::time::Instant::now() + limit;
    while std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(200)).is_err() {
        if std::time::Instant::now() > deadline {
            return Err(std::io::Error::other(format!("{what} did not listen on {addr} within {limit:?}")));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    Ok(())
}

/// A loopback port where nothing listens (a dead backend): connections are refused.
pub fn dead_port() -> std::io::Result<u16> {
    free_port()
}
