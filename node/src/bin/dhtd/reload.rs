//! Reloading the daemon's settings without a restart: on SIGHUP and on
//! `POST /reload`, the config file (and the environment and flags, which
//! keep precedence) is read again, and what can change under a running
//! node is applied: rate limits, caps, the query spacing, read-only mode,
//! the outbound budget, and the log filter. What cannot (the listen
//! addresses, the node id, the state dir, the HTTP listener, the routing
//! table's rules…) is named in a warning and keeps its running value. A
//! file that does not parse is refused with the message a start would
//! give, and nothing changes.

use parking_lot::Mutex;

use dhtd::Dht;

use crate::settings::{self, Defaults, NodeArgs, Settings};

/// What a reload did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Reloaded {
    /// Settings that changed and were applied.
    pub(crate) applied: Vec<&'static str>,
    /// Settings that changed but need a restart; they keep their running value.
    pub(crate) need_restart: Vec<&'static str>,
}

impl std::fmt::Display for Reloaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |v: &[&str]| {
            if v.is_empty() {
                "none".to_owned()
            } else {
                v.join(", ")
            }
        };
        write!(f, "settings reloaded; applied: {}", list(&self.applied))?;
        if !self.need_restart.is_empty() {
            write!(
                f,
                "; these cannot change while the node runs and keep their running value until a restart: {}",
                list(&self.need_restart)
            )?;
        }
        Ok(())
    }
}

/// Rereads the settings of one daemon and applies them.
pub(crate) struct Reloader {
    args: NodeArgs,
    dht: Dht,
    running: Mutex<Settings>,
}

impl Reloader {
    /// For `dht`, started with `running`, from `args`.
    pub(crate) fn new(args: NodeArgs, dht: Dht, running: Settings) -> Self {
        Reloader {
            args,
            dht,
            running: Mutex::new(running),
        }
    }

    /// Rereads and applies; the error is the message a start would give.
    pub(crate) fn reload(&self) -> Result<Reloaded, String> {
        let next = settings::resolve(&self.args, Defaults::DAEMON).map_err(|e| e.to_string())?;
        let mut running = self.running.lock();
        let mut done = Reloaded::default();
        let (a, b) = (&running.config, &next.config);
        for (changed, name) in [
            (a.listen != b.listen, "listen"),
            (a.node_id != b.node_id, "node_id"),
            (a.state_dir != b.state_dir, "state_dir"),
            (a.routers != b.routers, "bootstrap"),
            (a.bootstrap_nodes != b.bootstrap_nodes, "nodes"),
            (a.recv_buffer != b.recv_buffer, "recv_buffer"),
            (a.save_interval != b.save_interval, "save_interval_secs"),
            (
                running.metrics_listen != next.metrics_listen,
                "metrics_listen",
            ),
            (
                running.allow_remote_control != next.allow_remote_control,
                "allow_remote_control",
            ),
            (running.enabled != next.enabled, "mode"),
            (
                (running.stats_first, running.stats_every) != (next.stats_first, next.stats_every),
                "stats_first_secs, stats_every_secs",
            ),
        ] {
            if changed {
                done.need_restart.push(name);
            }
        }
        // The node's own settings: what differs, by the file's keys.
        let (old, new) = (&a.dht, &b.dht);
        for (changed, name) in [
            (
                old.limits.queries_per_ip != new.limits.queries_per_ip,
                "queries_per_ip",
            ),
            (
                old.limits.queries_per_prefix != new.limits.queries_per_prefix,
                "queries_per_prefix",
            ),
            (
                old.limits.outbound_queries != new.limits.outbound_queries,
                "outbound_queries",
            ),
            (
                old.limits.query_spacing != new.limits.query_spacing,
                "query_spacing_ms",
            ),
            (
                old.store.max_info_hashes != new.store.max_info_hashes,
                "max_info_hashes",
            ),
            (
                old.store.max_peers_per_info_hash != new.store.max_peers_per_info_hash,
                "max_peers_per_info_hash",
            ),
            (
                old.store.max_ports_per_ip != new.store.max_ports_per_ip,
                "max_ports_per_ip",
            ),
            (
                old.store.max_announces_per_ip != new.store.max_announces_per_ip,
                "max_announces_per_ip",
            ),
            (
                old.store.max_announces_per_prefix != new.store.max_announces_per_prefix,
                "max_announces_per_prefix",
            ),
            (old.store.peer_ttl != new.store.peer_ttl, "peer_ttl_secs"),
            (old.items.max_items != new.items.max_items, "max_items"),
            (old.items.max_bytes != new.items.max_bytes, "max_item_bytes"),
            (
                old.transactions.max_pending != new.transactions.max_pending,
                "max_pending_queries",
            ),
            (
                old.lookup.max_per_prefix != new.lookup.max_per_prefix,
                "lookup_nodes_per_prefix",
            ),
            (
                old.lookup.enough_holders != new.lookup.enough_holders,
                "lookup_enough_holders",
            ),
            (old.read_only != new.read_only, "read_only"),
            (old.limits.upload != new.limits.upload, "upload_rate"),
        ] {
            if changed {
                done.applied.push(name);
            }
        }
        let kept = self
            .dht
            .reconfigure(new.clone())
            .map_err(|e| e.to_string())?;
        for name in kept {
            // The file's key for the one the routing table's rules hold.
            done.need_restart.push(match name {
                "dht.routing" => "max_nodes_per_prefix",
                other => other,
            });
        }
        if running.log_filter != next.log_filter {
            match crate::set_log_filter(next.log_filter.as_deref()) {
                Ok(true) => done.applied.push("log"),
                Ok(false) => {} // DHTD_LOG is set, and wins
                Err(e) => return Err(format!("log: {e}")),
            }
        }
        // What was applied is now the running setting; the rest stays.
        running.config.dht = self.dht.settings();
        running.log_filter = next.log_filter;
        Ok(done)
    }
}
