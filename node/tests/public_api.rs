//! The library's public API names no type of the node's internals: no
//! actor, no message between pieces, no piece's state or counters. An
//! embedder then depends on this crate alone, and the internals can change.
//!
//! The check reads rustdoc's JSON description of the crate (built on the
//! installed toolchain; `RUSTC_BOOTSTRAP` unlocks the JSON output on
//! stable) and walks every public item: functions' signatures, fields,
//! variants, trait impls and re-exports. Every type they name must belong
//! to this crate or the standard library, or be on the list below.

#![allow(clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

/// What the API may name from other crates, and why.
const ALLOWED: &[&str] = &[
    // The ids: 20-byte values, the vocabulary of every DHT API.
    "dhtd_protocol::id::NodeId",
    "dhtd_protocol::id::InfoHash",
    // The address families (BEP 32): which family a node, peer or table
    // is of, as small as an id and as much a part of the vocabulary.
    "dhtd_protocol::family::Family",
    "dhtd_protocol::family::Families",
    // The node's settings (`Config::dht`), shared with the simulator: the
    // operator's knobs, each documented with its default.
    "dhtd_protocol::node::config::NodeConfig",
    "dhtd_protocol::node::config::RateLimits",
    "dhtd_protocol::node::config::LookupLimits",
    "dhtd_protocol::node::config::BootstrapConfig",
    "dhtd_protocol::routing::RoutingConfig",
    "dhtd_protocol::lookup::LookupConfig",
    "dhtd_protocol::store::PeerStoreConfig",
    "dhtd_protocol::token::TokenConfig",
    "dhtd_protocol::transactions::TransactionConfig",
    "dhtd_protocol::rate_limit::Rate",
    "dhtd_protocol::item::ItemStoreConfig",
    // Label values of exported metrics, which are a public contract anyway.
    "dhtd_protocol::telemetry::labels::Warning",
    "dhtd_protocol::telemetry::labels::NotSent",
    "dhtd_protocol::telemetry::labels::Component",
    // `PeerStream` is a `Stream`.
    "futures_core::stream::Stream",
];

fn rustdoc_json() -> Value {
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("public-api");
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let status = Command::new(env!("CARGO"))
        .args(["rustdoc", "--quiet", "--lib", "--no-default-features"])
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target)
        // Broken links in the docs fail the check too.
        .args(["--", "-D", "warnings"])
        .args(["-Z", "unstable-options", "--output-format", "json"])
        .env("RUSTC_BOOTSTRAP", "1")
        .status()
        .expect("cargo runs");
    assert!(status.success(), "rustdoc --output-format json failed");
    let text = std::fs::read_to_string(target.join("doc/dhtd.json")).expect("rustdoc wrote JSON");
    serde_json::from_str(&text).expect("rustdoc JSON parses")
}

/// `crate::path` of the item `id`, as rustdoc's path table has it.
fn path_of(doc: &Value, id: &Value) -> Option<String> {
    let key = match id {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => return None,
    };
    let entry = doc["paths"].get(&key)?;
    let crate_id = entry["crate_id"].as_u64()?;
    let segments: Vec<&str> = entry["path"]
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    if crate_id == 0 {
        return Some(format!("dhtd::{}", segments[1..].join("::")));
    }
    Some(segments.join("::"))
}

/// Every type or trait that `value` names.
fn named(doc: &Value, value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(fields) => {
            for (key, v) in fields {
                let is_ref = matches!(key.as_str(), "resolved_path" | "trait");
                if is_ref {
                    if let Some(path) = v.get("id").and_then(|id| path_of(doc, id)) {
                        out.insert(path);
                    }
                }
                named(doc, v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| named(doc, v, out)),
        _ => {}
    }
}

fn is_foreign(path: &str) -> bool {
    let krate = path.split("::").next().unwrap_or_default();
    !matches!(krate, "dhtd" | "std" | "core" | "alloc")
}

#[test]
fn the_public_api_names_no_internal_type() {
    let doc = rustdoc_json();
    let mut foreign = BTreeSet::new();
    let index = doc["index"].as_object().expect("an index");
    for item in index.values() {
        if item["crate_id"].as_u64() != Some(0) {
            continue;
        }
        let inner = &item["inner"];
        let mut names = BTreeSet::new();
        if let Some(reexport) = inner.get("use") {
            if let Some(path) = reexport.get("id").and_then(|id| path_of(&doc, id)) {
                names.insert(path);
            }
        } else if let Some(imp) = inner.get("impl") {
            // Auto traits and blanket impls are the compiler's, not ours.
            let generated =
                imp["is_synthetic"].as_bool() == Some(true) || !imp["blanket_impl"].is_null();
            if !generated {
                named(&doc, imp, &mut names);
            }
        } else {
            named(&doc, inner, &mut names);
        }
        let name = item["name"].as_str().unwrap_or("(impl)");
        for path in names.into_iter().filter(|p| is_foreign(p)) {
            foreign.insert((path, name.to_owned()));
        }
    }
    let leaks: Vec<String> = foreign
        .iter()
        .filter(|(path, _)| !ALLOWED.contains(&path.as_str()))
        .map(|(path, item)| format!("{path} (in `{item}`)"))
        .collect();
    assert!(
        leaks.is_empty(),
        "the public API names internal types:\n  {}",
        leaks.join("\n  ")
    );
    // The walk sees what it must see: a check that finds nothing proves nothing.
    let seen: BTreeSet<&str> = foreign.iter().map(|(p, _)| p.as_str()).collect();
    for expected in ["dhtd_protocol::id::NodeId", "futures_core::stream::Stream"] {
        assert!(seen.contains(expected), "the walk missed {expected}");
    }
}
