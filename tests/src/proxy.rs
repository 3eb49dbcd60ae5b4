//! A TCP fault proxy on loopback: pass, delay, or black-hole the traffic of each
//! direction. [`Proxy`] sits in front of one etcd for one client (the invariant suite);
//! [`PeerNet`] puts one proxy in front of each member's peer port of a cluster and knows
//! which member dialed each connection (etcd's `X-Server-From` header), so a member's
//! traffic can be cut or delayed on every connection it takes part in (the functional
//! tester). Black-holed bytes are held, not dropped (as TCP would retransmit them), and
//! flow again on `heal`; a delay is a latency (each chunk leaves `d` after it arrived).
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

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
                    let mode = move || m.lock().map(|m| m[dir]).unwrap_or(Mode::Pass);
                    std::thread::spawn(move || relay(from, to, Vec::new(), mode, c));
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

/// Forwards `from` to `to` (after `first`, bytes already read from `from`), each chunk
/// held while `mode()` says cut and released `d` after its arrival while it says delay.
/// A reader thread stamps the chunks, so a delay is a latency, not a throughput cap.
fn relay(
    mut from: TcpStream,
    mut to: TcpStream,
    first: Vec<u8>,
    mode: impl Fn() -> Mode + Send + 'static,
    closed: Arc<AtomicBool>,
) {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    if !first.is_empty() {
        let _ = tx.send((Instant::now(), first));
    }
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send((Instant::now(), buf[..n].to_vec())).is_err() {
                        break;
                    }
                }
            }
        }
    });
    for (arrived, bytes) in rx {
        // Hold while cut (bounded: the proxy closing ends it), wait out a delay.
        loop {
            match mode() {
                Mode::Pass => break,
                Mode::Delay(d) => {
                    std::thread::sleep((arrived + d).saturating_duration_since(Instant::now()));
                    break;
                }
                Mode::Cut if closed.load(Ordering::Relaxed) => return,
                Mode::Cut => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        if to.write_all(&bytes).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

/// Both modes at once: cut if either cuts, else the delays add up.
fn combine(a: Mode, b: Mode) -> Mode {
    match (a, b) {
        (Mode::Cut, _) | (_, Mode::Cut) => Mode::Cut,
        (Mode::Delay(x), Mode::Delay(y)) => Mode::Delay(x + y),
        (Mode::Delay(x), Mode::Pass) | (Mode::Pass, Mode::Delay(x)) => Mode::Delay(x),
        (Mode::Pass, Mode::Pass) => Mode::Pass,
    }
}

#[derive(Default)]
struct PeerState {
    /// What each member sends.
    tx: Vec<Mode>,
    /// What each member receives.
    rx: Vec<Mode>,
    /// Member index by etcd member id (hex, as in `X-Server-From`).
    ids: BTreeMap<String, usize>,
}

/// The peer network of a cluster: one [`PeerProxy`] in front of each member's peer port
/// and one table of faults, per member and direction. Bytes on a connection that member
/// `a` dialed to member `b` go `a → b` under `tx[a] + rx[b]` and back under
/// `tx[b] + rx[a]`. Which member dialed is read from the first request's
/// `X-Server-From` header: etcd sends `b → a` messages both on connections `b` dials
/// (pipeline POSTs) and on the stream GETs `a` dials to `b`, so cutting only the proxy
/// in front of `a` would not isolate `a`.
#[derive(Clone)]
pub struct PeerNet {
    state: Arc<Mutex<PeerState>>,
}

/// Longest request head read to find `X-Server-From`.
const HEAD_MAX: usize = 16 * 1024;

impl PeerNet {
    /// A network of `members` members, all passing.
    pub fn new(members: usize) -> PeerNet {
        let state = PeerState { tx: vec![Mode::Pass; members], rx: vec![Mode::Pass; members], ids: BTreeMap::new() };
        PeerNet { state: Arc::new(Mutex::new(state)) }
    }

    /// Says which member an etcd member id (hex) is; a re-added member gets a new id.
    pub fn set_id(&self, member: usize, id_hex: &str) {
        if let Ok(mut s) = self.state.lock() {
            s.ids.retain(|_, m| *m != member);
            s.ids.insert(id_hex.to_string(), member);
        }
    }

    /// Sets what `member` sends and receives.
    pub fn set(&self, member: usize, tx: Mode, rx: Mode) {
        if let Ok(mut s) = self.state.lock() {
            s.tx[member] = tx;
            s.rx[member] = rx;
        }
    }

    /// Black-holes everything `member` sends and receives on the peer network.
    pub fn isolate(&self, member: usize) {
        self.set(member, Mode::Cut, Mode::Cut);
    }

    /// Delays everything `member` sends and receives by `d` each way.
    pub fn delay(&self, member: usize, d: Duration) {
        self.set(member, Mode::Delay(d), Mode::Delay(d));
    }

    /// Every member back to passing.
    pub fn heal_all(&self) {
        if let Ok(mut s) = self.state.lock() {
            let s = &mut *s;
            s.tx.iter_mut().chain(s.rx.iter_mut()).for_each(|m| *m = Mode::Pass);
        }
    }

    /// The mode of bytes from `from` to `to`; an unknown member (a request without
    /// `X-Server-From`, or an id not known yet) adds nothing.
    fn mode(&self, from: Option<usize>, to: Option<usize>) -> Mode {
        let Ok(s) = self.state.lock() else { return Mode::Pass };
        let sent = from.and_then(|f| s.tx.get(f).copied()).unwrap_or(Mode::Pass);
        let received = to.and_then(|t| s.rx.get(t).copied()).unwrap_or(Mode::Pass);
        combine(sent, received)
    }

    /// The member of an id, looked up each time: streams dialed before the ids were
    /// known (at bootstrap) or by a re-added member must still be cut.
    fn member_of(&self, id_hex: Option<&str>) -> Option<usize> {
        self.state.lock().ok()?.ids.get(id_hex?).copied()
    }

    /// Starts the proxy in front of `member`, forwarding to its real peer port on
    /// 127.0.0.1; the member advertises the proxy's port as its peer URL.
    pub fn proxy(&self, member: usize, target_port: u16) -> PeerProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy port");
        let port = listener.local_addr().expect("addr").port();
        let closed = Arc::new(AtomicBool::new(false));
        let (net, c) = (self.clone(), closed.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if c.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(client) = client else { continue };
                let (net, c) = (net.clone(), c.clone());
                std::thread::spawn(move || net.serve(client, member, target_port, c));
            }
        });
        PeerProxy { port, closed }
    }

    /// One connection to `to`: read the request head for the dialer, then relay both ways.
    fn serve(&self, client: TcpStream, to: usize, target_port: u16, closed: Arc<AtomicBool>) {
        let head = peek_head(&client);
        let from = header(&head, "x-server-from");
        let Ok(server) = TcpStream::connect(("127.0.0.1", target_port)) else { return };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone()) else { return };
        let (up, down) = (self.clone(), self.clone());
        let (from2, c2) = (from.clone(), closed.clone());
        let back = move || down.mode(Some(to), down.member_of(from2.as_deref()));
        std::thread::spawn(move || relay(server2, client2, Vec::new(), back, c2));
        relay(client, server, head, move || up.mode(up.member_of(from.as_deref()), Some(to)), closed);
    }
}

/// Reads what the dialer sent first, up to the end of its request head (bounded in size
/// and to one second): the bytes are forwarded afterwards.
fn peek_head(stream: &TcpStream) -> Vec<u8> {
    let mut head = Vec::new();
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut buf = [0u8; 4096];
    let mut reader = stream;
    while head.len() < HEAD_MAX && !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match reader.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let _ = stream.set_read_timeout(None);
    head
}

/// A header's value in an HTTP request head (name matched without case).
fn header(head: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(head);
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

/// The proxy in front of one member's peer port.
pub struct PeerProxy {
    port: u16,
    closed: Arc<AtomicBool>,
}

impl PeerProxy {
    /// The port the member advertises as its peer URL.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for PeerProxy {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}
