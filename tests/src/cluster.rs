//! A 3-member (or n-member) etcd cluster on loopback for the functional tester: own temp
//! data dirs, free ports, every member's peer traffic through a [`PeerNet`] proxy so one
//! member can be black-holed or delayed; per-member agent operations (signals, restart,
//! wipe + remove + re-add), `wait_health`, `leader`, `move_leader` and HashKV compared
//! across members. Binaries come from [`etcd_bin`] / [`etcdctl_bin`].
//!
//! Every wait is bounded; every process is killed by pid on drop.
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::proxy::{PeerNet, PeerProxy};
use crate::{etcd_bin, etcdctl_bin, free_port, wait_child};

/// Raft timings of the members.
#[derive(Clone, Copy, Debug)]
pub struct Timings {
    /// `--heartbeat-interval`.
    pub heartbeat: Duration,
    /// `--election-timeout`.
    pub election: Duration,
}

impl Default for Timings {
    /// etcd's defaults (100 ms / 1 s): shorter ones make a busy 2-core machine elect
    /// spuriously.
    fn default() -> Timings {
        Timings { heartbeat: Duration::from_millis(100), election: Duration::from_millis(1000) }
    }
}

/// One member's view of itself (`etcdctl endpoint status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    /// Its member id.
    pub id: u64,
    /// The leader it knows (0: none).
    pub leader: u64,
    /// Raft term.
    pub term: u64,
    /// Store revision.
    pub revision: i64,
}

/// One member.
pub struct Member {
    /// `m<i>`.
    pub name: String,
    client_port: u16,
    peer_port: u16,
    proxy: PeerProxy,
    child: Option<Child>,
    /// Member id (changes when the member is removed and added again).
    pub id: u64,
    /// Joined an existing cluster (after a re-add) rather than bootstrapping one.
    joined: bool,
}

/// The cluster.
pub struct Cluster {
    dir: tempfile::TempDir,
    /// The members, by index.
    pub members: Vec<Member>,
    /// Their peer network (faults per member).
    pub net: PeerNet,
    /// Raft timings.
    pub timings: Timings,
    token: String,
}

/// How long one etcdctl call may take.
const CALL: &str = "3s";

impl Cluster {
    /// Starts `n` members and waits (at most 60 s) until every one answers and a write
    /// goes through each.
    pub fn start(n: usize, timings: Timings) -> Result<Cluster, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let net = PeerNet::new(n);
        let members = (0..n)
            .map(|i| {
                let peer_port = free_port();
                Member {
                    name: format!("m{i}"),
                    client_port: free_port(),
                    peer_port,
                    proxy: net.proxy(i, peer_port),
                    child: None,
                    id: 0,
                    joined: false,
                }
            })
            .collect();
        let token = format!("ft-{}-{}", std::process::id(), crate::mono_ns());
        let mut cluster = Cluster { dir, members, net, timings, token };
        for i in 0..n {
            cluster.launch(i)?;
        }
        cluster.wait_health(Duration::from_secs(60))?;
        cluster.learn_ids()?;
        Ok(cluster)
    }

    /// Every client URL, comma separated (for `CONCH_ENDPOINTS`).
    pub fn endpoints(&self) -> String {
        (0..self.members.len()).map(|i| self.endpoint(i)).collect::<Vec<_>>().join(",")
    }

    /// Member `i`'s client URL.
    pub fn endpoint(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.members[i].client_port)
    }

    /// Whether member `i`'s process runs (it may be stopped by SIGSTOP).
    pub fn is_up(&self, i: usize) -> bool {
        self.members[i].child.as_ref().is_some_and(|c| crate::alive(c.id() as i32))
    }

    /// Member `i`'s pid, while it runs.
    pub fn pid(&self, i: usize) -> Option<i32> {
        self.members[i].child.as_ref().map(|c| c.id() as i32)
    }

    /// The last lines of member `i`'s log.
    pub fn log_tail(&self, i: usize, lines: usize) -> String {
        let log = crate::read(&self.log_path(i));
        let tail: Vec<&str> = log.lines().rev().take(lines).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    fn log_path(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("{}.log", self.members[i].name))
    }

    fn data_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(&self.members[i].name)
    }

    fn peer_url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.members[i].proxy.port())
    }

    fn initial_cluster(&self) -> String {
        (0..self.members.len())
            .map(|i| format!("{}={}", self.members[i].name, self.peer_url(i)))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Starts member `i`'s etcd on its ports and data dir (does not wait).
    fn launch(&mut self, i: usize) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(i))
            .map_err(|e| format!("log file: {e}"))?;
        let (client, peer) = (self.endpoint(i), format!("http://127.0.0.1:{}", self.members[i].peer_port));
        let state = if self.members[i].joined { "existing" } else { "new" };
        let child = Command::new(etcd_bin())
            .args(["--name", &self.members[i].name, "--data-dir"])
            .arg(self.data_dir(i))
            .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &self.peer_url(i)])
            .args(["--initial-cluster", &self.initial_cluster(), "--initial-cluster-state", state])
            .args(["--initial-cluster-token", &self.token])
            .args(["--heartbeat-interval", &self.timings.heartbeat.as_millis().to_string()])
            .args(["--election-timeout", &self.timings.election.as_millis().to_string()])
            // As recommended for production (and 3.5's default): a member that rejoins after
            // a partition does not force an election on a healthy quorum (3.4's default is
            // off, and a rejoining follower then left the whole cluster leaderless ~2 s).
            .arg("--pre-vote=true")
            .args(["--logger", "zap", "--log-outputs", "stderr"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("{}: {e}", etcd_bin().display()))?;
        self.members[i].child = Some(child);
        Ok(())
    }

    /// Reads every member's id from `member list` (matched by peer URL: a member added
    /// but not started yet has no name) and tells the peer network.
    fn learn_ids(&mut self) -> Result<(), String> {
        let out = self.etcdctl_any(&["member", "list", "-w", "json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| format!("member list: {e}"))?;
        let listed: Vec<(String, u64)> = v["members"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| Some((m["peerURLs"][0].as_str()?.to_string(), m["ID"].as_u64()?)))
            .collect();
        for i in 0..self.members.len() {
            let url = self.peer_url(i);
            let id = listed.iter().find(|(u, _)| *u == url).map(|(_, id)| *id);
            let id = id.ok_or_else(|| format!("member list does not have {url}: {listed:?}"))?;
            self.members[i].id = id;
            self.net.set_id(i, &format!("{id:x}"));
        }
        Ok(())
    }

    /// `etcdctl` against member `i` alone.
    pub fn etcdctl(&self, i: usize, args: &[&str]) -> Output {
        self.etcdctl_at(&self.endpoint(i), args)
    }

    /// `etcdctl` against every member's endpoint.
    pub fn etcdctl_any(&self, args: &[&str]) -> Output {
        self.etcdctl_at(&self.endpoints(), args)
    }

    fn etcdctl_at(&self, endpoints: &str, args: &[&str]) -> Output {
        Command::new(etcdctl_bin())
            .env("ETCDCTL_API", "3")
            .args(["--endpoints", endpoints, "--dial-timeout", "1s", "--command-timeout", CALL])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| Output {
                status: std::os::unix::process::ExitStatusExt::from_raw(127 << 8),
                stdout: Vec::new(),
                stderr: e.to_string().into_bytes(),
            })
    }

    /// Sends `sig` to member `i`'s etcd.
    pub fn signal(&self, i: usize, sig: Signal) {
        if let Some(pid) = self.pid(i) {
            let _ = kill(Pid::from_raw(pid), sig);
        }
    }

    /// Stops member `i` with `sig` (SIGCONT first, so a frozen member can act on it) and
    /// reaps it; SIGKILL after 10 s. Its data stays.
    pub fn stop(&mut self, i: usize, sig: Signal) {
        self.signal(i, Signal::SIGCONT);
        if let Some(mut child) = self.members[i].child.take() {
            let _ = kill(Pid::from_raw(child.id() as i32), sig);
            if wait_child(&mut child, Duration::from_secs(10)).is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    /// Freezes member `i` (SIGSTOP).
    pub fn freeze(&self, i: usize) {
        self.signal(i, Signal::SIGSTOP);
    }

    /// Thaws member `i` (SIGCONT).
    pub fn thaw(&self, i: usize) {
        self.signal(i, Signal::SIGCONT);
    }

    /// Starts a stopped member `i` again on the same data; a running one is left alone.
    pub fn restart(&mut self, i: usize) -> Result<(), String> {
        if self.members[i].child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_none()) {
            return Ok(());
        }
        self.members[i].child = None;
        self.launch(i)
    }

    /// Takes stopped member `i` out of the cluster: wipes its data and `member remove`s
    /// it through the others (retried for at most 20 s).
    pub fn remove(&mut self, i: usize) -> Result<(), String> {
        assert!(self.members[i].child.is_none(), "remove() wants a stopped member");
        let _ = std::fs::remove_dir_all(self.data_dir(i));
        let others = self.others(i);
        let id = format!("{:x}", self.members[i].id);
        retry(Duration::from_secs(20), || {
            let out = self.etcdctl_at(&others, &["member", "remove", &id]);
            let text = String::from_utf8_lossy(&out.stderr).trim().to_string();
            (out.status.success() || text.contains("not found")).then_some(()).ok_or(text)
        })
        .map_err(|e| format!("member remove {id}: {e}"))
    }

    /// Brings removed member `i` back as a new member: `member add` under the same name
    /// and peer URL, then start it with `--initial-cluster-state existing` on an empty
    /// data dir and learn its new id (bounded).
    pub fn add_back(&mut self, i: usize) -> Result<(), String> {
        let others = self.others(i);
        let (name, url) = (self.members[i].name.clone(), self.peer_url(i));
        retry(Duration::from_secs(20), || {
            let out = self.etcdctl_at(&others, &["member", "add", &name, "--peer-urls", &url]);
            let text = String::from_utf8_lossy(&out.stderr).trim().to_string();
            (out.status.success() || text.contains("already exists")).then_some(()).ok_or(text)
        })
        .map_err(|e| format!("member add {name}: {e}"))?;
        let _ = std::fs::remove_dir_all(self.data_dir(i));
        self.members[i].joined = true;
        self.members[i].child = None;
        self.launch(i)?;
        retry(Duration::from_secs(30), || self.learn_ids())
    }

    fn others(&self, i: usize) -> String {
        (0..self.members.len()).filter(|j| *j != i).map(|j| self.endpoint(j)).collect::<Vec<_>>().join(",")
    }

    /// A write through every running member, each retried until it lands (bounded by
    /// `timeout` overall). Returns how long it took.
    pub fn wait_health(&self, timeout: Duration) -> Result<Duration, String> {
        let begin = Instant::now();
        for i in 0..self.members.len() {
            let left = timeout.saturating_sub(begin.elapsed());
            retry(left, || {
                let out = self.etcdctl(i, &["put", "/ft/health", &self.members[i].name]);
                out.status
                    .success()
                    .then_some(())
                    .ok_or_else(|| String::from_utf8_lossy(&out.stderr).trim().to_string())
            })
            .map_err(|e| format!("{} not healthy within {timeout:?}: {e}", self.members[i].name))?;
        }
        Ok(begin.elapsed())
    }

    /// Member `i`'s own status, if it answers.
    pub fn status(&self, i: usize) -> Option<Status> {
        let out = self.etcdctl(i, &["endpoint", "status", "-w", "json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        let s = &v[0]["Status"];
        Some(Status {
            id: s["header"]["member_id"].as_u64()?,
            // JSON leaves a zero out: no "leader" is no leader.
            leader: s["leader"].as_u64().unwrap_or(0),
            term: s["raftTerm"].as_u64().unwrap_or(0),
            revision: s["header"]["revision"].as_i64().unwrap_or(0),
        })
    }

    /// The index of the leader, as the answering members see it (the first one that
    /// names a leader they agree is a member).
    pub fn leader(&self) -> Option<usize> {
        (0..self.members.len())
            .filter_map(|i| self.status(i))
            .find_map(|s| self.members.iter().position(|m| m.id == s.leader && s.leader != 0))
    }

    /// Waits (bounded) for a leader the running members agree on.
    pub fn wait_leader(&self, timeout: Duration) -> Option<usize> {
        retry(timeout, || self.leader().ok_or(())).ok()
    }

    /// Moves leadership to member `to` (`etcdctl move-leader`).
    pub fn move_leader(&self, to: usize) -> Result<(), String> {
        let id = format!("{:x}", self.members[to].id);
        let out = self.etcdctl_any(&["move-leader", &id]);
        out.status.success().then_some(()).ok_or_else(|| String::from_utf8_lossy(&out.stderr).trim().to_string())
    }

    /// HashKV of every member at one revision (the current one of the first member that
    /// answers). Retried (bounded) while members catch up; `Err` says how they differ.
    pub fn hashkv_equal(&self, timeout: Duration) -> Result<(i64, u64), String> {
        let mut last = String::new();
        let begin = Instant::now();
        for _ in 0..100 {
            if begin.elapsed() > timeout {
                break;
            }
            let rev = (0..self.members.len()).find_map(|i| self.status(i)).map(|s| s.revision);
            let Some(rev) = rev else {
                last = "no member answers endpoint status".into();
                continue;
            };
            let hashes: Vec<Option<u64>> = (0..self.members.len()).map(|i| self.hashkv(i, rev)).collect();
            if let Some(Some(h)) = hashes.first() {
                if hashes.iter().all(|x| *x == Some(*h)) {
                    return Ok((rev, *h));
                }
            }
            last = format!("at revision {rev}: {hashes:?}");
            std::thread::sleep(Duration::from_millis(300));
        }
        Err(format!("HashKV differs {last}"))
    }

    fn hashkv(&self, i: usize, rev: i64) -> Option<u64> {
        let out = self.etcdctl(i, &["endpoint", "hashkv", "--rev", &rev.to_string(), "-w", "json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        v[0]["HashKV"]["hash"].as_u64()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.signal(i, Signal::SIGCONT);
            if let Some(mut child) = self.members[i].child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// Calls `f` every 100 ms until it succeeds or `timeout` passes (at least once).
pub fn retry<T, E>(timeout: Duration, mut f: impl FnMut() -> Result<T, E>) -> Result<T, E> {
    let end = Instant::now() + timeout;
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() >= end => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}
