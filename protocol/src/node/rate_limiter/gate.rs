//! Inbound: admit, decode once, dispatch.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use crate::family::host_key;
use crate::ip_prefix::IpPrefix;
use crate::krpc::{Body, ErrorCode, Message, Query};
use crate::node::{
    Datagram, Envelope, InboundQuery, InboundResponse, NodeConfig, Outputs, RemoteError, Reply,
    Sampled, StoreInput, TransactionsInput,
};
use crate::rate_limit::{IpRateLimiter, Limited, PrefixRateLimiter};
use crate::scrape::ScrapeBloom;
use crate::server;
use crate::telemetry::{DropReason, ErrorLabel, Method, Telemetry};
use crate::token::Token;
use crate::upload::UploadBudget;

/// Per-IP budgets and the dispatch of what they admit.
#[derive(Debug)]
pub struct Gate {
    read_only: bool,
    /// The node's upload budget (error answers are answers too).
    pub(super) upload: Arc<UploadBudget>,
    queries_in: IpRateLimiter,
    queries_in_prefix: PrefixRateLimiter,
    responses_in: IpRateLimiter,
    buf: Vec<u8>,
}

/// The longest transaction id answered. Clients use 2 to 8 bytes; a long
/// one would make every reply an echo chamber (a 60 KB id, a 60 KB reply),
/// so such a datagram is dropped and counted, never answered.
pub const MAX_TRANSACTION_ID_LEN: usize = 32;

/// Whether a datagram is a query, by its top-level `y` alone. One pass
/// over the tokens: strings are jumped over by their length (so `1:y1:r`
/// inside a value is just bytes), containers below the top level are only
/// counted open and closed, and a repeated `y` counts as its last, as in
/// the decoder. Anything that is not a dictionary with `y` = `q` counts
/// against the response budget, where it is matched against our own
/// queries before it can do anything; a query filed there by mistake pays
/// the query budget too before it is answered.
pub fn looks_like_query(datagram: &[u8]) -> bool {
    if datagram.first() != Some(&b'd') {
        return false;
    }
    let mut at = 1;
    // Containers open; the top-level dictionary is 1.
    let mut depth = 1usize;
    // At the top level: whether the next token is a key, and whether the
    // last key was `y`.
    let mut key_next = true;
    let mut key_is_y = false;
    let mut query = false;
    while let Some(&byte) = datagram.get(at) {
        match byte {
            b'0'..=b'9' => {
                let Some((len, start)) = string_header(datagram, at) else {
                    return false;
                };
                let Some(value) = datagram.get(start..start + len) else {
                    return false;
                };
                if depth == 1 {
                    if key_next {
                        key_is_y = value == b"y";
                    } else if key_is_y {
                        query = value == b"q";
                    }
                    key_next = !key_next;
                }
                at = start + len;
            }
            _ if depth == 1 && key_next && byte != b'e' => return false,
            b'i' => {
                let Some(end) = datagram[at..].iter().position(|&b| b == b'e') else {
                    return false;
                };
                at += end + 1;
                if depth == 1 {
                    key_next = true;
                }
            }
            b'l' | b'd' => {
                depth += 1;
                at += 1;
            }
            b'e' => {
                depth -= 1;
                at += 1;
                match depth {
                    0 => return at == datagram.len() && query,
                    1 => key_next = true,
                    _ => {}
                }
            }
            _ => return false,
        }
    }
    false
}

/// The length of the string whose header starts at `at`, and where its
/// bytes start; `None` if the header is not digits and a colon.
fn string_header(datagram: &[u8], at: usize) -> Option<(usize, usize)> {
    let mut len = 0usize;
    // A datagram is under 64 KiB: five digits are enough.
    for (i, &b) in datagram.get(at..)?.iter().take(6).enumerate() {
        match b {
            b'0'..=b'9' => len = len * 10 + usize::from(b - b'0'),
            b':' if i > 0 => return Some((len, at + i + 1)),
            _ => return None,
        }
    }
    None
}

/// Whether `limiter` lets a datagram from `source` through; counts the
/// drop if not (`network`: the budget was its /24's or /64's).
fn admitted<Key: Eq + std::hash::Hash + Copy>(
    limiter: &mut crate::rate_limit::KeyedRateLimiter<Key>,
    now: Instant,
    source: Key,
    telemetry: &Telemetry,
    network: bool,
) -> bool {
    match limiter.admit(now, source) {
        Ok(()) => true,
        Err(limited) => {
            telemetry.dropped.incr(match limited {
                Limited::OverRate if network => DropReason::PrefixRateLimited,
                Limited::OverRate => DropReason::RateLimited,
                Limited::TooManySources => DropReason::TooManySources,
            });
            false
        }
    }
}

/// The counted method of a query.
pub fn method_of(query: &Query<'_>) -> Method {
    match query {
        Query::Ping => Method::Ping,
        Query::FindNode { .. } => Method::FindNode,
        Query::GetPeers { .. } => Method::GetPeers,
        Query::AnnouncePeer { .. } => Method::AnnouncePeer,
        Query::SampleInfohashes { .. } => Method::SampleInfohashes,
        Query::Get { .. } => Method::Get,
        Query::Put(_) => Method::Put,
        Query::Unknown { .. } => Method::Other,
    }
}

impl Gate {
    /// With the budgets of `config`. A read-only node (BEP 43) answers no
    /// query.
    pub fn new(config: &NodeConfig) -> Self {
        let limits = &config.limits;
        Gate {
            read_only: config.read_only,
            upload: Arc::new(UploadBudget::new(config.limits.upload)),
            queries_in: IpRateLimiter::new(limits.queries_per_ip, limits.max_tracked_ips),
            queries_in_prefix: PrefixRateLimiter::new(
                limits.queries_per_prefix,
                limits.max_tracked_ips,
            ),
            responses_in: IpRateLimiter::new(limits.responses_per_ip, limits.max_tracked_ips),
            buf: Vec::with_capacity(128),
        }
    }

    /// Sources whose query budget is tracked now.
    pub fn tracked(&self) -> usize {
        self.queries_in.tracked()
    }

    /// Applies `config`'s budgets and read-only mode from now on.
    pub fn reconfigure(&mut self, config: &NodeConfig) {
        let limits = &config.limits;
        self.read_only = config.read_only;
        self.queries_in
            .set_rate(limits.queries_per_ip, limits.max_tracked_ips);
        self.queries_in_prefix
            .set_rate(limits.queries_per_prefix, limits.max_tracked_ips);
        self.responses_in
            .set_rate(limits.responses_per_ip, limits.max_tracked_ips);
    }

    /// Admits and decodes one batch: one message for the store with every
    /// query, one for the transaction table with every response, and
    /// error 203 for each malformed query that can be answered.
    pub fn handle_datagrams(
        &mut self,
        now: Instant,
        batch: impl IntoIterator<Item = Datagram>,
        telemetry: &Telemetry,
        out: &mut Outputs,
    ) {
        let mut queries = Vec::new();
        let mut responses = Vec::new();
        for Datagram { from, bytes } in batch {
            self.datagram(
                now,
                from,
                bytes,
                telemetry,
                out,
                &mut queries,
                &mut responses,
            );
        }
        if !queries.is_empty() {
            out.push(Envelope::Store(StoreInput::Queries(queries)));
        }
        if !responses.is_empty() {
            out.push(Envelope::Transactions(TransactionsInput::Responses(
                responses,
            )));
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        bytes: Bytes,
        telemetry: &Telemetry,
        out: &mut Outputs,
        queries: &mut Vec<InboundQuery>,
        responses: &mut Vec<InboundResponse>,
    ) {
        let charged_as_query = looks_like_query(&bytes);
        let admitted = if charged_as_query {
            self.admit_query(now, from, telemetry)
        } else {
            admitted(
                &mut self.responses_in,
                now,
                host_key(from.ip()),
                telemetry,
                false,
            )
        };
        if !admitted {
            return;
        }
        let message = match Message::decode(&bytes) {
            Ok(m) => m,
            Err(e) => {
                // Whatever the classifier said, nothing is answered that
                // the query budget did not pay for.
                if e.answerable().is_some()
                    && !charged_as_query
                    && !self.admit_query(now, from, telemetry)
                {
                    return;
                }
                match e.answerable() {
                    Some(tid) if tid.len() > MAX_TRANSACTION_ID_LEN => {
                        telemetry.dropped.incr(DropReason::LongTransactionId)
                    }
                    Some(tid) if !self.read_only => {
                        // BEP 5: a malformed query gets 203 where it can be answered.
                        let text = format!("malformed query: {}", e.kind);
                        server::encode_error(
                            &mut self.buf,
                            tid,
                            from,
                            ErrorCode::Protocol,
                            text.as_bytes(),
                        );
                        if self.upload.try_spend(now, self.buf.len()) {
                            telemetry.errors_out.incr(ErrorLabel::Protocol);
                            out.outbox.push(from, &self.buf);
                        } else {
                            telemetry.dropped.incr(DropReason::UploadThrottled);
                        }
                    }
                    _ => telemetry.dropped.incr(DropReason::DecodeError),
                }
                return;
            }
        };
        if message.transaction_id.len() > MAX_TRANSACTION_ID_LEN {
            telemetry.dropped.incr(DropReason::LongTransactionId);
            return;
        }
        let tid = bytes.slice_ref(message.transaction_id);
        if matches!(message.body, Body::Query { .. })
            && !charged_as_query
            && !self.admit_query(now, from, telemetry)
        {
            return;
        }
        match message.body {
            Body::Query { sender, query } => {
                let method = method_of(&query);
                telemetry.queries_in.incr(method);
                if self.read_only {
                    telemetry.dropped.incr(DropReason::ReadOnly);
                    return;
                }
                queries.push(InboundQuery {
                    from,
                    tid,
                    sender,
                    read_only: message.read_only,
                    method,
                    want: query.want(),
                    needs: server::needs(&query, &bytes),
                });
            }
            Body::Response(r) => {
                let reply = Reply {
                    id: r.id,
                    nodes: {
                        let lists = r.nodes.iter().chain(r.nodes6.iter());
                        let mut nodes = Vec::with_capacity(lists.clone().map(|n| n.len()).sum());
                        nodes.extend(lists.flat_map(|n| n.iter()));
                        nodes
                    },
                    peers: r.values.iter().flat_map(|v| v.iter()).collect(),
                    token: r.token.and_then(Token::new),
                    version: message.version.map(|v| bytes.slice_ref(v)),
                    // BEP 51 caps the interval at 6 hours; a larger one is
                    // taken as that.
                    samples: r.samples.map(|_| Sampled {
                        interval: r.interval.unwrap_or(0).clamp(0, 21_600) as u32,
                        num: r.num.unwrap_or(0).max(0) as u64,
                        hashes: r.sample_hashes().collect(),
                    }),
                    blooms: r
                        .seeds_bloom
                        .and_then(ScrapeBloom::from_slice)
                        .zip(r.peers_bloom.and_then(ScrapeBloom::from_slice))
                        .map(Box::new),
                    // Bounded by the datagram; the lookup checks it.
                    item: r
                        .value
                        .filter(|v| v.len() <= crate::item::MAX_VALUE_LEN)
                        .map(|v| {
                            Box::new(crate::item::Item {
                                value: bytes.slice_ref(v),
                                signed: r.signed.map(|s| crate::item::Signed {
                                    key: *s.key,
                                    salt: Bytes::new(),
                                    seq: s.seq,
                                    sig: *s.sig,
                                }),
                            })
                        }),
                };
                responses.push(InboundResponse {
                    from,
                    tid,
                    requester_ip: message.requester_ip,
                    result: Ok(reply),
                });
            }
            Body::Error(e) => responses.push(InboundResponse {
                from,
                tid,
                requester_ip: message.requester_ip,
                result: Err(RemoteError::new(e.code.code(), e.message)),
            }),
        }
    }

    /// A query from `from` pays its address's budget, then its network's.
    fn admit_query(&mut self, now: Instant, from: SocketAddr, telemetry: &Telemetry) -> bool {
        admitted(
            &mut self.queries_in,
            now,
            host_key(from.ip()),
            telemetry,
            false,
        ) && admitted(
            &mut self.queries_in_prefix,
            now,
            IpPrefix::of(from.ip()),
            telemetry,
            true,
        )
    }

    /// Forgets per-IP budgets that have refilled completely.
    pub fn forget_idle(&mut self, now: Instant) {
        self.queries_in.forget_idle(now);
        self.queries_in_prefix.forget_idle(now);
        self.responses_in.forget_idle(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::outbox::Outbox;
    use crate::rate_limit::Rate;
    use crate::server::Needs;

    fn datagram(from: &str, bytes: &'static [u8]) -> Datagram {
        Datagram {
            from: from.parse().unwrap(),
            bytes: Bytes::from_static(bytes),
        }
    }

    /// A ping as libtorrent sends it.
    const PING: &[u8] = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe";

    fn drain(out: &mut Outputs) -> (Vec<InboundQuery>, Vec<InboundResponse>) {
        let (mut q, mut r) = (Vec::new(), Vec::new());
        while let Some(e) = out.pop() {
            match e {
                Envelope::Store(StoreInput::Queries(v)) => q.extend(v),
                Envelope::Transactions(TransactionsInput::Responses(v)) => r.extend(v),
                other => panic!("{other:?}"),
            }
        }
        (q, r)
    }

    #[test]
    fn queries_are_told_from_responses_without_decoding() {
        assert!(looks_like_query(PING));
        assert!(!looks_like_query(
            b"d1:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re"
        ));
        assert!(!looks_like_query(b"garbage"));
        // Keys in any order (not every client sorts them).
        assert!(looks_like_query(
            b"d1:y1:q1:t2:aa1:q4:ping1:ad2:id20:abcdefghij0123456789ee"
        ));
    }

    /// A ping whose value holds `1:y1:r` is still a query: it is charged
    /// to the query budget, not the response one (the bypass of a byte
    /// scan). So is everything in the captured fixtures: the classifier
    /// agrees with the full decoder on every one of them.
    #[test]
    fn a_value_that_looks_like_y_cannot_move_a_query_to_the_response_budget() {
        let sneaky = b"d1:ad2:id20:abcdefghij01234567891:x6:1:y1:re1:q4:ping1:t2:aa1:y1:qe";
        assert!(Message::decode(sneaky).is_ok());
        assert!(looks_like_query(sneaky));
        let at_end = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:q1:z6:1:y1:re";
        // Found by the fuzzer against the byte scan: unsorted keys, a
        // response whose value after `y` holds `1:y1:q`.
        let response = b"d1:y1:r1:rd2:id20:aaaaaaaaaaaaaaaaaaaae1:t6:1:y1:qe";
        assert!(matches!(
            Message::decode(response).map(|m| m.body),
            Ok(Body::Response(_))
        ));
        assert!(!looks_like_query(response));
        // A repeated `y` counts as its last, as in the decoder (also found
        // by the fuzzer).
        let repeated = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:y1:x1:t2:aa1:y1:qe";
        assert!(matches!(
            Message::decode(repeated).map(|m| m.body),
            Ok(Body::Query { .. })
        ));
        assert!(looks_like_query(repeated));
        assert!(Message::decode(at_end).is_ok());
        assert!(looks_like_query(at_end));

        let t0 = crate::test_epoch();
        let telemetry = Telemetry::default();
        let mut config = NodeConfig::default();
        config.limits.queries_per_ip = Rate {
            per_second: 1.0,
            burst: 2.0,
        };
        let mut gate = Gate::new(&config);
        let mut out = Outputs::default();
        let batch: Vec<Datagram> = (0..20).map(|_| datagram("10.0.0.1:1", at_end)).collect();
        gate.handle_datagrams(t0, batch, &telemetry, &mut out);
        let (q, _) = drain(&mut out);
        assert_eq!(q.len(), 2, "held to the query budget");
        assert_eq!(
            telemetry.snapshot().dropped.get(DropReason::RateLimited),
            18
        );
    }

    #[test]
    fn the_classifier_agrees_with_the_decoder_on_every_fixture() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/krpc");
        let mut checked = 0;
        let clients = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path());
        let files = clients
            .filter(|p| p.is_dir())
            .flat_map(|p| std::fs::read_dir(p).unwrap().map(|e| e.unwrap().path()));
        for path in files {
            if path.extension().is_none_or(|e| e != "bin") {
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            if let Ok(m) = Message::decode(&bytes) {
                let is_query = matches!(m.body, Body::Query { .. });
                assert_eq!(looks_like_query(&bytes), is_query, "{}", path.display());
                checked += 1;
            }
        }
        assert!(
            checked >= 20,
            "only {checked} fixtures decoded in {}",
            dir.display()
        );
    }

    /// A transaction id longer than the bound gets no answer at all, valid
    /// or malformed, so no reply echoes a long id.
    #[test]
    fn a_long_transaction_id_is_dropped_not_echoed() {
        let t0 = crate::test_epoch();
        let telemetry = Telemetry::default();
        let mut gate = Gate::new(&NodeConfig::default());
        let mut out = Outputs::default();
        let long = "x".repeat(MAX_TRANSACTION_ID_LEN + 1);
        let ok = "x".repeat(MAX_TRANSACTION_ID_LEN);
        let ping = |tid: &str| {
            format!(
                "d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t{}:{tid}1:y1:qe",
                tid.len()
            )
        };
        let malformed =
            |tid: &str| format!("d1:ad2:id3:abce1:q4:ping1:t{}:{tid}1:y1:qe", tid.len());
        let batch: Vec<Datagram> = [ping(&long), malformed(&long), ping(&ok), malformed(&ok)]
            .into_iter()
            .map(|m| Datagram {
                from: "10.0.0.1:1".parse().unwrap(),
                bytes: Bytes::from(m.into_bytes()),
            })
            .collect();
        gate.handle_datagrams(t0, batch, &telemetry, &mut out);
        let (q, _) = drain(&mut out);
        assert_eq!(q.len(), 1, "the ping with a 32-byte id");
        assert_eq!(
            out.outbox.len(),
            1,
            "203 for the malformed one with a 32-byte id"
        );
        assert_eq!(
            telemetry
                .snapshot()
                .dropped
                .get(DropReason::LongTransactionId),
            2
        );
    }

    /// One batch: a query to the store, a response to the transaction
    /// table, 203 for a malformed query, garbage counted (BEP 5: "a query
    /// the node cannot parse gets 203 where it can be answered").
    #[test]
    fn a_batch_is_dispatched_in_one_message_per_addressee() {
        let t0 = crate::test_epoch();
        let telemetry = Telemetry::default();
        let mut gate = Gate::new(&NodeConfig::default());
        let mut out = Outputs::default();
        let batch = vec![
            datagram("10.0.0.1:1", PING),
            datagram(
                "10.0.0.2:1",
                b"d1:rd2:id20:mnopqrstuvwxyz123456e1:t4:abcd1:y1:re",
            ),
            datagram("10.0.0.3:1", b"d1:ad2:id3:abce1:q4:ping1:t2:m11:y1:qe"),
            datagram("10.0.0.4:1", b"\x00garbage"),
        ];
        gate.handle_datagrams(t0, batch, &telemetry, &mut out);
        assert_eq!(out.len(), 2, "one envelope per addressee");
        assert_eq!(out.outbox.len(), 1, "one 203");
        let (_, reply) = out.outbox.iter().next().unwrap();
        let m = Message::decode(reply).unwrap();
        assert_eq!(m.transaction_id, b"m1");
        assert!(matches!(m.body, Body::Error(e) if e.code == ErrorCode::Protocol));
        let (q, r) = drain(&mut out);
        assert_eq!(q.len(), 1);
        assert_eq!(q[0].needs, Needs::Id);
        assert_eq!(&q[0].tid[..], b"aa");
        assert_eq!(r.len(), 1);
        assert_eq!(&r[0].tid[..], b"abcd");
        let s = telemetry.snapshot();
        assert_eq!(s.dropped.get(DropReason::DecodeError), 1);
        assert_eq!(s.queries_in.get(Method::Ping), 1);
        assert_eq!(s.errors_out.get(ErrorLabel::Protocol), 1);
    }

    /// BEP 43: a read-only node counts queries and answers none, not even 203.
    #[test]
    fn a_read_only_node_answers_nothing() {
        let t0 = crate::test_epoch();
        let telemetry = Telemetry::default();
        let config = NodeConfig {
            read_only: true,
            ..NodeConfig::default()
        };
        let mut gate = Gate::new(&config);
        let mut out = Outputs::default();
        let batch = vec![
            datagram("10.0.0.1:1", PING),
            datagram("10.0.0.3:1", b"d1:ad2:id3:abce1:q4:ping1:t2:m11:y1:qe"),
        ];
        gate.handle_datagrams(t0, batch, &telemetry, &mut out);
        assert!(out.is_empty() && out.outbox.is_empty());
        assert_eq!(telemetry.snapshot().dropped.get(DropReason::ReadOnly), 1);
    }

    /// Many addresses of one /24 share one budget: a flood spread over a
    /// network is held to it, and other networks are not.
    #[test]
    fn the_addresses_of_one_network_share_its_budget() {
        let t0 = crate::test_epoch();
        let telemetry = Telemetry::default();
        let mut config = NodeConfig::default();
        config.limits.queries_per_prefix = Rate {
            per_second: 1.0,
            burst: 10.0,
        };
        let mut gate = Gate::new(&config);
        let mut out = Outputs::default();
        let batch: Vec<Datagram> = (0..50u8)
            .map(|i| Datagram {
                from: SocketAddr::from(([192, 0, 2, i], 1)),
                bytes: Bytes::from_static(PING),
            })
            .chain(std::iter::once(datagram("198.51.100.1:1", PING)))
            .collect();
        gate.handle_datagrams(t0, batch, &telemetry, &mut out);
        let (q, _) = drain(&mut out);
        assert_eq!(
            q.len(),
            11,
            "10 from the /24's burst, and the other network's"
        );
        assert_eq!(q.last().unwrap().from, "198.51.100.1:1".parse().unwrap());
        let s = telemetry.snapshot();
        assert_eq!(s.dropped.get(DropReason::PrefixRateLimited), 40);
        assert_eq!(s.dropped.get(DropReason::RateLimited), 0);
    }

    #[test]
    fn a_source_over_its_budget_is_dropped_before_decoding() {
        let t0 = crate::test_epoch();
        let telemetry = Telemetry::default();
        let mut config = NodeConfig::default();
        config.limits.queries_per_ip = Rate {
            per_second: 1.0,
            burst: 2.0,
        };
        let mut gate = Gate::new(&config);
        let mut out = Outputs::default();
        let batch: Vec<Datagram> = (0..5).map(|_| datagram("10.0.0.1:1", PING)).collect();
        gate.handle_datagrams(t0, batch, &telemetry, &mut out);
        let (q, _) = drain(&mut out);
        assert_eq!(q.len(), 2);
        assert_eq!(telemetry.snapshot().dropped.get(DropReason::RateLimited), 3);
        let _ = Outbox::default();
    }

    /// A reload raises the budget and turns read-only on, from then on.
    #[test]
    fn a_reload_changes_the_budget_and_read_only_live() {
        let t0 = crate::test_epoch();
        let telemetry = Telemetry::default();
        let mut config = NodeConfig::default();
        config.limits.queries_per_ip = Rate {
            per_second: 1.0,
            burst: 2.0,
        };
        let mut gate = Gate::new(&config);
        let mut out = Outputs::default();
        let pings = || {
            (0..5)
                .map(|_| datagram("10.0.0.1:1", PING))
                .collect::<Vec<_>>()
        };
        gate.handle_datagrams(t0, pings(), &telemetry, &mut out);
        assert_eq!(drain(&mut out).0.len(), 2);
        config.limits.queries_per_ip = Rate {
            per_second: 1000.0,
            burst: 2000.0,
        };
        gate.reconfigure(&config);
        let t1 = t0 + std::time::Duration::from_secs(1);
        gate.handle_datagrams(t1, pings(), &telemetry, &mut out);
        assert_eq!(drain(&mut out).0.len(), 5, "the raised budget");
        config.read_only = true;
        gate.reconfigure(&config);
        gate.handle_datagrams(t1, pings(), &telemetry, &mut out);
        assert!(drain(&mut out).0.is_empty(), "read-only answers nothing");
        assert_eq!(telemetry.snapshot().dropped.get(DropReason::ReadOnly), 5);
    }
}
