use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::*;
use crate::node::{CallerId, LookupId, QueryFailure, RemoteError, Reply};
use crate::telemetry::LookupLabel;
use crate::token::Token;

fn pool(config: &NodeConfig) -> LookupPool {
    LookupPool::new(
        Family::V4,
        NodeId([0; 20]),
        config,
        Arc::new(Telemetry::default()),
    )
}

fn node(i: u8) -> NodeInfo {
    NodeInfo {
        id: NodeId([i; 20]),
        addr: SocketAddr::from(([10, 0, i, 1], 6881)),
    }
}

/// What the pool asked to send, and everything else it said.
fn drain(p: &mut LookupPool) -> (Vec<OutboundQuery>, Vec<Envelope>) {
    let (mut sent, mut other) = (Vec::new(), Vec::new());
    while let Some(e) = p.outputs.pop() {
        match e {
            Envelope::RateLimiter(RateLimiterInput::Send(q)) => sent.push(q),
            e => other.push(e),
        }
    }
    (sent, other)
}

fn caller_lookup(caller: u64, target: NodeId, kind: LookupKind) -> StartLookup {
    StartLookup::new(target, kind, Requester::Caller(CallerId(caller)))
}

fn answer(p: &mut LookupPool, now: Instant, q: &OutboundQuery, reply: Reply) {
    let Asker::Lookup(lookup) = q.asker else {
        panic!("{q:?}")
    };
    p.handle(
        now,
        LookupsInput::QueryDone {
            lookup,
            done: Box::new(QueryDone {
                to: q.to,
                node: q.node,
                rtt: None,
                result: Ok(reply),
            }),
        },
    );
}

fn finished(events: &[Envelope]) -> Option<&LookupSummary> {
    events.iter().find_map(|e| match e {
        Envelope::Api(ApiEvent::Lookup {
            event: LookupEvent::Finished(s),
            ..
        }) => Some(s),
        _ => None,
    })
}

fn snapshot_of(nodes: &[NodeInfo]) -> Arc<NodeSnapshot> {
    let mut table = crate::routing::RoutingTable::new(
        NodeId([0; 20]),
        crate::test_epoch(),
        crate::routing::RoutingConfig::default(),
    );
    for n in nodes {
        table.node_responded(crate::test_epoch(), *n);
    }
    Arc::new(table.snapshot(crate::test_epoch(), crate::routing::NodeFilter::NotBad))
}

/// The bip_dht notes: requests made before bootstrap completes wait for it;
/// the bootstrap's own lookups do not.
#[test]
fn the_applications_lookups_wait_for_bootstrap() {
    let t0 = crate::test_epoch();
    let mut p = pool(&NodeConfig::default());
    p.handle(
        t0,
        LookupsInput::Snapshot(Family::V4, snapshot_of(&[node(1)])),
    );
    p.handle(
        t0,
        LookupsInput::Start(caller_lookup(1, NodeId([5; 20]), LookupKind::FindNode)),
    );
    assert_eq!((p.running(), p.waiting()), (0, 1));
    let own = StartLookup::new(
        NodeId([0; 20]),
        LookupKind::FindNode,
        Requester::Bootstrap(crate::node::BootstrapLookup::OwnId),
    );
    p.handle(t0, LookupsInput::Start(own));
    assert_eq!((p.running(), p.waiting()), (1, 1));
    p.handle(t0, LookupsInput::Bootstrapped(Family::V4, true));
    assert_eq!((p.running(), p.waiting()), (2, 0));
}

/// A lookup refused for a full pool ends at once, and says so: its end is
/// `Refused`, not `Running`.
#[test]
fn a_lookup_refused_for_a_full_pool_ends_refused() {
    let t0 = crate::test_epoch();
    let config = NodeConfig {
        lookup_limits: LookupLimits {
            max_running: 1,
            max_waiting: 1,
        },
        ..NodeConfig::default()
    };
    let mut p = pool(&config);
    p.handle(
        t0,
        LookupsInput::Snapshot(Family::V4, snapshot_of(&[node(1)])),
    );
    p.handle(t0, LookupsInput::Bootstrapped(Family::V4, true));
    for caller in 1..=3 {
        p.handle(
            t0,
            LookupsInput::Start(caller_lookup(caller, NodeId([5; 20]), LookupKind::FindNode)),
        );
    }
    let (_, events) = drain(&mut p);
    let summary = finished(&events).expect("the third ends at once");
    assert_eq!(summary.end, LookupEnd::Refused);
    assert!(matches!(
        events.iter().find(|e| matches!(
            e,
            Envelope::Api(ApiEvent::Lookup {
                event: LookupEvent::Finished(_),
                ..
            })
        )),
        Some(Envelope::Api(ApiEvent::Lookup {
            caller: CallerId(3),
            ..
        }))
    ));
    assert_eq!(
        p.telemetry
            .snapshot()
            .lookups_finished
            .get((LookupLabel::FindNode, LookupOutcome::Refused)),
        1
    );
}

/// A node that holds peers for an info hash returns them from its own
/// lookup, even with nobody else to ask.
#[test]
fn a_lookup_returns_the_peers_our_own_store_holds() {
    let t0 = crate::test_epoch();
    let mut p = pool(&NodeConfig::default());
    p.handle(t0, LookupsInput::Bootstrapped(Family::V4, true));
    let target = NodeId([7; 20]);
    p.handle(
        t0,
        LookupsInput::Start(caller_lookup(1, target, LookupKind::GetPeers)),
    );
    let (sent, events) = drain(&mut p);
    assert!(sent.is_empty());
    let Some(Envelope::Store(StoreInput::LocalPeers { lookup, info_hash })) = events.first() else {
        panic!("{events:?}")
    };
    assert_eq!(*info_hash, InfoHash(target.0));
    assert!(finished(&events).is_none(), "it waits for the store");
    let ours: SocketAddr = "10.9.9.9:6881".parse().unwrap();
    p.handle(
        t0,
        LookupsInput::LocalPeers {
            lookup: *lookup,
            peers: vec![ours],
        },
    );
    let (_, events) = drain(&mut p);
    assert!(events.iter().any(|e| matches!(
        e,
        Envelope::Api(ApiEvent::Lookup { event: LookupEvent::Peer(p), .. }) if *p == ours
    )));
    assert_eq!(finished(&events).map(|s| s.peers), Some(1));
}

/// BEP 5: announce_peer goes to the k closest nodes that returned a token,
/// and the report counts who accepted.
#[test]
fn an_announce_goes_to_the_closest_nodes_that_gave_a_token() {
    let t0 = crate::test_epoch();
    // No local store: only the network.
    let config = NodeConfig {
        read_only: true,
        ..NodeConfig::default()
    };
    let mut p = pool(&config);
    let nodes: Vec<NodeInfo> = (1..=4).map(node).collect();
    p.handle(t0, LookupsInput::Snapshot(Family::V4, snapshot_of(&nodes)));
    p.handle(t0, LookupsInput::Bootstrapped(Family::V4, true));
    let mut start = caller_lookup(1, NodeId([3; 20]), LookupKind::GetPeers);
    start.announce = Some(AnnounceSpec {
        port: 5000,
        implied_port: false,
        seed: false,
    });
    p.handle(t0, LookupsInput::Start(start));
    let mut announced = Vec::new();
    let mut summary = None;
    for _ in 0..10 {
        let (sent, events) = drain(&mut p);
        summary = summary.or(finished(&events).cloned());
        for q in sent {
            match q.query {
                OutQuery::GetPeers(_) => {
                    // Node 4 gives no token; the others do.
                    let token = (q.to != node(4).addr).then(|| Token::new(b"tk").unwrap());
                    let reply = Reply {
                        id: q.node.unwrap(),
                        token,
                        ..Reply::default()
                    };
                    answer(&mut p, t0, &q, reply);
                }
                OutQuery::AnnouncePeer { port, token, .. } => {
                    assert_eq!((port, token.as_bytes()), (5000, &b"tk"[..]));
                    announced.push(q.to);
                    if q.to == node(1).addr {
                        let Asker::Lookup(lookup) = q.asker else {
                            panic!()
                        };
                        let done = QueryDone {
                            to: q.to,
                            node: q.node,
                            rtt: None,
                            result: Err(QueryFailure::Remote(RemoteError::new(203, b"bad"))),
                        };
                        p.handle(
                            t0,
                            LookupsInput::QueryDone {
                                lookup,
                                done: Box::new(done),
                            },
                        );
                    } else {
                        answer(&mut p, t0, &q, Reply::default());
                    }
                }
                other => panic!("{other:?}"),
            }
        }
    }
    announced.sort();
    assert_eq!(announced, vec![node(1).addr, node(2).addr, node(3).addr]);
    let report = summary.unwrap().announce.unwrap();
    assert_eq!((report.tried, report.accepted), (3, 2));
}

/// rTorrent's warnings: a caller's search that reaches nobody says so.
#[test]
fn a_search_with_no_nodes_warns() {
    let t0 = crate::test_epoch();
    let config = NodeConfig {
        read_only: true,
        ..NodeConfig::default()
    };
    let mut p = pool(&config);
    p.handle(t0, LookupsInput::Bootstrapped(Family::V4, true));
    p.handle(
        t0,
        LookupsInput::Start(caller_lookup(1, NodeId([3; 20]), LookupKind::GetPeers)),
    );
    let (_, events) = drain(&mut p);
    assert!(events
        .iter()
        .any(|e| matches!(e, Envelope::Log(LogEvent::NoNodesForSearch(_)))));
    assert_eq!(
        p.telemetry
            .snapshot()
            .warnings
            .get(Warning::SearchUnsuccessful),
        1
    );
}

/// Repeated announces start every `every` (the first one `every` from
/// now), and stop when asked.
#[test]
fn announces_repeat_until_stopped() {
    let t0 = crate::test_epoch();
    let mut p = pool(&NodeConfig::default());
    p.handle(t0, LookupsInput::Bootstrapped(Family::V4, true));
    let every = Duration::from_secs(60);
    let ih = InfoHash([8; 20]);
    let spec = AnnounceSpec {
        port: 1,
        implied_port: false,
        seed: false,
    };
    p.handle(
        t0,
        LookupsInput::AnnounceEvery {
            info_hash: ih,
            spec,
            every: Some(every),
        },
    );
    assert_eq!(p.poll_timeout(), Some(t0 + every));
    p.handle_timeout(t0 + every);
    let started = p
        .telemetry
        .snapshot()
        .lookups_started
        .get(LookupLabel::Announce);
    assert_eq!(started, 1);
    p.handle(
        t0 + every,
        LookupsInput::AnnounceEvery {
            info_hash: ih,
            spec,
            every: None,
        },
    );
    while p.running() > 0 {
        // The one running lookup waits for our store; answer it.
        let (_, events) = drain(&mut p);
        for e in events {
            if let Envelope::Store(StoreInput::LocalPeers { lookup, .. }) = e {
                p.handle(
                    t0 + every,
                    LookupsInput::LocalPeers {
                        lookup,
                        peers: vec![],
                    },
                );
            }
        }
    }
    assert_eq!(p.poll_timeout(), None);
}

/// A caller who stops listening ends its lookups.
#[test]
fn a_cancelled_caller_stops_its_lookups() {
    let t0 = crate::test_epoch();
    let mut p = pool(&NodeConfig::default());
    p.handle(
        t0,
        LookupsInput::Snapshot(Family::V4, snapshot_of(&[node(1)])),
    );
    p.handle(t0, LookupsInput::Bootstrapped(Family::V4, true));
    p.handle(
        t0,
        LookupsInput::Start(caller_lookup(4, NodeId([3; 20]), LookupKind::FindNode)),
    );
    assert_eq!(p.running(), 1);
    p.handle(t0, LookupsInput::Cancel(CallerId(4)));
    assert_eq!(p.running(), 0);
    let _ = LookupId(0);
}

/// Runs a get_peers lookup of `NodeId([3; 20])` among nodes 1 to 4, each
/// answering with a peer and a token, one answer at a time; returns how
/// many get_peers were answered before it finished, and how many
/// announces went out.
fn lookup_among_holders(config: &NodeConfig, announce: bool) -> (usize, usize) {
    let t0 = crate::test_epoch();
    let mut p = pool(config);
    let nodes: Vec<NodeInfo> = (1..=4).map(node).collect();
    p.handle(t0, LookupsInput::Snapshot(Family::V4, snapshot_of(&nodes)));
    p.handle(t0, LookupsInput::Bootstrapped(Family::V4, true));
    let mut start = caller_lookup(1, NodeId([3; 20]), LookupKind::GetPeers);
    start.announce = announce.then_some(AnnounceSpec {
        port: 5000,
        implied_port: false,
        seed: false,
    });
    p.handle(t0, LookupsInput::Start(start));
    let peer: SocketAddr = "10.9.9.9:6881".parse().unwrap();
    let (mut asked, mut announced) = (0, 0);
    let mut pending = std::collections::VecDeque::new();
    loop {
        let (sent, events) = drain(&mut p);
        if finished(&events).is_some() {
            return (asked, announced);
        }
        pending.extend(sent);
        let q = pending.pop_front().expect("a query to answer");
        match q.query {
            OutQuery::GetPeers(_) => asked += 1,
            OutQuery::AnnouncePeer { .. } => announced += 1,
            ref other => panic!("{other:?}"),
        }
        let reply = Reply {
            id: q.node.unwrap(),
            peers: vec![peer],
            token: Some(Token::new(b"tk").unwrap()),
            ..Reply::default()
        };
        answer(&mut p, t0, &q, reply);
    }
}

/// `lookup.enough_holders` ends a plain get_peers lookup once that many
/// nodes answered with peers; an announce still asks its closest nodes and
/// announces to them.
#[test]
fn enough_holders_end_plain_lookups_but_not_announces() {
    let mut config = NodeConfig {
        read_only: true,
        ..NodeConfig::default()
    };
    assert_eq!(lookup_among_holders(&config, false), (4, 0));
    config.lookup.enough_holders = 2;
    assert_eq!(lookup_among_holders(&config, false), (2, 0));
    assert_eq!(lookup_among_holders(&config, true), (4, 4));
}
