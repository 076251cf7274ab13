//! Harness for dhtd's end-to-end tests: swarms of real nodes on loopback.
//!
//! Every node binds a distinct 127.x.y.1 address, each on its own /24 (so per-IP rules apply as
//! on a real network) with an OS-chosen port, and bootstraps only from
//! other swarm nodes: no name is resolved and nothing leaves the machine.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use dhtd::Config;

pub use dhtd::swarm::{node_ip, swarm_config as test_config, LocalSwarm as Swarm};

/// Starts a swarm (see [`dhtd::swarm::LocalSwarm::start`]) and waits until
/// every node has bootstrapped.
pub async fn start_swarm(n: usize, seed: u64, tweak: impl Fn(usize, &mut Config)) -> Swarm {
    let swarm = Swarm::start(n, seed, tweak).await.unwrap();
    let behind = swarm.wait_bootstrapped(Duration::from_secs(60)).await;
    assert_eq!(
        behind, 0,
        "{behind} of {n} nodes did not bootstrap within 60 s"
    );
    swarm
}

/// Starts a swarm whose nodes all read `clock` (a manual one), moving it
/// on 100 ms at a time until every node has bootstrapped: a node alone
/// waits on its clock to try again.
pub async fn start_swarm_on(
    clock: &dhtd::ManualClock,
    n: usize,
    seed: u64,
    tweak: impl Fn(usize, &mut Config),
) -> Swarm {
    let swarm = Swarm::start(n, seed, |i, c| {
        c.clock = dhtd::Clock::Manual(clock.clone());
        tweak(i, c);
    })
    .await
    .unwrap();
    let joined = advance_until(clock, Duration::from_secs(60), || {
        swarm.nodes.iter().all(|n| n.is_bootstrapped())
    })
    .await;
    assert!(joined, "the swarm did not bootstrap within 60 s");
    swarm
}

/// Moves `clock` on 100 ms at a time, giving the nodes 20 ms of real time
/// after each step, until `check` holds or `timeout` of real time passes.
pub async fn advance_until(
    clock: &dhtd::ManualClock,
    timeout: Duration,
    mut check: impl FnMut() -> bool,
) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        clock.advance(Duration::from_millis(100));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `check` every 50 ms until it returns true or `timeout` passes.
pub async fn wait_until<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A fresh, empty state directory under the system's temp dir.
pub fn temp_state_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dhtd-e2e-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The median and 90th percentile of `values`.
///
/// ```
/// let mut v = [5, 1, 4, 2, 3];
/// assert_eq!(dhtd_tests::median_p90(&mut v), Some((3, 5)));
/// ```
pub fn median_p90<T: Copy + Ord>(values: &mut [T]) -> Option<(T, T)> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let at = |p: f64| values[((values.len() - 1) as f64 * p).round() as usize];
    Some((at(0.5), at(0.9)))
}

/// A bare UDP socket speaking KRPC by hand, for wire-level checks.
pub struct RawPeer {
    /// The socket, with a short read timeout.
    pub socket: std::net::UdpSocket,
}

impl RawPeer {
    /// Binds `ip`:0 with a 1 s read timeout.
    pub fn bind(ip: IpAddr) -> RawPeer {
        let socket = std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(1)))
            .unwrap();
        RawPeer { socket }
    }

    /// Sends `datagram` to `to` and returns the first response or error from
    /// `to`, if one arrives within the timeout. Queries the node sends us
    /// meanwhile (it pings nodes that query it) are skipped.
    pub fn ask(&self, to: SocketAddr, datagram: &[u8]) -> Option<Vec<u8>> {
        self.socket.send_to(datagram, to).unwrap();
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline {
            let reply = self.receive_from(to)?;
            let is_query = matches!(
                dhtd_protocol::krpc::Message::decode(&reply),
                Ok(dhtd_protocol::krpc::Message {
                    body: dhtd_protocol::krpc::Body::Query { .. },
                    ..
                })
            );
            if !is_query {
                return Some(reply);
            }
        }
        None
    }

    /// The next datagram from `from`, if one arrives within the timeout.
    pub fn receive_from(&self, from: SocketAddr) -> Option<Vec<u8>> {
        let mut buf = [0u8; 2048];
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline {
            match self.socket.recv_from(&mut buf) {
                Ok((n, src)) if src == from => return Some(buf[..n].to_vec()),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
        None
    }

    /// Asks `node` for the nodes it knows closest to `target`; their addresses.
    pub fn find_node(&self, node: SocketAddr, target: dhtd::NodeId) -> Vec<SocketAddr> {
        use dhtd_protocol::krpc::{Body, Message, Query};
        let q = Self::query(
            b"fn",
            dhtd::NodeId([1; 20]),
            Query::FindNode { target, want: None },
            false,
        );
        let reply = self
            .ask(node, &q)
            .unwrap_or_else(|| panic!("{node} did not answer find_node"));
        match Message::decode(&reply) {
            Ok(Message {
                body: Body::Response(r),
                ..
            }) => r
                .nodes
                .iter()
                .chain(r.nodes6.iter())
                .flat_map(|n| n.iter())
                .map(|n| n.addr)
                .collect(),
            other => panic!("{node} answered find_node with {other:?}"),
        }
    }

    /// Asks `node` for the peers of `info_hash`: the write token it answers with.
    pub fn token_for(&self, node: SocketAddr, info_hash: dhtd::InfoHash) -> Vec<u8> {
        use dhtd_protocol::krpc::{Body, Message, Query};
        let get = Query::GetPeers {
            info_hash,
            want: None,
            scrape: false,
            noseed: false,
        };
        let reply = self
            .ask(node, &Self::query(b"gp", dhtd::NodeId([1; 20]), get, false))
            .unwrap_or_else(|| panic!("{node} did not answer get_peers"));
        match Message::decode(&reply).map(|m| m.body) {
            Ok(Body::Response(r)) => r.token.expect("get_peers carries a token").to_vec(),
            other => panic!("{node} answered get_peers with {other:?}"),
        }
    }

    /// A query from this peer (id `sender`), encoded.
    pub fn query(
        tid: &[u8],
        sender: dhtd::NodeId,
        query: dhtd_protocol::krpc::Query<'_>,
        read_only: bool,
    ) -> Vec<u8> {
        dhtd_protocol::krpc::Message {
            transaction_id: tid,
            version: None,
            requester_ip: None,
            read_only,
            body: dhtd_protocol::krpc::Body::Query { sender, query },
        }
        .to_bytes()
    }
}

/// The KRPC error code of `reply`, if it is an error.
pub fn error_code(reply: &[u8]) -> Option<i64> {
    use dhtd_protocol::krpc::{Body, Message};
    match Message::decode(reply).ok()?.body {
        Body::Error(e) => Some(e.code.code()),
        _ => None,
    }
}

/// A third-party DHT node, as the interop tests drive it.
pub trait Client {
    /// Its DHT address.
    fn addr(&self) -> SocketAddr;
    /// Its name and version.
    fn version(&self) -> String;
    /// The addresses in its routing table.
    fn table(&mut self) -> Vec<SocketAddr>;
    /// Runs a DHT lookup for `info_hash`; the peers it found.
    fn get_peers(&mut self, info_hash: &dhtd::InfoHash) -> Vec<SocketAddr>;
    /// Announces `info_hash`; the port other nodes should store for it.
    fn announce(&mut self, info_hash: &dhtd::InfoHash) -> u16;
}

/// A third-party DHT node in a child process, driven by a small script
/// that speaks one command per line on stdin and one JSON object per line
/// on stdout (`tests/interop/*`): `info`, `nodes`, `get_peers HEX`,
/// `announce HEX`, `quit`. The process is killed by its PID when dropped.
pub struct ScriptNode {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    lines: std::sync::mpsc::Receiver<String>,
    /// Its node id.
    pub id: dhtd::NodeId,
    /// Its DHT address.
    pub addr: SocketAddr,
    /// What it says it is.
    pub version: String,
}

impl ScriptNode {
    /// Starts `program args…` and reads its `info`.
    pub fn start(program: &str, args: &[String], ip: IpAddr) -> ScriptNode {
        use std::io::BufRead;
        let mut child = std::process::Command::new(program)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut node = ScriptNode {
            child,
            stdin,
            lines,
            id: dhtd::NodeId([0; 20]),
            addr: SocketAddr::new(ip, 0),
            version: String::new(),
        };
        let info = node.ask("info", Duration::from_secs(20));
        node.id = info["id"].as_str().unwrap().parse().unwrap();
        node.addr = SocketAddr::new(ip, u16::try_from(info["port"].as_u64().unwrap()).unwrap());
        node.version = info["version"].as_str().unwrap_or_default().to_owned();
        node
    }

    /// Sends one command and waits for its answer.
    pub fn ask(&mut self, command: &str, timeout: Duration) -> serde_json::Value {
        use std::io::Write;
        writeln!(self.stdin, "{command}").unwrap();
        self.stdin.flush().unwrap();
        let line = match self.lines.recv_timeout(timeout) {
            Ok(line) => line,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                panic!("no answer to `{command}` within {timeout:?}")
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                let status = self.child.wait();
                panic!("the client exited while answering `{command}`: {status:?} (its stderr is above)")
            }
        };
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("`{command}` answered {line:?}: {e}"))
    }
}

impl Client for ScriptNode {
    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn version(&self) -> String {
        self.version.clone()
    }

    fn table(&mut self) -> Vec<SocketAddr> {
        let v = self.ask("nodes", Duration::from_secs(20));
        v["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n[1].as_str().unwrap().parse().unwrap())
            .collect()
    }

    fn get_peers(&mut self, info_hash: &dhtd::InfoHash) -> Vec<SocketAddr> {
        let v = self.ask(&format!("get_peers {info_hash}"), Duration::from_secs(40));
        v["peers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap().parse().unwrap())
            .collect()
    }

    fn announce(&mut self, info_hash: &dhtd::InfoHash) -> u16 {
        let v = self.ask(&format!("announce {info_hash}"), Duration::from_secs(40));
        u16::try_from(v["port"].as_u64().unwrap()).unwrap()
    }
}

impl Drop for ScriptNode {
    fn drop(&mut self) {
        use std::io::Write;
        let _ = writeln!(self.stdin, "quit");
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` (a blocking closure) every 200 ms until it holds or
/// `timeout` passes.
pub fn poll_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
