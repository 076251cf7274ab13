//! # dhtd-actors
//!
//! The actor driver of a dhtd node: actix actors that run the node's pure
//! pieces ([`dhtd_protocol::node`]) on real threads, a real clock and a real
//! UDP socket.
//!
//! | actor | runs |
//! | --- | --- |
//! | [`socket::SocketActor`] | the UDP socket's receive loop (I/O only) |
//! | [`RateLimiterActor`] | the gate (per-IP budgets, decoding, dispatch) and the outbound pacer |
//! | [`RoutingActor`] | the k-buckets and their upkeep |
//! | [`TransactionsActor`] | our outstanding queries |
//! | [`AnnounceStoreActor`] | stored peers, token secrets, and every answer |
//! | [`LookupsActor`] | the lookup pool |
//! | [`SupervisorActor`] | the bootstrap |
//!
//! Every actor but the socket's is a [`Shell`]: read the [`Clock`], call the
//! piece, deliver its envelopes through [`Links`], send its datagrams, arm
//! one timer. No decision is made here: the simulator runs the same pieces
//! with the same delivery and gets the same node. This crate does not bind
//! sockets, read files or start Arbiters: the `dhtd` crate wires the actors.

#![forbid(unsafe_code)]

pub mod api;
pub mod clock;
pub mod links;
pub mod mailboxes;
pub mod metrics;
pub mod shell;
pub mod socket;
pub mod supervision;

pub use api::{ApiSinks, NodeState};
pub use clock::{Activity, Clock, ManualClock, Tick};
pub use links::{IoHandler, Links};
pub use shell::{In, Inspect, Shell};

use dhtd_protocol::node::{families, rate_limiter, responder, transactions, upkeep};

/// The gate and the pacer.
pub type RateLimiterActor = Shell<rate_limiter::RateLimiter>;
/// The routing table.
pub type RoutingActor = Shell<families::PerFamily<upkeep::Upkeep>>;
/// The transaction table.
pub type TransactionsActor = Shell<transactions::Transactions>;
/// The announce store and the answers.
pub type AnnounceStoreActor = Shell<responder::Responder>;
/// The lookup pool.
pub type LookupsActor = Shell<families::LookupPools>;
/// The bootstrap; the node's supervisor.
pub type SupervisorActor = Shell<families::Bootstraps>;
