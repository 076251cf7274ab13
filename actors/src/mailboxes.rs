//! A node's actors before they run: their mailboxes and addresses first, so
//! that every actor can hold every other's address through one [`Links`],
//! then each piece in its shell, to be run on whichever thread the embedder
//! chooses.

use std::sync::Arc;

use actix::dev::channel::{channel, AddressReceiver};
use actix::{Actor, Addr, Context};
use dhtd_protocol::node::{Piece, Pieces};
use dhtd_protocol::telemetry::{Component, Telemetry};

use crate::api::ApiSinks;
use crate::clock::Clock;
use crate::links::{IoHandler, Links};
use crate::shell::Shell;
use crate::socket::DatagramSender;
use crate::{
    AnnounceStoreActor, LookupsActor, RateLimiterActor, RoutingActor, SupervisorActor,
    TransactionsActor,
};

/// The addresses of a node's shells.
#[derive(Clone)]
pub struct Addresses {
    /// The gate and the pacer.
    pub rate_limiter: Addr<RateLimiterActor>,
    /// The routing table.
    pub routing: Addr<RoutingActor>,
    /// The transaction table.
    pub transactions: Addr<TransactionsActor>,
    /// The announce store.
    pub store: Addr<AnnounceStoreActor>,
    /// The lookup pool.
    pub lookups: Addr<LookupsActor>,
    /// The bootstrap.
    pub supervisor: Addr<SupervisorActor>,
}

/// Their mailboxes, for starting them.
pub struct Mailboxes {
    rate_limiter: AddressReceiver<RateLimiterActor>,
    routing: AddressReceiver<RoutingActor>,
    transactions: AddressReceiver<TransactionsActor>,
    store: AddressReceiver<AnnounceStoreActor>,
    lookups: AddressReceiver<LookupsActor>,
    supervisor: AddressReceiver<SupervisorActor>,
}

/// An actor's address and the mailbox to start it on.
pub fn mailbox<A: Actor<Context = Context<A>>>(capacity: usize) -> (Addr<A>, AddressReceiver<A>) {
    let (tx, rx) = channel::<A>(capacity);
    (Addr::new(tx), rx)
}

/// Mailboxes of `capacity` messages for every shell of a node.
pub fn mailboxes(capacity: usize) -> (Addresses, Mailboxes) {
    let (rate_limiter, r1) = mailbox(capacity);
    let (routing, r2) = mailbox(capacity);
    let (transactions, r3) = mailbox(capacity);
    let (store, r4) = mailbox(capacity);
    let (lookups, r5) = mailbox(capacity);
    let (supervisor, r6) = mailbox(capacity);
    let addresses = Addresses {
        rate_limiter,
        routing,
        transactions,
        store,
        lookups,
        supervisor,
    };
    let mailboxes = Mailboxes {
        rate_limiter: r1,
        routing: r2,
        transactions: r3,
        store: r4,
        lookups: r5,
        supervisor: r6,
    };
    (addresses, mailboxes)
}

impl Addresses {
    /// The wiring between them.
    pub fn links(&self, api: ApiSinks, io: IoHandler, telemetry: Arc<Telemetry>) -> Links {
        Links {
            rate_limiter: self.rate_limiter.clone().recipient(),
            routing: self.routing.clone().recipient(),
            transactions: self.transactions.clone().recipient(),
            store: self.store.clone().recipient(),
            lookups: self.lookups.clone().recipient(),
            supervisor: self.supervisor.clone().recipient(),
            api,
            io,
            telemetry,
        }
    }
}

/// Starts one shell when called, on the calling Arbiter.
pub type Starter = Box<dyn FnOnce() + Send>;

fn starter<P>(rx: AddressReceiver<Shell<P>>, shell: Shell<P>) -> Starter
where
    P: Piece + Unpin + Send + 'static,
    P::Input: Send,
{
    Box::new(move || {
        Context::with_receiver(rx).run(shell);
    })
}

/// What every shell of a node is made with.
struct Wiring<'a> {
    clock: &'a Clock,
    links: &'a Links,
    sender: &'a DatagramSender,
    capacity: usize,
}

impl Wiring<'_> {
    fn shell<P: Piece + Unpin + 'static>(&self, piece: P) -> Shell<P> {
        Shell::new(
            piece,
            self.clock.clone(),
            self.links.clone(),
            self.sender.clone(),
            self.capacity,
        )
    }
}

impl Mailboxes {
    /// Each piece in its shell, ready to start: call each starter on the
    /// Arbiter its component should run on.
    pub fn shells(
        self,
        pieces: Pieces,
        clock: &Clock,
        links: &Links,
        sender: &DatagramSender,
        capacity: usize,
    ) -> Vec<(Component, Starter)> {
        let new = Wiring {
            clock,
            links,
            sender,
            capacity,
        };
        let rate_limiter = new.shell(pieces.rate_limiter);
        let routing = new.shell(pieces.routing);
        let transactions = new.shell(pieces.transactions);
        let store = new.shell(pieces.store);
        let lookups = new.shell(pieces.lookups);
        let supervisor = new.shell(pieces.supervisor);
        vec![
            (
                Component::RateLimiter,
                starter(self.rate_limiter, rate_limiter),
            ),
            (Component::RoutingTable, starter(self.routing, routing)),
            (
                Component::Transactions,
                starter(self.transactions, transactions),
            ),
            (Component::AnnounceStore, starter(self.store, store)),
            (Component::Lookups, starter(self.lookups, lookups)),
            (Component::Supervisor, starter(self.supervisor, supervisor)),
        ]
    }
}
