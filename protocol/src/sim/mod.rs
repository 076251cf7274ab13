//! The simulator: whole networks of nodes in one process, on a virtual
//! network and a virtual clock (feature `sim`).
//!
//! It is the second driver of the node's pieces ([`crate::node`]): a
//! simulated node is the node that ships, with the same pieces, the same
//! envelopes and the same delivery ([`crate::node::Envelope::deliver`]);
//! only the clock and the network differ from the actor driver. So what a
//! simulation measures is true of `dhtd`.
//!
//! - [`network`]: the network model (latency, loss, NAT, undeliverable
//!   datagrams);
//! - [`driver`]: nodes, their mailboxes, virtual time, an optional trace;
//!   the nodes split in shards, each with its own events, run on a thread
//!   each, none running ahead of the others by more than a datagram takes
//!   (`shard`, `parallel`);
//! - [`experiments`]: the measurements built on them;
//! - [`hostile`]: the same, with a share of Sybil or dead nodes;
//! - [`internet`]: the shipped node in a network shaped like the
//!   Internet's (churn, NAT, heavy-tailed round trips), and what it measures.

pub mod driver;
pub mod experiments;
pub mod hostile;
pub mod internet;
pub mod network;
mod parallel;
mod queue;
mod shard;

pub use driver::{sim_addr, Behaviour, NodeApi, NodeSpec, SimNode, Simulation};
pub use experiments::{run_lookup_experiment, sample_indices, LookupReport, SimConfig};
pub use hostile::{run_hostile_experiment, sybil_reply, Hostile, HostileReport};
pub use internet::{run_internet, run_internet_on, InternetReport, Model, Progress, Sample};
pub use network::{Endpoint, NetStats, Network, NetworkConfig, Traced, NAT_MAPPING_LIFETIME};
pub use parallel::Threads;
