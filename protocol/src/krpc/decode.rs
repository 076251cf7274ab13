//! Datagram → [`Message`]: one pass over the bencode, collecting the keys
//! KRPC knows, then a check of what the message type requires.
//!
//! Keys are collected before they are interpreted because bencode sorts
//! them: `a` comes before `q` and `t`, so the method and transaction id are
//! not known yet when the arguments are read.

use std::net::SocketAddr;

use super::error::{ErrorCode, ParseError, ParseErrorKind};
use super::{Body, KrpcError, Message, PutArgs, Query, Response, SignedArgs, Want};
use crate::bencode::{DecodeError, Decoder, Kind, Limits};
use crate::compact::{decode_peer, BadNodeListLength, CompactNodes, CompactPeers};
use crate::id::{InfoHash, NodeId};

/// The top-level keys, as found.
#[derive(Default)]
struct Parts<'a> {
    t: Option<&'a [u8]>,
    y: Option<&'a [u8]>,
    q: Option<&'a [u8]>,
    v: Option<&'a [u8]>,
    ip: Option<SocketAddr>,
    ro: bool,
    a: Option<Fields<'a>>,
    r: Option<Fields<'a>>,
    e: Option<(i64, &'a [u8])>,
    /// The first problem that is not a bencode error; decoding goes on so
    /// that `t` and `y` can still be found.
    problem: Option<ParseErrorKind>,
}

/// The keys of an `a` or `r` dictionary that KRPC defines.
#[derive(Default)]
struct Fields<'a> {
    id: Option<&'a [u8]>,
    target: Option<&'a [u8]>,
    info_hash: Option<&'a [u8]>,
    token: Option<&'a [u8]>,
    nodes: Option<&'a [u8]>,
    nodes6: Option<&'a [u8]>,
    values: Option<&'a [u8]>,
    samples: Option<&'a [u8]>,
    v: Option<&'a [u8]>,
    k: Option<&'a [u8]>,
    sig: Option<&'a [u8]>,
    salt: Option<&'a [u8]>,
    seq: Option<i64>,
    cas: Option<i64>,
    bf_seeds: Option<&'a [u8]>,
    bf_peers: Option<&'a [u8]>,
    scrape: Option<i64>,
    noseed: Option<i64>,
    seed: Option<i64>,
    interval: Option<i64>,
    num: Option<i64>,
    port: Option<i64>,
    implied_port: Option<i64>,
    want: Option<Want>,
}

fn note(problem: &mut Option<ParseErrorKind>, kind: ParseErrorKind) {
    problem.get_or_insert(kind);
}

fn bytes_field<'a>(
    d: &mut Decoder<'a>,
    key: &'static str,
    problem: &mut Option<ParseErrorKind>,
) -> Result<Option<&'a [u8]>, DecodeError> {
    if d.peek_kind()? == Kind::Bytes {
        return d.bytes().map(Some);
    }
    note(problem, ParseErrorKind::WrongType(key));
    d.skip_value()?;
    Ok(None)
}

fn int_field(
    d: &mut Decoder<'_>,
    key: &'static str,
    problem: &mut Option<ParseErrorKind>,
) -> Result<Option<i64>, DecodeError> {
    if d.peek_kind()? == Kind::Int {
        return d.int().map(Some);
    }
    note(problem, ParseErrorKind::WrongType(key));
    d.skip_value()?;
    Ok(None)
}

/// A container of the expected kind, or a noted type error and a skip.
fn expect_container(
    d: &mut Decoder<'_>,
    kind: Kind,
    key: &'static str,
    problem: &mut Option<ParseErrorKind>,
) -> Result<bool, DecodeError> {
    if d.peek_kind()? == kind {
        return Ok(true);
    }
    note(problem, ParseErrorKind::WrongType(key));
    d.skip_value()?;
    Ok(false)
}

fn want_field(
    d: &mut Decoder<'_>,
    problem: &mut Option<ParseErrorKind>,
) -> Result<Option<Want>, DecodeError> {
    if !expect_container(d, Kind::List, "want", problem)? {
        return Ok(None);
    }
    d.begin_list()?;
    let mut want = Want::default();
    while d.next_item()? {
        match bytes_field(d, "want", problem)? {
            Some(b"n4") => want.v4 = true,
            Some(b"n6") => want.v6 = true,
            _ => {} // BEP 32: unknown families are ignored
        }
    }
    Ok(Some(want))
}

/// `values`: kept as the raw list after checking every item is a string.
fn values_field<'a>(
    d: &mut Decoder<'a>,
    problem: &mut Option<ParseErrorKind>,
) -> Result<Option<&'a [u8]>, DecodeError> {
    if !expect_container(d, Kind::List, "values", problem)? {
        return Ok(None);
    }
    let start = d.position();
    let mut ok = true;
    d.begin_list()?;
    while d.next_item()? {
        ok &= bytes_field(d, "values", problem)?.is_some();
    }
    Ok(ok.then(|| &d.input()[start..d.position()]))
}

fn fields<'a>(
    d: &mut Decoder<'a>,
    problem: &mut Option<ParseErrorKind>,
) -> Result<Fields<'a>, DecodeError> {
    let mut f = Fields::default();
    d.begin_dict()?;
    while let Some(key) = d.next_key()? {
        match key {
            b"id" => f.id = bytes_field(d, "id", problem)?,
            b"target" => f.target = bytes_field(d, "target", problem)?,
            b"info_hash" => f.info_hash = bytes_field(d, "info_hash", problem)?,
            b"token" => f.token = bytes_field(d, "token", problem)?,
            b"nodes" => f.nodes = bytes_field(d, "nodes", problem)?,
            b"nodes6" => f.nodes6 = bytes_field(d, "nodes6", problem)?,
            b"port" => f.port = int_field(d, "port", problem)?,
            b"implied_port" => f.implied_port = int_field(d, "implied_port", problem)?,
            b"want" => f.want = want_field(d, problem)?,
            b"values" => f.values = values_field(d, problem)?,
            b"samples" => f.samples = bytes_field(d, "samples", problem)?,
            b"v" => {
                // Any bencoded value, kept verbatim: it is hashed and signed
                // as it came.
                let start = d.position();
                d.skip_value()?;
                f.v = Some(&d.input()[start..d.position()]);
            }
            b"k" => f.k = bytes_field(d, "k", problem)?,
            b"sig" => f.sig = bytes_field(d, "sig", problem)?,
            b"salt" => f.salt = bytes_field(d, "salt", problem)?,
            b"seq" => f.seq = int_field(d, "seq", problem)?,
            b"cas" => f.cas = int_field(d, "cas", problem)?,
            b"BFsd" => f.bf_seeds = bytes_field(d, "BFsd", problem)?,
            b"BFpe" => f.bf_peers = bytes_field(d, "BFpe", problem)?,
            b"scrape" => f.scrape = int_field(d, "scrape", problem)?,
            b"noseed" => f.noseed = int_field(d, "noseed", problem)?,
            b"seed" => f.seed = int_field(d, "seed", problem)?,
            b"interval" => f.interval = int_field(d, "interval", problem)?,
            b"num" => f.num = int_field(d, "num", problem)?,
            _ => d.skip_value()?,
        }
    }
    Ok(f)
}

fn error_list<'a>(
    d: &mut Decoder<'a>,
    problem: &mut Option<ParseErrorKind>,
) -> Result<Option<(i64, &'a [u8])>, DecodeError> {
    if !expect_container(d, Kind::List, "e", problem)? {
        return Ok(None);
    }
    d.begin_list()?;
    let (mut code, mut message, mut index) = (None, &b""[..], 0);
    while d.next_item()? {
        match (index, d.peek_kind()?) {
            (0, Kind::Int) => code = Some(d.int()?),
            (1, Kind::Bytes) => message = d.bytes()?,
            (0 | 1, _) => {
                note(problem, ParseErrorKind::WrongType("e"));
                d.skip_value()?;
            }
            _ => d.skip_value()?,
        }
        index += 1;
    }
    if code.is_none() {
        note(problem, ParseErrorKind::WrongType("e"));
    }
    Ok(code.map(|c| (c, message)))
}

fn scan<'a>(input: &'a [u8], p: &mut Parts<'a>) -> Result<(), ParseErrorKind> {
    let mut d = Decoder::new(input, Limits::KRPC);
    if d.peek_kind()? != Kind::Dict {
        d.skip_value()?;
        d.finish()?;
        return Err(ParseErrorKind::NotADict);
    }
    d.begin_dict()?;
    while let Some(key) = d.next_key()? {
        let problem = &mut p.problem;
        match key {
            b"t" => p.t = bytes_field(&mut d, "t", problem)?,
            b"y" => p.y = bytes_field(&mut d, "y", problem)?,
            b"q" => p.q = bytes_field(&mut d, "q", problem)?,
            b"v" => p.v = bytes_field(&mut d, "v", problem)?,
            b"ip" => {
                if let Some(raw) = bytes_field(&mut d, "ip", problem)? {
                    p.ip = decode_peer(raw);
                    if p.ip.is_none() {
                        note(problem, bad_length("ip", raw));
                    }
                }
            }
            b"ro" => p.ro = int_field(&mut d, "ro", problem)? == Some(1),
            b"a" => {
                if expect_container(&mut d, Kind::Dict, "a", problem)? {
                    p.a = Some(fields(&mut d, problem)?);
                }
            }
            b"r" => {
                if expect_container(&mut d, Kind::Dict, "r", problem)? {
                    p.r = Some(fields(&mut d, problem)?);
                }
            }
            b"e" => p.e = error_list(&mut d, problem)?,
            _ => d.skip_value()?,
        }
    }
    d.finish()?;
    Ok(())
}

fn bad_length(key: &'static str, raw: &[u8]) -> ParseErrorKind {
    ParseErrorKind::BadLength {
        key,
        len: raw.len(),
    }
}

fn id20(raw: Option<&[u8]>, key: &'static str) -> Result<[u8; 20], ParseErrorKind> {
    let raw = raw.ok_or(ParseErrorKind::MissingKey(key))?;
    <[u8; 20]>::try_from(raw).map_err(|_| bad_length(key, raw))
}

fn query<'a>(method: &'a [u8], a: &Fields<'a>) -> Result<Query<'a>, ParseErrorKind> {
    Ok(match method {
        b"ping" => Query::Ping,
        b"find_node" => Query::FindNode {
            target: NodeId(id20(a.target, "target")?),
            want: a.want,
        },
        b"get_peers" => Query::GetPeers {
            info_hash: InfoHash(id20(a.info_hash, "info_hash")?),
            want: a.want,
            scrape: a.scrape == Some(1),
            noseed: a.noseed == Some(1),
        },
        b"announce_peer" => {
            let info_hash = InfoHash(id20(a.info_hash, "info_hash")?);
            let token = a.token.ok_or(ParseErrorKind::MissingKey("token"))?;
            let implied_port = a.implied_port.is_some_and(|v| v != 0);
            let port = match a.port {
                Some(p) => u16::try_from(p).map_err(|_| ParseErrorKind::BadValue("port"))?,
                // BEP 5: with implied_port the port argument is ignored, so it may be absent.
                None if implied_port => 0,
                None => return Err(ParseErrorKind::MissingKey("port")),
            };
            Query::AnnouncePeer {
                info_hash,
                port,
                implied_port,
                token,
                seed: a.seed == Some(1),
            }
        }
        b"get" => Query::Get {
            target: NodeId(id20(a.target, "target")?),
            seq: a.seq,
            want: a.want,
        },
        b"put" => Query::Put(PutArgs {
            token: a.token.ok_or(ParseErrorKind::MissingKey("token"))?,
            value: a.v.ok_or(ParseErrorKind::MissingKey("v"))?,
            signed: signed(a)?,
            cas: a.cas,
        }),
        b"sample_infohashes" => Query::SampleInfohashes {
            target: NodeId(id20(a.target, "target")?),
            want: a.want,
        },
        _ => Query::Unknown {
            method,
            target: a.target.and_then(NodeId::from_slice),
            info_hash: a.info_hash.and_then(InfoHash::from_slice),
            want: a.want,
        },
    })
}

/// The signed part of a BEP 44 item: all of `k`, `seq` and `sig`, or
/// none (then `salt` is ignored).
fn signed<'a>(f: &Fields<'a>) -> Result<Option<SignedArgs<'a>>, ParseErrorKind> {
    let Some(k) = f.k else { return Ok(None) };
    let key = <&[u8; 32]>::try_from(k).map_err(|_| bad_length("k", k))?;
    let raw_sig = f.sig.ok_or(ParseErrorKind::MissingKey("sig"))?;
    let sig = <&[u8; 64]>::try_from(raw_sig).map_err(|_| bad_length("sig", raw_sig))?;
    Ok(Some(SignedArgs {
        key,
        salt: f.salt.unwrap_or_default(),
        seq: f.seq.ok_or(ParseErrorKind::MissingKey("seq"))?,
        sig,
    }))
}

/// A BEP 33 filter: exactly 256 bytes.
fn bloom<'a>(raw: Option<&'a [u8]>, key: &'static str) -> Result<Option<&'a [u8]>, ParseErrorKind> {
    match raw {
        Some(raw) if raw.len() != crate::scrape::BLOOM_LEN => Err(bad_length(key, raw)),
        raw => Ok(raw),
    }
}

fn response<'a>(r: &Fields<'a>) -> Result<Response<'a>, ParseErrorKind> {
    type Make<'a> = fn(&'a [u8]) -> Result<CompactNodes<'a>, BadNodeListLength>;
    let nodes_of = |raw: Option<&'a [u8]>, key, make: Make<'a>| {
        raw.map(|raw| make(raw).map_err(|_| bad_length(key, raw)))
            .transpose()
    };
    Ok(Response {
        id: NodeId(id20(r.id, "id")?),
        nodes: nodes_of(r.nodes, "nodes", CompactNodes::v4)?,
        nodes6: nodes_of(r.nodes6, "nodes6", CompactNodes::v6)?,
        values: r.values.map(CompactPeers::from_checked_list),
        token: r.token,
        interval: r.interval,
        num: r.num,
        value: r.v,
        signed: signed(r)?,
        seeds_bloom: bloom(r.bf_seeds, "BFsd")?,
        peers_bloom: bloom(r.bf_peers, "BFpe")?,
        samples: match r.samples {
            Some(raw) if raw.len() % 20 != 0 => return Err(bad_length("samples", raw)),
            samples => samples,
        },
    })
}

fn body<'a>(p: &Parts<'a>) -> Result<Body<'a>, ParseErrorKind> {
    match p.y.ok_or(ParseErrorKind::MissingKey("y"))? {
        b"q" => {
            let method = p.q.ok_or(ParseErrorKind::MissingKey("q"))?;
            let a = p.a.as_ref().ok_or(ParseErrorKind::MissingKey("a"))?;
            let sender = NodeId(id20(a.id, "id")?);
            Ok(Body::Query {
                sender,
                query: query(method, a)?,
            })
        }
        b"r" => {
            let r = p.r.as_ref().ok_or(ParseErrorKind::MissingKey("r"))?;
            Ok(Body::Response(response(r)?))
        }
        b"e" => {
            let (code, message) = p.e.ok_or(ParseErrorKind::MissingKey("e"))?;
            Ok(Body::Error(KrpcError {
                code: ErrorCode::from_code(code),
                message,
            }))
        }
        _ => Err(ParseErrorKind::UnknownMessageType),
    }
}

pub(super) fn decode(input: &[u8]) -> Result<Message<'_>, ParseError<'_>> {
    let mut p = Parts::default();
    let scanned = scan(input, &mut p);
    let result = scanned
        .and_then(|()| p.problem.map_or(Ok(()), Err))
        .and_then(|()| body(&p));
    match result {
        Ok(body) => Ok(Message {
            // BEP 5 requires `t`; a query without one is still answered
            // (with an empty `t`), as libtorrent does.
            transaction_id: p.t.unwrap_or(b""),
            version: p.v,
            requester_ip: p.ip,
            read_only: p.ro,
            body,
        }),
        Err(kind) => Err(ParseError {
            kind,
            transaction_id: p.t,
            message_type: p.y,
            method: p.q,
        }),
    }
}
