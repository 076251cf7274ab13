//! `dhtd run`: the daemon.

use std::sync::Arc;
use std::time::Duration;

use dhtd::{Dht, Warning};

use crate::reload::{Reloaded, Reloader};
use crate::settings::{self, Defaults, NodeArgs};
use crate::{control, Failure};

/// How often the warnings are re-evaluated.
const WARNING_CHECK: Duration = Duration::from_secs(60);
/// The longest a shutdown may take before the process exits anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

pub(crate) async fn run(args: &NodeArgs) -> Result<(), Failure> {
    let signals = Signals::install();
    let settings = settings::resolve(args, Defaults::DAEMON)?;
    if !settings.enabled {
        tracing::info!(target: "dht::node", "the DHT is off (mode = off); waiting for a signal");
        signals.wait().await;
        return Ok(());
    }
    let listener = match settings.metrics_listen {
        Some(addr) => Some((addr, control::bind(addr).await?, control::exporter()?)),
        None => None,
    };
    if settings.log_filter.is_some() {
        crate::set_log_filter(settings.log_filter.as_deref()).map_err(Failure::Failed)?;
    }
    let dht = Dht::builder(settings.config.clone()).start()?;
    let reloader = Arc::new(Reloader::new(args.clone(), dht.clone(), settings.clone()));
    tokio::spawn(reload_on_sighup(reloader.clone()));
    // Bound and loaded: a service manager may count the node as started.
    let notifier = dhtd::systemd::Notifier::from_env().map(Arc::new);
    if let Some(n) = &notifier {
        let addrs: Vec<String> = dht.local_addrs().iter().map(ToString::to_string).collect();
        let _ = n.ready(&format!("serving on {}", addrs.join(" and ")));
    }
    let watchdog = notifier.as_ref().and(dhtd::systemd::watchdog_interval());
    tokio::spawn(dhtd::systemd::watch(
        dht.clone(),
        notifier.clone(),
        watchdog,
    ));
    if let Some((addr, listener, exporter)) = listener {
        control::spawn(
            listener,
            vec![dht.clone()],
            exporter,
            settings.allow_remote_control,
            Some(reloader),
        );
        tracing::info!(target: "dht::node", "metrics on http://{addr}/metrics, statistics on http://{addr}/stats");
    }
    tokio::spawn(log_statistics(
        dht.clone(),
        settings.stats_first,
        settings.stats_every,
    ));
    tokio::spawn(log_warnings(dht.clone()));
    signals.wait().await;
    if let Some(n) = &notifier {
        let _ = n.stopping();
    }
    tracing::info!(target: "dht::node", "stopping: saving the routing table");
    if tokio::time::timeout(SHUTDOWN_GRACE, dht.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(target: "dht::node", "shutdown took longer than {SHUTDOWN_GRACE:?}; exiting anyway");
    }
    // A supervisor that restarts the daemon, or the operator, should know
    // that the next start will not find what this run learned.
    match dht.last_save_error() {
        Some(e) => Err(Failure::Failed(format!("the state dir was not saved: {e}"))),
        None => Ok(()),
    }
}

/// Rereads the settings on every SIGHUP, as daemons do.
async fn reload_on_sighup(reloader: Arc<Reloader>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        return;
    };
    while hup.recv().await.is_some() {
        // It says how it went in the log.
        let _ = log_reload(&reloader);
    }
}

/// Reloads and says how it went, in the log.
pub(crate) fn log_reload(reloader: &Reloader) -> Result<Reloaded, String> {
    let result = reloader.reload();
    match &result {
        Ok(done) if done.need_restart.is_empty() => {
            tracing::info!(target: "dht::node", "{done}")
        }
        Ok(done) => tracing::warn!(target: "dht::node", "{done}"),
        Err(e) => {
            tracing::error!(target: "dht::node", "reload refused, the running settings stay: {e}")
        }
    }
    result
}

/// SIGINT and SIGTERM, caught from the moment this is made: made before
/// anything starts, so that a signal in the first milliseconds still stops
/// the program cleanly instead of killing it.
pub(crate) struct Signals {
    int: Option<tokio::signal::unix::Signal>,
    term: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    pub(crate) fn install() -> Signals {
        use tokio::signal::unix::{signal, SignalKind};
        Signals {
            int: signal(SignalKind::interrupt()).ok(),
            term: signal(SignalKind::terminate()).ok(),
        }
    }

    /// Resolves on the first SIGINT or SIGTERM.
    pub(crate) async fn wait(mut self) {
        let int = async {
            match &mut self.int {
                Some(s) => drop(s.recv().await),
                None => std::future::pending().await,
            }
        };
        let term = async {
            match &mut self.term {
                Some(s) => drop(s.recv().await),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = int => {}
            _ = term => {}
        }
    }
}

async fn log_statistics(dht: Dht, first: Duration, every: Duration) {
    tokio::time::sleep(first).await;
    loop {
        if let Ok(s) = dht.stats().await {
            tracing::info!(
                target: "dht::stats",
                nodes = s.nodes(),
                buckets = s.routing.buckets.len(),
                estimated_dht_size = s.estimated_dht_size.unwrap_or(0),
                info_hashes = s.store.info_hashes,
                peers = s.store.peers,
                packets_in = s.traffic.get("dht_packets_received_total", &[]),
                packets_out = s.traffic.get("dht_packets_sent_total", &[]),
                "statistics: {} nodes in {} buckets, about {} in the DHT; storing {} peers for {} info hashes",
                s.nodes(),
                s.routing.buckets.len(),
                s.estimated_dht_size.unwrap_or(0),
                s.store.peers,
                s.store.info_hashes
            );
        }
        tokio::time::sleep(every).await;
    }
}

/// Logs each warning when it becomes true.
async fn log_warnings(dht: Dht) {
    let mut shown: Vec<Warning> = Vec::new();
    loop {
        tokio::time::sleep(WARNING_CHECK).await;
        let Ok(s) = dht.stats().await else { return };
        for w in &s.warnings {
            if !shown.contains(w) {
                tracing::warn!(target: "dht::node", "{w}");
            }
        }
        shown = s.warnings;
    }
}
