//! BEP 44: storing and finding arbitrary data in the DHT. Immutable items
//! are found by the SHA-1 of their value; mutable items by a public key
//! (and a salt), signed by its private key and replaced by a higher
//! sequence number. Values are byte strings of at most 1,000 bytes once
//! bencoded, as the `mainline` crate and libtorrent store them.

use std::sync::Arc;

use dhtd_protocol::item as core;
use dhtd_protocol::lookup::LookupKind;
use dhtd_protocol::node::{ItemLookup, PutItem};
use ed25519_dalek::Signer;

use crate::{Dht, Error, LookupEvent, NodeId, PeerStream};

/// The largest value, bencoded (BEP 44's 1,000 bytes): a byte string of
/// up to 995 bytes.
pub const MAX_VALUE_LEN: usize = core::MAX_VALUE_LEN;

/// An ed25519 key pair that signs mutable items.
///
/// ```
/// let key = dhtd::SigningKey::from_seed([7; 32]);
/// assert_eq!(key.public_key().len(), 32);
/// ```
#[derive(Clone)]
pub struct SigningKey(ed25519_dalek::SigningKey);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey(public {})", hex(&self.public_key()))
    }
}

impl SigningKey {
    /// The key pair of a 32-byte secret seed (RFC 8032); keep the seed to
    /// publish under the same key again.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        SigningKey(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    /// A fresh key pair from the operating system's randomness, and its
    /// seed.
    pub fn generate() -> (Self, [u8; 32]) {
        use rand::{RngCore, SeedableRng};
        let mut seed = [0u8; 32];
        rand::rngs::StdRng::from_os_rng().fill_bytes(&mut seed);
        (SigningKey::from_seed(seed), seed)
    }

    /// The public key readers look the items up by.
    pub fn public_key(&self) -> [u8; 32] {
        self.0.verifying_key().to_bytes()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A byte string, bencoded.
fn bencoded(value: &[u8]) -> Vec<u8> {
    let mut out = format!("{}:", value.len()).into_bytes();
    out.extend_from_slice(value);
    out
}

/// An item found in the DHT, checked against what was looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Where it is stored.
    pub target: NodeId,
    bencoded: Vec<u8>,
    /// For a mutable item: its key, salt, sequence number and signature.
    pub mutable: Option<Mutable>,
}

/// What makes an item mutable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mutable {
    /// The ed25519 public key.
    pub public_key: [u8; 32],
    /// The salt (empty for none).
    pub salt: Vec<u8>,
    /// The sequence number.
    pub seq: i64,
    /// The signature.
    pub signature: [u8; 64],
}

impl Item {
    pub(crate) fn from_core(item: &core::Item) -> Self {
        Item {
            target: item.target(),
            bencoded: item.value.to_vec(),
            mutable: item.signed.as_ref().map(|s| Mutable {
                public_key: s.key,
                salt: s.salt.to_vec(),
                seq: s.seq,
                signature: s.sig,
            }),
        }
    }

    /// The value: the bytes of a bencoded byte string (what the `put`
    /// methods store), or the bencoded form of any other value.
    pub fn value(&self) -> &[u8] {
        let colon = self.bencoded.iter().position(|b| *b == b':');
        match colon {
            Some(at) if self.bencoded[..at].iter().all(u8::is_ascii_digit) && at > 0 => {
                &self.bencoded[at + 1..]
            }
            _ => &self.bencoded,
        }
    }

    /// The value as stored: bencoded, verbatim.
    pub fn bencoded(&self) -> &[u8] {
        &self.bencoded
    }
}

/// How a `put` went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PutReport {
    /// Where the item is stored: the key to get it by.
    pub target: NodeId,
    /// Nodes asked to store it (the closest that gave a token, at most k).
    pub tried: usize,
    /// Nodes that stored it.
    pub accepted: usize,
}

impl Dht {
    fn item_lookup(&self, target: NodeId, item: ItemLookup) -> PeerStream {
        self.start_lookup(target, LookupKind::GetPeers, |s| s.item = Some(item))
    }

    async fn put(&self, item: core::Item, cas: Option<i64>) -> Result<PutReport, Error> {
        if let Err(refusal) = item.check() {
            let (code, text) = refusal.error();
            return Err(Error::Invalid(format!(
                "{} (error {})",
                String::from_utf8_lossy(text),
                code.code()
            )));
        }
        let target = item.target();
        let put = Arc::new(PutItem { item, cas });
        let mut stream = self.item_lookup(target, ItemLookup::Put(put));
        let report = Self::stored(stream.finish().await)?;
        Ok(PutReport {
            target,
            tried: report.tried,
            accepted: report.accepted,
        })
    }

    /// Stores `value` as an immutable item (BEP 44) at the closest nodes;
    /// its target, the SHA-1 of the bencoded value, is how it is found.
    /// [`Error::Invalid`] for a value over [`MAX_VALUE_LEN`] once bencoded.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let swarm = dhtd::swarm::LocalSwarm::start(5, 10, |_, _| {}).await?;
    /// # swarm.wait_bootstrapped(std::time::Duration::from_secs(20)).await;
    /// # let (dht, other) = (&swarm.nodes[4], &swarm.nodes[1]);
    /// let put = dht.put_immutable(b"Hello World!").await?;
    /// assert_eq!(put.target.to_string(), "e5f96f6f38320f0f33959cb4d3d656452117aadb");
    /// let found = other.get_immutable(put.target).await?;
    /// assert_eq!(found.as_deref(), Some(&b"Hello World!"[..]));
    /// # Ok(()) }
    /// ```
    pub async fn put_immutable(&self, value: &[u8]) -> Result<PutReport, Error> {
        let item = core::Item {
            value: bencoded(value).into(),
            signed: None,
        };
        self.put(item, None).await
    }

    /// Signs `value` with `key` under sequence number `seq` (and `salt`:
    /// one key can publish many items, one per salt) and stores it at the
    /// closest nodes, replacing what they hold with a lower `seq`. With
    /// `cas`, a node stores it only if what it holds has that sequence
    /// number (compare and swap: two writers do not overwrite each other).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let swarm = dhtd::swarm::LocalSwarm::start(5, 11, |_, _| {}).await?;
    /// # swarm.wait_bootstrapped(std::time::Duration::from_secs(20)).await;
    /// # let (dht, other) = (&swarm.nodes[4], &swarm.nodes[1]);
    /// let key = dhtd::SigningKey::from_seed([42; 32]);
    /// dht.put_mutable(&key, b"version 1", 1, b"profile", None).await?;
    /// dht.put_mutable(&key, b"version 2", 2, b"profile", Some(1)).await?;
    /// let item = other.get_mutable(&key.public_key(), b"profile", None).await?.unwrap();
    /// let seq = item.mutable.as_ref().map(|m| m.seq);
    /// assert_eq!((item.value(), seq), (&b"version 2"[..], Some(2)));
    /// # Ok(()) }
    /// ```
    pub async fn put_mutable(
        &self,
        key: &SigningKey,
        value: &[u8],
        seq: i64,
        salt: &[u8],
        cas: Option<i64>,
    ) -> Result<PutReport, Error> {
        let value = bencoded(value);
        let sig = key.0.sign(&core::signable(salt, seq, &value)).to_bytes();
        let item = core::Item {
            value: value.into(),
            signed: Some(core::Signed {
                key: key.public_key(),
                salt: salt.to_vec().into(),
                seq,
                sig,
            }),
        };
        self.put(item, cas).await
    }

    /// Looks up the item at `target`, immutable or mutable under `salt`:
    /// each item found (checked against the target and, if mutable, its
    /// signature; each newer than the last) streams in as
    /// [`LookupEvent::Item`], then the summary with the best one.
    pub fn get_item(&self, target: NodeId, salt: &[u8], newer_than: Option<i64>) -> PeerStream {
        let get = ItemLookup::Get {
            salt: salt.to_vec().into(),
            seq: newer_than,
        };
        self.item_lookup(target, get)
    }

    async fn best_item(&self, mut stream: PeerStream) -> Result<Option<Item>, Error> {
        let mut best = None;
        while let Some(event) = stream.next_event().await {
            if let LookupEvent::Item(item) = event {
                best = Some(item);
            }
        }
        stream.summary().ok_or(Error::Shutdown)?;
        Ok(best)
    }

    /// The value of the immutable item at `target`, if a node holds it.
    pub async fn get_immutable(&self, target: NodeId) -> Result<Option<Vec<u8>>, Error> {
        let best = self.best_item(self.get_item(target, b"", None)).await?;
        Ok(best.map(|item| item.value().to_vec()))
    }

    /// The mutable item of `public_key` and `salt` with the highest
    /// sequence number the closest nodes hold (above `newer_than` if
    /// given), checked against its signature.
    pub async fn get_mutable(
        &self,
        public_key: &[u8; 32],
        salt: &[u8],
        newer_than: Option<i64>,
    ) -> Result<Option<Item>, Error> {
        let target = core::mutable_target(public_key, salt);
        self.best_item(self.get_item(target, salt, newer_than))
            .await
    }
}
