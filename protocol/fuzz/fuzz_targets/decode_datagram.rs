//! Coverage-guided fuzzing of datagram decoding: no input may panic, and
//! whatever decodes must re-encode to something that decodes to the same
//! message. Run: `cd protocol/fuzz && cargo fuzz run decode_datagram -s none`.
#![no_main]

use dhtd_protocol::bencode::{Limits, Value};
use dhtd_protocol::krpc::Message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Message::decode(data) {
        let again = m.to_bytes();
        assert_eq!(Message::decode(&again).as_ref(), Ok(&m));
    }
    if let Ok(v) = Value::decode(data, Limits::KRPC) {
        let mut out = Vec::new();
        v.encode(&mut out);
        assert_eq!(Value::decode(&out, Limits::KRPC), Ok(v));
    }
});
