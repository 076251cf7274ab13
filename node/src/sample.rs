//! BEP 51 for crawlers and indexers: ask a node for a sample of the info
//! hashes it stores ([`Dht::sample_infohashes`]).

use std::net::SocketAddr;
use std::time::Duration;

use dhtd_protocol::node::OutQuery;

use crate::{Dht, Error, InfoHash, NodeId, NodeInfo};

/// A node's answer to `sample_infohashes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Samples {
    /// The node's id.
    pub id: NodeId,
    /// How long before asking it again brings a new sample.
    pub interval: Duration,
    /// How many info hashes it stores in all.
    pub num: u64,
    /// Its sample of them.
    pub info_hashes: Vec<InfoHash>,
    /// The nodes it knows closest to the target: where to walk next.
    pub nodes: Vec<NodeInfo>,
}

impl Dht {
    /// Asks the node at `addr` for a sample of the info hashes it stores
    /// (BEP 51 `sample_infohashes`), and for its nodes closest to
    /// `target`. A crawler walks the keyspace with it, asking each node
    /// again no sooner than its [`Samples::interval`] (`dhtd sample` does).
    ///
    /// [`Error::Unsupported`] when the node answered without a sample (it
    /// does not implement BEP 51).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let swarm = dhtd::swarm::LocalSwarm::start(3, 8, |_, _| {}).await?;
    /// # swarm.wait_bootstrapped(std::time::Duration::from_secs(20)).await;
    /// # let (dht, other) = (&swarm.nodes[2], &swarm.nodes[1]);
    /// use dhtd::{InfoHash, NodeId, PortChoice};
    ///
    /// other.announce(InfoHash([9; 20]), PortChoice::Port(6881)).await?;
    /// let samples = dht.sample_infohashes(swarm.nodes[0].local_addr(), NodeId([0; 20])).await?;
    /// assert!(samples.info_hashes.contains(&InfoHash([9; 20])));
    /// assert_eq!(samples.num as usize, samples.info_hashes.len());
    /// # Ok(()) }
    /// ```
    pub async fn sample_infohashes(
        &self,
        addr: SocketAddr,
        target: NodeId,
    ) -> Result<Samples, Error> {
        let (reply, _) = self.ask(addr, OutQuery::SampleInfohashes(target)).await?;
        let sampled = reply.samples.ok_or(Error::Unsupported)?;
        Ok(Samples {
            id: reply.id,
            interval: Duration::from_secs(u64::from(sampled.interval)),
            num: sampled.num,
            info_hashes: sampled.hashes,
            nodes: reply.nodes.into_iter().map(NodeInfo::from_core).collect(),
        })
    }
}
