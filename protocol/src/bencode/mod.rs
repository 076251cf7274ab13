//! Bencode (BEP 3), written for hostile input.
//!
//! What it does: a pull decoder ([`Decoder`]) over a borrowed byte slice that
//! never recurses, never allocates, and checks every declared length against
//! the input that is left; an [`Encoder`] that appends to a `Vec<u8>`; and a
//! generic [`Value`] tree for tools (`dhtd decode`, `.torrent` files).
//!
//! What it does not do: it does not check that dictionary keys are sorted
//! (real clients do not all sort them, and KRPC does not depend on order).
//!
//! [Implementation notes] Why not the `bencode` crate: 0.1.16 aborts the
//! process on `99999999999999999999:` (it allocates the declared length),
//! panics on truncated input, wraps large integers and overflows the stack on
//! deep nesting. Every limit here ([`Limits`]) is enforced before any work is
//! done on the value it guards.

mod decode;
mod encode;
mod value;

pub use decode::{DecodeError, DecodeErrorKind, Decoder, Kind, Limits};
pub use encode::Encoder;
pub use value::Value;
