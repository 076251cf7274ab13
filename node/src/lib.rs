//! # dhtd
//!
//! A BitTorrent mainline DHT node ([BEP 5](https://www.bittorrent.org/beps/bep_0005.html))
//! to embed: make one with [`Dht::builder`], then ask the [`Dht`] for the
//! peers of an info hash, to announce us, to ping or add a node, or for
//! statistics, the way a BitTorrent client uses a tracker. The node stops
//! when its last handle is dropped (or at [`Dht::shutdown`]).
//!
//! The node is a set of actix actors on their own threads (see [`Runtime`]);
//! nothing actix appears in this API, and the async methods work from any
//! executor: an application with its own tokio runtime, or none, can use
//! it. Every type in the API belongs to this crate or to the standard
//! library, but for the ids ([`NodeId`], [`InfoHash`]), the node's settings
//! ([`config`]) and the labels of its metrics ([`Warning`], [`NotSent`]),
//! which are re-exported here.
//!
//! Two nodes on loopback, one announcing and the other finding it:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use dhtd::{Config, Dht, InfoHash, PortChoice};
//!
//! // The first node of a private network knows no one; the second
//! // bootstraps from the first. On the real network, `Config::default()`
//! // bootstraps from the public routers.
//! let first = Dht::builder(Config::local("127.0.0.1:0".parse()?, &[])).start()?;
//! let second = Dht::builder(Config::local("127.0.0.2:0".parse()?, &[first.local_addr()])).start()?;
//! second.wait_bootstrapped().await;
//!
//! let info_hash: InfoHash = "0123456789abcdef0123456789abcdef01234567".parse()?;
//! let report = second.announce(info_hash, PortChoice::Port(6881)).await?;
//! println!("{} of {} nodes stored the announce", report.accepted, report.tried);
//!
//! let mut peers = first.get_peers(info_hash);
//! while let Some(peer) = peers.next_peer().await {
//!     assert_eq!(peer, "127.0.0.2:6881".parse()?);
//! }
//! println!("{:?}", peers.summary());
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod clock;
pub mod config;
mod dht;
mod error;
mod items;
mod lookup;
pub mod metrics;
pub mod persist;
mod runtime;
mod sample;
mod service;
/// Threads for `dhtd sim`'s shards.
#[cfg(feature = "cli")]
pub mod sim_threads;
mod state;
mod stats;
pub mod swarm;
pub mod systemd;
pub mod torrent;
mod udp_drops;
mod wiring;

pub use clock::{Activity, Clock, ManualClock};
pub use config::{Config, NodeConfig, NodeIdChoice, Tap, DEFAULT_RECV_BUFFER, DEFAULT_ROUTERS};
pub use dht::{Dht, DhtBuilder, Pong, PortChoice};
/// An actor of a node, as metrics and [`Dht::heartbeat`] name it.
pub use dhtd_protocol::telemetry::Component;
pub use dhtd_protocol::{Families, Family, InfoHash, NodeId};
pub use error::{ConfigError, Error, NotSent, RemoteError, StartError};
pub use items::{Item, Mutable, PutReport, SigningKey, MAX_VALUE_LEN};
pub use lookup::{
    AnnounceReport, Confidence, LookupEnd, LookupEvent, LookupSummary, NodeInfo, PeerStream,
    ScrapeEstimate,
};
pub use runtime::Runtime;
pub use sample::Samples;
pub use service::{DhtService, Mode};
pub use stats::{
    BucketStats, Counter, CounterKind, Counters, FamilyStats, Stats, StoreStats, TableStats,
    Warning,
};
