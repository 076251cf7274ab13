//! Coverage-guided fuzzing of BEP 44 puts: any datagram that decodes as a
//! `put` goes through the item's checks and the item store. No input may
//! panic; an item the checks pass is stored under its own target and found
//! there, and one they refuse leaves the store as it was. Run:
//! `cd protocol/fuzz && cargo fuzz run put_item -s none`.
#![no_main]

use bytes::Bytes;
use dhtd_protocol::item::{Item, ItemStore, ItemStoreConfig, Signed};
use dhtd_protocol::krpc::{Body, Message, Query};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(m) = Message::decode(data) else { return };
    let Body::Query {
        query: Query::Put(p),
        ..
    } = m.body
    else {
        return;
    };
    let item = Item {
        value: Bytes::copy_from_slice(p.value),
        signed: p.signed.map(|s| Signed {
            key: *s.key,
            salt: Bytes::copy_from_slice(s.salt),
            seq: s.seq,
            sig: *s.sig,
        }),
    };
    // The store's clock is not read: a fixed instant serves.
    let now = std::time::Instant::now();
    let mut store = ItemStore::new(ItemStoreConfig::default());
    match item.check() {
        Ok(()) => {
            store.put(now, item.clone(), p.cas).expect("an empty store takes a checked item");
            let found = store.get(now, &item.target(), None).expect("stored under its target");
            assert_eq!(found, &item);
        }
        Err(_) => assert_eq!(store.size(), (0, 0)),
    }
});
