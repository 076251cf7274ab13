//! `dhtd ping`, `find-node`, `get-peers`: one query to one node, by hand.
//! No node of ours is started: a socket on `--listen` (an ephemeral port by
//! default) sends the query, flagged read-only (BEP 43) so that the node
//! does not put this one-off socket in its table, and waits for the answer.

use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

use dhtd::NodeId;
use dhtd_protocol::krpc::{Body, Message, Query, Response};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

use crate::settings::{self, Defaults, NodeArgs};
use crate::{parse_info_hash, Failure};

const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// An answer: the datagram, who sent it, and the round trip.
struct Answer {
    datagram: Vec<u8>,
    from: SocketAddr,
    rtt: Duration,
}

impl Answer {
    /// The response inside, or the KRPC error as a failure.
    fn response(&self) -> Result<(Message<'_>, Response<'_>), Failure> {
        let m = Message::decode(&self.datagram).map_err(|e| {
            Failure::Failed(format!("{} answered something unreadable: {e}", self.from))
        })?;
        match m.body.clone() {
            Body::Response(r) => Ok((m, r)),
            Body::Error(e) => Err(Failure::Failed(format!(
                "{} answered error {}: {}",
                self.from,
                e.code.code(),
                String::from_utf8_lossy(e.message)
            ))),
            Body::Query { .. } => Err(Failure::Failed(format!(
                "{} sent a query, not an answer",
                self.from
            ))),
        }
    }
}

fn exchange(args: &NodeArgs, addr: &str, query: Query<'_>) -> Result<Answer, Failure> {
    let settings = settings::resolve(args, Defaults::TOOL)?;
    let to = addr
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| Failure::Usage(format!("`{addr}` is not a HOST:PORT that resolves")))?;
    // The listen address of the destination's family.
    let local = settings
        .config
        .listen
        .iter()
        .copied()
        .find(|a| a.is_ipv4() == to.is_ipv4())
        .ok_or_else(|| Failure::Usage(format!("no --listen address of {to}'s address family")))?;
    let socket =
        UdpSocket::bind(local).map_err(|e| Failure::Failed(format!("cannot bind {local}: {e}")))?;
    let mut rng = StdRng::from_os_rng();
    let tid = rng.next_u32().to_be_bytes();
    let datagram = Message {
        transaction_id: &tid,
        version: Some(dhtd_protocol::server::VERSION),
        requester_ip: None,
        read_only: true,
        body: Body::Query {
            sender: NodeId::random(&mut rng),
            query,
        },
    }
    .to_bytes();
    let sent = Instant::now();
    socket
        .send_to(&datagram, to)
        .map_err(|e| Failure::Failed(format!("cannot send to {to}: {e}")))?;
    let mut buf = [0u8; 2048];
    while let Some(left) = ANSWER_TIMEOUT
        .checked_sub(sent.elapsed())
        .filter(|l| !l.is_zero())
    {
        socket
            .set_read_timeout(Some(left))
            .map_err(|e| Failure::Failed(e.to_string()))?;
        let Ok((n, from)) = socket.recv_from(&mut buf) else {
            break;
        };
        let ours = Message::decode(&buf[..n]).is_ok_and(|m| m.transaction_id == tid);
        if from == to && ours {
            return Ok(Answer {
                datagram: buf[..n].to_vec(),
                from,
                rtt: sent.elapsed(),
            });
        }
    }
    Err(Failure::Failed(format!(
        "no answer from {to} within {ANSWER_TIMEOUT:?}"
    )))
}

fn printable(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| {
            if b.is_ascii_graphic() {
                (*b as char).to_string()
            } else {
                format!("\\x{b:02x}")
            }
        })
        .collect()
}

fn print_nodes(r: &Response<'_>) {
    for n in r.nodes.iter().chain(r.nodes6.iter()).flat_map(|n| n.iter()) {
        println!("node {} {}", n.id, n.addr);
    }
}

pub(crate) async fn ping(addr: &str, args: &NodeArgs) -> Result<(), Failure> {
    let answer = exchange(args, addr, Query::Ping)?;
    let (m, r) = answer.response()?;
    let version = m.version.map_or_else(|| "none".to_owned(), printable);
    println!("id {}, version {version}, rtt {:.1?}", r.id, answer.rtt);
    if let Some(seen) = m.requester_ip {
        println!("it sees us at {seen}");
    }
    Ok(())
}

pub(crate) async fn find_node(
    addr: &str,
    target: Option<&str>,
    args: &NodeArgs,
) -> Result<(), Failure> {
    let target = match target {
        Some(t) => t
            .parse::<NodeId>()
            .map_err(|_| Failure::Usage(format!("`{t}` is not a node id (40 hex digits)")))?,
        None => NodeId::random(&mut StdRng::from_os_rng()),
    };
    let answer = exchange(args, addr, Query::FindNode { target, want: None })?;
    let (_, r) = answer.response()?;
    println!("id {}, rtt {:.1?}, target {target}", r.id, answer.rtt);
    print_nodes(&r);
    Ok(())
}

pub(crate) async fn get_peers(addr: &str, info_hash: &str, args: &NodeArgs) -> Result<(), Failure> {
    let info_hash = parse_info_hash(info_hash)?;
    let answer = exchange(
        args,
        addr,
        Query::GetPeers {
            info_hash,
            want: None,
            scrape: false,
            noseed: false,
        },
    )?;
    let (_, r) = answer.response()?;
    println!("id {}, rtt {:.1?}", r.id, answer.rtt);
    if let Some(token) = r.token {
        println!(
            "token {}",
            token.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
    }
    for p in r.values.iter().flat_map(|v| v.iter()) {
        println!("peer {p}");
    }
    print_nodes(&r);
    Ok(())
}
