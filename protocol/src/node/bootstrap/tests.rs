use rand::SeedableRng;

use super::*;
use crate::Family;

fn boot(now: Instant, config: &NodeConfig, sources: Sources) -> Bootstrap {
    Bootstrap::new(
        now,
        Family::V4,
        NodeId([0; 20]),
        config,
        sources,
        StdRng::seed_from_u64(1),
        Arc::new(Telemetry::default()),
    )
}

fn drain(b: &mut Bootstrap) -> Vec<Envelope> {
    std::iter::from_fn(|| b.outputs.pop()).collect()
}

fn router() -> SocketAddr {
    "10.0.0.1:6881".parse().unwrap()
}

fn summary(responses: usize, closest: Vec<NodeInfo>) -> LookupSummary {
    LookupSummary {
        responses,
        closest,
        ..LookupSummary::default()
    }
}

fn table(nodes: usize) -> SupervisorInput {
    SupervisorInput::TableSummary(TableSummary {
        family: Family::V4,
        nodes,
        buckets: 1,
        estimated_dht_size: None,
    })
}

/// A bootstrap whose one source is `router()`.
fn boot_with_router(now: Instant) -> Bootstrap {
    boot(
        now,
        &NodeConfig::default(),
        Sources {
            routers: vec![router().to_string()],
            ..Sources::default()
        },
    )
}

/// The first attempt, with no source at all, reaches nobody.
fn first_attempt_reaches_nobody(b: &mut Bootstrap, t0: Instant) {
    b.handle_timeout(t0);
    b.handle(
        t0,
        SupervisorInput::SourcesResolved {
            routers: vec![],
            nodes: vec![],
        },
    );
    b.handle(
        t0,
        SupervisorInput::LookupFinished {
            family: Family::V4,
            purpose: BootstrapLookup::OwnId,
            summary: summary(0, vec![]),
        },
    );
}

/// Runs an attempt up to the own-id lookup.
fn to_own_id_lookup(b: &mut Bootstrap, now: Instant) {
    b.handle_timeout(now);
    assert!(drain(b)
        .iter()
        .any(|e| matches!(e, Envelope::Io(IoRequest::Resolve { .. }))));
    b.handle(
        now,
        SupervisorInput::SourcesResolved {
            routers: vec![router()],
            nodes: vec![],
        },
    );
    let events = drain(b);
    assert!(events.iter().any(|e| matches!(
        e,
        Envelope::Lookups(LookupsInput::Start(s)) if s.addr_seeds == vec![router()]
    )));
}

/// The bug: with a router that knows no nodes, bootstrap was declared
/// complete with 0 nodes. Now it completes only once the table holds a
/// node, and otherwise retries on a doubling wait.
#[test]
fn bootstrap_is_complete_only_with_nodes_in_the_table() {
    let t0 = crate::test_epoch();
    let config = NodeConfig::default();
    let mut b = boot(
        t0,
        &config,
        Sources {
            routers: vec![router().to_string()],
            ..Sources::default()
        },
    );
    to_own_id_lookup(&mut b, t0);
    // The router answered, with no nodes, and is far from us: not admitted.
    let far_router = NodeInfo {
        id: NodeId([0xff; 20]),
        addr: router(),
    };
    // Closest first: eight nodes nearer to us than the router.
    let mut s = summary(1, vec![]);
    s.closest.extend((1..=8).map(|i| NodeInfo {
        id: NodeId([i; 20]),
        addr: SocketAddr::from(([10, 1, 0, i], 1)),
    }));
    s.closest.push(far_router);
    b.handle(
        t0,
        SupervisorInput::LookupFinished {
            family: Family::V4,
            purpose: BootstrapLookup::OwnId,
            summary: s,
        },
    );
    let events = drain(&mut b);
    assert!(events
        .iter()
        .any(|e| matches!(e, Envelope::Routing(RoutingInput::RefreshAll(_)))));
    assert!(!events
        .iter()
        .any(|e| matches!(e, Envelope::Routing(RoutingInput::AdmitRouters(_)))));
    b.handle(t0, SupervisorInput::RefreshStarted(Family::V4, 1));
    b.handle(
        t0,
        SupervisorInput::LookupFinished {
            family: Family::V4,
            purpose: BootstrapLookup::Refresh,
            summary: summary(0, vec![]),
        },
    );
    assert!(drain(&mut b)
        .iter()
        .any(|e| matches!(e, Envelope::Routing(RoutingInput::Summarize))));
    // The table is empty: not complete, retried in 2 s, then 4 s.
    b.handle(t0, table(0));
    assert!(!b.is_complete());
    let retry = config.bootstrap.retry;
    assert_eq!(b.poll_timeout(), Some(t0 + retry));
    let events = drain(&mut b);
    assert!(events.iter().any(|e| matches!(
        e,
        Envelope::Log(LogEvent::BootstrapEmpty { attempt: 1, .. })
    )));
    to_own_id_lookup(&mut b, t0 + retry);
    b.handle(
        t0 + retry,
        SupervisorInput::LookupFinished {
            family: Family::V4,
            purpose: BootstrapLookup::OwnId,
            summary: summary(0, vec![]),
        },
    );
    assert_eq!(b.poll_timeout(), Some(t0 + retry + 2 * retry));
    assert_eq!(b.attempts(), 2);
}

/// A router among our k closest nodes is a neighbour (the second node of a
/// private network started with the first as its router): it joins.
#[test]
fn a_router_among_our_closest_is_admitted_and_completes_the_bootstrap() {
    let t0 = crate::test_epoch();
    let mut b = boot_with_router(t0);
    to_own_id_lookup(&mut b, t0);
    let lone = NodeInfo {
        id: NodeId([1; 20]),
        addr: router(),
    };
    b.handle(
        t0,
        SupervisorInput::LookupFinished {
            family: Family::V4,
            purpose: BootstrapLookup::OwnId,
            summary: summary(1, vec![lone]),
        },
    );
    let events = drain(&mut b);
    assert!(events.iter().any(|e| matches!(
        e,
        Envelope::Routing(RoutingInput::AdmitRouters(v)) if *v == vec![lone]
    )));
    b.handle(t0, SupervisorInput::RefreshStarted(Family::V4, 0));
    b.handle(t0, table(1));
    assert!(b.is_complete());
    let events = drain(&mut b);
    assert!(events.iter().any(|e| matches!(
        e,
        Envelope::Lookups(LookupsInput::Bootstrapped(Family::V4, true))
    )));
    // It looks up its own id again after the first wait.
    let retry = NodeConfig::default().bootstrap.retry;
    assert_eq!(b.poll_timeout(), Some(t0 + retry));
    b.handle_timeout(t0 + retry);
    assert!(drain(&mut b).iter().any(|e| matches!(
        e,
        Envelope::Lookups(LookupsInput::Start(s)) if s.target == NodeId([0; 20])
    )));
    assert_eq!(b.poll_timeout(), None, "one look at a time");
}

/// Completes a bootstrap whose own-id lookup found `closest`, at `t0`.
fn complete_with(t0: Instant, closest: Vec<NodeInfo>) -> Bootstrap {
    let mut b = boot_with_router(t0);
    to_own_id_lookup(&mut b, t0);
    own_id_lookup_ends(&mut b, t0, closest.len(), closest);
    b.handle(t0, SupervisorInput::RefreshStarted(Family::V4, 0));
    b.handle(t0, table(9));
    assert!(b.is_complete());
    drain(&mut b);
    b
}

fn own_id_lookup_ends(b: &mut Bootstrap, at: Instant, responses: usize, closest: Vec<NodeInfo>) {
    b.handle(
        at,
        SupervisorInput::LookupFinished {
            family: Family::V4,
            purpose: BootstrapLookup::OwnId,
            summary: summary(responses, closest),
        },
    );
}

/// A node `i` of ten, farther for a larger `i` from our id (all zeros).
fn neighbour(i: u8) -> NodeInfo {
    let mut id = [0; 20];
    id[1] = i + 1;
    NodeInfo {
        id: NodeId(id),
        addr: SocketAddr::from(([10, 0, 1, i], 6881)),
    }
}

/// The own-id lookups come on a doubling wait while they find nodes nearer
/// than the last look's k-th; one that finds the same neighbourhood (or
/// only farther nodes) makes the next wait the longest at once; one that
/// reached nobody says nothing and keeps the doubling.
#[test]
fn a_settled_neighbourhood_is_looked_at_on_the_longest_wait() {
    let t0 = crate::test_epoch();
    let config = NodeConfig::default().bootstrap;
    let retry = config.retry;
    let first: Vec<NodeInfo> = (1..=8).map(neighbour).collect();
    let mut b = complete_with(t0, first.clone());
    let mut at = t0 + retry;
    assert_eq!(b.poll_timeout(), Some(at));

    // A newcomer nearer than the 8th: the wait doubles.
    b.handle_timeout(at);
    let mut newer = first.clone();
    newer.insert(0, neighbour(0));
    newer.truncate(8);
    own_id_lookup_ends(&mut b, at, 8, newer.clone());
    assert_eq!(
        b.poll_timeout(),
        Some(at + 2 * retry),
        "it found a newcomer"
    );
    at += 2 * retry;

    // Nobody answered: nothing learned, the wait doubles again.
    b.handle_timeout(at);
    own_id_lookup_ends(&mut b, at, 0, vec![]);
    assert_eq!(b.poll_timeout(), Some(at + 4 * retry), "nothing learned");
    at += 4 * retry;

    // Only a node farther than the 8th is new: settled.
    b.handle_timeout(at);
    let mut farther = newer.clone();
    farther[7] = neighbour(9);
    own_id_lookup_ends(&mut b, at, 8, farther);
    assert_eq!(
        b.poll_timeout(),
        Some(at + config.look_again_max),
        "the neighbourhood is settled"
    );
}

/// The list of nodes added at run time is bounded, newest kept, and a
/// node added while waiting starts the next attempt at once.
#[test]
fn added_nodes_are_bounded_and_cut_the_wait_short() {
    let t0 = crate::test_epoch();
    let mut config = NodeConfig::default();
    config.bootstrap.max_added_nodes = 4;
    let mut b = boot(t0, &config, Sources::default());
    first_attempt_reaches_nobody(&mut b, t0);
    assert!(b.poll_timeout() > Some(t0));
    drain(&mut b);
    let later = t0 + Duration::from_millis(10);
    let addrs: Vec<SocketAddr> = (1..=10u16)
        .map(|p| SocketAddr::from(([10, 0, 0, 1], p)))
        .collect();
    let pings = |b: &mut Bootstrap| {
        drain(b)
            .into_iter()
            .filter(|e| matches!(e, Envelope::RateLimiter(RateLimiterInput::Send(_))))
            .count()
    };
    b.handle(later, SupervisorInput::AddNodes(addrs.clone()));
    assert_eq!(pings(&mut b), 10, "each new node is pinged");
    let kept: Vec<SocketAddr> = b.added_nodes().copied().collect();
    assert_eq!(kept, addrs[6..].to_vec(), "the newest 4 are kept");
    b.handle(later, SupervisorInput::AddNodes(addrs[6..].to_vec()));
    assert_eq!(pings(&mut b), 0, "known ones are not pinged again");
    assert_eq!(b.poll_timeout(), Some(later));
    b.handle_timeout(later);
    b.handle(
        later,
        SupervisorInput::SourcesResolved {
            routers: vec![],
            nodes: vec![],
        },
    );
    let start = drain(&mut b).into_iter().find_map(|e| match e {
        Envelope::Lookups(LookupsInput::Start(s)) => Some(s),
        _ => None,
    });
    assert_eq!(start.unwrap().addr_seeds.len(), 4);
}

/// A node that joins our table while we wait (it queried us) starts the
/// next attempt at once; a table that empties after bootstrap starts over.
#[test]
fn the_table_growing_or_emptying_moves_the_bootstrap() {
    let t0 = crate::test_epoch();
    let mut b = boot(t0, &NodeConfig::default(), Sources::default());
    first_attempt_reaches_nobody(&mut b, t0);
    let later = t0 + Duration::from_millis(5);
    b.handle(later, table(1));
    assert_eq!(b.poll_timeout(), Some(later));
    b.handle_timeout(later);
    b.handle(
        later,
        SupervisorInput::SourcesResolved {
            routers: vec![],
            nodes: vec![],
        },
    );
    b.handle(
        later,
        SupervisorInput::LookupFinished {
            family: Family::V4,
            purpose: BootstrapLookup::OwnId,
            summary: summary(1, vec![]),
        },
    );
    b.handle(later, SupervisorInput::RefreshStarted(Family::V4, 0));
    b.handle(later, table(9));
    assert!(b.is_complete());
    let retry = NodeConfig::default().bootstrap.retry;
    assert_eq!(b.poll_timeout(), Some(later + retry), "it looks again");
    drain(&mut b);
    b.handle(later, table(0));
    assert!(!b.is_complete());
    let events = drain(&mut b);
    assert!(events.iter().any(|e| matches!(
        e,
        Envelope::Lookups(LookupsInput::Bootstrapped(Family::V4, false))
    )));
    assert!(events
        .iter()
        .any(|e| matches!(e, Envelope::Log(LogEvent::Rejoining(_)))));
}

/// The BEP 42 id is drawn from the node's seeded randomness: the same seed
/// gives the same id (it ignored `rng_seed` before).
#[test]
fn the_bep42_id_follows_the_seed() {
    let t0 = crate::test_epoch();
    let config = NodeConfig {
        bep42: true,
        ..NodeConfig::default()
    };
    let ip: IpAddr = "203.0.113.9".parse().unwrap();
    let chosen = || {
        let mut b = boot(t0, &config, Sources::default());
        b.handle(t0, SupervisorInput::ExternalAddress(ip));
        drain(&mut b).into_iter().find_map(|e| match e {
            Envelope::Io(IoRequest::SaveNodeId(id)) => Some(id),
            _ => None,
        })
    };
    let a = chosen().expect("an id is chosen");
    assert_eq!(chosen(), Some(a));
    assert!(bep42::is_valid(&a, ip));
}

/// The sources an own-id look after bootstrap asks, if any.
fn look_again_sources(b: &mut Bootstrap, at: Instant) -> Vec<SocketAddr> {
    b.handle_timeout(at);
    let starts: Vec<Vec<SocketAddr>> = drain(b)
        .into_iter()
        .filter_map(|e| match e {
            Envelope::Lookups(LookupsInput::Start(s)) => Some(s.addr_seeds),
            _ => None,
        })
        .collect();
    assert_eq!(starts.len(), 1, "one own-id look at {at:?}");
    starts.into_iter().next().unwrap_or_default()
}

/// Once the table holds k nodes, a look at our own id asks the table
/// alone; while it holds fewer, the routers too (they are what a node has
/// when its neighbourhood has not answered yet).
#[test]
fn looks_after_bootstrap_ask_the_routers_only_while_the_table_is_thin() {
    let t0 = crate::test_epoch();
    let retry = NodeConfig::default().bootstrap.retry;
    let first: Vec<NodeInfo> = (1..=8).map(neighbour).collect();
    let mut b = complete_with(t0, first.clone());
    let mut at = t0 + retry;
    assert!(
        look_again_sources(&mut b, at).is_empty(),
        "a table of 9 nodes is enough"
    );
    own_id_lookup_ends(&mut b, at, 8, first.clone());

    b.handle(at, table(3));
    at = b.poll_timeout().expect("another look is due");
    assert_eq!(look_again_sources(&mut b, at), vec![router()]);
}
