//! The daemon's local HTTP listener: `/metrics` (Prometheus), `/health`,
//! `/stats` (text), `/stats.json`, and `POST /add-node?addr=HOST:PORT`; and
//! the client side of `dhtd stats` and
//! `dhtd add-node`. It is meant for loopback (the default address is
//! 127.0.0.1:9464); it has no authentication.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use dhtd::metrics::Exporter;
use dhtd::{CounterKind, Dht, Stats};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::Failure;

const MAX_REQUEST: usize = 8192;

/// Binds the listener.
pub(crate) async fn bind(addr: SocketAddr) -> Result<TcpListener, Failure> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| Failure::Failed(format!("cannot listen for HTTP on {addr}: {e}")))
}

/// What the listener serves.
#[derive(Clone)]
struct Served {
    /// The first is the one `/stats` describes.
    nodes: Vec<Dht>,
    exporter: Exporter,
}

/// How often the exporter's housekeeping runs.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Serves `/metrics` from `exporter` and the other paths for `nodes`.
pub(crate) fn spawn(listener: TcpListener, nodes: Vec<Dht>, exporter: Exporter) {
    let upkeep = exporter.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(UPKEEP_EVERY).await;
            upkeep.upkeep();
        }
    });
    let served = Served { nodes, exporter };
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let served = served.clone();
            tokio::spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(10), handle(stream, served)).await;
            });
        }
    });
}

async fn handle(mut stream: tokio::net::TcpStream, served: Served) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < MAX_REQUEST {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf);
    let mut parts = head.lines().next().unwrap_or_default().split_whitespace();
    let (method, target) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let (status, content_type, body) = route(method, path, query, &served).await;
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

async fn route(
    method: &str,
    path: &str,
    query: &str,
    served: &Served,
) -> (&'static str, &'static str, String) {
    const TEXT: &str = "text/plain; charset=utf-8";
    const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";
    let Some(node) = served.nodes.first() else {
        return ("503 Service Unavailable", TEXT, "no node\n".into());
    };
    match (method, path) {
        ("GET", "/metrics") => {
            // Counted since the last push: pushed now, so a scrape is current.
            for n in &served.nodes {
                n.publish_metrics();
            }
            ("200 OK", PROMETHEUS, served.exporter.render())
        }
        // Alive and answering is what a health check asks; bootstrap is in the body.
        ("GET", "/health") => match node.stats().await {
            Ok(_) => {
                let up = served.nodes.iter().filter(|n| n.is_bootstrapped()).count();
                (
                    "200 OK",
                    TEXT,
                    format!("ok: {up} of {} nodes bootstrapped\n", served.nodes.len()),
                )
            }
            Err(e) => ("503 Service Unavailable", TEXT, format!("{e}\n")),
        },
        ("GET", "/stats") => match node.stats().await {
            Ok(s) => ("200 OK", TEXT, format!("{s}\n")),
            Err(e) => ("503 Service Unavailable", TEXT, format!("{e}\n")),
        },
        ("GET", "/stats.json") => match node.stats().await {
            Ok(s) => (
                "200 OK",
                "application/json",
                format!("{}\n", stats_json(&s)),
            ),
            Err(e) => ("503 Service Unavailable", TEXT, format!("{e}\n")),
        },
        ("POST", "/add-node") => {
            let Some(addr) = query.split('&').find_map(|kv| kv.strip_prefix("addr=")) else {
                return ("400 Bad Request", TEXT, "missing addr=HOST:PORT\n".into());
            };
            match node.add_node_by_name(addr).await {
                Ok(_) => ("200 OK", TEXT, format!("added {addr}\n")),
                Err(e) => ("400 Bad Request", TEXT, format!("{e}\n")),
            }
        }
        _ => (
            "404 Not Found",
            TEXT,
            "try /metrics, /health, /stats, /stats.json or POST /add-node?addr=HOST:PORT\n".into(),
        ),
    }
}

/// The statistics as JSON. The `traffic` object holds every counter of the
/// catalogue under its metric name without `dht_` and `_total`, labelled
/// ones as objects by label.
pub(crate) fn stats_json(s: &Stats) -> serde_json::Value {
    let mut traffic = serde_json::Map::new();
    let counters = s.traffic.iter().filter(|c| c.kind == CounterKind::Counter);
    for c in counters {
        let key = c
            .metric
            .trim_start_matches("dht_")
            .trim_end_matches("_total")
            .to_owned();
        if c.labels.is_empty() {
            traffic.insert(key, json!(c.value));
        } else {
            let label: Vec<&str> = c.labels.iter().map(|(_, v)| *v).collect();
            let cells = traffic
                .entry(key)
                .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
            if let serde_json::Value::Object(cells) = cells {
                cells.insert(label.join("/"), json!(c.value));
            }
        }
    }
    json!({
        "node_id": s.own_id.to_string(),
        "listen": s.local_addr.map(|a| a.to_string()),
        "uptime_secs": s.uptime.as_secs(),
        "bootstrap_complete": s.bootstrap_complete,
        "read_only": s.read_only,
        "external_ip": s.external_ip.map(|ip| ip.to_string()),
        "nodes": s.nodes(),
        "estimated_dht_size": s.estimated_dht_size,
        "buckets": s.routing.buckets.iter().map(|b| json!({
            "good": b.good, "questionable": b.questionable, "bad": b.bad, "cached": b.replacements,
        })).collect::<Vec<_>>(),
        "families": s.families.iter().map(|f| json!({
            "family": f.family.as_str(),
            "listen": f.local_addr.to_string(),
            "bootstrap_complete": f.bootstrap_complete,
            "external_ip": f.external_ip.map(|ip| ip.to_string()),
            "nodes": f.nodes(),
            "estimated_dht_size": f.estimated_dht_size,
            "buckets": f.routing.buckets.len(),
        })).collect::<Vec<_>>(),
        "store": {"info_hashes": s.store.info_hashes, "peers": s.store.peers, "info_hashes_limit": s.store_info_hashes_limit},
        "traffic": traffic,
        "warnings": s.warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
    })
}

/// One HTTP request to a local daemon; the status code and the body.
fn request(listen: &str, method: &str, path: &str) -> Result<(u16, String), Failure> {
    let addr: SocketAddr = listen.parse().map_err(|_| {
        Failure::Usage(format!(
            "--metrics-listen: `{listen}` is not an address (IP:PORT)"
        ))
    })?;
    let unreachable =
        |e: std::io::Error| Failure::Failed(format!("no dhtd daemon answering on {addr}: {e}"));
    let mut stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(3)).map_err(unreachable)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(unreachable)?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(unreachable)?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(unreachable)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_owned()))
}

/// `dhtd stats`.
pub(crate) fn print_stats(listen: &str, json: bool) -> Result<(), Failure> {
    let (status, body) = request(listen, "GET", if json { "/stats.json" } else { "/stats" })?;
    if status != 200 {
        return Err(Failure::Failed(format!(
            "the daemon answered {status}: {}",
            body.trim()
        )));
    }
    print!("{body}");
    Ok(())
}

/// `dhtd add-node`.
pub(crate) fn add_node(listen: &str, node: &str) -> Result<(), Failure> {
    let (status, body) = request(listen, "POST", &format!("/add-node?addr={node}"))?;
    if status != 200 {
        return Err(Failure::Failed(format!(
            "the daemon refused: {}",
            body.trim()
        )));
    }
    print!("{body}");
    Ok(())
}

/// Installs the Prometheus recorder; before any node starts, so that their
/// metric handles reach it.
pub(crate) fn exporter() -> Result<Exporter, Failure> {
    Exporter::install()
        .map_err(|e| Failure::Failed(format!("cannot install the metrics exporter: {e}")))
}
