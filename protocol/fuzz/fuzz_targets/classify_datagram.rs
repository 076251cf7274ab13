//! Coverage-guided fuzzing of the gate's inbound classifier, which picks a
//! datagram's budget before it is decoded: no input may panic, and whenever
//! the datagram decodes, the classifier agrees with the decoder on whether
//! it is a query. Run: `cd protocol/fuzz && cargo fuzz run classify_datagram -s none`.
#![no_main]

use dhtd_protocol::krpc::{Body, Message};
use dhtd_protocol::node::rate_limiter::gate::looks_like_query;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let classified = looks_like_query(data);
    if let Ok(m) = Message::decode(data) {
        let is_query = matches!(m.body, Body::Query { .. });
        assert_eq!(classified, is_query, "classifier and decoder disagree");
    }
});
