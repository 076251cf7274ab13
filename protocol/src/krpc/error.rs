//! KRPC error codes, and why a datagram failed to parse.

use thiserror::Error;

use crate::bencode::DecodeError;

/// A KRPC error code (BEP 5), with room for the non-standard ones seen on
/// the wire (bittorrent-dht sends 400 for BEP 44 failures).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 201: generic error.
    Generic,
    /// 202: server error.
    Server,
    /// 203: protocol error (malformed packet, invalid arguments, bad token).
    Protocol,
    /// 204: method unknown.
    MethodUnknown,
    /// Any other code.
    Other(i64),
}

impl ErrorCode {
    /// The numeric code.
    pub fn code(self) -> i64 {
        match self {
            ErrorCode::Generic => 201,
            ErrorCode::Server => 202,
            ErrorCode::Protocol => 203,
            ErrorCode::MethodUnknown => 204,
            ErrorCode::Other(c) => c,
        }
    }

    /// From a numeric code.
    pub fn from_code(code: i64) -> Self {
        match code {
            201 => ErrorCode::Generic,
            202 => ErrorCode::Server,
            203 => ErrorCode::Protocol,
            204 => ErrorCode::MethodUnknown,
            c => ErrorCode::Other(c),
        }
    }
}

/// A datagram that is not a valid KRPC message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("{kind}")]
pub struct ParseError<'a> {
    /// What was wrong.
    pub kind: ParseErrorKind,
    /// `t`, if it could be read: needed to answer with error 203.
    pub transaction_id: Option<&'a [u8]>,
    /// `y`, if it could be read.
    pub message_type: Option<&'a [u8]>,
    /// `q`, if it could be read.
    pub method: Option<&'a [u8]>,
}

impl<'a> ParseError<'a> {
    /// The transaction id to answer with error 203, if this was a query
    /// whose `t` was readable. Replies and errors are never answered, so
    /// two nodes cannot bounce errors at each other.
    pub fn answerable(&self) -> Option<&'a [u8]> {
        match self.message_type {
            Some(b"q") => self.transaction_id,
            _ => None,
        }
    }
}

/// The ways a datagram can fail to be a KRPC message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// Not valid bencode (including limits exceeded and trailing bytes).
    #[error("bencode: {0}")]
    Bencode(#[from] DecodeError),
    /// Valid bencode, but not a dictionary.
    #[error("message is not a dictionary")]
    NotADict,
    /// A required key is absent.
    #[error("missing '{0}' key")]
    MissingKey(&'static str),
    /// A key holds the wrong bencode type.
    #[error("wrong type for '{0}'")]
    WrongType(&'static str),
    /// A string has the wrong length (ids not 20 bytes, node lists not
    /// whole entries, …).
    #[error("invalid length {len} for '{key}'")]
    BadLength {
        /// The key.
        key: &'static str,
        /// The length found.
        len: usize,
    },
    /// A value outside its range (a port above 65535).
    #[error("invalid value for '{0}'")]
    BadValue(&'static str),
    /// `y` is not `q`, `r` or `e`.
    #[error("unknown message type")]
    UnknownMessageType,
}
