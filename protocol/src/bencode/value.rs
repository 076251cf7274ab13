//! A generic bencode tree, for tools and files rather than the hot path.

use super::decode::{DecodeError, Decoder, Kind, Limits};
use super::encode::Encoder;

/// Any bencoded value, borrowing its strings from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value<'a> {
    /// An integer.
    Int(i64),
    /// A byte string.
    Bytes(&'a [u8]),
    /// A list.
    List(Vec<Value<'a>>),
    /// A dictionary, in the order its keys appeared.
    Dict(Vec<(&'a [u8], Value<'a>)>),
}

/// A container being filled while decoding, with the key its value will get.
enum Open<'a> {
    List(Vec<Value<'a>>),
    Dict(Vec<(&'a [u8], Value<'a>)>, Option<&'a [u8]>),
}

impl<'a> Value<'a> {
    /// Decodes exactly one value filling `input`, within `limits`, without recursion.
    pub fn decode(input: &'a [u8], limits: Limits) -> Result<Value<'a>, DecodeError> {
        let mut d = Decoder::new(input, limits);
        let value = Self::decode_next(&mut d)?;
        d.finish()?;
        Ok(value)
    }

    /// Decodes the value at the decoder's position.
    pub fn decode_next(d: &mut Decoder<'a>) -> Result<Value<'a>, DecodeError> {
        let mut stack: Vec<Open<'a>> = Vec::new();
        loop {
            // Read a key if the innermost container is a dictionary waiting for one.
            if let Some(Open::Dict(entries, pending @ None)) = stack.last_mut() {
                match d.next_key()? {
                    Some(key) => *pending = Some(key),
                    None => {
                        let done = Value::Dict(std::mem::take(entries));
                        stack.pop();
                        match Self::attach(&mut stack, done) {
                            Some(v) => return Ok(v),
                            None => continue,
                        }
                    }
                }
            } else if let Some(Open::List(items)) = stack.last_mut() {
                if !d.next_item()? {
                    let done = Value::List(std::mem::take(items));
                    stack.pop();
                    match Self::attach(&mut stack, done) {
                        Some(v) => return Ok(v),
                        None => continue,
                    }
                }
            }
            let value = match d.peek_kind()? {
                Kind::Int => Value::Int(d.int()?),
                Kind::Bytes => Value::Bytes(d.bytes()?),
                Kind::List => {
                    d.begin_list()?;
                    stack.push(Open::List(Vec::new()));
                    continue;
                }
                Kind::Dict => {
                    d.begin_dict()?;
                    stack.push(Open::Dict(Vec::new(), None));
                    continue;
                }
            };
            if let Some(v) = Self::attach(&mut stack, value) {
                return Ok(v);
            }
        }
    }

    /// Puts a finished value into its parent; returns it if it was the top level.
    fn attach(stack: &mut [Open<'a>], value: Value<'a>) -> Option<Value<'a>> {
        match stack.last_mut() {
            None => Some(value),
            Some(Open::List(items)) => {
                items.push(value);
                None
            }
            Some(Open::Dict(entries, pending)) => {
                if let Some(key) = pending.take() {
                    entries.push((key, value));
                }
                None
            }
        }
    }

    /// Encodes the value (dictionary keys in the order held).
    pub fn encode(&self, out: &mut Vec<u8>) {
        // Explicit stack so that encoding a deep tree cannot overflow either.
        enum Step<'v, 'a> {
            Value(&'v Value<'a>),
            Key(&'v [u8]),
            End,
        }
        let mut todo = vec![Step::Value(self)];
        let mut enc = Encoder::new(out);
        while let Some(step) = todo.pop() {
            match step {
                Step::End => {
                    enc.end();
                }
                Step::Value(Value::Int(i)) => {
                    enc.int(*i);
                }
                Step::Value(Value::Bytes(b)) => {
                    enc.bytes(b);
                }
                Step::Value(Value::List(items)) => {
                    enc.begin_list();
                    todo.push(Step::End);
                    todo.extend(items.iter().rev().map(Step::Value));
                }
                Step::Value(Value::Dict(entries)) => {
                    enc.begin_dict();
                    todo.push(Step::End);
                    for (k, v) in entries.iter().rev() {
                        todo.push(Step::Value(v));
                        todo.push(Step::Key(k));
                    }
                }
                Step::Key(k) => {
                    enc.bytes(k);
                }
            }
        }
    }

    /// The value under `key`, if this is a dictionary holding it.
    pub fn get(&self, key: &[u8]) -> Option<&Value<'a>> {
        match self {
            Value::Dict(entries) => entries.iter().find(|(k, _)| *k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}
