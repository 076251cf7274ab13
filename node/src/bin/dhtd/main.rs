//! `dhtd`: the daemon and the command-line tools.
//!
//! Exit status: 0 success, 1 failure, 2 a usage or configuration error.

mod control;
mod decode;
mod diag;
mod items;
mod load;
mod lookup;
mod reload;
mod run;
mod sample;
mod settings;
mod sim;
mod status;
mod swarm;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use settings::NodeArgs;

/// A BitTorrent mainline DHT node (BEP 5).
#[derive(Parser, Debug)]
#[command(name = "dhtd", version, about, propagate_version = true)]
struct Cli {
    /// Log format.
    #[arg(long, global = true, env = "DHTD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum LogFormat {
    /// Readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the node until SIGINT or SIGTERM.
    Run {
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Look up the peers of an info hash (or a magnet link's).
    Lookup {
        /// 40 hex digits, or a magnet link with `xt=urn:btih:`.
        target: String,
        /// JSON lines instead of text.
        #[arg(long)]
        json: bool,
        /// Also estimate the swarm's seeds and peers (BEP 33 scrape).
        #[arg(long)]
        scrape: bool,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Announce that we have an info hash.
    Announce {
        /// 40 hex digits, or a magnet link.
        info_hash: String,
        /// The port our BitTorrent client listens on.
        #[arg(
            long,
            conflicts_with = "implied_port",
            required_unless_present = "implied_port"
        )]
        port: Option<u16>,
        /// Let the receivers store our UDP source port (behind NAT).
        #[arg(long)]
        implied_port: bool,
        /// We have the whole torrent: scrapes count us as a seed (BEP 33).
        #[arg(long)]
        seed: bool,
        /// Repeat the announce this often until interrupted (e.g. `30m`).
        #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
        every: Option<Duration>,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Ping one node: its id, version and round-trip time.
    Ping {
        /// The node.
        addr: String,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Ask one node for the nodes closest to a target (default: a random id).
    FindNode {
        /// The node.
        addr: String,
        /// 40 hex digits.
        target: Option<String>,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Ask one node for the peers of an info hash.
    GetPeers {
        /// The node.
        addr: String,
        /// 40 hex digits, or a magnet link.
        info_hash: String,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Statistics of a running daemon, read over its HTTP listener.
    Stats {
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
        /// The daemon's metrics listener.
        #[arg(long, env = "DHTD_METRICS_LISTEN", default_value = settings::DEFAULT_METRICS_LISTEN, value_name = "ADDR")]
        metrics_listen: String,
    },
    /// Hand a node to a running daemon (rTorrent's dht_add_node).
    AddNode {
        /// The node to add.
        addr: String,
        /// The daemon's metrics listener.
        #[arg(long, env = "DHTD_METRICS_LISTEN", default_value = settings::DEFAULT_METRICS_LISTEN, value_name = "ADDR")]
        metrics_listen: String,
    },
    /// Store a BEP 44 item: immutable, or mutable with `--secret`. Prints
    /// its target (the key to get it by).
    Put {
        /// The value's file; `-` or nothing for standard input.
        file: Option<std::path::PathBuf>,
        /// A mutable item, signed with this ed25519 secret seed (64 hex digits).
        #[arg(long, env = "DHTD_SECRET", hide_env_values = true)]
        secret: Option<String>,
        /// The mutable item's salt (one key, many items).
        #[arg(long, default_value = "")]
        salt: String,
        /// The mutable item's sequence number (default 1; higher replaces).
        #[arg(long)]
        seq: Option<i64>,
        /// Store only where the held sequence number is this (compare and swap).
        #[arg(long)]
        cas: Option<i64>,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Find a BEP 44 item: by its target (40 hex digits), or by a public
    /// key (64 hex digits, mutable) and `--salt`. Prints the value.
    Get {
        /// The target, or the public key.
        target: String,
        /// The mutable item's salt.
        #[arg(long, default_value = "")]
        salt: String,
        /// Only a mutable item with a higher sequence number.
        #[arg(long)]
        newer_than: Option<i64>,
        /// JSON instead of the raw value.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Crawl the DHT for info hashes with BEP 51 `sample_infohashes`.
    Sample {
        /// Stop after asking this many nodes.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(usize))]
        max_nodes: usize,
        /// Stop after this long, e.g. `10m`.
        #[arg(long, default_value = "60s", value_parser = parse_duration, value_name = "DURATION")]
        duration: Duration,
        /// JSON lines instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Write the man pages (dhtd(1) and one per command) into a directory.
    Man {
        /// Where; created if missing.
        #[arg(long, default_value = ".")]
        out: std::path::PathBuf,
    },
    /// Print the shell completions for bash, zsh, fish, elvish or powershell.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print a raw KRPC datagram as JSON.
    Decode {
        /// The datagram's file; `-` or nothing for standard input.
        file: Option<std::path::PathBuf>,
    },
    /// Load-test a DHT node (dhtd or any other) with KRPC queries.
    Load(load::LoadArgs),
    /// The benchmarks' physical limit: answers every query with one fixed reply.
    Echo {
        /// Where to listen.
        #[arg(long, default_value = "127.0.0.1:6882")]
        listen: SocketAddr,
    },
    /// The node in simulated Internet-like networks of N nodes: a table and plots.
    Sim(sim::SimArgs),
    /// A local DHT of dhtd nodes on loopback: bootstrap, announce, look up.
    Swarm {
        /// How many nodes.
        #[arg(long, default_value_t = 64)]
        nodes: usize,
        /// Keep the swarm running (and its metrics served) this long after
        /// the round, e.g. `10m`; without it, one round and exit.
        #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
        duration: Option<Duration>,
        /// Where the swarm's metrics are served, or `off`.
        #[arg(long, env = "DHTD_METRICS_LISTEN", default_value = settings::DEFAULT_METRICS_LISTEN, value_name = "ADDR|off")]
        metrics_listen: String,
        /// Seed for the swarm's ids and choices.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

/// `dhtd man`: dhtd.1 and dhtd-COMMAND.1, from the clap definitions.
fn man_pages(out: &std::path::Path) -> Result<(), Failure> {
    let failed = |e: std::io::Error| Failure::Failed(format!("{}: {e}", out.display()));
    std::fs::create_dir_all(out).map_err(failed)?;
    let cli = <Cli as clap::CommandFactory>::command();
    clap_mangen::generate_to(cli, out).map_err(failed)?;
    eprintln!("man pages written to {}", out.display());
    Ok(())
}

/// `90s`, `15m`, `2h`, `1d`, or plain seconds.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 90s, 15m or 2h"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        "ms" => return Ok(Duration::from_millis(n)),
        _ => {
            return Err(format!(
                "`{text}`: unknown unit `{unit}` (use ms, s, m, h or d)"
            ))
        }
    };
    Ok(Duration::from_secs(secs))
}

/// A failure and how the process should end.
pub(crate) enum Failure {
    /// Exit 1.
    Failed(String),
    /// Exit 2.
    Usage(String),
}

impl From<settings::SettingsError> for Failure {
    fn from(e: settings::SettingsError) -> Self {
        Failure::Usage(e.to_string())
    }
}

impl From<dhtd::StartError> for Failure {
    fn from(e: dhtd::StartError) -> Self {
        Failure::Failed(e.to_string())
    }
}

/// Replaces the log filter of the running program.
type SetFilter = Box<dyn Fn(tracing_subscriber::EnvFilter) -> Result<(), String> + Send + Sync>;

/// How the log filter is changed once logging has started.
static LOG_FILTER: std::sync::OnceLock<SetFilter> = std::sync::OnceLock::new();

/// `DHTD_LOG` (e.g. `debug`, `dht::bootstrap=debug`) overrides `default`
/// and the config file's `log`.
fn init_logging(format: LogFormat, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DHTD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    use tracing_subscriber::prelude::*;
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    let _ = LOG_FILTER.set(Box::new(move |f| {
        handle.reload(f).map_err(|e| e.to_string())
    }));
    let lines = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Text => registry.with(lines).init(),
        LogFormat::Json => registry.with(lines.json()).init(),
    }
}

/// Applies the config file's log filter (`None`: `info`), unless
/// `DHTD_LOG` is set, which wins; returns whether it was applied.
pub(crate) fn set_log_filter(filter: Option<&str>) -> Result<bool, String> {
    if std::env::var_os("DHTD_LOG").is_some() {
        return Ok(false);
    }
    let filter = tracing_subscriber::EnvFilter::try_new(filter.unwrap_or("info"))
        .map_err(|e| e.to_string())?;
    match LOG_FILTER.get() {
        Some(set) => set(filter).map(|()| true),
        None => Ok(false),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, Command::Sim(_)) {
        sim::restart_with_huge_pages();
    }
    // A swarm's hundreds of nodes would each log their start and bootstrap;
    // it prints its own progress instead.
    let default_level = if matches!(cli.command, Command::Swarm { .. }) {
        "warn"
    } else {
        "info"
    };
    init_logging(cli.log_format, default_level);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("dhtd: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Run { node } => run::run(&node).await,
            Command::Lookup {
                target,
                json,
                scrape,
                node,
            } => lookup::lookup(&target, json, scrape, &node).await,
            Command::Put {
                file,
                secret,
                salt,
                seq,
                cas,
                json,
                node,
            } => {
                let args = items::PutArgs {
                    file: file.as_deref(),
                    secret: secret.as_deref(),
                    salt: &salt,
                    seq,
                    cas,
                    json,
                };
                items::put(args, &node).await
            }
            Command::Get {
                target,
                salt,
                newer_than,
                json,
                node,
            } => items::get(&target, &salt, newer_than, json, &node).await,
            Command::Sample {
                max_nodes,
                duration,
                json,
                node,
            } => sample::sample(max_nodes, duration, json, &node).await,
            Command::Announce {
                info_hash,
                port,
                implied_port: _,
                seed,
                every,
                node,
            } => lookup::announce(&info_hash, port, seed, every, &node).await,
            Command::Ping { addr, node } => diag::ping(&addr, &node).await,
            Command::FindNode { addr, target, node } => {
                diag::find_node(&addr, target.as_deref(), &node).await
            }
            Command::GetPeers {
                addr,
                info_hash,
                node,
            } => diag::get_peers(&addr, &info_hash, &node).await,
            Command::Stats {
                json,
                metrics_listen,
            } => control::print_stats(&metrics_listen, json).await,
            Command::AddNode {
                addr,
                metrics_listen,
            } => control::add_node(&metrics_listen, &addr).await,
            Command::Decode { file } => decode::decode(file.as_deref()),
            Command::Man { out } => man_pages(&out),
            Command::Completions { shell } => {
                // Generated from the same definitions as --help: never drifts.
                let mut cli = <Cli as clap::CommandFactory>::command();
                clap_complete::generate(shell, &mut cli, "dhtd", &mut std::io::stdout());
                Ok(())
            }
            Command::Load(args) => load::load(args),
            Command::Echo { listen } => load::echo(listen),
            Command::Sim(args) => sim::sim(args),
            Command::Swarm {
                nodes,
                duration,
                metrics_listen,
                seed,
            } => swarm::swarm(nodes, duration, &metrics_listen, seed).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Failed(why)) => {
            eprintln!("dhtd: {why}");
            ExitCode::from(1)
        }
        Err(Failure::Usage(why)) => {
            eprintln!("dhtd: {why}");
            ExitCode::from(2)
        }
    }
}

/// An info hash from 40 hex digits or a magnet link.
pub(crate) fn parse_info_hash(text: &str) -> Result<dhtd::InfoHash, Failure> {
    let hex = match text.strip_prefix("magnet:?") {
        Some(query) => query
            .split('&')
            .find_map(|kv| kv.strip_prefix("xt=urn:btih:"))
            .ok_or_else(|| {
                Failure::Usage(format!("no `xt=urn:btih:` in the magnet link `{text}`"))
            })?,
        None => text,
    };
    hex.parse()
        .map_err(|_| Failure::Usage(format!("`{hex}` is not an info hash (40 hex digits)")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_info_hashes_parse() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert!(parse_duration("2 weeks")
            .unwrap_err()
            .contains("unknown unit"));
        let hex = "c9e15763f722f23e98a29decdfae341b98d53056";
        let magnet = format!("magnet:?xt=urn:btih:{hex}&dn=x");
        assert_eq!(parse_info_hash(&magnet).ok(), parse_info_hash(hex).ok());
        assert!(matches!(parse_info_hash("xyz"), Err(Failure::Usage(_))));
    }
}
