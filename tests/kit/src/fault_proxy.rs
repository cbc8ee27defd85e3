//! A TCP proxy on 127.0.0.1 that damages what a server sends back, for fault tests of clients:
//! cut the connection after some bytes, flip one byte inside an HTTP/2 DATA frame (plain-text
//! gRPC, so the damage reaches the application instead of breaking TLS), throttle, or drop the
//! server for good once clients have sent so many bytes (an object store dying mid-upload).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// What happens to the server-to-client bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Damage {
    None,
    /// Close both directions after this many bytes from the server.
    CutAfter(u64),
    /// Flip the middle byte of the n-th HTTP/2 DATA frame (counting from 1) larger than 1 KiB.
    FlipInDataFrame(usize),
    /// At most this many bytes per second.
    Throttle(u64),
    /// Once clients have sent this many bytes in all (every connection counted), every
    /// connection is cut and new ones are refused: the server is gone.
    DropAfterUpload(u64),
}

pub struct FaultProxy {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl FaultProxy {
    pub fn start(upstream: SocketAddr, damage: Damage) -> std::io::Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let uploaded = Arc::new(AtomicU64::new(0));
        let dropped = Arc::new(AtomicBool::new(false));
        listener.set_nonblocking(true)?;
        std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        if dropped.load(Ordering::Relaxed) {
                            drop(client);
                            continue;
                        }
                        let _ = client.set_nonblocking(false);
                        if let Ok(server) = TcpStream::connect(upstream) {
                            match damage {
                                Damage::DropAfterUpload(limit) => {
                                    relay_until(client, server, limit, uploaded.clone(), dropped.clone())
                                }
                                _ => relay(client, server, damage),
                            }
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Ok(FaultProxy { addr, stop })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn relay(client: TcpStream, server: TcpStream, damage: Damage) {
    let (Ok(mut c2), Ok(mut s2)) = (client.try_clone(), server.try_clone()) else { return };
    std::thread::spawn(move || {
        let mut c = client;
        let mut s = server;
        let _ = std::io::copy(&mut c, &mut s);
        let _ = s.shutdown(Shutdown::Write);
    });
    std::thread::spawn(move || {
        let _ = downstream(&mut s2, &mut c2, damage);
        let _ = c2.shutdown(Shutdown::Both);
        let _ = s2.shutdown(Shutdown::Both);
    });
}

/// Relays both ways until the clients' bytes in all pass `limit`; then cuts this connection,
/// and `dropped` makes the others and new ones fail too.
fn relay_until(client: TcpStream, server: TcpStream, limit: u64, uploaded: Arc<AtomicU64>, dropped: Arc<AtomicBool>) {
    let (Ok(mut c2), Ok(mut s2)) = (client.try_clone(), server.try_clone()) else { return };
    std::thread::spawn(move || {
        let (mut c, mut s) = (client, server);
        let mut buf = [0u8; 16 * 1024];
        loop {
            let n = match c.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let total = uploaded.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
            if dropped.load(Ordering::Relaxed) || total > limit {
                dropped.store(true, Ordering::Relaxed);
                break;
            }
            if s.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = c.shutdown(Shutdown::Both);
        let _ = s.shutdown(Shutdown::Both);
    });
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut s2, &mut c2);
        let _ = c2.shutdown(Shutdown::Both);
    });
}

fn downstream(server: &mut TcpStream, client: &mut TcpStream, damage: Damage) -> std::io::Result<()> {
    match damage {
        Damage::None | Damage::DropAfterUpload(_) => std::io::copy(server, client).map(|_| ()),
        Damage::CutAfter(limit) => {
            let mut sent = 0u64;
            let mut buf = [0u8; 16 * 1024];
            loop {
                let n = server.read(&mut buf)?;
                if n == 0 {
                    return Ok(());
                }
                let take = (limit - sent).min(n as u64) as usize;
                client.write_all(&buf[..take])?;
                sent += take as u64;
                if sent >= limit {
                    return Ok(());
                }
            }
        }
        Damage::Throttle(rate) => {
            let mut buf = vec![0u8; (rate / 20).clamp(512, 64 * 1024) as usize];
            loop {
                let n = server.read(&mut buf)?;
                if n == 0 {
                    return Ok(());
                }
                client.write_all(&buf[..n])?;
                std::thread::sleep(Duration::from_secs_f64(n as f64 / rate as f64));
            }
        }
        Damage::FlipInDataFrame(nth) => {
            // HTTP/2 frames: 9-byte header (24-bit length, type, flags, stream id), payload.
            let mut seen = 0;
            loop {
                let mut header = [0u8; 9];
                if server.read_exact(&mut header).is_err() {
                    return Ok(());
                }
                let len = (usize::from(header[0]) << 16) | (usize::from(header[1]) << 8) | usize::from(header[2]);
                let mut payload = vec![0u8; len];
                server.read_exact(&mut payload)?;
                if header[3] == 0 && len > 1024 {
                    seen += 1;
                    if seen == nth {
                        payload[len / 2] ^= 0x5a;
                    }
                }
                client.write_all(&header)?;
                client.write_all(&payload)?;
            }
        }
    }
}
