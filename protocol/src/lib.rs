//! # dhtd-protocol
//!
//! Everything that is true of the BitTorrent mainline DHT
//! ([BEP 5](https://www.bittorrent.org/beps/bep_0005.html)) itself, as pure
//! state and functions: bencode and KRPC, node ids and distance, compact
//! formats, the routing table, the iterative lookup, tokens, the peer store,
//! the transaction table, and a simulator that runs whole networks of them.
//!
//! This crate contains no networking code, starts no threads, sets no timers
//! and never reads the clock or the operating system's randomness. Time comes
//! in as `now: Instant` and randomness as an RNG argument (or a `StdRng`
//! seeded from one), so every behaviour here is deterministic under test and
//! thousands of nodes can be simulated in one process ([`sim`]).
//!
//! Stateful types share one vocabulary, after quinn-proto and rust-libp2p:
//! inputs are `on_*` / `node_*` methods describing what was observed,
//! outputs are return values or `poll_*` methods, and the next deadline comes
//! from `poll_timeout()`.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod bencode;
pub mod compact;
pub mod id;
pub mod krpc;

pub use compact::NodeInfo;
pub use id::{Distance, InfoHash, NodeId};

/// Kademlia's k: nodes per bucket, and results per lookup (BEP 5).
pub const K: usize = 8;
/// Kademlia's α: queries in flight per lookup.
pub const ALPHA: usize = 3;
pub mod lookup;
pub mod routing;
pub mod sim;
pub mod store;
pub mod token;
pub mod transactions;

/// The one clock read in this crate, for unit tests only: the virtual
/// epoch that test times are offset from, as a simulation's would be.
#[cfg(test)]
#[allow(clippy::disallowed_methods)]
pub(crate) fn test_epoch() -> std::time::Instant {
    std::time::Instant::now()
}
