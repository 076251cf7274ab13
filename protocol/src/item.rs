//! BEP 44: arbitrary data in the DHT. Immutable items are stored under the
//! SHA-1 of their bencoded value; mutable items under the SHA-1 of an
//! ed25519 public key and a salt, signed over their sequence number and
//! value, and replaced only by a higher sequence number.
//!
//! This module holds the rules (targets, what is signed, the checks a
//! `put` must pass, with the BEP's error codes) and the bounded store of
//! the items a node keeps for others.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use sha1::{Digest, Sha1};

use crate::id::NodeId;
use crate::krpc::ErrorCode;

/// The largest bencoded value a node stores (BEP 44's 1,000 bytes).
pub const MAX_VALUE_LEN: usize = 1000;
/// The longest salt (BEP 44's 64 bytes).
pub const MAX_SALT_LEN: usize = 64;

/// The target of an immutable item: the SHA-1 of its bencoded value.
pub fn immutable_target(value: &[u8]) -> NodeId {
    NodeId(Sha1::digest(value).into())
}

/// The target of a mutable item: the SHA-1 of its public key and salt.
pub fn mutable_target(key: &[u8; 32], salt: &[u8]) -> NodeId {
    let mut h = Sha1::new();
    h.update(key);
    h.update(salt);
    NodeId(h.finalize().into())
}

/// What a mutable item's signature covers: `4:salt…` (when the salt is not
/// empty), `3:seqi…e1:v`, then the bencoded value verbatim.
pub fn signable(salt: &[u8], seq: i64, value: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(32 + salt.len() + value.len());
    if !salt.is_empty() {
        buf.extend_from_slice(format!("4:salt{}:", salt.len()).as_bytes());
        buf.extend_from_slice(salt);
    }
    buf.extend_from_slice(format!("3:seqi{seq}e1:v").as_bytes());
    buf.extend_from_slice(value);
    buf
}

/// Whether `sig` signs `salt`, `seq` and `value` for `key`.
pub fn signature_valid(
    key: &[u8; 32],
    sig: &[u8; 64],
    salt: &[u8],
    seq: i64,
    value: &[u8],
) -> bool {
    let Ok(key) = VerifyingKey::from_bytes(key) else {
        return false;
    };
    key.verify(&signable(salt, seq, value), &Signature::from_bytes(sig))
        .is_ok()
}

/// The signed part of a mutable item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// The ed25519 public key.
    pub key: [u8; 32],
    /// The salt (empty for none).
    pub salt: Bytes,
    /// The sequence number.
    pub seq: i64,
    /// The signature.
    pub sig: [u8; 64],
}

/// An item: its bencoded value, and for a mutable one what signs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The value, bencoded, verbatim as it arrived.
    pub value: Bytes,
    /// `None` for an immutable item.
    pub signed: Option<Signed>,
}

impl Item {
    /// Where it is stored.
    pub fn target(&self) -> NodeId {
        match &self.signed {
            None => immutable_target(&self.value),
            Some(s) => mutable_target(&s.key, &s.salt),
        }
    }

    /// The checks every `put` must pass before anything is stored, with
    /// the error each failure answers: value size (205), salt size (207),
    /// signature (206).
    pub fn check(&self) -> Result<(), PutRefusal> {
        if self.value.len() > MAX_VALUE_LEN {
            return Err(PutRefusal::ValueTooBig);
        }
        if let Some(s) = &self.signed {
            if s.salt.len() > MAX_SALT_LEN {
                return Err(PutRefusal::SaltTooBig);
            }
            if s.seq < 0 || !signature_valid(&s.key, &s.sig, &s.salt, s.seq, &self.value) {
                return Err(PutRefusal::InvalidSignature);
            }
        }
        Ok(())
    }

    /// Whether an item received for `target` is the one asked for: its
    /// target matches, and a mutable one's signature holds.
    pub fn answers(&self, target: &NodeId) -> bool {
        self.target() == *target && self.check().is_ok()
    }
}

/// Why a `put` stored nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutRefusal {
    /// The value is over 1,000 bytes (205).
    ValueTooBig,
    /// The signature does not verify (206).
    InvalidSignature,
    /// The salt is over 64 bytes (207).
    SaltTooBig,
    /// `cas` is not the stored sequence number (301).
    CasMismatch,
    /// The sequence number is below the stored one (302).
    SeqTooLow,
    /// The same sequence number with another value: BEP 44 says reject.
    SeqNotNewer,
    /// The store is full of items being read (202).
    StoreFull,
}

impl PutRefusal {
    /// The KRPC error code and text it is answered with.
    pub fn error(self) -> (ErrorCode, &'static [u8]) {
        match self {
            PutRefusal::ValueTooBig => (ErrorCode::Other(205), b"message (v field) too big"),
            PutRefusal::InvalidSignature => (ErrorCode::Other(206), b"invalid signature"),
            PutRefusal::SaltTooBig => (ErrorCode::Other(207), b"salt (salt field) too big"),
            PutRefusal::CasMismatch => (
                ErrorCode::Other(301),
                b"the CAS hash mismatched, re-read value and try again",
            ),
            PutRefusal::SeqTooLow => (ErrorCode::Other(302), b"sequence number less than current"),
            PutRefusal::SeqNotNewer => (
                ErrorCode::Other(302),
                b"sequence number not newer than current",
            ),
            PutRefusal::StoreFull => (ErrorCode::Server, b"item store full"),
        }
    }
}

/// The item store's caps and lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemStoreConfig {
    /// Items held at once. Defaults to 10,000.
    pub max_items: usize,
    /// Bytes of values held at once. Defaults to 8 MiB.
    pub max_bytes: usize,
    /// How long an item is kept without a new `put`. Defaults to 2 hours:
    /// BEP 44 lets items expire after 2 hours and asks publishers to put
    /// again every hour, so one missed republish is survived.
    pub lifetime: Duration,
}

impl Default for ItemStoreConfig {
    fn default() -> Self {
        ItemStoreConfig {
            max_items: 10_000,
            max_bytes: 8 << 20,
            lifetime: Duration::from_secs(2 * 3600),
        }
    }
}

#[derive(Debug, Clone)]
struct Stored {
    item: Item,
    expires: Instant,
    /// The last `get` that returned it: items being read are the last
    /// evicted, so a flood of puts cannot push them out.
    last_read: Option<Instant>,
    put_at: Instant,
}

/// What became of a `put`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// Stored anew.
    Stored,
    /// Stored, and the item read longest ago (or never) evicted for it.
    StoredEvicting,
    /// The same item again: its lifetime starts over.
    Refreshed,
    /// Replaced by a newer sequence number.
    Updated,
}

/// The items a node keeps for others, bounded in count and bytes.
#[derive(Debug, Default)]
pub struct ItemStore {
    items: HashMap<NodeId, Stored>,
    bytes: usize,
    config: ItemStoreConfig,
}

impl ItemStore {
    /// An empty store.
    pub fn new(config: ItemStoreConfig) -> Self {
        ItemStore {
            items: HashMap::new(),
            bytes: 0,
            config,
        }
    }

    /// Applies new caps from now on.
    pub fn set_config(&mut self, config: ItemStoreConfig) {
        self.config = config;
    }

    /// Items and bytes held.
    pub fn size(&self) -> (usize, usize) {
        (self.items.len(), self.bytes)
    }

    /// The live item at `target`, newer than `seq` when given (a mutable
    /// item at or below it is left out, as BEP 44 asks); counts as a read.
    pub fn get(&mut self, now: Instant, target: &NodeId, newer_than: Option<i64>) -> Option<&Item> {
        let stored = self.items.get_mut(target).filter(|s| s.expires > now)?;
        stored.last_read = Some(now);
        let seq = stored.item.signed.as_ref().map(|s| s.seq);
        if let (Some(seq), Some(floor)) = (seq, newer_than) {
            if seq <= floor {
                return None;
            }
        }
        Some(&stored.item)
    }

    /// The stored sequence number at `target`, if a mutable item is there.
    pub fn seq(&self, now: Instant, target: &NodeId) -> Option<i64> {
        let s = self.items.get(target).filter(|s| s.expires > now)?;
        s.item.signed.as_ref().map(|s| s.seq)
    }

    /// Stores a checked item ([`Item::check`]); `cas` is the sequence
    /// number the putter expects to replace.
    pub fn put(
        &mut self,
        now: Instant,
        item: Item,
        cas: Option<i64>,
    ) -> Result<PutOutcome, PutRefusal> {
        let target = item.target();
        let expires = now + self.config.lifetime;
        if let Some(old) = self.items.get_mut(&target).filter(|s| s.expires > now) {
            match (&old.item.signed, &item.signed) {
                (Some(o), Some(n)) => {
                    if cas.is_some_and(|cas| cas != o.seq) {
                        return Err(PutRefusal::CasMismatch);
                    }
                    if n.seq < o.seq {
                        return Err(PutRefusal::SeqTooLow);
                    }
                    if n.seq == o.seq {
                        if old.item.value != item.value {
                            return Err(PutRefusal::SeqNotNewer);
                        }
                        old.expires = expires;
                        return Ok(PutOutcome::Refreshed);
                    }
                    self.bytes = self.bytes - old.item.value.len() + item.value.len();
                    old.item = item;
                    old.expires = expires;
                    old.put_at = now;
                    return Ok(PutOutcome::Updated);
                }
                _ => {
                    old.expires = expires;
                    return Ok(PutOutcome::Refreshed);
                }
            }
        }
        self.remove(&target);
        let mut outcome = PutOutcome::Stored;
        while self.items.len() >= self.config.max_items
            || self.bytes + item.value.len() > self.config.max_bytes
        {
            if !self.evict_one(now) {
                return Err(PutRefusal::StoreFull);
            }
            outcome = PutOutcome::StoredEvicting;
        }
        self.bytes += item.value.len();
        self.items.insert(
            target,
            Stored {
                item,
                expires,
                last_read: None,
                put_at: now,
            },
        );
        Ok(outcome)
    }

    fn remove(&mut self, target: &NodeId) {
        if let Some(s) = self.items.remove(target) {
            self.bytes -= s.item.value.len();
        }
    }

    /// Evicts an expired item, else the one never read and put longest
    /// ago, else the one read longest ago. A scan: the store is small and
    /// a full store is the rare case.
    fn evict_one(&mut self, now: Instant) -> bool {
        let victim = self
            .items
            .iter()
            .min_by_key(|(_, s)| {
                (
                    s.expires > now,
                    s.last_read.is_some(),
                    s.last_read,
                    s.put_at,
                )
            })
            .map(|(t, _)| *t);
        match victim {
            Some(t) => {
                self.remove(&t);
                true
            }
            None => false,
        }
    }

    /// Drops expired items; returns how many.
    pub fn expire(&mut self, now: Instant) -> usize {
        let before = self.items.len();
        let bytes = &mut self.bytes;
        self.items.retain(|_, s| {
            let keep = s.expires > now;
            if !keep {
                *bytes -= s.item.value.len();
            }
            keep
        });
        before - self.items.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex<const N: usize>(s: &str) -> [u8; N] {
        let bytes: Vec<u8> = (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect();
        bytes.try_into().unwrap()
    }

    const KEY: &str = "77ff84905a91936367c01360803104f92432fcd904a43511876df5cdf3e7e548";

    /// BEP 44's three test vectors: targets and signatures (the BEP's
    /// 64-byte private key is the expanded form, so its signatures are
    /// checked against the public key rather than made again).
    #[test]
    fn the_beps_test_vectors() {
        let value = Bytes::from_static(b"12:Hello World!");
        let key: [u8; 32] = hex(KEY);
        assert_eq!(signable(b"", 1, &value), b"3:seqi1e1:v12:Hello World!");
        assert_eq!(
            signable(b"foobar", 1, &value),
            b"4:salt6:foobar3:seqi1e1:v12:Hello World!"
        );
        let plain = Item {
            value: value.clone(),
            signed: Some(Signed {
                key,
                salt: Bytes::new(),
                seq: 1,
                sig: hex("305ac8aeb6c9c151fa120f120ea2cfb923564e11552d06a5d856091e5e853cff1260d3f39e4999684aa92eb73ffd136e6f4f3ecbfda0ce53a1608ecd7ae21f01"),
            }),
        };
        assert_eq!(
            plain.target().to_string(),
            "4a533d47ec9c7d95b1ad75f576cffc641853b750"
        );
        assert_eq!(plain.check(), Ok(()));
        let salted = Item {
            value: value.clone(),
            signed: Some(Signed {
                key,
                salt: Bytes::from_static(b"foobar"),
                seq: 1,
                sig: hex("6834284b6b24c3204eb2fea824d82f88883a3d95e8b4a21b8c0ded553d17d17ddf9a8a7104b1258f30bed3787e6cb896fca78c58f8e03b5f18f14951a87d9a08"),
            }),
        };
        assert_eq!(
            salted.target().to_string(),
            "411eba73b6f087ca51a3795d9c8c938d365e32c1"
        );
        assert_eq!(salted.check(), Ok(()));
        let immutable = Item {
            value,
            signed: None,
        };
        assert_eq!(
            immutable.target().to_string(),
            "e5f96f6f38320f0f33959cb4d3d656452117aadb"
        );
        // A signature moved to another sequence number fails.
        let mut forged = plain.clone();
        if let Some(s) = &mut forged.signed {
            s.seq = 2;
        }
        assert_eq!(forged.check(), Err(PutRefusal::InvalidSignature));
    }

    fn mutable(seq: i64, value: &'static [u8]) -> Item {
        use ed25519_dalek::{Signer, SigningKey};
        let key = SigningKey::from_bytes(&[7; 32]);
        let sig = key.sign(&signable(b"", seq, value)).to_bytes();
        Item {
            value: Bytes::from_static(value),
            signed: Some(Signed {
                key: key.verifying_key().to_bytes(),
                salt: Bytes::new(),
                seq,
                sig,
            }),
        }
    }

    #[test]
    fn sequence_numbers_only_go_up_and_cas_is_checked() {
        let t0 = crate::test_epoch();
        let mut store = ItemStore::new(ItemStoreConfig::default());
        assert_eq!(
            store.put(t0, mutable(5, b"1:a"), None),
            Ok(PutOutcome::Stored)
        );
        assert_eq!(
            store.put(t0, mutable(4, b"1:b"), None),
            Err(PutRefusal::SeqTooLow)
        );
        assert_eq!(
            store.put(t0, mutable(5, b"1:b"), None),
            Err(PutRefusal::SeqNotNewer)
        );
        assert_eq!(
            store.put(t0, mutable(5, b"1:a"), None),
            Ok(PutOutcome::Refreshed)
        );
        assert_eq!(
            store.put(t0, mutable(6, b"1:c"), Some(4)),
            Err(PutRefusal::CasMismatch)
        );
        assert_eq!(
            store.put(t0, mutable(6, b"1:c"), Some(5)),
            Ok(PutOutcome::Updated)
        );
        let target = mutable(6, b"1:c").target();
        assert_eq!(store.get(t0, &target, None).unwrap().value, &b"1:c"[..]);
        assert!(
            store.get(t0, &target, Some(6)).is_none(),
            "not newer than 6"
        );
        assert_eq!(store.seq(t0, &target), Some(6));
        assert_eq!(store.size(), (1, 3));
        let later = t0 + ItemStoreConfig::default().lifetime;
        assert!(store.get(later, &target, None).is_none(), "expired");
        assert_eq!(store.expire(later), 1);
        assert_eq!(store.size(), (0, 0));
    }

    #[test]
    fn a_flood_of_puts_does_not_push_out_items_being_read() {
        let t0 = crate::test_epoch();
        let mut store = ItemStore::new(ItemStoreConfig {
            max_items: 10,
            ..ItemStoreConfig::default()
        });
        let item = |i: u32| Item {
            value: Bytes::from(format!("i{i}e")),
            signed: None,
        };
        let read: Vec<NodeId> = (0..3).map(|i| item(i).target()).collect();
        for i in 0..3 {
            store.put(t0, item(i), None).unwrap();
        }
        for i in 3..1000 {
            let now = t0 + Duration::from_millis(u64::from(i));
            for t in &read {
                assert!(
                    store.get(now, t, None).is_some(),
                    "read item {t} evicted at {i}"
                );
            }
            store.put(now, item(i), None).unwrap();
        }
        assert_eq!(store.size().0, 10);
        let big = Item {
            value: Bytes::from(vec![b'x'; 1001]),
            signed: None,
        };
        assert_eq!(big.check(), Err(PutRefusal::ValueTooBig));
    }
}
