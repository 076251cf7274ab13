//! Settings: flags, then the environment (clap reads both), then a TOML
//! file, then the defaults. The file is parsed strictly: an unknown key or
//! a bad value is refused with a message naming the key and the line.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use dhtd::{Config, NodeId, NodeIdChoice};
use dhtd_protocol::rate_limit::Rate;
use serde::Deserialize;

/// The settings every node-starting command takes.
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct NodeArgs {
    /// TOML config file (see the README for its keys).
    #[arg(long, env = "DHTD_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// UDP address to listen on, at most one per address family
    /// (repeatable, or comma-separated): its family is served (BEP 32).
    /// Default 0.0.0.0 and [::], both on port 6881 for `run`.
    #[arg(long, env = "DHTD_LISTEN", value_name = "ADDR", value_delimiter = ',')]
    pub(crate) listen: Vec<SocketAddr>,
    /// A router: an entry point asked for nodes at bootstrap and while the
    /// table is short, kept out of the routing table (it answers everyone)
    /// unless our own-id lookup finds it among our 8 closest nodes, as in a
    /// private network where each node names the one before. Repeatable;
    /// replaces the public routers; `none` to start alone.
    #[arg(
        long = "bootstrap",
        env = "DHTD_BOOTSTRAP",
        value_name = "HOST:PORT",
        value_delimiter = ','
    )]
    pub(crate) bootstrap: Vec<String>,
    /// An ordinary node to bootstrap from: asked at bootstrap and kept in
    /// the routing table when it answers, like any node (a member of a
    /// private network, a known peer). Repeatable; adds to the routers.
    #[arg(
        long = "node",
        env = "DHTD_NODES",
        value_name = "HOST:PORT",
        value_delimiter = ','
    )]
    pub(crate) nodes: Vec<String>,
    /// Directory for the node id and the routing-table cache.
    #[arg(long, env = "DHTD_STATE_DIR", value_name = "DIR")]
    pub(crate) state_dir: Option<PathBuf>,
    /// Prometheus and control endpoint (HTTP), or `off`.
    #[arg(long, env = "DHTD_METRICS_LISTEN", value_name = "ADDR|off")]
    pub(crate) metrics_listen: Option<String>,
    /// Let the HTTP endpoints that change the node (POST) answer clients
    /// on other hosts; by default they answer loopback clients only.
    #[arg(long, env = "DHTD_ALLOW_REMOTE_CONTROL", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub(crate) allow_remote_control: Option<bool>,
    /// BEP 43 read-only: query, never answer.
    #[arg(long, env = "DHTD_READ_ONLY", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub(crate) read_only: Option<bool>,
    /// Node id: 40 hex digits, or `random` for a fresh one on every start.
    #[arg(long, env = "DHTD_NODE_ID", value_name = "HEX|random")]
    pub(crate) node_id: Option<String>,
    /// Cap on info hashes stored for others.
    #[arg(long, env = "DHTD_MAX_INFO_HASHES", value_name = "N")]
    pub(crate) max_info_hashes: Option<usize>,
    /// Cap on BEP 44 items stored for others.
    #[arg(long, env = "DHTD_MAX_ITEMS", value_name = "N")]
    pub(crate) max_items: Option<usize>,
    /// Cap on the bytes of BEP 44 values stored for others.
    #[arg(long, env = "DHTD_MAX_ITEM_BYTES", value_name = "BYTES")]
    pub(crate) max_item_bytes: Option<usize>,
    /// Cap on peers stored per info hash.
    #[arg(long, env = "DHTD_MAX_PEERS_PER_INFO_HASH", value_name = "N")]
    pub(crate) max_peers_per_info_hash: Option<usize>,
    /// Ports one address holds in one info hash's stored peers.
    #[arg(long, env = "DHTD_MAX_PORTS_PER_IP", value_name = "N")]
    pub(crate) max_ports_per_ip: Option<usize>,
    /// Announces stored from one address.
    #[arg(long, env = "DHTD_MAX_ANNOUNCES_PER_IP", value_name = "N")]
    pub(crate) max_announces_per_ip: Option<usize>,
    /// Announces stored from one /24 (IPv4) or /64 (IPv6).
    #[arg(long, env = "DHTD_MAX_ANNOUNCES_PER_PREFIX", value_name = "N")]
    pub(crate) max_announces_per_prefix: Option<usize>,
    /// Routing-table nodes of one /24 (IPv4) or /64 (IPv6) per bucket.
    #[arg(long, env = "DHTD_MAX_NODES_PER_PREFIX", value_name = "N")]
    pub(crate) max_nodes_per_prefix: Option<usize>,
    /// Nodes of one /24 (IPv4) or /64 (IPv6) in one lookup.
    #[arg(long, env = "DHTD_LOOKUP_NODES_PER_PREFIX", value_name = "N")]
    pub(crate) lookup_nodes_per_prefix: Option<usize>,
    /// A get_peers lookup ends once this many nodes answered with peers
    /// (0: once the 8 closest answered).
    #[arg(long, env = "DHTD_LOOKUP_ENOUGH_HOLDERS", value_name = "N")]
    pub(crate) lookup_enough_holders: Option<usize>,
    /// Queries answered per second per source IP.
    #[arg(long, env = "DHTD_QUERIES_PER_IP", value_name = "N")]
    pub(crate) queries_per_ip: Option<f64>,
    /// Queries answered per second per source /24 (IPv4) or /64 (IPv6).
    #[arg(long, env = "DHTD_QUERIES_PER_PREFIX", value_name = "N")]
    pub(crate) queries_per_prefix: Option<f64>,
    /// Queries sent per second.
    #[arg(long, env = "DHTD_OUTBOUND_QUERIES", value_name = "N")]
    pub(crate) outbound_queries: Option<f64>,
    /// Cap on our queries awaiting an answer.
    #[arg(long, env = "DHTD_MAX_PENDING_QUERIES", value_name = "N")]
    pub(crate) max_pending_queries: Option<usize>,
    /// `on` (the default) or `off`, as rTorrent's `dht` setting.
    #[arg(long, env = "DHTD_MODE", value_name = "on|off")]
    pub(crate) mode: Option<String>,
    /// UDP receive buffer: bytes, or with K or M (KiB, MiB), or `default`
    /// for the system's (net.core.rmem_default). Default 2M.
    #[arg(long, env = "DHTD_RECV_BUFFER", value_name = "BYTES|default")]
    pub(crate) recv_buffer: Option<String>,
    /// Upload throttle for everything the node sends, answers included:
    /// bytes per second, or with K or M, or `off`. Default off.
    #[arg(long, env = "DHTD_UPLOAD_RATE", value_name = "BYTES|off")]
    pub(crate) upload_rate: Option<String>,
}

/// A size in a config file: a number of bytes, or text such as `2M`.
#[derive(Deserialize, Debug, Clone)]
#[serde(untagged)]
pub(crate) enum Size {
    Bytes(u64),
    Text(String),
}

/// One address, or a list of them.
#[derive(Deserialize, Debug, Clone)]
#[serde(untagged)]
pub(crate) enum Addresses {
    One(SocketAddr),
    Many(Vec<SocketAddr>),
}

impl Addresses {
    fn into_vec(self) -> Vec<SocketAddr> {
        match self {
            Addresses::One(a) => vec![a],
            Addresses::Many(v) => v,
        }
    }
}

/// The keys of a config file; each is optional.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileSettings {
    listen: Option<Addresses>,
    bootstrap: Option<Vec<String>>,
    nodes: Option<Vec<String>>,
    state_dir: Option<PathBuf>,
    metrics_listen: Option<String>,
    allow_remote_control: Option<bool>,
    log: Option<String>,
    read_only: Option<bool>,
    node_id: Option<String>,
    max_info_hashes: Option<usize>,
    max_items: Option<usize>,
    max_item_bytes: Option<usize>,
    max_peers_per_info_hash: Option<usize>,
    max_ports_per_ip: Option<usize>,
    max_announces_per_ip: Option<usize>,
    max_announces_per_prefix: Option<usize>,
    max_nodes_per_prefix: Option<usize>,
    lookup_nodes_per_prefix: Option<usize>,
    lookup_enough_holders: Option<usize>,
    peer_ttl_secs: Option<u64>,
    queries_per_ip: Option<f64>,
    queries_per_prefix: Option<f64>,
    outbound_queries: Option<f64>,
    max_pending_queries: Option<usize>,
    query_spacing_ms: Option<u64>,
    stats_first_secs: Option<u64>,
    stats_every_secs: Option<u64>,
    mode: Option<String>,
    recv_buffer: Option<Size>,
    upload_rate: Option<Size>,
    save_interval_secs: Option<u64>,
}

/// A setting that cannot be used; exit status 2.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SettingsError {
    /// The config file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The config file is not valid (the TOML message names the key and line).
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    /// A value is out of range or malformed.
    #[error("{key}: {message}")]
    Value { key: &'static str, message: String },
}

/// What a command runs with.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) config: Config,
    pub(crate) metrics_listen: Option<SocketAddr>,
    /// POST endpoints answer other hosts too.
    pub(crate) allow_remote_control: bool,
    /// The file's log filter (`DHTD_LOG` wins over it).
    pub(crate) log_filter: Option<String>,
    pub(crate) stats_first: Duration,
    pub(crate) stats_every: Duration,
    /// `mode = "off"`: the daemon starts no node.
    pub(crate) enabled: bool,
}

/// Defaults that differ between the daemon and the one-off tools.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Defaults {
    /// The port of the default addresses, 0.0.0.0 and [::].
    pub(crate) port: u16,
    pub(crate) use_state_dir: bool,
    pub(crate) metrics: bool,
}

impl Defaults {
    /// `dhtd run`.
    pub(crate) const DAEMON: Defaults = Defaults {
        port: 6881,
        use_state_dir: true,
        metrics: true,
    };
    /// `lookup`, `announce`: an ephemeral port, so they run beside a daemon.
    pub(crate) const TOOL: Defaults = Defaults {
        port: 0,
        use_state_dir: false,
        metrics: false,
    };
}

impl Defaults {
    /// Both families, on every address; IPv4 alone on a host without
    /// IPv6 (a kernel booted with `ipv6.disable=1`), where binding `[::]`
    /// would fail the start.
    pub(crate) fn listen(self) -> Vec<SocketAddr> {
        use std::net::{Ipv4Addr, Ipv6Addr, UdpSocket};
        let mut addrs = vec![SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), self.port)];
        if UdpSocket::bind((Ipv6Addr::LOCALHOST, 0)).is_ok() {
            addrs.push(SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), self.port));
        }
        addrs
    }
}

/// Where the daemon keeps its state unless told otherwise.
pub(crate) fn default_state_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("dhtd"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state/dhtd"))
}

/// The default metrics and control endpoint.
pub(crate) const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9464";

pub(crate) fn read_file(path: &Path) -> Result<FileSettings, SettingsError> {
    let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_file(&text).map_err(|message| SettingsError::File {
        path: path.to_owned(),
        message,
    })
}

/// Parses a config file's text; the error names the key and the line.
pub(crate) fn parse_file(text: &str) -> Result<FileSettings, String> {
    toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())
}

fn metrics_addr(value: &str) -> Result<Option<SocketAddr>, SettingsError> {
    if value.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    value.parse().map(Some).map_err(|_| SettingsError::Value {
        key: "metrics_listen",
        message: format!("`{value}` is not an address (IP:PORT) or `off`"),
    })
}

fn positive(key: &'static str, value: f64) -> Result<f64, SettingsError> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(SettingsError::Value {
            key,
            message: format!("must be a positive number, not {value}"),
        })
    }
}

fn at_least_one(key: &'static str, value: usize) -> Result<usize, SettingsError> {
    if value >= 1 {
        Ok(value)
    } else {
        Err(SettingsError::Value {
            key,
            message: "must be at least 1".into(),
        })
    }
}

/// The smallest receive buffer taken: below it the kernel would hold a
/// handful of datagrams.
const MIN_RECV_BUFFER: usize = 4096;

/// `2097152`, `2048K`, `2M` or `default` (the system's: `None`).
/// `upload_rate`: bytes per second, or `off`; the burst is a second's
/// worth, and at least 4 KiB (a few replies).
fn upload_rate(value: &Size) -> Result<Option<dhtd_protocol::rate_limit::Rate>, SettingsError> {
    let error = |shown: &dyn std::fmt::Display| {
        SettingsError::Value {
        key: "upload_rate",
        message: format!(
            "`{shown}` is not a rate of at least 1024 bytes per second (bytes, or with K or M: `64K`), or `off`"
        ),
    }
    };
    let bytes = match value {
        Size::Bytes(n) => *n,
        Size::Text(text) if text.trim().eq_ignore_ascii_case("off") => return Ok(None),
        Size::Text(text) => size_bytes(text).ok_or_else(|| error(text))?,
    };
    if bytes < 1024 {
        return Err(error(&bytes));
    }
    Ok(Some(dhtd_protocol::rate_limit::Rate {
        per_second: bytes as f64,
        burst: bytes.max(4096) as f64,
    }))
}

/// `N`, `NK` or `NM` in bytes, if it is one.
fn size_bytes(text: &str) -> Option<u64> {
    let t = text.trim();
    let (number, shift) = match t.char_indices().last() {
        Some((at, 'k' | 'K')) => (&t[..at], 10),
        Some((at, 'm' | 'M')) => (&t[..at], 20),
        _ => (t, 0),
    };
    let n: u64 = number.trim().parse().ok()?;
    n.checked_shl(shift).filter(|b| b >> shift == n)
}

fn recv_buffer(value: &Size) -> Result<Option<usize>, SettingsError> {
    let max = dhtd::config::MAX_RECV_BUFFER;
    let error = |shown: &dyn std::fmt::Display| {
        SettingsError::Value {
        key: "recv_buffer",
        message: format!(
            "`{shown}` is not a size between {MIN_RECV_BUFFER} bytes and {}M (bytes, or with K or M: `2M`), or `default`",
            max >> 20
        ),
    }
    };
    let bytes = match value {
        Size::Bytes(n) => *n,
        Size::Text(text) if text.trim().eq_ignore_ascii_case("default") => return Ok(None),
        Size::Text(text) => size_bytes(text).ok_or_else(|| error(text))?,
    };
    match usize::try_from(bytes) {
        Ok(b) if (MIN_RECV_BUFFER..=max).contains(&b) => Ok(Some(b)),
        _ => Err(match value {
            Size::Text(text) => error(text),
            Size::Bytes(n) => error(n),
        }),
    }
}

/// Merges flags and environment (`args`), the file, and the defaults.
pub(crate) fn resolve(args: &NodeArgs, defaults: Defaults) -> Result<Settings, SettingsError> {
    let file = match &args.config {
        Some(path) => read_file(path)?,
        None => FileSettings::default(),
    };
    resolve_with(args, file, defaults)
}

pub(crate) fn resolve_with(
    args: &NodeArgs,
    file: FileSettings,
    defaults: Defaults,
) -> Result<Settings, SettingsError> {
    let listen = if args.listen.is_empty() {
        match file.listen {
            Some(addrs) => addrs.into_vec(),
            None => defaults.listen(),
        }
    } else {
        args.listen.clone()
    };
    let mut config = Config {
        listen,
        ..Config::default()
    };
    let routers = if args.bootstrap.is_empty() {
        file.bootstrap
    } else {
        Some(args.bootstrap.clone())
    };
    if let Some(routers) = routers {
        config.routers = routers
            .into_iter()
            .filter(|r| !r.eq_ignore_ascii_case("none"))
            .collect();
    }
    config.bootstrap_nodes = if args.nodes.is_empty() {
        file.nodes.unwrap_or_default()
    } else {
        args.nodes.clone()
    };
    config.state_dir = args
        .state_dir
        .clone()
        .or(file.state_dir)
        .or_else(|| defaults.use_state_dir.then(default_state_dir).flatten());
    config.dht.read_only = args.read_only.or(file.read_only).unwrap_or(false);
    if let Some(id) = args.node_id.clone().or(file.node_id) {
        config.node_id = if id.eq_ignore_ascii_case("random") {
            NodeIdChoice::Random
        } else {
            NodeIdChoice::Fixed(id.parse::<NodeId>().map_err(|_| SettingsError::Value {
                key: "node_id",
                message: format!("`{id}` is not 40 hex digits or `random`"),
            })?)
        };
    }
    if let Some(n) = args.max_info_hashes.or(file.max_info_hashes) {
        config.dht.store.max_info_hashes = at_least_one("max_info_hashes", n)?;
    }
    if let Some(n) = args.max_items.or(file.max_items) {
        config.dht.items.max_items = at_least_one("max_items", n)?;
    }
    if let Some(n) = args.max_item_bytes.or(file.max_item_bytes) {
        if n < dhtd::MAX_VALUE_LEN {
            return Err(SettingsError::Value {
                key: "max_item_bytes",
                message: format!(
                    "must hold one value of {} bytes at least, not {n}",
                    dhtd::MAX_VALUE_LEN
                ),
            });
        }
        config.dht.items.max_bytes = n;
    }
    if let Some(n) = args
        .max_peers_per_info_hash
        .or(file.max_peers_per_info_hash)
    {
        config.dht.store.max_peers_per_info_hash = at_least_one("max_peers_per_info_hash", n)?;
    }
    if let Some(n) = args.max_ports_per_ip.or(file.max_ports_per_ip) {
        config.dht.store.max_ports_per_ip = at_least_one("max_ports_per_ip", n)?;
    }
    if let Some(n) = args.max_announces_per_ip.or(file.max_announces_per_ip) {
        config.dht.store.max_announces_per_ip = at_least_one("max_announces_per_ip", n)?;
    }
    if let Some(n) = args
        .max_announces_per_prefix
        .or(file.max_announces_per_prefix)
    {
        config.dht.store.max_announces_per_prefix = at_least_one("max_announces_per_prefix", n)?;
    }
    if let Some(n) = args.max_nodes_per_prefix.or(file.max_nodes_per_prefix) {
        config.dht.routing.max_per_prefix = at_least_one("max_nodes_per_prefix", n)?;
    }
    if let Some(n) = args
        .lookup_nodes_per_prefix
        .or(file.lookup_nodes_per_prefix)
    {
        config.dht.lookup.max_per_prefix = at_least_one("lookup_nodes_per_prefix", n)?;
    }
    if let Some(n) = args.lookup_enough_holders.or(file.lookup_enough_holders) {
        config.dht.lookup.enough_holders = n;
    }
    if let Some(secs) = file.peer_ttl_secs {
        config.dht.store.peer_ttl =
            Duration::from_secs(at_least_one("peer_ttl_secs", secs as usize)? as u64);
    }
    if let Some(rate) = args.queries_per_ip.or(file.queries_per_ip) {
        let rate = positive("queries_per_ip", rate)?;
        config.dht.limits.queries_per_ip = Rate {
            per_second: rate,
            burst: (rate * 2.0).max(1.0),
        };
    }
    if let Some(rate) = args.queries_per_prefix.or(file.queries_per_prefix) {
        let rate = positive("queries_per_prefix", rate)?;
        config.dht.limits.queries_per_prefix = Rate {
            per_second: rate,
            burst: (rate * 2.0).max(1.0),
        };
    }
    if let Some(rate) = args.outbound_queries.or(file.outbound_queries) {
        let rate = positive("outbound_queries", rate)?;
        config.dht.limits.outbound_queries = Rate {
            per_second: rate,
            burst: (rate / 2.0).max(1.0),
        };
    }
    if let Some(n) = args.max_pending_queries.or(file.max_pending_queries) {
        config.dht.transactions.max_pending = at_least_one("max_pending_queries", n)?;
    }
    if let Some(ms) = file.query_spacing_ms {
        config.dht.limits.query_spacing = Duration::from_millis(ms);
    }
    if let Some(size) = args
        .recv_buffer
        .clone()
        .map(Size::Text)
        .or(file.recv_buffer)
    {
        config.recv_buffer = recv_buffer(&size)?;
    }
    if let Some(size) = args
        .upload_rate
        .clone()
        .map(Size::Text)
        .or(file.upload_rate)
    {
        config.dht.limits.upload = upload_rate(&size)?;
    }
    if let Some(secs) = file.save_interval_secs {
        config.save_interval =
            Duration::from_secs(at_least_one("save_interval_secs", secs as usize)? as u64);
    }
    let metrics = args.metrics_listen.clone().or(file.metrics_listen);
    let metrics_listen = match metrics {
        Some(value) => metrics_addr(&value)?,
        None if defaults.metrics => metrics_addr(DEFAULT_METRICS_LISTEN)?,
        None => None,
    };
    let enabled = match args.mode.clone().or(file.mode).as_deref() {
        None | Some("on") => true,
        Some("off") => false,
        Some(other) => {
            return Err(SettingsError::Value {
                key: "mode",
                message: format!("`{other}` is not `on` or `off`"),
            })
        }
    };
    if let Some(filter) = &file.log {
        tracing_subscriber::EnvFilter::try_new(filter).map_err(|e| SettingsError::Value {
            key: "log",
            message: format!("`{filter}` is not a log filter: {e}"),
        })?;
    }
    Ok(Settings {
        log_filter: file.log.clone(),
        enabled,
        config,
        metrics_listen,
        allow_remote_control: args
            .allow_remote_control
            .or(file.allow_remote_control)
            .unwrap_or(false),
        stats_first: Duration::from_secs(file.stats_first_secs.unwrap_or(15 * 60)),
        stats_every: Duration::from_secs(file.stats_every_secs.unwrap_or(2 * 60 * 60)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(listen: Option<&str>) -> NodeArgs {
        NodeArgs {
            listen: listen.map(|l| l.parse().unwrap()).into_iter().collect(),
            ..NodeArgs::default()
        }
    }

    /// The commented config file the package installs: with every line
    /// of it uncommented, it still parses and resolves (it cannot drift from
    /// the keys the daemon knows).
    #[test]
    fn the_packaged_config_file_parses_with_every_line_uncommented() {
        let shipped = include_str!("../../../dist/dhtd.toml");
        let uncommented: String = shipped
            .lines()
            .filter_map(|l| l.strip_prefix('#'))
            .filter(|l| l.chars().next().is_some_and(|c| c.is_ascii_lowercase()))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(uncommented.lines().count() >= 25, "{uncommented}");
        let file = parse_file(&uncommented).unwrap_or_else(|e| panic!("{e}\n{uncommented}"));
        let s = resolve_with(&args(None), file, Defaults::DAEMON).unwrap();
        assert_eq!(s.config.dht.store.max_info_hashes, 50_000);
        assert_eq!(s.config.listen.len(), 2);
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let file = parse_file(
            "listen = \"127.0.0.9:7000\"\nmax_info_hashes = 10\nmetrics_listen = \"off\"\n",
        )
        .unwrap();
        let s = resolve_with(&args(Some("127.0.0.8:7001")), file, Defaults::DAEMON).unwrap();
        assert_eq!(s.config.listen, ["127.0.0.8:7001".parse().unwrap()]);
        assert_eq!(s.config.dht.store.max_info_hashes, 10);
        assert_eq!(s.metrics_listen, None);

        let file = parse_file("listen = \"127.0.0.9:7000\"\n").unwrap();
        let s = resolve_with(&args(None), file, Defaults::DAEMON).unwrap();
        assert_eq!(s.config.listen, ["127.0.0.9:7000".parse().unwrap()]);
        assert_eq!(s.metrics_listen, Some("127.0.0.1:9464".parse().unwrap()));

        let s = resolve_with(&args(None), FileSettings::default(), Defaults::DAEMON).unwrap();
        let both: Vec<SocketAddr> = vec![
            "0.0.0.0:6881".parse().unwrap(),
            "[::]:6881".parse().unwrap(),
        ];
        assert_eq!(s.config.listen, both, "both families by default");

        let file = parse_file("listen = [\"127.0.0.9:7000\", \"[::1]:7000\"]\n").unwrap();
        let s = resolve_with(&args(None), file, Defaults::DAEMON).unwrap();
        let listed: Vec<SocketAddr> = vec![
            "127.0.0.9:7000".parse().unwrap(),
            "[::1]:7000".parse().unwrap(),
        ];
        assert_eq!(s.config.listen, listed, "a list in the file");
        assert_eq!(s.config.routers.len(), 4, "the default routers");
    }

    #[test]
    fn recv_buffer_takes_sizes_and_default_and_names_itself_when_bad() {
        let with_flag = |v: &str| {
            let a = NodeArgs {
                recv_buffer: Some(v.into()),
                ..NodeArgs::default()
            };
            resolve_with(&a, FileSettings::default(), Defaults::DAEMON)
        };
        let default = resolve_with(&args(None), FileSettings::default(), Defaults::DAEMON);
        assert_eq!(default.unwrap().config.recv_buffer, Some(2 << 20));
        assert_eq!(with_flag("2M").unwrap().config.recv_buffer, Some(2 << 20));
        assert_eq!(
            with_flag("208k").unwrap().config.recv_buffer,
            Some(208 << 10)
        );
        assert_eq!(with_flag("65536").unwrap().config.recv_buffer, Some(65536));
        assert_eq!(with_flag("default").unwrap().config.recv_buffer, None);
        for bad in ["0", "2G", "lots", "-1", "100", "99999999999999999999M"] {
            let e = with_flag(bad).unwrap_err().to_string();
            assert!(e.starts_with("recv_buffer:") && e.contains(bad), "{e}");
        }
        let file = parse_file("recv_buffer = 1048576\nsave_interval_secs = 30\n").unwrap();
        let s = resolve_with(&args(None), file, Defaults::DAEMON).unwrap();
        assert_eq!(s.config.recv_buffer, Some(1 << 20));
        assert_eq!(s.config.save_interval, Duration::from_secs(30));
        let file = parse_file("recv_buffer = \"4M\"\n").unwrap();
        let s = resolve_with(&args(None), file, Defaults::DAEMON).unwrap();
        assert_eq!(s.config.recv_buffer, Some(4 << 20));
        let file = parse_file("save_interval_secs = 0\n").unwrap();
        let e = resolve_with(&args(None), file, Defaults::DAEMON)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("save_interval_secs:"), "{e}");
    }

    #[test]
    fn lookups_end_at_the_8_closest_unless_told_how_many_holders_do() {
        let holders = |a: &NodeArgs, file: &str| {
            let file = parse_file(file).unwrap();
            let s = resolve_with(a, file, Defaults::DAEMON).unwrap();
            s.config.dht.lookup.enough_holders
        };
        assert_eq!(holders(&args(None), ""), 0);
        assert_eq!(holders(&args(None), "lookup_enough_holders = 2\n"), 2);
        let flag = NodeArgs {
            lookup_enough_holders: Some(3),
            ..NodeArgs::default()
        };
        assert_eq!(holders(&flag, "lookup_enough_holders = 2\n"), 3);
    }

    #[test]
    fn bootstrap_none_starts_alone() {
        let a = NodeArgs {
            bootstrap: vec!["none".into()],
            ..NodeArgs::default()
        };
        let s = resolve_with(&a, FileSettings::default(), Defaults::TOOL).unwrap();
        assert!(s.config.routers.is_empty() && s.config.bootstrap_nodes.is_empty());
    }

    #[test]
    fn file_errors_name_the_key_and_the_line() {
        let e = parse_file("listen = \"127.0.0.1:1\"\n\nlisen = 3\n").unwrap_err();
        assert!(e.contains("line 3") && e.contains("lisen"), "{e}");
        let e = parse_file("read_only = true\nlisten = \"nowhere\"\n").unwrap_err();
        assert!(
            e.contains("line 2") && e.contains("listen = \"nowhere\""),
            "{e}"
        );
        let a = NodeArgs {
            node_id: Some("xyz".into()),
            ..NodeArgs::default()
        };
        let e = resolve_with(&a, FileSettings::default(), Defaults::TOOL)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("node_id:"), "{e}");
        let file = parse_file("max_info_hashes = 0\n").unwrap();
        let e = resolve_with(&args(None), file, Defaults::TOOL)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("max_info_hashes:"), "{e}");
        let file = parse_file("max_item_bytes = 10\nmax_items = 5\n").unwrap();
        let e = resolve_with(&args(None), file, Defaults::TOOL)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("max_item_bytes:"), "{e}");
        let file = parse_file("max_items = 5\n").unwrap();
        let s = resolve_with(&args(None), file, Defaults::TOOL).unwrap();
        assert_eq!(s.config.dht.items.max_items, 5);
    }
}
