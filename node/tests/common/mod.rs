//! Helpers shared by the program's process tests.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A child process, killed and reaped when dropped.
pub(crate) struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Proc {
    /// Waits for a line containing `needle` (stdout or stderr) and returns it.
    pub(crate) fn wait_for(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        panic!("no line containing {needle:?} within {timeout:?}");
    }

    /// SIGTERM, then the exit status.
    pub(crate) fn terminate(mut self) -> Option<i32> {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Proc {
    /// Sends it SIGHUP (reload), by its PID.
    pub(crate) fn hangup(&self) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-HUP", &pid]).status().unwrap();
    }

    /// SIGKILL by its PID, as a crash or the OOM killer would: no signal
    /// handler runs, nothing is saved on the way out.
    pub(crate) fn kill(mut self) {
        self.child.kill().unwrap();
        let status = self.child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9),
            "{status}"
        );
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dhtd-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The program with a clean environment: no DHTD_* from the caller, and a
/// home of its own so that no default state dir is touched.
pub(crate) fn dhtd(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dhtd"));
    for (key, _) in std::env::vars() {
        if key.starts_with("DHTD_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("HOME", home)
        .env("XDG_STATE_HOME", home.join("state"));
    cmd
}

pub(crate) fn spawn(mut cmd: Command) -> Proc {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, lines) = mpsc::channel();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    Proc { child, lines }
}

pub(crate) fn run(mut cmd: Command) -> Output {
    cmd.output().unwrap()
}

/// Runs `cmd` to its end, killing it by its PID if it outlives `limit`
/// (then the test fails, with what it printed).
pub(crate) fn run_bounded(mut cmd: Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let drain = |stream: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = BufReader::new(stream).read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            child.kill().unwrap();
            let _ = child.wait();
            let out = text(&stdout.join().unwrap());
            panic!("still running after {limit:?}, killed:\n{out}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub(crate) fn free_local_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// A swarm process that keeps running (its metrics on `metrics`, or `off`);
/// returns it, once its round is done, and one node's address.
pub(crate) fn background_swarm(home: &Path, nodes: usize, metrics: &str) -> (Proc, SocketAddr) {
    let mut cmd = dhtd(home);
    let nodes = nodes.to_string();
    cmd.args([
        "swarm",
        "--nodes",
        &nodes,
        "--duration",
        "300s",
        "--metrics-listen",
        metrics,
    ]);
    let p = spawn(cmd);
    let started = p.wait_for("dhtd nodes on", Duration::from_secs(30));
    let addr = started
        .split(" on ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {started:?}"));
    p.wait_for("summary:", Duration::from_secs(60));
    (p, addr)
}

/// A scrape of `metrics` once the gauges show all `nodes` running (they
/// are refreshed every 2 s).
pub(crate) fn scrape_when_ready(metrics: &str, nodes: usize) -> String {
    let ready = format!("dht_nodes_running {nodes}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, scrape) = http_get(metrics, "/metrics");
        assert_eq!(status, 200);
        if scrape.contains(&ready) || Instant::now() > deadline {
            return scrape;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub(crate) fn http_get(addr: &str, path: &str) -> (u16, String) {
    http(addr, "GET", path)
}

/// One HTTP/1.0 request; the status and the body.
pub(crate) fn http(addr: &str, method: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "{method} {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (
        head.split_whitespace().nth(1).unwrap().parse().unwrap(),
        body.to_owned(),
    )
}

/// The value of the sample `series` (name with its labels, as exported).
pub(crate) fn sample(scrape: &str, series: &str) -> f64 {
    scrape
        .lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .unwrap_or_else(|| panic!("no {series} in the scrape"))
        .parse()
        .unwrap()
}

/// Holds the process tests of one binary to one at a time: each starts a
/// swarm of real nodes, and two at once on a 2-core machine would measure
/// the machine, not the program.
pub(crate) fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
