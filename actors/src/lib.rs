//! # dhtd-actors
//!
//! The actix actors of a dhtd node. Each owns one piece of
//! [`dhtd_protocol`] state and turns messages and timers into calls on it:
//!
//! | actor | owns |
//! | --- | --- |
//! | [`socket::SocketActor`] | the UDP socket's receive loop |
//! | [`rate_limiter::RateLimiterActor`] | per-IP inbound budgets, the outbound query budget and spacing |
//! | [`routing::RoutingActor`] | the k-buckets |
//! | [`transactions::TransactionsActor`] | our outstanding queries |
//! | [`announce::AnnounceActor`] | stored peers and token secrets |
//! | [`lookups::LookupsActor`] | running lookups and announces |
//!
//! The decisions live in `dhtd-protocol`; a handler reads the clock once,
//! calls the pure method and turns its outcome into messages. Every handler
//! runs under [`supervision::guarded`], which restarts the actor in place
//! when a handler panics. This crate does not bind sockets, read files or
//! start Arbiters: the `dhtd` crate wires the actors together.

#![forbid(unsafe_code)]

pub mod announce;
pub mod counters;
pub mod lookups;
pub mod messages;
pub mod metrics;
pub mod rate_limiter;
pub mod routing;
pub mod socket;
pub mod supervision;
pub mod transactions;
mod wakeup;
