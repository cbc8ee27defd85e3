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

/// A free port on 127.0.0.1.
pub fn free_port() -> std::io::Result<u16> {
    free_port_on(&[Ipv4Addr::LOCALHOST])
}

/// A loopback port where nothing listens (a dead backend): connections are refused.
pub fn dead_port() -> std::io::Result<u16> {
    free_port()
}
