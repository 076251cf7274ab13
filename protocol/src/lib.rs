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
//!
//! ```
//! use dhtd_protocol::krpc::{Body, Message, Query, Response};
//! use dhtd_protocol::NodeId;
//!
//! // A ping as libtorrent sends it, and our answer.
//! let datagram = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe";
//! let query = Message::decode(datagram).expect("a valid ping");
//! let Body::Query { sender, query: Query::Ping } = query.body else { panic!() };
//! assert_eq!(sender.as_bytes(), b"abcdefghij0123456789");
//!
//! let reply = Message {
//!     transaction_id: query.transaction_id, // echoed as given
//!     version: None,
//!     requester_ip: Some("192.0.2.1:6881".parse().unwrap()),
//!     read_only: false,
//!     body: Body::Response(Response::bare(NodeId([7; 20]))),
//! };
//! let bytes = reply.to_bytes();
//! assert_eq!(Message::decode(&bytes), Ok(reply));
//! ```

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod bencode;
pub mod compact;
mod deadline;
pub mod family;
pub mod id;
pub mod ip_prefix;
pub mod ip_vote;
pub mod item;
pub mod krpc;
pub mod lookup;
pub mod node;
pub mod rate_limit;
pub mod routing;
pub mod rtt;
pub mod scrape;
pub mod server;
#[cfg(feature = "sim")]
pub mod sim;
pub mod store;
pub mod telemetry;
pub mod token;
pub mod transactions;
pub mod upload;

pub use compact::NodeInfo;
pub use family::{Families, Family};
pub use id::{Distance, InfoHash, NodeId};

/// Kademlia's k: nodes per bucket, and results per lookup (BEP 5).
pub const K: usize = 8;
/// Kademlia's α: queries in flight per lookup, among the closest nodes
/// it knows ([`lookup::LookupConfig::aggressive`]). libtorrent's
/// `search_branching`; Kademlia's 3 took a quarter longer to the first
/// peer in the simulated Internet (README, "Defaults chosen by data").
pub const ALPHA: usize = 5;

/// The one clock read in this crate, for unit tests only: the virtual
/// epoch that test times are offset from, as a simulation's would be.
#[cfg(test)]
#[allow(clippy::disallowed_methods)]
pub(crate) fn test_epoch() -> std::time::Instant {
    std::time::Instant::now()
}
