//! A TCP fault proxy on loopback, one per client: pass, delay, or black-hole the traffic
//! of each direction. Black-holed bytes are held, not dropped (as TCP would retransmit
//! them), and flow again on `heal`.
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a direction does with bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Forward at once.
    Pass,
    /// Forward after this delay.
    Delay(Duration),
    /// Hold everything until healed.
    Cut,
}

/// One proxy: a listener on a free loopback port forwarding to `target`.
pub struct Proxy {
    port: u16,
    modes: Arc<Mutex<[Mode; 2]>>,
    closed: Arc<AtomicBool>,
}

/// Direction index: client → etcd.
pub const UP: usize = 0;
/// Direction index: etcd → client.
pub const DOWN: usize = 1;

impl Proxy {
    /// Starts forwarding to `target_port` on 127.0.0.1.
    pub fn start(target_port: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy port");
        let port = listener.local_addr().expect("addr").port();
        let modes = Arc::new(Mutex::new([Mode::Pass, Mode::Pass]));
        let closed = Arc::new(AtomicBool::new(false));
        let (m, c) = (modes.clone(), closed.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if c.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", target_port)) else { continue };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                for (from, to, dir) in [(&client, &server, UP), (&server, &client, DOWN)] {
                    let (Ok(from), Ok(to)) = (from.try_clone(), to.try_clone()) else { continue };
                    let (m, c) = (m.clone(), c.clone());
                    std::thread::spawn(move || pump(from, to, dir, m, c));
                }
            }
        });
        Proxy { port, modes, closed }
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Sets both directions.
    pub fn set(&self, mode: Mode) {
        if let Ok(mut m) = self.modes.lock() {
            *m = [mode, mode];
        }
    }

    /// Black-holes both directions.
    pub fn cut(&self) {
        self.set(Mode::Cut);
    }

    /// Delays both directions.
    pub fn delay(&self, d: Duration) {
        self.set(Mode::Delay(d));
    }

    /// Back to passing everything.
    pub fn heal(&self) {
        self.set(Mode::Pass);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::Relaxed);
        self.heal();
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, dir: usize, modes: Arc<Mutex<[Mode; 2]>>, closed: Arc<AtomicBool>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        // Hold while cut (bounded: the proxy closing ends it), wait while delayed.
        loop {
            let mode = modes.lock().map(|m| m[dir]).unwrap_or(Mode::Pass);
            match mode {
                Mode::Pass => break,
                Mode::Delay(d) => {
                    std::thread::sleep(d);
                    break;
                }
                Mode::Cut if closed.load(Ordering::Relaxed) => return,
                Mode::Cut => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}
