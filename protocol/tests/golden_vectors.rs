//! Golden vectors: raw KRPC datagrams captured from real clients
//! (libtorrent-rasterbar, qBittorrent, webtorrent's bittorrent-dht, and a
//! probe's deliberately odd queries), each checked against what its
//! manifest says, then re-encoded and decoded again.
//!
//! The vectors are kept in `tests/vectors/krpc/`, copied from the shared
//! fixture set; `copy_matches_shared_fixtures` fails if the two drift apart.

// Test helpers, not only #[test] fns, may panic on a broken fixture.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use dhtd_protocol::krpc::{Body, Message, ParseErrorKind, Query};

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/krpc")
}

struct Row {
    file: String,
    folder: String,
    direction: String,
    method: String,
    notes: String,
}

fn rows() -> Vec<Row> {
    let mut rows = Vec::new();
    for folder in ["libtorrent", "qbittorrent", "bittorrent-dht", "probe"] {
        let manifest = fs::read_to_string(vectors_dir().join(folder).join("MANIFEST.tsv"))
            .unwrap_or_else(|e| panic!("{folder}/MANIFEST.tsv: {e}"));
        for line in manifest.lines().skip(1).filter(|l| !l.is_empty()) {
            let cols: Vec<&str> = line.split('\t').collect();
            assert_eq!(cols.len(), 7, "{folder}: malformed manifest line {line}");
            rows.push(Row {
                file: cols[0].to_string(),
                folder: folder.to_string(),
                direction: cols[3].to_string(),
                method: cols[4].to_string(),
                notes: cols[6].to_string(),
            });
        }
    }
    rows
}

/// The value of `key=` in a space-separated part of the notes.
fn note<'n>(part: &'n str, key: &str) -> Option<&'n str> {
    let pat = format!("{key}=");
    let mut from = 0;
    while let Some(pos) = part[from..].find(&pat) {
        let at = from + pos;
        if at == 0 || part.as_bytes()[at - 1] == b' ' {
            let rest = &part[at + pat.len()..];
            return Some(rest.split(' ').next().unwrap_or(""));
        }
        from = at + pat.len();
    }
    None
}

/// Byte lengths are written `4B`.
fn byte_len(v: &str) -> usize {
    v.trim_end_matches('B')
        .parse()
        .unwrap_or_else(|_| panic!("length {v}"))
}

/// `v=LT-0208` is `LT` then bytes 02 08.
fn version(v: &str) -> Option<Vec<u8>> {
    if v == "none" {
        return None;
    }
    let (text, hex) = v.split_once('-').expect("version form XX-hhhh");
    let mut out = text.as_bytes().to_vec();
    for i in (0..hex.len()).step_by(2) {
        out.push(u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"));
    }
    Some(out)
}

/// The keys of the `a` or `r` dict listed in the notes: `a={id,target}`.
fn key_set(own: &str, dict: &str) -> Vec<String> {
    note(own, dict)
        .map(|v| {
            v.trim_start_matches('{')
                .trim_end_matches('}')
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn check_common(row: &Row, own: &str, m: &Message<'_>) {
    let ctx = &row.file;
    match note(own, "t") {
        Some("absent") => assert_eq!(m.transaction_id, b"", "{ctx}: t"),
        Some(t) => assert_eq!(m.transaction_id.len(), byte_len(t), "{ctx}: t"),
        None => panic!("{ctx}: manifest has no t"),
    }
    if let Some(v) = note(own, "v") {
        assert_eq!(m.version.map(<[u8]>::to_vec), version(v), "{ctx}: v");
    }
    match note(own, "ip") {
        Some(ip) => assert_eq!(
            m.requester_ip,
            Some(ip.parse::<SocketAddr>().unwrap()),
            "{ctx}: ip"
        ),
        None => assert_eq!(m.requester_ip, None, "{ctx}: ip"),
    }
    assert_eq!(m.read_only, note(own, "ro") == Some("1"), "{ctx}: ro");
}

fn check_query(row: &Row, own: &str, m: &Message<'_>) {
    let ctx = &row.file;
    let Body::Query { query, .. } = &m.body else {
        panic!("{ctx}: expected a query, got {:?}", m.body)
    };
    assert_eq!(query.method(), row.method.as_bytes(), "{ctx}: method");
    match query {
        Query::AnnouncePeer {
            port,
            implied_port,
            token,
            ..
        } => {
            assert_eq!(
                *implied_port,
                note(own, "implied_port") == Some("1"),
                "{ctx}"
            );
            if !*implied_port || note(own, "port").is_some() {
                assert_eq!(
                    Some(port.to_string().as_str()),
                    note(own, "port"),
                    "{ctx}: port"
                );
            }
            assert_eq!(
                token.len(),
                byte_len(note(own, "token").unwrap()),
                "{ctx}: token"
            );
        }
        Query::FindNode { want, .. }
        | Query::GetPeers { want, .. }
        | Query::SampleInfohashes { want, .. } => {
            let expected = note(own, "want");
            assert_eq!(want.is_some(), expected.is_some(), "{ctx}: want");
            if let (Some(w), Some(e)) = (want, expected) {
                assert_eq!(w.v4, e.contains("n4"), "{ctx}");
                assert_eq!(w.v6, e.contains("n6"), "{ctx}");
            }
        }
        Query::Unknown { target, .. } => {
            let has_target = key_set(own, "a").iter().any(|k| k == "target");
            assert_eq!(target.is_some(), has_target, "{ctx}: target");
        }
        Query::Put(p) => {
            let keys = key_set(own, "a");
            assert_eq!(
                p.signed.is_some(),
                keys.iter().any(|k| k == "k"),
                "{ctx}: k"
            );
            assert_eq!(
                p.cas.is_some(),
                keys.iter().any(|k| k == "cas"),
                "{ctx}: cas"
            );
        }
        Query::Get { .. } | Query::Ping => {}
    }
}

fn check_response(row: &Row, own: &str, m: &Message<'_>) {
    let ctx = &row.file;
    let Body::Response(r) = &m.body else {
        panic!("{ctx}: expected a response, got {:?}", m.body)
    };
    let keys = key_set(own, "r");
    assert_eq!(
        r.nodes.is_some(),
        keys.iter().any(|k| k == "nodes"),
        "{ctx}: nodes"
    );
    if let Some(n) = note(own, "nodes") {
        let nodes = r.nodes.expect("nodes");
        assert_eq!(nodes.len().to_string(), n, "{ctx}: node count");
        assert_eq!(nodes.iter().count(), nodes.len(), "{ctx}");
    }
    assert_eq!(
        r.token.map(<[u8]>::len),
        note(own, "token").map(byte_len),
        "{ctx}: token"
    );
    assert_eq!(
        r.values.is_some(),
        keys.iter().any(|k| k == "values"),
        "{ctx}: values"
    );
    if let Some(n) = note(own, "values") {
        let values = r.values.expect("values");
        assert_eq!(values.len().to_string(), n, "{ctx}: value count");
        // The manifest lists ports sorted, not in wire order.
        let mut ports: Vec<u16> = values.iter().map(|p| p.port()).collect();
        ports.sort_unstable();
        let expected: Vec<u16> = note(own, "value_ports")
            .unwrap()
            .split(',')
            .map(|p| p.parse().unwrap())
            .collect();
        assert_eq!(ports, expected, "{ctx}: value ports");
    }
}

fn check_error(row: &Row, own: &str, m: &Message<'_>) {
    let ctx = &row.file;
    let Body::Error(e) = &m.body else {
        panic!("{ctx}: expected an error, got {:?}", m.body)
    };
    let list = note(own, "e").expect("e=");
    let code: i64 = list
        .trim_start_matches('[')
        .trim_end_matches(',')
        .parse()
        .unwrap();
    assert_eq!(e.code.code(), code, "{ctx}: code");
    let text = &row.notes[row.notes.find(", ").unwrap() + 3..];
    let text = &text[..text.find("] ").unwrap() - 1];
    assert_eq!(
        std::str::from_utf8(e.message).unwrap(),
        text,
        "{ctx}: message"
    );
}

/// What a query the probe made deliberately odd decodes to, if it does not
/// decode: the error and that it is still answerable with 203.
fn expected_query_error(own: &str, method: &str) -> Option<ParseErrorKind> {
    let a = key_set(own, "a");
    let has = |k: &str| a.iter().any(|x| x == k);
    if note(own, "id") == Some("5B") {
        return Some(ParseErrorKind::BadLength { key: "id", len: 5 });
    }
    if a.is_empty() {
        return Some(ParseErrorKind::MissingKey("a"));
    }
    match method {
        "find_node" if !has("target") => Some(ParseErrorKind::MissingKey("target")),
        "get_peers" | "announce_peer" if !has("info_hash") => {
            Some(ParseErrorKind::MissingKey("info_hash"))
        }
        "get_peers" if note(own, "info_hash") == Some("5B") => Some(ParseErrorKind::BadLength {
            key: "info_hash",
            len: 5,
        }),
        "announce_peer" if !has("port") && !has("implied_port") => {
            Some(ParseErrorKind::MissingKey("port"))
        }
        _ => None,
    }
}

#[test]
fn every_vector_decodes_as_its_manifest_says() {
    let rows = rows();
    assert!(
        rows.len() > 300,
        "expected the full fixture set, found {}",
        rows.len()
    );
    let mut checked = 0;
    for row in &rows {
        let bytes = fs::read(vectors_dir().join(&row.folder).join(&row.file)).unwrap();
        // Notes after "query:" describe the query a reply answers, not the reply.
        let own = row.notes.split(" query:").next().unwrap();
        let decoded = Message::decode(&bytes);
        match row.direction.as_str() {
            "malformed" | "non-krpc" => {
                let e = decoded.expect_err(&row.file);
                let expected_kind = if own.contains("y='x'") {
                    Some(ParseErrorKind::UnknownMessageType)
                } else if own.contains("list, not a dict") {
                    Some(ParseErrorKind::NotADict)
                } else {
                    None
                };
                if let Some(k) = expected_kind {
                    assert_eq!(e.kind, k, "{}", row.file);
                } else {
                    assert!(
                        matches!(e.kind, ParseErrorKind::Bencode(_)),
                        "{}: {e:?}",
                        row.file
                    );
                }
                // Only a query with a readable `t` is answered (with 203): a
                // query followed by junk is one; a `y` that is not q, r or e,
                // a list, non-bencode and uTP are not.
                let is_query_with_junk = own.contains("trailing bytes");
                assert_eq!(e.answerable().is_some(), is_query_with_junk, "{}", row.file);
            }
            "query" => match expected_query_error(own, &row.method) {
                Some(kind) => {
                    let e = decoded.expect_err(&row.file);
                    assert_eq!(e.kind, kind, "{}", row.file);
                    assert!(
                        e.answerable().is_some(),
                        "{}: 203 must be possible",
                        row.file
                    );
                }
                None => {
                    let m = decoded.unwrap_or_else(|e| panic!("{}: {e:?}", row.file));
                    check_common(row, own, &m);
                    check_query(row, own, &m);
                }
            },
            "response" => {
                let m = decoded.unwrap_or_else(|e| panic!("{}: {e:?}", row.file));
                check_common(row, own, &m);
                check_response(row, own, &m);
            }
            "error" => {
                let m = decoded.unwrap_or_else(|e| panic!("{}: {e:?}", row.file));
                check_common(row, own, &m);
                check_error(row, own, &m);
            }
            other => panic!("{}: unknown direction {other}", row.file),
        }
        if let Ok(m) = Message::decode(&bytes) {
            let again = m.to_bytes();
            assert_eq!(
                Message::decode(&again).as_ref(),
                Ok(&m),
                "{}: re-encoding",
                row.file
            );
        }
        checked += 1;
    }
    assert_eq!(checked, rows.len());
}

/// Every file is in a manifest and every manifest line has a file.
#[test]
fn manifests_and_files_agree() {
    let rows = rows();
    let mut listed: Vec<String> = rows
        .iter()
        .map(|r| format!("{}/{}", r.folder, r.file))
        .collect();
    listed.sort();
    let mut files = Vec::new();
    for folder in ["libtorrent", "qbittorrent", "bittorrent-dht", "probe"] {
        for entry in fs::read_dir(vectors_dir().join(folder)).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if name.ends_with(".bin") {
                files.push(format!("{folder}/{name}"));
            }
        }
    }
    files.sort();
    assert_eq!(listed, files);
}

/// The copy in this repository is the shared fixture set, byte for byte,
/// when the shared set is beside the checkout.
#[test]
fn copy_matches_shared_fixtures() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/krpc");
    if !shared.exists() {
        eprintln!("shared fixtures not beside this checkout; comparing nothing");
        return;
    }
    for row in rows() {
        let ours = fs::read(vectors_dir().join(&row.folder).join(&row.file)).unwrap();
        let theirs = fs::read(shared.join(&row.folder).join(&row.file)).unwrap();
        assert_eq!(
            ours, theirs,
            "{}/{} differs from the shared copy",
            row.folder, row.file
        );
    }
}
