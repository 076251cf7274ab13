//! [`Message`] → bytes, keys in sorted order (BEP 3) at every level.

use super::{Body, Message, PutArgs, Query, Response, Want};
use crate::bencode::Encoder;
use crate::compact::peer_bytes;

fn want(enc: &mut Encoder<'_>, want: Option<Want>) {
    if let Some(w) = want {
        enc.bytes(b"want").begin_list();
        if w.v4 {
            enc.bytes(b"n4");
        }
        if w.v6 {
            enc.bytes(b"n6");
        }
        enc.end();
    }
}

fn query_args(enc: &mut Encoder<'_>, sender: &[u8; 20], query: &Query<'_>) {
    enc.begin_dict();
    // `cas` sorts before `id`.
    if let Query::Put(PutArgs { cas: Some(cas), .. }) = query {
        enc.bytes(b"cas").int(*cas);
    }
    enc.bytes(b"id").bytes(sender);
    match query {
        Query::Ping => {}
        Query::FindNode { target, want: w } => {
            enc.bytes(b"target").bytes(target.as_bytes());
            want(enc, *w);
        }
        Query::GetPeers {
            info_hash,
            want: w,
            scrape,
            noseed,
        } => {
            enc.bytes(b"info_hash").bytes(info_hash.as_bytes());
            if *noseed {
                enc.bytes(b"noseed").int(1);
            }
            if *scrape {
                enc.bytes(b"scrape").int(1);
            }
            want(enc, *w);
        }
        Query::AnnouncePeer {
            info_hash,
            port,
            implied_port,
            token,
            seed,
        } => {
            if *implied_port {
                enc.bytes(b"implied_port").int(1);
            }
            enc.bytes(b"info_hash")
                .bytes(info_hash.as_bytes())
                .bytes(b"port")
                .int(i64::from(*port));
            if *seed {
                enc.bytes(b"seed").int(1);
            }
            enc.bytes(b"token").bytes(token);
        }
        Query::Get {
            target,
            seq,
            want: w,
        } => {
            if let Some(seq) = seq {
                enc.bytes(b"seq").int(*seq);
            }
            enc.bytes(b"target").bytes(target.as_bytes());
            want(enc, *w);
        }
        Query::Put(p) => {
            // Sorted: (cas, id above) k, salt, seq, sig, token, v.
            if let Some(s) = &p.signed {
                enc.bytes(b"k").bytes(s.key);
                if !s.salt.is_empty() {
                    enc.bytes(b"salt").bytes(s.salt);
                }
                enc.bytes(b"seq").int(s.seq).bytes(b"sig").bytes(s.sig);
            }
            enc.bytes(b"token").bytes(p.token);
            enc.bytes(b"v").raw(p.value);
        }
        Query::SampleInfohashes { target, want: w } => {
            enc.bytes(b"target").bytes(target.as_bytes());
            want(enc, *w);
        }
        Query::Unknown {
            target,
            info_hash,
            want: w,
            ..
        } => {
            if let Some(h) = info_hash {
                enc.bytes(b"info_hash").bytes(h.as_bytes());
            }
            if let Some(t) = target {
                enc.bytes(b"target").bytes(t.as_bytes());
            }
            want(enc, *w);
        }
    }
    enc.end();
}

fn response(enc: &mut Encoder<'_>, r: &Response<'_>) {
    enc.begin_dict();
    // Capitals sort first.
    if let Some(bloom) = r.peers_bloom {
        enc.bytes(b"BFpe").bytes(bloom);
    }
    if let Some(bloom) = r.seeds_bloom {
        enc.bytes(b"BFsd").bytes(bloom);
    }
    enc.bytes(b"id").bytes(r.id.as_bytes());
    if let Some(interval) = r.interval {
        enc.bytes(b"interval").int(interval);
    }
    if let Some(s) = &r.signed {
        enc.bytes(b"k").bytes(s.key);
    }
    if let Some(nodes) = &r.nodes {
        enc.bytes(b"nodes").bytes(nodes.as_bytes());
    }
    if let Some(nodes6) = &r.nodes6 {
        enc.bytes(b"nodes6").bytes(nodes6.as_bytes());
    }
    if let Some(num) = r.num {
        enc.bytes(b"num").int(num);
    }
    if let Some(samples) = r.samples {
        enc.bytes(b"samples").bytes(samples);
    }
    if let Some(s) = &r.signed {
        enc.bytes(b"seq").int(s.seq).bytes(b"sig").bytes(s.sig);
    }
    if let Some(token) = r.token {
        enc.bytes(b"token").bytes(token);
    }
    if let Some(v) = r.value {
        enc.bytes(b"v").raw(v);
    }
    if let Some(values) = &r.values {
        enc.bytes(b"values").raw(values.as_encoded());
    }
    enc.end();
}

pub(super) fn encode(m: &Message<'_>, out: &mut Vec<u8>) {
    let mut enc = Encoder::new(out);
    enc.begin_dict();
    // Sorted: a, e, ip, q, r, ro, t, v, y.
    if let Body::Query { sender, query } = &m.body {
        enc.bytes(b"a");
        query_args(&mut enc, sender.as_bytes(), query);
    }
    if let Body::Error(e) = &m.body {
        enc.bytes(b"e")
            .begin_list()
            .int(e.code.code())
            .bytes(e.message)
            .end();
    }
    if let Some(ip) = &m.requester_ip {
        let (compact, len) = peer_bytes(ip);
        enc.bytes(b"ip").bytes(&compact[..len]);
    }
    if let Body::Query { query, .. } = &m.body {
        enc.bytes(b"q").bytes(query.method());
    }
    if let Body::Response(r) = &m.body {
        enc.bytes(b"r");
        response(&mut enc, r);
    }
    if m.read_only {
        enc.bytes(b"ro").int(1);
    }
    enc.bytes(b"t").bytes(m.transaction_id);
    if let Some(v) = m.version {
        enc.bytes(b"v").bytes(v);
    }
    let y: &[u8] = match m.body {
        Body::Query { .. } => b"q",
        Body::Response(_) => b"r",
        Body::Error(_) => b"e",
    };
    enc.bytes(b"y").bytes(y);
    enc.end();
}
