use std::net::SocketAddr;

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::*;
use crate::ip_prefix::IpPrefix;

const MIN: Duration = Duration::from_secs(60);

fn own() -> NodeId {
    NodeId([0; 20])
}

/// A node whose id shares exactly `prefix` bits with [`own`], on its own
/// IP and /24.
fn node_at(prefix: u32, n: u8, rng: &mut StdRng) -> NodeInfo {
    NodeInfo {
        id: own().random_at_prefix(prefix, false, rng),
        addr: SocketAddr::from(([10, prefix as u8, n, 1], 6881)),
    }
}

fn table(now: Instant) -> RoutingTable {
    RoutingTable::new(own(), now, RoutingConfig::default())
}

#[test]
fn never_our_own_id_nor_read_only_nodes() {
    let t0 = crate::test_epoch();
    let mut t = table(t0);
    let me = NodeInfo {
        id: own(),
        addr: "10.0.0.1:1".parse().unwrap(),
    };
    assert_eq!(
        t.node_responded(t0, me),
        InsertOutcome::Rejected(RejectReason::OwnId)
    );
    let mut rng = StdRng::seed_from_u64(1);
    let ro = node_at(0, 1, &mut rng);
    // BEP 43: read-only nodes are not added to routing tables.
    assert_eq!(
        t.node_queried(t0, &ro, true),
        HeardOutcome::Ignored(RejectReason::ReadOnly)
    );
    assert_eq!(t.node_queried(t0, &ro, false), HeardOutcome::WorthPinging);
    assert!(t.is_empty());
}

/// BEP 5: "When the bucket is full of good nodes, the new node is simply
/// discarded" unless the bucket holds our own id, in which case it splits.
#[test]
fn the_bucket_holding_our_id_splits_and_others_fill_up() {
    let t0 = crate::test_epoch();
    let mut rng = StdRng::seed_from_u64(2);
    let mut t = table(t0);
    // 8 far nodes (prefix 0) fill the only bucket.
    for n in 0..8 {
        assert_eq!(
            t.node_responded(t0, node_at(0, n, &mut rng)),
            InsertOutcome::Inserted
        );
    }
    assert_eq!(t.bucket_count(), 1);
    // Near nodes split the bucket and go to the new last buckets.
    for n in 0..8 {
        assert_eq!(
            t.node_responded(t0, node_at(3 + u32::from(n), n, &mut rng)),
            InsertOutcome::Inserted
        );
    }
    assert_eq!(t.bucket_count(), 2);
    // A ninth far node, not among our k closest, has no room in bucket 0.
    let ninth = node_at(0, 9, &mut rng);
    assert_eq!(t.node_responded(t0, ninth), InsertOutcome::Cached);
    assert_eq!(t.len(), 16);
    // Bucket 0 stays at k.
    assert_eq!(t.stats(t0).buckets[0].good, 8);
    assert_eq!(t.stats(t0).buckets[0].replacements, 1);
}

#[test]
fn a_full_bucket_asks_to_ping_its_oldest_questionable_node() {
    let t0 = crate::test_epoch();
    let mut rng = StdRng::seed_from_u64(3);
    let mut t = table(t0);
    let mut first = None;
    for n in 0..8 {
        let info = node_at(0, n, &mut rng);
        first.get_or_insert(info);
        t.node_responded(t0 + Duration::from_secs(u64::from(n)), info);
    }
    // Near nodes split the bucket, and are our k closest.
    for n in 0..8 {
        t.node_responded(t0, node_at(5 + u32::from(n), n, &mut rng));
    }
    // 16 minutes later every far node is questionable (BEP 5: 15 minutes).
    let later = t0 + 16 * MIN;
    assert_eq!(
        t.status(later, &first.unwrap().id),
        Some(NodeStatus::Questionable)
    );
    let newcomer = node_at(0, 20, &mut rng);
    assert_eq!(
        t.node_responded(later, newcomer),
        InsertOutcome::PingOldest(first.unwrap())
    );
    // The ping is outstanding: the next newcomer gets the next-oldest.
    let second = t.node_responded(later, node_at(0, 21, &mut rng));
    assert!(matches!(second, InsertOutcome::PingOldest(n) if n != first.unwrap()));
    // The oldest fails twice and is replaced by the most recent cached node.
    assert_eq!(
        t.node_failed(later, &first.unwrap().id, first.unwrap().addr),
        FailOutcome::Failing(1)
    );
    let out = t.node_failed(later, &first.unwrap().id, first.unwrap().addr);
    assert!(matches!(out, FailOutcome::Replaced { .. }), "{out:?}");
    assert!(!t.contains(&first.unwrap().id));
}

#[test]
fn a_bad_node_without_replacement_is_kept_until_a_newcomer_takes_its_place() {
    let t0 = crate::test_epoch();
    let mut rng = StdRng::seed_from_u64(4);
    let mut t = table(t0);
    let nodes: Vec<_> = (0..8).map(|n| node_at(0, n, &mut rng)).collect();
    for n in &nodes {
        t.node_responded(t0, *n);
    }
    t.node_responded(t0, node_at(6, 1, &mut rng));
    t.node_failed(t0, &nodes[0].id, nodes[0].addr);
    assert_eq!(
        t.node_failed(t0, &nodes[0].id, nodes[0].addr),
        FailOutcome::MarkedBad
    );
    assert_eq!(t.status(t0, &nodes[0].id), Some(NodeStatus::Bad));
    let newcomer = node_at(0, 30, &mut rng);
    assert_eq!(t.heard_about(t0, &newcomer), HeardOutcome::WorthPinging);
    assert_eq!(t.node_responded(t0, newcomer), InsertOutcome::Inserted);
    assert!(!t.contains(&nodes[0].id));
    // A failure of an unknown node changes nothing.
    assert_eq!(
        t.node_failed(t0, &nodes[0].id, nodes[0].addr),
        FailOutcome::NotFound
    );
}

/// The attack: one /24 answering with ids all around ours took
/// 215 of 254 entries, all the buckets near our id. Now it holds one entry
/// per bucket, and honest nodes from other networks still get in.
#[test]
fn one_network_holds_one_entry_per_bucket() {
    let t0 = crate::test_epoch();
    let mut rng = StdRng::seed_from_u64(6);
    let mut t = table(t0);
    for prefix in 0..20u32 {
        for n in 0..12u8 {
            let mut sybil = node_at(prefix, n, &mut rng);
            sybil.addr = SocketAddr::from(([192, 0, 2, n * 20 + prefix as u8], 6881));
            let outcome = t.node_responded(t0, sybil);
            if n > 0 {
                assert!(
                    matches!(outcome, InsertOutcome::Rejected(RejectReason::SamePrefix)),
                    "{outcome:?}"
                );
            }
        }
    }
    let from_the_24 = t
        .nodes()
        .iter()
        .filter(|n| IpPrefix::of(n.addr.ip()) == IpPrefix::of([192, 0, 2, 1].into()))
        .count();
    assert!(from_the_24 <= t.bucket_count(), "{from_the_24} entries");
    // An honest node of another network still gets into the nearest bucket.
    let honest = node_at(19, 1, &mut rng);
    assert_eq!(t.heard_about(t0, &honest), HeardOutcome::WorthPinging);
    assert_eq!(t.node_responded(t0, honest), InsertOutcome::Inserted);
    // With the limit raised, a second node of the /24 fits in a bucket.
    let mut loose = RoutingTable::new(
        own(),
        t0,
        RoutingConfig {
            max_per_prefix: 2,
            ..Default::default()
        },
    );
    for n in 1..=3u8 {
        let mut node = node_at(0, n, &mut rng);
        node.addr = SocketAddr::from(([192, 0, 2, n], 6881));
        let expected = if n <= 2 {
            InsertOutcome::Inserted
        } else {
            InsertOutcome::Rejected(RejectReason::SamePrefix)
        };
        assert_eq!(loose.node_responded(t0, node), expected);
    }
}

#[test]
fn one_node_per_ip_per_bucket_unless_configured_off() {
    let t0 = crate::test_epoch();
    let mut rng = StdRng::seed_from_u64(5);
    let a = node_at(0, 1, &mut rng);
    let mut b = node_at(0, 2, &mut rng);
    b.addr = SocketAddr::new(a.addr.ip(), 7000);
    let mut t = table(t0);
    t.node_responded(t0, a);
    assert_eq!(
        t.heard_about(t0, &b),
        HeardOutcome::Ignored(RejectReason::SameIp)
    );
    assert_eq!(
        t.node_responded(t0, b),
        InsertOutcome::Rejected(RejectReason::SameIp)
    );
    let mut open = RoutingTable::new(
        own(),
        t0,
        RoutingConfig {
            restrict_ips: false,
            ..Default::default()
        },
    );
    open.node_responded(t0, a);
    assert_eq!(open.node_responded(t0, b), InsertOutcome::Inserted);
}

#[test]
fn ids_and_addresses_are_not_hijacked() {
    let t0 = crate::test_epoch();
    let mut rng = StdRng::seed_from_u64(6);
    let mut t = table(t0);
    let a = node_at(0, 1, &mut rng);
    t.node_responded(t0, a);
    let moved = NodeInfo {
        id: a.id,
        addr: "10.9.9.9:1".parse().unwrap(),
    };
    assert_eq!(
        t.node_responded(t0, moved),
        InsertOutcome::Rejected(RejectReason::IdAtOtherAddress)
    );
    // Same address, new id: the node restarted; the old id goes.
    let restarted = NodeInfo {
        id: node_at(0, 2, &mut rng).id,
        addr: a.addr,
    };
    assert_eq!(t.node_responded(t0, restarted), InsertOutcome::Inserted);
    assert!(!t.contains(&a.id));
    assert_eq!(t.len(), 1);
}

/// BEP 5: a node that answered before and queries us within 15 minutes is good.
#[test]
fn queries_from_known_nodes_keep_them_good() {
    let t0 = crate::test_epoch();
    let mut rng = StdRng::seed_from_u64(7);
    let mut t = table(t0);
    let a = node_at(0, 1, &mut rng);
    t.node_responded(t0, a);
    let later = t0 + 20 * MIN;
    assert_eq!(t.status(later, &a.id), Some(NodeStatus::Questionable));
    assert_eq!(t.node_queried(later, &a, false), HeardOutcome::Known);
    assert_eq!(t.status(later, &a.id), Some(NodeStatus::Good));
    assert_eq!(t.closest(later, &a.id, 8, NodeFilter::Good), vec![a]);
}

#[test]
fn maintenance_pings_questionable_nodes_and_refreshes_quiet_buckets() {
    let t0 = crate::test_epoch();
    let mut rng = StdRng::seed_from_u64(8);
    let mut t = table(t0);
    let a = node_at(0, 1, &mut rng);
    t.node_responded(t0, a);
    assert_eq!(t.poll_maintenance(t0, &mut rng), None);
    assert_eq!(t.poll_timeout(), Some(t0 + 15 * MIN));
    let later = t0 + 15 * MIN;
    assert_eq!(
        t.poll_maintenance(later, &mut rng),
        Some(Maintenance::Ping(a))
    );
    match t.poll_maintenance(later, &mut rng) {
        Some(Maintenance::Refresh { bucket, target }) => {
            assert_eq!(bucket, BucketIndex(0));
            assert_eq!(t.bucket_index(&target), bucket);
        }
        other => panic!("expected a refresh, got {other:?}"),
    }
    // Each piece of work is handed out once.
    assert_eq!(t.poll_maintenance(later, &mut rng), None);
    // The ping is answered: good again, nothing to do for 15 minutes.
    assert_eq!(t.node_responded(later, a), InsertOutcome::Updated);
    assert_eq!(t.poll_maintenance(later + MIN, &mut rng), None);
}

/// A pinged node that queries us before answering is good again: its
/// ping's grace running out is no work, and the table must not say it is
/// (the simulator found a driver waking at that instant forever).
#[test]
fn a_pinged_node_that_queries_us_sets_no_deadline_in_the_past() {
    let t0 = crate::test_epoch();
    let mut rng = StdRng::seed_from_u64(9);
    let mut t = table(t0);
    let a = node_at(0, 1, &mut rng);
    t.node_responded(t0, a);
    let stale = t0 + 15 * MIN;
    assert_eq!(
        t.poll_maintenance(stale, &mut rng),
        Some(Maintenance::Ping(a))
    );
    assert!(matches!(
        t.poll_maintenance(stale, &mut rng),
        Some(Maintenance::Refresh { .. })
    ));
    assert_eq!(t.node_queried(stale, &a, false), HeardOutcome::Known);
    let grace_over = stale + MIN;
    assert_eq!(t.poll_maintenance(grace_over, &mut rng), None);
    let next = t.poll_timeout().unwrap();
    assert!(next > grace_over, "due at {next:?}, with nothing to do");
    assert_eq!(next, stale + 15 * MIN, "when it turns questionable again");
}

#[test]
fn refresh_targets_fall_in_their_buckets() {
    let t0 = crate::test_epoch();
    let mut rng = StdRng::seed_from_u64(9);
    let mut t = RoutingTable::new(
        NodeId::random(&mut rng),
        t0,
        RoutingConfig {
            restrict_ips: false,
            ..Default::default()
        },
    );
    for n in 0..200u16 {
        let info = NodeInfo {
            id: NodeId::random(&mut rng),
            addr: SocketAddr::from(([127, 0, 0, 1], 1000 + n)),
        };
        t.node_responded(t0, info);
    }
    assert!(t.bucket_count() > 3);
    for (i, target) in t.refresh_targets(&mut rng).iter().enumerate() {
        assert_eq!(t.bucket_index(target), BucketIndex(i as u8));
    }
}

/// Tables holding the true closest nodes of many random networks: the
/// estimate's median is within 10% of the truth (the average of i/dᵢ it
/// replaced was 1.4 times it), and 80% of estimates within a factor of 2.
#[test]
fn size_estimate_tracks_density() {
    let t0 = crate::test_epoch();
    let mut rng = StdRng::seed_from_u64(10);
    let cfg = RoutingConfig {
        restrict_ips: false,
        ..Default::default()
    };
    const N: usize = 20_000;
    let mut ratios = Vec::new();
    for _ in 0..60 {
        let own_id = NodeId::random(&mut rng);
        let mut t = RoutingTable::new(own_id, t0, cfg);
        let mut all: Vec<NodeId> = (0..N).map(|_| NodeId::random(&mut rng)).collect();
        all.select_nth_unstable_by_key(64, |id| own_id.distance(id));
        for (i, id) in all.iter().take(64).enumerate() {
            let addr = SocketAddr::from(([127, 0, 0, 1], 2000 + i as u16));
            t.node_responded(t0, NodeInfo { id: *id, addr });
        }
        ratios.push(t.estimated_dht_size(t0).unwrap() as f64 / N as f64);
    }
    ratios.sort_by(f64::total_cmp);
    let (p10, median, p90) = (ratios[6], ratios[30], ratios[54]);
    assert!((0.9..1.1).contains(&median), "median {median:.2}");
    assert!(p10 > 0.5 && p90 < 2.0, "p10 {p10:.2}, p90 {p90:.2}");
}

/// A node that answered only the ping sent as it queried us may sit
/// behind a NAT that let the ping in: it counts in no size estimate until
/// it answers a query sent after the NAT would have closed.
#[test]
fn the_size_estimate_leaves_out_nodes_reached_only_through_their_own_query() {
    let t0 = crate::test_epoch();
    let cfg = RoutingConfig {
        restrict_ips: false,
        ..Default::default()
    };
    let own_id = NodeId([0; 20]);
    let mut t = RoutingTable::new(own_id, t0, cfg);
    let mut nodes = Vec::new();
    for i in 0..12u8 {
        let mut id = [0xff; 20];
        id[0] = 1 + i;
        let info = NodeInfo {
            id: NodeId(id),
            addr: SocketAddr::from(([10, 0, i, 1], 6881)),
        };
        t.node_responded(t0, info);
        nodes.push(info);
    }
    let all = t.estimated_dht_size(t0).unwrap();
    // The closest one turns out to have answered through its own query.
    t.answered_after_its_query(&nodes[0], t0);
    let without_closest = t.estimated_dht_size(t0).unwrap();
    assert!(without_closest < all, "{without_closest} < {all}");
    assert_eq!(
        t.closest(t0, &own_id, 1, NodeFilter::NotBad),
        vec![nodes[0]]
    );
    // An answer a minute later could still come through that NAT.
    let soon = t0 + Duration::from_secs(60);
    t.node_responded(soon, nodes[0]);
    assert_eq!(t.estimated_dht_size(soon).unwrap(), without_closest);
    let later = t0 + NAT_MAPPING_MAX;
    t.node_responded(later, nodes[0]);
    assert_eq!(t.estimated_dht_size(later).unwrap(), all);
}

/// Walking the buckets in distance order finds exactly what a full scan
/// finds, for targets in every bucket, near and far, with bad nodes left
/// out, and so does a snapshot of the table.
#[test]
fn closest_by_bucket_agrees_with_a_full_scan() {
    let t0 = crate::test_epoch();
    let mut rng = StdRng::seed_from_u64(7);
    let mut t = table(t0);
    let mut inserted = Vec::new();
    for prefix in 0..24u32 {
        // Deep prefixes are sparse, as on the real network.
        let count = if prefix < 12 { 12 } else { 3 };
        for n in 0..count {
            let info = NodeInfo {
                id: own().random_at_prefix(prefix, false, &mut rng),
                addr: SocketAddr::from(([10, prefix as u8, n, 1], 6881)),
            };
            if t.node_responded(t0, info) == InsertOutcome::Inserted {
                inserted.push(info);
            }
        }
    }
    assert!(t.bucket_count() > 12, "{} buckets", t.bucket_count());
    assert!(t.len() > 100, "{} nodes", t.len());
    // Two failures make a node bad: it must not be returned. (A deep
    // bucket has no replacement that would take its place.)
    let bad = inserted[inserted.len() - 2];
    t.node_failed(t0, &bad.id, bad.addr);
    t.node_failed(t0, &bad.id, bad.addr);
    let not_bad: Vec<NodeInfo> = t.nodes().into_iter().filter(|n| *n != bad).collect();
    assert_eq!(not_bad.len(), t.len() - 1);
    let snapshot = t.snapshot(t0, NodeFilter::NotBad);
    assert_eq!(snapshot.len(), not_bad.len());

    let mut targets = vec![own(), bad.id];
    targets.extend(inserted.iter().step_by(7).map(|n| n.id));
    for prefix in 0..30 {
        targets.push(own().random_at_prefix(prefix, false, &mut rng));
        targets.push(own().random_at_prefix(prefix, true, &mut rng));
    }
    for target in &targets {
        for n in [1, 3, 8, 20, usize::MAX] {
            let scan = closest_among(not_bad.iter().copied(), target, n);
            assert_eq!(t.closest(t0, target, n, NodeFilter::NotBad), scan);
            assert_eq!(snapshot.closest(target, n), scan);
        }
        // Counted from the deepest bucket, as gathered: closer than the
        // k-th of our own closest, or fewer than k held.
        let ours = closest_among(not_bad.iter().copied(), &own(), crate::K);
        let among = ours.len() < crate::K
            || own().distance(target) < own().distance(&ours[ours.len() - 1].id);
        assert_eq!(t.among_our_closest(t0, target), among, "{target:?}");
    }
    assert!(NodeSnapshot::empty(own()).closest(&own(), 8).is_empty());
}

/// Kademlia §4.2: our k closest are kept even when they fall in a full
/// bucket that cannot split (a small network).
#[test]
fn our_k_closest_are_kept_in_a_bucket_that_cannot_split() {
    let t0 = crate::test_epoch();
    let own = NodeId([0; 20]);
    let mut table = RoutingTable::new(own, t0, RoutingConfig::default());
    let node = |first: u8, last: u8| NodeInfo {
        id: {
            let mut id = [0u8; 20];
            id[0] = first;
            id[19] = last;
            NodeId(id)
        },
        addr: SocketAddr::from(([10, first, last, 1], 6881)),
    };
    // Eight far nodes fill bucket 0 (first bit set), and splitting leaves
    // it behind; then three nodes in bucket 1 and nothing closer.
    for i in 0..8 {
        assert_eq!(
            table.node_responded(t0, node(0xfe, i)),
            InsertOutcome::Inserted
        );
    }
    for i in 0..3 {
        assert_eq!(
            table.node_responded(t0, node(0x40, i)),
            InsertOutcome::Inserted
        );
    }
    assert!(table.bucket_count() >= 2);
    // A node farther than all: bucket 0 is full and it is not among our
    // closest: cached.
    assert_eq!(
        table.node_responded(t0, node(0xff, 1)),
        InsertOutcome::Cached
    );
    // A node of bucket 0 closer than the farthest of our 8 closest (which
    // are the 3 of bucket 1 and 5 of bucket 0) is kept beyond k.
    assert_eq!(
        table.node_responded(t0, node(0x80, 1)),
        InsertOutcome::Inserted
    );
    let closest = table.closest(t0, &own, 8, NodeFilter::NotBad);
    assert!(closest.contains(&node(0x80, 1)));
    assert_eq!(table.bucket_nodes(BucketIndex(0)).len(), 9);
    assert_eq!(
        table.heard_about(t0, &node(0x80, 2)),
        HeardOutcome::WorthPinging
    );
}

/// BEP 42: of two nodes wanting one place, the one whose id is valid for
/// its address gets it: in a full bucket, and within one network.
#[test]
fn verified_ids_are_preferred_where_there_is_a_choice() {
    use crate::id::bep42;
    let t0 = crate::test_epoch();
    let mut rng = StdRng::seed_from_u64(12);
    let in_far_half = |id: &NodeId| id.0[0] & 0x80 != 0;
    // Public addresses, where BEP 42 applies, and ids in the half of the
    // space away from ours (own id 0), whose bucket cannot split.
    let unverified_far = |rng: &mut StdRng, host: [u8; 4]| {
        let mut id = NodeId::random(rng);
        id.0[0] |= 0x80;
        let info = NodeInfo {
            id,
            addr: SocketAddr::from((host, 6881)),
        };
        assert!(!bep42::is_valid(&info.id, info.addr.ip()));
        info
    };
    // A BEP 42 id's first bits come from its address: the last byte of
    // the address is varied (the network stays) until one lands far.
    let verified_far = |rng: &mut StdRng, host: [u8; 4]| {
        (0..=254u8)
            .flat_map(|last| std::iter::repeat_n(last, 16))
            .find_map(|last| {
                let ip = std::net::IpAddr::from([host[0], host[1], host[2], last]);
                let id = bep42::generate(ip, rng);
                in_far_half(&id).then_some(NodeInfo {
                    id,
                    addr: SocketAddr::new(ip, 6881),
                })
            })
            .unwrap()
    };
    let mut t = table(t0);
    for i in 0..8u8 {
        let far = unverified_far(&mut rng, [203, 0, i, 7]);
        assert_eq!(t.node_responded(t0, far), InsertOutcome::Inserted);
    }
    // Our 8 closest, on the near side: the far bucket is full, split off.
    for i in 0..8u8 {
        t.node_responded(t0, node_at(1 + u32::from(i), 1, &mut rng));
    }
    let far_bucket = BucketIndex(0);
    assert_eq!(t.bucket_nodes(far_bucket).len(), 8);
    let waiting = unverified_far(&mut rng, [203, 0, 100, 7]);
    assert_ne!(t.node_responded(t0, waiting), InsertOutcome::Inserted);
    let newcomer = verified_far(&mut rng, [198, 51, 100, 20]);
    assert_eq!(t.bucket_index(&newcomer.id), far_bucket);
    assert_eq!(t.node_responded(t0, newcomer), InsertOutcome::Inserted);
    assert!(t.contains(&newcomer.id));
    assert_eq!(t.bucket_nodes(far_bucket).len(), 8);

    // Within one network: the verified node takes the unverified one's
    // place, and keeps it against an unverified one.
    let mut t = table(t0);
    let first = unverified_far(&mut rng, [192, 0, 2, 255]);
    assert_eq!(t.node_responded(t0, first), InsertOutcome::Inserted);
    let second = verified_far(&mut rng, [192, 0, 2, 20]);
    assert_eq!(t.node_responded(t0, second), InsertOutcome::Inserted);
    assert!(!t.contains(&first.id) && t.contains(&second.id));
    let third = unverified_far(&mut rng, [192, 0, 2, 255]);
    assert_eq!(
        t.node_responded(t0, third),
        InsertOutcome::Rejected(RejectReason::SamePrefix)
    );
}

/// libtorrent's extended routing table: the farthest buckets hold 16, 8,
/// 4 and 2 times k; a split moves the freshest of a near half too large for
/// its narrower bucket, and caches the rest.
#[test]
fn an_extended_table_widens_the_farthest_buckets() {
    let t0 = crate::test_epoch();
    let mut rng = StdRng::seed_from_u64(9);
    let cfg = RoutingConfig {
        extended_table: true,
        ..RoutingConfig::default()
    };
    assert_eq!(
        (0..5).map(|i| cfg.bucket_capacity(i)).collect::<Vec<_>>(),
        [128, 64, 32, 16, 8]
    );
    let mut t = RoutingTable::new(own(), t0, cfg);
    // 28 far nodes, then 100 nearer ones, each heard a second later.
    let far: Vec<NodeInfo> = (0..28).map(|n| node_at(0, n, &mut rng)).collect();
    let near: Vec<NodeInfo> = (0..100).map(|n| node_at(1, n, &mut rng)).collect();
    let mut at = t0;
    for info in far.into_iter().chain(near) {
        at += Duration::from_secs(1);
        assert_eq!(t.node_responded(at, info), InsertOutcome::Inserted);
    }
    assert_eq!(t.bucket_count(), 1, "one bucket holds 128");
    let extra = node_at(0, 200, &mut rng);
    at += Duration::from_secs(1);
    assert_eq!(t.node_responded(at, extra), InsertOutcome::Inserted);
    let counts = |t: &RoutingTable| -> Vec<(usize, usize)> {
        let stats = t.stats(at);
        stats
            .buckets
            .iter()
            .map(|b| (b.good, b.replacements))
            .collect()
    };
    assert_eq!(counts(&t)[..2], [(29, 0), (64, 8)]);
    // The ones kept are the 64 heard from last.
    let oldest_kept = t.buckets[1]
        .nodes
        .iter()
        .filter_map(|e| e.last_seen())
        .min();
    assert_eq!(oldest_kept, Some(t0 + Duration::from_secs(28 + 37)));
}

/// Proximity neighbour selection (when on): a full bucket of good nodes trades its
/// slowest for a node that answered in under half that node's round trip;
/// the one traded waits in the replacement cache. A node barely faster,
/// or one whose round trip was not measured, does not displace anyone.
#[test]
fn a_full_bucket_trades_its_slowest_node_for_one_twice_as_fast() {
    let t0 = crate::test_epoch();
    let ms = Duration::from_millis;
    let fill = |config: RoutingConfig| {
        let mut rng = StdRng::seed_from_u64(9);
        let mut t = RoutingTable::new(own(), t0, config);
        let mut far = Vec::new();
        for n in 0..8 {
            let info = node_at(0, n, &mut rng);
            // 100 ms, 150 ms, ..., 450 ms: node 7 is the slowest.
            let rtt = ms(100 + 50 * u64::from(n));
            assert_eq!(
                t.node_responded_in(t0, info, Some(rtt)),
                InsertOutcome::Inserted
            );
            far.push(info);
        }
        for n in 0..8 {
            t.node_responded_in(t0, node_at(5 + u32::from(n), n, &mut rng), Some(ms(100)));
        }
        (t, far, rng)
    };

    let on = RoutingConfig {
        prefer_fast: true,
        ..RoutingConfig::default()
    };
    let (mut t, far, mut rng) = fill(on);
    let barely = node_at(0, 20, &mut rng);
    assert_eq!(
        t.node_responded_in(t0, barely, Some(ms(300))),
        InsertOutcome::Cached,
        "300 ms is not under half of 450 ms"
    );
    let unmeasured = node_at(0, 21, &mut rng);
    assert_eq!(
        t.node_responded_in(t0, unmeasured, None),
        InsertOutcome::Cached
    );
    let fast = node_at(0, 22, &mut rng);
    assert_eq!(
        t.node_responded_in(t0, fast, Some(ms(200))),
        InsertOutcome::Inserted
    );
    assert!(t.contains(&fast.id));
    assert!(!t.contains(&far[7].id), "the slowest went");
    assert!(far[..7].iter().all(|n| t.contains(&n.id)));
    assert_eq!(t.stats(t0).buckets[0].good, 8);
    // The traded node waits in the cache: when a node fails, it comes back.
    for _ in 0..2 {
        t.node_failed(t0, &far[0].id, far[0].addr);
    }
    assert!(
        t.contains(&far[7].id),
        "the most recent cached node replaced it"
    );

    // A round trip is smoothed: one slow answer does not make a node the
    // slowest.
    let (mut t, far, mut rng) = fill(on);
    t.node_responded_in(t0, far[0], Some(ms(2000)));
    // 100 ms, then 2 s: (3 × 100 + 2000) / 4 = 575 ms, over twice 250.
    let quick = node_at(0, 23, &mut rng);
    assert_eq!(
        t.node_responded_in(t0, quick, Some(ms(250))),
        InsertOutcome::Inserted
    );
    assert!(!t.contains(&far[0].id));

    // Off, the default: BEP 5's full bucket discards.
    let (mut t, _, mut rng) = fill(RoutingConfig::default());
    let fast = node_at(0, 22, &mut rng);
    assert_eq!(
        t.node_responded_in(t0, fast, Some(ms(10))),
        InsertOutcome::Cached
    );
}
