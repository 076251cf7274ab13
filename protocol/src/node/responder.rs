//! The responder: every answer the node gives, and the state it answers
//! from (the peer store, the token secrets, the routing table's latest
//! snapshot).
//!
//! | query | answer |
//! | --- | --- |
//! | `ping` | our id |
//! | `find_node`, unknown methods with `target` or `info_hash` | the k closest nodes (libtorrent's forward compatibility) |
//! | `get_peers` | stored peers within BEP 32's 1,024-byte reply, the k closest nodes (always the `nodes` key), and a token |
//! | BEP 44 `get` | the k closest nodes and a token, no value: we store no items, but a token lets the querier go on to `announce_peer`, which is how the mainline crate collects tokens |
//! | `sample_infohashes` (BEP 51) | the k closest nodes, the number of info hashes stored, and a sample of them: as many as the 1,024-byte reply holds, the next slice of the store every `store.sample_interval`, which `interval` says |
//! | `announce_peer` | stored (or refreshed), or: 203 `bad token` (missing, forged, expired, or issued to another IP), 203 `bad port` (port 0), 202 when a cap refuses (see [`crate::store`] for which caps evict instead) |
//! | anything else | 204 `method unknown` |
//!
//! `implied_port` stores the UDP source port instead of `port` (for peers
//! behind NAT). Every answer carries the querier's address as `ip`
//! (BEP 42). A querier is reported to the routing table at most once per
//! [`REPORT_QUERIER_EVERY`] for its pings and once for its searches,
//! since a busy peer sends many queries.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;

use super::{
    AnnounceArgs, Envelope, InboundQuery, LookupsInput, NodeConfig, Outputs, Piece, RoutingInput,
    StoreInput,
};
use crate::compact::NodeInfo;
use crate::family::Family;
use crate::id::{InfoHash, NodeId};
use crate::item::{ItemStore, PutOutcome, PutRefusal};
use crate::krpc::ErrorCode;
use crate::rate_limit::{Spacing, SpacingVerdict};
use crate::routing::NodeSnapshot;
use crate::server::{self, Answer, Needs, PutRequest};
use crate::store::{AnnounceOutcome, PeerStore, StoreCap, StoreStats};
use crate::telemetry::{
    AnnounceRefusal, Component, DropReason, ErrorLabel, ItemDrop, ItemPut, Method, Telemetry,
};
use crate::token::TokenSecrets;
use crate::upload::UploadBudget;
use crate::K;

/// A querier is reported to the routing table at most this often.
pub const REPORT_QUERIER_EVERY: Duration = Duration::from_secs(10);
/// Queriers remembered for that; beyond, reports are skipped (48 bytes
/// each: 3 MiB at most).
pub const QUERIERS_TRACKED: usize = 65_536;

/// The BEP 51 sample that stands until `until`.
#[derive(Debug, Default)]
struct Sample {
    hashes: Vec<InfoHash>,
    /// Where the previous slice ended, for one that came out empty.
    last_end: Option<InfoHash>,
    until: Option<Instant>,
}

/// The announce store's piece.
#[derive(Debug)]
pub struct Responder {
    own_id: NodeId,
    store: PeerStore,
    tokens: TokenSecrets,
    rng: StdRng,
    /// Each family's table, IPv4 first.
    nodes: [Arc<NodeSnapshot>; 2],
    /// The node's upload budget (see `crate::upload` for what gives way).
    upload: Arc<UploadBudget>,
    /// By address and whether the query was a search's: which of a
    /// burst's queries comes first differs between the drivers, and a
    /// search must be reported whether a ping came before it or not.
    reported: Spacing<(SocketAddr, bool)>,
    sample: Sample,
    items: ItemStore,
    telemetry: Arc<Telemetry>,
    buf: Vec<u8>,
    outputs: Outputs,
}

impl Responder {
    /// An empty store with fresh token secrets.
    pub fn new(
        now: Instant,
        own_id: NodeId,
        config: &NodeConfig,
        mut rng: StdRng,
        telemetry: Arc<Telemetry>,
    ) -> Self {
        let responder = Responder {
            own_id,
            store: PeerStore::new(now, own_id, config.store),
            tokens: TokenSecrets::new(now, &mut rng, config.tokens),
            rng,
            nodes: [
                Arc::new(NodeSnapshot::empty(own_id)),
                Arc::new(NodeSnapshot::empty(own_id)),
            ],
            upload: Arc::new(UploadBudget::new(config.limits.upload)),
            reported: Spacing::new(REPORT_QUERIER_EVERY, QUERIERS_TRACKED),
            sample: Sample::default(),
            items: ItemStore::new(config.items),
            telemetry,
            buf: Vec::with_capacity(1024),
            outputs: Outputs::default(),
        };
        responder.set_limit_gauges(config);
        responder
    }

    /// Shares the node's upload budget.
    pub fn with_upload(mut self, upload: Arc<UploadBudget>) -> Self {
        self.upload = upload;
        self
    }

    /// The caps in force, as gauges (`dht_store_limit`).
    fn set_limit_gauges(&self, config: &NodeConfig) {
        let caps = &config.store;
        let telemetry = &self.telemetry;
        telemetry
            .store_info_hashes_limit
            .set((), caps.max_info_hashes as u64);
        for (cap, limit) in [
            (StoreCap::InfoHashes, caps.max_info_hashes),
            (StoreCap::PeersPerInfoHash, caps.max_peers_per_info_hash),
            (StoreCap::PortsPerIp, caps.max_ports_per_ip),
            (StoreCap::AnnouncesPerIp, caps.max_announces_per_ip),
            (StoreCap::AnnouncesPerPrefix, caps.max_announces_per_prefix),
        ] {
            telemetry.store_limits.set(cap, limit as u64);
        }
    }

    /// The store's size.
    pub fn stats(&self) -> StoreStats {
        self.store.stats()
    }

    /// Live peers stored for `info_hash`.
    pub fn peer_count(&self, now: Instant, info_hash: &InfoHash) -> usize {
        self.store.peer_count(now, info_hash)
    }

    fn gauges(&self) {
        let s = self.store.stats();
        self.telemetry
            .store_info_hashes
            .set((), s.info_hashes as u64);
        self.telemetry.store_peers.set((), s.peers as u64);
    }

    /// The nodes closest to `target` in each family the querier wants
    /// (BEP 32 `want`; without one, the family it asked over).
    fn closest(&self, q: &InboundQuery, target: &NodeId) -> Vec<NodeInfo> {
        let Some(want) = q.want else {
            // Most queries: one family, and its list as it comes.
            return self.nodes[Family::of(&q.from).index()].closest(target, K);
        };
        let mut nodes = Vec::new();
        for f in Family::ALL.into_iter().filter(|f| want.contains(*f)) {
            nodes.extend(self.nodes[f.index()].closest(target, K));
        }
        nodes
    }

    /// Answers one query into the outbox.
    fn answer(&mut self, now: Instant, q: &InboundQuery) {
        let t = &*self.telemetry;
        match q.needs {
            Needs::Id => self.bare(q),
            Needs::Nodes(target) => {
                let nodes = self.closest(q, &target);
                let answer = Answer {
                    nodes: &nodes,
                    nodes_required: true,
                    ..Answer::default()
                };
                server::encode_answer(&mut self.buf, &q.tid, self.own_id, q.from, answer);
            }
            Needs::Peers {
                info_hash,
                scrape,
                noseed,
            } => self.peers(now, q, info_hash, scrape, noseed),
            Needs::Item { target, seq } => {
                let nodes = self.closest(q, &target);
                let token = self.tokens.issue(now, q.from.ip());
                t.tokens_issued.incr(());
                let item = self.items.get(now, &target, seq);
                if item.is_some() {
                    t.items_served.incr(());
                }
                let answer = Answer {
                    nodes: &nodes,
                    token: Some(&token),
                    nodes_required: true,
                    item,
                    ..Answer::default()
                };
                server::encode_answer(&mut self.buf, &q.tid, self.own_id, q.from, answer);
            }
            Needs::Put(ref put) => self.put(now, q, put),
            Needs::Samples(target) => self.samples(now, q, target),
            Needs::Store(ref args) => self.store_announce(now, q, args),
            Needs::MethodUnknown => {
                self.error(q, ErrorCode::MethodUnknown, b"method unknown");
            }
        }
        if self.upload.try_spend(now, self.buf.len()) {
            self.outputs.outbox.push(q.from, &self.buf);
        } else {
            self.telemetry.dropped.incr(DropReason::UploadThrottled);
        }
    }

    /// A `get_peers` answer: stored peers within the reply's 1,024 bytes,
    /// the closest nodes and a token; with `scrape` (BEP 33), the seed and
    /// peer filters first, `values` shrinking to make room.
    fn peers(
        &mut self,
        now: Instant,
        q: &InboundQuery,
        info_hash: InfoHash,
        scrape: bool,
        noseed: bool,
    ) {
        let nodes = self.closest(q, &NodeId::from(info_hash));
        let token = self.tokens.issue(now, q.from.ip());
        self.telemetry.tokens_issued.incr(());
        let blooms = if scrape {
            self.store.blooms(now, &info_hash)
        } else {
            None
        };
        if blooms.is_some() {
            self.telemetry.scrapes_answered.incr(());
        }
        let budget = server::values_budget_with(&q.tid, q.from, &nodes, &token, blooms.is_some());
        // Peers of the querier's family: the ones it can connect to over
        // the network it asked on (as libtorrent answers).
        let family = Some(Family::of(&q.from));
        let mut values =
            self.store
                .sample_of(now, &mut self.rng, &info_hash, budget, noseed, family);
        // A whole reply fits in MAX_REPLY_LEN: only a budget short of that
        // can need the values trimmed.
        let room = self.upload.room(now);
        if room < crate::krpc::MAX_REPLY_LEN && !values.is_empty() {
            let rest = crate::krpc::MAX_REPLY_LEN - budget;
            let spent: usize = values.iter().map(crate::store::encoded_value_len).sum();
            if rest + spent > room {
                // Short of upload: the values give way first (`crate::upload`),
                // to what is left once the rest of the answer is paid for.
                let fits = room.saturating_sub(rest);
                values = self
                    .store
                    .sample_of(now, &mut self.rng, &info_hash, fits, noseed, family);
                self.telemetry.upload_trimmed.incr(());
            }
        }
        let answer = Answer {
            nodes: &nodes,
            values: &values,
            token: Some(&token),
            nodes_required: true,
            samples: None,
            blooms: blooms.as_ref().map(|(seeds, peers)| (seeds, peers)),
            item: None,
        };
        server::encode_answer(&mut self.buf, &q.tid, self.own_id, q.from, answer);
    }

    /// A BEP 51 answer: the current slice of the store, as much of it as
    /// the reply's 1,024 bytes hold.
    fn samples(&mut self, now: Instant, q: &InboundQuery, target: NodeId) {
        let every = self.store.config().sample_interval;
        let due = self.sample.until.is_none_or(|until| now >= until);
        let until = if due {
            now + every
        } else {
            self.sample.until.unwrap_or(now)
        };
        let nodes = self.closest(q, &target);
        let mut answer = Answer {
            nodes: &nodes,
            nodes_required: true,
            samples: Some(server::Samples {
                interval: until.saturating_duration_since(now).as_secs_f64().ceil() as u32,
                num: self.store.info_hash_count() as u64,
                hashes: &[],
            }),
            ..Answer::default()
        };
        // Measured without samples, then as many as fit ("0:" becomes "NNN:").
        server::encode_answer(&mut self.buf, &q.tid, self.own_id, q.from, answer);
        let room = crate::krpc::MAX_REPLY_LEN.saturating_sub(self.buf.len() + 2) / 20;
        let s = &mut self.sample;
        if due {
            // The next slice begins after the last one ended.
            let after = s.hashes.last().copied().or(s.last_end);
            s.last_end = after;
            s.hashes = self.store.sample_info_hashes(after.as_ref(), room);
            s.until = Some(until);
        }
        let hashes = &s.hashes[..room.min(s.hashes.len())];
        if let Some(samples) = &mut answer.samples {
            samples.hashes = hashes;
        }
        self.telemetry
            .info_hashes_sampled
            .add((), hashes.len() as u64);
        server::encode_answer(&mut self.buf, &q.tid, self.own_id, q.from, answer);
    }

    /// A BEP 44 `put`: the token, then the item's own checks, then the
    /// store's sequence rules; any failure stores nothing and answers its
    /// code.
    fn put(&mut self, now: Instant, q: &InboundQuery, put: &PutRequest) {
        let t = self.telemetry.clone();
        if !self.tokens.check(now, q.from.ip(), &put.token) {
            t.item_puts.incr(ItemPut::BadToken);
            self.error(q, ErrorCode::Protocol, b"bad token");
            return;
        }
        let outcome = put
            .item
            .check()
            .and_then(|()| self.items.put(now, put.item.clone(), put.cas));
        match outcome {
            Ok(outcome) => {
                t.item_puts.incr(match outcome {
                    PutOutcome::Stored | PutOutcome::StoredEvicting => ItemPut::Stored,
                    PutOutcome::Updated => ItemPut::Updated,
                    PutOutcome::Refreshed => ItemPut::Refreshed,
                });
                if outcome == PutOutcome::StoredEvicting {
                    t.items_dropped.incr(ItemDrop::Evicted);
                }
                self.item_gauges();
                self.bare(q);
            }
            Err(refusal) => {
                t.item_puts.incr(match refusal {
                    PutRefusal::ValueTooBig => ItemPut::ValueTooBig,
                    PutRefusal::InvalidSignature => ItemPut::InvalidSignature,
                    PutRefusal::SaltTooBig => ItemPut::SaltTooBig,
                    PutRefusal::CasMismatch => ItemPut::CasMismatch,
                    PutRefusal::SeqTooLow | PutRefusal::SeqNotNewer => ItemPut::SeqTooLow,
                    PutRefusal::StoreFull => ItemPut::StoreFull,
                });
                let (code, text) = refusal.error();
                self.error(q, code, text);
            }
        }
    }

    fn item_gauges(&self) {
        let (items, bytes) = self.items.size();
        self.telemetry.items_stored.set((), items as u64);
        self.telemetry.item_bytes.set((), bytes as u64);
    }

    fn store_announce(&mut self, now: Instant, q: &InboundQuery, args: &AnnounceArgs) {
        if !self.tokens.check(now, q.from.ip(), &args.token) {
            self.refuse(
                q,
                AnnounceRefusal::BadToken,
                ErrorCode::Protocol,
                b"bad token",
            );
            return;
        }
        let port = if args.implied_port {
            q.from.port()
        } else {
            args.port
        };
        if port == 0 {
            self.refuse(
                q,
                AnnounceRefusal::BadPort,
                ErrorCode::Protocol,
                b"bad port",
            );
            return;
        }
        let peer = SocketAddr::new(q.from.ip(), port);
        match self
            .store
            .announce_as(now, &mut self.rng, args.info_hash, peer, args.seed)
        {
            AnnounceOutcome::Stored | AnnounceOutcome::Refreshed => self.stored(q),
            AnnounceOutcome::StoredEvicting(cap) => {
                self.telemetry.store_evictions.incr(cap);
                self.stored(q);
            }
            AnnounceOutcome::Rejected(cap) => {
                let (why, text): (_, &[u8]) = match cap {
                    StoreCap::InfoHashes => (
                        AnnounceRefusal::InfoHashesFull,
                        b"store full of info hashes closer to this node",
                    ),
                    StoreCap::AnnouncesPerIp => (
                        AnnounceRefusal::IpQuota,
                        b"announce quota of this address reached",
                    ),
                    StoreCap::AnnouncesPerPrefix => (
                        AnnounceRefusal::PrefixQuota,
                        b"announce quota of this network reached",
                    ),
                    StoreCap::PeersPerInfoHash | StoreCap::PortsPerIp => {
                        (AnnounceRefusal::StoringOff, b"this node stores no peers")
                    }
                };
                self.refuse(q, why, ErrorCode::Server, text);
            }
        }
    }

    fn stored(&mut self, q: &InboundQuery) {
        self.telemetry.announces_stored.incr(());
        self.gauges();
        self.bare(q);
    }

    /// An answer with nothing but our id (`ping`, a stored announce).
    fn bare(&mut self, q: &InboundQuery) {
        server::encode_answer(
            &mut self.buf,
            &q.tid,
            self.own_id,
            q.from,
            Answer::default(),
        );
    }

    fn refuse(&mut self, q: &InboundQuery, why: AnnounceRefusal, code: ErrorCode, text: &[u8]) {
        self.telemetry.announces_refused.incr(why);
        self.error(q, code, text);
    }

    fn error(&mut self, q: &InboundQuery, code: ErrorCode, text: &[u8]) {
        self.telemetry.errors_out.incr(ErrorLabel::of(code.code()));
        server::encode_error(&mut self.buf, &q.tid, q.from, code, text);
    }

    fn queried(&mut self, now: Instant, q: &InboundQuery) {
        let searching = matches!(
            q.method,
            Method::FindNode | Method::GetPeers | Method::AnnouncePeer | Method::Get | Method::Put
        );
        if self.reported.try_use(now, (q.from, searching)) == SpacingVerdict::Go {
            self.outputs.push(Envelope::Routing(RoutingInput::Queried {
                info: NodeInfo {
                    id: q.sender,
                    addr: q.from,
                },
                read_only: q.read_only,
                searching,
            }));
        }
    }
}

impl Piece for Responder {
    type Input = StoreInput;
    const COMPONENT: Component = Component::AnnounceStore;

    fn handle(&mut self, now: Instant, input: StoreInput) {
        match input {
            StoreInput::Queries(queries) => {
                for q in &queries {
                    self.answer(now, q);
                    self.queried(now, q);
                }
            }
            StoreInput::Snapshot(family, nodes) => self.nodes[family.index()] = nodes,
            StoreInput::Reconfigure(config) => {
                // Lower caps bind new announces and items; what is held
                // stays until it expires (nothing is evicted by a reload).
                self.store.set_config(config.store);
                self.items.set_config(config.items);
                self.set_limit_gauges(&config);
            }
            StoreInput::LocalPeers { lookup, info_hash } => {
                let peers = self
                    .store
                    .sample(now, &mut self.rng, &info_hash, usize::MAX);
                self.outputs
                    .push(Envelope::Lookups(LookupsInput::LocalPeers {
                        lookup,
                        peers,
                    }));
            }
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        if now >= self.store.poll_timeout() {
            self.store.expire(now);
            self.gauges();
            // Items expire on the same sweep (their lifetime is hours).
            let expired = self.items.expire(now);
            self.telemetry
                .items_dropped
                .add(ItemDrop::Expired, expired as u64);
            self.item_gauges();
        }
        self.tokens.handle_timeout(now);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        Some(self.store.poll_timeout().min(self.tokens.poll_timeout()))
    }

    fn outputs(&mut self) -> &mut Outputs {
        &mut self.outputs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::InfoHash;
    use crate::krpc::{Body, Message, Want};
    use crate::node::LookupId;
    use crate::telemetry::Method;
    use bytes::Bytes;
    use rand::SeedableRng;

    fn responder(now: Instant, config: &NodeConfig) -> Responder {
        Responder::new(
            now,
            NodeId([9; 20]),
            config,
            StdRng::seed_from_u64(1),
            Arc::new(Telemetry::default()),
        )
    }

    fn query(from: &str, needs: Needs) -> InboundQuery {
        InboundQuery {
            from: from.parse().unwrap(),
            tid: Bytes::from_static(b"tt"),
            sender: NodeId([1; 20]),
            read_only: false,
            method: Method::Other,
            want: None,
            needs,
        }
    }

    /// Sends `q` and decodes the one answer.
    fn ask(r: &mut Responder, now: Instant, q: InboundQuery) -> Message<'static> {
        r.handle(now, StoreInput::Queries(vec![q]));
        let (_, bytes) = r.outputs.outbox.iter().next().unwrap();
        let bytes: &'static [u8] = Box::leak(bytes.to_vec().into_boxed_slice());
        r.outputs.outbox.clear();
        Message::decode(bytes).unwrap()
    }

    fn code(m: &Message<'_>) -> Option<i64> {
        match &m.body {
            Body::Error(e) => Some(e.code.code()),
            _ => None,
        }
    }

    fn token_from(m: &Message<'_>) -> Bytes {
        match &m.body {
            Body::Response(r) => Bytes::copy_from_slice(r.token.unwrap()),
            other => panic!("{other:?}"),
        }
    }

    fn announce(ih: InfoHash, port: u16, implied_port: bool, token: Bytes) -> Needs {
        Needs::Store(AnnounceArgs {
            info_hash: ih,
            port,
            implied_port,
            token,
            seed: false,
        })
    }

    /// BEP 44: a `put` with a token is stored and a `get` returns it; every
    /// malformed `put` gets its code and stores nothing.
    #[test]
    fn items_are_put_and_got_and_bad_puts_get_their_codes() {
        use crate::item::{signable, Item, Signed};
        use ed25519_dalek::{Signer, SigningKey};
        let t0 = crate::test_epoch();
        let mut r = responder(t0, &NodeConfig::default());
        let from = "10.0.0.5:1";
        let key = SigningKey::from_bytes(&[9; 32]);
        let mutable = |seq: i64, value: &'static [u8], salt: &'static [u8]| Item {
            value: Bytes::from_static(value),
            signed: Some(Signed {
                key: key.verifying_key().to_bytes(),
                salt: Bytes::from_static(salt),
                seq,
                sig: key.sign(&signable(salt, seq, value)).to_bytes(),
            }),
        };
        let first = mutable(1, b"5:hello", b"");
        let target = first.target();
        let get = |r: &mut Responder| {
            let m = ask(r, t0, query(from, Needs::Item { target, seq: None }));
            let Body::Response(resp) = m.body else {
                panic!()
            };
            (
                resp.value.map(<[u8]>::to_vec),
                resp.signed.map(|s| s.seq),
                Bytes::copy_from_slice(resp.token.unwrap()),
            )
        };
        let (value, _, token) = get(&mut r);
        assert_eq!(value, None);
        let put = |r: &mut Responder, item: Item, cas: Option<i64>, token: Bytes| {
            code(&ask(
                r,
                t0,
                query(from, Needs::Put(Box::new(PutRequest { item, cas, token }))),
            ))
        };
        assert_eq!(
            put(&mut r, first.clone(), None, Bytes::from_static(b"forged")),
            Some(203)
        );
        assert_eq!(put(&mut r, first.clone(), None, token.clone()), None);
        assert_eq!(get(&mut r).0.as_deref(), Some(&b"5:hello"[..]));
        let mut forged = mutable(2, b"5:world", b"");
        if let Some(s) = &mut forged.signed {
            s.sig[0] ^= 1;
        }
        let big: &'static [u8] = Box::leak(
            format!("1001:{}", "x".repeat(1001))
                .into_bytes()
                .into_boxed_slice(),
        );
        let long_salt: &'static [u8] = Box::leak(vec![b's'; 65].into_boxed_slice());
        for (item, cas, expected) in [
            (forged, None, 206),
            (mutable(2, big, b""), None, 205),
            (mutable(2, b"1:x", long_salt), None, 207),
            (mutable(2, b"5:world", b""), Some(7), 301),
            (mutable(0, b"5:older", b""), None, 302),
        ] {
            assert_eq!(put(&mut r, item, cas, token.clone()), Some(expected));
            assert_eq!(
                get(&mut r).0.as_deref(),
                Some(&b"5:hello"[..]),
                "{expected} stored nothing"
            );
        }
        assert_eq!(
            put(&mut r, mutable(2, b"5:world", b""), Some(1), token.clone()),
            None
        );
        assert_eq!(get(&mut r).1, Some(2));
        let puts = r.telemetry.snapshot().item_puts;
        assert_eq!(
            (puts.get(ItemPut::Stored), puts.get(ItemPut::Updated)),
            (1, 1)
        );
        assert_eq!(puts.get(ItemPut::BadToken), 1);
        // Immutable: stored under the SHA-1 of its value.
        let immutable = Item {
            value: Bytes::from_static(b"12:Hello World!"),
            signed: None,
        };
        assert_eq!(put(&mut r, immutable.clone(), None, token), None);
        let m = ask(
            &mut r,
            t0,
            query(
                from,
                Needs::Item {
                    target: immutable.target(),
                    seq: None,
                },
            ),
        );
        let Body::Response(resp) = m.body else {
            panic!()
        };
        assert_eq!(resp.value, Some(&b"12:Hello World!"[..]));
        assert!(resp.signed.is_none());
    }

    /// BEP 33: `seed = 1` is stored; a scrape carries the seed and peer
    /// filters of the stored IPs (none for an unknown info hash) and still
    /// fits in 1,024 bytes however many peers there are; `noseed` puts the
    /// other peers first.
    #[test]
    fn scrapes_answer_with_seed_and_peer_filters() {
        use crate::scrape::ScrapeBloom;
        let t0 = crate::test_epoch();
        let mut config = NodeConfig::default();
        config.store.max_announces_per_prefix = 1_000;
        let mut r = responder(t0, &config);
        let ih = InfoHash([4; 20]);
        let mut expected = (ScrapeBloom::default(), ScrapeBloom::default());
        for i in 0..200u8 {
            let from = format!("10.1.{i}.1:1");
            let seed = i % 4 == 0;
            let token = token_from(&ask(&mut r, t0, query(&from, Needs::peers(ih))));
            let Needs::Store(mut args) = announce(ih, 6881, false, token) else {
                unreachable!()
            };
            args.seed = seed;
            assert!(code(&ask(&mut r, t0, query(&from, Needs::Store(args)))).is_none());
            let ip = from.parse::<SocketAddr>().unwrap().ip();
            if seed {
                expected.0.insert(ip);
            } else {
                expected.1.insert(ip);
            }
        }
        let scrape = |noseed| Needs::Peers {
            info_hash: ih,
            scrape: true,
            noseed,
        };
        r.handle(
            t0,
            StoreInput::Queries(vec![query("10.9.0.1:1", scrape(false))]),
        );
        let (_, raw) = r.outputs.outbox.iter().next().unwrap();
        assert!(raw.len() <= crate::krpc::MAX_REPLY_LEN, "{}", raw.len());
        r.outputs.outbox.clear();
        let Body::Response(answer) = ask(&mut r, t0, query("10.9.0.1:1", scrape(true))).body else {
            panic!()
        };
        assert_eq!(answer.seeds_bloom, Some(&expected.0 .0[..]));
        assert_eq!(answer.peers_bloom, Some(&expected.1 .0[..]));
        let values: Vec<SocketAddr> = answer.values.unwrap().iter().collect();
        assert!(!values.is_empty() && values.len() < 50, "{}", values.len());
        assert!(
            values.iter().all(|v| v
                .ip()
                .to_string()
                .split('.')
                .nth(2)
                .unwrap()
                .parse::<u8>()
                .unwrap()
                % 4
                != 0),
            "noseed: only non-seeds while they fill the reply"
        );
        let other = Needs::Peers {
            info_hash: InfoHash([5; 20]),
            scrape: true,
            noseed: false,
        };
        let Body::Response(none) = ask(&mut r, t0, query("10.9.0.1:1", other)).body else {
            panic!()
        };
        assert_eq!((none.seeds_bloom, none.peers_bloom), (None, None));
    }

    /// BEP 51: a sample fills the reply's 1,024 bytes, stands for its
    /// interval, and the next interval brings the next slice, so that a
    /// crawler sees the whole store in turn.
    #[test]
    fn samples_walk_the_whole_store_one_slice_per_interval() {
        let t0 = crate::test_epoch();
        let mut config = NodeConfig::default();
        config.store.sample_interval = Duration::from_secs(60);
        let mut r = responder(t0, &config);
        let mut stored = std::collections::BTreeSet::new();
        for i in 0..100u8 {
            let ih = InfoHash([i; 20]);
            let from = format!("10.0.{i}.1:1");
            let token = token_from(&ask(&mut r, t0, query(&from, Needs::peers(ih))));
            ask(&mut r, t0, query(&from, announce(ih, 6881, false, token)));
            stored.insert(ih);
        }
        let crawler = || query("10.9.0.1:1", Needs::Samples(NodeId([3; 20])));
        let mut seen = std::collections::BTreeSet::new();
        let mut now = t0;
        for _ in 0..5 {
            r.handle(now, StoreInput::Queries(vec![crawler()]));
            let (_, raw) = r.outputs.outbox.iter().next().unwrap();
            assert!(raw.len() <= crate::krpc::MAX_REPLY_LEN, "{}", raw.len());
            assert!(raw.len() > crate::krpc::MAX_REPLY_LEN - 20, "{}", raw.len());
            r.outputs.outbox.clear();
            let m = ask(&mut r, now, crawler());
            let Body::Response(first) = m.body else {
                panic!()
            };
            assert_eq!((first.num, first.interval), (Some(100), Some(60)));
            let sample: Vec<InfoHash> = first.sample_hashes().collect();
            assert!(sample.len() >= 30, "{}", sample.len());
            let later = ask(&mut r, now + Duration::from_secs(45), crawler());
            let Body::Response(later) = later.body else {
                panic!()
            };
            assert_eq!(
                later.sample_hashes().collect::<Vec<_>>(),
                sample,
                "it stands"
            );
            assert_eq!(later.interval, Some(15));
            seen.extend(sample);
            now += Duration::from_secs(60);
        }
        assert_eq!(seen, stored, "every stored info hash was sampled");
        // An empty store answers with an empty sample, not without one.
        let mut empty = responder(t0, &config);
        let Body::Response(e) = ask(&mut empty, t0, crawler()).body else {
            panic!()
        };
        assert_eq!((e.num, e.samples), (Some(0), Some(&b""[..])));
    }

    /// BEP 5: a token is good for 5 to 10 minutes and only for the IP it was
    /// issued to; `implied_port` stores the source port; port 0 is refused.
    #[test]
    fn tokens_ports_and_error_codes() {
        let t0 = crate::test_epoch();
        let mut r = responder(t0, &NodeConfig::default());
        let ih = InfoHash([3; 20]);
        let get = ask(&mut r, t0, query("10.0.0.1:4000", Needs::peers(ih)));
        let token = token_from(&get);
        let forged = Bytes::from_static(b"forged!!");
        let m = ask(
            &mut r,
            t0,
            query("10.0.0.1:4000", announce(ih, 6881, false, forged)),
        );
        assert_eq!(code(&m), Some(203));
        let m = ask(
            &mut r,
            t0,
            query("10.0.0.2:4000", announce(ih, 6881, false, token.clone())),
        );
        assert_eq!(code(&m), Some(203), "issued to another IP");
        let m = ask(
            &mut r,
            t0,
            query("10.0.0.1:4000", announce(ih, 0, false, token.clone())),
        );
        assert_eq!(code(&m), Some(203), "port 0");
        let m = ask(
            &mut r,
            t0,
            query("10.0.0.1:4000", announce(ih, 0, true, token.clone())),
        );
        assert_eq!(code(&m), None, "implied_port stores the source port");
        let peers = ask(&mut r, t0, query("10.0.0.9:1", Needs::peers(ih)));
        let Body::Response(resp) = peers.body else {
            panic!()
        };
        let values: Vec<SocketAddr> = resp.values.unwrap().iter().collect();
        assert_eq!(values, vec!["10.0.0.1:4000".parse().unwrap()]);
        // Two rotations later the token is too old.
        let later = t0 + 2 * crate::token::TokenConfig::default().rotation;
        r.handle_timeout(later);
        let m = ask(
            &mut r,
            later,
            query("10.0.0.1:4000", announce(ih, 6881, false, token)),
        );
        assert_eq!(code(&m), Some(203));
        let s = r.telemetry.snapshot();
        assert_eq!(s.announces_refused.get(AnnounceRefusal::BadToken), 3);
        assert_eq!(s.announces_refused.get(AnnounceRefusal::BadPort), 1);
        assert_eq!(s.announces_stored.value(), 1);
    }

    fn snapshot(nodes: &[NodeInfo]) -> Arc<NodeSnapshot> {
        let t0 = crate::test_epoch();
        let mut table = crate::routing::RoutingTable::new(
            NodeId([9; 20]),
            t0,
            crate::routing::RoutingConfig::default(),
        );
        for n in nodes {
            table.node_responded(t0, *n);
        }
        Arc::new(table.snapshot(t0, crate::routing::NodeFilter::NotBad))
    }

    fn families_in(m: &Message<'_>) -> (usize, usize) {
        let Body::Response(resp) = &m.body else {
            panic!("not a response: {m:?}")
        };
        (
            resp.nodes.as_ref().map_or(0, |n| n.iter().count()),
            resp.nodes6.as_ref().map_or(0, |n| n.iter().count()),
        )
    }

    /// Short of upload, a get_peers answer gives up values first, and an
    /// answer that still does not fit is not sent; both are counted.
    #[test]
    fn the_upload_budget_trims_values_then_drops_answers() {
        let t0 = crate::test_epoch();
        let mut config = NodeConfig::default();
        config.store.max_announces_per_ip = 1000;
        config.store.max_announces_per_prefix = 1000;
        let mut r = responder(t0, &config);
        let ih = InfoHash([7; 20]);
        for i in 0..60u8 {
            let from = format!("10.0.{i}.1:4000");
            let get = ask(&mut r, t0, query(&from, Needs::peers(ih)));
            let m = ask(
                &mut r,
                t0,
                query(&from, announce(ih, 0, true, token_from(&get))),
            );
            assert_eq!(code(&m), None);
        }
        let values = |m: &Message<'_>| match &m.body {
            Body::Response(resp) => resp.values.as_ref().map_or(0, |v| v.iter().count()),
            _ => panic!(),
        };
        let full = values(&ask(&mut r, t0, query("10.9.9.9:1", Needs::peers(ih))));
        assert!(full > 50, "{full}");
        // 1,000 bytes now, 1,000 a second: the first answer (about 600
        // bytes) fits whole, the second only with fewer values, the third
        // not at all.
        r.upload.set_rate(Some(crate::rate_limit::Rate {
            per_second: 1000.0,
            burst: 1000.0,
        }));
        let first = ask(&mut r, t0, query("10.9.9.9:1", Needs::peers(ih)));
        assert_eq!(values(&first), full);
        let second = ask(&mut r, t0, query("10.9.9.9:1", Needs::peers(ih)));
        let trimmed = values(&second);
        assert!(
            trimmed > 0 && trimmed < full,
            "trimmed to {trimmed} of {full}"
        );
        assert_eq!(r.telemetry.snapshot().upload_trimmed.value(), 1);
        r.handle(
            t0,
            StoreInput::Queries(vec![query("10.9.9.9:1", Needs::Id)]),
        );
        assert!(
            r.outputs.outbox.is_empty(),
            "nothing left for a ping's answer"
        );
        let dropped = r.telemetry.snapshot().dropped;
        assert_eq!(dropped.get(DropReason::UploadThrottled), 1);
        // A second later the budget holds answers again.
        let later = t0 + Duration::from_secs(1);
        assert_eq!(
            values(&ask(&mut r, later, query("10.9.9.9:1", Needs::peers(ih)))),
            full
        );
    }

    /// BEP 32: `want` picks the families of `nodes`/`nodes6` (without it,
    /// the querier's own); `values` hold the querier's family's peers; an
    /// IPv6 querier gets a token, its `ip`, and is one host per /64.
    #[test]
    fn bep32_want_nodes6_values_and_tokens() {
        let t0 = crate::test_epoch();
        let mut r = responder(t0, &NodeConfig::default());
        let v4: Vec<NodeInfo> = (1..=3)
            .map(|i| NodeInfo {
                id: NodeId([i; 20]),
                addr: SocketAddr::from(([10, 0, i, 1], 6881)),
            })
            .collect();
        let v6: Vec<NodeInfo> = (1..=3u16)
            .map(|i| NodeInfo {
                id: NodeId([0x80 | i as u8; 20]),
                addr: SocketAddr::from(([0x2001, 0xdb8, i, 0, 0, 0, 0, 1], 6881)),
            })
            .collect();
        r.handle(t0, StoreInput::Snapshot(Family::V4, snapshot(&v4)));
        r.handle(t0, StoreInput::Snapshot(Family::V6, snapshot(&v6)));
        let find = |from: &str, want: Option<Want>| {
            let mut q = query(from, Needs::Nodes(NodeId([5; 20])));
            q.want = want;
            q
        };
        let m = ask(&mut r, t0, find("10.9.9.9:1", None));
        assert_eq!(families_in(&m), (3, 0), "no want: the querier's family");
        let m = ask(&mut r, t0, find("[2001:db8:9::9]:1", None));
        assert_eq!(families_in(&m), (0, 3));
        assert_eq!(
            m.requester_ip,
            Some("[2001:db8:9::9]:1".parse().unwrap()),
            "the ip key of an IPv6 querier"
        );
        let n6 = Want {
            v4: false,
            v6: true,
        };
        let m = ask(&mut r, t0, find("10.9.9.9:1", Some(n6)));
        assert_eq!(families_in(&m), (0, 3), "want n6 over IPv4");
        let m = ask(&mut r, t0, find("[2001:db8:9::9]:1", Some(Want::BOTH)));
        assert_eq!(families_in(&m), (3, 3), "want n4 and n6");

        // An IPv6 peer announces with its token, and is found by IPv6
        // queriers only; an IPv4 one by IPv4 queriers only.
        let ih = InfoHash([3; 20]);
        for from in ["[2001:db8:1::7]:4000", "10.0.0.7:4000"] {
            let get = ask(&mut r, t0, query(from, Needs::peers(ih)));
            let token = token_from(&get);
            let m = ask(&mut r, t0, query(from, announce(ih, 0, true, token)));
            assert_eq!(code(&m), None, "{from} stored");
        }
        let values = |r: &mut Responder, from: &str| -> Vec<SocketAddr> {
            let m = ask(r, t0, query(from, Needs::peers(ih)));
            let Body::Response(resp) = m.body else {
                panic!()
            };
            resp.values.map(|v| v.iter().collect()).unwrap_or_default()
        };
        assert_eq!(
            values(&mut r, "[2001:db8:2::1]:1"),
            vec!["[2001:db8:1::7]:4000".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(
            values(&mut r, "10.1.1.1:1"),
            vec!["10.0.0.7:4000".parse::<SocketAddr>().unwrap()]
        );
        // Another address of the same /64 is the same host.
        assert_eq!(r.store.held_by_ip("2001:db8:1::1234".parse().unwrap()), 1);
        assert_eq!(r.store.held_by_ip("2001:db8:1:1::7".parse().unwrap()), 0);
    }

    #[test]
    fn a_quota_answers_202_with_its_reason_and_unknown_methods_204() {
        let t0 = crate::test_epoch();
        let mut config = NodeConfig::default();
        config.store.max_announces_per_ip = 1;
        let mut r = responder(t0, &config);
        let limits = r.telemetry.snapshot().store_limits;
        assert_eq!(
            limits.get(StoreCap::AnnouncesPerIp),
            1,
            "set from the start"
        );
        assert_eq!(limits.get(StoreCap::InfoHashes), 50_000);
        for (i, expected) in [(1u8, None), (2, Some(202))] {
            let ih = InfoHash([i; 20]);
            let token = token_from(&ask(&mut r, t0, query("10.0.0.1:1", Needs::peers(ih))));
            let m = ask(
                &mut r,
                t0,
                query("10.0.0.1:1", announce(ih, 1, false, token)),
            );
            assert_eq!(code(&m), expected);
        }
        let refused = r.telemetry.snapshot().announces_refused;
        assert_eq!(refused.get(AnnounceRefusal::IpQuota), 1);
        assert_eq!(refused.total(), 1);
        let m = ask(&mut r, t0, query("10.0.0.1:1", Needs::MethodUnknown));
        assert_eq!(code(&m), Some(204));
        let get = ask(
            &mut r,
            t0,
            query(
                "10.0.0.1:1",
                Needs::Item {
                    target: NodeId([5; 20]),
                    seq: None,
                },
            ),
        );
        let Body::Response(resp) = get.body else {
            panic!()
        };
        assert!(resp.token.is_some() && resp.nodes.is_some() && resp.values.is_none());
    }

    #[test]
    fn queriers_are_reported_once_per_interval_and_local_peers_go_back() {
        let t0 = crate::test_epoch();
        let mut r = responder(t0, &NodeConfig::default());
        for _ in 0..3 {
            ask(&mut r, t0, query("10.0.0.1:1", Needs::Id));
        }
        let reports = std::iter::from_fn(|| r.outputs.pop()).count();
        assert_eq!(reports, 1);
        ask(
            &mut r,
            t0 + REPORT_QUERIER_EVERY,
            query("10.0.0.1:1", Needs::Id),
        );
        assert_eq!(std::iter::from_fn(|| r.outputs.pop()).count(), 1);

        let ih = InfoHash([4; 20]);
        let token = token_from(&ask(&mut r, t0, query("10.0.0.7:1", Needs::peers(ih))));
        ask(
            &mut r,
            t0,
            query("10.0.0.7:1", announce(ih, 7, false, token)),
        );
        while r.outputs.pop().is_some() {}
        r.handle(
            t0,
            StoreInput::LocalPeers {
                lookup: LookupId(2),
                info_hash: ih,
            },
        );
        match r.outputs.pop() {
            Some(Envelope::Lookups(LookupsInput::LocalPeers { lookup, peers })) => {
                assert_eq!(lookup, LookupId(2));
                assert_eq!(peers, vec!["10.0.0.7:7".parse().unwrap()]);
            }
            other => panic!("{other:?}"),
        }
    }
}
