//! Hostile input: every case is an error, never a panic, an abort, or an
//! allocation sized by a length the input declares. Runs in CI, bounded.
//!
//! A counting global allocator checks the "no allocation" half: decoding
//! never allocates, whatever the input.

// Test helpers, not only #[test] fns, may panic on a broken fixture.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// The counting allocator below is the only unsafe code in the workspace: test-only.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use dhtd_protocol::bencode::{DecodeErrorKind, Limits, Value};
use dhtd_protocol::compact::{encode_node, CompactNodes};
use dhtd_protocol::krpc::{Body, Message, ParseErrorKind, Query, Response};
use dhtd_protocol::{InfoHash, NodeId, NodeInfo};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|a| a.set(a.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made on this thread while `f` runs.
fn allocations<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = ALLOCATIONS.with(Cell::get);
    let out = f();
    (out, ALLOCATIONS.with(Cell::get) - before)
}

fn find_node_query() -> Vec<u8> {
    Message {
        transaction_id: b"aa\x01\x02",
        version: Some(b"DH\x00\x01"),
        requester_ip: None,
        read_only: false,
        body: Body::Query {
            sender: NodeId([1; 20]),
            query: Query::FindNode {
                target: NodeId([2; 20]),
                want: None,
            },
        },
    }
    .to_bytes()
}

fn get_peers_response(nodes_buf: &mut Vec<u8>) -> Vec<u8> {
    for i in 0..8u8 {
        let n = NodeInfo {
            id: NodeId([i; 20]),
            addr: ([10, 0, 0, i], 6881).into(),
        };
        encode_node(&n, nodes_buf);
    }
    Message {
        transaction_id: b"tx12",
        version: Some(b"LT\x02\x08"),
        requester_ip: Some("127.0.0.9:6881".parse().unwrap()),
        read_only: false,
        body: Body::Response(Response {
            nodes: Some(CompactNodes::v4(nodes_buf).unwrap()),
            token: Some(b"0123456789abcdef0123"),
            ..Response::bare(NodeId([3; 20]))
        }),
    }
    .to_bytes()
}

#[test]
fn decoding_allocates_nothing() {
    let q = find_node_query();
    let mut buf = Vec::new();
    let r = get_peers_response(&mut buf);
    let (ok, n) = allocations(|| Message::decode(&q).is_ok());
    assert!(ok);
    assert_eq!(n, 0, "find_node decode allocated");
    let (ok, n) = allocations(|| Message::decode(&r).map(|m| matches!(m.body, Body::Response(_))));
    assert_eq!(ok, Ok(true));
    assert_eq!(n, 0, "get_peers response decode allocated");
}

/// Malformed BEP 44 puts are decode errors that keep the transaction id
/// (so the node answers 203), allocating nothing; a `v` of any bencoded
/// type is taken verbatim.
#[test]
fn malformed_puts_are_plain_errors() {
    let put = |args: &str| {
        format!("d1:ad2:id20:aaaaaaaaaaaaaaaaaaaa{args}e1:q3:put1:t2:pt1:y1:qe").into_bytes()
    };
    let key = format!("1:k32:{}", "k".repeat(32));
    let sig = format!("3:sig64:{}", "s".repeat(64));
    let cases: Vec<(&str, Vec<u8>, ParseErrorKind)> = vec![
        ("no v", put("5:token2:tk"), ParseErrorKind::MissingKey("v")),
        (
            "no token",
            put("1:v2:hi"),
            ParseErrorKind::MissingKey("token"),
        ),
        (
            "a 31-byte key",
            put(&format!(
                "1:k31:{}3:seqi1e{sig}5:token2:tk1:v2:hi",
                "k".repeat(31)
            )),
            ParseErrorKind::BadLength { key: "k", len: 31 },
        ),
        (
            "a 63-byte signature",
            put(&format!(
                "{key}3:seqi1e3:sig63:{}5:token2:tk1:v2:hi",
                "s".repeat(63)
            )),
            ParseErrorKind::BadLength {
                key: "sig",
                len: 63,
            },
        ),
        (
            "a key without seq",
            put(&format!("{key}{sig}5:token2:tk1:v2:hi")),
            ParseErrorKind::MissingKey("seq"),
        ),
        (
            "a key without sig",
            put(&format!("{key}3:seqi1e5:token2:tk1:v2:hi")),
            ParseErrorKind::MissingKey("sig"),
        ),
    ];
    for (name, input, expected) in cases {
        let (result, n) = allocations(|| {
            Message::decode(&input)
                .map(|_| ())
                .map_err(|e| (e.kind, e.transaction_id))
        });
        let (kind, tid) = result.expect_err(name);
        assert_eq!(kind, expected, "{name}");
        assert_eq!(tid, Some(&b"pt"[..]), "{name}: the id is kept for the 203");
        assert_eq!(n, 0, "{name}: allocated");
    }
    let list_value = put("5:token2:tk1:vli1ei2ee");
    let m = Message::decode(&list_value).unwrap();
    let Body::Query {
        query: Query::Put(p),
        ..
    } = m.body
    else {
        panic!()
    };
    assert_eq!(p.value, b"li1ei2ee");
}

#[test]
fn the_known_killers_are_plain_errors() {
    let mut deep = vec![b'l'; 32_000];
    deep.extend(vec![b'e'; 32_000]);
    let mut deep_in_dict = b"d1:ad2:id20:aaaaaaaaaaaaaaaaaaaa1:x".to_vec();
    deep_in_dict.extend(vec![b'l'; 32_000]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("32,000 nested lists", deep),
        ("32,000 nested lists inside a query", deep_in_dict),
        ("huge declared string", b"99999999999999999999:".to_vec()),
        (
            "huge declared string in a dict",
            b"d1:t99999999999:ab1:y1:qe".to_vec(),
        ),
        ("huge integer", b"i99999999999999999999e".to_vec()),
        ("leading zero integer", b"d1:ti01e1:y1:qe".to_vec()),
        ("leading zero length", b"d01:t2:ab1:y1:qe".to_vec()),
        ("negative zero", b"i-0e".to_vec()),
        ("empty input", Vec::new()),
        ("lone d", b"d".to_vec()),
        ("key not a string", b"di1ei2ee".to_vec()),
    ];
    for (name, input) in cases {
        let (result, n) = allocations(|| Message::decode(&input).map(|_| ()).map_err(|e| e.kind));
        assert!(result.is_err(), "{name}: accepted");
        assert_eq!(n, 0, "{name}: allocated");
    }
    // Value trees allocate for their nodes, never for a declared length.
    assert_eq!(
        Value::decode(b"99999999999999999999:", Limits::FILE).map_err(|e| e.kind),
        Err(DecodeErrorKind::NumberOutOfRange)
    );
}

#[test]
fn every_truncation_of_valid_messages_is_an_error() {
    let mut buf = Vec::new();
    for valid in [find_node_query(), get_peers_response(&mut buf)] {
        assert!(Message::decode(&valid).is_ok());
        for len in 0..valid.len() {
            assert!(
                Message::decode(&valid[..len]).is_err(),
                "prefix of {len} bytes accepted"
            );
        }
        let mut extended = valid.clone();
        extended.extend_from_slice(b"garbage");
        let e = Message::decode(&extended).unwrap_err();
        assert!(
            matches!(e.kind, ParseErrorKind::Bencode(d) if d.kind == DecodeErrorKind::TrailingBytes)
        );
    }
}

/// Replaces the value after `key` (first occurrence) with `replacement`.
fn replace_value(msg: &[u8], key: &[u8], replacement: &[u8]) -> Vec<u8> {
    let mut pat = format!("{}:", key.len()).into_bytes();
    pat.extend_from_slice(key);
    let at = msg
        .windows(pat.len())
        .position(|w| w == pat)
        .expect("key present")
        + pat.len();
    let mut d = dhtd_protocol::bencode::Decoder::new(&msg[at..], Limits::KRPC);
    d.skip_value().unwrap();
    let end = at + d.position();
    [&msg[..at], replacement, &msg[end..]].concat()
}

#[test]
fn wrong_types_in_every_field_are_errors() {
    let announce = Message {
        transaction_id: b"ab",
        version: Some(b"XX\x00\x00"),
        requester_ip: Some("10.0.0.1:1".parse().unwrap()),
        read_only: true,
        body: Body::Query {
            sender: NodeId([1; 20]),
            query: Query::AnnouncePeer {
                info_hash: InfoHash([2; 20]),
                port: 6881,
                implied_port: true,
                token: b"tok",
                seed: false,
            },
        },
    }
    .to_bytes();
    let mut buf = Vec::new();
    let response = get_peers_response(&mut buf);
    let wrong = [&b"i1e"[..], b"le", b"de", b"3:abc"];
    for (msg, keys) in [
        (
            &announce,
            &[
                "a",
                "id",
                "info_hash",
                "port",
                "implied_port",
                "token",
                "ip",
                "ro",
                "q",
                "t",
                "v",
                "y",
            ][..],
        ),
        (
            &response,
            &["r", "id", "nodes", "token", "ip", "t", "v", "y"][..],
        ),
    ] {
        for key in keys {
            for w in wrong {
                let bad = replace_value(msg, key.as_bytes(), w);
                let (result, n) = allocations(|| Message::decode(&bad).map(|_| ()));
                assert_eq!(n, 0);
                // A string of the wrong length is as wrong as a wrong type,
                // except where any string will do; integer keys take any
                // integer in range.
                let right_type = (w == b"3:abc" && matches!(*key, "t" | "v" | "token" | "q"))
                    || (w == b"i1e" && matches!(*key, "port" | "implied_port" | "ro"));
                assert_eq!(
                    result.is_ok(),
                    right_type,
                    "{key} = {}",
                    String::from_utf8_lossy(w)
                );
            }
        }
    }
}

/// A reply whose `r` holds `key` with a string of `len` zero bytes.
fn reply_with_node_list(key: &str, len: usize) -> Vec<u8> {
    let mut msg = b"d1:rd2:id20:".to_vec();
    msg.extend_from_slice(&[b'i'; 20]);
    msg.extend_from_slice(format!("{}:{key}{len}:", key.len()).as_bytes());
    msg.extend(std::iter::repeat_n(0u8, len));
    msg.extend_from_slice(b"e1:t2:aa1:y1:re");
    msg
}

#[test]
fn lengths_that_are_not_whole_entries_are_errors() {
    for (key, len) in [("nodes", 27), ("nodes", 25), ("nodes6", 26), ("nodes6", 39)] {
        assert_eq!(
            Message::decode(&reply_with_node_list(key, len))
                .unwrap_err()
                .kind,
            ParseErrorKind::BadLength { key, len }
        );
    }
    assert!(Message::decode(&reply_with_node_list("nodes", 52)).is_ok());
    assert!(Message::decode(&reply_with_node_list("nodes6", 76)).is_ok());
    let short_id = b"d1:ad2:id19:aaaaaaaaaaaaaaaaaaae1:q4:ping1:t2:xx1:y1:qe";
    let e = Message::decode(short_id).unwrap_err();
    assert_eq!(e.kind, ParseErrorKind::BadLength { key: "id", len: 19 });
    // BEP 5: a malformed query can be answered with 203 using its `t`.
    assert_eq!(e.answerable(), Some(&b"xx"[..]));
}

/// Bounded mutation run over real datagrams: flips, insertions, deletions
/// and splices. Nothing may panic, and no decode may allocate.
#[test]
fn mutated_real_datagrams_never_panic_or_allocate() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/krpc");
    let mut corpus = Vec::new();
    for folder in ["libtorrent", "qbittorrent", "bittorrent-dht", "probe"] {
        for entry in std::fs::read_dir(dir.join(folder)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "bin") {
                corpus.push(std::fs::read(path).unwrap());
            }
        }
    }
    // xorshift: deterministic and dependency-free.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut decoded_ok = 0;
    for round in 0..60_000 {
        let base = &corpus[(next() as usize) % corpus.len()];
        let mut m = base.clone();
        for _ in 0..1 + next() % 4 {
            let pos = if m.is_empty() {
                0
            } else {
                (next() as usize) % m.len()
            };
            match next() % 5 {
                0 if !m.is_empty() => m[pos] ^= 1 << (next() % 8),
                1 => m.insert(pos, b"0123456789:ilde-"[(next() % 16) as usize]),
                2 if !m.is_empty() => {
                    m.remove(pos);
                }
                3 => m.truncate(pos),
                _ => {
                    let other = &corpus[(next() as usize) % corpus.len()];
                    let cut = (next() as usize) % (other.len() + 1);
                    m.truncate(pos);
                    m.extend_from_slice(&other[cut..]);
                }
            }
        }
        let (ok, n) = allocations(|| Message::decode(&m).is_ok());
        assert_eq!(n, 0, "round {round}: decode allocated");
        decoded_ok += usize::from(ok);
    }
    // The mutations must exercise both paths, or the test proves little.
    assert!(decoded_ok > 1_000 && decoded_ok < 59_000, "{decoded_ok}");
}

/// BEP 32: replies should stay under 1,024 bytes. A get_peers reply with
/// 8 nodes, 8 IPv6 nodes, the longest transaction id answered, a token, and as many
/// stored peers as the budget allows, fits.
#[test]
fn a_full_get_peers_reply_fits_in_1024_bytes() {
    use dhtd_protocol::compact::CompactPeers;
    use dhtd_protocol::krpc::{values_budget, MAX_REPLY_LEN};
    use dhtd_protocol::store::{PeerStore, PeerStoreConfig};
    use rand::SeedableRng;

    #[allow(clippy::disallowed_methods)]
    let now = std::time::Instant::now();
    let mut store = PeerStore::new(now, NodeId([0; 20]), PeerStoreConfig::default());
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let info_hash = InfoHash([9; 20]);
    for i in 0..400u16 {
        let peer = if i % 3 == 0 {
            std::net::SocketAddr::from(([0x2001, 0xdb8, 0, 0, 0, 0, 0, i], 6881))
        } else {
            std::net::SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 6881))
        };
        store.announce(now, &mut rng, info_hash, peer);
    }
    let (mut nodes, mut nodes6) = (Vec::new(), Vec::new());
    for i in 0..8u8 {
        encode_node(
            &NodeInfo {
                id: NodeId([i; 20]),
                addr: ([10, 9, 9, i], 6881).into(),
            },
            &mut nodes,
        );
        let v6 = std::net::SocketAddr::from(([0x2001, 0xdb8, 1, 0, 0, 0, 0, u16::from(i)], 6881));
        encode_node(
            &NodeInfo {
                id: NodeId([i; 20]),
                addr: v6,
            },
            &mut nodes6,
        );
    }
    // The longest transaction id the node answers.
    let tid = [b'x'; dhtd_protocol::node::rate_limiter::gate::MAX_TRANSACTION_ID_LEN];
    let reply = |values| Message {
        transaction_id: &tid,
        version: Some(b"DH\x00\x01"),
        requester_ip: Some("[2001:db8::99]:6881".parse().unwrap()),
        read_only: false,
        body: Body::Response(Response {
            nodes: Some(CompactNodes::v4(&nodes).unwrap()),
            nodes6: Some(CompactNodes::v6(&nodes6).unwrap()),
            token: Some(&[7u8; 20]),
            values,
            ..Response::bare(NodeId([3; 20]))
        }),
    };
    let without = reply(None).to_bytes().len();
    let mut rng = rand::rngs::StdRng::seed_from_u64(2);
    let sample = store.sample(now, &mut rng, &info_hash, values_budget(without));
    let mut values = Vec::new();
    let encoded = reply(Some(CompactPeers::encode_list(
        sample.iter().copied(),
        &mut values,
    )))
    .to_bytes();
    assert!(encoded.len() <= MAX_REPLY_LEN, "{} bytes", encoded.len());
    // And the budget is used, not wasted: no further peer would have fit.
    assert!(
        encoded.len() + 21 > MAX_REPLY_LEN,
        "{} bytes",
        encoded.len()
    );
    assert!(sample.len() >= 10, "{} peers", sample.len());
}
