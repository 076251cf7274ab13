//! What the node tells its operator: events as data, rendered and leveled
//! here, written by whichever driver runs the node.

use std::net::IpAddr;
use std::time::Duration;

use super::TableSummary;
use crate::id::NodeId;
use crate::Family;

/// Something to tell the operator, with the numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEvent {
    /// The node has a working table.
    BootstrapComplete(TableSummary),
    /// An attempt reached no node; the next one is in `retry_in`.
    BootstrapUnanswered {
        /// In which family.
        family: Family,
        /// Attempts so far.
        attempt: u32,
        /// Wait before the next.
        retry_in: Duration,
    },
    /// No source to ask and no node in the table: waiting for a node to
    /// join us (or to be added); the next look is in `retry_in`.
    BootstrapNoSources {
        /// In which family.
        family: Family,
        /// Wait before the next.
        retry_in: Duration,
    },
    /// Nodes answered but none could be kept; the next attempt is in `retry_in`.
    BootstrapEmpty {
        /// In which family.
        family: Family,
        /// Attempts so far.
        attempt: u32,
        /// Wait before the next.
        retry_in: Duration,
    },
    /// A family's table emptied after bootstrap: bootstrapping again.
    Rejoining(Family),
    /// A search found no node to ask.
    NoNodesForSearch(NodeId),
    /// A search got no reply at all.
    SearchUnsuccessful {
        /// Its target.
        target: NodeId,
        /// Queries sent.
        queries: usize,
    },
    /// No node accepted an announce.
    AnnounceFailed {
        /// Its info hash.
        target: NodeId,
        /// Nodes tried.
        tried: usize,
    },
    /// Too many lookups were waiting: one ended unstarted.
    LookupRefused(NodeId),
    /// Other nodes agree on our external address.
    ExternalAddress(IpAddr),
    /// A BEP 42 id was chosen for the next start.
    Bep42Id(NodeId),
}

/// How loud a log event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Routine progress.
    Info,
    /// Something an operator should look at.
    Warn,
}

impl LogEvent {
    /// How loud it is.
    pub fn level(&self) -> LogLevel {
        match self {
            LogEvent::BootstrapComplete(_)
            | LogEvent::BootstrapNoSources { .. }
            | LogEvent::ExternalAddress(_)
            | LogEvent::Bep42Id(_) => LogLevel::Info,
            _ => LogLevel::Warn,
        }
    }

    /// The part of the node it concerns, as a log target.
    pub fn target(&self) -> &'static str {
        match self {
            LogEvent::BootstrapComplete(_)
            | LogEvent::BootstrapUnanswered { .. }
            | LogEvent::BootstrapEmpty { .. }
            | LogEvent::BootstrapNoSources { .. }
            | LogEvent::Rejoining(_) => "dht::bootstrap",
            LogEvent::NoNodesForSearch(_)
            | LogEvent::SearchUnsuccessful { .. }
            | LogEvent::AnnounceFailed { .. }
            | LogEvent::LookupRefused(_) => "dht::lookup",
            LogEvent::ExternalAddress(_) | LogEvent::Bep42Id(_) => "dht::node",
        }
    }
}

impl std::fmt::Display for LogEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LogEvent::BootstrapComplete(s) => write!(
                f,
                "{} bootstrap complete: {} nodes in {} buckets, about {} nodes in the DHT",
                s.family,
                s.nodes,
                s.buckets,
                s.estimated_dht_size.unwrap_or(0)
            ),
            LogEvent::BootstrapUnanswered {
                family,
                attempt,
                retry_in,
            } => write!(
                f,
                "{family} bootstrap reached no DHT node (attempt {attempt}); retrying in {retry_in:?}"
            ),
            LogEvent::BootstrapNoSources { family, retry_in } => write!(
                f,
                "{family}: no bootstrap source and no node yet: waiting for a node to join; looking again in {retry_in:?}"
            ),
            LogEvent::BootstrapEmpty {
                family,
                attempt,
                retry_in,
            } => write!(
                f,
                "{family} bootstrap found no node to keep (attempt {attempt}); retrying in {retry_in:?}"
            ),
            LogEvent::Rejoining(family) => {
                write!(f, "no {family} DHT nodes available; bootstrapping again")
            }
            LogEvent::NoNodesForSearch(t) => {
                write!(f, "no DHT nodes available for a search of {t}")
            }
            LogEvent::SearchUnsuccessful { target, queries } => write!(
                f,
                "search unsuccessful (no replies to {queries} queries) for {target}"
            ),
            LogEvent::AnnounceFailed { target, tried } => write!(
                f,
                "announce failed: none of {tried} nodes accepted it for {target}"
            ),
            LogEvent::LookupRefused(t) => {
                write!(
                    f,
                    "too many lookups waiting; the lookup of {t} ends unstarted"
                )
            }
            LogEvent::ExternalAddress(ip) => {
                write!(f, "external address learned from other nodes: {ip}")
            }
            LogEvent::Bep42Id(id) => write!(f, "BEP 42 node id {id} saved for the next start"),
        }
    }
}
