//! The node's configuration: everything that decides how it behaves,
//! shared by the daemon and the simulator. Each part documents its defaults.

use std::time::Duration;

use crate::family::Families;
use crate::item::ItemStoreConfig;
use crate::lookup::LookupConfig;
use crate::rate_limit::Rate;
use crate::routing::RoutingConfig;
use crate::store::PeerStoreConfig;
use crate::token::TokenConfig;
use crate::transactions::TransactionConfig;

/// Everything that decides how a node behaves, shared by the daemon and
/// the simulator. Each part documents its defaults.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NodeConfig {
    /// k-bucket policy (k, timeouts, one node per IP per bucket).
    pub routing: RoutingConfig,
    /// Lookup parameters (α, k, timeouts, bounds).
    pub lookup: LookupConfig,
    /// Lookups running and waiting at once.
    pub lookup_limits: LookupLimits,
    /// Peer store caps and expiry. The caps stop an announce flood from
    /// exhausting memory.
    pub store: PeerStoreConfig,
    /// BEP 44 item store caps and lifetime.
    pub items: ItemStoreConfig,
    /// Token secret rotation.
    pub tokens: TokenConfig,
    /// Outstanding queries: timeout, attempts, cap.
    pub transactions: TransactionConfig,
    /// Inbound per-IP budgets, outbound query budget and spacing.
    pub limits: RateLimits,
    /// Bootstrap retries and the nodes added at run time.
    pub bootstrap: BootstrapConfig,
    /// BEP 43 read-only: `ro = 1` on every query, no answers. Default off.
    pub read_only: bool,
    /// Once the external IP is known, choose a BEP 42 id derived from it
    /// (the driver saves it for the next start). Default off.
    pub bep42: bool,
    /// The address families served (BEP 32): one routing table, lookup
    /// pool and bootstrap each, under one node id. Default IPv4 alone; the
    /// daemon turns on the families of its listen addresses.
    pub families: Families,
}

/// Rate limits, each with the reason it exists.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimits {
    /// Queries accepted per source IP. Defends the node's CPU and upload
    /// against one abusive or broken peer. Default 20/s, burst 40.
    pub queries_per_ip: Rate,
    /// Queries accepted per source /24 (IPv4) or /64 (IPv6), over all its
    /// addresses: one party holds many addresses of one network cheaply.
    /// Default 200/s, burst 400 (ten addresses at their full budget).
    pub queries_per_prefix: Rate,
    /// Responses and errors accepted per source IP; they are matched against
    /// our own queries, so this only bounds floods. Default 200/s, burst 400.
    pub responses_per_ip: Rate,
    /// Source IPs tracked at once; bounds the limiter's memory under a
    /// spoofed flood. Default 65,536.
    pub max_tracked_ips: usize,
    /// Queries we send per second, so that no node bans us as a spammer.
    /// Default 250/s, burst 100.
    pub outbound_queries: Rate,
    /// Queries waiting for the budget or their spacing; beyond this they
    /// are not sent. Default 4,096.
    pub max_queued_queries: usize,
    /// Minimum time between two queries of the same method for the same
    /// target to the same node; a repeat waits until then. Default 1 s.
    pub query_spacing: Duration,
    /// Bytes per second the node sends in all, answers included (burst:
    /// bytes at once), shed in the order `crate::upload` gives. Default
    /// none: unlimited (a node's upload is bounded by its query budgets).
    pub upload: Option<Rate>,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            queries_per_ip: Rate {
                per_second: 20.0,
                burst: 40.0,
            },
            queries_per_prefix: Rate {
                per_second: 200.0,
                burst: 400.0,
            },
            responses_per_ip: Rate {
                per_second: 200.0,
                burst: 400.0,
            },
            max_tracked_ips: 65_536,
            outbound_queries: Rate {
                per_second: 250.0,
                burst: 100.0,
            },
            max_queued_queries: 4096,
            query_spacing: Duration::from_secs(1),
            upload: None,
        }
    }
}

/// Limits of the lookup pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LookupLimits {
    /// Lookups running at once; more wait their turn. Default 64.
    pub max_running: usize,
    /// Lookups waiting (for a slot, or for bootstrap); beyond this a new one
    /// ends at once with [`LookupEnd::Refused`]. Default 1,024.
    pub max_waiting: usize,
}

impl Default for LookupLimits {
    fn default() -> Self {
        LookupLimits {
            max_running: 64,
            max_waiting: 1024,
        }
    }
}

/// Bootstrap timing and bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootstrapConfig {
    /// First wait before a bootstrap that reached no node is retried, and
    /// before a node with fewer than k nodes looks again; it doubles up to
    /// `retry_max`. Default 2 s.
    pub retry: Duration,
    /// Longest wait between attempts. Default 5 minutes.
    pub retry_max: Duration,
    /// Longest wait between two lookups of our own id once bootstrapped
    /// (the wait doubles from `retry`, and is this at once after a look
    /// that found no new neighbour): how soon a node finds the nodes that
    /// joined near it, against a lookup's dozen queries. Default 15
    /// minutes, BEP 5's refresh period: a 10^4-node simulation sent 30% more
    /// queries for the same figures with 5 minutes and no jump.
    pub look_again_max: Duration,
    /// Nodes added at run time (by hand, a .torrent's `nodes`, PORT
    /// messages) kept as bootstrap sources; the oldest are forgotten, so a
    /// stream of PORT messages cannot grow the list or the queries each
    /// attempt sends. Default 32.
    pub max_added_nodes: usize,
}

impl Default for BootstrapConfig {
    fn default() -> Self {
        BootstrapConfig {
            retry: Duration::from_secs(2),
            retry_max: Duration::from_secs(300),
            look_again_max: Duration::from_secs(15 * 60),
            max_added_nodes: 32,
        }
    }
}

/// A setting that a node cannot run with: which one, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidSetting {
    /// Its path in [`NodeConfig`], e.g. `lookup.k`.
    pub setting: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

impl std::fmt::Display for InvalidSetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.setting, self.problem)
    }
}

impl std::error::Error for InvalidSetting {}

fn at_least_one(setting: &'static str, value: usize) -> Result<(), InvalidSetting> {
    if value >= 1 {
        Ok(())
    } else {
        Err(InvalidSetting {
            setting,
            problem: "must be at least 1".into(),
        })
    }
}

fn not_zero(setting: &'static str, value: Duration) -> Result<(), InvalidSetting> {
    if value.is_zero() {
        Err(InvalidSetting {
            setting,
            problem: "must be longer than zero".into(),
        })
    } else {
        Ok(())
    }
}

fn rate(setting: &'static str, rate: Rate) -> Result<(), InvalidSetting> {
    let finite_positive = |x: f64| x.is_finite() && x > 0.0;
    if !finite_positive(rate.per_second) {
        return Err(InvalidSetting {
            setting,
            problem: format!(
                "per_second must be a positive number, not {}",
                rate.per_second
            ),
        });
    }
    if !(rate.burst.is_finite() && rate.burst >= 1.0) {
        return Err(InvalidSetting {
            setting,
            problem: format!("burst must be at least 1, not {}", rate.burst),
        });
    }
    Ok(())
}

impl NodeConfig {
    /// Checks every setting a node would misbehave or panic with (a zero
    /// k, α or cap, a zero timeout or interval, a rate that is not a
    /// positive number), naming the first bad one. Both drivers start only
    /// from a valid configuration.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if let Some(up) = self.limits.upload {
            if !(up.per_second > 0.0 && up.burst >= crate::krpc::MAX_REPLY_LEN as f64) {
                return Err(InvalidSetting {
                    setting: "limits.upload",
                    problem: format!(
                        "needs a positive rate and a burst of at least {} bytes (one reply)",
                        crate::krpc::MAX_REPLY_LEN
                    ),
                });
            }
        }
        if self.families.is_empty() {
            return Err(InvalidSetting {
                setting: "families",
                problem: "at least one address family must be on".into(),
            });
        }
        let r = &self.routing;
        at_least_one("routing.k", r.k)?;
        at_least_one("routing.max_failures", usize::from(r.max_failures))?;
        at_least_one("routing.max_per_prefix", r.max_per_prefix)?;
        not_zero("routing.questionable_after", r.questionable_after)?;
        not_zero("routing.refresh_after", r.refresh_after)?;
        let l = &self.lookup;
        at_least_one("lookup.k", l.k)?;
        at_least_one("lookup.alpha", l.alpha)?;
        at_least_one("lookup.max_per_prefix", l.max_per_prefix)?;
        at_least_one("lookup.max_queries", l.max_queries)?;
        not_zero("lookup.query_timeout", l.query_timeout)?;
        not_zero("lookup.max_duration", l.max_duration)?;
        if l.max_candidates < l.k {
            return Err(InvalidSetting {
                setting: "lookup.max_candidates",
                problem: format!(
                    "must be at least lookup.k ({}), not {}",
                    l.k, l.max_candidates
                ),
            });
        }
        if l.min_query_timeout > l.query_timeout {
            return Err(InvalidSetting {
                setting: "lookup.min_query_timeout",
                problem: "must not be longer than lookup.query_timeout".into(),
            });
        }
        at_least_one("lookup_limits.max_running", self.lookup_limits.max_running)?;
        let s = &self.store;
        at_least_one("store.max_info_hashes", s.max_info_hashes)?;
        at_least_one("store.max_peers_per_info_hash", s.max_peers_per_info_hash)?;
        at_least_one("store.max_ports_per_ip", s.max_ports_per_ip)?;
        at_least_one("store.max_announces_per_ip", s.max_announces_per_ip)?;
        at_least_one("store.max_announces_per_prefix", s.max_announces_per_prefix)?;
        not_zero("store.peer_ttl", s.peer_ttl)?;
        not_zero("store.sweep_interval", s.sweep_interval)?;
        not_zero("store.sample_interval", s.sample_interval)?;
        if s.sample_interval > Duration::from_secs(21_600) {
            return Err(InvalidSetting {
                setting: "store.sample_interval",
                problem: "must be at most 6 hours (BEP 51)".into(),
            });
        }
        at_least_one("items.max_items", self.items.max_items)?;
        if self.items.max_bytes < crate::item::MAX_VALUE_LEN {
            return Err(InvalidSetting {
                setting: "items.max_bytes",
                problem: format!(
                    "must hold one value of {} bytes at least",
                    crate::item::MAX_VALUE_LEN
                ),
            });
        }
        not_zero("items.lifetime", self.items.lifetime)?;
        not_zero("tokens.rotation", self.tokens.rotation)?;
        let t = &self.transactions;
        not_zero("transactions.timeout", t.timeout)?;
        at_least_one("transactions.attempts", usize::from(t.attempts))?;
        at_least_one("transactions.max_pending", t.max_pending)?;
        let m = &self.limits;
        rate("limits.queries_per_ip", m.queries_per_ip)?;
        rate("limits.queries_per_prefix", m.queries_per_prefix)?;
        rate("limits.responses_per_ip", m.responses_per_ip)?;
        rate("limits.outbound_queries", m.outbound_queries)?;
        at_least_one("limits.max_tracked_ips", m.max_tracked_ips)?;
        at_least_one("limits.max_queued_queries", m.max_queued_queries)?;
        let b = &self.bootstrap;
        not_zero("bootstrap.retry", b.retry)?;
        if b.retry_max < b.retry {
            return Err(InvalidSetting {
                setting: "bootstrap.retry_max",
                problem: "must not be shorter than bootstrap.retry".into(),
            });
        }
        not_zero("bootstrap.look_again_max", b.look_again_max)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_a_bad_setting_is_named() {
        assert_eq!(NodeConfig::default().validate(), Ok(()));
        let mut c = NodeConfig::default();
        c.lookup.k = 0;
        assert_eq!(c.validate().unwrap_err().setting, "lookup.k");
        let mut c = NodeConfig::default();
        c.limits.queries_per_ip.per_second = f64::NAN;
        let e = c.validate().unwrap_err();
        assert_eq!(e.setting, "limits.queries_per_ip");
        assert!(e.to_string().contains("NaN"), "{e}");
        let mut c = NodeConfig::default();
        c.transactions.attempts = 0;
        assert_eq!(c.validate().unwrap_err().setting, "transactions.attempts");
        let mut c = NodeConfig::default();
        c.store.peer_ttl = Duration::ZERO;
        assert_eq!(c.validate().unwrap_err().setting, "store.peer_ttl");
    }
}
