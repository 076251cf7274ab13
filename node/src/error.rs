//! What can go wrong: starting a node ([`StartError`], with
//! [`ConfigError`] for a setting it cannot run with) and a request to a
//! running one ([`Error`]).

use std::net::SocketAddr;

use dhtd_protocol::node::{InvalidSetting, QueryFailure};

pub use dhtd_protocol::telemetry::NotSent;

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// A setting of the [`Config`](crate::Config) is out of range.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// The UDP socket could not be bound.
    #[error("cannot bind UDP {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The socket's receive buffer could not be set
    /// ([`Config::recv_buffer`](crate::Config::recv_buffer)).
    #[error("recv_buffer: cannot set the UDP receive buffer to {bytes} bytes: {source}")]
    RecvBuffer {
        /// The size asked for.
        bytes: usize,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The actor threads could not be started.
    #[error("cannot start the actor threads: {0}")]
    Runtime(#[source] std::io::Error),
    /// The runtime given to the builder has been stopped.
    #[error("the runtime has stopped")]
    RuntimeStopped,
}

/// A setting a node cannot run with.
///
/// ```
/// let mut config = dhtd::Config::local("127.0.0.1:0".parse().unwrap(), &[]);
/// config.dht.lookup.k = 0;
/// let error = config.validate().unwrap_err();
/// assert_eq!(error.setting(), "dht.lookup.k");
/// assert_eq!(error.to_string(), "dht.lookup.k: must be at least 1");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: {problem}")]
pub struct ConfigError {
    setting: String,
    problem: String,
}

impl ConfigError {
    pub(crate) fn new(setting: impl Into<String>, problem: impl Into<String>) -> Self {
        ConfigError {
            setting: setting.into(),
            problem: problem.into(),
        }
    }

    /// The setting, as its path in [`Config`](crate::Config): `listen`,
    /// `dht.lookup.k`, …
    pub fn setting(&self) -> &str {
        &self.setting
    }

    /// What is wrong with it.
    pub fn problem(&self) -> &str {
        &self.problem
    }
}

impl ConfigError {
    pub(crate) fn of_core(e: InvalidSetting) -> Self {
        ConfigError::new(format!("dht.{}", e.setting), e.problem)
    }
}

/// A KRPC error that a node answered with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("error {code}: {message}")]
pub struct RemoteError {
    /// The code: 201 generic, 202 server, 203 protocol, 204 method unknown.
    pub code: i64,
    /// The node's text (at most 256 bytes of it, lossily decoded).
    pub message: String,
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The node has been shut down.
    #[error("the DHT node has shut down")]
    Shutdown,
    /// `host:port` did not resolve to any address.
    #[error("cannot resolve {0}")]
    Resolve(String),
    /// The node did not answer in time.
    #[error("no answer (timeout)")]
    Timeout,
    /// The node answered with a KRPC error.
    #[error("the node answered with {0}")]
    Remote(RemoteError),
    /// A lookup or announce reached no node at all: the node has no
    /// contacts yet, or the network is unreachable.
    #[error("no node was reached")]
    NoNodeReached,
    /// Too many lookups were waiting already
    /// (`dht.lookup_limits.max_waiting`); try again later.
    #[error("too many lookups are waiting")]
    Overloaded,
    /// The node answered, but not with what the method asks for: it does
    /// not implement it (a `sample_infohashes` answered like `find_node`).
    #[error("the node does not support this method")]
    Unsupported,
    /// What was asked is not valid (a BEP 44 value too big, a salt too
    /// long); says why.
    #[error("invalid: {0}")]
    Invalid(String),
    /// We did not send the query.
    #[error("query not sent: {}", .0.label())]
    NotSent(NotSent),
}

impl Error {
    pub(crate) fn of(failure: QueryFailure) -> Self {
        match failure {
            QueryFailure::Timeout => Error::Timeout,
            QueryFailure::Remote(e) => Error::Remote(RemoteError {
                code: e.code,
                message: e.message,
            }),
            QueryFailure::NotSent(why) => Error::NotSent(why),
        }
    }
}
