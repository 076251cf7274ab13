//! Metric labels: each a key and a small fixed set of values, so that no
//! label can take an unbounded value (a peer's address, a node id).

/// One label of a metric: a key and a small fixed set of values.
pub trait Label: Copy + Eq + std::fmt::Debug + 'static {
    /// The label's key (`reason`, `method`, …).
    const KEY: &'static str;
    /// Every value, in declaration order.
    const ALL: &'static [Self];
    /// Position in [`Label::ALL`].
    fn index(self) -> usize;
    /// The label value as exported.
    fn value(self) -> &'static str;
}

/// The label set of a metric: none, one [`Label`], or a pair.
pub trait Labels: Copy + 'static {
    /// Cells (label combinations) of a metric with these labels.
    const COUNT: usize;
    /// This combination's cell.
    fn cell(self) -> usize;
    /// The `(key, value)` pairs of cell `i`.
    fn pairs(i: usize) -> Vec<(&'static str, &'static str)>;
}

impl Labels for () {
    const COUNT: usize = 1;
    fn cell(self) -> usize {
        0
    }
    fn pairs(_: usize) -> Vec<(&'static str, &'static str)> {
        Vec::new()
    }
}

impl<L: Label> Labels for L {
    const COUNT: usize = L::ALL.len();
    fn cell(self) -> usize {
        self.index()
    }
    fn pairs(i: usize) -> Vec<(&'static str, &'static str)> {
        vec![(L::KEY, L::ALL[i].value())]
    }
}

impl<A: Label, B: Label> Labels for (A, B) {
    const COUNT: usize = A::ALL.len() * B::ALL.len();
    fn cell(self) -> usize {
        self.0.index() * B::ALL.len() + self.1.index()
    }
    fn pairs(i: usize) -> Vec<(&'static str, &'static str)> {
        let (a, b) = (i / B::ALL.len(), i % B::ALL.len());
        vec![(A::KEY, A::ALL[a].value()), (B::KEY, B::ALL[b].value())]
    }
}

/// Declares a label enum: its values, their exported text, and [`Label`].
macro_rules! label {
    ($(#[$doc:meta])* $name:ident = $key:literal { $($(#[$vdoc:meta])* $variant:ident => $text:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum $name { $($(#[$vdoc])* $variant,)+ }

        impl Label for $name {
            const KEY: &'static str = $key;
            const ALL: &'static [$name] = &[$($name::$variant,)+];
            fn index(self) -> usize {
                self as usize
            }
            fn value(self) -> &'static str {
                match self { $($name::$variant => $text,)+ }
            }
        }

        impl $name {
            /// The exported label value.
            pub fn label(self) -> &'static str {
                Label::value(self)
            }
        }
    };
}

label!(
    /// Why a BEP 44 item left the store.
    ItemDrop = "reason" {
        /// Not put again within its lifetime.
        Expired => "expired",
        /// Evicted for a new item (`items.max_items`, `items.max_bytes`).
        Evicted => "evicted",
    }
);

label!(
    /// What became of a BEP 44 `put`.
    ItemPut = "outcome" {
        /// Stored anew.
        Stored => "stored",
        /// A mutable item replaced by a higher sequence number.
        Updated => "updated",
        /// The same item again: its lifetime starts over.
        Refreshed => "refreshed",
        /// Refused: no valid token (203).
        BadToken => "bad_token",
        /// Refused: value over 1,000 bytes (205).
        ValueTooBig => "value_too_big",
        /// Refused: signature invalid (206).
        InvalidSignature => "invalid_signature",
        /// Refused: salt over 64 bytes (207).
        SaltTooBig => "salt_too_big",
        /// Refused: `cas` mismatch (301).
        CasMismatch => "cas_mismatch",
        /// Refused: sequence number not above the stored one (302).
        SeqTooLow => "seq_too_low",
        /// Refused: the store is full of items being read (202).
        StoreFull => "store_full",
    }
);

label!(
    /// Why an inbound datagram was dropped without an answer.
    DropReason = "reason" {
        /// The source IP was over its budget.
        RateLimited => "rate_limited",
        /// The source's /24 (/64) was over its budget.
        PrefixRateLimited => "prefix_rate_limited",
        /// Too many source IPs at once (a spoofed flood).
        TooManySources => "too_many_sources",
        /// The next actor's mailbox was full.
        MailboxFull => "mailbox_full",
        /// Not a KRPC message, and not answerable.
        DecodeError => "decode_error",
        /// A response matching no query we sent.
        UnknownTransaction => "unknown_tid",
        /// A query arrived while we are read-only (BEP 43): not answered.
        ReadOnly => "read_only",
        /// The socket refused an outgoing datagram (buffer full).
        SendFailed => "send_failed",
        /// A transaction id longer than the node echoes.
        LongTransactionId => "long_tid",
        /// An answer the upload budget could not carry.
        UploadThrottled => "upload_throttled",
    }
);

label!(
    /// A KRPC method, as counted.
    Method = "method" {
        /// `ping`.
        Ping => "ping",
        /// `find_node`.
        FindNode => "find_node",
        /// `get_peers`.
        GetPeers => "get_peers",
        /// `announce_peer`.
        AnnouncePeer => "announce_peer",
        /// `sample_infohashes` (BEP 51).
        SampleInfohashes => "sample_infohashes",
        /// `get` (BEP 44).
        Get => "get",
        /// `put` (BEP 44).
        Put => "put",
        /// Anything else.
        Other => "other",
    }
);

label!(
    /// Why an outbound query was held back before it went out.
    Delay = "reason" {
        /// The same target was asked of the same node too recently: it
        /// waits until the spacing has passed.
        Spacing => "spacing",
        /// The outbound query budget was spent: it waits in the queue.
        Budget => "budget",
        /// The upload budget (bytes/s) was spent: it waits in the queue.
        Upload => "upload",
    }
);

label!(
    /// Why an outbound query was never sent.
    NotSent = "reason" {
        /// The outbound queue is full (the query budget is exhausted).
        QueueFull => "queue_full",
        /// Too many recent (node, target) pairs are remembered to space
        /// another one: sending less is the safe side.
        SpacingFull => "spacing_full",
        /// Too many queries are awaiting answers.
        TooManyPending => "too_many_pending",
    }
);

label!(
    /// A KRPC error code, as counted.
    ErrorLabel = "code" {
        /// 201.
        Generic => "201",
        /// 202.
        Server => "202",
        /// 203.
        Protocol => "203",
        /// 204.
        MethodUnknown => "204",
        /// Any other code.
        Other => "other",
    }
);

impl ErrorLabel {
    /// The label of a numeric code.
    pub fn of(code: i64) -> Self {
        match code {
            201 => ErrorLabel::Generic,
            202 => ErrorLabel::Server,
            203 => ErrorLabel::Protocol,
            204 => ErrorLabel::MethodUnknown,
            _ => ErrorLabel::Other,
        }
    }
}

label!(
    /// One of a node's components: the actors of the actor driver.
    Component = "actor" {
        /// The UDP socket and its receive loop.
        Socket => "socket",
        /// Inbound admission and the outbound pacer.
        RateLimiter => "rate_limiter",
        /// The k-buckets and their upkeep.
        RoutingTable => "routing_table",
        /// Outstanding outbound queries.
        Transactions => "transactions",
        /// Stored peers, token secrets, and the answers to queries.
        AnnounceStore => "announce_store",
        /// Running lookups.
        Lookups => "lookups",
        /// Bootstrap and the public API's front.
        Supervisor => "supervisor",
    }
);

label!(
    /// Why an actor was restarted.
    RestartReason = "reason" {
        /// A handler panicked; the panic was caught at its boundary.
        Panicked => "panicked",
    }
);

label!(
    /// Why an `announce_peer` we received was refused.
    AnnounceRefusal = "reason" {
        /// The token was missing, forged or expired.
        BadToken => "bad_token",
        /// Port 0.
        BadPort => "bad_port",
        /// The store holds its cap of info hashes, all closer to our id.
        InfoHashesFull => "info_hashes_full",
        /// Storing is off (`max_peers_per_info_hash` 0).
        StoringOff => "storing_off",
        /// The address holds its quota of stored announces.
        IpQuota => "ip_quota",
        /// The address's /24 or /64 holds its quota of stored announces.
        PrefixQuota => "prefix_quota",
    }
);

label!(
    /// Why a node that answered us was kept out of the routing table.
    RoutingRefusal = "reason" {
        /// Its bucket holds another node at its address.
        SameIp => "same_ip",
        /// Its bucket holds its share of its /24 (/64).
        SamePrefix => "same_prefix",
        /// Its id is held, healthy, at another address (a spoof or a clash).
        IdAtOtherAddress => "id_at_other_address",
    }
);

label!(
    /// A cap of the announce store: what an announce outcome names when one
    /// bites, and the `cap` label of the store's metrics.
    StoreCap = "cap" {
        /// Info hashes held (`max_info_hashes`).
        InfoHashes => "info_hashes",
        /// Peers per info hash (`max_peers_per_info_hash`).
        PeersPerInfoHash => "peers_per_info_hash",
        /// Ports of one address per info hash (`max_ports_per_ip`).
        PortsPerIp => "ports_per_ip",
        /// Announces held from one address (`max_announces_per_ip`).
        AnnouncesPerIp => "announces_per_ip",
        /// Announces held from one /24 or /64 (`max_announces_per_prefix`).
        AnnouncesPerPrefix => "announces_per_prefix",
    }
);

label!(
    /// What a lookup was for, as counted.
    LookupLabel = "kind" {
        /// get_peers without an announce.
        GetPeers => "get_peers",
        /// find_node (refreshes, bootstrap, callers).
        FindNode => "find_node",
        /// get_peers followed by announce_peer.
        Announce => "announce",
    }
);

label!(
    /// How a lookup ended, as counted.
    LookupOutcome = "outcome" {
        /// Some node answered.
        Answered => "answered",
        /// No node answered.
        Unanswered => "unanswered",
        /// Never started: too many lookups were waiting.
        Refused => "refused",
    }
);

label!(
    /// An address family (BEP 32), as counted.
    AddressFamily = "family" {
        /// IPv4.
        V4 => "ipv4",
        /// IPv6.
        V6 => "ipv6",
    }
);

impl From<crate::Family> for AddressFamily {
    fn from(f: crate::Family) -> Self {
        match f {
            crate::Family::V4 => AddressFamily::V4,
            crate::Family::V6 => AddressFamily::V6,
        }
    }
}

impl AddressFamily {
    /// The family of `addr`.
    pub fn of(addr: &std::net::SocketAddr) -> Self {
        crate::Family::of(addr).into()
    }
}

label!(
    /// A routing-table node state, as counted.
    NodeState = "state" {
        /// Answered recently.
        Good => "good",
        /// Silent for a while.
        Questionable => "questionable",
        /// Failed repeatedly.
        Bad => "bad",
    }
);

label!(
    /// A condition an operator should know about (rTorrent's warnings).
    Warning = "warning" {
        /// The routing table is empty: no DHT nodes available for a search.
        NoNodes => "no_nodes",
        /// The latest search a caller asked for reached no node.
        SearchUnsuccessful => "search_unsuccessful",
        /// The latest announce a caller asked for was accepted by no node.
        AnnounceFailed => "announce_failed",
        /// Replies arrive but nobody queries us: the port appears
        /// unreachable (forward the UDP port).
        PortUnreachable => "port_unreachable",
        /// Neither replies nor queries arrive: the port appears firewalled.
        PortFirewalled => "port_firewalled",
        /// The latest write of the state dir failed (a read-only or full
        /// disk): a restart would lose what was not saved.
        StateNotSaved => "state_not_saved",
    }
);

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Warning::NoNodes => "no DHT nodes available",
            Warning::SearchUnsuccessful => "search unsuccessful (no replies)",
            Warning::AnnounceFailed => "announce failed (no node accepted it)",
            Warning::PortUnreachable => "port appears unreachable (replies arrive but no queries)",
            Warning::PortFirewalled => "port appears firewalled (no replies and no queries)",
            Warning::StateNotSaved => {
                "state not saved (the state dir cannot be written: read-only or full disk?)"
            }
        })
    }
}
