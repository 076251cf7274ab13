//! The bounded pull decoder.

use thiserror::Error;

/// Bounds a decode may not exceed. Each exists so that one datagram cannot
/// make the decoder do unbounded work or nest without end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Deepest nesting of lists and dictionaries. Capped at 64.
    pub max_depth: u8,
    /// Most values (integers, strings, lists, dictionaries) in one input.
    pub max_items: u32,
}

impl Limits {
    /// For KRPC datagrams: KRPC itself nests three deep; BEP 44 values may
    /// nest a little more. libtorrent uses depth 10 for the same purpose.
    pub const KRPC: Limits = Limits {
        max_depth: 16,
        max_items: 4096,
    };
    /// For local files such as `.torrent` metainfo.
    pub const FILE: Limits = Limits {
        max_depth: 32,
        max_items: 1 << 22,
    };
}

/// Why a decode failed, and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("{kind} at byte {offset}")]
pub struct DecodeError {
    /// What went wrong.
    pub kind: DecodeErrorKind,
    /// Byte offset in the input where it was detected.
    pub offset: usize,
}

/// The kinds of bencode decode failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// The input ended inside a value.
    #[error("unexpected end of input")]
    UnexpectedEof,
    /// A byte that cannot start or continue a value here.
    #[error("unexpected byte 0x{0:02x}")]
    UnexpectedByte(u8),
    /// An integer or string length with leading zeros, `-0`, or no digits.
    #[error("non-canonical number")]
    NonCanonicalNumber,
    /// An integer outside the range of `i64`, or a length beyond `usize`.
    #[error("number out of range")]
    NumberOutOfRange,
    /// A string length larger than the rest of the input.
    #[error("string length {0} exceeds the input")]
    LengthExceedsInput(usize),
    /// Lists and dictionaries nested deeper than [`Limits::max_depth`].
    #[error("nested too deeply")]
    TooDeep,
    /// More values than [`Limits::max_items`].
    #[error("too many items")]
    TooManyItems,
    /// A dictionary key that is not a byte string.
    #[error("dictionary key is not a string")]
    KeyNotString,
    /// Bytes after the end of the top-level value.
    #[error("trailing bytes after the value")]
    TrailingBytes,
}

/// The type of the next value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `i…e`
    Int,
    /// `N:…`
    Bytes,
    /// `l…e`
    List,
    /// `d…e`
    Dict,
}

/// A cursor over one bencoded input.
///
/// Containers are walked with [`Decoder::begin_dict`] / [`Decoder::next_key`]
/// and [`Decoder::begin_list`] / [`Decoder::next_item`]; anything not wanted
/// is passed over with [`Decoder::skip_value`], which is iterative.
#[derive(Debug, Clone)]
pub struct Decoder<'a> {
    input: &'a [u8],
    pos: usize,
    depth: u8,
    items: u32,
    limits: Limits,
}

type Result<T> = std::result::Result<T, DecodeError>;

impl<'a> Decoder<'a> {
    /// A decoder at the start of `input`.
    pub fn new(input: &'a [u8], limits: Limits) -> Self {
        let limits = Limits {
            max_depth: limits.max_depth.min(64),
            ..limits
        };
        Decoder {
            input,
            pos: 0,
            depth: 0,
            items: 0,
            limits,
        }
    }

    /// Current byte offset.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The whole input.
    pub fn input(&self) -> &'a [u8] {
        self.input
    }

    fn err(&self, kind: DecodeErrorKind) -> DecodeError {
        DecodeError {
            kind,
            offset: self.pos,
        }
    }

    fn peek(&self) -> Result<u8> {
        self.input
            .get(self.pos)
            .copied()
            .ok_or_else(|| self.err(DecodeErrorKind::UnexpectedEof))
    }

    fn count_item(&mut self) -> Result<()> {
        self.items += 1;
        if self.items > self.limits.max_items {
            return Err(self.err(DecodeErrorKind::TooManyItems));
        }
        Ok(())
    }

    /// The type of the next value, without consuming it.
    pub fn peek_kind(&self) -> Result<Kind> {
        match self.peek()? {
            b'i' => Ok(Kind::Int),
            b'0'..=b'9' => Ok(Kind::Bytes),
            b'l' => Ok(Kind::List),
            b'd' => Ok(Kind::Dict),
            b => Err(self.err(DecodeErrorKind::UnexpectedByte(b))),
        }
    }

    /// Reads canonical decimal digits up to `terminator`. Returns the
    /// magnitude (as u64, checked) and whether a minus sign came first.
    fn digits(&mut self, terminator: u8, allow_negative: bool) -> Result<(u64, bool)> {
        let negative = allow_negative && self.peek()? == b'-';
        if negative {
            self.pos += 1;
        }
        let start = self.pos;
        let mut value: u64 = 0;
        loop {
            let b = self.peek()?;
            if b == terminator {
                break;
            }
            if !b.is_ascii_digit() {
                return Err(self.err(DecodeErrorKind::UnexpectedByte(b)));
            }
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(b - b'0')))
                .ok_or_else(|| self.err(DecodeErrorKind::NumberOutOfRange))?;
            self.pos += 1;
        }
        let len = self.pos - start;
        let leading_zero = len > 1 && self.input[start] == b'0';
        if len == 0 || leading_zero || (negative && value == 0) {
            return Err(DecodeError {
                kind: DecodeErrorKind::NonCanonicalNumber,
                offset: start,
            });
        }
        self.pos += 1; // the terminator
        Ok((value, negative))
    }

    /// Reads an integer `i…e`.
    pub fn int(&mut self) -> Result<i64> {
        match self.peek()? {
            b'i' => {}
            b => return Err(self.err(DecodeErrorKind::UnexpectedByte(b))),
        }
        self.count_item()?;
        let start = self.pos;
        self.pos += 1;
        let (magnitude, negative) = self.digits(b'e', true)?;
        let value = if negative {
            // i64::MIN has no positive counterpart, so negate in i128.
            i64::try_from(-i128::from(magnitude))
        } else {
            i64::try_from(magnitude)
        };
        value.map_err(|_| DecodeError {
            kind: DecodeErrorKind::NumberOutOfRange,
            offset: start,
        })
    }

    /// Reads a byte string `N:…`, borrowing it from the input.
    pub fn bytes(&mut self) -> Result<&'a [u8]> {
        match self.peek()? {
            b'0'..=b'9' => {}
            b => return Err(self.err(DecodeErrorKind::UnexpectedByte(b))),
        }
        self.count_item()?;
        let (len, _) = self.digits(b':', false)?;
        let remaining = self.input.len() - self.pos;
        // Compared before anything is sized by `len`: nothing is allocated here anyway,
        // but the check is what makes a declared length harmless.
        let len = usize::try_from(len)
            .ok()
            .filter(|&len| len <= remaining)
            .ok_or_else(|| {
                self.err(DecodeErrorKind::LengthExceedsInput(
                    usize::try_from(len).unwrap_or(usize::MAX),
                ))
            })?;
        let s = &self.input[self.pos..self.pos + len];
        self.pos += len;
        Ok(s)
    }

    fn open(&mut self, marker: u8) -> Result<()> {
        match self.peek()? {
            b if b == marker => {}
            b => return Err(self.err(DecodeErrorKind::UnexpectedByte(b))),
        }
        self.count_item()?;
        if self.depth >= self.limits.max_depth {
            return Err(self.err(DecodeErrorKind::TooDeep));
        }
        self.depth += 1;
        self.pos += 1;
        Ok(())
    }

    /// Enters a dictionary `d…`.
    pub fn begin_dict(&mut self) -> Result<()> {
        self.open(b'd')
    }

    /// Enters a list `l…`.
    pub fn begin_list(&mut self) -> Result<()> {
        self.open(b'l')
    }

    /// Consumes `e` if it is next, leaving the container. Returns whether it did.
    fn close_if_end(&mut self) -> Result<bool> {
        if self.peek()? == b'e' {
            self.pos += 1;
            self.depth = self.depth.saturating_sub(1);
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// In a dictionary: the next key, or `None` after consuming the closing `e`.
    /// The caller must then read or skip the value.
    pub fn next_key(&mut self) -> Result<Option<&'a [u8]>> {
        if self.close_if_end()? {
            return Ok(None);
        }
        match self.peek_kind()? {
            Kind::Bytes => self.bytes().map(Some),
            _ => Err(self.err(DecodeErrorKind::KeyNotString)),
        }
    }

    /// In a list: whether another item follows (`false` after consuming `e`).
    pub fn next_item(&mut self) -> Result<bool> {
        Ok(!self.close_if_end()?)
    }

    /// Passes over one value of any type, however nested, without recursion.
    pub fn skip_value(&mut self) -> Result<()> {
        // One bit per open container, innermost lowest: 1 = dictionary.
        // Depth is capped at 64, so the stack fits in a u64.
        let mut stack: u64 = 0;
        let mut open: u32 = 0;
        loop {
            match self.peek_kind()? {
                Kind::Int => {
                    self.int()?;
                }
                Kind::Bytes => {
                    self.bytes()?;
                }
                Kind::List => {
                    self.begin_list()?;
                    stack <<= 1;
                    open += 1;
                }
                Kind::Dict => {
                    self.begin_dict()?;
                    stack = (stack << 1) | 1;
                    open += 1;
                }
            }
            // Move to the next value to read, closing finished containers.
            loop {
                if open == 0 {
                    return Ok(());
                }
                let more = if stack & 1 == 1 {
                    self.next_key()?.is_some()
                } else {
                    self.next_item()?
                };
                if more {
                    break;
                }
                stack >>= 1;
                open -= 1;
            }
        }
    }

    /// Fails if anything follows the top-level value.
    pub fn finish(&self) -> Result<()> {
        if self.pos == self.input.len() {
            Ok(())
        } else {
            Err(self.err(DecodeErrorKind::TrailingBytes))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skip_all(input: &[u8]) -> Result<()> {
        let mut d = Decoder::new(input, Limits::KRPC);
        d.skip_value()?;
        d.finish()
    }

    #[test]
    fn integers_must_be_canonical() {
        for ok in [&b"i0e"[..], b"i-1e", b"i42e", b"i9223372036854775807e"] {
            assert!(skip_all(ok).is_ok(), "{:?}", std::str::from_utf8(ok));
        }
        assert_eq!(
            Decoder::new(b"i-9223372036854775808e", Limits::KRPC).int(),
            Ok(i64::MIN)
        );
        for (bad, kind) in [
            (&b"i-0e"[..], DecodeErrorKind::NonCanonicalNumber),
            (b"i03e", DecodeErrorKind::NonCanonicalNumber),
            (b"ie", DecodeErrorKind::NonCanonicalNumber),
            (b"i-e", DecodeErrorKind::NonCanonicalNumber),
            (b"i9223372036854775808e", DecodeErrorKind::NumberOutOfRange),
            (b"i99999999999999999999e", DecodeErrorKind::NumberOutOfRange),
            (b"i1x", DecodeErrorKind::UnexpectedByte(b'x')),
            (b"i12", DecodeErrorKind::UnexpectedEof),
        ] {
            assert_eq!(skip_all(bad).map_err(|e| e.kind), Err(kind), "{bad:?}");
        }
    }

    #[test]
    fn declared_lengths_are_checked_against_the_input() {
        let e = skip_all(b"99999999999999999999:").unwrap_err();
        assert_eq!(e.kind, DecodeErrorKind::NumberOutOfRange);
        let e = skip_all(b"9999999999:abc").unwrap_err();
        assert_eq!(e.kind, DecodeErrorKind::LengthExceedsInput(9_999_999_999));
        assert_eq!(
            skip_all(b"01:a").unwrap_err().kind,
            DecodeErrorKind::NonCanonicalNumber
        );
        assert!(skip_all(b"0:").is_ok());
    }

    /// Lengths of every width read right, and a length one past the input
    /// is refused, whatever its width.
    #[test]
    fn string_lengths_of_every_width() {
        let limits = Limits {
            max_depth: 4,
            max_items: 10,
        };
        for len in [0usize, 1, 9, 10, 99, 100, 999, 1000, 9999, 10000, 12345] {
            let mut input = format!("{len}:").into_bytes();
            input.extend(std::iter::repeat_n(b'x', len));
            let mut d = Decoder::new(&input, limits);
            assert_eq!(d.bytes().map(<[u8]>::len), Ok(len));
            assert_eq!(d.finish(), Ok(()));
            if len > 0 {
                input.pop();
                let e = Decoder::new(&input, limits).bytes().unwrap_err();
                assert_eq!(e.kind, DecodeErrorKind::LengthExceedsInput(len), "{len}");
            }
        }
        for bad in [&b"00:"[..], b"012:abcdefghijkl", b"00000:"] {
            let e = Decoder::new(bad, limits).bytes().unwrap_err();
            assert_eq!(e.kind, DecodeErrorKind::NonCanonicalNumber, "{bad:?}");
        }
        assert_eq!(
            Decoder::new(b"12x:", limits).bytes().unwrap_err().kind,
            DecodeErrorKind::UnexpectedByte(b'x')
        );
    }

    #[test]
    fn nesting_is_bounded_without_recursion() {
        let mut deep = vec![b'l'; 32_000];
        deep.extend(vec![b'e'; 32_000]);
        assert_eq!(skip_all(&deep).unwrap_err().kind, DecodeErrorKind::TooDeep);
        let mut ok = vec![b'l'; 16];
        ok.extend(vec![b'e'; 16]);
        assert!(skip_all(&ok).is_ok());
    }

    #[test]
    fn item_count_is_bounded() {
        let mut many = b"l".to_vec();
        for _ in 0..5000 {
            many.extend_from_slice(b"i1e");
        }
        many.push(b'e');
        assert_eq!(
            skip_all(&many).unwrap_err().kind,
            DecodeErrorKind::TooManyItems
        );
    }

    #[test]
    fn skip_handles_mixed_containers_and_trailing_bytes() {
        assert!(skip_all(b"d1:ald1:bi1eee1:c0:e").is_ok());
        assert_eq!(
            skip_all(b"d1:ai1eeX").unwrap_err().kind,
            DecodeErrorKind::TrailingBytes
        );
        assert_eq!(
            skip_all(b"di1ei2ee").unwrap_err().kind,
            DecodeErrorKind::KeyNotString
        );
        assert_eq!(
            skip_all(b"").unwrap_err().kind,
            DecodeErrorKind::UnexpectedEof
        );
    }
}
