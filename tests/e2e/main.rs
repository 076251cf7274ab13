//! End-to-end tests of dhtd on loopback: one binary, one module per concern.
//! No test resolves a name or sends to anything outside 127.0.0.0/8.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bootstrap;
mod faults;
mod hostile;
mod ipv6;
mod limits;
mod persistence;
mod restart;
mod roles;
mod same_node;
mod swarm;
mod wire;
