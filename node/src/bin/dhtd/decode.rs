//! `dhtd decode`: a raw KRPC datagram as readable JSON, for operators
//! reading captures. Ids, tokens and transaction ids are hex; compact nodes
//! and peers are expanded; `v` is shown as text where printable.

use std::io::Read;
use std::path::Path;

use dhtd_protocol::krpc::{Body, Message, Query};
use dhtd_protocol::scrape::ScrapeBloom;
use serde_json::{json, Map, Value};

use crate::Failure;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text_or_hex(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) if s.chars().all(|c| !c.is_control()) => s.to_owned(),
        _ => format!("hex:{}", hex(bytes)),
    }
}

/// The JSON form of a decoded message.
pub(crate) fn to_json(m: &Message<'_>) -> Value {
    let mut out = Map::new();
    out.insert("t".into(), json!(hex(m.transaction_id)));
    if let Some(v) = m.version {
        out.insert("v".into(), json!(text_or_hex(v)));
    }
    if let Some(ip) = m.requester_ip {
        out.insert("ip".into(), json!(ip.to_string()));
    }
    if m.read_only {
        out.insert("ro".into(), json!(1));
    }
    match &m.body {
        Body::Query { sender, query } => {
            out.insert("y".into(), json!("q"));
            out.insert("q".into(), json!(text_or_hex(query.method())));
            let mut a = Map::new();
            a.insert("id".into(), json!(sender.to_string()));
            match query {
                Query::Ping => {}
                Query::FindNode { target, want } | Query::SampleInfohashes { target, want } => {
                    a.insert("target".into(), json!(target.to_string()));
                    if let Some(w) = want {
                        a.insert("want".into(), json!({"n4": w.v4, "n6": w.v6}));
                    }
                }
                Query::GetPeers {
                    info_hash,
                    want,
                    scrape,
                    noseed,
                } => {
                    a.insert("info_hash".into(), json!(info_hash.to_string()));
                    if *scrape {
                        a.insert("scrape".into(), json!(1));
                    }
                    if *noseed {
                        a.insert("noseed".into(), json!(1));
                    }
                    if let Some(w) = want {
                        a.insert("want".into(), json!({"n4": w.v4, "n6": w.v6}));
                    }
                }
                Query::AnnouncePeer {
                    info_hash,
                    port,
                    implied_port,
                    token,
                    seed,
                } => {
                    a.insert("info_hash".into(), json!(info_hash.to_string()));
                    if *seed {
                        a.insert("seed".into(), json!(1));
                    }
                    a.insert("port".into(), json!(port));
                    a.insert("implied_port".into(), json!(implied_port));
                    a.insert("token".into(), json!(hex(token)));
                }
                Query::Get { target, seq, .. } => {
                    a.insert("target".into(), json!(target.to_string()));
                    if let Some(seq) = seq {
                        a.insert("seq".into(), json!(seq));
                    }
                }
                Query::Put(p) => {
                    a.insert("token".into(), json!(hex(p.token)));
                    a.insert("v".into(), json!(text_or_hex(p.value)));
                    if let Some(s) = &p.signed {
                        a.insert("k".into(), json!(hex(s.key)));
                        a.insert("salt".into(), json!(text_or_hex(s.salt)));
                        a.insert("seq".into(), json!(s.seq));
                        a.insert("sig".into(), json!(hex(s.sig)));
                    }
                    if let Some(cas) = p.cas {
                        a.insert("cas".into(), json!(cas));
                    }
                }
                Query::Unknown {
                    target, info_hash, ..
                } => {
                    if let Some(t) = target {
                        a.insert("target".into(), json!(t.to_string()));
                    }
                    if let Some(ih) = info_hash {
                        a.insert("info_hash".into(), json!(ih.to_string()));
                    }
                }
            }
            out.insert("a".into(), Value::Object(a));
        }
        Body::Response(r) => {
            out.insert("y".into(), json!("r"));
            let mut body = Map::new();
            body.insert("id".into(), json!(r.id.to_string()));
            let nodes = |n: &dhtd_protocol::compact::CompactNodes<'_>| {
                n.iter()
                    .map(|n| json!({"id": n.id.to_string(), "addr": n.addr.to_string()}))
                    .collect::<Vec<_>>()
            };
            if let Some(n) = &r.nodes {
                body.insert("nodes".into(), json!(nodes(n)));
            }
            if let Some(n) = &r.nodes6 {
                body.insert("nodes6".into(), json!(nodes(n)));
            }
            if let Some(v) = &r.values {
                let peers: Vec<String> = v.iter().map(|p| p.to_string()).collect();
                body.insert("values".into(), json!(peers));
            }
            if let Some(t) = r.token {
                body.insert("token".into(), json!(hex(t)));
            }
            let blooms = [("BFsd", r.seeds_bloom), ("BFpe", r.peers_bloom)];
            for (key, bloom) in blooms {
                let Some(filter) = bloom.and_then(ScrapeBloom::from_slice) else {
                    continue;
                };
                body.insert(
                    key.into(),
                    json!({"hex": hex(&filter.0), "estimate": filter.estimate()}),
                );
            }
            if let Some(v) = r.value {
                body.insert("v".into(), json!(text_or_hex(v)));
            }
            if let Some(s) = &r.signed {
                body.insert("k".into(), json!(hex(s.key)));
                body.insert("seq".into(), json!(s.seq));
                body.insert("sig".into(), json!(hex(s.sig)));
            }
            if let Some(i) = r.interval {
                body.insert("interval".into(), json!(i));
            }
            if let Some(n) = r.num {
                body.insert("num".into(), json!(n));
            }
            if r.samples.is_some() {
                let samples: Vec<String> = r.sample_hashes().map(|h| h.to_string()).collect();
                body.insert("samples".into(), json!(samples));
            }
            out.insert("r".into(), Value::Object(body));
        }
        Body::Error(e) => {
            out.insert("y".into(), json!("e"));
            out.insert("e".into(), json!([e.code.code(), text_or_hex(e.message)]));
        }
    }
    Value::Object(out)
}

pub(crate) fn decode(file: Option<&Path>) -> Result<(), Failure> {
    let mut bytes = Vec::new();
    let read = match file {
        Some(p) if p != Path::new("-") => std::fs::read(p).map(|b| bytes = b),
        _ => std::io::stdin().read_to_end(&mut bytes).map(|_| ()),
    };
    read.map_err(|e| Failure::Failed(format!("cannot read the datagram: {e}")))?;
    match Message::decode(&bytes) {
        Ok(m) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&to_json(&m)).unwrap_or_default()
            );
            Ok(())
        }
        Err(e) => Err(Failure::Failed(format!(
            "not a KRPC message ({} bytes): {e}",
            bytes.len()
        ))),
    }
}
