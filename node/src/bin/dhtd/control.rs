//! The daemon's local HTTP listener: `/metrics` (Prometheus), `/health`,
//! `/stats` (text), `/stats.json`, and `POST /add-node?addr=HOST:PORT`; and
//! the client side of `dhtd stats` and `dhtd add-node`. It is meant for
//! loopback (the default address is 127.0.0.1:9464); it has no
//! authentication, so the endpoints that change the node answer loopback
//! clients only unless `allow_remote_control` is set.
//!
//! Both sides are hyper's HTTP/1.1, not a parser of our own: a request is
//! read within [`HEADER_TIMEOUT`] and [`MAX_HEADER_BYTES`] or the
//! connection is closed, each connection is bounded in time, and at most
//! [`MAX_CONNECTIONS`] are served at once, so that a malformed or endlessly
//! slow client cannot keep `/metrics` from answering.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dhtd::metrics::Exporter;
use dhtd::{CounterKind, Dht, Stats};
use http_body_util::{BodyExt, Empty, Full};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::Failure;

/// A request's head must arrive within this long.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// The most a connection may take, request and answer.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes of a request's head at most.
const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Connections served at once; more are closed at once.
const MAX_CONNECTIONS: usize = 128;

/// Binds the listener.
pub(crate) async fn bind(addr: SocketAddr) -> Result<TcpListener, Failure> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| Failure::Failed(format!("cannot listen for HTTP on {addr}: {e}")))
}

/// What the listener serves.
struct Served {
    /// The first is the one `/stats` describes.
    nodes: Vec<Dht>,
    exporter: Exporter,
    /// The endpoints that change the node answer other hosts too.
    allow_remote_control: bool,
    /// `POST /reload` (a daemon's; a swarm has none).
    reloader: Option<Arc<crate::reload::Reloader>>,
    /// The status page's last minutes of counters.
    history: crate::status::History,
}

/// How often the exporter's housekeeping runs.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Serves `/metrics` from `exporter` and the other paths for `nodes`.
pub(crate) fn spawn(
    listener: TcpListener,
    nodes: Vec<Dht>,
    exporter: Exporter,
    allow_remote_control: bool,
    reloader: Option<Arc<crate::reload::Reloader>>,
) {
    let upkeep = exporter.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(UPKEEP_EVERY).await;
            upkeep.upkeep();
        }
    });
    let served = Arc::new(Served {
        nodes,
        exporter,
        allow_remote_control,
        reloader,
        history: crate::status::History::default(),
    });
    let sampled = served.clone();
    tokio::spawn(async move {
        loop {
            if let Some(node) = sampled.nodes.first() {
                if let Ok(stats) = node.stats().await {
                    let scrape = sampled.exporter.render();
                    sampled.history.record(&stats.traffic, &scrape);
                }
            }
            tokio::time::sleep(crate::status::SAMPLE_EVERY).await;
        }
    });
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                // Out of descriptors, say: do not spin on it.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                continue; // dropped: closed at once
            };
            let served = served.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let served = served.clone();
                    async move { Ok::<_, Infallible>(respond(req, peer, &served).await) }
                });
                let connection = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .max_buf_size(MAX_HEADER_BYTES)
                    .keep_alive(false)
                    .serve_connection(TokioIo::new(stream), service);
                let _ = tokio::time::timeout(CONNECTION_TIMEOUT, connection).await;
                drop(slot);
            });
        }
    });
}

fn answer(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = hyper::header::HeaderValue::from_str(content_type) {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

async fn respond(
    req: Request<hyper::body::Incoming>,
    peer: SocketAddr,
    served: &Served,
) -> Response<Full<Bytes>> {
    let query = req.uri().query().unwrap_or_default().to_owned();
    let (status, content_type, body) =
        route(req.method(), req.uri().path(), &query, peer, served).await;
    answer(status, content_type, body)
}

/// Whether a request that changes the node (a POST) comes from another
/// host while only loopback clients may change it.
fn refused(method: &Method, peer: SocketAddr, allow_remote_control: bool) -> bool {
    *method == Method::POST && !peer.ip().is_loopback() && !allow_remote_control
}

async fn route(
    method: &Method,
    path: &str,
    query: &str,
    peer: SocketAddr,
    served: &Served,
) -> (StatusCode, &'static str, String) {
    const TEXT: &str = "text/plain; charset=utf-8";
    const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";
    let Some(node) = served.nodes.first() else {
        return (StatusCode::SERVICE_UNAVAILABLE, TEXT, "no node\n".into());
    };
    if refused(method, peer, served.allow_remote_control) {
        return (
            StatusCode::FORBIDDEN,
            TEXT,
            "the control endpoints answer loopback clients only (allow_remote_control)\n".into(),
        );
    }
    match (method.as_str(), path) {
        ("GET", "/") => match node.stats().await {
            Ok(s) => (
                StatusCode::OK,
                "text/html; charset=utf-8",
                crate::status::render(&s, &served.history, served.nodes.len()),
            ),
            Err(e) => (StatusCode::SERVICE_UNAVAILABLE, TEXT, format!("{e}\n")),
        },
        ("GET", "/metrics") => {
            // Counted since the last push: pushed now, so a scrape is current.
            for n in &served.nodes {
                n.publish_metrics();
            }
            (StatusCode::OK, PROMETHEUS, served.exporter.render())
        }
        // Alive and answering is what a health check asks; bootstrap is in the body.
        ("GET", "/health") => match node.stats().await {
            Ok(_) => {
                let up = served.nodes.iter().filter(|n| n.is_bootstrapped()).count();
                (
                    StatusCode::OK,
                    TEXT,
                    format!("ok: {up} of {} nodes bootstrapped\n", served.nodes.len()),
                )
            }
            Err(e) => (StatusCode::SERVICE_UNAVAILABLE, TEXT, format!("{e}\n")),
        },
        ("GET", "/stats") => match node.stats().await {
            Ok(s) => (StatusCode::OK, TEXT, format!("{s}\n")),
            Err(e) => (StatusCode::SERVICE_UNAVAILABLE, TEXT, format!("{e}\n")),
        },
        ("GET", "/stats.json") => match node.stats().await {
            Ok(s) => (
                StatusCode::OK,
                "application/json",
                format!("{}\n", stats_json(&s)),
            ),
            Err(e) => (StatusCode::SERVICE_UNAVAILABLE, TEXT, format!("{e}\n")),
        },
        ("POST", "/reload") => match &served.reloader {
            Some(reloader) => match crate::run::log_reload(reloader) {
                Ok(done) => (StatusCode::OK, TEXT, format!("{done}\n")),
                Err(e) => (
                    StatusCode::BAD_REQUEST,
                    TEXT,
                    format!("reload refused, the running settings stay: {e}\n"),
                ),
            },
            None => (StatusCode::NOT_FOUND, TEXT, "nothing to reload here\n".into()),
        },
        ("POST", "/add-node") => {
            let Some(addr) = query.split('&').find_map(|kv| kv.strip_prefix("addr=")) else {
                return (StatusCode::BAD_REQUEST, TEXT, "missing addr=HOST:PORT\n".into());
            };
            match node.add_node_by_name(addr).await {
                Ok(_) => (StatusCode::OK, TEXT, format!("added {addr}\n")),
                Err(e) => (StatusCode::BAD_REQUEST, TEXT, format!("{e}\n")),
            }
        }
        _ => (
            StatusCode::NOT_FOUND,
            TEXT,
            "try / (the status page), /metrics, /health, /stats, /stats.json, POST /add-node?addr=HOST:PORT or POST /reload\n".into(),
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
async fn request(listen: &str, method: Method, path: &str) -> Result<(u16, String), Failure> {
    let addr: SocketAddr = listen.parse().map_err(|_| {
        Failure::Usage(format!(
            "--metrics-listen: `{listen}` is not an address (IP:PORT)"
        ))
    })?;
    let unreachable = |e: &dyn std::fmt::Display| {
        Failure::Failed(format!("no dhtd daemon answering on {addr}: {e}"))
    };
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| unreachable(&e))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| unreachable(&e))?;
        tokio::spawn(connection);
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, addr.to_string())
            .body(Empty::<Bytes>::new())
            .map_err(|e| unreachable(&e))?;
        let response = sender
            .send_request(req)
            .await
            .map_err(|e| unreachable(&e))?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| unreachable(&e))?
            .to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .unwrap_or_else(|_| Err(unreachable(&"no answer within 10 s")))
}

/// `dhtd stats`.
pub(crate) async fn print_stats(listen: &str, json: bool) -> Result<(), Failure> {
    let path = if json { "/stats.json" } else { "/stats" };
    let (status, body) = request(listen, Method::GET, path).await?;
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
pub(crate) async fn add_node(listen: &str, node: &str) -> Result<(), Failure> {
    let (status, body) = request(listen, Method::POST, &format!("/add-node?addr={node}")).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_clients_change_the_node_unless_allowed() {
        let remote: SocketAddr = "192.0.2.7:40000".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let local6: SocketAddr = "[::1]:40000".parse().unwrap();
        assert!(refused(&Method::POST, remote, false));
        assert!(!refused(&Method::POST, remote, true));
        assert!(!refused(&Method::POST, local, false));
        assert!(!refused(&Method::POST, local6, false));
        assert!(
            !refused(&Method::GET, remote, false),
            "reading is for anyone who can connect"
        );
    }
}
