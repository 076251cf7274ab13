//! Inbound: admit, decode once, dispatch.

use std::time::Instant;

use actix::{Context, Handler};
use bytes::Bytes;
use dhtd_protocol::krpc::{Body, ErrorCode, Message, Query};
use dhtd_protocol::rate_limit::Limited;
use dhtd_protocol::server::{self, Needs};
use dhtd_protocol::token::Token;

use super::RateLimiterActor;
use crate::counters::{DropReason, Method};
use crate::messages::{
    AnnounceArgs, DatagramReceived, DatagramsReceived, InboundQuery, InboundResponse, Reply,
};
use crate::supervision::guarded;

/// Whether a datagram claims to be a query, read without decoding it.
/// Bencoded dictionaries sort their keys, so `y` comes last in real
/// messages; a liar only moves itself to the other budget, and responses
/// are matched against our own queries before they can do anything.
fn looks_like_query(datagram: &[u8]) -> bool {
    // Searched from the end, where `y` sits: a few steps for real messages.
    datagram
        .windows(6)
        .rev()
        .find(|w| w.starts_with(b"1:y1:"))
        .is_some_and(|w| w[5] == b'q')
}

/// The counted method of a query.
pub(crate) fn method_of(query: &Query<'_>) -> Method {
    match query {
        Query::Ping => Method::Ping,
        Query::FindNode { .. } => Method::FindNode,
        Query::GetPeers { .. } => Method::GetPeers,
        Query::AnnouncePeer { .. } => Method::AnnouncePeer,
        Query::Unknown { .. } => Method::Other,
    }
}

impl Handler<DatagramsReceived> for RateLimiterActor {
    type Result = ();

    fn handle(&mut self, batch: DatagramsReceived, ctx: &mut Context<Self>) {
        self.counters.dequeued_inbound(batch.0.len());
        guarded(self, ctx, |this, _| {
            let now = Instant::now();
            for datagram in batch.0 {
                this.on_datagram(now, datagram);
            }
            this.flush();
        });
    }
}

impl RateLimiterActor {
    fn on_datagram(&mut self, now: Instant, DatagramReceived { from, bytes }: DatagramReceived) {
        let limiter = if looks_like_query(&bytes) {
            &mut self.queries_in
        } else {
            &mut self.responses_in
        };
        if let Err(limited) = limiter.admit(now, from.ip()) {
            self.counters.dropped(match limited {
                Limited::OverRate => DropReason::RateLimited,
                Limited::TooManySources => DropReason::TooManySources,
            });
            return;
        }
        let message = match Message::decode(&bytes) {
            Ok(m) => m,
            Err(e) => {
                match e.answerable() {
                    Some(tid) if !self.read_only => {
                        // BEP 5: a malformed query gets 203 where it can be answered.
                        let mut out = Vec::with_capacity(96);
                        let text = format!("malformed query: {}", e.kind);
                        server::encode_error(
                            &mut out,
                            tid,
                            from,
                            ErrorCode::Protocol,
                            text.as_bytes(),
                        );
                        self.counters.error_out(ErrorCode::Protocol.code());
                        self.sender.send(from, &out);
                    }
                    _ => self.counters.dropped(DropReason::DecodeError),
                }
                return;
            }
        };
        let tid = bytes.slice_ref(message.transaction_id);
        match message.body {
            Body::Query { sender, query } => {
                self.counters.query_in(method_of(&query));
                if self.read_only {
                    self.counters.dropped(DropReason::ReadOnly);
                    return;
                }
                let needs = server::needs(&query);
                let announce = match query {
                    Query::AnnouncePeer {
                        info_hash,
                        port,
                        implied_port,
                        token,
                    } => Some(AnnounceArgs {
                        info_hash,
                        port,
                        implied_port,
                        token: bytes.slice_ref(token),
                    }),
                    _ => None,
                };
                // Whatever needs a token goes to the store, which holds the secrets.
                let to_store = matches!(
                    needs,
                    Needs::Peers(_) | Needs::Store | Needs::NodesAndToken(_)
                );
                let query = InboundQuery {
                    from,
                    tid,
                    sender,
                    read_only: message.read_only,
                    needs,
                    announce,
                };
                if to_store {
                    self.to_store.push(query);
                } else {
                    self.to_routing.push(query);
                }
            }
            Body::Response(r) => {
                let nodes = r
                    .nodes
                    .iter()
                    .chain(r.nodes6.iter())
                    .flat_map(|n| n.iter())
                    .collect();
                let peers = r.values.iter().flat_map(|v| v.iter()).collect();
                let reply = Reply {
                    id: r.id,
                    nodes,
                    peers,
                    token: r.token.and_then(Token::new),
                    version: message.version.map(<[u8]>::to_vec),
                };
                self.respond(from, tid, message.requester_ip, Ok(reply));
            }
            Body::Error(e) => self.respond(from, tid, message.requester_ip, Err(e.code.code())),
        }
    }

    fn respond(
        &mut self,
        from: std::net::SocketAddr,
        tid: Bytes,
        requester_ip: Option<std::net::SocketAddr>,
        result: Result<Reply, i64>,
    ) {
        let response = InboundResponse {
            from,
            tid,
            requester_ip,
            result,
        };
        self.to_transactions.push(response);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_told_from_responses_without_decoding() {
        assert!(looks_like_query(
            b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe"
        ));
        assert!(!looks_like_query(
            b"d1:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re"
        ));
        assert!(!looks_like_query(b"garbage"));
    }
}
